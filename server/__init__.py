"""The hegelion MCP server (installed as the package ``hegelion_server``)."""
