"""The charts' aggregates over the traces a list query matches: one streaming pass over the index, nothing loaded."""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass, field
from typing import TypeVar

from ...curate.verdict import Verdict
from ...quality import FLAGS
from .model import PairView, TraceQuery
from .where import label_where, query_where, review_counts


@dataclass
class DatasetShape:
    """What the charts page draws. Bins: ``scores`` 0..9 (tenths), lengths by power of two, ratios by half-octave."""

    status: dict[str, int] = field(default_factory=dict)
    bucket_seconds: int = 86400
    over_time: dict[str, dict[int, int]] = field(default_factory=dict)
    scores: dict[int, int] = field(default_factory=dict)
    unscored: int = 0
    contradictions: dict[int, int] = field(default_factory=dict)
    thesis_lengths: dict[int, int] = field(default_factory=dict)
    synthesis_lengths: dict[int, int] = field(default_factory=dict)
    ratios: dict[int, int] = field(default_factory=dict)
    drops: dict[str, int] = field(default_factory=dict)
    pairs_total: int = 0
    pairs_decided: int = 0
    decisions: dict[str, int] = field(default_factory=dict)
    labels_per_day: dict[int, dict[str, int]] = field(default_factory=dict)


K = TypeVar("K")


def _bump(histogram: dict[K, int], key: K) -> None:
    histogram[key] = histogram.get(key, 0) + 1


def dataset_shape(
    conn: sqlite3.Connection, query: TraceQuery, view: PairView, min_chars: int, min_score: float | None
) -> DatasetShape:
    """Aggregates for the charts over the traces matching ``query``.

    ``drops`` estimates what an export with these options leaves out, from the index alone: the row checks are
    made on each trace's first-last pairs, and a duplicate is a later ``ok`` trace of an already counted task. The
    trace rules and the quality flags are the export's (``curate.verdict.Verdict``), on the index's columns; flags
    still to be computed (``flags.compute_flags``) count as none.
    """
    where, params = query_where(query, view)
    shape = DatasetShape()
    drops = dict.fromkeys(("failed", "duplicate_prompt", "chosen_equals_rejected", "too_short", *FLAGS), 0)
    if min_score is not None:
        drops.update(no_score=0, below_min_score=0)
    _histograms(conn, where, params, shape, drops, view, min_chars, min_score)
    score_cut = "" if min_score is None else f" AND score >= {float(min_score)!r}"
    total, distinct = conn.execute(
        f"SELECT count(*), count(DISTINCT task_key) FROM traces t WHERE {where} AND status = 'ok'{score_cut}", params
    ).fetchone()
    drops["duplicate_prompt"] = total - distinct
    _review_progress(conn, where, params, shape, view)
    drops["rejected_by_reviewer"] = shape.decisions.get("rejected", 0)
    shape.drops = drops
    return shape


def _histograms(
    conn: sqlite3.Connection,
    where: str,
    params: list[object],
    shape: DatasetShape,
    drops: dict[str, int],
    view: PairView,
    min_chars: int,
    min_score: float | None,
) -> None:
    # the export's rules on the index's columns; the query's own filter chose the demo traces
    judge = Verdict(min_chars=min_chars, min_score=min_score, include_demo=True)
    same_rejected = (int("thesis" in view.steps), int("antithesis" in view.steps))
    created_by_model: list[tuple[str, float]] = []
    found = conn.execute(
        "SELECT status, created, coalesce(model, 'unknown'), score, contradictions, thesis_chars, synthesis_chars, "
        f"same_thesis, same_antithesis, flags FROM traces t WHERE {where}",
        params,
    )
    for status, created, model, score, contradictions, thesis, synthesis, same_t, same_a, flags in found:
        _bump(shape.status, status)
        if status == "invalid":
            continue
        created_by_model.append((model, created))
        if score is not None:
            _bump(shape.scores, min(int(score * 10), 9))
        reason = judge.trace_reason(_Facts(status, False, score))
        if reason == "failed":
            drops["failed"] += 1
            continue
        shape.unscored += score is None
        _bump(shape.contradictions, min(contradictions, 10))
        _bump(shape.thesis_lengths, _log2_bin(thesis))
        _bump(shape.synthesis_lengths, _log2_bin(synthesis))
        _bump(shape.ratios, _ratio_bin(synthesis, thesis))
        if reason is not None:
            drops[reason] += 1
            continue
        same = same_t * same_rejected[0] + same_a * same_rejected[1]
        drops["chosen_equals_rejected"] += same
        short = synthesis < min_chars
        drops["too_short"] += short
        flag = judge.flag_reason(flags.split()) if flags else None
        if flag is not None and not short:  # the row checks come first, as in the export
            drops[flag] += len(view.steps) - same
    _over_time(shape, created_by_model)


@dataclass(frozen=True)
class _Facts:
    """What the verdict reads of a trace (``verdict.TraceFacts``), from the index's columns."""

    status: str
    demo: bool
    score: float | None


def _over_time(shape: DatasetShape, created_by_model: list[tuple[str, float]]) -> None:
    if not created_by_model:
        return
    first, last = min(r[1] for r in created_by_model), max(r[1] for r in created_by_model)
    width = shape.bucket_seconds = _bucket_width(last - first)
    for model, created in created_by_model:
        _bump(shape.over_time.setdefault(model, {}), int(created // width) * width)


def _review_progress(
    conn: sqlite3.Connection, where: str, params: list[object], shape: DatasetShape, view: PairView
) -> None:
    decided, needed = review_counts(view)
    labelled, label_params = label_where(view)
    done, need = conn.execute(
        f"SELECT sum(min({decided}, {needed})), sum({needed}) FROM traces t WHERE {where} AND status = 'ok'", params
    ).fetchone()
    shape.pairs_total, shape.pairs_decided = need or 0, done or 0
    shape.decisions = dict(
        conn.execute(
            "SELECT CASE WHEN l.decision = 'reject' THEN 'rejected' WHEN l.edited THEN 'edited' "
            "WHEN l.decision = 'swap' THEN 'swapped' ELSE 'accepted' END, count(*) "
            f"FROM traces t JOIN labels l ON l.trace_id = t.id AND {labelled} "
            f"WHERE {where} AND t.status = 'ok' AND l.decision IS NOT NULL GROUP BY 1",
            [*label_params, *params],
        )
    )
    for day, decision, n in conn.execute(
        "SELECT CAST(created / 86400 AS INTEGER), coalesce(decision, 'note'), count(*) FROM label_events "
        "GROUP BY 1, 2 ORDER BY 1"
    ):
        shape.labels_per_day.setdefault(day * 86400, {})[decision] = n


def _log2_bin(chars: int) -> int:
    return max(0, int(chars).bit_length() - 1)  # bin k holds 2**k .. 2**(k+1)-1 characters (0 and 1 in bin 0)


def _ratio_bin(synthesis: int, thesis: int) -> int:
    """Half-octave bins of synthesis/thesis length: bin 0 is 1/1.41..1.41, -2 is a quarter as long, +2 four times."""
    if thesis <= 0 or synthesis <= 0:
        return 0
    return max(-6, min(6, round(2 * math.log2(synthesis / thesis))))


def _bucket_width(span: float) -> int:
    for width in (3600, 6 * 3600, 86400, 7 * 86400, 30 * 86400, 365 * 86400):
        if span / width <= 36:
            return width
    return 365 * 86400
