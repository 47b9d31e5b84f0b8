"""RunSpec declares a run's options once: RunContext.build, run_dialectic's options, the Ray recipe and the flags of
`hegelion run` all come from its fields."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from hegelion_dspy.cli.agent import agent
from hegelion_dspy.cli.options import as_flags
from hegelion_dspy.collect.context import RunContext, RunRecipe
from hegelion_dspy.collect.run import RunOptions
from hegelion_dspy.collect.spec import RunSpec
from hegelion_dspy.errors import ConfigError
from hegelion_dspy.lms.manners import PoliteLM

RUN_ONLY = {"ctx", "store", "source", "on_step"}  # run_dialectic's own options
LIVE_OBJECTS = {"adapter"}  # RunContext.build's objects that are no RunSpec field
NOT_FLAGS = {"lm", "mode", "parallel", "manners"}  # a function; --coding; -j; an object (--rpm, --tpm, --max-retries)


def test_run_dialectic_takes_every_run_spec_field_and_nothing_else_undeclared() -> None:
    assert set(RunOptions.__annotations__) - RUN_ONLY - LIVE_OBJECTS == set(RunSpec.model_fields)


def test_every_run_spec_field_is_a_flag_of_hegelion_run() -> None:
    params = {p.name for p in agent.params}
    assert set(RunSpec.model_fields) - NOT_FLAGS <= params


def test_a_spec_pickles_for_a_ray_worker_and_the_old_name_still_works() -> None:
    spec = RunRecipe(model="scripted", api_base="http://a/v1, http://b/v1", tags=["x"], rpm=60)
    assert isinstance(spec, RunSpec)
    assert pickle.loads(pickle.dumps(spec)) == spec
    assert spec.api_base == ("http://a/v1", "http://b/v1")
    assert spec.tags == ("x",)


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"rpm": 0}, "--rpm: Input should be greater than 0 (got 0)"),
        ({"iterations": 11}, "--iterations: Input should be less than or equal to 10 (got 11)"),
        ({"colour": "red"}, "--colour: Extra inputs are not permitted (got 'red')"),
    ],
)
def test_a_bad_option_is_a_config_error_the_cli_names_as_its_flag(changes: dict[str, Any], said: str) -> None:
    with pytest.raises(ConfigError) as caught:
        RunSpec.of(**changes)
    assert as_flags(str(caught.value), caught.value.options) == said


def test_the_context_is_built_from_the_spec_with_its_manners() -> None:
    ctx = RunContext.build(RunSpec(model="scripted", rpm=60, max_retries=2, iterations=2), mode="coding")
    assert isinstance(ctx.lm, PoliteLM)
    assert (ctx.lm.manners.rpm, ctx.lm.manners.max_retries) == (60, 2)
    assert (ctx.program.mode, ctx.program.iterations) == ("coding", 2)
    assert ctx.judge is None
    assert RunContext.build(RunSpec(model="scripted", judge=True)).judge is not None


def test_manners_are_given_whole_or_by_rpm_tpm_and_max_retries_not_both() -> None:
    from hegelion_dspy.lms.manners import Manners

    whole = Manners(rpm=3000, backoff=2.0)
    assert RunSpec(model="scripted", manners=whole).call_manners() is whole
    with pytest.raises(ConfigError) as caught:
        RunSpec.of(manners=whole, rpm=10)
    assert as_flags(str(caught.value), caught.value.options) == "--manners includes --rpm; give one or the other"
    with pytest.raises(ConfigError, match=r"expected lms\.manners\.Manners, got dict"):
        RunSpec.of(manners={"rpm": 1})
