"""hegelion train for real, run as a user runs it: an export folder -> TRL LoRA -> merged model, model.gguf, card.

Training the shipped 135M itself (a few steps, its card, model.gguf marked demo and run by llama.cpp) is checked once,
inside the whole loop (tests/eval/test_whole_loop.py), which does exactly that run. These use the tiny random model of
examples/tiny_model.py, fast enough to interrupt and resume a run, and to train SFT.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from training_support import TASKS, export, save_tiny_model, write_traces

if importlib.util.find_spec("trl") is None:
    pytest.skip("needs the training stack: pip install -e '.[train]'", allow_module_level=True)

HEGELION = Path(sys.executable).with_name("hegelion")
QUICK = ["--batch-size", "2", "--max-length", "64", "--lr", "1e-3"]


@pytest.fixture(scope="module")
def trace_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_traces(tmp_path_factory.mktemp("traces") / "traces.jsonl")


@pytest.fixture(scope="module")
def dpo_folder(tmp_path_factory: pytest.TempPathFactory, trace_log: Path) -> Path:
    folder = tmp_path_factory.mktemp("export") / "dpo"
    export(trace_log, folder, "dpo-chat", "--card", "--split", "0.25")
    return folder


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, trace_log: Path) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny") / "model", [trace_log])


def hegelion_train(*args: str, timeout: int = 1200) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run(
        [str(HEGELION), "train", *args], capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


def card_of(folder: Path) -> dict:
    return json.loads((folder / "hegelion-model.json").read_text(encoding="utf-8"))


def progress_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("hegelion: step ")]


@pytest.mark.slow
def test_ctrl_c_keeps_a_checkpoint_and_resume_finishes_the_run(
    dpo_folder: Path, tiny_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "tiny-dpo"
    args = [str(dpo_folder), "--base", str(tiny_model), "--out", str(out), "--steps", "8", "--no-gguf", *QUICK]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen(
        [str(HEGELION), "train", *args], stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if line.startswith("hegelion: step 1/8"):
            proc.send_signal(signal.SIGINT)
            break
    _, rest = proc.communicate(timeout=600)
    stderr = "".join(seen) + rest

    assert proc.returncode == 130, stderr
    assert not (out / "hegelion-model.json").exists()
    checkpoints = sorted((out / ".hegelion-train").glob("checkpoint-*"))
    assert len(checkpoints) == 1
    stopped_at = int(checkpoints[0].name.split("-")[1])
    assert 1 <= stopped_at < 8

    refused = hegelion_train(*args)
    assert refused.returncode == 2 and "pass --resume to continue it" in refused.stderr.strip().splitlines()[-1]

    resumed = hegelion_train(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    card = card_of(out)
    assert card["steps_done"] == 8 and [s for s, _ in card["losses"]] == list(range(1, 9))
    assert card["gguf"] is None and not (out / "model.gguf").exists() and not card["demo"]
    assert not (out / ".hegelion-train").exists()


@pytest.mark.slow
def test_sft_rows_train_sft_and_a_different_run_is_not_written_over(
    trace_log: Path, tiny_model: Path, tmp_path: Path
) -> None:
    export(trace_log, tmp_path / "sft.jsonl", "sft-chat")
    out = tmp_path / "tiny-sft"

    done = hegelion_train(
        str(tmp_path / "sft.jsonl"), "--base", str(tiny_model), "--out", str(out), "--steps", "2", "--no-gguf", *QUICK
    )

    assert done.returncode == 0, done.stderr
    card = card_of(out)
    assert (card["method"], card["data"]["shape"], card["data"]["rows"]) == ("sft", "sft-chat", len(TASKS))
    assert "beta" not in card["hyperparameters"]
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(out).num_parameters() > 0
    other = hegelion_train(
        str(tmp_path / "sft.jsonl"), "--base", str(tiny_model), "--out", str(out), "--steps", "3", "--no-gguf", *QUICK
    )
    assert other.returncode == 2 and "already holds a different model" in other.stderr
    assert card_of(out) == card
