"""Model identity (lms/identity.py): GGUF headers read without llama.cpp, digests cached per path+mtime+size, what an
OpenAI-compatible server reports, and the demo verdict that follows from them."""

from __future__ import annotations

import json
import os
import struct
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from hegelion_dspy.lms import identity
from hegelion_dspy.lms.identity import (
    BASE_KEY,
    DEMO_KEY,
    SHIPPED_SERVED,
    SHIPPED_SHA256,
    file_identity,
    file_sha256,
    gguf_facts,
    gguf_metadata,
    server_identity,
)
from hegelion_dspy.lms.scripted import ScriptedLM


def _string(text: str) -> bytes:
    data = text.encode("utf-8")
    return struct.pack("<Q", len(data)) + data


def _value(value: Any) -> tuple[int, bytes]:
    if isinstance(value, bool):
        return 7, struct.pack("<?", value)
    if isinstance(value, int):
        return 4, struct.pack("<I", value)
    if isinstance(value, float):
        return 6, struct.pack("<f", value)
    if isinstance(value, str):
        return 8, _string(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return 9, struct.pack("<IQ", 8, len(value)) + b"".join(_string(v) for v in value)
    if isinstance(value, list):
        return 9, struct.pack("<IQ", 5, len(value)) + b"".join(struct.pack("<i", v) for v in value)
    raise TypeError(value)


def write_gguf(path: Path, metadata: dict[str, Any], *, tail: bytes = b"\0" * 64) -> Path:
    """A GGUF v3 file with these metadata keys, no tensors (the reader only needs the header)."""
    body = b""
    for key, value in metadata.items():
        kind, data = _value(value)
        body += _string(key) + struct.pack("<I", kind) + data
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, len(metadata)) + body + tail)
    return path


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEGELION_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(identity, "_facts", {})


VOCAB = {"tokenizer.ggml.tokens": [f"tok{i}" for i in range(300)], "tokenizer.ggml.token_type": list(range(300))}


def test_the_header_reader_finds_keys_after_arrays_and_leaves_others_out(tmp_path: Path) -> None:
    path = write_gguf(
        tmp_path / "m.gguf",
        {"general.architecture": "llama", **VOCAB, "general.name": "Tiny", "llama.rope": 1.5, DEMO_KEY: True},
    )
    assert gguf_metadata(path) == {"general.architecture": "llama", "general.name": "Tiny", DEMO_KEY: True}


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"PK\x03\x04 not gguf", "is not a GGUF file"), (b"GGUF" + struct.pack("<IQQ", 3, 0, 5), "ends inside")],
)
def test_a_file_that_is_not_gguf_or_is_cut_short_is_a_value_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.gguf"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        gguf_metadata(path)
    assert file_identity(path) is None  # unknown identity, never an error for the run


@pytest.mark.parametrize(
    ("metadata", "demo"),
    [
        ({"general.name": "Qwen2.5 0.5B"}, False),
        ({"general.name": "Tuned", DEMO_KEY: True}, True),  # trained from a demo model (hegelion train writes it)
        ({"general.name": "Tuned", DEMO_KEY: False}, False),
        ({"general.name": "Tuned", BASE_KEY: SHIPPED_SHA256}, True),  # trained from the shipped file
        ({"general.name": "Tuned", BASE_KEY: "0" * 64}, False),
    ],
)
def test_a_model_file_is_demo_when_its_metadata_says_it_was_trained_from_a_demo_model(
    tmp_path: Path, metadata: dict[str, Any], demo: bool
) -> None:
    path = write_gguf(tmp_path / "m.gguf", {**VOCAB, **metadata})
    found = file_identity(path)
    assert found is not None
    assert (found.demo, found.name, found.sha256, found.source) == (
        demo,
        metadata["general.name"],
        file_sha256(path),
        "file",
    )
    assert (found.demo_reason is not None) == demo


def test_the_digest_is_cached_per_path_mtime_and_size(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "m.gguf", {"general.name": "A"})
    first = gguf_facts(path)
    assert first["sha256"] == file_sha256(path)
    [(key, stored)] = json.loads((tmp_path / "cache" / "gguf-sha256.json").read_text(encoding="utf-8")).items()
    assert key.startswith(f"{path.resolve()}|") and stored == first
    # a new process (empty memory) reads the cache instead of hashing: plant a marker digest to see which it used
    cache = tmp_path / "cache" / "gguf-sha256.json"
    cache.write_text(json.dumps({key: {**stored, "sha256": "cached"}}), encoding="utf-8")
    identity._facts.clear()
    assert gguf_facts(path)["sha256"] == "cached"
    # the file changes (mtime and size): hashed again
    write_gguf(path, {"general.name": "B"}, tail=b"\0" * 80)
    os.utime(path, ns=(1, 1))
    identity._facts.clear()
    again = gguf_facts(path)
    assert again["sha256"] == file_sha256(path) and again["metadata"] == {"general.name": "B"}


def test_the_shipped_route_hashes_nothing_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_gguf(tmp_path / "SmolLM2.gguf", {"general.name": "Smollm2"})
    monkeypatch.setattr(identity, "SHIPPED_SIZE", path.stat().st_size)
    found = file_identity(path, shipped=True)
    assert found is not None and found.sha256 == SHIPPED_SHA256 and found.demo
    assert not (tmp_path / "cache").exists()


_PLAYER = ScriptedLM(model="openai/stand-in")


class _Server(BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, Any]] = {}
    asked: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).asked.append(self.path)
        body = self.routes.get(self.path)
        if body is None:
            self.send_error(404)
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # chat completions, answered as the scripted fake would
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        messages = [{"role": m["role"], "content": m["content"]} for m in body["messages"]]
        message = {"role": "assistant", "content": _PLAYER.complete(messages, None).text}
        data = json.dumps(
            {
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": "m",
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def served() -> Iterator[tuple[str, type[_Server]]]:
    handler = type("Handler", (_Server,), {"routes": {}, "asked": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", handler
    httpd.shutdown()
    httpd.server_close()


def _models(model_id: str, **meta: Any) -> dict[str, Any]:
    return {"object": "list", "data": [{"id": model_id, "object": "model", "owned_by": "llamacpp", "meta": meta}]}


def test_a_llama_cpp_server_whose_model_file_is_here_is_identified_by_the_file(
    tmp_path: Path, served: tuple[str, type[_Server]]
) -> None:
    base, handler = served
    path = write_gguf(tmp_path / "tuned.gguf", {**VOCAB, "general.name": "Tuned", DEMO_KEY: True})
    handler.routes.update({"/v1/models": _models(str(path)), "/props": {"model_path": str(path)}})
    found = server_identity(base)
    assert found is not None
    assert (found.source, found.path, found.sha256, found.name) == ("server", str(path), file_sha256(path), "Tuned")
    assert found.demo and found.served == str(path) and found.api_base == base
    assert sorted(handler.asked) == ["/props", "/v1/models"]


@pytest.mark.parametrize(("meta", "demo"), [(SHIPPED_SERVED, True), ({"n_params": 7_000_000_000, "size": 1}, False)])
def test_a_remote_llama_cpp_server_is_demo_when_it_reports_the_shipped_models_size(
    served: tuple[str, type[_Server]], meta: dict[str, int], demo: bool
) -> None:
    base, handler = served
    handler.routes.update({"/v1/models": _models("/srv/m.gguf", **meta), "/props": {"model_path": "/srv/m.gguf"}})
    found = server_identity(base)
    assert found is not None and found.path == "/srv/m.gguf" and found.sha256 is None and found.demo is demo


def test_a_server_that_answers_only_models_or_nothing(served: tuple[str, type[_Server]]) -> None:
    base, handler = served
    assert server_identity(base) is None  # 404 everywhere: unknown
    handler.routes["/v1/models"] = {"object": "list", "data": [{"id": "Qwen/Qwen2.5-7B-Instruct"}]}  # vLLM-shaped
    found = server_identity(base)
    assert found is not None and found.served == "Qwen/Qwen2.5-7B-Instruct" and not found.demo
    assert server_identity("http://127.0.0.1:9/v1") is None  # nothing listens


async def test_a_batch_through_api_base_asks_the_server_once_and_marks_its_traces_demo(
    tmp_path: Path, served: tuple[str, type[_Server]]
) -> None:
    from hegelion_dspy.collect.batch import run_batch
    from hegelion_dspy.collect.context import RunContext
    from hegelion_dspy.store import TraceStore

    base, handler = served
    handler.routes.update({"/v1/models": _models("/srv/smollm2.gguf", **SHIPPED_SERVED)})
    ctx = RunContext.build(model="openai/smollm2", api_base=base)
    assert ctx.demo and ctx.identity is not None and ctx.identity.served == "/srv/smollm2.gguf"
    store = TraceStore(tmp_path / "t.jsonl")
    result = await run_batch(["a", "b", "c"], ctx=ctx, store=store, concurrency=2)
    assert result.ok == 3
    assert [r.demo for r in store] == [True, True, True]
    assert {r.model_identity.served for r in store if r.model_identity} == {"/srv/smollm2.gguf"}
    assert all(r.schema_version == 3 for r in store)
    assert handler.asked == ["/v1/models", "/props"]  # once for the batch, not once per call
