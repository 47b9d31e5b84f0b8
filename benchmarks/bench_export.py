"""Export throughput and peak memory: a synthetic log of 100,000 traces (about 5 KB each) -> DPO JSONL.

Generates the log in a temp folder (valid TraceRecords: 1 or 2 rounds, contradictions, usage, 2% failed, 1% repeated
tasks, 5% demo traces), then runs ``hegelion-dataset LOG OUT`` as a user does, in a child process, and reads that
child's own wall time, CPU time and peak resident memory (``wait4``). Baselines run in the same script, interleaved
run by run, so a busy machine slows them alike:

- the floor: a plain orjson loop in a child (read every line, decode it, write one DPO row per ok trace), what any
  exporter in Python costs at least;
- ``--before REV`` (default ``BEFORE_REV``, the driver before its rewrite into small steps and a fast line reader):
  the package as it was at that git revision (``git archive`` into a temp folder, imported through PYTHONPATH), run
  as the same ``hegelion-dataset`` command on the same v3 log, interleaved with this checkout: the before and after
  of one change in one run (``--before ''`` skips it);
- ``--baseline-src DIR``: the same command on another checkout of hegelion-dspy (e.g. ``git worktree add /tmp/old
  HEAD~5``), imported through PYTHONPATH: today's code against the previous code path. It reads the log as schema v2
  (what it understands); this checkout reads the same traces as v3 (quality flags stored, as the collect side writes
  them) and, with ``--v2-too``, the v2 log as well (flags computed on read);
- ``--reference CMD``: the reference converter (Hegelion 0.4.0's ``hegelion-dataset``, in a venv of its own) on the
  same traces written in its own log format.

    python benchmarks/bench_export.py [--traces 100000] [--runs 3] [--format dpo] [--before REV] [--log FILE]
        [--baseline-src DIR]
        [--baseline-args "..."] [--reference PATH/TO/hegelion-dataset] [-- EXTRA hegelion-dataset ARGS]

The machine is shared (2 cores): each run prints the load average, and the best and median of --runs are reported;
ratios are of the medians. ``--log FILE`` reuses a log this script wrote (``--keep``) instead of generating one.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from hegelion_dspy.quality import quality_flags
from hegelion_dspy.types import TraceRecord

REFERENCE_SECONDS = 21.7
REFERENCE_PEAK_MB = 2.28 * 1024
GOAL_SECONDS = 4.3
GOAL_PEAK_MB = 100.0
HEGELION_DATASET = Path(sys.executable).with_name("hegelion-dataset")
BEFORE_REV = "e05ab95"  # the export driver before its rewrite (issue 23): one 140-line loop over TraceRecords
# ``hegelion-dataset`` of whatever hegelion_dspy is first on PYTHONPATH (the console script would do the same)
DATASET_MAIN = "import sys; from hegelion_dspy.cli.dataset import main; sys.argv[0] = 'hegelion-dataset'; main()"

WORDS = str.split(
    "the a an model cache leak memory thread lock queue request parser token budget retry latency index edge case "
    "empty input overflow bound check test proof claim evidence counter example assume because therefore however "
    "although fix patch design trade off cost safety user error state handler schema version stream buffer disk "
    "network timeout client server merge sort heap stack pointer release allocate free reference count cycle"
)


def _paragraphs(rng: random.Random, count: int) -> list[str]:
    return [" ".join(rng.choices(WORDS, k=rng.randint(85, 200))).capitalize() + "." for _ in range(count)]


def synthetic_trace(i: int, pool: list[str]) -> dict[str, Any]:
    """One trace as the JSON the store writes. Texts are drawn from ``pool`` and numbered, so each is distinct."""

    def text(step: str, n: int) -> str:
        return f"{step} {i}: {pool[(i * 31 + n * 7) % len(pool)]}"

    task_no = i - 1 if i % 100 == 99 else i  # 1% repeat the previous task
    task = f"Task {task_no}: {pool[task_no % len(pool)][:200]}"
    rounds = []
    thesis = text("Thesis", 1)
    for r in range(1, (2 if i % 5 == 0 else 1) + 1):
        synthesis = text(f"Synthesis v{r}", 10 + r)
        rounds.append(
            {
                "index": r,
                "thesis": thesis,
                "antithesis": text("Antithesis", 20 + r),
                "contradictions": [
                    {"description": pool[(i + r) % len(pool)][:200], "evidence": pool[(i + 3 * r) % len(pool)][:300]}
                ],
                "synthesis": synthesis,
                "seconds": {"thesis": 1.2, "antithesis": 0.8, "synthesis": 1.5},
                "usage": {"thesis": {"prompt_tokens": 120, "completion_tokens": 300, "total_tokens": 420}},
            }
        )
        thesis = synthesis
    failed = i % 50 == 7
    return {
        "schema_version": 2,
        "id": f"{i:032x}",
        "created_at": "2026-11-24T10:00:00Z",
        "source": "cli",
        "task": task,
        "mode": "coding" if i % 3 == 0 else "general",
        "model": "openai/gpt-4o-mini",
        "lm": "dspy.LM",
        "adapter": "ChatAdapter",
        "program": None,
        "rounds": rounds[:1] if failed else rounds,
        "synthesis": "" if failed else rounds[-1]["synthesis"],
        "status": "failed" if failed else "ok",
        "error": {"step": "synthesis", "round": 1, "type": "Timeout", "message": "timed out"} if failed else None,
        "score": round((i % 10) / 10 + 0.05, 2),
        "tags": ["bench"],
        "metadata": {},
        **({"demo": True} if i % 20 == 11 else {}),  # 5% written by a demo model (schema v2; v1 readers refuse it)
    }


def reference_record(trace: dict[str, Any]) -> dict[str, Any]:
    """The same trace in the reference converter's log format (a HegelionResult as JSON)."""
    first = trace["rounds"][0] if trace["rounds"] else {"thesis": "", "antithesis": "", "contradictions": []}
    return {
        "query": trace["task"],
        "mode": "synthesis",
        "thesis": first["thesis"],
        "antithesis": first["antithesis"],
        "synthesis": trace["synthesis"],
        "contradictions": first["contradictions"],
        "metadata": {},
        "timestamp": trace["created_at"],
    }


FLOOR = """
import sys, orjson
dumps, newline = orjson.dumps, orjson.OPT_APPEND_NEWLINE
with open(sys.argv[1], "rb", buffering=1 << 16) as src, open(sys.argv[2], "wb", buffering=1 << 20) as out:
    for line in src:
        t = orjson.loads(line)
        if t["status"] == "ok":
            row = {"prompt": t["task"], "chosen": t["synthesis"], "rejected": t["rounds"][0]["thesis"]}
            out.write(dumps(row, option=newline))
"""


def as_v3(trace: dict[str, Any]) -> dict[str, Any]:
    """The trace as this version's collect side writes it: schema 3, its quality flags computed and stored."""
    record = TraceRecord.model_validate(trace)
    return {**trace, "schema_version": 3, "flags": quality_flags(record) if record.ok else []}


def write_log(
    path: Path, traces: int, seed: int = 7, *, reference: Path | None = None, v1: bool = False, v3: bool = False
) -> int:
    """Write the synthetic log (``v1``: without the v2 fields, for a baseline that reads only v1; ``v3``: with the
    quality flags, as this version writes); with ``reference`` also the same traces in the reference's format."""
    pool = _paragraphs(random.Random(seed), 512)
    for i in (0, 5, 7, 11, 99):  # the shapes made here are valid traces
        TraceRecord.model_validate_json(orjson.dumps(synthetic_trace(i, pool)))
    ref = open(reference, "wb", buffering=1 << 20) if reference is not None else None  # noqa: SIM115
    try:
        with open(path, "wb", buffering=1 << 20) as fh:
            for i in range(traces):
                trace = synthetic_trace(i, pool)
                if v1:
                    trace.pop("demo", None)
                    trace["schema_version"] = 1
                elif v3:
                    trace = as_v3(trace)
                fh.write(orjson.dumps(trace, option=orjson.OPT_APPEND_NEWLINE))
                if ref is not None:
                    ref.write(orjson.dumps(reference_record(trace), option=orjson.OPT_APPEND_NEWLINE))
    finally:
        if ref is not None:
            ref.close()
    return path.stat().st_size


def run_export(
    log: Path,
    out: Path,
    extra: list[str],
    *,
    command: str | list[str] | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, float]:
    """Run a converter in a child and return its wall seconds, CPU seconds and peak RSS (MB)."""
    out.unlink(missing_ok=True)
    for split in (".train", ".test"):
        out.with_name(out.stem + split + out.suffix).unlink(missing_ok=True)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    prefix = command if isinstance(command, list) else [command or str(HEGELION_DATASET)]
    argv = [*prefix, str(log), str(out), *extra]
    child = subprocess.Popen(argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    stderr = child.stderr.read().decode() if child.stderr else ""
    if child.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({child.returncode}): {stderr}")
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "peak_mb": usage.ru_maxrss / 1024,  # kilobytes on Linux
        "load": load,
        "summary": (stderr.strip().splitlines() or [""])[-1],  # type: ignore[dict-item]
    }


def checkout_of(rev: str, folder: Path) -> Path:
    """The ``hegelion_dspy`` package as it was at ``rev``, extracted into ``folder`` (put it first on PYTHONPATH)."""
    repo = Path(__file__).resolve().parents[1]
    folder.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(repo), "archive", rev, "hegelion_dspy"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    found = subprocess.run(
        [sys.executable, "-c", "import hegelion_dspy; print(hegelion_dspy.__file__)"],
        env={**os.environ, "PYTHONPATH": str(folder)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not found.startswith(str(folder)):
        raise SystemExit(f"the {rev} checkout in {folder} is not the one imported ({found})")
    return folder


def _report(name: str, results: list[dict[str, float]], size: int, traces: int) -> tuple[float, float, float]:
    """Print the figures of one converter; returns its median wall time, least CPU time and peak memory."""
    best = min(r["wall"] for r in results)
    median = statistics.median(r["wall"] for r in results)
    cpu = min(r["cpu"] for r in results)
    peak = max(r["peak_mb"] for r in results)
    print(
        f"{name}: best {best:.2f} s, median {median:.2f} s ({size / 1e6 / best:.0f} MB/s, {traces / best:,.0f} "
        f"traces/s), least CPU {cpu:.2f} s, peak {peak:.0f} MB"
    )
    return median, cpu, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3, help="conversions to time (best and median are reported)")
    parser.add_argument("--format", default="dpo")
    parser.add_argument("--keep", type=Path, help="write the log and output here instead of a temp folder")
    parser.add_argument("--before", default=BEFORE_REV, help="git revision timed side by side ('' for none)")
    parser.add_argument("--log", type=Path, help="reuse this v3 log (written by --keep) instead of generating one")
    parser.add_argument("--baseline-src", type=Path, help="another hegelion-dspy checkout to time side by side")
    parser.add_argument("--baseline-args", default="", help="arguments for the baseline (default: none extra)")
    parser.add_argument("--reference", help="the reference converter's hegelion-dataset, timed side by side")
    parser.add_argument("--v2-too", action="store_true", help="also time this checkout on the v2 log (flags on read)")
    parser.add_argument("extra", nargs="*", help="more hegelion-dataset arguments (after --)")
    args = parser.parse_args()
    if not HEGELION_DATASET.exists():
        raise SystemExit(f"{HEGELION_DATASET} is missing: pip install -e .")

    with tempfile.TemporaryDirectory(prefix="hegelion-bench-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        log, out = folder / "traces.jsonl", folder / "train_dpo.jsonl"
        ref_log = folder / "reference.jsonl" if args.reference else None
        t0 = time.perf_counter()
        if args.log is not None and ref_log is None:
            log = args.log
            size, args.traces = log.stat().st_size, sum(1 for _ in open(log, "rb"))  # noqa: SIM115
        else:
            size = write_log(log, args.traces, reference=ref_log, v3=True)
        print(
            f"log: {args.traces:,} traces, {size / 1e6:.0f} MB ({size / args.traces / 1000:.1f} KB a trace), "
            f"{'read' if args.log else 'generated'} in {time.perf_counter() - t0:.1f} s"
        )
        before_env = None
        if args.before:
            before_src = checkout_of(args.before, Path(tmp) / "before")
            before_env = {**os.environ, "PYTHONPATH": str(before_src)}
        old_log = None
        if args.baseline_src or args.v2_too:
            old_log = folder / "traces-v2.jsonl"
            write_log(old_log, args.traces)  # the same traces as schema v2, readable by the baseline
        ours: list[dict[str, float]] = []
        base: list[dict[str, float]] = []
        ref: list[dict[str, float]] = []
        floor: list[dict[str, float]] = []
        ours_v2: list[dict[str, float]] = []
        before: list[dict[str, float]] = []
        for n in range(1, args.runs + 1):
            f = run_export(log, out, [], command=[sys.executable, "-c", FLOOR])
            floor.append(f)
            line = f"run {n}: floor {f['wall']:.2f} s"
            if before_env is not None:
                b = run_export(
                    log,
                    out,
                    ["--format", args.format, *args.extra],
                    command=[sys.executable, "-c", DATASET_MAIN],
                    env=before_env,
                )
                before.append(b)
                line += f" | before ({args.before}) {b['wall']:.2f} s wall, {b['cpu']:.2f} s CPU"
            r = run_export(log, out, ["--format", args.format, *args.extra])
            ours.append(r)
            line += f" | this checkout {r['wall']:.2f} s wall, {r['cpu']:.2f} s CPU, peak {r['peak_mb']:.0f} MB"
            if args.v2_too and old_log is not None:
                v = run_export(old_log, out, ["--format", args.format, *args.extra])
                ours_v2.append(v)
                line += f" | this checkout on the v2 log {v['wall']:.2f} s"
            if args.baseline_src and old_log is not None:
                env = {**os.environ, "PYTHONPATH": str(args.baseline_src.resolve())}
                b = run_export(old_log, out, ["--format", args.format, *args.baseline_args.split()], env=env)
                base.append(b)
                line += f" | baseline {b['wall']:.2f} s wall, {b['cpu']:.2f} s CPU, peak {b['peak_mb']:.0f} MB"
            if ref_log is not None:
                f = run_export(ref_log, out, ["--format", args.format], command=args.reference)
                ref.append(f)
                line += f" | reference {f['wall']:.2f} s wall, {f['cpu']:.2f} s CPU, peak {f['peak_mb']:.0f} MB"
            print(line + f" (load average {r['load']:.1f})")
        print(f"  {ours[-1]['summary']}")
        f_median, f_cpu, _ = _report("floor (plain orjson loop)", floor, size, args.traces)
        if before:
            b_median, b_cpu_least, _ = _report(f"before ({args.before}, the same command)", before, size, args.traces)
            print(
                f"  before / floor: {b_median / f_median:.2f}x the wall time, {b_cpu_least / f_cpu:.2f}x the CPU time"
            )
        median, cpu, peak = _report(
            f"this checkout (--format {args.format} {' '.join(args.extra)})", ours, size, args.traces
        )
        print(
            f"  this checkout / floor: {median / f_median:.2f}x the wall time (goal <= 1.6x; medians), "
            f"{cpu / f_cpu:.2f}x the CPU time (least; steadier on a busy machine)"
        )
        if before:
            print(f"  this checkout / before: {median / b_median:.2f}x the wall time, {cpu / b_cpu_least:.2f}x the CPU")
        if ours_v2:
            v_median, _, _ = _report("this checkout on the v2 log (flags computed on read)", ours_v2, size, args.traces)
            print(f"  v2 log / v3 log: {v_median / median:.2f}x")
        if base:
            base_median, b_cpu, b_peak = _report(f"baseline {args.baseline_src}", base, size, args.traces)
            print(f"  baseline / floor: {base_median / f_median:.2f}x")
            print(
                f"  this checkout / baseline: {median / base_median:.2f}x the wall time, {cpu / b_cpu:.2f}x the CPU "
                f"time, {peak / b_peak:.2f}x the memory"
            )
        if ref:
            r_median, _, r_peak = _report(f"reference {args.reference}", ref, size, args.traces)
            print(f"  reference / this checkout: {r_median / median:.1f}x faster, {r_peak / peak:.0f}x less memory")
        else:
            print(
                f"reference (an earlier run): {REFERENCE_SECONDS} s, {REFERENCE_PEAK_MB:.0f} MB -> "
                f"{REFERENCE_SECONDS / median:.1f}x faster (median), {REFERENCE_PEAK_MB / peak:.0f}x less memory"
            )
        print(
            f"goal <= {GOAL_SECONDS} s and < {GOAL_PEAK_MB:.0f} MB: "
            f"{'met' if median <= GOAL_SECONDS and peak < GOAL_PEAK_MB else 'NOT met'}"
        )


if __name__ == "__main__":
    main()
