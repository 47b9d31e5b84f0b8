"""The report of an evaluation: ``report.json`` (everything), ``report.md`` (a table per suite: M, M0, the difference
with its 95% interval and the verdict) and ``report.svg`` (each metric with its interval, M beside M0)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import TypedDict

from .context import EvalContext
from .metrics import MetricEntry, Summary
from .models import TRAIN_CARD
from .results import EVAL_SCHEMA_VERSION, write_whole
from .stats import MIN_ITEMS, NO_DIFFERENCE, DifferenceEntry, IntervalEntry

FILES = ("report.json", "report.md", "report.svg")


class Report(TypedDict):
    """``report.json``: what was evaluated, and each suite's summary."""

    schema_version: int
    created_at: str
    hegelion_dspy: str
    model: str
    base: str | None
    demo: bool
    seed: int
    n: int | None
    data: str | None
    judge_model: str | None
    suites: dict[str, Summary]
    files: dict[str, str]


def write_report(folder: Path, ctx: EvalContext, suites: dict[str, Summary]) -> Report:
    from .. import __version__

    report: Report = {
        "schema_version": EVAL_SCHEMA_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "hegelion_dspy": __version__,
        "model": ctx.model.name,
        "base": ctx.base.name if ctx.base else None,
        "demo": ctx.model.demo,
        "seed": ctx.seed,
        "n": ctx.n,
        "data": str(ctx.data) if ctx.data else None,
        "judge_model": ctx.judge_model,
        "suites": suites,
        "files": {name: str(folder / name) for name in FILES},
    }
    write_whole(folder / "report.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    write_whole(folder / "report.md", markdown(report))
    write_whole(folder / "report.svg", svg_chart(report))
    if ctx.model.train_folder is not None and folder.resolve() == ctx.model.train_folder.resolve():
        record_on_card(folder, report)
    return report


def record_on_card(folder: Path, report: Report) -> None:
    """Put the headline of each suite into the ``evals`` of the ``hegelion train`` card beside the report."""
    card_path = folder / TRAIN_CARD
    card = json.loads(card_path.read_text(encoding="utf-8"))
    evals = card.get("evals") if isinstance(card.get("evals"), list) else []
    folder_name = str(folder)
    evals = [
        e
        for e in evals
        if not (isinstance(e, dict) and e.get("report") == "report.json" and e.get("base") == report["base"])
    ]  # a rerun replaces its entry
    evals.append(
        {
            "report": "report.json",
            "base": report["base"],
            "created_at": report["created_at"],
            "folder": folder_name,
            "suites": {
                name: {e["metric"]: {"m": e["m"]["mean"], "diff": e["diff"]} for e in suite["metrics"]}
                for name, suite in report["suites"].items()
            },
        }
    )
    card["evals"] = evals
    write_whole(card_path, json.dumps(card, indent=2, ensure_ascii=False) + "\n")


def _num(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def _side(entry: IntervalEntry | None) -> str:
    if not entry or not entry["n"]:
        return "–"
    return f"{_num(entry['mean'])} [{_num(entry['low'])}, {_num(entry['high'])}]"


def _diff(diff: DifferenceEntry | None) -> str:
    if not diff:
        return "–"
    against = f" (vs {diff['against']:g})" if "against" in diff else ""
    p = f", McNemar p={diff['mcnemar_p']:.3g}" if diff.get("mcnemar_p") is not None else ""
    by = f", by {diff['groups']} prompts" if diff.get("groups") else ""
    return f"{_num(diff['mean'], 3)} [{_num(diff['low'])}, {_num(diff['high'])}]{against}{by}: {diff['verdict']}{p}"


def markdown(report: Report) -> str:
    base = f"`{report['base']}`" if report["base"] else "none (M alone)"
    lines = [
        f"# Evaluation of `{report['model']}`",
        "",
        f"- Base (M0): {base}",
        f"- Seed {report['seed']}, n {report['n'] or 'all'}, {report['created_at']}, hegelion-dspy "
        f"{report['hegelion_dspy']}"
        + (" — a demo model: this proves the machinery, not an effect" if report["demo"] else ""),
        "- Intervals (95%): a model's 0/1 accuracy, exact (Clopper–Pearson); other means and every M − M0 "
        "difference, paired bootstrap (2,000 resamples), resampling whole prompts where items share one (the "
        "preference pairs of one trace). A difference whose interval holds 0 (or, for 0/1 outcomes of independent "
        f'items, whose McNemar p is not below 0.05) is reported as "{NO_DIFFERENCE}"; under {MIN_ITEMS} items (or '
        "prompts) none is called.",
        "",
    ]
    for name, suite in report["suites"].items():
        lines += [f"## {name}", "", "| metric | M | M0 | M − M0 (95% CI) |", "| --- | --- | --- | --- |"]
        for entry in suite["metrics"]:
            lines.append(f"| {entry['metric']} | {_side(entry['m'])} | {_side(entry['m0'])} | {_diff(entry['diff'])} |")
        counts = ", ".join(f"{k}: {v}" for k, v in suite["counts"].items())
        lines += ["", f"Counts: {counts}.", ""]
        for entry in suite["metrics"]:
            if entry.get("about"):
                lines.append(f"- *{entry['metric']}*: {entry['about']}")
        lines.append("")
    return "\n".join(lines)


_ROW, _LEFT, _PLOT, _RIGHT = 34, 440, 400, 320  # the label column, the plot, the values and verdict
_WIDTH = _LEFT + _PLOT + 40 + _RIGHT


def _bar(out: list[str], entry: IntervalEntry | None, y: float, scale: Callable[[float], float], colour: str) -> None:
    if not entry or not entry["n"] or math.isnan(entry["mean"]):
        return
    x0, x1, xm = scale(entry["low"]), scale(entry["high"]), scale(entry["mean"])
    out.append(f'<line x1="{x0:.1f}" y1="{y:.1f}" x2="{x1:.1f}" y2="{y:.1f}" stroke="{colour}" stroke-width="2"/>')
    out.append(f'<circle cx="{xm:.1f}" cy="{y:.1f}" r="4" fill="{colour}"/>')


def _shown(entry: IntervalEntry | None) -> IntervalEntry | None:
    return entry if entry and entry["n"] and not math.isnan(entry["mean"]) else None


def chart_axis(entry: MetricEntry) -> tuple[float, float, float | None]:
    """(low, high, reference) of a metric's row: a share (an accuracy or rate, every value in [0, 1]) on 0..1, so rows
    compare; anything else (a margin, a difference) on its values' range with the reference in it. The reference is
    the value M is compared with when there is no M0 (0.5 for a preference accuracy), else 0 for what is not a share
    and none for a share (M and M0 are compared with each other)."""
    sides = [s for s in (_shown(entry["m"]), _shown(entry["m0"])) if s]
    diff = entry["diff"]
    values = [v for s in sides for v in (s["low"], s["high"])]
    share = bool(values) and "margin" not in entry["metric"] and all(0.0 <= v <= 1.0 for v in values)
    reference = float(diff["against"]) if diff and "against" in diff else (None if share else 0.0)
    if share:
        return 0.0, 1.0, reference
    ends = [*values, *([] if reference is None else [reference])]
    low, high = min(ends), max(ends)
    if high - low < 1e-9:
        return low - 0.5, high + 0.5, reference
    pad = (high - low) * 0.05
    return (low if low == reference else low - pad), (high if high == reference else high + pad), reference


def _values_text(entry: MetricEntry) -> str:
    m, m0, diff = _shown(entry["m"]), _shown(entry["m0"]), entry["diff"]
    parts = [] if m is None else [f"{m['mean']:.3g}"]
    if m0 is not None:
        parts.append(f"vs {m0['mean']:.3g}")
    if diff:
        parts.append(f"· {diff['verdict']}")
    return " ".join(parts)


def svg_chart(report: Report) -> str:
    """One row per metric: M (blue) and M0 (grey) with their 95% intervals, a dashed line at the reference (0, or the
    value M is compared with), M's and M0's means and the verdict at the right."""
    rows = [(name, e) for name, suite in report["suites"].items() for e in suite["metrics"]]
    height = 60 + _ROW * max(1, len(rows))
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{height}" font-family="sans-serif" '
        'font-size="11">',
        f'<text x="10" y="18" font-size="13">{escape(report["model"])} (blue) vs {escape(str(report["base"]))} '
        "(grey), 95% intervals</text>",
    ]
    for i, (suite, entry) in enumerate(rows):
        y = 44 + i * _ROW
        low, high, reference = chart_axis(entry)

        def scale(v: float, low: float = low, high: float = high) -> float:
            return _LEFT + (v - low) / (high - low) * _PLOT

        label = f"{suite}: {entry['metric']}"
        label = label if len(label) <= 72 else label[:71] + "…"
        out.append(f'<text x="10" y="{y + 4}">{escape(label)}</text>')
        out.append(f'<line x1="{_LEFT}" y1="{y + 12}" x2="{_LEFT + _PLOT}" y2="{y + 12}" stroke="#ccc"/>')
        if reference is not None:
            ref = scale(reference)
            out.append(
                f'<line x1="{ref:.1f}" y1="{y - 8}" x2="{ref:.1f}" y2="{y + 12}" stroke="#999" stroke-dasharray="2,2"/>'
            )
        out.append(f'<text x="{_LEFT - 4}" y="{y + 22}" text-anchor="end" fill="#666">{low:.3g}</text>')
        out.append(f'<text x="{_LEFT + _PLOT + 4}" y="{y + 22}" fill="#666">{high:.3g}</text>')
        _bar(out, entry["m"], y - 3, scale, "#1f6feb")
        _bar(out, entry["m0"], y + 5, scale, "#888")
        out.append(f'<text x="{_LEFT + _PLOT + 40}" y="{y + 4}">{escape(_values_text(entry))}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def find_reports(root: Path, *, max_depth: int = 4) -> list[Path]:
    """The ``report.json`` files of evaluations under ``root`` (at most ``max_depth`` folders down), newest first."""
    found: list[Path] = []
    for depth in range(max_depth + 1):
        for path in root.glob("/".join(["*"] * depth + ["report.json"])):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(data, dict) and "suites" in data and "schema_version" in data:
                found.append(path)
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)
