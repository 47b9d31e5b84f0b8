"""Training steps/s of `hegelion train` on the shipped SmolLM2-135M-Instruct, on CPU.

    nice -n 15 python benchmarks/bench_train.py [--steps 6] [--max-length 128] [--batch-size 4]

The same TRL trainer `hegelion train` builds (hegelion_dspy.train.trainer.build_trainer: LoRA r16 on q_proj/v_proj),
on synthetic preference pairs, timed per optimizer step after a warm-up step. Side by side in one run:

- DPO with torch's default thread count (the cores this process may use) vs one thread: on a shared, loaded machine
  threads that wait for each other can cost more than they bring;
- SFT on the same rows (one forward pass per row, where DPO runs the policy on chosen + rejected and the reference).

Prints one line per configuration and the machine load (os.getloadavg) before and after.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hegelion_dspy.train.bases import load_base, resolve_base
from hegelion_dspy.train.rows import trainer_rows
from hegelion_dspy.train.trainer import TrainSettings, build_trainer, torch_threads


def pairs(n: int) -> list[dict[str, Any]]:
    topics = ["caching", "backups", "typing", "logging", "tests", "indexes", "retries", "queues"]
    rows = []
    for i in range(n):
        topic = topics[i % len(topics)]
        rows.append(
            {
                "prompt": [{"role": "user", "content": f"Question {i}: why does {topic} matter in a small team?"}],
                "chosen": [
                    {
                        "role": "assistant",
                        "content": f"{topic.title()} matters when its cost is lower than "
                        "the failures it prevents; measure both before deciding. That settles it.",
                    }
                ],
                "rejected": [{"role": "assistant", "content": f"{topic.title()} always matters."}],
            }
        )
    return rows


def time_steps(
    method: str,
    model: Any,
    tokenizer: Any,
    rows: list[dict[str, Any]],
    settings: TrainSettings,
    threads: int | None,
    work: Path,
) -> tuple[float, float]:
    """Steps/s (wall clock) after the first (warm-up) step, and CPU seconds per step (this process, every thread):
    on a loaded machine the wall clock measures the neighbours as much as the trainer, the CPU time does not."""
    from transformers import TrainerCallback

    stamps: list[tuple[float, float]] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            stamps.append((time.perf_counter(), time.process_time()))

    with torch_threads(threads):
        shaped = trainer_rows(rows, "dpo-chat", method)
        trainer = build_trainer(
            method,
            copy.deepcopy(model),
            tokenizer,
            shaped,
            settings=settings,
            work=work,
            device="cpu",
            extra_callbacks=[Clock()],
        )
        trainer.train()
    steps = len(stamps) - 1
    return steps / (stamps[-1][0] - stamps[0][0]), (stamps[-1][1] - stamps[0][1]) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--work", type=Path, default=Path("/tmp/hegelion-bench-train"))
    args = parser.parse_args()
    import torch

    load = os.getloadavg()
    started = time.perf_counter()
    model, tokenizer = load_base(resolve_base("embedded"))
    print(
        f"loaded the embedded model in {time.perf_counter() - started:.1f} s; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads by default; load average {load[0]:.1f}"
    )
    settings = TrainSettings(steps=args.steps, batch_size=args.batch_size, max_length=args.max_length, save_every=10**9)
    rows = pairs(max(16, args.steps * args.batch_size))
    configs = [("dpo", None), ("dpo", 1), ("sft", None)]
    for method, threads in configs:
        rate, cpu = time_steps(method, model, tokenizer, rows, settings, threads, args.work / f"{method}-{threads}")
        label = f"{threads} thread" if threads else f"{torch.get_num_threads()} threads (default)"
        print(
            f"{method}  {label:<22} {rate:6.3f} steps/s  {1 / rate:6.2f} s/step  {cpu:6.2f} CPU s/step  "
            f"({args.batch_size} rows x {args.max_length} tokens, LoRA r{settings.lora_r})"
        )
    load = os.getloadavg()
    print(f"load average after: {load[0]:.1f}")


if __name__ == "__main__":
    main()
