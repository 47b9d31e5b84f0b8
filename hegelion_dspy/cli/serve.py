"""hegelion serve: the MCP server (the same command as hegelion-server, whose options it takes as they are)."""

from __future__ import annotations

import click


@click.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def serve(args: tuple[str, ...]) -> None:
    """Serve the MCP tools to IDE agents (stdio, or --transport streamable-http); --help for its options."""
    from hegelion_server.__main__ import main  # imported on use: the MCP SDK is not needed by the other commands

    main(list(args))
