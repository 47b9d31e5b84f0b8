"""Collection: traces logged for every run; failures logged as failures; prompts files; agent-made traces."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hegelion_dspy.collect.batch import read_prompts, run_batch
from hegelion_dspy.collect.context import RunContext
from hegelion_dspy.collect.run import run_dialectic
from hegelion_dspy.collect.traces import build_trace, log_trace
from hegelion_dspy.errors import ConfigError, InvalidTraceError
from hegelion_dspy.lms.scripted import ScriptedLM
from hegelion_dspy.store import TraceStore


def test_run_dialectic_logs_every_round(store: TraceStore, scripted_lm: ScriptedLM) -> None:
    record = run_dialectic("Why is the sky blue?", lm=scripted_lm, iterations=3, store=store, tags=["demo"])

    [logged] = list(store)
    assert logged == record
    assert record.status == "ok" and record.error is None
    assert len(record.rounds) == 3
    assert record.synthesis == record.rounds[-1].synthesis
    assert (record.model, record.lm, record.adapter) == (
        "scripted/dialectic",
        "hegelion_dspy.lms.scripted.ScriptedLM",
        "FallbackAdapter",
    )
    assert all(r.adapters == dict.fromkeys(r.adapters, "ChatAdapter") for r in record.rounds)
    assert [sorted(r.adapters) for r in record.rounds] == [["antithesis", "synthesis", "thesis"]] + [
        ["antithesis", "synthesis"]
    ] * 2
    assert record.tags == ["demo"] and record.source == "python"


def test_a_failed_lm_call_is_logged_as_failed_never_as_an_answer(store: TraceStore) -> None:
    record = run_dialectic("task", lm=ScriptedLM(fail_on={"antithesis"}), store=store)

    [logged] = list(store)
    assert logged.status == "failed"
    assert logged.synthesis == ""
    assert logged.rounds == []
    assert logged.error is not None and logged.error.step == "antithesis"
    assert "scripted failure" in logged.error.message
    assert logged.metadata["partial_round"] == {"thesis": "Thesis: a first answer to 'task'."}  # kept, not as data
    assert record == logged


def test_an_empty_task_is_refused_before_any_call(scripted_lm: ScriptedLM) -> None:
    with pytest.raises(ConfigError, match="non-empty"):
        run_dialectic("   ", lm=scripted_lm)
    assert scripted_lm.calls == []


def test_batch_resumes_skipping_tasks_already_logged_ok(store: TraceStore) -> None:
    first_lm = ScriptedLM()
    ctx = RunContext.build(lm=first_lm)
    result = asyncio.run(run_batch(["a", "b", "b "], ctx=ctx, store=store, concurrency=2))
    assert (result.ok, result.failed, result.skipped) == (2, 0, 1)

    store.append(run_dialectic("c", lm=ScriptedLM(fail_on={"thesis"})))  # a failed trace is retried on resume
    second_lm = ScriptedLM()
    result = asyncio.run(
        run_batch(["A", "b", "c", "d"], ctx=RunContext.build(lm=second_lm), store=store, concurrency=2)
    )
    assert (result.ok, result.failed, result.skipped) == (2, 0, 2)
    assert sorted({m[-1]["content"].split("\n")[1] for _, m in second_lm.calls}) == ["c", "d"]
    assert store.stats().ok == 4


def test_batch_counts_failures_and_keeps_their_reasons(store: TraceStore) -> None:
    ctx = RunContext.build(lm=ScriptedLM(fail_on={"synthesis"}))
    result = asyncio.run(run_batch([f"t{i}" for i in range(7)], ctx=ctx, store=store, concurrency=3))
    assert (result.ok, result.failed) == (0, 7)
    assert len(result.failures) == 5
    assert all("synthesis" in reason for _, reason in result.failures)
    assert store.stats().failed == 7


def test_read_prompts_plain_lines_and_jsonl(tmp_path: Path) -> None:
    plain = tmp_path / "p.txt"
    plain.write_text("first\n\n  second  \n", encoding="utf-8")
    assert read_prompts(plain) == ["first", "second"]
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text('{"prompt": "one"}\n{"task": "two", "x": 1}\n', encoding="utf-8")
    assert read_prompts(jsonl) == ["one", "two"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.txt", None, "no such file"),
        ("bad.jsonl", b'{"prompt": "ok"}\n{"oops": 1}\n', r"bad.jsonl:2: field 'prompt'"),
        ("notjson.jsonl", b'{"prompt": "ok"}\n{nope\n', r"notjson.jsonl:2: not JSON"),
        ("binary.txt", b"\xff\xfe", "not UTF-8"),
        ("empty.txt", b"\n\n", "no prompts found"),
    ],
)
def test_read_prompts_errors_name_file_and_line(tmp_path: Path, name: str, content: bytes | None, message: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError, match=message):
        read_prompts(path)


def test_log_trace_validates_and_appends_agent_traces(store: TraceStore) -> None:
    record = log_trace(
        store,
        task="Fix the leak",
        thesis="Close the file.",
        antithesis="Not on the error path.",
        synthesis="Use a with-block.",
        contradictions=[{"description": "error path", "evidence": "raise before close"}],
        rounds=[{"antithesis": "Still leaks sockets.", "synthesis": "Use a with-block for both."}],
        mode="coding",
        model="claude",
        tags=["ide"],
        source="mcp",
    )
    [logged] = list(store)
    assert logged == record
    assert [r.thesis for r in logged.rounds] == ["Close the file.", "Use a with-block."]
    assert logged.synthesis == "Use a with-block for both."


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"synthesis": ""}, None),
        ({"contradictions": [{"evidence": "no description"}]}, "description"),
        ({"rounds": [{"antithesis": 3, "synthesis": "s"}]}, "antithesis"),
        ({"mode": "poetry"}, "mode"),
    ],
)
def test_log_trace_rejects_bad_fields_and_writes_nothing(store: TraceStore, overrides: dict, field: str | None) -> None:
    fields = {"task": "t", "thesis": "a", "antithesis": "b", "synthesis": "c", **overrides}
    with pytest.raises(InvalidTraceError) as info:
        log_trace(store, **fields)
    if field is not None:
        assert info.value.field is not None and field in info.value.field
    assert not store.path.exists()


def test_build_trace_is_usable_without_a_store() -> None:
    record = build_trace(task="t", thesis="a", antithesis="b", synthesis="c")
    assert record.ok and record.first_thesis == "a"


def test_an_unknown_embedded_model_name_is_refused() -> None:
    from hegelion_dspy.lms.chooser import make_lm

    with pytest.raises(ConfigError, match="unknown embedded model 'embedded/llama-70b'"):
        make_lm("embedded/llama-70b")
