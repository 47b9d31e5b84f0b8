"""Label versions: a label written from the version of its pair it was made from, refused when another reviewer
changed the pair first (exactly one of concurrent writers from one version wins); old sidecars still load."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from hegelion_dspy.curate.labels import Label, LabelStore, label_version, write_label
from hegelion_dspy.errors import LabelConflictError

PAIR = "thesis:1>synthesis:1"


def test_a_pair_version_counts_its_labels_and_a_write_returns_the_new_one(tmp_path: Path) -> None:
    path = tmp_path / "traces.jsonl.labels"
    assert label_version(path, "t1", PAIR) == (0, None)
    assert write_label(path, Label(trace_id="t1", pair=PAIR, decision="accept"), base=0) == 1
    assert write_label(path, Label(trace_id="t2", pair=PAIR, decision="reject")) == 1  # another trace
    assert write_label(path, Label(trace_id="t1", pair="antithesis:1>synthesis:1", decision="swap"), base=0) == 1
    assert write_label(path, Label(trace_id="t1", pair=PAIR, decision="swap", labeller="bob"), base=1) == 2
    version, latest = label_version(path, "t1", PAIR)
    assert version == 2 and latest is not None and latest.decision == "swap" and latest.base == 1
    assert LabelStore(path).version("t1", PAIR) == 2


def test_a_label_from_a_replaced_version_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    store = LabelStore(tmp_path / "traces.jsonl.labels")
    store.write(Label(trace_id="t1", pair=PAIR, decision="accept", labeller="ann"), base=0)
    store.write(Label(trace_id="t1", pair=PAIR, decision="reject", labeller="bob"), base=1)
    before = store.path.read_bytes()
    with pytest.raises(LabelConflictError, match=r"changed by bob since you read it \(version 1, now 2\)") as caught:
        store.write(Label(trace_id="t1", pair=PAIR, decision="swap", labeller="ann"), base=1)
    error = caught.value
    assert (error.base, error.version, error.trace_id, error.pair) == (1, 2, "t1", PAIR)
    assert isinstance(error.latest, Label) and error.latest.decision == "reject"
    assert store.path.read_bytes() == before
    assert store.write(Label(trace_id="t1", pair=PAIR, decision="swap"), base=2) == 3  # overruled knowingly


def test_old_sidecars_load_and_unchecked_labels_are_written_as_before(tmp_path: Path) -> None:
    path = tmp_path / "traces.jsonl.labels"
    old = (
        b'{"schema_version":1,"trace_id":"t1","pair":"thesis:1>synthesis:1","decision":"accept","chosen":null,'
        b'"note":"","labeller":"ann","created_at":"2026-01-02T03:04:05Z"}\n'
    )
    path.write_bytes(old + b"not a label\n")
    assert [label.decision for label in LabelStore(path).records(skip_invalid=True)] == ["accept"]
    assert label_version(path, "t1", PAIR)[0] == 1  # the bad line does not count
    write_label(path, Label(trace_id="t1", pair=PAIR, note="only a note"))
    assert b'"base"' not in path.read_bytes().splitlines()[-1]
    assert write_label(path, Label(trace_id="t1", pair=PAIR, decision="reject"), base=2) == 3
    assert b'"base":2' in path.read_bytes().splitlines()[-1]


def test_of_concurrent_writers_from_one_version_exactly_one_wins(tmp_path: Path) -> None:
    path = tmp_path / "traces.jsonl.labels"
    write_label(path, Label(trace_id="t1", pair=PAIR, decision="accept"))
    writers = 8
    start = threading.Barrier(writers)
    won: list[str] = []
    refused: list[LabelConflictError] = []

    def write(who: str) -> None:
        start.wait()
        try:
            write_label(path, Label(trace_id="t1", pair=PAIR, decision="reject", labeller=who), base=1)
            won.append(who)
        except LabelConflictError as exc:
            refused.append(exc)

    threads = [threading.Thread(target=write, args=(f"r{i}",)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(refused) == writers - 1
    assert all(exc.version == 2 and getattr(exc.latest, "labeller", None) == won[0] for exc in refused)
    assert label_version(path, "t1", PAIR)[0] == 2
