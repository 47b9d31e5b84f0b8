"""hegelion train for real, run as a user runs it: an export folder -> TRL LoRA -> merged model, model.gguf, card.

The embedded-model test is the one the issue asks for (the shipped 135M, a few steps, a short max length; the GGUF
loads in llama.cpp and answers, marked demo). The others use the tiny random model of examples/tiny_model.py, fast
enough to interrupt and resume a run, and to train SFT.
"""

from __future__ import annotations

import importlib.util
import json
import math
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
def test_dpo_on_the_embedded_model_writes_a_gguf_that_llama_cpp_runs_as_demo(dpo_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "dpo-135m"

    done = hegelion_train(str(dpo_folder), "--base", "embedded", "--out", str(out), "--steps", "2", *QUICK)

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out / "model.gguf")
    assert len(progress_lines(done.stderr)) == 2 and "loss" in progress_lines(done.stderr)[0]
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "model.gguf", "README.md", "loss.svg"} <= names
    assert {"hegelion-model.json", "adapter"} <= names and ".hegelion-train" not in names
    card = card_of(out)
    train_split = dpo_folder / "data" / "train.jsonl"
    assert card["base"]["kind"] == "embedded" and card["base"]["demo"] and card["demo"]
    assert card["data"]["source"] == str(dpo_folder) and card["data"]["file"] == str(train_split)
    assert card["data"]["rows"] == len(train_split.read_text().splitlines()) < len(TASKS)  # the test split held out
    assert (card["method"], card["steps"], card["steps_done"]) == ("dpo", 2, 2)
    assert [step for step, _ in card["losses"]] == [1, 2] and all(math.isfinite(v) for _, v in card["losses"])
    assert card["losses"][0][1] == pytest.approx(math.log(2), abs=1e-3)  # step 1: the model against itself
    assert card["hyperparameters"]["max_length"] == 64 and card["evals"] == []
    assert card["files"]["model.gguf"] == (out / "model.gguf").stat().st_size
    assert "- demo" in (out / "README.md").read_text() and (out / "loss.svg").read_text().startswith("<svg")

    from hegelion_dspy.lms.identity import gguf_metadata
    from hegelion_dspy.lms.llamacpp import runtime_for

    metadata = gguf_metadata(out / "model.gguf")
    assert metadata["hegelion.demo"] is True and metadata["hegelion.base_sha256"] == card["base"]["sha256"]
    runtime = runtime_for(out / "model.gguf", threads=1)
    reply = runtime.chat([{"role": "user", "content": "What is the capital of France?"}], max_tokens=16)
    assert reply.text.strip() and reply.completion_tokens

    # hegelion run on the trained file: lms/identity.py reads hegelion.demo, so its trace is demo
    log = tmp_path / "traces.jsonl"
    question = ["run", "What is 2+2?", "--model", f"gguf:{out / 'model.gguf'}", "--max-tokens", "16"]
    run = subprocess.run(
        [str(HEGELION), *question, "--log-file", str(log)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    [trace] = [json.loads(line) for line in log.read_text().splitlines()]
    assert trace["status"] == "ok" and trace["model"] == f"gguf:{out / 'model.gguf'}" and trace["demo"] is True
    assert "hegelion.demo" in trace["model_identity"]["demo_reason"]

    again = hegelion_train(str(dpo_folder), "--base", "embedded", "--out", str(out), "--steps", "2", *QUICK)
    assert again.returncode == 0 and "already holds this model; nothing to train" in again.stderr


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
