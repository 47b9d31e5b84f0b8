"""DPO with unsloth (faster, less memory, 4-bit QLoRA) on rows from hegelion dataset.

    pip install unsloth                   # in a venv of its own: it caps trl and transformers (docs/training.md)
    hegelion dataset data/traces.jsonl data/dpo.jsonl --format dpo-chat
    python examples/unsloth_dpo.py data/dpo.jsonl --output out/unsloth-dpo [--gguf q4_k_m]

unsloth wraps the same TRL DPOTrainer as train_dpo.py: only the model loading (FastLanguageModel, 4-bit) and the
LoRA set-up differ; the rows go through train_dpo.py's checks and rendering (dpo-chat with the model's chat
template, dpo as plain text). On an NVIDIA GPU it is fast; without one, unsloth (2026.10) falls back to the CPU:
slow, and 8-bit Adam becomes plain AdamW, but it trains. CI runs it for two steps on a tiny model on the CPU
(tests/test_training_tools.py).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_dpo import prepare
from unsloth_common import build_parser, config_kwargs, finish, load_model, run


def train(args: argparse.Namespace) -> dict[str, Any]:
    dataset = prepare(args.data, args)  # checked before unsloth and the model load
    model, tokenizer = load_model(args)

    from trl import DPOConfig, DPOTrainer

    config = DPOConfig(**config_kwargs(args), beta=args.beta)
    # ref_model=None: with a LoRA model TRL uses the base (adapter disabled) as the reference.
    trainer = DPOTrainer(model=model, ref_model=None, args=config, train_dataset=dataset, processing_class=tokenizer)
    return finish(trainer, model, tokenizer, args)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(
        "DPO with unsloth on hegelion dataset rows.", default_output="out/unsloth-dpo", default_lr=5e-6
    )
    parser.add_argument("--beta", type=float, default=0.1)
    return run(train, parser, argv)


if __name__ == "__main__":
    sys.exit(main())
