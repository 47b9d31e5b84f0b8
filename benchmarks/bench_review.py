"""The review app on a 100,000-trace log: time to first byte of the list's first page and of a trace page, and the
app's peak memory, against reading the log with the store (the baseline: what a page costs without the index).

Generates the log in a temp folder (bench_export's synthetic traces, ~570 MB), builds the index in a child process
(wall time, peak memory), starts ``hegelion-review LOG --port 0`` as a user does, and times requests over a raw socket
from sending the request to the first byte of the answer. The app's peak resident memory is its VmHWM after every
request. The baseline runs in children too: the newest 50 traces by streaming the log (``TraceStore.recent``) and one
trace found by id by streaming the log (``read_records``), each with its own peak memory. Goal: under 200 ms and
100 MB on 2 cores.

    python benchmarks/bench_review.py [--traces 100000] [--requests 30] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_export import write_log

GOAL_MS = 200.0
GOAL_MB = 100.0
PYTHON = sys.executable


def run_child(code: str) -> dict[str, float]:
    """Run ``code`` in a child Python; its wall seconds, peak RSS (MB) and what it printed last."""
    started = time.perf_counter()
    child = subprocess.Popen([PYTHON, "-c", code], stdout=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    out = child.stdout.read().decode().strip() if child.stdout else ""
    if child.stdout:
        child.stdout.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"child failed: {code}")
    return {"wall": wall, "peak_mb": usage.ru_maxrss / 1024, "out": out}  # type: ignore[dict-item]


def ttfb(port: int, path: str) -> tuple[float, int, int]:
    """Seconds from sending a GET to the first byte of the reply; the status and the reply's size."""
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        started = time.perf_counter()
        sock.sendall(request)
        first = sock.recv(65536)
        elapsed = time.perf_counter() - started
        chunks = [first]
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    reply = b"".join(chunks)
    return elapsed, int(reply.split(b" ", 2)[1]), len(reply)


def peak_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    return int(match[1]) / 1024 if match else float("nan")


def start_app(log: Path) -> tuple[subprocess.Popen[str], int]:
    app = subprocess.Popen(
        [PYTHON, "-m", "hegelion_dspy.cli.review", str(log), "--port", "0"], stderr=subprocess.PIPE, text=True
    )
    assert app.stderr is not None
    line = app.stderr.readline()
    match = re.search(r"127\.0\.0\.1:(\d+)/", line)
    if not match:
        raise SystemExit(f"hegelion-review did not start: {line}")
    return app, int(match[1])


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=30, help="requests per page kind (median and worst shown)")
    parser.add_argument("--keep", type=Path, help="keep the log (and its index) in this folder")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="hegelion-bench-review-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        log = folder / "traces.jsonl"
        if not log.exists():
            t0 = time.perf_counter()
            size = write_log(log, args.traces)
            print(f"log: {args.traces:,} traces, {size / 1e6:.0f} MB, generated in {time.perf_counter() - t0:.1f} s")
        size = log.stat().st_size
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")

        index_file = log.with_name(f".{log.name}.index.sqlite")
        for suffix in ("", "-wal", "-shm"):  # always measure a build from scratch
            Path(str(index_file) + suffix).unlink(missing_ok=True)
        built = run_child(f"from hegelion_dspy.review.index import TraceIndex; print(TraceIndex({str(log)!r}).sync())")
        print(
            f"index: built in {built['wall']:.1f} s, peak {built['peak_mb']:.0f} MB, "
            f"{index_file.stat().st_size / 1e6:.0f} MB on disk ({size / 1e6 / max(built['wall'], 1e-9):.0f} MB/s)"
        )

        rng = random.Random(7)
        ids = [f"{rng.randrange(args.traces):032x}" for _ in range(args.requests)]
        middle = f"{args.traces // 2:032x}"

        # Baseline: the same answers by reading the log with the store, no index.
        recent = run_child(
            f"from hegelion_dspy.store import TraceStore; import time; t = time.perf_counter(); "
            f"r = TraceStore({str(log)!r}).recent(50); print(time.perf_counter() - t, len(r))"
        )
        recent_s = float(str(recent["out"]).split()[0])
        found = run_child(
            "import time; from hegelion_dspy.store import read_records; t = time.perf_counter(); "
            f"r = next(x for x in read_records({str(log)!r}) if x.id == {middle!r}); print(time.perf_counter() - t)"
        )
        found_s = float(str(found["out"]))

        app, port = start_app(log)
        try:
            cold_list, status, _ = ttfb(port, "/")
            assert status == 200, status
            cold_trace, status, _ = ttfb(port, f"/trace/{middle}")
            assert status == 200, status
            lists = [ttfb(port, "/")[0] for _ in range(args.requests)]
            traces = []
            for trace_id in ids:
                seconds, status, _ = ttfb(port, f"/trace/{trace_id}")
                assert status == 200, (trace_id, status)
                traces.append(seconds)
            extra = {
                "page 1000 of the list": ttfb(port, "/?page=1000")[0],
                "status=failed": ttfb(port, "/?status=failed")[0],
                "reviewed=no": ttfb(port, "/?reviewed=no")[0],
                "search one rare word (q=Task+777)": ttfb(port, "/?q=Task+777")[0],
                "search a common word (q=memory)": ttfb(port, "/?q=memory")[0],
                "charts (first, then cached)": ttfb(port, "/charts")[0],
                "charts again": ttfb(port, "/charts")[0],
            }
            app_peak = peak_mb(app.pid)
        finally:
            app.terminate()
            app.wait(timeout=30)
            if app.stderr:
                app.stderr.close()

        list_median, trace_median = statistics.median(lists), statistics.median(traces)
        print(f"hegelion-review on {args.traces:,} traces ({size / 1e6:.0f} MB), time to first byte:")
        print(f"  list, first page   first request {ms(cold_list)}; median {ms(list_median)}, worst {ms(max(lists))}")
        print(
            f"  trace page         first request {ms(cold_trace)}; median {ms(trace_median)}, worst {ms(max(traces))}"
        )
        for name, seconds in extra.items():
            print(f"  {name:<34} {ms(seconds)}")
        print(f"  app peak memory    {app_peak:.0f} MB (VmHWM after {2 * args.requests + 9} requests)")
        print("baseline, reading the log with the store (no index):")
        print(f"  newest 50 traces   {ms(recent_s)} (TraceStore.recent), peak {recent['peak_mb']:.0f} MB")
        print(f"  one trace by id    {ms(found_s)} (read_records to mid-log), peak {found['peak_mb']:.0f} MB")
        print(
            f"index vs baseline: list {recent_s / list_median:,.0f}x faster, trace page {found_s / trace_median:,.0f}x "
            f"faster (medians)"
        )
        worst = max(cold_list, cold_trace, list_median, trace_median)
        met = worst < GOAL_MS / 1000 and app_peak < GOAL_MB
        print(f"goal: under {GOAL_MS:.0f} ms and {GOAL_MB:.0f} MB: {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
