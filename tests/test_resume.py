"""``labctl resume FILE``: an interrupted hold goes on into a new segment of its run file.

The kill test runs ``python -m labctl.cli run hold`` in a child process on the simulated bench with a real clock,
SIGKILLs it mid-run and resumes the file on the default (virtual-clock) station, so the rest of the hold takes no
wall time. What must hold is computed from the requested schedule alone: reading k at k·interval_s, every reading
once, the rows on disk before the kill unchanged.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from labctl.cli import main
from labctl.config import parse_station
from labctl.engine import RunEngine
from labctl.station import Station
from labctl.storage import load_run
from procedures.hold import HoldProcedure
from tests.helpers import REPO, default_station, reap, station_file

STATION = str(REPO / "station.yaml")


def _resume(path: Path, *extra: str) -> tuple[int, dict, str]:
    res = CliRunner().invoke(main, ["resume", str(path), "--station", STATION, "--json", "--no-plot", *extra],
                             catch_exceptions=False)
    return res.exit_code, json.loads(res.stdout), res.stderr


def _rows_on_disk(path: Path) -> int:
    try:
        return len(load_run(path).streams.get("hold", ()))
    except (OSError, KeyError):
        return 0


def test_a_killed_hold_is_resumed_into_a_new_segment(tmp_path):
    real_clock = station_file(tmp_path, lambda d: d["simulation"].update(clock="real"))
    out = tmp_path / "runs"
    interval_s, readings = 0.1, 360
    cmd = [sys.executable, "-m", "labctl.cli", "run", "hold", "--station", str(real_clock), "--out", str(out),
           "--set", f"duration_h={readings * interval_s / 3600}", "--set", f"interval_s={interval_s}", "--json"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        path = None
        while time.monotonic() < deadline and proc.poll() is None:
            files = list(out.rglob("*.h5"))
            if files and _rows_on_disk(files[0]) >= 15:
                path = files[0]
                break
            time.sleep(0.2)
        assert path is not None, proc.stderr.read().decode() if proc.poll() is not None else "no rows in 60 s"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        reap(proc)

    before = load_run(path)
    kept = len(before.streams["hold"])
    assert before.status == "interrupted" and 15 <= kept < readings
    code, result, stderr = _resume(path)
    assert code == 0, stderr
    assert result["status"] == "completed" and result["file"] == str(path)
    results = result["results"]
    assert results["rows"] == readings == results["readings_planned"]
    first, second = results["segments"]
    assert (first["status"], first["reason"]) == ("interrupted", "start")
    assert (second["status"], second["reason"]) == ("completed", "resumed after interrupted")
    assert first["end"] == before.info["heartbeat"] and second["first_rows"] == {"hold": kept}
    (gap,) = results["gaps"]
    assert (gap["start"], gap["end"], gap["reason"]) == (first["end"], second["start"], "resumed after interrupted")
    assert gap["duration_s"] > 0

    after = load_run(path)
    hold = after.streams["hold"]
    assert after.status == "completed" and after.info["run_id"] == before.info["run_id"]
    # each reading once, in its own slot k·interval of the one schedule across both segments: on this real clock
    # a reading may be late when the machine is busy (the next ones catch up), never early, and never twice
    times, slots = hold["time_s"].to_numpy(), interval_s * np.arange(readings)
    assert np.all(np.diff(times) > 0)
    assert np.all(times >= slots - 0.05), times[times < slots - 0.05]
    assert np.median(np.abs(times - slots)) < 0.05 and abs(times[-1] - slots[-1]) < 0.5
    assert times[kept] >= slots[kept] - 0.05  # the resumed segment goes on in the slot after the last reading
    assert list(hold["segment"]) == [0] * kept + [1] * (readings - kept)
    for column in ("time_s", "voltage_V", "current_A"):  # what was on disk before the kill is untouched
        np.testing.assert_array_equal(hold[column][:kept], before.streams["hold"][column])
    assert any("segment 1 started: resumed after interrupted" in e for e in after.events)


def _aborted_hold(out: Path, after_rows: int, **params) -> Path:
    """A hold on the virtual clock aborted (as by Ctrl-C or a GUI's stop) after ``after_rows`` readings."""
    station = Station(parse_station(default_station()))
    procedure = HoldProcedure()
    for name, value in params.items():
        setattr(procedure, name, value)
    engine = RunEngine(station, out, sample="cell-7")

    def stop_after(name, doc):
        if name == "event" and doc.seq_num == after_rows:
            engine.abort()

    engine.subscribe(stop_after)
    result = engine.run(procedure)
    station.close()
    assert result.status == "aborted"
    return result.path


def test_an_aborted_hold_goes_on_where_it_stopped_with_the_reason_given(tmp_path):
    path = _aborted_hold(tmp_path, 40, duration_h=0.1, interval_s=3.0, bias="sc")
    assert len(load_run(path).streams["hold"]) == 40
    code, result, stderr = _resume(path, "--reason", "lamp replaced")
    assert code == 0, stderr
    assert result["results"]["rows"] == 120
    assert [s["status"] for s in result["results"]["segments"]] == ["aborted", "completed"]
    assert result["results"]["gaps"][0]["reason"] == "lamp replaced"
    run = load_run(path)
    np.testing.assert_allclose(run.streams["hold"]["time_s"], 3.0 * np.arange(120), atol=1e-6)
    assert run.info["sample"] == "cell-7" and run.parameters["bias"] == "sc"
    assert run.results["rows"] == 120  # the analysis of the whole run, in the file too


def test_show_and_plot_a_resumed_hold(tmp_path):
    path = _aborted_hold(tmp_path, 10, duration_h=0.01, interval_s=2.0)
    assert _resume(path)[0] == 0
    shown = CliRunner().invoke(main, ["show", str(path)])
    assert shown.exit_code == 0, shown.output
    assert "stream hold: 18 rows" in shown.output and "gap 1: " in shown.output
    plotted = CliRunner().invoke(main, ["plot", str(path), "--out", str(tmp_path / "hold.png")])
    assert plotted.exit_code == 0, plotted.output
    assert (tmp_path / "hold.png").stat().st_size > 10_000
    import matplotlib.pyplot as plt

    from labctl.plotting import figure

    fig = figure(load_run(path))
    try:
        data, boundary = fig.axes[0].lines
        np.testing.assert_allclose(data.get_xdata(), 2.0 * np.arange(18) / 3600)  # one run, time held in hours
        assert list(boundary.get_xdata()) == [20.0 / 3600] * 2  # the resumed segment starts at reading 10
    finally:
        plt.close(fig)


@pytest.mark.parametrize("case", ["completed", "jv"])
def test_a_run_that_cannot_be_resumed_is_refused_in_one_line(tmp_path, case):
    if case == "completed":
        args = ["run", "hold", "--set", "duration_h=0.001", "--set", "interval_s=1"]
        fragment = "status completed: cannot be resumed (there is nothing left to do)"
    else:
        args = ["run", "jv", "--set", "direction=reverse"]
        fragment = "procedure 'jv' cannot be resumed; allowed: hold"
    made = CliRunner().invoke(main, [*args, "--station", STATION, "--out", str(tmp_path), "--json", "--no-plot"])
    path = Path(json.loads(made.stdout)["file"])
    if case == "jv":  # an interrupted J-V: still not resumable
        import h5py

        with h5py.File(path, "a") as f:
            f["entry/status"][()] = "aborted"
    mtime = path.stat().st_mtime_ns
    code, result, stderr = _resume(path)
    assert code == 2 and result["status"] == "error" and fragment in result["error"]
    assert len(stderr.strip().splitlines()) == 1 and fragment in stderr
    assert path.stat().st_mtime_ns == mtime  # the file was not touched


def test_a_run_still_being_written_is_refused(tmp_path):
    from labctl.storage import RunWriter

    path = tmp_path / "live.h5"
    writer = RunWriter(path)  # alive in this process: its heartbeat is fresh and its PID exists
    try:
        writer.write_metadata(run_id="r1", procedure="hold", sample="s", operator="o", area_cm2=None,
                              parameters={}, station={}, idn={}, software_version="", start_time="")
        writer.flush()
        code, result, stderr = _resume(path)
    finally:
        writer.close("aborted")
    assert code == 2 and "status running: cannot be resumed (it is still being written)" in result["error"]
