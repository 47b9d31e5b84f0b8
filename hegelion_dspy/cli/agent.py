"""hegelion [run] (hegelion-agent): run dialectics on one task or a file of prompts, print the result, log every trace.

On a terminal a single run is watchable: a live line says which step of which round is running and for how long, and
the thesis and the critique are printed (on stderr) as they finish; stdout keeps only the answer, so piped output
stays clean. ``--quiet`` turns the display off.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from ..collect import RunContext, read_prompts, run_batch, run_dialectic
from ..store import TraceStore, default_log_path
from ..types import TraceRecord
from ._common import EXIT_FAILED, EXIT_INTERRUPTED, prog, run
from .options import api_base_option, format_option, model_option, program_option, prompts_option
from .watch import StepDisplay


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("task", required=False)
@prompts_option
@click.option("--coding", is_flag=True, help="Word the three steps for software tasks.")
@click.option(
    "--iterations",
    "-n",
    type=click.IntRange(1, 10),
    default=None,
    help="Rounds; each synthesis becomes the next thesis [default: 1, or what a --program was saved with].",
)
@click.option(
    "--log-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Trace log to append to [default: $HEGELION_LOG_FILE or $HEGELION_DATA_DIR/traces.jsonl].",
)
@click.option("--no-log", is_flag=True, help="Do not append the trace to any log.")
@model_option
@api_base_option
@program_option
@format_option("Print the synthesis, or the whole trace as JSON (one line per trace).")
@click.option(
    "--concurrency",
    "-j",
    type=click.IntRange(1, 256),
    default=4,
    show_default=True,
    help="Prompts run at once with --prompts.",
)
@click.option(
    "--no-resume",
    is_flag=True,
    help="With --prompts, rerun prompts that already have an ok trace from the same model, mode and program.",
)
@click.option("--tag", "tags", multiple=True, help="Tag the traces (repeatable).")
@click.option(
    "--judge",
    is_flag=True,
    help="Score each ok trace 0..1 with the judge (synthesis vs thesis) and log it as its score, for "
    "hegelion-dataset --min-score.",
)
@click.option("--judge-model", help="The LM that judges (implies --judge) [default: the --model LM].")
@click.option(
    "--quiet",
    "-q",
    is_flag=True,
    help="No live step display: on a terminal a single run otherwise shows each step and prints the thesis and the "
    "critique as they finish (on stderr).",
)
def agent(
    task: str | None,
    prompts_file: Path | None,
    coding: bool,
    iterations: int | None,
    log_file: Path | None,
    no_log: bool,
    model: str | None,
    api_base: str | None,
    program: Path | None,
    fmt: str,
    concurrency: int,
    no_resume: bool,
    tags: tuple[str, ...],
    judge: bool,
    judge_model: str | None,
    quiet: bool,
) -> int:
    """Make an LM argue with itself: thesis -> antithesis -> synthesis, and log it as training data.

    \b
    hegelion "Fix the memory leak" --coding --iterations 2 --log-file data/traces.jsonl
    hegelion --prompts prompts.txt --concurrency 8 -m openai/gpt-4o-mini --log-file data/traces.jsonl
    """
    if (task is None) == (prompts_file is None):
        raise click.UsageError("give either a TASK or --prompts FILE")
    prompts = read_prompts(prompts_file) if prompts_file is not None else []
    store = None if no_log else TraceStore(log_file or default_log_path())
    from ..lms.chooser import make_lm

    lm = make_lm(model, api_base=api_base)
    judge_with = make_lm(judge_model) if judge_model else judge
    ctx = RunContext.build(
        lm=lm, mode="coding" if coding else "general", iterations=iterations or 1, program=program, judge=judge_with
    )
    if task is not None:
        watch = (
            None if quiet or not sys.stderr.isatty() else StepDisplay(sys.stderr, ctx.program.total_steps(iterations))
        )
        try:
            record = run_dialectic(
                task, ctx=ctx, store=store, iterations=iterations, source="cli", tags=tags, on_step=watch
            )
        finally:
            if watch is not None:
                watch.close()
        _print_record(record, fmt)
        if record.score is not None and fmt == "text":
            click.echo(f"{prog()}: judge score {record.score:.2f}", err=True)
        if not record.ok:
            assert record.error is not None
            click.echo(f"{prog()}: failed in the {record.error.step} step: {record.error.message}", err=True)
            return EXIT_FAILED
        return 0
    return _run_prompts(prompts, ctx, store, iterations, fmt, concurrency, not no_resume, tags)


def _print_record(record: TraceRecord, fmt: str) -> None:
    if fmt == "json":
        click.echo(record.model_dump_json())
    elif record.ok:
        click.echo(record.synthesis)


def _run_prompts(
    prompts: list[str],
    ctx: RunContext,
    store: TraceStore | None,
    iterations: int | None,
    fmt: str,
    concurrency: int,
    resume: bool,
    tags: tuple[str, ...],
) -> int:
    show_bar = sys.stderr.isatty()
    bar = click.progressbar(length=len(prompts), label="dialectics", file=sys.stderr) if show_bar else None

    def on_result(record: TraceRecord) -> None:
        if fmt == "json":
            click.echo(record.model_dump_json())
        if bar is not None:
            bar.update(1)

    try:
        if bar is not None:
            bar.__enter__()
        result = asyncio.run(
            run_batch(
                prompts,
                ctx=ctx,
                store=store,
                concurrency=concurrency,
                iterations=iterations,
                source="cli",
                tags=tags,
                resume=resume,
                on_result=on_result,
            )
        )
    except KeyboardInterrupt:
        where = f" in {store.path}" if store is not None else ""
        click.echo(f"\n{prog()}: interrupted; every finished trace is kept{where}; rerun to resume", err=True)
        return EXIT_INTERRUPTED
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    where = f" -> {store.path}" if store is not None else ""
    click.echo(
        f"{prog()}: {result.ok} ok, {result.failed} failed, {result.skipped} skipped "
        f"(already logged by the same model, or repeated){where}",
        err=True,
    )
    if result.failed:
        for task, reason in result.failures:
            click.echo(f"{prog()}: failed: {task[:80]!r}: {reason}", err=True)
        click.echo(f"{prog()}: {result.failed} of {result.ok + result.failed} prompts failed", err=True)
        return EXIT_FAILED
    return 0


def main(argv: list[str] | None = None) -> None:
    run(agent, "hegelion-agent", argv)


if __name__ == "__main__":
    main()
