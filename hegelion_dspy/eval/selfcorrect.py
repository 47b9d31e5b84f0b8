"""The ``selfcorrect`` suite: does the dialectic correct the model's first answer? (the protocol's first claim,
measured with SCoRe's metrics, arXiv 2409.12917).

Items whose answer code can check are generated from ``--seed``: multi-step arithmetic word problems, date
arithmetic and unit arithmetic. Each goes through the real dialectic (``collect.run.run_dialectic``, one round) with
M and with M0: t1 is the first thesis, t2 the final synthesis. Reported per model: accuracy at t1 and t2, Δ = t2 − t1,
and the fractions of all items that went wrong→right and right→wrong. Intrinsic self-correction can make answers
worse (Huang et al., arXiv 2310.01798); the suite reports what it measures. A reply is read by its last number (or
last YYYY-MM-DD date for date items, leaving out dates the question itself gives: a reply that ends by quoting the
start date has not answered); a failed dialectic counts as wrong at both steps and is counted.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from collections.abc import Callable, Sequence
from typing import TypedDict

from .context import EvalContext
from .metrics import Summary, metric
from .stats import mcnemar_exact

SELFCORRECT = "selfcorrect"
SELFCORRECT_DEFAULT_N = 30
_NUMBER_RE = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_DATE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
SUFFIX = " End your answer with the final number."


def _arithmetic(rng: random.Random) -> tuple[str, str, str]:
    start, sold, boxes, per_box, broken = (
        rng.randint(20, 90),
        rng.randint(3, 19),
        rng.randint(2, 6),
        rng.randint(4, 12),
        rng.randint(1, 5),
    )
    answer = start - sold + boxes * per_box - broken
    question = (
        f"A shop has {start} apples. It sells {sold} in the morning, then receives {boxes} boxes of "
        f"{per_box} apples each, and throws away {broken} bruised apples. How many apples does it have now?"
    )
    return question + SUFFIX, str(answer), "number"


def _date(rng: random.Random) -> tuple[str, str, str]:
    start = dt.date(2020, 1, 1) + dt.timedelta(days=rng.randint(0, 2000))
    days = rng.randint(10, 400)
    answer = start + dt.timedelta(days=days)
    question = (
        f"What is the date {days} days after {start.isoformat()}? Give the date as YYYY-MM-DD at the end of "
        "your answer."
    )
    return question, answer.isoformat(), "date"


def _units(rng: random.Random) -> tuple[str, str, str]:
    speed, hours, minutes, speed2 = (
        rng.choice([40, 50, 60, 72, 80]),
        rng.randint(1, 4),
        rng.choice([15, 30, 45]),
        rng.choice([20, 30, 60]),
    )
    answer = speed * hours + speed2 * minutes / 60
    question = (
        f"A car drives {hours} hours at {speed} km/h and then {minutes} minutes at {speed2} km/h. How many "
        "kilometres does it drive in total?"
    )
    return question + SUFFIX, f"{answer:g}", "number"


_MAKERS: tuple[Callable[[random.Random], tuple[str, str, str]], ...] = (_arithmetic, _date, _units)


class CheckableItem(TypedDict):
    """One generated item: a question whose answer ``extract`` can read and compare."""

    id: str
    kind: str
    question: str
    answer: str
    answer_type: str


def generate_items(seed: int, n: int) -> list[CheckableItem]:
    """``n`` checkable items from ``seed`` (the three kinds in turn); the same seed gives the same items."""
    rng = random.Random(seed)
    out: list[CheckableItem] = []
    for i in range(n):
        maker = _MAKERS[i % len(_MAKERS)]
        question, answer, kind = maker(rng)
        out.append(
            {
                "id": f"{seed}-{i}",
                "kind": maker.__name__.strip("_"),
                "question": question,
                "answer": answer,
                "answer_type": kind,
            }
        )
    return out


def extract(text: str, answer_type: str, question: str = "") -> str | None:
    """The last date (YYYY-MM-DD) or number in ``text``, normalised (None when there is none). For dates, one that
    ``question`` itself gives is not an answer and is skipped."""
    if answer_type == "date":
        given = {"-".join(d) for d in _DATE.findall(question)}
        found = [d for d in ("-".join(d) for d in _DATE.findall(text)) if d not in given]
        return found[-1] if found else None
    numbers = _NUMBER_RE.findall(text)
    if not numbers:
        return None
    try:
        return f"{float(numbers[-1].replace(',', '')):g}"
    except ValueError:
        return None


def is_correct(text: str, item: CheckableItem) -> bool:
    got = extract(text, item["answer_type"], item["question"])
    return got is not None and got == item["answer"]


def items(ctx: EvalContext) -> list[CheckableItem]:
    return [
        item
        for item in generate_items(ctx.seed, ctx.n or SELFCORRECT_DEFAULT_N)
        if ctx.held_out(SELFCORRECT, item["question"])
    ]


def prepare(ctx: EvalContext) -> None:
    for side, _ in ctx.sides():
        ctx.lm(side, SELFCORRECT)


class DialecticOutcome(TypedDict):
    """One side's dialectic on an item: its status and model, the first thesis t1 and final synthesis t2, checked."""

    status: str
    model: str | None
    demo: bool
    t1: str
    t2: str
    t1_correct: bool
    t2_correct: bool


SelfCorrectResult = dict[str, DialecticOutcome]  # by side: m, and m0 when there is a base


def run_item(ctx: EvalContext, item: CheckableItem) -> SelfCorrectResult:
    from ..collect.run import run_dialectic

    result: SelfCorrectResult = {}
    for side, _ in ctx.sides():
        trace = run_dialectic(item["question"], lm=ctx.lm(side, SELFCORRECT), iterations=1, tags=["eval", SELFCORRECT])
        t1 = trace.rounds[0].thesis if trace.rounds else ""
        t2 = trace.synthesis if trace.status == "ok" else ""
        result[side] = {
            "status": trace.status,
            "model": trace.model,
            "demo": trace.demo,
            "t1": t1[:2000],
            "t2": t2[:2000],
            "t1_correct": is_correct(t1, item),
            "t2_correct": trace.status == "ok" and is_correct(t2, item),
        }
    return result


def summarise(ctx: EvalContext, results: Sequence[SelfCorrectResult]) -> Summary:
    has_base = ctx.base is not None
    sides = ["m", "m0"] if has_base else ["m"]
    values: dict[str, dict[str, list[float]]] = {}
    counts: dict[str, int | float] = {"items": len(results)}
    for side in sides:
        c1 = [float(r[side]["t1_correct"]) for r in results]
        c2 = [float(r[side]["t2_correct"]) for r in results]
        values[side] = {
            "accuracy t1 (first thesis)": c1,
            "accuracy t2 (final synthesis)": c2,
            "Δ(t1, t2) = t2 − t1": [b - a for a, b in zip(c1, c2, strict=True)],
            "wrong → right": [float(a == 0 and b == 1) for a, b in zip(c1, c2, strict=True)],
            "right → wrong": [float(a == 1 and b == 0) for a, b in zip(c1, c2, strict=True)],
        }
        ups, downs = int(sum(values[side]["wrong → right"])), int(sum(values[side]["right → wrong"]))
        label = "M" if side == "m" else "M0"
        counts[f"{label} failed dialectics"] = sum(r[side]["status"] != "ok" for r in results)
        counts[f"{label} McNemar p, t2 vs t1"] = round(mcnemar_exact(ups, downs), 4)
    metrics = [
        metric(
            name,
            values["m"][name],
            values["m0"][name] if has_base else None,
            seed=ctx.seed,
            null=0.0 if (not has_base and name.startswith("Δ")) else None,
            about="fraction of all items" if "→" in name else "",
        )
        for name in values["m"]
    ]
    return {"metrics": metrics, "counts": counts}
