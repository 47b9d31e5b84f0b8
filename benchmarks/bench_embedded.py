"""The embedded default LM (SmolLM2-135M-Instruct, CPU), backend against backend in one run: load time, tokens per
second at concurrency 1 and 4, peak memory, one dialectic's wall time, and what each wrote to disk.

Each backend runs in a fresh process pinned to ``--cores`` CPUs (default 2), with HOME, XDG_CACHE_HOME, TMPDIR and
HEGELION_CACHE_DIR pointed at an empty folder; "disk" is what that folder holds afterwards besides the trace. The
machine may be shared: compare the ratios (each backend against the first, measured in the same run), and read the
load averages printed beside them.

    python benchmarks/bench_embedded.py [--cores 2] [--tokens 128] [--repeats 3] [--backends NAME,NAME]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

PROMPT = [{"role": "user", "content": "Explain in a few paragraphs how a refrigerator keeps food cold."}]
TASK = "Why is the sky blue?"


def _embedded(**options: Any) -> Any:
    from hegelion_dspy.lms.embedded import EmbeddedLM
    from hegelion_dspy.lms.llamacpp import default_threads

    if options.get("threads") == "cores":
        options["threads"] = default_threads()
    return EmbeddedLM(**options)


# The first is the baseline of the ratios. The transformers + torch path these replaced was compared side by side in
# the commit that introduced the llama.cpp runtime (see docs/embedded.md for that run's figures).
BACKENDS = {
    "llamacpp": ("llama.cpp (xllamacpp), 1 thread (the embedded default)", _embedded),
    "llamacpp-cores": (
        "llama.cpp (xllamacpp), threads = cores (gguf:PATH's default)",
        lambda: _embedded(threads="cores"),
    ),
}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _generate(lm: Any, tokens: int) -> int:
    from dspy.lm15 import Config

    completion = lm.complete(PROMPT, Config(max_tokens=tokens, temperature=0.0))
    return int(completion.completion_tokens or 0)


def measure(name: str, tokens: int, repeats: int, task: str, folder: Path) -> dict[str, Any]:
    """One backend in this process: the figures as a dict."""
    figures: dict[str, Any] = {"load_avg_start": os.getloadavg()[0]}
    started = time.perf_counter()
    import dspy  # noqa: F401  (imported here so that "load" is the model's load alone)

    from hegelion_dspy.collect.run import run_dialectic
    from hegelion_dspy.lms import embedded  # noqa: F401
    from hegelion_dspy.store import TraceStore

    figures["import_s"] = time.perf_counter() - started
    started = time.perf_counter()
    lm = BACKENDS[name][1]()
    figures["load_s"] = time.perf_counter() - started
    figures["rss_loaded_mb"] = rss_mb()

    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        made = _generate(lm, tokens)
        rates.append(made / (time.perf_counter() - started))
    figures["tokens_per_s_c1"] = statistics.median(rates)

    made_by: list[int] = []
    threads = [threading.Thread(target=lambda: made_by.append(_generate(lm, tokens))) for _ in range(4)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    figures["tokens_per_s_c4"] = sum(made_by) / (time.perf_counter() - started)

    started = time.perf_counter()
    record = run_dialectic(task, lm=lm, store=TraceStore(folder / "traces.jsonl"))
    figures["dialectic_s"] = time.perf_counter() - started
    figures["dialectic_status"] = record.status
    [round_] = record.rounds
    figures["dialectic_tokens"] = {step: round_.usage[step].completion_tokens for step in round_.usage}
    figures["peak_rss_mb"] = peak_rss_mb()
    figures["load_avg_end"] = os.getloadavg()[0]
    return figures


def disk_used_mb(folder: Path) -> float:
    total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and p.name != "traces.jsonl")
    return total / 2**20


def run_child(name: str, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        folder = Path(tmp)
        env = {
            **os.environ,
            "HOME": tmp,
            "XDG_CACHE_HOME": str(folder / ".cache"),
            "TMPDIR": tmp,
            "HEGELION_CACHE_DIR": str(folder / "hegelion-cache"),
            "HEGELION_DATA_DIR": str(folder / "data"),
        }
        command = [sys.executable, __file__, "--child", name, "--cores", str(args.cores), "--folder", tmp]
        command += ["--tokens", str(args.tokens), "--repeats", str(args.repeats), "--task", args.task]
        started = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
        figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        figures["process_s"] = time.perf_counter() - started
        figures["disk_mb"] = disk_used_mb(folder)
        figures["trace_bytes"] = (folder / "traces.jsonl").stat().st_size
        return figures


ROWS = [
    ("import (dspy + backend), s", "import_s", "{:.1f}"),
    ("load, s", "load_s", "{:.2f}"),
    ("tokens/s, concurrency 1", "tokens_per_s_c1", "{:.1f}"),
    ("tokens/s, concurrency 4 (all streams)", "tokens_per_s_c4", "{:.1f}"),
    ("one dialectic, s", "dialectic_s", "{:.1f}"),
    ("peak RSS, MB", "peak_rss_mb", "{:.0f}"),
    ("disk written besides the trace, MB", "disk_mb", "{:.1f}"),
    ("whole process, s", "process_s", "{:.1f}"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cores", type=int, default=2, help="CPUs to pin each backend's process to (0: do not pin)")
    parser.add_argument("--tokens", type=int, default=128, help="new tokens per generation in the speed tests")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--task", default=TASK)
    parser.add_argument("--backends", default=",".join(BACKENDS), help=f"comma-separated, of {', '.join(BACKENDS)}")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: args.cores])
    if args.child:
        print(json.dumps(measure(args.child, args.tokens, args.repeats, args.task, Path(args.folder))))
        return

    names = [n.strip() for n in args.backends.split(",") if n.strip()]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"cores: {cores}   machine cores: {os.cpu_count()}   load avg (1/5/15 min) at start: {os.getloadavg()}")
    results = {}
    for name in names:
        results[name] = run_child(name, args)
        print(f"  {name}: done in {results[name]['process_s']:.0f} s", file=sys.stderr)
    baseline = results[names[0]]
    width = max(len(label) for label, _, _ in ROWS)
    print(f"\n{'':{width}}  " + "  ".join(f"{name:>22}" for name in names))
    for label, key, fmt in ROWS:
        cells = []
        for name in names:
            value = results[name][key]
            ratio = f" ({value / baseline[key]:.2f}x)" if name != names[0] and baseline[key] else ""
            cells.append(f"{fmt.format(value) + ratio:>22}")
        print(f"{label:{width}}  " + "  ".join(cells))
    for name in names:
        figures = results[name]
        print(
            f"\n{name}: {BACKENDS[name][0]}; dialectic {figures['dialectic_status']}, tokens per step "
            f"{figures['dialectic_tokens']}; RSS after load {figures['rss_loaded_mb']:.0f} MB; trace "
            f"{figures['trace_bytes']} bytes; load avg {figures['load_avg_start']:.2f} -> {figures['load_avg_end']:.2f}"
        )
    print(f"\nload avg (1/5/15 min) at end: {os.getloadavg()}")
    print("goals on 2 cores (embedded default): load < 2 s, one dialectic < 25 s, peak RSS < 400 MB, nothing on disk")


if __name__ == "__main__":
    main()
