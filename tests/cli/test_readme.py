"""The README as a newcomer reads it: every code block marked `<!-- runnable: bash|python -->` runs as written, and the
trace field table (`<!-- fields: TraceRecord -->`) lists exactly the model's fields, in order."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from openai_stub import openai_stub

from hegelion_dspy.types import TraceRecord

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
BIN = Path(sys.executable).parent

RUNNABLE = re.compile(r"<!-- runnable: (bash|python) -->\n```(?:bash|python)\n(.*?)```", re.S)
BLOCKS = [(m.group(1), m.group(2)) for m in RUNNABLE.finditer(README)]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    drop = ("_API_KEY", "_API_BASE", "_BASE_URL", "HEGELION_MODEL", "HEGELION_LOG_FILE")
    env = {k: v for k, v in os.environ.items() if not k.endswith(drop)}
    return env | {
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        "HEGELION_DATA_DIR": str(tmp_path / "data-dir"),
        "HEGELION_CACHE_DIR": str(tmp_path / "cache"),
        **extra,
    }


def test_the_readme_marks_its_runnable_blocks() -> None:
    assert [kind for kind, _ in BLOCKS].count("bash") >= 1 and [kind for kind, _ in BLOCKS].count("python") >= 1


@pytest.mark.parametrize(
    "code", [code for kind, code in BLOCKS if kind == "bash"], ids=lambda code: code.splitlines()[0][:40]
)
def test_a_runnable_shell_block_runs_as_written(code: str, tmp_path: Path) -> None:
    (tmp_path / "examples").symlink_to(ROOT / "examples")  # as in a clone: paths relative to the repository root
    for line in code.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        done = subprocess.run(
            ["bash", "-c", line], cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, f"{line}\n{done.stderr}"


@pytest.mark.parametrize("code", [code for kind, code in BLOCKS if kind == "python"])
def test_a_runnable_python_block_runs_as_written(code: str, tmp_path: Path) -> None:
    """Its model is an OpenAI one: an OpenAI-compatible stub answers for it, reached through the OpenAI client's own
    environment variables, so the snippet's text is not touched."""
    (tmp_path / "snippet.py").write_text(code, encoding="utf-8")
    with openai_stub() as stub:
        env = _env(tmp_path, OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=stub.url, OPENAI_API_BASE=stub.url)
        done = subprocess.run(
            [sys.executable, "snippet.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
    assert done.returncode == 0, done.stderr
    assert stub.answered > 0 and "Synthesis" in done.stdout


def _table_fields() -> list[str]:
    region = re.search(r"<!-- fields: TraceRecord -->\n(.*?)<!-- /fields -->", README, re.S)
    assert region is not None, "README.md lost its <!-- fields: TraceRecord --> table"
    rows = [line for line in region.group(1).splitlines() if line.startswith("| `")]
    return [re.match(r"\| `([a-z_]+)`", row).group(1) for row in rows]  # type: ignore[union-attr]


def test_the_readme_field_table_is_the_trace_models_fields() -> None:
    assert _table_fields() == list(TraceRecord.model_fields)
    schema = re.search(r"One `TraceRecord` per line \(UTF-8 JSON, `schema_version: (\d+)`", README)
    assert schema is not None and int(schema.group(1)) == TraceRecord.model_fields["schema_version"].default


def test_the_readme_commands_name_files_that_ship() -> None:
    for path in re.findall(r"(examples/[\w./-]+\.(?:py|txt|yml))", README):
        assert (ROOT / path).is_file(), path
    assert re.search(r"--prompts prompts\.txt", README) is None  # the file that ships is examples/prompts.txt
