"""Signs of life for long steps: which tool runs, for how long, and how long it is estimated to take.

:class:`Activity` wraps one step (a Yosys run, a Verilator build, a
simulation)::

    with Activity("Yosys synthesis", estimate_s=240, basis="16 PEs", prefix="[cost] "):
        subprocess.run(...)

On a terminal it keeps one line up to date about every second; elsewhere
(CI logs, pipes) it writes a line at the start, one about every 30 s and
one at the end, so that a log shows the step is alive without filling up.
``quiet=True`` writes nothing. Nothing here imports more than the standard
library: commands create activities before their heavy work starts.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

__all__ = ["Activity", "about", "clock_time"]


def clock_time(seconds: float) -> str:
    """Elapsed time as a clock shows it: ``0:05``, ``12:34``, ``1:02:03``."""
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def about(seconds: float) -> str:
    """A rough duration for an estimate: ``about 40 s``, ``about 4 min``, ``about 1.5 h``."""
    if seconds < 60:
        return f"about {max(10, round(seconds, -1)):.0f} s"
    if seconds < 5400:
        return f"about {round(seconds / 60):.0f} min"
    return f"about {seconds / 3600:.1f} h"


class Activity:
    """A context manager that shows a long step is alive (see the module docstring).

    Parameters
    ----------
    what:
        The step, named after the tool, e.g. ``"Yosys synthesis"``, ``"Verilator build"``.
    estimate_s:
        The estimated duration in seconds, or None where none can be made.
    basis:
        What the estimate comes from, printed beside it (e.g. ``"16 PEs x 20 bits"``).
    quiet:
        Write nothing (``--quiet``).
    stream:
        Where lines go (default: ``sys.stderr``, so results on stdout stay clean).
    tty:
        Whether ``stream`` is a terminal (default: ask it).
    clock:
        Seconds from some origin (default: :func:`time.monotonic`); tests pass a fake one.
    tick_s, log_every_s:
        Seconds between updates of a terminal line, and between lines elsewhere.
    ticker:
        Update from a background thread; False leaves :meth:`update` to the caller (tests).
    show_after_s:
        Show nothing unless the step runs this long (for a step that is quick on small designs).
    """

    def __init__(
        self,
        what: str,
        *,
        estimate_s: float | None = None,
        basis: str = "",
        prefix: str = "",
        quiet: bool = False,
        stream: TextIO | None = None,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
        tick_s: float = 1.0,
        log_every_s: float = 30.0,
        ticker: bool = True,
        show_after_s: float = 0.0,
    ) -> None:
        if estimate_s is not None and not estimate_s > 0:
            raise ValueError(f"estimate must be positive seconds or None, not {estimate_s!r}")
        self.what, self.estimate_s, self.basis, self.prefix = what, estimate_s, basis, prefix
        self.quiet = quiet
        self._stream = stream
        self._tty = tty
        self._clock = clock
        self._tick_s, self._log_every_s, self._ticker = tick_s, log_every_s, ticker
        self._show_after_s, self._shown = show_after_s, False
        self._start = self._last_line = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr

    @property
    def tty(self) -> bool:
        if self._tty is None:
            isatty = getattr(self.stream, "isatty", None)
            self._tty = bool(isatty and isatty())
        return self._tty

    @property
    def elapsed(self) -> float:
        """Seconds since the step started."""
        return self._clock() - self._start

    def _estimate(self) -> str:
        if self.estimate_s is None:
            return ""
        return f"; estimate {about(self.estimate_s)}" + (f" ({self.basis})" if self.basis else "")

    def status(self) -> str:
        """The line shown while the step runs, e.g. ``Yosys synthesis: 1:05 elapsed; estimate about 4 min``."""
        return f"{self.prefix}{self.what}: {clock_time(self.elapsed)} elapsed{self._estimate()}"

    def _write(self, text: str) -> None:
        with self._lock:
            self.stream.write(text)
            self.stream.flush()

    def update(self) -> None:
        """Show the status: rewrite the terminal line, or elsewhere write a line when ``log_every_s`` has passed."""
        if self.quiet:
            return
        if not self._shown:
            if self.elapsed >= self._show_after_s:
                self._show()
            return
        if self.tty:
            self._write(f"\r{self.status()}\x1b[K")
        elif self._clock() - self._last_line >= self._log_every_s:
            self._last_line = self._clock()
            self._write(self.status() + "\n")

    def _tick(self) -> None:
        while not self._stop.wait(self._tick_s):
            self.update()

    def __enter__(self) -> Activity:
        self._start = self._last_line = self._clock()
        try:
            self._begin()
        except BaseException as error:  # Ctrl-C while starting: the activity still says how it ended
            self.__exit__(type(error), error, error.__traceback__)
            raise
        return self

    def _begin(self) -> None:
        if self.quiet:
            return
        if self._ticker:
            self._thread = threading.Thread(target=self._tick, name=f"activity {self.what}", daemon=True)
            self._thread.start()
        # The first line last: whoever sees it (a user pressing Ctrl-C) sees an activity that will say how it ended.
        if self._show_after_s <= 0:
            self._show()

    def _show(self) -> None:
        """The first line: "started" (or, shown late, the status), rewritten from then on on a terminal."""
        self._shown = True
        self._last_line = self._clock()
        if self.tty:
            self._write(f"\r{self.status()}\x1b[K")
        elif self._show_after_s > 0:
            self._write(self.status() + "\n")
        else:
            self._write(f"{self.prefix}{self.what}: started{self._estimate()}\n")

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.quiet or not self._shown:
            return
        if kind is None:
            how = "done in"
        elif issubclass(kind, KeyboardInterrupt):
            how = "interrupted after"
        else:
            how = "failed after"
        line = f"{self.prefix}{self.what}: {how} {clock_time(self.elapsed)}"
        self._write(f"\r{line}\x1b[K\n" if self.tty else line + "\n")
