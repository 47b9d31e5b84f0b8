"""What unsloth_dpo.py and unsloth_sft.py share: the command line, the model with its LoRA adapter, saving.

The rows go through the same checks and the same rendering as train_dpo.py / train_sft.py (they reuse those
scripts' functions), so a file trains on one text whichever trainer reads it. unsloth patches transformers and TRL
when it is imported: ``load_model`` imports it first, after the data has been checked.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from train_common import load_tokenizer, run_training

TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def build_parser(description: str, *, default_output: str, default_lr: float) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("data", nargs="+", type=Path, help="JSONL file(s) written by hegelion dataset")
    parser.add_argument("--model", default="unsloth/SmolLM2-135M-Instruct", help="any model unsloth supports")
    parser.add_argument("--output", type=Path, default=Path(default_output))
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max-steps", type=int, default=-1)
    parser.add_argument("--lr", type=float, default=default_lr)
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=2, help="rows per device per step (default: 2)")
    parser.add_argument("--grad-accum", type=int, default=8, help="gradient accumulation steps (default: 8)")
    parser.add_argument("--logging-steps", type=int, default=10, help="log the loss every N steps (default: 10)")
    parser.add_argument("--no-4bit", dest="load_in_4bit", action="store_false", help="load the base in 16 bit")
    parser.add_argument("--gguf", metavar="QUANT", help="also export a GGUF (e.g. q4_k_m) for llama.cpp / Ollama")
    parser.add_argument("--cache-dir", type=Path, default=None, help="datasets cache (default: ~/.cache/huggingface)")
    return parser


def load_model(args: argparse.Namespace) -> tuple[Any, Any]:
    """The model (``FastLanguageModel``, 4-bit unless --no-4bit) with a LoRA adapter on every projection, and its
    tokenizer. ModelLoadError, as one line, when --model cannot be found (e.g. offline and not in the cache)."""
    from unsloth import FastLanguageModel  # first: it patches transformers and TRL

    load_tokenizer(args.model)
    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=args.model, max_seq_length=args.max_length, dtype=None, load_in_4bit=args.load_in_4bit
    )
    model = FastLanguageModel.get_peft_model(
        model,
        r=args.lora_r,
        lora_alpha=args.lora_r,
        lora_dropout=0,
        target_modules=TARGET_MODULES,
        use_gradient_checkpointing="unsloth",
        random_state=42,
    )
    return model, tokenizer


def config_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments shared by DPOConfig and SFTConfig."""
    from unsloth import is_bfloat16_supported

    return {
        "output_dir": str(args.output),
        "learning_rate": args.lr,
        "num_train_epochs": args.epochs,
        "max_steps": args.max_steps,
        "max_length": args.max_length,
        "per_device_train_batch_size": args.batch_size,
        "gradient_accumulation_steps": args.grad_accum,
        "bf16": is_bfloat16_supported(),
        "fp16": not is_bfloat16_supported(),
        "optim": "adamw_8bit",  # on the CPU unsloth swaps in plain AdamW and says so
        "logging_steps": args.logging_steps,
        "save_strategy": "no",
        "report_to": "none",
    }


def finish(trainer: Any, model: Any, tokenizer: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Train, refuse a non-finite loss, save the adapter, tokenizer and loss history (and a GGUF with --gguf)."""
    metrics = trainer.train().metrics
    loss = metrics.get("train_loss")
    if loss is None or not math.isfinite(loss):
        raise RuntimeError(f"training diverged: train_loss is {loss!r}; lower --lr or check the data")
    model.save_pretrained(str(args.output))  # the LoRA adapter
    tokenizer.save_pretrained(str(args.output))
    trainer.save_state()  # trainer_state.json: the loss of every logged step
    if args.gguf:
        model.save_pretrained_gguf(str(args.output / "gguf"), tokenizer, quantization_method=args.gguf)
    return metrics


def run(
    train: Callable[[argparse.Namespace], dict[str, Any]], parser: argparse.ArgumentParser, argv: Sequence[str] | None
) -> int:
    return run_training(train, parser.parse_args(argv))
