"""completion/complete through the SDK's in-memory client: a prefix gives the values of each prompt and resource
template argument, the fixed ones (mode, format, rejected) and those the log holds (models, tags, trace ids)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hegelion_server.app import build_server
from hegelion_server.completions import TRACE_TEMPLATE
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import PromptReference, ResourceTemplateReference
from test_server_apps import seeded, trace

from hegelion_dspy.store import TraceStore


async def values(client: Client, ref: PromptReference | ResourceTemplateReference, name: str, prefix: str) -> list[str]:
    return (await client.complete(ref, {"name": name, "value": prefix})).completion.values


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    log = seeded(tmp_path / "data", 4)
    TraceStore(log).append(trace(5, model="openai/o3", tags=["physics", "even"]))
    return tmp_path / "data"


async def test_prompt_arguments_complete_from_a_prefix(data_dir: Path) -> None:
    export, dialectic = (
        PromptReference(type="ref/prompt", name="export"),
        PromptReference(type="ref/prompt", name="dialectic"),
    )
    async with Client(build_server(data_dir=data_dir)) as client:
        assert await values(client, dialectic, "mode", "c") == ["coding"]
        assert await values(client, dialectic, "mode", "") == ["general", "coding"]
        assert await values(client, export, "format", "dpo") == ["dpo", "dpo-chat"]
        assert await values(client, export, "format", "SFT") == ["sft", "sft-chat"]
        assert await values(client, export, "rejected", "") == ["thesis", "antithesis", "both"]
        assert await values(client, export, "model", "openai/") == ["openai/gpt-4o-mini", "openai/o3"]
        assert await values(client, export, "tag", "") == ["even", "physics"]  # most frequent first
        assert await values(client, export, "tag", "ph") == ["physics"]
        assert await values(client, export, "format", "x") == []
        assert await values(client, export, "task", "a") == []  # free text: nothing to offer


async def test_the_trace_template_completes_ids_and_reads_one_trace(data_dir: Path) -> None:
    ref = ResourceTemplateReference(type="ref/resource", uri=TRACE_TEMPLATE)
    async with Client(build_server(data_dir=data_dir)) as client:
        ids = await values(client, ref, "trace_id", "t000")
        templates = (await client.list_resource_templates()).resource_templates
        read = await client.read_resource("hegelion://traces/t0005")
    assert ids == ["t0005", "t0004", "t0003", "t0002", "t0001"]  # newest first
    assert [t.uri_template for t in templates] == [TRACE_TEMPLATE]
    view = json.loads(read.contents[0].text)  # type: ignore[union-attr]
    assert (view["trace_id"], view["model"], view["tags"]) == ("t0005", "openai/o3", ["physics", "even"])


async def test_the_export_prompt_checks_its_options_like_the_export(data_dir: Path) -> None:
    async with Client(build_server(data_dir=data_dir)) as client:
        prompt = await client.get_prompt("export", {"format": "sft", "tag": "physics"})
        with pytest.raises(MCPError, match="format"):
            await client.get_prompt("export", {"format": "csv"})
    text = prompt.messages[0].content.text  # type: ignore[union-attr]
    assert '"format": "sft"' in text and '"tags": ["physics"]' in text and "export_dataset" in text
