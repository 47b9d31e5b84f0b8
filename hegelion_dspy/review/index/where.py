"""The SQL of a list filter over ``traces t``: the library's ``TraceFilter`` (the same traces its ``compiled()``
keeps), what a reviewer asks (status, mode, score, text, reviewed), and the review progress of a trace under a
``PairView``. Every value from the user is a bound parameter; only fixed literals are formatted in."""

from __future__ import annotations

import re

from ...curate.selection import TraceFilter
from .model import PairView, TraceQuery

MAX_SEARCH_TERMS = 16


def search_expression(text: str) -> str | None:
    """A user's search words as a safe FTS5 query: every word must occur (a trailing ``*`` matches a prefix).

    Nothing the user types reaches FTS5's query syntax: words are split on anything but letters and digits and each
    is quoted. None when there is no word to search for.
    """
    terms = []
    for match in re.finditer(r"([^\W_]+)(\*?)", text):
        word, star = match.groups()
        terms.append(f'"{word}"' + ("*" if star else ""))
        if len(terms) == MAX_SEARCH_TERMS:
            break
    return " AND ".join(terms) if terms else None


def _glob(pattern: str) -> str:
    # fnmatch's negated class [!x] is [^x] in SQLite's GLOB; the rest (* ? [x]) is the same, case-sensitive in both.
    return pattern.replace("[!", "[^")


def _any_glob(globs: list[str]) -> str:
    return "(" + " OR ".join("coalesce(t.model, '') GLOB ?" for _ in globs) + ")"


def filter_where(traces: TraceFilter) -> tuple[list[str], list[object]]:
    """SQL for a TraceFilter over ``t``: the same traces ``TraceFilter.reason`` keeps (and invalid lines only when no
    condition would need their fields)."""
    clauses: list[str] = []
    params: list[object] = []
    if not traces.include_demo:
        clauses.append("t.demo = 0")
    if traces.models:
        clauses.append(_any_glob(traces.models))
        params += [_glob(g) for g in traces.models]
    if traces.exclude_models:
        clauses.append("NOT " + _any_glob(traces.exclude_models))
        params += [_glob(g) for g in traces.exclude_models]
    if traces.sources:
        clauses.append(f"t.source IN ({', '.join('?' * len(traces.sources))})")
        params += list(traces.sources)
    if traces.tags:
        clauses.append(f"t.seq IN (SELECT seq FROM tags WHERE tag IN ({', '.join('?' * len(traces.tags))}))")
        params += list(traces.tags)
    if traces.exclude_tags:
        marks = ", ".join("?" * len(traces.exclude_tags))
        clauses.append(f"t.seq NOT IN (SELECT seq FROM tags WHERE tag IN ({marks}))")
        params += list(traces.exclude_tags)
    if traces.since is not None:
        clauses.append("t.created >= ?")
        params.append(traces.since.timestamp())
    if traces.until is not None:
        clauses.append("t.created < ?")
        params.append(traces.until.timestamp())
    return clauses, params


def query_where(query: TraceQuery, view: PairView) -> tuple[str, list[object]]:
    """The WHERE of a list query (over ``traces t``) and its parameters."""
    clauses, params = filter_where(query.traces)
    clauses.insert(0, "1")
    for column, value in (("t.status = ?", query.status), ("t.mode = ?", query.mode)):
        if value:
            clauses.append(column)
            params.append(value)
    for column, score in (("t.score >= ?", query.min_score), ("t.score <= ?", query.max_score)):
        if score is not None:
            clauses.append(column)
            params.append(score)
    if query.flag == "none":
        clauses.append("t.flags = ''")
    elif query.flag == "any":
        clauses.append("t.flags != ''")
    elif query.flag:
        clauses.append("t.seq IN (SELECT seq FROM flags WHERE flag = ?)")
        params.append(query.flag)
    expression = search_expression(query.text) if query.text else None
    if expression is not None:
        clauses.append("t.seq IN (SELECT rowid FROM texts WHERE texts MATCH ?)")
        params.append(expression)
    if query.reviewed is not None:
        decided, needed = review_counts(view)
        compare = ">=" if query.reviewed == "yes" else "<"
        clauses.append(f"t.status = 'ok' AND {decided} {compare} {needed}")
    return " AND ".join(clauses), params


def _pair_condition(view: PairView, steps: str) -> str:
    if view.pairs == "rounds":
        return f"l.step IN ({steps}) AND l.rejected_round = l.chosen_round AND l.chosen_round <= t.rounds"
    return f"l.step IN ({steps}) AND l.rejected_round = 1 AND l.chosen_round = t.rounds"


def label_where(view: PairView) -> tuple[str, list[object]]:
    """The condition (over ``labels l`` joined to ``traces t``) for a label of a pair the view reviews."""
    return _pair_condition(view, ", ".join("?" * len(view.steps))), list(view.steps)


def review_counts(view: PairView) -> tuple[str, str]:
    """SQL expressions (over ``t``) for the decided pairs of a trace and the pairs it has under the view."""
    steps = ", ".join(repr(s) for s in view.steps)  # fixed literals, never user input
    per_trace = f"t.rounds * {len(view.steps)}" if view.pairs == "rounds" else str(len(view.steps))
    needed = f"(CASE WHEN t.status = 'ok' THEN {per_trace} ELSE 0 END)"
    decided = (
        "(SELECT count(*) FROM labels l WHERE l.trace_id = t.id AND l.decision IS NOT NULL AND "
        f"{_pair_condition(view, steps)})"
    )
    return decided, needed
