"""What ``labctl serve`` shows, polled from the catalog, the runs' status files and the tails of their run files.

:class:`Monitor` is read-only: it opens the catalog only once it exists (it never creates one), asks it with
``check_running=False`` (no row is updated), and reads status files (:func:`labctl.status.read_status`) and run files
(:class:`labctl.web.tails.RunTail`, lazily). One monitor serves every page connected to one ``labctl serve``:
:meth:`Monitor.poll` runs once per interval whatever the number of pages, and each page's events get only the
points it has not had (:meth:`Monitor.points_for`).

The page's two lists:

* ``live``: the runs of this station that the catalog calls running or interrupted, and those that ended in the
  last ``linger_s`` (so whoever watched one sees how it ended), each with its status file's values (progress, ETA,
  suspensions, recovery counts, last row of each stream, the tail of its events, ``status_extra``) and its plot;
* ``recent``: the catalog's newest runs of every station in it (a shared PostgreSQL catalog: all benches), with
  their key results and a link to their figure.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from labctl.catalog import Catalog, CatalogError, catalog_exists
from labctl.status import read_status
from labctl.storage import read_segments
from labctl.web.tails import MAX_POINTS, RunTail

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 1.0
"""Status files and run-file tails are read at most this often (s); the status files change every 2 s."""
CATALOG_INTERVAL_S = 5.0
"""The catalog is asked at most this often (s)."""
RECENT_RUNS = 50
"""Runs in the page's list of recent runs."""
LINGER_S = 600.0
"""A run of this station stays in the live list this long after it ended (s)."""
LIVE_ACTIVE = ("running", "interrupted")
#: status-file keys passed to the page (the rest — pid, host — says nothing to a person)
STATUS_KEYS = ("progress", "eta", "eta_s", "started", "ended", "status", "reason", "rows", "last", "events",
               "suspensions", "recovery", "extra", "paused", "updated", "segment")
#: result keys shown in the list of recent runs, in this order
FIGURES = ("voc_V", "jsc_mA_cm2", "ff", "pce_pct", "jsc_integrated_mA_cm2", "eqe_max", "ideality", "t80_h",
           "stabilised_pce_pct", "plqy")


def run_key(station: str, run_id: str) -> str:
    """The page's name of a run: ``<station>/<run id>`` (run ids are unique per station)."""
    return f"{station}/{run_id}"


class Monitor:
    """The state of one station's page (module docstring). Thread-safe.

    Parameters
    ----------
    catalog_url
        The station's catalog (SQLAlchemy URL: ``labctl.catalog.catalog_url``).
    station
        This station's name (``station.name``): whose runs are live.
    """

    def __init__(self, catalog_url: str, station: str, *, catalog_interval_s: float = CATALOG_INTERVAL_S,
                 recent_limit: int = RECENT_RUNS, linger_s: float = LINGER_S, max_points: int = MAX_POINTS) -> None:
        self.catalog_url = catalog_url
        self.station = station
        self.catalog_interval_s = catalog_interval_s
        self.recent_limit = recent_limit
        self.linger_s = linger_s
        self.max_points = max_points
        self.version = 0
        self.polled_at = -float("inf")  # time.monotonic() of the last poll
        self.error: str | None = None
        self._catalog: Catalog | None = None
        self._catalog_at = -float("inf")
        self._rows: list[Any] = []  # the catalog's live rows of this station (CatalogRun)
        self._recent: list[dict[str, Any]] = []
        self._live: list[dict[str, Any]] = []
        self._tails: dict[str, RunTail] = {}
        self._digest = ""
        self._lock = threading.Lock()

    # -- the catalog ----------------------------------------------------------------------------------------------
    def catalog(self) -> Catalog | None:
        """The catalog, opened once it exists (None before: a station that has not run anything yet)."""
        if self._catalog is None and catalog_exists(self.catalog_url):
            self._catalog = Catalog(self.catalog_url)
        return self._catalog

    def find(self, station: str, run_id: str) -> Any:
        """The catalog's row of a run (None if unknown)."""
        catalog = self.catalog()
        return catalog.get(station, run_id) if catalog is not None else None

    def close(self) -> None:
        if self._catalog is not None:
            self._catalog.close()

    def _ask_catalog(self) -> None:
        catalog = self.catalog()
        if catalog is None:
            self._rows, self._recent = [], []
            return
        recent = catalog.runs(newest_first=True, limit=self.recent_limit, check_running=False)
        live = {run_key(r.station, r.run_id): r for status in LIVE_ACTIVE
                for r in catalog.runs(station=self.station, status=status, newest_first=True, check_running=False)}
        since = datetime.now(timezone.utc) - timedelta(seconds=self.linger_s)
        for r in recent:
            if r.station == self.station and r.end_time is not None and r.end_time >= since:
                live.setdefault(run_key(r.station, r.run_id), r)
        self._rows = sorted(live.values(), key=lambda r: r.start_time or datetime.min.replace(tzinfo=timezone.utc),
                            reverse=True)
        self._recent = [_recent_row(r) for r in recent]
        for row in self._recent:  # a run the catalog still calls running whose writer died: as its file says
            if row["status"] == "running" and row["has_file"]:
                try:
                    row["status"] = read_segments(row["path"])[0]
                except (OSError, KeyError, ValueError):
                    pass

    # -- polling --------------------------------------------------------------------------------------------------
    def poll(self, force_catalog: bool = False) -> bool:
        """Read what changed (the catalog every ``catalog_interval_s``, status files and tails every call); True
        if the page's state or any plot changed (then :attr:`version` is one more)."""
        with self._lock:
            changed = False
            now = self.polled_at = time.monotonic()
            if force_catalog or now - self._catalog_at >= self.catalog_interval_s:
                self._catalog_at = now
                try:
                    self._ask_catalog()
                    self.error = None
                except CatalogError as exc:
                    self.error = str(exc)
            live = []
            keep = set()
            for row in self._rows:
                key = run_key(row.station, row.run_id)
                keep.add(key)
                entry = self._live_entry(key, row)
                tail = self._tail(key, row.path)
                if tail is not None:
                    try:
                        changed |= tail.update()
                    except (OSError, KeyError, ValueError) as exc:  # a file being created, or gone
                        entry["plot_error"] = f"{type(exc).__name__}: {exc}"
                    if tail.spec is not None:
                        entry.update(plot=tail.spec.to_json(), labels=dict(tail.labels),
                                     interruptions=list(tail.interruptions), plotted_rows=tail.rows_read)
                live.append(entry)
            for key in set(self._tails) - keep:
                del self._tails[key]
            self._live = live
            digest = hashlib.sha1(json.dumps([live, self._recent, self.error], sort_keys=True,
                                             default=str).encode()).hexdigest()
            if digest != self._digest:
                self._digest, changed = digest, True
            if changed:
                self.version += 1
            return changed

    def _tail(self, key: str, path: str) -> RunTail | None:
        if key not in self._tails:
            if not path or not Path(path).is_file():
                return None
            self._tails[key] = RunTail(path, self.max_points)
        return self._tails[key]

    def _live_entry(self, key: str, row: Any) -> dict[str, Any]:
        entry = _recent_row(row)
        entry["key"] = key
        entry["path"] = row.path
        status = read_status(row.path) if row.path else None
        if status is not None:
            entry.update({k: status[k] for k in STATUS_KEYS if k in status})
            if row.status == "interrupted":
                entry["status"] = "interrupted"
        elif row.status == "running" and row.path and Path(row.path).is_file():
            try:
                entry["status"] = read_segments(row.path)[0]  # a dead writer's file says interrupted
            except (OSError, KeyError, ValueError):
                pass
        return entry

    # -- what a page gets -----------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """The page's lists (without plot points): ``station``, ``live``, ``recent``, ``error``."""
        with self._lock:
            return {"station": self.station, "live": list(self._live), "recent": list(self._recent),
                    "error": self.error, "version": self.version}

    def points_for(self, sent: dict[str, int]) -> dict[str, list[list[Any]]]:
        """The plot points of each live run after the last row a page has (``sent``: key → row, updated here);
        a run the page has not seen gets all its kept points."""
        with self._lock:
            tails = dict(self._tails)
        out = {}
        for key, tail in tails.items():
            points = tail.points_after(sent.get(key, -1))
            if points:
                out[key] = points
                sent[key] = points[-1][0]
        for key in set(sent) - set(tails):
            del sent[key]
        return out


def _recent_row(run: Any) -> dict[str, Any]:
    """A catalog row as the page lists it: who, what, when, status, key figures."""
    results = run.results or {}
    figures = {k: results[k] for k in FIGURES if isinstance(results.get(k), int | float)
               and not isinstance(results.get(k), bool)}
    return {"key": run_key(run.station, run.run_id), "station": run.station, "run_id": run.run_id,
            "procedure": run.procedure, "sample": run.sample, "pixel": run.pixel, "substrate_id": run.substrate_id,
            "operator": run.operator, "status": run.status, "reason": run.reason,
            "start_time": run.start_time.isoformat() if run.start_time else None,
            "end_time": run.end_time.isoformat() if run.end_time else None,
            "figures": figures, "direction": results.get("direction"), "path": run.path,
            "has_file": bool(run.path) and Path(run.path).is_file()}  # its figure can be drawn here
