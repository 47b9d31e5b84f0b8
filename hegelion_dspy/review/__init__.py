"""The review web app: browse, search and label a trace log in the browser, and see the dataset's shape.

``create_app(ReviewConfig(log_path=...))`` is an ASGI app (Starlette, guarded); ``hegelion-review`` serves it on
127.0.0.1 and ``hegelion-server --transport streamable-http`` mounts it at ``/review`` (``mount_review``).
"""

from __future__ import annotations

from .app import ReviewConfig, create_app, mount_review

__all__ = ["ReviewConfig", "create_app", "mount_review"]
