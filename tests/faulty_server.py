"""An OpenAI-compatible chat server that misbehaves the way hosted providers do, for tests and benchmarks.

Real HTTP on 127.0.0.1 (Starlette under uvicorn, in a thread). ``POST /v1/chat/completions`` answers each Dialectic
step as ScriptedLM would, with token usage, unless the request's ``Fault`` says otherwise:

- ``hang``: never answers (until the server stops);
- ``drop``: sends the headers and half the body, then closes the connection;
- ``429``: a rate-limit refusal, with ``Retry-After`` when ``retry_after`` is set;
- ``500``: a server error;
- ``slow``: answers after ``delay`` seconds.

Faults come from a script (a list, used in order, then ``ok``), a function of the request number, or at random with
given rates (``random_faults``). The server also keeps a quota of its own (``limit`` requests per ``window``
seconds, answered 429 + Retry-After to the end of the window beyond it), and counts what a provider's dashboard
would: requests received per window, requests that arrived while a Retry-After it sent was still running, and the
cost it served (tokens of the answers it completed at ``prices`` per token).
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from hegelion_dspy.errors import LMError
from hegelion_dspy.lms.base import Completion
from hegelion_dspy.lms.scripted import ScriptedLM, ScriptedLMError


@dataclass(frozen=True)
class Fault:
    kind: str = "ok"  # ok | hang | drop | 429 | 500 | slow
    retry_after: float | None = None  # with 429: the Retry-After header (None: no header)
    delay: float = 0.0  # with slow: seconds before the answer


OK = Fault()
HANG = Fault("hang")
DROP = Fault("drop")
ERROR = Fault("500")


def rate_limited(retry_after: float | None = None) -> Fault:
    return Fault("429", retry_after=retry_after)


def random_faults(rates: dict[str, float], *, seed: int = 0, retry_after: float | None = 0.2) -> Callable[[int], Fault]:
    """Faults at random, e.g. ``{"hang": 0.2, "drop": 0.1, "429": 0.1}`` (the rest answer normally)."""
    rng = random.Random(seed)
    lock = threading.Lock()

    def pick(_number: int) -> Fault:
        with lock:
            roll = rng.random()
        for kind, rate in rates.items():
            if roll < rate:
                return Fault(kind, retry_after=retry_after if kind == "429" else None)
            roll -= rate
        return OK

    return pick


@dataclass
class FaultyServer:
    url: str = ""
    faults: list[Fault] | Callable[[int], Fault] = field(default_factory=list)
    prices: tuple[float, float] = (0.0, 0.0)  # USD per prompt token, per completion token
    limit: int | None = None  # requests accepted per window; beyond it 429 + Retry-After to the window's end
    window: float = 60.0
    limit_retry_after: bool = True  # send Retry-After with the quota's 429s
    requests: int = 0
    answered: int = 0
    served_usd: float = 0.0
    kinds: Counter[str] = field(default_factory=Counter)
    key: Callable[[dict[str, Any]], str] | None = None  # names what a request is for (e.g. its prompt), for `by_key`
    by_key: Counter[tuple[str, str]] = field(default_factory=Counter)  # (key, fault kind) -> requests
    received: Counter[int] = field(default_factory=Counter)  # window number -> requests received in it
    accepted: Counter[int] = field(default_factory=Counter)  # window number -> requests let through the quota
    early: int = 0  # requests that arrived while a Retry-After this server sent was running (after `grace`)
    grace: float = 0.05  # seconds a client needs to hear a 429 before it counts as ignoring it
    started: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _paused_until: float = -math.inf
    _paused_from: float = -math.inf
    _stopping: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    def fault(self, number: int) -> Fault:
        if callable(self.faults):
            return self.faults(number)
        return self.faults.pop(0) if self.faults else OK

    def arrive(self) -> tuple[int, Fault]:
        """Count one request; the fault it gets (the quota's refusal first)."""
        now = time.monotonic() - self.started
        slot = int(now // self.window)
        with self.lock:
            self.requests += 1
            number = self.requests
            self.received[slot] += 1
            if self._paused_from + self.grace <= now < self._paused_until:
                self.early += 1
            if self.limit is not None and self.accepted[slot] >= self.limit:
                rest = (slot + 1) * self.window - now
                self._pause(now, rest)
                fault = rate_limited(rest if self.limit_retry_after else None)
            else:
                self.accepted[slot] += 1
                fault = self.fault(number)
            if fault.kind == "429" and fault.retry_after is not None:
                self._pause(now, fault.retry_after)
            self.kinds[fault.kind] += 1
        return number, fault

    def _pause(self, now: float, seconds: float) -> None:
        if now + seconds > self._paused_until:
            self._paused_from, self._paused_until = now, now + seconds

    def served(self, prompt_tokens: int, completion_tokens: int) -> None:
        with self.lock:
            self.answered += 1
            self.served_usd += prompt_tokens * self.prices[0] + completion_tokens * self.prices[1]

    def per_window(self) -> list[int]:
        """Requests received in each window so far, oldest first (empty windows as 0)."""
        with self.lock:
            last = max(self.received, default=-1)
            return [self.received.get(n, 0) for n in range(last + 1)]


def _completion(request: dict[str, Any], number: int, text: str, prompt: int, answer: int) -> bytes:
    body = {
        "id": f"faulty-{number}",
        "object": "chat.completion",
        "created": 0,
        "model": request.get("model", "faulty"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": answer, "total_tokens": prompt + answer},
    }
    return json.dumps(body).encode()


async def _send_json(send: Send, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _app(server: FaultyServer) -> Callable[[Scope, Receive, Send], Any]:
    scripted = ScriptedLM()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                if message["type"] == "lifespan.startup":
                    server._stopping = asyncio.Event()
                    server._loop = asyncio.get_running_loop()
                    await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        request = await Request(scope, receive).json()
        number, fault = server.arrive()
        if server.key is not None:
            with server.lock:
                server.by_key[(server.key(request), fault.kind)] += 1
        if fault.kind == "hang":
            assert server._stopping is not None
            await server._stopping.wait()
            return  # returns without a response: uvicorn closes the connection
        if fault.kind in ("429", "500"):
            status = int(fault.kind)
            headers = {"retry-after": f"{fault.retry_after:.3f}"} if fault.retry_after is not None else {}
            reason = "rate limit reached" if status == 429 else "the server had an error"
            error = json.dumps({"error": {"message": reason, "type": "faulty", "code": status}}).encode()
            await _send_json(send, status, error, headers)
            return
        if fault.kind == "slow":
            await asyncio.sleep(fault.delay)
        messages = [{"role": m["role"], "content": m["content"]} for m in request["messages"]]
        try:
            completion = scripted._reply(messages)
        except (LMError, ScriptedLMError):  # not a Dialectic step (a probe): a plain answer
            completion = Completion(text="ok", prompt_tokens=len(json.dumps(messages)) // 4, completion_tokens=1)
        prompt, answer = completion.prompt_tokens or 0, completion.completion_tokens or 0
        body = _completion(request, number, completion.text, prompt, answer)
        if fault.kind == "drop":
            raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 200, "headers": raw})
            await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
            raise ConnectionAbortedError("faulty server: dropped mid-body")  # uvicorn closes the connection
        await _send_json(send, 200, body)
        server.served(prompt, answer)

    return app


@contextmanager
def faulty_server(
    faults: list[Fault] | Callable[[int], Fault] | None = None,
    *,
    prices: tuple[float, float] = (0.0, 0.0),
    limit: int | None = None,
    window: float = 60.0,
    limit_retry_after: bool = True,
    key: Callable[[dict[str, Any]], str] | None = None,
) -> Iterator[FaultyServer]:
    """A running faulty server; ``server.url`` is its base URL (``http://127.0.0.1:PORT/v1``)."""
    state = FaultyServer(
        key=key,
        faults=faults if faults is not None else [],
        prices=prices,
        limit=limit,
        window=window,
        limit_retry_after=limit_retry_after,
    )
    config = uvicorn.Config(
        _app(state), host="127.0.0.1", port=0, log_level="critical", lifespan="on", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="faulty-server", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the faulty server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    state.url = f"http://127.0.0.1:{port}/v1"
    state.started = time.monotonic()
    try:
        yield state
    finally:
        stopping, loop = state._stopping, state._loop
        if stopping is not None and loop is not None:
            loop.call_soon_threadsafe(stopping.set)
        server.should_exit = True
        thread.join(timeout=10)
