"""The plain-text progress bar on stderr that `verify` and the Dask runs share."""
from __future__ import annotations

import sys
import time


class Bar:
    """A plain-text progress bar on stderr: `label [###...] done/total samples (rate/s, left)`,
    redrawn at most every `interval` seconds and always at the end."""

    def __init__(self, label: str, total: int, enabled: bool, interval: float = 0.5):
        self.label, self.total, self.enabled, self.interval = label, total, enabled, interval
        self.done, self._start, self._last = 0, time.monotonic(), float("-inf")

    def step(self, n: int) -> None:
        self.done += n
        if not self.enabled:
            return
        now = time.monotonic()
        final = self.done >= self.total
        if not final and now - self._last < self.interval:
            return
        self._last, w = now, 30
        k = int(w * self.done / max(self.total, 1))
        took = now - self._start
        rate = self.done / took if took > 0 else 0.0
        left = f", {(self.total - self.done) / rate:.0f} s left" if rate > 0 and not final else ""
        sys.stderr.write(f"\r{self.label} [{'#' * k}{'.' * (w - k)}] {self.done}/{self.total} samples "
                         f"({rate:.1f}/s{left})  " + ("\n" if final else ""))
        sys.stderr.flush()
