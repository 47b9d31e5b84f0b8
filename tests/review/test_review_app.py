"""The review app over HTTP (Starlette's TestClient, a real hegelion-review process): pages, labels, the guard
(Host, CSRF, origin, headers), static files, the mount on another app, and the command line."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient
from test_review_index import failed_trace, make_trace

from hegelion_dspy.curate.labels import LabelStore
from hegelion_dspy.review import ReviewConfig, create_app, mount_review
from hegelion_dspy.review.diff import word_diff
from hegelion_dspy.review.index import PairView
from hegelion_dspy.store import TraceStore

TOKEN = "test-token-123"
BASE = "http://127.0.0.1:8766"
HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "traces.jsonl"
    traces = [make_trace(i) for i in range(1, 8)]
    traces.append(
        make_trace(
            8,
            task=f"Hostile task {HOSTILE}",
            thesis=f"Thesis {HOSTILE}",
            synthesis="A calm synthesis.",
            model=f"evil/{HOSTILE}",
            tags=[HOSTILE],
        )
    )
    traces.append(failed_trace(9))
    TraceStore(path).append_many(traces)
    return path


@pytest.fixture
def client(log: Path) -> TestClient:
    app = create_app(ReviewConfig(log_path=log, labeller="ann"), csrf_token=TOKEN)
    return TestClient(app, base_url=BASE, follow_redirects=False)


def label_form(**fields: str) -> dict[str, str]:
    return {"csrf": TOKEN, "pair": "thesis:1>synthesis:1", **fields}


def test_the_list_shows_traces_newest_first_and_filters(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert re.findall(r'data-id="(t\d+)"', page.text) == [f"t{i:04d}" for i in range(9, 0, -1)]
    assert "<strong>9</strong> traces" in page.text
    failed = client.get("/", params={"status": "failed"})
    assert re.findall(r'data-id="(t\d+)"', failed.text) == ["t0009"] and "the LM timed out" in failed.text
    found = client.get("/", params={"q": "Critique 3"})
    assert re.findall(r'data-id="(t\d+)"', found.text) == ["t0003"]
    assert 'href="/trace/t0003?q=Critique+3"' in found.text  # the trace link keeps the filter (for next/previous)
    scored = client.get("/", params={"min_score": "0.5", "max_score": "0.7", "model": "openai/*"})
    assert re.findall(r'data-id="(t\d+)"', scored.text) == ["t0007", "t0005"]


@pytest.mark.parametrize(
    "params", [{"status": "weird"}, {"min_score": "high"}, {"max_score": "2"}, {"reviewed": "maybe"}, {"page": "x"}]
)
def test_a_bad_filter_is_a_400_that_says_why(client: TestClient, params: dict[str, str]) -> None:
    response = client.get("/", params=params)
    assert response.status_code == 400 and "That did not work" in response.text


def test_a_trace_page_shows_rounds_diff_meta_and_the_rows_an_export_writes(client: TestClient, log: Path) -> None:
    TraceStore(log).append(
        make_trace(
            10,
            task="Why is the sky blue?",
            thesis="Because the ocean reflects.",
            antithesis="Wrong: scattering.",
            synthesis="Because air scatters blue light more.",
            rounds=[{"antithesis": "Name it.", "synthesis": "Rayleigh scattering makes it blue."}],
        )
    )
    page = client.get("/trace/t0010")
    assert page.status_code == 200
    html = page.text
    assert "Why is the sky blue?" in html and "Round 2" in html and "Name it." in html
    assert "<del>" in html and "<ins>" in html  # the word diff, thesis -> final synthesis
    assert 'data-pair="thesis:1&gt;synthesis:2"' in html  # the first-last pair of an iterated trace
    rows = re.findall(r'<pre class="json">(.*?)</pre>', html, re.S)
    dpo = json.loads(rows[0].replace("&#34;", '"').replace("&gt;", ">").replace("&lt;", "<").replace("&amp;", "&"))
    assert dpo == {
        "prompt": "Why is the sky blue?",
        "chosen": "Rayleigh scattering makes it blue.",
        "rejected": "Because the ocean reflects.",
    }
    assert 'id="newer"' not in html and 'id="older" rel="next" href="/trace/t0009"' in html
    assert client.get("/trace/nope").status_code == 404
    failed = client.get("/trace/t0009")
    assert "dropped as <strong>failed</strong>" in failed.text and "Timeout" in failed.text


def test_labels_are_appended_beside_the_log_and_shown(client: TestClient, log: Path) -> None:
    before = log.read_bytes()
    response = client.post("/trace/t0003/label?tag=x", data=label_form(decision="swap", note="thesis is better"))
    assert response.status_code == 303 and response.headers["location"] == "/trace/t0003?tag=x"
    as_json = client.post(
        "/trace/t0003/label",
        data={"pair": "thesis:1>synthesis:1", "decision": "accept", "chosen": "Edited."},
        headers={"X-CSRF-Token": TOKEN, "Accept": "application/json"},
    )
    assert as_json.status_code == 200 and as_json.json()["label"]["chosen"] == "Edited."
    labels = list(LabelStore.beside(log).records())
    assert [(lbl.decision, lbl.labeller) for lbl in labels] == [("swap", "ann"), ("accept", "ann")]
    assert log.read_bytes() == before  # the trace log is never written
    page = client.get("/trace/t0003").text
    assert "accept + edited" in page and "Edited." in page
    assert 'class="decision accept"' in client.get("/").text


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"pair": "thesis:2>synthesis:2"}, "has no pair"),
        ({"pair": "round one"}, "not a pair name"),
        ({"decision": "maybe"}, "is not one of accept, reject, swap"),
        ({"note": "x" * 20_001}, "field 'note'"),
    ],
)
def test_a_bad_label_is_refused_and_nothing_is_written(
    client: TestClient, log: Path, fields: dict[str, str], message: str
) -> None:
    response = client.post("/trace/t0003/label", data=label_form(**fields))
    assert response.status_code == 400 and message in response.text
    assert not LabelStore.beside(log).path.exists()
    assert client.post("/trace/nope/label", data=label_form()).status_code == 400


def test_state_changing_requests_need_the_token_and_this_origin(client: TestClient, log: Path) -> None:
    assert client.post("/trace/t0003/label", data={"pair": "thesis:1>synthesis:1"}).status_code == 403
    assert client.post("/trace/t0003/label", data=label_form(csrf="guess")).status_code == 403
    assert client.post("/trace/t0003/label", data=label_form(), headers={"X-CSRF-Token": "guess"}).status_code == 403
    other = {"Origin": "http://evil.example"}
    assert client.post("/trace/t0003/label", data=label_form(), headers=other).status_code == 403
    cross = {"Sec-Fetch-Site": "cross-site"}
    assert client.post("/trace/t0003/label", data=label_form(), headers=cross).status_code == 403
    assert not LabelStore.beside(log).path.exists()
    same = {"Origin": BASE, "Sec-Fetch-Site": "same-origin"}
    assert client.post("/trace/t0003/label", data=label_form(decision="accept"), headers=same).status_code == 303


def test_other_hosts_are_refused_and_every_response_is_locked_down(client: TestClient, log: Path) -> None:
    rebound = client.get("/", headers={"Host": "attacker.example:8766"})
    assert rebound.status_code == 421
    assert client.get("/", headers={"Host": "localhost:8766"}).status_code == 200
    assert client.get("/", headers={"Host": "[::1]:8766"}).status_code == 200
    allowed = TestClient(create_app(ReviewConfig(log_path=log, allowed_hosts=("review.lan",))), base_url=BASE)
    assert allowed.get("/", headers={"Host": "review.lan"}).status_code == 200
    headers = client.get("/").headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "default-src 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" in rebound.headers


def test_untrusted_texts_are_escaped_everywhere(client: TestClient) -> None:
    for path in ("/", "/trace/t0008", "/charts", "/?q=Hostile"):
        html = client.get(path).text
        assert "<img src=x" not in html and "<script>window" not in html and "<script>" not in html, path
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in client.get("/trace/t0008").text


def test_static_files_are_a_fixed_set(client: TestClient) -> None:
    assert client.get("/static/review.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/static/review.css").status_code == 200
    for name in ("app.py", "..%2Fapp.py", "%2e%2e%2f__init__.py", "review.js.bak"):
        assert client.get(f"/static/{name}").status_code == 404


def test_charts_are_inline_svg_with_nothing_fetched(client: TestClient, log: Path) -> None:
    LabelStore.beside(log)  # no labels yet: progress shows 0 of N
    html = client.get("/charts").text
    assert html.count("<svg") >= 8
    assert "0 of 8 pairs decided" in html
    srcs = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert all(s.startswith("/") or s.startswith("data:") or s.startswith("?") or s == "" for s in srcs), srcs
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_the_app_mounts_under_a_prefix_with_its_links_following(log: Path) -> None:
    app = Starlette()
    path = mount_review(app, log, labeller="bob")
    assert path == "/review/"
    client = TestClient(app, base_url=BASE, follow_redirects=False)
    page = client.get("/review/")
    assert page.status_code == 200 and 'href="/review/trace/t0009"' in page.text
    assert 'src="/review/static/review.js' in page.text
    token = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    assert token is not None
    saved = client.post(
        "/review/trace/t0002/label", data={"csrf": token[1], "pair": "thesis:1>synthesis:1", "decision": "reject"}
    )
    assert saved.status_code == 303 and saved.headers["location"] == "/review/trace/t0002"
    assert [lbl.labeller for lbl in LabelStore.beside(log).records()] == ["bob"]
    assert client.get("/review/", headers={"Host": "evil.example"}).status_code == 421


def test_the_pairs_under_review_follow_the_options(log: Path) -> None:
    client = TestClient(create_app(ReviewConfig(log_path=log, view=PairView(rejected="both"))), base_url=BASE)
    html = client.get("/trace/t0002").text
    assert 'data-pair="thesis:1&gt;synthesis:1"' in html and 'data-pair="antithesis:1&gt;synthesis:1"' in html


def test_word_diff_keeps_every_word_once() -> None:
    runs, cut = word_diff("the sky is blue", "the sky looks very blue")
    assert not cut
    expected = [("same", "the sky "), ("del", "is"), ("ins", "looks very"), ("same", " blue")]
    assert [(r.op, r.text) for r in runs] == expected
    assert "".join(r.text for r in runs if r.op != "ins") == "the sky is blue"
    assert "".join(r.text for r in runs if r.op != "del") == "the sky looks very blue"
    _, cut = word_diff("a " * 50, "b " * 50, max_words=10)
    assert cut


def test_hegelion_review_serves_on_loopback_and_says_where(log: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "hegelion_dspy.cli.review", str(log), "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        match = re.search(r"at (http://127\.0\.0\.1:(\d+)/)", line)
        assert match, line
        import httpx

        page = httpx.get(match[1], timeout=30)
        assert page.status_code == 200 and "t0009" in page.text
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stderr is not None:
            process.stderr.close()


def test_hegelion_review_without_a_log_says_so_in_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hegelion_dspy.cli.review", str(tmp_path / "missing.jsonl")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"hegelion: error: there is no trace log at {str(tmp_path / 'missing.jsonl')!r}; run a dialectic "
        "first or give the log's path"
    ]


def test_demo_traces_are_hidden_as_in_exports_with_a_way_to_show_them(client: TestClient, log: Path) -> None:
    TraceStore(log).append(make_trace(20, demo=True, model="embedded"))
    page = client.get("/")
    assert 'data-id="t0020"' not in page.text
    assert "1 trace of demo models (the embedded model, the scripted fake) is hidden" in page.text
    shown = client.get("/", params={"include_demo": "1"})
    assert re.findall(r'data-id="(t\d+)"', shown.text)[0] == "t0020" and 'id="demo-notice"' not in shown.text
    window = client.get("/", params={"since": "2026-11-01T12:03:00", "until": "2026-11-01T12:05:00Z"})
    assert re.findall(r'data-id="(t\d+)"', window.text) == ["t0004", "t0003"]
    backwards = client.get("/", params={"since": "2026-12-01", "until": "2026-11-01"})
    assert backwards.status_code == 400 and "must be before until" in backwards.text
    assert client.get("/", params={"since": "yesterday"}).status_code == 400


def test_hegelion_review_is_a_subcommand_of_hegelion(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hegelion_dspy.cli.main import main

    with pytest.raises(SystemExit) as done:
        main(["review", "--help"])
    assert done.value.code == 0 and "Serve the review app for LOG" in capsys.readouterr().out
    with pytest.raises(SystemExit) as done:
        main(["review", str(tmp_path / "missing.jsonl")])
    assert done.value.code == 2 and "there is no trace log at" in capsys.readouterr().err
