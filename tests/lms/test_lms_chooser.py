"""Choosing an LM: the selection order, refusals before any call (unknown models, missing credentials), local
servers without keys."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dspy
import pytest

from hegelion_dspy.errors import ConfigError
from hegelion_dspy.lms.chooser import NO_KEY, make_lm, resolve_model
from hegelion_dspy.lms.embedded import EMBEDDED_MODEL
from hegelion_dspy.lms.scripted import ScriptedLM

KEY_VARIABLES = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY")


@pytest.fixture(autouse=True)
def _no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in KEY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_the_explicit_model_wins_over_the_environment_which_wins_over_the_embedded_default() -> None:
    assert resolve_model("scripted/a", {"HEGELION_MODEL": "scripted/b"}) == "scripted/a"
    assert resolve_model(None, {"HEGELION_MODEL": "scripted/b"}) == "scripted/b"
    assert resolve_model("  ", {"HEGELION_MODEL": " "}) == EMBEDDED_MODEL
    assert resolve_model(None, {}) == EMBEDDED_MODEL
    lm = make_lm(None, env={"HEGELION_MODEL": "scripted/latency=0"})
    assert isinstance(lm, ScriptedLM) and lm.model == "scripted/latency=0"


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("gpt-nonsense-provider/x", "unknown model 'gpt-nonsense-provider/x'"),
        ("embedded/llama-70b", "unknown embedded model 'embedded/llama-70b'"),
        ("scripted/fail=nothing", "unknown scripted model option 'fail=nothing'"),
    ],
)
def test_a_model_string_nothing_accepts_is_refused_with_the_fix(model: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_lm(model)


@pytest.mark.parametrize(
    ("model", "variable"),
    [("openai/gpt-4o-mini", "OPENAI_API_KEY"), ("anthropic/claude-sonnet-4-5", "ANTHROPIC_API_KEY")],
)
def test_missing_credentials_are_refused_naming_the_variable(model: str, variable: str) -> None:
    with pytest.raises(ConfigError, match=f"needs {variable} set in the environment") as info:
        make_lm(model)
    assert "--api-base" in str(info.value)


def test_alternative_key_names_are_offered_as_alternatives() -> None:
    with pytest.raises(ConfigError, match=r"needs one of (GEMINI|GOOGLE)_API_KEY or (GEMINI|GOOGLE)_API_KEY"):
        make_lm("gemini/gemini-2.0-flash")


def test_a_set_key_or_a_key_argument_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(make_lm("openai/gpt-4o-mini", api_key="sk-test"), dspy.LM)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert isinstance(make_lm("openai/gpt-4o-mini"), dspy.LM)


def test_a_model_behind_api_base_needs_no_key() -> None:
    lm = make_lm("openai/smollm2", api_base="http://127.0.0.1:9/v1")
    assert isinstance(lm, dspy.LM)
    assert lm.kwargs["api_base"] == "http://127.0.0.1:9/v1" and lm.kwargs["api_key"] == NO_KEY
    assert "api_key" not in make_lm("hosted_vllm/x", api_base="http://127.0.0.1:9/v1").kwargs  # needs none anyway


def test_local_providers_need_no_key() -> None:
    assert isinstance(make_lm("ollama_chat/llama3.2"), dspy.LM)


def test_the_cli_refuses_a_missing_key_with_exit_2_and_logs_nothing(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Why is the sky blue?\nName a prime\n", encoding="utf-8")
    log = tmp_path / "traces.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    agent = str(Path(sys.executable).parent / "hegelion-agent")
    done = subprocess.run(
        [agent, "--prompts", str(prompts), "-m", "openai/gpt-4o-mini", "--log-file", str(log)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "OPENAI_API_KEY" in done.stderr
    assert done.stdout == ""
    assert not log.exists()


def test_collection_asks_the_model_again_while_the_optimizer_may_cache() -> None:
    # DSPy's request cache would replay an earlier reply as a "new" trace of the same prompt
    assert make_lm("openai/gpt-4o-mini", api_key="sk-test").cache is False
    assert make_lm("openai/gpt-4o-mini", api_key="sk-test", cache=True).cache is True
