"""The whole loop as a user runs it, offline on CPU from installed packages only (issue 20's must-show): a dozen
dialectics with the embedded model -> export --card --split -> hegelion train --base embedded (LoRA) -> model.gguf ->
one dialectic with --model gguf:.../model.gguf (an ok trace naming the trained model, marked demo) -> hegelion eval of
it against the base with preference and selfcorrect on a few items."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("trl")

PROMPTS = [
    "Why is the sky blue?", "Is coffee good for you?", "Should cities ban cars?", "What causes inflation?",
    "Why do cats purr?", "Is remote work productive?", "How do vaccines work?", "Why is the sea salty?",
    "What is a black hole?", "Should homework be banned?", "Why do leaves change colour?", "Is nuclear power safe?",
]  # fmt: skip
HEGELION = [sys.executable, "-m", "hegelion_dspy.cli.main"]


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*HEGELION, *args], cwd=cwd, capture_output=True, text=True, timeout=3600)
    assert done.returncode == 0, f"{args[0]} failed ({done.returncode}): {done.stderr[-2000:]}"
    return done


@pytest.mark.filterwarnings(r"ignore:`(is_)?gradient_checkpointing(_enable|_disable)?` is deprecated:FutureWarning")
@pytest.mark.slow
@pytest.mark.timeout(2400)  # a dozen dialectics, a short training, a conversion and an eval on 2 busy cores
def test_collect_export_train_serve_and_evaluate_on_the_shipped_model(tmp_path: Path) -> None:
    (tmp_path / "prompts.txt").write_text("\n".join(PROMPTS) + "\n")
    log = tmp_path / "traces.jsonl"
    _run("run", "--prompts", "prompts.txt", "--log-file", str(log), "-j", "4", "-q", "--max-tokens", "64", cwd=tmp_path)
    assert sum(json.loads(line)["status"] == "ok" for line in log.read_text().splitlines()) >= 10
    flags = [arg for flag in ("truncated", "copy", "no_critique", "leak", "loop") for arg in ("--allow-flag", flag)]
    # 64-token steps of a 135M model trip the quality flags; the loop is under test here, not the data's quality.
    _run("dataset", str(log), "export", "--card", "--split", "0.4", "--include-demo", *flags, cwd=tmp_path)
    assert (tmp_path / "export" / "data" / "test.jsonl").is_file()
    _run(
        "train", "export", "--base", "embedded", "--out", "trained", "--steps", "2", "--max-length", "128", cwd=tmp_path
    )
    gguf = tmp_path / "trained" / "model.gguf"
    assert gguf.is_file() and (tmp_path / "trained" / "hegelion-model.json").is_file()
    _assert_trained_folder(tmp_path / "trained", tmp_path / "export")
    again = _run("train", "export", "--base", "embedded", "--out", "trained", "--steps", "2", "--max-length", "128",
                 cwd=tmp_path)  # fmt: skip
    assert "already holds this model; nothing to train" in again.stderr

    served = _run(
        "run",
        "Why is grass green?",
        "--model",
        f"gguf:{gguf}",
        "--log-file",
        "served.jsonl",
        "-q",
        "--max-tokens",
        "48",
        cwd=tmp_path,
    )
    trace = json.loads((tmp_path / "served.jsonl").read_text().splitlines()[-1])
    assert trace["status"] == "ok" and "model.gguf" in trace["model"] and trace["demo"] is True, served.stderr
    assert "hegelion.demo" in trace["model_identity"]["demo_reason"]  # lms/identity.py read the trained file's key
    assert trace["model_identity"]["name"] == "smollm2-135m-instruct DPO LoRA (trained)"  # not "Final"

    _run(
        "eval",
        "--model",
        "trained",
        "--base",
        "embedded",
        "--suite",
        "preference,selfcorrect",
        "--data",
        "export",
        "--n",
        "2",
        "--max-tokens",
        "48",
        cwd=tmp_path,
    )
    report = json.loads((tmp_path / "trained" / "report.json").read_text())
    assert report["base"] == "embedded/smollm2-135m-instruct" and report["demo"] is True
    preference = {e["metric"]: e for e in report["suites"]["preference"]["metrics"]}
    assert preference["implicit-reward accuracy"]["m"]["n"] >= 1
    assert {"low", "high", "verdict"} <= set(preference["implicit-reward accuracy"]["diff"])
    selfcorrect = report["suites"]["selfcorrect"]
    assert selfcorrect["counts"]["items"] == 2
    assert [e["metric"] for e in selfcorrect["metrics"]][:2] == [
        "accuracy t1 (first thesis)",
        "accuracy t2 (final synthesis)",
    ]
    assert all(e["m0"] is not None for e in selfcorrect["metrics"])
    card = json.loads((tmp_path / "trained" / "hegelion-model.json").read_text())
    assert {"preference", "selfcorrect"} <= set(card["evals"][-1]["suites"])
    assert (tmp_path / "trained" / "report.md").is_file() and (tmp_path / "trained" / "report.svg").is_file()


def _assert_trained_folder(out: Path, export: Path) -> None:
    """What `hegelion train --base embedded` leaves: the merged model, model.gguf marked demo, the card, the curve."""
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "model.gguf", "README.md", "loss.svg"} <= names
    assert {"hegelion-model.json", "adapter"} <= names and ".hegelion-train" not in names
    card = json.loads((out / "hegelion-model.json").read_text())
    train_split, test_split = export / "data" / "train.jsonl", export / "data" / "test.jsonl"
    assert card["base"]["kind"] == "embedded" and card["base"]["demo"] and card["demo"]
    cwd = export.parent  # the commands ran there and name the folder as given
    assert (cwd / card["data"]["source"]).resolve() == export.resolve()
    assert (cwd / card["data"]["file"]).resolve() == train_split.resolve()
    assert card["data"]["rows"] == len(train_split.read_text().splitlines())  # the test split held out
    assert test_split.read_text().strip()
    assert (card["method"], card["steps"], card["steps_done"]) == ("dpo", 2, 2)
    assert [step for step, _ in card["losses"]] == [1, 2] and all(math.isfinite(v) for _, v in card["losses"])
    assert abs(card["losses"][0][1] - math.log(2)) < 1e-3  # step 1: the model against itself
    assert card["hyperparameters"]["max_length"] == 128 and card["evals"] == []
    assert card["files"]["model.gguf"] == (out / "model.gguf").stat().st_size
    assert "- demo" in (out / "README.md").read_text() and (out / "loss.svg").read_text().startswith("<svg")

    from hegelion_dspy.lms.identity import gguf_metadata

    metadata = gguf_metadata(out / "model.gguf")
    assert metadata["hegelion.demo"] is True and metadata["hegelion.base_sha256"] == card["base"]["sha256"]
