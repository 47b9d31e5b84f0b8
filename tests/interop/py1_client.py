"""The Python `mcp` 1.x client (pinned, in a venv of its own: .ci/install-server.sh) against hegelion-server: one
session per protocol version, each running the interop sequence, printed as one JSON line per version.

    python py1_client.py stdio SERVER_COMMAND DATA_DIR VERSION...
    python py1_client.py http URL - VERSION...

mcp 1.x speaks the handshake versions only (up to 2025-11-25); it offers ``mcp.types.LATEST_PROTOCOL_VERSION``,
which is set to the version under test.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import traceback
from contextlib import AsyncExitStack
from typing import Any

import mcp.types as types
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamablehttp_client


def structured(result: Any) -> dict[str, Any]:
    return result.structuredContent or json.loads(result.content[0].text)


async def session(transport: str, target: str, data_dir: str, version: str) -> dict[str, Any]:
    types.LATEST_PROTOCOL_VERSION = version  # what ClientSession.initialize offers
    requests: list[Any] = []

    async def sample(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        # the client's model: plain prose without DSPy's field markers, a bullet list for the flaws
        requests.append(params)
        asked = re.search(r"starting with the field `\[\[ ## (\w+) ## \]\]`", params.messages[-1].content.text)
        step = asked.group(1) if asked else "answer"
        text = "A critique in prose.\n\n- the thesis skips a case" if step == "antithesis" else f"A plain {step}."
        content = types.TextContent(type="text", text=text)
        return types.CreateMessageResult(role="assistant", content=content, model="py1-client-model")

    tag = f"py1-{transport}-{version}"
    out: dict[str, Any] = {"client": "python-mcp1", "transport": transport, "asked": version}
    async with AsyncExitStack() as stack:
        if transport == "stdio":
            params = StdioServerParameters(command=target, env={"HEGELION_DATA_DIR": data_dir})
            read, write = await stack.enter_async_context(stdio_client(params))
        else:
            read, write, _ = await stack.enter_async_context(streamablehttp_client(target))
        client = await stack.enter_async_context(ClientSession(read, write, sampling_callback=sample))
        initialized = await client.initialize()
        out["version"] = initialized.protocolVersion
        out["tools"] = sorted(t.name for t in (await client.list_tools()).tools)
        arguments = {
            "task": f"interop {tag}",
            "thesis": "Yes.",
            "antithesis": "No.",
            "synthesis": "Maybe.",
            "tags": [tag],
        }
        logged = await client.call_tool("log_trace", arguments)
        out["log_trace"] = {"isError": logged.isError, **structured(logged)}
        workflow = await client.call_tool("run_dialectic", {"task": f"workflow {tag}", "thesis": "Yes."})
        out["prompt_workflow"] = structured(workflow)
        sampled = await client.call_tool("run_dialectic", {"task": f"sampling {tag}", "iterations": 2})
        out["sampling"] = {**structured(sampled), "requests": len(requests)}
        exported = await client.call_tool(
            "export_dataset", {"format": "sft", "output_name": f"{tag}.jsonl", "force": True}
        )
        out["export_dataset"] = {"isError": exported.isError, **structured(exported)}
        unknown = await client.call_tool("log_trace", {"task": "t", "model_name": "x"})
        out["unknown_argument"] = {"isError": unknown.isError, "text": unknown.content[0].text}
        resource = await client.read_resource("hegelion://traces")  # type: ignore[arg-type]
        out["resource"] = json.loads(resource.contents[0].text)["stats"]  # type: ignore[union-attr]
        prompt = await client.get_prompt("dialectic", {"task": f"prompt {tag}"})
        out["prompt"] = "\n".join(m.content.text for m in prompt.messages)  # type: ignore[union-attr]
    return out


async def main() -> None:
    transport, target, data_dir, *versions = sys.argv[1:]
    for version in versions:
        try:
            line = await session(transport, target, data_dir, version)
        except BaseException:  # report the failure of this cell and go on with the next version
            line = {"client": "python-mcp1", "transport": transport, "asked": version, "error": traceback.format_exc()}
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
