"""The one place that reaches into DSPy below its public API, and why.

Checked against DSPy 3.4.1. ``tests/lms/test_dspy_private.py`` fails when upstream moves what this relies on.

- ``adapter_message_call`` (``dspy.clients._deprecation``): DSPy 3.4 warns (DeprecationWarning) when an adapter's
  ``messages=`` list reaches an LM the adapter did not call itself. ``PoliteLM`` sits between the adapter and the LM it
  wraps, so it forwards the adapter's mark to the inner call; there is no public way to say "this call is the
  adapter's". The module goes away with the ``messages=`` interface in DSPy 3.5, and the fallback then does nothing.
"""

from __future__ import annotations

import contextlib
from typing import Any

CHECKED_AGAINST = "3.4.1"

try:
    from dspy.clients._deprecation import adapter_message_call as _adapter_message_call
except ImportError:  # pragma: no cover - gone with the messages= interface in DSPy 3.5
    _adapter_message_call = None


def adapter_message_call(lm: Any, messages: Any) -> contextlib.AbstractContextManager[None]:
    """Mark the call of ``lm`` with ``messages`` as the adapter's own (no deprecation warning for it)."""
    if _adapter_message_call is None:  # pragma: no cover - DSPy 3.5
        return contextlib.nullcontext()
    return _adapter_message_call(lm, messages)
