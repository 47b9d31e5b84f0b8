"""A tiny, randomly initialised causal LM and a tokenizer trained on your data, built offline in a second.

For dry runs of the training scripts without downloading anything (and for the pipeline test):

    python examples/tiny_model.py out/tiny --data data/train_dpo.jsonl
    python examples/train_dpo.py data/train_dpo.jsonl --model out/tiny --output out/dpo --max-steps 2 --cpu

The model learns nothing useful: it only proves that the data, the scripts and the trainers fit together.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

PAD, BOS, EOS, IM_START = "<|pad|>", "<|endoftext|>", "<|im_end|>", "<|im_start|>"

# ChatML, as SmolLM2 uses it; TRL's conversational formats need a chat template.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def strings_in(value: Any) -> Iterator[str]:
    """Every string inside a decoded JSON value (a row, a message list...)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


class DataError(Exception):
    """A --data file that cannot be read; its message is the one line the script prints."""


def texts_from_jsonl(paths: Iterable[Path]) -> Iterator[str]:
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if line.strip():
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as exc:
                        reason = f"{path}:{number}: not a JSON line ({exc.msg}); give a hegelion dataset file"
                        raise DataError(reason) from None
                    yield from strings_in(row)


def build_tokenizer(texts: Iterable[str], *, vocab_size: int = 512) -> Any:
    """A byte-level BPE tokenizer (it encodes any text) with pad/bos/eos tokens and a ChatML chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, BOS, EOS, IM_START],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe, pad_token=PAD, bos_token=BOS, eos_token=EOS, chat_template=CHAT_TEMPLATE
    )


def build_model(tokenizer: Any, *, hidden_size: int = 32, layers: int = 2, seed: int = 0) -> Any:
    """A randomly initialised Llama-architecture causal LM sized for ``tokenizer`` (about 50k parameters)."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config)


def save_tiny_model(output: Path, texts: Iterable[str], *, seed: int = 0) -> Path:
    """Build the tokenizer and the model and save both to ``output`` (a folder --model can point at)."""
    tokenizer = build_tokenizer(texts)
    model = build_model(tokenizer, seed=seed)
    model.save_pretrained(str(output))
    tokenizer.save_pretrained(str(output))
    return output


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Save a tiny random causal LM + tokenizer trained on your data.")
    parser.add_argument("output", type=Path, help="folder to write (pass it to the training scripts as --model)")
    parser.add_argument("--data", type=Path, nargs="+", required=True, help="JSONL file(s) to train the tokenizer on")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    missing = [str(path) for path in args.data if not path.is_file()]
    if missing:
        print(
            f"tiny_model.py: error: no such file: {', '.join(missing)}; export one with hegelion dataset",
            file=sys.stderr,
        )
        return 2
    try:
        save_tiny_model(args.output, texts_from_jsonl(args.data), seed=args.seed)
    except DataError as exc:
        print(f"tiny_model.py: error: {exc}", file=sys.stderr)
        return 2
    print(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
