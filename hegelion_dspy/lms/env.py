"""The environment variables that choose the LM (read by ``lms/chooser``). A module of its own, importing nothing, so
the MCP server can read them at start-up without loading dspy."""

ENV_MODEL = "HEGELION_MODEL"
ENV_API_BASE = "HEGELION_API_BASE"
ENV_API_KEY = "HEGELION_API_KEY"
