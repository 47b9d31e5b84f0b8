"""Temp files that name their writer, and the sweep that removes those a dead writer left behind.

Every temp file or folder written beside a target (an export's ``.NAME.PID.TOKEN.tmp``, its compacted ``.tmp.c``, a
replaced dataset folder's ``.NAME.PID.TOKEN.old``) carries the writer's process id (``temp_path``). A writer that is
killed (SIGKILL, a power cut) cannot remove its own; the next writer of the same target does (``sweep_stale``): a temp
whose process no longer runs on this machine is removed, and the removal is logged.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
from pathlib import Path

log = logging.getLogger("hegelion_dspy.litter")

_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.(?:tmp|tmp\.c|old)$")


def temp_path(target: Path, kind: str = "tmp") -> Path:
    """A fresh temp name beside ``target`` that names this process: ``.NAME.PID.TOKEN.KIND``."""
    return target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.{kind}")


def writer_alive(pid: int) -> bool:
    """True while a process ``pid`` runs on this machine (ours, or another user's)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it runs, as someone else
    except OSError:
        return True  # cannot tell: keep the file
    return True


def sweep_stale(target: Path) -> list[Path]:
    """Remove the temp files and folders of ``target`` (beside it) whose writer is dead; the paths removed."""
    folder = target.parent
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    removed: list[Path] = []
    for entry in entries:
        match = _TEMP.match(entry.name)
        if match is None or match.group("name") != target.name or writer_alive(int(match.group("pid"))):
            continue
        path = Path(entry.path)
        size = _size(path)
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError as exc:
            log.warning("cannot remove %s, left by a writer that is gone (pid %s): %s", path, match["pid"], exc)
            continue
        log.warning("removed %s (%s), left by a writer that is gone (pid %s)", path, _human(size), match["pid"])
        removed.append(path)
    return removed


def _size(path: Path) -> int:
    if not path.is_dir():
        try:
            return path.stat().st_size
        except OSError:
            return 0
    return sum(_size(child) for child in path.iterdir())


def _human(size: int) -> str:
    if size < 1024:
        return f"{size:,} bytes"
    scaled = float(size)
    for unit in ("KiB", "MiB", "GiB"):
        scaled /= 1024
        if scaled < 1024 or unit == "GiB":
            break
    return f"{scaled:.1f} {unit}"
