"""The embedded default LM (SmolLM2-135M-Instruct, CPU): load time, tokens per second, peak memory, one dialectic.

Pins itself to ``--cores`` CPUs (default 2) and prints what it measured. Run it in a fresh process: the load time is
the first-use cost a user pays once per process.

    python benchmarks/bench_embedded.py [--cores 2] [--tokens 128] [--repeats 3] [--task "Why is the sky blue?"]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

PROMPT = [{"role": "user", "content": "Explain in a few paragraphs how a refrigerator keeps food cold."}]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def tokens_per_second(lm: object, threads: int, tokens: int, repeats: int) -> tuple[float, int]:
    """Median new tokens per second generating from PROMPT with ``threads`` torch threads; and the tokens made."""
    backend = lm._backend  # type: ignore[attr-defined]
    rates, made = [], 0
    for _ in range(repeats):
        started = time.perf_counter()
        completion = backend.generate(
            PROMPT,
            max_new_tokens=tokens,
            temperature=0.0,
            top_p=None,
            seed=None,
            repetition_penalty=lm.repetition_penalty,
            threads=threads,  # type: ignore[attr-defined]
        )
        made = completion.completion_tokens or 0
        rates.append(made / (time.perf_counter() - started))
    return statistics.median(rates), made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cores", type=int, default=2, help="CPUs to pin the process to (0: do not pin)")
    parser.add_argument("--tokens", type=int, default=128, help="new tokens per generation in the speed test")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--task", default="Why is the sky blue?")
    args = parser.parse_args()
    if args.cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: args.cores])
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()

    started = time.perf_counter()
    import torch  # noqa: F401  (import cost reported apart from the load)

    from hegelion_dspy.collect import run_dialectic
    from hegelion_dspy.lms.embedded import embedded_lm
    from hegelion_dspy.store import TraceStore

    imported = time.perf_counter() - started
    rss_before = peak_rss_mb()
    started = time.perf_counter()
    lm = embedded_lm()
    load = time.perf_counter() - started
    rss_loaded = peak_rss_mb()

    print(f"cores: {cores}   load avg at start: {os.getloadavg()[0]:.2f}")
    print(f"import (torch, transformers, dspy): {imported:.1f} s")
    print(f"load (GGUF parse + dequantise to float32): {load:.1f} s   peak RSS {rss_before:.0f} -> {rss_loaded:.0f} MB")
    for threads in (1, 2):
        rate, made = tokens_per_second(lm, threads, args.tokens, args.repeats)
        default = " (default)" if threads == lm.threads else ""
        runs = f"median of {args.repeats} x {made} tokens"
        print(f"generation, {threads} torch thread(s){default}: {rate:.1f} tokens/s ({runs})")

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        record = run_dialectic(args.task, lm=lm, store=TraceStore(Path(tmp) / "traces.jsonl"))
        wall = time.perf_counter() - started
    [round_] = record.rounds
    steps = ", ".join(
        f"{step} {round_.seconds[step]:.1f} s / {round_.usage[step].completion_tokens} tokens"  # type: ignore[index]
        for step in ("thesis", "antithesis", "synthesis")
    )
    print(f"one dialectic ({record.status}): {wall:.1f} s   [{steps}]")
    print(f"RSS now: {rss_mb():.0f} MB   peak RSS: {peak_rss_mb():.0f} MB   load avg at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
