"""A watchable run on a terminal: which step of which round is running and for how long, and the texts as they finish.

``StepDisplay`` is an ``on_step`` callback (``program.StepEvent``). It writes to a terminal stream (stderr): a live
status line, rewritten a few times a second by a small thread while a step runs, and, as steps finish, the thesis and
the critique (with its contradictions), and the syntheses that become the next round's thesis. The final synthesis is
left to the caller, which prints it on stdout.
"""

from __future__ import annotations

import textwrap
import threading
import time
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from ..program import StepEvent  # only for types: importing program imports dspy, which --help must not wait for

TICK_SECONDS = 0.25
_CLEAR = "\r\033[K"


class StepDisplay:
    """Show a run's progress on ``stream`` (a terminal). Call ``close()`` when the run ends."""

    def __init__(self, stream: TextIO, total_steps: int, *, tick: float = TICK_SECONDS):
        self.stream = stream
        self.total = total_steps
        self.done = 0
        self.tick = tick
        self._running: StepEvent | None = None
        self._started = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __call__(self, event: StepEvent) -> None:
        with self._lock:
            if event.phase == "start":
                self._running, self._started = event, time.perf_counter()
                self._status()
            elif event.phase == "end":
                self.done += 1
                self._running = None
                self._write(_CLEAR + self._finished(event))
            else:
                self._running = None
                seconds = time.perf_counter() - self._started
                self._write(f"{_CLEAR}round {event.round} · {event.step} failed after {seconds:.1f} s: {event.error}\n")
        if event.phase == "start" and self._thread is None:
            self._thread = threading.Thread(target=self._ticker, name="hegelion-steps", daemon=True)
            self._thread.start()

    def _finished(self, event: StepEvent) -> str:
        header = f"── round {event.round} · {event.step} ({event.seconds:.1f} s, step {self.done} of {self.total})"
        if event.step == "synthesis" and self.done == self.total:
            return header + "\n"  # the answer itself goes to stdout
        body = event.text.strip()
        if event.step == "antithesis" and event.contradictions:
            body += "\n" + "\n".join(f"- {c.description}" for c in event.contradictions)
        return f"{header}\n{textwrap.indent(body, '  ')}\n\n"

    def _status(self) -> None:
        event = self._running
        if event is not None:
            seconds = time.perf_counter() - self._started
            self._write(
                f"{_CLEAR}round {event.round} · {event.step} … {seconds:.1f} s (step {self.done + 1} of {self.total})"
            )

    def _ticker(self) -> None:
        while not self._stop.wait(self.tick):
            with self._lock:
                self._status()

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            if self._running is not None:
                self._write(_CLEAR)
