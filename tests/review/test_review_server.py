"""The review app mounted beside /mcp on ``hegelion-server --transport streamable-http``: one process and one data
folder, an agent logs a trace over MCP and a person sees and labels it at /review/."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from interop.serving import http_server
from mcp import Client

from hegelion_dspy.curate.labels import LabelStore


async def test_a_trace_logged_over_mcp_is_reviewed_at_review_on_the_same_server(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with http_server(data_dir) as (mcp_url, _):
        root = mcp_url.removesuffix("/mcp")
        async with httpx.AsyncClient(base_url=root, timeout=30) as web:
            empty = await web.get("/review/")
            assert empty.status_code == 200 and "<strong>0</strong> traces" in empty.text
            async with Client(mcp_url) as client:
                logged = await client.call_tool(
                    "log_trace",
                    {"task": "Is 1 prime?", "thesis": "Yes.", "antithesis": "No divisors.", "synthesis": "No."},
                )
            trace_id = (logged.structured_content or {})["id"]
            listed = await web.get("/review/")
            assert f'data-id="{trace_id}"' in listed.text
            assert f'href="/review/trace/{trace_id}"' in listed.text  # links follow the mount
            page = await web.get(f"/review/trace/{trace_id}")
            assert page.status_code == 200 and "Is 1 prime?" in page.text
            token = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
            assert token is not None
            form = {"pair": "thesis:1>synthesis:1", "decision": "accept"}
            refused = await web.post(f"/review/trace/{trace_id}/label", data=form)
            assert refused.status_code == 403
            saved = await web.post(f"/review/trace/{trace_id}/label", data={**form, "csrf": token[1]})
            assert saved.status_code == 303
            rebound = await web.get("/review/", headers={"Host": "attacker.example"})
            assert rebound.status_code == 421
    assert [lbl.decision for lbl in LabelStore.beside(data_dir / "traces.jsonl").records()] == ["accept"]
