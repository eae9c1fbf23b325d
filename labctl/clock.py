"""The clock interface: where procedures, the engine and the station get time from.

A procedure never calls ``time.sleep``; it calls ``station.clock.sleep``. :class:`RealClock` is wall time
(hardware, or a bench served over TCP). A simulated bench brings its own clock that satisfies :class:`Clock`
(a virtual one, on which a 600 h protocol runs in seconds); labctl never needs to know which it is.

Concurrent runs (several SMUs at once, one thread each): the thread that starts the workers opens
``concurrently(clock, names)`` (:func:`concurrently`) *before* it starts them, and each worker runs its part inside
``with group.member(name):``. On the wall clock this does nothing (the threads simply run at once); a virtual clock
uses it to schedule the members' sleeps so that each sees time as if it were alone and the whole takes the longest
member's time, not the sum. A lock that a worker holds across instrument I/O (anything that may sleep on the
clock) should come from :func:`new_lock`, so that a virtual clock knows when a member waits for another.

    with concurrently(station.clock, ["smu", "smu2"]) as group:
        def worker(role):
            with group.member(role):          # first thing in the worker
                engine.run(procedure)         # in this thread: RunEngine.run, not start()
        threads = [threading.Thread(target=worker, args=(r,)) for r in ("smu", "smu2")]
        for t in threads: t.start()           # all of them, without waiting for any
        for t in threads: t.join()

The sleeps a member's schedule covers are those of its own thread; a thread it starts is no member (its sleeps
pass at once on a virtual clock).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """now() in s (monotonic, arbitrary origin) and sleep(s).

    Optional (call them through :func:`concurrently` and :func:`new_lock`, which fall back when a clock lacks
    them):

    ``concurrently(names: Sequence[str]) -> ContextManager[ConcurrentGroup]``
        Open a group of concurrent members, named ``names``, before the threads that run them start; each such
        thread runs its work inside ``with group.member(name):``. A virtual clock schedules the members' sleeps
        (each member sees time as if it ran alone; the group takes the longest member's time); a wall clock
        does nothing.
    ``new_lock() -> RLock-like``
        A re-entrant lock the clock can see members wait on (a virtual clock then lets time pass to the holder's
        wake-up instead of waiting forever); a wall clock gives a plain ``threading.RLock``.
    """

    def now(self) -> float: ...

    def sleep(self, duration_s: float) -> None: ...


class ConcurrentGroup(Protocol):
    """What ``clock.concurrently(names)`` yields: the members' entry."""

    names: tuple[str, ...]

    def member(self, name: str) -> AbstractContextManager[Any]: ...


def check_member_names(names: Sequence[str]) -> tuple[str, ...]:
    """The members' names as a tuple; ValueError (one line) unless they are distinct, non-empty strings and at
    least one."""
    if isinstance(names, str):
        raise ValueError(f"concurrently: names = {names!r} (allowed: a sequence of member names, e.g. ['smu', "
                         "'smu2'], not one string)")
    out = tuple(names)
    bad = [n for n in out if not isinstance(n, str) or not n]
    if bad:
        raise ValueError(f"concurrently: member name {bad[0]!r} (allowed: non-empty strings)")
    if not out:
        raise ValueError("concurrently: names = [] (allowed: at least one member name)")
    seen: set[str] = set()
    for name in out:
        if name in seen:
            raise ValueError(f"concurrently: member name {name!r} given twice (allowed: distinct names)")
        seen.add(name)
    return out


class WallGroup:
    """The group of a clock that schedules nothing: :meth:`member` only checks the name."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = check_member_names(names)

    @contextmanager
    def member(self, name: str) -> Iterator[str]:
        if name not in self.names:
            raise ValueError(f"member {name!r} is not in this concurrent group (allowed: {', '.join(self.names)})")
        yield name


class RealClock:
    """Wall time: ``time.monotonic`` and ``time.sleep`` (hardware, or a simulated bench served over TCP)."""

    virtual = False

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, duration_s: float) -> None:
        if duration_s > 0:
            time.sleep(duration_s)

    @contextmanager
    def concurrently(self, names: Sequence[str]) -> Iterator[WallGroup]:
        """A group of concurrent members (see :class:`Clock`): on the wall clock a no-op that checks names."""
        yield WallGroup(names)

    def new_lock(self) -> Any:
        """A plain ``threading.RLock`` (nothing to schedule on the wall clock)."""
        return threading.RLock()


def concurrently(clock: Any, names: Sequence[str]) -> AbstractContextManager[Any]:
    """``clock.concurrently(names)`` if the clock has it, else a :class:`WallGroup` (members run as they come)."""
    method = getattr(clock, "concurrently", None)
    if method is not None:
        return method(names)
    return _wall_group(names)


@contextmanager
def _wall_group(names: Sequence[str]) -> Iterator[WallGroup]:
    yield WallGroup(names)


def new_lock(clock: Any) -> Any:
    """``clock.new_lock()`` if the clock has it, else a plain ``threading.RLock``."""
    method = getattr(clock, "new_lock", None)
    return method() if method is not None else threading.RLock()
