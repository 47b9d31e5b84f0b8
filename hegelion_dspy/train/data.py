"""What ``hegelion train`` trains on: the train split of an export folder, or one JSONL file of rows.

Plain Python (no torch, no datasets): the rows are read, their shape named and checked before any model is loaded,
so a wrong file fails in a second. The shapes are the export formats (``curate/formats.py``, TRL's own row shapes):

- ``dpo`` / ``dpo-chat``: ``prompt``, ``chosen``, ``rejected`` (strings / message lists) -> DPO
- ``sft`` (``prompt``, ``completion``), ``sft-chat`` (``messages``), ``instruction`` (Alpaca) -> SFT

A folder's test split is never read: it is what ``hegelion eval`` holds out.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..errors import TrainError
from ..types import JSONObject

Method = Literal["dpo", "sft"]
METHODS: tuple[Method, ...] = ("dpo", "sft")

# Row shape -> (its columns, the trainer it feeds); the first whose columns a row has names it.
SHAPES: dict[str, tuple[tuple[str, ...], Method]] = {
    "dpo": (("prompt", "chosen", "rejected"), "dpo"),
    "sft": (("prompt", "completion"), "sft"),
    "sft-chat": (("messages",), "sft"),
    "instruction": (("instruction", "input", "output"), "sft"),
}
# Models whose traces are demo traces (lms: the embedded model, the scripted fake), as rows' metadata names them.
_DEMO_MODELS = ("embedded/", "scripted")
_EXPORT_HINT = "export rows with: hegelion dataset LOG FOLDER --card --split 0.1 --format dpo-chat (or sft-chat)"


@dataclass
class TrainingData:
    """Rows to train on, their shape and where they came from.

    ``path``: the file read (a folder's ``data/train.jsonl``); ``folder``: the export folder, when one was given;
    ``digest``: ``sha256:`` of the file's bytes; ``demo``: the rows come from demo traces (the folder's card says demo
    traces were included, or a row's metadata names a demo model).
    """

    path: Path
    folder: Path | None
    shape: str
    rows: list[JSONObject] = field(repr=False)
    digest: str
    demo: bool

    @property
    def method(self) -> Method:
        return SHAPES[self.shape.removesuffix("-chat") if self.shape == "dpo-chat" else self.shape][1]

    @property
    def source(self) -> Path:
        """What the user named: the folder, else the file."""
        return self.folder or self.path


def train_file(data: str | Path) -> tuple[Path, Path | None]:
    """The JSONL file to train on and the export folder it belongs to (None for a plain file)."""
    given = Path(data).expanduser()
    if given.is_dir():
        path = given / "data" / "train.jsonl"
        if not path.is_file():
            raise TrainError(
                f"{str(given)!r} has no train split ({path.relative_to(given)} is missing); give a folder written "
                f"by hegelion dataset --card, or a JSONL file; {_EXPORT_HINT}"
            )
        return path, given
    if not given.is_file():
        raise TrainError(f"cannot read {str(data)!r}: no such file or folder; {_EXPORT_HINT}")
    if given.name == "test.jsonl" or given.name.endswith(".test.jsonl"):
        train = given.with_name(given.name.removesuffix("test.jsonl") + "train.jsonl")
        raise TrainError(
            f"{str(given)!r} is a test split, held out for hegelion eval; train on its train split ({str(train)!r})"
        )
    return given, None


def row_shape(row: object, *, where: str) -> str:
    """The export format a row has (``dpo`` covers ``dpo-chat``: same columns), else TrainError naming it."""
    if isinstance(row, dict):
        for shape, (columns, _method) in SHAPES.items():
            if all(name in row for name in columns):
                if shape == "dpo" and not isinstance(row["prompt"], str):
                    return "dpo-chat"
                return shape
        got = ", ".join(sorted(row)) or "none"
    else:
        got = f"a JSON {type(row).__name__}, not an object"
    known = "; ".join(f"{shape}: {', '.join(cols)}" for shape, (cols, _m) in SHAPES.items())
    raise TrainError(f"{where}: a row of no known shape (columns: {got}); rows need the columns of one of {known}")


def _check_chat(row: JSONObject, shape: str, where: str) -> None:
    if shape == "sft-chat":
        messages = row["messages"]
        last = messages[-1] if isinstance(messages, list) and messages else None
        if not isinstance(last, dict):
            raise TrainError(f"{where}: field 'messages' is not a list of messages; export with --format sft-chat")
        if last.get("role") != "assistant":
            raise TrainError(
                f"{where}: field 'messages' must end with the assistant's answer, it ends with role "
                f"{last.get('role')!r}; export with hegelion dataset --format sft-chat"
            )


def read_rows(path: Path) -> tuple[list[JSONObject], str, bool]:
    """Every row of ``path``, their one shape, and whether a row's metadata names a demo model."""
    rows: list[JSONObject] = []
    shape: str | None = None
    demo = False
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TrainError(f"{where}: not a JSON line ({exc.msg}); {_EXPORT_HINT}") from None
            this = row_shape(row, where=where)
            if shape is None:
                shape = this
            elif this != shape:
                raise TrainError(f"{where}: a {this} row after {shape} rows; a file holds rows of one format")
            _check_chat(row, this, where)
            metadata = row.pop("metadata", None)
            if isinstance(metadata, dict) and str(metadata.get("model") or "").startswith(_DEMO_MODELS):
                demo = True
            rows.append(row)
    if shape is None:
        raise TrainError(f"{path}: no rows; {_EXPORT_HINT}")
    return rows, shape, demo


def _card_says_demo(folder: Path) -> bool:
    """Whether an export folder's dataset card (curate/card.py) says its filter let demo traces in."""
    readme = folder / "README.md"
    return readme.is_file() and "demo traces included" in readme.read_text(encoding="utf-8", errors="replace")


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def load_training_data(data: str | Path) -> TrainingData:
    """The rows to train on (see the module docstring); TrainError for a missing split or a row of no known shape."""
    path, folder = train_file(data)
    rows, shape, demo_rows = read_rows(path)
    demo = demo_rows or (folder is not None and _card_says_demo(folder))
    return TrainingData(path=path, folder=folder, shape=shape, rows=rows, digest=file_digest(path), demo=demo)


def choose_method(data: TrainingData, method: str | None) -> Method:
    """``method`` when given (it must suit the rows), else the rows' own (DPO rows -> dpo, SFT rows -> sft)."""
    if method is None:
        return data.method
    if method not in METHODS:
        raise TrainError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if method == "dpo" and data.method != "dpo":
        raise TrainError(
            f"method 'dpo' needs preference rows (prompt, chosen, rejected); {data.path} holds {data.shape} rows: "
            "export with --format dpo-chat, or train them with --method sft"
        )
    return method
