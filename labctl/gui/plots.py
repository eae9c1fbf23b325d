"""Live plots per procedure, drawn with pyqtgraph from a :class:`labctl.live.LiveBuffer`.

Each plot is a widget with ``update_from(buffer)``: it reads the buffer's kept rows (at most ``max_rows`` per
stream, decimated in time, so a redraw costs the same at hour 1 and hour 600) and replaces its curves' data. It
never reads the run file. :func:`live_plot_for` picks the plot of a procedure by its ``NAME``:

* ``jv``: J against V, one curve per scan, reverse and forward in their own colours;
* ``eqe``: EQE (%) against wavelength; ``eqe-calibration``: beam power (log) per reference detector;
* ``voc-intensity``: Voc against intensity (log axis = ln Φ), up and down passes, with the ideality n of a live
  straight-line fit of Voc against ln Φ (n = slope / (kT/q));
* ``plqy``: the newest analyser spectrum around the modulation frequency, and the PL line against laser power;
* ``hold``, ``mpp``: PCE, Voc, Jsc and FF against stress time (h), from the run's own stream and its periodic
  J–V figures, suspensions and recoveries shaded;
* anything else: each stream's signal against its axis (the procedure's ``STREAMS``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pyqtgraph as pg
from qtpy import QtCore, QtWidgets

from labctl.live import LiveBuffer

#: the constant of kT/q (V/K), as labctl.analysis.sdm.thermal_voltage_V uses it
_K_OVER_Q_V_K = 1.380649e-23 / 1.602176634e-19
_DIRECTION_PENS = {0: "#c0392b", 1: "#2471a3"}  # reverse red, forward blue
_DIRECTION_NAMES = {0: "reverse", 1: "forward"}
_MAX_SHADED = 200
"""Interruption bands drawn at most (the newest); a run with more has them all in its file and its PNG."""


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    return frame[name].to_numpy(dtype=float) if name in frame.columns else np.array([], dtype=float)


class LivePlot(QtWidgets.QWidget):
    """Base: a widget of one or more pyqtgraph plots; subclasses implement :meth:`draw`.

    Attributes
    ----------
    curves : dict[str, pyqtgraph.PlotDataItem]
        The curves by name (e.g. ``"scan 1: reverse"``), for tests and for people.
    redraw_times_s : list[float]
        Wall time of the last redraws (s), newest last, at most 1000.
    """

    title = ""

    def __init__(self, procedure_cls: Any = None, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.procedure_cls = procedure_cls
        self.layout_ = QtWidgets.QVBoxLayout(self)
        self.layout_.setContentsMargins(0, 0, 0, 0)
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("w")
        self.layout_.addWidget(self.graphics)
        self.curves: dict[str, pg.PlotDataItem] = {}
        self.redraw_times_s: list[float] = []
        self._seen: dict[str, int] = {}
        self.setup()

    def setup(self) -> None:
        """Make the plots (called once)."""

    def add_plot(self, row: int, title: str, x: str, y: str, *, log_x: bool = False, log_y: bool = False,
                 legend: bool = False) -> pg.PlotItem:
        plot = self.graphics.addPlot(row=row, col=0, title=title)
        plot.setLabel("bottom", x)
        plot.setLabel("left", y)
        plot.showGrid(x=True, y=True, alpha=0.25)
        plot.setLogMode(x=log_x, y=log_y)
        if legend:
            plot.addLegend(offset=(-10, 10))
        return plot

    def curve(self, plot: pg.PlotItem, name: str, **style: Any) -> pg.PlotDataItem:
        """The curve ``name`` on ``plot``, made on first use."""
        if name not in self.curves:
            self.curves[name] = plot.plot([], [], name=name, **style)
        return self.curves[name]

    def clear(self) -> None:
        """Forget the previous run's curves (a new run starts)."""
        for item in self.curves.values():
            item.setData([], [])
        self._seen = {}

    def update_from(self, buffer: LiveBuffer, force: bool = False) -> bool:
        """Redraw from ``buffer`` if it received rows since the last redraw (or ``force``); whether it redrew."""
        received = dict(buffer.received)
        if not force and received == self._seen:
            return False
        self._seen = received
        start = time.perf_counter()
        self.draw(buffer)
        self.redraw_times_s.append(time.perf_counter() - start)
        del self.redraw_times_s[:-1000]
        return True

    def draw(self, buffer: LiveBuffer) -> None:
        raise NotImplementedError


class DefaultPlot(LivePlot):
    """Each stream of the procedure with rows: its signal against its axis."""

    def setup(self) -> None:
        self.plots: dict[str, pg.PlotItem] = {}

    def draw(self, buffer: LiveBuffer) -> None:
        streams: Mapping[str, Any] = getattr(self.procedure_cls, "STREAMS", {}) or {}
        for name in buffer.streams():
            spec = streams.get(name)
            if spec is None or buffer.received.get(name, 0) == 0:
                continue
            frame = buffer.frame(name)
            try:
                x, y = _column(frame, spec.axes), _column(frame, spec.signal)
            except (ValueError, TypeError):  # a text or N-D column: not drawn live
                continue
            if name not in self.plots:
                self.plots[name] = self.add_plot(len(self.plots), name, spec.axes, spec.signal)
            self.curve(self.plots[name], name, pen=pg.mkPen("#2471a3", width=1.5), symbol="o", symbolSize=3,
                       symbolBrush="#2471a3").setData(x, y)


class JVPlot(LivePlot):
    """J against V per scan: reverse red and solid, forward blue and dashed (a dark J–V: |J| on a log axis); a light
    J–V is shown on its power quadrant (J from -0.3 to 1.15 times its largest), as ``labctl plot`` shows it."""

    title = "J–V"

    def setup(self) -> None:
        self.plot = self.add_plot(0, "J–V", "Voltage (V)", "J (mA/cm²), photocurrent positive", legend=True)
        self.plot.addLine(y=0, pen=pg.mkPen("#999999"))
        self.plot.addLine(x=0, pen=pg.mkPen("#999999"))
        self.dark = False
        self.qss = False

    def set_mode(self, dark: bool, qss: bool) -> None:
        """A dark J–V (|J| on a log axis) and/or a quasi-steady-state one (its points, measured out of order, drawn
        in voltage order, as ``labctl plot`` draws them)."""
        self.set_dark(dark)
        self.qss = qss

    def set_dark(self, dark: bool) -> None:
        self.dark = dark
        self.plot.setLogMode(y=dark)
        self.plot.setLabel("left", "|J| (mA/cm²), dark" if dark else "J (mA/cm²), photocurrent positive")

    def draw(self, buffer: LiveBuffer) -> None:
        frame = buffer.frame("jv")
        if frame.empty:
            return
        for (scan, direction), group in frame.groupby(["scan", "direction"], sort=True):
            name = f"scan {int(scan)}: {_DIRECTION_NAMES.get(int(direction), str(direction))}"
            style = QtCore.Qt.PenStyle.DashLine if int(direction) == 1 else QtCore.Qt.PenStyle.SolidLine
            pen = pg.mkPen(_DIRECTION_PENS.get(int(direction), "#555555"), width=1.5, style=style)
            if self.qss:
                group = group.sort_values("voltage_V", kind="stable")
            v, j = group["voltage_V"].to_numpy(float), group["j_mA_cm2"].to_numpy(float)
            if self.dark:
                keep = j != 0
                v, j = v[keep], np.abs(j[keep])
            self.curve(self.plot, name, pen=pen, symbol="o", symbolSize=3,
                       symbolBrush=_DIRECTION_PENS.get(int(direction), "#555555"), symbolPen=None).setData(v, j)
        if not self.dark:  # the power quadrant and the start of injection, as labctl plot draws it
            v_all, j_all = frame["voltage_V"].to_numpy(float), frame["j_mA_cm2"].to_numpy(float)
            j_max = float(np.nanmax(j_all)) if np.isfinite(j_all).any() else 0.0
            if j_max > 0:
                low = -0.3 * j_max
                shown = v_all[j_all >= low]
                v_lo = float(np.nanmin(v_all))
                v_hi = float(shown.max()) if shown.size else float(np.nanmax(v_all))
                self.plot.setRange(xRange=(v_lo, v_hi), yRange=(low, 1.15 * j_max), padding=0.03)


class EQEPlot(LivePlot):
    title = "EQE"

    def setup(self) -> None:
        self.plot = self.add_plot(0, "EQE", "Wavelength (nm)", "EQE (%)")

    def draw(self, buffer: LiveBuffer) -> None:
        frame = buffer.frame("eqe")
        self.curve(self.plot, "EQE", pen=pg.mkPen("#2471a3", width=1.5), symbol="o", symbolSize=3,
                   symbolBrush="#2471a3").setData(_column(frame, "wavelength_nm"), 100 * _column(frame, "eqe"))


class BeamPowerPlot(LivePlot):
    title = "EQE calibration"

    def setup(self) -> None:
        self.plot = self.add_plot(0, "Beam power per reference detector", "Wavelength (nm)", "Beam power (µW)",
                                  log_y=True, legend=True)

    def draw(self, buffer: LiveBuffer) -> None:
        frame = buffer.frame("calibration")
        if frame.empty or "detector" not in frame.columns:
            return
        colours = ["#2471a3", "#c0392b", "#27ae60", "#8e44ad"]
        for k, (detector, group) in enumerate(frame.groupby("detector", sort=True)):
            power = 1e6 * group["beam_power_W"].to_numpy(float)
            keep = power > 0
            self.curve(self.plot, f"reference {detector}", pen=pg.mkPen(colours[k % 4], width=1.5)).setData(
                group["wavelength_nm"].to_numpy(float)[keep], power[keep])


def ideality_from_voc(suns: np.ndarray, voc_V: np.ndarray, temperature_K: float) -> float | None:
    """n of the straight line Voc = a + n·(kT/q)·ln Φ through the points (least squares); None with < 2 points
    or a single intensity."""
    keep = np.isfinite(suns) & np.isfinite(voc_V) & (suns > 0)
    if keep.sum() < 2 or np.ptp(np.log(suns[keep])) == 0:
        return None
    slope = np.polyfit(np.log(suns[keep]), voc_V[keep], 1)[0]
    return float(slope / (_K_OVER_Q_V_K * temperature_K))


class VocIntensityPlot(LivePlot):
    """Voc against suns-equivalent intensity on a log axis (= ln Φ), with n of a live fit."""

    title = "Voc vs ln Φ"

    def setup(self) -> None:
        self.plot = self.add_plot(0, "Voc vs ln Φ", "Intensity (suns, log axis = ln Φ)", "Voc (V)", log_x=True,
                                  legend=True)
        self.n_live: float | None = None

    def draw(self, buffer: LiveBuffer) -> None:
        frame = buffer.frame("voc")
        if frame.empty:
            return
        for direction, colour in (("up", "#2471a3"), ("down", "#c0392b")):
            sel = frame[frame["direction"].astype(str) == direction]
            self.curve(self.plot, f"Voc, {direction}", pen=None, symbol="o", symbolSize=6,
                       symbolBrush=colour).setData(_column(sel, "suns"), _column(sel, "voc_V"))
        temperature = _column(frame, "temperature_K")
        t_k = float(np.nanmedian(temperature)) if temperature.size and np.isfinite(temperature).any() else 298.15
        first = frame[frame["direction"].astype(str) == str(frame["direction"].iloc[0])]
        suns, voc = _column(first, "suns"), _column(first, "voc_V")
        self.n_live = ideality_from_voc(suns, voc, t_k)
        if self.n_live is not None:
            keep = np.isfinite(suns) & (suns > 0)
            slope = self.n_live * _K_OVER_Q_V_K * t_k
            intercept = float(np.mean(voc[keep] - slope * np.log(suns[keep])))
            grid = np.geomspace(float(suns[keep].min()), float(suns[keep].max()), 20)
            self.curve(self.plot, "fit", pen=pg.mkPen("#333333", width=1, style=QtCore.Qt.PenStyle.DashLine)
                       ).setData(grid, intercept + slope * np.log(grid))
            self.plot.setTitle(f"Voc vs ln Φ — live fit n = {self.n_live:.2f} (T = {t_k:.1f} K)")


class PLQYPlot(LivePlot):
    """The newest analyser spectrum, and the PL line against laser power."""

    title = "PLQY"

    def setup(self) -> None:
        self.spectrum = self.add_plot(0, "Analyser spectrum (newest)", "Frequency (Hz)", "Level (dBm)")
        self.line = self.add_plot(1, "PL line", "Laser power (mW)", "Line (dBm)")

    def draw(self, buffer: LiveBuffer) -> None:
        spectra = buffer.frame("spectrum")
        if not spectra.empty and {"frequency_Hz", "level_dBm"} <= set(spectra.columns):
            last = spectra.iloc[-1]
            self.curve(self.spectrum, "spectrum", pen=pg.mkPen("#2471a3", width=1.2)).setData(
                np.asarray(last["frequency_Hz"], dtype=float), np.asarray(last["level_dBm"], dtype=float))
            self.spectrum.setTitle(f"Analyser spectrum ({last.get('kind', '')}, "
                                   f"{float(last.get('laser_power_mW', math.nan)):.3g} mW)")
        points = buffer.frame("point")
        self.curve(self.line, "line", pen=None, symbol="o", symbolSize=6, symbolBrush="#c0392b").setData(
            _column(points, "laser_power_mW"), _column(points, "line_dBm"))


class StabilityPlot(LivePlot):
    """PCE, Voc, Jsc, FF against stress time (h): the run's own readings as lines (MPP: its PCE; a hold at open
    circuit: its Voc; at short circuit: its Jsc), each periodic J–V's figures as points, interruptions shaded."""

    title = "Stability"
    QUANTITIES = (("pce", "PCE (%)", "pce_pct"), ("voc", "Voc (V)", "voc_V"), ("jsc", "Jsc (mA/cm²)", "jsc_mA_cm2"),
                  ("ff", "FF (%)", "ff_pct"))

    def setup(self) -> None:
        self.plots: dict[str, pg.PlotItem] = {}
        for row, (key, label, _) in enumerate(self.QUANTITIES):
            plot = self.add_plot(row, "", "Stress time (h)" if row == 3 else "", label)
            if row:
                plot.setXLink(self.plots["pce"])
            self.plots[key] = plot
        self._bands: list[list[pg.LinearRegionItem]] = []

    def clear(self) -> None:
        super().clear()
        for bands in self._bands:
            for band in bands:
                band.setRegion((0, 0))
                band.hide()

    def draw(self, buffer: LiveBuffer) -> None:
        main = getattr(self.procedure_cls, "MAIN_STREAM", None)
        if main is not None and buffer.received.get(main, 0):
            frame = buffer.frame(main)
            t_h = _column(frame, "time_s") / 3600.0
            pen = pg.mkPen("#2471a3", width=1.2)
            if "pce_pct" in frame.columns:
                self.curve(self.plots["pce"], "tracked PCE", pen=pen).setData(t_h, _column(frame, "pce_pct"))
            elif "power_mW_cm2" in frame.columns:
                # a hold: at open circuit its voltage is Voc, at short circuit its |J| is Jsc
                current = np.abs(_column(frame, "current_A"))
                voltage = _column(frame, "voltage_V")
                if current.size and np.nanmedian(current) < 1e-9:
                    self.curve(self.plots["voc"], "held Voc", pen=pen).setData(t_h, voltage)
                elif voltage.size and np.nanmedian(np.abs(voltage)) < 1e-6:
                    self.curve(self.plots["jsc"], "held Jsc", pen=pen).setData(t_h, np.abs(_column(frame, "j_mA_cm2")))
                else:
                    self.curve(self.plots["pce"], "held power", pen=pen).setData(t_h, _column(frame, "power_mW_cm2"))
        if buffer.received.get("jv_figures", 0):
            figures = buffer.frame("jv_figures")
            t_h = _column(figures, "stress_time_s") / 3600.0
            for key, _, column in self.QUANTITIES:
                for direction in (0, 1):
                    sel = _column(figures, "direction") == direction
                    colour = _DIRECTION_PENS[direction]
                    self.curve(self.plots[key], f"J–V {key} {_DIRECTION_NAMES[direction]}", pen=None, symbol="o",
                               symbolSize=4, symbolBrush=colour, symbolPen=None).setData(
                        t_h[sel], _column(figures, column)[sel])
        if buffer.received.get("interruptions", 0):
            self._shade(buffer.frame("interruptions"))

    def _shade(self, stops: pd.DataFrame) -> None:
        """A band per suspension or recovery (the newest :data:`_MAX_SHADED`), reusing the band items."""
        spans = [(s / 3600.0, e / 3600.0)
                 for s, e in zip(_column(stops, "start_s"), _column(stops, "end_s"), strict=True)
                 if e > s][-_MAX_SHADED:]
        while len(self._bands) < len(spans):
            bands = []
            for plot in self.plots.values():
                band = pg.LinearRegionItem(values=(0, 0), movable=False, brush=pg.mkBrush(255, 165, 0, 70),
                                           pen=pg.mkPen(None))
                band.setZValue(-10)
                plot.addItem(band)
                bands.append(band)
            self._bands.append(bands)
        for k, bands in enumerate(self._bands):
            for band in bands:
                if k < len(spans):
                    band.setRegion(spans[k])
                    band.show()
                else:
                    band.hide()

    @property
    def shaded(self) -> list[tuple[float, float]]:
        """The bands shown (h)."""
        return [tuple(bands[0].getRegion()) for bands in self._bands if bands[0].isVisible()]


PLOTS: dict[str, type[LivePlot]] = {
    "jv": JVPlot,
    "eqe": EQEPlot,
    "eqe-calibration": BeamPowerPlot,
    "voc-intensity": VocIntensityPlot,
    "plqy": PLQYPlot,
    "hold": StabilityPlot,
    "mpp": StabilityPlot,
}


def live_plot_for(procedure_cls: Any) -> LivePlot:
    """The live plot of a procedure class (by its ``NAME``; a stability procedure by its ``MAIN_STREAM``)."""
    name = getattr(procedure_cls, "NAME", "")
    cls = PLOTS.get(name)
    if cls is None and getattr(procedure_cls, "MAIN_STREAM", None) and "jv_figures" in getattr(
            procedure_cls, "STREAMS", {}):
        cls = StabilityPlot
    return (cls or DefaultPlot)(procedure_cls)
