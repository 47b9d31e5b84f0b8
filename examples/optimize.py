"""Optimize the dialectic from Python, end to end: collect judged traces, build a trainset from the log, compile
with a DSPy optimizer, save the program, and collect with it.

python examples/optimize.py --model scripted                          # a deterministic fake, about a second
                                                                       # (bootstrap only: the fake cannot reflect)
python examples/optimize.py --model openai/gpt-4o-mini --optimizer gepa --reflection-model openai/gpt-4o
python examples/optimize.py                                            # the embedded offline model (slow, weak)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hegelion_dspy import TraceStore, make_lm
from hegelion_dspy.collect.context import RunContext
from hegelion_dspy.collect.metric import DialecticMetric
from hegelion_dspy.collect.optimize import OptimizerSettings, optimize_program, split_examples, tasks_from_log
from hegelion_dspy.collect.run import run_dialectic
from hegelion_dspy.program import save_program

TASKS = [
    "Is a hot dog a sandwich?",
    "Should a small team write unit tests before the first release?",
    "Is it better to rent or to buy a home in a city?",
    "Should code review block a merge on style issues?",
    "Is remote work better for junior engineers?",
    "Should a library raise or return None on a missing key?",
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None, help="model string (default: $HEGELION_MODEL or the embedded model)")
    parser.add_argument("--judge-model", default=None, help="the judge's LM (default: --model)")
    parser.add_argument("--reflection-model", default=None, help="writes new instructions for mipro/gepa")
    parser.add_argument("--optimizer", default="bootstrap", choices=["bootstrap", "mipro", "gepa"])
    parser.add_argument("--out", default="data/example_optimize")
    args = parser.parse_args()

    out = Path(args.out)
    store = TraceStore(out / "traces.jsonl")
    lm = make_lm(args.model)
    judge_lm = make_lm(args.judge_model) if args.judge_model else lm
    reflection_lm = make_lm(args.reflection_model) if args.reflection_model else None

    # 1. Collect, scoring every ok trace with the judge: record.score (0..1) is what hegelion dataset --min-score reads.
    ctx = RunContext.build(lm=lm, judge=judge_lm)
    for task in TASKS:
        record = run_dialectic(task, ctx=ctx, store=store)
        print(f"{record.status} score={record.score}  {task}")

    # 2. A trainset from the log: the unique tasks of its ok traces, split into train and dev.
    train, dev = split_examples(tasks_from_log(store.path), dev_fraction=0.34, seed=0)
    print(f"\n{len(train)} training tasks, {len(dev)} dev tasks")

    # 3. Compile. The metric is the same judge: its score for BootstrapFewShot / MIPROv2, score + written feedback
    #    for GEPA. Budgets here are tiny; raise them (budget="medium", max_metric_calls=...) for real runs.
    metric = DialecticMetric(lm=judge_lm)
    result = optimize_program(
        train,
        devset=dev,
        optimizer=args.optimizer,
        lm=lm,
        reflection_lm=reflection_lm,
        metric=metric,
        settings=OptimizerSettings(
            max_demos=2,
            max_metric_calls=12 if args.optimizer == "gepa" else None,
            num_candidates=2 if args.optimizer == "mipro" else None,
        ),
    )
    print(
        f"{result.optimizer}: dev score {result.baseline} -> {result.score}; demos per step {result.demos}; "
        f"new instructions for {result.instructions_changed or 'no step'}"
    )

    # 4. Save it. hegelion-agent --program FILE and the MCP server (HEGELION_PROGRAM=FILE) load the same file.
    path = save_program(result.program, out / "program.json", info=result.info(), overwrite=True)
    print(f"saved {path}")

    # 5. Collect with the optimized program: its demos and instructions now go into every prompt.
    optimized = RunContext.build(lm=lm, program=path, judge=judge_lm)
    record = run_dialectic("Should a startup build its own authentication?", ctx=optimized, store=store)
    print(f"\nwith the optimized program: {record.status} score={record.score}\n{record.synthesis}")


if __name__ == "__main__":
    main()
