"""Injected time: the one place that reads the wall clock, so windows and timeouts test deterministically.

`time_scale` shrinks every wait the controller makes (tests and the demo run at 0.05);
values written on the wire stay unscaled.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone

import gevent


class Clock:
    """Wall and monotonic time plus scaled sleeping."""

    def __init__(self, time_scale: float = 1.0) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be > 0")
        self.time_scale = time_scale

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    def scaled(self, seconds: float) -> float:
        """Real seconds to wait for `seconds` of call time."""
        return seconds * self.time_scale

    def sleep(self, seconds: float) -> None:
        gevent.sleep(self.scaled(seconds))


class FixedClock(Clock):
    """A clock frozen at a given instant (tests of time windows, DST, holidays)."""

    def __init__(self, at: datetime, time_scale: float = 1.0) -> None:
        super().__init__(time_scale)
        if at.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self._at = at

    def now(self) -> datetime:
        return self._at

    def set(self, at: datetime) -> None:
        self._at = at
