"""The exporters: exact row shapes per format, curation, streaming, atomic writes, bad input, and that Hugging Face
``datasets`` and TRL's own format helpers take every file as it is."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from hegelion_dspy.collect.traces import build_trace
from hegelion_dspy.curate.driver import export_dataset
from hegelion_dspy.curate.files import split_paths
from hegelion_dspy.curate.formats import (
    FORMATS,
    RowSource,
    to_dpo_chat_rows,
    to_dpo_rows,
    to_instruction_rows,
    to_sft_chat_rows,
    to_sft_rows,
)
from hegelion_dspy.curate.verdict import DROP_REASONS, drop_reason
from hegelion_dspy.errors import ExportError, InvalidTraceError
from hegelion_dspy.store import TraceStore
from hegelion_dspy.types import TraceFailure, TraceRecord

# -- helpers ---------------------------------------------------------------------------------------------------------


def trace(
    task: str,
    *,
    thesis: str = "A first answer.",
    antithesis: str = "It misses the empty case.",
    synthesis: str = "A better answer that handles the empty case.",
    rounds: list[dict[str, Any]] | None = None,
    score: float | None = None,
) -> TraceRecord:
    return build_trace(
        task=task, thesis=thesis, antithesis=antithesis, synthesis=synthesis, rounds=rounds, score=score, model="m/x"
    )


def failed(task: str) -> TraceRecord:
    return TraceRecord(
        task=task, status="failed", error=TraceFailure(step="antithesis", round=1, type="ConnectionError", message="x")
    )


ITERATED = trace(
    "Sort a list",
    thesis="Use bubble sort.",
    antithesis="Quadratic time.",
    synthesis="Use merge sort.",
    rounds=[{"antithesis": "Merge sort allocates.", "synthesis": "Use the built-in sort (Timsort)."}],
)


def write_log(path: Path, records: list[TraceRecord]) -> Path:
    TraceStore(path).append_many(records)
    return path


def rows_of(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n") and not text.startswith("[")  # JSONL, never a JSON array
    return [json.loads(line) for line in text.splitlines()]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# -- pure row functions ----------------------------------------------------------------------------------------------


def test_dpo_rows_prefer_the_synthesis_to_the_thesis_by_default() -> None:
    record = trace("What is 2+2?")
    assert to_dpo_rows(record) == [
        {
            "prompt": "What is 2+2?",
            "chosen": "A better answer that handles the empty case.",
            "rejected": "A first answer.",
        }
    ]


def test_dpo_rows_can_reject_the_antithesis_or_both() -> None:
    record = trace("Q")
    assert [r["rejected"] for r in to_dpo_rows(record, rejected="antithesis")] == ["It misses the empty case."]
    both = to_dpo_rows(record, rejected="both")
    assert [r["rejected"] for r in both] == ["A first answer.", "It misses the empty case."]
    assert {r["chosen"] for r in both} == {"A better answer that handles the empty case."}


def test_an_iterated_trace_gives_first_thesis_vs_final_synthesis_or_one_pair_per_round() -> None:
    assert to_dpo_rows(ITERATED) == [
        {"prompt": "Sort a list", "chosen": "Use the built-in sort (Timsort).", "rejected": "Use bubble sort."}
    ]
    assert to_dpo_rows(ITERATED, pairs="rounds") == [
        {"prompt": "Sort a list", "chosen": "Use merge sort.", "rejected": "Use bubble sort."},
        {"prompt": "Sort a list", "chosen": "Use the built-in sort (Timsort).", "rejected": "Use merge sort."},
    ]
    assert [r["rejected"] for r in to_dpo_rows(ITERATED, pairs="rounds", rejected="antithesis")] == [
        "Quadratic time.",
        "Merge sort allocates.",
    ]


def test_chat_preference_rows_are_message_lists_with_an_optional_system_prompt() -> None:
    assert to_dpo_chat_rows(trace("Q")) == [
        {
            "prompt": [{"role": "user", "content": "Q"}],
            "chosen": [{"role": "assistant", "content": "A better answer that handles the empty case."}],
            "rejected": [{"role": "assistant", "content": "A first answer."}],
        }
    ]
    row = to_dpo_chat_rows(trace("Q"), system="Be brief.")[0]
    assert row["prompt"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q"}]


def test_supervised_rows_train_on_the_final_synthesis() -> None:
    assert to_instruction_rows(ITERATED) == [
        {"instruction": "Sort a list", "input": "", "output": "Use the built-in sort (Timsort)."}
    ]
    assert to_sft_rows(ITERATED) == [{"prompt": "Sort a list", "completion": "Use the built-in sort (Timsort)."}]
    assert to_sft_chat_rows(ITERATED, system="S") == [
        {
            "messages": [
                {"role": "system", "content": "S"},
                {"role": "user", "content": "Sort a list"},
                {"role": "assistant", "content": "Use the built-in sort (Timsort)."},
            ]
        }
    ]


def test_a_failed_trace_makes_no_row_in_any_format() -> None:
    record = failed("Q")
    assert to_dpo_rows(record) == to_dpo_chat_rows(record) == to_instruction_rows(record) == []
    assert to_sft_rows(record) == to_sft_chat_rows(record) == []


def test_drop_reason_names_what_is_wrong_with_an_example() -> None:
    assert drop_reason(RowSource("p", "good answer", "bad", 1)) is None
    assert drop_reason(RowSource("p", "  ", "bad", 1)) == "empty"
    assert drop_reason(RowSource("p", "good", " \n", 1)) == "empty"
    assert drop_reason(RowSource("p", "same ", " same", 1)) == "chosen_equals_rejected"
    assert drop_reason(RowSource("p", "short", "bad", 1), min_chars=6) == "too_short"
    assert drop_reason(RowSource("p", "short", None, 1), min_chars=5) is None


# -- the driver: curation --------------------------------------------------------------------------------------------


@pytest.fixture
def mixed_log(tmp_path: Path) -> Path:
    """Four kept traces, and one of each thing curation drops."""
    return write_log(
        tmp_path / "traces.jsonl",
        [
            trace("What is 2+2?", score=0.9),
            failed("A failed task"),
            trace("  what IS   2+2? ", synthesis="A duplicate, later answer."),  # same normalised task
            trace("Echo", thesis="Same text.", synthesis="Same text."),  # chosen == rejected
            trace("Tiny", synthesis="Ok."),  # 3 chars
            ITERATED,
            trace("Explain DNS", score=0.4),
        ],
    )


def test_export_keeps_ok_pairs_and_counts_every_drop_by_reason(mixed_log: Path, tmp_path: Path) -> None:
    report = export_dataset(mixed_log, tmp_path / "dpo.jsonl", min_chars=5)

    rows = rows_of(tmp_path / "dpo.jsonl")
    assert [r["prompt"] for r in rows] == ["What is 2+2?", "Sort a list", "Explain DNS"]
    assert all(set(r) == {"prompt", "chosen", "rejected"} for r in rows)
    assert report.traces_read == 7 and report.traces_kept == 3
    assert report.rows == {"train": 3} and report.rows_written == 3
    assert report.outputs == {"train": str(tmp_path / "dpo.jsonl")}
    assert {k: v for k, v in report.dropped.items() if v} == {
        "failed": 1,
        "duplicate_prompt": 1,
        "chosen_equals_rejected": 1,
        "too_short": 1,
    }
    assert set(report.dropped) == set(DROP_REASONS)


def test_min_score_drops_unscored_and_low_scored_traces(mixed_log: Path, tmp_path: Path) -> None:
    report = export_dataset(mixed_log, tmp_path / "dpo.jsonl", min_score=0.5)
    assert [r["prompt"] for r in rows_of(tmp_path / "dpo.jsonl")] == ["What is 2+2?"]
    assert report.dropped["below_min_score"] == 1  # Explain DNS, 0.4
    assert report.dropped["no_score"] == 4  # the duplicate, Echo, Tiny, Sort a list (the failed one drops first)


def test_dedupe_can_be_turned_off(mixed_log: Path, tmp_path: Path) -> None:
    report = export_dataset(mixed_log, tmp_path / "dpo.jsonl", dedupe=False)
    assert report.dropped["duplicate_prompt"] == 0
    assert [r["chosen"] for r in rows_of(tmp_path / "dpo.jsonl")][1] == "A duplicate, later answer."


def test_a_later_trace_of_a_task_fills_in_when_the_first_one_was_dropped(tmp_path: Path) -> None:
    log = write_log(
        tmp_path / "t.jsonl",
        [failed("Q"), trace("Q", thesis="x", synthesis="x"), trace("q", synthesis="Finally a real answer.")],
    )
    report = export_dataset(log, tmp_path / "out.jsonl")
    assert [r["chosen"] for r in rows_of(tmp_path / "out.jsonl")] == ["Finally a real answer."]
    assert report.dropped["duplicate_prompt"] == 0 and report.dropped["chosen_equals_rejected"] == 1


def test_rejected_both_and_pairs_rounds_write_several_rows_per_trace(tmp_path: Path) -> None:
    log = write_log(tmp_path / "t.jsonl", [ITERATED])
    report = export_dataset(log, tmp_path / "out.jsonl", rejected="both", pairs="rounds")
    rows = rows_of(tmp_path / "out.jsonl")
    assert report.rows == {"train": 4} and report.traces_kept == 1
    assert [(r["chosen"], r["rejected"]) for r in rows] == [
        ("Use merge sort.", "Use bubble sort."),
        ("Use merge sort.", "Quadratic time."),
        ("Use the built-in sort (Timsort).", "Use merge sort."),
        ("Use the built-in sort (Timsort).", "Merge sort allocates."),
    ]


def test_with_metadata_adds_one_column_naming_the_source_trace(tmp_path: Path) -> None:
    record = trace("Q", score=0.75)
    log = write_log(tmp_path / "t.jsonl", [record])
    export_dataset(log, tmp_path / "out.jsonl", format="sft-chat", with_metadata=True)
    (row,) = rows_of(tmp_path / "out.jsonl")
    assert row["metadata"] == {"trace_id": record.id, "model": "m/x", "mode": "general", "round": 1, "score": 0.75}
    assert set(row) == {"messages", "metadata"}


def test_several_files_and_a_glob_are_read_in_order(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    write_log(logs / "a.jsonl", [trace("first")])
    write_log(logs / "b.jsonl", [trace("second"), trace("first")])
    report = export_dataset(str(logs / "*.jsonl"), tmp_path / "out.jsonl", keep="first")
    assert [r["prompt"] for r in rows_of(tmp_path / "out.jsonl")] == ["first", "second"]
    assert report.inputs == [str(logs / "a.jsonl"), str(logs / "b.jsonl")] and report.dropped["duplicate_prompt"] == 1
    # The same file named twice (directly and through the glob) is read once.
    again = export_dataset([logs / "a.jsonl", str(logs / "*.jsonl")], tmp_path / "again.jsonl", dedupe=False)
    assert again.traces_read == 3


# -- split -----------------------------------------------------------------------------------------------------------


@pytest.fixture
def many_log(tmp_path: Path) -> Path:
    return write_log(tmp_path / "many.jsonl", [trace(f"Question number {n}?") for n in range(400)])


def test_split_writes_train_and_test_files_deterministically_without_sharing_a_prompt(
    many_log: Path, tmp_path: Path
) -> None:
    out = tmp_path / "data" / "dpo.jsonl"
    report = export_dataset(many_log, out, split=0.1, seed=7)
    paths = split_paths(out)
    assert report.outputs == {"train": str(paths["train"]), "test": str(paths["test"])}
    assert paths["train"].name == "dpo.train.jsonl" and paths["test"].name == "dpo.test.jsonl"
    assert not out.exists()
    train, test = rows_of(paths["train"]), rows_of(paths["test"])
    assert report.rows == {"train": len(train), "test": len(test)} and len(train) + len(test) == 400
    assert 15 <= len(test) <= 70  # about 10%
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in test}

    again = export_dataset(many_log, out, split=0.1, seed=7, force=True)
    assert again.rows == report.rows and rows_of(paths["test"]) == test
    other = export_dataset(many_log, tmp_path / "other.jsonl", split=0.1, seed=8)
    assert {r["prompt"] for r in rows_of(Path(other.outputs["test"]))} != {r["prompt"] for r in test}


def test_split_keeps_every_row_of_a_trace_in_one_file(tmp_path: Path) -> None:
    log = write_log(tmp_path / "t.jsonl", [trace(f"Task {n}") for n in range(60)])
    report = export_dataset(log, tmp_path / "out.jsonl", rejected="both", split=0.5, seed=1)
    for name in ("train", "test"):
        prompts = [r["prompt"] for r in rows_of(Path(report.outputs[name]))]
        assert all(prompts.count(p) == 2 for p in prompts)


def test_a_split_that_would_be_empty_is_refused_saying_what_each_split_would_get(tmp_path: Path) -> None:
    # issue 21: an empty test split was written (and listed by the card), which datasets.load_dataset refuses
    log = write_log(tmp_path / "t.jsonl", [trace("only one")])
    with pytest.raises(ExportError) as refused:
        export_dataset(log, tmp_path / "out.jsonl", split=0.01, seed=7)
    assert str(refused.value) == (
        "option 'split' 0.01: the test split would be empty (rows per split: train 1, test 0); nothing was written. "
        "Use more traces, another split fraction or seed, or no split"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.jsonl"]
    with pytest.raises(ExportError, match=r"the test split would be empty \(rows per split: train 1, test 0\)"):
        export_dataset(log, tmp_path / "card", split=0.01, card=True)
    assert not (tmp_path / "card").exists()


# -- outputs: never clobber, never partial ---------------------------------------------------------------------------


def test_an_existing_output_is_refused_without_force_and_replaced_with_it(mixed_log: Path, tmp_path: Path) -> None:
    out = tmp_path / "dpo.jsonl"
    out.write_text("precious\n")
    with pytest.raises(ExportError, match="already exists; set option 'force' to replace it"):
        export_dataset(mixed_log, out)
    assert out.read_text() == "precious\n"
    export_dataset(mixed_log, out, force=True)
    assert len(rows_of(out)) == 4
    assert leftovers(tmp_path) == []


def test_a_split_refuses_when_either_output_exists(many_log: Path, tmp_path: Path) -> None:
    split_paths(tmp_path / "d.jsonl")["test"].write_text("keep\n")
    with pytest.raises(ExportError, match=r"d\.test\.jsonl' already exists"):
        export_dataset(many_log, tmp_path / "d.jsonl", split=0.2)
    assert not split_paths(tmp_path / "d.jsonl")["train"].exists()


def test_the_output_may_not_be_an_input_however_it_is_spelled(mixed_log: Path, tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.jsonl").symlink_to(mixed_log)
    before = mixed_log.read_bytes()
    for spelling in (mixed_log, tmp_path / "sub" / ".." / "traces.jsonl", tmp_path / "link.jsonl"):
        with pytest.raises(ExportError, match="is also an input"):
            export_dataset(mixed_log, spelling, force=True)
    assert mixed_log.read_bytes() == before


def test_an_error_midway_leaves_no_partial_file_and_the_old_output_untouched(tmp_path: Path) -> None:
    log = write_log(tmp_path / "t.jsonl", [trace(f"Task {n}") for n in range(50)])
    with open(log, "ab") as fh:
        fh.write(b'{"not": "a trace"}\n')
    out = tmp_path / "out.jsonl"
    out.write_text("old\n")
    with pytest.raises(InvalidTraceError):
        export_dataset(log, out, force=True, split=None)
    with pytest.raises(InvalidTraceError):
        export_dataset(log, tmp_path / "new.jsonl", split=0.5)
    assert out.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl", "t.jsonl"]


def test_the_output_folder_is_created_and_the_file_is_readable_by_others(mixed_log: Path, tmp_path: Path) -> None:
    out = tmp_path / "new" / "folder" / "dpo.jsonl"
    export_dataset(mixed_log, out)
    assert out.exists() and out.stat().st_mode & 0o044 == 0o044 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# -- bad input -------------------------------------------------------------------------------------------------------


def good_line(task: str = "Q") -> bytes:
    return trace(task).to_json_line()


@pytest.mark.parametrize(
    ("bad", "lineno", "reason"),
    [
        (b'{"task": "\xff\xfe broken"}\n', 2, "invalid UTF-8"),
        (good_line("B").replace(b'"task":"B"', b'"task":5'), 2, "field 'task'"),
        (good_line("B").replace(b'"rounds":[', b'"rounds":"no"', 1).split(b'"no"')[0] + b'"no"}\n', 2, "'rounds'"),
        (b"[1, 2]\n", 2, "expected a JSON object"),
        (b"not json\n", 2, "not JSON"),
        (good_line("B")[:40], 2, "torn last line"),  # an interrupted write: no newline at the end
    ],
    ids=["invalid-utf8", "task-not-a-string", "rounds-not-a-list", "json-array", "not-json", "torn-last-line"],
)
def test_a_bad_line_stops_the_export_with_path_and_line_unless_skipped(
    tmp_path: Path, bad: bytes, lineno: int, reason: str
) -> None:
    log = tmp_path / "t.jsonl"
    log.write_bytes(good_line("A") + bad + (b"" if not bad.endswith(b"\n") else good_line("C")))
    with pytest.raises(InvalidTraceError) as err:
        export_dataset(log, tmp_path / "out.jsonl")
    assert str(err.value).startswith(f"{log}:{lineno}: ") and reason in str(err.value)
    assert err.value.lineno == lineno
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.jsonl"]

    report = export_dataset(log, tmp_path / "out.jsonl", skip_invalid=True)
    assert report.invalid == 1 and report.invalid_locations[0].startswith(f"{log}:{lineno}: ")
    assert report.rows_written == report.traces_read == (2 if bad.endswith(b"\n") else 1)


def test_skip_invalid_counts_every_bad_line_and_keeps_the_first_few_locations(tmp_path: Path) -> None:
    log = tmp_path / "t.jsonl"
    log.write_bytes(b"".join([b"junk\n", good_line("A")] * 8))
    report = export_dataset(log, tmp_path / "out.jsonl", skip_invalid=True, dedupe=False)
    assert report.invalid == 8 and report.rows_written == 8
    assert [loc.split(": ")[0] for loc in report.invalid_locations] == [f"{log}:{n}" for n in (1, 3, 5, 7, 9)]


def test_a_lone_surrogate_is_an_invalid_line_not_invalid_utf8_in_the_dataset(tmp_path: Path) -> None:
    log = tmp_path / "t.jsonl"
    broken = trace("Q", synthesis="bad SURROGATE text").to_json_line().replace(b"SURROGATE", b"\\ud800")
    log.write_bytes(good_line("R") + broken)
    with pytest.raises(InvalidTraceError, match=f"{log}:2: field 'rounds.0.synthesis'"):
        export_dataset(log, tmp_path / "out.jsonl")
    report = export_dataset(log, tmp_path / "out.jsonl", skip_invalid=True)
    assert report.invalid == 1 and rows_of(tmp_path / "out.jsonl") == to_dpo_rows(trace("R"))


def test_an_empty_file_is_warned_about_and_alone_writes_nothing(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    with pytest.raises(ExportError, match=r"no rows to write.*no valid traces"):
        export_dataset(empty, tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists() and leftovers(tmp_path) == []

    log = write_log(tmp_path / "t.jsonl", [trace("Q")])
    report = export_dataset([empty, log], tmp_path / "out.jsonl")
    assert report.rows_written == 1 and report.warnings == [f"{empty}: no traces (empty file)"]


def test_nothing_to_keep_is_an_error_that_says_why(tmp_path: Path) -> None:
    log = write_log(tmp_path / "t.jsonl", [failed("A"), failed("B")])
    with pytest.raises(ExportError, match=r"Read 2 traces; dropped: failed=2"):
        export_dataset(log, tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()


def test_missing_inputs_and_unmatched_globs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="does not exist"):
        export_dataset(tmp_path / "nope.jsonl", tmp_path / "out.jsonl")
    with pytest.raises(ExportError, match="matches no file"):
        export_dataset(str(tmp_path / "*.jsonl"), tmp_path / "out.jsonl")
    with pytest.raises(ExportError, match="is a folder"):
        export_dataset(tmp_path, tmp_path / "out.jsonl")
    with pytest.raises(ExportError, match="no input"):
        export_dataset([], tmp_path / "out.jsonl")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"format": "csv"},
            "option 'format': Input should be 'dpo', 'dpo-chat', 'instruction', 'sft' or 'sft-chat' (got 'csv')",
        ),
        (
            {"rejected": "synthesis"},
            "option 'rejected': Input should be 'thesis', 'antithesis' or 'both' (got 'synthesis')",
        ),
        ({"pairs": "all"}, "option 'pairs'"),
        ({"format": "sft", "rejected": "antithesis"}, "applies to the formats dpo and dpo-chat only, not 'sft'"),
        ({"format": "instruction", "pairs": "rounds"}, "option 'pairs' chooses preference pairs"),
        ({"format": "dpo", "system": "Be brief."}, "option 'system' applies to the formats dpo-chat and sft-chat only"),
        ({"min_chars": -1}, "option 'min_chars': Input should be greater than or equal to 0 (got -1)"),
        ({"min_chars": True}, "option 'min_chars': Input should be a valid integer"),
        ({"min_score": 1.5}, "option 'min_score'"),
        ({"split": 1.0}, "option 'split': Input should be less than 1"),
        ({"split": 0}, "option 'split': Input should be greater than 0"),
        ({"keep": "newest"}, "option 'keep'"),
        ({"colour": "red"}, "option 'colour': Extra inputs are not permitted"),
        ({"since": "2026-11-02", "until": "2026-11-01"}, "since (2026-11-02T00:00:00+00:00) must be before until"),
    ],
)
def test_options_that_cannot_work_are_refused_before_anything_is_read(
    mixed_log: Path, tmp_path: Path, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ExportError, match=re.escape(message)):
        export_dataset(mixed_log, tmp_path / "out.jsonl", **options)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["traces.jsonl"]


def test_the_report_is_plain_data(mixed_log: Path, tmp_path: Path) -> None:
    report = export_dataset(mixed_log, tmp_path / "dpo.jsonl")
    data = json.loads(json.dumps(report.as_dict()))  # survives a JSON round trip unchanged
    assert data == {**report.as_dict(), "seconds": data["seconds"]}
    assert data["rows"] == {"train": 4} and data["rows_written"] == 4 and data["traces_read"] == 7
    assert data["dropped"]["failed"] == 1 and data["invalid"] == 0 and data["invalid_locations"] == []
    assert list(data["dropped"]) == list(DROP_REASONS)  # every reason, in order, zeros included
    assert data["kept_by_model"] == {"m/x": 4} and data["kept_by_mode"] == {"general": 4}
    assert (data["options"]["format"], data["options"]["keep"], data["options"]["include_demo"]) == (
        "dpo",
        "best",
        False,
    )


# -- streaming: flat memory ------------------------------------------------------------------------------------------


def _synthetic_log(path: Path, n: int) -> Path:
    template = trace("TASK", thesis="T" * 2000, antithesis="A" * 1000, synthesis="S" * 2000).to_json_line()
    with open(path, "wb") as fh:
        for i in range(n):
            fh.write(template.replace(b'"task":"TASK"', b'"task":"task %d"' % i))
    return path


def _peak_bytes(log: Path, out: Path) -> int:
    tracemalloc.start()
    try:
        export_dataset(log, out, dedupe=False)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_stays_flat_however_large_the_log(tmp_path: Path) -> None:
    small = _peak_bytes(_synthetic_log(tmp_path / "small.jsonl", 300), tmp_path / "small.out.jsonl")
    large = _peak_bytes(_synthetic_log(tmp_path / "large.jsonl", 3000), tmp_path / "large.out.jsonl")
    assert (tmp_path / "large.jsonl").stat().st_size > 15_000_000
    assert large < 4_000_000 and large < small * 1.5, (small, large)


# -- loaded as they are: Hugging Face datasets and TRL ---------------------------------------------------------------

MESSAGE_KEYS = {"role", "content"}


@pytest.fixture
def export_log(tmp_path: Path) -> Path:
    return write_log(
        tmp_path / "traces.jsonl", [trace(f"Question {n}?", score=0.5 + n / 100) for n in range(6)] + [ITERATED]
    )


EXPECTED_COLUMNS = {
    "dpo": ["prompt", "chosen", "rejected"],
    "dpo-chat": ["prompt", "chosen", "rejected"],
    "instruction": ["instruction", "input", "output"],
    "sft": ["prompt", "completion"],
    "sft-chat": ["messages"],
}


def _load(path: Path, cache: Path) -> Any:
    datasets = pytest.importorskip("datasets")
    return datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=str(cache))


@pytest.mark.parametrize("fmt", FORMATS)
def test_datasets_loads_every_format_with_the_right_columns_and_types(
    export_log: Path, tmp_path: Path, fmt: str
) -> None:
    datasets = pytest.importorskip("datasets")
    out = tmp_path / f"{fmt}.jsonl"
    system = "Answer briefly." if fmt.endswith("-chat") else None
    export_dataset(export_log, out, format=fmt, system=system)  # type: ignore[arg-type]
    ds = _load(out, tmp_path / "hf")
    assert ds.column_names == EXPECTED_COLUMNS[fmt] and ds.num_rows == 7
    text = datasets.Value("string")
    messages = datasets.List({"role": text, "content": text})
    for column in ds.column_names:
        assert ds.features[column] == (messages if fmt.endswith("-chat") else text), (column, ds.features[column])
    first = ds[0]
    if fmt == "dpo-chat":
        assert first["prompt"][0] == {"role": "system", "content": "Answer briefly."}
    if fmt == "sft-chat":
        assert [m["role"] for m in first["messages"]] == ["system", "user", "assistant"]


def test_datasets_loads_a_split_and_the_metadata_column(export_log: Path, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    report = export_dataset(export_log, tmp_path / "dpo.jsonl", split=0.3, seed=3, with_metadata=True)
    assert report.rows["test"] > 0
    dd = datasets.load_dataset("json", data_files=report.outputs, cache_dir=str(tmp_path / "hf"))
    assert set(dd) == {"train", "test"} and dd["train"].num_rows + dd["test"].num_rows == 7
    meta = dd["train"].features["metadata"]
    assert set(meta) == {"trace_id", "model", "mode", "round", "score"}
    assert meta["round"] == datasets.Value("int64") and meta["score"] == datasets.Value("float64")


@pytest.fixture(scope="module")
def chat_tokenizer() -> Any:
    """A tiny word-level tokenizer with a ChatML template, built offline (TRL's helpers need a chat template)."""
    tokenizers = pytest.importorskip("tokenizers")
    transformers = pytest.importorskip("transformers")
    model = tokenizers.models.WordLevel({"<unk>": 0, "<pad>": 1, "<|im_end|>": 2}, unk_token="<unk>")
    tok = tokenizers.Tokenizer(model)
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="<|im_end|>", chat_template=template
    )


@pytest.mark.parametrize("fmt", ["dpo", "dpo-chat", "sft", "sft-chat"])
def test_trl_format_helpers_accept_the_rows(export_log: Path, tmp_path: Path, chat_tokenizer: Any, fmt: str) -> None:
    data_utils = pytest.importorskip("trl.data_utils")
    out = tmp_path / f"{fmt}.jsonl"
    export_dataset(export_log, out, format=fmt, with_metadata=True)  # type: ignore[arg-type]
    ds = _load(out, tmp_path / "hf")
    row = ds[0]
    conversational = fmt.endswith("-chat")
    assert data_utils.is_conversational(row) is conversational
    rendered = data_utils.maybe_apply_chat_template(row, chat_tokenizer)
    if not conversational:
        assert rendered is row  # standard rows pass through as they are
    elif fmt == "dpo-chat":
        assert set(rendered) == {"prompt", "chosen", "rejected"}
        assert rendered["prompt"] == "<|im_start|>user\nQuestion 0?<|im_end|>\n<|im_start|>assistant\n"
        assert rendered["chosen"] == "A better answer that handles the empty case.<|im_end|>\n"
        assert rendered["rejected"] == "A first answer.<|im_end|>\n"
    else:
        assert rendered["text"].endswith("A better answer that handles the empty case.<|im_end|>\n")
    if fmt.startswith("dpo"):
        # TRL's KTO path unpairs preference rows: each row becomes a desirable and an undesirable completion.
        unpaired = data_utils.unpair_preference_dataset(ds.remove_columns("metadata"))
        assert unpaired.num_rows == 2 * ds.num_rows and set(unpaired.column_names) == {"prompt", "completion", "label"}


# -- imports ---------------------------------------------------------------------------------------------------------


def test_the_exporter_does_not_import_dspy() -> None:
    code = "import sys, hegelion_dspy.curate.driver; print('dspy' in sys.modules, 'litellm' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.split() == ["False", "False"]
