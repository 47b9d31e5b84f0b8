"""The dataset card: a README.md that makes an export folder a Hugging Face dataset with its provenance.

``datasets.load_dataset(FOLDER)`` reads the YAML front matter's ``configs`` (one ``data_files`` entry per split); the
Hub shows the rest. The body says where every row came from: the models and programs, counts per model and mode,
the filters and every drop reason, the date range, the exact command, and the hegelion-dspy version.

It reads an export's report and options as plain data (``ExportReport.as_dict()``, ``ExportOptions.model_dump()``),
so it depends on nothing in the exporter.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from pathlib import Path

from .report import ReportDict

# Hugging Face size categories (https://huggingface.co/docs/hub/datasets-cards): the number of rows.
_SIZE_CATEGORIES = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
)

_COLUMNS = {
    "dpo": "`prompt`, `chosen`, `rejected` (strings): TRL's standard preference format",
    "dpo-chat": "`prompt`, `chosen`, `rejected` (lists of {role, content}): TRL's conversational preference format",
    "instruction": "`instruction`, `input`, `output` (strings): the Alpaca format",
    "sft": "`prompt`, `completion` (strings): TRL's prompt-completion format",
    "sft-chat": "`messages` (a list of {role, content}): TRL's conversational language-modeling format",
}


def size_category(rows: int) -> str:
    for bound, name in _SIZE_CATEGORIES:
        if rows < bound:
            return name
    return "n>10M"


def _yaml_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid YAML scalar


def front_matter(report: ReportDict, opts: Mapping[str, object]) -> str:
    lines = ["---", "configs:", "- config_name: default", "  data_files:"]
    for split in report["rows"]:
        lines += [f"  - split: {split}", f"    path: data/{split}.jsonl"]
    preference = opts["format"] in ("dpo", "dpo-chat")
    tags = ["hegelion-dspy", "dialectic", "synthetic", "self-correction", "dpo" if preference else "sft"]
    lines += [
        "task_categories:",
        "- text-generation",
        "tags:",
        *(f"- {tag}" for tag in tags),
        "size_categories:",
        f"- {size_category(report['rows_written'])}",
        'license: ""  # choose a license the models\' terms allow (e.g. cc-by-4.0, apache-2.0) before publishing',
        f"pretty_name: {_yaml_str('hegelion-dspy ' + str(opts['format']) + ' dataset')}",
        "---",
    ]
    return "\n".join(lines)


def _table(title: str, counts: dict[str, int]) -> list[str]:
    if not counts:
        return []
    out = [f"| {title} | traces |", "| --- | ---: |"]
    out += [f"| `{key}` | {n:,} |" for key, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    return [*out, ""]


_NO_PROGRAM = "No compiled program was used: every trace ran the default Dialectic prompts."
_REJECTED_WORDS = {
    "thesis": "the first thesis",
    "antithesis": "the critique",
    "both": "the first thesis and, in a second row, the critique",
}


def _what_a_row_is(opts: Mapping[str, object]) -> str:
    if opts["format"] in ("dpo", "dpo-chat"):
        return f"Each row prefers the synthesis (`chosen`) to {_REJECTED_WORDS[str(opts['rejected'])]} (`rejected`)."
    return "Each row teaches the final synthesis as the answer to the prompt."


def _curation_line(opts: Mapping[str, object]) -> str:
    one = f"`{opts['keep']}`" if opts["dedupe"] else "off (every trace kept)"
    score = "none" if opts["min_score"] is None else f"{opts['min_score']:g}"
    split = f"; test split {opts['split']:g} (seed {opts['seed']})" if opts["split"] else ""
    return (
        f"One trace per prompt: {one}; minimum chosen length {opts['min_chars']}; minimum judge score {score}{split}."
    )


def card_text(
    report: ReportDict,
    opts: Mapping[str, object],
    *,
    filters: list[str],
    trace_reasons: Collection[str],
    command: str | None = None,
) -> str:
    """The README.md of a dataset folder. ``report`` and ``opts`` are an export's report and options as plain data;
    ``filters`` says in words which traces were chosen; ``trace_reasons`` are the drop reasons that count traces."""
    body = [
        front_matter(report, opts),
        "",
        "<!-- written by hegelion-dspy -->",
        *_summary(report, opts),
        *_provenance(report),
        *_curation(report, opts, filters, trace_reasons),
        *_how_it_was_made(report, command),
    ]
    return "\n".join(body)


def _summary(report: ReportDict, opts: Mapping[str, object]) -> list[str]:
    """The title, what a row is, the splits, counts and dates, and how to load the folder."""
    from .. import __version__

    splits = ", ".join(f"{name} {n:,} rows" for name, n in report["rows"].items())
    return [
        "# Dialectic training data",
        "",
        "Made by hegelion-dspy from dialectic traces: a model answered each prompt (thesis), critiqued its answer "
        "(antithesis, with contradictions and evidence) and resolved the critique (synthesis). " + _what_a_row_is(opts),
        "",
        f"- **Format:** `{opts['format']}`: {_COLUMNS[str(opts['format'])]}.",
        f"- **Splits:** {splits}.",
        f"- **Traces:** {report['traces_read']:,} read, {report['traces_kept']:,} kept (one row set each).",
        f"- **Created:** {report['first_created'] or '?'} to {report['last_created'] or '?'} (UTC).",
        f"- **hegelion-dspy:** {__version__}.",
        "",
        "```python",
        "from datasets import load_dataset",
        f'dataset = load_dataset({json.dumps(report["folder"] or ".")})  # or "USER/NAME" once on the Hub',
        "```",
        "",
    ]


def _provenance(report: ReportDict) -> list[str]:
    """Kept traces per model, mode and compiled program."""
    return [
        "## Provenance",
        "",
        *_table("model", report["kept_by_model"]),
        *_table("mode", report["kept_by_mode"]),
        *(_table("compiled program (sha256 prefix or file)", report["kept_by_program"]) or [_NO_PROGRAM, ""]),
    ]


def _curation(
    report: ReportDict, opts: Mapping[str, object], filters: list[str], trace_reasons: Collection[str]
) -> list[str]:
    """The filters, the keep rule and every drop reason with its count (of traces or of rows)."""
    return [
        "## Curation",
        "",
        "Filters: " + "; ".join(filters) + ".",
        "",
        _curation_line(opts),
        "",
        "| dropped because | count |",
        "| --- | ---: |",
        *(
            f"| {reason} | {n:,} {'traces' if reason in trace_reasons else 'rows'} |"
            for reason, n in report["dropped"].items()
        ),
        "",
    ]


def _how_it_was_made(report: ReportDict, command: str | None) -> list[str]:
    """The exact command (or the Python call with its options) and how to publish the folder."""
    return [
        "## How it was made",
        "",
        "```bash",
        command
        or f"hegelion_dspy.export_dataset(...)  # from Python, options {json.dumps(report['options'], sort_keys=True)}",
        "```",
        "",
        "## Publishing",
        "",
        "Fill in `license` above, then upload the folder with the Hub's own command:",
        "",
        "```bash",
        f"hf upload USER/NAME {report['folder'] or 'FOLDER'} --repo-type dataset",
        "```",
        "",
    ]


def write_card(folder: Path, text: str) -> Path:
    """Write ``folder/README.md``; returns its path."""
    path = folder / "README.md"
    path.write_text(text, encoding="utf-8")
    return path
