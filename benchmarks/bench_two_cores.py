"""What the export could reach on two cores: a measurement for issue 23's last step, not a second export.

The export (``curate/stream.py``) runs every trace through one Python loop; the plain orjson floor of
``bench_export.py`` is one loop too. This script times, side by side with that floor and with ``hegelion-dataset``
itself, a sketch of the design that would spread the per-trace work over processes:

- ``--workers`` children, forked after the imports, each over one byte range of the log (cut at line starts): read
  and check each line (``curate.reader.checked``), the verdict, the normalised task, the rank and the row, sent to
  the parent in pickled batches (the first child through a pipe, the others through spool files, so none waits for
  the parent to reach its range);
- the parent keeps one trace per prompt (``_Kept``, ``selection.outranks``) and writes the rows in log order through
  the export's own held-back window (``_Window``).

The sketch leaves out what a real one must keep (labels, origins, the report's counts, flags, invalid lines, splits),
so its figure is a bound from below for that design on this machine. Runs are interleaved (floor, export, sketch), and
each child's wall and CPU time are read with ``wait4``; medians are reported, ratios are of the medians.

    python benchmarks/bench_two_cores.py --log LOG [--runs 5] [--workers 2]
    python benchmarks/bench_two_cores.py [--traces 100000]     # generates the log of bench_export.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_export import FLOOR, write_log

SKETCH = """
import os, pickle, sys
import orjson
from hegelion_dspy.curate import reader
from hegelion_dspy.curate.formats import _dpo_row, examples_maker
from hegelion_dspy.curate.selection import keep_rank
from hegelion_dspy.curate.stream import _Kept, _Window
from hegelion_dspy.curate.verdict import Verdict
from hegelion_dspy.store import normalize_task

log, out, workers, spool = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
size = os.path.getsize(log)
cuts = [0]
with open(log, "rb") as fh:
    for i in range(1, workers):
        fh.seek(size * i // workers)
        fh.readline()
        cuts.append(fh.tell())
cuts.append(size)

def work(start, end, fd):
    verdict, examples_of = Verdict(None), examples_maker(("thesis",), False)
    dumps, newline, batch = orjson.dumps, orjson.OPT_APPEND_NEWLINE, []
    with open(log, "rb", buffering=1 << 16) as src, os.fdopen(fd, "wb", buffering=1 << 20) as sink:
        src.seek(start)
        position = start
        for line in src:
            position += len(line)
            record = reader.checked(line)
            if verdict.trace_reason(record) is None:
                score, created = keep_rank(record.score, record.created_at.timestamp())
                examples = [ex for ex in examples_of(record) if verdict.row_reason(ex, None) is None]
                rows = [dumps(_dpo_row(ex), option=newline) for ex in examples]
                batch.append((hash(normalize_task(record.task)), score, created, b"".join(rows), len(rows)))
            if len(batch) >= 500 or position >= end:
                pickle.dump(batch, sink, protocol=5)
                batch = []
            if position >= end:
                break
    os._exit(0)

sources, children = [], []
for i, (start, end) in enumerate(zip(cuts, cuts[1:])):
    if i == 0:
        source, fd = os.pipe()
    else:
        source = f"{spool}-{i}"
        fd = os.open(source, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    child = os.fork()
    if child == 0:
        if i == 0:
            os.close(source)
        work(start, end, fd)
    os.close(fd)
    sources.append(source)
    children.append(child)

kept = _Kept("best")
with open(out, "wb", buffering=1 << 20) as dst:
    window = _Window(dst.write, kept)
    for i, source in enumerate(sources):
        if i > 0:
            os.waitpid(children[i], 0)
        src = os.fdopen(source, "rb", buffering=1 << 20) if i == 0 else open(source, "rb", buffering=1 << 20)
        with src:
            while True:
                try:
                    batch = pickle.load(src)
                except EOFError:
                    break
                for prompt, score, created, data, rows in batch:
                    slot = kept.slots.get(prompt, -1)
                    if slot < 0:
                        if rows:
                            window.hold(kept.add(prompt, 0, len(data), rows, 0, rows, score, created), data)
                    elif rows and kept.beats(slot, score, created):
                        window.drop(slot)
                        kept.replace(slot, 0, len(data), rows, 0, rows, score, created)
                        window.hold(slot, data)
        if i > 0:
            os.unlink(source)
    window.flush()
os.waitpid(children[0], 0)
"""


def timed(argv: list[str]) -> dict[str, float]:
    """Run ``argv`` in a child; its wall seconds and CPU seconds (its own and its children's, by wait4)."""
    started = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv[:3]} failed: {child.stderr.read().decode() if child.stderr else ''}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log", type=Path, help="a log written by bench_export.py --keep (default: generate one)")
    parser.add_argument("--traces", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hegelion-two-cores-") as tmp:
        folder = Path(tmp)
        log = args.log
        if log is None:
            log = folder / "traces.jsonl"
            write_log(log, args.traces, v3=True)
        out = folder / "out.jsonl"
        dataset = Path(sys.executable).with_name("hegelion-dataset")
        contenders: dict[str, list[str]] = {
            "floor (plain orjson loop)": [sys.executable, "-c", FLOOR, str(log), str(out)],
            "hegelion-dataset, keep best": [str(dataset), str(log), str(out), "--force"],
            f"two-core sketch, {args.workers} workers": [
                *[sys.executable, "-c", SKETCH, str(log), str(out)],
                *[str(args.workers), str(folder / "spool")],
            ],
        }
        results: dict[str, list[dict[str, float]]] = {name: [] for name in contenders}
        for argv in contenders.values():  # warm-up: the bytecode cache and the page cache
            timed(argv)
        for run in range(1, args.runs + 1):
            line = []
            for name, argv in contenders.items():
                results[name].append(timed(argv))
                line.append(f"{name} {results[name][-1]['wall']:.2f} s")
            print(f"run {run}: " + " | ".join(line) + f" (load average {os.getloadavg()[0]:.1f})")
        floor = statistics.median(r["wall"] for r in results["floor (plain orjson loop)"])
        for name, runs in results.items():
            wall, cpu = statistics.median(r["wall"] for r in runs), statistics.median(r["cpu"] for r in runs)
            print(f"{name}: median {wall:.2f} s wall ({wall / floor:.2f}x the floor), {cpu:.2f} s CPU")


if __name__ == "__main__":
    main()
