"""Fast start over stdio: answer ``initialize`` and ``tools/list`` while the MCP SDK is still importing.

Importing the ``mcp`` 2.x SDK costs over a second of CPU (``mcp_types`` builds thousands of pydantic models), far
more than a client should wait for the tool list. So ``hegelion-server`` starts with this standard-library-only
front: it reads stdin itself, imports the SDK and builds the server in a thread, and meanwhile answers
``initialize`` and ``tools/list`` from replies *recorded from the SDK itself* on an earlier start (kept in the data
folder, keyed by a fingerprint of the installed code, so an upgrade or an edit makes it record afresh). Everything
else - and every message when nothing is recorded yet - is queued and handed to the SDK, in order, as soon as it is
ready. The SDK still sees the ``initialize`` (its duplicate answer is dropped), so its session state is the real one.

Nothing here may import the SDK, pydantic or hegelion_dspy: that is the point.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import queue
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

REPLIES_NAME = ".hegelion-server-replies.json"
_RECORDED = ("initialize", "tools/list")


def data_dir_from_env(explicit: str | None = None) -> Path:
    """The data folder as ``hegelion_dspy.store.default_data_dir`` chooses it (tested to agree), without importing
    the library (which imports pydantic)."""
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get("HEGELION_DATA_DIR"):
        return Path(os.environ["HEGELION_DATA_DIR"]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "hegelion-dspy"


def code_fingerprint() -> str:
    """Changes whenever code that shapes the ``initialize``/``tools/list`` replies changes (by file size and mtime)."""
    files = sorted(Path(__file__).parent.glob("*.py"))
    for package in ("hegelion_dspy", "mcp", "mcp_types", "pydantic", "pydantic_core"):
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.origin:
            files.append(Path(spec.origin))
            if package == "hegelion_dspy":
                files += [Path(spec.origin).with_name(n) for n in ("types.py", "exporters.py", "paths.py")]
    digest = hashlib.sha256(f"{sys.version_info[:2]}".encode())
    for path in files:
        with contextlib.suppress(OSError):
            stat = path.stat()
            digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:32]


def _id_key(message: dict[str, Any]) -> str:
    return json.dumps(message.get("id"))


class Front:
    """Owns the process's stdin and stdout for the whole session; the SDK reads and writes through it."""

    def __init__(self, data_dir: Path, wire: BinaryIO):
        self.replies_path = data_dir / REPLIES_NAME
        self.fingerprint = code_fingerprint()
        self.replies: dict[str, Any] = self._load()
        self.inbox: queue.Queue[bytes | None] = queue.Queue()
        self._lock = threading.Lock()
        self._answered: set[str] = set()  # requests answered here: drop the SDK's answer
        self._watch: dict[str, str] = {}  # requests whose SDK answer to record, by id
        self._version: str | None = None  # the protocol version the initialize reply gave
        self._inspecting = True
        self._wire = wire

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.replies_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("fingerprint") != self.fingerprint:
            return {}
        replies = data.get("replies")
        return replies if isinstance(replies, dict) else {}

    def _save(self) -> None:
        payload = json.dumps({"fingerprint": self.fingerprint, "replies": self.replies}, ensure_ascii=False)
        tmp = self.replies_path.with_name(f"{REPLIES_NAME}.{os.getpid()}.tmp")
        try:
            self.replies_path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(payload, encoding="utf-8")
            os.replace(tmp, self.replies_path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()

    def write(self, data: bytes) -> None:
        with self._lock:
            self._wire.write(data)
            self._wire.flush()

    # -- the client side: read stdin, answer what is recorded, queue the rest ------------------------------------

    def pump(self, stdin: Any) -> None:
        """Read stdin until EOF (runs in the main thread for the whole session)."""
        try:
            for raw in iter(stdin.readline, b""):
                if not (self._inspecting and self._answer_early(raw)):
                    self.inbox.put(raw)
        finally:
            self.inbox.put(None)

    def _answer_early(self, raw: bytes) -> bool:
        """Answer a recorded initialize/tools-list reply; True when the message must not reach the SDK."""
        try:
            message = json.loads(raw)
        except ValueError:
            return False
        if not isinstance(message, dict) or "id" not in message or message.get("method") not in _RECORDED:
            return False
        params = message.get("params") or {}
        if message["method"] == "initialize":
            key = f"initialize:{params.get('protocolVersion')}"
        elif self._version is None or params.get("cursor") or params.get("_meta"):
            return False  # only a plain first page on a handshake-era session
        else:
            key = f"tools/list:{self._version}"
            self._inspecting = False  # nothing to look for after the tool list
        reply = self.replies.get(key)
        if reply is None:
            with self._lock:
                self._watch[_id_key(message)] = key
            return False
        if message["method"] == "initialize":
            self._version = reply.get("protocolVersion")
            with self._lock:
                self._answered.add(_id_key(message))
        self.write(json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": reply}).encode() + b"\n")
        return message["method"] == "tools/list"  # the SDK must still see the initialize

    # -- the SDK side ------------------------------------------------------------------------------------------

    def sdk_reply(self, text: str) -> bool:
        """Look at a line the SDK sends; record what is watched. False when it must be dropped (answered here)."""
        with self._lock:
            if not (self._answered or self._watch):
                return True
        try:
            message = json.loads(text)
        except ValueError:
            return True
        if not isinstance(message, dict) or ("result" not in message and "error" not in message):
            return True
        key = _id_key(message)
        with self._lock:
            if key in self._answered:
                self._answered.discard(key)
                return False
            recorded = self._watch.pop(key, None)
        if recorded is not None and isinstance(message.get("result"), dict):
            if recorded.startswith("initialize:"):
                self._version = message["result"].get("protocolVersion")
            self.replies[recorded] = message["result"]
            self._save()
        return True


class _SdkStdin:
    """The lines the front queued, as the async line iterator the SDK's stdio transport reads."""

    def __init__(self, front: Front):
        self.front = front

    def __aiter__(self) -> _SdkStdin:
        return self

    async def __anext__(self) -> str:
        import anyio.to_thread

        raw = await anyio.to_thread.run_sync(self.front.inbox.get, abandon_on_cancel=True)
        if raw is None:
            raise StopAsyncIteration
        return raw.decode("utf-8", errors="replace")


class _SdkStdout:
    """Where the SDK's stdio transport writes: through the front, which drops duplicates and records replies."""

    def __init__(self, front: Front):
        self.front = front

    async def write(self, text: str) -> None:
        import anyio.to_thread

        if self.front.sdk_reply(text):
            await anyio.to_thread.run_sync(self.front.write, text.encode("utf-8"))

    async def flush(self) -> None:
        pass


def serve(data_dir: Path, build: Callable[[], Any]) -> None:
    """Serve stdio through a Front: ``build()`` imports the SDK and returns the MCPServer, in a background thread."""
    # The wire is a private copy of fd 1; fd 1 itself now goes to stderr, so a stray print cannot corrupt the protocol.
    wire = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    front = Front(data_dir, wire)

    def run_sdk() -> None:
        try:
            server = build()
            import anyio
            from mcp.server.stdio import stdio_server

            async def main() -> None:
                lowlevel = server._lowlevel_server  # MCPServer.run_stdio_async does the same with the real stdio
                async with stdio_server(stdin=_SdkStdin(front), stdout=_SdkStdout(front)) as (read, write):  # type: ignore[arg-type]
                    await lowlevel.run(read, write, lowlevel.create_initialization_options())

            anyio.run(main)
        except BaseException as exc:  # the thread's edge: report, then end the process (stdin may block forever)
            from hegelion_dspy.errors import HegelionError

            if isinstance(exc, HegelionError):
                print(f"hegelion-server: error: {exc}", file=sys.stderr, flush=True)
                os._exit(2)
            import traceback

            traceback.print_exc()
            os._exit(1)

    sdk = threading.Thread(target=run_sdk, name="hegelion-sdk", daemon=True)
    sdk.start()
    front.pump(sys.stdin.buffer)
    sdk.join()
