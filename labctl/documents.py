"""The run's document stream: what a procedure emits, and the bus that hands it to every subscriber.

A run is a sequence of documents (the idea of Bluesky's event model, written for labctl):

``start``
    once, before anything is measured: run id, procedure, sample, operator, station name, parameters (with
    units), the station snapshot and the identities of the instruments.
``descriptor``
    once per data stream, before its first event: the stream's columns (units, dtype, shape of one value) and
    the signal/axes of its default plot.
``event``
    one row of one stream: ``data`` maps column name → value (a scalar, or an array of the column's shape).
``log`` / ``progress``
    a time-stamped line for the run's event log; the fraction done (0-1).
``stop``
    once, last: terminal status (completed, aborted, failed), the reason, the analysis results and how many
    events each stream got.

Subscribers are callables ``subscriber(name, doc)``. The bus calls them in the order they subscribed, from the
thread that emits. A subscriber that raises is reported (one ``log`` line) and unsubscribed, so a live view
cannot end a run; a subscriber marked ``critical`` (the run file writer) re-raises, since a run whose data
cannot be stored must stop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

START, DESCRIPTOR, EVENT, LOG, PROGRESS, STOP = "start", "descriptor", "event", "log", "progress", "stop"
DOCUMENT_NAMES = (START, DESCRIPTOR, EVENT, LOG, PROGRESS, STOP)
_NAMES = frozenset(DOCUMENT_NAMES)


@dataclass(frozen=True)
class Column:
    """One column of a data stream.

    name: column name; units: its unit ("" for dimensionless; integer columns are stored with "1");
    dtype: numpy dtype string, or "str"; shape: the shape of one value ((): a scalar; (n,): a spectrum or a
    trace of n points per row); axes: for an N-D column, the name of the column (or of the stream's fixed
    axis, see ``axis_values``) along each dimension; axis_units / axis_values: a fixed axis stored once with
    the stream (e.g. the wavelengths of every spectrum, nm).
    """

    name: str
    units: str = ""
    dtype: str = "f8"
    shape: tuple[int, ...] = ()
    axes: tuple[str, ...] = ()
    axis_units: tuple[str, ...] = ()
    axis_values: tuple[tuple[float, ...], ...] = ()


@dataclass(frozen=True)
class RunStart:
    run_id: str
    procedure: str
    sample: str
    operator: str
    station_name: str
    time: str  # ISO 8601 UTC
    parameters: Mapping[str, tuple[Any, str]] = field(default_factory=dict)  # name → (value, units)
    station: Mapping[str, Any] = field(default_factory=dict)  # the resolved station snapshot
    idn: Mapping[str, str] = field(default_factory=dict)
    software_version: str = ""
    area_cm2: float | None = None
    path: str = ""  # the run file, where there is one
    segment: int = 0  # 0 for a new run; n for the n-th resumption of it
    resume_reason: str = ""  # why this segment started (e.g. "resumed after interrupted")
    substrate_id: str | None = None  # one pixel of a substrate (labctl run --pixels): the substrate's id
    pixel: str | None = None  # ... and the pixel's name in its layout


@dataclass(frozen=True)
class Descriptor:
    run_id: str
    stream: str
    columns: tuple[Column, ...]
    signal: str
    axes: str


@dataclass(frozen=True)
class Event:
    run_id: str
    stream: str
    seq_num: int  # 1, 2, ... per stream, continuing across the segments of a resumed run
    time: float  # wall clock, s since the epoch, when the row was handed to the engine
    data: Mapping[str, Any]


@dataclass(frozen=True)
class LogLine:
    run_id: str
    time: str  # ISO 8601 UTC
    message: str


@dataclass(frozen=True)
class Progress:
    run_id: str
    fraction: float  # 0-1


@dataclass(frozen=True)
class RunStop:
    run_id: str
    time: str  # ISO 8601 UTC
    status: str  # completed, aborted, failed
    reason: str | None = None
    results: Mapping[str, Any] = field(default_factory=dict)
    num_events: Mapping[str, int] = field(default_factory=dict)


Subscriber = Callable[[str, Any], None]


class DocumentBus:
    """Hands every document to every subscriber, in order. Thread-safe: the list of subscribers is replaced, not
    changed, on (un)subscribe, so :meth:`emit` (once per row) reads it without taking a lock."""

    def __init__(self) -> None:
        self._subscribers: tuple[tuple[int, Subscriber, bool], ...] = ()
        self._next = 0
        self._lock = threading.RLock()

    def subscribe(self, subscriber: Subscriber, critical: bool = False) -> int:
        """Add ``subscriber``; ``critical``: its exceptions propagate to the emitter. Returns a token."""
        with self._lock:
            self._next += 1
            self._subscribers = (*self._subscribers, (self._next, subscriber, critical))
            return self._next

    def unsubscribe(self, token: int) -> None:
        with self._lock:
            self._subscribers = tuple(s for s in self._subscribers if s[0] != token)

    def emit(self, name: str, doc: Any) -> None:
        """Give ``(name, doc)`` to each subscriber; a failing non-critical one is dropped with a log line."""
        if name not in _NAMES:
            raise ValueError(f"unknown document name {name!r} (allowed: {', '.join(DOCUMENT_NAMES)})")
        for token, subscriber, critical in self._subscribers:
            try:
                subscriber(name, doc)
            except Exception as exc:
                if critical:
                    raise
                self.unsubscribe(token)
                log.error("subscriber %r failed on a %s document and was removed: %s: %s",
                          subscriber, name, type(exc).__name__, exc)
