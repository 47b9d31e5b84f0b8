"""Labels through the app carry the version they were made from: a label from a version another reviewer replaced is
a 409 that says so (of concurrent reviewers exactly one wins); paging past the end never fails."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from test_review_index import make_trace

from hegelion_dspy.curate.labels import LabelStore
from hegelion_dspy.review import ReviewConfig, create_app
from hegelion_dspy.store import TraceStore

TOKEN = "test-token-123"
BASE = "http://127.0.0.1:8766"
PAIR = "thesis:1>synthesis:1"
JSON = {"X-CSRF-Token": TOKEN, "Accept": "application/json"}


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "traces.jsonl"
    TraceStore(path).append_many([make_trace(i) for i in range(1, 8)])
    return path


def reviewer(log: Path, name: str) -> TestClient:
    """One reviewer's app (its own process in real life: an app of its own over the same log)."""
    app = create_app(ReviewConfig(log_path=log, labeller=name), csrf_token=TOKEN)
    return TestClient(app, base_url=BASE, follow_redirects=False)


def shown_version(client: TestClient, trace_id: str) -> str:
    html = client.get(f"/trace/{trace_id}").text
    found = re.search(r'name="base" value="(\d+)"', html)
    assert found is not None
    return found[1]


def test_a_label_from_a_replaced_version_is_a_409_and_the_page_says_so(log: Path) -> None:
    ann, bob = reviewer(log, "ann"), reviewer(log, "bob")
    assert shown_version(ann, "t0003") == shown_version(bob, "t0003") == "0"  # both open the page
    saved = bob.post("/trace/t0003/label", data={"pair": PAIR, "decision": "reject", "base": "0"}, headers=JSON)
    assert saved.status_code == 200 and saved.json()["version"] == 1
    late = ann.post("/trace/t0003/label", data={"pair": PAIR, "decision": "accept", "base": "0"}, headers=JSON)
    assert late.status_code == 409
    body = late.json()
    assert body["version"] == 1 and body["label"]["decision"] == "reject" and body["label"]["labeller"] == "bob"
    assert "another reviewer changed pair thesis:1>synthesis:1 of this trace by bob" in body["conflict"]
    form = ann.post("/trace/t0003/label?tag=x", data={"csrf": TOKEN, "pair": PAIR, "decision": "swap", "base": "0"})
    assert form.status_code == 409 and "by bob since you opened it (version 0, now 1)" in form.text
    assert 'href="/trace/t0003?tag=x"' in form.text  # back to the trace, to decide again
    assert [lbl.decision for lbl in LabelStore.beside(log).records()] == ["reject"]
    assert shown_version(ann, "t0003") == "1"
    again = ann.post("/trace/t0003/label", data={"pair": PAIR, "decision": "accept", "base": "1"}, headers=JSON)
    assert again.status_code == 200 and again.json()["version"] == 2  # overruled knowingly


def test_a_form_without_a_version_writes_as_before(log: Path) -> None:
    ann = reviewer(log, "ann")
    for decision in ("reject", "accept"):
        response = ann.post("/trace/t0002/label", data={"csrf": TOKEN, "pair": PAIR, "decision": decision})
        assert response.status_code == 303
    bad = ann.post("/trace/t0002/label", data={"csrf": TOKEN, "pair": PAIR, "base": "-1"})
    assert bad.status_code == 400 and "not a label version" in bad.text


@pytest.mark.parametrize("reviewers", [2, 5])
def test_of_concurrent_reviewers_from_one_version_exactly_one_wins(log: Path, reviewers: int) -> None:
    clients = [reviewer(log, f"r{i}") for i in range(reviewers)]
    for client in clients:
        assert shown_version(client, "t0005") == "0"
    start = threading.Barrier(reviewers)
    statuses: list[int] = []

    def post(client: TestClient) -> None:
        start.wait()
        form = {"pair": PAIR, "decision": "accept", "base": "0"}
        statuses.append(client.post("/trace/t0005/label", data=form, headers=JSON).status_code)

    threads = [threading.Thread(target=post, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200] + [409] * (reviewers - 1)
    assert len(list(LabelStore.beside(log).records())) == 1


@pytest.mark.parametrize("page", ["3", "999999", str(2**62), str(2**63), str(2**64 + 7), "9" * 30])
def test_a_page_past_the_end_is_the_last_page(log: Path, page: str) -> None:
    response = reviewer(log, "ann").get("/", params={"page": page})
    assert response.status_code == 200 and "page 1 of 1" in response.text


@pytest.mark.parametrize("page", ["x", "1.5", "1e9", "9" * 31, "٣", "0x10", "--1"])
def test_a_page_that_is_no_number_is_a_400(log: Path, page: str) -> None:
    response = reviewer(log, "ann").get("/", params={"page": page})
    assert response.status_code == 400 and "is not a page number" in response.text


@pytest.mark.parametrize("page", ["0", "-1", str(-(2**63)), "-" + "9" * 30])
def test_a_page_below_one_is_the_first(log: Path, page: str) -> None:
    response = reviewer(log, "ann").get("/", params={"page": page})
    assert response.status_code == 200 and "page 1 of 1" in response.text


def test_a_label_the_disk_refuses_is_not_saved_and_the_reviewer_is_told(log: Path, tmp_path: Path) -> None:
    ann = reviewer(log, "ann")  # the sidecar was writable when the app started
    sidecar = Path(f"{log}.labels")
    sidecar.symlink_to(tmp_path / "gone" / "traces.jsonl.labels")  # now every write to it fails (ENOENT)
    refused = ann.post("/trace/t0003/label", data={"pair": PAIR, "decision": "reject", "base": "0"}, headers=JSON)
    assert refused.status_code == 507
    assert refused.json()["error"] == (
        f"cannot write the labels sidecar {sidecar}: No such file or directory (ENOENT); the label was not saved. "
        "Free some space or make the folder writable, then label again"
    )
    form = ann.post("/trace/t0003/label", data={"csrf": TOKEN, "pair": PAIR, "decision": "swap"})
    assert form.status_code == 507 and "Not saved: cannot write the labels sidecar" in form.text
