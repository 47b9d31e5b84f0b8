"""The MCP App (``io.modelcontextprotocol/ui``): a dialectic view for run_dialectic / log_trace, and an in-chat review
(``review_pairs`` lists pairs, ``label_pair`` writes a label) over the library's ``review.pairs``.

Built on the SDK's ``Apps`` extension: the views are ``ui://`` HTML resources (self-contained pages in server/ui/,
no network), the review tools are Apps tools bound to them. Clients that did not negotiate Apps get exactly the
results they got before (``client_supports_apps``, SEP-2133's graceful degradation); for those that did, a result
carries the view's data under ``_meta["hegelion/view"]``, where the host hands it to the view and not to the model.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache, partial
from importlib.resources import files
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import anyio
import anyio.to_thread
from mcp.server.apps import Apps, client_supports_apps
from mcp.server.mcpserver import Context
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from hegelion_dspy.curate.labels import Decision
from hegelion_dspy.types import JSONObject

from .shaping import ArgumentCheck, ToolFunction, tool_errors
from .state import ServerState

if TYPE_CHECKING:
    from hegelion_dspy.review.pairs import PairDesk

Answer = TypeVar("Answer")

DIALECTIC_VIEW = "ui://hegelion/dialectic.html"
REVIEW_VIEW = "ui://hegelion/review.html"
VIEW_KEY = "hegelion/view"  # the _meta key of a result's view data
UI_META = {"ui": {"resourceUri": DIALECTIC_VIEW}}  # what Apps.tool stamps, for the tools app.py registers itself
MAX_LISTED = 50  # review_pairs' limit (the library clamps to its own MAX_PAIRS as well)


@cache
def page(name: str) -> str:
    """A view's HTML with the shared bridge script inlined (one self-contained document)."""
    ui = files("hegelion_server") / "ui"
    bridge = (ui / "bridge.js").read_text(encoding="utf-8")
    return (ui / f"{name}.html").read_text(encoding="utf-8").replace("/*BRIDGE*/", bridge)


class ViewDesk:
    """The server's ``PairDesk`` over its trace log, called from worker threads one at a time."""

    def __init__(self, state: ServerState):
        self.state = state
        self._desk: PairDesk | None = None  # made on first use (the review package loads Starlette and SQLite)
        self._lock = anyio.Lock()

    async def call(self, ask: Callable[[PairDesk], Answer]) -> Answer:
        """``ask(desk)`` in a worker thread: ``await desk.call(lambda d: d.pairs(query))``."""
        async with self._lock:
            if self._desk is None:
                from hegelion_dspy.review.pairs import PairDesk

                self._desk = PairDesk(self.state.store.path)
            return await anyio.to_thread.run_sync(partial(ask, self._desk))

    async def view_of(self, trace_id: str) -> JSONObject:
        from hegelion_dspy.review.pairs import dialectic_view

        return dialectic_view(await self.call(lambda d: d.record(trace_id)))


def dumped(result: BaseModel) -> CallToolResult:
    """``result`` as the SDK sends a typed result: its JSON as text and as structured content."""
    data = result.model_dump(mode="json", by_alias=True)
    return CallToolResult(content=[TextContent(type="text", text=json.dumps(data, indent=2))], structured_content=data)


# Any: for an Apps client the typed result becomes the CallToolResult carrying the view, which the SDK passes on as it
# is wherever a tool declares a typed result (a union with CallToolResult would drop the tool's output schema).
async def with_view(ctx: Context, desk: ViewDesk, result: Any) -> Any:
    """``result`` unchanged, or for a client with Apps and a logged trace (``trace_id`` of run_dialectic, ``id`` of
    log_trace), the same plus the dialectic view's data."""
    trace_id = getattr(result, "trace_id", None) or getattr(result, "id", None)
    if not isinstance(result, BaseModel) or not isinstance(trace_id, str) or not client_supports_apps(ctx):
        return result
    shown = dumped(result)
    return shown.model_copy(update={"meta": {VIEW_KEY: await desk.view_of(trace_id)}})


Names = Annotated[list[Annotated[str, Field(max_length=200)]], Field(max_length=20)]


def build_apps(state: ServerState, check: ArgumentCheck) -> tuple[Apps, ViewDesk]:
    """The Apps extension: the two views and the review tools."""
    apps = Apps()
    desk = ViewDesk(state)
    apps.add_html_resource(
        DIALECTIC_VIEW, page("dialectic"), title="Dialectic view", description="Thesis, antithesis, synthesis."
    )
    apps.add_html_resource(REVIEW_VIEW, page("review"), title="Pair review", description="Label pairs in the chat.")
    for fn in (*_review_tools(apps, desk), _trace_tool(apps, desk)):
        check.register("tool", fn.__name__, fn)
    return apps, desk


def _review_tools(apps: Apps, desk: ViewDesk) -> tuple[ToolFunction, ...]:
    reads = ToolAnnotations(title="Pairs to review", read_only_hint=True, open_world_hint=False)
    writes = ToolAnnotations(title="Label a pair", read_only_hint=False, destructive_hint=False, idempotent_hint=True)

    @apps.tool(resource_uri=REVIEW_VIEW, name="review_pairs", title=reads.title, annotations=reads)
    async def review_pairs(
        ctx: Context,
        models: Annotated[Names, Field(description="Only traces whose model matches one of these globs.")] = [],  # noqa: B006
        tags: Annotated[Names, Field(description="Only traces carrying one of these tags.")] = [],  # noqa: B006
        flag: Annotated[str | None, Field(max_length=100, description="Only traces with this quality flag.")] = None,
        include_demo: Annotated[bool, Field(description="Include traces of demo models.")] = False,
        unlabelled_first: Annotated[bool, Field(description="Pairs nobody decided on come first.")] = True,
        limit: Annotated[int, Field(ge=1, le=MAX_LISTED, description="How many pairs.")] = 10,
    ) -> CallToolResult:
        """The preference pairs of the trace log to review next (newest first, unlabelled first), with both sides,
        the trace's model, tags and flags and the pair's latest label. Label one with label_pair. With a client that
        shows MCP Apps the pairs open in a review view (one at a time, keyboard shortcuts) and are not read out."""
        from hegelion_dspy.review.pairs import PairQuery

        query = PairQuery(tuple(models), tuple(tags), flag, include_demo, unlabelled_first, limit)
        with tool_errors():
            pairs = await desk.call(lambda d: d.pairs(query))
        open_pairs = sum(1 for p in pairs if not (p["label"] or {}).get("decision"))
        summary = f"{len(pairs)} pairs to review ({open_pairs} without a decision)"
        if client_supports_apps(ctx):
            text = f"{summary}; they are shown in the review view."
            return CallToolResult(content=[TextContent(type="text", text=text)], _meta={VIEW_KEY: {"pairs": pairs}})
        return CallToolResult(content=[TextContent(type="text", text=json.dumps({"summary": summary, "pairs": pairs}))])

    @apps.tool(resource_uri=REVIEW_VIEW, name="label_pair", title=writes.title, annotations=writes)
    async def label_pair(
        ctx: Context,
        trace_id: Annotated[str, Field(min_length=1, max_length=64, description="The trace's id.")],
        pair: Annotated[str, Field(max_length=40, description="The pair, e.g. 'thesis:1>synthesis:1'.")],
        decision: Annotated[Decision | None, Field(description="accept, reject or swap; none: a note only.")] = None,
        chosen: Annotated[str | None, Field(description="An edited chosen text (after any swap).")] = None,
        note: Annotated[str, Field(description="Free text.")] = "",
        labeller: Annotated[str | None, Field(max_length=200, description="Who decided.")] = None,
        base_version: Annotated[
            int | None, Field(ge=0, description="The pair's version you read (review_pairs' `version`).")
        ] = None,
    ) -> CallToolResult:
        """Label one pair (as review_pairs lists it) in the labels sidecar the review app uses: accept keeps it,
        reject drops it from exports, swap exchanges chosen and rejected, chosen replaces the chosen text. The
        latest label of a pair wins; exports (export_dataset, `hegelion dataset`) apply it. With base_version, the
        label is refused if someone labelled the pair since (read it again with review_pairs)."""
        fields = {"pair": pair, "decision": decision or "", "chosen": chosen or "", "note": note}
        if base_version is not None:
            fields["base"] = str(base_version)
        with tool_errors():
            label, version = await desk.call(lambda d: d.label(trace_id, fields, labeller))
        data = {"label": label.model_dump(mode="json"), "version": version}
        return CallToolResult(content=[TextContent(type="text", text=json.dumps(data))], structured_content=data)

    return review_pairs, label_pair


def _trace_tool(apps: Apps, desk: ViewDesk) -> ToolFunction:
    @apps.tool(resource_uri=DIALECTIC_VIEW, visibility=["app"], name="show_trace", title="Show a trace")
    async def show_trace(ctx: Context, trace_id: Annotated[str, Field(min_length=1, max_length=64)]) -> CallToolResult:
        """One logged trace as the dialectic view draws it (the view's own call)."""
        with tool_errors():
            view = await desk.view_of(trace_id)
        return CallToolResult(content=[TextContent(type="text", text=f"trace {trace_id}")], _meta={VIEW_KEY: view})

    return show_trace
