"""The model ``hegelion train`` starts from: ``embedded``, ``gguf:PATH``, a local Hugging Face folder or a Hub id.

``resolve_base`` names it without loading anything (so bad input fails before torch is imported); ``load_base``
loads it with transformers. A GGUF file is dequantised by transformers (``from_pretrained(folder, gguf_file=NAME)``,
needs ``gguf``); such a model refuses ``save_pretrained`` ("quantized with gguf and is not serializable"), so it is
rebuilt ``from_config`` without its ``quantization_config`` and given the loaded weights, which saves fine (checked
with transformers 5.24 on the shipped SmolLM2-135M Q4_1 file).

A base is ``demo`` when lms/identity.py says its GGUF file is (the shipped file by its bytes, or metadata
``hegelion.demo`` / ``hegelion.base_sha256`` saying it was trained from one), or it is a ``hegelion train`` folder whose
card says demo: a model trained from a demo model stays demo.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ..errors import TrainError
from ..lms.embedded import EMBEDDED_MODEL, locate_gguf
from ..lms.identity import file_identity
from ..lms.llamacpp import GGUF_PREFIX, check_gguf

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

CARD_JSON = "hegelion-model.json"  # the model card's data, beside model.gguf (train/card.py writes it)

Kind = Literal["embedded", "gguf", "folder", "hub"]


@dataclass(frozen=True)
class TrainBase:
    """A base model, named (``spec`` as given), not loaded. ``folder`` + ``gguf_file`` for a GGUF file; ``folder``
    for a Hugging Face folder; ``hub_id`` for a Hub id. ``sha256``: of the GGUF file, when there is one."""

    spec: str
    kind: Kind
    folder: Path | None = None
    gguf_file: str | None = None
    hub_id: str | None = None
    sha256: str | None = None
    demo: bool = False

    @property
    def name(self) -> str:
        """What the card records: the embedded model's name, ``gguf:`` + the file, the folder or the Hub id."""
        if self.kind == "embedded":
            return EMBEDDED_MODEL
        if self.kind == "gguf":
            assert self.folder is not None and self.gguf_file is not None
            return f"{GGUF_PREFIX}{self.folder / self.gguf_file}"
        return str(self.folder) if self.kind == "folder" else str(self.hub_id)


def card_says_demo(folder: Path) -> bool:
    """Whether ``folder`` holds a ``hegelion train`` card that says demo."""
    card = folder / CARD_JSON
    if not card.is_file():
        return False
    try:
        return bool(json.loads(card.read_text(encoding="utf-8")).get("demo"))
    except (ValueError, AttributeError):
        return False


def _gguf_base(spec: str, path: Path, *, embedded: bool) -> TrainBase:
    identity = file_identity(path, shipped=embedded)
    if identity is None:
        raise TrainError(f"base {spec!r}: cannot read the GGUF file {str(path)!r}; is it a complete GGUF file?")
    demo = embedded or identity.demo or card_says_demo(path.parent)
    kind: Kind = "embedded" if embedded else "gguf"
    return TrainBase(spec, kind, folder=path.parent, gguf_file=path.name, sha256=identity.sha256, demo=demo)


def resolve_base(spec: str) -> TrainBase:
    """The base named by ``spec`` (see the module docstring), checked without loading it."""
    given = spec.strip()
    if given in ("embedded", EMBEDDED_MODEL):
        return _gguf_base(spec, locate_gguf(), embedded=True)
    if given.startswith(GGUF_PREFIX):
        return _gguf_base(spec, check_gguf(given[len(GGUF_PREFIX) :]), embedded=False)
    path = Path(given).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise TrainError(
                f"base {spec!r} is a folder without config.json, not a Hugging Face model folder; give a model "
                f"folder, a Hub id, gguf:PATH for a .gguf file, or 'embedded'"
            )
        return TrainBase(spec, "folder", folder=path.resolve(), demo=card_says_demo(path))
    if path.suffix == ".gguf" and path.is_file():
        raise TrainError(f"base {spec!r} is a GGUF file; write it as --base {GGUF_PREFIX}{spec}")
    if given.startswith((".", "/", "~")) or given.count("/") != 1:  # a path, never a Hub id ("org/name")
        raise TrainError(
            f"base {spec!r}: no such model folder; give a Hugging Face model folder, a Hub id (org/name), "
            f"gguf:PATH for a .gguf file, or 'embedded' (the shipped SmolLM2-135M-Instruct)"
        )
    return TrainBase(spec, "hub", hub_id=given)


def _load_message(base: TrainBase, exc: BaseException) -> str:
    """One line saying why ``base`` could not be loaded and what to do instead."""
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and len(chain) < 10:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    names = {type(e).__name__ for e in chain}
    if base.kind == "hub" and (
        names & {"LocalEntryNotFoundError", "OfflineModeIsEnabled"} or "connect" in str(exc).lower()
    ):
        return (
            f"cannot load the base {base.spec!r} offline: it is neither a local folder nor in the Hugging Face "
            f"cache; download it once where the Hub is reachable (hf download {base.spec}), or train from "
            "--base embedded or a local folder"
        )
    lines = str(exc).strip().splitlines()
    return f"cannot load the base {base.spec!r}: {lines[0] if lines else type(exc).__name__}"


def _dequantised(folder: Path, gguf_file: str) -> PreTrainedModel:
    """The model in a GGUF file as a plain (saveable) float32 transformers model."""
    import torch
    from transformers import AutoModelForCausalLM

    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, dtype=torch.float32)
    config = copy.deepcopy(loaded.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    return model


def load_base(base: TrainBase) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The base as a float32 transformers model and its tokenizer (a pad token set); TrainError when it cannot load."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    where = str(base.folder) if base.folder is not None else str(base.hub_id)
    try:
        if base.gguf_file is not None:
            model = _dequantised(Path(where), base.gguf_file)
            tokenizer = AutoTokenizer.from_pretrained(where, gguf_file=base.gguf_file)
        else:
            model = AutoModelForCausalLM.from_pretrained(where, dtype=torch.float32)
            tokenizer = AutoTokenizer.from_pretrained(where)
    except (OSError, ValueError, RuntimeError) as exc:  # transformers: OSError; a bad Hub id: HFValidationError
        raise TrainError(_load_message(base, exc)) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer
