"""The charts page's pictures, drawn on the server as inline SVG: nothing is fetched, no script runs.

Every function returns a complete ``<svg>`` element as a string; every text that reaches it (model names, tags) is
escaped here. Colours are presentation attributes, not ``style``, so a strict Content-Security-Policy holds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape

from ..review.index import DatasetShape

PALETTE = ("#3b6ea8", "#e08a2c", "#4c9a52", "#c4463a", "#8a63b8", "#8c6d4f", "#d16fa6", "#7a7a7a")
OTHER = "other models"
MAX_SERIES = 7
WIDTH = 640
FONT = 'font-family="system-ui, sans-serif" font-size="11"'


def _svg(height: int, body: list[str], label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="{escape(label)}" class="chart" {FONT}>' + "".join(body) + "</svg>"
    )


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * exp:
            return step * exp
    return 10 * exp


def _fmt(n: float) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M"
    if n >= 10_000:
        return f"{n / 1000:.0f}k"
    if n >= 1000:
        return f"{n / 1000:.1f}k"
    return f"{n:g}"


def bar_chart(label: str, bars: Sequence[tuple[str, float]], *, color: str = PALETTE[0], height: int = 200) -> str:
    """Vertical bars with their labels under them and values on top."""
    if not bars:
        return empty(label)
    left, bottom, top = 40, 34, 16
    plot_w, plot_h = WIDTH - left - 10, height - bottom - top
    peak = _nice_max(max(v for _, v in bars))
    step = plot_w / len(bars)
    body = _axis(left, top, plot_w, plot_h, peak)
    for i, (name, value) in enumerate(bars):
        h = plot_h * value / peak
        x = left + i * step + step * 0.12
        y = top + plot_h - h
        body.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{step * 0.76:.1f}" height="{h:.1f}" fill="{color}">'
            f"<title>{escape(name)}: {value:,.0f}</title></rect>"
        )
        if value:
            body.append(f'<text x="{x + step * 0.38:.1f}" y="{y - 3:.1f}" text-anchor="middle">{_fmt(value)}</text>')
        body.append(
            f'<text x="{x + step * 0.38:.1f}" y="{top + plot_h + 14}" text-anchor="middle">{escape(name[:14])}</text>'
        )
    return _svg(height, body, label)


def horizontal_bars(label: str, bars: Sequence[tuple[str, float]], *, color: str = PALETTE[0]) -> str:
    """One bar per row, for named categories (statuses, drop reasons)."""
    if not bars:
        return empty(label)
    row, left, right = 22, 190, 70
    height = row * len(bars) + 10
    peak = max(v for _, v in bars) or 1
    body = []
    for i, (name, value) in enumerate(bars):
        y = 5 + i * row
        w = (WIDTH - left - right) * value / peak
        body.append(f'<text x="{left - 8}" y="{y + 14}" text-anchor="end">{escape(name[:30])}</text>')
        body.append(
            f'<rect x="{left}" y="{y + 3}" width="{max(w, 0.5 if value else 0):.1f}" height="{row - 7}" '
            f'fill="{color}"><title>{escape(name)}: {value:,.0f}</title></rect>'
        )
        body.append(f'<text x="{left + w + 6:.1f}" y="{y + 14}">{value:,.0f}</text>')
    return _svg(height, body, label)


def stacked_bars(
    label: str,
    columns: Sequence[str],
    series: dict[str, list[float]],
    *,
    height: int = 240,
    every: int = 1,
    colors: dict[str, str] | None = None,
) -> str:
    """Columns of stacked series (e.g. traces per time bucket, one colour per model), with a legend."""
    if not columns or not series:
        return empty(label)
    left, bottom, top = 40, 34, 16 + 16 * math.ceil(len(series) / 3)
    plot_w, plot_h = WIDTH - left - 10, height - bottom - top
    totals = [sum(values[i] for values in series.values()) for i in range(len(columns))]
    peak = _nice_max(max(totals))
    step = plot_w / len(columns)
    body = _axis(left, top, plot_w, plot_h, peak)
    colors = colors or dict(zip(series, PALETTE, strict=False))
    for i, name in enumerate(series):
        lx, ly = left + (i % 3) * 195, 12 + 16 * (i // 3)
        body.append(f'<rect x="{lx}" y="{ly - 9}" width="10" height="10" fill="{colors[name]}"/>')
        body.append(f'<text x="{lx + 14}" y="{ly}">{escape(name if len(name) <= 28 else name[:27] + "…")}</text>')
    for c, column in enumerate(columns):
        base = float(top + plot_h)
        x = left + c * step + step * 0.1
        for name, values in series.items():
            h = plot_h * values[c] / peak
            if h <= 0:
                continue
            base -= h
            body.append(
                f'<rect x="{x:.1f}" y="{base:.1f}" width="{max(step * 0.8, 1):.1f}" height="{h:.1f}" '
                f'fill="{colors[name]}"><title>{escape(column)} · {escape(name)}: {values[c]:,.0f}</title></rect>'
            )
        if c % every == 0:
            body.append(
                f'<text x="{x + step * 0.4:.1f}" y="{top + plot_h + 14}" text-anchor="middle">{escape(column)}</text>'
            )
    return _svg(height, body, label)


def progress(label: str, done: int, total: int, parts: Sequence[tuple[str, int]]) -> str:
    """A progress bar (decided pairs of all pairs), split by decision."""
    body = []
    left, width = 10, WIDTH - 20
    body.append(f'<rect x="{left}" y="8" width="{width}" height="22" fill="#e6e6e6"/>')
    x = float(left)
    for i, (name, n) in enumerate(parts):
        w = width * n / total if total else 0
        if w <= 0:
            continue
        body.append(
            f'<rect x="{x:.1f}" y="8" width="{w:.1f}" height="22" fill="{PALETTE[i % len(PALETTE)]}">'
            f"<title>{escape(name)}: {n:,}</title></rect>"
        )
        x += w
    share = f"{100 * done / total:.1f}%" if total else "no pairs"
    body.append(f'<text x="{left}" y="48">{done:,} of {total:,} pairs decided ({share})</text>')
    for i, (name, n) in enumerate(parts):
        lx = left + 250 + i * 95
        body.append(f'<rect x="{lx}" y="39" width="10" height="10" fill="{PALETTE[i % len(PALETTE)]}"/>')
        body.append(f'<text x="{lx + 14}" y="48">{escape(name)} {n:,}</text>')
    return _svg(56, body, label)


def empty(label: str) -> str:
    return _svg(40, [f'<text x="10" y="24">{escape(label)}: nothing to show yet</text>'], label)


def _axis(left: int, top: int, plot_w: float, plot_h: float, peak: float) -> list[str]:
    body = []
    for k in range(5):
        value = peak * k / 4
        y = top + plot_h - plot_h * k / 4
        body.append(f'<line x1="{left}" x2="{left + plot_w:.0f}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        body.append(f'<text x="{left - 5}" y="{y + 4:.1f}" text-anchor="end">{_fmt(value)}</text>')
    return body


# -- the charts of a DatasetShape ----------------------------------------------------------------------------------


def _when(seconds: int, width: int) -> str:
    moment = datetime.fromtimestamp(seconds, UTC)
    if width < 86400:
        return moment.strftime("%m-%d %H:00")
    if width < 30 * 86400:
        return moment.strftime("%Y-%m-%d")
    return moment.strftime("%Y-%m")


def over_time(shape: DatasetShape) -> str:
    label = "Traces over time per model"
    if not shape.over_time:
        return empty(label)
    width = shape.bucket_seconds
    buckets = sorted({b for series in shape.over_time.values() for b in series})
    first, last = buckets[0], buckets[-1]
    columns = list(range(first, last + width, width))
    ranked = sorted(shape.over_time, key=lambda m: -sum(shape.over_time[m].values()))
    series: dict[str, list[float]] = {}
    for model in ranked[:MAX_SERIES]:
        series[model] = [float(shape.over_time[model].get(c, 0)) for c in columns]
    if len(ranked) > MAX_SERIES:
        series[OTHER] = [float(sum(shape.over_time[m].get(c, 0) for m in ranked[MAX_SERIES:])) for c in columns]
    every = max(1, math.ceil(len(columns) / 8))
    return stacked_bars(label, [_when(c, width) for c in columns], series, every=every)


def statuses(shape: DatasetShape) -> str:
    order = ("ok", "failed", "invalid")
    return horizontal_bars("Traces by status", [(s, float(shape.status.get(s, 0))) for s in order if s in shape.status])


def drops(shape: DatasetShape) -> str:
    bars = [(reason, float(n)) for reason, n in shape.drops.items()]
    return horizontal_bars("What an export leaves out", bars, color=PALETTE[3])


def scores(shape: DatasetShape) -> str:
    bars = [(f"{k / 10:.1f}", float(shape.scores.get(k, 0))) for k in range(10)]
    bars.append(("no score", float(shape.unscored)))
    return bar_chart("Judge scores", bars, color=PALETTE[2])


def _length_name(k: int) -> str:
    return _fmt(2**k)


def lengths(shape: DatasetShape) -> str:
    keys = sorted(set(shape.thesis_lengths) | set(shape.synthesis_lengths))
    if not keys:
        return empty("Lengths")
    columns = [f"{_length_name(k)}+" for k in range(keys[0], keys[-1] + 1)]
    series = {
        "first thesis (chars)": [float(shape.thesis_lengths.get(k, 0)) for k in range(keys[0], keys[-1] + 1)],
        "final synthesis (chars)": [float(shape.synthesis_lengths.get(k, 0)) for k in range(keys[0], keys[-1] + 1)],
    }
    return grouped_bars("Lengths of the first thesis and the final synthesis", columns, series)


def ratios(shape: DatasetShape) -> str:
    bars = []
    for k in range(-6, 7):
        factor = 2 ** (k / 2)
        bars.append((f"×{factor:.2g}", float(shape.ratios.get(k, 0))))
    return bar_chart("Synthesis length / thesis length", bars, color=PALETTE[4])


def contradictions(shape: DatasetShape) -> str:
    bars = [("10+" if k == 10 else str(k), float(shape.contradictions.get(k, 0))) for k in range(11)]
    return bar_chart("Contradictions per trace", bars, color=PALETTE[1])


def review_progress(shape: DatasetShape) -> str:
    parts = [(name, shape.decisions.get(name, 0)) for name in ("accepted", "swapped", "edited", "rejected")]
    # colours by position: accepted blue, swapped orange, edited green, rejected red (as in labels_per_day)
    return progress("Review progress", shape.pairs_decided, shape.pairs_total, parts)


def labels_per_day(shape: DatasetShape) -> str:
    label = "Labels written per day"
    if not shape.labels_per_day:
        return empty(label)
    days = sorted(shape.labels_per_day)
    columns = list(range(days[0], days[-1] + 86400, 86400))[-60:]
    colors = {"accept": PALETTE[0], "swap": PALETTE[1], "reject": PALETTE[3], "note": PALETTE[7]}
    series = {n: [float(shape.labels_per_day.get(d, {}).get(n, 0)) for d in columns] for n in colors}
    series = {n: v for n, v in series.items() if any(v)}
    every = max(1, math.ceil(len(columns) / 8))
    return stacked_bars(label, [_when(d, 86400) for d in columns], series, height=200, every=every, colors=colors)


def grouped_bars(label: str, columns: Sequence[str], series: dict[str, list[float]], *, height: int = 220) -> str:
    """Side-by-side bars per column, one colour per series, with a legend."""
    if not columns:
        return empty(label)
    left, bottom, top = 40, 34, 30
    plot_w, plot_h = WIDTH - left - 10, height - bottom - top
    peak = _nice_max(max(max(v) for v in series.values()))
    step = plot_w / len(columns)
    body = _axis(left, top, plot_w, plot_h, peak)
    bar_w = step * 0.8 / len(series)
    for s, (name, values) in enumerate(series.items()):
        color = PALETTE[s % len(PALETTE)]
        body.append(f'<rect x="{left + s * 200}" y="3" width="10" height="10" fill="{color}"/>')
        body.append(f'<text x="{left + s * 200 + 14}" y="12">{escape(name)}</text>')
        for c, value in enumerate(values):
            h = plot_h * value / peak
            x = left + c * step + step * 0.1 + s * bar_w
            body.append(
                f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{color}">'
                f"<title>{escape(name)} {escape(columns[c])}: {value:,.0f}</title></rect>"
            )
    for c, column in enumerate(columns):
        x = left + c * step + step * 0.5
        body.append(f'<text x="{x:.1f}" y="{top + plot_h + 14}" text-anchor="middle">{escape(column)}</text>')
    return _svg(height, body, label)


def all_charts(shape: DatasetShape) -> list[tuple[str, str]]:
    """(title, svg) of every chart, in page order."""
    return [
        ("Review progress", review_progress(shape)),
        ("Traces over time per model", over_time(shape)),
        ("Status", statuses(shape)),
        ("Drop reasons (an export with the current options)", drops(shape)),
        ("Judge-score histogram", scores(shape)),
        ("Length distributions", lengths(shape)),
        ("Synthesis / thesis length ratio", ratios(shape)),
        ("Contradictions per trace", contradictions(shape)),
        ("Labels per day", labels_per_day(shape)),
    ]
