"""A substrate from the bench window (stations/substrate-bench.yaml: 8 pixels on two source meters through a
Keithley 7001; pixel 8's probe does not touch): queued with ``Pixels: all``, every pixel measured or skipped as
the CLI's ``--pixels all`` would, the map showing each pixel's outcome, the live J–V being a pixel's run file, and
a bad pixel name or an area setting refused with the CLI's line.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from labctl.cli import main  # noqa: E402
from labctl.config import parse_station  # noqa: E402
from labctl.gui.window import BenchWindow  # noqa: E402
from labctl.storage import load_run  # noqa: E402
from tests.helpers import REPO  # noqa: E402

STATION = REPO / "stations" / "substrate-bench.yaml"


@pytest.fixture
def window(qtbot, tmp_path):
    win = BenchWindow(parse_station(yaml.safe_load(STATION.read_text())), tmp_path / "runs")
    qtbot.addWidget(win)
    win.show()
    yield win
    if win.running:
        win.engine.abort()
        win.engine.join(60)
    win.station.close()


def test_substrate_queued_from_the_window_map_and_live_plot(qtbot, window, tmp_path):
    window.procedure_box.setCurrentText("jv")
    window.sample_edit.setText("sub-1")
    assert window.form("jv").inputs["area_cm2"].isEnabled()
    window.pixels_edit.setText("all")
    assert not window.form("jv").inputs["area_cm2"].isEnabled()  # each pixel's area is the layout's
    window.form("jv").set_text("step_V", "0.02")
    item = window.add_to_queue()
    assert item is not None and item.pixels == "all", window.form_error.text()
    with qtbot.waitSignal(window.run_finished, timeout=180_000) as blocker:
        window.run_all()
    done = blocker.args[0]
    result = done.result
    assert done.status == result.status and result.status == "completed", window.log_view.toPlainText()[-3000:]
    outcomes = result.pixels
    assert outcomes["8"].status == "skipped"  # no contact
    assert all(outcomes[p].status == "completed" for p in "1234567")
    # the map shows every pixel's outcome, with the PCE of the measured ones
    assert window.substrate_map.shown == {name: ("dead" if name == "6" else o.status) for name, o in outcomes.items()}
    shown_pce = 0
    for name in "1234567":
        label = window.substrate_map.labels[name].toPlainText()
        pce = outcomes[name].results["reverse"]["pce_pct"]
        if pce is None:  # pixel 6 is dead (no photocurrent): said so, as on the summary's map
            assert name == "6" and label == f"{name}\ndead"
        else:
            assert label == f"{name}\n{pce:.2f} %"
            shown_pce += 1
    assert shown_pce >= 6
    assert window.substrate_map.labels["8"].toPlainText() == "8\nskipped"
    folder = Path(os.environ.get("LABCTL_GUI_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    assert window.grab().save(str(folder / "gui_substrate.png"))
    # the live plot holds the J–V of the pixel started last, exactly its run file's rows
    plot = window.plots["jv"]
    x, y = plot.curves["scan 0: reverse"].getData()
    matches = []
    for name in "1234567":
        stored = load_run(outcomes[name].file).streams["jv"]
        rows = stored[(stored["scan"] == 0) & (stored["direction"] == 0)]
        if len(rows) == len(x) and np.array_equal(rows["j_mA_cm2"].to_numpy(), y):
            matches.append(name)
    assert len(matches) == 1
    assert f"record: {result.file}" in window.log_view.toPlainText()
    assert not window.substrate_map.isHidden()


def test_bad_pixels_and_area_refused_with_the_cli_line(qtbot, window, tmp_path):
    window.procedure_box.setCurrentText("jv")
    window.pixels_edit.setText("1,9")
    assert window.add_to_queue() is None
    cli = CliRunner().invoke(main, ["run", "jv", "--station", str(STATION), "--out", str(tmp_path / "cli"),
                                    "--pixels", "1,9"])
    assert cli.exit_code == 2
    assert window.form_error.text() == cli.output.strip().removeprefix("error:").strip()
    window.pixels_edit.setText("all")
    window.form("jv").set_text("area_cm2", "0.1")
    assert window.add_to_queue() is None
    cli = CliRunner().invoke(main, ["run", "jv", "--station", str(STATION), "--out", str(tmp_path / "cli"),
                                    "--pixels", "all", "--set", "area_cm2=0.1"])
    assert window.form_error.text() == cli.output.strip().removeprefix("error:").strip()
    assert window.queue == []


def test_abort_mid_substrate_sources_off_relays_open(qtbot, window):
    # a slow J–V per pixel (a long preconditioning on the virtual clock), so the abort lands mid-substrate
    window.procedure_box.setCurrentText("jv")
    window.sample_edit.setText("sub-abort")
    window.pixels_edit.setText("all")
    window.form("jv").set_text("precondition_s", "20000")
    assert window.add_to_queue() is not None, window.form_error.text()
    finished = []
    window.run_finished.connect(finished.append)
    window.run_all()
    qtbot.waitUntil(lambda: "measuring" in window.substrate_map.shown.values(), timeout=60_000)
    window.abort_button.click()
    qtbot.waitUntil(lambda: bool(finished), timeout=120_000)
    result = finished[0].result
    assert result.status == "aborted"
    assert any(o.status == "aborted" for o in result.pixels.values())
    for role in ("smu", "smu2"):
        assert not window.station[role].adapter.emulator.output
    assert window.station["switch"].adapter.emulator.closed == set()
    safe = {o.role: o.ok for o in window.station.safe_report}
    assert safe.get("switch") and safe.get("smu")
