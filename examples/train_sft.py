"""Train a model on hegelion-dataset SFT rows with TRL's SFTTrainer (full fine-tune or LoRA), then save it.

    hegelion-dataset data/traces.jsonl data/train_sft.jsonl --format sft-chat
    python examples/train_sft.py data/train_sft.jsonl --model HuggingFaceTB/SmolLM2-135M-Instruct --lora

Reads the three SFT formats: ``sft`` (prompt/completion strings: the loss is on the completion only),
``sft-chat`` (``messages``, rendered with the model's chat template) and ``instruction`` (alpaca
instruction/input/output, turned into a user/assistant exchange when the tokenizer has a chat template).
Writes to --output the model (or the LoRA adapter) with its tokenizer, trainer_state.json and train_results.json.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_common import (
    build_parser,
    common_config,
    finish,
    load_rows,
    load_tokenizer,
    lora_config,
    require_columns,
    run,
    separate_prompt,
)

FORMATS = {
    "sft": ("prompt", "completion"),
    "sft-chat": ("messages",),
    "instruction": ("instruction", "input", "output"),
}


def instruction_to_prompt_completion(row: dict[str, str], *, chat: bool) -> dict[str, Any]:
    """An alpaca row as a prompt/completion pair: a user/assistant exchange if ``chat``, else plain text."""
    request = row["instruction"] + (f"\n\n{row['input']}" if row["input"] else "")
    if chat:
        return {
            "prompt": [{"role": "user", "content": request}],
            "completion": [{"role": "assistant", "content": row["output"]}],
        }
    return {"prompt": request, "completion": row["output"]}


def load(paths: Sequence[Path], args: argparse.Namespace) -> tuple[Any, str]:
    dataset = load_rows(paths, cache_dir=args.cache_dir)
    fmt = require_columns(dataset, paths, FORMATS)
    return dataset.select_columns(list(FORMATS[fmt])), fmt  # e.g. drops --with-metadata's column


def prepare(dataset: Any, fmt: str, tokenizer: Any) -> Any:
    if fmt == "instruction":
        dataset = dataset.map(
            instruction_to_prompt_completion,
            fn_kwargs={"chat": tokenizer.chat_template is not None},
            remove_columns=list(FORMATS["instruction"]),
        )
    if fmt in ("sft", "instruction"):
        dataset = dataset.map(separate_prompt, fn_kwargs={"completions": ("completion",)})
    return dataset


def train(args: argparse.Namespace) -> dict[str, Any]:
    dataset, fmt = load(args.data, args)
    evaluation = load(args.eval, args) if args.eval else None

    from trl import SFTConfig, SFTTrainer

    tokenizer = load_tokenizer(args.model)
    config = SFTConfig(**common_config(args))
    trainer = SFTTrainer(
        model=args.model,
        args=config,
        train_dataset=prepare(dataset, fmt, tokenizer),
        eval_dataset=prepare(*evaluation, tokenizer) if evaluation else None,
        processing_class=tokenizer,
        peft_config=lora_config(args),
    )
    result = trainer.train()
    return finish(trainer, args, result.metrics)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser("Train on hegelion-dataset SFT rows with TRL's SFTTrainer.", default_output="out/sft")
    return run(train, parser, argv)


if __name__ == "__main__":
    sys.exit(main())
