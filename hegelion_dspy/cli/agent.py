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

from ..collect.batch import BatchOptions, BatchResult, read_prompts, run_batch
from ..collect.context import RunContext
from ..collect.run import run_dialectic
from ..collect.spec import RunSpec
from ..errors import LogWriteError
from ..store import TraceStore, default_log_path
from ..types import TraceRecord
from ._common import EXIT_BUDGET, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_LOG, prog, run
from .options import format_option, given_options, prompts_option, run_options
from .watch import StepDisplay


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("task", required=False)
@prompts_option
@click.option("--coding", is_flag=True, help="Word the three steps for software tasks.")
@click.option(
    "--log-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Trace log to append to [default: $HEGELION_LOG_FILE or $HEGELION_DATA_DIR/traces.jsonl].",
)
@click.option("--no-log", is_flag=True, help="Do not append the trace to any log.")
@run_options("iterations", "model", "api_base", "max_tokens", "program")
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
@click.option(
    "--ray",
    "ray_address",
    is_flag=False,
    flag_value="local",
    default=None,
    metavar="[ADDRESS]",
    help="Run the --prompts batch on a Ray cluster: a local one, or the running cluster at ADDRESS (auto, "
    "host:6379, ray://host:10001). Needs the [ray] extra.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 4096),
    default=None,
    help="With --ray: worker processes, each running --concurrency dialectics [default: one per CPU of the cluster].",
)
@click.option(
    "--max-cost",
    type=click.FloatRange(0, min_open=True),
    default=None,
    metavar="USD",
    help="Stop the batch once its LM calls have cost this much (LiteLLM's prices); finished traces are kept and a "
    "rerun with a higher budget resumes.",
)
@run_options("rpm", "tpm", "max_retries", "timeout", "tags", "judge", "judge_model")
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
    log_file: Path | None,
    no_log: bool,
    fmt: str,
    concurrency: int,
    no_resume: bool,
    ray_address: str | None,
    workers: int | None,
    max_cost: float | None,
    quiet: bool,
    **options: object,
) -> int:
    """Make an LM argue with itself: thesis -> antithesis -> synthesis, and log it as training data.

    \b
    hegelion "Fix the memory leak" --coding --iterations 2 --log-file data/traces.jsonl
    hegelion --prompts prompts.txt -j 8 -m openai/gpt-4o-mini --rpm 500 --max-cost 5 --log-file data/traces.jsonl
    hegelion --prompts prompts.txt --ray -j 32 -m hosted_vllm/NAME --api-base http://gpu1:8000/v1,http://gpu2:8000/v1
    """
    _refuse_mixed_flags(task, prompts_file, ray_address, workers, max_cost)
    prompts = read_prompts(prompts_file) if prompts_file is not None else []
    store = None if no_log else TraceStore(log_file or default_log_path())
    if store is not None:
        store.check_writable()  # before a model loads or an LM call is paid for
    if ray_address is not None:
        from ..collect.distributed import import_ray

        import_ray()  # without Ray, say what to install before anything else is done
    spec = RunSpec.of(
        given_options(options, RunSpec),
        mode="coding" if coding else "general",
        parallel=concurrency if task is None else 1,
    )
    if task is not None:
        return _run_task(task, spec, store, fmt, quiet)
    batch: BatchOptions = {
        "concurrency": concurrency,
        "iterations": spec.iterations,
        "source": "cli",
        "tags": spec.tags,
        "resume": not no_resume,
        "max_cost": max_cost,
    }
    return _run_prompts(prompts, spec, store, fmt, batch, ray_address, workers)


def _refuse_mixed_flags(
    task: str | None, prompts_file: Path | None, ray_address: str | None, workers: int | None, max_cost: float | None
) -> None:
    """UsageError for flags that do not go together: a TASK and --prompts, batch flags on a single TASK."""
    if (task is None) == (prompts_file is None):
        raise click.UsageError("give either a TASK or --prompts FILE")
    if task is not None:
        for given, flag in ((ray_address, "--ray"), (workers, "--workers"), (max_cost, "--max-cost")):
            if given is not None:
                raise click.UsageError(f"{flag} is for a --prompts batch, not a single TASK")
    if workers is not None and ray_address is None:
        raise click.UsageError("--workers is for a --ray batch")


def _run_task(task: str, spec: RunSpec, store: TraceStore | None, fmt: str, quiet: bool) -> int:
    """One dialectic, watched step by step on a terminal: print its answer, its judge score, why it failed."""
    ctx = RunContext.build(spec)
    total = ctx.program.total_steps(spec.iterations)
    watch = None if quiet or not sys.stderr.isatty() else StepDisplay(sys.stderr, total)
    try:
        record = run_dialectic(
            task, ctx=ctx, store=store, iterations=spec.iterations, source="cli", tags=spec.tags, on_step=watch
        )
    except LogWriteError as exc:  # the answer was paid for: print it, then say where the trace went
        if watch is not None:
            watch.close()
            watch = None
        _print_record(exc.records[-1], fmt)
        raise
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


def _print_record(record: TraceRecord, fmt: str) -> None:
    if fmt == "json":
        click.echo(record.model_dump_json())
    elif record.ok:
        click.echo(record.synthesis)


def _run_prompts(
    prompts: list[str],
    recipe: RunSpec,
    store: TraceStore | None,
    fmt: str,
    options: BatchOptions,
    ray_address: str | None,
    workers: int | None,
) -> int:
    """One batch, local or on Ray: the same progress bar, Ctrl-C handling, summary and exit codes."""
    show_bar = sys.stderr.isatty()
    bar = click.progressbar(length=len(prompts), label="dialectics", file=sys.stderr) if show_bar else None

    def on_result(record: TraceRecord) -> None:
        if fmt == "json":
            click.echo(record.model_dump_json())
        if bar is not None:
            bar.update(1)

    options = {**options, "on_result": on_result}
    ctx = RunContext.build(recipe) if ray_address is None else None  # a mistake is reported before the bar shows
    try:
        if bar is not None:
            bar.__enter__()
        if ctx is not None:
            result = asyncio.run(run_batch(prompts, ctx=ctx, store=store, **options))
        else:
            from ..collect.distributed import run_ray_batch

            result = run_ray_batch(prompts, recipe=recipe, store=store, address=ray_address, workers=workers, **options)
    except KeyboardInterrupt:
        where = f" in {store.path}" if store is not None else ""
        click.echo(f"\n{prog()}: interrupted; every finished trace is kept{where}; rerun to resume", err=True)
        return EXIT_INTERRUPTED
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    return _report_batch(result, store, options.get("max_cost"))


def _report_batch(result: BatchResult, store: TraceStore | None, budget: float | None) -> int:
    """What a batch did, on stderr (counts, calls, failures, why it stopped), and the exit code that says it."""
    where = f" -> {store.path}" if store is not None else ""
    click.echo(
        f"{prog()}: {result.ok} ok, {result.failed} failed, {result.skipped} skipped "
        f"(already logged by the same model, or repeated){where}",
        err=True,
    )
    calls = _calls_line(result)
    if calls:
        click.echo(f"{prog()}: {calls}", err=True)
    for task, reason in result.failures if result.failed else ():
        click.echo(f"{prog()}: failed: {task[:80]!r}: {reason}", err=True)
    if result.log_error is not None:
        click.echo(f"{prog()}: error: {result.log_error}", err=True)
        return EXIT_LOG
    if result.stopped == "max_cost":
        meter = result.meter
        click.echo(
            f"{prog()}: stopped at --max-cost ${budget or 0.0:g} after spending ${meter.cost_usd:.4f} (when it stopped "
            f"{meter.stopped_in_flight:,} calls were in flight, ${meter.stopped_reserved_usd:.4f} reserved for their "
            f"worst case; what they cost is in the spend): {result.ok + result.failed:,} of {result.planned:,} "
            f"prompts done, {result.not_run:,} not run (the dialectics cut short leave no trace); rerun with a higher "
            "--max-cost to resume",
            err=True,
        )
        return EXIT_BUDGET
    if result.failed:
        click.echo(f"{prog()}: {result.failed} of {result.ok + result.failed} prompts failed", err=True)
        return EXIT_FAILED
    return 0


def _calls_line(result: BatchResult) -> str:
    """Cost, retries and waits of a batch's LM calls, when there is something to say."""
    meter = result.meter
    parts = []
    if result.cost_usd is not None:
        parts.append(f"cost ${result.cost_usd:.4f} ({meter.priced_calls:,} priced calls)")
    if meter.retries:
        why = [f"{meter.rate_limited:,} after a 429"]
        why += [f"{meter.timed_out:,} timed out"] if meter.timed_out else []
        why += [f"{meter.cut_off:,} cut off"] if meter.cut_off else []
        parts.append(f"{meter.retries:,} retries ({', '.join(why)}), {meter.backoff_seconds:.0f} s of backoff")
    if meter.throttled_seconds >= 1:
        parts.append(f"{meter.throttled_seconds:.0f} s waited for --rpm/--tpm or a server's pause")
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> None:
    run(agent, "hegelion-agent", argv)


if __name__ == "__main__":
    main()
