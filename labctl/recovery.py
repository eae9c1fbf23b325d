"""Recovering from transport faults: classify the error, reconnect that instrument only, restore, retry.

A stability run talks to its instruments for hundreds of hours; links fail in a few recognisable ways
(:func:`classify_io_error`), each of which a reconnection can mend:

``timeout``
    a query got no reply within the resource's timeout: PyVISA's ``VisaIOError`` with ``VI_ERROR_TMO``
    (pyvisa-py and the in-process simulator adapter raise exactly this), pyserial's ``SerialTimeoutException``
    (a write that could not be sent in time), Python's ``TimeoutError``;
``connection_reset``
    the link was cut while open: ``ConnectionError`` and its subclasses (``ConnectionResetError``,
    ``BrokenPipeError``, ``ConnectionAbortedError``; :class:`drivers.io_helpers.DeadlineVISAAdapter` raises
    ``ConnectionError`` as soon as the peer has closed), ``VisaIOError`` ``VI_ERROR_CONN_LOST`` / ``VI_ERROR_IO``;
``resource_gone``
    the resource itself is not there: the session is closed or invalid (``pyvisa.errors.InvalidSession``,
    ``VI_ERROR_INV_OBJECT``, ``VI_ERROR_RSRC_NFOUND``, ``VI_ERROR_NLISTENERS``), a serial port that vanished
    (pyserial's ``SerialException``, an ``OSError`` with ``EIO``/``ENODEV``/``ENXIO``/``ENOENT``), pyvisa-py's
    ``Exception("could not connect: ...")`` when a TCP peer refuses, and a :class:`labctl.station.StationError`
    raised by :meth:`Station.reconnect` because the instrument could not be opened;
``garbage_reply``
    bytes came back but are not an answer: the drivers' ``ReplyError`` (:mod:`drivers.keithley2400`: not numbers,
    wrong count), ``UnicodeDecodeError``, and the ``ValueError`` of ``float()``/``int()`` on a reply.

Anything else (a ``ValueError`` for a setting outside the model's range, an instrument's own error queue, a bug)
is not a transport fault: :meth:`Recovery.call` re-raises it at once, untouched.

:meth:`Recovery.call` runs ``operation(station[role])``; on a transport fault it writes a journal entry, backs off
on the station clock (``backoff_s · backoff_factor^(attempt-1)``, at most ``backoff_max_s``), reconnects that role
(:meth:`labctl.station.Station.reconnect`: ``*IDN?`` verified, the configuration replayed), calls ``restore`` (the
procedure's careful re-application of its source level: a ramp, never a step to a stale value) and runs the
operation again. When ``attempts`` recoveries have not mended it: :class:`RecoveryFailed`, a one-line reason.
"""

from __future__ import annotations

import errno
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

TIMEOUT, CONNECTION_RESET = "timeout", "connection_reset"
RESOURCE_GONE, GARBAGE_REPLY = "resource_gone", "garbage_reply"
FAULT_KINDS: tuple[str, ...] = (TIMEOUT, CONNECTION_RESET, RESOURCE_GONE, GARBAGE_REPLY)
"""The transport faults :func:`classify_io_error` names."""

INSTRUMENT_RESET = "instrument_reset"
"""A fault a procedure notices by read-back, not the transport (the instrument's state was reset: output off,
levels at their power-on values); :meth:`Recovery.recover` mends it by a reconnection as for the others."""

FAULT, RECONNECTED, RETRY, GAVE_UP = "fault", "reconnected", "retry", "gave_up"
ACTIONS: tuple[str, ...] = (FAULT, RECONNECTED, RETRY, GAVE_UP)
"""The ``action`` of a journal entry."""

BACKOFF_SLICE_S = 1.0
"""A back-off sleeps on the station clock in slices of at most this (s), noticing an abort between them."""

_GONE_ERRNOS = frozenset({errno.EIO, errno.ENODEV, errno.ENXIO, errno.ENOENT, errno.EBADF})
_PARSE_MESSAGES = ("could not convert string to float", "invalid literal for int()", "could not convert string to")


def _visa_kind(exc: BaseException) -> str | None:
    """The fault kind of a ``pyvisa.errors.VisaIOError`` / ``InvalidSession`` (None for other VISA errors)."""
    try:
        from pyvisa.constants import StatusCode
        from pyvisa.errors import InvalidSession, VisaIOError
    except ImportError:  # pragma: no cover - pyvisa is a dependency
        return None
    if isinstance(exc, InvalidSession):
        return RESOURCE_GONE
    if not isinstance(exc, VisaIOError):
        return None
    code = exc.error_code
    if code == StatusCode.error_timeout:
        return TIMEOUT
    if code in (StatusCode.error_connection_lost, StatusCode.error_io, StatusCode.error_abort):
        return CONNECTION_RESET
    if code in (StatusCode.error_invalid_object, StatusCode.error_resource_not_found,
                StatusCode.error_no_listeners, StatusCode.error_closing_failed, StatusCode.error_resource_busy):
        return RESOURCE_GONE
    if code in (StatusCode.error_raw_read_protocol_violation, StatusCode.error_input_protocol_violation):
        return GARBAGE_REPLY
    return None


def _serial_kind(exc: BaseException) -> str | None:
    try:
        import serial
    except ImportError:  # pragma: no cover - pyserial comes with pyvisa-py
        return None
    if isinstance(exc, serial.SerialTimeoutException):
        return TIMEOUT
    if isinstance(exc, serial.SerialException):
        return RESOURCE_GONE
    return None


def classify_io_error(exc: BaseException) -> str | None:
    """The transport fault ``exc`` is (one of :data:`FAULT_KINDS`), or None when it is not one.

    See the module docstring for what each kind covers. A :class:`labctl.station.StationError` is classified by
    the error it was raised from (``__cause__``), except that an instrument that could not be (re)opened
    ("cannot open ...", whatever the link said) is ``resource_gone``; an instrument that answered ``*IDN?`` with
    a different identity is not a transport fault.
    """
    from drivers.keithley2400 import ReplyError
    from labctl.station import StationError

    if isinstance(exc, StationError):
        if str(exc).startswith("cannot open"):  # the resource could not be reopened: whatever the link said
            return RESOURCE_GONE
        return classify_io_error(exc.__cause__) if exc.__cause__ is not None else None
    from drivers.identity import IdentityError

    if isinstance(exc, IdentityError):  # another instrument answered: not a fault a reconnection mends
        if exc.answered:  # ... unless the answer is no text at all (IEEE 488.2 *IDN?: printable ASCII)
            return GARBAGE_REPLY if any(not " " <= c <= "~" for c in exc.answer or "") else None
        return (classify_io_error(exc.__cause__) if exc.__cause__ is not None else None) or TIMEOUT
    kind = _visa_kind(exc)
    if kind is not None:
        return kind
    kind = _serial_kind(exc)
    if kind is not None:
        return kind
    if isinstance(exc, ReplyError | UnicodeDecodeError):
        return GARBAGE_REPLY
    if isinstance(exc, TimeoutError):  # socket.timeout is TimeoutError since Python 3.10
        return TIMEOUT
    if isinstance(exc, ConnectionError):
        return CONNECTION_RESET
    if isinstance(exc, OSError) and exc.errno in _GONE_ERRNOS:
        return RESOURCE_GONE
    if isinstance(exc, ValueError) and str(exc).startswith(_PARSE_MESSAGES):
        return GARBAGE_REPLY
    if isinstance(exc, KeyError) and str(exc.args[0] if exc.args else "").endswith("not found in mapped values"):
        return GARBAGE_REPLY  # PyMeasure's control with mapped values (e.g. a 2400's source_enabled) read garbage
    if type(exc) is Exception and str(exc).startswith("could not connect"):  # pyvisa-py's TCPIP open
        return RESOURCE_GONE
    return None


@dataclass(frozen=True)
class RecoveryPolicy:
    """How hard :class:`Recovery` tries (station.yaml ``recovery:``).

    Parameters
    ----------
    attempts
        Recoveries (back off, reconnect, restore, retry) per failing call before giving up; 0: give up at once.
    backoff_s
        Wait before the first reconnection (s, station clock).
    backoff_factor
        Each further wait is this many times the previous one (≥ 1).
    backoff_max_s
        Longest wait (s).
    """

    attempts: int = 5
    backoff_s: float = 1.0
    backoff_factor: float = 2.0
    backoff_max_s: float = 60.0

    @classmethod
    def from_config(cls, config: Any) -> RecoveryPolicy:
        """From station.yaml's ``recovery:`` block (:class:`labctl.config.RecoveryConfig`; None: the defaults)."""
        if config is None:
            return cls()
        return cls(attempts=config.attempts, backoff_s=config.backoff_s, backoff_factor=config.backoff_factor,
                   backoff_max_s=config.backoff_max_s)

    def delay_s(self, attempt: int) -> float:
        """The back-off before recovery ``attempt`` (1, 2, ...) (s)."""
        return min(self.backoff_max_s, self.backoff_s * self.backoff_factor ** max(0, attempt - 1))


NO_RETRY = RecoveryPolicy(attempts=0, backoff_s=0.0)
"""A policy that journals a transport fault and gives up at once."""


class RecoveryFailed(Exception):
    """The recovery budget of one call was spent (or the fault cannot be mended): a one-line reason naming the
    role, the kind of fault and the attempts made. ``role``, ``kind``, ``attempts`` and ``detail`` are kept."""

    def __init__(self, role: str, kind: str, attempts: int, detail: str, what: str = "") -> None:
        self.role, self.kind, self.attempts, self.detail, self.what = role, kind, attempts, detail, what
        during = f" during {what}" if what else ""
        super().__init__(f"instrument '{role}': {kind}{during} not recovered after {attempts} "
                         f"attempt{'s' if attempts != 1 else ''}: {detail}")


Journal = Callable[[dict[str, Any]], None]


class _Noticed(Exception):
    """A fault handed to :meth:`Recovery.recover` (internal: enters the same loop as a transport fault)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind, self.detail = kind, detail


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return " ".join(text.split())[:300]


class Recovery:
    """Runs instrument operations of a run and mends transport faults (module docstring).

    Parameters
    ----------
    station
        The :class:`labctl.station.Station` (``station[role]``, ``station.reconnect(role)``, ``station.clock``).
    policy
        Attempts and back-off (default :class:`RecoveryPolicy`).
    journal
        Called with each journal entry, a dict ``{"time": station time (s), "role", "kind", "attempt", "action":
        "fault" | "reconnected" | "retry" | "gave_up", "detail", "backoff_s"}`` (default: a log line).
    should_stop
        Asked between back-off slices; when it returns True the back-off ends and :class:`RecoveryFailed` is
        raised (the run is being aborted).
    """

    def __init__(self, station: Any, policy: RecoveryPolicy | None = None, journal: Journal | None = None,
                 should_stop: Callable[[], bool] | None = None) -> None:
        self.station = station
        self.policy = policy if policy is not None else RecoveryPolicy()
        self.journal: Journal = journal if journal is not None else (lambda entry: log.warning("%s", entry))
        self.should_stop = should_stop or (lambda: False)
        #: faults seen per kind, and recoveries that succeeded / failed (bounded: counters, not entries)
        self.faults: Counter[str] = Counter()
        self.recovered = 0
        self.failed = 0
        #: True while a call is being recovered (the watchdog and the status file look at it)
        self.recovering = False

    def _entry(self, role: str, kind: str, attempt: int, action: str, detail: str, backoff_s: float = 0.0) -> None:
        entry = {"time": float(self.station.clock.now()), "role": role, "kind": kind, "attempt": attempt,
                 "action": action, "detail": detail, "backoff_s": float(backoff_s)}
        try:
            self.journal(entry)
        except Exception:  # noqa: BLE001 - the journal must not turn a recovery into a failure
            log.exception("journal entry %r could not be recorded", entry)

    def _back_off(self, delay_s: float) -> bool:
        """Sleep ``delay_s`` on the station clock; False if an abort came meanwhile."""
        clock = self.station.clock
        end = clock.now() + delay_s
        while True:
            if self.should_stop():
                return False
            left = end - clock.now()
            if left <= 0:
                return True
            clock.sleep(min(BACKOFF_SLICE_S, left))

    def call(self, role: str, operation: Callable[[Any], Any], *, restore: Callable[[Any], Any] | None = None,
             what: str = "") -> Any:
        """``operation(station[role])``, mending transport faults; its return value.

        ``restore(instrument)`` is called after each reconnection, before the operation is retried (a transport
        fault inside it counts as a further attempt). ``what`` names the operation in the journal and the error.
        Raises :class:`RecoveryFailed` when the budget is spent, any non-transport error unchanged, and
        :class:`procedures.base.RunAborted` when the run is aborted during a back-off."""
        return self._attempt(role, operation, restore, what, pending=None)

    def recover(self, role: str, kind: str, detail: str, *, restore: Callable[[Any], Any] | None = None,
                what: str = "") -> Any:
        """Reconnect ``role`` for a fault the procedure found itself, not the transport (e.g. ``kind =
        INSTRUMENT_RESET``: a read-back says the output went off, as after a power cycle): journaled as a fault of
        that kind, then back-off, reconnection (configuration replayed) and ``restore`` as in :meth:`call`, with
        the same budget. Returns the new instrument."""
        return self._attempt(role, lambda inst: inst, restore, what, pending=(kind, detail))

    def _attempt(self, role: str, operation: Callable[[Any], Any], restore: Callable[[Any], Any] | None,
                 what: str, pending: tuple[str, str] | None) -> Any:
        attempt = 0
        reconnect_needed = False
        last_kind = ""
        while True:
            try:
                if pending is not None:
                    raise _Noticed(*pending)
                if reconnect_needed:
                    self.station.reconnect(role)
                    self._entry(role, last_kind, attempt, RECONNECTED, self.station.identities.get(role, ""))
                    if restore is not None:
                        restore(self.station[role])
                    self._entry(role, last_kind, attempt, RETRY, what or "operation")
                    reconnect_needed = False
                result = operation(self.station[role])
            except Exception as exc:
                if isinstance(exc, _Noticed):
                    kind, detail, pending = exc.kind, exc.detail, None
                else:
                    kind, detail = classify_io_error(exc), _describe(exc)
                if kind is None:
                    if attempt:  # a recovery that ends in a different error: journaled, then raised as it is
                        self.failed += 1
                        self._entry(role, "other", attempt, GAVE_UP, detail)
                    self.recovering = False
                    raise
                last_kind = kind
                attempt += 1
                self.faults[kind] += 1
                if attempt > self.policy.attempts:
                    self._gave_up(role, kind, attempt, detail)
                    raise RecoveryFailed(role, kind, attempt - 1, detail, what) from exc
                delay = self.policy.delay_s(attempt)
                self.recovering = True
                self._entry(role, kind, attempt, FAULT, f"{what}: {detail}" if what else detail, delay)
                if not self._back_off(delay):
                    from procedures.base import RunAborted

                    self._gave_up(role, kind, attempt, "abort requested during the back-off")
                    raise RunAborted(f"abort requested while recovering instrument '{role}' ({kind})") from exc
                reconnect_needed = True
                continue
            if attempt:
                self.recovered += 1
            self.recovering = False
            return result

    def _gave_up(self, role: str, kind: str, attempt: int, detail: str) -> None:
        self.failed += 1
        self.recovering = False
        self._entry(role, kind, attempt, GAVE_UP, detail)

    def summary(self) -> dict[str, Any]:
        """Counts for the status file: faults per kind, recoveries that succeeded and failed (JSON-able)."""
        return {"faults": dict(self.faults), "recovered": self.recovered, "failed": self.failed,
                "recovering": self.recovering}
