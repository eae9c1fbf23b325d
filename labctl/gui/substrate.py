"""Substrates in the bench window: a queued run over the pixels of a layout (``labctl run NAME --pixels ...``),
run by :class:`labctl.substrate.SubstrateRunner` in a background thread, and a live map of the substrate.

:class:`SubstrateJob` looks like a :class:`labctl.engine.RunEngine` to the window (``start``, ``running``,
``abort``, ``join``) and gives each pixel's run its own :class:`labctl.live.LiveBuffer` (``buffer``: the pixel
started last, the one the live plot shows). :class:`SubstrateMap` draws every pixel at its place on the substrate
(``x_mm``, ``y_mm`` of the layout; in a row otherwise), coloured by its state, with its PCE (or Voc) once measured.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pyqtgraph as pg
from qtpy import QtWidgets

from labctl.config import ConfigError, LayoutConfig
from labctl.live import LiveBuffer

STATE_COLOURS = {"waiting": "#bbbbbb", "measuring": "#2471a3", "completed": "#27ae60", "dead": "#222222",
                 "skipped": "#e67e22", "aborted": "#8e44ad", "failed": "#c0392b", "not measured": "#dddddd"}


class SubstrateJob:
    """The pixels of one substrate, measured by a :class:`labctl.substrate.SubstrateRunner` in a thread.

    Parameters
    ----------
    station, layout_name, layout, pixels
        As :class:`~labctl.substrate.SubstrateRunner` takes them (``pixels``: the names, :func:`parse_pixels`).
    make_procedure
        ``make_procedure(pixel) -> LabProcedure`` with the queued settings applied.
    out_dir, sample
        The data folder and the substrate's name.
    subscribers
        Further document subscribers of every pixel's run (the window's log feed).
    """

    def __init__(self, station: Any, layout_name: str, layout: LayoutConfig, pixels: list[str],
                 make_procedure: Callable[[Any], Any], out_dir: Any, *, sample: str,
                 subscribers: list[Any] = ()) -> None:
        from labctl.substrate import SubstrateRunner

        self.layout = layout
        self.pixels = list(pixels)
        self.buffers: dict[str, LiveBuffer] = {}
        self.buffer: LiveBuffer | None = None
        self.states: dict[str, str] = {name: "waiting" for name in pixels}
        self.outcomes: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._subscribers = list(subscribers)
        self.runner = SubstrateRunner(station, layout_name, layout, pixels, make_procedure, out_dir, sample=sample,
                                      subscribers_for=self._subscribers_for, on_pixel=self._settled)
        self._thread: threading.Thread | None = None
        self._outcome: tuple[Any, BaseException | None] | None = None

    def _subscribers_for(self, pixel: str) -> list[Any]:
        buffer = LiveBuffer()
        with self._lock:
            self.buffers[pixel] = buffer
            self.buffer = buffer
            self.states[pixel] = "measuring"
        return [buffer, *self._subscribers]

    def _settled(self, outcome: Any) -> None:
        with self._lock:
            self.outcomes[outcome.name] = outcome
            self.states[outcome.name] = outcome.status

    def validate(self) -> None:
        """The runner's checks of every pixel's procedure (ConfigError, one line), before any I/O."""
        self.runner.validate()

    def start(self) -> None:
        def target() -> None:
            try:
                self._outcome = (self.runner.run(), None)
            except BaseException as exc:  # noqa: BLE001 - handed to join()
                self._outcome = (None, exc)

        self._thread = threading.Thread(target=target, name="labctl-gui-substrate")
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def abort(self) -> None:
        """Abort every pixel's run (the runner turns every source off, then opens every relay)."""
        self.runner.abort("aborted from the window")

    def join(self, timeout_s: float | None = None) -> Any:
        """The :class:`labctl.substrate.SubstrateResult`, or the error that kept the substrate from starting."""
        assert self._thread is not None
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise TimeoutError(f"the substrate is still being measured after {timeout_s} s")
        assert self._outcome is not None
        result, error = self._outcome
        if error is not None:
            raise error
        return result

    def snapshot(self) -> tuple[dict[str, str], dict[str, Any]]:
        with self._lock:
            return dict(self.states), dict(self.outcomes)


def check_pixels(config: Any, procedure_cls: type, spec: str, settings: list[str]) -> tuple[str, Any, list[str]]:
    """``--pixels`` as the CLI checks it: (layout name, layout, pixel names), or ConfigError with the CLI's line."""
    from labctl.substrate import parse_pixels

    if not getattr(procedure_cls, "PER_PIXEL", False):
        raise ConfigError(f"--pixels: procedure {procedure_cls.NAME} does not run per pixel")
    if any(item.partition("=")[0].strip() == "area_cm2" for item in settings):
        raise ConfigError("--set area_cm2: with --pixels each pixel's area is the layout's "
                          "(layouts.<name>.pixels[].area_cm2); leave it out")
    name, layout = config.layout(None)
    return name, layout, parse_pixels(spec, name, layout)


class SubstrateMap(QtWidgets.QWidget):
    """Each pixel at its place on the substrate, coloured by its state (:data:`STATE_COLOURS`), labelled with its
    name and, once measured, its PCE (%; or its Voc), "dead" for a completed pixel without a working cell (the
    substrate summary's rule, :mod:`labctl.analysis.substrate`), or why not (skipped, failed). y points up, as on
    the summary PNG's map (:mod:`labctl.substrate_plots`)."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        legend = ", ".join(f'<span style="color:{c}">●</span> {s}' for s, c in STATE_COLOURS.items()
                           if s not in ("not measured",))
        self.view = pg.PlotWidget(background="w", title=f"Substrate (PCE %)<br><small>{legend}</small>")
        self.view.setAspectLocked(True)
        self.view.setLabel("bottom", "x (mm)")
        self.view.setLabel("left", "y (mm)")
        layout.addWidget(self.view)
        self.scatter = pg.ScatterPlotItem(size=28, pen=pg.mkPen("#333333"))
        self.view.addItem(self.scatter)
        self.labels: dict[str, pg.TextItem] = {}
        self.places: dict[str, tuple[float, float]] = {}
        self.shown: dict[str, str] = {}  # pixel → its state as drawn

    def set_layout(self, layout: LayoutConfig, pixels: list[str]) -> None:
        for label in self.labels.values():
            self.view.removeItem(label)
        self.labels, self.shown = {}, {}
        chosen = [p for p in layout.pixels if p.name in pixels]
        placed = all(p.x_mm is not None and p.y_mm is not None for p in chosen)
        self.places = {p.name: ((p.x_mm, p.y_mm) if placed else (5.0 * (k % 4), 5.0 * (k // 4)))
                       for k, p in enumerate(chosen)}
        for name, (x, y) in self.places.items():
            label = pg.TextItem(name, color="#000000", anchor=(0.5, -0.35))
            label.setPos(x, y)
            self.view.addItem(label)
            self.labels[name] = label
        self.update_states({name: "waiting" for name in self.places}, {})
        xs = [x for x, _ in self.places.values()]
        ys = [y for _, y in self.places.values()]
        width, height = (layout.size_mm if placed and layout.size_mm is not None else
                         (max(xs) + 3.0, max(ys) + 3.0))
        self.view.disableAutoRange()
        self.view.setRange(xRange=(min(0.0, min(xs) - 3.0), width), yRange=(min(0.0, min(ys) - 3.0), height),
                           padding=0.05)

    def update_states(self, states: dict[str, str], outcomes: dict[str, Any]) -> None:
        spots = []
        for name, (x, y) in self.places.items():
            state = states.get(name, "waiting")
            outcome = outcomes.get(name)
            if state == "completed" and outcome is not None and _dead(name, outcome):
                state = "dead"
            spots.append({"pos": (x, y), "brush": pg.mkBrush(STATE_COLOURS.get(state, "#999999"))})
            text = name if state in ("completed", "waiting") else f"{name}\n{state}"
            if outcome is not None and state != "dead":
                from labctl.catalog import key_results

                figures = key_results(outcome.results or {})
                if isinstance(figures.get("pce_pct"), (int, float)):
                    text += f"\n{figures['pce_pct']:.2f} %"
                elif isinstance(figures.get("voc_V"), (int, float)):
                    text += f"\n{figures['voc_V']:.3f} V"
            self.labels[name].setText(text)
            self.shown[name] = state
        self.scatter.setData(spots)


def _dead(name: str, outcome: Any) -> bool:
    """Whether a completed pixel has no working cell, by the substrate summary's rule."""
    from labctl.analysis.substrate import summarise_substrate

    pixel = summarise_substrate({name: {"status": outcome.status, "results": outcome.results or {}}})["pixels"]
    return bool(pixel[name]["dead"])
