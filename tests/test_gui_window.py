"""The bench window (labctl.gui) on the default simulated station, headless (pytest-qt, Qt's offscreen platform).

A J–V queued and run from the window: the curves it plotted are the run file's rows; a bad value is refused in
its field with the CLI's own message; an abort ends the run ``aborted`` with the source meter's output off; closing
during a run asks, then aborts safely; the queue reorders and removes; the run browser lists the run and opens its
plot; the station panel shows each instrument's identity. A screenshot of the window is saved
(``gui_jv.png`` in the test's temporary folder, or in the folder ``LABCTL_GUI_SCREENSHOTS`` names).
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from labctl.cli import main  # noqa: E402
from labctl.config import parse_station  # noqa: E402
from labctl.gui.window import BenchWindow  # noqa: E402
from labctl.storage import load_run  # noqa: E402
from tests.helpers import REPO, default_station  # noqa: E402


@pytest.fixture
def window(qtbot, tmp_path):
    win = BenchWindow(parse_station(default_station()), tmp_path / "runs")
    qtbot.addWidget(win)
    win.show()
    yield win
    if win.running:  # a test that failed mid-run: end it safely
        win.engine.abort()
        win.engine.join(30)
    win.station.close()


def _queue(win, procedure, sample="cell-1", **values):
    win.procedure_box.setCurrentText(procedure)
    win.sample_edit.setText(sample)
    form = win.form(procedure)
    for name, text in values.items():
        form.set_text(name, text)
    item = win.add_to_queue()
    assert item is not None, win.form_error.text()
    return item


def _run_all(qtbot, win, timeout_ms=60_000):
    with qtbot.waitSignal(win.run_finished, timeout=timeout_ms) as blocker:
        win.run_all()
    return blocker.args[0]


def test_jv_queued_runs_and_plots_the_run_files_data(qtbot, window, tmp_path):
    item = _queue(window, "jv", step_V="0.02")
    assert item.settings == ["step_V=0.02"]
    done = _run_all(qtbot, window)
    assert done.status == "completed", window.log_view.toPlainText()[-2000:]
    run = load_run(done.result.path)
    stored = run.streams["jv"]
    plot = window.plots["jv"]
    # one curve per scan (numbered from 0, as in the file) and direction (reverse first by default), each exactly
    # the file's rows of that scan
    assert sorted(plot.curves) == ["scan 0: reverse", "scan 1: forward"]
    for name, (scan, direction) in {"scan 0: reverse": (0, 0), "scan 1: forward": (1, 1)}.items():
        rows = stored[(stored["scan"] == scan) & (stored["direction"] == direction)]
        x, y = plot.curves[name].getData()
        assert len(x) == len(rows) == 71  # -0.1 to 1.3 V by 20 mV
        np.testing.assert_array_equal(x, rows["voltage_V"].to_numpy())
        np.testing.assert_array_equal(y, rows["j_mA_cm2"].to_numpy())
    # reverse scan starts at the top voltage, forward at the bottom
    assert plot.curves["scan 0: reverse"].getData()[0][0] == pytest.approx(1.3)
    assert plot.curves["scan 1: forward"].getData()[0][0] == pytest.approx(-0.1)
    assert window.progress.value() == 1000
    log = window.log_view.toPlainText()
    assert "ended: completed" in log and "safe state: smu" in log
    reverse = done.result.results["reverse"]
    assert window.plot_title.text() == (f"jv — cell-1: completed — Voc {reverse['voc_V']:.4f}, Jsc "
                                        f"{reverse['jsc_mA_cm2']:.3f}, FF {reverse['ff']:.4f}, PCE "
                                        f"{reverse['pce_pct']:.3f} (reverse)")
    # the run browser lists it from the catalog and opens its plot (the procedure's own figure, from the file)
    assert [r.run_id for r in window.browser.runs] == [done.result.run_id]
    dialog = window.browser.open_plot(0)
    assert dialog is not None and not dialog.findChild(type(window.plot_title), "run_plot").pixmap().isNull()
    # the station panel: the source meter connected, simulated, with its verified identity
    rows = {r["role"]: r for r in window.station_panel.rows()}
    assert rows["smu"]["connected"] == "yes" and rows["smu"]["kind"] == "simulated"
    assert "2400" in rows["smu"]["*IDN?"]
    folder = Path(os.environ.get("LABCTL_GUI_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    window.tabs.setCurrentIndex(0)
    qtbot.wait(50)
    assert window.grab().save(str(folder / "gui_jv.png"))


def test_bad_value_refused_in_the_field_with_the_cli_message(qtbot, window, tmp_path):
    form = window.form("jv")
    form.set_text("step_V", "0")
    cli = CliRunner().invoke(main, ["run", "jv", "--station", str(REPO / "station.yaml"), "--out",
                                    str(tmp_path / "cli"), "--set", "step_V=0"])
    assert cli.exit_code == 2
    expected = cli.output.strip().removeprefix("error:").strip()
    assert expected.startswith("parameter step_V")
    assert form.errors["step_V"] == expected
    assert form.messages["step_V"].text() == expected and not form.messages["step_V"].isHidden()
    assert not window.add_button.isEnabled()
    assert window.add_to_queue() is None and window.queue == []
    form.set_text("step_V", "0.01")
    assert form.valid and window.add_button.isEnabled()
    # a value allowed by the parameter but not by the station (its 1.5 V limit): refused when queued, the
    # procedure's own check, the CLI's line
    form.set_text("stop_V", "5")
    assert window.add_to_queue() is None
    cli = CliRunner().invoke(main, ["run", "jv", "--station", str(REPO / "station.yaml"), "--out",
                                    str(tmp_path / "cli"), "--set", "stop_V=5"])
    assert cli.exit_code == 2
    assert window.form_error.text() == cli.output.strip().removeprefix("error:").strip()
    assert window.queue == []


def test_queue_reorders_removes_and_runs_in_order(qtbot, window):
    first = _queue(window, "jv", sample="a")
    second = _queue(window, "jv", sample="b")
    third = _queue(window, "jv", sample="c")
    window.move_queued(2, -1)
    assert [q.sample for q in window.queue] == ["a", "c", "b"]
    window.remove_queued(0)
    assert [q.sample for q in window.queue] == ["c", "b"]
    assert window.queue_list.count() == 2
    finished = []
    window.run_finished.connect(finished.append)
    window.run_all()
    qtbot.waitUntil(lambda: len(finished) == 2, timeout=120_000)
    assert [f.sample for f in finished] == ["c", "b"] and all(f.status == "completed" for f in finished)
    assert first.status == "queued" and second is finished[1] and third is finished[0]


def _emulator_output_on(win) -> bool:
    return bool(win.station["smu"].adapter.emulator.output)


def test_abort_ends_the_run_aborted_with_the_instruments_safe(qtbot, window):
    # a 1000 h hold at open circuit: minutes of wall time even on the virtual clock, so the abort lands mid-run
    _queue(window, "hold", duration_h="1000", interval_s="10")
    finished = []
    window.run_finished.connect(finished.append)
    window.run_all()
    qtbot.waitUntil(lambda: window.buffer is not None and window.buffer.received.get("hold", 0) > 50,
                    timeout=60_000)
    assert _emulator_output_on(window)
    assert window.abort_button.isEnabled()
    window.abort_button.click()
    qtbot.waitUntil(lambda: bool(finished), timeout=60_000)
    assert finished[0].status == "aborted"
    assert not _emulator_output_on(window)
    assert {o.role: o.ok for o in window.station.safe_report}["smu"]
    run = load_run(finished[0].result.path)
    assert run.status == "aborted"
    assert not window.running and window.run_button.isEnabled() and not window.abort_button.isEnabled()


def test_closing_during_a_run_asks_then_aborts_safely(qtbot, window):
    _queue(window, "hold", duration_h="1000", interval_s="10")
    window.run_all()
    qtbot.waitUntil(lambda: window.buffer is not None and window.buffer.received.get("hold", 0) > 10,
                    timeout=60_000)
    asked = []
    window.confirm_abort_on_close = lambda: asked.append(1) or False
    assert not window.close()  # "no": the run goes on
    assert window.running and asked == [1]
    item = window.current
    window.confirm_abort_on_close = lambda: asked.append(2) or True
    assert window.close()
    assert asked == [1, 2] and item.status == "aborted"
    assert load_run(item.result.path).status == "aborted"
    assert {o.role: o.ok for o in window.station.safe_report}["smu"]


def test_gui_command_opens_the_window_on_the_station(monkeypatch, tmp_path):
    import labctl.gui

    opened = []
    monkeypatch.setattr(labctl.gui, "run_window", lambda config, out, station_path=None: opened.append(
        (config.station.name, Path(out), Path(station_path))) or 0)
    result = CliRunner().invoke(main, ["gui", "--station", str(REPO / "station.yaml"), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert opened == [("sim-bench", tmp_path, REPO / "station.yaml")]
    missing = CliRunner().invoke(main, ["gui", "--station", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2 and "station file" in missing.output


def test_a_run_that_needs_an_earlier_queued_run_is_queued_with_a_warning(qtbot, window):
    window.procedure_box.setCurrentText("eqe")
    assert window.add_to_queue() is None  # alone: no calibration run exists, refused with the procedure's line
    refusal = window.form_error.text()
    assert refusal and "calibration" in refusal.lower()
    _queue(window, "eqe-calibration")
    window.procedure_box.setCurrentText("eqe")
    item = window.add_to_queue()
    assert item is not None and [q.procedure for q in window.queue] == ["eqe-calibration", "eqe"]
    assert refusal in window.form_error.text() and "checked again when it starts" in window.form_error.text()
    assert "WARNING: eqe cell-1 queued although its check fails now" in window.log_view.toPlainText()
    assert "WARNING: eqe cell-1 queued although" in window.warnings_view.toPlainText()
    assert window.log_tabs.tabText(1) == "Warnings (1)"


def test_run_browser_filters_and_station_check(qtbot, window):
    _queue(window, "jv", sample="a")
    _queue(window, "jv", sample="b", light="false")
    finished = []
    window.run_finished.connect(finished.append)
    window.run_all()
    qtbot.waitUntil(lambda: len(finished) == 2, timeout=120_000)
    browser = window.browser
    browser.refresh()
    assert [r.sample for r in browser.runs] == ["b", "a"]  # newest first
    browser.sample_filter.setText("a")
    browser.refresh()
    assert [r.sample for r in browser.runs] == ["a"]
    browser.sample_filter.clear()
    browser.status_filter.setCurrentText("aborted")
    browser.refresh()
    assert browser.runs == []
    browser.status_filter.setCurrentIndex(0)
    browser.procedure_filter.setCurrentText("eqe")
    browser.refresh()
    assert browser.runs == []
    browser.procedure_filter.setCurrentIndex(0)
    browser.since_filter.setText("yesterday")
    browser.refresh()
    assert browser.message.text().startswith("since = 'yesterday': not a date")
    browser.since_filter.setText("2000-01-01")
    browser.refresh()
    assert len(browser.runs) == 2 and browser.message.text() == ""
    # the station panel connects every instrument, verifies its identity and reads its error queue
    window.station_panel.check(wait=True)
    rows = {r["role"]: r for r in window.station_panel.rows()}
    assert set(rows) == set(window.config.instruments)
    assert all(r["connected"] == "yes" and r["*IDN?"] for r in rows.values())
    assert rows["smu"]["last error"] == "none" and rows["lockin"]["last error"] == "none"


def test_pause_holds_the_run_and_resume_lets_it_go_on(qtbot, window):
    _queue(window, "hold", duration_h="1000", interval_s="10")
    window.run_all()
    qtbot.waitUntil(lambda: window.buffer is not None and window.buffer.received.get("hold", 0) > 20,
                    timeout=60_000)
    assert window.pause_button.isEnabled()
    window.pause_button.click()
    assert window.engine.paused and window.pause_button.text() == "Resume"
    qtbot.waitUntil(lambda: "paused" in window.log_view.toPlainText(), timeout=30_000)
    held = window.buffer.received["hold"]
    qtbot.wait(1500)  # paused: no reading for 1.5 s of wall time (the hold takes hundreds a second otherwise)
    assert window.buffer.received["hold"] == held and window.running
    assert _emulator_output_on(window)  # a pause keeps the bias applied
    window.pause_button.click()
    assert not window.engine.paused
    qtbot.waitUntil(lambda: window.buffer.received["hold"] > held + 20, timeout=30_000)
    finished = []
    window.run_finished.connect(finished.append)
    window.abort()
    qtbot.waitUntil(lambda: bool(finished), timeout=60_000)
    assert finished[0].status == "aborted" and not window.pause_button.isEnabled()


def test_station_check_runs_in_the_background_and_holds_the_queue(qtbot, window):
    import threading

    _queue(window, "jv")
    panel = window.station_panel
    release = threading.Event()
    real_connect = window.station.connect

    def slow_connect(roles=None):  # an instrument that takes its time to answer
        release.wait(30)
        return real_connect(roles)

    window.station.connect = slow_connect
    panel.check()
    assert panel.checking and not panel.check_button.isEnabled()
    window.run_all()
    qtbot.wait(300)  # the window stays responsive; the queue waits for the check, which owns the instruments
    assert window.current is None and len(window.queue) == 1
    assert window.status_label.text() == "waiting for the station check to end"
    finished = []
    window.run_finished.connect(finished.append)
    release.set()
    qtbot.waitUntil(lambda: bool(finished), timeout=60_000)
    window.station.connect = real_connect
    assert finished[0].status == "completed"
    assert all(r["connected"] == "yes" for r in panel.rows())
    assert panel.check_button.isEnabled() and panel.check_button.text() == "Connect and check"


def test_ctrl_c_in_the_terminal_aborts_safely_and_closes(qtbot, window):
    import signal

    from labctl.gui import interrupt_handler

    _queue(window, "hold", duration_h="1000", interval_s="10")
    window.run_all()
    qtbot.waitUntil(lambda: window.buffer is not None and window.buffer.received.get("hold", 0) > 10,
                    timeout=60_000)
    item = window.current
    emulator = window.station["smu"].adapter.emulator
    assert emulator.output
    interrupt_handler(window)(signal.SIGINT, None)  # no question asked
    assert not window.isVisible() and item.status == "aborted"
    assert load_run(item.result.path).status == "aborted"
    assert not emulator.output and {o.role: o.ok for o in window.station.safe_report}["smu"]
    assert "SIGINT received: aborting any run safely, then closing" in window.log_view.toPlainText()


def test_labctl_gui_process_opens_and_ends_on_sigterm(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", "from labctl.cli import main; main()", "gui", "--station",
                             str(REPO / "station.yaml"), "--out", str(tmp_path / "runs")], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []  # the line said once the window is shown and the signal handlers are in place (Qt may talk first)
        while not (lines and lines[-1].startswith("labctl gui: the window is open on station sim-bench")):
            line = proc.stderr.readline()
            assert line, "".join(lines)
            lines.append(line)
        time.sleep(0.5)  # the event loop running (its timer lets Python see the signal)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "Fatal" not in err
