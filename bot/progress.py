"""A terminal progress bar on stderr for long imports; silent when not attached to a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    def __init__(self, total: int, *, enabled: bool, out: TextIO | None = None) -> None:
        self.enabled = enabled
        self._out = out or sys.stderr
        self._label = "Reading"
        self._total = max(total, 1)
        self._last = 0.0

    def phase(self, label: str) -> None:
        self._label, self._last = label, 0.0

    def update(self, done: int, total: int | None = None) -> None:
        if total is not None:
            self._total = max(total, 1)
        now = time.monotonic()
        if not self.enabled or (now - self._last < 0.1 and done < self._total):
            return
        self._last = now
        share = min(done / self._total, 1.0)
        filled = int(share * 30)
        self._out.write(f"\r{self._label:<9} [{'#' * filled}{'.' * (30 - filled)}] {share:6.1%}")
        self._out.flush()

    def close(self) -> None:
        if self.enabled:
            self._out.write("\r" + " " * 60 + "\r")
            self._out.flush()
