"""ServerState: what the tools share - the data folder, the trace log, the server's model and its programs.

The model and the programs load on first use, in a worker thread, so start-up imports neither dspy nor a model.
Nothing is written to the data folder until a tool writes a trace or a dataset.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread

from hegelion_dspy.errors import ConfigError, UnsafePathError
from hegelion_dspy.lms.env import ENV_MODEL
from hegelion_dspy.paths import safe_path
from hegelion_dspy.store import LOG_NAME, LogStats, TraceStore, default_data_dir
from hegelion_dspy.types import Mode, TraceRecord

if TYPE_CHECKING:
    from hegelion_dspy.curate.report import ExportReport
    from hegelion_dspy.lms.base import NamedLM
    from hegelion_dspy.program import Dialectic

    from .schemas import ExportDatasetArguments

logger = logging.getLogger("hegelion_server")

ENV_PROGRAM = "HEGELION_PROGRAM"


@dataclass(frozen=True)
class LoadedProgram:
    """A program and, when it is a compiled one, its file and digest (stored with each trace)."""

    dialectic: Dialectic
    path: str | None = None
    digest: str | None = None


class ServerState:
    """The server's configuration and shared objects. ``lm`` (a dspy.BaseLM) or ``model`` (a model string) give the
    server its own model; without one, ``run_dialectic`` uses the client's model or the prompt workflow."""

    def __init__(
        self,
        *,
        data_dir: str | Path | None = None,
        lm: NamedLM | None = None,
        model: str | None = None,
        program: str | Path | None = None,
    ):
        self.data_dir = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
        self.store = TraceStore(self.data_dir / LOG_NAME)
        self.model = (model if model is not None else os.environ.get(ENV_MODEL, "")).strip() or None
        self._lm = lm
        program = program if program is not None else (os.environ.get(ENV_PROGRAM) or None)
        self.program_path = self._program_file(program) if program is not None else None
        self._programs: dict[str, LoadedProgram] = {}
        self._load_lock = anyio.Lock()

    def _program_file(self, program: str | Path) -> str:
        # Like every file the server reads, the program lives in the data folder: a name, or an absolute path in it.
        path = Path(program).expanduser()
        name = str(program)
        if path.is_absolute():
            root = self.data_dir.resolve()
            if path.resolve().parent != root:
                raise UnsafePathError(
                    f"{ENV_PROGRAM} {name!r} is not in the data folder {str(root)!r}; copy the program file there "
                    "(every file the server reads or writes lives in it)"
                )
            name = path.name
        return str(safe_path(self.data_dir, name, must_exist=True))

    @property
    def has_server_model(self) -> bool:
        return self._lm is not None or self.model is not None

    async def program(self, mode: Mode) -> LoadedProgram:
        """The program for ``mode`` (the compiled one when it is for that mode), loaded once."""
        async with self._load_lock:
            if mode not in self._programs:
                self._programs[mode] = await anyio.to_thread.run_sync(self._load_program, mode)
            return self._programs[mode]

    def _load_program(self, mode: Mode) -> LoadedProgram:
        from hegelion_dspy.program import Dialectic, load_program, program_digest

        if self.program_path is not None:
            compiled = load_program(self.program_path)
            if compiled.mode == mode:
                return LoadedProgram(compiled, self.program_path, program_digest(self.program_path))
            logger.info("the compiled program is for %r tasks; %r tasks use the default program", compiled.mode, mode)
        return LoadedProgram(Dialectic(mode=mode))

    async def server_lm(self) -> NamedLM:
        """The server's own model (a dspy.BaseLM), built once, with the library's manners toward hosted APIs
        (retries with backoff on 429/5xx, cost per step), as every batch has them. Client sampling never gets them: a
        retried sampling request would ask the user for another approval."""
        async with self._load_lock:
            if self._lm is None:
                from hegelion_dspy.lms.chooser import make_lm
                from hegelion_dspy.lms.manners import polite

                self._lm = polite(await anyio.to_thread.run_sync(make_lm, self.model))
            return self._lm

    async def append(self, record: TraceRecord) -> LogStats:
        """Log one trace; the log's counts after it."""
        return await anyio.to_thread.run_sync(self.store.append_counted, record)

    async def counts(self) -> LogStats:
        return await anyio.to_thread.run_sync(self.store.counts)

    async def recent(self, n: int) -> list[TraceRecord]:
        return await anyio.to_thread.run_sync(self.store.recent, n)

    async def export(self, args: ExportDatasetArguments) -> ExportReport:
        """Export the log into the data folder: a plain name in it, never the log itself, no file replaced unless
        ``force``."""
        from hegelion_dspy.curate.driver import export_dataset
        from hegelion_dspy.curate.files import split_paths

        options = args.model_dump(exclude={"output_name"})
        name = args.output_name or f"{args.format}.jsonl"
        target = safe_path(self.data_dir, name, overwrite=True)  # the name; each file written is checked below
        outputs = split_paths(target) if args.split else {"train": target}
        for path in outputs.values():
            safe_path(self.data_dir, path.name, overwrite=args.force)
        if self.store.path.resolve() in {p.resolve() for p in outputs.values()}:
            raise ConfigError(f"{name!r} is the trace log itself; write the dataset to another name")
        if not self.store.path.exists() or self.store.path.stat().st_size == 0:
            raise ConfigError("the trace log is empty: run run_dialectic or log_trace first, then export")
        run = partial(export_dataset, self.store.path, target, options)
        return await anyio.to_thread.run_sync(run)
