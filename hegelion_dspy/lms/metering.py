"""What LM calls cost and how they went, counted without importing DSPy (the batch drivers read these counts).

``token_prices`` reads LiteLLM's price map; ``CallMeter`` counts calls, cost, retries and waits; ``metering`` makes a
meter active for every call made inside it (context-local, so concurrent runs count their own). ``PoliteLM``
(``lms.manners``) reports each call to the active meters.

A meter with a ``limit`` (a batch's ``max_cost``) is an honest budget: before a call is sent its worst case (every
prompt byte a token, plus ``max_tokens``, at the model's prices: ``worst_case_cost``) is reserved on every active
meter (``reserve_budget``), and settled to the real cost when it returns. A call whose reservation would take spent +
reserved past the limit is not sent (``BudgetExhausted``), so what the provider served never exceeds the budget.
Meters in other processes share one budget as ``LeasedBudget``s: each spends only what a keeper granted it.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import sys
import threading
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

import orjson

from ..errors import LMError

# Our own offline models: nothing to pay, and no reason to import LiteLLM's price map for them.
_OFFLINE_PROVIDERS = frozenset({"scripted", "embedded"})
R = TypeVar("R")  # a LeasedBudget's request for more, as its ``ask`` makes it and its ``answer`` reads it


@functools.lru_cache(maxsize=1)
def price_map() -> dict[str, object]:
    """LiteLLM's price map: ``litellm.model_cost`` when LiteLLM is loaded, else the copy bundled with it, read
    without importing LiteLLM (seconds per process, which every Ray worker would pay)."""
    loaded = sys.modules.get("litellm")
    if loaded is not None and isinstance(getattr(loaded, "model_cost", None), dict):
        return dict(loaded.model_cost)
    spec = importlib.util.find_spec("litellm")
    if spec is None or spec.origin is None:
        return {}
    bundled = Path(spec.origin).parent / "model_prices_and_context_window_backup.json"
    try:
        table = orjson.loads(bundled.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return table if isinstance(table, dict) else {}


@functools.lru_cache(maxsize=512)
def token_prices(model: str) -> tuple[float, float] | None:
    """(USD per prompt token, USD per completion token) of ``model`` in LiteLLM's price map (``price_map``), or None
    when the map does not price it (our offline models; self-hosted providers such as ``hosted_vllm/`` or
    ``ollama_chat/``, whatever the name after the prefix)."""
    from .chooser import LOCAL_PROVIDERS

    provider, _, bare = model.partition("/")
    if provider in _OFFLINE_PROVIDERS or provider in LOCAL_PROVIDERS:
        return None
    table = price_map()
    for key in (model, bare):
        entry = table.get(key) if key else None
        if isinstance(entry, dict):
            prompt, completion = entry.get("input_cost_per_token"), entry.get("output_cost_per_token")
            if isinstance(prompt, (int, float)) and isinstance(completion, (int, float)):
                return float(prompt), float(completion)
    return None


def call_cost(model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
    """What one call of ``model`` cost at list prices, or None when its prices are unknown."""
    prices = token_prices(model)
    if prices is None:
        return None
    return prompt_tokens * prices[0] + completion_tokens * prices[1]


@dataclass
class CallMeter:
    """Counts the LM calls made while it is active (see ``metering``): cost, retries, waits. Thread-safe.

    ``limit`` (USD) calls ``on_limit`` once, from the call that reaches it.
    """

    limit: float | None = None
    on_limit: Callable[[], object] | None = None
    calls: int = 0
    priced_calls: int = 0
    cost_usd: float = 0.0
    retries: int = 0
    rate_limited: int = 0  # 429 answers
    timed_out: int = 0  # calls that got no answer in time
    cut_off: int = 0  # connections refused or reset, replies cut mid-body
    throttled_seconds: float = 0.0  # waited for rpm/tpm or a provider's pause
    backoff_seconds: float = 0.0  # waited before retries
    reserved_usd: float = 0.0  # the worst case of the calls in flight
    in_flight: int = 0  # priced calls sent and not yet returned
    stopped_in_flight: int = 0  # calls in flight when the limit was reached (their real cost is counted)
    stopped_reserved_usd: float = 0.0  # and what they had reserved
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _reached: bool = field(default=False, repr=False, compare=False)

    @property
    def reached(self) -> bool:
        return self._reached

    @property
    def priced(self) -> bool:
        return self.priced_calls > 0

    def add_call(self, usd: float | None) -> None:
        with self._lock:
            self.calls += 1
            if usd is not None:
                self.priced_calls += 1
                self.cost_usd += usd
            crossed = self.limit is not None and not self._reached and self.cost_usd >= self.limit
            if crossed:
                self._reached = True
                self.stopped_in_flight, self.stopped_reserved_usd = self.in_flight, self.reserved_usd
        if crossed and self.on_limit is not None:
            self.on_limit()

    def reserve(self, usd: float) -> str:
        """Reserve a call's worst case before it is sent: "sent" when it fits under the limit; else the limit is
        reached (a batch starts nothing new) and the call may "wait" for the calls in flight to settle (they
        usually cost less than they reserved), or, with none in flight, must "stop": it is never sent."""
        with self._lock:
            fits = self.limit is None or self.cost_usd + self.reserved_usd + usd <= self.limit
            crossed = not fits and not self._reached
            if fits:
                self.reserved_usd += usd
                self.in_flight += 1
            elif crossed:
                self._reached = True
                self.stopped_in_flight, self.stopped_reserved_usd = self.in_flight, self.reserved_usd
            answer = "sent" if fits else ("wait" if self.in_flight > 0 else "stop")
        if crossed and self.on_limit is not None:
            self.on_limit()
        return answer

    def release(self, usd: float) -> None:
        """Give back a reservation (the call returned, or failed); its real cost comes through ``add_call``."""
        with self._lock:
            self.reserved_usd = max(0.0, self.reserved_usd - usd)
            self.in_flight -= 1

    def add_wait(self, seconds: float, *, retry: str | None = None) -> None:
        with self._lock:
            if retry is None:
                self.throttled_seconds += seconds
            else:
                self.retries += 1
                self.rate_limited += retry == "rate limit"
                self.timed_out += retry == "timeout"
                self.cut_off += retry == "connection"
                self.backoff_seconds += seconds

    def snapshot(self) -> dict[str, float]:
        """The counts as plain numbers (what a Ray worker sends its driver)."""
        with self._lock:
            return {
                "calls": self.calls,
                "priced_calls": self.priced_calls,
                "cost_usd": self.cost_usd,
                "retries": self.retries,
                "rate_limited": self.rate_limited,
                "timed_out": self.timed_out,
                "cut_off": self.cut_off,
                "throttled_seconds": self.throttled_seconds,
                "backoff_seconds": self.backoff_seconds,
            }

    def absorb(self, counts: dict[str, float]) -> None:
        """Add another meter's ``snapshot`` (a finished Ray worker's) to this one."""
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)


@dataclass
class LeasedBudget(CallMeter, Generic[R]):
    """A meter spending a budget someone else hands out in pieces (a Ray batch's keeper, ``collect.distributed``):
    a call is sent only when its worst case fits the ``allowance`` granted so far, so the calls of every meter of one
    keeper never pass what the keeper holds. A call that does not fit asks for more (``ask(usd)`` starts a request;
    ``answer(request)`` is the amount granted once known, else None) and waits ("later"); once the keeper gave less
    than was needed it is dry, and the meter's limit is reached as a ``CallMeter``'s is (``on_limit``)."""

    ask: Callable[[float], R] | None = None
    answer: Callable[[R], float | None] | None = None
    ahead: int = 1  # worst cases asked for beyond the call's need: fewer requests, at most this many stranded
    allowance: float = 0.0  # granted so far
    _request: R | None = field(default=None, repr=False, compare=False)
    _shortfall: float = field(default=0.0, repr=False, compare=False)
    _dry: bool = field(default=False, repr=False, compare=False)

    def reserve(self, usd: float) -> str:
        """As ``CallMeter.reserve`` against the allowance, and "later" while more is asked for."""
        with self._lock:
            if self._request is not None and self.answer is not None:
                granted = self.answer(self._request)
                if granted is not None:
                    self.allowance += granted
                    self._dry, self._request = granted < self._shortfall, None
            need = self.cost_usd + self.reserved_usd + usd - self.allowance
            if need <= 0:
                self.reserved_usd += usd
                self.in_flight += 1
                return "sent"
            if self._request is None and not self._dry and self.ask is not None:
                self._shortfall, self._request = need, self.ask(need + usd * self.ahead)
            if self._request is not None:
                return "later"
            crossed = not self._reached
            if crossed:
                self._reached = True
                self.stopped_in_flight, self.stopped_reserved_usd = self.in_flight, self.reserved_usd
            answer = "wait" if self.in_flight > 0 else "stop"
        if crossed and self.on_limit is not None:
            self.on_limit()
        return answer


_meters: ContextVar[tuple[CallMeter, ...]] = ContextVar("hegelion_call_meters", default=())


@contextlib.contextmanager
def metering(meter: CallMeter | None = None) -> Iterator[CallMeter]:
    """Count every LM call made inside (context-local: concurrent runs each count their own) into ``meter``, and
    into the meters already active outside (a run inside a batch counts for both)."""
    meter = meter if meter is not None else CallMeter()
    token = _meters.set((*_meters.get(), meter))
    try:
        yield meter
    finally:
        _meters.reset(token)


def active_meters() -> tuple[CallMeter, ...]:
    """The meters every call made here reports to, innermost last."""
    return _meters.get()


class BudgetExhausted(LMError):
    """A call was not sent: its worst case on top of what was spent and is in flight would pass a ``max_cost``."""


def worst_case_cost(model: str, prompt_bytes: int, max_tokens: int) -> float | None:
    """The most one call of ``model`` can cost: every prompt byte a token (no tokenizer makes more), plus a reply of
    ``max_tokens``; None when the model's prices are unknown."""
    return call_cost(model, prompt_bytes, max_tokens)


def reserve_budget(usd: float | None) -> tuple[CallMeter, ...] | None:
    """Reserve ``usd`` on every active meter, all or none: the meters to ``release_budget`` once the call returns,
    or None when the call must wait for calls in flight to settle, or for a ``LeasedBudget``'s keeper. Raises
    BudgetExhausted when it never fits, and for the first call of a run once the budget is tight (the room left goes
    to the runs under way)."""
    if usd is None:
        return ()
    held: list[CallMeter] = []
    for meter in active_meters():
        answer = meter.reserve(usd)
        if answer == "sent":
            held.append(meter)
            continue
        release_budget(tuple(held), usd)
        if answer == "later" or (answer == "wait" and _begun()):
            return None  # a dialectic under way waits for room; one not begun yet is not started
        budget = "max_cost" if meter.limit is None else f"max_cost ${meter.limit:g}"  # a LeasedBudget's: a share
        raise BudgetExhausted(
            f"not sent: this call may cost up to ${usd:.6f} and the budget ({budget}) has ${meter.cost_usd:.6f} "
            "spent; rerun with a higher max_cost to resume"
        )
    return tuple(held)


def _begun() -> bool:
    """The run this call belongs to (the innermost meter: ``run_dialectic``'s) has made calls already."""
    meters = active_meters()
    return bool(meters) and (meters[-1].calls > 0 or meters[-1].in_flight > 0)


def release_budget(meters: tuple[CallMeter, ...], usd: float | None) -> None:
    for meter in meters:
        meter.release(usd or 0.0)
