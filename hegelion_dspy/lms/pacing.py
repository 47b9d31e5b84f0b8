"""The rules of good manners with hosted APIs, without the wrapper that keeps them (``lms.manners.PoliteLM``): the
settings (``Manners``), time (``Clock``), the shared rate limits (``RateLimiter``, a schedule that a provider's pause
moves), what a call may use before it is made, and which failures are retried after how long.
"""

from __future__ import annotations

import asyncio
import math
import random
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Protocol

from dspy.utils.exceptions import LMRateLimitError, LMServerError, LMTimeoutError, LMTransportError

from ..errors import ConfigError
from .base import DEFAULT_MAX_TOKENS
from .hosted import check_timeout
from .metering import worst_case_cost

# -- settings ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Manners:
    """How politely every LM call of a run behaves. The defaults retry and price; limits are off unless given.

    ``rpm`` / ``tpm``: requests / tokens per minute allowed to all calls through one wrapper together (a Ray batch
    splits them across its workers: ``share``). ``burst_seconds``: how far ahead of the steady rate calls may run.
    ``max_retries``: retries after the first attempt on a 429, a 5xx or a timeout; the n-th is sent about
    ``backoff * 2**n`` seconds (half of it to all of it, at random; at most ``max_backoff``) after the failed attempt
    was (so a timeout longer than that is retried at once) unless the provider sent
    ``Retry-After``, which is honoured when it is at most ``max_retry_after`` (a longer one fails the call at once).
    ``timeout``: seconds one call to a hosted LM may wait for its answer [default: ``hosted.default_timeout``, 120 s
    or ``$HEGELION_TIMEOUT``]; in-process LMs have none.
    """

    rpm: float | None = None
    tpm: float | None = None
    max_retries: int = 5
    backoff: float = 1.0
    max_backoff: float = 60.0
    max_retry_after: float = 300.0
    burst_seconds: float = 1.0
    timeout: float | None = None

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
        if self.timeout is not None:
            check_timeout(self.timeout)

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

    def hold(self, until: float) -> None:
        """Let nothing through before ``until`` (a provider's pause), then resume at the steady rate, without a
        burst: reservations made before it that have not been used are the callers' to renew (``PoliteLM``)."""
        with self._lock:
            self._next = max(self._next, until + self.burst)

    def settle(self, reserved: float, used: float) -> None:
        """Correct a reservation once the real amount is known (tokens: an estimate before the call)."""
        with self._lock:
            self._next += (used - reserved) * self.seconds_per_unit


def prompt_texts(prompt: object, messages: Iterable[object] | None) -> Iterator[str]:
    """The text parts of a call's prompt and messages."""
    if isinstance(prompt, str):
        yield prompt
    for message in messages or ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            yield content
        elif isinstance(content, list):
            yield from (str(part.get("text", "")) for part in content if isinstance(part, dict))


def estimate_tokens(prompt: object, messages: Iterable[object] | None, max_tokens: object) -> int:
    """Tokens a call may use, before it is made: about 4 characters a prompt token, plus the completion cap (512
    when there is none). The limiter is corrected with the real count afterwards."""
    chars = sum(len(text) for text in prompt_texts(prompt, messages))
    cap = max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else 512
    return chars // 4 + cap


def call_worst_case(model: str, prompt: object, messages: Iterable[object] | None, max_tokens: object) -> float | None:
    """The most a call can cost (``metering.worst_case_cost``): its prompt's UTF-8 bytes plus 8 a message (roles,
    separators) as tokens, and ``max_tokens`` (``DEFAULT_MAX_TOKENS`` when the call has none)."""
    texts = list(prompt_texts(prompt, messages))
    size = sum(len(text.encode("utf-8")) + 8 for text in texts)
    cap = max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else DEFAULT_MAX_TOKENS
    return worst_case_cost(model, size, cap)


# -- retries ----------------------------------------------------------------------------------------------------------


def retry_reason(exc: BaseException) -> str | None:
    """Why a failed call may be tried again ("rate limit", "server error", "timeout", "connection"), or None.

    DSPy reports a call that timed out waiting for its answer, a reset connection and a reply cut mid-body alike,
    as ``LMTransportError`` (the request failed before a whole response came back): all worth another try, also with
    one base URL (a refused connection too: servers restart).
    """
    status = getattr(exc, "status", None) or getattr(exc, "status_code", None)
    if isinstance(exc, LMRateLimitError) or status == 429:
        return "rate limit"
    if isinstance(exc, LMTimeoutError) or status in (408, 504):
        return "timeout"
    if isinstance(exc, LMServerError) or (isinstance(status, int) and 500 <= status < 600):
        return "server error"
    if isinstance(exc, LMTransportError):
        return "timeout" if "timed out" in str(exc) else "connection"
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
