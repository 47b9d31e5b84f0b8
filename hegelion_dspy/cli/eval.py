"""hegelion eval: measure a model M against its base M0 on suites (preference, halueval, selfcorrect, mtbench) and
write report.json, report.md and report.svg. A thin layer over ``hegelion_dspy.eval.run.evaluate``."""

from __future__ import annotations

import sys
from pathlib import Path

import click


class _Progress:
    """A one-line progress bar per suite on stderr (redrawn in place on a terminal, every 10% otherwise)."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last: tuple[str, int] | None = None

    def __call__(self, suite: str, done: int, total: int) -> None:
        step = max(1, total // 10)
        if not self.tty and done not in (0, total) and done % step:
            return
        filled = int(30 * done / total) if total else 30
        line = f"hegelion eval: {suite:<11} [{'#' * filled}{'.' * (30 - filled)}] {done}/{total}"
        click.echo(("\r" + line) if self.tty else line, err=True, nl=not self.tty or done == total)


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option(
    "--model",
    "-m",
    "model",
    required=True,
    help="M: embedded, gguf:PATH, a hegelion train folder, a "
    "Hugging Face folder or an LM string (openai/..., hosted_vllm/NAME with --api-base).",
)
@click.option("--base", help="M0, the model M is compared with (its base); without it, M alone.")
@click.option("--suite", "suites", required=True, help="Comma-separated: preference, halueval, selfcorrect, mtbench.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Report folder [default: beside the model card of a hegelion train folder]; the same setup resumes it.",
)
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    help="An export folder (hegelion dataset --card --split): "
    "the preference suite scores its test split; its train split is never scored.",
)
@click.option(
    "--n",
    type=click.IntRange(min=1),
    help="Items per suite [default: all test rows; halueval 200; selfcorrect 30; mtbench 80].",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the samples and generated items.")
@click.option("--judge-model", help="The LM that judges mtbench pairs.")
@click.option("--api-base", help="Base URL of an OpenAI-compatible server for hosted models.")
@click.option("--max-tokens", type=click.IntRange(min=1), help="New tokens per generation step [default: the LM's].")
@click.option(
    "-j",
    "--concurrency",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Items run at once (generation suites).",
)
def eval_command(model: str, suites: str, **options: object) -> None:
    """Evaluate M (against M0) and write report.json, report.md and report.svg.

    \b
    hegelion eval --model runs/dpo --base embedded --suite preference,selfcorrect --data data/dpo
    hegelion eval --model embedded --suite halueval --n 1000 --out reports/halueval
    """
    from ..eval.run import evaluate

    report = evaluate(model, suites=suites, on_progress=_Progress(), **options)  # type: ignore[arg-type]
    for name, suite in report["suites"].items():
        for entry in suite["metrics"]:
            if entry["m"]["n"]:
                diff = entry["diff"]
                tail = (
                    f"  M−{'M0' if entry['m0'] else diff['against']}: {diff['mean']:+.3f} [{diff['low']:+.3f}, "
                    f"{diff['high']:+.3f}] {diff['verdict']}"
                    if diff
                    else ""
                )
                click.echo(f"{name:<11} {entry['metric']:<58} {entry['m']['mean']:.3f}{tail}")
    click.echo(f"hegelion eval: report in {report['files']['report.md']}", err=True)
