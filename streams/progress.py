"""Progress of long work (replays, ledger rebuilds), on standard error.

On a terminal the line is redrawn in place at most ~5 times a second; anywhere else (CI logs,
`2> file`) one plain line is written every ~5 seconds, so logs stay readable. The formatting is
pure (`format_progress`) and the clock is injectable, so both are tested without sleeping.

    with Progress(total, "reading damage.reports.v1") as p:
        for record in records:
            p.advance()
"""
from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Callable, TextIO

TTY_INTERVAL_S = 0.2
LOG_INTERVAL_S = 5.0


def format_duration(seconds: float) -> str:
    """Whole seconds as H:MM:SS (or M:SS under an hour)."""
    s = max(0, int(round(seconds)))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def format_rate(per_second: float) -> str:
    if per_second >= 10_000:
        return f"{per_second / 1000:,.0f}k/s"
    if per_second >= 100:
        return f"{per_second:,.0f}/s"
    return f"{per_second:.1f}/s"


def format_progress(label: str, done: int, total: int | None, elapsed: float) -> str:
    """One status line: label, count/total, percent, rate and ETA (parts that are unknown are left out)."""
    parts = [label] if label else []
    rate = done / elapsed if elapsed > 0 else 0.0
    if total:
        pct = min(100.0, 100.0 * done / total)
        parts.append(f"{done:,}/{total:,}")
        parts.append(f"{pct:5.1f}%")
    else:
        parts.append(f"{done:,}")
    parts.append(format_rate(rate))
    if total and done < total:
        parts.append(f"ETA {format_duration((total - done) / rate)}" if rate > 0 else "ETA --:--")
    else:
        parts.append(f"in {format_duration(elapsed)}")
    return "  ".join(parts)


class Progress:
    """Counts work done and reports it; use as a context manager so the last line is always written."""

    def __init__(self, total: int | None, label: str = "", *, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic, tty: bool | None = None,
                 enabled: bool = True) -> None:
        self.total = total
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.tty = self._isatty(self.stream) if tty is None else tty
        self.interval = TTY_INTERVAL_S if self.tty else LOG_INTERVAL_S
        self.enabled = enabled
        self.done = 0
        self.started = clock()
        self._last_draw = self.started
        self._width = 0

    @staticmethod
    def _isatty(stream: TextIO) -> bool:
        try:
            return stream.isatty()
        except (AttributeError, ValueError):
            return False

    def __enter__(self) -> "Progress":
        self.started = self._last_draw = self.clock()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.finish()

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = self.clock()
        if now - self._last_draw >= self.interval:
            self._last_draw = now
            self._draw(now, final=False)

    def line(self, now: float | None = None) -> str:
        return format_progress(self.label, self.done, self.total,
                               (self.clock() if now is None else now) - self.started)

    def finish(self) -> None:
        if self.enabled:
            self._draw(self.clock(), final=True)
            self.enabled = False     # a second finish() writes nothing

    def _draw(self, now: float, *, final: bool) -> None:
        if not self.enabled:
            return
        text = self.line(now)
        if self.tty:
            pad = " " * max(0, self._width - len(text))   # wipe the tail of a longer earlier line
            self._width = len(text)
            self.stream.write(f"\r{text}{pad}" + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
