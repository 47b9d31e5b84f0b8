"""Batch throughput in one process vs on a local Ray cluster: 2,000 prompts x 2 iterations, 100 ms per LM call.

For each configuration it prints the wall time, the throughput (dialectics/s), the ratio to the critical-path limit
(prompts x calls per dialectic x latency / dialectics in flight), the driver's CPU per dialectic (the one process's
CPU for a local batch; the driver's alone on Ray, whose workers' CPU is given beside it) and the CPU the whole batch
used. The baseline is the one-process batch at the same total concurrency, measured in the same run.

    python benchmarks/bench_scale.py [--prompts 2000] [--iterations 2] [--latency 0.1]
        [--pairs 16x2,128x2]   # per pair: dialectics in flight per worker x Ray workers (local runs them all at once)

Needs Ray (pip install 'hegelion-dspy[ray]'). The machine's other load skews the CPU-bound figures: the load average is
printed with them.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from hegelion_dspy.collect.batch import run_batch
from hegelion_dspy.collect.context import RunContext, RunRecipe
from hegelion_dspy.collect.distributed import run_ray_batch
from hegelion_dspy.lms.scripted import ScriptedLM
from hegelion_dspy.program import total_steps
from hegelion_dspy.store import TraceStore

TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Figures:
    name: str
    in_flight: int
    wall: float
    ok: int
    driver_cpu: float
    worker_cpu: float | None
    limit: float
    finished_at: list[float]  # seconds from the start, one per trace

    @property
    def steady(self) -> float:
        """Dialectics per second between the 10th and the 90th percentile of finishing times (no start-up)."""
        low, high = self.finished_at[len(self.finished_at) // 10], self.finished_at[len(self.finished_at) * 9 // 10]
        return (len(self.finished_at) * 8 // 10) / (high - low)

    def line(self, baseline: Figures | None) -> str:
        rate = self.ok / self.wall
        cpu = self.driver_cpu + (self.worker_cpu or 0.0)
        workers = "" if self.worker_cpu is None else f", workers {self.worker_cpu / self.ok * 1000:.2f} ms"
        versus = "" if baseline is None else f" ({rate / (baseline.ok / baseline.wall):.2f}x the one process)"
        steady = "" if baseline is None else f" ({self.steady / baseline.steady:.2f}x)"
        return (
            f"  {self.name:<24} {self.wall:6.2f} s = {self.wall / self.limit:4.2f}x the critical path "
            f"({self.limit:.2f} s); {rate:6.1f} dialectics/s{versus}\n"
            f"  {'':<24} first trace after {self.finished_at[0]:.2f} s; steady {self.steady:.1f} dialectics/s{steady}\n"
            f"  {'':<24} CPU per dialectic: driver {self.driver_cpu / self.ok * 1000:.2f} ms{workers}; "
            f"{cpu / self.wall:.2f} cores busy"
        )


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


class WorkerCpu:
    """Samples the CPU seconds of this process's Ray worker processes running our actor (kept after they exit)."""

    def __init__(self) -> None:
        self.seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> WorkerCpu:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            self._sample()
            if self._stop.wait(0.25):
                return

    def _sample(self) -> None:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if b"DialecticWorker" in (entry / "cmdline").read_bytes() and self._mine(int(entry.name)):
                    self.seen[int(entry.name)] = process_cpu(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue

    @staticmethod
    def _mine(pid: int) -> bool:
        while pid > 1:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
            if pid == os.getpid():
                return True
        return False

    @property
    def total(self) -> float:
        return sum(self.seen.values())


def limit(prompts: int, iterations: int, latency: float, in_flight: int) -> float:
    return prompts * total_steps(iterations) * latency / in_flight


def local(prompts: list[str], iterations: int, latency: float, in_flight: int, log: Path) -> Figures:
    ctx = RunContext.build(lm=ScriptedLM(latency=latency), iterations=iterations)
    cpu, started = time.process_time(), time.perf_counter()
    finished: list[float] = []
    result = asyncio.run(
        run_batch(
            prompts,
            ctx=ctx,
            store=TraceStore(log),
            concurrency=in_flight,
            on_result=lambda _: finished.append(time.perf_counter() - started),
        )
    )
    wall, used = time.perf_counter() - started, time.process_time() - cpu
    assert result.ok == len(prompts), result
    return Figures(
        f"one process, {in_flight} at once",
        in_flight,
        wall,
        result.ok,
        used,
        None,
        limit(len(prompts), iterations, latency, in_flight),
        finished,
    )


def on_ray(prompts: list[str], iterations: int, latency: float, per_worker: int, workers: int, log: Path) -> Figures:
    recipe = RunRecipe(model=f"scripted/latency={latency:g}", iterations=iterations)
    finished: list[float] = []
    with WorkerCpu() as sampler:
        cpu, started = time.process_time(), time.perf_counter()
        result = run_ray_batch(
            prompts,
            recipe=recipe,
            store=TraceStore(log),
            workers=workers,
            concurrency=per_worker,
            on_result=lambda _: finished.append(time.perf_counter() - started),
        )
        wall, used = time.perf_counter() - started, time.process_time() - cpu
    assert result.ok == len(prompts), result
    return Figures(
        f"Ray, {workers} workers x {per_worker}",
        per_worker * workers,
        wall,
        result.ok,
        used,
        sampler.total,
        limit(len(prompts), iterations, latency, per_worker * workers),
        finished,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=2000)
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--pairs", default="16x2,128x2", help="PER_WORKERxWORKERS,...")
    args = parser.parse_args()
    pairs = [tuple(int(n) for n in pair.split("x")) for pair in args.pairs.split(",")]

    import ray

    started = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level=logging.ERROR)
    ray_start = time.perf_counter() - started
    calls = total_steps(args.iterations)
    print(
        f"{args.prompts} prompts x {args.iterations} iterations ({calls} LM calls each) at "
        f"{args.latency * 1000:.0f} ms per call; {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f} before; a local Ray cluster started in {ray_start:.1f} s (not in the figures)"
    )
    prompts = [f"scale benchmark prompt {i}" for i in range(args.prompts)]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for n, (per_worker, workers) in enumerate(pairs):
                baseline = local(prompts, args.iterations, args.latency, per_worker * workers, Path(tmp) / f"l{n}")
                spread = on_ray(prompts, args.iterations, args.latency, per_worker, workers, Path(tmp) / f"r{n}")
                print(f"{per_worker * workers} dialectics in flight (load average {os.getloadavg()[0]:.1f}):")
                print(baseline.line(None))
                print(spread.line(baseline))
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
