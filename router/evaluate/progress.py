"""A progress bar for long work: drawn on a terminal, silent when stderr is piped or a file."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """``with Progress("replay", total) as p: ... p.advance()``; redraws at most 10 times a
    second, and only when ``stream`` is a terminal."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None,
                 enabled: bool | None = None) -> None:
        self.label = label
        self.total = max(total, 1)
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._last = 0.0
        self._started = time.monotonic()

    def __enter__(self) -> Progress:
        self._draw()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.done = self.total if exc[0] is None else self.done
            self._draw(final=True)
            self.stream.write("\n")
            self.stream.flush()

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if self.enabled and now - self._last >= 0.1:
            self._last = now
            self._draw()

    def _draw(self, final: bool = False) -> None:
        if not self.enabled:
            return
        frac = min(self.done / self.total, 1.0)
        width = 30
        bar = "#" * int(frac * width) + "." * (width - int(frac * width))
        secs = time.monotonic() - self._started
        self.stream.write(f"\r{self.label} [{bar}] {frac:4.0%} {self.done:,}/{self.total:,}"
                          f" {secs:5.1f}s")
        self.stream.flush()
