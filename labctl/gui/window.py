"""The bench window: choose a procedure, fill its parameters, queue runs, watch them live, abort safely, look at
the station and browse past runs (docs/gui.md).

Runs go through :class:`labctl.engine.RunEngine` exactly as ``labctl run`` does (validation before any I/O, the
run file, the catalog, the status file, the safe state on every exit), started with
:meth:`~labctl.engine.RunEngine.start` (the engine's own background thread); the window's timer, in the Qt thread,
reads the run's :class:`labctl.live.LiveBuffer` and its log lines. Abort is :meth:`~labctl.engine.RunEngine.abort`:
the run ends ``aborted`` after the safe state of every instrument.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qtpy import QtCore, QtGui, QtWidgets

from labctl.config import ConfigError, StationConfig
from labctl.documents import LOG
from labctl.engine import RunEngine
from labctl.gui.inputs import ParameterForm
from labctl.gui.plots import JVPlot, LivePlot, live_plot_for
from labctl.gui.substrate import SubstrateJob, SubstrateMap, check_pixels
from labctl.live import LiveBuffer
from labctl.params import apply_settings
from labctl.station import Station, StationError

TICK_MS = 200
"""The window reads the live buffer and the log this often (ms): 5 redraws a second at most."""
MAX_LOG_LINES = 5000
"""Lines the log panel keeps (the run file has them all)."""


@dataclass
class QueuedRun:
    """One run waiting in the queue: the procedure's name, the sample and ``NAME=VALUE`` settings (as ``--set``)."""

    procedure: str
    sample: str
    settings: list[str] = field(default_factory=list)
    pixels: str | None = None  # a substrate: "all" or pixel names (as --pixels takes them); None: one device
    status: str = "queued"
    result: Any = None  # RunResult, or a labctl.substrate.SubstrateResult for pixels

    def label(self) -> str:
        changed = ", ".join(self.settings) if self.settings else "defaults"
        where = f" — pixels {self.pixels}" if self.pixels else ""
        return f"{self.procedure} — {self.sample}{where} — {changed} [{self.status}]"


class _LogFeed:
    """Document subscriber: the run's log lines, handed to the Qt thread through a queue."""

    def __init__(self) -> None:
        self.lines: queue.SimpleQueue[str] = queue.SimpleQueue()

    def __call__(self, name: str, doc: Any) -> None:
        if name == LOG:  # the engine's own lines include "ended: <status>"
            self.lines.put(doc.message)


class BenchWindow(QtWidgets.QMainWindow):
    """The bench window on one station.

    Parameters
    ----------
    config
        The station (station.yaml, parsed).
    out_dir
        The data folder: runs go to ``<out_dir>/<UTC date>/<run id>.h5`` and the catalog is the station's
        (``station.catalog``) or ``<out_dir>/catalog.sqlite``, as for ``labctl run``.
    station
        The station to use (default: ``Station(config)``, the simulated bench for ``sim://`` resources); the window
        closes it when it closes.
    procedures
        name → procedure class (default: every registered procedure, :func:`procedures.procedure_classes`).
    """

    run_finished = QtCore.Signal(object)  # the QueuedRun that ended (its result, or its error in status)

    def __init__(self, config: StationConfig, out_dir: str | Path, *, station: Station | None = None,
                 procedures: Mapping[str, type] | None = None, station_path: str | Path | None = None) -> None:
        super().__init__()
        from procedures import procedure_classes

        self.config = config
        self.out_dir = Path(out_dir)
        self.station_path = station_path
        self.station = station if station is not None else Station(config)
        self.procedures = dict(procedures if procedures is not None else procedure_classes())
        self.queue: list[QueuedRun] = []
        self.history: list[QueuedRun] = []
        self.engine: RunEngine | SubstrateJob | None = None
        self.buffer: LiveBuffer | None = None
        self.current: QueuedRun | None = None
        self._feed: _LogFeed | None = None
        self._running_all = False
        self._closing = False
        self.forms: dict[str, ParameterForm] = {}
        self.plots: dict[str, LivePlot] = {}
        self.setWindowTitle(f"labctl — {config.station.name}")
        self.resize(1400, 900)
        self._build()
        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(TICK_MS)
        self._timer.timeout.connect(self._tick)
        self._timer.start()
        self.station_panel.refresh()
        self.browser.refresh()

    # -- layout ---------------------------------------------------------------------------------------------------
    def _build(self) -> None:
        left = QtWidgets.QWidget()
        column = QtWidgets.QVBoxLayout(left)
        top = QtWidgets.QFormLayout()
        self.procedure_box = QtWidgets.QComboBox()
        self.procedure_box.setObjectName("procedure")
        self.procedure_box.addItems(sorted(self.procedures))
        self.sample_edit = QtWidgets.QLineEdit("sample")
        self.sample_edit.setObjectName("sample")
        self.pixels_edit = QtWidgets.QLineEdit()
        self.pixels_edit.setObjectName("pixels")
        self.pixels_edit.setPlaceholderText("one device; or all, or 1,3,5 (a substrate layout)")
        self.pixels_edit.setEnabled(bool(self.config.layouts))
        self.pixels_edit.textChanged.connect(lambda text: self._pixels_changed())
        top.addRow("Procedure", self.procedure_box)
        top.addRow("Sample", self.sample_edit)
        top.addRow("Pixels", self.pixels_edit)
        column.addLayout(top)
        self.form_stack = QtWidgets.QStackedWidget()
        scroll = QtWidgets.QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.form_stack)
        column.addWidget(scroll, 3)
        self.form_error = QtWidgets.QLabel("")
        self.form_error.setObjectName("form_error")
        self.form_error.setStyleSheet("color: #c0392b;")
        self.form_error.setWordWrap(True)
        column.addWidget(self.form_error)
        self.add_button = QtWidgets.QPushButton("Add to queue")
        self.add_button.setObjectName("add")
        self.add_button.clicked.connect(self.add_to_queue)
        column.addWidget(self.add_button)

        column.addWidget(QtWidgets.QLabel("Queue"))
        self.queue_list = QtWidgets.QListWidget()
        self.queue_list.setObjectName("queue")
        column.addWidget(self.queue_list, 1)
        buttons = QtWidgets.QGridLayout()
        self.up_button = QtWidgets.QPushButton("Up")
        self.down_button = QtWidgets.QPushButton("Down")
        self.remove_button = QtWidgets.QPushButton("Remove")
        self.run_button = QtWidgets.QPushButton("Run all")
        self.abort_button = QtWidgets.QPushButton("Abort")
        self.pause_button = QtWidgets.QPushButton("Pause")
        self.pause_button.setObjectName("pause")
        self.pause_button.setCheckable(True)
        self.pause_button.setEnabled(False)
        self.pause_button.toggled.connect(self.set_paused)
        self.run_button.setObjectName("run_all")
        self.abort_button.setObjectName("abort")
        self.abort_button.setStyleSheet("QPushButton:enabled { background: #c0392b; color: white; }")
        self.up_button.clicked.connect(lambda: self.move_queued(self.queue_list.currentRow(), -1))
        self.down_button.clicked.connect(lambda: self.move_queued(self.queue_list.currentRow(), +1))
        self.remove_button.clicked.connect(lambda: self.remove_queued(self.queue_list.currentRow()))
        self.run_button.clicked.connect(self.run_all)
        self.abort_button.clicked.connect(self.abort)
        self.abort_button.setEnabled(False)
        for k, b in enumerate((self.up_button, self.down_button, self.remove_button)):
            buttons.addWidget(b, 0, k)
        buttons.addWidget(self.run_button, 1, 0)
        buttons.addWidget(self.pause_button, 1, 1)
        buttons.addWidget(self.abort_button, 1, 2)
        column.addLayout(buttons)

        self.plot_stack = QtWidgets.QStackedWidget()
        self.plot_title = QtWidgets.QLabel("no run yet")
        self.plot_title.setObjectName("plot_title")
        live = QtWidgets.QWidget()
        live_layout = QtWidgets.QVBoxLayout(live)
        live_layout.addWidget(self.plot_title)
        live_split = QtWidgets.QSplitter()
        live_split.addWidget(self.plot_stack)
        self.substrate_map = SubstrateMap()
        self.substrate_map.hide()
        live_split.addWidget(self.substrate_map)
        live_split.setSizes([560, 420])
        live_layout.addWidget(live_split, 1)
        self.station_panel = StationPanel(self)
        self.browser = RunBrowser(self)
        self.tabs = QtWidgets.QTabWidget()
        self.tabs.addTab(live, "Live")
        self.tabs.addTab(self.station_panel, "Station")
        self.tabs.addTab(self.browser, "Runs")

        self.log_view = QtWidgets.QPlainTextEdit()
        self.log_view.setObjectName("log")
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(MAX_LOG_LINES)
        self.log_view.setFont(QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.SystemFont.FixedFont))
        self.warnings_view = QtWidgets.QPlainTextEdit()
        self.warnings_view.setObjectName("warnings")
        self.warnings_view.setReadOnly(True)
        self.warnings_view.setMaximumBlockCount(MAX_LOG_LINES)
        self.log_tabs = QtWidgets.QTabWidget()
        self.log_tabs.addTab(self.log_view, "Log")
        self.log_tabs.addTab(self.warnings_view, "Warnings (0)")
        self._warning_count = 0
        right = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        right.addWidget(self.tabs)
        right.addWidget(self.log_tabs)
        right.setSizes([650, 200])
        split = QtWidgets.QSplitter()
        split.addWidget(left)
        split.addWidget(right)
        split.setSizes([430, 970])
        self.setCentralWidget(split)

        self.progress = QtWidgets.QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setFormat("%p %")
        self.status_label = QtWidgets.QLabel("idle")
        self.statusBar().addWidget(self.status_label, 1)
        self.statusBar().addPermanentWidget(self.progress)
        self.procedure_box.currentTextChanged.connect(self._show_form)
        default = "jv" if "jv" in self.procedures else self.procedure_box.itemText(0)
        self.procedure_box.setCurrentText(default)
        self._show_form(default)

    def form(self, name: str) -> ParameterForm:
        """The parameter form of procedure ``name`` (made on first use)."""
        if name not in self.forms:
            form = ParameterForm(self.procedures[name])
            form.setObjectName(f"form_{name}")
            form.validity_changed.connect(lambda ok: self.add_button.setEnabled(ok))
            self.forms[name] = form
            self.form_stack.addWidget(form)
            self._pixels_changed()
        return self.forms[name]

    def _pixels_changed(self) -> None:
        """With pixels chosen, each pixel's area is the layout's (as ``--pixels`` refuses ``--set area_cm2``): the
        forms' area fields are disabled and say so."""
        substrate = bool(self.pixels_edit.text().strip())
        for form in self.forms.values():
            field = form.inputs.get("area_cm2")
            if field is not None:
                field.setEnabled(not substrate)
                field.setToolTip("each pixel's area is the layout's (layouts.<name>.pixels[].area_cm2)"
                                 if substrate else "")

    def _show_form(self, name: str) -> None:
        if name in self.procedures:
            form = self.form(name)
            self.form_stack.setCurrentWidget(form)
            self.add_button.setEnabled(form.valid)
            self.form_error.clear()

    def plot(self, name: str) -> LivePlot:
        """The live plot of procedure ``name`` (made on first use)."""
        if name not in self.plots:
            self.plots[name] = live_plot_for(self.procedures[name])
            self.plot_stack.addWidget(self.plots[name])
        return self.plots[name]

    # -- the queue ------------------------------------------------------------------------------------------------
    def _procedure(self, item: QueuedRun) -> Any:
        """A procedure for ``item`` with its settings applied (ConfigError: the CLI's one line)."""
        procedure = self.procedures[item.procedure]()
        apply_settings(procedure, item.settings)
        return procedure

    def check(self, item: QueuedRun) -> None:
        """Refuse ``item`` (ConfigError, the CLI's message) unless its settings and the procedure's checks against
        the station pass; no instrument is touched (the engine repeats the check when the run starts). A substrate
        is checked as a whole by its runner when it starts (each pixel's area and source meter)."""
        procedure = self._procedure(item)
        if item.pixels is not None:
            return
        procedure.station = self.station
        procedure.data_dir = self.out_dir
        procedure.sample = item.sample
        procedure.validate(self.station)

    def add_to_queue(self) -> QueuedRun | None:
        """Queue the shown procedure with the form's values; a value that fails is shown and nothing is queued. A
        check against the station that fails (:meth:`check`) refuses it too, unless runs are queued or running
        before it (they may make what it needs, e.g. an EQE calibration): it is then queued with the message shown
        and a warning, and the engine checks it again when it starts."""
        name = self.procedure_box.currentText()
        form = self.form(name)
        if not form.valid:
            self.form_error.setText(next(iter(form.errors.values())))
            return None
        item = QueuedRun(name, self.sample_edit.text().strip() or "sample", form.settings(),
                         pixels=self.pixels_edit.text().strip() or None)
        try:
            if item.pixels is not None:
                check_pixels(self.config, self.procedures[name], item.pixels, item.settings)
            self.check(item)
        except (ConfigError, StationError) as exc:
            if not (self.queue or self.running):
                self.form_error.setText(str(exc))
                return None
            # a run queued earlier may make what this one needs (an EQE after its calibration): checked again,
            # by the engine, when it starts
            self.form_error.setText(f"queued; checked again when it starts (a run before it may provide what "
                                    f"it needs): {exc}")
            self.append_log(f"WARNING: {item.procedure} {item.sample} queued although its check fails now: {exc}")
        else:
            self.form_error.clear()
        self.queue.append(item)
        self._show_queue()
        return item

    def move_queued(self, row: int, by: int) -> None:
        """Move the queued run at ``row`` up (``by`` = -1) or down (+1)."""
        to = row + by
        if 0 <= row < len(self.queue) and 0 <= to < len(self.queue):
            self.queue[row], self.queue[to] = self.queue[to], self.queue[row]
            self._show_queue()
            self.queue_list.setCurrentRow(to)

    def remove_queued(self, row: int) -> None:
        if 0 <= row < len(self.queue):
            del self.queue[row]
            self._show_queue()

    def _show_queue(self) -> None:
        self.queue_list.clear()
        for item in self.queue:
            self.queue_list.addItem(item.label())

    # -- running --------------------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.current is not None

    def run_all(self) -> None:
        """Run the queued runs one after the other, first to last."""
        self._running_all = True
        if not self.running:
            self._start_next()

    def check_done(self) -> None:
        """The station panel's check ended: a "Run all" that waited for it starts now."""
        if self._running_all and not self.running:
            self._start_next()
        self._set_controls()

    def _start_next(self) -> None:
        if not self.queue or not self._running_all or self._closing:
            self._running_all = False
            self._set_controls()
            return
        if self.station_panel.checking:  # the check owns the instruments: the queue starts when it is done
            self.status_label.setText("waiting for the station check to end")
            return
        item = self.queue.pop(0)
        self._show_queue()
        try:
            procedure = self._procedure(item)
        except ConfigError as exc:
            self._refused(item, str(exc))
            QtCore.QTimer.singleShot(0, self._start_next)
            return
        plot = self.plot(item.procedure)
        plot.clear()
        if isinstance(plot, JVPlot):
            plot.set_mode(dark=not bool(getattr(procedure, "light", True)),
                          qss=getattr(procedure, "mode", "") == "qss")
        self.plot_stack.setCurrentWidget(plot)
        self.tabs.setCurrentIndex(0)
        self._feed = _LogFeed()
        self.substrate_map.setVisible(item.pixels is not None)
        if item.pixels is not None:
            try:
                layout_name, layout, names = check_pixels(self.config, self.procedures[item.procedure], item.pixels,
                                                          item.settings)
                job = SubstrateJob(self.station, layout_name, layout, names, lambda pixel: self._procedure(item),
                                   self.out_dir, sample=item.sample, subscribers=[self._feed])
                job.validate()
            except ConfigError as exc:
                self._refused(item, str(exc))
                QtCore.QTimer.singleShot(0, self._start_next)
                return
            self.substrate_map.set_layout(layout, names)
            self.engine, self.buffer = job, None
        else:
            self.buffer = LiveBuffer()
            self.engine = RunEngine(self.station, self.out_dir, sample=item.sample,
                                    subscribers=[self.buffer, self._feed])
        item.status = "running"
        self.current = item
        self.plot_title.setText(f"{item.procedure} — {item.sample}: running")
        where = f" pixels {item.pixels}" if item.pixels else ""
        self.append_log(f"=== {item.procedure} {item.sample}{where} ({', '.join(item.settings) or 'defaults'})")
        self.station_panel.set_busy(True)
        self._set_controls()
        if isinstance(self.engine, SubstrateJob):
            self.engine.start()
        else:
            self.engine.start(procedure)

    def _refused(self, item: QueuedRun, message: str) -> None:
        item.status = "refused"
        self.history.append(item)
        self.append_log(f"error: {message}")
        self.run_finished.emit(item)

    def abort(self) -> None:
        """Abort the running run: the engine stops it at its next checkpoint and makes every instrument safe; the
        queue stops (what is left stays queued)."""
        self._running_all = False
        if self.engine is not None and self.current is not None:
            self.append_log("abort requested: stopping at the next checkpoint, then the safe state")
            self.engine.abort()  # also ends a pause
            self.abort_button.setEnabled(False)
            self.pause_button.setEnabled(False)

    def _tick(self) -> None:
        """Timer (Qt thread): the run's new log lines, its progress, its plot; a run that ended is collected."""
        if self._feed is not None:
            self._drain_log()
        if isinstance(self.engine, SubstrateJob) and self.current is not None:
            if self.engine.buffer is not self.buffer and self.engine.buffer is not None:
                self.buffer = self.engine.buffer  # the pixel started last
                self.plot(self.current.procedure).clear()
            self.substrate_map.update_states(*self.engine.snapshot())
            if self.buffer is None and not self.engine.running:
                self.buffer = LiveBuffer()  # the substrate ended before any pixel ran
        if self.current is None or self.engine is None or self.buffer is None:
            return
        self.progress.setValue(int(1000 * self.buffer.progress))
        self.status_label.setText(f"{self.current.procedure} {self.current.sample}: {self.buffer.status or 'starting'}"
                                  f" — {sum(self.buffer.received.values())} rows")
        self.plot(self.current.procedure).update_from(self.buffer)
        if not self.engine.running:
            self._collect()

    def _drain_log(self) -> None:
        assert self._feed is not None
        for _ in range(2000):  # a burst is shown over several ticks, the window stays responsive
            try:
                line = self._feed.lines.get_nowait()
            except queue.Empty:
                return
            self.append_log(line)

    def _collect(self) -> None:
        """The run's thread has ended: its result (or the error that kept it from starting), the last redraw."""
        assert self.engine is not None and self.current is not None
        if self.buffer is None:  # a substrate that ended before any pixel's run started
            self.buffer = LiveBuffer()
        item = self.current
        try:
            result = self.engine.join(0)
        except (ConfigError, StationError) as exc:
            item.status, item.result = "refused", None
            self.append_log(f"error: {exc}")
        except Exception as exc:  # noqa: BLE001 - shown, the queue goes on
            item.status, item.result = "failed", None
            self.append_log(f"error: {type(exc).__name__}: {exc}")
        else:
            item.status, item.result = result.status, result
            if isinstance(self.engine, SubstrateJob):
                self.substrate_map.update_states(*self.engine.snapshot())
                self.append_log(f"substrate {result.substrate_id}: {result.status}"
                                + (f" ({result.error})" if result.error else ""))
                for name, outcome in result.pixels.items():
                    self.append_log(f"pixel {name}: {outcome.status}" + (f" ({outcome.file or outcome.reason})"
                                                                          if outcome.file or outcome.reason else ""))
                self.append_log(f"record: {result.file}")
            else:
                self.append_log(f"file: {result.path}")  # the safe state of each instrument is in the run's lines
        if self._feed is not None:
            self._drain_log()
        self.plot(item.procedure).update_from(self.buffer, force=True)
        self.progress.setValue(int(1000 * self.buffer.progress))
        self.plot_title.setText(f"{item.procedure} — {item.sample}: {item.status}" + _figures(item.result))
        self.status_label.setText(f"{item.procedure} {item.sample}: {item.status}")
        self.history.append(item)
        self.current = None
        self.station_panel.set_busy(False)
        self.station_panel.refresh()
        self.browser.refresh()
        self._set_controls()
        self.run_finished.emit(item)
        self._start_next()

    def set_paused(self, paused: bool) -> None:
        """Pause the running run at its next checkpoint (instruments stay as they are, a bias stays applied), or let
        it go on (:meth:`labctl.engine.RunEngine.pause` / ``resume``; a substrate cannot be paused)."""
        engine = self.engine
        if not isinstance(engine, RunEngine) or self.current is None:
            return
        if paused:
            engine.pause()
            self.append_log("pause requested: the run holds at its next checkpoint")
        else:
            engine.resume()
        self.pause_button.setText("Resume" if paused else "Pause")

    def _set_controls(self) -> None:
        self.abort_button.setEnabled(self.running)
        self.run_button.setEnabled(not self.running)
        can_pause = self.running and isinstance(self.engine, RunEngine)
        if not can_pause and self.pause_button.isChecked():
            self.pause_button.blockSignals(True)
            self.pause_button.setChecked(False)
            self.pause_button.setText("Pause")
            self.pause_button.blockSignals(False)
        self.pause_button.setEnabled(can_pause)

    def append_log(self, line: str) -> None:
        """One line in the log panel (warnings and errors in red)."""
        lines = str(line).splitlines() or [""]
        if _is_warning(lines[0]):  # a warning (with its lines, e.g. a traceback) also goes to the Warnings tab
            self._warning_count += 1
            self.warnings_view.appendPlainText(
                (f"[{self.current.procedure} {self.current.sample}] " if self.current else "") + "\n".join(lines))
            self.log_tabs.setTabText(1, f"Warnings ({self._warning_count})")
        for part in lines:
            if _is_warning(part):
                self.log_view.appendHtml(f'<span style="color:#c0392b">{_html(part)}</span>')
            else:
                self.log_view.appendPlainText(part)

    # -- closing --------------------------------------------------------------------------------------------------
    def confirm_abort_on_close(self) -> bool:
        """Ask whether to abort the running run and close (a dialog; tests replace it)."""
        answer = QtWidgets.QMessageBox.question(
            self, "A run is going on",
            f"{self.current.procedure if self.current else 'A run'} is running. Abort it (the instruments are put "
            "in their safe state) and close the window?",
            QtWidgets.QMessageBox.StandardButton.Yes | QtWidgets.QMessageBox.StandardButton.No,
            QtWidgets.QMessageBox.StandardButton.No)
        return answer == QtWidgets.QMessageBox.StandardButton.Yes

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 - Qt naming
        """Closing during a run asks first, then aborts it and waits for its safe state (bounded) before closing."""
        if self.running and self.engine is not None:
            if not self.confirm_abort_on_close():
                event.ignore()
                return
            self._closing = True
            self.abort()
            self.status_label.setText("aborting: making the instruments safe ...")
            QtWidgets.QApplication.processEvents()
            try:
                self.engine.join()
            except Exception:  # noqa: BLE001 - the window closes either way; the run file has the outcome
                pass
            self._collect()
        self._timer.stop()
        if self.station_panel.checking:  # its thread talks to the instruments: let it end (each has a timeout)
            self.station_panel._thread.join()
        self.station.close()
        event.accept()


def _figures(result: Any) -> str:
    """The run's key figures for the plot's title (labctl.catalog.key_results: the first J–V direction's, ...)."""
    from labctl.catalog import key_results

    if result is None or not hasattr(result, "results"):
        return ""
    figures = key_results(result.results)
    shown = [f"{label} {figures[key]:{fmt}}" for key, label, fmt in (
        ("voc_V", "Voc", ".4f"), ("jsc_mA_cm2", "Jsc", ".3f"), ("ff", "FF", ".4f"), ("pce_pct", "PCE", ".3f"),
        ("jsc_integrated_mA_cm2", "integrated Jsc", ".3f"), ("n_global", "n", ".3f"))
        if isinstance(figures.get(key), (int, float)) and not isinstance(figures.get(key), bool)]
    where = f" ({figures['direction']})" if shown and "direction" in figures else ""
    return (" — " + ", ".join(shown) + where) if shown else ""


def _is_warning(line: str) -> bool:
    """A line the operator must see: a run's WARNING, a safe-state failure, an error, a failed procedure."""
    return line.startswith(("WARNING", "SAFE STATE FAILED", "error", "procedure failed", "analysis failed")) or \
        "FAILED" in line


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class StationPanel(QtWidgets.QWidget):
    """Each instrument of the station: role, driver, resource, simulated or real, connected, ``*IDN?`` (the identity
    verified when it was connected) and its last error (the instrument's error queue, or why it cannot be reached).
    "Connect and check" connects every instrument (identity verified first) and reads its error queue; it is
    disabled while a run goes on (the run owns the instruments)."""

    COLUMNS = ("role", "driver", "resource", "kind", "connected", "last error", "*IDN?")

    def __init__(self, window: BenchWindow) -> None:
        super().__init__()
        self.window = window
        self.last_errors: dict[str, str] = {}
        layout = QtWidgets.QVBoxLayout(self)
        self.table = QtWidgets.QTableWidget(0, len(self.COLUMNS))
        self.table.setObjectName("station_table")
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.check_button = QtWidgets.QPushButton("Connect and check")
        self.check_button.setObjectName("station_check")
        self.check_button.clicked.connect(lambda: self.check())
        self._thread: threading.Thread | None = None
        self._found: dict[str, str] = {}
        self._poll = QtCore.QTimer(self)
        self._poll.setInterval(100)
        self._poll.timeout.connect(self._checked)
        layout.addWidget(self.table)
        layout.addWidget(self.check_button)

    def set_busy(self, busy: bool) -> None:
        self.check_button.setEnabled(not busy and not self.checking)

    def rows(self) -> list[dict[str, str]]:
        """The table's content, one dict per instrument (keys: :attr:`COLUMNS`)."""
        station = self.window.station
        out = []
        for role, cfg in self.window.config.instruments.items():
            resource = str(cfg.resource)
            simulated = resource.startswith("sim://")
            out.append({
                "role": role, "driver": cfg.driver, "resource": resource,
                "kind": "simulated" if simulated else "real",
                "connected": "yes" if role in station.instruments else "no",
                "*IDN?": " ".join(station.identities.get(role, "").split()),
                "last error": self.last_errors.get(role, ""),
            })
        return out

    def refresh(self) -> None:
        rows = self.rows()
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, key in enumerate(self.COLUMNS):
                cell = QtWidgets.QTableWidgetItem(row[key])
                if key == "last error" and row[key] and row[key] != "none":
                    cell.setForeground(QtGui.QColor("#c0392b"))
                self.table.setItem(r, c, cell)
        self.table.resizeColumnsToContents()

    @property
    def checking(self) -> bool:
        """Whether a "Connect and check" is going on (its thread owns the instruments meanwhile)."""
        return self._thread is not None and self._thread.is_alive()

    def check(self, wait: bool = False) -> None:
        """Connect every instrument (identity verified) and read its error queue, in a background thread (the window
        stays responsive while slow instruments answer, each within its timeout); failures go in "last error". No run
        starts meanwhile. ``wait``: return when it is done (tests, scripts)."""
        if self.window.running or self.checking:
            return
        found: dict[str, str] = {}
        station, roles = self.window.station, list(self.window.config.instruments)

        def work() -> None:
            for role in roles:
                try:
                    station.connect([role])
                except Exception as exc:  # noqa: BLE001 - shown in the table
                    found[role] = f"not connected: {exc}"
                    continue
                instrument = station.instruments[role]
                if not hasattr(instrument, "check_errors"):
                    found[role] = "none (no error queue)"
                    continue
                try:
                    errors = instrument.check_errors()
                except Exception as exc:  # noqa: BLE001 - shown in the table
                    found[role] = f"error queue not read: {type(exc).__name__}: {exc}"
                    continue
                found[role] = "; ".join(f"{code}, {text}" for code, text in errors) if errors else "none"

        self._found = found
        self._thread = threading.Thread(target=work, name="labctl-gui-station-check", daemon=True)
        self.check_button.setEnabled(False)
        self.check_button.setText("Checking ...")
        self._thread.start()
        if wait:
            self._thread.join()
            self._checked()
        else:
            self._poll.start()

    def _checked(self) -> None:
        """The check's thread has ended: show what it found; a queue waiting for it goes on."""
        if self.checking:
            return
        self._poll.stop()
        self.last_errors.update(self._found)
        self.check_button.setText("Connect and check")
        self.check_button.setEnabled(not self.window.running)
        self.refresh()
        self.window.check_done()


class RunBrowser(QtWidgets.QWidget):
    """The run catalog (the station's, or the data folder's ``catalog.sqlite``), newest first, filtered by sample,
    procedure, start date (``YYYY-MM-DD[THH:MM]``, UTC) and status; "Open plot" draws a run's plot from its file
    (the procedure's ``plot``, :func:`labctl.plotting.figure`: the same figure as ``labctl plot``)."""

    COLUMNS = ("start (UTC)", "procedure", "sample", "status", "results", "run id", "file")
    STATUSES = ("", "running", "completed", "aborted", "failed", "interrupted")
    LIMIT = 500

    def __init__(self, window: BenchWindow) -> None:
        super().__init__()
        self.window = window
        self.runs: list[Any] = []
        layout = QtWidgets.QVBoxLayout(self)
        filters = QtWidgets.QHBoxLayout()
        self.sample_filter = QtWidgets.QLineEdit()
        self.sample_filter.setPlaceholderText("sample")
        self.procedure_filter = QtWidgets.QComboBox()
        self.procedure_filter.addItems(["", *sorted(window.procedures)])
        self.procedure_filter.setItemText(0, "any procedure")
        self.procedure_filter.setItemData(0, "")
        self.since_filter = QtWidgets.QLineEdit()
        self.since_filter.setPlaceholderText("since YYYY-MM-DD")
        self.status_filter = QtWidgets.QComboBox()
        self.status_filter.addItems(self.STATUSES)
        self.status_filter.setItemText(0, "any status")
        refresh = QtWidgets.QPushButton("Refresh")
        refresh.clicked.connect(self.refresh)
        for widget in (self.sample_filter, self.procedure_filter, self.since_filter, self.status_filter, refresh):
            filters.addWidget(widget)
        layout.addLayout(filters)
        self.message = QtWidgets.QLabel("")
        self.message.setStyleSheet("color: #c0392b;")
        layout.addWidget(self.message)
        self.table = QtWidgets.QTableWidget(0, len(self.COLUMNS))
        self.table.setObjectName("runs_table")
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.cellDoubleClicked.connect(lambda row, _col: self.open_plot(row))
        layout.addWidget(self.table, 1)
        open_button = QtWidgets.QPushButton("Open plot")
        open_button.clicked.connect(lambda: self.open_plot(self.table.currentRow()))
        layout.addWidget(open_button)
        self.dialogs: list[QtWidgets.QDialog] = []

    def catalog_url(self) -> str:
        from labctl.catalog import catalog_url

        return catalog_url(self.window.config.station.catalog, self.window.out_dir)

    @staticmethod
    def _chosen(box: QtWidgets.QComboBox) -> str | None:
        """A filter's choice; None for its first item ("any ...")."""
        return box.currentText() if box.currentIndex() > 0 else None

    def refresh(self) -> None:
        """Read the catalog with the filters (a bad date or an unreadable catalog: one line above the table)."""
        from labctl.catalog import Catalog, CatalogError, catalog_exists, parse_since

        self.message.clear()
        try:
            since = parse_since(self.since_filter.text().strip()) if self.since_filter.text().strip() else None
        except ValueError as exc:
            self.message.setText(str(exc).replace("--since", "since"))
            return
        url = self.catalog_url()
        runs: list[Any] = []
        if catalog_exists(url):
            try:
                with Catalog(url) as catalog:
                    runs = catalog.runs(sample=self.sample_filter.text().strip() or None,
                                        procedure=self._chosen(self.procedure_filter), since=since,
                                        status=self._chosen(self.status_filter), newest_first=True,
                                        limit=self.LIMIT)
            except CatalogError as exc:
                self.message.setText(str(exc))
        self.runs = runs
        self.table.setRowCount(len(runs))
        for r, run in enumerate(runs):
            start = run.start_time.strftime("%Y-%m-%d %H:%M:%S") if run.start_time else "—"
            figures = ", ".join(f"{k} {v:.4g}" for k, v in run.results.items()
                                if k in ("voc_V", "jsc_mA_cm2", "ff", "pce_pct", "jsc_integrated_mA_cm2", "n_global")
                                and isinstance(v, (int, float)))
            sample = run.sample if run.pixel is None else f"{run.sample} pixel {run.pixel}"
            for c, text in enumerate((start, run.procedure, sample, run.status, figures or "—", run.run_id, run.path)):
                self.table.setItem(r, c, QtWidgets.QTableWidgetItem(text))
        self.table.resizeColumnsToContents()

    def figure_png(self, row: int) -> bytes:
        """The plot of the run at ``row`` as PNG bytes (labctl.plotting.figure, from the run file)."""
        from labctl.plotting import png_bytes
        from labctl.storage import load_run

        return png_bytes(load_run(self.runs[row].path, lazy=True))

    def open_plot(self, row: int) -> QtWidgets.QDialog | None:
        """A window with the plot of the run at ``row``."""
        if not 0 <= row < len(self.runs):
            return None
        try:
            png = self.figure_png(row)
        except Exception as exc:  # noqa: BLE001 - a missing or unreadable file: said, not raised
            self.message.setText(f"{self.runs[row].path}: cannot plot it: {type(exc).__name__}: {exc}")
            return None
        dialog = QtWidgets.QDialog(self)
        dialog.setWindowTitle(self.runs[row].run_id)
        label = QtWidgets.QLabel()
        label.setObjectName("run_plot")
        pixmap = QtGui.QPixmap()
        pixmap.loadFromData(png, "PNG")
        label.setPixmap(pixmap)
        QtWidgets.QVBoxLayout(dialog).addWidget(label)
        dialog.show()
        self.dialogs = [d for d in self.dialogs if d.isVisible()] + [dialog]
        return dialog
