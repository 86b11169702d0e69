"""Progress of a long scoring run on stderr: a redrawn bar on a terminal, log lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Rows, rows/s and ETA on ``stream``: a redrawn bar on a terminal, else a log line
    every ``interval`` seconds (and one at the end)."""

    def __init__(self, stream: TextIO = sys.stderr, *, interval: float | None = None,
                 tty: bool | None = None) -> None:
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.interval = interval if interval is not None else (0.2 if self.tty else 10.0)
        self.total: int | None = None
        self._t0 = self._last = 0.0

    def start(self, total: int | None) -> None:
        self.total = total
        self._t0 = self._last = time.monotonic()

    def update(self, rows: int) -> None:
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._emit(rows, now)

    def finish(self, rows: int) -> None:
        self._emit(rows, time.monotonic(), final=True)

    def _emit(self, rows: int, now: float, final: bool = False) -> None:
        elapsed = max(now - self._t0, 1e-9)
        rate = rows / elapsed
        total = self.total
        if self.tty:
            if total:
                done = min(rows / total, 1.0)
                bar = "#" * int(done * 30) + "-" * (30 - int(done * 30))
                text = f"[{bar}] {done:4.0%} {rows:,}/{total:,} rows"
            else:
                text = f"{rows:,} rows"
            text += f"  {rate:,.0f} rows/s"
            if total and not final:
                text += f"  ETA {_clock((total - rows) / rate if rate else 0)}"
            self.stream.write(f"\r{text}   " + ("\n" if final else ""))
        else:
            pct = f" ({rows / total:.0%})" if total else ""
            text = f"satchel batch: {rows}{'/' + str(total) if total else ''} rows{pct}, " \
                   f"{rate:.0f} rows/s"
            if final:
                text += f", done in {elapsed:.1f}s"
            elif total:
                text += f", ETA {_clock((total - rows) / rate if rate else 0)}"
            self.stream.write(text + "\n")
        self.stream.flush()


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"

