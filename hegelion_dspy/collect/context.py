"""The run context: the LM, the adapter and the program a run needs besides its task, built once and shared; and the
picklable recipe a Ray worker builds its own from."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..store import Provenance
from ..types import MAX_TEXT_CHARS, Mode, ModelIdentity

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
        *,
        lm: dspy.BaseLM | None = None,
        model: str | None = None,
        api_base: str | Sequence[str] | None = None,
        mode: Mode = "general",
        iterations: int = 1,
        program: Dialectic | str | Path | None = None,
        adapter: dspy.Adapter | None = None,
        judge: bool | dspy.BaseLM | TraceJudge = False,
        manners: Manners | None = None,
        max_tokens: int | None = None,
        parallel: int | None = None,
    ) -> RunContext:
        """``judge``: True scores each ok trace with the run's own LM, an LM scores with that LM, a TraceJudge as is.

        The LM (``lm``, else ``make_lm(model, api_base=..., max_tokens=..., parallel=...)``; several base URLs give one
        LM each, called in turn) is wrapped in ``manners`` (``lms.manners.PoliteLM``: rate limits, retries on 429/5xx,
        cost per call), the defaults when none are given; so is a judge's own LM. ``max_tokens``: new tokens per step;
        ``parallel``: calls at once (a local model's slots); both only for an LM built here.
        """
        from ..lms.chooser import adapter_for, make_lm
        from ..lms.identity import identify
        from ..lms.manners import PoliteLM, polite
        from ..program import Dialectic, load_program, program_digest
        from .judge import TraceJudge

        program_path = digest = None
        if isinstance(program, (str, Path)):
            program_path = str(program)
            program = load_program(program)
            digest = program_digest(program_path)
        if program is None:
            program = Dialectic(mode=mode, iterations=iterations)
        if lm is None:
            bases = [api_base] if isinstance(api_base, str) or api_base is None else list(api_base)
            lms = [make_lm(model, api_base=base, max_tokens=max_tokens, parallel=parallel) for base in bases or [None]]
            lm = polite(lms, manners)
        else:
            lm = polite(lm, manners)
        adapter = adapter or adapter_for(lm)
        if judge is not True and judge is not False and not isinstance(judge, TraceJudge):
            judge = polite(judge, manners)
        return cls(
            lm=lm,
            program=program,
            adapter=adapter,
            program_path=program_path,
            judge=_trace_judge(judge, lm),
            program_digest=digest,
            identity=identify(lm.inners if isinstance(lm, PoliteLM) else [lm]),
        )


@dataclass(frozen=True)
class RunRecipe:
    """How to build a RunContext, as plain values that pickle: a Ray worker builds its own from it
    (``RunContext.build`` with these arguments). ``judge`` is True, False or the judge's model string; ``lm``, a
    picklable function returning the LM, replaces ``model``/``api_base`` (tests, custom LMs)."""

    model: str | None = None
    api_base: str | tuple[str, ...] | None = None
    mode: Mode = "general"
    iterations: int = 1
    program: str | None = None
    judge: bool | str = False
    manners: Manners | None = None
    lm: Callable[[], dspy.BaseLM] | None = None
    max_tokens: int | None = None  # new tokens per step (make_lm's default when None)
    parallel: int | None = None  # calls at once: a local model loads with at least this many slots

    def build(self, *, manners: Manners | None = None) -> RunContext:
        """The context; ``manners`` replaces the recipe's (a Ray worker's share of the rate limits)."""
        from ..lms.chooser import make_lm

        judge: bool | dspy.BaseLM = make_lm(self.judge) if isinstance(self.judge, str) else self.judge
        return RunContext.build(
            lm=self.lm() if self.lm is not None else None,
            model=self.model,
            api_base=self.api_base,
            mode=self.mode,
            iterations=self.iterations,
            program=self.program,
            judge=judge,
            manners=manners or self.manners,
            max_tokens=self.max_tokens,
            parallel=self.parallel,
        )


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


def check_task(task: Any) -> str:
    if not isinstance(task, str) or not task.strip():
        raise ConfigError(f"the task must be a non-empty string, got {task!r}")
    if len(task) > MAX_TEXT_CHARS:
        raise ConfigError(f"the task is {len(task):,} characters; the limit is {MAX_TEXT_CHARS:,}")
    return task.strip()
