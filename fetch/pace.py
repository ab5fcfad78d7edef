"""Time limits of one fetch: an overall deadline, a minimum rate and the caller's cancel hook, checked at least
every `POLL_S` seconds while the fetch waits on the network.

A sender that trickles (one byte every few seconds) keeps every per-read timeout happy; only a rate over a window
and an overall deadline cut it, and only short waits let a Cancel through promptly.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .policy import FetchError

POLL_S = 0.5
"""Longest wait on the network between two checks (so `cancel()` runs at least once a second)."""
MIN_RATE_BYTES_S = 8 * 1024
"""Default minimum rate: every `RATE_WINDOW_S` window must bring at least this many bytes per second."""
RATE_WINDOW_S = 20.0
DEADLINE_FLOOR_S = 120.0
DEADLINE_BYTES_S = 512 * 1024
"""Default deadline: `DEADLINE_FLOOR_S` plus the expected size at this rate (the Content-Length, else the cap)."""

Cancel = Callable[[], None]


def default_deadline(size: int) -> float:
    return DEADLINE_FLOOR_S + size / DEADLINE_BYTES_S


class Pace:
    """Watches one fetch. `check(done)` runs `cancel()` (whose exception passes through unchanged) and raises
    `FetchError` past the deadline or when a window of `window_s` brought less than `min_rate` bytes per second."""

    def __init__(self, what: str, shown_url: str, *, deadline_s: float, min_rate: float = MIN_RATE_BYTES_S,
                 window_s: float = RATE_WINDOW_S, cancel: Cancel | None = None):
        self.what, self.shown_url = what, shown_url
        self.deadline_s, self.min_rate, self.window_s, self.cancel = deadline_s, min_rate, window_s, cancel
        self.started = self.window_start = time.monotonic()
        self.window_done = 0

    def set_deadline(self, deadline_s: float) -> None:
        """Use a deadline fitted to the size once it is known."""
        self.deadline_s = deadline_s

    def check(self, done: int) -> None:
        if self.cancel is not None:
            self.cancel()
        now = time.monotonic()
        if now - self.started > self.deadline_s:
            raise FetchError(f"{self.what} from {self.shown_url} was stopped: it did not finish within "
                             f"{self.deadline_s:.0f} s ({done} bytes arrived)")
        span = now - self.window_start
        if span >= self.window_s:
            rate = (done - self.window_done) / span
            if rate < self.min_rate:
                raise FetchError(f"{self.what} from {self.shown_url} was stopped: it arrived at {rate:.0f} bytes/s "
                                 f"over {span:.0f} s, below the minimum of {self.min_rate:.0f} bytes/s")
            self.window_start, self.window_done = now, done
