"""The preference suite as a measuring instrument, on tiny models built in tmp_path: it sees a planted preference,
sees none when a model is scored against itself, refuses bad input with one line and exit 2, and resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tiny_models import export_folder, plant_preference, preference_rows, tiny_model

from hegelion_dspy.cli.main import main
from hegelion_dspy.errors import EvalError
from hegelion_dspy.eval.run import evaluate

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    base = tiny_model(root / "base")
    planted = plant_preference(base, root / "planted", "thanks")
    other = tiny_model(root / "other", seed=1, words=["completely", "different", "words"])
    return {"base": base, "planted": planted, "other": other}


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return export_folder(tmp_path / "export", preference_rows(20), preference_rows(24, start=100))


def _metric(report: dict, suite: str, name: str) -> dict:
    return next(e for e in report["suites"][suite]["metrics"] if e["metric"] == name)


def test_a_planted_preference_is_seen_with_an_interval_excluding_zero(models, data, tmp_path):
    report = evaluate(
        str(models["planted"]), base=str(models["base"]), suites="preference", data=data, out=tmp_path / "out"
    )
    accuracy = _metric(report, "preference", "implicit-reward accuracy")
    assert accuracy["m"]["n"] == 24 and accuracy["m"]["mean"] > 0.9
    assert accuracy["diff"]["low"] > 0 and accuracy["diff"]["significant"]
    margin = _metric(report, "preference", "mean implicit-reward margin (nats)")
    assert margin["m"]["low"] > 0
    buckets = [
        e for e in report["suites"]["preference"]["metrics"] if e["metric"].startswith("implicit-reward accuracy,")
    ]
    assert sum(e["m"]["n"] for e in buckets) == 24
    for name in ("report.json", "report.md", "report.svg", "items.jsonl", "eval.json"):
        assert (tmp_path / "out" / name).is_file()
    assert json.loads((tmp_path / "out" / "report.json").read_text())["suites"]["preference"]["counts"]["items"] == 24
    assert "<svg" in (tmp_path / "out" / "report.svg").read_text()


def test_a_model_against_itself_ties_everywhere_and_shows_no_significant_difference(models, data, tmp_path):
    report = evaluate(str(models["base"]), base=str(models["base"]), suites="preference", data=data, out=tmp_path / "o")
    accuracy = _metric(report, "preference", "implicit-reward accuracy")
    assert accuracy["m"]["mean"] == 0.5  # every margin exactly 0, counted as half
    assert report["suites"]["preference"]["counts"]["ties"] == 24
    assert accuracy["diff"]["low"] <= 0 <= accuracy["diff"]["high"]
    assert accuracy["diff"]["verdict"] == "no significant difference"
    own = _metric(report, "preference", "own preference accuracy (per-token log-prob, chosen > rejected)")
    assert own["diff"]["mean"] == 0.0 and not own["diff"]["significant"]
    assert "no significant difference" in (tmp_path / "o" / "report.md").read_text()


def test_without_a_base_it_reports_the_models_own_preference(models, data, tmp_path):
    report = evaluate(str(models["planted"]), suites="preference", data=data, out=tmp_path / "o", n=10, seed=3)
    (entry,) = report["suites"]["preference"]["metrics"]
    assert entry["m"]["n"] == 10 and entry["m0"] is None and entry["diff"]["against"] == 0.5


def test_items_in_the_training_data_are_refused_and_counted(models, tmp_path):
    rows = preference_rows(6, start=100)
    leaked = [{**rows[0], "prompt": "  " + rows[0]["prompt"].upper() + " "}, {**rows[1]}]  # re-cased, re-spaced
    folder = export_folder(tmp_path / "leaky", leaked, rows)
    report = evaluate(str(models["base"]), suites="preference", data=folder, out=tmp_path / "o")
    counts = report["suites"]["preference"]["counts"]
    assert counts["items"] == 4 and counts["refused (in the training data)"] == 2


def test_a_rerun_resumes_from_the_appended_items(models, data, tmp_path):
    out = tmp_path / "o"
    evaluate(str(models["base"]), suites="preference", data=data, out=out, n=5)
    lines = (out / "items.jsonl").read_text().splitlines()
    (out / "items.jsonl").write_text("\n".join(lines[:3]) + "\n" + lines[3][:20])  # interrupted: a torn last line
    report = evaluate(str(models["base"]), suites="preference", data=data, out=out, n=5)
    assert report["suites"]["preference"]["counts"]["items"] == 5
    records = [
        json.loads(x) for x in (out / "items.jsonl").read_text().splitlines() if x.startswith("{") and x.endswith("}")
    ]
    assert len({r["id"] for r in records}) == 5 and len(records) == 5


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("no-test-split", "no test split"),
        ("tokenizers", "different tokenizers"),
        ("suite", "unknown suite 'nope'"),
        ("out-model", "holds a different model"),
        ("out-setup", "holds an evaluation of a different setup"),
    ],
)
def test_bad_input_is_one_line_and_exit_2_with_nothing_written(models, data, tmp_path, capsys, case, expected):
    out = tmp_path / "out"
    args = [
        "eval",
        "--model",
        str(models["planted"]),
        "--base",
        str(models["base"]),
        "--suite",
        "preference",
        "--data",
        str(data),
        "--out",
        str(out),
    ]
    if case == "no-test-split":
        args[args.index("--data") + 1] = str(export_folder(tmp_path / "nosplit", preference_rows(3), None))
    elif case == "tokenizers":
        args[args.index("--base") + 1] = str(models["other"])
    elif case == "suite":
        args[args.index("--suite") + 1] = "preference,nope"
    elif case == "out-model":
        out.mkdir()
        (out / "hegelion-model.json").write_text('{"schema_version": 1}')
    elif case == "out-setup":
        evaluate(str(models["base"]), suites="preference", data=data, out=out, n=1)
    before = sorted(p.name for p in out.iterdir()) if out.exists() else None
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0] and err[0].startswith("hegelion: error:")
    assert (sorted(p.name for p in out.iterdir()) if out.exists() else None) == before
    if case == "no-test-split":
        assert "--split" in err[0]


def test_the_library_raises_eval_error_for_a_folder_that_is_no_model(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(EvalError, match="neither a Hugging Face model folder"):
        evaluate(str(tmp_path / "empty"), suites="preference", out=tmp_path / "o")


def test_pairs_that_share_a_prompt_are_resampled_together(models, tmp_path):
    # --rejected both: each held-out trace gives two pairs on one prompt; 8 prompts, 16 pairs.
    rows = preference_rows(8, start=100)
    both = [r for row in rows for r in (row, {**row, "rejected": row["rejected"] + " again"})]
    folder = export_folder(tmp_path / "both", preference_rows(4), both)
    report = evaluate(
        str(models["planted"]), base=str(models["base"]), suites="preference", data=folder, out=tmp_path / "o"
    )
    counts = report["suites"]["preference"]["counts"]
    assert counts["items"] == 16 and counts["prompts"] == 8
    accuracy = _metric(report, "preference", "implicit-reward accuracy")
    assert accuracy["diff"]["groups"] == 8 and accuracy["diff"]["method"] == "cluster bootstrap"
    # 16 pairs clear the 10-item minimum, but the 8 prompts behind them do not
    assert accuracy["m"]["mean"] > 0.9 and not accuracy["diff"]["significant"]
    assert accuracy["diff"]["verdict"].startswith("too few groups to tell (8 groups of 16 items")
    assert "by 8 prompts" in (tmp_path / "o" / "report.md").read_text()
