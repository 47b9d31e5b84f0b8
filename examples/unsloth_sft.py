"""SFT with unsloth (faster, less memory, 4-bit QLoRA) on rows from hegelion dataset.

    hegelion dataset data/traces.jsonl data/sft.jsonl --format sft-chat
    python examples/unsloth_sft.py data/sft.jsonl --output out/unsloth-sft [--gguf q4_k_m]

The same TRL SFTTrainer as train_sft.py after unsloth loads the model; the rows go through train_sft.py's checks and
rendering (sft-chat with the model's chat template, sft as plain text, instruction with the Alpaca prompt; the loss
on the answer only). Runs on an NVIDIA GPU, or slowly on the CPU; CI runs it for two steps on a tiny model on the CPU.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_sft import load, prepare
from unsloth_common import build_parser, config_kwargs, finish, load_model, run


def train(args: argparse.Namespace) -> dict[str, Any]:
    dataset, fmt = load(args.data, args)  # checked before unsloth and the model load
    model, tokenizer = load_model(args)

    from trl import SFTConfig, SFTTrainer

    trainer = SFTTrainer(
        model=model,
        args=SFTConfig(**config_kwargs(args)),
        train_dataset=prepare(dataset, fmt),
        processing_class=tokenizer,
    )
    return finish(trainer, model, tokenizer, args)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(
        "SFT with unsloth on hegelion dataset rows.", default_output="out/unsloth-sft", default_lr=2e-4
    )
    return run(train, parser, argv)


if __name__ == "__main__":
    sys.exit(main())
