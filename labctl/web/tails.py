"""The live plot of a running run, read from the tail of its run file: bounded, decimated, sent as deltas.

:class:`RunTail` follows one stream of one run file (read lazily: :func:`labctl.storage.load_run` with
``lazy=True``, then only the new rows of two or three columns at each :meth:`RunTail.update`). It keeps at most
``max_points`` points: when full, its older half is thinned (every other point dropped), as
:class:`labctl.live.LiveBuffer` does, so the newest points stay at full resolution, the whole run stays on the plot
and memory does not grow with the run. A first read of a long run (a 600 h hold has 216 000 rows at one per 10 s)
is taken in chunks of :data:`READ_CHUNK_ROWS` rows with a stride, never a whole column at once.

Each point is ``[row, x, y, series]`` (``row``: the row's index in the stream, so a client asks for the points after
the last row it has — :meth:`RunTail.points_after` — and an update never resends what it sent before).

What is plotted per procedure is :func:`plot_spec`: the J–V as J against V per scan (its direction named), EQE
against wavelength, the stability runs' PCE (``mpp``) or Voc/J (``hold``) against stress time in hours with their
interruptions shaded, Voc against suns (log axis); any other procedure gets its first stream's NeXus signal
against its axis.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labctl.storage import FileStreams, load_run, stream_columns, stream_rows

MAX_POINTS = 4000
"""Points kept per live plot (server and page): enough for a smooth line across a full-HD plot."""
READ_CHUNK_ROWS = 65536
"""Rows read from a run file at once (per column) when catching up on a long run."""
INTERRUPTIONS = "interruptions"


@dataclass(frozen=True)
class PlotSpec:
    """What the live plot of a run draws: ``y`` against ``x`` of ``stream`` (x multiplied by ``x_scale``), one
    line per value of ``series`` (None: one line), each line named by ``series_names[label_column value]``."""

    stream: str
    x: str
    y: str
    x_label: str
    y_label: str
    series: str | None = None
    label_column: str | None = None
    series_names: Mapping[int, str] = field(default_factory=dict)
    x_scale: float = 1.0
    x_log: bool = False
    shade_interruptions: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"stream": self.stream, "x": self.x, "y": self.y, "x_label": self.x_label, "y_label": self.y_label,
                "x_log": self.x_log, "series": self.series, "x_hours": self.x_scale == 1 / 3600}


_DIRECTIONS = {0: "reverse", 1: "forward"}  # procedures.jv.DIRECTION_NAMES (labctl imports no procedures here)
KNOWN = ("jv", "mpp", "hold", "eqe", "voc-intensity")
"""Procedures with a plot of their own in :func:`plot_spec` (the others: their first stream's NeXus signal)."""


def plot_spec(procedure: str, parameters: Mapping[str, Any], columns: Mapping[str, Mapping[str, Any]],
              signals: Mapping[str, tuple[str, str]] | None = None) -> PlotSpec | None:
    """The live plot of a run of ``procedure`` (its ``parameters`` as stored), given the stored ``columns``
    (stream → column → :class:`labctl.documents.Column`, ``RunData.columns``) and the streams' NeXus
    ``signals`` (stream → (signal, axes)); None when the file has no stream to plot (yet)."""

    def units(stream: str, column: str) -> str:
        col = columns.get(stream, {}).get(column)
        unit = getattr(col, "units", "") if col is not None else ""
        return f"{column} ({unit})" if unit else column

    def have(stream: str, *names: str) -> bool:
        return stream in columns and all(n in columns[stream] for n in names)

    if procedure == "jv" and have("jv", "voltage_V", "j_mA_cm2", "scan"):
        return PlotSpec("jv", "voltage_V", "j_mA_cm2", "V (V)", "J (mA/cm²)", series="scan",
                        label_column="direction" if have("jv", "direction") else None, series_names=_DIRECTIONS)
    if procedure == "mpp" and have("mpp", "time_s", "pce_pct"):
        return PlotSpec("mpp", "time_s", "pce_pct", "stress time (h)", "PCE (%)", x_scale=1 / 3600,
                        shade_interruptions=True)
    if procedure == "hold" and have("hold", "time_s", "voltage_V", "j_mA_cm2"):
        at_oc = str(parameters.get("bias", "oc")).strip().lower() == "oc"
        y, label = ("voltage_V", "Voc (V)") if at_oc else ("j_mA_cm2", "J (mA/cm²)")
        return PlotSpec("hold", "time_s", y, "stress time (h)", label, x_scale=1 / 3600, shade_interruptions=True)
    if procedure == "eqe" and have("eqe", "wavelength_nm", "eqe"):
        return PlotSpec("eqe", "wavelength_nm", "eqe", "wavelength (nm)", "EQE")
    if procedure == "voc-intensity" and have("voc", "suns", "voc_V"):
        return PlotSpec("voc", "suns", "voc_V", "intensity (suns)", "Voc (V)", x_log=True)
    if procedure in KNOWN:
        return None  # its stream is not in the file yet (an mpp's periodic J–V comes first): not another one
    for stream, (signal, axes) in (signals or {}).items():
        if have(stream, signal, axes) and _scalar(columns[stream][signal]) and _scalar(columns[stream][axes]):
            return PlotSpec(stream, axes, signal, units(stream, axes), units(stream, signal))
    return None


def _scalar(column: Any) -> bool:
    """A column of one number per row (not text, not a spectrum)."""
    dtype = str(getattr(column, "dtype", "f8"))
    return not getattr(column, "shape", ()) and dtype[:1] in ("f", "i", "u")


def _number(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


class RunTail:
    """The bounded, decimated live plot of one run file (module docstring). Thread-safe.

    Parameters
    ----------
    path
        The run file (being written, or finished).
    max_points
        Points kept (at least 4).
    """

    def __init__(self, path: str | Path, max_points: int = MAX_POINTS) -> None:
        if max_points < 4:
            raise ValueError(f"RunTail max_points = {max_points}: must be at least 4")
        self.path = Path(path)
        self.max_points = max_points
        self.spec: PlotSpec | None = None
        self.rows_read = 0
        self.labels: dict[str, str] = {}
        self.interruptions: list[list[Any]] = []
        self._interruption_rows = 0
        self._points: list[list[Any]] = []
        self._rows: list[int] = []  # the points' row indices (ascending), for points_after
        self._streams: Any = None
        self._lock = threading.Lock()
        self.reads = 0  # column reads from the file (for tests: a caught-up tail reads nothing)

    def _open(self) -> None:
        run = load_run(self.path, lazy=True)
        signals = _signals(self.path)
        self.spec = plot_spec(run.info.get("procedure", ""), run.parameters, run.columns, signals)
        if self.spec is not None:
            self._streams = run.streams

    def update(self) -> bool:
        """Read the rows written since the last update (only the plotted columns); True if there were any."""
        with self._lock:
            if self.spec is None:
                self._open()  # a run that has not described its streams yet: try again next time
                if self.spec is None:
                    return False
            spec, streams = self.spec, self._streams
            total = stream_rows(streams, spec.stream)
            changed = self._shade(streams) if spec.shade_interruptions else False
            if total <= self.rows_read:
                return changed
            stride = max(1, math.ceil((total - self.rows_read) / self.max_points))
            wanted = [c for c in (spec.x, spec.y, spec.series, spec.label_column) if c]
            start = self.rows_read
            while start < total:
                stop = min(total, start + READ_CHUNK_ROWS)
                part = stream_columns(streams, spec.stream, wanted, slice(start, stop))
                self.reads += 1
                offsets = np.arange(0, stop - start, stride)
                self._add(spec, part, start, offsets)
                # the next chunk continues the stride where this one left it
                start = start + (int(offsets[-1]) + stride if len(offsets) else stop - start)
            self.rows_read = total
            return True

    def _add(self, spec: PlotSpec, part: Any, first_row: int, offsets: np.ndarray) -> None:
        x = np.asarray(part[spec.x], dtype=float)[offsets] * spec.x_scale
        y = np.asarray(part[spec.y], dtype=float)[offsets]
        series = np.asarray(part[spec.series])[offsets] if spec.series else np.zeros(len(offsets), dtype=int)
        if spec.label_column:
            for s, label in zip(series, np.asarray(part[spec.label_column])[offsets], strict=True):
                key = str(int(s))
                if key not in self.labels:
                    self.labels[key] = f"{spec.series} {int(s) + 1} ({spec.series_names.get(int(label), label)})"
        for k, offset in enumerate(offsets):
            if len(self._points) >= self.max_points:
                half = self.max_points // 2
                self._points = self._points[:half:2] + self._points[half:]
                self._rows = self._rows[:half:2] + self._rows[half:]
            row = first_row + int(offset)
            self._points.append([row, _number(x[k]), _number(y[k]), int(series[k])])
            self._rows.append(row)

    def _shade(self, streams: Any) -> bool:
        """Read the interruptions stream when it has grown: [[start, end, kind], ...] in the plot's x units."""
        if INTERRUPTIONS not in streams:  # written at the first interruption: the file's stream list grows
            if not _has_stream(self.path, INTERRUPTIONS):
                return False
            self._streams = streams = FileStreams(self.path, [*streams, INTERRUPTIONS])
        rows = stream_rows(streams, INTERRUPTIONS)
        if rows <= self._interruption_rows:
            return False
        part = stream_columns(streams, INTERRUPTIONS, ["kind", "start_s", "end_s"])
        scale = self.spec.x_scale if self.spec else 1.0
        self.interruptions = [[_number(float(s) * scale), _number(float(e) * scale), str(k)]
                              for k, s, e in zip(part["kind"], part["start_s"], part["end_s"], strict=True)
                              if float(e) > float(s)]
        self._interruption_rows = rows
        return True

    def points_after(self, row: int) -> list[list[Any]]:
        """The kept points whose row is after ``row`` (-1: all of them), oldest first."""
        with self._lock:
            k = bisect.bisect_right(self._rows, row)
            return [list(p) for p in self._points[k:]]

    def __len__(self) -> int:
        with self._lock:
            return len(self._points)


def _signals(path: Path) -> dict[str, tuple[str, str]]:
    """Each stream's NeXus ``@signal`` and ``@axes``, the file's default stream first."""
    import h5py

    out: dict[str, tuple[str, str]] = {}
    with h5py.File(path, "r", locking=False) as f:
        entry = f["entry"]
        names = list(entry)
        default = _text(entry.attrs.get("default", ""))
        if default in names:
            names.remove(default)
            names.insert(0, default)
        for name in names:
            group = entry[name]
            if isinstance(group, h5py.Group) and "signal" in group.attrs and "axes" in group.attrs:
                axes = group.attrs["axes"]
                axes = axes[0] if isinstance(axes, np.ndarray | list | tuple) and len(axes) else axes
                out[name] = (_text(group.attrs["signal"]), _text(axes))
    return out


def _has_stream(path: Path, name: str) -> bool:
    """Whether the run file has stream ``name`` now (an NXdata group)."""
    import h5py

    with h5py.File(path, "r", locking=False) as f:
        group = f["entry"].get(name)
        return isinstance(group, h5py.Group) and _text(group.attrs.get("NX_class", "")) == "NXdata"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
