"""The ``preference`` suite: on the held-out (test) split of an export folder, does M prefer the chosen side?

With a base M0 it is DPO's implicit reward: M's log-ratio ``log π(y|x) − log π₀(y|x)`` of chosen against rejected.
Accuracy is how often the chosen side's log-ratio is higher (ties count half: M0 scored against itself ties on every
item, 0.5), the mean margin (in nats; DPO's reward is β times it), the same per token (each log-ratio divided by its
completion's token count), and the accuracy within length buckets (chosen much shorter / similar / much longer than
rejected), so a model that only learned "longer wins" shows. Without a base it is M's own preference: the per-token
log-probability of chosen against rejected (reported for M0 too when there is one).

The pairs are not independent: one held-out trace gives a pair per rejected side (``--rejected both``: two pairs on
one prompt). Each item carries its prompt's digest as ``group`` and the intervals resample prompts, not pairs (the
cluster bootstrap in ``stats``), so two pairs of one trace do not count as two pieces of evidence.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, TypedDict

from ..errors import EvalError
from ..types import JSONObject
from .context import M0, EvalContext, M, Side
from .heldout import read_rows, row_prompt
from .logprob import completion_text, prompt_of
from .metrics import MetricEntry, Summary, metric
from .stats import tie_aware_accuracy

PREFERENCE = "preference"
TIE_TOL = 1e-6  # nats: float32 sums of the same tokens under the same weights agree far closer than this
BUCKETS = (("chosen shorter", 0.0, 0.8), ("similar length", 0.8, 1.25), ("chosen longer", 1.25, float("inf")))
SPLIT_HINT = "make one with: hegelion dataset LOG FOLDER --card --split 0.2 (the test split is never trained on)"


def test_split(data: Path | None) -> Path:
    if data is None:
        raise EvalError(
            f"the {PREFERENCE} suite scores the held-out split of an export folder: pass --data FOLDER; {SPLIT_HINT}"
        )
    path = data / "data" / "test.jsonl" if data.is_dir() else data
    if not path.is_file() or (data.is_file() and not data.name.endswith("test.jsonl")):
        raise EvalError(f"{data} has no test split (no data/test.jsonl); {SPLIT_HINT}")
    return path


class PreferenceItem(TypedDict):
    """One row of the test split, with its id (line and a digest of prompt and chosen) and its prompt's group."""

    id: str
    row: JSONObject  # a DPO row (dpo or dpo-chat): prompt, chosen, rejected
    group: str


class SideScores(TypedDict):
    """One side's (M's or M0's) log-probabilities of chosen and rejected, and their token counts."""

    chosen: float
    chosen_tokens: int
    rejected: float
    rejected_tokens: int


class PreferenceResult(TypedDict, total=False):
    """One pair's scores by side (M, and M0 when there is a base) and its prompt's group: the pairs of one prompt
    are resampled together (a result written before groups has none)."""

    group: str
    m: SideScores
    m0: SideScores


Which = Literal["chosen", "rejected"]
_TOKENS: dict[Which, Literal["chosen_tokens", "rejected_tokens"]] = {
    "chosen": "chosen_tokens",
    "rejected": "rejected_tokens",
}


def items(ctx: EvalContext) -> list[PreferenceItem]:
    path = test_split(ctx.data)
    out: list[PreferenceItem] = []
    for lineno, row in enumerate(read_rows(path), 1):
        if not all(key in row for key in ("prompt", "chosen", "rejected")):
            raise EvalError(
                f"{path}:{lineno}: not a preference row (needs prompt, chosen, rejected); export with "
                "--format dpo or dpo-chat"
            )
        prompt = row_prompt(row) or ""
        digest = hashlib.sha256(f"{prompt}\0{completion_text(row['chosen'])}".encode()).hexdigest()[:12]
        group = hashlib.sha256(prompt.encode()).hexdigest()[:12]
        if ctx.held_out(PREFERENCE, prompt):
            out.append({"id": f"{lineno}-{digest}", "row": row, "group": group})
    if ctx.n is not None and ctx.n < len(out):
        out = sorted(random.Random(ctx.seed).sample(out, ctx.n), key=lambda item: int(item["id"].split("-")[0]))
    return out


def prepare(ctx: EvalContext) -> None:
    ctx.load_scorers(PREFERENCE)


def run_item(ctx: EvalContext, item: PreferenceItem) -> PreferenceResult:
    row = item["row"]
    chosen, rejected = completion_text(row["chosen"]), completion_text(row["rejected"])
    prompt = prompt_of(row["prompt"])
    result: PreferenceResult = {"group": item["group"]}
    for side, _ in ctx.sides():
        scorer = ctx.scorer(side, PREFERENCE)
        lp_c, n_c = scorer.logprob(prompt, chosen)
        lp_r, n_r = scorer.logprob(prompt, rejected)
        result[side] = {"chosen": lp_c, "chosen_tokens": n_c, "rejected": lp_r, "rejected_tokens": n_r}
    return result


def _per_token(side: SideScores, which: Which) -> float:
    return side[which] / max(1, side[_TOKENS[which]])


def _own_preference(results: Sequence[PreferenceResult], side: Side) -> list[float]:
    margins = [_per_token(r[side], "chosen") - _per_token(r[side], "rejected") for r in results]
    return tie_aware_accuracy(margins, tol=TIE_TOL)[0]


def _groups(results: Sequence[PreferenceResult]) -> list[str] | None:
    """Each result's prompt group (None when a resumed log predates groups: the items are then taken as independent)."""
    groups = [r.get("group") for r in results]
    return None if any(g is None for g in groups) else [str(g) for g in groups]


def summarise(ctx: EvalContext, results: Sequence[PreferenceResult]) -> Summary:
    seed = ctx.seed
    metrics: list[MetricEntry] = []
    groups = _groups(results)
    counts: dict[str, int | float] = {"items": len(results), "prompts": len(set(groups)) if groups else len(results)}
    if ctx.base is not None and results:
        metrics += _implicit_reward(results, seed, counts, groups)
    own_m0 = _own_preference(results, M0) if ctx.base is not None else None
    metrics.append(
        metric(
            "own preference accuracy (per-token log-prob, chosen > rejected)",
            _own_preference(results, M),
            own_m0,
            seed=seed,
            null=None if own_m0 is not None else 0.5,
            about="the model alone: mean log-probability per token of chosen vs rejected; 0.5 is chance",
            groups=groups,
        )
    )
    return {"metrics": metrics, "counts": counts}


def _implicit_reward(
    results: Sequence[PreferenceResult], seed: int, counts: dict[str, int | float], groups: list[str] | None
) -> list[MetricEntry]:
    def log_ratio(r: PreferenceResult, which: Which, per_token: bool) -> float:
        delta = r[M][which] - r[M0][which]
        return delta / max(1, r[M][_TOKENS[which]]) if per_token else delta

    margins = [log_ratio(r, "chosen", False) - log_ratio(r, "rejected", False) for r in results]
    token_margins = [log_ratio(r, "chosen", True) - log_ratio(r, "rejected", True) for r in results]
    scores, ties = tie_aware_accuracy(margins, tol=TIE_TOL)
    token_scores, _ = tie_aware_accuracy(token_margins, tol=TIE_TOL)
    counts["ties"] = ties
    about = "M0 against itself ties on every item (0.5); the difference is M − 0.5"
    out = [
        metric("implicit-reward accuracy", scores, seed=seed, null=0.5, about=about, groups=groups),
        metric(
            "mean implicit-reward margin (nats)",
            margins,
            seed=seed,
            null=0.0,
            about="log π/π₀ of chosen minus that of rejected; DPO's reward margin is β times this",
            groups=groups,
        ),
        metric("per-token implicit-reward accuracy", token_scores, seed=seed, null=0.5, about=about, groups=groups),
        metric("per-token mean margin (nats/token)", token_margins, seed=seed, null=0.0, groups=groups),
    ]
    for label, low, high in BUCKETS:
        picked = [
            i for i, r in enumerate(results) if low <= r[M]["chosen_tokens"] / max(1, r[M]["rejected_tokens"]) < high
        ]
        counts[f"bucket: {label}"] = len(picked)
        out.append(
            metric(
                f"implicit-reward accuracy, {label}",
                [scores[i] for i in picked],
                seed=seed,
                null=0.5,
                about="length-matched bucket by token ratio chosen/rejected",
                groups=[groups[i] for i in picked] if groups else None,
            )
        )
    return out
