"""The review app's evaluations page (``/evals``): the ``hegelion eval`` reports found under the log's folder, and one
report shown as tables with its chart. The request picks a report by its index in that list, never by a path."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

from ..types import JSONObject


def report_row(path: Path) -> JSONObject:
    data = json.loads(path.read_text("utf-8"))
    return {
        "model": data.get("model"),
        "base": data.get("base"),
        "suites": list(data.get("suites", {})),
        "created_at": data.get("created_at"),
    }


def evals_page(
    request: Request, root: Path, render: Callable[..., Response], bad_request: Callable[..., Response]
) -> Response:
    from ..eval.report import find_reports  # the eval package reaches the LM backends (dspy): not on every start

    paths = find_reports(root)
    pick = request.query_params.get("i")
    if pick is None:
        return render(request, "evals.html", report=None, reports=[report_row(p) for p in paths], root=root)
    if not pick.isdigit() or int(pick) >= len(paths):
        return bad_request(request, f"There is no evaluation report number {pick[:20]!r}.", 404)
    path = paths[int(pick)]
    chart = path.with_name("report.svg")
    svg = base64.b64encode(chart.read_bytes()).decode() if chart.is_file() else None
    return render(request, "evals.html", report=json.loads(path.read_text("utf-8")), chart=svg, path=path)
