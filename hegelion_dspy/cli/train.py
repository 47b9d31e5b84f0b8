"""hegelion train: a LoRA of a base model on exported rows (TRL), merged, as a Hugging Face folder + model.gguf."""

from __future__ import annotations

from pathlib import Path

import click

from ._common import prog


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.argument("data", type=click.Path(path_type=Path))
@click.option(
    "--base",
    required=True,
    help="The model to start from: 'embedded' (the shipped SmolLM2-135M-Instruct), gguf:PATH, a Hugging Face model "
    "folder, or a Hub id (needs the network once).",
)
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The folder the trained model goes to.")
@click.option(
    "--method",
    type=click.Choice(["dpo", "sft"]),
    default=None,
    help="DPO or SFT [default: what the rows are: dpo/dpo-chat rows train DPO, the others SFT].",
)
@click.option("--steps", type=click.IntRange(min=1), default=100, show_default=True, help="Optimizer steps.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run in --out from its last checkpoint.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=5e-4, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True, help="Rows per step.")
@click.option("--grad-accum", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--max-length", type=click.IntRange(min=8), default=512, show_default=True, help="Tokens per row.")
@click.option("--beta", type=click.FloatRange(min=0, min_open=True), default=0.1, show_default=True, help="DPO beta.")
@click.option("--lora-r", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--lora-alpha", type=click.IntRange(min=1), default=32, show_default=True)
@click.option(
    "--lora-targets",
    default="q_proj,v_proj",
    show_default=True,
    help="Comma-separated module names, or 'all-linear'.",
)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--save-every", type=click.IntRange(min=1), default=25, show_default=True, help="Checkpoint every N.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="CPU threads for torch [default: $HEGELION_THREADS, else every core this process may use].",
)
@click.option("--gguf/--no-gguf", default=True, show_default=True, help="Also write model.gguf for llama.cpp.")
@click.option("--outtype", type=click.Choice(["q8_0", "f16", "bf16", "f32"]), default="q8_0", show_default=True)
def train(
    data: Path,
    base: str,
    out: Path,
    method: str | None,
    steps: int,
    resume: bool,
    lr: float,
    batch_size: int,
    grad_accum: int,
    max_length: int,
    beta: float,
    lora_r: int,
    lora_alpha: int,
    lora_targets: str,
    seed: int,
    save_every: int,
    device: str,
    threads: int | None,
    gguf: bool,
    outtype: str,
) -> int:
    """Train a LoRA of --base on DATA (a `hegelion dataset --card` folder, its train split; or a JSONL file) with
    TRL's DPOTrainer or SFTTrainer, merge it, and write --out: the Hugging Face model, model.gguf (run it with
    `hegelion --model gguf:OUT/model.gguf`) and a model card (README.md, hegelion-model.json, loss.svg).

    Ctrl-C saves a checkpoint; the same command with --resume continues from it."""
    from ..train import TrainSettings, train_model

    settings = TrainSettings(
        learning_rate=lr,
        batch_size=batch_size,
        grad_accum=grad_accum,
        max_length=max_length,
        beta=beta,
        lora_r=lora_r,
        lora_alpha=lora_alpha,
        lora_targets=tuple(t.strip() for t in lora_targets.split(",") if t.strip()),
        seed=seed,
        save_every=save_every,
    )

    trained = train_model(
        data,
        base=base,
        out=out,
        method=method,
        steps=steps,
        resume=resume,
        settings=settings,
        device=device,
        gguf=gguf,
        outtype=outtype,
        threads=threads,
        progress=lambda line: click.echo(f"{prog()}: {line}", err=True),
    )  # Ctrl-C raises TrainingInterrupted: the edge (_common.run) says how to resume and exits 130
    click.echo(str(trained.gguf or trained.folder))
    click.echo(f"{prog()}: {trained.summary}", err=True)
    return 0
