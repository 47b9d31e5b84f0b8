"""Train a model on hegelion dataset DPO rows with TRL's DPOTrainer (full fine-tune or LoRA), then save it.

    hegelion dataset data/traces.jsonl data/train_dpo.jsonl --format dpo-chat
    python examples/train_dpo.py data/train_dpo.jsonl --model HuggingFaceTB/SmolLM2-135M-Instruct --lora

Reads both DPO formats: ``dpo`` (prompt/chosen/rejected strings, trained as plain text: the prompt, a newline, the
answer, for base models) and ``dpo-chat`` (message lists, rendered with the model's chat template: use this one for
chat/instruct models). axolotl (examples/axolotl_dpo.yml) renders each of the two files the same way.
Writes to --output the model (or the LoRA adapter) with its tokenizer, trainer_state.json (the loss of every
logged step) and train_results.json.
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

FORMATS = {"dpo": ("prompt", "chosen", "rejected")}


def prepare(paths: Sequence[Path], args: argparse.Namespace) -> Any:
    dataset = load_rows(paths, cache_dir=args.cache_dir)
    require_columns(dataset, paths, FORMATS, export_as="dpo-chat (chat models) or dpo")
    dataset = dataset.select_columns(list(FORMATS["dpo"]))  # e.g. drops --with-metadata's column
    return dataset.map(separate_prompt)


def build_trainer(args: argparse.Namespace) -> Any:
    """The DPOTrainer, its rows tokenized (``trainer.train_dataset``: prompt_ids, chosen_ids, rejected_ids)."""
    dataset = prepare(args.data, args)
    eval_dataset = prepare(args.eval, args) if args.eval else None
    tokenizer = load_tokenizer(args.model)

    from trl import DPOConfig, DPOTrainer

    return DPOTrainer(
        model=args.model,
        args=DPOConfig(**common_config(args), beta=args.beta),
        train_dataset=dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=lora_config(args),
    )


def train(args: argparse.Namespace) -> dict[str, Any]:
    trainer = build_trainer(args)
    result = trainer.train()
    return finish(trainer, args, result.metrics)


def parser() -> argparse.ArgumentParser:
    parser = build_parser("Train on hegelion dataset DPO rows with TRL's DPOTrainer.", default_output="out/dpo")
    parser.add_argument("--beta", type=float, default=0.1, help="DPO beta: how far from the reference (default: 0.1)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run(train, parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
