"""The report's chart (report.svg): every share on one 0..1 axis so rows compare, margins on their own range, the
reference M is compared with drawn, and each row's means and verdict written out in full."""

from __future__ import annotations

import re

from hegelion_dspy.eval.metrics import metric
from hegelion_dspy.eval.report import chart_axis, svg_chart


def test_shares_share_one_axis_margins_keep_theirs_and_the_reference_is_drawn() -> None:
    accuracy = metric("implicit-reward accuracy", [1.0] * 18 + [0.0] * 2, null=0.5)
    assert chart_axis(accuracy) == (0.0, 1.0, 0.5)  # compared with 0.5: the line at 0.5, on 0..1
    margin = metric("mean implicit-reward margin (nats)", [20.0 + i for i in range(20)], null=0.0)
    low, high, reference = chart_axis(margin)
    assert low == 0.0 and reference == 0.0 and high > 29.0  # from the reference up to the interval, padded
    own = metric("own preference accuracy", [1.0, 0.0] * 10, m0=[0.0, 0.0, 1.0, 0.0] * 5)
    assert chart_axis(own) == (0.0, 1.0, None)  # M against M0: no reference line among the two shares


def test_the_chart_writes_each_rows_label_means_and_verdict_within_its_width() -> None:
    long_name = "own preference accuracy (per-token log-prob, chosen > rejected), a name longer than the column"
    metrics = [
        metric("implicit-reward accuracy", [1.0] * 18 + [0.0] * 2, null=0.5),
        metric(long_name, [1.0, 0.0] * 10, m0=[0.0, 0.0, 1.0, 0.0] * 5),
    ]
    report = {"model": "out/dpo", "base": "embedded", "suites": {"preference": {"metrics": metrics, "counts": {}}}}
    svg = svg_chart(report)  # type: ignore[arg-type]
    width = int(re.search(r'<svg [^>]*width="(\d+)"', svg)[1])  # type: ignore[index]
    texts = re.findall(r'<text x="([\d.]+)"[^>]*>([^<]*)</text>', svg)
    assert ("0.9 · M higher" in [t for _, t in texts]) and "0.5 vs 0.25 · no significant difference" in svg
    assert any(t.endswith("…") and t.startswith("preference: own preference") for _, t in texts)
    for x, text in texts:  # ~6.5 px a character at 11 px: nothing runs past the picture's right edge
        assert float(x) + 6.5 * len(text) <= width, text
    dashed = re.findall(r'<line x1="([\d.]+)"[^>]*stroke-dasharray', svg)
    assert len(dashed) == 1  # the accuracy's line at 0.5; the M-vs-M0 share has none
