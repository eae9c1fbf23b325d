"""The clock interface: where procedures, the engine and the station get time from.

A procedure never calls ``time.sleep``; it calls ``station.clock.sleep``. :class:`RealClock` is wall time
(hardware, or a bench served over TCP). A simulated bench brings its own clock that satisfies :class:`Clock`
(a virtual one, on which a 600 h protocol runs in seconds); labctl never needs to know which it is.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """now() in s (monotonic, arbitrary origin) and sleep(s)."""

    def now(self) -> float: ...

    def sleep(self, duration_s: float) -> None: ...


class RealClock:
    """Wall time: ``time.monotonic`` and ``time.sleep`` (hardware, or a simulated bench served over TCP)."""

    virtual = False

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, duration_s: float) -> None:
        if duration_s > 0:
            time.sleep(duration_s)
