"""server/ is a thin MCP adapter, measured: it never imports dspy, each tool body is a few lines over the library,
and listing tools imports no dspy and writes nothing."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SERVER_DIR = Path(__file__).resolve().parents[2] / "server"
MAX_TOOL_BODY_LINES = 10


def _modules() -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text(), str(path))) for path in sorted(SERVER_DIR.glob("*.py"))]


def test_no_module_in_server_imports_dspy() -> None:
    found = []
    for path, tree in _modules():
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            found += [f"{path.name}:{node.lineno}: {n}" for n in names if n == "dspy" or n.startswith("dspy.")]
    assert found == []


def _tool_bodies() -> dict[str, int]:
    """Lines of each function registered with the ``tool`` decorator in app.py, without its docstring."""
    tree = ast.parse((SERVER_DIR / "app.py").read_text())
    sizes = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.AsyncFunctionDef) and any(
            isinstance(d, ast.Call) and getattr(d.func, "id", None) == "tool" for d in node.decorator_list
        ):
            body = node.body[1:] if ast.get_docstring(node) else node.body
            sizes[node.name] = body[-1].end_lineno - body[0].lineno + 1  # type: ignore[operator]
    return sizes


def test_every_tool_body_is_a_few_lines() -> None:
    sizes = _tool_bodies()
    assert set(sizes) == {"run_dialectic", "log_trace", "export_dataset"}
    assert all(lines <= MAX_TOOL_BODY_LINES for lines in sizes.values()), sizes


def test_listing_tools_imports_no_dspy_and_writes_nothing(tmp_path: Path) -> None:
    script = f"""
import asyncio, sys
from mcp import Client
from hegelion_server.app import build_server

async def main():
    async with Client(build_server(data_dir={str(tmp_path / "data")!r})) as client:
        tools = (await client.list_tools()).tools
        prompts = (await client.list_prompts()).prompts
    print(len(tools), len(prompts), sorted(m for m in sys.modules if m == "dspy" or m.startswith(("dspy.", "litellm"))))

asyncio.run(main())
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.split("\n")[0] == "6 5 []"
    assert not (tmp_path / "data").exists()
