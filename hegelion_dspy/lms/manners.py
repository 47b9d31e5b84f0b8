"""Good manners with hosted APIs, kept by one wrapper around any LM: rate limits shared by every concurrent call,
retries with backoff on rate limits and server errors, and what each call cost (from LiteLLM's price map).

``PoliteLM`` wraps an LM (or several LMs of one model behind different base URLs, taken in turn) and is itself a
``dspy.BaseLM``, so programs, adapters and the judge use it as they use the LM it wraps. Per call it:

1. waits its turn: a pause a provider asked for (a 429, with or without ``Retry-After``) and the ``rpm`` / ``tpm``
   limits, which are token buckets shared by every thread and task using the wrapper. A pause moves the buckets
   themselves: calls already waiting for a slot when it arrives take a new one after it, so nobody calls during it;
2. calls the LM it wraps (whose own retries are turned off: they sleep without jitter and without the shared pause),
   a hosted one with a time limit per call (``Manners.timeout``, ``hosted.with_timeout``);
3. on a 429, a 5xx, a timeout, a reset connection or a reply cut mid-body, retries with exponential backoff and
   jitter, counted from when the failed attempt was sent (a call that waited out its timeout is retried at once), or
   after exactly the ``Retry-After`` the provider sent (plus up to 10% jitter), at most ``max_retries`` times; then
   the error propagates and the dialectic step fails (a ``failed`` trace, never data). With several base URLs each
   retry goes to the next one;
4. prices what the call used (prompt and completion tokens at the model's prices in LiteLLM's price map) and reports
   it to the step being recorded (``Usage.cost_usd``) and to every active ``CallMeter`` (a run's cost, a batch's
   spend and its ``max_cost``).

Time comes from a ``Clock`` so tests run the limiter and the backoff on a fake clock and count the waits. The rules
themselves (settings, limits, retries) are in ``lms.pacing``.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import random
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import dspy
from dspy.utils.usage_tracker import UsageTracker

from ..errors import ConfigError
from .base import current_step
from .dspy_private import adapter_message_call
from .hosted import with_timeout
from .metering import CallMeter, active_meters, call_cost, release_budget, reserve_budget
from .pacing import (  # the rules this wrapper keeps; imported from here by callers and tests
    Clock,
    Manners,
    RateLimiter,
    SystemClock,
    backoff_delay,
    call_worst_case,
    estimate_tokens,
    retry_after,
    retry_reason,
)

__all__ = [
    "Clock",
    "Manners",
    "PoliteLM",
    "RateLimiter",
    "SystemClock",
    "backoff_delay",
    "estimate_tokens",
    "polite",
    "retry_after",
    "retry_reason",
    "unwrapped",
]

BUDGET_POLL_SECONDS = 0.05  # how often a call that does not fit the budget yet asks again

# -- the wrapper ------------------------------------------------------------------------------------------------------


class PoliteLM(dspy.BaseLM):
    """An LM with manners (see the module docstring). ``lms``: one LM, or several of the same model (one per base
    URL), called in turn. Attributes it does not define (``demo``, ``preferred_adapter``...) are the first LM's."""

    def __init__(
        self,
        lms: dspy.BaseLM | Sequence[dspy.BaseLM],
        manners: Manners | None = None,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ):
        inners = [lms] if isinstance(lms, dspy.BaseLM) else list(lms)
        if not inners:
            raise ConfigError("PoliteLM needs at least one LM")
        if len({lm.model for lm in inners}) > 1:
            raise ConfigError(f"the LMs behind one PoliteLM must serve one model, got {[lm.model for lm in inners]}")
        # Our retries replace the LM's own (DSPy's sleep without jitter and without the shared pause).
        self.manners = manners or Manners()
        inners = [lm.copy(num_retries=0) if getattr(lm, "num_retries", 0) else lm for lm in inners]
        self.inners = [with_timeout(lm, self.manners.timeout) for lm in inners]
        first = self.inners[0]
        super().__init__(first.model, first.model_type, cache=False, num_retries=0)
        self.kwargs = first.kwargs
        self.clock: Clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self._turns = itertools.count()
        self._requests = self._limiter(self.manners.rpm)
        self._tokens = self._limiter(self.manners.tpm)
        self._pause_until = -math.inf  # a provider's Retry-After, for every call
        self._pauses = 0  # pauses so far: a call that reserved its slot before the latest one renews it
        self._lock = threading.Lock()

    def _limiter(self, per_minute: float | None) -> RateLimiter | None:
        if per_minute is None:
            return None
        return RateLimiter(per_minute, clock=self.clock, burst_seconds=self.manners.burst_seconds)

    @property
    def inner(self) -> dspy.BaseLM:
        return self.inners[0]

    def __getattr__(self, name: str) -> Any:
        # Only called for names this object lacks; DSPy's private machinery must not see through the wrapper.
        if name.startswith("_") or name == "inners":
            raise AttributeError(name)
        return getattr(self.inners[0], name)

    @property
    def supports_function_calling(self) -> bool:
        return bool(self.inner.supports_function_calling)

    @property
    def supports_reasoning(self) -> bool:
        return bool(self.inner.supports_reasoning)

    @property
    def supports_response_schema(self) -> bool:
        return bool(self.inner.supports_response_schema)

    @property
    def supported_params(self) -> set[str]:
        return set(self.inner.supported_params)

    def copy(self, **kwargs: Any) -> PoliteLM:
        """A copy whose LMs are copied with ``kwargs`` (as ``BaseLM.copy``); limits and pauses stay shared."""
        new: PoliteLM = super().copy()
        new.inners = [lm.copy(**kwargs) for lm in self.inners]
        new.kwargs = new.inners[0].kwargs
        return new

    # -- one call ---------------------------------------------------------------------------------------------------

    def __call__(self, prompt: Any = None, *, messages: Any = None, **kwargs: Any) -> Any:
        call = _Call(self, prompt, messages, kwargs)
        while True:
            while wait := call.before():  # no sleep(0): it costs a thread switch per call
                self.clock.sleep(wait)
                if not call.paused_meanwhile():
                    break
            while wait := call.budget():
                self.clock.sleep(wait)
            try:
                with call.attempt() as lm, adapter_message_call(lm, messages):
                    return lm(prompt, messages=messages, **kwargs)
            except Exception as exc:
                self.clock.sleep(call.failed(exc))

    async def acall(self, prompt: Any = None, *, messages: Any = None, **kwargs: Any) -> Any:
        call = _Call(self, prompt, messages, kwargs)
        while True:
            while wait := call.before():
                await self.clock.asleep(wait)
                if not call.paused_meanwhile():
                    break
            while wait := call.budget():
                await self.clock.asleep(wait)
            try:
                with call.attempt() as lm, adapter_message_call(lm, messages):
                    return await lm.acall(prompt, messages=messages, **kwargs)
            except Exception as exc:
                await self.clock.asleep(call.failed(exc))

    def forward(self, prompt: Any = None, messages: Any = None, **kwargs: Any) -> Any:
        raise NotImplementedError("PoliteLM is called, not forwarded: call the LM (or acall)")

    def _next_lm(self) -> dspy.BaseLM:
        return self.inners[next(self._turns) % len(self.inners)]

    def _wait_before(self, tokens: int) -> float:
        with self._lock:
            paused = max(0.0, self._pause_until - self.clock.now())
        wait = paused
        if self._requests is not None:
            wait = max(wait, self._requests.reserve(1))
        if self._tokens is not None:
            wait = max(wait, self._tokens.reserve(tokens))
        return wait

    def _pause(self, seconds: float) -> None:
        """Nobody calls for ``seconds``: the pause and the rate limits' schedules move together."""
        with self._lock:
            until = self.clock.now() + seconds
            if until <= self._pause_until:
                return
            self._pause_until = until
            self._pauses += 1
        for limiter in (self._requests, self._tokens):
            if limiter is not None:
                limiter.hold(until)


class _Call:
    """One logical call through a PoliteLM: its attempts, their waits, and what they cost. The sync and async entry
    points differ only in how they sleep."""

    def __init__(self, owner: PoliteLM, prompt: Any, messages: Any, kwargs: dict[str, Any]):
        self.owner = owner
        self.tries = 0
        max_tokens = kwargs.get("max_tokens") or owner.kwargs.get("max_tokens")
        self.worst = call_worst_case(owner.model, prompt, messages, max_tokens) if active_meters() else None
        self.held: tuple[CallMeter, ...] = ()  # the budgets this attempt's worst case is reserved on
        self.estimate = estimate_tokens(prompt, messages, max_tokens) if owner._tokens is not None else 0
        self.reserved = 0  # tokens reserved so far (a renewed slot reserves again)
        self.pauses_seen = 0
        self.started = 0.0  # when the latest attempt was sent (the owner's clock)

    def before(self) -> float:
        """Reserve this call's slot; the seconds to wait for it."""
        self.pauses_seen = self.owner._pauses
        self.reserved += self.estimate
        wait = self.owner._wait_before(self.estimate)
        if wait > 0:
            for meter in active_meters():
                meter.add_wait(wait)
        return wait

    def budget(self) -> float:
        """Reserve this call's worst case on the active budgets (``metering.reserve_budget``): 0 once it is, else
        the seconds to wait before asking again. Raises BudgetExhausted when it can never be sent."""
        held = reserve_budget(self.worst)
        if held is None:
            return BUDGET_POLL_SECONDS
        self.held = held
        return 0.0

    def paused_meanwhile(self) -> bool:
        """A provider asked for a pause after this call reserved its slot: the slot is void, take a new one."""
        return self.owner._pauses != self.pauses_seen

    @contextlib.contextmanager
    def attempt(self) -> Iterator[dspy.BaseLM]:
        self.tries += 1
        self.started = self.owner.clock.now()
        lm = self.owner._next_lm()
        held, self.held = self.held, ()
        try:
            with dspy.track_usage() as usage:  # this call's usage, rolled up into the step's tracker on exit
                yield lm
        finally:
            try:
                self._settle(lm, usage)  # the real cost first: the room it frees must not be taken twice
            finally:
                release_budget(held, self.worst)

    def _settle(self, lm: dspy.BaseLM, usage: UsageTracker) -> None:
        totals = list(usage.get_total_tokens().values())
        if not totals:
            return  # nothing came back (refused before any work): no call to count
        prompt_tokens = sum(int(total.get("prompt_tokens") or 0) for total in totals)
        completion_tokens = sum(int(total.get("completion_tokens") or 0) for total in totals)
        if self.owner._tokens is not None:
            self.owner._tokens.settle(self.reserved, prompt_tokens + completion_tokens)
        self.reserved = 0
        usd = call_cost(str(lm.model), prompt_tokens, completion_tokens)
        step = current_step()
        if step is not None:
            step.add_cost(usd)
        for meter in active_meters():
            meter.add_call(usd)

    def failed(self, exc: Exception) -> float:
        """Seconds to wait before the next attempt; re-raises ``exc`` when there is none."""
        owner = self.owner
        reason = retry_reason(exc)
        if reason is None or self.tries > owner.manners.max_retries:
            raise exc
        delay = backoff_delay(owner.manners, self.tries - 1, exc, owner.rng)
        if delay is None:
            raise exc
        if reason == "rate limit":
            owner._pause(delay)  # every call waits for the provider, not only this one
        else:  # backoff spaces the attempts: one that waited out its timeout has waited already
            delay = max(0.0, delay - (owner.clock.now() - self.started))
        for meter in active_meters():
            meter.add_wait(delay, retry=reason)
        return delay


def polite(lm: dspy.BaseLM | Sequence[dspy.BaseLM], manners: Manners | None = None, **options: Any) -> PoliteLM:
    """``lm`` with manners; an LM that already has them keeps its own unless ``manners`` are given."""
    if isinstance(lm, PoliteLM):
        if manners is None or manners == lm.manners:
            return lm
        lm = lm.inners
    return PoliteLM(lm, manners, **options)


def unwrapped(lm: dspy.BaseLM) -> dspy.BaseLM:
    """The LM a PoliteLM wraps (its first), or ``lm`` itself."""
    return lm.inner if isinstance(lm, PoliteLM) else lm
