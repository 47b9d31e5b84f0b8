"""hegelion eval on the shipped 135M model, CPU: log-probability scoring in pairs/s (M and M0 each score chosen and
rejected: 4 forward passes a pair) beside the same forward passes called directly on the model (the baseline), forced
choice items/s (HaluEval judge), generation suites in items/s (selfcorrect through the real dialectic), and for each
the share of the eval's wall time spent inside model calls (the harness' own overhead should stay under 5%).

    nice -n 15 python benchmarks/bench_eval.py [--pairs 16] [--halueval 20] [--selfcorrect 4]

Train steps/s on the 135M are measured by benchmarks/bench_train.py (helper train's), not repeated here.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hegelion_dspy.eval import logprob, selfcorrect
from hegelion_dspy.eval.run import evaluate

# (start, end) of every model call. Calls run concurrently (generation suites, -j) and nest (a forced choice calls
# the scorer), so the time "inside model calls" is the wall time their intervals cover, not the sum of their lengths.
CALLS: list[tuple[float, float]] = []
# (start, end) of every one-time model load (transformers weights for scoring, the llama.cpp runtime for generation):
# a cost of the model, paid once per eval whatever its size, so the harness' own overhead is shown without it too.
LOADS: list[tuple[float, float]] = []


def timed(fn: Callable[..., Any], into: list[tuple[float, float]] = CALLS) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            into.append((started, time.perf_counter()))  # list.append is atomic under the GIL

    return wrapper


def covered(intervals: list[tuple[float, float]]) -> float:
    """The length of the union of ``intervals``."""
    total, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        if stop <= end:
            continue
        total += stop - max(start, end)
        end = stop
    return total


def synthetic_export(folder: Path, pairs: int) -> Path:
    (folder / "data").mkdir(parents=True)
    rows = [
        {"prompt": f"Question {i}: why is the sky blue?", "chosen": "Rayleigh scattering of sunlight by air. " * 4,
         "rejected": "Because the sea reflects in it. " * 3}
        for i in range(pairs)
    ]  # fmt: skip
    (folder / "data" / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "data" / "train.jsonl").write_text("")
    return folder


def run_suite(label: str, items: int, **kwargs: Any) -> tuple[float, float]:
    CALLS.clear()
    LOADS.clear()
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        evaluate(out=Path(out) / "report", **kwargs)
        wall = time.perf_counter() - started
    inside, loads = covered(CALLS), covered(LOADS)
    harness = max(0.0, wall - inside - loads)
    print(
        f"{label:<34} {items / wall:8.2f} items/s   wall {wall:7.1f} s   inside model calls {inside / wall:6.1%}"
        f"   loading models {loads / wall:6.1%}   harness overhead {harness / wall:6.1%}"
        f" ({harness / max(wall - loads, 1e-9):6.1%} of the time after loading)"
    )
    return wall, inside


def baseline_pairs(pairs: int, data: Path) -> float:
    """The same forward passes (4 per pair), called directly on a loaded scorer: no suite, no statistics, no files."""
    from hegelion_dspy.eval.models import resolve_eval_model

    scorer = logprob.Scorer.load(resolve_eval_model("embedded").need_weights("bench"))
    rows = [json.loads(x) for x in (data / "data" / "test.jsonl").read_text().splitlines()]
    started = time.perf_counter()
    for row in rows[:pairs]:
        for _ in range(2):
            scorer.logprob(row["prompt"], row["chosen"])
            scorer.logprob(row["prompt"], row["rejected"])
    return pairs / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument("--halueval", type=int, default=20)
    parser.add_argument("--selfcorrect", type=int, default=4)
    args = parser.parse_args()
    # Time spent inside the model: every forward pass, every dialectic (all its LM calls) and every chat call.
    logprob.Scorer._forward_logprobs = timed(logprob.Scorer._forward_logprobs)  # type: ignore[method-assign]
    logprob.Scorer._next_token_logprobs = timed(logprob.Scorer._next_token_logprobs)  # type: ignore[method-assign]
    import hegelion_dspy.collect.run as collect_run
    import hegelion_dspy.eval.halueval as halueval

    collect_run.run_dialectic = timed(collect_run.run_dialectic)
    halueval.chat_text = timed(halueval.chat_text)
    import hegelion_dspy.lms.llamacpp as llamacpp

    loader = logprob.Scorer.load.__func__  # type: ignore[attr-defined]
    logprob.Scorer.load = classmethod(timed(loader, LOADS))  # type: ignore[method-assign,assignment]
    llamacpp.LlamaRuntime.__init__ = timed(llamacpp.LlamaRuntime.__init__, LOADS)  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as tmp:
        data = synthetic_export(Path(tmp) / "export", args.pairs)
        base = baseline_pairs(args.pairs, data)
        print(f"{'baseline: direct forward passes':<34} {base:8.2f} pairs/s")
        wall, _ = run_suite(
            "preference (M vs M0, 135M)", args.pairs, model="embedded", base="embedded", suites="preference", data=data
        )
        print(f"{'preference scoring':<34} {args.pairs / wall:8.2f} pairs/s (includes loading the weights once)")
    if args.halueval:
        run_suite("halueval judge + answer (135M)", args.halueval, model="embedded", suites="halueval", n=args.halueval)
    if args.selfcorrect:
        run_suite(
            "selfcorrect M vs M0 (135M)",
            args.selfcorrect,
            model="embedded",
            base="embedded",
            suites="selfcorrect",
            n=args.selfcorrect,
            max_tokens=96,
        )
    print(f"(selfcorrect items: {selfcorrect.SELFCORRECT_DEFAULT_N} by default; each runs 2 dialectics of 3 LM calls)")


if __name__ == "__main__":
    main()
