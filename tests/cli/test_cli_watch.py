"""A single run on a terminal is watchable: the running step with its time, then the thesis and the critique as they
finish, on stderr; stdout keeps only the answer. Run as a user runs it, with stderr on a real pseudo-terminal."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

HEGELION = Path(sys.executable).with_name("hegelion")


def run_on_a_terminal(*args: str, cwd: Path) -> tuple[int, str, str]:
    """Run hegelion with stderr on a pseudo-terminal and stdout on a pipe; return (code, stdout, terminal text)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([str(HEGELION), *args], cwd=cwd, stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: the terminal closed with the process
            break
        if not data:
            break
        chunks.append(data)
    out, _ = proc.communicate(timeout=60)
    os.close(master)
    code = proc.returncode
    return code, out, b"".join(chunks).decode("utf-8", "replace")


def test_a_run_on_a_terminal_shows_each_step_and_prints_thesis_and_critique(tmp_path: Path) -> None:
    code, out, terminal = run_on_a_terminal(
        "Why is the sky blue?", "-m", "scripted/latency=0.6", "-n", "2", "--log-file", "t.jsonl", cwd=tmp_path
    )
    assert code == 0
    assert out.splitlines() == ["Synthesis v2: a corrected answer to 'Why is the sky blue?' that handles edge cases."]
    # the live line, rewritten while a step runs: which step of which round, for how long
    assert "round 1 · thesis … 0." in terminal and "(step 1 of 5)" in terminal
    assert "round 2 · antithesis … " in terminal and "(step 4 of 5)" in terminal
    # the texts as the steps finish, in order
    thesis = terminal.index("── round 1 · thesis (")
    critique = terminal.index("── round 1 · antithesis (")
    assert thesis < terminal.index("  Thesis: a first answer to 'Why is the sky blue?'.") < critique
    assert critique < terminal.index("  - It ignores edge cases.") < terminal.index("── round 1 · synthesis (")
    assert "── round 2 · synthesis (" in terminal  # the final synthesis itself is printed on stdout only
    assert terminal.count("Synthesis v2: a corrected answer") == 0


def test_quiet_or_a_piped_stderr_shows_no_steps(tmp_path: Path) -> None:
    code, out, terminal = run_on_a_terminal("Why?", "-m", "scripted", "--quiet", "--log-file", "t.jsonl", cwd=tmp_path)
    assert code == 0 and out.startswith("Synthesis v1:") and "round 1" not in terminal
    piped = subprocess.run(
        [str(HEGELION), "Why?", "-m", "scripted", "--log-file", "t.jsonl"], cwd=tmp_path, capture_output=True, text=True
    )
    assert piped.returncode == 0 and piped.stderr == "" and piped.stdout.startswith("Synthesis v1:")
