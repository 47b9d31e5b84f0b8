"""The streaming export: trace logs in, training rows out, in constant memory.

``export_dataset`` checks the options and paths, opens temp files beside the outputs, runs the loop over traces
(``stream.ExportStream``), refuses an export that would write nothing or an empty split, and renames the files into
place (with ``card``: a dataset folder with its README). Its choices are one validated ``ExportOptions`` shared by the
Python API, ``hegelion-dataset`` and the MCP tool. This module must not import dspy: the MCP server imports it at start.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import ExportError, option
from ..quality import FLAGS
from .card import card_text, write_card
from .files import _AtomicFile, _check_card_folder, _check_outputs, _swap_in, card_paths, resolve_inputs, split_paths
from .labels import OUTCOMES
from .options import ExportOptions
from .report import ExportReport
from .stream import ExportStream, _Kept
from .verdict import DROP_REASONS, TRACE_REASONS


def export_dataset(
    inputs: str | Path | Sequence[str | Path],
    output: str | Path,
    options: ExportOptions | Mapping[str, Any] | None = None,
    *,
    command: str | None = None,
    **changes: Any,
) -> ExportReport:
    """Stream trace logs into a JSONL training set and return what was kept and dropped.

    ``options`` (an ``ExportOptions``) and/or its fields as keywords say how (``export_dataset(log, out,
    format="sft", models=["openai/*"])``). Only ``ok`` traces are used; the filter leaves out demo traces (unless
    ``include_demo``) and traces outside the chosen models, sources, tags and dates. Rows with an empty side, with
    chosen equal to rejected, or shorter than ``min_chars`` are dropped; with ``min_score`` so are traces scored below
    it or not scored. ``dedupe`` keeps one trace per normalised task, chosen by ``keep``. ``split`` sends that fraction
    of prompts to a test file, chosen per prompt by a hash of the normalised task and ``seed`` (deterministic,
    streaming, no prompt in both files). ``card`` writes ``output`` as a dataset folder with a README.md dataset card
    (``command``, the command line that ran the export, is written into it).

    Output is written beside its target and renamed at the end: on any error nothing partial remains and an existing
    output is untouched. Raises ExportError for options or paths that cannot work, InvalidTraceError
    (``path:line: reason``) at the first bad log line unless ``skip_invalid``.
    """
    started = time.perf_counter()
    opts = ExportOptions.of(options, **changes)
    input_paths = resolve_inputs(inputs)
    output = Path(output)
    staging, targets, final = _plan_outputs(opts, input_paths, output)
    report = _new_report(opts, input_paths, output, targets, final)
    files: dict[str, _AtomicFile] = {}
    try:
        for name, path in targets.items():
            files[name] = _AtomicFile(path, force=opts.force or opts.card)
        stream = ExportStream(opts, files, report)
        for path in input_paths:
            stream.read(path)
        ranked = stream.finish()
        _check_rows(report, opts)
        _commit(files, ranked)
        if staging is not None:
            _write_folder(staging, output, report, opts, command)
    except BaseException:
        for f in files.values():
            f.discard()
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    report.seconds = time.perf_counter() - started
    return report


def _plan_outputs(
    opts: ExportOptions, inputs: list[Path], output: Path
) -> tuple[Path | None, dict[str, Path], dict[str, Path]]:
    """(the staging folder of a card export or None, where the splits are written, where they end up); the outputs
    checked against the inputs and ``force``."""
    if opts.card:
        _check_card_folder(output, inputs, opts.force)
        staging = output.with_name(f".{output.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        return staging, card_paths(staging, split=bool(opts.split)), card_paths(output, split=bool(opts.split))
    targets = split_paths(output) if opts.split else {"train": output}
    _check_outputs(targets, inputs, opts.force)
    return None, targets, targets


def _new_report(
    opts: ExportOptions, inputs: list[Path], output: Path, targets: dict[str, Path], final: dict[str, Path]
) -> ExportReport:
    return ExportReport(
        format=opts.format,
        inputs=[str(p) for p in inputs],
        outputs={name: str(p) for name, p in final.items()},
        rows=dict.fromkeys(targets, 0),
        options=opts.model_dump(mode="json"),
        dropped=dict.fromkeys(DROP_REASONS, 0),
        labels=dict.fromkeys(OUTCOMES, 0),
        flagged=dict.fromkeys(FLAGS, 0),
        folder=str(output) if opts.card else None,
    )


def _check_rows(report: ExportReport, opts: ExportOptions) -> None:
    """Refuse an export that writes no row, or an empty split."""
    if report.rows_written == 0:
        message = f"no rows to write; nothing was written. {_nothing_kept(report, opts)}"
        raise ExportError(message, options=tuple(n for n in ExportOptions.model_fields if option(n) in message))
    if opts.split and 0 in report.rows.values():
        raise ExportError(_empty_split(report, opts.split))


def _commit(files: dict[str, _AtomicFile], ranked: _Kept | None) -> None:
    """Cut the rows of replaced traces out of the temp files, then rename each into place."""
    if ranked is not None:
        for index, name in enumerate(files):
            if ranked.dead[index]:
                files[name].cut(ranked.dead[index])
    for f in files.values():
        f.commit()


def _write_folder(staging: Path, output: Path, report: ExportReport, opts: ExportOptions, command: str | None) -> None:
    """Write the dataset card into the staging folder and swap the folder into place."""
    text = card_text(
        report.as_dict(),
        opts.model_dump(),
        filters=opts.describe(),
        trace_reasons=TRACE_REASONS,
        command=command,
    )
    write_card(staging, text)
    _swap_in(staging, output)


def _empty_split(report: ExportReport, split: float) -> str:
    """Why a split export is refused: an empty split would be written (and listed by the card) that
    ``datasets.load_dataset`` cannot load."""
    counts = ", ".join(f"{name} {n:,}" for name, n in report.rows.items())
    empty = next(name for name, n in report.rows.items() if n == 0)
    return (
        f"option 'split' {split}: the {empty} split would be empty (rows per split: {counts}); nothing was written. "
        "Use more traces, another split fraction or seed, or no split"
    )


def _nothing_kept(report: ExportReport, opts: ExportOptions) -> str:
    if report.traces_read == 0:
        return "The inputs hold no valid traces" + (
            f" ({report.invalid} invalid lines skipped)." if report.invalid else " (empty files)."
        )
    reasons = ", ".join(f"{k}={v}" for k, v in report.dropped.items() if v)
    hint = f" {demo_hint(report.dropped['demo'])}" if report.dropped.get("demo") else ""
    return f"Read {report.traces_read} traces; dropped: {reasons or 'none'}.{hint}"


def demo_hint(n: int) -> str:
    """What to say about demo traces left out of an export."""
    traces = "trace" if n == 1 else "traces"
    return (
        f"{n:,} {traces} of a demo model (the shipped SmolLM2 by any route, a model trained from it, or the scripted "
        "fake) left out: they prove the pipeline, they are not training data; use a real model, or set option "
        "'include_demo' for a dry run"
    )
