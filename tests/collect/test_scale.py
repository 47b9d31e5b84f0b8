"""Batches on a local Ray cluster (``ray.init(num_cpus=2)``) with the scripted LM: every prompt once, a worker killed
mid-run, resume after an interrupt, the budget, and the CLI's --ray as a user runs it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import signal
import subprocess
import sys
import time
import types
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import need

from hegelion_dspy.collect.context import RunRecipe
from hegelion_dspy.collect.run import run_dialectic
from hegelion_dspy.errors import ConfigError
from hegelion_dspy.lms.scripted import ScriptedLM
from hegelion_dspy.store import TraceStore
from hegelion_dspy.types import TraceRecord

PROMPTS = [f"scale prompt {i}" for i in range(500)]
PRICED = "openai/gpt-4o-mini"
HEGELION = str(Path(sys.executable).parent / "hegelion")


def import_ray() -> object:
    try:
        import ray
    except ImportError:
        need("Ray", "pip install 'hegelion-dspy[ray]'")
        raise
    return ray


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[object]:
    ray = import_ray()
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR)  # type: ignore[attr-defined]
    try:
        yield ray
    finally:
        ray.shutdown()  # type: ignore[attr-defined]


def run_ray_batch(*args: object, **kwargs: object):
    from hegelion_dspy.collect.distributed import run_ray_batch as run

    return run(*args, **kwargs)  # type: ignore[arg-type]


def assert_each_prompt_once(store: TraceStore, prompts: list[str]) -> None:
    records = list(store)  # every line parses
    assert all(r.ok for r in records)
    assert Counter(r.task for r in records) == Counter(prompts)


def worker_pids() -> list[int]:
    """Process ids of this test's Ray workers running our actor (descendants of this process, by /proc)."""
    parents: dict[int, int] = {}
    titles: dict[int, bytes] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            titles[int(entry.name)] = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])

    def mine(pid: int) -> bool:
        while pid > 1:
            pid = parents.get(pid, 0)
            if pid == os.getpid():
                return True
        return False

    return [pid for pid, title in titles.items() if b"DialecticWorker" in title and mine(pid)]


def test_500_prompts_give_500_ok_traces_and_no_duplicates(ray_cluster: object, store: TraceStore) -> None:
    seen: list[TraceRecord] = []
    result = run_ray_batch(
        PROMPTS, recipe=RunRecipe(model="scripted"), store=store, workers=2, concurrency=8, on_result=seen.append
    )
    assert (result.ok, result.failed, result.skipped, result.not_run) == (500, 0, 0, 0)
    assert len(seen) == 500
    assert_each_prompt_once(store, PROMPTS)
    assert {r.model for r in store} == {"scripted"} and {r.source for r in store} == {"cli"}


def test_a_worker_killed_mid_run_still_gives_500_once_each(
    ray_cluster: object, store: TraceStore, caplog: pytest.LogCaptureFixture
) -> None:
    killed: list[int] = []

    def kill_one_after_100(record: TraceRecord) -> None:
        if len(store_lines()) >= 100 and not killed:
            pids = worker_pids()
            assert len(pids) == 2, pids
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    def store_lines() -> bytes:
        return store.path.read_bytes().splitlines() if store.path.exists() else []  # type: ignore[return-value]

    with caplog.at_level(logging.WARNING, logger="hegelion_dspy.collect.distributed"):
        result = run_ray_batch(
            PROMPTS,
            recipe=RunRecipe(model="scripted/latency=0.002"),
            store=store,
            workers=2,
            concurrency=8,
            on_result=kill_one_after_100,
        )
    assert killed
    assert "a Ray worker died" in caplog.text
    assert (result.ok, result.failed) == (500, 0)
    assert_each_prompt_once(store, PROMPTS)


def test_an_interrupted_ray_batch_resumes(ray_cluster: object, store: TraceStore) -> None:
    received: list[TraceRecord] = []

    def ctrl_c_after_150(record: TraceRecord) -> None:
        received.append(record)
        if len(received) == 150:
            raise KeyboardInterrupt

    recipe = RunRecipe(model="scripted/latency=0.002")
    with pytest.raises(KeyboardInterrupt):
        run_ray_batch(PROMPTS, recipe=recipe, store=store, workers=2, concurrency=8, on_result=ctrl_c_after_150)
    finished = list(store)  # the 150 heard, and any that arrived with them (logged before they are reported)
    assert 150 <= len(finished) < 500 and all(r.ok for r in finished)

    result = run_ray_batch(PROMPTS, recipe=recipe, store=store, workers=2, concurrency=8)
    assert (result.ok, result.skipped) == (500 - len(finished), len(finished))
    assert_each_prompt_once(store, PROMPTS)


def test_max_cost_is_one_budget_for_every_ray_worker_never_passed_by_what_the_server_served(
    ray_cluster: object, store: TraceStore
) -> None:
    from faulty_server import faulty_server

    from hegelion_dspy.lms.metering import token_prices

    prices = token_prices(PRICED)
    one = run_dialectic("probe", lm=ScriptedLM(model=PRICED)).cost_usd  # what one dialectic really costs
    assert prices is not None and one is not None
    # 2 workers x 4 dialectics in flight: reporting spend after the fact, they overshot by up to 8 calls
    budget = 6 * one
    with faulty_server(prices=prices) as server:
        recipe = RunRecipe(model=PRICED, api_base=(server.url,), max_tokens=256, timeout=10)
        tasks = [f"budget prompt {uuid.uuid4().hex[:8]} {i}" for i in range(40)]
        result = run_ray_batch(tasks, recipe=recipe, store=store, workers=2, concurrency=4, max_cost=budget)
    assert server.served_usd <= budget  # the provider's bill, with every call in flight counted
    assert result.stopped == "max_cost" and result.failed == 0 and 1 <= result.ok < 40
    assert result.meter.cost_usd == pytest.approx(server.served_usd)  # every call served was counted
    logged = list(store)
    assert len(logged) == result.ok and len({r.task for r in logged}) == result.ok and result.not_run == 40 - result.ok


def test_a_program_file_travels_to_the_workers(ray_cluster: object, store: TraceStore, tmp_path: Path) -> None:
    from hegelion_dspy.program import Dialectic, program_digest, save_program

    program = save_program(Dialectic(mode="coding", iterations=2), tmp_path / "program.json")
    result = run_ray_batch(PROMPTS[:6], recipe=RunRecipe(model="scripted", program=program), store=store, workers=2)
    assert result.ok == 6
    assert {(r.program, r.program_digest, r.mode, len(r.rounds)) for r in store} == {
        (str(program), program_digest(program), "coding", 2)
    }


def test_a_worker_that_cannot_start_is_one_clear_error(ray_cluster: object, store: TraceStore) -> None:
    from hegelion_dspy.errors import ClusterError

    def broken() -> ScriptedLM:
        raise ConfigError("no such model on this node")

    # the driver builds its own context first, so fail only in the workers
    calls = {"n": 0}

    def first_works() -> ScriptedLM:
        calls["n"] += 1
        if calls["n"] > 1:
            return broken()
        return ScriptedLM()

    with pytest.raises(ClusterError, match="could not start: ConfigError: no such model on this node"):
        run_ray_batch(PROMPTS[:4], recipe=RunRecipe(lm=first_works), store=store, workers=1)
    assert not store.path.exists()


def test_a_worker_that_dies_while_starting_is_replaced_like_a_dead_one(
    ray_cluster: object, store: TraceStore, tmp_path: Path
) -> None:
    marker, driver = tmp_path / "died-once", os.getpid()

    def dies_in_the_first_worker() -> ScriptedLM:
        if os.getpid() != driver and not marker.exists():
            marker.write_text(str(os.getpid()))
            os._exit(3)  # the worker process dies in the middle of starting
        return ScriptedLM()

    result = run_ray_batch(PROMPTS[:6], recipe=RunRecipe(lm=dies_in_the_first_worker), store=store, workers=1)
    assert marker.exists() and (result.ok, result.failed) == (6, 0)
    assert_each_prompt_once(store, PROMPTS[:6])


def test_only_a_missing_package_asks_to_install_it_on_every_node() -> None:
    from hegelion_dspy.collect.distributed import _missing_package

    assert _missing_package(RuntimeError("ModuleNotFoundError: No module named 'hegelion_dspy'"))
    assert not _missing_package(RuntimeError("The actor died unexpectedly before finishing this task (exit 3)"))
    assert not _missing_package(RuntimeError("ModuleNotFoundError: No module named 'numpy'"))


# -- the CLI ----------------------------------------------------------------------------------------------------------


def hegelion(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HEGELION, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_hegelion_prompts_ray_runs_the_batch_like_a_local_one(tmp_path: Path) -> None:
    import_ray()
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(f"{p}\n" for p in PROMPTS[:40]), encoding="utf-8")
    log = tmp_path / "log.jsonl"
    args = ["--prompts", str(prompts), "--ray", "-m", "scripted", "--log-file", str(log), "-j", "4"]

    done = hegelion(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "40 ok, 0 failed, 0 skipped" in done.stderr
    again = hegelion(*args, cwd=tmp_path)
    assert again.returncode == 0 and "0 ok, 0 failed, 40 skipped" in again.stderr
    assert_each_prompt_once(TraceStore(log), PROMPTS[:40])


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_during_a_ray_batch_keeps_the_finished_traces_and_a_rerun_resumes(tmp_path: Path) -> None:
    import_ray()
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(f"{p}\n" for p in PROMPTS[:120]), encoding="utf-8")
    log = tmp_path / "log.jsonl"
    args = ["--prompts", str(prompts), "--ray", "--log-file", str(log), "-j", "4", "-m", "scripted/latency=0.05"]
    # preexec_fn: a background shell (`nohup pytest &`) starts its children with SIGINT ignored; this one must hear it
    proc = subprocess.Popen(
        [HEGELION, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not log.exists() or log.read_bytes().count(b"\n") < 5):
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)

    assert proc.returncode == 130, err
    assert "interrupted; every finished trace is kept" in err
    finished = list(TraceStore(log))
    assert 5 <= len(finished) < 120 and all(r.ok for r in finished)

    done = hegelion(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"{120 - len(finished)} ok, 0 failed, {len(finished)} skipped" in done.stderr
    assert_each_prompt_once(TraceStore(log), PROMPTS[:120])


class _Granted:
    """What ``keeper.grant.remote(usd)`` is to a worker: an ObjectRef whose ``future()`` holds the answer."""

    def __init__(self, usd: float):
        self.answer: concurrent.futures.Future[float] = concurrent.futures.Future()
        self.answer.set_result(usd)

    def future(self) -> concurrent.futures.Future[float]:
        return self.answer


class _KeeperHandle:
    """A BudgetKeeper called as a Ray actor handle is (``handle.grant.remote(usd)``), in this process: no Ray."""

    def __init__(self, limit: float):
        from hegelion_dspy.collect.ray_worker import BudgetKeeper

        keeper = BudgetKeeper(limit)
        self.grant = types.SimpleNamespace(remote=lambda usd: _Granted(keeper.grant(usd)))


def test_a_worker_reports_the_calls_of_dialectics_its_budget_stopped_before_they_left_a_trace(
    store: TraceStore,
) -> None:
    # CI saw a batch's meter miss what the provider served: a worker sent its counts only beside finished traces, so
    # the calls of a dialectic the budget stopped half-way (no trace) never reached the driver.
    from faulty_server import faulty_server

    from hegelion_dspy.collect.ray_worker import DialecticWorker, WorkerPlan
    from hegelion_dspy.lms.metering import token_prices

    prices = token_prices(PRICED)
    one = run_dialectic("probe", lm=ScriptedLM(model=PRICED)).cost_usd
    assert prices is not None and one is not None

    async def run(worker: DialecticWorker) -> list[tuple[int, dict[str, float]]]:
        await worker.submit([(i, f"worker budget prompt {i}") for i in range(6)])
        return [(len(batch), counts) async for batch, counts in worker.results()]

    with faulty_server(prices=prices) as server:
        recipe = RunRecipe(model=PRICED, api_base=(server.url,), max_tokens=256, timeout=10)
        plan = WorkerPlan(recipe, None, 1, 1, None, "cli", (), _KeeperHandle(4 * one))  # type: ignore[arg-type]
        sent = asyncio.run(run(DialecticWorker(plan)))
    traces = sum(n for n, _ in sent)
    last = sent[-1][1]
    assert 1 <= traces < 6 and last["calls"] > 3 * traces  # a dialectic was cut off after some of its three calls
    assert last["cost_usd"] == pytest.approx(server.served_usd)  # and its calls were reported all the same
