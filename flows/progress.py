"""Progress of long work, the one helper the CLI and the flows share.

Every long step (a build, training, an evaluation, an export, an animation) reports through a callback
``(done, total, ...)``. What a person sees comes from here:

* ``TerminalBar``: a rich bar on stderr (label, bar, done/total, percent, rate, elapsed, ETA), one row
  a label; only on a terminal.
* ``LineTicker``: the same news as a plain line every few seconds when stderr is a file or a pipe.
* ``bar(unit)``: the CLI's context manager, one of the two above.
* ``Progress``: a flow's callback: log lines with counts and rates (Prefect's run logs), a Prefect
  progress artifact in the UI, and a ``TerminalBar`` when stderr is a terminal.

Importing this module does not import Prefect (the CLI imports it).
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Any

from rich.console import Console

from flows.logs import run_logger

# Errors and progress go to stderr, so that a script can pipe a command's results (stdout).
stderr_console = Console(stderr=True)


def _rate(x: float) -> str:
    """A rate that never reads 0.0 while work is being done: 3 significant digits."""
    return f"{x:.3g}" if x < 100 else f"{x:,.0f}"


def _fmt(v: Any) -> str:
    return f"{v:.1f}" if isinstance(v, float) else str(v)


class TerminalBar:
    """``tick(done, total, label, extra="")``: a rich progress bar on ``console``, one row a label (a new
    label, e.g. the next epoch or input stride, starts a new row). Starts with its first tick; ``close()``
    stops it (a later tick starts it again). ``transient``: the rows vanish when it stops."""

    def __init__(self, unit: str, console: Console = stderr_console, transient: bool = True):
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self.unit = unit
        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TaskProgressColumn(), TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                                  TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[extra]}"),
                                  console=console, transient=transient)
        self._tasks: dict[str, int] = {}
        self._started = False

    def __call__(self, done: int, total: int, label: str, extra: str = "") -> None:
        if not self._started:
            self._progress.start()
            self._started = True
        if label not in self._tasks:
            self._tasks[label] = self._progress.add_task(label, total=total, rate="", extra="")
        t = self._tasks[label]
        self._progress.update(t, completed=done, total=total, extra=extra)
        speed = next((x.speed for x in self._progress.tasks if x.id == t), None)
        self._progress.update(t, rate=f"{speed:.1f} {self.unit}" if speed else "")

    def close(self) -> None:
        if self._started:
            self._progress.stop()
            self._started = False

    def __enter__(self) -> "TerminalBar":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LineTicker:
    """Progress without a terminal (a log file, CI, a pipe): one plain stderr line at most every ``every_s``
    seconds, the first only after ``every_s`` (quick work prints nothing), and the line that reaches 100 %
    of a label that printed before (so a log never ends at 89 %)."""

    def __init__(self, unit: str, every_s: float = 5.0, stream=None, clock=time.monotonic):
        self.unit, self.every_s, self.clock = unit, every_s, clock
        self.stream = stream
        self.started: dict[str, float] = {}
        self.printed: set[str] = set()
        self.last = self.prev = clock()

    def __call__(self, done, total, label, extra=""):
        now = self.clock()
        t0 = self.started.setdefault(label, self.prev)  # a label's work began when the previous call returned
        self.prev = now
        finished = done >= total
        if not (now - self.last >= self.every_s or (finished and label in self.printed)):
            return
        self.last = now
        self.printed.add(label)
        elapsed = now - t0
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = f", ETA {(total - done) / rate:.0f} s" if rate > 0 and not finished else ""
        line = (f"{label}: {done}/{total} ({100.0 * done / max(total, 1):.0f}%), {rate:.3g} {self.unit}, "
                f"{elapsed:.0f} s elapsed{eta}" + (f"; {extra}" if extra else ""))
        print(line, file=self.stream or sys.stderr, flush=True)


@contextlib.contextmanager
def bar(unit: str, console: Console = stderr_console):
    """Progress of a CLI command's long work on stderr: a transient ``TerminalBar`` on a terminal (rate in
    ``unit``), otherwise a plain line every few seconds (``LineTicker``).

    Yields ``tick(done, total, label, extra)``; a new label restarts the bar (a new epoch / stride).
    """
    if not console.is_terminal:
        yield LineTicker(unit)
        return
    with TerminalBar(unit, console) as tick:
        yield tick


class Progress:
    """A flow's ``progress(done, total, info)`` callback: log lines with counts and rates, a Prefect progress
    artifact in the UI, and a ``TerminalBar`` (kept on screen) when stderr is a terminal.

    Logs the first call, then whenever ``every_s`` seconds or ``every_pct`` percent have passed since the
    last line, and always the call that reaches ``total`` (so the logs and the artifact end at 100 %).
    ``restart()`` begins another pass (the next evaluation) with the same artifact.
    """

    def __init__(self, what: str, every_s: float = 5.0, every_pct: float = 10.0, artifact: bool = True):
        self.what = what
        self.description = what  # the progress artifact's, for every pass
        self.every_s = every_s
        self.every_pct = every_pct
        self.t0 = time.perf_counter()
        self._last_t = -1e9
        self._last_pct = -1e9
        self._artifact_id = None
        self._want_artifact = artifact
        self._bar = TerminalBar("/s", transient=False) if stderr_console.is_terminal else None

    def __call__(self, done: int, total: int, info: dict | None = None) -> None:
        info = info or {}
        now = time.perf_counter()
        pct = 100.0 * done / max(total, 1)
        if self._bar is not None:
            self._bar(done, total, self.what)
        finished = done >= total
        if not finished and now - self._last_t < self.every_s and pct - self._last_pct < self.every_pct:
            return
        self._last_t, self._last_pct = now, pct
        elapsed = max(now - self.t0, 1e-9)
        extra = "".join(f", {k}={_fmt(v)}" for k, v in info.items() if k != "elapsed_s")
        run_logger().info("%s: %d/%d (%.0f%%) at %s/s, %.0f s elapsed%s", self.what, done, total, pct,
                          _rate(done / elapsed), elapsed, extra)
        self._update_artifact(pct)
        if finished:
            self.close()

    def restart(self, what: str | None = None, since: float | None = None) -> None:
        """Count a new pass from 0 (its own first and last lines), keeping the progress artifact.
        ``since``: when the pass began (``time.perf_counter()``; default now), for its rates."""
        self.what = what or self.what
        self.t0 = time.perf_counter() if since is None else since
        self._last_t = self._last_pct = -1e9

    def _update_artifact(self, pct: float) -> None:
        if not self._want_artifact:
            return
        try:
            from prefect.artifacts import create_progress_artifact, update_progress_artifact
            from prefect.context import get_run_context

            get_run_context()
            if self._artifact_id is None:
                self._artifact_id = create_progress_artifact(pct, description=self.description)
            else:
                update_progress_artifact(self._artifact_id, pct)
        except Exception:
            self._want_artifact = False  # outside a run, or the API said no: logs are enough

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
