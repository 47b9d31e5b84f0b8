"""Good manners with hosted APIs, kept by one wrapper around any LM: rate limits shared by every concurrent call,
retries with backoff on rate limits and server errors, and what each call cost (from LiteLLM's price map).

``PoliteLM`` wraps an LM (or several LMs of one model behind different base URLs, taken in turn) and is itself a
``dspy.BaseLM``, so programs, adapters and the judge use it as they use the LM it wraps. Per call it:

1. waits its turn: a pause a provider asked for (429 ``Retry-After``) and the ``rpm`` / ``tpm`` limits, which are
   token buckets shared by every thread and task using the wrapper;
2. calls the LM it wraps (whose own retries are turned off: they sleep without jitter and without the shared pause);
3. on a 429, a 5xx or a timeout, retries with exponential backoff and jitter, or after exactly the ``Retry-After`` the
   provider sent (plus up to 10% jitter), at most ``max_retries`` times; then the error propagates and the dialectic
   step fails (a ``failed`` trace, never data). With several base URLs a connection error moves to the next one;
4. prices what the call used (prompt and completion tokens at the model's prices in LiteLLM's price map) and reports
   it to the step being recorded (``Usage.cost_usd``) and to every active ``CallMeter`` (a run's cost, a batch's
   spend and its ``max_cost``).

Time comes from a ``Clock`` so tests run the limiter and the backoff on a fake clock and count the waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import random
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import dspy
from dspy.utils.exceptions import LMRateLimitError, LMServerError, LMTimeoutError, LMTransportError
from dspy.utils.usage_tracker import UsageTracker

from ..errors import ConfigError
from .base import current_step
from .dspy_private import adapter_message_call
from .metering import active_meters, call_cost

# -- settings ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Manners:
    """How politely every LM call of a run behaves. The defaults retry and price; limits are off unless given.

    ``rpm`` / ``tpm``: requests / tokens per minute allowed to all calls through one wrapper together (a Ray batch
    splits them across its workers: ``share``). ``burst_seconds``: how far ahead of the steady rate calls may run.
    ``max_retries``: retries after the first attempt on a 429, a 5xx or a timeout; the n-th waits about
    ``backoff * 2**n`` seconds (half of it to all of it, at random; at most ``max_backoff``) unless the provider sent
    ``Retry-After``, which is honoured when it is at most ``max_retry_after`` (a longer one fails the call at once).
    """

    rpm: float | None = None
    tpm: float | None = None
    max_retries: int = 5
    backoff: float = 1.0
    max_backoff: float = 60.0
    max_retry_after: float = 300.0
    burst_seconds: float = 1.0

    def __post_init__(self) -> None:
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                unit = "requests" if name == "rpm" else "tokens"
                raise ConfigError(f"{name} must be a positive number ({unit} per minute), got {value!r}")
        if not isinstance(self.max_retries, int) or isinstance(self.max_retries, bool) or self.max_retries < 0:
            raise ConfigError(f"max_retries must be a whole number >= 0, got {self.max_retries!r}")
        for name in ("backoff", "max_backoff", "max_retry_after", "burst_seconds"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"{name} must be a number of seconds >= 0, got {value!r}")

    def share(self, parts: int) -> Manners:
        """These manners for one of ``parts`` workers calling at once: the rate limits divided between them."""
        if parts <= 1:
            return self
        return replace(
            self,
            rpm=None if self.rpm is None else self.rpm / parts,
            tpm=None if self.tpm is None else self.tpm / parts,
        )


# -- time -------------------------------------------------------------------------------------------------------------


class Clock(Protocol):
    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...

    async def asleep(self, seconds: float) -> None: ...


class SystemClock:
    """Real time: ``time.monotonic``, ``time.sleep``, ``asyncio.sleep``."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


# -- rate limits ------------------------------------------------------------------------------------------------------


class RateLimiter:
    """A token bucket of ``per_minute`` units (requests or tokens), as a schedule (GCRA): each caller reserves its
    units and is told how long to wait before using them, so concurrent callers never race for the same capacity.

    Calls may run ``burst_seconds`` ahead of the steady rate; over any window of ``w`` seconds at most
    ``per_minute / 60 * (w + burst_seconds)`` units, plus one caller's own, are let through.
    """

    def __init__(self, per_minute: float, *, clock: Clock, burst_seconds: float = 1.0):
        self.seconds_per_unit = 60.0 / per_minute
        self.burst = burst_seconds
        self.clock = clock
        self._next = -math.inf  # when the units reserved so far are paid off
        self._lock = threading.Lock()

    def reserve(self, units: float = 1.0) -> float:
        """Take ``units`` now; the seconds the caller must wait before using them."""
        with self._lock:
            now = self.clock.now()
            start = max(self._next, now)
            self._next = start + units * self.seconds_per_unit
            return max(0.0, start - now - self.burst)

    def settle(self, reserved: float, used: float) -> None:
        """Correct a reservation once the real amount is known (tokens: an estimate before the call)."""
        with self._lock:
            self._next += (used - reserved) * self.seconds_per_unit


def estimate_tokens(prompt: Any, messages: Any, max_tokens: Any) -> int:
    """Tokens a call may use, before it is made: about 4 characters a prompt token, plus the completion cap (512
    when there is none). The limiter is corrected with the real count afterwards."""
    chars = len(prompt) if isinstance(prompt, str) else 0
    for message in messages or ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            chars += sum(len(str(part.get("text", ""))) for part in content if isinstance(part, dict))
    cap = max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else 512
    return chars // 4 + cap


# -- retries ----------------------------------------------------------------------------------------------------------


def retry_reason(exc: BaseException, *, spread: bool = False) -> str | None:
    """Why a failed call may be tried again ("rate limit", "server error", "timeout", "connection"), or None.

    ``spread``: the wrapper has another base URL to try, so a connection error is worth a retry too.
    """
    status = getattr(exc, "status", None) or getattr(exc, "status_code", None)
    if isinstance(exc, LMRateLimitError) or status == 429:
        return "rate limit"
    if isinstance(exc, LMTimeoutError) or status in (408, 504):
        return "timeout"
    if isinstance(exc, LMServerError) or (isinstance(status, int) and 500 <= status < 600):
        return "server error"
    if spread and isinstance(exc, LMTransportError):
        return "connection"
    return None


def retry_after(exc: BaseException) -> float | None:
    """The pause the provider asked for (``Retry-After``, parsed by DSPy into ``retry_after``), in seconds."""
    value = getattr(exc, "retry_after", None)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0:
        return float(value)
    return None


def backoff_delay(manners: Manners, attempt: int, exc: BaseException, rng: random.Random) -> float | None:
    """Seconds to wait before retry number ``attempt + 1``, or None when the call must fail now."""
    asked = retry_after(exc)
    if asked is not None:
        if asked > manners.max_retry_after:
            return None  # e.g. a daily quota: waiting would stall the batch; fail the prompt, resume later
        return asked + rng.uniform(0.0, asked * 0.1)
    ceiling = min(manners.max_backoff, manners.backoff * 2.0**attempt)
    return rng.uniform(ceiling / 2, ceiling)


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
        self.inners = [lm.copy(num_retries=0) if getattr(lm, "num_retries", 0) else lm for lm in inners]
        first = self.inners[0]
        super().__init__(first.model, first.model_type, cache=False, num_retries=0)
        self.kwargs = first.kwargs
        self.manners = manners or Manners()
        self.clock: Clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self._turns = itertools.count()
        self._requests = self._limiter(self.manners.rpm)
        self._tokens = self._limiter(self.manners.tpm)
        self._pause_until = -math.inf  # a provider's Retry-After, for every call
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
            if wait := call.before():  # no sleep(0): it costs a thread switch per call
                self.clock.sleep(wait)
            try:
                with call.attempt() as lm, adapter_message_call(lm, messages):
                    return lm(prompt, messages=messages, **kwargs)
            except Exception as exc:
                self.clock.sleep(call.failed(exc))

    async def acall(self, prompt: Any = None, *, messages: Any = None, **kwargs: Any) -> Any:
        call = _Call(self, prompt, messages, kwargs)
        while True:
            if wait := call.before():
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
        with self._lock:
            self._pause_until = max(self._pause_until, self.clock.now() + seconds)


class _Call:
    """One logical call through a PoliteLM: its attempts, their waits, and what they cost. The sync and async entry
    points differ only in how they sleep."""

    def __init__(self, owner: PoliteLM, prompt: Any, messages: Any, kwargs: dict[str, Any]):
        self.owner = owner
        self.tries = 0
        max_tokens = kwargs.get("max_tokens") or owner.kwargs.get("max_tokens")
        self.estimate = estimate_tokens(prompt, messages, max_tokens) if owner._tokens is not None else 0

    def before(self) -> float:
        wait = self.owner._wait_before(self.estimate)
        if wait > 0:
            for meter in active_meters():
                meter.add_wait(wait)
        return wait

    @contextlib.contextmanager
    def attempt(self) -> Iterator[dspy.BaseLM]:
        self.tries += 1
        lm = self.owner._next_lm()
        try:
            with dspy.track_usage() as usage:  # this call's usage, rolled up into the step's tracker on exit
                yield lm
        finally:
            self._settle(lm, usage)

    def _settle(self, lm: dspy.BaseLM, usage: UsageTracker) -> None:
        totals = list(usage.get_total_tokens().values())
        if not totals:
            return  # nothing came back (refused before any work): no call to count
        prompt_tokens = sum(int(total.get("prompt_tokens") or 0) for total in totals)
        completion_tokens = sum(int(total.get("completion_tokens") or 0) for total in totals)
        if self.owner._tokens is not None:
            self.owner._tokens.settle(self.estimate, prompt_tokens + completion_tokens)
        usd = call_cost(str(lm.model), prompt_tokens, completion_tokens)
        step = current_step()
        if step is not None:
            step.add_cost(usd)
        for meter in active_meters():
            meter.add_call(usd)

    def failed(self, exc: Exception) -> float:
        """Seconds to wait before the next attempt; re-raises ``exc`` when there is none."""
        owner = self.owner
        reason = retry_reason(exc, spread=len(owner.inners) > 1)
        if reason is None or self.tries > owner.manners.max_retries:
            raise exc
        delay = backoff_delay(owner.manners, self.tries - 1, exc, owner.rng)
        if delay is None:
            raise exc
        if retry_after(exc) is not None:
            owner._pause(delay)  # every call waits for the provider, not only this one
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
