"""The newcomer's path, as the README leads it: a demo dialectic first, then a batch with a real model over the same
prompts, then an export. The demo trace must neither block the real run nor end up as training data.

The "real model" is an OpenAI-compatible HTTP server on 127.0.0.1 (what vLLM or llama.cpp's server would be), called as
``openai/...`` with ``--api-base`` and no key, so the whole LiteLLM path runs offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from hegelion_dspy.lms.scripted import ScriptedLM
from hegelion_dspy.store import TraceStore

BIN = Path(sys.executable).parent
PROMPTS = ["Why is the sky blue?", *(f"Question number {n}" for n in range(1, 20))]


class _OpenAICompatible(BaseHTTPRequestHandler):
    """Chat completions answered by the scripted model's logic, with a '(real)' mark so its texts are recognisable."""

    player = ScriptedLM(model="openai/stand-in")
    calls = 0

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        messages = [{"role": m["role"], "content": m["content"]} for m in body["messages"]]
        text = self.player.complete(messages, None).text.replace("Synthesis v", "Synthesis (real) v")
        type(self).calls += 1
        reply = {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30},
        }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _OpenAICompatible)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_a_demo_trace_neither_blocks_a_real_batch_nor_becomes_its_training_row(tmp_path: Path, server: str) -> None:
    # 1. The README's first command (the demo model; the scripted fake stands in for the embedded one here).
    first = run(
        "hegelion-agent", "Why is the sky blue?", "-m", "scripted", "--log-file", "data/traces.jsonl", cwd=tmp_path
    )
    assert first.returncode == 0, first.stderr
    [demo] = TraceStore(tmp_path / "data" / "traces.jsonl")
    assert demo.demo and demo.model == "scripted"

    # 2. A batch with a real model over prompts that include the demo's: nothing is skipped.
    (tmp_path / "prompts.txt").write_text("\n".join(PROMPTS) + "\n", encoding="utf-8")
    batch = run(
        "hegelion-agent", "--prompts", "prompts.txt", "-m", "openai/stand-in", "--api-base", server,
        "--log-file", "data/traces.jsonl", "-j", "4", cwd=tmp_path,
    )  # fmt: skip
    assert batch.returncode == 0, batch.stderr
    assert "20 ok, 0 failed, 0 skipped" in batch.stderr
    assert _OpenAICompatible.calls == 60

    # 3. The export holds the real model's row for the shared prompt, never the demo's.
    export = run("hegelion-dataset", "data/traces.jsonl", "train_dpo.jsonl", "--with-metadata", "--stats", cwd=tmp_path)
    assert export.returncode == 0, export.stderr
    rows = [json.loads(line) for line in (tmp_path / "train_dpo.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 20 and {r["metadata"]["model"] for r in rows} == {"openai/stand-in"}
    [sky] = [r for r in rows if r["prompt"] == "Why is the sky blue?"]
    assert sky["chosen"].startswith("Synthesis (real) v1") and sky["metadata"]["trace_id"] != demo.id
    assert "demo                             1 traces" in export.stdout
    assert "--include-demo" in export.stdout

    # 4. A rerun with the real model resumes: everything it wrote is done.
    again = run(
        "hegelion-agent", "--prompts", "prompts.txt", "-m", "openai/stand-in", "--api-base", server,
        "--log-file", "data/traces.jsonl", cwd=tmp_path,
    )  # fmt: skip
    assert again.returncode == 0 and "0 ok, 0 failed, 20 skipped" in again.stderr
