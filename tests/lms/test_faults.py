"""Hosted APIs that misbehave, on a real HTTP server (tests/faulty_server.py): calls that hang, connections dropped
mid-body, 429s with and without Retry-After while other calls wait for an rpm slot.

Backoff waits run on a fake clock (the tests count attempts, never wall time); a hung call waits out its real, short
timeout.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

import pytest
from dspy.utils.exceptions import LMRateLimitError, LMTransportError
from faulty_server import DROP, HANG, OK, faulty_server, rate_limited
from test_manners import FakeClock, FlakyLM

from hegelion_dspy.collect.batch import run_batch
from hegelion_dspy.collect.context import RunContext
from hegelion_dspy.collect.run import run_dialectic
from hegelion_dspy.errors import ConfigError
from hegelion_dspy.lms.hosted import DEFAULT_TIMEOUT, ENV_TIMEOUT, HostedLM, default_timeout, with_timeout
from hegelion_dspy.lms.manners import Manners, PoliteLM, _Call
from hegelion_dspy.lms.metering import (
    BudgetExhausted,
    CallMeter,
    metering,
    release_budget,
    reserve_budget,
    token_prices,
)
from hegelion_dspy.lms.scripted import ScriptedLM
from hegelion_dspy.store import TraceStore

PRICED = "openai/gpt-4o-mini"
SHORT = 0.5  # seconds: the timeout of a test's hosted calls


@pytest.fixture(autouse=True)
def _no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv(ENV_TIMEOUT, raising=False)


def unique(text: str) -> str:
    return f"{text} {uuid.uuid4().hex[:8]}"


def hosted_ctx(url: str, clock: FakeClock | None = None, **manners: Any) -> RunContext:
    ctx = RunContext.build(model=PRICED, api_base=url, manners=Manners(timeout=SHORT, **manners))
    if clock is not None:
        ctx.lm.clock = clock
        ctx.lm.rng = random.Random(3)
    return ctx


# -- timeouts ---------------------------------------------------------------------------------------------------------


def test_hung_calls_time_out_and_are_retried() -> None:
    clock = FakeClock()
    with faulty_server([HANG, OK, HANG]) as server, metering() as meter:
        record = run_dialectic(unique("task"), ctx=hosted_ctx(server.url, clock))
    assert record.ok
    assert server.requests == 3 + 2 and server.kinds["hang"] == 2 and server.answered == 3
    assert (meter.retries, meter.timed_out) == (2, 2)
    assert len(clock.waits) == 2  # the backoff before each retry


def test_replies_cut_mid_body_are_retried() -> None:
    clock = FakeClock()
    with faulty_server([DROP, DROP, OK, DROP]) as server, metering() as meter:
        record = run_dialectic(unique("task"), ctx=hosted_ctx(server.url, clock))
    assert record.ok
    assert (server.requests, server.kinds["drop"], server.answered) == (6, 3, 3)
    assert (meter.retries, meter.cut_off) == (3, 3)


class SlowFailures(ScriptedLM):
    """Fails the first attempts after ``seconds`` on the fake clock each (a hung call waiting out its timeout, or an
    error that comes at once with ``seconds=0``); then answers."""

    def __init__(self, clock: FakeClock, failures: list[tuple[Exception, float]]):
        super().__init__()
        self.clock, self.failures = clock, list(failures)

    def _reply(self, messages: Any) -> Any:
        if self.failures:
            error, seconds = self.failures.pop(0)
            self.clock.t += seconds  # time passes inside the call, not in a sleep
            raise error
        return super()._reply(messages)


def test_a_call_that_waited_out_its_timeout_is_retried_at_once_and_a_quick_failure_backs_off() -> None:
    clock = FakeClock()
    timed_out = LMTransportError("Request timed out.")
    dropped = LMTransportError("peer closed connection without sending complete message body")
    lm = SlowFailures(clock, [(timed_out, 5.0), (dropped, 0.0), (timed_out, 5.0)])
    polite = PoliteLM(lm, Manners(backoff=1.0, max_backoff=4.0), clock=clock, rng=random.Random(1))
    with metering() as meter:
        record = run_dialectic(unique("task"), lm=polite)
    assert record.ok and (meter.retries, meter.timed_out, meter.cut_off) == (3, 2, 1)
    # retry 2 (after the drop) waits its backoff (1 to 2 s); retries 1 and 3 were due within the 5 s each waited
    assert len(clock.waits) == 1 and 1.0 <= clock.waits[0] <= 2.0
    assert meter.backoff_seconds == clock.waits[0]


def test_a_call_that_keeps_hanging_is_a_failed_trace_with_the_reason(tmp_path: Any) -> None:
    store = TraceStore(tmp_path / "log.jsonl")
    clock = FakeClock()
    with faulty_server([HANG] * 3) as server:
        record = run_dialectic(unique("task"), ctx=hosted_ctx(server.url, clock, max_retries=2), store=store)
    assert server.requests == 3  # the first try and two retries
    assert record.status == "failed" and record.rounds == [] and record.synthesis == ""
    assert record.error is not None and record.error.step == "thesis" and record.error.type == "LMTransportError"
    assert "timed out" in record.error.message
    assert [r.status for r in store] == ["failed"]


def test_a_batch_survives_hangs_and_drops() -> None:
    clock = FakeClock()
    faults = [HANG, DROP, OK, OK, DROP, HANG, OK, rate_limited(None), OK, DROP]
    with faulty_server(faults) as server:
        ctx = hosted_ctx(server.url, clock)
        result = asyncio.run(run_batch([unique(f"p{i}") for i in range(6)], ctx=ctx, store=None, concurrency=3))
    assert (result.ok, result.failed) == (6, 0)
    assert server.answered == 18 and server.requests == 18 + 6
    assert (result.meter.timed_out, result.meter.cut_off, result.meter.rate_limited) == (2, 3, 1)


def test_hosted_models_get_a_default_timeout_and_in_process_ones_none(monkeypatch: pytest.MonkeyPatch) -> None:
    hosted = HostedLM(PRICED, max_tokens=2048, api_key="k")
    assert with_timeout(hosted, None).kwargs["timeout"] == DEFAULT_TIMEOUT == 120
    assert with_timeout(HostedLM(PRICED, max_tokens=16000, api_key="k"), None).kwargs["timeout"] == 800  # slow+long
    assert with_timeout(HostedLM(PRICED, api_key="k", timeout=30), None).kwargs["timeout"] == 30  # the LM's own
    assert with_timeout(hosted, 5).kwargs["timeout"] == 5
    assert "timeout" not in hosted.kwargs  # a copy gets it, the LM given is unchanged
    scripted = ScriptedLM()
    assert with_timeout(scripted, 5) is scripted and "timeout" not in PoliteLM(scripted).inner.kwargs
    monkeypatch.setenv(ENV_TIMEOUT, "45")
    assert default_timeout(2048) == 45 and PoliteLM(hosted).inner.kwargs["timeout"] == 45
    monkeypatch.setenv(ENV_TIMEOUT, "soon")
    with pytest.raises(ConfigError, match=r"\$HEGELION_TIMEOUT must be a number of seconds > 0.*'soon'"):
        default_timeout(2048)


@pytest.mark.parametrize("bad", [0, -1, float("inf"), "x"])
def test_a_bad_timeout_is_refused(bad: Any) -> None:
    with pytest.raises(ConfigError, match="timeout must be a number of seconds > 0"):
        Manners(timeout=bad)


# -- one pause for everyone -------------------------------------------------------------------------------------------


def test_a_429_without_retry_after_pauses_every_call() -> None:
    clock = FakeClock()
    lm = FlakyLM([LMRateLimitError("slow down", status=429)], clock=clock)
    polite = PoliteLM(lm, Manners(backoff=4.0), clock=clock, rng=random.Random(1))
    record = run_dialectic("task", lm=polite)
    assert record.ok and len(clock.waits) == 1
    pause = clock.waits[0]  # the backoff of a first retry: 2..4 s
    assert 2.0 <= pause <= 4.0
    assert polite._pause_until == pytest.approx(pause)  # the pause is everyone's, not only the refused call's


def test_calls_waiting_for_an_rpm_slot_wait_out_a_pause_that_came_meanwhile() -> None:
    clock = FakeClock()
    polite = PoliteLM(ScriptedLM(), Manners(rpm=60, burst_seconds=0.0), clock=clock)
    assert _Call(polite, "p", None, {}).before() == 0.0  # the first slot is free
    waiting = _Call(polite, "p", None, {})
    assert waiting.before() == pytest.approx(1.0)  # the next slot, one second on
    polite._pause(10.0)  # a 429 + Retry-After: 10 arrives while it waits
    clock.sleep(1.0)
    assert waiting.paused_meanwhile()
    assert waiting.before() == pytest.approx(9.0)  # its new slot is after the pause
    later = _Call(polite, "p", None, {})
    assert later.before() == pytest.approx(10.0)  # and then the steady rate resumes, no burst


def test_queued_calls_honour_retry_after_so_no_window_exceeds_the_servers_limit() -> None:
    # The server accepts 2 requests a half second and answers the third 429 + Retry-After (to the end of the half
    # second). The client's --rpm lets through 10 a second: after the first refusal every call, those queued for an
    # rpm slot too, must wait out the pause, so no window sees more than the 2 allowed plus the one refused.
    with faulty_server(limit=2, window=0.5) as server:
        manners = Manners(rpm=600, burst_seconds=0.0, timeout=5, max_retries=20)
        ctx = RunContext.build(model=PRICED, api_base=server.url, manners=manners)
        result = asyncio.run(run_batch([unique(f"p{i}") for i in range(4)], ctx=ctx, store=None, concurrency=4))
    assert (result.ok, result.failed) == (4, 0)
    assert server.answered == 12 and result.meter.rate_limited >= 1
    assert server.early == 0  # no request arrived while a Retry-After the server sent was running
    assert max(server.per_window()) <= 2 + 1


# -- an honest budget -------------------------------------------------------------------------------------------------


def test_max_cost_is_never_passed_by_what_the_server_served() -> None:
    prices = token_prices(PRICED)
    assert prices is not None
    one = run_dialectic("probe", lm=ScriptedLM(model=PRICED)).cost_usd  # what one dialectic really costs
    assert one is not None
    budget = 2.5 * one + 3 * (256 * prices[1])  # a few dialectics, the worst case of a few calls in flight
    with faulty_server(prices=prices) as server:
        ctx = RunContext.build(model=PRICED, api_base=server.url, max_tokens=256, manners=Manners(timeout=5))
        tasks = [unique(f"p{i}") for i in range(40)]
        result = asyncio.run(run_batch(tasks, ctx=ctx, store=None, concurrency=4, max_cost=budget))
    assert result.stopped == "max_cost" and result.ok >= 1 and result.failed == 0
    assert server.served_usd <= budget  # the provider's bill, not only what came back
    assert result.meter.cost_usd == pytest.approx(server.served_usd)  # every call sent was counted when it returned
    assert result.meter.reserved_usd == 0 and result.meter.in_flight == 0
    assert result.not_run == 40 - result.ok


def test_a_call_whose_worst_case_does_not_fit_waits_for_those_in_flight_or_is_not_sent() -> None:
    meter = CallMeter(limit=1.0)
    heard: list[int] = []
    meter.on_limit = lambda: heard.append(meter.in_flight)
    with metering(meter):
        first = reserve_budget(0.6)
        assert first == (meter,)
        assert reserve_budget(0.5) is None  # 0.6 in flight + 0.5 would pass 1.0: wait for the one in flight
        assert heard == [1] and meter.reached  # the batch starts nothing new from here
        meter.add_call(0.2)  # the first call returned: it cost 0.2 ...
        release_budget(first, 0.6)  # ... and its reservation is given back
        second = reserve_budget(0.5)  # 0.2 spent + 0.5 fits
        assert second == (meter,)
        meter.add_call(0.3)
        release_budget(second, 0.5)
        with pytest.raises(BudgetExhausted, match=r"may cost up to \$0.600000 .*\$0.500000 spent"):
            reserve_budget(0.6)  # 0.5 spent + 0.6 passes 1.0, and nothing in flight can free room: never sent
    assert (meter.stopped_in_flight, meter.stopped_reserved_usd) == (1, 0.6)
    assert (meter.reserved_usd, meter.in_flight, meter.cost_usd) == (0.0, 0, 0.5)
