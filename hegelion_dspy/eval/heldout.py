"""Held out for real: the prompts a model was trained on, normalised, so that a test item asking one of them is
refused (and counted) instead of scored. Normalising: Unicode NFKC, case folded, whitespace collapsed, surrounding
punctuation stripped; so a prompt re-spaced or re-cased is still recognised."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from pathlib import Path

from ..errors import EvalError
from ..types import JSONObject

_SPACE = re.compile(r"\s+")


def normalise_prompt(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return _SPACE.sub(" ", text).strip(" \t\n.?!:;\"'")


def row_prompt(row: Mapping[str, object]) -> str | None:
    """The prompt text of an exported row of any format (dpo, dpo-chat, instruction, sft, sft-chat)."""
    prompt = row.get("prompt", row.get("instruction"))
    messages = row.get("messages")
    if prompt is None and isinstance(messages, list):
        prompt = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"][:1]
    if isinstance(prompt, list):
        users = [str(m.get("content", "")) for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        return users[-1] if users else None
    given = row.get("input")
    if isinstance(prompt, str) and isinstance(given, str) and given:
        return f"{prompt}\n{given}"
    return prompt if isinstance(prompt, str) else None


def read_rows(path: Path) -> list[JSONObject]:
    """The rows of a JSONL file; EvalError naming the line of a row that is not a JSON object."""
    rows: list[JSONObject] = []
    try:
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError as exc:
                    raise EvalError(f"{path}:{lineno}: not a JSON line ({exc}); re-export the data") from None
                if not isinstance(row, dict):
                    raise EvalError(f"{path}:{lineno}: a row must be a JSON object; re-export the data")
                rows.append(row)
    except OSError as exc:
        raise EvalError(f"{path}: cannot read it ({exc.strerror})") from None
    return rows


def training_files(data: Path) -> list[Path]:
    """The training rows of an export folder (``data/train.jsonl``) or the JSONL file itself."""
    if data.is_dir():
        train = data / "data" / "train.jsonl"
        return [train] if train.is_file() else []
    return [data] if data.is_file() else []


def training_prompts(sources: Iterable[Path]) -> set[str]:
    """The normalised prompts of every training row in ``sources`` (export folders or JSONL files)."""
    seen: set[str] = set()
    for source in sources:
        for path in training_files(source):
            for row in read_rows(path):
                prompt = row_prompt(row)
                if prompt:
                    seen.add(normalise_prompt(prompt))
    return seen
