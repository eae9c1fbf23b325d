"""Nothing lost (issue 7 item 4): a run killed mid-scan keeps what was measured up to about a second before the
kill, events included; the progress moves with the data; a file whose writer died says "interrupted".

The kill tests run `python -m labctl.cli run jv` in a subprocess on the simulated bench with a real clock and
SIGKILL it mid-sweep. What should have been kept is computed from the requested timing alone: point k of the
sweep ends (k + 1) point times after the sweep starts, and the sweep starts after the run file appears.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from drivers.keithley2400 import MIN_CHUNKED_POINT_S, sweep_chunks
from labctl.cli import main
from labctl.config import parse_station
from labctl.engine import RunEngine
from labctl.plugins import registration
from labctl.station import Station
from labctl.storage import RunWriter, load_run, writer_gone, writer_identity
from sim_instruments import make_emulator
from tests.helpers import REPO, default_station, make_procedure, reap

STEP_V = 0.01  # the J-V default step
FLUSH_S = 1.0  # the run engine's default flush interval


def _real_clock_station(tmp_path: Path, driver: str) -> Path:
    data = default_station()
    data["simulation"]["clock"] = "real"
    data["instruments"]["smu"]["driver"] = driver
    path = tmp_path / "station.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _kill_mid_scan(tmp_path: Path, driver: str, rate_V_s: float, kill_after_s: float) -> tuple[Path, float, float]:
    """Start a one-direction J-V scan, SIGKILL it ``kill_after_s`` after its file appears.

    Returns (run file, seconds from the file appearing to the kill, UTC time of the kill as a POSIX stamp)."""
    out = tmp_path / "runs"
    cmd = [sys.executable, "-m", "labctl.cli", "run", "jv", "--station", str(_real_clock_station(tmp_path, driver)),
           "--out", str(out), "--no-plot", "--set", f"scan_rate_V_s={rate_V_s}", "--set", "direction=reverse"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not list(out.rglob("*.h5")):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the run file never appeared"
            time.sleep(0.02)
        t_file = time.monotonic()
        time.sleep(kill_after_s)
        os.kill(proc.pid, signal.SIGKILL)
        t_kill, utc_kill = time.monotonic(), time.time()
        proc.wait(timeout=10)
    finally:
        reap(proc)
    return next(out.rglob("*.h5")), t_kill - t_file, utc_kill


def _assert_kept(path: Path, since_file_s: float, utc_kill: float, point_s: float, slack_points: int) -> int:
    run = load_run(path)
    rows = len(run.streams["jv"])
    # points finished one second (the flush interval) before the kill, by the requested timing; the sweep starts
    # a little after the file appears (configuration), which ``slack_points`` allows for
    expected = int((since_file_s - FLUSH_S) / point_s)
    assert expected - slack_points <= rows <= int(since_file_s / point_s) + 1, (rows, expected)
    assert any(event.endswith("started") for event in run.events), run.events
    assert run.status == "interrupted"
    heartbeat = datetime.fromisoformat(run.info["heartbeat"]).timestamp()
    assert utc_kill - 2 * FLUSH_S < heartbeat <= utc_kill + 0.1  # the writer beat until it was killed
    # the rows are the reverse scan from stop_V, in order, one step apart
    v = run.streams["jv"]["voltage_V"].to_numpy()
    np.testing.assert_allclose(v, 1.3 - STEP_V * np.arange(rows), atol=1e-4)
    return rows


def test_killed_slow_2400_scan_keeps_rows_up_to_a_second_before_the_kill(tmp_path):
    """0.02 V/s at 10 mV: 0.5 s per point, read in pieces; before the fix a kill kept 0 rows and 0 events."""
    path, since_file_s, utc_kill = _kill_mid_scan(tmp_path, "keithley2400", 0.02, kill_after_s=5.0)
    _assert_kept(path, since_file_s, utc_kill, point_s=STEP_V / 0.02, slack_points=1)


def test_killed_2450_scan_keeps_rows_read_from_the_buffer_as_it_fills(tmp_path):
    """The default 0.1 V/s (0.1 s per point): the 2450's buffer is read while the sweep runs."""
    path, since_file_s, utc_kill = _kill_mid_scan(tmp_path, "keithley2450", 0.1, kill_after_s=4.0)
    _assert_kept(path, since_file_s, utc_kill, point_s=STEP_V / 0.1, slack_points=4)


# -- the progress bar moves with the data ------------------------------------------------------------------------
@pytest.mark.parametrize("driver, rate_V_s, stop_V", [("keithley2400", 0.02, 0.07), ("keithley2450", 0.1, 0.2)])
def test_progress_moves_with_the_rows_during_a_sweep(tmp_path, driver, rate_V_s, stop_V):
    data = default_station()
    data["simulation"]["clock"] = "real"
    data["instruments"]["smu"]["driver"] = driver
    station = Station(parse_station(data))
    seen: list[tuple[float, int]] = []
    rows = []  # the jv events so far (the engine keeps no rows: a subscriber counts them)

    def watch(name, doc):
        if name == "event" and doc.stream == "jv":
            rows.append(doc.seq_num)
        elif name == "progress":
            seen.append((100.0 * doc.fraction, len(rows)))

    engine = RunEngine(station, tmp_path, sample="progress", subscribers=[watch])
    procedure = make_procedure(start_V=0.0, stop_V=stop_V, scan_rate_V_s=rate_V_s, direction="forward")
    result = engine.run(procedure)
    station.close()
    assert result.status == "completed", result.error
    n = procedure.points_per_scan()
    during = [(pct, rows) for pct, rows in seen if rows < n]
    assert len(during) >= 3, seen  # before the fix: one update, at the end of the scan
    for pct, rows in seen:
        assert pct == pytest.approx(100.0 * rows / n)


# -- the 2400's pieces keep the scan rate ------------------------------------------------------------------------
def test_chunk_rule_keeps_fast_sweeps_whole():
    assert sweep_chunks(141, 0.1, MIN_CHUNKED_POINT_S) == [141]  # the default scan: one piece
    assert sweep_chunks(141, 0.4999, MIN_CHUNKED_POINT_S) == [141]
    assert sweep_chunks(3, 0.3, MIN_CHUNKED_POINT_S) == [3]
    pieces = sweep_chunks(141, 0.5, MIN_CHUNKED_POINT_S)
    assert sum(pieces) == 141 and max(pieces) * 0.5 <= 1.0 and min(pieces) >= 1
    assert sweep_chunks(141, 1.0, MIN_CHUNKED_POINT_S) == [1] * 141
    assert sweep_chunks(5, 3.0, MIN_CHUNKED_POINT_S) == [1] * 5


@pytest.mark.parametrize("point_s, points", [(0.5, 9), (1.0, 5)])
def test_2400_pieces_keep_the_achieved_scan_rate_within_one_percent(point_s, points):
    """Instrument time stamps across the piece boundaries against the requested point time (real clock)."""
    data = default_station()
    data["simulation"]["clock"] = "real"
    station = Station(parse_station(data))
    station.connect(["smu"])
    smu = station["smu"]
    try:
        smu.configure_voltage_source(0.02, nplc=1.0)
        delay_s = point_s - smu.measurement_time_s(1.0, 0.0)
        sweep = smu.sweep_voltage(0.0, STEP_V * (points - 1), points, delay_s)
    finally:
        station.close()
    sizes = sweep_chunks(points, point_s, MIN_CHUNKED_POINT_S)
    assert len(sizes) > 1
    steps = np.diff(sweep.time_s)
    boundary = steps[np.cumsum(sizes)[:-1] - 1]
    rate_V_s = STEP_V / point_s
    assert np.median(STEP_V / boundary / rate_V_s - 1) == pytest.approx(0, abs=0.01)
    whole = STEP_V * (points - 1) / sweep.time_s[-1]
    assert whole / rate_V_s == pytest.approx(1, abs=0.01)
    np.testing.assert_allclose(sweep.voltage_V, STEP_V * np.arange(points), atol=1e-3)


# -- the 2450 emulator fills its buffer while the sweep runs ------------------------------------------------------
def test_2450_emulator_buffer_fills_while_the_sweep_runs_and_wai_waits():
    data = default_station()
    data["simulation"]["clock"] = "real"
    data["instruments"]["smu"]["driver"] = "keithley2450"
    station = Station(parse_station(data))
    emulator = make_emulator(registration("keithley2450"), station.bench)
    try:
        for command in (":SOUR:FUNC VOLT", ':SENS:FUNC "CURR"', ":SOUR:VOLT:ILIM 0.02", ":SENS:CURR:NPLC 0.1",
                        ':TRAC:MAKE "b", 100', ":OUTP ON", ':SOUR:SWE:VOLT:LIN 0, 0.5, 6, 0.1, 1, BEST, OFF, OFF, "b"',
                        ":INIT"):
            assert emulator.handle(command) is None
        assert emulator.handle(":TRIG:STAT?").startswith("RUNNING")
        assert int(emulator.handle(':TRAC:ACT? "b"')) < 6  # the sweep takes ~0.65 s; :INIT returned at once
        time.sleep(0.35)
        partial = int(emulator.handle(':TRAC:ACT? "b"'))
        assert 1 <= partial < 6
        assert len(emulator.handle(f':TRAC:DATA? 1, {partial}, "b", SOUR').split(",")) == partial
        emulator.handle("*WAI")
        assert emulator.handle(':TRAC:ACT? "b"') == "6" and emulator.handle(":TRIG:STAT?").startswith("IDLE")
        emulator.handle(":INIT")
        emulator.handle(":ABOR")
        assert emulator.handle(":TRIG:STAT?").startswith("IDLE") and int(emulator.handle(':TRAC:ACT? "b"')) < 12
    finally:
        emulator.handle("*RST")
        station.close()


# -- events are flushed like rows; a dead writer's file says so -----------------------------------------------------
def _killed_writer(tmp_path: Path) -> tuple[Path, float]:
    path = tmp_path / "killed.h5"
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from labctl.storage import RunWriter
        w = RunWriter({str(path)!r})
        w.log_event("run r1 started")
        print("ready", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(1.6)  # more than one flush interval, no rows: the event must still reach the disk
        running = load_run(path)
        assert running.status == "running"  # alive and beating
        os.kill(proc.pid, signal.SIGKILL)
        utc_kill = time.time()
        proc.wait(timeout=10)
    finally:
        reap(proc)
    return path, utc_kill


def test_events_are_flushed_and_a_killed_writer_reads_as_interrupted(tmp_path):
    path, utc_kill = _killed_writer(tmp_path)
    run = load_run(path)
    assert [e.split(" ", 1)[1] for e in run.events] == ["run r1 started"]
    assert run.status == "interrupted"
    assert utc_kill - 2 * FLUSH_S < datetime.fromisoformat(run.info["heartbeat"]).timestamp() <= utc_kill + 0.1

    shown = CliRunner().invoke(main, ["show", str(path)])
    assert shown.exit_code == 0, shown.output
    assert f"interrupted (the run never ended: its writer stopped; last heartbeat {run.info['heartbeat']})" in (
        shown.output)


def test_stale_heartbeat_rule():
    now = datetime(2026, 12, 1, 12, 0, 0, tzinfo=timezone.utc)
    beat = (now - timedelta(seconds=4.9)).isoformat()
    assert not writer_gone(beat, 1.0, now=now)  # within 5 flush intervals: still running
    assert writer_gone((now - timedelta(seconds=5.1)).isoformat(), 1.0, now=now)
    assert not writer_gone((now - timedelta(seconds=9.0)).isoformat(), 2.0, now=now)  # 5 x 2 s
    assert not writer_gone(None, 1.0, now=now)  # a file from before heartbeats: cannot tell
    fresh = now.isoformat()
    if os.name == "posix":
        assert not writer_gone(fresh, 1.0, os.getpid(), writer_identity(), now=now)  # this process is alive
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait(timeout=10)
        assert writer_gone(fresh, 1.0, dead.pid, writer_identity(), now=now)  # gone at once, no need to wait
        assert not writer_gone(fresh, 1.0, dead.pid, "another-host", now=now)  # a PID elsewhere is not checked


def test_the_heartbeat_goes_on_without_rows_or_events(tmp_path):
    path = tmp_path / "live.h5"
    writer = RunWriter(path, flush_interval_s=0.2)
    try:
        first = datetime.fromisoformat(load_run(path).info["heartbeat"])
        time.sleep(1.0)  # five flush intervals with nothing to write
        run = load_run(path)
        assert run.status == "running"
        assert datetime.fromisoformat(run.info["heartbeat"]) - first >= timedelta(seconds=0.6)
    finally:
        writer.close("completed")
    assert load_run(path).status == "completed"
