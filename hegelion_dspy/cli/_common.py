"""What every hegelion command shares at the edge: one-line errors, exit codes, logging to stderr."""

from __future__ import annotations

import logging
import shlex
import sys
from typing import NoReturn, TextIO

import click

from ..errors import HegelionError, LogWriteError, TrainingInterrupted

EXIT_FAILED = 1  # the command ran but some work failed (e.g. a prompt's LM call)
EXIT_USAGE = 2  # the user's mistake: bad flag, unreadable file, unknown model
EXIT_BUDGET = 3  # a batch stopped at its --max-cost; a rerun with a higher budget resumes
EXIT_LOG = 4  # the log could not be written (full disk, read-only...): the traces are in the fallback file named
EXIT_INTERRUPTED = 130


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time of the write (so captured stderr in tests works too)."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


class _CurrentProg(logging.Formatter):
    """Library log lines carry the prefix of the command running now (``hegelion:``), like every other line it
    prints, also when one process runs several commands (tests)."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{prog()}: {super().format(record)}"


class _NotTruncationWarnings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "response was truncated" not in record.getMessage()


def run(command: click.Command, prog: str, argv: list[str] | None = None) -> NoReturn:
    """Run a click command; turn every expected error into one line on stderr and an exit code."""
    library_log = logging.getLogger("hegelion_dspy")
    if not library_log.handlers:  # once per process, also when main() is called repeatedly (tests)
        handler = _StderrHandler()
        handler.setFormatter(_CurrentProg("%(message)s"))
        library_log.addHandler(handler)
        library_log.setLevel(logging.INFO)
        # DSPy warns on stderr for every reply cut at max_tokens; the trace records it per step (Round.truncated)
        logging.getLogger("dspy.clients.lm").addFilter(_NotTruncationWarnings())
    args = list(sys.argv[1:] if argv is None else argv)
    prefix = PREFIX
    try:
        code = command.main(
            args=args, prog_name=prog, standalone_mode=False, obj={"command_line": shlex.join([prog, *args])}
        )
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.Abort:
        click.echo(f"{prefix}: interrupted", err=True)
        code = EXIT_INTERRUPTED
    except click.ClickException as exc:
        ctx = getattr(exc, "ctx", None)
        where = ctx.command_path if ctx is not None else prog  # `hegelion dataset --help`, not `hegelion --help`
        click.echo(f"{prefix}: error: {exc.format_message()} (see {where} --help)", err=True)
        code = EXIT_USAGE
    except LogWriteError as exc:  # paid work kept out of the log: where it is, not a usage error
        click.echo(f"{prefix}: error: {exc}", err=True)
        code = EXIT_LOG
    except TrainingInterrupted as exc:  # Ctrl-C with a checkpoint kept: the message says how to resume
        click.echo(f"{prefix}: {exc}", err=True)
        code = EXIT_INTERRUPTED
    except HegelionError as exc:
        from .options import as_flags

        click.echo(f"{prefix}: error: {as_flags(str(exc), exc.options)}", err=True)
        code = EXIT_USAGE
    except KeyboardInterrupt:
        click.echo(f"{prefix}: interrupted", err=True)
        code = EXIT_INTERRUPTED
    sys.exit(code if isinstance(code, int) else 0)


def command_line() -> str | None:
    """The command as the user typed it (``hegelion-dataset a.jsonl out.jsonl --stats``), for provenance."""
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_root().obj if ctx is not None else None
    return obj.get("command_line") if isinstance(obj, dict) else None


PREFIX = "hegelion"


def prog() -> str:
    """The prefix of every line a command prints about itself: ``hegelion``, also when an old script name
    (``hegelion-dataset``, ``hegelion-agent``...) ran it, so every run speaks with one prefix. Usage errors still
    point at the command as typed (``see hegelion-dataset --help``)."""
    return PREFIX
