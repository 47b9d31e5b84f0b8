"""The files of an export: split and card paths, inputs resolved, outputs checked, and temp files renamed into place
only when whole."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO

from ..errors import ExportError, option
from ..litter import sweep_stale, temp_path
from ..logwrite import Refusal, check_writable
from .labels import labels_path

_GLOB_CHARS = frozenset("*?[")
# -- paths ---------------------------------------------------------------------------------------------------------


def split_paths(output: str | Path) -> dict[str, Path]:
    """Where a split export writes: ``data/dpo.jsonl`` -> ``data/dpo.train.jsonl`` and ``data/dpo.test.jsonl``."""
    output = Path(output)
    suffix = output.suffix or ".jsonl"
    stem = output.name[: -len(output.suffix)] if output.suffix else output.name
    return {name: output.with_name(f"{stem}.{name}{suffix}") for name in ("train", "test")}


def card_paths(folder: str | Path, *, split: bool) -> dict[str, Path]:
    """Where a dataset-folder export (``card``) writes its splits: ``FOLDER/data/train.jsonl`` (+ ``test.jsonl``)."""
    names = ("train", "test") if split else ("train",)
    return {name: Path(folder) / "data" / f"{name}.jsonl" for name in names}


def resolve_inputs(inputs: str | Path | Iterable[str | Path]) -> list[Path]:
    """Input log files in order, each once; a pattern with ``* ? [`` that names no file is expanded as a glob."""
    items: list[str | Path] = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    if not items:
        raise ExportError("no input given; pass one or more trace log files (or a glob such as 'logs/*.jsonl')")
    found: list[Path] = []
    seen: set[Path] = set()
    for item in items:
        path = Path(item).expanduser()
        if path.exists():
            matches = [path]
        elif _GLOB_CHARS & set(str(item)):
            matches = [Path(m) for m in sorted(glob.glob(str(path), recursive=True))]
            if not matches:
                raise ExportError(f"the glob {str(item)!r} matches no file; check the pattern and quote it")
        else:
            raise ExportError(f"input {str(item)!r} does not exist; check the path")
        for match in matches:
            if match.is_dir():
                raise ExportError(f"input {str(match)!r} is a folder; pass its log files (e.g. '{match}/*.jsonl')")
            key = match.resolve()
            if key not in seen:
                seen.add(key)
                found.append(match)
    return found


_REPLACE_HINT = f"set {option('force')} to replace it"  # the error saying it names options=FORCE
FORCE = ("force",)
CARD_MARK = "<!-- written by hegelion-dspy -->"


_ELSEWHERE: Refusal = {"nothing": "nothing was written", "elsewhere": "give another output path", "options": ()}


def _check_outputs(outputs: Mapping[str, Path], inputs: list[Path], force: bool) -> None:
    input_keys = {p.resolve() for p in inputs}
    sidecars = {labels_path(p).resolve() for p in inputs}
    for path in outputs.values():
        sweep_stale(path)  # what a killed export of the same file left behind
        if path.resolve() in input_keys:
            raise ExportError(f"the output {str(path)!r} is also an input; write the dataset to another file")
        if path.resolve() in sidecars:
            raise ExportError(f"the output {str(path)!r} is an input's labels file; write the dataset to another file")
        if path.is_dir():
            raise ExportError(f"the output {str(path)!r} is a folder; give a file name such as '{path}/train.jsonl'")
        if path.exists() and not force:
            raise ExportError(f"{str(path)!r} already exists; {_REPLACE_HINT}", options=FORCE)
        check_writable(path, what="dataset file", **_ELSEWHERE)  # a read-only or nearly full disk, before any row


def _check_card_folder(folder: Path, inputs: list[Path], force: bool) -> None:
    sweep_stale(folder)  # a killed export's staging folder or replaced folder
    if folder.exists() and not folder.is_dir():
        raise ExportError(f"{str(folder)!r} is a file; a dataset card export writes a folder, give a folder name")
    if any(folder.resolve() in p.resolve().parents for p in inputs):
        raise ExportError(f"the input logs live inside {str(folder)!r}; write the dataset folder elsewhere")
    if folder.is_dir() and any(folder.iterdir()):
        if not force:
            raise ExportError(f"the folder {str(folder)!r} already exists; {_REPLACE_HINT}", options=FORCE)
        readme = folder / "README.md"
        if not (readme.is_file() and CARD_MARK in readme.read_text(encoding="utf-8", errors="replace")):
            raise ExportError(
                f"{str(folder)!r} is not a dataset folder this tool wrote (no README.md of ours); it is never "
                "replaced, even with --force: choose another folder"
            )
    # staged beside itself and renamed into place: its parent must take new entries, with space to spare
    check_writable(folder, what="dataset folder", folder=True, **_ELSEWHERE)


def _copy_range(source: int, target: int, offset: int, count: int) -> None:
    """Append ``count`` bytes of ``source`` from ``offset`` to ``target`` (copy_file_range where the OS has it)."""
    while count > 0:
        try:
            done = os.copy_file_range(source, target, count, offset)
        except (AttributeError, OSError):  # no such call on this OS or filesystem: copy through a buffer
            done = os.write(target, os.pread(source, min(count, 1 << 22), offset))
        if done == 0:
            raise ExportError("the temp file ended early while compacting it; nothing was written")
        offset += done
        count -= done


class _AtomicFile:
    """A temp file beside ``target`` that becomes ``target`` on commit() and vanishes on discard()."""

    def __init__(self, target: Path, *, force: bool):
        self.target = target
        self.force = force
        target.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = temp_path(target)
        # os.open honours the umask (tempfile would make the dataset private, mode 0600).
        fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        self.fh: IO[bytes] = os.fdopen(fd, "wb", buffering=1 << 20)

    def cut(self, dead: list[tuple[int, int]]) -> None:
        """Rewrite the temp file without these (offset, length) byte ranges, copying the rest in the kernel."""
        self.fh.close()
        compacted = self.tmp.with_name(self.tmp.name + ".c")
        size = self.tmp.stat().st_size
        with open(self.tmp, "rb") as source, open(compacted, "wb") as out:
            position = 0
            for offset, length in [*sorted(dead), (size, 0)]:
                _copy_range(source.fileno(), out.fileno(), position, offset - position)
                position = offset + length
        os.replace(compacted, self.tmp)

    def commit(self) -> None:
        self.fh.close()
        if self.force:
            os.replace(self.tmp, self.target)
            return
        try:
            os.link(self.tmp, self.target)  # never clobbers a file that appeared while we were writing
        except FileExistsError:
            appeared = f"{str(self.target)!r} appeared while exporting"
            raise ExportError(f"{appeared}; {_REPLACE_HINT}", options=FORCE) from None
        except OSError:  # a filesystem without hard links
            if self.target.exists():
                raise ExportError(f"{str(self.target)!r} already exists; {_REPLACE_HINT}", options=FORCE) from None
            os.replace(self.tmp, self.target)
            return
        os.unlink(self.tmp)

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.fh.close()
        for path in (self.tmp, self.tmp.with_name(self.tmp.name + ".c")):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def _swap_in(staging: Path, folder: Path) -> None:
    """Put the finished dataset folder in place; a previous one of ours is replaced only once the new one is whole."""
    old = None
    if folder.exists():
        old = temp_path(folder, "old")
        os.replace(folder, old)
    os.replace(staging, folder)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
