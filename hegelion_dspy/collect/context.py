"""The run context: the LM, the adapter and the program a run needs besides its task, built once and shared, from a
``RunSpec`` (the run's options as plain values, ``spec.py``) and any live objects the caller has."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..store import Provenance
from ..types import MAX_TEXT_CHARS, ModelIdentity
from .spec import RunRecipe, RunSpec

__all__ = ["RunContext", "RunRecipe", "RunSpec", "check_task", "model_of"]

if TYPE_CHECKING:
    import dspy

    from ..lms.manners import Manners
    from ..program import Dialectic
    from .judge import TraceJudge


@dataclass
class RunContext:
    """Everything a run needs besides the task: the LM, the adapter and the program (built once, shared)."""

    lm: dspy.BaseLM
    program: Dialectic
    adapter: dspy.Adapter
    program_path: str | None = None
    judge: TraceJudge | None = None  # scores ok traces (record.score) when set
    program_digest: str | None = None  # which program file wrote a trace, whatever its path (resume keys on it)
    identity: ModelIdentity | None = None  # which model file answers, when known (lms.identity), asked once here

    @property
    def demo(self) -> bool:
        """Its traces are a demo model's: the route says so (embedded, scripted) or the model file does (the shipped
        file behind gguf:PATH or a server, a model trained from a demo model)."""
        return bool(getattr(self.lm, "demo", False)) or (self.identity is not None and self.identity.demo)

    def provenance(self) -> Provenance:
        """What makes a trace of this context count as done for resume: mode, model and program."""
        return Provenance(mode=self.program.mode, model=model_of(self.lm), program=self.program_digest)

    @classmethod
    def build(
        cls,
        spec: RunSpec | None = None,
        *,
        lm: dspy.BaseLM | None = None,
        program: Dialectic | str | Path | None = None,
        adapter: dspy.Adapter | None = None,
        judge: bool | dspy.BaseLM | TraceJudge | None = None,
        manners: Manners | None = None,
        **options: Any,
    ) -> RunContext:
        """The context of ``spec`` (a ``RunSpec``) with ``options`` (its fields: ``model``, ``api_base``, ``mode``,
        ``iterations``, ``max_tokens``, ``parallel``, ``rpm``...) applied; ConfigError names a bad one.

        The keyword arguments here take live objects: ``lm`` (else ``spec.lm()``, else ``make_lm(model, api_base=...,
        max_tokens=..., parallel=...)``; several base URLs give one LM each, called in turn), a loaded ``program``,
        an ``adapter``, ``judge`` (True scores each ok trace with the run's own LM, an LM scores with that LM, a
        TraceJudge as is; default: ``spec.judge_model`` or ``spec.judge``) and ``manners`` (default: the spec's
        rpm, tpm and max_retries), which wrap the LM and a judge's own LM (``lms.manners.PoliteLM``: rate limits,
        retries on 429/5xx, cost per call).
        """
        from ..lms.chooser import adapter_for
        from ..lms.identity import identify
        from ..lms.manners import PoliteLM

        spec = RunSpec.of(spec, **options)
        if manners is None and spec.model_fields_set & {"rpm", "tpm", "max_retries", "timeout", "manners"}:
            manners = spec.call_manners()  # else None: an LM given with manners of its own (a PoliteLM) keeps them
        program, program_path, digest = _program_of(spec, program)
        lm = _polite_lm(spec, lm, manners)
        adapter = adapter or adapter_for(lm)
        return cls(
            lm=lm,
            program=program,
            adapter=adapter,
            program_path=program_path,
            judge=_trace_judge(_polite_judge(spec, judge, manners), lm),
            program_digest=digest,
            identity=identify(lm.inners if isinstance(lm, PoliteLM) else [lm]),
        )


def _program_of(spec: RunSpec, program: Dialectic | str | Path | None) -> tuple[Dialectic, str | None, str | None]:
    """The run's program (the one given, else the spec's, else a fresh Dialectic), its file and that file's digest."""
    from ..program import program_digest, program_or_new

    program = program if program is not None else spec.program
    path = str(program) if isinstance(program, (str, Path)) else None
    loaded = program_or_new(program, mode=spec.mode, iterations=spec.iterations or 1)  # a missing file: its error
    return loaded, path, program_digest(path) if path is not None else None


def _polite_lm(spec: RunSpec, lm: dspy.BaseLM | None, manners: Manners | None) -> dspy.BaseLM:
    """The LM given (else the spec's, else one made from its model and each base URL), wrapped in ``manners``."""
    from ..lms.chooser import make_lm
    from ..lms.manners import polite

    if lm is None and spec.lm is not None:
        lm = spec.lm()
    if lm is not None:
        return polite(lm, manners)
    lms = [
        make_lm(spec.model, api_base=base, max_tokens=spec.max_tokens, parallel=spec.parallel)
        for base in spec.api_base or [None]
    ]
    return polite(lms, manners)


def _polite_judge(
    spec: RunSpec, judge: bool | dspy.BaseLM | TraceJudge | None, manners: Manners | None
) -> bool | dspy.BaseLM | TraceJudge:
    """The judge asked for (default: ``spec.judge_model``'s LM or ``spec.judge``), a judge's own LM in ``manners``."""
    from ..lms.chooser import make_lm
    from ..lms.manners import polite
    from .judge import TraceJudge

    if judge is None:
        judge = make_lm(spec.judge_model) if spec.judge_model else spec.judge
    if judge is not True and judge is not False and not isinstance(judge, TraceJudge):
        judge = polite(judge, manners)
    return judge


def model_of(lm: dspy.BaseLM) -> str:
    from ..lms.manners import unwrapped

    return str(unwrapped(lm).model)


def _trace_judge(judge: bool | dspy.BaseLM | TraceJudge, lm: dspy.BaseLM) -> TraceJudge | None:
    if judge is False or judge is None:
        return None
    from ..lms.chooser import adapter_for
    from .judge import TraceJudge

    if isinstance(judge, TraceJudge):
        return judge
    judge_lm = lm if judge is True else judge
    return TraceJudge(lm=judge_lm, adapter=adapter_for(judge_lm))


def check_task(task: object) -> str:
    if not isinstance(task, str) or not task.strip():
        raise ConfigError(f"the task must be a non-empty string, got {task!r}")
    if len(task) > MAX_TEXT_CHARS:
        raise ConfigError(f"the task is {len(task):,} characters; the limit is {MAX_TEXT_CHARS:,}")
    return task.strip()
