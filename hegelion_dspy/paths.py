"""Safe file names inside one data folder: what the MCP server uses for every name a client sends.

A client (an IDE agent) may only name a file directly inside the data folder. ``safe_path`` refuses anything that
could reach elsewhere or clobber data: path separators, ``..``, absolute paths, hidden names, control characters,
symlinks that lead outside the folder, and (unless asked) an existing file.
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

from .errors import ConfigError, UnsafePathError

MAX_NAME_CHARS = 200


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise UnsafePathError(f"file name {name!r} is empty; give a plain file name such as 'dpo.jsonl'")
    if len(name) > MAX_NAME_CHARS:
        raise UnsafePathError(f"file name is {len(name)} characters; the limit is {MAX_NAME_CHARS}")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in name):
        raise UnsafePathError(f"file name {name!r} contains control characters; use a plain file name")
    separators = {"/", "\\", os.sep} | ({os.altsep} if os.altsep else set())
    if os.path.isabs(name) or name.startswith("~"):
        raise UnsafePathError(
            f"file name {name!r} is an absolute path; give a plain name, it is created inside the data folder"
        )
    if name in (".", "..") or any(sep in name for sep in separators):
        raise UnsafePathError(
            f"file name {name!r} contains a path separator or '..'; give a plain name such as 'dpo.jsonl' "
            "(files live directly inside the data folder)"
        )
    if name.startswith("."):
        raise UnsafePathError(f"file name {name!r} is hidden (starts with '.'); use a name that does not")
    if name != name.strip():
        raise UnsafePathError(f"file name {name!r} starts or ends with whitespace; remove it")
    return name


def safe_path(data_dir: str | Path, name: str, *, must_exist: bool = False, overwrite: bool = False) -> Path:
    """The path of ``name`` directly inside ``data_dir``, or UnsafePathError.

    ``must_exist`` requires the file to exist (reading); otherwise an existing file is refused unless ``overwrite``.
    A symlink is followed only when it stays inside the data folder.
    """
    name = _check_name(name)
    root = Path(data_dir).expanduser().resolve()
    path = root / name
    if path.is_symlink():
        target = path.resolve()
        if root not in target.parents:
            raise UnsafePathError(
                f"{name!r} is a symlink that leads outside the data folder ({str(root)!r}); refusing to follow it"
            )
    if path.is_dir():
        raise UnsafePathError(f"{name!r} is a folder inside the data folder, not a file; choose another name")
    exists = path.exists()
    if must_exist and not exists:
        raise ConfigError(f"there is no file named {name!r} in the data folder {str(root)!r}")
    if exists and not must_exist and not overwrite:
        raise UnsafePathError(f"{name!r} already exists in the data folder; choose another name or ask to overwrite it")
    return path
