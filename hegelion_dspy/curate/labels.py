"""Labels: a person's verdict on each preference pair, kept in an append-only sidecar log beside the trace log.

The trace log is never rewritten. A reviewer's decisions go to ``<log>.labels`` (one ``Label`` JSON line each),
written with the trace log's own machinery (``store.append_lines``: one exclusive lock, one write of whole lines, a
torn last line repaired first) and read back streaming. The latest label of a pair wins (line order = write order,
since writes are serialised by the lock).

A pair is named by where its two sides come from: ``pair_key("thesis", 1, 2) == "thesis:1>synthesis:2"`` is round 2's
synthesis preferred to round 1's thesis. The exporters give every example its pair key, so a label applies to exactly
the rows built from that pair whatever other options an export uses. Supervised rows (sft, instruction) train on the
final synthesis and follow the label of the trace's main pair (first thesis > final synthesis).

Versions: the version of a pair is how many labels it has had (0: none yet). A reviewer writes a label with the
version it was made from (``write_label(path, label, base=version)``); when another reviewer wrote one meanwhile the
write is refused with ``LabelConflictError`` (under the sidecar's lock, so of two writers from one version exactly one
wins). The label line records that ``base``; lines without one (older sidecars, writes without a check) still load.

Decisions: ``accept`` keeps the pair, ``reject`` drops it, ``swap`` exchanges chosen and rejected; ``chosen`` (an
edited chosen text, after any swap) replaces the chosen side; ``note`` is free text. A label without a decision only
carries a note: the pair stays unreviewed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import ConfigError, InvalidLabelError, LabelConflictError, from_validation
from ..logwrite import errno_name
from ..store import append_lines, iter_lines
from ..types import MAX_ROUNDS, MAX_TEXT_CHARS

LABELS_SUFFIX = ".labels"
LABEL_SCHEMA_VERSION = 1

Decision = Literal["accept", "reject", "swap"]
DECISIONS: tuple[Decision, ...] = get_args(Decision)
# What a label did to one example, as export reports count it.
Outcome = Literal["accepted", "swapped", "edited", "rejected", "unreviewed"]
OUTCOMES: tuple[str, ...] = get_args(Outcome)

MAX_NOTE_CHARS = 20_000
MAX_LABELLER_CHARS = 200
_PAIR = re.compile(r"(thesis|antithesis):([1-9][0-9]*)>synthesis:([1-9][0-9]*)")


def labels_path(log_path: str | Path) -> Path:
    """The labels sidecar of a trace log: ``data/traces.jsonl`` -> ``data/traces.jsonl.labels``."""
    return Path(str(log_path) + LABELS_SUFFIX)


def pair_key(rejected_step: str, rejected_round: int, chosen_round: int) -> str:
    """The pair preferring round ``chosen_round``'s synthesis to ``rejected_step`` of round ``rejected_round``."""
    return f"{rejected_step}:{rejected_round}>synthesis:{chosen_round}"


def parse_pair(key: str) -> tuple[str, int, int]:
    """``"thesis:1>synthesis:2"`` -> ``("thesis", 1, 2)``; ValueError for anything else."""
    match = _PAIR.fullmatch(key)
    if match is None or int(match[2]) > MAX_ROUNDS or int(match[3]) > MAX_ROUNDS:
        raise ValueError(
            f"pair {key[:80]!r} is not a pair name; expected e.g. 'thesis:1>synthesis:1' (rejected step:round > "
            "synthesis:round)"
        )
    return match[1], int(match[2]), int(match[3])


def _now() -> datetime:
    return datetime.now(UTC)


class Label(BaseModel):
    """One decision on one pair of one trace. Appended, never edited: a later label of the same pair replaces it."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1  # == LABEL_SCHEMA_VERSION
    trace_id: str = Field(min_length=1, max_length=64)
    pair: str = Field(max_length=40, description="pair_key(rejected step, its round, the chosen synthesis's round)")
    decision: Decision | None = Field(default=None, description="None: only a note, the pair stays unreviewed.")
    chosen: str | None = Field(default=None, max_length=MAX_TEXT_CHARS, description="An edited chosen text.")
    note: str = Field(default="", max_length=MAX_NOTE_CHARS)
    labeller: str | None = Field(default=None, max_length=MAX_LABELLER_CHARS)
    created_at: datetime = Field(default_factory=_now)
    base: int | None = Field(
        default=None, ge=0, description="The pair's version this label was made from (None: written unchecked)."
    )

    @field_validator("pair")
    @classmethod
    def _known_pair(cls, value: str) -> str:
        parse_pair(value)
        return value

    @field_validator("chosen")
    @classmethod
    def _chosen_not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("an edited chosen text must not be empty; leave it out to keep the original")
        return value

    @field_validator("labeller")
    @classmethod
    def _labeller_or_none(cls, value: str | None) -> str | None:
        return (value.strip() or None) if value is not None else None

    @field_validator("created_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("created_at must carry a timezone (UTC)")
        return value

    @property
    def reviewed(self) -> bool:
        return self.decision is not None

    def to_json_line(self) -> bytes:
        # Without a base the line is exactly what older versions wrote (and read: they forbid unknown fields).
        dumped = self.model_dump_json(exclude={"base"} if self.base is None else None)
        return dumped.encode("utf-8") + b"\n"


def _is_whole_label(fragment: bytes) -> bool:
    try:
        Label.model_validate_json(fragment)
    except ValidationError:
        return False
    return True


def parse_label_line(raw: bytes, path: str | Path, lineno: int) -> Label:
    """One sidecar line as a Label, or InvalidLabelError naming path, line and field."""
    try:
        return Label.model_validate_json(raw)
    except ValidationError as exc:
        fix = "fix or remove this line"
        raise from_validation(exc, source="field", error=InvalidLabelError, fix=fix, path=path, lineno=lineno) from None


def read_labels(
    path: str | Path, *, skip_invalid: bool = False, on_invalid: Callable[[InvalidLabelError], None] | None = None
) -> Iterator[Label]:
    """Stream the labels of a sidecar in write order; an absent sidecar has none.

    A bad line raises InvalidLabelError (``path:line: reason``) unless ``skip_invalid``, which reports it to
    ``on_invalid``; a torn last line (an interrupted write, repaired by the next append) is reported the same way.
    """
    path = Path(path)
    if not path.exists():
        return
    for lineno, raw, complete in iter_lines(path):
        try:
            yield parse_label_line(raw, path, lineno)
        except InvalidLabelError as exc:
            if not complete:
                exc = InvalidLabelError(
                    f"torn last line (a write was interrupted; the next label repairs it): {exc.reason}",
                    path=path,
                    lineno=lineno,
                    field=exc.field,
                )
            if not skip_invalid:
                raise exc from None
            if on_invalid is not None:
                on_invalid(exc)


@dataclass
class LabelBook:
    """The latest label of every pair, in memory (labels are written by people: thousands, not millions)."""

    labels: dict[tuple[str, str], Label] = field(default_factory=dict)

    def add(self, label: Label) -> None:
        self.labels[(label.trace_id, label.pair)] = label

    def get(self, trace_id: str, pair: str) -> Label | None:
        return self.labels.get((trace_id, pair))

    def for_trace(self, trace_id: str) -> dict[str, Label]:
        return {pair: label for (tid, pair), label in self.labels.items() if tid == trace_id}

    def __len__(self) -> int:
        return len(self.labels)

    def __bool__(self) -> bool:
        return bool(self.labels)


def label_version(path: str | Path, trace_id: str, pair: str) -> tuple[int, Label | None]:
    """The version of one pair in the sidecar at ``path`` (how many valid labels it has had) and its latest label.

    One streaming pass; a line that is not a valid label does not count (the review index skips it too)."""
    path = Path(path)
    version, latest = 0, None
    if not path.exists():
        return version, latest
    for _, raw, _complete in iter_lines(path):
        try:
            fields = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(fields, dict) or fields.get("trace_id") != trace_id or fields.get("pair") != pair:
            continue
        try:
            label = Label.model_validate(fields)
        except ValidationError:
            continue
        version, latest = version + 1, label
    return version, latest


def write_label(path: str | Path, label: Label, *, base: int | None = None) -> int:
    """Append ``label`` to the sidecar at ``path``; returns the pair's new version.

    With ``base`` (the version the label was made from, ``label_version`` or the review index's), the write happens
    only if the pair is still at that version, checked under the sidecar's lock: else ``LabelConflictError`` carrying
    the version now and the label that made it, and nothing is written. ``base=None`` writes unconditionally.
    """
    path = Path(path)
    if base is not None:
        label = label.model_copy(update={"base": base})
    found: list[int] = []

    def check(_fd: int) -> None:
        version, latest = label_version(path, label.trace_id, label.pair)
        if base is not None and version != base:
            raise LabelConflictError(label.trace_id, label.pair, base=base, version=version, latest=latest)
        found.append(version)

    _append(path, [label.to_json_line()], check)
    return found[0] + 1


def _append(path: Path, lines: list[bytes], check: Callable[[int], None] | None = None) -> None:
    """``append_lines`` to a sidecar; a disk that refuses the write (full, read-only) is a ConfigError naming it:
    nothing was written, and the person labelling is told so rather than losing the label unseen."""
    try:
        append_lines(path, lines, _is_whole_label, check=check)
    except OSError as exc:
        what = "the label was" if len(lines) == 1 else f"{len(lines)} labels were"
        raise ConfigError(
            f"cannot write the labels sidecar {path}: {exc.strerror or exc} ({errno_name(exc)}); {what} not saved. "
            "Free some space or make the folder writable, then label again"
        ) from None


class LabelStore:
    """The append-only labels sidecar at ``path`` (``labels_path(log)`` for a trace log)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def beside(cls, log_path: str | Path) -> LabelStore:
        return cls(labels_path(log_path))

    def __repr__(self) -> str:
        return f"LabelStore({str(self.path)!r})"

    def append(self, label: Label) -> None:
        self.append_many([label])

    def write(self, label: Label, *, base: int | None = None) -> int:
        """``write_label`` to this sidecar: append one label, checked against ``base``; returns the new version."""
        return write_label(self.path, label, base=base)

    def version(self, trace_id: str, pair: str) -> int:
        """The version of one pair now (``label_version``)."""
        return label_version(self.path, trace_id, pair)[0]

    def append_many(self, labels: Iterable[Label]) -> int:
        """Append labels as whole lines under the log's lock, with one write. Returns how many were written."""
        lines = [label.to_json_line() for label in labels]
        _append(self.path, lines)
        return len(lines)

    def records(
        self, *, skip_invalid: bool = False, on_invalid: Callable[[InvalidLabelError], None] | None = None
    ) -> Iterator[Label]:
        return read_labels(self.path, skip_invalid=skip_invalid, on_invalid=on_invalid)

    def latest(
        self, *, skip_invalid: bool = False, on_invalid: Callable[[InvalidLabelError], None] | None = None
    ) -> LabelBook:
        """The latest label of every pair."""
        book = LabelBook()
        for label in self.records(skip_invalid=skip_invalid, on_invalid=on_invalid):
            book.add(label)
        return book


def labelled_texts(
    chosen: str, rejected: str | None, label: Label | None, *, other: str | None = None
) -> tuple[str, str | None, Outcome]:
    """Apply a pair's label to one example: ``(chosen, rejected, outcome)``.

    ``rejected`` is None for supervised examples; ``other`` is then the rejected side of the pair the label names
    (the first thesis), which a swap makes the training text. For outcome ``rejected`` the caller drops the example.
    An edit (``label.chosen``) counts as ``edited`` whatever the decision, except a reject.
    """
    if label is None or label.decision is None:
        return chosen, rejected, "unreviewed"
    if label.decision == "reject":
        return chosen, rejected, "rejected"
    outcome: Outcome = "accepted"
    if label.decision == "swap":
        outcome = "swapped"
        if rejected is not None:
            chosen, rejected = rejected, chosen
        elif other is not None:
            chosen = other
    if label.chosen is not None:
        chosen, outcome = label.chosen, "edited"
    return chosen, rejected, outcome
