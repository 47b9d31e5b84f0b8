"""The review app on a 100,000-trace log, this checkout side by side with a baseline checkout in the same run: the
first page and a not-yet-indexed trace while the index is built from scratch (no index file), the build's time, the
app's peak memory, and time to first byte of warm pages; reading the log with the store as the floor of a page
without any index.

Generates the log in a temp folder (bench_export's synthetic traces, ~570 MB), then for each checkout starts
``hegelion-review LOG --port 0`` as a user does (the baseline imported through PYTHONPATH, e.g. ``git archive
cf7424f | tar -x -C /tmp/review-base``), with no index: it times the first page and the trace page of the log's last
trace (not indexed yet: the baseline answers 404), waits for the background build, then times warm pages. Times are
from sending a request over a raw socket to the first byte of the answer; the app's peak memory is its VmHWM at the
end. The checkouts run one after the other; the load average is printed with each. Goals: first page under 300 ms
before the index exists, warm pages under 200 ms, peak memory under 80 MB, on 2 shared cores.

    python benchmarks/bench_review.py [--traces 100000] [--requests 30] [--keep DIR] [--baseline-src DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
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
from typing import Any

from bench_export import write_log

GOAL_FIRST_MS = 300.0
GOAL_MS = 200.0
GOAL_MB = 80.0
PYTHON = sys.executable


def run_child(code: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``code`` in a child Python; its wall seconds, peak RSS (MB) and what it printed last."""
    started = time.perf_counter()
    child = subprocess.Popen([PYTHON, "-c", code], stdout=subprocess.PIPE, env=env, cwd=tempfile.gettempdir())
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    out = child.stdout.read().decode().strip() if child.stdout else ""
    if child.stdout:
        child.stdout.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"child failed: {code}")
    return {"wall": wall, "peak_mb": usage.ru_maxrss / 1024, "out": out}


def ttfb(port: int, path: str) -> tuple[float, int, bytes]:
    """Seconds from sending a GET to the first byte of the reply; the status and the body."""
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
    return elapsed, int(reply.split(b" ", 2)[1]), reply.partition(b"\r\n\r\n")[2]


def peak_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", status)
    return int(match[1]) / 1024 if match else float("nan")


def children_peak_mb(pid: int, seen: dict[int, float]) -> None:
    """Record the peak memory of ``pid``'s children now running (the index builder) in ``seen``."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):  # it ended meanwhile
            stat = Path(f"/proc/{entry}/stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:  # field 4, the parent's pid, after "(comm)"
                seen[int(entry)] = max(seen.get(int(entry), 0.0), peak_mb(int(entry)))


def start_app(log: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], int]:
    app = subprocess.Popen(
        [PYTHON, "-m", "hegelion_dspy.cli.review", str(log), "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=log.parent,  # not a checkout: the package comes from PYTHONPATH or the installed one
    )
    assert app.stderr is not None
    for line in app.stderr:
        match = re.search(r"127\.0\.0\.1:(\d+)/", line)
        if match:
            return app, int(match[1])
    raise SystemExit("hegelion-review did not start")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


COLD_STARTS = 3


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used (its children not counted)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cold_first_pages(log: Path, traces: int, env: dict[str, str]) -> dict[str, Any]:
    """The first page and the last (unindexed) trace of fresh apps with no index: medians of COLD_STARTS starts,
    with the app's own CPU time for the first page (the load shows in wall time, hardly in CPU time)."""
    index_file = log.with_name(f".{log.name}.index.sqlite")
    walls, cpus, traces_s = [], [], []
    rows = status = 0
    for _ in range(COLD_STARTS):
        for suffix in ("", "-wal", "-shm"):
            Path(str(index_file) + suffix).unlink(missing_ok=True)
        app, port = start_app(log, env)
        try:
            before = cpu_seconds(app.pid)
            wall, _, body = ttfb(port, "/")
            cpus.append(cpu_seconds(app.pid) - before)
            walls.append(wall)
            rows = body.count(b'class="row ')
            seconds, status, _ = ttfb(port, f"/trace/{traces - 1:032x}")
            traces_s.append(seconds)
        finally:
            app.terminate()
            app.wait(timeout=30)
            if app.stderr:
                app.stderr.close()
    return {
        f"first page, no index (median of {COLD_STARTS})": statistics.median(walls),
        "  its CPU time in the app": statistics.median(cpus),
        "  rows on it": rows,
        f"last trace, not indexed (median of {COLD_STARTS})": statistics.median(traces_s),
        "  its status": status,
    }


def measure(log: Path, traces: int, requests: int, env: dict[str, str]) -> dict[str, Any]:
    """One checkout: cold pages while the index is built from nothing, the build, warm pages, peak memory."""
    index_file = log.with_name(f".{log.name}.index.sqlite")
    for suffix in ("", "-wal", "-shm"):
        Path(str(index_file) + suffix).unlink(missing_ok=True)
    out: dict[str, Any] = {"load": os.getloadavg()[0], **cold_first_pages(log, traces, env)}
    last_id = f"{traces - 1:032x}"
    app, port = start_app(log, env)
    try:
        started = time.perf_counter()
        out["first page (build run)"], status, body = ttfb(port, "/")
        out["  rows on it (build run)"] = body.count(b'class="row ')
        assert status == 200, status
        out["last trace (build run)"], out["  its status (build run)"], _ = ttfb(port, f"/trace/{last_id}")
        builders: dict[int, float] = {}
        while not json.loads(ttfb(port, "/api/state")[2])["complete"]:
            children_peak_mb(app.pid, builders)
            time.sleep(0.5)
        out["index build (in the app)"] = time.perf_counter() - started
        while json.loads(ttfb(port, "/api/state")[2]).get("flags_pending"):
            children_peak_mb(app.pid, builders)
            time.sleep(0.5)
        out["quality flags done (build)"] = time.perf_counter() - started
        rng = random.Random(7)
        ids = [f"{rng.randrange(traces):032x}" for _ in range(requests)]
        out["list, median"] = statistics.median(ttfb(port, "/")[0] for _ in range(requests))
        out["trace page, median"] = statistics.median(ttfb(port, f"/trace/{i}")[0] for i in ids)
        for name, path in (
            ("page 1000", "/?page=1000"),
            ("page 2**63", f"/?page={2**63}"),
            ("status=failed", "/?status=failed"),
            ("search q=memory", "/?q=memory"),
            ("charts", "/charts"),
        ):
            out[name], out[f"{name} status"], _ = ttfb(port, path)
        out["peak memory"] = peak_mb(app.pid)
        out["builder child peak"] = max(builders.values(), default=0.0)
    finally:
        app.terminate()
        app.wait(timeout=30)
        if app.stderr:
            app.stderr.close()
    out["load after"] = os.getloadavg()[0]
    return out


def show(value: Any, name: str) -> str:
    if isinstance(value, float) and name in ("peak memory", "builder child peak"):
        return f"{value:.0f} MB"
    if isinstance(value, float) and "load" in name:
        return f"{value:.2f}"
    if isinstance(value, float) and (name.startswith("index build") or "flags done" in name):
        return f"{value:.1f} s"
    if isinstance(value, float):
        return ms(value)
    return str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=30, help="warm requests per page kind (median shown)")
    parser.add_argument("--keep", type=Path, help="keep the log in this folder (and reuse it)")
    parser.add_argument("--baseline-src", type=Path, help="another checkout of hegelion-dspy to compare with")
    parser.add_argument("--src", type=Path, help="measure this copy of the checkout (default: the installed one)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="hegelion-bench-review-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        log = folder / "traces.jsonl"
        if not log.exists():
            t0 = time.perf_counter()
            size = write_log(log, args.traces)
            print(f"log: {args.traces:,} traces, {size / 1e6:.0f} MB, generated in {time.perf_counter() - t0:.1f} s")
        megabytes = log.stat().st_size / 1e6
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; log {megabytes:.0f} MB")
        here = dict(os.environ)
        if args.src is not None:
            here["PYTHONPATH"] = str(args.src.resolve())
        variants = {"this checkout": here}
        if args.baseline_src is not None:
            variants = {"baseline": {**here, "PYTHONPATH": str(args.baseline_src.resolve())}, **variants}
        results = {name: measure(log, args.traces, args.requests, env) for name, env in variants.items()}
        floor = run_child(
            f"from hegelion_dspy.store import TraceStore; import time; t = time.perf_counter(); "
            f"r = TraceStore({str(log)!r}).recent(50); print(time.perf_counter() - t)"
        )
        names = list(next(iter(results.values())))
        print(f"{'':34}" + "".join(f"{name:>18}" for name in results))
        for key in names:
            print(f"{key:<34}" + "".join(f"{show(r[key], key):>18}" for r in results.values()))
        print(f"floor: newest 50 traces by streaming the log (TraceStore.recent): {ms(float(floor['out']))}, "
              f"peak {floor['peak_mb']:.0f} MB")  # fmt: skip
        mine = results["this checkout"]
        met = (
            mine[f"first page, no index (median of {COLD_STARTS})"] < GOAL_FIRST_MS / 1000
            and max(mine["list, median"], mine["trace page, median"]) < GOAL_MS / 1000
            and mine["peak memory"] < GOAL_MB
        )
        print(
            f"goal: first page under {GOAL_FIRST_MS:.0f} ms before the index exists, warm pages under "
            f"{GOAL_MS:.0f} ms, peak under {GOAL_MB:.0f} MB: {'met' if met else 'NOT met'}"
        )


if __name__ == "__main__":
    main()
