"""The MCP server through the SDK's in-memory client: every tool, the model routes, the resource, the prompts, and
every refused input, in both protocol eras. Real files in a temp data folder; the scripted LM stands in for every
model (the server's, or the client's behind sampling)."""

from __future__ import annotations

import asyncio
import json
import re
import warnings
from pathlib import Path
from typing import Any

import dspy
import pytest
from hegelion_server.app import build_server
from hegelion_server.schemas import EXPORT_OPTIONS_NOT_OFFERED
from mcp import Client
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp_types import CallToolResult, CreateMessageResult, ErrorData, ImageContent, TextContent

from hegelion_dspy.curate.options import ExportOptions
from hegelion_dspy.errors import UnsafePathError
from hegelion_dspy.lms.scripted import ScriptedLM
from hegelion_dspy.program import Dialectic
from hegelion_dspy.store import TraceStore, read_records
from hegelion_dspy.types import STEPS

TASK = "Is 1 a prime number?"
ERAS = ["legacy", "auto"]  # the handshake era (2025-11-25) and 2026-07-28 (input_required rounds for sampling)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def log_lines(data_dir: Path) -> list[dict[str, Any]]:
    path = data_dir / "traces.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def error_text(result: CallToolResult) -> str:
    assert result.is_error, result
    text = result.content[0].text  # type: ignore[union-attr]
    assert "Traceback" not in text and 'File "' not in text and "\n" not in text
    return text


class SamplingClient:
    """A client's model behind MCP sampling: answers each request with the scripted LM, records what it was asked.

    ``prose`` answers in plain text (no field markers); ``image_on`` answers that request number (1-based) with an
    image; ``decline`` refuses every request, as a user who declines the approval prompt."""

    def __init__(
        self,
        model: str = "client-model-1",
        decline: bool = False,
        prose: bool = False,
        image_on: int | None = None,
        cut_on: int | None = None,
    ):
        self.scripted = ScriptedLM()
        self.cut_on = cut_on  # that request (1-based) stops at max_tokens
        self.prose = prose
        self.model = model
        self.decline = decline
        self.image_on = image_on
        self.requests: list[Any] = []

    async def __call__(self, context: Any, params: Any) -> CreateMessageResult | ErrorData:
        self.requests.append(params)
        if self.decline:
            return ErrorData(code=-1, message="the user declined the sampling request")
        if self.image_on == len(self.requests):
            image = ImageContent(type="image", data="AAAA", mime_type="image/png")
            return CreateMessageResult(role="assistant", content=image, model=self.model)
        messages = [{"role": "system", "content": params.system_prompt}] if params.system_prompt else []
        messages += [{"role": m.role, "content": m.content.text} for m in params.messages]
        text = (await self.scripted.acomplete(messages, None)).text
        text = _prose(text) if self.prose else text
        stop = "maxTokens" if self.cut_on == len(self.requests) else "endTurn"
        content = TextContent(type="text", text=text)
        return CreateMessageResult(role="assistant", content=content, model=self.model, stop_reason=stop)


def _prose(marked: str) -> str:
    """A marked-up reply as a model that ignores the format writes it: the text, then the flaws as bullets."""
    fields = dict(re.findall(r"\[\[ ## (\w+) ## \]\]\n(.*?)(?=\n\n\[\[ ## |\Z)", marked, re.S))
    text = next(v for k, v in fields.items() if k in STEPS).strip()
    flaws = json.loads(fields.get("contradictions") or "[]")
    return "\n\n".join([text, *(f"- {flaw['description']}" for flaw in flaws)])


# -- discovery ----------------------------------------------------------------------------------------------------


async def test_three_tools_with_input_and_output_schemas_and_annotations(data_dir: Path) -> None:
    async with Client(build_server(data_dir=data_dir)) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}

    assert set(tools) == {"run_dialectic", "log_trace", "export_dataset", "review_pairs", "label_pair", "show_trace"}
    for tool in (tools[name] for name in ("run_dialectic", "log_trace", "export_dataset")):
        assert tool.output_schema is not None and tool.output_schema["type"] == "object"
        assert tool.annotations is not None and tool.annotations.read_only_hint is False
        assert tool.description
    log = tools["log_trace"]
    assert set(log.input_schema["required"]) == {"task", "thesis", "antithesis", "synthesis"}
    assert log.input_schema["properties"]["task"]["maxLength"] == 20_000
    assert log.input_schema["properties"]["thesis"]["description"] == "Your first answer to the task."
    assert {"id", "total", "ok", "failed"} <= set(log.output_schema["properties"])  # type: ignore[index]
    assert tools["export_dataset"].annotations.destructive_hint is True  # type: ignore[union-attr]
    assert '"exclusiveMaximum": 1' in json.dumps(tools["export_dataset"].input_schema["properties"]["split"])
    assert tools["log_trace"].annotations.destructive_hint is False  # type: ignore[union-attr]
    assert "lm_source" in tools["run_dialectic"].output_schema["properties"]  # type: ignore[index]


async def test_server_info_and_instructions(data_dir: Path) -> None:
    async with Client(build_server(data_dir=data_dir), mode="legacy") as client:
        assert client.server_info is not None and client.server_info.name == "hegelion"
        assert "log_trace" in (client.instructions or "") and "dialectic" in (client.instructions or "")


@pytest.mark.parametrize("mode", ERAS)
async def test_resource_updates_are_not_advertised_in_either_era(data_dir: Path, mode: str) -> None:
    # Issue 11, failure 4: 2026-07-28 advertised resources.subscribe and acknowledged subscriptions/listen, then
    # never delivered an update. Decision: not advertised (docs/mcp.md, Subscriptions).
    async with Client(build_server(data_dir=data_dir), mode=mode) as client:
        resources = client.server_capabilities.resources
        assert resources is not None and not resources.subscribe and not resources.list_changed
        assert not client.server_capabilities.tools.list_changed  # type: ignore[union-attr]
        with pytest.raises(MCPError, match="not found"), warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            if mode == "legacy":
                await client.subscribe_resource("hegelion://traces")
            else:
                async with client.listen(resource_subscriptions=["hegelion://traces"]):
                    pass


# -- run_dialectic: the server's own model ------------------------------------------------------------------------


async def test_the_server_model_runs_every_step_logs_the_trace_and_reports_progress(data_dir: Path) -> None:
    lm = ScriptedLM()
    progress: list[tuple[float, float | None, str | None]] = []
    messages: list[str] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total, message))

    async def on_log(params: Any) -> None:
        messages.append(params.data)

    server = build_server(data_dir=data_dir, lm=lm)
    async with Client(server, logging_callback=on_log, log_level="info") as client:
        result = await client.call_tool(
            "run_dialectic", {"task": TASK, "iterations": 2, "tags": ["t1"]}, progress_callback=on_progress
        )

    out = result.structured_content
    assert not result.is_error and out is not None
    assert (out["lm_source"], out["status"], out["model"]) == ("server", "ok", "scripted/dialectic")
    assert out["synthesis"].startswith("Synthesis v2")
    assert [r["index"] for r in out["rounds"]] == [1, 2]
    assert lm.steps_called() == ["thesis", "antithesis", "synthesis", "antithesis", "synthesis"]
    assert [p[0] for p in progress] == [1, 2, 3, 4, 5] and {p[1] for p in progress} == {5}
    assert [p[2].split()[0] for p in progress] == ["thesis", "antithesis", "synthesis", "antithesis", "synthesis"]
    assert any("server's model" in m for m in messages)
    assert any(out["trace_id"] in m for m in messages)
    (line,) = log_lines(data_dir)
    assert (line["id"], line["source"], line["status"], line["tags"]) == (out["trace_id"], "mcp", "ok", ["t1"])


async def test_a_failing_step_is_reported_and_logged_as_a_failure(data_dir: Path) -> None:
    async with Client(build_server(data_dir=data_dir, lm=ScriptedLM(fail_on={"antithesis"}))) as client:
        result = await client.call_tool("run_dialectic", {"task": TASK})

    out = result.structured_content
    assert out is not None and out["status"] == "failed"
    assert "antithesis step of round 1 failed" in out["error"] and "scripted failure" in out["error"]
    (line,) = log_lines(data_dir)
    assert (line["status"], line["error"]["step"]) == ("failed", "antithesis")


async def test_coding_mode_is_passed_to_the_program(data_dir: Path) -> None:
    lm = ScriptedLM()
    async with Client(build_server(data_dir=data_dir, lm=lm)) as client:
        await client.call_tool("run_dialectic", {"task": "Fix the off-by-one", "mode": "coding"})
    assert "senior software engineer" in lm.calls[0][1][0]["content"]
    assert log_lines(data_dir)[0]["mode"] == "coding"


# -- run_dialectic: the client's model through sampling ------------------------------------------------------------


@pytest.mark.parametrize("mode", ERAS)
async def test_a_client_that_samples_answers_every_step_with_its_model(data_dir: Path, mode: str) -> None:
    sampler = SamplingClient()
    progress: list[float] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append(done)

    async with Client(build_server(data_dir=data_dir), mode=mode, sampling_callback=sampler) as client:
        result = await client.call_tool("run_dialectic", {"task": TASK, "iterations": 2}, progress_callback=on_progress)

    out = result.structured_content
    assert out is not None and not result.is_error
    assert (out["lm_source"], out["status"], out["model"]) == ("sampling", "ok", "mcp-sampling/client-model-1")
    assert out["synthesis"].startswith("Synthesis v2")
    assert sampler.scripted.steps_called() == ["thesis", "antithesis", "synthesis", "antithesis", "synthesis"]
    first = sampler.requests[0]
    assert "Answer the task directly" in first.system_prompt  # the system prompt travels separately
    assert [m.role for m in first.messages] == ["user"] and TASK in first.messages[0].content.text
    assert progress and progress[-1] == 5
    (line,) = log_lines(data_dir)
    assert (line["model"], line["status"], line["rounds"][1]["thesis"]) == (
        "mcp-sampling/client-model-1",
        "ok",
        out["rounds"][0]["synthesis"],
    )


@pytest.mark.parametrize("mode", ERAS)
async def test_a_plain_text_sampling_reply_is_read_whole_with_one_request_per_step(data_dir: Path, mode: str) -> None:
    # Issue 11, failure 3: prose without DSPy's field markers failed every step and cost a second request per step.
    sampler = SamplingClient(prose=True)
    async with Client(build_server(data_dir=data_dir), mode=mode, sampling_callback=sampler) as client:
        out = (await client.call_tool("run_dialectic", {"task": TASK, "iterations": 2})).structured_content

    assert out is not None and out["status"] == "ok", out
    assert len(sampler.requests) == 5  # one per step: no retry that would cost the user another approval
    (record,) = read_records(data_dir / "traces.jsonl")
    assert record.rounds[0].antithesis.startswith("the answer")  # the echoed "Antithesis:" label is dropped
    assert [c.description for c in record.rounds[0].contradictions] == ["It ignores edge cases."]  # from the bullet
    assert record.synthesis.startswith("Synthesis v2") and "[[ ##" not in record.synthesis


async def test_a_sampling_reply_cut_at_max_tokens_is_recorded_in_its_step(data_dir: Path) -> None:
    sampler = SamplingClient(cut_on=2)  # the antithesis stops at the step's max_tokens
    async with Client(build_server(data_dir=data_dir), mode="legacy", sampling_callback=sampler) as client:
        out = (await client.call_tool("run_dialectic", {"task": TASK})).structured_content

    assert out is not None and out["status"] == "ok"
    (record,) = read_records(data_dir / "traces.jsonl")
    assert record.rounds[0].truncated == ["antithesis"]
    assert sampler.requests[1].max_tokens > 0


async def test_modern_sampling_refuses_up_front_what_the_clients_round_budget_cannot_finish(data_dir: Path) -> None:
    # Issue 11, failure 2: on 2026-07-28 iterations >= 5 ran until the client gave up after 10 rounds; nothing logged.
    sampler = SamplingClient()
    async with Client(build_server(data_dir=data_dir), sampling_callback=sampler) as client:
        refused = await client.call_tool("run_dialectic", {"task": TASK, "iterations": 5})
        fits = await client.call_tool("run_dialectic", {"task": TASK, "iterations": 4})

    message = error_text(refused)
    assert "iterations=5 needs 11 sampling round trips" in message
    for alternative in ("iterations <= 4", "`dialectic` prompt", "HEGELION_MODEL", "2025-11-25"):
        assert alternative in message
    assert fits.structured_content is not None and fits.structured_content["status"] == "ok"
    assert len(sampler.requests) == 9  # the refused call asked nothing; four rounds are nine steps
    assert [line["status"] for line in log_lines(data_dir)] == ["ok"]


async def test_handshake_era_sampling_runs_every_iteration(data_dir: Path) -> None:
    sampler = SamplingClient()
    async with Client(build_server(data_dir=data_dir), mode="legacy", sampling_callback=sampler) as client:
        out = (await client.call_tool("run_dialectic", {"task": TASK, "iterations": 6})).structured_content
    assert out is not None and out["status"] == "ok" and len(sampler.requests) == 13


async def test_a_failed_sampling_round_logs_the_rounds_already_finished(data_dir: Path) -> None:
    # the 4th request (round 2's antithesis) gets an image: round 1 is kept in a failed trace, never dropped
    sampler = SamplingClient(image_on=4)
    async with Client(build_server(data_dir=data_dir), sampling_callback=sampler) as client:
        out = (await client.call_tool("run_dialectic", {"task": TASK, "iterations": 2})).structured_content

    assert out is not None and out["status"] == "failed"
    assert out["error"].startswith("the antithesis step of round 2 failed: the client's model answered with 'image'")
    assert "with its 1 finished round(s)" in out["next"]
    (record,) = read_records(data_dir / "traces.jsonl")
    assert (record.status, len(record.rounds), record.error.step) == ("failed", 1, "antithesis")  # type: ignore[union-attr]
    assert record.rounds[0].synthesis.startswith("Synthesis v1")


async def test_a_declined_sampling_request_is_a_failed_run(data_dir: Path) -> None:
    sampler = SamplingClient(decline=True)
    async with Client(build_server(data_dir=data_dir), mode="legacy", sampling_callback=sampler) as client:
        result = await client.call_tool("run_dialectic", {"task": TASK})

    out = result.structured_content
    assert out is not None and out["status"] == "failed" and "declined" in out["error"]
    assert log_lines(data_dir)[0]["status"] == "failed"


async def test_a_server_model_wins_over_sampling(data_dir: Path) -> None:
    sampler = SamplingClient()
    async with Client(build_server(data_dir=data_dir, lm=ScriptedLM()), sampling_callback=sampler) as client:
        out = (await client.call_tool("run_dialectic", {"task": TASK})).structured_content
    assert out is not None and out["lm_source"] == "server" and sampler.requests == []


# -- run_dialectic: the prompt workflow (no model anywhere), finished by log_trace --------------------------------


async def _play(client: Client, args: dict[str, Any], answer: Any) -> tuple[dict[str, Any], list[tuple[int, str]]]:
    """Drive the prompt workflow like an agent: answer each prompt, call again, until it says 'complete'."""
    steps: list[tuple[int, str]] = []
    for _ in range(12):
        out = (await client.call_tool("run_dialectic", args)).structured_content
        assert out is not None and out["lm_source"] == "prompt", out
        if out["status"] == "complete":
            return out, steps
        assert out["status"] == "answer_needed" and out["prompt"] and out["next"]
        steps.append((out["round"], out["step"]))
        answer(args, out)
    raise AssertionError("the workflow never completed")


def _answer(args: dict[str, Any], out: dict[str, Any]) -> None:
    step, round_index = out["step"], out["round"]
    if round_index == 1:
        args[step] = f"my {step}"
        if step == "antithesis":
            args["contradictions"] = [{"description": "1 has one divisor", "evidence": "primes have two"}]
    elif step == "antithesis":
        args.setdefault("rounds", []).append({"antithesis": f"critique {round_index}", "contradictions": []})
    else:
        args["rounds"][-1]["synthesis"] = f"synthesis {round_index}"


async def test_without_a_model_the_agent_plays_each_step_and_logs_with_log_trace(data_dir: Path) -> None:
    server = build_server(data_dir=data_dir)
    async with Client(server) as client:  # declares no sampling
        args: dict[str, Any] = {"task": TASK}
        out, steps = await _play(client, args, _answer)
        assert steps == [(1, "thesis"), (1, "antithesis"), (1, "synthesis")]
        assert "log_trace" in out["next"]
        assert out["log_trace_arguments"] == {**args, "mode": "general"}  # what the agent passed, ready to log
        assert log_lines(data_dir) == []  # the workflow itself writes nothing

        logged = await client.call_tool("log_trace", {**out["log_trace_arguments"], "model": "agent-model"})

    result = logged.structured_content
    assert result is not None and (result["total"], result["ok"], result["log"]) == (1, 1, "traces.jsonl")
    (record,) = read_records(data_dir / "traces.jsonl")
    assert (record.id, record.source, record.model) == (result["id"], "mcp", "agent-model")
    assert [record.rounds[0].thesis, record.rounds[0].antithesis, record.synthesis] == [
        "my thesis",
        "my antithesis",
        "my synthesis",
    ]
    assert record.rounds[0].contradictions[0].description == "1 has one divisor"


async def test_the_prompt_workflow_runs_every_iteration(data_dir: Path) -> None:
    async with Client(build_server(data_dir=data_dir)) as client:
        args: dict[str, Any] = {"task": TASK, "iterations": 2}
        out, steps = await _play(client, args, _answer)
        assert steps == [(1, "thesis"), (1, "antithesis"), (1, "synthesis"), (2, "antithesis"), (2, "synthesis")]
        logged = await client.call_tool("log_trace", out["log_trace_arguments"])
        assert not logged.is_error

    (record,) = read_records(data_dir / "traces.jsonl")
    assert [r.thesis for r in record.rounds] == ["my thesis", "my synthesis"]
    assert record.synthesis == "synthesis 2"


async def test_each_prompt_comes_once_with_one_answer_format_and_no_schema(data_dir: Path) -> None:
    # Issue 11, failure 5: the prompt came twice (`prompt` and `messages`), asked for [[ ## ]] markers while `next`
    # said plain text, and showed a contradiction schema allowing 20,000 characters where the tool takes 10,000.
    async with Client(build_server(data_dir=data_dir)) as client:
        result = await client.call_tool("run_dialectic", {"task": TASK, "thesis": "Yes."})
        tools = {t.name: t for t in (await client.list_tools()).tools}

    out = result.structured_content
    assert out is not None and out["step"] == "antithesis"
    instructions = "Critique the thesis as a rigorous opponent."
    assert json.dumps(out).count(instructions) == 1  # once in the structured result (and once in its text copy)
    assert result.content[0].text.count(instructions) == 1  # type: ignore[union-attr]
    assert "messages" not in out
    said = out["prompt"] + out["next"]
    assert said.count("plain text") == 1 and "[[ ##" not in said and "JSON schema" not in said
    assert "Yes." in out["prompt"] and out["prompt"].index("## Your input") < out["prompt"].index("## Your answer")
    limits = {int(n.replace(",", "")) for n in __import__("re").findall(r"\b\d[\d,]{3,}\b", said)}
    contradiction = tools["log_trace"].input_schema["$defs"]["ContradictionIn"]["properties"]["description"]
    assert all(limit <= contradiction["maxLength"] for limit in limits)


async def test_a_marked_up_answer_is_read_field_by_field(data_dir: Path) -> None:
    raw_reply = (  # an agent answering in DSPy's own format
        "[[ ## antithesis ## ]]\nThe thesis ignores the definition.\n\n"
        '[[ ## contradictions ## ]]\n[{"description": "It ignores edge cases.", "evidence": "1 has one divisor"}]'
        "\n\n[[ ## completed ## ]]"
    )
    async with Client(build_server(data_dir=data_dir)) as client:
        args = {"task": TASK, "thesis": "Yes.", "antithesis": raw_reply}
        out = (await client.call_tool("run_dialectic", args)).structured_content
        done = (await client.call_tool("run_dialectic", {**args, "synthesis": "No."})).structured_content
    assert out is not None and out["step"] == "synthesis"
    assert "It ignores edge cases." in out["prompt"] and "[[ ##" not in out["prompt"]
    assert done is not None and done["status"] == "complete"
    arguments = done["log_trace_arguments"]
    assert arguments["antithesis"] == "The thesis ignores the definition."
    assert arguments["contradictions"][0]["description"] == "It ignores edge cases."


async def test_a_partial_trace_that_skips_a_step_is_a_tool_error(data_dir: Path) -> None:
    async with Client(build_server(data_dir=data_dir, lm=ScriptedLM())) as client:
        result = await client.call_tool("run_dialectic", {"task": TASK, "synthesis": "too early"})
    assert "'synthesis'" in error_text(result) and "without a thesis" in error_text(result)


async def test_a_compiled_program_serves_its_instructions_and_demos(data_dir: Path) -> None:
    program = Dialectic()
    program.thesis.signature = program.thesis.signature.with_instructions("TUNED THESIS INSTRUCTIONS.")
    program.thesis.demos = [dspy.Example(task="Is 2 prime?", thesis="DEMO THESIS: yes.").with_inputs("task")]
    data_dir.mkdir(parents=True)
    program.save(str(data_dir / "tuned.json"))

    async with Client(build_server(data_dir=data_dir, program="tuned.json")) as client:
        general = (await client.call_tool("run_dialectic", {"task": TASK})).structured_content
        coding = (await client.call_tool("run_dialectic", {"task": TASK, "mode": "coding"})).structured_content

    assert general is not None and coding is not None
    assert "TUNED THESIS INSTRUCTIONS." in general["prompt"] and "DEMO THESIS: yes." in general["prompt"]
    assert general["program"] == str((data_dir / "tuned.json").resolve())
    assert "TUNED" not in coding["prompt"] and coding["program"] is None  # a general program: coding uses defaults


def test_a_program_name_outside_the_data_folder_is_refused(data_dir: Path) -> None:
    with pytest.raises(UnsafePathError):
        build_server(data_dir=data_dir, program="../tuned.json")


# -- unknown arguments --------------------------------------------------------------------------------------------


async def test_an_unknown_argument_is_refused_naming_the_allowed_ones(data_dir: Path) -> None:
    # Issue 11, failure 5: `model` passed to run_dialectic was ignored without a word.
    async with Client(build_server(data_dir=data_dir)) as client:
        result = await client.call_tool("run_dialectic", {"task": TASK, "model": "gpt-x"})
        logged = await client.call_tool("log_trace", {**GOOD, "score": 1, "notes": "x"})
        with pytest.raises(MCPError) as info:
            await client.get_prompt("thesis", {"task": TASK, "iterations": "2"})

    assert error_text(result) == (
        "unknown argument 'model' for the tool 'run_dialectic'; it takes: task, mode, iterations, thesis, antithesis, "
        "contradictions, synthesis, rounds, tags"
    )
    assert error_text(logged).startswith("unknown arguments 'notes', 'score' for the tool 'log_trace'; it takes: task,")
    assert str(info.value) == "unknown argument 'iterations' for the prompt 'thesis'; it takes: task, mode"
    assert log_lines(data_dir) == []


# -- log_trace ----------------------------------------------------------------------------------------------------

GOOD = {"task": TASK, "thesis": "Yes.", "antithesis": "No: one divisor.", "synthesis": "1 is not prime."}


async def test_log_trace_appends_and_returns_the_id_and_counts(data_dir: Path) -> None:
    async with Client(build_server(data_dir=data_dir)) as client:
        first = (await client.call_tool("log_trace", GOOD)).structured_content
        later = {"antithesis": "Too terse.", "contradictions": [{"description": "no definition"}], "synthesis": "Done."}
        second = (
            await client.call_tool("log_trace", {**GOOD, "rounds": [later], "mode": "coding", "tags": ["ide"]})
        ).structured_content

    assert first is not None and second is not None
    assert (first["total"], second["total"], second["ok"], second["failed"]) == (1, 2, 2, 0)
    records = list(read_records(data_dir / "traces.jsonl"))
    assert [r.id for r in records] == [first["id"], second["id"]]
    assert records[1].rounds[1].thesis == "1 is not prime." and records[1].synthesis == "Done."
    assert (records[1].mode, records[1].tags) == ("coding", ["ide"])


BAD_INPUTS = [
    ({k: v for k, v in GOOD.items() if k != "synthesis"}, "synthesis"),
    ({**GOOD, "thesis": "   "}, "thesis"),
    ({**GOOD, "task": ""}, "task"),
    ({**GOOD, "task": "x" * 20_001}, "task"),
    ({**GOOD, "antithesis": "x" * 100_001}, "antithesis"),
    ({**GOOD, "contradictions": [{"evidence": "no description"}]}, "contradictions"),
    ({**GOOD, "contradictions": [{"description": "d"}] * 51}, "contradictions"),
    ({**GOOD, "rounds": [{"antithesis": "a"}]}, "rounds"),
    ({**GOOD, "mode": "poetry"}, "mode"),
    ({**GOOD, "tags": ["t"] * 21}, "tags"),
    ({**GOOD, "tags": ["x" * 65]}, "tags"),
    ({**GOOD, "model": "m" * 201}, "model"),
    ({**GOOD, "thesis": 42}, "thesis"),
]


@pytest.mark.parametrize(("arguments", "field"), BAD_INPUTS, ids=[f for _, f in BAD_INPUTS])
async def test_invalid_input_names_the_field_and_writes_nothing(
    data_dir: Path, arguments: dict[str, Any], field: str
) -> None:
    async with Client(build_server(data_dir=data_dir)) as client:
        result = await client.call_tool("log_trace", arguments)
    assert result.is_error and field in result.content[0].text  # type: ignore[union-attr]
    assert not (data_dir / "traces.jsonl").exists()


async def test_fifty_concurrent_log_traces_lose_nothing(data_dir: Path) -> None:
    async with Client(build_server(data_dir=data_dir)) as client:
        results = await asyncio.gather(
            *(client.call_tool("log_trace", {**GOOD, "task": f"task {i}"}) for i in range(50))
        )
    assert not any(r.is_error for r in results)
    assert sorted(r.structured_content["total"] for r in results) == list(range(1, 51))  # type: ignore[index]
    assert sorted(line["task"] for line in log_lines(data_dir)) == sorted(f"task {i}" for i in range(50))


async def test_counts_follow_appends_by_other_writers(data_dir: Path) -> None:
    async with Client(build_server(data_dir=data_dir)) as client:
        await client.call_tool("log_trace", GOOD)
        with TraceStore(data_dir / "traces.jsonl").path.open("a") as fh:  # a CLI run appending meanwhile
            fh.write(json.dumps({**log_lines(data_dir)[0], "id": "other"}) + "\n")
            fh.write("not json\n")
        out = (await client.call_tool("log_trace", GOOD)).structured_content
    assert out is not None and (out["total"], out["invalid"]) == (3, 1)


async def test_a_log_that_is_not_a_file_is_a_one_line_error(data_dir: Path) -> None:
    (data_dir / "traces.jsonl").mkdir(parents=True)
    async with Client(build_server(data_dir=data_dir)) as client:
        result = await client.call_tool("log_trace", GOOD)
    assert error_text(result).endswith("traces.jsonl: is a folder, not a trace log file")


async def test_a_log_that_cannot_be_written_is_one_error_naming_where_the_trace_went(
    data_dir: Path, tmp_path: Path
) -> None:
    data_dir.mkdir()
    (data_dir / "traces.jsonl").symlink_to(tmp_path / "missing-folder" / "traces.jsonl")  # appending fails: OSError
    async with Client(build_server(data_dir=data_dir)) as client:
        result = await client.call_tool("log_trace", GOOD)
    text = error_text(result)
    assert text.startswith("Error executing tool log_trace: cannot write the trace log ") and "(ENOENT)" in text
    assert "Traceback" not in text and "\n" not in text
    saved = list(data_dir.glob("traces.jsonl.unsaved-*.jsonl"))  # the trace is kept, not lost
    assert len(saved) == 1 and f"1 finished trace saved to {saved[0]}" in text
    assert json.loads(saved[0].read_text().splitlines()[0])["task"] == GOOD["task"]


# -- export_dataset -----------------------------------------------------------------------------------------------


async def _logged(client: Client, n: int = 3) -> None:
    for i in range(n):
        await client.call_tool("log_trace", {**GOOD, "task": f"question {i}"})


async def test_export_writes_the_dataset_into_the_data_folder(data_dir: Path) -> None:
    async with Client(build_server(data_dir=data_dir)) as client:
        await _logged(client)
        await client.call_tool("log_trace", {**GOOD, "task": "question 0"})  # a duplicate prompt
        out = (await client.call_tool("export_dataset", {"format": "dpo"})).structured_content

    assert out is not None
    assert out["path"] == str(data_dir.resolve() / "dpo.jsonl")
    assert out["rows"] == {"train": 3} and out["dropped"] == {"duplicate_prompt": 1}
    rows = [json.loads(line) for line in (data_dir / "dpo.jsonl").read_text().splitlines()]
    # the repeated prompt's latest trace is kept (keep="best" without scores), so it comes last
    assert rows[-1] == {"prompt": "question 0", "chosen": "1 is not prime.", "rejected": "Yes."}


async def test_export_dataset_takes_its_options_from_the_one_export_options_model(data_dir: Path) -> None:
    async with Client(build_server(data_dir=data_dir)) as client:
        tool = next(t for t in (await client.list_tools()).tools if t.name == "export_dataset")
        await client.call_tool("log_trace", {**GOOD, "tags": ["keep"]})
        await client.call_tool("log_trace", {**GOOD, "task": "other", "tags": ["leave"]})
        filtered = (await client.call_tool("export_dataset", {"format": "sft", "tags": ["keep"]})).structured_content
        card = await client.call_tool("export_dataset", {"card": True})

    properties = tool.input_schema["properties"]
    assert set(properties) == (set(ExportOptions.model_fields) - EXPORT_OPTIONS_NOT_OFFERED) | {"output_name"}
    assert {"card", "labels", "labels_file"} == EXPORT_OPTIONS_NOT_OFFERED  # a folder, always-on labels, a file path
    for name, info in ExportOptions.model_fields.items():
        if name not in EXPORT_OPTIONS_NOT_OFFERED:
            assert properties[name].get("description") == info.description, name
    assert filtered is not None and filtered["rows"] == {"train": 1}
    assert error_text(card).startswith("unknown argument 'card' for the tool 'export_dataset'; it takes: include_demo,")


async def test_export_with_a_split_writes_two_files(data_dir: Path) -> None:
    async with Client(build_server(data_dir=data_dir)) as client:
        await _logged(client, 20)
        out = (
            await client.call_tool("export_dataset", {"format": "sft-chat", "output_name": "sft.jsonl", "split": 0.3})
        ).structured_content
    assert out is not None and set(out["files"]) == {"train", "test"}
    assert sum(out["rows"].values()) == 20
    assert (data_dir / "sft.train.jsonl").exists() and (data_dir / "sft.test.jsonl").exists()


REFUSED_NAMES = ["../escape.jsonl", "/tmp/escape.jsonl", "sub/x.jsonl", ".hidden.jsonl", "..", "a\\b.jsonl"]


@pytest.mark.parametrize("name", REFUSED_NAMES)
async def test_export_refuses_names_that_leave_the_data_folder(data_dir: Path, name: str) -> None:
    async with Client(build_server(data_dir=data_dir)) as client:
        await _logged(client, 1)
        result = await client.call_tool("export_dataset", {"output_name": name, "force": True})
    assert repr(name) in error_text(result) or name in error_text(result)
    assert sorted(p.name for p in data_dir.iterdir()) == ["traces.jsonl"]


async def test_export_refuses_a_symlink_that_leads_outside(data_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.jsonl"
    outside.write_text("keep me\n")
    async with Client(build_server(data_dir=data_dir)) as client:
        await _logged(client, 1)
        (data_dir / "link.jsonl").symlink_to(outside)
        result = await client.call_tool("export_dataset", {"output_name": "link.jsonl", "force": True})
    assert "symlink" in error_text(result)
    assert outside.read_text() == "keep me\n"


async def test_export_keeps_an_existing_file_unless_asked(data_dir: Path) -> None:
    async with Client(build_server(data_dir=data_dir)) as client:
        await _logged(client, 2)
        (data_dir / "dpo.jsonl").write_text("precious\n")
        refused = await client.call_tool("export_dataset", {"format": "dpo"})
        assert "already exists" in error_text(refused)
        assert (data_dir / "dpo.jsonl").read_text() == "precious\n"
        replaced = await client.call_tool("export_dataset", {"format": "dpo", "force": True})
    assert not replaced.is_error
    assert len((data_dir / "dpo.jsonl").read_text().splitlines()) == 2


async def test_export_never_writes_over_the_trace_log(data_dir: Path) -> None:
    async with Client(build_server(data_dir=data_dir)) as client:
        await _logged(client, 2)
        result = await client.call_tool("export_dataset", {"output_name": "traces.jsonl", "force": True})
    assert "trace log" in error_text(result)
    assert len(log_lines(data_dir)) == 2


async def test_export_of_an_empty_log_says_what_to_do(data_dir: Path) -> None:
    async with Client(build_server(data_dir=data_dir)) as client:
        result = await client.call_tool("export_dataset", {})
    assert "empty" in error_text(result) and "log_trace" in error_text(result)


async def test_export_option_errors_come_from_the_exporter(data_dir: Path) -> None:
    async with Client(build_server(data_dir=data_dir)) as client:
        await _logged(client, 1)
        result = await client.call_tool("export_dataset", {"format": "dpo", "system": "Be brief."})
        too_big = await client.call_tool("export_dataset", {"format": "dpo", "split": 1.5})
    assert "option 'system' applies to the formats dpo-chat and sft-chat only" in error_text(result)
    assert too_big.is_error and "split" in too_big.content[0].text  # type: ignore[union-attr]
    assert sorted(p.name for p in data_dir.iterdir()) == ["traces.jsonl"]


# -- the resource and the prompts ---------------------------------------------------------------------------------


async def test_the_resource_has_counts_and_recent_traces_newest_first(data_dir: Path) -> None:
    async with Client(build_server(data_dir=data_dir, lm=ScriptedLM(fail_on={"synthesis"}))) as client:
        resources = (await client.list_resources()).resources
        await _logged(client, 2)
        await client.call_tool("run_dialectic", {"task": "fails"})
        contents = (await client.read_resource("hegelion://traces")).contents

    assert [str(r.uri) for r in resources if not str(r.uri).startswith("ui://")] == ["hegelion://traces"]
    summary = json.loads(contents[0].text)  # type: ignore[union-attr]
    assert summary["stats"]["total"] == 3 and summary["stats"]["failed"] == 1
    assert [r["task"] for r in summary["recent"]] == ["fails", "question 1", "question 0"]
    assert summary["recent"][1]["rounds"] == 1 and summary["recent"][1]["status"] == "ok"
    assert summary["log"] == str(data_dir / "traces.jsonl")


async def test_the_step_prompts_render_the_program_steps_in_the_answer_format(data_dir: Path) -> None:
    async with Client(build_server(data_dir=data_dir)) as client:
        names = [p.name for p in (await client.list_prompts()).prompts]
        thesis = await client.get_prompt("thesis", {"task": TASK})
        antithesis = await client.get_prompt("antithesis", {"task": TASK, "thesis": "Yes, it is."})
        synthesis = await client.get_prompt(
            "synthesis",
            {
                "task": TASK,
                "thesis": "Yes.",
                "antithesis": "No.",
                "contradictions": '[{"description": "ONE DIVISOR"}]',
                "mode": "coding",
            },
        )

    assert names == ["thesis", "antithesis", "synthesis", "dialectic", "export"]
    assert [m.role for m in thesis.messages] == ["user"]
    text = thesis.messages[0].content.text  # type: ignore[union-attr]
    assert "Answer the task directly" in text and text.count("plain text") == 1
    assert "Yes, it is." in antithesis.messages[0].content.text  # type: ignore[union-attr]
    text = synthesis.messages[0].content.text  # type: ignore[union-attr]
    assert "ONE DIVISOR" in text and "Write the corrected solution" in text


@pytest.mark.parametrize(
    ("contradictions", "message"),
    [
        ("not json", "Invalid JSON"),
        ('[{"description": "' + "x" * 10_001 + '"}]', "at most 10000 characters"),  # log_trace's limit
        ("[" + ",".join(['{"description": "d"}'] * 51) + "]", "at most 50 items"),
    ],
)
async def test_a_prompt_with_bad_contradictions_is_refused(data_dir: Path, contradictions: str, message: str) -> None:
    async with Client(build_server(data_dir=data_dir)) as client:
        with pytest.raises(MCPError, match=message):
            await client.get_prompt(
                "synthesis", {"task": TASK, "thesis": "a", "antithesis": "b", "contradictions": contradictions}
            )


async def test_the_dialectic_prompt_tells_an_agent_the_whole_workflow_in_one_message(data_dir: Path) -> None:
    async with Client(build_server(data_dir=data_dir)) as client:
        prompt = await client.get_prompt("dialectic", {"task": TASK, "iterations": "2", "mode": "coding"})
        (message,) = prompt.messages
        text = message.content.text  # type: ignore[union-attr]
        # an agent following it: three steps, a second round, then the one log_trace call it describes
        later = {"antithesis": "Round 2 critique.", "contradictions": [], "synthesis": "Round 2 answer."}
        logged = await client.call_tool(
            "log_trace", {**GOOD, "contradictions": [], "rounds": [later], "mode": "coding", "model": "agent"}
        )

    assert message.role == "user" and TASK in text
    assert text.index("## Step 1: thesis") < text.index("## Step 2: antithesis") < text.index("## Step 3: synthesis")
    assert "senior software engineer" in text  # the program's own (coding) instructions
    assert "1 more round" in text and "rounds:" in text and 'mode: "coding"' in text
    for argument in ("task", "thesis", "antithesis", "contradictions", "synthesis", "model"):
        assert f"- {argument}" in text or f", {argument}" in text
    assert "`log_trace`" in text and text.count("plain text") == 1
    assert not logged.is_error
    assert [r.synthesis for r in next(read_records(data_dir / "traces.jsonl")).rounds] == [
        GOOD["synthesis"],
        "Round 2 answer.",
    ]


async def test_logging_is_declared_and_set_level_filters_messages(data_dir: Path) -> None:
    messages: list[str] = []

    async def on_log(params: Any) -> None:
        messages.append(f"{params.level}: {params.data}")

    server = build_server(data_dir=data_dir, lm=ScriptedLM(fail_on={"synthesis"}))
    async with Client(server, mode="legacy", logging_callback=on_log) as client:
        assert client.server_capabilities.logging is not None
        with pytest.warns(MCPDeprecationWarning):  # the client SDK marks logging/setLevel deprecated (SEP-2577)
            await client.session.set_logging_level("warning")
        await client.call_tool("run_dialectic", {"task": TASK})

    assert messages and all(m.startswith("warning: the synthesis step") for m in messages)
