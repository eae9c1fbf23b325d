"""The simulated bench's clocks (the :class:`labctl.clock.Clock` interface lives in labctl).

Emulators call ``clock.sleep`` for the time the real instrument would take. With :class:`VirtualClock` that time
passes instantly (a 600 h protocol runs in seconds); with :class:`RealClock` it passes for real (a bench on the
real clock, or served over TCP) and lets go of the bench lock meanwhile.

Concurrent runs on the virtual clock (two SMUs measuring two pixels at once): :meth:`VirtualClock.concurrently`
opens a group of named members, each a thread that runs ``with group.member(name): ...``. The group is a
conservative discrete-event schedule: members take turns (one runs at a time), virtual time advances only when
every member that has not finished is asleep on the clock (or waiting for a lock another member holds), to the
earliest wake-up, and that member runs next (ties: in name order). Each member sees time as if it were alone, the
group ends at the longest member's time (not the sum), and the order of everything the members do on the bench
(its random numbers included) is the same on every repeat. See :class:`ConcurrentGroup`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from labctl.clock import Clock as Clock
from labctl.clock import RealClock as WallClock
from labctl.clock import check_member_names

log = logging.getLogger(__name__)

POLL_S = 0.05
"""Wall time (s) after which a member waiting for its turn looks again (the stall rule; an exception another
thread raises in it arrives within this)."""

DEFAULT_STALL_S = 10.0
"""Wall time (s) a member may run without a call into the clock while others wait before the group stops waiting
for it (:class:`ConcurrentGroup`): long enough for any analysis or file write between two instrument commands,
short enough that a member blocked on something the clock cannot see does not hang the group."""

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


class ScheduledRLock:
    """A re-entrant lock (as ``threading.RLock``) that a :class:`VirtualClock` group sees members wait on.

    A member of an open :class:`ConcurrentGroup` that finds it held by another thread gives up its turn until the
    lock is released (then it queues for a turn again, in the group's order), so a member asleep while it holds
    the lock (an instrument busy with another member's command) wakes at its time instead of the group waiting
    for ever. For everyone else (and on any other clock) it is a plain re-entrant lock. Used for each
    instrument's link lock (:func:`sim_instruments.adapter.instrument_lock`); :meth:`VirtualClock.new_lock` makes
    one for labctl's own locks held across instrument I/O.
    """

    def __init__(self) -> None:
        self._inner = threading.RLock()
        self._owner: int | None = None
        self._depth = 0
        self._groups: set[ConcurrentGroup] = set()  # the groups whose members wait (or waited) for it
        self._groups_guard = threading.Lock()

    def _took(self) -> None:
        self._owner = threading.get_ident()
        self._depth += 1

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if self._inner.acquire(blocking=False):
            self._took()
            return True
        if not blocking:
            return False
        ctx = getattr(_membership, "current", None)
        if ctx is None or timeout >= 0:
            if self._inner.acquire(True, timeout):
                self._took()
                return True
            return False
        group, member = ctx
        group._acquire(member, self)
        return True

    def release(self) -> None:
        if self._owner != threading.get_ident():
            raise RuntimeError("cannot release un-acquired lock")
        self._depth -= 1
        if self._depth:
            self._inner.release()
            return
        self._owner = None
        self._inner.release()
        with self._groups_guard:
            groups = tuple(self._groups)
        for group in groups:
            group._released(self)

    def _is_owned(self) -> bool:
        return self._owner == threading.get_ident()

    def locked(self) -> bool:
        """Whether some thread holds it (a snapshot)."""
        return self._owner is not None

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


_membership = threading.local()  # .current = (group, member) while this thread is inside group.member(name)


class _Member:
    """One member's place in the schedule. state: ``pending`` (not entered yet), ``ready`` (waiting for a turn
    since ``due``), ``active`` (its turn: running), ``asleep`` (until ``due``), ``blocked`` (on ``blocked_on``, a
    :class:`ScheduledRLock`), ``stalled`` (ran too long without a call into the clock: off the schedule until its
    next call), ``late`` (did not enter in time: no longer waited for) or ``done``."""

    __slots__ = ("name", "state", "due", "blocked_on")

    def __init__(self, name: str) -> None:
        self.name = name
        self.state = "pending"
        self.due = 0.0
        self.blocked_on: ScheduledRLock | None = None


class ConcurrentGroup:
    """Concurrent members on one :class:`VirtualClock`: a conservative discrete-event schedule (from
    :meth:`VirtualClock.concurrently`; each worker thread runs ``with group.member(name): ...``).

    Rules, all decided under the clock's lock:

    * Members take turns: one is *active* (runs) at a time. A turn ends when the active member sleeps on the
      clock, waits for a :class:`ScheduledRLock` another thread holds, or leaves (its ``member`` block ends,
      normally or by an exception: it then no longer holds anyone up).
    * The next turn goes to the member that is due first, ``(due time, name)`` in order, among those due now; no
      turn is given while a declared member has not entered yet (it would start now, and might come first).
    * Virtual time advances only when no member can run now: every member that has not finished is asleep (or
      waits for a lock), and it advances to the earliest wake-up. So each member sees time as if it were alone
      (its ``now()`` after ``sleep(dt)`` is exactly its ``now()`` before plus ``dt``), the group ends at the
      longest member's time, not the sum, and the order of everything the members do (the bench's random numbers
      too) is the same on every repeat.
    * A member's sleep lets go of the bench locks its thread holds (:func:`held_locks`, as
      :class:`RealClock` does) while it waits, and takes them back in its turn.
    * Sleeps of threads that are not members (an engine's safe-state threads, a flusher, anything but the
      members) do not wait: they advance the clock at once by their duration, as without a group (a member may
      be waiting for that thread, so making it wait its turn could hang both). A member asleep meanwhile whose
      wake-up that passes wakes late, in its order; the members' own sleeps are never shortened.
    * Stall rule: a member that runs for ``stall_s`` of wall time without a call into the clock while others
      wait (blocked on a lock or event the clock cannot see, e.g. one a sleeping member holds) is taken off the
      schedule, with a warning, until its next call into the clock; the others go on. This only guards against
      a hang: schedules that need it are no longer deterministic.
      Likewise a declared member that has not entered within ``stall_s`` while others wait (its worker failed
      before ``member``, say) is no longer waited for; if it enters later it starts then.
    * When the group closes (the coordinator's ``with`` ends) members not entered are withdrawn and any thread
      still running goes on as a non-member. Start every worker without waiting for any of them: a member waits
      on entry until all have entered.

    names: the members (distinct; e.g. the SMU roles). stall_s: the stall rule's wall time (s).
    """

    def __init__(self, clock: VirtualClock, names: Sequence[str], stall_s: float = DEFAULT_STALL_S) -> None:
        self.names = check_member_names(names)
        if not stall_s > 0:
            raise ValueError(f"concurrently: stall_s = {stall_s!r} (allowed: > 0 s of wall time)")
        self.clock = clock
        self.stall_s = float(stall_s)
        self.closed = False
        self._cond = clock._cond
        self._members = {name: _Member(name) for name in self.names}
        self._last_event = time.monotonic()

    # -- what workers call ---------------------------------------------------------------------------------------
    @contextmanager
    def member(self, name: str) -> Iterator[str]:
        """Run the calling thread's block as member ``name`` (waits for its first turn on entry)."""
        if name not in self._members:
            raise ValueError(f"member {name!r} is not in this concurrent group (allowed: {', '.join(self.names)})")
        if getattr(_membership, "current", None) is not None:
            raise RuntimeError(f"member {name!r}: this thread is already a member of a concurrent group")
        m = self._members[name]
        with self._cond:
            if m.state not in ("pending", "late"):
                raise RuntimeError(f"member {name!r} has already entered this concurrent group")
            if self.closed:
                m.state = "done"
            else:
                _membership.current = (self, m)
                m.state, m.due = "ready", self.clock._t
                self._changed()
                try:
                    self._wait_turn(m)
                except BaseException:
                    m.state = "done"
                    _membership.current = None
                    self._changed()
                    raise
        try:
            yield name
        finally:
            with self._cond:
                m.state = "done"
                _membership.current = None
                self._changed()

    def withdraw(self, name: str) -> None:
        """Member ``name`` will not come (its worker failed before entering): nobody waits for it any more."""
        with self._cond:
            m = self._members.get(name)
            if m is None:
                raise ValueError(f"member {name!r} is not in this concurrent group (allowed: {', '.join(self.names)})")
            if m.state == "pending":
                m.state = "done"
                self._changed()

    def states(self) -> dict[str, str]:
        """Each member's state (a snapshot, for diagnostics and tests)."""
        with self._cond:
            return {name: m.state for name, m in self._members.items()}

    # -- the schedule (all with the clock's lock held) -----------------------------------------------------------
    def _changed(self) -> None:
        """Something changed: note the wall time (stall rule), hand out the next turn, wake the waiters."""
        self._last_event = time.monotonic()
        self._schedule()
        self._cond.notify_all()

    def _schedule(self) -> None:
        if self.closed:
            return
        members = self._members.values()
        if any(m.state in ("active", "pending") for m in members):
            return
        while True:
            now = self.clock._t
            due = [m for m in members if m.state in ("ready", "asleep") and m.due <= now]
            if due:
                first = min(due, key=lambda m: (m.due, m.name))
                first.state = "active"
                self._cond.notify_all()
                return
            sleepers = [m.due for m in members if m.state == "asleep"]
            if not sleepers:
                return  # all done, blocked (on a non-member) or stalled
            self.clock._t = min(sleepers)

    def _wait_turn(self, m: _Member) -> None:
        """Until ``m`` is active (or the group closed). An exception while waiting takes it off the schedule."""
        try:
            while m.state != "active":
                if self.closed:
                    if m.state == "asleep":
                        self.clock._t = max(self.clock._t, m.due)
                    return
                if not self._cond.wait(POLL_S):
                    self._check_stall()
        except BaseException:
            if m.state != "active":
                m.state = "stalled"
                self._changed()
            raise

    def _check_stall(self) -> None:
        if time.monotonic() - self._last_event < self.stall_s:
            return
        for m in self._members.values():
            if m.state == "active":
                log.warning("virtual clock: member %r ran %.1f s of wall time without a call into the clock while "
                            "others waited; the group goes on without it until its next sleep (a lock the clock "
                            "cannot see?): this schedule is no longer deterministic", m.name, self.stall_s)
                m.state = "stalled"
                self._changed()
                return
        late = [m for m in self._members.values() if m.state == "pending"]
        if late:
            log.warning("virtual clock: member(s) %s did not enter within %.1f s of wall time while others waited; "
                        "the group goes on without them (one that enters later starts then): this schedule is no "
                        "longer deterministic", ", ".join(repr(m.name) for m in late), self.stall_s)
            for m in late:
                m.state = "late"
            self._changed()

    def _sleep(self, m: _Member, dt_s: float) -> None:
        locks = held_locks()
        for lock in reversed(locks):
            lock.release()
        try:
            with self._cond:
                if self.closed:
                    self.clock._t += dt_s
                    return
                m.state, m.due = "asleep", self.clock._t + dt_s
                self._changed()
                self._wait_turn(m)
        finally:
            for lock in locks:
                lock.acquire()

    def _acquire(self, m: _Member, lock: ScheduledRLock) -> None:
        """Member ``m`` waits for ``lock`` (held by another thread), giving up its turn meanwhile."""
        with self._cond:
            while not self.closed and m.state in ("active", "stalled"):
                with lock._groups_guard:
                    lock._groups.add(self)
                if lock._inner.acquire(blocking=False):  # registered first: a release from now on wakes it
                    lock._took()
                    return
                m.state, m.blocked_on = "blocked", lock
                self._changed()
                self._wait_turn(m)
                m.blocked_on = None
        lock._inner.acquire()  # the group closed: a plain lock
        lock._took()

    def _released(self, lock: ScheduledRLock) -> None:
        with self._cond:
            if self.closed:
                with lock._groups_guard:
                    lock._groups.discard(self)
                return
            woken = False
            for m in self._members.values():
                if m.state == "blocked" and m.blocked_on is lock:
                    m.state, m.due, m.blocked_on = "ready", self.clock._t, None
                    woken = True
            if woken:
                self._changed()


class VirtualClock:
    """Simulated time that advances only when somebody sleeps on it (thread-safe).

    start_s: the value of :meth:`now` at creation (s).

    Without a group, a sleep adds its duration at once, whichever thread calls it. With a group open
    (:meth:`concurrently`), the members' sleeps are scheduled (:class:`ConcurrentGroup`).
    """

    virtual = True

    def __init__(self, start_s: float = 0.0) -> None:
        self._t = float(start_s)
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._group: ConcurrentGroup | None = None

    def now(self) -> float:
        return self._t

    def sleep(self, dt_s: float) -> None:
        if dt_s < 0:
            raise ValueError(f"cannot sleep a negative time: {dt_s} s")
        ctx = getattr(_membership, "current", None)
        if ctx is not None and ctx[0] is self._group and ctx[0] is not None and ctx[1].state != "done":
            if dt_s > 0:
                ctx[0]._sleep(ctx[1], float(dt_s))
            return
        with self._cond:
            self._t += float(dt_s)
            group = self._group
            if group is not None and dt_s > 0:
                group._changed()  # a member whose wake-up this passes may run now

    advance = sleep

    @contextmanager
    def concurrently(self, names: Sequence[str], stall_s: float = DEFAULT_STALL_S) -> Iterator[ConcurrentGroup]:
        """Open a group of concurrent members (:class:`ConcurrentGroup`) before their threads start; closed (members
        not entered withdrawn) when the block ends. One group at a time on a clock."""
        group = ConcurrentGroup(self, names, stall_s)
        with self._cond:
            if self._group is not None:
                raise RuntimeError(f"a concurrent group ({', '.join(self._group.names)}) is already open on this "
                                   "clock (allowed: one at a time)")
            self._group = group
        try:
            yield group
        finally:
            with self._cond:
                group.closed = True
                self._group = None
                self._cond.notify_all()

    def new_lock(self) -> ScheduledRLock:
        """A re-entrant lock the group sees members wait on (:class:`ScheduledRLock`)."""
        return ScheduledRLock()
