"""TraceStore: locked whole-line appends from many processes, torn-tail repair, streaming reads with locations."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from hegelion_dspy.collect.traces import build_trace
from hegelion_dspy.errors import InvalidTraceError
from hegelion_dspy.store import TORN_SUFFIX, LogStats, Provenance, TraceStore, read_records
from hegelion_dspy.types import TraceFailure, TraceRecord


def ok_trace(task: str = "Why is the sky blue?", **kwargs) -> TraceRecord:
    return build_trace(task=task, thesis="Because of X.", antithesis="X is wrong.", synthesis="Because of Y.", **kwargs)


def failed_trace(task: str = "t") -> TraceRecord:
    return TraceRecord(task=task, status="failed", error=TraceFailure(step="thesis", round=1, type="E", message="boom"))


def test_append_and_read_back_round_trip(store: TraceStore) -> None:
    records = [ok_trace(f"task {i}") for i in range(3)] + [failed_trace()]
    for r in records:
        store.append(r)

    back = list(store)
    assert [r.model_dump() for r in back] == [r.model_dump() for r in records]
    assert store.path.read_bytes().count(b"\n") == 4


def _append_many(path: str, worker: int, count: int) -> None:
    store = TraceStore(path)
    for i in range(count):
        # a long synthesis makes each line several KB, larger than a pipe buffer, to stress whole-line writes
        store.append(ok_trace(f"worker {worker} task {i}", tags=[f"w{worker}"]).model_copy())


def test_eight_processes_appending_500_each_give_4000_valid_lines(log_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_append_many, args=(str(log_path), w, 500)) for w in range(8)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0

    lines = log_path.read_bytes().split(b"\n")
    assert lines[-1] == b""  # ends with a newline
    records = [TraceRecord.model_validate_json(line) for line in lines[:-1]]
    assert len(records) == 4000
    assert len({r.id for r in records}) == 4000
    per_worker = {f"w{w}": 0 for w in range(8)}
    for r in records:
        per_worker[r.tags[0]] += 1
    assert set(per_worker.values()) == {500}


def test_a_torn_last_line_is_moved_aside_and_cut_before_the_next_append(store: TraceStore) -> None:
    store.append(ok_trace("first"))
    whole = ok_trace("torn").to_json_line()
    with open(store.path, "ab") as fh:
        fh.write(whole[: len(whole) // 2])  # a crash in the middle of a write

    with pytest.raises(InvalidTraceError, match=r"traces.jsonl:2: .*torn last line"):
        list(store)

    store.append(ok_trace("after the crash"))

    assert [r.task for r in store] == ["first", "after the crash"]
    assert Path(str(store.path) + TORN_SUFFIX).read_bytes() == whole[: len(whole) // 2] + b"\n"


def test_a_complete_last_line_missing_its_newline_is_finished_not_cut(store: TraceStore) -> None:
    store.path.write_bytes(ok_trace("hand edited").to_json_line().rstrip(b"\n"))
    store.append(ok_trace("next"))
    assert [r.task for r in store] == ["hand edited", "next"]
    assert not Path(str(store.path) + TORN_SUFFIX).exists()


def test_invalid_lines_are_reported_with_path_line_and_field(log_path: Path) -> None:
    good = ok_trace().to_json_line()
    bad_type = json.loads(good)
    bad_type["rounds"][0]["thesis"] = 42
    log_path.write_bytes(good + b"\n" + json.dumps(bad_type).encode() + b"\n")

    with pytest.raises(InvalidTraceError) as info:
        list(read_records(log_path))
    assert info.value.lineno == 3
    assert info.value.field == "rounds.0.thesis"
    assert str(info.value).startswith(f"{log_path}:3: field 'rounds.0.thesis': ")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"\xff\xfe not utf-8\n", "invalid UTF-8"),
        (b"{not json\n", "not JSON"),
        (b"[1, 2]\n", "expected a JSON object"),
        (b'{"schema_version": 9, "task": "x"}\n', "newer than this hegelion-dspy"),
    ],
)
def test_each_kind_of_bad_line_has_a_clear_reason(log_path: Path, content: bytes, reason: str) -> None:
    log_path.write_bytes(ok_trace().to_json_line() + content)
    with pytest.raises(InvalidTraceError, match=reason) as info:
        list(read_records(log_path))
    assert info.value.lineno == 2


def test_skip_invalid_reports_each_bad_line_and_keeps_going(log_path: Path) -> None:
    log_path.write_bytes(b"oops\n" + ok_trace().to_json_line() + b"{}\n")
    seen: list[InvalidTraceError] = []
    records = list(read_records(log_path, skip_invalid=True, on_invalid=seen.append))
    assert len(records) == 1
    assert [e.lineno for e in seen] == [1, 3]


def test_stats_recent_and_completed_tasks(store: TraceStore) -> None:
    store.append_many([ok_trace("A  task", model="m/x"), ok_trace("b", mode="coding", model="m/x"), failed_trace("c")])
    with open(store.path, "ab") as fh:
        fh.write(b"garbage\n")

    stats = store.stats()
    assert (stats.total, stats.ok, stats.failed, stats.invalid) == (3, 2, 1, 1)
    assert stats.by_mode == {"general": 2, "coding": 1}
    assert [r.task for r in store.recent(2)] == ["b", "c"]
    model = "m/x"
    assert store.completed(Provenance("general", model)) == {"a task"}
    assert store.completed(Provenance("coding", model)) == {"b"}
    assert store.completed(Provenance("general", "another/model")) == set()
    assert store.completed(Provenance("general", model, program="0123abcd")) == set()


def test_an_absent_log_reads_as_empty(tmp_path: Path) -> None:
    store = TraceStore(tmp_path / "none.jsonl")
    assert list(store) == []
    assert store.stats().total == 0
    with pytest.raises(InvalidTraceError, match="no such file"):
        list(read_records(tmp_path / "none.jsonl"))


def test_a_utf8_byte_order_mark_at_the_start_is_accepted(log_path: Path) -> None:
    log_path.write_bytes(b"\xef\xbb\xbf" + ok_trace("first").to_json_line() + ok_trace("second").to_json_line())
    assert [r.task for r in read_records(log_path)] == ["first", "second"]


@pytest.mark.parametrize("tail", [b"", b"\n"])
def test_a_json_array_file_is_named_as_such_not_as_a_torn_line(log_path: Path, tail: bytes) -> None:
    log_path.write_bytes(b"[" + ok_trace().model_dump_json().encode() + b"]" + tail)
    with pytest.raises(InvalidTraceError, match=r"holds a JSON array, not JSON lines.*jq -c") as info:
        list(read_records(log_path))
    assert "torn" not in str(info.value) and info.value.lineno == 1


def test_running_counts_follow_every_append_without_rereading_the_log(store: TraceStore, monkeypatch) -> None:
    assert store.append_counted(ok_trace("a")).total == 1
    reads = []
    original = TraceStore.stats

    def counted_stats(self: TraceStore) -> LogStats:
        reads.append(1)
        return original(self)

    monkeypatch.setattr(TraceStore, "stats", counted_stats)

    counts = [store.append_counted(t) for t in (ok_trace("b", mode="coding"), failed_trace("c"))]

    assert [(c.total, c.ok, c.failed) for c in counts] == [(2, 2, 0), (3, 2, 1)]
    assert counts[-1].by_mode == {"general": 2, "coding": 1}
    assert store.counts().as_dict() == original(store).as_dict() and reads == []  # counted, never reread


def test_running_counts_recount_after_another_writer(store: TraceStore) -> None:
    store.append_counted(ok_trace("a"))
    other = TraceStore(store.path)  # another process's writer
    other.append(failed_trace("b"))
    with open(store.path, "ab") as fh:
        fh.write(b"garbage\n")

    after = store.append_counted(ok_trace("c"))

    assert (after.total, after.ok, after.failed, after.invalid) == (3, 2, 1, 1)
    other.append(ok_trace("d"))
    assert store.counts().total == 4
    counted = store.counts()
    counted.total = 99  # a copy: the caller cannot change the store's counts
    assert store.counts().total == 4


def test_schema_v3_lines_keep_their_flags_and_older_lines_read_as_v3(log_path: Path) -> None:
    flagged = ok_trace("flagged").model_copy(update={"flags": ["copy"]})
    old = ok_trace("old").model_dump(mode="json")
    old.pop("flags")
    with open(log_path, "wb") as fh:
        fh.write(flagged.to_json_line())
        fh.write(json.dumps({**old, "schema_version": 2}).encode() + b"\n")
        fh.write(json.dumps({**old, "schema_version": 4}).encode() + b"\n")
    found: list[InvalidTraceError] = []
    first, second = read_records(log_path, skip_invalid=True, on_invalid=found.append)
    assert (first.schema_version, first.flags) == (3, ["copy"])
    assert (second.schema_version, second.flags) == (3, None)  # computed by quality.flags_of when read for curation
    assert [e.lineno for e in found] == [3] and "newer than this hegelion-dspy" in str(found[0])


def test_normalize_task_collapses_whitespace_and_case_alike_on_its_fast_and_slow_ways() -> None:
    import random

    from hegelion_dspy.store import normalize_task

    rng = random.Random(5)
    alphabet = ["a", "B", " ", "  ", "\t", "\n", "\x0b", "\x1c", "\x1f", "\x00", "\x7f", "\xa0", "É", "ß", "z"]
    alphabet += ["\u2003", "~", "1"]
    for _ in range(3000):
        task = "".join(rng.choices(alphabet, k=rng.randint(0, 12)))
        assert normalize_task(task) == " ".join(task.split()).casefold(), repr(task)
    assert normalize_task("Write  a\tParser ") == normalize_task("write a parser") == "write a parser"
