"""ScriptedLM: a deterministic, offline LM (``--model scripted``) for dry runs, tests, benchmarks and examples.

It answers each Dialectic step in DSPy's ChatAdapter format with text derived from its inputs, so every run is
reproducible. It can add latency, fail a chosen step, return an empty step, or answer a step in plain prose (no field
markers, as many real models do), to exercise failure handling and the adapters' fallback. Its traces are marked
``demo``: a fake model's text is never training data unless asked for.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import TYPE_CHECKING

from ..errors import ConfigError, LMError
from ..types import STEPS, JSONObject
from .base import ChatMessages, Completion, MessagesLM

if TYPE_CHECKING:
    from dspy.lm15 import Config

_FIELD = re.compile(r"\[\[ ## (\w+) ## \]\]\n(.*?)(?=\n\n\[\[ ## |\Z)", re.S)
_ASKED = re.compile(r"starting with the field `\[\[ ## (\w+) ## \]\]`")


class ScriptedLMError(ConnectionError):
    """The failure ScriptedLM raises on purpose (a stand-in for a provider outage)."""


def _fields(text: str) -> dict[str, str]:
    return {name: value.strip() for name, value in _FIELD.findall(text)}


def default_answer(step: str, inputs: dict[str, str]) -> JSONObject:
    """The scripted outputs of ``step`` given the step's input fields."""
    task = inputs.get("task", "")
    if step == "thesis":
        return {"thesis": f"Thesis: a first answer to '{task}'."}
    if step == "antithesis":
        thesis = inputs.get("thesis", "")
        return {
            "antithesis": f"Antithesis: the answer '{thesis[:60]}' ignores edge cases.",
            "contradictions": [{"description": "It ignores edge cases.", "evidence": f"Consider an empty {task!r}."}],
        }
    if step == "feedback":  # the judge (judge.Judge): a fixed verdict, so judged runs work offline too
        return {
            "feedback": "Scripted judgement: the synthesis handles the edge cases the critique raised.",
            "score": "0.75",
        }
    previous = re.search(r"Synthesis v(\d+)", inputs.get("thesis", ""))
    version = int(previous.group(1)) + 1 if previous else 1
    return {"synthesis": f"Synthesis v{version}: a corrected answer to '{task}' that handles edge cases."}


def _marked(outputs: Mapping[str, object]) -> str:
    parts = []
    for name, value in outputs.items():
        text = value if isinstance(value, str) else json.dumps(value)
        parts.append(f"[[ ## {name} ## ]]\n{text}")
    parts.append("[[ ## completed ## ]]")
    return "\n\n".join(parts)


def _prose(outputs: Mapping[str, object]) -> str:
    """The outputs as a model that ignores the format would write them: the text, then any list as bullets."""
    lines = []
    for value in outputs.values():
        if isinstance(value, str):
            lines.append(value)
        elif isinstance(value, Iterable):
            lines.extend(f"- {item['description'] if isinstance(item, dict) else item}" for item in value)
    return "\n\n".join(lines)


class ScriptedLM(MessagesLM):
    """A deterministic LM that plays the three Dialectic steps.

    Args:
        latency: seconds each call takes (``time.sleep`` in sync calls, ``asyncio.sleep`` in async ones).
        fail_on: steps that raise ScriptedLMError instead of answering.
        empty_on: steps that answer with empty fields.
        prose_on: steps that answer in plain prose, without DSPy's field markers.
        answer: replaces ``default_answer`` (step, inputs) -> output fields.
    """

    demo = True  # see the module docstring

    def __init__(
        self,
        *,
        latency: float = 0.0,
        fail_on: Collection[str] = (),
        empty_on: Collection[str] = (),
        prose_on: Collection[str] = (),
        answer: Callable[[str, dict[str, str]], Mapping[str, object]] | None = None,
        model: str = "scripted/dialectic",
    ):
        super().__init__(model)
        self.latency = latency
        self.fail_on = set(fail_on)
        self.empty_on = set(empty_on)
        self.prose_on = set(prose_on)
        self.answer = answer or default_answer
        self.calls: list[tuple[str, ChatMessages]] = []
        self._lock = threading.Lock()

    def _reply(self, messages: ChatMessages) -> Completion:
        last = messages[-1]["content"]
        asked = _ASKED.findall(last)
        if not asked:
            raise LMError(
                "ScriptedLM cannot tell which step this prompt asks for: it reads DSPy ChatAdapter's 'Respond with the "
                "corresponding output fields, starting with the field [[ ## NAME ## ]]' line, and there is none "
                "(another adapter formatted it?)"
            )
        step = asked[-1]
        last = last.rsplit("\n\nRespond with the corresponding output fields", 1)[0]
        with self._lock:
            self.calls.append((step, messages))
        if step in self.fail_on:
            raise ScriptedLMError(f"scripted failure in the {step} step")
        outputs = self.answer(step, _fields(last))
        if step in self.empty_on:
            outputs = {k: "" for k in outputs}
        reply = _prose(outputs) if step in self.prose_on else _marked(outputs)
        prompt_tokens = sum(len(m["content"].split()) for m in messages)
        return Completion(reply, prompt_tokens=prompt_tokens, completion_tokens=len(reply.split()))

    @classmethod
    def from_model_string(cls, model: str) -> ScriptedLM:
        """``scripted`` or ``scripted/OPT,OPT`` with OPT one of ``fail=STEP``, ``empty=STEP``, ``prose=STEP``,
        ``latency=SECONDS``.

        Lets the CLIs and the server run offline dry runs: ``hegelion-agent "task" --model scripted``.
        """
        _, _, spec = model.partition("/")
        fail_on: set[str] = set()
        empty_on: set[str] = set()
        prose_on: set[str] = set()
        latency = 0.0
        for option in filter(None, spec.split(",")):
            key, _, value = option.partition("=")
            if key == "fail" and value in STEPS:
                fail_on.add(value)
            elif key == "empty" and value in STEPS:
                empty_on.add(value)
            elif key == "prose" and value in STEPS:
                prose_on.add(value)
            elif key == "latency":
                try:
                    latency = float(value)
                except ValueError:
                    raise ConfigError(
                        f"scripted model option {option!r}: latency must be a number of seconds"
                    ) from None
            elif key != "dialectic":
                raise ConfigError(
                    f"unknown scripted model option {option!r}; use fail=STEP, empty=STEP, prose=STEP or "
                    f"latency=SECONDS (STEP is one of {', '.join(STEPS)})"
                )
        return cls(latency=latency, fail_on=fail_on, empty_on=empty_on, prose_on=prose_on, model=model)

    def steps_called(self) -> list[str]:
        with self._lock:
            return [step for step, _ in self.calls]

    def complete(self, messages: ChatMessages, config: Config) -> Completion:
        if self.latency:
            time.sleep(self.latency)
        return self._reply(messages)

    async def acomplete(self, messages: ChatMessages, config: Config) -> Completion:
        if self.latency:
            await asyncio.sleep(self.latency)
        return self._reply(messages)
