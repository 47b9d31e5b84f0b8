"""The manners flags as a user runs them: --max-cost against a priced model on a real (stub) OpenAI-compatible
server, the summary's cost and retries, hegelion dataset --stats totals, and one-line refusals."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest
from openai_stub import openai_stub

from hegelion_dspy.cli.agent import main as agent_main
from hegelion_dspy.cli.main import main as hegelion_main
from hegelion_dspy.store import TraceStore

PRICED = "openai/gpt-4o-mini"


def run(main, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as done:
        main(list(args))
    out, err = capsys.readouterr()
    return int(done.value.code or 0), out, err


@pytest.fixture(autouse=True)
def _no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # a server behind --api-base needs none


def prompts_file(tmp_path: Path, n: int) -> tuple[Path, list[str]]:
    run_id = uuid.uuid4().hex[:8]  # DSPy's request cache would answer a prompt asked before without a call
    prompts = [f"budget prompt {run_id} {i}" for i in range(n)]
    path = tmp_path / "prompts.txt"
    path.write_text("\n".join(prompts) + "\n", encoding="utf-8")
    return path, prompts


def test_max_cost_stops_the_batch_says_how_far_it_got_and_a_rerun_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prompts, tasks = prompts_file(tmp_path, 30)
    log = tmp_path / "log.jsonl"
    with openai_stub() as stub:
        common = ["--prompts", str(prompts), "-m", PRICED, "--api-base", stub.url, "--log-file", str(log), "-j", "2"]
        # each call reserves its worst case (prompt bytes + --max-tokens) while in flight: keep it small
        code, _, err = run(agent_main, *common, "--max-cost", "0.0008", "--max-tokens", "64", capsys=capsys)
        assert code == 3, err
        logged = list(TraceStore(log))
        assert 1 <= len(logged) < 30 and all(r.ok and r.cost_usd for r in logged)
        assert "stopped at --max-cost $0.0008 after spending $0.000" in err
        assert "calls were in flight, $0.000" in err
        assert f"{len(logged)} of 30 prompts done, {30 - len(logged)} not run" in err
        assert "cost $0.000" in err and "priced calls" in err

        code, _, err = run(agent_main, *common, capsys=capsys)
    assert code == 0, err
    assert f"{30 - len(logged)} ok, 0 failed, {len(logged)} skipped" in err
    assert sorted(r.task for r in TraceStore(log)) == sorted(tasks)


def test_the_summary_counts_retries_after_a_429(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prompts, _ = prompts_file(tmp_path, 2)
    with openai_stub(refusals=[(429, 0.05), (429, 0.05)]) as stub:
        code, _, err = run(
            agent_main, "--prompts", str(prompts), "-m", PRICED, "--api-base", stub.url, "--no-log", capsys=capsys
        )
    assert code == 0, err
    assert "2 ok, 0 failed" in err
    assert "2 retries (2 after a 429)" in err


def test_dataset_stats_total_the_cost_of_the_traces_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prompts, _ = prompts_file(tmp_path, 3)
    log = tmp_path / "log.jsonl"
    with openai_stub() as stub:
        code, _, err = run(
            agent_main, "--prompts", str(prompts), "-m", PRICED, "--api-base", stub.url, "--log-file", str(log),
            capsys=capsys,
        )  # fmt: skip
    assert code == 0, err
    total = sum(r.cost_usd or 0 for r in TraceStore(log))
    assert total > 0
    code, out, err = run(hegelion_main, "dataset", str(log), str(tmp_path / "dpo.jsonl"), "--stats", capsys=capsys)
    assert code == 0, err
    assert f"cost          ${total:,.4f} of LM calls (3 of 3 traces read carry a cost)" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-cost", "1", "-m", "scripted"], "max_cost needs the model's prices"),
        (["--rpm", "0", "-m", "scripted"], "--rpm"),
        (["--workers", "2", "-m", "scripted"], "--workers is for a --ray batch"),
    ],
)
def test_mistakes_with_the_manners_flags_get_one_line(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prompts, _ = prompts_file(tmp_path, 2)
    code, _, err = run(agent_main, "--prompts", str(prompts), "--no-log", *args, capsys=capsys)
    assert code == 2
    [line] = err.strip().splitlines()
    assert line.startswith("hegelion: error: ") and message in line


def test_a_single_task_refuses_batch_flags(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(agent_main, "task", "--ray", "-m", "scripted", capsys=capsys)
    assert code == 2 and "--ray is for a --prompts batch" in err


def test_ray_without_ray_says_what_to_install(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    prompts, _ = prompts_file(tmp_path, 2)
    log = tmp_path / "log.jsonl"
    code, _, err = run(
        agent_main, "--prompts", str(prompts), "--ray", "-m", "scripted", "--log-file", str(log), capsys=capsys
    )
    assert code == 2
    assert err.strip() == (
        "hegelion: error: running a batch on Ray needs Ray, which is not installed: pip install 'hegelion-dspy[ray]'"
    )
    assert not log.exists()


# -- logs that cannot take the traces ---------------------------------------------------------------------------------

needs_full = pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")


@pytest.fixture
def temp_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import tempfile

    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@needs_full
def test_a_single_run_on_a_full_disk_prints_its_answer_and_says_where_the_trace_went(
    temp_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(agent_main, "Why?", "-m", "scripted", "--log-file", "/dev/full", capsys=capsys)
    assert code == 4
    assert out.startswith("Synthesis v1:")  # the answer, paid for, is printed
    (saved,) = temp_folder.iterdir()
    assert [r.task for r in TraceStore(saved)] == ["Why?"]
    (line,) = err.strip().splitlines()
    assert line == (
        "hegelion: error: cannot write the trace log /dev/full: No space left on device (ENOSPC); 1 finished "
        f"trace saved to {saved}; once there is room, append them to the log: cat {saved} >> /dev/full"
    )


@needs_full
def test_a_batch_on_a_full_disk_keeps_every_trace_and_exits_4(
    tmp_path: Path, temp_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prompts, tasks = prompts_file(tmp_path, 6)
    code, _, err = run(
        agent_main,
        *("--prompts", str(prompts), "-m", "scripted", "--log-file", "/dev/full", "-j", "1"),
        "--no-resume",  # resuming reads the log, and /dev/full reads as endless zeros
        capsys=capsys,
    )
    assert code == 4
    (saved,) = temp_folder.iterdir()
    kept = [r.task for r in TraceStore(saved)]
    assert len(kept) >= 1 and set(kept) <= set(tasks)  # the batch stopped once the log failed
    assert err.strip().splitlines()[-1].startswith("hegelion: error: cannot write the trace log /dev/full")
    assert f"{len(kept)} finished trace" in err


@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs a sysfs at /sys")
def test_a_read_only_log_is_refused_before_anything_runs(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(agent_main, "Why?", "-m", "scripted", "--log-file", "/sys/hegelion/t.jsonl", capsys=capsys)
    assert code == 2 and out == ""
    assert "cannot write the trace log /sys/hegelion/t.jsonl" in err and "nothing was run" in err
    assert "--log-file" in err


def test_timeout_retries_a_hung_call_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from faulty_server import DROP, HANG, faulty_server

    prompts, _ = prompts_file(tmp_path, 2)
    with faulty_server([HANG, DROP]) as server:
        code, _, err = run(
            agent_main,
            *("--prompts", str(prompts), "-m", PRICED, "--api-base", server.url, "--no-log", "-j", "1"),
            *("--timeout", "0.5"),
            capsys=capsys,
        )
    assert code == 0, err
    assert "2 ok, 0 failed" in err and server.kinds["hang"] == 1
    assert "2 retries (0 after a 429, 1 timed out, 1 cut off)" in err
