"""The review app in a real headless browser (Debian's Chromium driven by Playwright), against a real hegelion-review
process: the list and its filters, a trace page, labelling each way by keyboard, labels surviving a reload, an export
honouring them, hostile texts rendered inert, and a POST without the CSRF token refused."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import CHROMIUM, CHROMIUM_ARGS, need
from test_review_index import failed_trace, make_trace

from hegelion_dspy.curate.labels import LabelStore
from hegelion_dspy.store import TraceStore

HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


def launch_chromium(playwright: Any) -> Any:
    """Debian's Chromium through Playwright (``playwright install`` downloads browsers and cannot run here)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need("Playwright for Python", "pip install playwright==1.65.2 (bash .ci/install-review.sh)")
    if shutil.which("chromium") is None and not Path(CHROMIUM).exists():
        need("Chromium", "apt-get install -y chromium (bash .ci/install-review.sh)")
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "traces.jsonl"
    traces = [make_trace(i) for i in range(1, 61)]
    traces[41] = make_trace(
        42, task="Why is the sky blue?", antithesis="It ignores Rayleigh scattering.", synthesis="Rayleigh scattering."
    )
    traces.append(failed_trace(61))
    traces.append(make_trace(62, task=f"Hostile {HOSTILE}", thesis=f"Thesis {HOSTILE}", model=f"m/{HOSTILE}"))
    TraceStore(path).append_many(traces)
    return path


@pytest.fixture
def serve(log: Path) -> Iterator[Any]:
    """Start ``hegelion-review LOG --port 0 ...`` and hand back its URL; stop it after the test."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str) -> str:
        process = subprocess.Popen(
            [sys.executable, "-m", "hegelion_dspy.cli.review", str(log), "--port", "0", *args],
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        assert process.stderr is not None
        line = process.stderr.readline()
        match = re.search(r"at (http://127\.0\.0\.1:\d+)/", line)
        assert match, line
        return match[1]

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=30)
        if process.stderr is not None:
            process.stderr.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    tab.errors = []  # type: ignore[attr-defined]
    tab.on("pageerror", lambda exc: tab.errors.append(str(exc)))
    tab.on("dialog", lambda dialog: (tab.errors.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    yield tab
    context.close()


def listed_ids(page: Any) -> list[str]:
    return page.eval_on_selector_all("tr.row", "rows => rows.map(r => r.dataset.id)")


def test_the_list_pages_filters_and_searches(page: Any, serve: Any) -> None:
    url = serve()
    page.goto(url + "/")
    assert listed_ids(page)[:3] == ["t0062", "t0061", "t0060"] and len(listed_ids(page)) == 50
    assert "62 traces" in page.inner_text("#summary")
    page.click("#next-page")
    assert listed_ids(page) == [f"t{i:04d}" for i in range(12, 0, -1)]
    page.goto(url + "/")
    page.select_option("select[name=status]", "failed")
    page.click("form.filters button[type=submit]")
    assert listed_ids(page) == ["t0061"] and "status=failed" in page.url
    page.goto(url + "/")
    page.select_option("select[name=model]", "anthropic/claude")
    page.fill("input[name=min_score]", "0.8")
    page.click("form.filters button[type=submit]")
    assert listed_ids(page) == ["t0058", "t0048", "t0038", "t0028", "t0018", "t0008"]
    page.goto(url + "/")
    page.keyboard.press("/")
    page.keyboard.type("rayleigh")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"q=rayleigh"))
    assert listed_ids(page) == ["t0042"]
    page.keyboard.press("j")  # select the first row, open it
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/trace/t0042\?q=rayleigh"))
    assert page.inner_text("#task") == "Why is the sky blue?"
    assert page.errors == []


def test_a_trace_page_shows_the_dialectic(page: Any, serve: Any, log: Path) -> None:
    record = make_trace(
        70,
        task="Is 1 prime?",
        thesis="Yes, 1 is prime.",
        antithesis="No: a prime has exactly two divisors.",
        synthesis="No, 1 is not prime: it has one divisor.",
        contradictions=[{"description": "1 has one divisor", "evidence": "primes have exactly two"}],
    )
    timed = record.rounds[0].model_copy(update={"seconds": {"thesis": 1.5, "antithesis": 2.0, "synthesis": 2.5}})
    TraceStore(log).append(record.model_copy(update={"rounds": [timed]}))
    url = serve()
    page.goto(url + "/trace/t0070")
    assert page.inner_text("#task") == "Is 1 prime?"
    round_one = page.inner_text("#round-1")
    assert "1 has one divisor" in round_one and "evidence: primes have exactly two" in round_one
    assert "1.5 s" in round_one and "2.5 s" in round_one
    assert page.inner_text("#diff del").startswith("Yes")
    assert "not" in page.inner_text("#diff")
    rows = page.inner_text("#rows")
    assert '"completion": "No, 1 is not prime: it has one divisor."' in rows
    assert page.is_visible("#older") and page.errors == []


def test_labelling_by_keyboard_survives_a_reload_and_reaches_the_export(
    page: Any, serve: Any, log: Path, tmp_path: Path
) -> None:
    url = serve("--rejected", "both", "--labeller", "ann")  # two pairs a trace: vs thesis, vs antithesis
    page.goto(url + "/trace/t0060")
    assert page.eval_on_selector_all("article.pair", "ps => ps.map(p => p.dataset.pair)") == [
        "thesis:1>synthesis:1",
        "antithesis:1>synthesis:1",
    ]
    page.keyboard.press("a")  # accept the first pair; the focus moves to the second
    page.wait_for_selector("#pair-1.decision-accept")
    page.wait_for_selector("#pair-2.current")
    page.keyboard.press("r")  # reject the second: the last pair of this trace, so on to the next (older) trace
    # (the page leaves 250 ms after the label is shown: a wait for the label's class could miss it on a busy
    # machine and then wait on the next page; the reload below checks the label)
    page.wait_for_url(re.compile(r"/trace/t0059$"))

    page.wait_for_selector("#pair-1.current")
    page.keyboard.press("s")  # swap
    page.wait_for_selector("#pair-1.decision-swap")
    page.wait_for_selector("#rows h3:has-text('swapped')")  # the export preview follows the label
    page.keyboard.press("k")  # back to the first pair
    page.wait_for_selector("#pair-1.current")
    page.keyboard.press("e")  # edit the chosen text (after the swap: the thesis), save with Ctrl+Enter
    page.keyboard.press("Control+a")
    page.keyboard.type("An edited chosen answer.")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#pair-1.edited")
    page.keyboard.press("c")  # a note
    page.keyboard.type("thesis was better")
    page.keyboard.press("Control+Enter")
    page.wait_for_function("() => document.activeElement.tagName === 'BODY'")
    page.keyboard.press("j")
    page.wait_for_selector("#pair-2.current")
    page.keyboard.press("u")  # a decision undone is no decision
    page.keyboard.press("p")  # previous (newer) trace
    page.wait_for_url(re.compile(r"/trace/t0060$"))

    page.reload()
    assert page.inner_text("#pair-1 [data-role=state]") == "accept"
    assert page.inner_text("#pair-2 [data-role=state]") == "reject"
    assert "by ann" in page.inner_text("#pair-1 [data-role=by]")
    page.goto(url + "/trace/t0059")
    assert page.inner_text("#pair-1 [data-role=state]") == "swap + edited"
    assert page.input_value("#pair-1 [data-role=note]") == "thesis was better"
    assert page.input_value("#pair-1 [data-role=edit]") == "An edited chosen answer."
    assert page.inner_text("#pair-2 [data-role=state]") == "not reviewed"
    page.goto(url + "/?reviewed=yes")
    assert listed_ids(page) == ["t0060"]
    assert page.errors == []

    out = tmp_path / "dpo.jsonl"
    subprocess.run(
        [sys.executable, "-m", "hegelion_dspy.cli.dataset", str(log), str(out), "--rejected", "both"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    by_task = {}
    for row in rows:
        by_task.setdefault(row["prompt"], []).append(row)
    assert by_task["Task 60: explain topic 60"] == [  # the antithesis pair was rejected
        {"prompt": "Task 60: explain topic 60", "chosen": "Better answer 60.", "rejected": "First answer 60."}
    ]
    assert by_task["Task 59: explain topic 59"][0] == {  # swapped, then the new chosen edited
        "prompt": "Task 59: explain topic 59",
        "chosen": "An edited chosen answer.",
        "rejected": "Better answer 59.",
    }
    labels = list(LabelStore.beside(log).records())
    assert {lbl.labeller for lbl in labels} == {"ann"}


def test_hostile_texts_render_inert(page: Any, serve: Any) -> None:
    url = serve()
    for path in ("/trace/t0062", "/?q=Hostile", "/", "/charts"):
        page.goto(url + path)
        page.wait_for_load_state("load")
        assert page.evaluate("window.__pwned === undefined"), path
        assert page.evaluate("document.querySelectorAll('img').length") == 0, path
        only_ours = "[...document.scripts].every(s => s.src.startsWith(location.origin + '/static/'))"
        assert page.evaluate(only_ours), path
    page.goto(url + "/trace/t0062")
    assert page.inner_text("#task") == f"Hostile {HOSTILE}"  # shown as text, exactly
    assert page.errors == []


def test_a_post_without_the_token_is_refused(page: Any, serve: Any, log: Path) -> None:
    url = serve()
    page.goto(url + "/trace/t0001")
    post = """async ([token]) => {
        const body = new URLSearchParams({pair: "thesis:1>synthesis:1", decision: "accept"});
        const headers = token ? {"X-CSRF-Token": token} : {};
        const r = await fetch("/trace/t0001/label", {method: "POST", body, headers});
        return [r.status, await r.text()];
    }"""
    status, text = page.evaluate(post, [None])
    assert status == 403 and "CSRF" in text
    status, _ = page.evaluate(post, ["forged"])
    assert status == 403
    assert not LabelStore.beside(log).path.exists()
    token = page.get_attribute("meta[name=csrf-token]", "content")
    status, _ = page.evaluate(post, [token])
    assert status == 200 and len(list(LabelStore.beside(log).records())) == 1


def test_two_reviewers_on_one_pair_the_second_is_told_and_shown_the_first(browser: Any, serve: Any, log: Path) -> None:
    # Two pairs a trace: a decision on pair 1 moves the focus to pair 2 and the page stays (a decision on a trace's
    # last pair goes on to the next trace after 250 ms, which a wait for the label could miss on a busy machine).
    url = serve("--labeller", "ann", "--rejected", "both")
    tabs = []
    for _ in range(2):  # two reviewers, each with a browser of their own, open the same trace
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        tab = context.new_page()
        tab.set_default_timeout(15_000)
        tab.goto(url + "/trace/t0030")
        tab.wait_for_selector("#pair-1.current")
        tabs.append(tab)
    first, second = tabs
    first.keyboard.press("r")  # the first reviewer rejects the pair
    first.wait_for_selector("#pair-1.decision-reject", state="attached")
    second.keyboard.press("a")  # the second, from the page as it was loaded, accepts it: refused
    conflict = second.wait_for_selector('#pair-1 [data-role="conflict"]:not([hidden])')
    assert "another reviewer changed pair thesis:1>synthesis:1" in conflict.inner_text()
    assert "(version 0, now 1)" in conflict.inner_text()
    second.wait_for_selector("#pair-1.decision-reject")  # the first reviewer's label is shown
    assert [lbl.decision for lbl in LabelStore.beside(log).records()] == ["reject"]
    second.keyboard.press("a")  # deciding again replaces it knowingly
    second.wait_for_selector("#pair-1.decision-accept", state="attached")
    assert [lbl.decision for lbl in LabelStore.beside(log).records()] == ["reject", "accept"]
    assert second.is_hidden('#pair-1 [data-role="conflict"]')
    for tab in tabs:
        tab.context.close()
