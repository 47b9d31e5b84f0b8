"""DPO with unsloth (faster, less memory, 4-bit QLoRA on one NVIDIA GPU) on rows from hegelion-dataset.

    pip install unsloth                   # a CUDA GPU is required; unsloth does not run on the CPU
    hegelion-dataset data/traces.jsonl data/train_dpo.jsonl --format dpo-chat
    python examples/unsloth_dpo.py data/train_dpo.jsonl --output out/unsloth-dpo [--gguf q4_k_m]

unsloth wraps the same TRL DPOTrainer as train_dpo.py: only the model loading (FastLanguageModel, 4-bit) and the
LoRA set-up differ, and the data goes through the same checks (train_common.py). Not run by our tests: they have
no GPU. The pipeline itself (hegelion-dataset -> DPOTrainer) is tested with train_dpo.py on a tiny model.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_common import TrainingDataError, load_rows, require_columns, separate_prompt

COLUMNS = ("prompt", "chosen", "rejected")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="DPO with unsloth on hegelion-dataset rows (needs a CUDA GPU).")
    parser.add_argument("data", nargs="+", type=Path, help="JSONL written by hegelion-dataset --format dpo[-chat]")
    parser.add_argument("--model", default="unsloth/SmolLM2-135M-Instruct", help="any model unsloth supports")
    parser.add_argument("--output", type=Path, default=Path("out/unsloth-dpo"))
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max-steps", type=int, default=-1)
    parser.add_argument("--lr", type=float, default=5e-6)
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--lora-r", type=int, default=16)
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
    dataset = dataset.map(separate_prompt, fn_kwargs={"completions": ("chosen", "rejected")})

    # unsloth patches transformers and TRL when imported, so it comes first.
    from unsloth import FastLanguageModel, is_bfloat16_supported  # isort: skip
    from trl import DPOConfig, DPOTrainer  # isort: skip

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
        per_device_train_batch_size=2,
        gradient_accumulation_steps=8,
        bf16=is_bfloat16_supported(),
        fp16=not is_bfloat16_supported(),
        optim="adamw_8bit",
        logging_steps=10,
        save_strategy="no",
        report_to="none",
    )
    # ref_model=None: with a LoRA model TRL uses the base (adapter disabled) as the reference.
    trainer = DPOTrainer(model=model, ref_model=None, args=config, train_dataset=dataset, processing_class=tokenizer)
    trainer.train()
    model.save_pretrained(str(args.output))  # the LoRA adapter
    tokenizer.save_pretrained(str(args.output))
    if args.gguf:
        model.save_pretrained_gguf(str(args.output / "gguf"), tokenizer, quantization_method=args.gguf)
    print(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
