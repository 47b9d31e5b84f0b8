"""Optimizing the Dialectic: a trainset from data people already have, a DSPy optimizer, a saved program.

``tasks_from_log`` / ``tasks_from_prompts`` collect tasks, ``split_examples`` splits them into train/dev
``dspy.Example(task=...)``, ``optimize_program`` runs BootstrapFewShot, MIPROv2 or GEPA with the judge metric
(``judge.DialecticMetric``) and ``save_program`` writes the compiled program as JSON, which
``hegelion-agent --program FILE``, ``RunContext.build(program=FILE)`` and the MCP server (``HEGELION_PROGRAM``) load.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import dspy

from ..collect.batch import read_prompts
from ..collect.judge import DialecticJudge
from ..collect.metric import DialecticMetric
from ..errors import ConfigError, InvalidTraceError, LMError
from ..lms.chooser import adapter_for
from ..program import Dialectic, program_or_new
from ..store import normalize_task, read_records
from ..types import JSONObject, Mode

log = logging.getLogger("hegelion_dspy.collect.optimize")

OptimizerName = Literal["bootstrap", "mipro", "gepa"]
OPTIMIZERS: tuple[OptimizerName, ...] = ("bootstrap", "mipro", "gepa")
BUDGETS = ("light", "medium", "heavy")


# -- trainsets -----------------------------------------------------------------------------------------------------


def _unique(tasks: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for task in tasks:
        key = normalize_task(task)
        if key and key not in seen:
            seen.add(key)
            out.append(task.strip())
    return out


def tasks_from_log(
    path: str | Path,
    *,
    mode: Mode | None = None,
    skip_invalid: bool = False,
    on_invalid: Callable[[InvalidTraceError], None] | None = None,
) -> list[str]:
    """The unique tasks of the ``ok`` traces in a trace log (in ``mode``, when given), first seen first.

    Streams the log. An invalid line raises InvalidTraceError unless ``skip_invalid`` (then ``on_invalid`` hears it).
    """
    records = read_records(path, skip_invalid=skip_invalid, on_invalid=on_invalid)
    return _unique(r.task for r in records if r.ok and (mode is None or r.mode == mode))


def tasks_from_prompts(path: str | Path) -> list[str]:
    """The unique prompts of a prompts file (one a line, or JSONL with a ``prompt`` field)."""
    return _unique(read_prompts(path))


def to_examples(tasks: Iterable[str | dspy.Example]) -> list[dspy.Example]:
    """Tasks as ``dspy.Example(task=...).with_inputs("task")`` (examples pass through)."""
    return [t if isinstance(t, dspy.Example) else dspy.Example(task=t).with_inputs("task") for t in tasks]


def split_examples(
    tasks: Sequence[str | dspy.Example], dev_fraction: float = 0.2, seed: int = 0
) -> tuple[list[dspy.Example], list[dspy.Example]]:
    """Shuffle (with ``seed``) and split into (train, dev). With ``dev_fraction`` > 0 and two or more tasks the dev
    set gets at least one example and the trainset keeps at least one."""
    if not 0.0 <= dev_fraction < 1.0:
        raise ConfigError(f"dev_fraction must be at least 0 and below 1, got {dev_fraction!r}")
    examples = to_examples(tasks)
    if not examples:
        raise ConfigError("no tasks to optimize on; give a trace log with ok traces or a prompts file")
    random.Random(seed).shuffle(examples)
    n_dev = 0
    if dev_fraction > 0 and len(examples) >= 2:
        n_dev = min(max(round(len(examples) * dev_fraction), 1), len(examples) - 1)
    return examples[n_dev:], examples[:n_dev]


# -- running an optimizer ------------------------------------------------------------------------------------------


@dataclass
class OptimizeResult:
    """What an optimizer run produced. Scores are the metric's mean on the dev set (None when not evaluated)."""

    program: Dialectic
    optimizer: OptimizerName
    train_size: int
    dev_size: int
    baseline: float | None = None
    score: float | None = None
    seconds: float = 0.0
    demos: dict[str, int] = field(default_factory=dict)
    instructions_changed: list[str] = field(default_factory=list)

    def info(self) -> JSONObject:
        """A JSON-ready summary (saved inside the program file by ``save_program``)."""
        return {
            "optimizer": self.optimizer,
            "train_size": self.train_size,
            "dev_size": self.dev_size,
            "baseline": self.baseline,
            "score": self.score,
            "seconds": round(self.seconds, 3),
            "demos": dict(self.demos),
            "instructions_changed": list(self.instructions_changed),
        }


@dataclass(frozen=True)
class OptimizerSettings:
    """How hard and how an optimizer searches (each setting goes to the optimizers that have it).

    ``max_demos``: demos per step (bootstrap, mipro); ``min_score``: the metric score a run needs to become a demo;
    ``budget``: MIPROv2's / GEPA's ``auto`` setting, replaced by an exact ``max_metric_calls`` (GEPA) or
    ``num_candidates`` (MIPROv2, also sets its trials); ``num_threads``: runs at once; ``options``: passed to the
    optimizer's constructor as they are.
    """

    max_demos: int = 2
    min_score: float = 0.5
    budget: str | None = "light"
    max_metric_calls: int | None = None
    num_candidates: int | None = None
    num_threads: int = 1
    seed: int = 0
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.budget is not None and self.budget not in BUDGETS:
            raise ConfigError(f"unknown budget {self.budget!r}; use one of {', '.join(BUDGETS)}")


def make_optimizer(
    name: OptimizerName,
    metric: Callable[..., object],
    *,
    lm: dspy.BaseLM,
    reflection_lm: dspy.BaseLM | None = None,
    settings: OptimizerSettings | None = None,
) -> dspy.teleprompt.Teleprompter:
    """The DSPy teleprompter ``name`` configured for the Dialectic (no labelled demos: the tasks carry no answers)."""
    settings = settings or OptimizerSettings()
    extra = dict(settings.options)
    max_demos, min_score, budget = settings.max_demos, settings.min_score, settings.budget
    num_candidates, num_threads, seed = settings.num_candidates, settings.num_threads, settings.seed
    if name == "bootstrap":
        return dspy.BootstrapFewShot(
            metric=metric,
            metric_threshold=min_score,
            max_bootstrapped_demos=max_demos,
            max_labeled_demos=0,
            **extra,
        )
    if name == "mipro":
        try:
            import optuna  # noqa: F401  (MIPROv2 imports it lazily, after minutes of work)
        except ImportError:
            raise ConfigError(
                "the 'mipro' optimizer needs optuna; install it with: pip install 'hegelion-dspy[optimize]' "
                "(or pick --optimizer bootstrap or gepa)"
            ) from None
        auto = None if num_candidates is not None else budget
        return dspy.MIPROv2(
            metric=metric,
            prompt_model=reflection_lm or lm,
            task_model=lm,
            auto=auto,
            num_candidates=num_candidates,
            max_bootstrapped_demos=max_demos,
            max_labeled_demos=0,
            metric_threshold=min_score,
            num_threads=num_threads,
            seed=seed,
            **extra,
        )
    if name == "gepa":
        return dspy.GEPA(
            metric=metric,
            auto=None if settings.max_metric_calls is not None else budget,
            max_metric_calls=settings.max_metric_calls,
            reflection_lm=reflection_lm or lm,
            num_threads=num_threads,
            seed=seed,
            **extra,
        )
    raise ConfigError(f"unknown optimizer {name!r}; use one of {', '.join(OPTIMIZERS)}")


def evaluate_program(
    program: Dialectic,
    devset: Sequence[dspy.Example],
    metric: Callable[..., object],
    *,
    lm: dspy.BaseLM,
    adapter: dspy.Adapter | None = None,
    num_threads: int = 1,
) -> float:
    """The metric's mean over ``devset`` (0..1); an example whose run or judgement fails counts 0."""
    if not devset:
        raise ConfigError("the dev set is empty; nothing to evaluate")
    evaluate = dspy.Evaluate(
        devset=list(devset),
        metric=metric,
        num_threads=num_threads,
        display_progress=False,
        max_errors=len(devset) * 10,
        failure_score=0.0,
    )
    with dspy.context(lm=lm, adapter=adapter or adapter_for(lm)):
        result = evaluate(program)
    scores = [float(score) for _, _, score in result.results]
    return round(sum(scores) / len(scores), 6)


def _compile(
    teleprompter: dspy.teleprompt.Teleprompter,
    name: OptimizerName,
    student: Dialectic,
    trainset: list[dspy.Example],
    devset: list[dspy.Example],
    *,
    num_candidates: int | None,
) -> Dialectic:
    if name == "bootstrap":
        compiled: Dialectic = teleprompter.compile(student, trainset=trainset)
    elif name == "gepa":
        compiled = teleprompter.compile(student, trainset=trainset, valset=devset or None)
    else:
        valset = devset or None
        size = len(devset) if devset else max(1, int(len(trainset) * 0.8))
        extra: dict[str, bool | int] = {"minibatch": size > 35, "minibatch_size": min(35, size)}
        if num_candidates is not None:
            extra["num_trials"] = max(2, num_candidates)
        compiled = teleprompter.compile(student, trainset=trainset, valset=valset, **extra)
    return compiled


def optimize_program(
    trainset: Sequence[str | dspy.Example],
    *,
    devset: Sequence[str | dspy.Example] = (),
    optimizer: OptimizerName = "bootstrap",
    program: Dialectic | str | Path | None = None,
    mode: Mode = "general",
    iterations: int = 1,
    lm: dspy.BaseLM,
    judge_lm: dspy.BaseLM | None = None,
    reflection_lm: dspy.BaseLM | None = None,
    metric: Callable[..., object] | None = None,
    use_judge: bool = True,
    evaluate: bool = True,
    settings: OptimizerSettings | None = None,
) -> OptimizeResult:
    """Compile a Dialectic with ``optimizer`` on ``trainset`` and return it with its dev scores before and after.

    ``program`` is the starting point (a Dialectic or a saved file; default a fresh ``Dialectic(mode, iterations)``).
    The metric is ``DialecticMetric`` with the LM judge on ``judge_lm`` (default: ``lm``) unless ``use_judge`` is
    False (cheap checks only) or ``metric`` is given. MIPROv2 and GEPA write instructions with ``reflection_lm``
    (default: ``lm``). With ``evaluate`` and a dev set, both the starting and the compiled program are scored on it.
    ``settings`` (``OptimizerSettings``) say how hard the optimizer searches.
    """
    settings = settings or OptimizerSettings()
    num_threads = settings.num_threads
    train, dev = _checked_sets(optimizer, trainset, devset)
    student = program_or_new(program, mode=mode, iterations=iterations)
    if metric is None:
        metric = DialecticMetric(lm=judge_lm, use_lm=use_judge, adapter=adapter_for(judge_lm) if judge_lm else None)
    teleprompter = make_optimizer(optimizer, metric, lm=lm, reflection_lm=reflection_lm, settings=settings)
    adapter = adapter_for(lm)
    before = {name: p.signature.instructions for name, p in student.named_predictors()}
    started = time.perf_counter()
    baseline = None
    if evaluate and dev:
        baseline = evaluate_program(student, dev, metric, lm=lm, adapter=adapter, num_threads=num_threads)
        log.info("dev score before optimizing: %.3f on %d tasks", baseline, len(dev))
    log.info("running %s on %d training tasks with %s", optimizer, len(train), lm.model)
    with dspy.context(lm=lm, adapter=adapter):
        compiled = _compile(teleprompter, optimizer, student, train, dev, num_candidates=settings.num_candidates)
    score = None
    if evaluate and dev:
        score = evaluate_program(compiled, dev, metric, lm=lm, adapter=adapter, num_threads=num_threads)
        log.info("dev score after optimizing: %.3f", score)
    _check_judge(getattr(metric, "judge", None))
    return OptimizeResult(
        program=compiled,
        optimizer=optimizer,
        train_size=len(train),
        dev_size=len(dev),
        baseline=baseline,
        score=score,
        seconds=time.perf_counter() - started,
        demos={name: len(p.demos) for name, p in compiled.named_predictors()},
        instructions_changed=_instructions_changed(before, compiled),
    )


def _checked_sets(
    optimizer: OptimizerName, trainset: Sequence[str | dspy.Example], devset: Sequence[str | dspy.Example]
) -> tuple[list[dspy.Example], list[dspy.Example]]:
    """The train and dev examples, or ConfigError for an unknown optimizer or a trainset it cannot run on."""
    if optimizer not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {optimizer!r}; use one of {', '.join(OPTIMIZERS)}")
    train, dev = to_examples(trainset), to_examples(devset)
    if not train:
        raise ConfigError("the trainset is empty; give a trace log with ok traces or a prompts file")
    if optimizer == "mipro" and not dev and len(train) < 2:
        raise ConfigError("MIPROv2 needs at least 2 training tasks (or a dev set)")
    return train, dev


def _instructions_changed(before: Mapping[str, str], compiled: Dialectic) -> list[str]:
    """The predictors whose instructions the optimizer rewrote."""
    return [name for name, p in compiled.named_predictors() if p.signature.instructions != before.get(name)]


def _check_judge(judge: object) -> None:
    if not isinstance(judge, DialecticJudge):
        return  # a metric of the caller's, or the cheap checks: no LM judge to check
    # Optimizers count a failed metric call as a failed example and go on; a judge that never answered would leave
    # a program tuned on nothing, so say so instead of saving it quietly.
    if judge.lm_calls and judge.lm_failures == judge.lm_calls:
        raise LMError(
            f"every judge call failed ({judge.lm_failures} of {judge.lm_calls}), so nothing was optimized; first "
            f"error: {judge.first_error}. Pick a judge LM that follows the prompt format (--judge-model) or score "
            "with the cheap checks only (--no-judge / use_judge=False)"
        )
    if judge.lm_failures:
        log.warning("%d of %d judge calls failed; those runs counted as score 0", judge.lm_failures, judge.lm_calls)
