"""The MCP App in a real host nobody here wrote: ext-apps' own host side (AppBridge, @modelcontextprotocol/ext-apps
2.0.x) and the official TypeScript client, bundled by esbuild into a minimal host page, in headless Chromium, against
a real ``hegelion-server --transport streamable-http``. run_dialectic renders its three steps; in review_pairs an
accept and an edit land in the labels sidecar and the next ``hegelion dataset`` shows them; a label made stale by a
reviewer in the web app (/review on the same server) is refused and the view says so; hostile, huge, RTL and emoji
texts render as text. Each view's screenshot is written to a temporary folder, or to $HEGELION_SHOTS when set
(``HEGELION_SHOTS=docs/mcp-app`` refreshes the pictures docs/mcp.md shows): a test run leaves tracked files alone."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import CHROMIUM, CHROMIUM_ARGS, need
from interop.serving import http_server

from hegelion_dspy.collect.traces import build_trace
from hegelion_dspy.curate.labels import LabelStore
from hegelion_dspy.store import TraceStore
from hegelion_dspy.types import MAX_TEXT_CHARS

REPO = Path(__file__).resolve().parents[2]
NODE_MODULES = Path(os.environ.get("MCP_NODE_MODULES", REPO / ".ci" / "node" / "node_modules"))
HOST = Path(__file__).with_name("app_host") / "host.mjs"
INSTALL = "run .ci/install-server.sh (Node 22, @modelcontextprotocol/ext-apps and esbuild into .ci/node)"
HOSTILE = '<script>parent.__pwned = 1; window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
RTL = "هل الواحد عدد أولي؟ לא, 1 אינו ראשוני 🧮🙂👩🏽‍🔬"
PAIR = "thesis:1>synthesis:1"
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def trace(i: int, model: str = "openai/gpt-4o-mini", **fields: Any) -> Any:
    record = build_trace(
        task=fields.pop("task", f"Question {i}: why does topic {i} matter?"),
        thesis=fields.pop("thesis", f"It matters because of reason {i}, stated briefly."),
        antithesis=fields.pop("antithesis", f"Reason {i} alone misses the counter-example {i * 7}."),
        synthesis=fields.pop("synthesis", f"Topic {i} matters for reason {i}, except in case {i * 7}, which differs."),
        rounds=fields.pop("rounds", None),
        model=model,
        source="mcp",
    )
    return record.model_copy(update={"id": f"t{i:04d}", "created_at": T0 + timedelta(minutes=i), **fields})


@pytest.fixture(scope="module")
def host_page(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The host page: host.mjs and its two npm packages in one script (esbuild, for the browser)."""
    esbuild = NODE_MODULES / ".bin" / "esbuild"
    if not esbuild.exists() or not (NODE_MODULES / "@modelcontextprotocol" / "ext-apps").exists():
        need("esbuild and @modelcontextprotocol/ext-apps", INSTALL)
    out = tmp_path_factory.mktemp("host") / "host.js"
    command = [str(esbuild), str(HOST), "--bundle", "--format=iife", "--platform=browser", f"--outfile={out}"]
    env = {**os.environ, "NODE_PATH": str(NODE_MODULES)}
    subprocess.run(command, check=True, capture_output=True, env=env, timeout=120)
    bundle = out.read_text().replace("</script", "<\\/script")
    style = "body{margin:8px;font:14px sans-serif} iframe{display:block;width:100%;height:640px;border:1px solid #999}"
    return f'<!doctype html><meta charset="utf-8"><title>host</title><style>{style}</style><div id="views"></div>' + (
        f"<script>{bundle}</script>"
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need("Playwright for Python", "pip install playwright==1.65.2 (bash .ci/install-review.sh)")
    if not Path(CHROMIUM).exists():
        need("Chromium", "apt-get install -y chromium (bash .ci/install-review.sh)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """hegelion-server over HTTP (the scripted model for run_dialectic) on a log of four reviewable traces, one with
    hostile text, one of RTL and emoji, and one of 1.2 MB (every text at the schema's limit, two rounds)."""
    data = tmp_path / "data"
    log = data / "traces.jsonl"
    big = "Lorem ipsum dolor sit amet. " * (MAX_TEXT_CHARS // 28)
    later = [{"antithesis": big, "contradictions": [], "synthesis": big.replace("ipsum", "IPSUM")}]
    traces = [trace(i) for i in range(1, 5)]
    traces.append(trace(5, model="other/x", task=f"Hostile {HOSTILE}", thesis=HOSTILE, synthesis=f"Safe {HOSTILE}"))
    traces.append(trace(6, model="other/x", task=RTL, thesis=RTL, antithesis=f"{RTL} ⇐ RTL", synthesis=f"🙂 {RTL}"))
    synthesis = big.replace("Lorem", "Loren")
    traces.append(trace(7, "other/x", task="Long", thesis=big, antithesis=big, synthesis=synthesis, rounds=later))
    data.mkdir(parents=True)
    TraceStore(log).append_many(traces)
    with http_server(data, "--model", "scripted") as (url, _):
        yield url.removesuffix("/mcp"), log


@pytest.fixture
def host(browser: Any, host_page: str, served: tuple[str, Path]) -> Iterator[Any]:
    base, _ = served
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.errors = []  # type: ignore[attr-defined]
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.route(f"{base}/host", lambda route: route.fulfill(body=host_page, content_type="text/html; charset=utf-8"))
    page.goto(f"{base}/host")
    yield page
    context.close()


def open_view(page: Any, tool: str, args: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    opened = page.evaluate("([tool, args]) => window.host.open(tool, args)", [tool, args])
    return page.frame_locator(f"#{opened['frame']}"), opened["result"]


@functools.cache
def shots() -> Path:
    folder = Path(os.environ.get("HEGELION_SHOTS") or tempfile.mkdtemp(prefix="hegelion-mcp-app-"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def shoot(page: Any, frame_id: str, name: str) -> None:
    page.locator(f"#{frame_id}").screenshot(path=str(shots() / f"{name}.png"))


def test_run_dialectic_renders_the_three_steps_side_by_side(host: Any) -> None:
    view, result = open_view(host, "run_dialectic", {"task": "Is 1 a prime number?"})
    view.locator("body[data-rendered]").wait_for(state="attached")
    assert result["structuredContent"]["status"] == "ok"
    assert view.locator("h1").inner_text() == "Is 1 a prime number?"
    (round_1,) = view.locator("section.round").all()
    steps = round_1.locator("section.step").all()
    assert [s.locator("h3").first.inner_text().lower() for s in steps] == ["thesis", "antithesis", "synthesis"]
    assert "Thesis: a first answer to 'Is 1 a prime number?'" in steps[0].inner_text()
    assert "contradictions (1)\nit ignores edge cases." in steps[1].inner_text().lower()
    facts = view.locator(".facts").inner_text()
    assert result["structuredContent"]["trace_id"] in facts and "demo model" in facts and "scripted" in facts
    round_1.locator("details summary").click()
    assert round_1.locator("details ins").count() >= 1 and round_1.locator("details del").count() >= 1
    shoot(host, "view-1", "dialectic")
    assert host.errors == []


def test_hostile_rtl_emoji_and_huge_texts_render_as_text(host: Any) -> None:
    huge, _ = open_view(host, "show_trace", {"trace_id": "t0007"})  # first: its frame is the one in sight
    huge.locator("body[data-rendered]").wait_for(state="attached")
    assert huge.locator("section.round").count() == 2
    shown = huge.locator("section.step .text").evaluate_all("els => els.reduce((n, e) => n + e.textContent.length, 0)")
    assert shown >= 6 * (MAX_TEXT_CHARS - 28)  # 1.2 MB of text, every character of it
    assert "too long to diff here" in huge.locator("section.round").first.inner_text()
    first_text = huge.locator("section.step .text").first  # each text scrolls in its own box; the page answers
    assert first_text.evaluate("el => { el.scrollTop = 5000; return el.scrollTop }") > 0
    shoot(host, "view-1", "dialectic-huge")
    view, _ = open_view(host, "show_trace", {"trace_id": "t0005"})
    view.locator("body[data-rendered]").wait_for(state="attached")
    assert HOSTILE in view.locator("section.step").first.inner_text()  # shown, not run
    assert view.locator("img, script:not(:first-of-type)").count() == 0
    assert host.evaluate("window.__pwned") is None
    shoot(host, "view-2", "dialectic-hostile")
    rtl, _ = open_view(host, "show_trace", {"trace_id": "t0006"})
    rtl.locator("body[data-rendered]").wait_for(state="attached")
    assert rtl.locator("h1").inner_text() == RTL
    shoot(host, "view-3", "dialectic-rtl-emoji")
    host.set_viewport_size({"width": 380, "height": 800})  # a phone: the steps stack, nothing scrolls sideways
    widths = huge.locator("html").evaluate("el => [el.scrollWidth, el.clientWidth]")
    assert widths[0] <= widths[1]
    shoot(host, "view-1", "dialectic-narrow")
    assert host.errors == []


def test_review_in_the_chat_lands_in_the_sidecar_the_export_and_refuses_a_stale_label(
    host: Any, browser: Any, served: tuple[str, Path], tmp_path: Path
) -> None:
    base, log = served
    view, result = open_view(host, "review_pairs", {"models": ["openai/*"]})
    assert result["content"][0]["text"].startswith("4 pairs to review")  # the pairs went to the view, not the text
    where = view.locator("#where")
    where.filter(has_text="Pair 1 of 4").wait_for()
    assert view.locator("#facts").inner_text().startswith("trace t0004")
    view.locator("#where").click()  # focus inside the view, then its keyboard shortcut
    host.keyboard.press("a")
    where.filter(has_text="Pair 2 of 4 (1 decided)").wait_for()
    view.locator("#edit").click()
    view.locator("#edited").fill("An edited answer for topic 3, written by the reviewer.")
    shoot(host, "view-1", "review-edit")
    view.locator("#edited").press("Control+Enter")
    where.filter(has_text="Pair 3 of 4 (2 decided)").wait_for()
    shoot(host, "view-1", "review")

    web = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()  # another reviewer, the web app
    web.goto(f"{base}/review/trace/t0002")
    web.wait_for_selector("#pair-1.current")
    web.keyboard.press("r")
    # t0002 has one pair: the page goes on to the next trace 250 ms after showing the label, so a wait for the label's
    # class could miss it on a busy machine; the sidecar is what the conflict below is about
    deadline = time.monotonic() + 30
    while ("t0002", "reject") not in {(lbl.trace_id, lbl.decision) for lbl in LabelStore.beside(log).records()}:
        assert time.monotonic() < deadline, "the web app's reject of t0002 never reached the sidecar"
        time.sleep(0.05)
    web.context.close()
    view.locator("#accept").click()  # from the version the view read: refused
    status = view.locator("#status[role=alert]")
    status.wait_for()
    assert "Refused:" in status.inner_text() and "was changed" in status.inner_text()
    assert "(version 0, now 1)" in status.inner_text()
    shoot(host, "view-1", "review-conflict")

    labels = [(lbl.trace_id, lbl.decision, lbl.chosen) for lbl in LabelStore.beside(log).records()]
    assert labels == [
        ("t0004", "accept", None),
        ("t0003", "accept", "An edited answer for topic 3, written by the reviewer."),
        ("t0002", "reject", None),
    ]
    out = tmp_path / "dpo.jsonl"
    hegelion = Path(sys.executable).with_name("hegelion")
    subprocess.run([str(hegelion), "dataset", str(log), str(out), "--model", "openai/*"], check=True, timeout=120)
    rows = {row["prompt"]: row for row in map(json.loads, out.read_text().splitlines())}
    assert rows[trace(3).task]["chosen"] == "An edited answer for topic 3, written by the reviewer."
    assert rows[trace(4).task]["chosen"] == trace(4).synthesis
    assert trace(2).task not in rows and trace(1).task in rows  # rejected in the web app; not reviewed: kept
    assert host.errors == []
