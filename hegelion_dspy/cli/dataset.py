"""hegelion-dataset: turn trace logs into JSONL training data (DPO, conversational DPO, Alpaca, SFT)."""

from __future__ import annotations

from pathlib import Path

import click

from ..exporters import (
    CHAT_FORMATS,
    DROP_REASONS,
    FORMATS,
    PAIRS_CHOICES,
    PREFERENCE_FORMATS,
    REJECTED_CHOICES,
    TRACE_REASONS,
    ExportReport,
    export_dataset,
)
from ._common import run

PROG = "hegelion-dataset"


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.argument("output", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "-f",
    "fmt",
    type=click.Choice(FORMATS),
    default="dpo",
    show_default=True,
    help="dpo: {prompt, chosen, rejected} text; dpo-chat: the same as message lists; instruction: Alpaca "
    "{instruction, input, output}; sft: {prompt, completion}; sft-chat: {messages}.",
)
@click.option(
    "--rejected",
    type=click.Choice(REJECTED_CHOICES),
    default=None,
    help="Preference formats: what the synthesis is preferred to; 'both' writes two rows. [default: thesis]",
)
@click.option(
    "--pairs",
    type=click.Choice(PAIRS_CHOICES),
    default=None,
    help="Preference formats, iterated traces: the first thesis vs the final synthesis, or one pair per "
    "round. [default: first-last]",
)
@click.option("--system", help="A system prompt put first in every dpo-chat / sft-chat conversation.")
@click.option(
    "--min-chars",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Drop rows whose chosen text / output is shorter than N characters.",
)
@click.option(
    "--min-score",
    type=click.FloatRange(0, 1),
    default=None,
    help="Drop traces whose judge score is below X, or that have no score.",
)
@click.option("--keep-duplicates", is_flag=True, help="Keep every trace of a task (default: the first kept one).")
@click.option(
    "--split",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=None,
    help="Send this fraction of prompts to a test file: OUTPUT's stem + .train.jsonl / .test.jsonl.",
)
@click.option("--seed", type=int, default=7, show_default=True, help="Seed of the deterministic --split.")
@click.option(
    "--with-metadata",
    is_flag=True,
    help="Add a 'metadata' column (trace_id, model, mode, round, score); TRL's trainers drop it.",
)
@click.option("--stats", is_flag=True, help="Print what was kept and, per reason, what was dropped.")
@click.option("--force", is_flag=True, help="Replace OUTPUT if it exists.")
@click.option(
    "--skip-invalid",
    is_flag=True,
    help="Skip invalid log lines (reporting how many and where) instead of stopping at the first.",
)
def dataset(
    inputs: tuple[str, ...],
    output: Path,
    fmt: str,
    rejected: str | None,
    pairs: str | None,
    system: str | None,
    min_chars: int,
    min_score: float | None,
    keep_duplicates: bool,
    split: float | None,
    seed: int,
    with_metadata: bool,
    stats: bool,
    force: bool,
    skip_invalid: bool,
) -> int:
    """Turn trace logs (files or quoted globs) into JSONL training data, one row a line.

    \b
    hegelion-dataset traces.jsonl train_dpo.jsonl
    hegelion-dataset traces.jsonl train_dpo.jsonl --rejected antithesis
    hegelion-dataset traces.jsonl train_instruction.jsonl --format instruction
    hegelion-dataset 'logs/*.jsonl' data/dpo.jsonl --format dpo-chat --split 0.1 --stats
    """
    if fmt not in PREFERENCE_FORMATS:
        for flag, value in (("--rejected", rejected), ("--pairs", pairs)):
            if value is not None:
                raise click.UsageError(f"{flag} applies to the preference formats (dpo, dpo-chat), not {fmt!r}")
    if system is not None and fmt not in CHAT_FORMATS:
        raise click.UsageError(f"--system applies to dpo-chat and sft-chat, not {fmt!r}")
    report = export_dataset(
        list(inputs),
        output,
        format=fmt,  # type: ignore[arg-type]
        rejected=rejected or "thesis",  # type: ignore[arg-type]
        pairs=pairs or "first-last",  # type: ignore[arg-type]
        system=system,
        min_chars=min_chars,
        min_score=min_score,
        dedupe=not keep_duplicates,
        split=split,
        seed=seed,
        force=force,
        skip_invalid=skip_invalid,
        with_metadata=with_metadata,
    )
    if report.invalid:
        click.echo(f"{PROG}: skipped {report.invalid:,} invalid line(s); the first:", err=True)
        for location in report.invalid_locations:
            click.echo(f"  {location}", err=True)
    for warning in report.warnings:
        click.echo(f"{PROG}: warning: {warning}", err=True)
    if stats:
        click.echo(_stats_text(report))
    written = ", ".join(f"{n:,} rows -> {report.outputs[name]}" for name, n in report.rows.items())
    dropped = sum(report.dropped.values())
    hint = "" if stats or not dropped else " (--stats says why)"
    click.echo(f"{PROG}: {written}; {report.traces_read:,} traces read, {dropped:,} dropped{hint}", err=True)
    return 0


def _stats_text(report: ExportReport) -> str:
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
    lines.append(f"seconds       {report.seconds:.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    run(dataset, PROG, argv)


if __name__ == "__main__":
    main()
