"""The adapters: a reply without field markers is read whole from the same reply, and each step says which adapter
produced it."""

from __future__ import annotations

import dspy
import pytest

from hegelion_dspy.collect.run import run_dialectic
from hegelion_dspy.errors import LMError
from hegelion_dspy.lms.adapters import FallbackAdapter
from hegelion_dspy.lms.chooser import adapter_for, make_lm
from hegelion_dspy.lms.scripted import ScriptedLM
from hegelion_dspy.program import Dialectic
from hegelion_dspy.store import TraceStore


def test_every_hosted_or_scripted_lm_gets_the_fallback_adapter() -> None:
    assert isinstance(adapter_for(make_lm("scripted")), FallbackAdapter)
    assert isinstance(adapter_for(dspy.LM("openai/gpt-4o-mini")), FallbackAdapter)


def test_a_prose_antithesis_is_read_whole_with_one_request_and_the_fallback_recorded(store: TraceStore) -> None:
    lm = ScriptedLM(prose_on={"antithesis"})
    record = run_dialectic("Why is the sky blue?", lm=lm, store=store)

    assert record.ok, record.error
    [logged] = list(store)
    first = logged.rounds[0]
    assert first.adapters == {"thesis": "ChatAdapter", "antithesis": "WholeReplyAdapter", "synthesis": "ChatAdapter"}
    assert first.antithesis.startswith("the answer")  # the echoed "Antithesis:" label is dropped
    assert "[[ ##" not in first.antithesis
    # the contradictions came from the bullet line of the prose reply
    assert [c.description for c in first.contradictions] == ["It ignores edge cases."]
    # one LM request per step: no second (JSONAdapter) attempt
    assert lm.steps_called() == ["thesis", "antithesis", "synthesis"]


def test_every_step_in_prose_still_gives_an_ok_trace() -> None:
    lm = ScriptedLM(prose_on={"thesis", "antithesis", "synthesis"})
    record = run_dialectic("Name a prime", lm=lm, iterations=2)
    assert record.ok
    assert {a for r in record.rounds for a in r.adapters.values()} == {"WholeReplyAdapter"}
    assert len(lm.calls) == 5


def test_an_empty_reply_is_still_a_failed_step_not_an_empty_answer() -> None:
    record = run_dialectic("Name a prime", lm=ScriptedLM(empty_on={"thesis"}))
    assert record.status == "failed" and record.error is not None and record.error.step == "thesis"


def test_the_scripted_lm_refuses_a_prompt_whose_step_it_cannot_tell() -> None:
    lm = ScriptedLM()
    with pytest.raises(LMError, match="cannot tell which step"):
        lm.complete([{"role": "user", "content": "Just chat with me"}], None)


def test_a_scripted_prose_option_in_the_model_string() -> None:
    lm = make_lm("scripted/prose=synthesis")
    assert isinstance(lm, ScriptedLM) and lm.prose_on == {"synthesis"}
    with dspy.context(lm=lm, adapter=adapter_for(lm)):
        pred = Dialectic()(task="Why?")
    assert pred.synthesis.startswith("Synthesis v1")
