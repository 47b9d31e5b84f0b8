"""Hosted-API manners: rate limits, retries with backoff, cost per call and per trace, and a batch's --max-cost.

Time is a fake clock: the tests count attempts and waits, never wall time.
"""

from __future__ import annotations

import asyncio
import random
import socket
import threading
import uuid
from collections import Counter
from typing import Any

import pytest
from dspy.utils.exceptions import LMAuthError, LMRateLimitError, LMServerError
from openai_stub import openai_stub

from hegelion_dspy.collect.batch import run_batch
from hegelion_dspy.collect.context import RunContext
from hegelion_dspy.collect.run import run_dialectic
from hegelion_dspy.errors import ConfigError
from hegelion_dspy.lms.base import ChatMessages, Completion
from hegelion_dspy.lms.manners import Manners, PoliteLM, RateLimiter, estimate_tokens
from hegelion_dspy.lms.metering import CallMeter, metering, token_prices
from hegelion_dspy.lms.scripted import ScriptedLM
from hegelion_dspy.store import TraceStore

PRICED = "openai/gpt-4o-mini"  # priced in LiteLLM's bundled price map


class FakeClock:
    """Virtual time that moves only when someone sleeps."""

    def __init__(self) -> None:
        self.t = 0.0
        self.waits: list[float] = []
        self._lock = threading.Lock()

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            with self._lock:
                self.waits.append(seconds)
                self.t += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)
        await asyncio.sleep(0)


class FlakyLM(ScriptedLM):
    """ScriptedLM that first raises the given errors, one per call, and notes when each attempt was made."""

    def __init__(self, errors: list[Exception], clock: FakeClock | None = None, **options: Any):
        super().__init__(**options)
        self.errors = list(errors)
        self.clock = clock
        self.attempts: list[float] = []

    def _reply(self, messages: ChatMessages) -> Completion:
        with self._lock:
            self.attempts.append(self.clock.now() if self.clock else 0.0)
            error = self.errors.pop(0) if self.errors else None
        if error is not None:
            raise error
        return super()._reply(messages)


def unique(text: str) -> str:
    """A task no earlier run asked: DSPy's request cache answers a repeated request without calling the server."""
    return f"{text} {uuid.uuid4().hex[:8]}"


def polite(lm: Any, clock: FakeClock, **manners: Any) -> PoliteLM:
    return PoliteLM(lm, Manners(**manners), clock=clock, rng=random.Random(7))


def rate_limited(after: float | None = None) -> LMRateLimitError:
    return LMRateLimitError("rate limit reached", status=429, retry_after=after)


# -- retries ----------------------------------------------------------------------------------------------------------


def test_a_429_is_retried_after_the_servers_retry_after(store: TraceStore) -> None:
    clock = FakeClock()
    lm = FlakyLM([rate_limited(2.0), rate_limited(2.0)])
    with metering() as meter:
        record = run_dialectic("task", lm=polite(lm, clock), store=store)

    assert record.ok
    assert len(lm.attempts) == 2 + 3  # two refused thesis attempts, then the three steps
    assert len(clock.waits) == 2 and all(2.0 <= w <= 2.2 for w in clock.waits)  # Retry-After plus <= 10% jitter
    assert (meter.retries, meter.rate_limited) == (2, 2)


def test_server_errors_back_off_exponentially_with_jitter() -> None:
    clock = FakeClock()
    lm = FlakyLM([LMServerError("overloaded", status=503)] * 4)
    record = run_dialectic("task", lm=polite(lm, clock, backoff=1.0, max_backoff=60.0))

    assert record.ok and len(lm.attempts) == 4 + 3
    assert len(clock.waits) == 4
    for n, wait in enumerate(clock.waits):  # the n-th wait is half to all of 1 s * 2**n
        assert 2**n / 2 <= wait <= 2**n
    assert clock.waits == sorted(clock.waits)


def test_the_backoff_stops_at_max_backoff() -> None:
    clock = FakeClock()
    lm = FlakyLM([LMServerError("down", status=500)] * 6)
    run_dialectic("task", lm=polite(lm, clock, max_retries=6, backoff=1.0, max_backoff=5.0))
    assert max(clock.waits) <= 5.0 and clock.waits[-1] >= 2.5


def test_a_prompt_that_still_fails_is_a_failed_trace_never_data(store: TraceStore) -> None:
    clock = FakeClock()
    lm = FlakyLM([rate_limited()] * 10)
    record = run_dialectic("task", lm=polite(lm, clock, max_retries=3), store=store)

    assert len(lm.attempts) == 4 and len(clock.waits) == 3  # the first try and three retries
    assert record.status == "failed" and record.rounds == [] and record.synthesis == ""
    assert record.error is not None and (record.error.step, record.error.type) == ("thesis", "LMRateLimitError")
    assert [r.status for r in store] == ["failed"]


@pytest.mark.parametrize(
    "error",
    [LMAuthError("bad key", status=401), rate_limited(after=3600.0)],
    ids=["not retryable", "Retry-After beyond max_retry_after"],
)
def test_some_errors_fail_at_once(error: Exception) -> None:
    clock = FakeClock()
    lm = FlakyLM([error] * 3)
    record = run_dialectic("task", lm=polite(lm, clock))
    assert not record.ok and len(lm.attempts) == 1 and clock.waits == []


def test_an_lm_failure_of_the_scripted_kind_is_not_retried() -> None:
    clock = FakeClock()
    lm = ScriptedLM(fail_on={"antithesis"})
    record = run_dialectic("task", lm=polite(lm, clock))
    assert not record.ok and lm.steps_called() == ["thesis", "antithesis"] and clock.waits == []


def test_a_real_http_429_with_retry_after_is_retried(store: TraceStore, monkeypatch: pytest.MonkeyPatch) -> None:
    # DSPy's provider path turns the HTTP answer into LMRateLimitError with retry_after parsed from the header.
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # a model behind --api-base needs no key
    clock = FakeClock()
    with openai_stub(refusals=[(429, 1.5), (503, None)]) as stub:
        ctx = RunContext.build(model=PRICED, api_base=stub.url)
        ctx.lm.clock = clock
        record = run_dialectic(unique("task"), ctx=ctx, store=store)
    assert record.ok
    assert (stub.requests, stub.answered) == (5, 3)
    assert len(clock.waits) == 2 and 1.5 <= clock.waits[0] <= 1.65


# -- rate limits ------------------------------------------------------------------------------------------------------


def test_the_rate_limiter_spaces_reservations_after_a_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(60, clock=clock, burst_seconds=1.0)  # one a second
    assert [limiter.reserve() for _ in range(5)] == [0.0, 0.0, 1.0, 2.0, 3.0]
    clock.t = 10.0  # idle long enough: the burst is available again
    assert [limiter.reserve() for _ in range(3)] == [0.0, 0.0, 1.0]


def test_a_token_reservation_is_corrected_by_the_real_count() -> None:
    clock = FakeClock()
    limiter = RateLimiter(600, clock=clock, burst_seconds=0.0)  # ten tokens a second
    assert limiter.reserve(100) == 0.0
    assert limiter.reserve(10) == pytest.approx(10.0)  # waits for the 100 reserved
    limiter.settle(100, 20)  # the first call used 20: the 80 not used are given back
    assert limiter.reserve(10) == pytest.approx(3.0)


def test_rpm_is_shared_by_every_concurrent_call(tmp_path: Any) -> None:
    clock = FakeClock()
    lm = FlakyLM([], clock=clock)
    ctx = RunContext.build(lm=polite(lm, clock, rpm=120, burst_seconds=1.0))  # two a second
    result = asyncio.run(run_batch([f"t{i}" for i in range(10)], ctx=ctx, store=None, concurrency=5))

    assert result.ok == 10 and len(lm.attempts) == 30
    starts = sorted(lm.attempts)
    for k, started in enumerate(starts):  # the k-th call waits for the k-3 before it beyond the 1 s burst
        assert started >= (k - 2) * 0.5 - 1e-9
    assert result.meter.throttled_seconds > 0


def test_tpm_waits_for_the_tokens_the_calls_use() -> None:
    clock = FakeClock()
    lm = FlakyLM([], clock=clock)
    ctx = RunContext.build(lm=polite(lm, clock, tpm=600, burst_seconds=0.0))  # ten tokens a second
    record = run_dialectic("task", ctx=ctx)
    tokens = [u.total_tokens or 0 for r in record.rounds for u in r.usage.values()]
    assert len(tokens) == 3
    # each call starts once the tokens the calls before it used are paid for at ten a second
    assert lm.attempts[-1] >= (tokens[0] + tokens[1]) / 10 - 1e-6


def test_estimate_tokens_counts_the_prompt_and_the_completion_cap() -> None:
    messages = [{"role": "system", "content": "x" * 400}, {"role": "user", "content": "y" * 40}]
    assert estimate_tokens(None, messages, 100) == 110 + 100
    assert estimate_tokens("z" * 8, None, None) == 2 + 512


@pytest.mark.parametrize(
    ("options", "message"),
    [({"rpm": 0}, "rpm must be a positive number"), ({"max_retries": -1}, "max_retries"), ({"backoff": -1}, "backoff")],
)
def test_bad_manners_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Manners(**options)


def test_a_workers_share_divides_the_limits() -> None:
    assert Manners(rpm=600, tpm=90_000).share(3) == Manners(rpm=200, tpm=30_000)
    assert Manners().share(4) == Manners()


# -- several base URLs ------------------------------------------------------------------------------------------------


def test_requests_are_spread_over_several_base_urls() -> None:
    with openai_stub() as first, openai_stub() as second:
        ctx = RunContext.build(model=PRICED, api_base=[first.url, second.url])
        records = [run_dialectic(unique("task"), ctx=ctx) for _ in range(4)]
    assert all(r.ok for r in records)
    assert (first.answered, second.answered) == (6, 6)


def test_a_dead_base_url_hands_its_calls_to_the_next() -> None:
    clock = FakeClock()
    with socket.socket() as taken, openai_stub() as alive:
        taken.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        dead = f"http://127.0.0.1:{taken.getsockname()[1]}/v1"
        ctx = RunContext.build(model=PRICED, api_base=[dead, alive.url])
        ctx.lm.clock = clock
        records = [run_dialectic(unique("task"), ctx=ctx) for _ in range(2)]
    assert all(r.ok for r in records) and alive.answered == 6


# -- cost -------------------------------------------------------------------------------------------------------------


def test_each_step_and_the_trace_carry_what_the_calls_cost() -> None:
    prompt_price, completion_price = token_prices(PRICED) or (0.0, 0.0)
    assert prompt_price > 0
    record = run_dialectic("Why is the sky blue?", lm=ScriptedLM(model=PRICED), iterations=2)

    costs = []
    for r in record.rounds:
        for usage in r.usage.values():
            expected = (usage.prompt_tokens or 0) * prompt_price + (usage.completion_tokens or 0) * completion_price
            assert usage.cost_usd == pytest.approx(expected)
            costs.append(expected)
    assert len(costs) == 5
    assert record.cost_usd == pytest.approx(sum(costs))


def test_a_failed_trace_keeps_the_cost_of_the_calls_it_made() -> None:
    record = run_dialectic("task", lm=ScriptedLM(model=PRICED, fail_on={"synthesis"}))
    assert not record.ok and record.rounds == []
    assert record.cost_usd is not None and record.cost_usd > 0  # thesis and antithesis were paid for


def test_models_without_prices_have_no_cost() -> None:
    record = run_dialectic("task", lm=ScriptedLM())
    assert record.cost_usd is None
    assert all(u.cost_usd is None for r in record.rounds for u in r.usage.values())
    assert token_prices("hosted_vllm/gpt-4o-mini") is None  # self-hosted: no per-token price, whatever the name


def test_a_judged_trace_includes_the_judges_calls() -> None:
    plain = run_dialectic("task", lm=ScriptedLM(model=PRICED))
    judged = run_dialectic("task", lm=ScriptedLM(model=PRICED), judge=True)
    assert judged.score is not None
    assert judged.cost_usd is not None and plain.cost_usd is not None and judged.cost_usd > plain.cost_usd


# -- --max-cost -------------------------------------------------------------------------------------------------------


def test_max_cost_stops_the_batch_keeping_every_finished_trace(store: TraceStore) -> None:
    one = run_dialectic("probe", lm=ScriptedLM(model=PRICED)).cost_usd
    assert one is not None
    prompts = [f"prompt {i}" for i in range(100)]
    ctx = RunContext.build(lm=ScriptedLM(model=PRICED, latency=0.001).copy(max_tokens=64))
    result = asyncio.run(run_batch(prompts, ctx=ctx, store=store, concurrency=4, max_cost=one * 10.5))

    assert result.stopped == "max_cost"
    logged = list(store)
    # the budget pays for 10.5 dialectics, but each call reserves its worst case (every prompt byte a token, plus
    # max_tokens) while in flight, so fewer finish; the dialectics cut short leave no trace
    assert len(logged) == result.ok + result.failed and 1 <= result.ok <= 10 and result.failed == 0
    assert all(r.ok for r in logged) and len({r.task for r in logged}) == len(logged)
    assert result.not_run == 100 - result.ok
    assert result.meter.cost_usd <= one * 10.5  # never past the budget

    again = asyncio.run(run_batch(prompts, ctx=RunContext.build(lm=ScriptedLM(model=PRICED)), store=store))
    assert (again.ok, again.skipped, again.stopped) == (100 - result.ok, result.ok, None)
    assert Counter(r.task for r in store) == Counter(prompts)


def test_max_cost_needs_a_priced_model() -> None:
    ctx = RunContext.build(lm=ScriptedLM())
    with pytest.raises(ConfigError, match="max_cost needs the model's prices"):
        asyncio.run(run_batch(["a"], ctx=ctx, store=None, max_cost=1.0))


def test_a_meter_calls_back_once_when_its_limit_is_reached() -> None:
    heard: list[float] = []
    meter = CallMeter(limit=1.0)
    meter.on_limit = lambda: heard.append(meter.cost_usd)
    for _ in range(5):
        meter.add_call(0.4)
    meter.add_call(None)
    assert heard == [pytest.approx(1.2)] and meter.reached
    assert (meter.calls, meter.priced_calls) == (6, 5)
