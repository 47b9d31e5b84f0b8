"""``hegelion-server`` / ``python -m hegelion_server``: the hegelion MCP server over stdio (default) or streamable HTTP.

    hegelion-server                                   # stdio, for IDE agents (Claude Code, Cursor, VS Code, ...)
    hegelion-server --transport streamable-http --port 8765   # http://127.0.0.1:8765/mcp

Configuration: ``HEGELION_DATA_DIR`` (every file the server reads or writes lives there), ``HEGELION_MODEL`` (a
server-side model; ``embedded`` for the offline one), ``HEGELION_PROGRAM`` (a compiled program file).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mcp.server import MCPServer

DEFAULT_PORT = 8765
HOST = "127.0.0.1"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hegelion-server",
        description="The hegelion MCP server: run_dialectic, log_trace and export_dataset for IDE agents.",
    )
    parser.add_argument(
        "--transport", choices=["stdio", "streamable-http"], default="stdio", help="stdio (default) or streamable-http"
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"HTTP port on {HOST} (default {DEFAULT_PORT})")
    parser.add_argument("--data-dir", help="Folder for the trace log and exports [default: $HEGELION_DATA_DIR, ...]")
    parser.add_argument("--model", help="A server-side model string [default: $HEGELION_MODEL; none]")
    parser.add_argument("--program", help="A compiled program file [default: $HEGELION_PROGRAM; none]")
    parser.add_argument(
        "--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="stderr log level"
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if not 0 < args.port < 65536:
        _parser().error(f"--port must be from 1 to 65535, got {args.port}")
    logging.basicConfig(stream=sys.stderr, level=args.log_level, format="hegelion-server: %(message)s")

    from hegelion_dspy.errors import HegelionError

    from .app import build_server

    try:
        server = build_server(data_dir=args.data_dir, model=args.model, program=args.program)
    except HegelionError as exc:
        print(f"hegelion-server: error: {exc}", file=sys.stderr)
        sys.exit(2)
    server.settings.log_level = args.log_level
    try:
        if args.transport == "stdio":
            server.run("stdio")
        else:
            _serve_http(server, args.port, args.data_dir)
    except KeyboardInterrupt:
        pass


def _serve_http(server: MCPServer, port: int, data_dir: str | None) -> None:
    """What ``server.run("streamable-http")`` does, plus the review app beside ``/mcp``."""
    import uvicorn

    app = server.streamable_http_app(host=HOST)
    review = _mount_review(app, data_dir)
    url = f"http://{HOST}:{port}"
    print(f"hegelion-server: serving {url}/mcp (review: {url}{review})", file=sys.stderr, flush=True)
    uvicorn.run(app, host=HOST, port=port, log_level=server.settings.log_level.lower())


def _mount_review(app: Any, data_dir: str | None) -> str:
    """The review app (hegelion_dspy.review) over the data folder's trace log, at /review of the HTTP app."""
    from pathlib import Path

    from hegelion_dspy.review import mount_review
    from hegelion_dspy.store import LOG_NAME, default_data_dir

    folder = Path(data_dir).expanduser() if data_dir else default_data_dir()
    return mount_review(app, folder / LOG_NAME, path="/review")


if __name__ == "__main__":
    main()
