"""Phase 3 end to end, offline: agent-written traces -> hegelion dataset (the CLI) -> examples/train_*.py -> a model.

The model is a tiny randomly initialised Llama built from a config, with a BPE tokenizer trained on the traces
(examples/tiny_model.py): nothing is downloaded. Each test runs the real training script for 2 optimizer steps on
the CPU and checks what it saved: a finite loss at every logged step, weights that moved, a model that loads back.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from training_support import (
    EXAMPLES,
    ROOT,
    TASKS,
    example,
    export,
    read_rows,
    run_hegelion_dataset,
    save_tiny_model,
    write_traces,
)

if importlib.util.find_spec("trl") is None:  # found without importing it: `-m "not slow"` stays quick
    pytest.skip("needs the training stack: pip install -e '.[train]'", allow_module_level=True)

# TRL 1.x still calls transformers 5's deprecated gradient-checkpointing names (model.is_gradient_checkpointing,
# gradient_checkpointing_enable/disable); the FutureWarning is theirs to fix, not ours.
TRL_CHECKPOINTING = pytest.mark.filterwarnings(
    r"ignore:`(is_)?gradient_checkpointing(_enable|_disable)?` is deprecated:FutureWarning"
)


@pytest.fixture(scope="module")
def trace_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 ok traces of 2 rounds each, written as an agent writes them, plus one failed trace."""
    return write_traces(tmp_path_factory.mktemp("traces") / "traces.jsonl")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, trace_log: Path) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny") / "model", [trace_log])


def train(script: str, data: Path, model: Path, output: Path, *extra: str) -> dict:
    """Run examples/<script>.py's main() for 2 steps on the CPU; return what it saved in trainer_state.json."""
    argv = [str(data), "--model", str(model), "--output", str(output), "--cpu", "--max-steps", "2"]
    argv += ["--batch-size", "2", "--grad-accum", "1", "--max-length", "256", "--logging-steps", "1", "--lr", "1e-3"]
    argv += ["--cache-dir", str(output.parent / "hf-datasets-cache"), *extra]
    assert example(script).main(argv) == 0
    return json.loads((output / "trainer_state.json").read_text())


def load_file(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(path)


def assert_finite_losses(state: dict, *, steps: int = 2) -> None:
    losses = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
    assert len(losses) == steps, state["log_history"]
    assert all(math.isfinite(loss) for loss in losses), losses
    assert state["global_step"] == steps


def changed_tensors(before: dict, after: dict) -> set[str]:
    assert before and before.keys() == after.keys()
    return {name for name in before if not before[name].equal(after[name])}


@pytest.mark.slow
@TRL_CHECKPOINTING
def test_dpo_rows_train_every_weight(trace_log: Path, tiny_model: Path, tmp_path: Path) -> None:
    export(trace_log, tmp_path / "dpo.jsonl", "dpo")
    rows = read_rows(tmp_path / "dpo.jsonl")
    assert len(rows) == len(TASKS)  # the failed trace is not training data
    assert all(r["chosen"].startswith("Synthesis v2") and r["rejected"].startswith("Thesis") for r in rows)

    state = train("train_dpo", tmp_path / "dpo.jsonl", tiny_model, tmp_path / "out")

    assert_finite_losses(state)
    # The first step compares the model with itself (loss ln 2); after one update it prefers the chosen answers.
    assert state["log_history"][0]["loss"] == pytest.approx(math.log(2), abs=1e-3)
    assert state["log_history"][1]["rewards/margins"] > 0
    before = load_file(tiny_model / "model.safetensors")
    after = load_file(tmp_path / "out" / "model.safetensors")
    assert changed_tensors(before, after) == set(before)  # full fine-tuning moves every tensor


@pytest.mark.slow
@TRL_CHECKPOINTING
def test_dpo_chat_rows_train_a_lora_adapter_and_merge_it(trace_log: Path, tiny_model: Path, tmp_path: Path) -> None:
    export(trace_log, tmp_path / "dpo.jsonl", "dpo-chat", "--split", "0.25", "--with-metadata")
    train_file, test_file = tmp_path / "dpo.train.jsonl", tmp_path / "dpo.test.jsonl"
    train_rows, test_rows = read_rows(train_file), read_rows(test_file)
    assert len(train_rows) + len(test_rows) == len(TASKS) and test_rows
    assert train_rows[0]["prompt"][0]["role"] == "user" and "metadata" in train_rows[0]

    state = train("train_dpo", train_file, tiny_model, tmp_path / "out", "--lora", "--merge", "--eval", str(test_file))

    assert_finite_losses(state)
    out = tmp_path / "out"
    assert not (out / "model.safetensors").exists()  # only the adapter is saved
    adapter = load_file(out / "adapter_model.safetensors")
    lora_b = {name: t for name, t in adapter.items() if "lora_B" in name}
    assert lora_b and all(t.abs().sum() > 0 for t in lora_b.values())  # B starts at zero: nonzero means trained
    assert math.isfinite(json.loads((out / "eval_results.json").read_text())["eval_loss"])
    merged = load_file(out / "merged" / "model.safetensors")
    assert changed_tensors(load_file(tiny_model / "model.safetensors"), merged)


@pytest.mark.slow
@TRL_CHECKPOINTING
@pytest.mark.parametrize("fmt", ["sft", "sft-chat", "instruction"])
def test_sft_rows_train_every_weight(trace_log: Path, tiny_model: Path, tmp_path: Path, fmt: str) -> None:
    export(trace_log, tmp_path / f"{fmt}.jsonl", fmt)
    assert len(read_rows(tmp_path / f"{fmt}.jsonl")) == len(TASKS)

    state = train("train_sft", tmp_path / f"{fmt}.jsonl", tiny_model, tmp_path / "out")

    assert_finite_losses(state)
    before = load_file(tiny_model / "model.safetensors")
    after = load_file(tmp_path / "out" / "model.safetensors")
    assert changed_tensors(before, after) == set(before)

    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "out")
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": TASKS[0]}], add_generation_prompt=True, return_dict=True, return_tensors="pt"
    )["input_ids"]
    assert model.generate(ids, max_new_tokens=3, do_sample=False).shape[1] > ids.shape[1]


def test_a_file_in_the_wrong_format_is_refused_before_loading_a_model(
    trace_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export(trace_log, tmp_path / "sft.jsonl", "sft")
    argv = [str(tmp_path / "sft.jsonl"), "--model", str(tmp_path / "no-such-model"), "--output", str(tmp_path / "out")]

    assert example("train_dpo").main([*argv, "--cache-dir", str(tmp_path / "cache")]) == 2

    err = capsys.readouterr().err
    assert "['completion', 'prompt']" in err and "--format dpo" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "no such file"), ("\n", "no rows"), ('{"prompt": "a", "completion": "b"}\nnot json\n', "not rows")],
    ids=["missing", "empty", "not-jsonl"],
)
def test_an_unusable_file_is_reported_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, message: str
) -> None:
    data = tmp_path / "rows.jsonl"
    if content is not None:
        data.write_text(content)
    argv = [str(data), "--output", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")]

    assert example("train_sft").main(argv) == 2

    err = capsys.readouterr().err
    assert "rows.jsonl" in err and message in err, err


def test_a_model_that_cannot_be_loaded_offline_is_one_line_and_exit_2(trace_log: Path, tmp_path: Path) -> None:
    # The README's phase-3 command on a machine that has never downloaded the model and cannot reach the Hub.
    export(trace_log, tmp_path / "dpo.jsonl", "dpo-chat")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    done = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "train_dpo.py"),
            str(tmp_path / "dpo.jsonl"),
            "--output",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )

    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    line = done.stderr.strip().splitlines()[-1]  # above it only the datasets progress bars of reading the file
    assert line.startswith("error: cannot load the model 'HuggingFaceTB/SmolLM2-135M-Instruct' offline")
    assert "hf download HuggingFaceTB/SmolLM2-135M-Instruct" in line and "examples/tiny_model.py" in line
    assert not (tmp_path / "out").exists()


def test_a_missing_model_folder_is_named() -> None:
    message = example("train_common").model_load_message("./out/tiny", OSError("not found"))
    assert message.startswith("cannot load the model './out/tiny': no such model folder")


@TRL_CHECKPOINTING
def test_the_documented_dry_run_trains_offline(
    trace_log: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The phase-2 split export, then docs/training.md's dry-run lines (the README's phase 3 is now `hegelion train`),
    # run as written in a folder with the log.
    block = (ROOT / "docs" / "training.md").read_text(encoding="utf-8").split("**3. Dry run, offline.**")[1]
    block = block.split("```bash")[1].split("```")[0]
    dry_run = [shlex.split(line.split("#")[0]) for line in block.splitlines() if "out/tiny" in line]
    assert [argv[:2] for argv in dry_run] == [
        ["python", "examples/tiny_model.py"],
        ["python", "examples/train_dpo.py"],
    ]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    shutil.copy(trace_log, tmp_path / "data" / "traces.jsonl")
    run_hegelion_dataset(["data/traces.jsonl", "data/dpo.jsonl", "--format", "dpo-chat", "--split", "0.1"])

    for _, script, *args in dry_run:
        if script.endswith("train_dpo.py"):
            args += ["--cache-dir", str(tmp_path / "datasets-cache")]  # not the developer's ~/.cache
        assert example(Path(script).stem).main(args) == 0

    state = json.loads((tmp_path / "out" / "dry-run" / "trainer_state.json").read_text())
    assert state["global_step"] == 2
