"""hegelion dataset (hegelion-dataset): turn trace logs into JSONL training data (DPO, conversational DPO, Alpaca, SFT).

Its flags are made from ``ExportOptions`` (the library's one options model): an option added there appears here.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..curate.driver import demo_hint, export_dataset
from ..curate.options import ExportOptions
from ..curate.report import ExportReport
from ..curate.verdict import DROP_REASONS, TRACE_REASONS
from ._common import command_line, prog, run
from .options import FLAG_NAMES, INVERTED, as_flags, fields_as_options, given_options

PROG = "hegelion-dataset"


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.argument("output", type=click.Path(path_type=Path))
@fields_as_options(ExportOptions, names=FLAG_NAMES, inverted=INVERTED)
@click.option("--stats", is_flag=True, help="Print what was kept and, per reason, what was dropped.")
def dataset(inputs: tuple[str, ...], output: Path, stats: bool, **options: object) -> int:
    """Turn trace logs (files or quoted globs) into JSONL training data, one row a line.

    \b
    hegelion-dataset traces.jsonl train_dpo.jsonl
    hegelion-dataset traces.jsonl train_dpo.jsonl --rejected antithesis
    hegelion-dataset traces.jsonl train_instruction.jsonl --format instruction
    hegelion-dataset 'logs/*.jsonl' data/dpo.jsonl --format dpo-chat --split 0.1 --stats
    hegelion-dataset traces.jsonl data/dpo --card --split 0.1 --model 'openai/*' --keep best
    """
    opts = ExportOptions.of(given_options(options, ExportOptions))
    report = export_dataset(list(inputs), output, opts, command=command_line())
    if report.invalid:
        click.echo(
            f"{prog()}: skipped {report.invalid:,} invalid {_plural(report.invalid, 'line')}; the first:", err=True
        )
        for location in report.invalid_locations:
            click.echo(f"  {as_flags(location, ['skip_invalid'])}", err=True)
    for warning in report.warnings:
        click.echo(f"{prog()}: warning: {warning}", err=True)
    if stats:
        click.echo(stats_text(report))
    elif report.dropped.get("demo"):
        click.echo(f"{prog()}: {as_flags(demo_hint(report.dropped['demo']), ['include_demo'])}", err=True)
    written = ", ".join(f"{n:,} {_plural(n, 'row')} -> {report.outputs[name]}" for name, n in report.rows.items())
    if report.folder:
        written += f" (dataset folder {report.folder} with README.md)"
    dropped = sum(report.dropped.values())
    hint = "" if stats or not dropped else " (--stats says why)"
    click.echo(
        f"{prog()}: {written}; {report.traces_read:,} {_plural(report.traces_read, 'trace')} read, "
        f"{dropped:,} dropped{hint}",
        err=True,
    )
    return 0


def _plural(n: int, word: str) -> str:
    return word if n == 1 else word + "s"


def stats_text(report: ExportReport) -> str:
    """The ``--stats`` table: what was read, kept and written, and every drop reason with its count."""
    lines = [
        f"format        {report.format}",
        f"traces read   {report.traces_read:,}  ({report.invalid:,} invalid lines skipped)",
        f"traces kept   {report.traces_kept:,}",
    ]
    for name, n in report.rows.items():
        lines.append(f"rows {name:<8} {n:,}  {report.outputs[name]}")
    lines.append("dropped")
    for reason in DROP_REASONS:
        unit = "traces" if reason in TRACE_REASONS else "rows"
        lines.append(f"  {reason:<24} {report.dropped.get(reason, 0):>9,} {unit}")
    given = report.options.get("allow_flags")
    allowed = set(given) if isinstance(given, list) else set()
    lines.append("quality flags (traces carrying each, of those that passed the trace checks)")
    for flag, n in report.flagged.items():
        fate = "kept (--allow-flag)" if flag in allowed else f"{report.dropped.get(flag, 0):,} rows left out"
        lines.append(f"  {flag:<24} {n:>9,} traces  {fate}")
    lines.append(f"labels        {', '.join(report.label_files) or 'none'}")
    for outcome, n in report.labels.items():
        lines.append(f"  {outcome:<24} {n:>9,} examples")
    if report.kept_by_model:
        lines.append("kept by model")
        for model, n in sorted(report.kept_by_model.items(), key=lambda kv: -kv[1]):
            lines.append(f"  {model:<40} {n:>9,}")
    if report.priced_traces:
        lines.append(
            f"cost          ${report.cost_usd:,.4f} of LM calls ({report.priced_traces:,} of "
            f"{report.traces_read:,} traces read carry a cost)"
        )
    if report.dropped.get("demo"):
        lines.append(f"note: {as_flags(demo_hint(report.dropped['demo']), ['include_demo'])}")
    lines.append(f"seconds       {report.seconds:.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    run(dataset, PROG, argv)


if __name__ == "__main__":
    main()
