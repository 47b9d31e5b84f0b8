"""hegelion-server as a real process over streamable HTTP on 127.0.0.1, for the tests."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

SERVER = Path(sys.executable).with_name("hegelion-server")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], stderr: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited early:\n{stderr.read_text()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listened on 127.0.0.1:{port} within {timeout} s")


@contextlib.contextmanager
def http_server(data_dir: Path, *args: str) -> Iterator[tuple[str, int]]:
    """Serve ``data_dir`` over streamable HTTP; yields the URL and the server's process id."""
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    stderr = data_dir.parent / f"server-stderr-{port}.txt"
    command = [str(SERVER), "--transport", "streamable-http", "--port", str(port), "--data-dir", str(data_dir), *args]
    with stderr.open("wb") as err:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    try:
        _wait_for_port(port, proc, stderr)
        yield f"http://127.0.0.1:{port}/mcp", proc.pid
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
