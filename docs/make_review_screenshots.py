"""Make the review app's screenshots in docs/ (the list, a trace page, the charts) with the browser the tests use.

Writes a small demo log (hand-written dialectics, several models, scores, an iterated trace, a failure) and a few
labels into a temp folder, starts ``hegelion-review`` on it, and has Debian's Chromium (driven by Playwright, as in
tests/test_review_browser.py) label one pair by keyboard and take the pictures.

    python docs/make_review_screenshots.py [--out docs/review]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hegelion_dspy.collect.traces import build_trace
from hegelion_dspy.curate.labels import Label, LabelStore
from hegelion_dspy.store import TraceStore
from hegelion_dspy.types import TraceFailure, TraceRecord

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]
MODELS = ("openai/gpt-4o-mini", "anthropic/claude-sonnet-4", "hosted_vllm/Qwen2.5-7B", "ollama_chat/llama3.2")

DIALECTICS = [
    (
        "Why is the sky blue?",
        "The sky is blue because it reflects the colour of the oceans, which cover most of the Earth.",
        "The thesis confuses cause and effect: the ocean looks blue partly because it reflects the sky.",
        [
            (
                "Reflection from the ocean cannot colour the sky over deserts or at high altitude.",
                "Mountain and desert skies are just as blue, far from any sea.",
            ),
            (
                "It ignores how sunlight interacts with air molecules.",
                "Rayleigh scattering goes as 1/λ⁴: blue light scatters about 5.5 times more than red.",
            ),
        ],
        "The sky is blue because air molecules scatter short wavelengths of sunlight much more strongly than long "
        "ones (Rayleigh scattering, proportional to 1/λ⁴). Blue light reaches our eyes from every direction of the "
        "sky; the ocean looks blue partly because it reflects that sky, not the other way round.",
    ),
    (
        "Fix the memory leak in a cache that stores every request's response forever.",
        "Call gc.collect() after every request so Python frees the memory.",
        "Garbage collection cannot free objects that are still referenced: the cache keeps every response alive.",
        [
            ("The leak is a growing reference, not garbage.", "gc.collect() only frees unreachable cycles."),
            ("Nothing bounds the cache.", "Every unique request adds an entry that is never evicted."),
        ],
        "Bound the cache: use functools.lru_cache(maxsize=1024) or an LRU/TTL cache that evicts old entries, and key "
        "it on what actually determines the response. Measure with tracemalloc before and after; gc.collect() does "
        "not help because the cache still references every response.",
    ),
    (
        "Is 1 a prime number?",
        "Yes, 1 is prime because it is only divisible by 1 and itself.",
        "The thesis uses a definition that would make 1 prime, but the accepted definition excludes it.",
        [("A prime has exactly two distinct positive divisors.", "1 has only one divisor, itself.")],
        "No. A prime number has exactly two distinct positive divisors, and 1 has only one. Excluding 1 also keeps "
        "the fundamental theorem of arithmetic (unique factorisation) true without exceptions.",
    ),
    (
        "Explain the CAP theorem in two sentences.",
        "CAP says a database can have consistency, availability and partition tolerance all at once if it is "
        "designed well.",
        "That is the opposite of what the theorem states.",
        [
            (
                "CAP is an impossibility result.",
                "During a network partition a system must give up consistency or availability.",
            )
        ],
        "When a network partition happens, a distributed system must choose between consistency (every read sees the "
        "latest write) and availability (every request gets an answer). Without a partition it can offer both; "
        "partitions are not optional, so the real choice is what to sacrifice while one lasts.",
    ),
    (
        "Should a REST API return 404 or 403 for a resource the user may not see?",
        "Always return 403 Forbidden, because the user is not allowed to access it.",
        "403 reveals that the resource exists, which can leak information.",
        [("Existence can itself be secret.", "GitHub returns 404 for private repositories to non-members.")],
        "Return 404 when the existence of the resource is itself sensitive (private repositories, other users' "
        "records), and 403 when the user knows it exists but lacks a permission (e.g. a read-only member trying to "
        "delete). Be consistent across endpoints so the choice cannot be probed.",
    ),
    (
        "What is the time complexity of inserting into a Python list at index 0?",
        "O(1), because Python lists are linked lists.",
        "CPython lists are dynamic arrays, not linked lists.",
        [("Insertion at the front shifts every element.", "list.insert(0, x) moves n pointers.")],
        "O(n): a CPython list is a dynamic array of pointers, so inserting at index 0 shifts every existing element "
        "one slot right. Use collections.deque for O(1) appends and pops at both ends.",
    ),
]


def demo_log(folder: Path) -> Path:
    log = folder / "traces.jsonl"
    start = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
    records: list[TraceRecord] = []
    for n in range(48):
        task, thesis, antithesis, contradictions, synthesis = DIALECTICS[n % len(DIALECTICS)]
        model = MODELS[n % len(MODELS)]
        rounds = None
        if n % 7 == 3:
            rounds = [{"antithesis": "The revision is right but could name the mechanism.", "synthesis": synthesis}]
        record = build_trace(
            task=task if n < len(DIALECTICS) else f"{task} (variant {n // len(DIALECTICS)})",
            thesis=thesis,
            antithesis=antithesis,
            contradictions=[{"description": d, "evidence": e} for d, e in contradictions],
            synthesis=synthesis if rounds is None else synthesis.split(".")[0] + ".",
            rounds=rounds,
            model=model,
            mode="coding" if "memory leak" in task or "Python list" in task else "general",
            tags=["physics"] if "sky" in task else (["api"] if "REST" in task else []),
            source="mcp" if n % 3 == 0 else "cli",
            score=round(0.35 + ((n * 37) % 60) / 100, 2),
        )
        steps = {"thesis": 1.1 + (n % 5) * 0.3, "antithesis": 1.6 + (n % 4) * 0.2, "synthesis": 2.2 + (n % 3) * 0.4}
        timed = [r.model_copy(update={"seconds": steps}) for r in record.rounds]
        created = start + timedelta(hours=7 * n)
        record = record.model_copy(update={"rounds": timed, "created_at": created, "lm": "dspy.LM"})
        record = record.model_copy(update={"adapter": "ChatAdapter"})
        if n % 11 == 5:
            failure = TraceFailure(step="synthesis", round=1, type="Timeout", message="the LM did not answer in 60 s")
            record = record.model_copy(update={"status": "failed", "error": failure, "rounds": [], "synthesis": ""})
        records.append(record)
    TraceStore(log).append_many(records)
    labels = LabelStore.beside(log)
    pair = "thesis:1>synthesis:1"
    for i, record in enumerate(records[:30]):
        if record.ok and len(record.rounds) == 1 and i % 4 != 1:
            decision = "reject" if i % 9 == 0 else ("swap" if i % 13 == 2 else "accept")
            edit = record.synthesis + " (Checked against the source.)" if i % 10 == 4 else None
            labels.append(Label(trace_id=record.id, pair=pair, decision=decision, chosen=edit, labeller="ann",  # type: ignore[arg-type]
                                created_at=record.created_at + timedelta(days=2)))  # fmt: skip
    return log


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "review")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hegelion-shots-") as tmp:
        log = demo_log(Path(tmp))
        app = subprocess.Popen(
            [sys.executable, "-m", "hegelion_dspy.cli.review", str(log), "--port", "0", "--labeller", "ann"],
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert app.stderr is not None
            match = re.search(r"at (http://127\.0\.0\.1:\d+)/", app.stderr.readline())
            assert match, "hegelion-review did not start"
            url = match[1]
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1360, "height": 900}, device_scale_factor=1)
                page.goto(url + "/")
                page.keyboard.press("j")
                page.keyboard.press("j")
                page.screenshot(path=str(args.out / "list.png"))
                page.goto(url + "/?q=sky+blue&reviewed=no")
                page.click("tr.row[data-href] a")
                page.wait_for_selector("article.pair.current")
                page.keyboard.press("c")
                page.keyboard.type("Good: names the mechanism and fixes the causal direction.")
                page.click("#pair-1 button.accept")
                page.wait_for_selector("#pair-1.decision-accept")
                page.wait_for_selector("#toast", state="hidden")
                page.screenshot(path=str(args.out / "trace.png"), full_page=True)
                page.goto(url + "/charts")
                page.screenshot(path=str(args.out / "charts.png"), full_page=True)
                browser.close()
        finally:
            app.terminate()
            app.wait(timeout=30)
            if app.stderr:
                app.stderr.close()
    for name in ("list", "trace", "charts"):
        print(f"wrote {args.out / (name + '.png')}")


if __name__ == "__main__":
    main()
