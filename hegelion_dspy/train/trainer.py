"""TRL's DPOTrainer / SFTTrainer with a peft LoRA adapter, as ``hegelion train`` drives them.

- ``TrainSettings``: the hyper-parameters (defaults from a run on the shipped 135M model on CPU: batch 4, LoRA r16 on
  q_proj/v_proj, learning rate 5e-4, DPO beta 0.1).
- ``Progress``: one line per logged step (step, loss, steps/s, time left) to a callback (the CLI: stderr).
- ``StopRequest`` + ``stop_on_interrupt``: the first Ctrl-C asks the trainer to save a checkpoint and stop after the
  current step (``resume`` continues from it); a second one stops at once (the last periodic checkpoint is kept).
- The CPU unless CUDA is there; on a GPU, bf16 when it supports it (fp16 otherwise).
"""

from __future__ import annotations

import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, TypedDict

from ..types import JSONObject

if TYPE_CHECKING:
    from transformers import (
        PreTrainedModel,
        PreTrainedTokenizerBase,
        Trainer,
        TrainerCallback,
        TrainerControl,
        TrainerState,
        TrainingArguments,
    )
    from trl import DPOTrainer, SFTTrainer

Emit = Callable[[str], None]


@dataclass(frozen=True)
class TrainSettings:
    """Hyper-parameters of one training run (every field is recorded in the model card)."""

    steps: int = 100
    learning_rate: float = 5e-4
    batch_size: int = 4
    grad_accum: int = 1
    max_length: int = 512
    beta: float = 0.1  # DPO only: how far the model may move from the base
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")
    seed: int = 42
    save_every: int = 25  # a checkpoint every N steps (the last one is kept), and one on Ctrl-C

    def as_dict(self, method: str) -> JSONObject:
        values = asdict(self)
        values["lora_targets"] = list(self.lora_targets)
        if method != "dpo":
            del values["beta"]
        del values["steps"], values["save_every"]
        return values


class DeviceFlags(TypedDict):
    use_cpu: bool
    bf16: bool
    fp16: bool


class TrainerArguments(DeviceFlags):
    """The DPOConfig/SFTConfig keyword arguments both trainers share."""

    output_dir: str
    max_steps: int
    per_device_train_batch_size: int
    gradient_accumulation_steps: int
    learning_rate: float
    max_length: int
    logging_steps: int
    save_strategy: str
    save_steps: int
    save_total_limit: int
    seed: int
    report_to: list[str]
    disable_tqdm: bool
    dataloader_num_workers: int
    activation_checkpointing: bool


def device_flags(device: str = "auto") -> tuple[str, DeviceFlags]:
    """The device name and TrainingArguments' use_cpu/bf16/fp16 flags for ``device`` (auto: CUDA when there is one)."""
    import torch

    if device == "cpu" or (device == "auto" and not torch.cuda.is_available()):
        return "cpu", {"use_cpu": True, "bf16": False, "fp16": False}
    bf16 = torch.cuda.is_bf16_supported()
    return "cuda", {"use_cpu": False, "bf16": bf16, "fp16": not bf16}


@contextmanager
def quiet_trl_deprecations() -> Iterator[None]:
    """TRL 1.16 still calls transformers 5's deprecated gradient-checkpointing names (``is_gradient_checkpointing``...):
    their FutureWarning is theirs to fix and says nothing to a user of ``hegelion train``."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", r"`(is_)?gradient_checkpointing(_enable|_disable)?` is deprecated", category=FutureWarning
        )
        yield


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to ``threads`` for the block (None: torch's own choice, all cores)."""
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class StopRequest:
    """Set by the first Ctrl-C; the callback then saves a checkpoint and stops after the current step."""

    def __init__(self) -> None:
        self.requested = False


@contextmanager
def stop_on_interrupt(stop: StopRequest, emit: Emit | None) -> Iterator[None]:
    """While training, the first SIGINT sets ``stop``; a second raises KeyboardInterrupt. Only in the main thread
    (elsewhere signals cannot be caught and Ctrl-C raises at once)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        if stop.requested:
            raise KeyboardInterrupt
        stop.requested = True
        if emit is not None:
            emit("interrupted: saving a checkpoint after this step (Ctrl-C again to stop at once)")

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def callbacks(stop: StopRequest, emit: Emit | None, every: int) -> list[TrainerCallback]:
    """The TrainerCallbacks: the progress line, and the checkpoint-and-stop on a Ctrl-C."""
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        def __init__(self) -> None:
            self.started = time.perf_counter()
            self.first_step = 0

        def on_train_begin(
            self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: object
        ) -> None:
            self.started, self.first_step = time.perf_counter(), state.global_step  # a resumed run counts from here

        def on_log(
            self,
            args: TrainingArguments,
            state: TrainerState,
            control: TrainerControl,
            logs: dict[str, float] | None = None,
            **kw: object,
        ) -> None:
            if emit is None or not logs or "loss" not in logs:
                return
            step, total = state.global_step, state.max_steps
            if step % every and step != total:
                return
            rate = (step - self.first_step) / max(time.perf_counter() - self.started, 1e-9)
            left = max(total - step, 0) / rate if rate else 0.0
            emit(f"step {step}/{total}  loss {logs['loss']:.4f}  {rate:.2f} steps/s  {left:.0f} s left")

    class CheckpointOnStop(TrainerCallback):
        def on_step_end(
            self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: object
        ) -> TrainerControl:
            if stop.requested:
                control.should_save = True
                control.should_training_stop = True
            return control

    return [Progress(), CheckpointOnStop()]


def trainer_arguments(settings: TrainSettings, work: Path, device: str) -> TrainerArguments:
    """The DPOConfig/SFTConfig keyword arguments both trainers share."""
    _, flags = device_flags(device)
    return {
        "output_dir": str(work),
        "max_steps": settings.steps,
        "per_device_train_batch_size": settings.batch_size,
        "gradient_accumulation_steps": settings.grad_accum,
        "learning_rate": settings.learning_rate,
        "max_length": settings.max_length,
        "logging_steps": 1,
        "save_strategy": "steps",
        "save_steps": settings.save_every,
        "save_total_limit": 1,
        "seed": settings.seed,
        "report_to": [],
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        "activation_checkpointing": False,  # a LoRA on a small model fits without; recomputing costs a third more
        **flags,
    }


def build_trainer(
    method: str,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    rows: list[JSONObject],
    *,
    settings: TrainSettings,
    work: Path,
    device: str,
    extra_callbacks: list[TrainerCallback],
) -> DPOTrainer | SFTTrainer:
    """The TRL trainer for ``method`` over ``rows`` (already in its row shape), checkpoints in ``work``."""
    from datasets import Dataset
    from peft import LoraConfig

    common = trainer_arguments(settings, work, device)
    lora = LoraConfig(
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules="all-linear" if settings.lora_targets == ("all-linear",) else list(settings.lora_targets),
        task_type="CAUSAL_LM",
    )
    dataset = Dataset.from_list(rows)
    if method == "dpo":
        from trl import DPOConfig, DPOTrainer

        trainer: DPOTrainer | SFTTrainer = DPOTrainer(
            model=model,
            args=DPOConfig(**common, beta=settings.beta),
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=lora,
            callbacks=extra_callbacks,
        )
    else:
        from trl import SFTConfig, SFTTrainer

        trainer = SFTTrainer(
            model=model,
            args=SFTConfig(**common),
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=lora,
            callbacks=extra_callbacks,
        )
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # it prints every log dict on stdout; Progress says what matters
    return trainer


def last_checkpoint(work: Path) -> Path | None:
    """The newest ``checkpoint-N`` folder in ``work`` (None when there is none)."""
    found = [p for p in work.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    return max(found, key=lambda p: int(p.name.split("-")[-1]), default=None)


def losses_of(trainer: Trainer) -> list[tuple[int, float]]:
    """(step, loss) of every logged step, a resumed run's earlier steps included."""
    return [(int(e["step"]), float(e["loss"])) for e in trainer.state.log_history if "loss" in e and "step" in e]
