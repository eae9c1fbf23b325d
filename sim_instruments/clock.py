"""Clocks: where procedures and emulators get time from.

A procedure never calls ``time.sleep``; it calls ``station.clock.sleep``. Emulators call ``clock.sleep`` for the
time the real instrument would take. With :class:`VirtualClock` that time passes instantly (a 600 h protocol runs
in seconds); with :class:`RealClock` it passes for real (hardware, or the TCP simulator).
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """Seconds since an arbitrary origin, and a way to wait."""

    def now(self) -> float: ...

    def sleep(self, dt_s: float) -> None: ...


class RealClock:
    """Wall time: ``time.monotonic`` and ``time.sleep``."""

    virtual = False

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, dt_s: float) -> None:
        if dt_s > 0:
            time.sleep(dt_s)


class VirtualClock:
    """Simulated time that advances only when somebody sleeps on it (thread-safe).

    start_s: the value of :meth:`now` at creation (s).
    """

    virtual = True

    def __init__(self, start_s: float = 0.0) -> None:
        self._t = float(start_s)
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._t

    def sleep(self, dt_s: float) -> None:
        if dt_s < 0:
            raise ValueError(f"cannot sleep a negative time: {dt_s} s")
        with self._lock:
            self._t += float(dt_s)

    advance = sleep
