"""The review web app: browse, search and label a trace log in the browser, and see the dataset's shape.

``create_app(ReviewConfig(log_path=...))`` is an ASGI app (Starlette, guarded); ``hegelion-review`` serves it on
127.0.0.1 and ``hegelion-server --transport streamable-http`` mounts it at ``/review`` (``mount_review``).
"""

from __future__ import annotations

import importlib
from typing import Any

# Imported when first used: the index builder (``review.index.build``, a child process) imports this package and
# needs none of the app (Starlette, Jinja2, the templates).
_LAZY = {"ReviewConfig": "config", "create_app": "app", "mount_review": "app"}

__all__ = ["ReviewConfig", "create_app", "mount_review"]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value
