"""The local llama.cpp runtime: GGUF model strings and their refusals (exit 2 at the CLI), the shipped model file run by
path, bounded steps with the cut-off recorded, DSPy's public custom-engine interface, and the same runtime serving
llama.cpp's OpenAI-compatible HTTP API to ``--model openai/... --api-base`` (the full HTTP path through LiteLLM)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import dspy
import pytest
from dspy.lm15 import Config, Message, Request, Response

from hegelion_dspy.collect.run import run_dialectic
from hegelion_dspy.errors import ConfigError
from hegelion_dspy.lms.base import ChatMessages, Completion, MessagesEngine, MessagesLM
from hegelion_dspy.lms.chooser import make_lm
from hegelion_dspy.lms.embedded import locate_gguf
from hegelion_dspy.lms.hosted import HostedLM, finish_reasons
from hegelion_dspy.lms.llamacpp import check_gguf, default_threads, parse_gguf_model, runtime_for
from hegelion_dspy.lms.scripted import ScriptedLM
from hegelion_dspy.store import TraceStore, read_records

AGENT = str(Path(sys.executable).parent / "hegelion-agent")


def agent(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AGENT, *args], env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout
    )


# -- model strings and refusals -----------------------------------------------------------------------------------


def test_a_gguf_model_string_names_a_path_and_other_strings_are_not_gguf() -> None:
    assert parse_gguf_model("gguf:/models/qwen.gguf") == Path("/models/qwen.gguf")
    assert parse_gguf_model("gguf:~/m.gguf") == Path.home() / "m.gguf"
    assert parse_gguf_model("openai/gpt-4o-mini") is None
    assert parse_gguf_model("hosted_vllm//models/qwen.gguf") is None  # a served GGUF stays a LiteLLM model
    with pytest.raises(ConfigError, match="names no file; write gguf:PATH"):
        parse_gguf_model("gguf:")


def test_a_missing_a_folder_or_a_non_gguf_file_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"model file '.*nope\.gguf' does not exist"):
        make_lm(f"gguf:{tmp_path / 'nope.gguf'}")
    with pytest.raises(ConfigError, match="is not a file"):
        check_gguf(tmp_path)
    fake = tmp_path / "weights.gguf"
    fake.write_bytes(b"PK\x03\x04 a zip, not a model")
    with pytest.raises(ConfigError, match=r"is not a GGUF file \(it starts with b'PK\\x03\\x04'"):
        make_lm(f"gguf:{fake}")


def test_a_bare_gguf_path_is_refused_with_the_gguf_spelling() -> None:
    with pytest.raises(ConfigError, match=r"to run a local GGUF file write gguf:PATH, e\.g\. --model gguf:\./m\.gguf"):
        make_lm("./m.gguf")


@pytest.mark.parametrize("bad", ["missing", "not-gguf"])
def test_the_cli_refuses_a_bad_gguf_path_with_one_line_and_exit_2(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "model.gguf"
    if bad == "not-gguf":
        path.write_text("hello", encoding="utf-8")
    log = tmp_path / "traces.jsonl"

    done = agent("Why is the sky blue?", "--model", f"gguf:{path}", "--log-file", str(log), timeout=120)

    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and str(path) in done.stderr
    assert ("does not exist" if bad == "missing" else "is not a GGUF file") in done.stderr
    assert done.stdout == "" and not log.exists()


def test_threads_come_from_hegelion_threads_else_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_threads() == len(os.sched_getaffinity(0))
    monkeypatch.setenv("HEGELION_THREADS", "3")
    assert default_threads() == 3
    monkeypatch.setenv("HEGELION_THREADS", "two")
    with pytest.raises(ConfigError, match="HEGELION_THREADS='two' is not a thread count"):
        default_threads()


def test_the_cli_refuses_a_max_tokens_below_one() -> None:
    done = agent("task", "--model", "scripted", "--max-tokens", "0", "--no-log", timeout=120)
    assert done.returncode == 2 and "--max-tokens" in done.stderr


# -- bounded steps, DSPy's engine interface -----------------------------------------------------------------------


class CappedLM(ScriptedLM):
    """The scripted LM, except that the antithesis stops at its token cap."""

    def complete(self, messages: ChatMessages, config: Any) -> Completion:
        completion = super().complete(messages, config)
        completion.truncated = self.calls[-1][0] == "antithesis"
        return completion


def test_a_step_cut_off_at_max_tokens_is_recorded_in_the_trace(store: TraceStore) -> None:
    record = run_dialectic("Name a prime", lm=CappedLM(), store=store)
    assert record.ok
    [logged] = list(store)
    assert logged.rounds[0].truncated == ["antithesis"]


def test_every_backend_has_a_per_step_token_cap_and_max_tokens_changes_it() -> None:
    assert make_lm("openai/gpt-4o-mini", api_key="k").kwargs["max_tokens"] == 2048
    assert make_lm("openai/gpt-4o-mini", api_key="k", max_tokens=300).kwargs["max_tokens"] == 300
    # OpenAI's reasoning models: DSPy refuses less than 16000 (their hidden reasoning counts), so that is the default
    assert make_lm("openai/gpt-5", api_key="k").kwargs["max_completion_tokens"] == 16000
    assert ScriptedLM().kwargs["max_tokens"] == 2048
    with pytest.raises(ConfigError, match="max_tokens must be at least 1, got 0"):
        make_lm("scripted", max_tokens=0)


def test_hosted_models_are_dspy_lms_that_read_the_providers_finish_reason() -> None:
    lm = make_lm("openai/gpt-4o-mini", api_key="k")
    assert isinstance(lm, HostedLM) and isinstance(lm, dspy.LM)
    litellm_shaped = {"choices": [{"finish_reason": "stop"}, {"finish_reason": "length"}]}
    assert finish_reasons(litellm_shaped) == ["stop", "length"]

    class Native:
        finish_reason = "length"

    assert finish_reasons([Native(), Native()]) == ["length", "length"]
    assert finish_reasons(None) == []


def test_our_lms_use_dspys_public_custom_engine_interface() -> None:
    # DSPy 3.4's documented way to plug in a backend: dspy.LM(engine=obj with complete(Request) -> Response). If this
    # fails after a DSPy upgrade, the interface moved: read DSPy's BaseLM docstring and the migration guide it links.
    lm = ScriptedLM()
    assert isinstance(lm, dspy.LM) and isinstance(lm.engine, MessagesEngine)
    copy = lm.copy(max_tokens=7)
    assert isinstance(copy, MessagesLM) and copy.engine.owner is copy and copy.kwargs["max_tokens"] == 7  # type: ignore[attr-defined]
    asked = "Respond with the corresponding output fields, starting with the field `[[ ## thesis ## ]]`"
    text = f"[[ ## task ## ]]\nName a prime\n\n{asked}"
    request = Request(model=lm.model, messages=(Message.user(text),), config=Config(max_tokens=5))
    response = lm(request)
    assert isinstance(response, Response) and "[[ ## thesis ## ]]" in (response.message.text or "")
    assert lm.steps_called() == ["thesis"] and len(lm.history) == 1


# -- the real runtime (slow: loads the shipped SmolLM2-135M file once per test process) ----------------------------


@pytest.fixture(scope="module")
def shipped_gguf() -> Path:
    return locate_gguf()


@pytest.mark.slow
def test_the_shipped_file_runs_by_path_as_a_gguf_model_string(shipped_gguf: Path, tmp_path: Path) -> None:
    log = tmp_path / "traces.jsonl"

    done = agent(
        "Why is the sky blue?",
        "--model",
        f"gguf:{shipped_gguf}",
        "--max-tokens",
        "40",
        "--log-file",
        str(log),
        "--format",
        "json",
    )

    assert done.returncode == 0, done.stderr
    [logged] = read_records(log)
    assert json.loads(done.stdout)["id"] == logged.id
    assert logged.status == "ok", logged.error
    assert (logged.model, logged.lm, logged.adapter) == (
        f"gguf:{shipped_gguf.resolve()}",
        "hegelion_dspy.lms.llamacpp.GGUFLM",
        "WholeReplyAdapter",
    )
    # the shipped file by any route is the demo model (issue 21: demo by model identity, not by route)
    assert logged.demo is True and logged.model_identity is not None and logged.model_identity.demo
    [round_] = logged.rounds
    assert all(getattr(round_, step).strip() for step in ("thesis", "antithesis", "synthesis"))
    for step, usage in round_.usage.items():
        assert usage.completion_tokens is not None and 0 < usage.completion_tokens <= 40
        assert (usage.completion_tokens == 40) == (step in round_.truncated), (step, usage)


@pytest.mark.slow
def test_the_runtime_serves_llama_cpps_http_api_to_a_hosted_model_string(shipped_gguf: Path, tmp_path: Path) -> None:
    """The shipped model behind llama.cpp's own OpenAI-compatible server, called as a new user would call any local
    server (``--model openai/NAME --api-base URL``): LiteLLM over HTTP, DSPy's ChatAdapter with the whole-reply
    fallback, every step bounded by --max-tokens and its cut-off read from the server's finish_reason."""
    runtime = runtime_for(shipped_gguf)
    with pytest.raises(urllib.error.HTTPError) as refused:  # other local processes need the runtime's key
        urllib.request.urlopen(f"{runtime.base_url}/models", data=b"{}", timeout=30)
    refused.value.close()
    assert refused.value.code == 401
    log = tmp_path / "traces.jsonl"

    done = agent(
        "Why is the sky blue?",
        "--model",
        "openai/smollm2",
        "--api-base",
        runtime.base_url,
        "--max-tokens",
        "64",
        "--log-file",
        str(log),
        env={"HEGELION_API_KEY": runtime.api_key},
    )

    assert done.returncode == 0, done.stderr
    [logged] = read_records(log)
    assert logged.status == "ok", logged.error
    assert (logged.model, logged.lm, logged.adapter) == (
        "openai/smollm2",
        "hegelion_dspy.lms.hosted.HostedLM",
        "FallbackAdapter",
    )
    [round_] = logged.rounds
    assert set(round_.adapters) == {"thesis", "antithesis", "synthesis"}
    assert set(round_.adapters.values()) <= {"ChatAdapter", "WholeReplyAdapter"}
    for step, usage in round_.usage.items():
        assert usage.completion_tokens is not None and 0 < usage.completion_tokens <= 64
        assert (usage.completion_tokens == 64) == (step in round_.truncated), (step, usage)
