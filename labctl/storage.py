"""HDF5 run files: written while the run goes, readable after a crash, with a NeXus default plot.

Layout (docs/data-format.md)::

    /                       @default = "entry"
    /entry        NXentry   @default = <first stream>; run_id, procedure, status, start/end time (UTC), ...
      sample      NXsample  name, area_cm2
      parameters  NXcollection   one scalar dataset per parameter, @units
      instrument  NXinstrument   station_json, idn/<instrument>
      <stream>    NXdata    @signal, @axes; one extendable dataset per column (rows, *shape), @units;
                            an N-D column also has @axes/@axis_units, and a fixed axis one dataset in the group
      results     NXcollection   results_json + scalars per group, @units
      events                vlen str, time-stamped log lines
      segments    NXcollection   one entry per segment: start/end time, status, reason, gap, first rows

A run is written in segments: :class:`RunWriter` with ``resume=True`` reopens an existing run (h5py mode "a")
and appends a new segment; every dataset keeps growing, so readers see one continuous run, and
``RunData.segments`` / ``RunData.gaps`` say where it was interrupted, for how long and why.

Rows and events are buffered in memory and written + flushed (``H5Fflush``) at least once per second by a
background thread, so a run killed with SIGKILL leaves a file that opens with everything up to the last flush
(frameworks ref. §4.2: flush with the default libver survives SIGKILL; SWMR/'latest' files do not reopen).
Every flush also writes the ``/entry@heartbeat`` attribute (UTC), even when nothing else is pending, so a reader
can tell a run that is still going from one whose writer died: :func:`load_run` reports such a file as
``interrupted`` (see :func:`writer_gone`).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from labctl.documents import EVENT, LOG, START, STOP, Column, Descriptor, RunStart, RunStop

CHUNK_ROWS = 4096
_STR = h5py.string_dtype("utf-8")
COMPRESSION = {"compression": "gzip", "compression_opts": 4, "shuffle": True}
"""Every stream column of fixed size (numbers, fixed-width text ``S<n>``) is stored chunked and compressed, so a
long run's file grows linearly at a fraction of the raw size; variable-length text (``str``) cannot be (HDF5
keeps it in a heap the filters do not reach): use ``S<n>`` for text written on every row."""
RUNNING, INTERRUPTED = "running", "interrupted"
STALE_FLUSHES = 5
"""A heartbeat older than this many flush intervals means the writer is gone (killed, crashed or hung)."""
STALE_MIN_S = 5.0
"""...and never less than this (s): room for a busy disk or a reader on another machine with a skewed clock."""
_HEARTBEAT_DTYPE = "S32"  # fixed length, so each heartbeat overwrites the attribute in place


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def writer_identity() -> str:
    """Host name and (Linux) PID namespace of this process: where a writer's PID can be checked."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return f"{socket.gethostname()} {namespace}".strip()


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (POSIX only: on Windows ``os.kill`` would terminate it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by somebody else
    return True


def writer_gone(
    heartbeat: str | None,
    flush_interval_s: float,
    writer_pid: int | None = None,
    writer_host: str | None = None,
    now: datetime | None = None,
) -> bool:
    """Whether the writer of a file that still says ``running`` has stopped for good.

    True when the writer's process no longer exists (checked only on POSIX, and only when the file was written
    on this host in this PID namespace), or when the last heartbeat is older than ``STALE_FLUSHES`` flush
    intervals (at least ``STALE_MIN_S``). A file without a heartbeat (written before heartbeats existed) is
    never called gone.

    heartbeat: ISO 8601 UTC time of the writer's last flush; flush_interval_s: its flush interval (s).
    """
    if not heartbeat:
        return False
    if writer_pid is not None and os.name == "posix" and writer_host == writer_identity():
        if not _pid_alive(writer_pid):
            return True
    try:
        last = datetime.fromisoformat(heartbeat)
    except ValueError:
        return False
    age_s = ((now or datetime.now(timezone.utc)) - last).total_seconds()
    return age_s > max(STALE_FLUSHES * flush_interval_s, STALE_MIN_S)


def _fixed_text(stream: str, column: str, value: Any, width: int) -> bytes:
    """``value`` as the ASCII bytes of a fixed-width text column; ValueError rather than a silent truncation."""
    data = str(value).encode("ascii")
    if len(data) > width:
        raise ValueError(f"stream {stream}: column {column}: {len(data)} characters, the column holds {width}")
    return data


def check_columns(stream: str, columns: Sequence[Column]) -> None:
    """Raise ValueError (one line naming the stream, the column and what is allowed) for a column the writer
    cannot store: a text column with a shape, axis names or fixed axis values that do not fit the shape, or a
    fixed axis named like a column of the stream."""
    names = {c.name for c in columns}
    for col in columns:
        where = f"stream {stream}: column {col.name}"
        shape = tuple(col.shape)
        if any(int(n) < 1 for n in shape):
            raise ValueError(f"{where}: shape {shape}: every dimension must be at least 1")
        if col.dtype == "str" and shape:
            raise ValueError(f"{where}: a text column must be scalar (shape ()), not {shape}")
        if len(col.axes) > len(shape) or len(col.axis_units) > len(col.axes) or len(col.axis_values) > len(col.axes):
            raise ValueError(f"{where}: axes {col.axes} / axis_units {col.axis_units} / axis_values: at most "
                             f"one per dimension of its shape {shape}")
        for k, values in enumerate(col.axis_values):
            if values and len(values) != shape[k]:
                raise ValueError(f"{where}: axis {col.axes[k]} has {len(values)} values, the shape needs {shape[k]}")
            if values and col.axes[k] in names:
                raise ValueError(f"{where}: fixed axis {col.axes[k]} has the name of a column of the stream")


class _Stream:
    """One NXdata group of appendable columns; the group is created when its first row is written (or at once
    with ``eager``), so a stream a run never uses (``qss_trace`` in a staircase J–V) leaves no empty group."""

    def __init__(self, parent: h5py.Group, name: str, columns: Sequence[Column], signal: str, axes: str,
                 eager: bool = False) -> None:
        self.columns = list(columns)
        self._nd_columns = [c for c in self.columns if c.shape]
        self._text_columns = [c for c in self.columns if c.dtype != "str" and np.dtype(c.dtype).kind == "S"]
        self._parent, self._name, self._signal, self._axes = parent, name, signal, axes
        self.datasets: dict[str, h5py.Dataset] = {}
        self.pending: list[Mapping[str, Any]] = []
        self.rows = 0
        if eager:
            self._create()

    @classmethod
    def reopen(cls, group: h5py.Group) -> _Stream:
        """The stream of an existing NXdata group (a resumed run): new rows go after the ones on disk."""
        names = [_text(c) for c in group.attrs.get("columns", sorted(group))]
        columns = [_column_info(group, name) for name in names]
        axes = group.attrs.get("axes", [""])
        stream = cls(group.parent, group.name.rsplit("/", 1)[-1], columns, _text(group.attrs.get("signal", "")),
                     _text(axes[0] if len(axes) else ""))
        stream.datasets = {name: group[name] for name in names}
        stream.rows = min((ds.shape[0] for ds in stream.datasets.values()), default=0)
        for ds in stream.datasets.values():  # a kill between two columns' writes: cut to the shortest
            if ds.shape[0] != stream.rows:
                ds.resize((stream.rows,) + ds.shape[1:])
        return stream

    def _create(self) -> None:
        group = self._parent.create_group(self._name)
        group.attrs["NX_class"] = "NXdata"
        group.attrs["signal"] = self._signal
        group.attrs["axes"] = [self._axes]
        group.attrs["columns"] = [c.name for c in self.columns]  # column order, for readers
        for col in self.columns:
            dtype = _STR if col.dtype == "str" else col.dtype
            shape = tuple(int(n) for n in col.shape)
            chunk_rows = max(1, CHUNK_ROWS // int(np.prod(shape, dtype=np.int64))) if shape else CHUNK_ROWS
            ds = group.create_dataset(col.name, shape=(0, *shape), maxshape=(None, *shape), dtype=dtype,
                                      chunks=(chunk_rows, *shape), **({} if dtype is _STR else COMPRESSION))
            units = col.units or ("1" if np.dtype(dtype).kind in "iu" else "")  # indices, flags, counts
            if units:
                ds.attrs["units"] = units
            if col.axes:
                ds.attrs["axes"] = list(col.axes)  # the name of the axis along each dimension of one value
                if col.axis_units:
                    ds.attrs["axis_units"] = list(col.axis_units)
            for axis, units_, values in zip(col.axes, col.axis_units, col.axis_values, strict=False):
                if values and axis not in group:  # a fixed axis, stored once for the whole stream
                    fixed = group.create_dataset(axis, data=np.asarray(values, dtype="f8"))
                    if units_:
                        fixed.attrs["units"] = units_
            self.datasets[col.name] = ds

    def add(self, row: Mapping[str, Any]) -> None:
        """Queue one row; the values of N-D columns are checked against the column's shape at once (ValueError),
        so a wrong spectrum fails the procedure that recorded it, not the flush thread."""
        for col in self._text_columns:
            if col.name in row:
                _fixed_text(self._name, col.name, row[col.name], np.dtype(col.dtype).itemsize)
        for col in self._nd_columns:
            if col.name in row and np.shape(row[col.name]) != tuple(col.shape):
                raise ValueError(f"stream {self._name}: column {col.name} takes values of shape {tuple(col.shape)}, "
                                 f"got {np.shape(row[col.name])}")
        self.pending.append(row)

    def write_pending(self) -> None:
        if not self.pending:
            return
        if not self.datasets:
            self._create()
        n_new = len(self.pending)
        start = self.rows
        for col in self.columns:
            ds = self.datasets[col.name]
            if col.dtype == "str":
                values = np.asarray([str(row.get(col.name, "")) for row in self.pending], dtype=object)
            elif ds.dtype.kind == "S":
                values = np.asarray([_fixed_text(self._name, col.name, row.get(col.name, ""), ds.dtype.itemsize)
                                     for row in self.pending], dtype=ds.dtype)
            else:
                missing = np.nan if ds.dtype.kind == "f" else -1  # documented fill values
                if col.shape:
                    missing = np.full(col.shape, missing, dtype=ds.dtype)
                values = np.asarray([row.get(col.name, missing) for row in self.pending], dtype=ds.dtype)
            ds.resize((start + n_new, *ds.shape[1:]))
            ds[start:] = values
        self.rows += n_new
        self.pending.clear()


class RunFileError(Exception):
    """A run file cannot be reopened to resume it (still being written, not a labctl run, ...)."""


class RunWriter:
    """Writes one run file. Thread-safe; a daemon thread flushes pending rows every ``flush_interval_s``.

    ``resume=True`` reopens the existing run file ``path`` (h5py mode "a") and starts a new segment: the streams
    and events go on growing after what is on disk, ``/entry/status`` reads ``running`` again and the previous
    segment's end is fixed (its end time, or for a killed writer its last heartbeat, and its status).
    ``reason`` says why the segment starts (default: "start" for a new run, "resumed after <status>").
    Raises :class:`RunFileError` when ``path`` is not a run file or its writer is still alive.
    """

    def __init__(self, path: str | Path, flush_interval_s: float = 1.0, *, resume: bool = False,
                 reason: str = "") -> None:
        self.path = Path(path)
        self._streams: dict[str, _Stream] = {}
        self._pending_events: list[str] = []
        self.resumed = resume
        if resume:
            self._reopen(reason)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # locking off: an operator may open the file (labctl show, h5web) while the run is going
            self._file = h5py.File(self.path, "w", locking=False)
            self._file.attrs["NX_class"] = "NXroot"
            self._file.attrs["default"] = "entry"
            self._file.attrs["creator"] = "labctl"
            self.entry = self._file.create_group("entry")
            self.entry.attrs["NX_class"] = "NXentry"
            self.entry.create_dataset("status", data=RUNNING, dtype=_STR)
            self._events = self.entry.create_dataset("events", shape=(0,), maxshape=(None,), dtype=_STR,
                                                     chunks=(64,))
            self._segments = _Segments.create(self.entry)
            self._segments.start(utc_now_iso(), reason or "start", 0.0, {})
        self.entry.attrs["writer_pid"] = os.getpid()
        self.entry.attrs["writer_host"] = writer_identity()
        self.entry.attrs["flush_interval_s"] = float(flush_interval_s)
        self._beat()
        self._lock = threading.RLock()
        self._last_flush = time.monotonic()
        self._flush_interval_s = flush_interval_s
        self._closed = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._flusher, name="labctl-h5-flush", daemon=True)
        self._thread.start()
        self._file.flush()

    def _reopen(self, reason: str) -> None:
        """Open an existing run for a new segment (see the class docstring)."""
        try:
            self._file = h5py.File(self.path, "a", locking=False)
        except OSError as exc:
            raise RunFileError(f"cannot reopen run file {self.path}: {exc}") from None
        try:
            if "entry" not in self._file or "status" not in self._file["entry"]:
                raise RunFileError(f"{self.path} is not a labctl run file (no /entry/status)")
            self.entry = self._file["entry"]
            status = _text(self.entry["status"][()])
            gone = status == RUNNING and _writer_has_gone(self.entry)
            if status == RUNNING and not gone:
                raise RunFileError(f"{self.path} is still being written (writer pid "
                                   f"{self.entry.attrs.get('writer_pid')}, last heartbeat "
                                   f"{_text(self.entry.attrs.get('heartbeat', b'?'))}): it cannot be resumed")
        except BaseException:
            self._file.close()
            raise
        previous = INTERRUPTED if gone else status
        heartbeat = _text(self.entry.attrs["heartbeat"]) if "heartbeat" in self.entry.attrs else ""
        end = _text(self.entry["end_time"][()]) if "end_time" in self.entry else heartbeat
        self._segments = _Segments.open(self.entry, _text(self.entry["start_time"][()])
                                        if "start_time" in self.entry else "")
        self._segments.finish(end, previous)
        for name, group in self.entry.items():
            if isinstance(group, h5py.Group) and _text(group.attrs.get("NX_class", "")) == "NXdata":
                self._streams[name] = _Stream.reopen(group)
        self._events = self.entry["events"]
        if "end_time" in self.entry:
            del self.entry["end_time"]
        self.entry["status"][()] = RUNNING
        now = utc_now_iso()
        gap_s = _seconds_between(end, now)
        first_rows = {name: stream.rows for name, stream in self._streams.items()}
        why = reason or f"resumed after {previous}"
        index = self._segments.start(now, why, gap_s, first_rows)
        gap = f"{gap_s:.1f} s" if gap_s is not None else "unknown"
        self._pending_events.append(f"{now} segment {index} started: {why} (gap {gap} since {end or '?'})")

    @property
    def segment(self) -> int:
        """Index of the segment being written (0 for a new run)."""
        return self._segments.count - 1

    # -- metadata ---------------------------------------------------------------------------------------------
    def write_metadata(
        self,
        *,
        run_id: str,
        procedure: str,
        sample: str,
        operator: str,
        area_cm2: float | None,
        parameters: Mapping[str, tuple[Any, str]],
        station: Mapping[str, Any],
        idn: Mapping[str, str],
        software_version: str,
        start_time: str,
        substrate_id: str | None = None,
        pixel: str | None = None,
    ) -> None:
        """Everything known at the start of a run. ``parameters``: name → (value, units).

        In a resumed run the file keeps the first segment's metadata: the run id and procedure must match
        (:class:`RunFileError`), and an instrument whose identity changed is noted as an event."""
        with self._lock:
            e = self.entry
            if self.resumed:
                self._check_resumed_metadata(run_id, procedure, idn)
                return
            for key, value in (
                ("run_id", run_id),
                ("procedure", procedure),
                ("operator", operator),
                ("software_version", software_version),
                ("start_time", start_time),
                ("title", f"{procedure} {sample} {run_id}"),
            ):
                e.create_dataset(key, data=value, dtype=_STR)
            e.attrs["run_id"] = run_id
            s = e.create_group("sample")
            s.attrs["NX_class"] = "NXsample"
            s.create_dataset("name", data=sample, dtype=_STR)
            if area_cm2 is not None:
                s.create_dataset("area", data=float(area_cm2)).attrs["units"] = "cm^2"
            if substrate_id is not None:  # one pixel of a substrate (labctl run --pixels): docs/substrates.md
                s.create_dataset("substrate_id", data=substrate_id, dtype=_STR)
                s.create_dataset("pixel", data=pixel or "", dtype=_STR)
                s.attrs["substrate_id"] = substrate_id
                s.attrs["pixel"] = pixel or ""
            p = e.create_group("parameters")
            p.attrs["NX_class"] = "NXcollection"
            for name, (value, units) in parameters.items():
                ds = p.create_dataset(name, data=_h5_value(value))
                if not units and isinstance(value, (int, float)) and not isinstance(value, bool):
                    units = "1"  # a number without a unit is dimensionless (a ratio, a count): say so
                if units:
                    ds.attrs["units"] = units
            inst = e.create_group("instrument")
            inst.attrs["NX_class"] = "NXinstrument"
            inst.create_dataset("station_json", data=json.dumps(station, indent=1), dtype=_STR)
            idn_group = inst.create_group("idn")
            for name, text in idn.items():
                idn_group.create_dataset(name, data=text, dtype=_STR)
            self._file.flush()

    def _check_resumed_metadata(self, run_id: str, procedure: str, idn: Mapping[str, str]) -> None:
        for key, value in (("run_id", run_id), ("procedure", procedure)):
            on_disk = _text(self.entry[key][()]) if key in self.entry else ""
            if on_disk != value:
                raise RunFileError(f"{self.path}: {key} on disk is {on_disk!r}, not {value!r}: not the run to resume")
        known = self.entry["instrument/idn"] if "instrument/idn" in self.entry else {}
        for role, text in idn.items():
            before = _text(known[role][()]) if role in known else None
            if before != text:
                self._pending_events.append(f"{utc_now_iso()} segment {self.segment}: instrument {role} is "
                                            f"{text!r} (was {before!r})")

    def create_stream(self, name: str, columns: Sequence[Column], signal: str, axes: str) -> None:
        """A NeXus NXdata group of appendable columns; the first stream is the file's default plot.

        Columns with units "" get none, except integer columns (indices, 0/1 flags, counts): "1" (dimensionless).
        The groups of the other streams are created with their first row."""
        check_columns(name, columns)
        with self._lock:
            if name in self._streams:  # a resumed run: the stream is on disk already
                on_disk = [c.name for c in self._streams[name].columns]
                if on_disk != [c.name for c in columns]:
                    raise RunFileError(f"{self.path}: stream {name} has columns {on_disk} on disk, not "
                                       f"{[c.name for c in columns]}: it cannot be resumed by this procedure")
                return
            if self.resumed and name not in self.entry:  # created with its first row, like a new run's
                self._streams[name] = _Stream(self.entry, name, columns, signal, axes)
                return
            first = "default" not in self.entry.attrs
            # the default plot's group exists from the start (a run that measured nothing shows it empty); the
            # others are created with their first row
            self._streams[name] = _Stream(self.entry, name, columns, signal, axes, eager=first)
            if first:
                self.entry.attrs["default"] = name
            self._file.flush()

    # -- data -------------------------------------------------------------------------------------------------
    def append(self, stream: str, row: Mapping[str, Any]) -> None:
        """Queue one row (column → value; missing columns are NaN). Written at the next flush (≤ 1 s)."""
        with self._lock:
            s = self._streams[stream]
            s.add(row)
            if time.monotonic() - self._last_flush >= self._flush_interval_s:
                self._flush_locked()
            elif len(s.pending) >= CHUNK_ROWS:  # a fast run (virtual clock): rows in memory stay bounded
                s.write_pending()

    def log_event(self, message: str) -> None:
        """Queue one time-stamped event line (stamped now); written at the next flush (≤ 1 s), like rows."""
        with self._lock:
            self._pending_events.append(f"{utc_now_iso()} {message}")
            if time.monotonic() - self._last_flush >= self._flush_interval_s:
                self._flush_locked()

    def write_results(self, results: Mapping[str, Any]) -> None:
        """Analysis results: JSON of the whole dict plus one scalar dataset per number (nested groups)."""
        with self._lock:
            if "results" in self.entry:
                del self.entry["results"]
            group = self.entry.create_group("results")
            group.attrs["NX_class"] = "NXcollection"
            group.create_dataset("results_json", data=json.dumps(results, default=_json_default), dtype=_STR)
            _write_tree(group, results)
            self._file.flush()

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        if self._closed:
            return
        for stream in self._streams.values():
            stream.write_pending()
        self._write_events()
        self._beat()
        self._file.flush()
        self._last_flush = time.monotonic()

    def _write_events(self) -> None:
        if not self._pending_events:
            return
        n = self._events.shape[0]
        self._events.resize((n + len(self._pending_events),))
        self._events[n:] = np.asarray(self._pending_events, dtype=object)
        self._pending_events.clear()

    def _beat(self) -> None:
        """Write the heartbeat: the UTC time of this flush, in place (fixed-length string attribute)."""
        stamp = np.bytes_(utc_now_iso().encode())
        if "heartbeat" in self.entry.attrs:
            self.entry.attrs.modify("heartbeat", np.asarray(stamp, dtype=_HEARTBEAT_DTYPE))
        else:
            self.entry.attrs.create("heartbeat", stamp, dtype=_HEARTBEAT_DTYPE)

    def _flusher(self) -> None:
        """Flush pending rows and events within ``flush_interval_s``; beat at least once per interval."""
        period = self._flush_interval_s / 4
        while not self._stop.wait(period):
            with self._lock:
                if self._closed:
                    return
                since = time.monotonic() - self._last_flush
                pending = self._pending_events or any(s.pending for s in self._streams.values())
                if since >= self._flush_interval_s or (pending and since >= self._flush_interval_s * 0.75):
                    self._flush_locked()

    def rows(self, stream: str) -> int:
        with self._lock:
            s = self._streams[stream]
            return s.rows + len(s.pending)

    def close(self, status: str, end_time: str | None = None) -> None:
        """Write the terminal status and end time, flush and close (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._flush_locked()
            end_time = end_time or utc_now_iso()
            self.entry["status"][()] = status
            self.entry.create_dataset("end_time", data=end_time, dtype=_STR)
            self._segments.finish(end_time, status)
            self._closed = True
            self._stop.set()
            self._file.close()

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close("failed" if exc[0] else "completed")


class _Segments:
    """``/entry/segments``: one row per segment of the run in extendable 1-D datasets (see docs/data-format.md)."""

    FIELDS = (("start_time", _STR), ("end_time", _STR), ("status", _STR), ("reason", _STR), ("gap_s", "f8"),
              ("first_rows", _STR))

    def __init__(self, group: h5py.Group) -> None:
        self.group = group

    @classmethod
    def create(cls, entry: h5py.Group) -> _Segments:
        group = entry.create_group("segments")
        group.attrs["NX_class"] = "NXcollection"
        for name, dtype in cls.FIELDS:
            ds = group.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(16,))
            if name == "gap_s":
                ds.attrs["units"] = "s"
        return cls(group)

    @classmethod
    def open(cls, entry: h5py.Group, start_time: str) -> _Segments:
        """The segments of an existing run; a file written before segments existed gets its one segment."""
        if "segments" in entry:
            return cls(entry["segments"])
        segments = cls.create(entry)
        segments.start(start_time, "start", 0.0, {})
        return segments

    @property
    def count(self) -> int:
        return int(self.group["start_time"].shape[0])

    def start(self, start_time: str, reason: str, gap_s: float | None, first_rows: Mapping[str, int]) -> int:
        """Append a segment that is running; returns its index."""
        n = self.count
        values = {"start_time": start_time, "end_time": "", "status": RUNNING, "reason": reason,
                  "gap_s": np.nan if gap_s is None else float(gap_s), "first_rows": json.dumps(dict(first_rows))}
        for name, _ in self.FIELDS:
            ds = self.group[name]
            ds.resize((n + 1,))
            ds[n] = values[name]
        return n

    def finish(self, end_time: str, status: str) -> None:
        """Close the last segment: its end time (for a killed writer: the last heartbeat) and status."""
        if self.count:
            self.group["end_time"][self.count - 1] = end_time
            self.group["status"][self.count - 1] = status


def _seconds_between(earlier: str, later: str) -> float | None:
    """``later - earlier`` in s for two ISO 8601 times; None when one is missing or unreadable."""
    try:
        return (datetime.fromisoformat(later) - datetime.fromisoformat(earlier)).total_seconds()
    except (TypeError, ValueError):
        return None


class RunFileWriter:
    """The run file as a subscriber of the run's documents (labctl.documents): wraps one :class:`RunWriter`.

    ``start`` opens the file at ``RunStart.path`` (a new one; with ``RunStart.segment`` > 0 the existing run,
    for a new segment) and writes the metadata; each ``descriptor`` creates its
    stream; ``event`` rows and ``log`` lines are queued and flushed within ``flush_interval_s``; ``stop``
    writes the results, the terminal status and the end time and closes the file. ``progress`` is not stored.
    The engine subscribes it as *critical*: if it cannot store, the run stops.
    """

    def __init__(self, flush_interval_s: float = 1.0) -> None:
        self.flush_interval_s = flush_interval_s
        self.writer: RunWriter | None = None
        self.path: Path | None = None

    def __call__(self, name: str, doc: Any) -> None:
        if name == EVENT and self.writer is not None:  # the common case first: one per row
            self.writer.append(doc.stream, doc.data)
        elif name == START:
            self._start(doc)
        elif self.writer is None:
            raise RuntimeError(f"run file: a {name} document before the start document")
        elif name == LOG:
            self.writer.log_event(doc.message)
        elif name == STOP:
            self._stop(doc)
        elif isinstance(doc, Descriptor):
            self.writer.create_stream(doc.stream, doc.columns, doc.signal, doc.axes)

    def _start(self, doc: RunStart) -> None:
        if not doc.path:
            raise ValueError(f"run {doc.run_id}: the start document names no run file (RunStart.path)")
        self.path = Path(doc.path)
        # RunStart.segment > 0: the n-th resumption of the run in that file, a new segment of it
        self.writer = RunWriter(self.path, flush_interval_s=self.flush_interval_s, resume=doc.segment > 0,
                                reason=doc.resume_reason)
        self.writer.write_metadata(
            run_id=doc.run_id,
            procedure=doc.procedure,
            sample=doc.sample,
            operator=doc.operator,
            area_cm2=doc.area_cm2,
            parameters=doc.parameters,
            station=doc.station,
            idn=doc.idn,
            software_version=doc.software_version,
            start_time=doc.time,
            substrate_id=doc.substrate_id,
            pixel=doc.pixel,
        )

    def _stop(self, doc: RunStop) -> None:
        assert self.writer is not None
        if doc.results is not None:
            self.writer.write_results(doc.results)
        self.writer.close(doc.status, end_time=doc.time)

    def flush(self) -> None:
        """Write everything queued now (the engine calls it once the run has started)."""
        if self.writer is not None:
            self.writer.flush()

    def streams(self) -> StoredStreams:
        """The run's streams as stored, read from the open file when asked for: what ``analyse()`` gets (the
        same frames as ``load_run(path).streams``, but a stream the analysis does not use is never read)."""
        assert self.writer is not None
        return StoredStreams(self.writer)

    def close(self, status: str) -> None:
        """Close the file with ``status`` if no stop document did (idempotent)."""
        if self.writer is not None:
            self.writer.close(status)


class StoredStreams(Mapping[str, pd.DataFrame]):
    """stream name → DataFrame, read from a run file still being written the first time it is asked for (what is
    queued is written first), then kept. Only streams with rows on disk (or the default stream) are listed."""

    def __init__(self, writer: RunWriter) -> None:
        self._writer = writer
        self._frames: dict[str, pd.DataFrame] = {}

    def _groups(self) -> dict[str, h5py.Group]:
        with self._writer._lock:
            self._writer._flush_locked()
            return dict(_stream_groups(self._writer.entry))

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name not in self._frames:
            with self._writer._lock:
                groups = self._groups()
                if name not in groups:
                    raise KeyError(name)
                self._frames[name] = _read_stream(groups[name])
        return self._frames[name]

    def __contains__(self, name: object) -> bool:
        return name in self._frames or name in self._groups()

    def columns(self, name: str, columns: Sequence[str], rows: slice | None = None) -> pd.DataFrame:
        """Only ``columns`` of stream ``name`` (rows ``rows``, default all) read from the file, not kept: what a
        long run's analysis uses so its memory holds the few columns it needs, not the whole stream."""
        with self._writer._lock:
            groups = self._groups()
            if name not in groups:
                raise KeyError(name)
            group = groups[name]
            n = min((group[c].shape[0] for c in group.attrs.get("columns", ()) if _text(c) in group), default=0)
            span = rows if rows is not None else slice(0, n)
            start, stop, _ = span.indices(n)
            return pd.DataFrame({c: _read_column_span(group[c], start, stop) for c in columns})

    def row_count(self, name: str) -> int:
        """Rows of stream ``name`` on disk (0 for a stream without rows)."""
        with self._writer._lock:
            group = self._groups().get(name)
            if group is None:
                return 0
            return min((group[_text(c)].shape[0] for c in group.attrs.get("columns", ()) if _text(c) in group),
                       default=0)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._groups()))

    def __len__(self) -> int:
        return len(self._groups())


def _h5_value(value: Any) -> Any:
    if isinstance(value, str):
        return np.array(value, dtype=_STR)
    if value is None:
        return np.array("", dtype=_STR)
    return value


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


#: units of a result from its name's suffix (longest first); a number without one of these is dimensionless, "1"
_RESULT_UNITS = {"_mA_cm2": "mA/cm^2", "_A_cm2": "A/cm^2", "_mW_cm2": "mW/cm^2", "_ohm_cm2": "ohm*cm^2",
                 "_A_W": "A/W", "_pct": "%", "_nm": "nm", "_Hz": "Hz", "_deg": "deg", "_V": "V", "_A": "A",
                 "_W": "W", "_K": "K", "_s": "s"}


def result_units(key: str) -> str:
    """The units of result ``key``: from its suffix (``voc_V`` → V), else "1" (ff, ideality, counts)."""
    return next((units for suffix, units in _RESULT_UNITS.items() if key.endswith(suffix)), "1")


def _write_tree(group: h5py.Group, tree: Mapping[str, Any]) -> None:
    for key, value in tree.items():
        if isinstance(value, Mapping):
            _write_tree(group.create_group(key), value)
        elif isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_)):
            is_count = isinstance(value, (int, np.integer))
            ds = group.create_dataset(key, data=np.int64(value) if is_count else float(value))
            ds.attrs["units"] = result_units(key)
        elif isinstance(value, (str, bool)):
            group.create_dataset(key, data=str(value), dtype=_STR)
        elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            # flags and warnings: a string array, so they show in h5web/silx beside the numbers
            group.create_dataset(key, data=list(value), dtype=_STR, shape=(len(value),))


# -- reading ----------------------------------------------------------------------------------------------------
@dataclass
class RunData:
    """A run file read back: metadata, parameters, results and one DataFrame per stream."""

    path: Path
    info: dict[str, str] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    station: dict[str, Any] = field(default_factory=dict)
    idn: dict[str, str] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    streams: dict[str, pd.DataFrame] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    segments: list[dict[str, Any]] = field(default_factory=list)
    """One dict per segment, in order: index, start, end (UTC, ISO 8601; None while it runs; for a killed
    writer its last heartbeat), status, reason, gap_s (s since the previous segment ended) and first_rows
    (stream → index of its first row in this segment). The streams hold the rows of every segment."""
    gaps: list[dict[str, Any]] = field(default_factory=list)
    """One dict per gap between two segments: start (the earlier segment's end), end (the next one's start),
    duration_s and reason (why the run was resumed; the earlier segment's status says why it stopped)."""
    #: stream → column → its description as stored (units, dtype, shape, axes, fixed axis values)
    columns: dict[str, dict[str, Column]] = field(default_factory=dict)

    def array(self, stream: str, column: str) -> np.ndarray:
        """Column ``column`` of ``stream`` as one array of shape (rows, *shape): e.g. every spectrum of a run."""
        data = self.streams[stream][column]
        shape = self.columns.get(stream, {}).get(column, Column(column)).shape
        if not shape:
            return data.to_numpy()
        return np.stack(list(data)) if len(data) else np.empty((0, *shape))

    @property
    def status(self) -> str:
        """``running``, ``completed``, ``aborted``, ``failed``, or ``interrupted``: the file still says running
        but its writer has gone (``info["heartbeat"]`` is the time of its last flush)."""
        return self.info.get("status", "unknown")


def _text(x: Any) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


def _writer_has_gone(entry: h5py.Group) -> bool:
    """:func:`writer_gone` from the attributes of ``/entry``."""
    attrs = entry.attrs
    pid = attrs.get("writer_pid")
    host = attrs.get("writer_host")
    return writer_gone(
        _text(attrs["heartbeat"]) if "heartbeat" in attrs else None,
        float(attrs.get("flush_interval_s", 1.0)),
        int(pid) if pid is not None else None,
        _text(host) if host is not None else None,
    )


def _read_column(ds: h5py.Dataset, rows: int | None = None) -> Any:
    """A stored column (its first ``rows`` rows; default all): a 1-D array, or for an N-D column a Series holding
    one array per row."""
    if h5py.check_string_dtype(ds.dtype):
        return ds.asstr()[:rows]
    values = ds[:rows]
    if values.ndim == 1:
        return values
    rows = np.empty(values.shape[0], dtype=object)
    for k in range(values.shape[0]):
        rows[k] = values[k]
    return pd.Series(rows, dtype=object)


def _read_column_span(ds: h5py.Dataset, start: int, stop: int) -> Any:
    """Rows ``start:stop`` of a scalar column: text decoded, numbers as stored."""
    if h5py.check_string_dtype(ds.dtype):
        return ds.asstr()[start:stop]
    return ds[start:stop]


def stream_columns(streams: Mapping[str, pd.DataFrame], name: str, columns: Sequence[str],
                   rows: slice | None = None) -> pd.DataFrame:
    """``columns`` of stream ``name`` from what ``analyse()`` or ``resume_from()`` gets: read from the file alone when
    ``streams`` reads a run file (:class:`StoredStreams`, :class:`FileStreams`), else taken from the DataFrame; empty
    (those columns) without the stream."""
    if isinstance(streams, (StoredStreams, FileStreams)):
        if name not in streams:
            return pd.DataFrame({c: [] for c in columns})
        return streams.columns(name, columns, rows)
    frame = streams.get(name)
    if frame is None:
        return pd.DataFrame({c: [] for c in columns})
    part = frame[list(columns)]
    return part.iloc[rows] if rows is not None else part


def stream_rows(streams: Mapping[str, pd.DataFrame], name: str) -> int:
    """Rows of stream ``name`` (without reading it from a run file)."""
    if isinstance(streams, (StoredStreams, FileStreams)):
        return streams.row_count(name)
    frame = streams.get(name)
    return 0 if frame is None else len(frame)


def _column_info(group: h5py.Group, name: str) -> Column:
    """The :class:`Column` of dataset ``group[name]``, with its fixed axis values where the group has them."""
    ds = group[name]
    attrs = ds.attrs
    axes = tuple(_text(a) for a in attrs.get("axes", ()))
    columns = {_text(c) for c in group.attrs.get("columns", ())}
    fixed = [tuple(float(x) for x in group[a][()]) if a in group and a not in columns else () for a in axes]
    while fixed and not fixed[-1]:
        fixed.pop()
    dtype = "str" if ds.dtype.kind == "O" else ds.dtype.str.lstrip("<>=|")  # vlen text, or e.g. f8, i4, S512
    return Column(name, _text(attrs.get("units", "")), dtype, tuple(int(n) for n in ds.shape[1:]), axes,
                  tuple(_text(u) for u in attrs.get("axis_units", ())), tuple(fixed))


class FileStreams(Mapping[str, pd.DataFrame]):
    """The streams of a run file read on demand: a stream as a whole when first asked for (then kept), or only some
    of its columns and rows (:meth:`columns`, not kept), or its row count — for a long run whose streams would not
    fit in memory at once (``load_run(path, lazy=True)``: what ``labctl resume`` reads)."""

    def __init__(self, path: Path, names: Sequence[str]) -> None:
        self._path = path
        self._names = list(names)
        self._frames: dict[str, pd.DataFrame] = {}

    def _group(self, f: h5py.File, name: str) -> h5py.Group:
        if name not in self._names:
            raise KeyError(name)
        return f["entry"][name]

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name not in self._frames:
            with h5py.File(self._path, "r", locking=False) as f:
                self._frames[name] = _read_stream(self._group(f, name))
        return self._frames[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._names  # without reading the stream (Mapping's default would)

    def columns(self, name: str, columns: Sequence[str], rows: slice | None = None) -> pd.DataFrame:
        """Only ``columns`` of stream ``name`` (rows ``rows``, default all), not kept."""
        with h5py.File(self._path, "r", locking=False) as f:
            group = self._group(f, name)
            start, stop, _ = (rows or slice(None)).indices(_group_rows(group))
            return pd.DataFrame({c: _read_column_span(group[c], start, stop) for c in columns})

    def row_count(self, name: str) -> int:
        """Rows of stream ``name``, without reading them."""
        if name not in self._names:
            return 0
        with h5py.File(self._path, "r", locking=False) as f:
            return _group_rows(self._group(f, name))


def _group_rows(group: h5py.Group) -> int:
    """Rows every column of a stream group has (a writer killed between two columns' writes leaves one longer)."""
    order = [_text(c) for c in group.attrs.get("columns", sorted(group)) if _text(c) in group]
    return min((group[c].shape[0] for c in order), default=0)


def load_run(path: str | Path, lazy: bool = False) -> RunData:
    """Read a run file (also one still being written or left by a crashed run) into memory.

    ``lazy``: the streams are a :class:`FileStreams` (read when asked for, or a few columns at a time) instead
    of DataFrames read at once; ``columns`` is filled either way."""
    path = Path(path)
    with h5py.File(path, "r", locking=False) as f:
        e = f["entry"]
        run = RunData(path=path)
        for key in ("run_id", "procedure", "operator", "software_version", "start_time", "end_time", "status"):
            if key in e:
                run.info[key] = _text(e[key][()])
        if "heartbeat" in e.attrs:
            run.info["heartbeat"] = _text(e.attrs["heartbeat"])
        if run.info.get("status") == RUNNING and _writer_has_gone(e):
            run.info["status"] = INTERRUPTED
        if "sample" in e and "name" in e["sample"]:
            run.info["sample"] = _text(e["sample/name"][()])
        for key in ("substrate_id", "pixel"):  # a pixel of a substrate (docs/substrates.md)
            if "sample" in e and key in e["sample"]:
                run.info[key] = _text(e["sample"][key][()])
        for name, ds in e.get("parameters", {}).items():
            value = ds[()]
            run.parameters[name] = _text(value) if isinstance(value, bytes) else np.asarray(value).item()
            if "units" in ds.attrs:
                run.units[name] = _text(ds.attrs["units"])
        if "instrument" in e:
            run.station = json.loads(_text(e["instrument/station_json"][()]))
            run.idn = {k: _text(v[()]) for k, v in e["instrument/idn"].items()}
        if "results" in e:
            run.results = json.loads(_text(e["results/results_json"][()]))
        run.events = [_text(x) for x in e["events"][()]] if "events" in e else []
        run.segments = _read_segments(e, run.info)
        run.gaps = gaps_between(run.segments)
        groups = _stream_groups(e)
        for name, group in groups:
            if not lazy:
                run.streams[name] = _read_stream(group)
            order = [_text(c) for c in group.attrs.get("columns", sorted(group)) if _text(c) in group]
            run.columns[name] = {col: _column_info(group, col) for col in order}
        if lazy:
            run.streams = FileStreams(path, [name for name, _ in groups])  # type: ignore[assignment]
        return run


def _stream_groups(entry: h5py.Group) -> list[tuple[str, h5py.Group]]:
    return [(name, group) for name, group in entry.items()
            if isinstance(group, h5py.Group) and _text(group.attrs.get("NX_class", "")) == "NXdata"]


def _read_stream(group: h5py.Group) -> pd.DataFrame:
    """One stream as stored: a DataFrame with its columns in order (an N-D column: one array per row)."""
    order = [_text(c) for c in group.attrs.get("columns", sorted(group)) if _text(c) in group]
    # a writer killed between two columns' writes can leave one column longer: the rows are those all columns have
    rows = min((group[col].shape[0] for col in order), default=0)
    return pd.DataFrame({col: _read_column(group[col], rows) for col in order})



def gaps_between(segments: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``RunData.gaps`` from ``RunData.segments``: start (the earlier segment's end), end, duration_s, reason."""
    return [{"start": before["end"], "end": after["start"], "duration_s": after["gap_s"], "reason": after["reason"]}
            for before, after in zip(segments[:-1], segments[1:], strict=True)]


def read_segments(path: str | Path) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
    """(status, segments, gaps) of a run file, as :func:`load_run` gives them, without reading its streams."""
    with h5py.File(Path(path), "r", locking=False) as f:
        e = f["entry"]
        info = {key: _text(e[key][()]) for key in ("start_time", "end_time", "status") if key in e}
        if "heartbeat" in e.attrs:
            info["heartbeat"] = _text(e.attrs["heartbeat"])
        if info.get("status") == RUNNING and _writer_has_gone(e):
            info["status"] = INTERRUPTED
        segments = _read_segments(e, info)
    return info.get("status", "unknown"), segments, gaps_between(segments)


def _read_segments(entry: h5py.Group, info: Mapping[str, str]) -> list[dict[str, Any]]:
    """``RunData.segments`` from ``/entry/segments`` (one segment for a file written before segments existed);
    the last segment takes the run's status as read (``interrupted`` for a dead writer, ended at its heartbeat)."""
    status = info.get("status", "unknown")
    if "segments" not in entry:
        return [{"index": 0, "start": info.get("start_time"), "end": info.get("end_time"), "status": status,
                 "reason": "start", "gap_s": 0.0, "first_rows": {}}]
    group = entry["segments"]
    n = min(group[name].shape[0] for name, _ in _Segments.FIELDS)
    columns = {name: group[name][:n] for name, _ in _Segments.FIELDS}
    segments = []
    for k in range(n):
        gap = float(columns["gap_s"][k])
        segments.append({
            "index": k,
            "start": _text(columns["start_time"][k]),
            "end": _text(columns["end_time"][k]) or None,
            "status": _text(columns["status"][k]),
            "reason": _text(columns["reason"][k]),
            "gap_s": None if np.isnan(gap) else gap,
            "first_rows": json.loads(_text(columns["first_rows"][k]) or "{}"),
        })
    if segments and segments[-1]["status"] == RUNNING:
        segments[-1]["status"] = status
        if status == INTERRUPTED:
            segments[-1]["end"] = info.get("heartbeat")
    return segments
