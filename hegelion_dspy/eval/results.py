"""The output folder of an evaluation: ``eval.json`` (what is evaluated: M, M0, seed, data; a folder holding another
evaluation is refused), ``items.jsonl`` (one line per finished item, appended as it finishes, so a rerun resumes),
and the report files written whole at the end."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TypedDict

from ..errors import EvalError
from ..types import JSONObject
from .models import TRAIN_CARD

EVAL_SCHEMA_VERSION = 1
SETUP = "eval.json"
ITEMS = "items.jsonl"


class Item(TypedDict):
    """What every suite's items have: an id, unique in its suite (the rest is the suite's own)."""

    id: str


def setup_of(model: str, base: str | None, seed: int, data: Path | None) -> JSONObject:
    return {
        "schema_version": EVAL_SCHEMA_VERSION,
        "model": model,
        "base": base,
        "seed": seed,
        "data": str(data.resolve()) if data is not None else None,
    }


def check_out(out: Path, setup: JSONObject, *, model_folder: Path | None = None) -> None:
    """EvalError when ``out`` is a file, holds another model (a ``hegelion train`` folder other than M's own,
    ``model_folder``), or holds an evaluation of other models, seed or data. Nothing is written."""
    if out.exists() and not out.is_dir():
        raise EvalError(f"--out {str(out)!r} is a file; give a folder for the report")
    own = model_folder is not None and out.is_dir() and out.resolve() == model_folder.resolve()
    if (out / TRAIN_CARD).is_file() and not own:
        raise EvalError(
            f"--out {str(out)!r} holds a different model (a hegelion train folder, not {setup['model']!r}); write "
            "the report to a new folder, or omit --out to write it beside M's own model card"
        )
    path = out / SETUP
    if not path.is_file():
        if out.is_dir() and not own and any(p.name != ".DS_Store" for p in out.iterdir()):
            raise EvalError(
                f"--out {str(out)!r} holds files but no {SETUP}: it is not an evaluation folder; choose "
                "an empty or new folder"
            )
        return
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        raise EvalError(f"{path}: not valid JSON; delete the folder or choose another --out") from None
    for key in ("model", "base", "seed", "data"):
        if old.get(key) != setup[key]:
            raise EvalError(
                f"--out {str(out)!r} holds an evaluation of a different setup ({key} {old.get(key)!r}, now "
                f"{setup[key]!r}); choose another folder, or rerun with the same --model, --base, --seed and --data "
                "to resume it"
            )


class ItemLog:
    """``items.jsonl``: the finished items by (suite, id), appended under a lock, a torn last line ignored."""

    def __init__(self, out: Path):
        self.path = out / ITEMS
        self.done: dict[tuple[str, str], Mapping[str, object]] = {}  # a suite's result, as its run_item made it
        self._lock = threading.Lock()
        self._torn = False
        if self.path.is_file():
            self._read()

    def _read(self) -> None:
        with open(self.path, "rb") as fh:
            data = fh.read()
        for line in data.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line torn by an interrupted run; the item runs again
            if isinstance(record, dict) and "suite" in record and "id" in record:
                self.done[(record["suite"], str(record["id"]))] = record["result"]
        self._torn = bool(data) and not data.endswith(b"\n")  # repaired by the first append, not by reading

    def append(self, suite: str, item_id: str, result: Mapping[str, object]) -> None:
        line = json.dumps({"schema_version": EVAL_SCHEMA_VERSION, "suite": suite, "id": item_id, "result": result})
        with self._lock:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(("\n" if self._torn else "") + line + "\n")
                self._torn = False
                fh.flush()
                os.fsync(fh.fileno())
            self.done[(suite, item_id)] = result


def write_whole(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
