"""hegelion logs: read the trace log back (as ``llm logs`` does): the latest traces, one trace in full, counts.

hegelion logs                       # the 20 latest traces, newest first
hegelion logs -n 5 --model 'openai/*' --status failed
hegelion logs show 3f2a             # one trace in full (an id or its first characters); --json for the record
hegelion logs --stats               # counts by status, model, mode, source
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path

import click

from ..curate.selection import TraceFilter
from ..quality import flags_of
from ..store import LogCounts, TraceStore, default_log_path
from ..types import STEPS, ModelIdentity, TraceRecord
from ._common import prog, run
from .options import FLAG_NAMES, fields_as_options, given_options

PROG = "hegelion logs"

log_file_option = click.option(
    "--log-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The trace log [default: $HEGELION_LOG_FILE or $HEGELION_DATA_DIR/traces.jsonl].",
)


def _store(log_file: Path | None) -> TraceStore:
    store = TraceStore(log_file or default_log_path())
    if not store.exists():
        raise click.UsageError(f"no trace log at {store.path}; run a dialectic first or pass --log-file")
    return store


def _selection(options: Mapping[str, object], status: str | None, exclude_demo: bool) -> Callable[[TraceRecord], bool]:
    # Reading a log back shows demo traces too (marked), unlike exports; --exclude-demo hides them.
    chosen = TraceFilter.model_validate({**given_options(options, TraceFilter), "include_demo": not exclude_demo})
    left_out = chosen.compiled()  # once: ``reason`` would build the filter function again for every record

    def where(record: TraceRecord) -> bool:
        return (status is None or record.status == status) and left_out(record) is None

    return where


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@log_file_option
@click.option("--limit", "-n", type=click.IntRange(min=1), default=20, show_default=True, help="Traces to list.")
@click.option("--status", type=click.Choice(["ok", "failed"]), help="Only traces with this status.")
@click.option("--exclude-demo", is_flag=True, help="Hide traces of the demo models (embedded, scripted).")
@fields_as_options(TraceFilter, skip=["include_demo"], names=FLAG_NAMES)
@click.option("--json", "as_json", is_flag=True, help="One JSON record a line (newest first) instead of a table.")
@click.option("--stats", is_flag=True, help="Count the (filtered) traces by status, model, mode and source.")
@click.pass_context
def logs(
    ctx: click.Context,
    log_file: Path | None,
    limit: int,
    status: str | None,
    exclude_demo: bool,
    as_json: bool,
    stats: bool,
    **options: object,
) -> int:
    """List the latest traces of the log, newest first; `hegelion logs show ID` shows one in full."""
    if ctx.invoked_subcommand is not None:
        return 0
    store = _store(log_file)
    where = _selection(options, status, exclude_demo)
    if stats:
        counted = store.stats(where)
        click.echo(json.dumps(counted.as_dict(), indent=2) if as_json else _stats_text(store.path, counted.as_dict()))
        return 0
    latest = list(reversed(store.recent(limit, where)))
    if as_json:
        for record in latest:
            click.echo(record.model_dump_json())
        return 0
    if not latest:
        click.echo(f"{prog()}: no traces match in {store.path}", err=True)
        return 0
    click.echo(f"{'id':<12}  {'created (UTC)':<16}  {'model':<34}  {'status':<6}  {'score':>5}  task")
    for record in latest:
        click.echo(_row(record))
    return 0


def _row(record: TraceRecord) -> str:
    suffix = " (demo)" if record.demo else ""
    model = _clip(record.model or "?", 34 - len(suffix)) + suffix
    score = "" if record.score is None else f"{record.score:.2f}"
    task = (record.task.strip().splitlines() or [""])[0]
    flags = flags_of(record) if record.ok else []
    marks = f"  [{', '.join(flags)}]" if flags else ""  # quality flags last, so the task column stays put
    return (
        f"{record.id[:12]:<12}  {record.created_at:%Y-%m-%d %H:%M}  {model:<34}  "
        f"{record.status:<6}  {score:>5}  {_clip(task, 60)}{marks}"
    )


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _stats_text(path: Path, data: LogCounts) -> str:
    lines = [
        f"log       {path}",
        f"traces    {data['total']:,} ({data['ok']:,} ok, {data['failed']:,} failed, {data['demo']:,} demo; "
        f"{data['invalid']:,} invalid lines)",
    ]
    if data["scored"]:
        lines.append(f"scored    {data['scored']:,} (mean {data['mean_score']:.2f})")
    for title, counts in (("model", data["by_model"]), ("mode", data["by_mode"]), ("source", data["by_source"])):
        for name, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"{title:<9} {name:<40} {n:>9,}")
    return "\n".join(lines)


@logs.command("show")
@click.argument("trace_id")
@log_file_option
@click.option("--json", "as_json", is_flag=True, help="The whole record as JSON.")
@click.pass_context
def show(ctx: click.Context, trace_id: str, log_file: Path | None, as_json: bool) -> int:
    """Show one trace in full: every round's thesis, antithesis with its contradictions, and synthesis."""
    if log_file is None and ctx.parent is not None:  # `hegelion logs --log-file X show ID`
        log_file = ctx.parent.params.get("log_file")
    store = _store(log_file)
    record = store.find(trace_id)
    click.echo(record.model_dump_json(indent=2) if as_json else trace_text(record))
    return 0


def identity_text(identity: ModelIdentity) -> str:
    """Which model file answered, in one line: its name, digest, path or served ids, and why it is demo."""
    parts = [identity.name or identity.served or identity.path or "?"]
    if identity.sha256:
        parts.append(f"sha256 {identity.sha256[:16]}")
    if identity.source == "server" and identity.api_base:
        parts.append(f"served by {identity.api_base}")
    if identity.demo:
        parts.append(f"demo: {identity.demo_reason or 'a demo model'}")
    return ", ".join(parts)


def trace_text(record: TraceRecord) -> str:
    """A trace for reading in a terminal."""
    out = [
        f"trace     {record.id}",
        f"created   {record.created_at.isoformat(timespec='seconds')}  source {record.source}  mode {record.mode}",
        f"model     {record.model or '?'}{'  (demo model: not exported unless asked)' if record.demo else ''}",
        f"status    {record.status}"
        + (f"  score {record.score:.2f}" if record.score is not None else "")
        + (f"  cost ${record.cost_usd:.4f}" if record.cost_usd is not None else ""),
    ]
    flags = flags_of(record) if record.ok else []
    if flags:
        out.append(f"flags     {', '.join(flags)}  (its pairs are left out of exports unless --allow-flag)")
    if record.program:
        out.append(f"program   {record.program} ({record.program_digest or 'no digest'})")
    if record.model_identity is not None:
        out.append(f"answered  {identity_text(record.model_identity)}")
    if record.tags:
        out.append(f"tags      {', '.join(record.tags)}")
    out += ["", "task", textwrap.indent(record.task.strip(), "  ")]
    for r in record.rounds:
        for step in STEPS:
            if r.index > 1 and step == "thesis":
                continue  # the previous round's synthesis
            facts = [f"{r.seconds[step]:.1f} s"] if step in r.seconds else []
            usage = r.usage.get(step)
            if usage is not None and usage.completion_tokens is not None:
                facts.append(f"{usage.completion_tokens} tokens")
            if step in r.adapters:
                facts.append(r.adapters[step])
            if step in r.truncated:
                facts.append("hit max_tokens")
            out += ["", f"round {r.index} · {step}" + (f" ({', '.join(facts)})" if facts else "")]
            out.append(textwrap.indent(getattr(r, step).strip(), "  "))
            if step == "antithesis":
                for c in r.contradictions:
                    out.append(f"  - {c.description}" + (f" (evidence: {c.evidence})" if c.evidence else ""))
    if record.error is not None:
        err = record.error
        out += ["", f"failed in the {err.step} step of round {err.round}: {err.type}: {err.message}"]
    judge = record.metadata.get("judge")
    if isinstance(judge, dict) and judge.get("feedback"):
        out += ["", "judge", textwrap.indent(str(judge["feedback"]).strip(), "  ")]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    run(logs, PROG, argv)
