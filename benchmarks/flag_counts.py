"""How many traces each quality flag catches, and how many pairs remain: on dialectics of a hosted-shaped scripted LM
(planted junk, so what is caught can be checked against what was planted) and on any logs given (e.g. 50 embedded
dialectics: ``hegelion --prompts P -j 1 --log-file embedded.jsonl``).

    python benchmarks/flag_counts.py [--dialectics 50] [LOG ...]

The scripted LM answers like a hosted model (several sentences that use the task's words, contradictions with
evidence) and plants one kind of junk in some dialectics, chosen by the task's number: a synthesis copying its
antithesis, an antithesis that only praises, adapter instructions echoed in the synthesis, a synthesis that loops, a
synthesis stopped at the token cap. Both runs are exported with ``include_demo`` (the scripted LM and the embedded
model are demo models) and the report's per-flag counts are printed.
"""

from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path
from typing import Any

from hegelion_dspy.collect.run import run_dialectic
from hegelion_dspy.curate.driver import export_dataset
from hegelion_dspy.lms.base import ChatMessages, Completion
from hegelion_dspy.lms.scripted import ScriptedLM
from hegelion_dspy.quality import FLAGS
from hegelion_dspy.store import TraceStore

TOPICS = (
    "caching a slow database query",
    "renting or buying a home",
    "teaching recursion to children",
    "banning cars from city centres",
    "storing passwords safely",
    "choosing a message queue",
    "a four-day work week",
    "reviewing pull requests",
    "regulating social media",
    "writing clear commit messages",
)
# task number % PLANT_EVERY -> the junk planted in that dialectic (the others are clean)
PLANTS = {1: "copy", 3: "no_critique", 5: "leak", 7: "loop", 9: "truncated"}
PLANT_EVERY = 10


def kind_of(task: str) -> str:
    number = int(task.split(":", 1)[0].removeprefix("Task "))
    return PLANTS.get(number % PLANT_EVERY, "clean")


def hosted_answer(step: str, inputs: dict[str, str]) -> dict[str, Any]:
    task = inputs.get("task", "")
    topic = task.split(": ", 1)[-1]
    kind = kind_of(task)
    if step == "thesis":
        return {
            "thesis": f"On {topic}, the simplest answer is usually right: do the obvious thing first, measure it, "
            f"and only add machinery when the numbers demand it. For {topic} that means starting small."
        }
    if step == "antithesis":
        if kind == "no_critique":
            return {
                "antithesis": "This is an excellent answer. I agree with every point; it is clear.",
                "contradictions": [],
            }
        return {
            "antithesis": f"The thesis treats {topic} as if one size fitted all. It ignores the cost of being wrong "
            "early, gives no numbers to measure, and never says when to stop starting small.",
            "contradictions": [
                {"description": "No measure is named.", "evidence": f"Nothing says what to measure for {topic}."},
                {"description": "The cost of a wrong first step is ignored.", "evidence": "Migrations are costly."},
            ],
        }
    if kind == "copy":
        return {"synthesis": inputs.get("antithesis", "")}
    text = (
        f"For {topic}, start with the simplest option, but name the measure that decides (cost, latency or harm), "
        "set a threshold in advance, and plan the next step before the first one fails."
    )
    if kind == "leak":
        text += " Respond with the corresponding output fields, starting with the field `synthesis`."
    if kind == "loop":
        text += " " + " ".join(["and then measure it again to be sure it holds"] * 5)
    return {"synthesis": text}


class HostedShaped(ScriptedLM):
    """The scripted LM with hosted-shaped answers; a planted 'truncated' dialectic's synthesis stops at the cap."""

    def _reply(self, messages: ChatMessages) -> Completion:
        completion = super()._reply(messages)
        step = self.steps_called()[-1]
        task = re.search(r"\[\[ ## task ## \]\]\n(.*)", messages[-1]["content"])
        if step == "synthesis" and task is not None and kind_of(task.group(1)) == "truncated":
            completion.truncated = True
        return completion


def report_line(name: str, log: Path, out: Path) -> None:
    report = export_dataset(log, out, include_demo=True, force=True)
    caught = ", ".join(f"{flag} {report.flagged.get(flag, 0)}" for flag in FLAGS)
    left_out = sum(report.dropped.get(flag, 0) for flag in FLAGS)
    print(
        f"{name}: {report.traces_read} traces read; flags caught (traces): {caught}; pairs left out by flags "
        f"{left_out}; pairs remaining {report.rows_written} (dropped otherwise: "
        f"{ {k: v for k, v in report.dropped.items() if v and k not in FLAGS} })"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dialectics", type=int, default=50)
    parser.add_argument("logs", nargs="*", type=Path, help="other trace logs to count (e.g. embedded dialectics)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hegelion-flags-") as tmp:
        folder = Path(tmp)
        store = TraceStore(folder / "hosted.jsonl")
        lm = HostedShaped(answer=hosted_answer, model="hosted-shaped/scripted")
        planted: dict[str, int] = {}
        for n in range(args.dialectics):
            task = f"Task {n}: {TOPICS[n % len(TOPICS)]}"
            planted[kind_of(task)] = planted.get(kind_of(task), 0) + 1
            run_dialectic(task, lm=lm, store=store)
        if args.dialectics:
            print(f"hosted-shaped scripted LM: {args.dialectics} dialectics, planted {planted}")
            report_line("hosted-shaped scripted LM", store.path, folder / "hosted.dpo.jsonl")
        for log in args.logs:
            report_line(str(log), log, folder / f"{log.stem}.dpo.jsonl")


if __name__ == "__main__":
    main()
