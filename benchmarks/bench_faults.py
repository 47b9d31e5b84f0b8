"""A batch against an API that misbehaves: 100 prompts x 2 iterations (500 LM calls) on the fault-injecting
OpenAI-compatible server of the tests (tests/faulty_server.py: real HTTP on loopback), where each request at random
hangs (20%), is cut mid-body (10%) or is refused 429 with Retry-After (10%), and an answer takes ``--latency`` (0.1 s),
side by side with the same batch against a clean server, in one run.

The figure of merit: every prompt ends ``ok``, and the faulty batch's wall time is within 1.5x of the clean batch's
plus what the timeouts themselves cost (hung calls x timeout / concurrency: time no client can save).

The timeouts and backoff are scaled down with the batch (``--timeout 1`` s instead of 120 s, ``backoff`` 0.05 s
instead of 1 s) so the run takes a minute, not hours; the hosted LM gets its timeout through ``dspy.LM(timeout=...)``
so the same script measures code that has no ``--timeout`` (``--before PATH`` runs the faulty batch again with the
package imported from the checkout at PATH, in a subprocess):

    git worktree add /tmp/faults-base main
    nice -n 15 python benchmarks/bench_faults.py --before /tmp/faults-base
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
FAULTS = {"hang": 0.2, "drop": 0.1, "429": 0.1}
PRICED = "openai/gpt-4o-mini"
WHY = [("timed out", "timeout"), ("outstanding", "cut mid-body"), ("closed", "cut mid-body"), ("429", "429")]


def use_checkout(path: str) -> None:
    """Import hegelion_dspy from the checkout at ``path`` instead of the editable install."""
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__module__.lower()]
    sys.path.insert(0, path)


def run_case(faulty: bool, args: argparse.Namespace) -> dict[str, Any]:
    sys.path.insert(0, str(HERE.parent / "tests"))
    from faulty_server import OK, Fault, faulty_server, random_faults

    from hegelion_dspy.collect.batch import run_batch
    from hegelion_dspy.collect.context import RunContext
    from hegelion_dspy.lms.hosted import HostedLM
    from hegelion_dspy.lms.manners import Manners

    pick = random_faults(FAULTS if faulty else {}, seed=args.seed, retry_after=args.retry_after)
    answered = Fault("slow", delay=args.latency)  # a provider takes time to answer; refusals and cuts come fast

    def faults(number: int) -> Fault:
        fault = pick(number)
        return answered if fault == OK else fault

    run_id = uuid.uuid4().hex[:8]
    tasks = [f"fault bench {run_id} prompt {i}" for i in range(args.prompts)]
    with faulty_server(faults, key=_prompt_of) as server:
        lm = HostedLM(PRICED, api_base=server.url, api_key="x", timeout=args.timeout, max_tokens=256, cache=False)
        manners = Manners(max_retries=args.max_retries, backoff=args.backoff, max_backoff=1.0)
        ctx = RunContext.build(lm=lm, manners=manners, iterations=args.iterations)
        records: list[Any] = []
        started = time.perf_counter()
        result = asyncio.run(
            run_batch(tasks, ctx=ctx, store=None, concurrency=args.concurrency, on_result=records.append)
        )
        wall = time.perf_counter() - started
        kinds = dict(server.kinds)
        hangs = {prompt: n for (prompt, kind), n in server.by_key.items() if kind == "hang"}
    # per prompt, in the order the batch took them: its dialectic's wall time (the steps' seconds, retries included)
    # and how many of its calls hung
    seconds = {r.task.rsplit(" ", 1)[1]: sum(sum(x.seconds.values()) for x in r.rounds) for r in records}
    prompts = [(seconds.get(str(i), 0.0), hangs.get(str(i), 0)) for i in range(args.prompts)]
    meter = result.meter
    reasons: dict[str, int] = {}
    for _task, reason in result.failures:  # the first few failures' reasons
        key = next((name for word, name in WHY if word in reason), "other")
        reasons[key] = reasons.get(key, 0) + 1
    return {
        "ok": result.ok,
        "failed": result.failed,
        "wall": wall,
        "requests": server.requests,
        "kinds": kinds,
        "retries": meter.retries,
        "timed_out": getattr(meter, "timed_out", None),
        "cut_off": getattr(meter, "cut_off", None),
        "rate_limited": meter.rate_limited,
        "first_failures": reasons,
        "prompts": prompts,
    }


def _prompt_of(request: dict[str, Any]) -> str:
    """The prompt number a request is for (its task is in the user message), or "?"."""
    text = " ".join(str(m.get("content", "")) for m in request.get("messages", []) if isinstance(m, dict))
    found = re.search(r"fault bench [0-9a-f]{8} prompt (\d+)", text)
    return found[1] if found else "?"


def fifo_wall(durations: list[float], slots: int) -> float:
    """When the last of ``durations`` ends, run in order on ``slots`` slots, each taking the next as it frees (as
    run_batch's runners take prompts from its queue)."""
    ends = [0.0] * slots
    for duration in durations:
        heapq.heapreplace(ends, ends[0] + duration)
    return max(ends)


def timeouts_critical(case: dict[str, Any], args: argparse.Namespace) -> tuple[float, float]:
    """What the hung calls cost this batch counted where they fell: the batch replayed (``fifo_wall``) from each
    prompt's own wall time, with and without ``timeout`` per hung call of it. Unlike ``timeouts_cost`` it counts a
    prompt whose calls hung several times in a row at the end, while the other slots have nothing left to do. Returns
    (that cost, the replayed wall with the hangs: a check against the measured wall)."""
    durations = [d for d, _ in case["prompts"]]
    without = [max(0.0, d - n * args.timeout) for d, n in case["prompts"]]
    replayed = fifo_wall(durations, args.concurrency)
    return replayed - fifo_wall(without, args.concurrency), replayed


def timeouts_cost(case: dict[str, Any], args: argparse.Namespace) -> float:
    """Seconds the hung calls cost a batch that retries them at once: each waits its timeout, ``concurrency`` at a
    time."""
    return case["kinds"].get("hang", 0) * args.timeout / args.concurrency


def report(name: str, case: dict[str, Any]) -> str:
    k = case["kinds"]
    return (
        f"{name:<28} {case['ok']:>4} ok {case['failed']:>4} failed  {case['wall']:7.1f} s  {case['requests']:>5} "
        f"requests (hang {k.get('hang', 0)}, drop {k.get('drop', 0)}, 429 {k.get('429', 0)})  "
        f"{case['retries']} retries"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=100)
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=1.0)
    parser.add_argument("--backoff", type=float, default=0.05)
    parser.add_argument("--retry-after", type=float, default=0.1)
    parser.add_argument("--max-retries", type=int, default=10)
    parser.add_argument("--seed", type=int, default=22)
    parser.add_argument("--latency", type=float, default=0.1, help="seconds the server takes to answer")
    parser.add_argument("--before", metavar="PATH", help="also run the faulty batch on the code checked out at PATH")
    parser.add_argument("--only", choices=["clean", "faulty"], help=argparse.SUPPRESS)
    parser.add_argument("--code", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.code:
        use_checkout(args.code)
    if args.only:
        print(json.dumps(run_case(args.only == "faulty", args)))
        return

    print(
        f"{args.prompts} prompts x {args.iterations} iterations, -j {args.concurrency}, timeout {args.timeout:g} s, "
        f"backoff {args.backoff:g} s, answers after {args.latency:g} s, faults {FAULTS}, load {os.getloadavg()[0]:.1f}"
    )
    clean = run_case(False, args)
    faulty = run_case(True, args)
    print(report("clean server", clean))
    print(report("faulty server", faulty))
    lost = timeouts_cost(faulty, args)
    asked = faulty["kinds"].get("429", 0) * args.retry_after  # every call waits out each Retry-After (issue 22 item 2)
    limit = 1.5 * clean["wall"] + lost
    print(
        f"faulty wall {faulty['wall']:.1f} s vs 1.5 x clean {clean['wall']:.1f} s + timeouts {lost:.1f} s = "
        f"{limit:.1f} s: {_within(faulty['wall'], limit)}; + the pauses the server asked for ({asked:.1f} s) = "
        f"{limit + asked:.1f} s: {_within(faulty['wall'], limit + asked)}; all ok: {faulty['ok'] == args.prompts}; "
        f"retries: {faulty['timed_out']} timed out, {faulty['cut_off']} cut off, {faulty['rate_limited']} after a 429"
    )
    where, replayed = timeouts_critical(faulty, args)
    hung = sorted((n for _, n in faulty["prompts"]), reverse=True)[:5]
    fair = 1.5 * clean["wall"] + where
    print(
        f"timeouts counted where they fell (the batch replayed from each prompt's wall time, {replayed:.1f} s as "
        f"measured {faulty['wall']:.1f} s, with and without {args.timeout:g} s per hung call): {where:.1f} s; "
        f"1.5 x clean + that = {fair:.1f} s: {_within(faulty['wall'], fair)} (most hung calls of one prompt: {hung}; "
        f"the hangs cost {lost:.1f} s spread over {args.concurrency} slots)"
    )
    if args.before:
        done = subprocess.run(
            [sys.executable, __file__, "--only", "faulty", "--code", args.before, *_passed(args)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            print(f"before ({args.before}) failed:\n{done.stderr[-3000:]}")
            return
        before = json.loads(done.stdout.strip().splitlines()[-1])
        print(report("faulty server, before", before))
        print(
            f"before: the first {sum(before['first_failures'].values())} failures by reason: {before['first_failures']}"
        )


def _within(wall: float, limit: float) -> str:
    return "within" if wall <= limit else "NOT within"


def _passed(args: argparse.Namespace) -> list[str]:
    names: tuple[str, ...] = (
        "prompts",
        "iterations",
        "concurrency",
        "timeout",
        "backoff",
        "retry_after",
        "max_retries",
        "seed",
    )
    names += ("latency",)
    return [part for name in names for part in (f"--{name.replace('_', '-')}", str(getattr(args, name)))]


if __name__ == "__main__":
    main()
