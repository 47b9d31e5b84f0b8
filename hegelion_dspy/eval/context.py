"""What every suite of one evaluation shares: the models M and M0, their log-probability scorers and LMs (each built
once, on first use), the seed and sample size, the held-out prompt set, and the count of refused items."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ..errors import EvalError
from .heldout import normalise_prompt
from .models import EvalModel

if TYPE_CHECKING:
    import dspy

    from .logprob import Scorer

Side = Literal["m", "m0"]
M: Side = "m"  # the two sides of every result record
M0: Side = "m0"


@dataclass
class EvalContext:
    """One evaluation's shared state. ``base`` is None for a single-model evaluation. ``trained_on``: normalised
    prompts of the training data; items asking one of them are refused. ``data``: the export folder (--data)."""

    model: EvalModel
    base: EvalModel | None = None
    n: int | None = None
    seed: int = 0
    data: Path | None = None
    judge_model: str | None = None
    api_base: str | None = None
    max_tokens: int | None = None
    concurrency: int = 4
    trained_on: set[str] = field(default_factory=set)
    refused: dict[str, int] = field(default_factory=dict)
    _scorers: dict[str, Scorer] = field(default_factory=dict, repr=False)
    _lms: dict[str, dspy.BaseLM] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def sides(self) -> list[tuple[Side, EvalModel]]:
        """(key, model) of M and, when there is a base, M0."""
        return [(M, self.model)] + ([(M0, self.base)] if self.base is not None else [])

    def held_out(self, suite: str, prompt: str) -> bool:
        """False (and the refusal counted) when ``prompt`` is one the model was trained on."""
        if normalise_prompt(prompt) in self.trained_on:
            with self._lock:
                self.refused[suite] = self.refused.get(suite, 0) + 1
            return False
        return True

    def scorer(self, side: str, suite: str) -> Scorer:
        """The log-probability scorer of M or M0 (loaded once; one object when both are the same model); M and M0
        with different tokenizers are refused."""
        from .logprob import Scorer, check_same_tokenizer

        with self._lock:
            if side in self._scorers:
                return self._scorers[side]
            model = self.model if side == M else self.base
            if model is None:
                raise EvalError(f"the {suite} suite asked for the base model, but no --base was given")
            other = self._scorers.get(M0 if side == M else M)
            other_model = self.base if side == M else self.model
            if other is not None and other_model is not None and other_model.spec == model.spec:
                self._scorers[side] = other
                return other
            scorer = Scorer.load(model.need_weights(suite), name=model.spec)
            if other is not None:
                check_same_tokenizer(scorer, other)
            self._scorers[side] = scorer
            return scorer

    def load_scorers(self, suite: str) -> None:
        """Load every side's scorer now (so a tokenizer mismatch stops the run before any result is written)."""
        for side, _ in self.sides():
            self.scorer(side, suite)

    def lm(self, side: str, suite: str) -> dspy.BaseLM:
        """The generation LM of M or M0 through the project's chooser (embedded, gguf:PATH, hosted, --api-base)."""
        from ..lms.chooser import make_lm

        with self._lock:
            if side not in self._lms:
                model = self.model if side == M else self.base
                if side == "judge":
                    name = self.judge_model
                    if name is None:
                        raise EvalError(f"the {suite} suite needs a judge: pass --judge-model MODEL")
                else:
                    if model is None:
                        raise EvalError(f"the {suite} suite asked for the base model, but no --base was given")
                    name = model.need_generation(suite)
                self._lms[side] = make_lm(
                    name, api_base=self.api_base, max_tokens=self.max_tokens, parallel=self.concurrency
                )
            return self._lms[side]


def chat_text(lm: dspy.BaseLM, prompt: str, *, max_tokens: int | None = None, system: str | None = None) -> str:
    """One plain chat turn through a DSPy LM: the reply's text."""
    kwargs = {"max_tokens": max_tokens} if max_tokens else {}
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    outputs = lm(messages=messages, **kwargs)
    first = outputs[0] if outputs else ""
    if isinstance(first, dict):
        first = first.get("text") or ""
    return str(first)
