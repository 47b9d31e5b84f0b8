"""Local GGUF models on llama.cpp, in this process, through the prebuilt ``xllamacpp`` wheel (CPU, no compiler, no
torch). The embedded default model and any ``gguf:PATH`` model string run here.

- ``runtime_for(path)`` loads one llama.cpp server per model file per process (later calls get the same one). Its
  parallel slots (continuous batching) serve concurrent calls together: K dialectics share the model, each decode
  step advancing every busy slot at once, instead of queueing behind a lock.
- ``GGUFLM`` is a ``dspy.LM`` over that runtime: the chat template comes from the file's metadata (llama.cpp's Jinja
  engine), ``max_tokens`` / ``temperature`` / ``top_p`` / ``seed`` / ``stop`` per call, and a reply cut off at
  ``max_tokens`` is reported to the step recorder as truncated.

The runtime also answers llama.cpp's OpenAI-compatible HTTP API on a free 127.0.0.1 port (``LlamaRuntime.base_url``,
guarded by a random key, ``LlamaRuntime.api_key``); calls from this process do not go through it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dspy
from dspy.lm15 import Config

from ..errors import ConfigError, LMError
from .adapters import WholeReplyAdapter
from .base import ChatMessages, Completion, MessagesLM

log = logging.getLogger("hegelion_dspy.llamacpp")

GGUF_PREFIX = "gguf:"  # a model string naming a local GGUF file: gguf:PATH (no LiteLLM provider has a colon prefix)
GGUF_MAGIC = b"GGUF"
INSTALL_HINT = 'install the llama.cpp runtime with: pip install -e ".[local]"'

# New tokens per step for a local model on CPU: a full answer from a 7B model in a few minutes on a laptop.
GGUF_MAX_TOKENS = 1024
# Parallel slots: concurrent calls that decode together. Four covers the default --concurrency; more are queued.
DEFAULT_SLOTS = 4
# Context tokens per slot. The slots share one KV cache (llama.cpp's unified cache), so one long prompt may use more.
CONTEXT_PER_SLOT = 2048
MIN_CONTEXT = 8192
# Small models loop on a phrase under greedy decoding; llama.cpp's repeat penalty (last 64 tokens) stops that.
DEFAULT_REPEAT_PENALTY = 1.15


ENV_THREADS = "HEGELION_THREADS"


def env_threads() -> int | None:
    """``$HEGELION_THREADS`` as a thread count, or None when it is not set (ConfigError when it is not a count)."""
    value = os.environ.get(ENV_THREADS, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"{ENV_THREADS}={value!r} is not a thread count; set it to a whole number of at least 1")
    return int(value)


def default_threads() -> int:
    """``$HEGELION_THREADS``, else the CPU cores this process may use."""
    chosen = env_threads()
    if chosen is not None:
        return chosen
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def check_gguf(path: str | Path) -> Path:
    """``path`` resolved, or ConfigError naming it when it is missing, not a file or not a GGUF file."""
    given = str(path)
    resolved = Path(path).expanduser()
    if not resolved.exists():
        raise ConfigError(f"model file {given!r} does not exist; give the path of a .gguf file as gguf:PATH")
    if not resolved.is_file():
        raise ConfigError(f"model file {given!r} is not a file; give the path of a .gguf file as gguf:PATH")
    try:
        with open(resolved, "rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise ConfigError(f"model file {given!r} cannot be read ({exc.strerror}); check its permissions") from None
    if magic != GGUF_MAGIC:
        raise ConfigError(
            f"model file {given!r} is not a GGUF file (it starts with {magic!r}, not b'GGUF'); llama.cpp runs "
            "GGUF files only: convert the model with llama.cpp's convert_hf_to_gguf.py or download a .gguf build"
        )
    return resolved.resolve()


def _xllamacpp() -> Any:
    if importlib.util.find_spec("xllamacpp") is None:
        raise ConfigError(f"local GGUF models need the package 'xllamacpp', which is not installed; {INSTALL_HINT}")
    import xllamacpp

    return xllamacpp


@dataclass(frozen=True)
class RuntimeStats:
    """llama.cpp's own counters since the model loaded.

    ``decodes``: batched decode steps; ``busy_slot_decodes``: the sum over those steps of the slots each advanced.
    Their ratio above 1 means requests were decoded together (continuous batching), not one after another.
    """

    decodes: int
    busy_slot_decodes: int
    tokens_predicted: int
    prompt_tokens: int

    @property
    def busy_slots_per_decode(self) -> float:
        return self.busy_slot_decodes / self.decodes if self.decodes else 0.0

    def since(self, earlier: RuntimeStats) -> RuntimeStats:
        return RuntimeStats(
            decodes=self.decodes - earlier.decodes,
            busy_slot_decodes=self.busy_slot_decodes - earlier.busy_slot_decodes,
            tokens_predicted=self.tokens_predicted - earlier.tokens_predicted,
            prompt_tokens=self.prompt_tokens - earlier.prompt_tokens,
        )


_METRIC = re.compile(r"^llamacpp:(\w+) ([0-9.eE+-]+)$", re.M)


class LlamaRuntime:
    """One GGUF file loaded into llama.cpp with ``slots`` parallel slots. Thread-safe; calls release the GIL.

    Use ``runtime_for(path)``: it loads each file once per process.
    """

    def __init__(
        self,
        path: Path,
        *,
        slots: int = DEFAULT_SLOTS,
        threads: int | None = None,
        context: int | None = None,
    ):
        xllamacpp = _xllamacpp()
        self.path = path
        self.slots = max(1, slots)
        self.threads = threads or default_threads()
        self.context = context or max(MIN_CONTEXT, CONTEXT_PER_SLOT * self.slots)
        self.api_key = secrets.token_urlsafe(24)
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.n_ctx = self.context
        params.n_parallel = self.slots
        params.kv_unified = True  # the slots share one KV cache: memory for `context` tokens, not slots x context
        params.cpuparams.n_threads = self.threads
        params.cpuparams_batch.n_threads = self.threads
        # Threads sleep instead of spinning between steps: spinning costs 2-5x when other processes share the cores.
        params.cpuparams.poll = 0
        params.cpuparams_batch.poll = 0
        params.warmup = False  # an empty run at load; the first real call warms up as well
        params.fit_params = False  # a trial load to fit layers into GPU memory: there is no GPU here (halves the load)
        params.cache_ram_mib = 0  # no host-memory prompt cache beside the KV cache (it would grow to GBs)
        params.endpoint_metrics = True  # the slot accounting read by stats()
        params.offline = True  # never fetch anything (a GGUF path needs nothing from a hub)
        params.port = 0  # the HTTP API on a free port of 127.0.0.1
        params.api_keys = [self.api_key]  # other local processes cannot use it without the key
        params.verbosity = -1  # llama.cpp logs nothing on stderr; loading is announced on our logger
        started = time.perf_counter()
        try:
            self.server = xllamacpp.Server(params)
        except RuntimeError as exc:
            raise ConfigError(
                f"llama.cpp could not load {str(path)!r} ({exc}); is it a complete GGUF file of a model architecture "
                "llama.cpp supports? Re-download it or try another file"
            ) from None
        self.load_seconds = time.perf_counter() - started
        self.base_url = f"{self.server.listening_address}/v1"
        log.info(
            "loaded %s in %.1f s (slots: %d, threads: %d, context: %d tokens)",
            path.name,
            self.load_seconds,
            self.slots,
            self.threads,
            self.context,
        )

    def __deepcopy__(self, memo: dict[int, object]) -> LlamaRuntime:
        return self  # the loaded model is shared by every copy of an LM

    def chat(
        self,
        messages: ChatMessages,
        *,
        max_tokens: int,
        temperature: float = 0.0,
        top_p: float | None = None,
        seed: int | None = None,
        stop: tuple[str, ...] = (),
        repeat_penalty: float = DEFAULT_REPEAT_PENALTY,
    ) -> Completion:
        """One chat completion; blocks its thread (not others) until the reply is done."""
        request: dict[str, Any] = {
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "repeat_penalty": repeat_penalty,
        }
        if top_p is not None:
            request["top_p"] = top_p
        if seed is not None:
            request["seed"] = seed
        if stop:
            request["stop"] = list(stop)
        reply = self.server.handle_chat_completions(request)
        if "choices" not in reply:  # an error body: {"error": {"message": ...}} or {"code", "message"}
            error = reply.get("error")
            detail = error.get("message") if isinstance(error, dict) else reply.get("message", reply)
            raise LMError(f"llama.cpp refused the request for {self.path.name}: {detail}")
        [choice] = reply["choices"]
        usage = reply.get("usage") or {}
        return Completion(
            text=(choice.get("message") or {}).get("content") or "",
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            truncated=choice.get("finish_reason") == "length",
        )

    def stats(self) -> RuntimeStats:
        """llama.cpp's slot accounting since the load (its Prometheus metrics, read in-process)."""
        found = {name: float(value) for name, value in _METRIC.findall(self.server.handle_metrics())}
        decodes = int(found.get("n_decode_total", 0))
        return RuntimeStats(
            decodes=decodes,
            busy_slot_decodes=round(found.get("n_busy_slots_per_decode", 0.0) * decodes),
            tokens_predicted=int(found.get("tokens_predicted_total", 0)),
            prompt_tokens=int(found.get("prompt_tokens_total", 0)),
        )


_runtimes: dict[Path, LlamaRuntime] = {}
_runtimes_lock = threading.Lock()


def slots_for(slots: int | None) -> int:
    """The slots a runtime is loaded with when ``slots`` are asked for: at least ``DEFAULT_SLOTS``."""
    return max(slots or 0, DEFAULT_SLOTS)


def runtime_for(
    path: str | Path, *, slots: int | None = None, threads: int | None = None, context: int | None = None
) -> LlamaRuntime:
    """The process-wide runtime of the GGUF file at ``path``, loaded on first use (ConfigError when it cannot be).

    ``slots`` (at least ``DEFAULT_SLOTS``), ``threads`` and ``context`` apply to the first load only; a later call gets
    the loaded runtime as it is.
    """
    key = check_gguf(path)
    with _runtimes_lock:
        runtime = _runtimes.get(key)
        if runtime is None:
            runtime = _runtimes[key] = LlamaRuntime(key, slots=slots_for(slots), threads=threads, context=context)
        return runtime


_SENTENCE_END = re.compile(r"[.!?][\"')\]]*(?=\s)|\n")


def trim_unfinished(text: str) -> str:
    """``text`` without its unfinished last sentence (or dangling bullet), unless that would lose half of it or
    leave a code block open."""
    if text.count("```") % 2:
        return text
    ends = [m.end() for m in _SENTENCE_END.finditer(text + " ")]
    if not ends or ends[-1] < len(text) // 2:
        return text
    trimmed = text[: ends[-1]].rstrip()
    return re.sub(r"\n\s*(?:[-*•]|\d{1,2}[.)])?\s*$", "", trimmed).rstrip() or text


class GGUFLM(MessagesLM):
    """A local GGUF file as a ``dspy.LM``, run by llama.cpp in this process (``gguf:PATH`` at the CLI).

    Deterministic (greedy) at temperature 0, the default; thread- and task-safe, and concurrent calls are decoded
    together in the runtime's slots. Small local models rarely keep to DSPy's field markers, so the LM asks for the
    whole-reply adapter (a reply that does use the markers is still parsed by them).

    Args:
        path: the .gguf file.
        max_tokens: new tokens per call unless a call asks for another number.
        temperature: 0 decodes greedily; above 0 samples (``seed`` per call for repeatable samples).
        repeat_penalty: llama.cpp's repetition penalty (1.0 turns it off).
        slots / threads / context: for the runtime's first load in this process (see ``runtime_for``); threads
            default to ``$HEGELION_THREADS``, else the cores this process may use.
        model: the model string recorded in traces [default: ``gguf:`` + the resolved path].
    """

    def __init__(
        self,
        path: str | Path,
        *,
        max_tokens: int = GGUF_MAX_TOKENS,
        temperature: float = 0.0,
        repeat_penalty: float = DEFAULT_REPEAT_PENALTY,
        slots: int | None = None,
        threads: int | None = None,
        context: int | None = None,
        model: str | None = None,
    ):
        self.runtime = runtime_for(path, slots=slots, threads=threads, context=context)
        super().__init__(model or f"{GGUF_PREFIX}{self.runtime.path}", temperature=temperature, max_tokens=max_tokens)
        self.repeat_penalty = repeat_penalty

    @property
    def load_seconds(self) -> float:
        return self.runtime.load_seconds

    def complete(self, messages: ChatMessages, config: Config) -> Completion:
        completion = self.runtime.chat(
            messages,
            max_tokens=self.call_max_tokens(config),
            temperature=self.call_temperature(config),
            top_p=getattr(config, "top_p", None),
            seed=getattr(config, "seed", None),
            stop=tuple(getattr(config, "stop", None) or ()),
            repeat_penalty=self.repeat_penalty,
        )
        if completion.truncated:  # cut off by the token cap: end on the last whole sentence
            completion.text = trim_unfinished(completion.text)
        return completion

    def preferred_adapter(self) -> dspy.Adapter:
        return WholeReplyAdapter()


def parse_gguf_model(model: str) -> Path | None:
    """The path in a ``gguf:PATH`` model string, or None for any other model string."""
    if not model.startswith(GGUF_PREFIX):
        return None
    path = model[len(GGUF_PREFIX) :].strip()
    if not path:
        raise ConfigError(f"model {model!r} names no file; write gguf:PATH, e.g. gguf:~/models/qwen2.5-0.5b.gguf")
    return Path(path).expanduser()
