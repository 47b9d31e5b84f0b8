"""hegelion-optimize: compile the Dialectic with a DSPy optimizer on tasks you already have, and save it."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..collect.spec import RunSpec
from ..errors import InvalidTraceError
from ..store import default_log_path
from ._common import prog, run
from .options import (
    api_base_option,
    format_option,
    max_tokens_option,
    model_option,
    program_option,
    prompts_option,
)

if TYPE_CHECKING:
    from ..collect.optimize import OptimizerName, OptimizerSettings
    from ..lms.base import NamedLM
    from ..program import Dialectic
    from ..types import Mode


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--output",
    "-o",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Where to save the compiled program (.json); load it with hegelion-agent --program or HEGELION_PROGRAM.",
)
@click.option(
    "--log",
    "log_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Take the tasks of the ok traces in this trace log [default: the default log, when no --prompts].",
)
@prompts_option
@click.option(
    "--optimizer",
    type=click.Choice(["bootstrap", "mipro", "gepa"]),
    default="bootstrap",
    show_default=True,
    help="bootstrap = BootstrapFewShot (demos), mipro = MIPROv2 (instructions + demos; needs optuna), "
    "gepa = GEPA (instructions, from the judge's written feedback).",
)
@click.option("--coding", is_flag=True, help="Optimize the coding wording (and use only coding traces of --log).")
@click.option("--iterations", "-n", type=click.IntRange(1, 10), default=1, show_default=True, help="Rounds per run.")
@program_option
@model_option
@api_base_option
@max_tokens_option
@click.option("--judge-model", help="The LM that judges syntheses [default: the --model LM].")
@click.option("--reflection-model", help="The LM that writes new instructions (mipro, gepa) [default: the --model LM].")
@click.option("--no-judge", is_flag=True, help="Score with the cheap checks only (contradiction coverage, no copy).")
@click.option(
    "--dev-fraction",
    type=click.FloatRange(0.0, 1.0, max_open=True),
    default=0.2,
    show_default=True,
    help="Share of the tasks held out to score the program before and after (0 = no dev set, no scores).",
)
@click.option("--max-tasks", type=click.IntRange(1), help="Use at most this many tasks (a random sample, see --seed).")
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of the shuffle, the split and the optimizer."
)
@click.option(
    "--max-demos", type=click.IntRange(0, 16), default=2, show_default=True, help="Demos per step (bootstrap, mipro)."
)
@click.option(
    "--min-score",
    type=click.FloatRange(0.0, 1.0),
    default=0.5,
    show_default=True,
    help="A run becomes a demo only when the metric scores it at least this (bootstrap, mipro).",
)
@click.option(
    "--budget",
    type=click.Choice(["light", "medium", "heavy"]),
    default="light",
    show_default=True,
    help="Search budget of mipro and gepa.",
)
@click.option(
    "--max-metric-calls", type=click.IntRange(1), help="gepa: an exact budget of program runs (not --budget)."
)
@click.option("--candidates", type=click.IntRange(1), help="mipro: instruction/demo candidates (not --budget).")
@click.option("--threads", "-j", type=click.IntRange(1, 64), default=4, show_default=True, help="Runs at once.")
@click.option("--skip-invalid", is_flag=True, help="Skip invalid lines of --log instead of stopping at the first.")
@click.option("--force", is_flag=True, help="Overwrite --output if it exists.")
@format_option("Print a one-line summary, or the summary as JSON.")
def optimize(
    output: Path,
    log_file: Path | None,
    prompts_file: Path | None,
    optimizer: OptimizerName,
    coding: bool,
    iterations: int,
    program: Path | None,
    model: str | None,
    api_base: tuple[str, ...],
    max_tokens: int | None,
    judge_model: str | None,
    reflection_model: str | None,
    no_judge: bool,
    dev_fraction: float,
    max_tasks: int | None,
    seed: int,
    max_demos: int,
    min_score: float,
    budget: str,
    max_metric_calls: int | None,
    candidates: int | None,
    threads: int,
    skip_invalid: bool,
    force: bool,
    fmt: str,
) -> int:
    """Optimize the dialectic's prompts on your own tasks and save the compiled program.

    \b
    hegelion-optimize --log data/traces.jsonl -o program.json
    hegelion-optimize --prompts prompts.txt --optimizer gepa --reflection-model openai/gpt-4o -o program.json
    hegelion-agent --program program.json "your next task"
    """
    _refuse_contradictions(output, force, log_file, prompts_file, judge_model, no_judge)
    mode: Mode = "coding" if coding else "general"
    tasks = _read_tasks(log_file, prompts_file, mode, skip_invalid)
    from ..collect.optimize import OptimizerSettings, split_examples

    train, dev = split_examples(_sample(tasks, max_tasks, seed), dev_fraction, seed)
    lms = _LMs.make(model, _one_server(api_base), max_tokens, judge_model, reflection_model)
    settings = OptimizerSettings(
        max_demos=max_demos,
        min_score=min_score,
        budget=budget,
        max_metric_calls=max_metric_calls,
        num_candidates=candidates,
        num_threads=threads,
        seed=seed,
    )
    plan = _Plan(optimizer, program, mode, iterations, not no_judge, settings)
    info, compiled = _compile(train, dev, plan, lms)
    from ..program import save_program

    path = save_program(compiled, output, info=info, overwrite=force)
    click.echo(json.dumps({"program": str(path), **info}) if fmt == "json" else _summary(path, info))
    return 0


def _refuse_contradictions(
    output: Path, force: bool, log_file: Path | None, prompts_file: Path | None, judge_model: str | None, no_judge: bool
) -> None:
    from ..errors import ConfigError

    if log_file is not None and prompts_file is not None:
        raise click.UsageError("give --log FILE or --prompts FILE, not both")
    if output.exists() and not force:
        raise ConfigError(f"{str(output)!r} already exists; choose another --output or pass --force")
    if judge_model and no_judge:
        raise click.UsageError("--judge-model and --no-judge contradict each other; drop one")


def _sample(tasks: list[str], max_tasks: int | None, seed: int) -> list[str]:
    """At most ``max_tasks`` of ``tasks``, a random sample drawn with ``seed``."""
    if max_tasks is None or len(tasks) <= max_tasks:
        return tasks
    import random

    return random.Random(seed).sample(tasks, max_tasks)


@dataclass(frozen=True)
class _LMs:
    """The LM that runs the program, the judge's and the reflection LM's (None: the first one's)."""

    lm: NamedLM
    judge: NamedLM | None
    reflection: NamedLM | None

    @classmethod
    def make(
        cls,
        model: str | None,
        api_base: str | None,
        max_tokens: int | None,
        judge_model: str | None,
        reflection_model: str | None,
    ) -> _LMs:
        from ..lms.chooser import make_lm

        # Optimizers evaluate the same prompts many times: DSPy's request cache saves those calls here.
        return cls(
            make_lm(model, api_base=api_base, max_tokens=max_tokens, cache=True),
            make_lm(judge_model, cache=True) if judge_model else None,  # $HEGELION_API_BASE applies, --api-base not
            make_lm(reflection_model, cache=True) if reflection_model else None,
        )


@dataclass(frozen=True)
class _Plan:
    """What the optimizer does, from the flags."""

    optimizer: OptimizerName
    program: Path | None
    mode: Mode
    iterations: int
    use_judge: bool
    settings: OptimizerSettings


def _compile(
    train: Sequence[object], dev: Sequence[object], plan: _Plan, lms: _LMs
) -> tuple[dict[str, object], Dialectic]:
    """Run the optimizer on ``train`` (scored on ``dev``): what to save with the program, and the program."""
    from ..collect.optimize import optimize_program

    # DSPy's optimizers print progress to stdout; keep stdout for our summary.
    with contextlib.redirect_stdout(sys.stderr):
        result = optimize_program(
            train,
            devset=dev,
            optimizer=plan.optimizer,
            program=plan.program,
            mode=plan.mode,
            iterations=plan.iterations,
            lm=lms.lm,
            judge_lm=lms.judge,
            reflection_lm=lms.reflection,
            use_judge=plan.use_judge,
            settings=plan.settings,
        )
    info: dict[str, object] = {
        **result.info(),
        "model": str(lms.lm.model),
        "judge_model": str((lms.judge or lms.lm).model) if plan.use_judge else None,
        "reflection_model": str((lms.reflection or lms.lm).model) if plan.optimizer != "bootstrap" else None,
        "mode": plan.mode,
        "iterations": plan.iterations,
    }
    return info, result.program


def _read_tasks(log_file: Path | None, prompts_file: Path | None, mode: Mode, skip_invalid: bool) -> list[str]:
    from ..collect.optimize import tasks_from_log, tasks_from_prompts
    from ..errors import ConfigError

    if prompts_file is not None:
        return tasks_from_prompts(prompts_file)
    path = log_file or default_log_path()
    if log_file is None and not path.exists():
        raise click.UsageError(f"no trace log at {str(path)!r} yet; give --log FILE or --prompts FILE")
    skipped = 0

    def count(_: InvalidTraceError) -> None:
        nonlocal skipped
        skipped += 1

    tasks = tasks_from_log(path, mode=mode, skip_invalid=skip_invalid, on_invalid=count)
    if skipped:
        click.echo(f"{prog()}: skipped {skipped} invalid lines of {path}", err=True)
    if not tasks:
        raise ConfigError(f"{path}: no ok {mode} traces to take tasks from; collect some with hegelion-agent first")
    return tasks


def _summary(path: Path, info: dict[str, object]) -> str:
    scores = ""
    if info["baseline"] is not None and info["score"] is not None:
        scores = f"; dev score {info['baseline']:.2f} -> {info['score']:.2f}"
    demos = info["demos"]
    assert isinstance(demos, dict)
    changed = info["instructions_changed"]
    assert isinstance(changed, list)
    parts = [f"demos {' '.join(f'{k}={v}' for k, v in demos.items())}"]
    parts.append(f"new instructions for {', '.join(changed)}" if changed else "instructions unchanged")
    return (
        f"saved {path}: {info['optimizer']} on {info['train_size']} tasks in {info['seconds']:.1f}s{scores}; "
        + "; ".join(parts)
    )


def _one_server(api_base: tuple[str, ...]) -> str | None:
    bases = RunSpec.of(api_base=api_base).api_base
    if len(bases) > 1:
        raise click.UsageError("--api-base: the optimizer calls one server; give one URL")
    return bases[0] if bases else None


def main(argv: list[str] | None = None) -> None:
    run(optimize, "hegelion-optimize", argv)


if __name__ == "__main__":
    main()
