"""A bounded live view of a run for GUIs and monitors: a document subscriber (labctl.documents).

:class:`LiveBuffer` keeps, per stream, at most ``max_rows`` rows however long the run: when a stream's buffer is
full, its older half is decimated (every other row dropped), so the newest rows stay at full resolution and
older ones get sparser the older they are, while the first row of the run stays. The run's whole extent is
always on the plot, and memory does not grow with the run (the run file has every row).

Subscribe it with ``RunEngine(..., subscribers=[buffer])``; read it from any thread (e.g. a GUI timer) with
:meth:`LiveBuffer.frame`.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping
from typing import Any

import pandas as pd

from labctl.documents import DESCRIPTOR, EVENT, LOG, PROGRESS, START, STOP

DEFAULT_MAX_ROWS = 2000
"""Rows kept per stream: enough for a smooth line on a full-HD plot."""
DEFAULT_MAX_LOG_LINES = 200


class _DecimatedRows:
    """At most ``max_rows`` (seq_num, data) rows; a full buffer keeps every other row of its older half."""

    def __init__(self, max_rows: int) -> None:
        self.max_rows = max_rows
        self.rows: list[tuple[int, Mapping[str, Any]]] = []

    def add(self, seq_num: int, data: Mapping[str, Any]) -> None:
        if len(self.rows) >= self.max_rows:
            half = self.max_rows // 2
            self.rows = self.rows[:half:2] + self.rows[half:]
        self.rows.append((seq_num, data))


class LiveBuffer:
    """Document subscriber: a bounded, decimated copy of each stream of the current run, plus its last log lines,
    its progress (0-1) and its status.

    Parameters
    ----------
    max_rows
        Rows kept per stream (at least 4).
    max_log_lines
        Log lines kept (the newest).
    """

    def __init__(self, max_rows: int = DEFAULT_MAX_ROWS, max_log_lines: int = DEFAULT_MAX_LOG_LINES) -> None:
        if max_rows < 4:
            raise ValueError(f"LiveBuffer max_rows = {max_rows}: must be at least 4")
        self.max_rows = max_rows
        self._lock = threading.Lock()
        self._streams: dict[str, _DecimatedRows] = {}
        self._columns: dict[str, list[str]] = {}
        self.log_lines: deque[str] = deque(maxlen=max_log_lines)
        self.run_id = ""
        self.progress = 0.0
        self.status = ""
        self.received: dict[str, int] = {}  # events received per stream (all of them, not only those kept)

    def __call__(self, name: str, doc: Any) -> None:
        with self._lock:
            if name == START:
                self._streams, self._columns, self.received = {}, {}, {}
                self.log_lines.clear()
                self.run_id, self.progress, self.status = doc.run_id, 0.0, "running"
            elif name == DESCRIPTOR:
                self._streams[doc.stream] = _DecimatedRows(self.max_rows)
                self._columns[doc.stream] = [c.name for c in doc.columns]
                self.received[doc.stream] = 0
            elif name == EVENT:
                self._streams.setdefault(doc.stream, _DecimatedRows(self.max_rows)).add(doc.seq_num, doc.data)
                self.received[doc.stream] = self.received.get(doc.stream, 0) + 1
            elif name == LOG:
                self.log_lines.append(doc.message)
            elif name == PROGRESS:
                self.progress = doc.fraction
            elif name == STOP:
                self.status = doc.status

    def streams(self) -> list[str]:
        with self._lock:
            return list(self._streams)

    def frame(self, stream: str) -> pd.DataFrame:
        """The kept rows of ``stream`` (a copy, safe to plot from another thread): ``seq_num`` (1, 2, ... the
        row's number in the run) then the stream's columns."""
        with self._lock:
            rows = list(self._streams[stream].rows) if stream in self._streams else []
            columns = self._columns.get(stream, [])
        frame = pd.DataFrame([dict(data) for _, data in rows], columns=columns or None)
        frame.insert(0, "seq_num", [seq for seq, _ in rows])
        return frame
