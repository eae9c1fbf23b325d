"""The status file of a run (``<run file>.status.json``) and what ``labctl status`` shows of a station's runs.

:class:`StatusWriter` is a document subscriber the engine adds to every run. It keeps, in bounded memory, what a
person (or a monitoring script) wants to know about a long run — run id, procedure, sample, status, start time,
progress and ETA, the last row of each stream (its scalar columns), the number of rows, the suspensions (current and
total), the recovery counts, the tail of the events and ``procedure.status_extra()`` — and writes it atomically
(a temporary file renamed over the old one, so a reader never sees half a file) at most every
:data:`STATUS_INTERVAL_S` of wall time, on a change of suspension and at the stop document.

:func:`station_runs` is ``labctl status``: the runs of one station that the catalog calls running or interrupted,
each with its status file when there is one; a status file that says ``running`` while its writer's process is
gone (same host) says ``interrupted``, and the rows and last values of an interrupted run are read from its file.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from labctl.documents import EVENT, LOG, PROGRESS, START, STOP
from labctl.storage import _pid_alive, utc_now_iso, writer_identity

STATUS_INTERVAL_S = 2.0
"""The status file is rewritten at most this often (s, wall), and at the end of the run."""
EVENTS_TAIL = 10
"""Log lines kept in the status file."""
SUFFIX = ".status.json"


def status_path(run_path: str | Path) -> Path:
    """``<run file>.status.json`` beside the run file."""
    run_path = Path(run_path)
    return run_path.with_name(run_path.name + SUFFIX)


def _jsonable(value: Any) -> Any:
    """A scalar as JSON takes it (NaN/inf → None); None for anything that is not a scalar."""
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        value = value.item()
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return None


def _is_scalar(value: Any) -> bool:
    if hasattr(value, "shape"):
        return getattr(value, "shape", None) == ()
    return isinstance(value, bool | int | float | str) or value is None


def write_atomically(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file in the same folder and ``os.replace``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)


class StatusWriter:
    """A document subscriber writing the run's status file (module docstring).

    Parameters
    ----------
    extra
        Called at each write for further keys (the engine's: suspensions, recovery counts and
        ``procedure.status_extra()`` under ``"extra"``); an exception there is recorded, not raised.
    interval_s
        Least wall time between two writes (s).
    """

    def __init__(self, extra: Callable[[], Mapping[str, Any]] | None = None,
                 interval_s: float = STATUS_INTERVAL_S) -> None:
        self.extra = extra or (lambda: {})
        self.interval_s = interval_s
        self.path: Path | None = None
        self.state: dict[str, Any] = {}
        self._last_rows: dict[str, dict[str, Any]] = {}
        self._rows: dict[str, int] = {}
        self._events: deque[str] = deque(maxlen=EVENTS_TAIL)
        self._written_at = -math.inf
        self._t0 = time.monotonic()
        self._f0: float | None = None
        self._lock = threading.RLock()  # documents may come from the watchdog's or the alerts' thread too

    def __call__(self, name: str, doc: Any) -> None:
        if name == START:
            self.path = status_path(doc.path)
            self._t0 = time.monotonic()
            self.state = {"run_id": doc.run_id, "procedure": doc.procedure, "sample": doc.sample,
                          "station": doc.station_name, "path": str(doc.path), "segment": doc.segment,
                          "status": "running", "started": doc.time, "progress": None, "eta": None,
                          "eta_s": None, "pid": os.getpid(), "host": writer_identity()}
            self.write(force=True)
            return
        if self.path is None:
            return
        if name == EVENT:
            self._rows[doc.stream] = int(doc.seq_num)
            self._last_rows[doc.stream] = {k: _jsonable(v) for k, v in doc.data.items() if _is_scalar(v)}
        elif name == PROGRESS:
            self._progress(float(doc.fraction))
        elif name == LOG:
            self._events.append(f"{doc.time} {doc.message}"[:300])
        elif name == STOP:
            self.state.update(status=doc.status, reason=doc.reason, ended=doc.time, eta=None, eta_s=None)
            self.write(force=True)
            return
        self.write()

    def _progress(self, fraction: float) -> None:
        if self._f0 is None:
            self._f0 = fraction
            self._t0 = time.monotonic()
        self.state["progress"] = fraction
        done = fraction - self._f0
        if done > 0:
            eta_s = (time.monotonic() - self._t0) / done * (1.0 - fraction)
            self.state["eta_s"] = eta_s
            self.state["eta"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + eta_s))

    def write(self, force: bool = False) -> None:
        """Write the file now (``force``) or if ``interval_s`` has passed since the last write."""
        now = time.monotonic()
        if self.path is None or (not force and now - self._written_at < self.interval_s):
            return
        with self._lock:
            self._written_at = now
            data = dict(self.state)
            data.update(updated=utc_now_iso(), rows=dict(self._rows), last=dict(self._last_rows),
                        events=list(self._events))
            try:
                data.update(self.extra())
            except Exception as exc:  # noqa: BLE001 - the status must not end the run
                data["extra_error"] = f"{type(exc).__name__}: {exc}"
            write_atomically(self.path, data)


def read_status(run_path: str | Path) -> dict[str, Any] | None:
    """The status file of a run (None if there is none or it cannot be read); ``status`` becomes ``interrupted``
    when it says ``running`` and its writer's process is gone (checked on this host only)."""
    path = status_path(run_path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if data.get("status") == "running" and data.get("host") == writer_identity() and os.name == "posix":
        pid = data.get("pid")
        if isinstance(pid, int) and not _pid_alive(pid):
            data["status"] = "interrupted"
    return data


def _stored_rows(path: str | Path) -> dict[str, Any]:
    """``rows`` and ``last`` (scalars of the last row of each stream) from the run file itself: for a run whose
    writer died, what was flushed is the truth (its status file may be up to one interval older)."""
    from labctl.storage import load_run

    try:
        run = load_run(path)
    except (OSError, KeyError, ValueError):
        return {}
    last = {}
    for name, frame in run.streams.items():
        if len(frame):
            last[name] = {k: _jsonable(v) for k, v in frame.iloc[-1].items() if _is_scalar(v)}
    return {"rows": {name: len(frame) for name, frame in run.streams.items() if len(frame)}, "last": last}


def station_runs(catalog: Any, station: str) -> list[dict[str, Any]]:
    """``labctl status``: the runs of ``station`` that the catalog calls running or interrupted (newest first),
    each as a dict: the catalog's fields, updated by the run's status file when there is one."""
    out = []
    for run in catalog.runs(station=station, newest_first=True):
        if run.status not in ("running", "interrupted"):
            continue
        row = run.to_json()
        status = read_status(run.path) if run.path else None
        if status is not None:
            catalog_status = row["status"]
            row.update(status)
            if catalog_status == "interrupted":
                row["status"] = "interrupted"
        if row["status"] == "interrupted":
            row.update(_stored_rows(run.path))
        out.append(row)
    return out
