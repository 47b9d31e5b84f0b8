"""DPO with unsloth (faster, less memory, 4-bit QLoRA) on rows from hegelion dataset.

    pip install unsloth                   # in a venv of its own: it caps trl and transformers (docs/training.md)
    hegelion dataset data/traces.jsonl data/dpo.jsonl --format dpo-chat
    python examples/unsloth_dpo.py data/dpo.jsonl --output out/unsloth-dpo [--gguf q4_k_m]

unsloth wraps the same TRL DPOTrainer as train_dpo.py: only the model loading (FastLanguageModel, 4-bit) and the
LoRA set-up differ, and the data goes through the same checks and the same rendering (train_common.py): dpo-chat
with the model's chat template, dpo as plain text. On an NVIDIA GPU it is fast; without one, unsloth (2026.10)
falls back to the CPU: slow, and 8-bit Adam becomes plain AdamW, but it trains. CI runs it for two steps on a tiny
model on the CPU (tests/test_training_tools.py).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_common import ModelLoadError, TrainingDataError, load_rows, load_tokenizer, require_columns, separate_prompt

COLUMNS = ("prompt", "chosen", "rejected")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="DPO with unsloth on hegelion dataset rows (a GPU, or slowly the CPU)."
    )
    parser.add_argument("data", nargs="+", type=Path, help="JSONL written by hegelion dataset --format dpo[-chat]")
    parser.add_argument("--model", default="unsloth/SmolLM2-135M-Instruct", help="any model unsloth supports")
    parser.add_argument("--output", type=Path, default=Path("out/unsloth-dpo"))
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max-steps", type=int, default=-1)
    parser.add_argument("--lr", type=float, default=5e-6)
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=2, help="rows per device per step (default: 2)")
    parser.add_argument("--grad-accum", type=int, default=8, help="gradient accumulation steps (default: 8)")
    parser.add_argument("--logging-steps", type=int, default=10, help="log the loss every N steps (default: 10)")
    parser.add_argument("--no-4bit", dest="load_in_4bit", action="store_false", help="load the base in 16 bit")
    parser.add_argument("--gguf", metavar="QUANT", help="also export a GGUF (e.g. q4_k_m) for llama.cpp / Ollama")
    args = parser.parse_args(argv)

    try:
        dataset = load_rows(args.data)
        require_columns(dataset, args.data, {"dpo": COLUMNS}, export_as="dpo-chat or dpo")
    except TrainingDataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    dataset = dataset.select_columns(list(COLUMNS))
    dataset = dataset.map(separate_prompt)

    # unsloth patches transformers and TRL when imported, so it comes first.
    from unsloth import FastLanguageModel, is_bfloat16_supported  # isort: skip
    from trl import DPOConfig, DPOTrainer  # isort: skip

    try:
        load_tokenizer(args.model)  # a one-line error, not a traceback, when the model cannot be found (offline)
    except ModelLoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=args.model, max_seq_length=args.max_length, dtype=None, load_in_4bit=args.load_in_4bit
    )
    model = FastLanguageModel.get_peft_model(
        model,
        r=args.lora_r,
        lora_alpha=args.lora_r,
        lora_dropout=0,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        use_gradient_checkpointing="unsloth",
        random_state=42,
    )
    config = DPOConfig(
        output_dir=str(args.output),
        beta=args.beta,
        learning_rate=args.lr,
        num_train_epochs=args.epochs,
        max_steps=args.max_steps,
        max_length=args.max_length,
        per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=args.grad_accum,
        bf16=is_bfloat16_supported(),
        fp16=not is_bfloat16_supported(),
        optim="adamw_8bit",
        logging_steps=args.logging_steps,
        save_strategy="no",
        report_to="none",
    )
    # ref_model=None: with a LoRA model TRL uses the base (adapter disabled) as the reference.
    trainer = DPOTrainer(model=model, ref_model=None, args=config, train_dataset=dataset, processing_class=tokenizer)
    metrics = trainer.train().metrics
    if not math.isfinite(metrics.get("train_loss", math.nan)):
        raise RuntimeError(f"training diverged: train_loss is {metrics.get('train_loss')!r}; lower --lr")
    model.save_pretrained(str(args.output))  # the LoRA adapter
    tokenizer.save_pretrained(str(args.output))
    trainer.save_state()  # trainer_state.json: the loss of every logged step
    if args.gguf:
        model.save_pretrained_gguf(str(args.output / "gguf"), tokenizer, quantization_method=args.gguf)
    print(json.dumps({"output": str(args.output), **metrics}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
