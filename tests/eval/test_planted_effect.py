"""The harness proves it can see a change and can see no change (issue 20's must-show), with real training:
TRL DPO (through ``hegelion train``'s ``train_model``) on synthetic pairs whose chosen side ends with one fixed
sentence. A tiny Llama built in tmp_path stands in for the 135M model so the test takes seconds of training, not
minutes; the same code path trains the shipped model (the whole-loop test does)."""

from __future__ import annotations

import json

import pytest
from tiny_models import export_folder, preference_rows, tiny_model

from hegelion_dspy.eval.run import evaluate

pytest.importorskip("trl")


# TRL 1.x still calls transformers 5's deprecated gradient-checkpointing names (as in tests/train/test_training.py).
@pytest.mark.filterwarnings(r"ignore:`(is_)?gradient_checkpointing(_enable|_disable)?` is deprecated:FutureWarning")
@pytest.mark.slow
def test_dpo_on_a_planted_property_is_seen_and_a_model_against_itself_is_not(tmp_path):
    from hegelion_dspy.train.api import train_model
    from hegelion_dspy.train.trainer import TrainSettings

    base = tiny_model(tmp_path / "base")
    data = export_folder(tmp_path / "export", preference_rows(48), preference_rows(24, start=500))
    settings = TrainSettings(learning_rate=2e-2, batch_size=8, max_length=64, lora_r=8, lora_alpha=16, save_every=1000)
    trained = tmp_path / "trained"
    train_model(data, base=str(base), out=trained, steps=30, settings=settings, gguf=False, device="cpu")

    report = evaluate(str(trained), base=str(base), suites="preference", data=data)  # beside the model card
    accuracy = next(e for e in report["suites"]["preference"]["metrics"] if e["metric"] == "implicit-reward accuracy")
    assert accuracy["m"]["mean"] >= 0.8, accuracy
    assert accuracy["diff"]["low"] > 0 and accuracy["diff"]["significant"]
    assert (trained / "report.json").is_file() and (trained / "report.svg").is_file()
    card = json.loads((trained / "hegelion-model.json").read_text())
    assert card["evals"][-1]["base"] == str(base.resolve()) and "preference" in card["evals"][-1]["suites"]

    null = evaluate(str(base), base=str(base), suites="preference", data=data, out=tmp_path / "null")
    same = next(e for e in null["suites"]["preference"]["metrics"] if e["metric"] == "implicit-reward accuracy")
    assert same["m"]["mean"] == 0.5 and same["diff"]["low"] <= 0 <= same["diff"]["high"]
    assert same["diff"]["verdict"] == "no significant difference"
