"""Tiny Hugging Face models built in a temp folder (no download): a word-level tokenizer and a one-layer Llama, for
fast tests of the log-probability suites. ``plant_preference`` makes a copy that prefers one word: a planted effect
the preference suite must see."""

from __future__ import annotations

import json
from pathlib import Path

WORDS = [
    "yes",
    "no",
    "user",
    "assistant",
    "system",
    "question",
    "answer",
    "the",
    "a",
    "is",
    "of",
    "and",
    "to",
    "in",
    "what",
    "why",
    "how",
    "it",
    "that",
    "this",
    "for",
    "was",
    "sky",
    "blue",
    "because",
    "light",
    "scatters",
    "water",
    "wet",
    "fire",
    "hot",
    "ice",
    "cold",
    "paris",
    "capital",
    "france",
    "thanks",
    "for",
    "asking",
    "apples",
    "shop",
    "sells",
    "boxes",
    "day",
    "date",
    "km",
    "car",
    "hours",
    "minutes",
    "total",
]
CHAT = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


def tiny_tokenizer(folder: Path, words: list[str] | None = None) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<eos>": 1, "<pad>": 2}
    for word in words or WORDS + [w.capitalize() for w in WORDS]:
        vocab.setdefault(word, len(vocab))
    for mark in ".,?!:'":
        vocab.setdefault(mark, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="<eos>", pad_token="<pad>")
    fast.chat_template = CHAT
    fast.save_pretrained(folder)


def tiny_model(folder: Path, *, seed: int = 0, words: list[str] | None = None) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder.mkdir(parents=True, exist_ok=True)
    tiny_tokenizer(folder, words)
    vocab = len(AutoTokenizer.from_pretrained(folder))
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        eos_token_id=1,
        pad_token_id=2,
        bos_token_id=1,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def plant_preference(source: Path, target: Path, word: str, *, strength: float = 3.0) -> Path:
    """A copy of ``source`` whose output layer favours ``word`` (a bias on its logit): it prefers any text using it."""
    import shutil

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    shutil.copytree(source, target)
    tok = AutoTokenizer.from_pretrained(target)
    model = AutoModelForCausalLM.from_pretrained(target)
    token = tok.convert_tokens_to_ids(word)
    sample = tok(" ".join(WORDS), return_tensors="pt")
    with torch.no_grad():
        hidden = model(**sample, output_hidden_states=True).hidden_states[-1][0]  # after the final norm
        direction = hidden.mean(dim=0)
        head = model.get_output_embeddings()
        head.weight[token] += strength * direction / direction.norm() ** 2
    model.save_pretrained(target)
    return target


def export_folder(folder: Path, train: list[dict], test: list[dict] | None) -> Path:
    """A dataset folder shaped like ``hegelion dataset --card --split`` writes (data/train.jsonl, data/test.jsonl)."""
    (folder / "data").mkdir(parents=True)
    (folder / "README.md").write_text("<!-- written by hegelion-dspy -->\n# test data\n", encoding="utf-8")
    for name, rows in (("train", train), ("test", test)):
        if rows is not None:
            (folder / "data" / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def preference_rows(n: int, *, start: int = 0, marker: str = "thanks") -> list[dict]:
    """Pairs whose chosen side carries ``marker`` and whose rejected side does not (lengths vary)."""
    bases = [
        "the sky is blue because light scatters",
        "water is wet",
        "fire is hot and ice is cold",
        "paris is the capital of france",
        "the shop sells apples",
    ]
    rows = []
    for i in range(start, start + n):
        text = bases[i % len(bases)]
        rows.append(
            {
                "prompt": f"question {i}: why is it that {text.split()[1]}?",
                "chosen": f"{text} . {marker} for asking",
                "rejected": f"{text} and that is it" if i % 2 else text,
            }
        )
    return rows
