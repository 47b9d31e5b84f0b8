"""Batch collection throughput: 200 prompts x 2 iterations through an LM fake with 100 ms latency per call.

Prints wall time against the critical-path limit (prompts x calls x latency / concurrency) and the per-dialectic
overhead (a zero-latency LM, one dialectic at a time), split into DSPy's share and the project's own share.

    python benchmarks/bench_collect.py [--prompts 200] [--latency 0.1] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from hegelion_dspy.collect.batch import run_batch
from hegelion_dspy.collect.context import RunContext
from hegelion_dspy.collect.run import run_dialectic
from hegelion_dspy.lms.scripted import ScriptedLM
from hegelion_dspy.store import TraceStore


def batch_wall_time(prompts: int, iterations: int, latency: float, concurrency: int, log: Path) -> tuple[float, int]:
    lm = ScriptedLM(latency=latency)
    ctx = RunContext.build(lm=lm, iterations=iterations)
    tasks = [f"benchmark prompt {i}" for i in range(prompts)]
    started = time.perf_counter()
    result = asyncio.run(run_batch(tasks, ctx=ctx, store=TraceStore(log), concurrency=concurrency))
    elapsed = time.perf_counter() - started
    assert result.ok == prompts, result
    return elapsed, len(lm.calls)


def overhead_per_dialectic(iterations: int, repeats: int, log: Path, *, manners: bool = True) -> tuple[float, float]:
    """(total ms, own ms) per dialectic with a zero-latency LM, through ``run_dialectic``.

    own = everything outside the steps (each step's recorded wall time, which holds the DSPy predictor calls and the
    LM wrapper): the round logic, usage tracking, building the TraceRecord, its cost and the locked append. Without
    ``manners`` the LM is not wrapped in ``PoliteLM`` (a RunContext made by hand, as the MCP server's).
    """
    lm = ScriptedLM()
    ctx = RunContext.build(lm=lm, iterations=iterations)
    if not manners:
        ctx = replace(ctx, lm=lm)
    store = TraceStore(log)
    totals, own = [], []
    for i in range(repeats):
        t0 = time.perf_counter()
        record = run_dialectic(f"overhead {i}", ctx=ctx, store=store)
        t2 = time.perf_counter()
        in_steps = sum(sum(r.seconds.values()) for r in record.rounds)
        totals.append((t2 - t0) * 1000)
        own.append((t2 - t0 - in_steps) * 1000)
    return statistics.median(totals), statistics.median(own)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        elapsed, calls = batch_wall_time(
            args.prompts, args.iterations, args.latency, args.concurrency, Path(tmp) / "batch.jsonl"
        )
        total_ms, own_ms = overhead_per_dialectic(args.iterations, 200, Path(tmp) / "overhead.jsonl")
        bare_ms, _ = overhead_per_dialectic(args.iterations, 200, Path(tmp) / "bare.jsonl", manners=False)

    calls_per = calls / args.prompts
    issue_limit = args.prompts * 3 * args.iterations * args.latency / args.concurrency
    real_limit = args.prompts * calls_per * args.latency / args.concurrency
    print(
        f"batch: {args.prompts} prompts x {args.iterations} iterations, {args.latency * 1000:.0f} ms per LM call, "
        f"concurrency {args.concurrency}"
    )
    print(f"  LM calls per dialectic: {calls_per:g} (the thesis is generated once; later rounds reuse the synthesis)")
    print(f"  wall time: {elapsed:.2f} s")
    print(
        f"  limit with 3 calls/round (issue's formula): {issue_limit:.2f} s -> ratio {elapsed / issue_limit:.2f}x "
        "(goal <= 1.3x)"
    )
    print(f"  limit with the calls actually made: {real_limit:.2f} s -> ratio {elapsed / real_limit:.2f}x")
    print(f"overhead per dialectic ({args.iterations} iterations, zero-latency LM, median of 200):")
    print(f"  total, including DSPy's ChatAdapter formatting/parsing of 5 calls: {total_ms:.2f} ms")
    print(f"  the project's own share (round logic, usage, record, locked append): {own_ms:.2f} ms (goal < 5 ms)")
    print(
        f"  the LM manners wrapper (limits, retries, prices) adds {total_ms - bare_ms:.2f} ms, inside the steps "
        f"(the same dialectic without it: {bare_ms:.2f} ms)"
    )


if __name__ == "__main__":
    main()
