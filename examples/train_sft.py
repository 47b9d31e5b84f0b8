"""Train a model on hegelion dataset SFT rows with TRL's SFTTrainer (full fine-tune or LoRA), then save it.

    hegelion dataset data/traces.jsonl data/train_sft.jsonl --format sft-chat
    python examples/train_sft.py data/train_sft.jsonl --model HuggingFaceTB/SmolLM2-135M-Instruct --lora

Reads the three SFT formats, each trained on one text whichever trainer reads the file (axolotl's
examples/axolotl_sft.yml renders the same text), with the loss on the answer (the synthesis) only:

- ``sft-chat`` (``messages``): the model's chat template; the last (assistant) message is the completion. For
  chat/instruct models.
- ``sft`` (prompt/completion strings): plain text, the prompt, a newline, the answer. For base models.
- ``instruction`` (Alpaca instruction/input/output): the Alpaca prompt ("Below is an instruction ... ### Response:"),
  as axolotl's ``alpaca`` type writes it.

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
    TrainingDataError,
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

# The Alpaca prompt, exactly as axolotl's `alpaca` type (and the Stanford Alpaca recipe) renders it.
ALPACA_PROMPT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)
ALPACA_PROMPT_NO_INPUT = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:\n"
)


def alpaca_prompt_completion(row: dict[str, str]) -> dict[str, str]:
    """An Alpaca row as the Alpaca prompt and its response."""
    template = ALPACA_PROMPT if row["input"] else ALPACA_PROMPT_NO_INPUT
    return {"prompt": template.format(instruction=row["instruction"], input=row["input"]), "completion": row["output"]}


def chat_prompt_completion(row: dict[str, list[dict[str, str]]]) -> dict[str, list[dict[str, str]]]:
    """A conversation as the turns before the answer and the answer (the last, assistant, message): TRL then puts
    the loss on the answer only, as axolotl's ``roles_to_train: ["assistant"]`` does."""
    messages = row["messages"]
    if not messages or messages[-1]["role"] != "assistant":
        raise TrainingDataError(f"a conversation must end with the assistant's answer; got {messages[-1:]!r}")
    return {"prompt": messages[:-1], "completion": messages[-1:]}


def load(paths: Sequence[Path], args: argparse.Namespace) -> tuple[Any, str]:
    dataset = load_rows(paths, cache_dir=args.cache_dir)
    fmt = require_columns(dataset, paths, FORMATS)
    return dataset.select_columns(list(FORMATS[fmt])), fmt  # e.g. drops --with-metadata's column


def prepare(dataset: Any, fmt: str) -> Any:
    """Rows as TRL prompt/completion pairs, so that the loss is on the completion (the synthesis) only."""
    if fmt == "sft-chat":
        return dataset.map(chat_prompt_completion, remove_columns=["messages"])
    if fmt == "instruction":
        return dataset.map(alpaca_prompt_completion, remove_columns=list(FORMATS["instruction"]))
    return dataset.map(separate_prompt)


def build_trainer(args: argparse.Namespace) -> Any:
    """The SFTTrainer, its rows tokenized (``trainer.train_dataset``: input_ids, completion_mask)."""
    dataset, fmt = load(args.data, args)
    evaluation = load(args.eval, args) if args.eval else None
    tokenizer = load_tokenizer(args.model)

    from trl import SFTConfig, SFTTrainer

    return SFTTrainer(
        model=args.model,
        args=SFTConfig(**common_config(args)),
        train_dataset=prepare(dataset, fmt),
        eval_dataset=prepare(*evaluation) if evaluation else None,
        processing_class=tokenizer,
        peft_config=lora_config(args),
    )


def train(args: argparse.Namespace) -> dict[str, Any]:
    trainer = build_trainer(args)
    result = trainer.train()
    return finish(trainer, args, result.metrics)


def parser() -> argparse.ArgumentParser:
    return build_parser("Train on hegelion dataset SFT rows with TRL's SFTTrainer.", default_output="out/sft")


def main(argv: Sequence[str] | None = None) -> int:
    return run(train, parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
