"""The run watchdog (station.yaml ``station.watchdog_s``): a stalled procedure loop is forced to the safe state.

The engine :meth:`Watchdog.kick`\\ s it on every sign of life of the run: a document (row, log line, progress), a
checkpoint or wait step, a recovery back-off slice, each poll of a suspension or pause. When nothing came for
``timeout_s`` of *wall* time (a loop stuck in a driver call, a procedure spinning without checkpoints), the watchdog
thread calls ``on_stall(idle_s)`` once — the engine forces the station's safe state from there, logs it, and raises
:class:`WatchdogStall` into the run's thread, so the run ends ``failed`` with the reason.

The exception is delivered with CPython's ``PyThreadState_SetAsyncExc``: it arrives when the run's thread next runs
Python code (a driver call blocked in a socket read raises it once its timeout returns, which every transport
here bounds). Wall time, not station time: on the virtual clock a stalled loop would never advance the clock.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

POLL_MAX_S = 1.0
"""The watchdog looks at most this long apart (s, wall), and at least 20 times per timeout."""


class WatchdogStall(BaseException):
    """Raised into the run's thread when the watchdog fired (a BaseException: a procedure's ``except Exception``
    does not swallow it)."""


def raise_in_thread(thread_id: int, exc_type: type[BaseException] | None) -> bool:
    """Make ``exc_type`` be raised in thread ``thread_id`` when it next runs Python code (None: cancel a pending
    one). True if a thread was found."""
    arg = ctypes.py_object(exc_type) if exc_type is not None else None
    return ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), arg) == 1


class Watchdog:
    """A wall-time monitor of a run's activity (module docstring).

    Parameters
    ----------
    timeout_s
        Longest quiet time allowed (s, wall); 0 or less: never fires.
    on_stall
        Called once, in the watchdog's thread, with the quiet time (s) when it fires.
    """

    def __init__(self, timeout_s: float, on_stall: Callable[[float], None]) -> None:
        self.timeout_s = float(timeout_s)
        self.on_stall = on_stall
        self._last = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: the quiet time (s) when it fired; None while it has not
        self.fired_after_s: float | None = None

    def kick(self) -> None:
        """A sign of life (cheap: one clock read)."""
        self._last = time.monotonic()

    def start(self) -> None:
        if self.timeout_s <= 0 or self._thread is not None:
            return
        self.kick()
        self._thread = threading.Thread(target=self._loop, name="labctl-watchdog", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        poll = min(POLL_MAX_S, self.timeout_s / 20.0)
        while not self._stop.wait(poll):
            idle = time.monotonic() - self._last
            if idle >= self.timeout_s:
                self.fired_after_s = idle
                try:
                    self.on_stall(idle)
                except Exception:  # noqa: BLE001 - the watchdog's own failure must be visible, not fatal
                    log.exception("the watchdog's stall handler failed")
                return

    def stop(self) -> None:
        """Stop watching (waits for a stall handler that is running to finish)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()
