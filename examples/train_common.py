"""What train_dpo.py and train_sft.py share: the command line, loading our JSONL files, LoRA, precision, saving.

Not a library module: it lives next to the scripts (run them as ``python examples/train_dpo.py ...``) so that they
stay short, readable recipes on top of TRL. Heavy imports (torch, transformers, trl) happen inside functions, after
the data has been checked, so a wrong file fails in a second instead of after loading a model.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

DEFAULT_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"


class TrainingDataError(ValueError):
    """A training file is missing, empty or not in the format the trainer needs."""


class ModelLoadError(RuntimeError):
    """--model names nothing that can be loaded here: not a folder, and not in the Hugging Face cache or reachable."""


def build_parser(description: str, *, default_output: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("data", nargs="+", type=Path, help="JSONL file(s) written by hegelion dataset")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"Hub id or local folder (default: {DEFAULT_MODEL})")
    parser.add_argument("--output", type=Path, default=Path(default_output), help="where the trained model goes")
    parser.add_argument("--lora", action="store_true", help="train a LoRA adapter instead of every weight")
    parser.add_argument("--lora-r", type=int, default=16, help="LoRA rank (default: 16)")
    parser.add_argument("--lora-alpha", type=int, default=32, help="LoRA alpha (default: 32)")
    parser.add_argument("--merge", action="store_true", help="with --lora: also save the merged model to OUTPUT/merged")
    parser.add_argument("--epochs", type=float, default=1.0, help="passes over the data (default: 1)")
    parser.add_argument("--max-steps", type=int, default=-1, help="stop after N optimizer steps (overrides --epochs)")
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default: TRL's for the trainer)")
    parser.add_argument("--batch-size", type=int, default=2, help="rows per device per step (default: 2)")
    parser.add_argument("--grad-accum", type=int, default=8, help="gradient accumulation steps (default: 8)")
    parser.add_argument("--max-length", type=int, default=1024, help="truncate sequences to N tokens (default: 1024)")
    parser.add_argument(
        "--precision",
        choices=["auto", "bf16", "fp16", "fp32"],
        default="auto",
        help="auto: bf16 on a GPU that supports it, fp16 on other GPUs, fp32 on CPU",
    )
    parser.add_argument("--cpu", action="store_true", help="train on the CPU even if a GPU is available")
    parser.add_argument(
        "--gradient-checkpointing",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="recompute activations to save memory (default: on)",
    )
    parser.add_argument("--logging-steps", type=int, default=10, help="log the loss every N steps (default: 10)")
    parser.add_argument("--save-steps", type=int, default=None, help="also save a checkpoint every N steps")
    parser.add_argument(
        "--eval",
        type=Path,
        nargs="+",
        default=None,
        metavar="FILE",
        help="held-out rows (e.g. hegelion dataset --split's .test.jsonl) to evaluate after training",
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--cache-dir", type=Path, default=None, help="datasets cache (default: ~/.cache/huggingface)")
    return parser


def load_rows(paths: Sequence[Path], *, cache_dir: Path | None = None) -> Any:
    """The rows of our JSONL files as one ``datasets.Dataset`` (every file must have the same columns)."""
    from datasets import load_dataset
    from datasets.exceptions import DatasetGenerationError

    for path in paths:
        if not path.is_file():
            raise TrainingDataError(f"cannot read {str(path)!r}: no such file; export one with hegelion dataset")
        with open(path, encoding="utf-8", errors="replace") as f:
            if not any(line.strip() for line in f):
                raise TrainingDataError(f"{path}: no rows; export more traces with hegelion dataset")
    try:
        return load_dataset(
            "json",
            data_files=[str(p) for p in paths],
            split="train",
            cache_dir=str(cache_dir) if cache_dir else None,
        )
    except DatasetGenerationError as exc:
        reason = exc.__cause__ or exc
        raise TrainingDataError(
            f"{', '.join(map(str, paths))}: not rows of one JSONL format ({reason}); "
            "give files written by one hegelion dataset --format"
        ) from None


def require_columns(
    dataset: Any, paths: Sequence[Path], formats: dict[str, tuple[str, ...]], *, export_as: str | None = None
) -> str:
    """The name of the first format in ``formats`` whose columns ``dataset`` has, else a TrainingDataError.

    ``export_as`` is the --format value(s) the error message suggests (default: the names in ``formats``).
    """
    columns = set(dataset.column_names)
    for name, needed in formats.items():
        if set(needed) <= columns:
            return name
    wanted = "; ".join(f"{name}: {', '.join(cols)}" for name, cols in formats.items())
    raise TrainingDataError(
        f"{', '.join(map(str, paths))}: columns {sorted(columns)} match none of the formats this trainer reads "
        f"({wanted}); export with hegelion dataset --format {export_as or ' or '.join(formats)}"
    )


def separate_prompt(row: dict[str, Any]) -> dict[str, Any]:
    """End a plain-text prompt with a newline: TRL joins ``prompt + completion`` as they are, so the trained text is
    prompt, newline, answer. Always one newline, whatever the texts hold, so the text is the same in every trainer (the
    axolotl configs write ``"{prompt}\\n"``). Conversational rows (message lists) are left to the chat template."""
    prompt = row["prompt"]
    return {**row, "prompt": prompt + "\n"} if isinstance(prompt, str) else row


def precision_flags(precision: str, *, cpu: bool) -> dict[str, bool]:
    """TrainingArguments' bf16/fp16 flags for --precision (TRL's own default, bf16, fails on most CPUs)."""
    if precision == "auto":
        import torch

        if cpu or not torch.cuda.is_available():
            precision = "fp32"
        else:
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return {"bf16": precision == "bf16", "fp16": precision == "fp16"}


def common_config(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments shared by DPOConfig and SFTConfig."""
    flags = precision_flags(args.precision, cpu=args.cpu)
    # Full fine-tuning keeps fp32 master weights (mixed precision casts per op); a LoRA base may load in half precision.
    dtype = "float32"
    if args.lora and flags["bf16"]:
        dtype = "bfloat16"
    elif args.lora and flags["fp16"]:
        dtype = "float16"
    config: dict[str, Any] = {
        "output_dir": str(args.output),
        "num_train_epochs": args.epochs,
        "max_steps": args.max_steps,
        "per_device_train_batch_size": args.batch_size,
        "gradient_accumulation_steps": args.grad_accum,
        "max_length": args.max_length,
        "logging_steps": args.logging_steps,
        "save_strategy": "steps" if args.save_steps else "no",
        "save_steps": args.save_steps or 500,
        "seed": args.seed,
        "use_cpu": args.cpu,
        # The new name: setting it silences transformers' FutureWarning about `gradient_checkpointing`.
        "activation_checkpointing": args.gradient_checkpointing,
        "report_to": "none",
        "dataloader_num_workers": 0,
        "model_init_kwargs": {"dtype": dtype},
        **flags,
    }
    if args.lr is not None:
        config["learning_rate"] = args.lr
    return config


def lora_config(args: argparse.Namespace) -> Any:
    if not args.lora:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM"
    )


def load_tokenizer(model: str) -> Any:
    """The tokenizer of ``model``, after checking that the model itself can be loaded here (else ModelLoadError)."""
    from transformers import AutoConfig, AutoTokenizer

    try:
        AutoConfig.from_pretrained(model)
        tokenizer = AutoTokenizer.from_pretrained(model)
    except (OSError, ValueError) as exc:  # transformers: OSError; a malformed Hub id: HFValidationError(ValueError)
        raise ModelLoadError(model_load_message(model, exc)) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def model_load_message(model: str, exc: BaseException) -> str:
    """One line that says why ``model`` could not be loaded and what to do instead."""
    dry_run = "python examples/tiny_model.py out/tiny --data FILE builds a tiny local one for a dry run"
    if model.startswith((".", "/", "~")) or model.count("/") != 1:  # a path, never a Hub id ("org/name")
        return f"cannot load the model {model!r}: no such model folder; give --model a folder ({dry_run})"
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and len(chain) < 10:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    names = {type(e).__name__ for e in chain}
    if names & {"LocalEntryNotFoundError", "OfflineModeIsEnabled"} or "couldn't connect" in str(exc):
        return (
            f"cannot load the model {model!r} offline: it is neither a local folder nor in the Hugging Face cache; "
            f"download it once where the Hub is reachable (hf download {model}), or give --model a local folder "
            f"({dry_run})"
        )
    lines = str(exc).strip().splitlines()
    return f"cannot load the model {model!r}: {lines[0] if lines else type(exc).__name__}"


def finish(trainer: Any, args: argparse.Namespace, metrics: dict[str, Any]) -> dict[str, Any]:
    """Save the model (or adapter) + tokenizer, the loss history and the metrics to --output; evaluate on --eval."""
    loss = metrics.get("train_loss")
    if loss is None or not math.isfinite(loss):
        raise RuntimeError(f"training diverged: train_loss is {loss!r}; lower --lr or check the data")
    trainer.save_model(str(args.output))
    trainer.save_state()  # trainer_state.json: log_history with the loss of every logged step
    trainer.save_metrics("train", metrics)  # train_results.json
    if trainer.eval_dataset is not None:
        eval_metrics = trainer.evaluate()
        trainer.save_metrics("eval", eval_metrics)  # eval_results.json
        metrics = {**metrics, **eval_metrics}
    if args.lora and args.merge:  # last: merging unloads the adapter layers from trainer.model
        merged = trainer.model.merge_and_unload()
        merged.save_pretrained(str(args.output / "merged"))
        trainer.processing_class.save_pretrained(str(args.output / "merged"))
    return metrics


def run(
    train: Callable[[argparse.Namespace], dict[str, Any]], parser: argparse.ArgumentParser, argv: Sequence[str] | None
) -> int:
    args = parser.parse_args(argv)
    if args.merge and not args.lora:
        parser.error("--merge only applies with --lora")
    return run_training(train, args)


def run_training(train: Callable[[argparse.Namespace], dict[str, Any]], args: argparse.Namespace) -> int:
    """Train, then print the metrics as one JSON line (exit 0); bad data or a model that cannot load is one line on
    stderr and exit 2. Shared by the TRL and the unsloth scripts."""
    try:
        metrics = train(args)
    except (TrainingDataError, ModelLoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"output": str(args.output), **metrics}))
    return 0
