"""The review app lists the evaluation reports beside its log and shows one (tables and the chart), picked by index."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from hegelion_dspy.eval.run import evaluate
from hegelion_dspy.review import ReviewConfig, create_app
from hegelion_dspy.store import TraceStore


def test_the_review_app_lists_and_shows_evaluation_reports(tmp_path: Path) -> None:
    log = tmp_path / "traces.jsonl"
    TraceStore(log)  # an empty log is enough
    log.touch()
    evaluate("scripted", base="scripted", suites="selfcorrect", n=2, out=tmp_path / "reports" / "sc")
    client = TestClient(create_app(ReviewConfig(log_path=log)), base_url="http://127.0.0.1:8766")
    listing = client.get("/evals")
    assert listing.status_code == 200 and "selfcorrect" in listing.text and 'href="/evals?i=0"' in listing.text
    shown = client.get("/evals?i=0")
    assert shown.status_code == 200
    assert "accuracy t1 (first thesis)" in shown.text and "no significant difference" in shown.text
    assert "data:image/svg+xml;base64," in shown.text
    assert client.get("/evals?i=7").status_code == 404
    assert client.get("/evals?i=../../etc").status_code == 404
