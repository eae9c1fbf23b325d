"""The simulated bench's clocks (the :class:`labctl.clock.Clock` interface lives in labctl).

Emulators call ``clock.sleep`` for the time the real instrument would take. With :class:`VirtualClock` that time
passes instantly (a 600 h protocol runs in seconds); with :class:`RealClock` it passes for real (a bench on the
real clock, or served over TCP) and lets go of the bench lock meanwhile.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from labctl.clock import Clock as Clock
from labctl.clock import RealClock as WallClock

_held = threading.local()


@contextmanager
def bench_lock_held(*locks: Any) -> Iterator[None]:
    """Hold ``locks`` (in order; the bench's last) while an instrument works; :meth:`RealClock.sleep` lets
    them go while it sleeps and takes them back in the same order.

    A transport serving several instruments of one bench serialises their access to the shared physics with
    one lock. While an instrument lets instrument time pass (a sweep's source delay, a motor moving) it
    touches no physics, so the sleep releases the lock: one instrument's 60 s sweep does not hold up the
    shutter's reply, as it cannot on real hardware. A trigger model running in the background (the 2450's)
    also names its instrument's lock, so that commands run between its sleeps."""
    for lock in locks:
        lock.acquire()
    previous = getattr(_held, "locks", ())
    _held.locks = locks
    try:
        yield
    finally:
        _held.locks = previous
        for lock in reversed(locks):
            lock.release()


def held_locks() -> tuple[Any, ...]:
    """The locks :func:`bench_lock_held` holds in this thread (innermost call)."""
    return getattr(_held, "locks", ())


def _sleep_releasing(dt_s: float) -> None:
    locks = held_locks()
    for lock in reversed(locks):
        lock.release()
    try:
        time.sleep(dt_s)
    finally:
        for lock in locks:
            lock.acquire()


class RealClock(WallClock):
    """Wall time as an emulator spends it: keeping to schedule over consecutive sleeps, letting go of the bench
    lock while it sleeps (the plain wall clock is :class:`labctl.clock.RealClock`).

    ``time.sleep`` oversleeps by tens of µs and the code between two sleeps takes time too; an instrument's
    sweep does not drift like that. When a sleep starts within ``catch_up_s`` of the previous sleep's deadline
    (same thread), it is measured from that deadline, so a sweep of N points takes N × its point time. Both
    transports call :meth:`resync` for every message received, so this catch-up never spans two commands.
    A sleep lets go of the bench lock the calling thread holds (:func:`bench_lock_held`).
    """

    def __init__(self, catch_up_s: float = 0.005) -> None:
        self.catch_up_s = catch_up_s
        self._local = threading.local()

    def resync(self) -> None:
        """Start a new schedule (this thread): the next sleep is measured from now. Call it when a new command
        arrives, so idle time between commands is never counted as instrument time."""
        self._local.deadline = None

    def sleep(self, dt_s: float) -> None:
        if dt_s <= 0:
            return
        now = time.monotonic()
        last = getattr(self._local, "deadline", None)
        base = last if last is not None and 0.0 <= now - last < self.catch_up_s else now
        deadline = base + dt_s
        self._local.deadline = deadline
        if deadline > now:
            _sleep_releasing(deadline - now)


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
