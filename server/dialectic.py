"""``run_dialectic`` on each route (see ``routes.py``): the library runs or steps the dialectic; this shapes it for MCP.

- ``server`` and ``sampling`` run the program (``arun_dialectic``), reporting progress from its ``on_step`` events;
- ``sampling_rounds`` (protocol 2026-07-28) asks for one step per round and logs the trace when the last one is in;
- ``prompt`` hands the agent the next step's prompt and, once every step is answered, the arguments for log_trace.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
from mcp.server.mcpserver import Context
from mcp_types import InputRequiredResult

from hegelion_dspy.errors import LMError
from hegelion_dspy.types import Mode, Step, TraceFailure, TraceRecord

from .routes import ClientOffer, choose_route, refuse_over_budget
from .sampling import LiveSampler, SamplingRounds, model_name
from .schemas import LmSource, RoundOut, RunDialecticResult
from .shaping import ClientLog
from .state import LoadedProgram, ServerState

if TYPE_CHECKING:
    from hegelion_dspy.lms.base import NamedLM
    from hegelion_dspy.program import StepEvent

ROUNDS_LM = "MCP sampling, one input_required round per step"


@dataclass
class DialecticCall:
    """One ``run_dialectic`` call's arguments; ``answers`` holds the prompt workflow's (empty when starting)."""

    task: str
    mode: Mode = "general"
    iterations: int | None = None
    tags: list[str] = field(default_factory=list)
    answers: dict[str, Any] = field(default_factory=dict)


def client_offer(ctx: Context) -> ClientOffer:
    capabilities = ctx.client_capabilities
    return ClientOffer(
        samples=capabilities is not None and capabilities.sampling is not None,
        protocol_version=ctx.protocol_version,
        can_send_requests=ctx.session.can_send_request,
    )


class DialecticRuns:
    def __init__(self, state: ServerState, client_log: ClientLog):
        self.state = state
        self.client_log = client_log

    async def run(self, ctx: Context, call: DialecticCall) -> RunDialecticResult | InputRequiredResult:
        route = choose_route(
            answers_given=bool(call.answers), server_model=self.state.has_server_model, client=client_offer(ctx)
        )
        loaded = await self.state.program(call.mode)
        iterations = call.iterations or loaded.dialectic.iterations
        refusal = refuse_over_budget(route, iterations, _steps)
        if refusal is not None:
            raise LMError(refusal)
        run = {"server": self.server, "sampling": self.sampling, "sampling_rounds": self.sampling_round}.get(route)
        if run is None:
            return await self.prompt(ctx, call, loaded, iterations)
        return await run(ctx, call, loaded, iterations)

    # -- the program runs: the server's model, or the client's through live sampling requests -----------------------

    async def server(
        self, ctx: Context, call: DialecticCall, loaded: LoadedProgram, iterations: int
    ) -> RunDialecticResult:
        lm = await self.state.server_lm()
        await self.client_log.send_log_message(
            ctx, "info", f"running the dialectic with the server's model {lm.model!r}"
        )
        return await self._run_program(ctx, call, loaded, iterations, lm, "server")

    async def sampling(
        self, ctx: Context, call: DialecticCall, loaded: LoadedProgram, iterations: int
    ) -> RunDialecticResult:
        from hegelion_dspy.lms.sampling import SamplingLM

        sampler = LiveSampler(ctx)
        sampler.lm = SamplingLM(sampler, model=model_name(None))
        await self.client_log.send_log_message(
            ctx, "info", "running the dialectic with your model through MCP sampling"
        )
        return await self._run_program(ctx, call, loaded, iterations, sampler.lm, "sampling")

    async def _run_program(
        self,
        ctx: Context,
        call: DialecticCall,
        loaded: LoadedProgram,
        iterations: int,
        lm: NamedLM,
        source: LmSource,
    ) -> RunDialecticResult:
        from hegelion_dspy.collect.context import RunContext
        from hegelion_dspy.collect.run import arun_dialectic
        from hegelion_dspy.lms.chooser import adapter_for

        run_ctx = RunContext(lm, loaded.dialectic, adapter_for(lm), loaded.path, program_digest=loaded.digest)

        async def run(on_step: Callable[[StepEvent], None]) -> TraceRecord:
            return await arun_dialectic(
                call.task, ctx=run_ctx, iterations=iterations, source="mcp", tags=call.tags, on_step=on_step
            )

        record = await _reporting_progress(ctx, _steps(iterations), run)
        return await self._logged(ctx, record, source, loaded)

    # -- protocol 2026-07-28: one sampling round trip per step ---------------------------------------------------

    async def sampling_round(
        self, ctx: Context, call: DialecticCall, loaded: LoadedProgram, iterations: int
    ) -> RunDialecticResult | InputRequiredResult:
        from hegelion_dspy.collect.workflow import read_reply, render_step
        from hegelion_dspy.lms.adapters import FallbackAdapter

        rounds = SamplingRounds.resume(ctx)
        if rounds.asked is None:
            await self.client_log.send_log_message(
                ctx, "info", "running the dialectic with your model through MCP sampling"
            )
        else:
            step, index = rounds.asked
            try:
                rounds.answers.add(step, index, read_reply(loaded.dialectic, step, rounds.reply(ctx)))
            except LMError as exc:
                return await self._logged(
                    ctx, self._rounds_trace(call, rounds, loaded, (step, index, exc)), "sampling", loaded
                )
            done, total = rounds.answers.steps_answered(), _steps(iterations)
            await ctx.report_progress(done, total, f"{step} done ({done} of {total} steps)")
        following = rounds.answers.next_step(call.task.strip(), iterations)
        if following is None:
            return await self._logged(ctx, self._rounds_trace(call, rounds, loaded), "sampling", loaded)
        prompt = render_step(
            loaded.dialectic, following.step, following.inputs, round_index=following.round, adapter=FallbackAdapter()
        )
        return rounds.ask(prompt)

    def _rounds_trace(
        self,
        call: DialecticCall,
        rounds: SamplingRounds,
        loaded: LoadedProgram,
        failed: tuple[Step, int, LMError] | None = None,
    ) -> TraceRecord:
        failure = None
        if failed is not None:
            step, index, exc = failed
            failure = TraceFailure(step=step, round=index, type=type(exc).__name__, message=str(exc)[:20_000])
        return rounds.answers.to_trace(
            call.task.strip(),
            mode=call.mode,
            source="mcp",
            model=model_name(rounds.model),
            lm=ROUNDS_LM,
            adapter="FallbackAdapter",
            program=loaded.path,
            tags=call.tags,
            failure=failure,
        )

    # -- logging a finished run ----------------------------------------------------------------------------------

    async def _logged(
        self, ctx: Context, record: TraceRecord, source: LmSource, loaded: LoadedProgram
    ) -> RunDialecticResult:
        stats = await self.state.append(record)
        common: dict[str, Any] = {
            "lm_source": source,
            "model": record.model,
            "trace_id": record.id,
            "rounds": [RoundOut(**r.model_dump(include=set(RoundOut.model_fields))) for r in record.rounds],
            "program": loaded.path,
        }
        if record.ok:
            await self.client_log.send_log_message(ctx, "info", f"trace {record.id} logged ({stats.total} in the log)")
            done = "Done: the trace is logged. `synthesis` is the improved answer."
            return RunDialecticResult(status="ok", next=done, synthesis=record.synthesis, **common)
        assert record.error is not None
        error = f"the {record.error.step} step of round {record.error.round} failed: {record.error.message}"
        kept = f", with its {len(record.rounds)} finished round(s)" if record.rounds else ""
        await self.client_log.send_log_message(ctx, "warning", f"{error} (failed trace {record.id} logged{kept})")
        retry = (
            f"The run failed and was logged as a failure{kept} (never exported as training data). Retry, or answer the "
            "steps yourself and call log_trace."
        )
        return RunDialecticResult(status="failed", next=retry, error=error[:2000], **common)

    # -- the prompt workflow -------------------------------------------------------------------------------------

    async def prompt(
        self, ctx: Context, call: DialecticCall, loaded: LoadedProgram, iterations: int
    ) -> RunDialecticResult:
        from hegelion_dspy.collect.workflow import agent_prompt, read_answers

        if not call.answers:
            await self.client_log.send_log_message(
                ctx, "info", "no model here and no sampling: you answer the steps (prompt workflow)"
            )
        answers = await anyio.to_thread.run_sync(lambda: read_answers(loaded.dialectic, **call.answers))
        following = answers.next_step(call.task.strip(), iterations)
        if following is None:
            arguments = {"task": call.task, "mode": call.mode, **answers.log_trace_arguments()}
            return RunDialecticResult(
                lm_source="prompt",
                status="complete",
                next=NEXT_WHEN_COMPLETE,
                program=loaded.path,
                log_trace_arguments=arguments,
            )
        prompt = agent_prompt(loaded.dialectic, following.step, following.inputs, round_index=following.round)
        return RunDialecticResult(
            lm_source="prompt",
            status="answer_needed",
            next=_next_for_prompt(following.step, following.round),
            step=following.step,
            round=following.round,
            prompt=prompt.text,
            program=loaded.path,
        )


NEXT_WHEN_COMPLETE = (
    "All steps are answered. Call log_trace now with `log_trace_arguments` plus model=<your model name> and any tags, "
    "to log this dialectic."
)


def _next_for_prompt(step: Step, round_index: int) -> str:
    first = round_index == 1
    if step == "thesis":
        add = "`thesis`"
    elif step == "antithesis" and first:
        add = "`antithesis` and `contradictions` ([{description, evidence}])"
    elif step == "antithesis":
        add = f"a new last entry of `rounds` (round {round_index}): {{antithesis, contradictions}}"
    elif first:
        add = "`synthesis`"
    else:
        add = "`synthesis` on the last entry of `rounds`"
    return (
        f"Answer `prompt` (the {step} step of round {round_index}), then call run_dialectic again with the same task, "
        f"mode and iterations, everything you passed so far, and your answer as {add}."
    )


def _steps(iterations: int) -> int:
    from hegelion_dspy.program import total_steps

    return total_steps(iterations)


async def _reporting_progress(
    ctx: Context, total: int, run: Callable[[Callable[[StepEvent], None]], Awaitable[TraceRecord]]
) -> TraceRecord:
    """Run ``run(on_step)``, sending a progress notification as each step finishes (on_step is called synchronously
    inside the program; the notifications go out from a task of their own)."""
    sender, receiver = anyio.create_memory_object_stream[str](max_buffer_size=math.inf)

    async def report() -> None:
        done = 0
        async with receiver:
            async for step in receiver:
                done += 1
                await ctx.report_progress(done, total, f"{step} done ({done} of {total} steps)")

    def on_step(event: StepEvent) -> None:
        if event.phase == "end":
            sender.send_nowait(event.step)

    async with anyio.create_task_group() as tg:
        tg.start_soon(report)
        with sender:
            record = await run(on_step)
    return record
