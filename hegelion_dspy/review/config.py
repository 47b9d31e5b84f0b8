"""What a review app serves, and under which export options it previews rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..curate.selection import Keep
from .index import PairView


@dataclass(frozen=True)
class ReviewConfig:
    """What the app serves and under which export options it previews rows (``view``, ``min_chars``, ``keep``...)."""

    log_path: Path
    view: PairView = field(default_factory=PairView)
    min_chars: int = 0
    min_score: float | None = None
    reviewed_only: bool = False
    keep: Keep = "best"
    labeller: str | None = None
    allowed_hosts: tuple[str, ...] = ()
    index_path: Path | None = None
