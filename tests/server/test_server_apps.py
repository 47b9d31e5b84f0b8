"""The MCP App through the SDK's in-memory client: the views as ui:// resources, run_dialectic and log_trace with and
without Apps (a client without them gets exactly today's result), review_pairs and label_pair writing the labels
sidecar the review app and the exporters read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hegelion_server.app import build_server
from hegelion_server.views import DIALECTIC_VIEW, REVIEW_VIEW, VIEW_KEY
from mcp import Client
from mcp.client import advertise
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID

from hegelion_dspy.collect.traces import build_trace
from hegelion_dspy.curate.labels import Label, LabelStore
from hegelion_dspy.lms.scripted import ScriptedLM
from hegelion_dspy.store import TraceStore

APPS = [advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})]
PAIR = "thesis:1>synthesis:1"
TASK = "Is 1 a prime number?"
HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def trace(i: int, **fields: Any) -> Any:
    record = build_trace(
        task=fields.pop("task", f"Task {i}"),
        thesis=fields.pop("thesis", f"First answer {i}."),
        antithesis=fields.pop("antithesis", f"Critique {i}."),
        synthesis=fields.pop("synthesis", f"Better answer {i}."),
        model=fields.pop("model", "openai/gpt-4o-mini" if i % 2 else "anthropic/claude"),
        tags=fields.pop("tags", ["even"] if i % 2 == 0 else []),
        source="mcp",
    )
    return record.model_copy(update={"id": f"t{i:04d}", **fields})


def seeded(data_dir: Path, n: int = 6) -> Path:
    log = data_dir / "traces.jsonl"
    TraceStore(log).append_many([trace(i) for i in range(1, n + 1)])
    return log


def json_of(result: Any) -> Any:
    return json.loads(result.content[0].text)


def normalised(result: Any) -> dict[str, Any]:
    """A tool result's JSON with the per-run values (trace ids, times) blanked, to compare two runs."""
    text = json.dumps(result.model_dump(mode="json", by_alias=True, exclude_none=True))
    data = json.loads(text)
    for block in [data.get("structuredContent") or {}]:
        block.pop("trace_id", None)
        block.pop("id", None)
    data["content"] = [json.loads(c["text"]) for c in data["content"]]
    for block in data["content"]:
        block.pop("trace_id", None)
        block.pop("id", None)
    return data


async def test_the_views_are_app_resources_and_the_tools_point_at_them(data_dir: Path) -> None:
    async with Client(build_server(data_dir=data_dir)) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        resources = {str(r.uri): r for r in (await client.list_resources()).resources}
        page = await client.read_resource(DIALECTIC_VIEW)
    assert tools["run_dialectic"].meta == {"ui": {"resourceUri": DIALECTIC_VIEW}}
    assert tools["log_trace"].meta == {"ui": {"resourceUri": DIALECTIC_VIEW}}
    assert tools["review_pairs"].meta == {"ui": {"resourceUri": REVIEW_VIEW}}
    assert tools["show_trace"].meta == {"ui": {"resourceUri": DIALECTIC_VIEW, "visibility": ["app"]}}
    assert "export_dataset" in tools and tools["export_dataset"].meta is None
    assert resources[DIALECTIC_VIEW].mime_type == APP_MIME_TYPE == resources[REVIEW_VIEW].mime_type
    html = page.contents[0].text  # type: ignore[union-attr]
    assert "ui/initialize" in html and "/*BRIDGE*/" not in html
    assert ".innerHTML" not in html and "insertAdjacentHTML" not in html  # text goes in as text nodes
    assert "<script src" not in html and "http" not in html  # self-contained: nothing loaded from anywhere


@pytest.mark.parametrize("tool", ["run_dialectic", "log_trace"])
async def test_a_client_without_apps_gets_exactly_todays_result(data_dir: Path, tool: str) -> None:
    args: dict[str, Any] = {"task": TASK}
    if tool == "log_trace":
        args.update(thesis="T", antithesis="A", synthesis="S")
    results = []
    for run, extensions in enumerate(([], APPS)):
        server = build_server(data_dir=data_dir / str(run), lm=ScriptedLM())
        async with Client(server, extensions=extensions) as client:
            results.append(await client.call_tool(tool, args))
    plain, with_apps = results
    assert VIEW_KEY not in (plain.meta or {})  # today's result: no view data at all
    assert with_apps.meta is not None and VIEW_KEY in with_apps.meta
    rest = {k: v for k, v in with_apps.meta.items() if k != VIEW_KEY}
    assert normalised(plain) == normalised(with_apps.model_copy(update={"meta": rest}))
    view = with_apps.meta[VIEW_KEY]
    assert view["trace_id"] == with_apps.structured_content["trace_id" if tool == "run_dialectic" else "id"]
    assert view["task"] == TASK and view["rounds"][0]["diff"]["runs"]


async def test_the_view_data_has_every_round_with_contradictions_and_the_diff(data_dir: Path) -> None:
    async with Client(build_server(data_dir=data_dir, lm=ScriptedLM()), extensions=APPS) as client:
        result = await client.call_tool("run_dialectic", {"task": TASK, "iterations": 2})
        again = await client.call_tool("show_trace", {"trace_id": result.structured_content["trace_id"]})
    view = result.meta[VIEW_KEY]  # type: ignore[index]
    assert again.meta[VIEW_KEY] == view  # type: ignore[index]
    assert [r["index"] for r in view["rounds"]] == [1, 2]
    first = view["rounds"][0]
    assert first["contradictions"] and {"description", "evidence"} <= set(first["contradictions"][0])
    ops = {op for op, _ in first["diff"]["runs"]}
    assert ops <= {"same", "del", "ins"} and 0 <= first["diff"]["same"] <= 1
    (line,) = (data_dir / "traces.jsonl").read_text().splitlines()
    assert view["demo"] is True and view["flags"] == json.loads(line)["flags"] and view["model"]


async def test_review_pairs_lists_unlabelled_first_and_filters(data_dir: Path) -> None:
    log = seeded(data_dir)
    LabelStore.beside(log).append_many([])
    async with Client(build_server(data_dir=data_dir)) as client:
        await client.call_tool("label_pair", {"trace_id": "t0006", "pair": PAIR, "decision": "accept"})
        listed = json_of(await client.call_tool("review_pairs", {}))
        evens = json_of(await client.call_tool("review_pairs", {"tags": ["even"]}))
        claude = json_of(await client.call_tool("review_pairs", {"models": ["anthropic/*"], "limit": 2}))
    ids = [p["trace_id"] for p in listed["pairs"]]
    assert ids == ["t0005", "t0004", "t0003", "t0002", "t0001", "t0006"]  # newest first, the decided one last
    assert listed["pairs"][-1]["label"]["decision"] == "accept"
    assert listed["summary"] == "6 pairs to review (5 without a decision)"
    assert [p["trace_id"] for p in evens["pairs"]] == ["t0004", "t0002", "t0006"]
    assert [p["trace_id"] for p in claude["pairs"]] == ["t0004", "t0002"]
    first = listed["pairs"][0]
    assert (first["chosen"], first["rejected"]) == ("Better answer 5.", "First answer 5.")
    assert first["pair"] == "thesis:1>synthesis:1"


async def test_review_pairs_for_an_apps_client_keeps_the_pairs_out_of_the_text(data_dir: Path) -> None:
    seeded(data_dir)
    async with Client(build_server(data_dir=data_dir), extensions=APPS) as client:
        result = await client.call_tool("review_pairs", {"limit": 3})
    assert result.content[0].text == "3 pairs to review (3 without a decision); they are shown in the review view."  # type: ignore[union-attr]
    assert [p["trace_id"] for p in result.meta[VIEW_KEY]["pairs"]] == ["t0006", "t0005", "t0004"]  # type: ignore[index]


async def test_label_pair_writes_the_sidecar_with_the_review_apps_checks(data_dir: Path) -> None:
    log = seeded(data_dir, 2)
    async with Client(build_server(data_dir=data_dir)) as client:
        ok = await client.call_tool(
            "label_pair",
            {"trace_id": "t0001", "pair": PAIR, "decision": "accept", "chosen": HOSTILE, "labeller": "ann"},
        )
        no_trace = await client.call_tool("label_pair", {"trace_id": "nope", "pair": "thesis:1>synthesis:1"})
        no_pair = await client.call_tool("label_pair", {"trace_id": "t0001", "pair": "thesis:1>synthesis:3"})
        bad_pair = await client.call_tool("label_pair", {"trace_id": "t0001", "pair": "x"})
        blank = await client.call_tool("label_pair", {"trace_id": "t0001", "pair": PAIR, "decision": "keep"})
    assert not ok.is_error and ok.structured_content["label"]["labeller"] == "ann"  # type: ignore[index]
    assert no_trace.is_error and "there is no trace 'nope'" in no_trace.content[0].text  # type: ignore[union-attr]
    assert no_pair.is_error and "has no pair 'thesis:1>synthesis:3'" in no_pair.content[0].text  # type: ignore[union-attr]
    assert bad_pair.is_error and "is not a pair name" in bad_pair.content[0].text  # type: ignore[union-attr]
    assert blank.is_error and "decision" in blank.content[0].text  # type: ignore[union-attr]
    (label,) = LabelStore.beside(log).records()
    assert (label.trace_id, label.decision, label.chosen, label.labeller) == ("t0001", "accept", HOSTILE, "ann")


async def test_a_label_from_a_stale_version_is_refused_and_nothing_is_written(data_dir: Path) -> None:
    log = seeded(data_dir, 1)
    async with Client(build_server(data_dir=data_dir)) as client:
        (listed,) = json_of(await client.call_tool("review_pairs", {}))["pairs"]
        assert listed["version"] == 0
        LabelStore.beside(log).write(Label(trace_id="t0001", pair=PAIR, decision="reject", labeller="bob"), base=0)
        stale = await client.call_tool(
            "label_pair", {"trace_id": "t0001", "pair": PAIR, "decision": "accept", "base_version": 0}
        )
        fresh = await client.call_tool(
            "label_pair", {"trace_id": "t0001", "pair": PAIR, "decision": "accept", "base_version": 1}
        )
    assert stale.is_error and "was changed by bob since you read it (version 0, now 1)" in stale.content[0].text  # type: ignore[union-attr]
    assert not fresh.is_error and fresh.structured_content["version"] == 2  # type: ignore[index]
    assert [label.decision for label in LabelStore.beside(log).records()] == ["reject", "accept"]
