"""The model card of a ``hegelion train`` folder: ``hegelion-model.json`` (the data) and ``README.md`` (for people and
the Hugging Face Hub, its YAML front matter naming the base, the library and the tags), with the loss curve as
``loss.svg``.

``evals`` starts empty: ``hegelion eval`` adds an entry per report it writes beside the card. ``demo`` is true when the
base is a demo model (the shipped one, or a model trained from it) or the data came from demo traces.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

CARD_README = "README.md"
LOSS_SVG = "loss.svg"


class BaseInfo(BaseModel):
    spec: str = Field(description="The --base as given.")
    kind: Literal["embedded", "gguf", "folder", "hub"]
    name: str = Field(description="The embedded model's name, gguf:FILE, the folder or the Hub id.")
    sha256: str | None = Field(default=None, description="sha256 of the base GGUF file, when the base is one.")
    demo: bool = False


class DataInfo(BaseModel):
    source: str = Field(description="The DATA as given: an export folder or a JSONL file.")
    file: str = Field(description="The file trained on (a folder's data/train.jsonl).")
    digest: str = Field(description="sha256: of the file's bytes.")
    shape: str = Field(description="The rows' export format (dpo, dpo-chat, sft, sft-chat, instruction).")
    rows: int
    demo: bool = False


class ModelCard(BaseModel):
    """What ``hegelion-model.json`` holds. One JSON object; ``schema_version`` for later readers."""

    schema_version: Literal[1] = 1
    kind: Literal["hegelion-model"] = "hegelion-model"
    created_at: str
    hegelion_version: str
    base: BaseInfo
    data: DataInfo
    method: Literal["dpo", "sft"]
    steps: int = Field(description="Optimizer steps asked for.")
    steps_done: int
    hyperparameters: dict[str, Any]
    device: str
    seconds: float = Field(description="Wall time of the training steps (loading and saving excluded).")
    steps_per_second: float
    losses: list[tuple[int, float]] = Field(description="(step, training loss) at every logged step.")
    demo: bool
    files: dict[str, int] = Field(default_factory=dict, description="File (or folder) name -> size in bytes.")
    gguf: str | None = Field(default="model.gguf", description="The GGUF file for llama.cpp, when written.")
    evals: list[dict[str, Any]] = Field(default_factory=list, description="Added by hegelion eval, one per report.")


def loss_svg(losses: list[tuple[int, float]], *, width: int = 480, height: int = 240) -> str:
    """The loss curve as a small standalone SVG (a polyline over step, axes labelled with the ranges)."""
    left, right, top, bottom = 52, 12, 16, 34
    inner_w, inner_h = width - left - right, height - top - bottom
    points = [(s, v) for s, v in losses if v == v]  # NaN never plots
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'font-family="sans-serif" font-size="11">',
        f'<rect x="{left}" y="{top}" width="{inner_w}" height="{inner_h}" fill="none" stroke="#999"/>',
        f'<text x="{left + inner_w / 2}" y="{height - 6}" text-anchor="middle">step</text>',
        f'<text x="12" y="{top + inner_h / 2}" transform="rotate(-90 12 {top + inner_h / 2})" '
        'text-anchor="middle">training loss</text>',
    ]
    if points:
        s0, s1 = min(s for s, _ in points), max(s for s, _ in points)
        v0, v1 = min(v for _, v in points), max(v for _, v in points)
        span_s, span_v = (s1 - s0) or 1, (v1 - v0) or 1

        def xy(step: float, value: float) -> str:
            return f"{left + (step - s0) / span_s * inner_w:.1f},{top + (v1 - value) / span_v * inner_h:.1f}"

        line = " ".join(xy(s, v) for s, v in points)
        parts.append(f'<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{line}"/>')
        labels = [
            (left, height - bottom + 14, "start", str(s0)),
            (left + inner_w, height - bottom + 14, "end", str(s1)),
            (left - 4, top + 10, "end", f"{v1:.3g}"),
            (left - 4, top + inner_h, "end", f"{v0:.3g}"),
        ]
        parts += [f'<text x="{x}" y="{y}" text-anchor="{a}">{html.escape(t)}</text>' for x, y, a, t in labels]
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _front_matter(card: ModelCard) -> list[str]:
    tags = ["hegelion-dspy", "dialectic", card.method, "lora", *(["demo"] if card.demo else [])]
    lines = ["---", "library_name: transformers", "tags:", *(f"- {tag}" for tag in tags)]
    if card.base.kind == "hub":
        lines += ["base_model:", f"- {card.base.name}"]
    return [*lines, "---"]


SMOOTH_STEPS = 10  # a step's loss is one batch's: the means of the first and last ten say where it went


def loss_summary(losses: Sequence[tuple[int, float]], arrow: str = "→") -> str | None:
    """ "first → last" of the logged loss, and with enough steps the means of the first and the last SMOOTH_STEPS
    steps (one batch's loss is noisy: a hard last batch can read as a loss that rose). None when none was logged."""
    if not losses:
        return None
    text = f"{losses[0][1]:.4f} {arrow} {losses[-1][1]:.4f}"
    if len(losses) >= 2 * SMOOTH_STEPS:
        head = sum(v for _, v in losses[:SMOOTH_STEPS]) / SMOOTH_STEPS
        tail = sum(v for _, v in losses[-SMOOTH_STEPS:]) / SMOOTH_STEPS
        text += f" (mean of the first {SMOOTH_STEPS} steps {head:.4f}, of the last {SMOOTH_STEPS} {tail:.4f})"
    return text


def readme_text(card: ModelCard) -> str:
    """README.md: what the model is, how it was trained, the loss curve, how to run it, and the evals so far."""
    loss = loss_summary(card.losses)
    demo = (
        "**Demo model.** Trained from a demo model or on demo traces: it proves the pipeline, its text is not training "
        "data, and traces it writes are marked demo.\n\n"
        if card.demo
        else ""
    )
    hyper = ", ".join(f"{k} {json.dumps(v)}" for k, v in sorted(card.hyperparameters.items()))
    body = [
        *_front_matter(card),
        "",
        "<!-- written by hegelion-dspy -->",
        f"# {card.method.upper()} LoRA of {card.base.name}",
        "",
        demo + f"Trained by `hegelion train` (hegelion-dspy {card.hegelion_version}) on {card.created_at[:10]}, "
        "merged into the base.",
        "",
        f"- **Base:** `{card.base.name}`" + (f" (sha256 `{card.base.sha256[:16]}…`)" if card.base.sha256 else ""),
        f"- **Data:** `{card.data.source}` ({card.data.rows:,} {card.data.shape} rows, `{card.data.digest[:23]}…`)",
        f"- **Method:** {card.method}, {card.steps_done} of {card.steps} steps on {card.device}, "
        f"{card.steps_per_second:.2f} steps/s",
        f"- **Hyper-parameters:** {hyper}",
        f"- **Loss:** {loss or 'none logged'}",
        "",
        f"![training loss]({LOSS_SVG})",
        "",
        "## Run it",
        "",
        "```bash",
        f'hegelion --model gguf:{card.gguf or "model.gguf"} "Why is the sky blue?"   # from this folder',
        "```",
        "",
        "## Evaluations",
        "",
        *(
            [f"- `{e.get('report', '?')}`: {e.get('summary', '')}" for e in card.evals]
            or ["None yet: `hegelion eval --model THIS_FOLDER --base BASE --suite preference` adds them here."]
        ),
        "",
    ]
    return "\n".join(body)


def write_card(folder: Path, card: ModelCard, card_json: str) -> None:
    """Write README.md, loss.svg and the card JSON (last: its presence marks the folder complete)."""
    (folder / LOSS_SVG).write_text(loss_svg(card.losses), encoding="utf-8")
    (folder / CARD_README).write_text(readme_text(card), encoding="utf-8")
    tmp = folder / f".{card_json}.tmp"
    tmp.write_text(card.model_dump_json(indent=2) + "\n", encoding="utf-8")
    tmp.replace(folder / card_json)


def read_card(path: Path) -> ModelCard:
    return ModelCard.model_validate_json(path.read_text(encoding="utf-8"))
