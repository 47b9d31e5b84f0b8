"""The models an evaluation compares, named without loading anything: how each one generates (a model string for
the project's LM chooser, ``lms.chooser.make_lm``) and where its weights are for log-probabilities (a Hugging Face
folder, or a GGUF file that transformers dequantises).

- ``embedded``: the shipped SmolLM2-135M; generation by llama.cpp, weights dequantised from its GGUF file.
- ``gguf:PATH``: the same for any GGUF file.
- a ``hegelion train`` output folder (``hegelion-model.json`` beside the merged model and ``model.gguf``): weights
  from the folder, generation from its ``model.gguf``; its card names the training data (refused as test items).
- a Hugging Face model folder (``config.json``): weights only (no generation route unless it holds ``model.gguf``).
- anything else (``openai/...``, ``hosted_vllm/NAME`` with ``--api-base``): generation only; no log-probabilities.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import EvalError
from ..lms.embedded import EMBEDDED_MODEL, locate_gguf
from ..lms.llamacpp import GGUF_PREFIX, check_gguf
from ..types import JSONObject

TRAIN_CARD = "hegelion-model.json"  # what `hegelion train` writes beside model.gguf (its card's data)
TRAIN_GGUF = "model.gguf"


@dataclass(frozen=True)
class EvalModel:
    """One model of an evaluation. ``generate_with``: a model string for ``make_lm`` (None: cannot generate);
    ``weights``: (folder, GGUF file name or None) for transformers (None: no log-probabilities);
    ``train_folder``: set when it is a ``hegelion train`` output folder; ``card``: that folder's card data."""

    spec: str
    name: str
    generate_with: str | None
    weights: tuple[Path, str | None] | None
    train_folder: Path | None = None
    card: JSONObject = field(default_factory=dict)

    @property
    def demo(self) -> bool:
        return self.name == EMBEDDED_MODEL or bool(self.card.get("demo"))

    def training_data(self) -> Path | None:
        """The export folder or JSONL file this model was trained on, when its card says so."""
        for key in ("data_folder", "data", "data_path"):
            value = self.card.get(key)
            if isinstance(value, dict):  # train/card.py DataInfo: source (folder or file as given), file (trained on)
                value = value.get("source") or value.get("file")
            if isinstance(value, str) and value:
                return Path(value)
        return None

    def need_weights(self, suite: str) -> tuple[Path, str | None]:
        if self.weights is None:
            raise EvalError(
                f"the {suite} suite scores log-probabilities, which needs the model's weights; {self.spec!r} has none "
                "here (a hosted model); give a Hugging Face folder, a hegelion train folder, gguf:PATH or embedded"
            )
        return self.weights

    def need_generation(self, suite: str) -> str:
        if self.generate_with is None:
            raise EvalError(
                f"the {suite} suite generates text, and {self.spec!r} has no LM route (a Hugging Face folder without "
                f"{TRAIN_GGUF}); convert it to GGUF (convert-hf-to-gguf DIR --outfile DIR/{TRAIN_GGUF}) or pass "
                "gguf:PATH"
            )
        return self.generate_with


def _read_card(folder: Path) -> JSONObject:
    path = folder / TRAIN_CARD
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EvalError(f"{path}: cannot read the model card ({exc}); retrain into a fresh folder") from None
    return data if isinstance(data, dict) else {}


def resolve_eval_model(spec: str) -> EvalModel:
    """The model named by ``spec`` (see the module docstring), checked without loading it."""
    given = spec.strip()
    if not given:
        raise EvalError("empty model name; give embedded, gguf:PATH, a model folder or a model string")
    if given in ("embedded", EMBEDDED_MODEL):
        path = locate_gguf()
        return EvalModel(spec, EMBEDDED_MODEL, "embedded", (path.parent, path.name))
    if given.startswith(GGUF_PREFIX):
        path = check_gguf(given[len(GGUF_PREFIX) :])
        card = _read_card(path.parent) if (path.parent / TRAIN_CARD).is_file() else {}
        return EvalModel(spec, f"{GGUF_PREFIX}{path}", f"{GGUF_PREFIX}{path}", (path.parent, path.name), card=card)
    folder = Path(given).expanduser()
    if folder.is_dir():
        return _folder_model(spec, folder.resolve())
    if folder.suffix == ".gguf" and folder.is_file():
        raise EvalError(f"model {spec!r} is a GGUF file; write it as {GGUF_PREFIX}{spec}")
    if given.startswith((".", "/", "~")):
        raise EvalError(f"model {spec!r}: no such folder or file; check the path")
    return EvalModel(spec, given, given, None)


def _folder_model(spec: str, folder: Path) -> EvalModel:
    gguf = folder / TRAIN_GGUF
    generate = f"{GGUF_PREFIX}{gguf}" if gguf.is_file() else None
    if (folder / TRAIN_CARD).is_file():
        card = _read_card(folder)
        weights = (folder, None) if (folder / "config.json").is_file() else ((folder, TRAIN_GGUF) if generate else None)
        return EvalModel(spec, str(folder), generate, weights, train_folder=folder, card=card)
    if (folder / "config.json").is_file():
        return EvalModel(spec, str(folder), generate, (folder, None))
    raise EvalError(
        f"model {spec!r} is a folder without config.json or {TRAIN_CARD}: neither a Hugging Face model folder nor a "
        "hegelion train output; give such a folder, gguf:PATH or embedded"
    )
