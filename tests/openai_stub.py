"""A small OpenAI-compatible chat server for tests: real HTTP, answered by ScriptedLM's logic, with scripted refusals.

It serves ``POST /v1/chat/completions`` on 127.0.0.1 and answers each Dialectic step as ScriptedLM would, with token
usage, so a ``dspy.LM("openai/gpt-4o-mini", api_base=...)`` goes through DSPy's real provider path (errors, usage,
prices). ``refusals`` lists (status, Retry-After or None) answers to give before answering normally.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from hegelion_dspy.lms.scripted import ScriptedLM


@dataclass
class Stub:
    url: str
    requests: int = 0
    answered: int = 0
    refusals: list[tuple[int, float | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _handler(stub: Stub) -> type[BaseHTTPRequestHandler]:
    scripted = ScriptedLM()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
            with stub.lock:
                stub.requests += 1
                refusal = stub.refusals.pop(0) if stub.refusals else None
            if refusal is not None:
                status, retry_after = refusal
                headers = {"retry-after": f"{retry_after:g}"} if retry_after is not None else {}
                message = "rate limit reached" if status == 429 else "the server is overloaded"
                self._send(status, {"error": {"message": message, "type": "stub", "code": status}}, headers)
                return
            messages = [{"role": m["role"], "content": m["content"]} for m in request["messages"]]
            completion = scripted._reply(messages)
            with stub.lock:
                stub.answered += 1
            prompt, answer = completion.prompt_tokens or 0, completion.completion_tokens or 0
            self._send(
                200,
                {
                    "id": f"stub-{stub.requests}",
                    "object": "chat.completion",
                    "created": 0,
                    "model": request.get("model", "stub"),
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": completion.text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": prompt, "completion_tokens": answer, "total_tokens": prompt + answer},
                },
            )

    return Handler


@contextmanager
def openai_stub(refusals: list[tuple[int, float | None]] | None = None) -> Iterator[Stub]:
    """A running stub server; ``stub.url`` is its base URL (``http://127.0.0.1:PORT/v1``)."""
    stub = Stub(url="", refusals=list(refusals or []))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(stub))
    server.daemon_threads = True
    stub.url = f"http://127.0.0.1:{server.server_port}/v1"
    thread = threading.Thread(target=server.serve_forever, name="openai-stub", daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
