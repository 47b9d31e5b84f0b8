"""Labels: the sidecar log (validation, latest wins, torn lines, concurrent writers) and how every export honours it
(the Python API, hegelion-dataset, the MCP export_dataset tool)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from hegelion_dspy.cli.dataset import dataset
from hegelion_dspy.cli.dataset import main as dataset_main
from hegelion_dspy.collect.traces import build_trace
from hegelion_dspy.curate.driver import export_dataset
from hegelion_dspy.curate.formats import preference_examples, supervised_examples
from hegelion_dspy.curate.labels import Label, LabelStore, labelled_texts, labels_path, pair_key, parse_pair
from hegelion_dspy.curate.verdict import example_pair
from hegelion_dspy.errors import ExportError, InvalidLabelError
from hegelion_dspy.store import TORN_SUFFIX, TraceStore
from hegelion_dspy.types import TraceRecord


def trace(task: str, *, rounds: list[dict[str, Any]] | None = None, trace_id: str | None = None) -> TraceRecord:
    record = build_trace(
        task=task,
        thesis=f"thesis of {task}",
        antithesis=f"antithesis of {task}",
        synthesis=f"synthesis of {task}",
        rounds=rounds,
    )
    return record.model_copy(update={"id": trace_id}) if trace_id else record


def rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "traces.jsonl"
    TraceStore(path).append_many(trace(t, trace_id=t) for t in ("alpha", "beta", "gamma", "delta"))
    return path


# -- the Label model and pair names ----------------------------------------------------------------------------------


def test_pair_keys_name_both_sides_and_round_trip() -> None:
    assert pair_key("thesis", 1, 2) == "thesis:1>synthesis:2"
    assert parse_pair("antithesis:3>synthesis:3") == ("antithesis", 3, 3)
    for bad in ("thesis:0>synthesis:1", "synthesis:1>thesis:1", "thesis:1", "thesis:1>synthesis:999", ""):
        with pytest.raises(ValueError, match="not a pair name"):
            parse_pair(bad)


def test_a_label_refuses_unknown_pairs_blank_edits_and_naive_times() -> None:
    with pytest.raises(ValidationError, match="not a pair name"):
        Label(trace_id="t", pair="round 1", decision="accept")
    with pytest.raises(ValidationError, match="must not be empty"):
        Label(trace_id="t", pair="thesis:1>synthesis:1", chosen="   ")
    with pytest.raises(ValidationError, match="timezone"):
        Label(trace_id="t", pair="thesis:1>synthesis:1", created_at=datetime(2026, 1, 1))
    with pytest.raises(ValidationError):
        Label(trace_id="t", pair="thesis:1>synthesis:1", decision="maybe")  # type: ignore[arg-type]
    assert Label(trace_id="t", pair="thesis:1>synthesis:1", labeller="  ").labeller is None


def test_labelled_texts_apply_each_decision() -> None:
    def label(**kw: Any) -> Label:
        return Label(trace_id="t", pair="thesis:1>synthesis:1", **kw)

    assert labelled_texts("C", "R", None) == ("C", "R", "unreviewed")
    assert labelled_texts("C", "R", label(note="only a note")) == ("C", "R", "unreviewed")
    assert labelled_texts("C", "R", label(decision="accept")) == ("C", "R", "accepted")
    assert labelled_texts("C", "R", label(decision="reject"))[2] == "rejected"
    assert labelled_texts("C", "R", label(decision="swap")) == ("R", "C", "swapped")
    assert labelled_texts("C", "R", label(decision="accept", chosen="C2")) == ("C2", "R", "edited")
    assert labelled_texts("C", "R", label(decision="swap", chosen="R2")) == ("R2", "C", "edited")
    # a supervised example (no rejected side): a swap trains on the other side of the pair
    assert labelled_texts("C", None, label(decision="swap"), other="T") == ("T", None, "swapped")


def test_examples_carry_the_pair_a_label_names() -> None:
    record = trace("iterated", rounds=[{"antithesis": "a2", "synthesis": "s2"}])
    firstlast = preference_examples(record, rejected="both")
    assert [example_pair(ex) for ex in firstlast] == ["thesis:1>synthesis:2", "antithesis:1>synthesis:2"]
    per_round = preference_examples(record, pairs="rounds")
    assert [example_pair(ex) for ex in per_round] == ["thesis:1>synthesis:1", "thesis:2>synthesis:2"]
    assert [example_pair(ex) for ex in supervised_examples(record)] == ["thesis:1>synthesis:2"]


# -- the sidecar log -------------------------------------------------------------------------------------------------


def test_the_sidecar_sits_beside_the_log_and_the_latest_label_of_a_pair_wins(log: Path) -> None:
    store = LabelStore.beside(log)
    assert store.path == labels_path(log) == log.with_name("traces.jsonl.labels")
    pair = "thesis:1>synthesis:1"
    store.append(Label(trace_id="alpha", pair=pair, decision="accept", labeller="ann"))
    store.append(Label(trace_id="alpha", pair=pair, decision="reject", note="wrong after all", labeller="bob"))
    store.append(Label(trace_id="beta", pair=pair, decision="swap"))
    book = store.latest()
    assert len(book) == 2
    latest = book.get("alpha", pair)
    assert latest is not None
    assert (latest.decision, latest.note, latest.labeller) == ("reject", "wrong after all", "bob")
    assert book.for_trace("beta")[pair].labeller is None  # recorded only when given
    assert len(list(store.records())) == 3  # nothing is rewritten: every decision stays in the log
    assert log.read_bytes().count(b"\n") == 4  # and the trace log is untouched


def test_a_bad_label_line_is_reported_with_its_line_and_field(log: Path) -> None:
    store = LabelStore.beside(log)
    store.append(Label(trace_id="alpha", pair="thesis:1>synthesis:1", decision="accept"))
    with open(store.path, "ab") as fh:
        fh.write(b'{"trace_id": "beta", "pair": "thesis:1>synthesis:1", "decision": "perhaps"}\n')
    with pytest.raises(InvalidLabelError, match=r"traces\.jsonl\.labels:2: field 'decision'"):
        store.latest()
    found: list[InvalidLabelError] = []
    assert len(store.latest(skip_invalid=True, on_invalid=found.append)) == 1
    assert [e.lineno for e in found] == [2]


def test_a_torn_last_label_is_moved_aside_by_the_next_append_like_a_torn_trace(log: Path) -> None:
    store = LabelStore.beside(log)
    store.append(Label(trace_id="alpha", pair="thesis:1>synthesis:1", decision="accept"))
    with open(store.path, "ab") as fh:
        fh.write(b'{"trace_id": "beta", "pair": "thes')  # a writer died mid-line
    with pytest.raises(InvalidLabelError, match="torn last line"):
        store.latest()
    store.append(Label(trace_id="gamma", pair="thesis:1>synthesis:1", decision="reject"))
    assert [(lbl.trace_id, lbl.decision) for lbl in store.records()] == [("alpha", "accept"), ("gamma", "reject")]
    assert Path(str(store.path) + TORN_SUFFIX).read_bytes() == b'{"trace_id": "beta", "pair": "thes\n'


WRITER = textwrap.dedent(
    """
    import sys
    from hegelion_dspy.curate.labels import Label, LabelStore
    store, who, n = LabelStore(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    sys.stdout.write("ready\\n"); sys.stdout.flush(); sys.stdin.readline()
    for i in range(n):
        store.append(Label(trace_id=f"{who}-{i}", pair="thesis:1>synthesis:1", decision="accept",
                           note=who * (i % 300), labeller=who))
    """
)


def test_two_processes_writing_labels_at_once_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "traces.jsonl.labels"
    n = 400
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), who, str(n)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        for who in ("ann", "bob")
    ]
    for w in writers:  # both are imported and waiting: start them together
        assert w.stdout is not None and w.stdout.readline() == b"ready\n"
    for w in writers:
        assert w.stdin is not None
        w.stdin.write(b"go\n")
        w.stdin.close()
    for w in writers:
        assert w.wait(timeout=120) == 0
        assert w.stdout is not None
        w.stdout.close()
    labels = list(LabelStore(path).records())  # every line parses: no interleaving, no torn line
    assert len(labels) == 2 * n
    for who in ("ann", "bob"):
        mine = [lbl for lbl in labels if lbl.labeller == who]
        assert [lbl.trace_id for lbl in mine] == [f"{who}-{i}" for i in range(n)]  # each writer's order kept
        assert all(lbl.note == who * (i % 300) for i, lbl in enumerate(mine))
    assert not Path(str(path) + TORN_SUFFIX).exists()


# -- exports honour labels -------------------------------------------------------------------------------------------

PAIR = "thesis:1>synthesis:1"


@pytest.fixture
def labelled(log: Path) -> Path:
    LabelStore.beside(log).append_many(
        [
            Label(trace_id="alpha", pair=PAIR, decision="reject"),
            Label(trace_id="beta", pair=PAIR, decision="swap"),
            Label(trace_id="gamma", pair=PAIR, decision="accept", chosen="an edited synthesis of gamma"),
            Label(trace_id="gamma", pair="antithesis:1>synthesis:1", decision="reject"),  # not this export's pair
        ]
    )
    return log


def test_the_python_api_drops_rejected_swaps_swapped_and_uses_edits(labelled: Path, tmp_path: Path) -> None:
    report = export_dataset(labelled, tmp_path / "dpo.jsonl")
    assert rows(tmp_path / "dpo.jsonl") == [
        {"prompt": "beta", "chosen": "thesis of beta", "rejected": "synthesis of beta"},
        {"prompt": "gamma", "chosen": "an edited synthesis of gamma", "rejected": "thesis of gamma"},
        {"prompt": "delta", "chosen": "synthesis of delta", "rejected": "thesis of delta"},
    ]
    assert report.labels == {"accepted": 0, "swapped": 1, "edited": 1, "rejected": 1, "unreviewed": 1}
    assert report.dropped["rejected_by_reviewer"] == 1 and report.label_files == [str(labels_path(labelled))]


def test_reviewed_only_keeps_only_decided_pairs(labelled: Path, tmp_path: Path) -> None:
    report = export_dataset(labelled, tmp_path / "dpo.jsonl", reviewed_only=True)
    assert [r["prompt"] for r in rows(tmp_path / "dpo.jsonl")] == ["beta", "gamma"]
    assert report.dropped["not_reviewed"] == 1 and report.dropped["rejected_by_reviewer"] == 1


def test_labels_reach_supervised_rows_through_the_main_pair(labelled: Path, tmp_path: Path) -> None:
    export_dataset(labelled, tmp_path / "sft.jsonl", format="sft")
    assert rows(tmp_path / "sft.jsonl") == [
        {"prompt": "beta", "completion": "thesis of beta"},  # swapped: the thesis was the better answer
        {"prompt": "gamma", "completion": "an edited synthesis of gamma"},
        {"prompt": "delta", "completion": "synthesis of delta"},
    ]


def test_labels_can_be_ignored_or_taken_from_another_file(labelled: Path, tmp_path: Path) -> None:
    report = export_dataset(labelled, tmp_path / "all.jsonl", labels=False)
    assert len(rows(tmp_path / "all.jsonl")) == 4 and report.labels["unreviewed"] == 4
    other = tmp_path / "elsewhere.labels"
    LabelStore(other).append(Label(trace_id="delta", pair=PAIR, decision="reject"))
    export_dataset(labelled, tmp_path / "other.jsonl", labels_file=str(other))
    assert [r["prompt"] for r in rows(tmp_path / "other.jsonl")] == ["alpha", "beta", "gamma"]
    with pytest.raises(ExportError, match="does not exist"):
        export_dataset(labelled, tmp_path / "x.jsonl", labels_file=str(tmp_path / "missing.labels"))
    with pytest.raises(ExportError, match="option 'labels' leaves them out"):
        export_dataset(labelled, tmp_path / "x.jsonl", labels=False, reviewed_only=True)
    with pytest.raises(ExportError, match="labels file"):
        export_dataset(labelled, labels_path(labelled), force=True)


def test_a_label_of_one_round_applies_to_that_rounds_pair_only(tmp_path: Path) -> None:
    log = tmp_path / "traces.jsonl"
    TraceStore(log).append(trace("iter", trace_id="it", rounds=[{"antithesis": "a2", "synthesis": "s2"}]))
    LabelStore.beside(log).append(Label(trace_id="it", pair="thesis:2>synthesis:2", decision="reject"))
    export_dataset(log, tmp_path / "rounds.jsonl", pairs="rounds")
    assert [r["chosen"] for r in rows(tmp_path / "rounds.jsonl")] == ["synthesis of iter"]
    export_dataset(log, tmp_path / "firstlast.jsonl")  # its own pair (thesis:1>synthesis:2) is unlabelled
    assert [r["chosen"] for r in rows(tmp_path / "firstlast.jsonl")] == ["s2"]


def test_hegelion_dataset_honours_labels_and_counts_each_outcome(
    labelled: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "dpo.jsonl"
    result = CliRunner().invoke(dataset, [str(labelled), str(out), "--stats", "--reviewed-only"])
    assert result.exit_code == 0, result.output
    assert [r["prompt"] for r in rows(out)] == ["beta", "gamma"]
    stats = {
        parts[0]: parts[1]
        for line in result.stdout.splitlines()
        if len(parts := line.split()) >= 2 and parts[0] in ("swapped", "edited", "rejected", "unreviewed", "accepted")
    }
    assert stats == {"accepted": "0", "swapped": "1", "edited": "1", "rejected": "1", "unreviewed": "1"}
    assert "rejected_by_reviewer" in result.stdout and "not_reviewed" in result.stdout
    ignored = CliRunner().invoke(dataset, [str(labelled), str(tmp_path / "all.jsonl"), "--no-labels"])
    assert ignored.exit_code == 0 and len(rows(tmp_path / "all.jsonl")) == 4
    with pytest.raises(SystemExit) as done:
        dataset_main([str(labelled), str(tmp_path / "c.jsonl"), "--no-labels", "--reviewed-only"])
    assert done.value.code == 2
    assert capsys.readouterr().err == (
        "hegelion: error: --reviewed-only and --labels work on labels, and --no-labels leaves them out; drop "
        "one of them\n"
    )


async def test_the_mcp_export_tool_honours_labels(tmp_path: Path) -> None:
    from hegelion_server.app import build_server
    from mcp import Client

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    log = data_dir / "traces.jsonl"
    TraceStore(log).append_many(trace(t, trace_id=t) for t in ("alpha", "beta", "gamma"))
    LabelStore.beside(log).append_many(
        [Label(trace_id="alpha", pair=PAIR, decision="reject"), Label(trace_id="beta", pair=PAIR, decision="swap")]
    )
    async with Client(build_server(data_dir=data_dir)) as client:
        out = (await client.call_tool("export_dataset", {"format": "dpo"})).structured_content
        only = (
            await client.call_tool("export_dataset", {"output_name": "reviewed.jsonl", "reviewed_only": True})
        ).structured_content
    assert out is not None and only is not None
    assert [(r["prompt"], r["chosen"]) for r in rows(data_dir / "dpo.jsonl")] == [
        ("beta", "thesis of beta"),
        ("gamma", "synthesis of gamma"),
    ]
    assert out["dropped"] == {"rejected_by_reviewer": 1} and out["report"]["labels"]["swapped"] == 1
    assert [r["prompt"] for r in rows(data_dir / "reviewed.jsonl")] == ["beta"]
