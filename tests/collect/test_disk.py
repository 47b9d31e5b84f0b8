"""Logs that cannot take the traces: refused before any LM call when read-only or nearly full; a disk that fills up
mid-run (``/dev/full``: opens for appending, fails every write with ENOSPC) loses no finished trace."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import pytest

from hegelion_dspy.collect.batch import run_batch
from hegelion_dspy.collect.context import RunContext
from hegelion_dspy.collect.run import run_dialectic
from hegelion_dspy.errors import ConfigError, LogWriteError
from hegelion_dspy.lms.scripted import ScriptedLM
from hegelion_dspy.store import TraceStore, check_writable, read_records
from hegelion_dspy.types import TraceRecord

FULL = Path("/dev/full")
READ_ONLY = Path("/sys/hegelion-test/traces.jsonl")  # sysfs: nobody, not even root, creates files there

needs_full = pytest.mark.skipif(not FULL.exists(), reason="needs /dev/full")
needs_sysfs = pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs a sysfs at /sys")


@pytest.fixture
def temp_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))  # where a fallback goes when not next to the log
    return folder


@needs_sysfs
def test_a_log_that_cannot_be_created_is_refused_before_any_lm_call() -> None:
    lm = ScriptedLM()
    with pytest.raises(ConfigError, match=r"cannot write the trace log /sys/hegelion-test/traces.jsonl: .*nothing"):
        run_dialectic("task", lm=lm, store=TraceStore(READ_ONLY))
    with pytest.raises(ConfigError, match="cannot write the trace log"):
        asyncio.run(run_batch(["a", "b"], ctx=RunContext.build(lm=lm), store=TraceStore(READ_ONLY)))
    assert lm.steps_called() == []


def test_a_nearly_full_disk_is_refused_before_any_lm_call(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"KiB free, less than the 1,048,576 MiB needed to start; nothing was"):
        check_writable(tmp_path / "log.jsonl", min_free=1 << 40)
    assert list(tmp_path.iterdir()) == []  # the check leaves nothing behind
    check_writable(tmp_path / "log.jsonl")


def test_a_folder_is_not_a_log(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a folder"):
        check_writable(tmp_path)


@needs_full
def test_a_full_disk_puts_the_trace_of_a_single_run_in_a_fallback_file(temp_folder: Path) -> None:
    with pytest.raises(LogWriteError) as caught:
        run_dialectic("task", lm=ScriptedLM(), store=TraceStore(FULL))
    error = caught.value
    assert [r.task for r in error.records] == ["task"] and error.records[0].ok
    assert error.saved_to is not None and Path(error.saved_to).parent == temp_folder  # not next to a device
    assert [r.id for r in read_records(error.saved_to)] == [error.records[0].id]
    assert str(error).startswith("cannot write the trace log /dev/full: No space left on device (ENOSPC); 1 finished")


@needs_full
def test_a_disk_that_fills_up_mid_batch_keeps_every_finished_trace(tmp_path: Path, temp_folder: Path) -> None:
    store = TraceStore(tmp_path / "log.jsonl")
    heard: list[TraceRecord] = []

    def disk_fills_after_two(record: TraceRecord) -> None:
        heard.append(record)
        if len(heard) == 2:
            store.path = FULL  # from now on every write fails with ENOSPC

    ctx = RunContext.build(lm=ScriptedLM(latency=0.002))
    tasks = [f"prompt {i}" for i in range(30)]
    result = asyncio.run(run_batch(tasks, ctx=ctx, store=store, concurrency=3, on_result=disk_fills_after_two))

    assert result.stopped == "log" and result.log_error is not None
    logged = list(read_records(tmp_path / "log.jsonl"))
    saved = list(read_records(result.log_error.saved_to or ""))
    assert len(logged) == 2 and len(saved) == result.ok - 2 >= 1  # the dialectics in flight finished, and were kept
    assert {r.id for r in logged + saved} == {r.id for r in heard}
    assert result.ok < 30  # no new dialectic started once the log failed
    assert len(result.log_error.records) == len(saved)


def test_a_fallback_goes_next_to_a_regular_log(tmp_path: Path) -> None:
    store = TraceStore(tmp_path / "log.jsonl")
    record = run_dialectic("task", lm=ScriptedLM())
    saved, why = store._save_unwritten([record])
    assert why is None and saved is not None and saved.parent == tmp_path
    assert saved.name.startswith("log.jsonl.unsaved-") and [r.id for r in read_records(saved)] == [record.id]


@needs_sysfs
def test_an_export_to_a_read_only_place_is_refused_before_reading_the_log(tmp_path: Path) -> None:
    from hegelion_dspy.curate.driver import export_dataset

    log = TraceStore(tmp_path / "log.jsonl")
    run_dialectic("task", lm=ScriptedLM(), store=log)
    with pytest.raises(ConfigError, match=r"cannot write the dataset file /sys/hegelion-test/dpo.jsonl: .*nothing"):
        export_dataset([log.path], READ_ONLY.with_name("dpo.jsonl"), include_demo=True)
