"""Export throughput and peak memory: a synthetic log of 100,000 traces (about 5 KB each) -> DPO JSONL.

Generates the log in a temp folder (valid TraceRecords: 1 or 2 rounds, contradictions, usage, 2% failed, 1% repeated
tasks, 5% demo traces), then runs ``hegelion-dataset LOG OUT`` as a user does, in a child process, and reads that
child's own wall time, CPU time and peak resident memory (``wait4``). Baselines run in the same script, interleaved
run by run, so a busy machine slows them alike:

- the floor: a plain orjson loop in a child (read every line, decode it, write one DPO row per ok trace), what any
  exporter in Python costs at least;
- ``--before REV`` (repeatable; default ``BEFORE_REV``, the driver before its rewrite into small steps and a fast line
  reader): the package as it was at that git revision (``git archive`` into a temp folder, imported through
  PYTHONPATH), run as the same ``hegelion-dataset`` command on the same v3 log, interleaved with this checkout: the
  before and after of one change in one run, their outputs compared byte for byte in every run (the script fails if
  they differ; ``--before ''`` skips it);
- ``--baseline-src DIR``: the same command on another checkout of hegelion-dspy (e.g. ``git worktree add /tmp/old
  HEAD~5``), imported through PYTHONPATH: today's code against the previous code path. It reads the log as schema v2
  (what it understands); this checkout reads the same traces as v3 (quality flags stored, as the collect side writes
  them) and, with ``--v2-too``, the v2 log as well (flags computed on read);
- ``--reference CMD``: the reference converter (Hegelion 0.4.0's ``hegelion-dataset``, in a venv of its own) on the
  same traces written in its own log format.

    python benchmarks/bench_export.py [--traces 100000] [--runs 3] [--format dpo] [--keeps best,first]
        [--before REV ...] [--log FILE] [--baseline-src DIR] [--baseline-args "..."]
        [--reference PATH/TO/hegelion-dataset] [--instructions N] [-- EXTRA hegelion-dataset ARGS]

Each keep rule of ``--keeps`` is timed for every before and this checkout. The children run in the temp folder (so
``python -c`` imports the package from PYTHONPATH, not from the current folder) with their bytecode cached in it
(``PYTHONDONTWRITEBYTECODE`` is dropped: with it every child recompiled every module, each run), after one untimed
warm-up run each. The machine is shared (2 cores): each run prints the load average, and the best and median of
--runs are reported; ratios are of the medians (wall) and of the least (CPU). ``--instructions N`` adds a figure no
other job on the machine can move: each contender's instruction count under valgrind's callgrind on the log's first
N and 2N traces, split into what it costs once (start-up, imports) and per trace, projected to the whole log.
``--log FILE`` reuses a log this script wrote (``--keep``) instead of generating one.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
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
REPO = Path(__file__).resolve().parents[1]
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
    cwd: Path | None = None,
) -> dict[str, Any]:
    """Run a converter in a child and return its wall seconds, CPU seconds and peak RSS (MB)."""
    for path in output_files(out):
        path.unlink(missing_ok=True)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    prefix = command if isinstance(command, list) else [command or str(HEGELION_DATASET)]
    argv = [*prefix, str(log), str(out), *extra]
    child = subprocess.Popen(argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env, cwd=cwd)
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
        "summary": (stderr.strip().splitlines() or [""])[-1],
    }


def output_files(out: Path) -> list[Path]:
    """What an export to ``out`` may write: the file, or its train and test splits."""
    return [out, *(out.with_name(out.stem + split + out.suffix) for split in (".train", ".test"))]


def digest_of(out: Path) -> str:
    """sha256 of an export's files (those that exist, in order), which are then removed to spare the disk."""
    digest = hashlib.sha256()
    for path in output_files(out):
        if path.exists():
            with open(path, "rb") as fh:
                digest.update(path.name.encode() + b"\0")
                while block := fh.read(1 << 22):
                    digest.update(block)
            path.unlink()
    return digest.hexdigest()


def child_env(pycache: Path, pythonpath: str | None = None) -> dict[str, str]:
    """The children's environment: compiled bytecode cached in ``pycache`` (PYTHONDONTWRITEBYTECODE, set on these
    machines, made every child recompile every module it imports: time the figures were paying), and ``pythonpath``
    first on the import path when given."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    return env


def imported_from(env: dict[str, str], cwd: Path) -> str:
    """Where a child with ``env`` finds ``hegelion_dspy``."""
    return subprocess.run(
        [sys.executable, "-c", "import hegelion_dspy; print(hegelion_dspy.__file__)"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def checkout_of(rev: str, folder: Path) -> Path:
    """The ``hegelion_dspy`` package as it was at ``rev``, extracted into ``folder`` (put it first on PYTHONPATH)."""
    folder.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "hegelion_dspy"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


@dataclass
class Contender:
    """One converter timed in every run: its command, arguments, environment and log; its results and the sha256 of
    its output in each run. ``twin`` names the contender whose output must be byte-identical to this one's."""

    name: str
    command: list[str] | str | None
    extra: list[str]
    env: dict[str, str] | None
    log: Path
    twin: str | None = None
    results: list[dict[str, Any]] = field(default_factory=list)
    digests: list[str] = field(default_factory=list)


def contenders(args: argparse.Namespace, folder: Path, log: Path, old_log: Path | None) -> list[Contender]:
    """The floor, then per keep rule each ``--before`` revision and this checkout (the same command on the same log,
    their outputs compared), then the optional baseline, v2 log and reference."""
    pycache = folder / "pycache"
    dataset = [sys.executable, "-c", DATASET_MAIN]
    found: list[Contender] = [Contender("floor (plain orjson loop)", [sys.executable, "-c", FLOOR], [], None, log)]
    this_env = child_env(pycache, os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    sources = [(rev, child_env(pycache, str(checkout_of(rev, folder / f"before-{rev}")))) for rev in args.before]
    for rev_or_this, env in [*sources, ("this checkout", this_env)]:
        where = imported_from(env, folder)
        expected = str(REPO) if rev_or_this == "this checkout" else str(folder / f"before-{rev_or_this}")
        if not where.startswith(expected):
            raise SystemExit(f"{rev_or_this}: the child imports hegelion_dspy from {where}, not {expected}")
    for keep in args.keeps:
        extra = ["--format", args.format, "--keep", keep, *args.extra]
        this = f"this checkout, keep {keep}"
        for rev, env in sources:
            found.append(Contender(f"before ({rev}), keep {keep}", dataset, extra, env, log, twin=this))
        found.append(Contender(this, dataset, extra, this_env, log))
    if args.v2_too and old_log is not None:
        found.append(
            Contender("this checkout on the v2 log", dataset, ["--format", args.format, *args.extra], this_env, old_log)
        )
    if args.baseline_src and old_log is not None:
        env = child_env(pycache, str(args.baseline_src.resolve()))
        found.append(
            Contender(
                f"baseline {args.baseline_src}",
                None,
                ["--format", args.format, *args.baseline_args.split()],
                env,
                old_log,
            )
        )
    if args.reference:
        found.append(
            Contender(
                f"reference {args.reference}",
                args.reference,
                ["--format", args.format],
                None,
                folder / "reference.jsonl",
            )
        )
    return found


def warm_up(found: list[Contender], folder: Path) -> None:
    """One untimed run of each contender on the first lines of its log: its modules compiled into the bytecode cache
    before any run is timed."""
    for i, c in enumerate(found):
        small = folder / f"warm-{i}.jsonl"
        with open(c.log, "rb") as src, open(small, "wb") as out:
            out.writelines(line for _, line in zip(range(300), src, strict=False))
        run_export(small, folder / "warm-out.jsonl", c.extra, command=c.command, env=c.env, cwd=folder)
        small.unlink()


def _figures(results: list[dict[str, Any]]) -> tuple[float, float, float, float]:
    """(best wall, median wall, least CPU, peak memory) of one contender's runs."""
    walls = [r["wall"] for r in results]
    return min(walls), statistics.median(walls), min(r["cpu"] for r in results), max(r["peak_mb"] for r in results)


def report_all(found: list[Contender], size: int, traces: int) -> bool:
    """Print every contender's figures and its ratios to the floor (and a before's to this checkout); whether each
    before's output was byte-identical to this checkout's in every run."""
    figures = {c.name: _figures(c.results) for c in found}
    by_name = {c.name: c for c in found}
    _, f_median, f_cpu, _ = figures[found[0].name]
    identical = True
    for c in found:
        best, median, cpu, peak = figures[c.name]
        print(
            f"{c.name}: best {best:.2f} s, median {median:.2f} s ({size / 1e6 / best:.0f} MB/s, {traces / best:,.0f} "
            f"traces/s), least CPU {cpu:.2f} s, peak {peak:.0f} MB"
        )
        if c is found[0]:
            continue
        goal = " (goal <= 1.6x)" if c.name.startswith("this checkout,") else ""
        print(
            f"  / floor: {median / f_median:.2f}x the wall time{goal} (medians), {cpu / f_cpu:.2f}x the CPU time "
            "(least: steadier on a busy machine)"
        )
        if c.twin is not None:
            _, t_median, t_cpu, t_peak = figures[c.twin]
            same = c.digests == by_name[c.twin].digests
            identical &= same
            print(
                f"  {c.twin} / this: {t_median / median:.2f}x the wall time, {t_cpu / cpu:.2f}x the CPU, "
                f"{t_peak / peak:.2f}x the memory; outputs {'byte-identical in every run' if same else 'DIFFER'}"
            )
    return identical


def instructions_of(c: Contender, lines: int, folder: Path) -> int:
    """Instructions one run of ``c`` executes on the first ``lines`` lines of its log, counted by valgrind's
    callgrind (the same count on a busy machine as on an idle one: the figure a shared machine cannot move)."""
    small, out, counts = folder / f"ir-{lines}.jsonl", folder / "ir-out.jsonl", folder / "callgrind.out"
    with open(c.log, "rb") as src, open(small, "wb") as dst:
        dst.writelines(line for _, line in zip(range(lines), src, strict=False))
    prefix = c.command if isinstance(c.command, list) else [c.command or str(HEGELION_DATASET)]
    argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={counts}", *prefix, str(small), str(out), *c.extra]
    done = subprocess.run(argv, capture_output=True, text=True, env=c.env, cwd=folder, check=False)
    for path in [small, counts, *output_files(out)]:
        path.unlink(missing_ok=True)
    found = [line for line in done.stderr.splitlines() if "Collected :" in line]
    if done.returncode != 0 or not found:
        raise SystemExit(f"valgrind {prefix[0]} failed ({done.returncode}): {done.stderr[-2000:]}")
    return int(found[-1].split(":")[-1])


def report_instructions(found: list[Contender], lines: int, traces: int, folder: Path) -> None:
    """Each contender's instructions on ``lines`` and ``2 * lines`` traces: what it costs once (start-up, imports)
    and per trace, and the projection to ``traces`` set against the floor's."""
    projected = {}
    for c in found:
        one, two = instructions_of(c, lines, folder), instructions_of(c, 2 * lines, folder)
        per_trace, fixed = (two - one) / lines, 2 * one - two
        projected[c.name] = fixed + per_trace * traces
        print(
            f"instructions, {c.name}: {fixed / 1e6:,.0f}M once + {per_trace / 1e3:,.1f}k a trace -> "
            f"{projected[c.name] / 1e9:.2f}G for {traces:,} traces"
            + ("" if c is found[0] else f" ({projected[c.name] / projected[found[0].name]:.2f}x the floor)")
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3, help="conversions to time (best and median are reported)")
    parser.add_argument("--format", default="dpo")
    parser.add_argument("--keep", type=Path, help="write the log and output here instead of a temp folder")
    parser.add_argument("--keeps", default="best,first", help="the keep rules timed (comma-separated)")
    parser.add_argument(
        "--before", action="append", help=f"git revision timed side by side (repeatable; default {BEFORE_REV}, '' none)"
    )
    parser.add_argument("--log", type=Path, help="reuse this v3 log (written by --keep) instead of generating one")
    parser.add_argument("--baseline-src", type=Path, help="another hegelion-dspy checkout to time side by side")
    parser.add_argument("--baseline-args", default="", help="arguments for the baseline (default: none extra)")
    parser.add_argument("--reference", help="the reference converter's hegelion-dataset, timed side by side")
    parser.add_argument("--v2-too", action="store_true", help="also time this checkout on the v2 log (flags on read)")
    parser.add_argument(
        "--instructions",
        type=int,
        metavar="N",
        help="also count each contender's instructions (valgrind) on N and 2N traces, projected to --traces",
    )
    parser.add_argument("extra", nargs="*", help="more hegelion-dataset arguments (after --)")
    args = parser.parse_args()
    args.before = [rev for rev in (args.before or [BEFORE_REV]) if rev]
    args.keeps = [k for k in args.keeps.split(",") if k]

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
        old_log = None
        if args.baseline_src or args.v2_too:
            old_log = folder / "traces-v2.jsonl"
            write_log(old_log, args.traces)  # the same traces as schema v2, readable by the baseline
        found = contenders(args, Path(tmp), log, old_log)
        warm_up(found, Path(tmp))
        for n in range(1, args.runs + 1):
            parts = []
            for c in found:
                r = run_export(c.log, out, c.extra, command=c.command, env=c.env, cwd=Path(tmp))
                c.results.append(r)
                c.digests.append(digest_of(out))
                parts.append(f"{c.name} {r['wall']:.2f} s ({r['cpu']:.2f} CPU)")
            print(f"run {n}: " + " | ".join(parts) + f" (load average {os.getloadavg()[0]:.1f})")
        print(f"  {found[-1].results[-1]['summary']}")
        identical = report_all(found, size, args.traces)
        this = [c for c in found if c.name.startswith("this checkout,")]
        if this:
            median = statistics.median(r["wall"] for r in this[0].results)
            peak = max(r["peak_mb"] for c in this for r in c.results)
            others = [c for c in found[1:] if c.twin is None and c not in this]
            for c in others:
                print(f"  {c.name} / {this[0].name}: {statistics.median(r['wall'] for r in c.results) / median:.2f}x")
            if not args.reference:
                print(
                    f"reference (an earlier run): {REFERENCE_SECONDS} s, {REFERENCE_PEAK_MB:.0f} MB -> "
                    f"{REFERENCE_SECONDS / median:.1f}x faster (median), {REFERENCE_PEAK_MB / peak:.0f}x less memory"
                )
            print(
                f"goal <= {GOAL_SECONDS} s and < {GOAL_PEAK_MB:.0f} MB: "
                f"{'met' if median <= GOAL_SECONDS and peak < GOAL_PEAK_MB else 'NOT met'}"
            )
        if args.instructions:
            report_instructions(found, args.instructions, args.traces, Path(tmp))
        if not identical:
            raise SystemExit("the outputs of a before and this checkout differ (see DIFFER above)")


if __name__ == "__main__":
    main()
