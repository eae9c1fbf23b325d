"""Run files in segments: reopening a run appends a segment; readers see one continuous run, its segments and gaps."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from labctl.cli import main
from labctl.export import export_csv
from labctl.storage import RunFileError, RunWriter, load_run
from tests.helpers import reap
from tests.test_storage import _writer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _rows(w: RunWriter, ks: range) -> None:
    for k in ks:
        w.append("jv", {"time_s": float(k), "voltage_V": 0.01 * k, "j_mA_cm2": 18.0 - 0.1 * k, "scan": k % 3})


def _resume(path, **kw) -> RunWriter:
    """Reopen ``path`` the way a resuming engine does: same metadata and streams as the first segment."""
    w = RunWriter(path, resume=True, **kw)
    from tests.test_storage import COLUMNS

    w.write_metadata(run_id="r1", procedure="jv", sample="A17", operator="op", area_cm2=0.049,
                     parameters={"step_V": (0.01, "V")}, station={}, software_version="0.1.0",
                     idn={"smu": "KEITHLEY INSTRUMENTS INC.,MODEL 2400,1,C30"}, start_time="ignored")
    w.create_stream("jv", COLUMNS, signal="j_mA_cm2", axes="voltage_V")
    return w


def test_a_reopened_run_appends_a_segment_and_reads_as_one_run(tmp_path):
    path = tmp_path / "run.h5"
    w = _writer(path)
    _rows(w, range(0, 7))
    w.close("aborted")
    w = _resume(path)
    assert w.segment == 1
    _rows(w, range(7, 12))
    w.close("completed")

    run = load_run(path)
    assert run.status == "completed" and "end_time" in run.info
    np.testing.assert_array_equal(run.streams["jv"]["time_s"], np.arange(12.0))  # one continuous stream
    np.testing.assert_array_equal(run.streams["jv"]["scan"], np.arange(12) % 3)
    assert [s["status"] for s in run.segments] == ["aborted", "completed"]
    assert [s["reason"] for s in run.segments] == ["start", "resumed after aborted"]
    assert [s["first_rows"] for s in run.segments] == [{}, {"jv": 7}]
    assert all(s["end"] for s in run.segments)
    (gap,) = run.gaps
    assert gap["start"] == run.segments[0]["end"] and gap["end"] == run.segments[1]["start"]
    assert gap["reason"] == "resumed after aborted"
    elapsed = (datetime.fromisoformat(gap["end"]) - datetime.fromisoformat(gap["start"])).total_seconds()
    assert gap["duration_s"] == pytest.approx(elapsed, abs=2e-3) and 0 <= gap["duration_s"] < 5
    assert any("segment 1 started: resumed after aborted" in e for e in run.events)
    assert run.info["run_id"] == "r1" and run.parameters["step_V"] == 0.01  # the first segment's metadata


def test_a_second_writer_cannot_resume_a_live_run(tmp_path):
    path = tmp_path / "run.h5"
    w = _writer(path, flush_interval_s=0.1)
    try:
        with pytest.raises(RunFileError, match="still being written"):
            RunWriter(path, resume=True)
    finally:
        w.close("completed")


def test_a_different_run_cannot_be_appended(tmp_path):
    path = tmp_path / "run.h5"
    _writer(path).close("aborted")
    w = RunWriter(path, resume=True)
    with pytest.raises(RunFileError, match="run_id on disk is 'r1', not 'r2'"):
        w.write_metadata(run_id="r2", procedure="jv", sample="A17", operator="op", area_cm2=None, parameters={},
                         station={}, idn={}, software_version="", start_time="")
    w.close("failed")


def test_a_changed_instrument_is_noted(tmp_path):
    path = tmp_path / "run.h5"
    _writer(path).close("aborted")
    w = RunWriter(path, resume=True)
    w.write_metadata(run_id="r1", procedure="jv", sample="A17", operator="op", area_cm2=None, parameters={},
                     station={}, idn={"smu": "KEITHLEY INSTRUMENTS INC.,MODEL 2400,2,C30"}, software_version="",
                     start_time="")
    w.close("completed")
    assert any("segment 1: instrument smu is 'KEITHLEY INSTRUMENTS INC.,MODEL 2400,2,C30' (was 'KEITHLEY" in e
               for e in load_run(path).events)


def test_a_file_from_before_segments_reads_as_one_segment_and_can_be_resumed(tmp_path):
    path = tmp_path / "old.h5"
    w = _writer(path)
    _rows(w, range(3))
    w.close("aborted")
    with h5py.File(path, "a") as f:  # as written before segments existed
        del f["entry/segments"]
    run = load_run(path)
    assert [(s["status"], s["start"], s["end"]) for s in run.segments] == [
        ("aborted", run.info["start_time"], run.info["end_time"])]
    assert run.gaps == []
    w = _resume(path)
    _rows(w, range(3, 5))
    w.close("completed")
    run = load_run(path)
    assert [s["status"] for s in run.segments] == ["aborted", "completed"]
    assert run.segments[0]["start"] == "2026-01-01T00:00:00+00:00"
    assert len(run.streams["jv"]) == 5


def _kill_mid_run(path, rows_before_kill: int) -> float:
    """A child process writes rows (flushing every 0.1 s) and is SIGKILLed; returns the kill's UTC time."""
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {REPO!r})
        from tests.test_storage import _writer
        w = _writer({str(path)!r}, flush_interval_s=0.1)
        k = 0
        while True:
            w.append("jv", {{"time_s": k, "voltage_V": k, "j_mA_cm2": k, "scan": 0}})
            k += 1
            if k == {rows_before_kill}:
                w.flush()
                print("ready", flush=True)
            time.sleep(0.001)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.3)
        os.kill(proc.pid, signal.SIGKILL)
        killed = time.time()
        proc.wait(timeout=10)
    finally:
        reap(proc)
    return killed


def test_a_killed_run_is_interrupted_keeps_its_rows_and_resumes_after_them(tmp_path):
    path = tmp_path / "killed.h5"
    killed = _kill_mid_run(path, 200)
    run = load_run(path)
    n = len(run.streams["jv"])
    assert n >= 200  # everything up to the last flush
    np.testing.assert_array_equal(run.streams["jv"]["time_s"], np.arange(n))
    assert run.status == "interrupted"
    (seg,) = run.segments
    assert seg["status"] == "interrupted" and seg["end"] == run.info["heartbeat"]
    assert killed - 1.0 < datetime.fromisoformat(seg["end"]).timestamp() <= killed + 0.1

    w = _resume(path)
    w.append("jv", {"time_s": float(n), "voltage_V": float(n), "j_mA_cm2": float(n), "scan": 0})
    w.close("completed")
    run = load_run(path)
    np.testing.assert_array_equal(run.streams["jv"]["time_s"], np.arange(n + 1))
    assert [s["status"] for s in run.segments] == ["interrupted", "completed"]
    assert run.segments[0]["end"] == seg["end"]  # fixed in the file at the dead writer's last heartbeat
    (gap,) = run.gaps
    assert gap["reason"] == "resumed after interrupted" and gap["start"] == seg["end"]
    assert gap["duration_s"] >= time.time() - killed - 5  # the gap spans from the last heartbeat to the resume
    with h5py.File(path, "r") as f:
        assert [x.decode() for x in f["entry/segments/status"][()]] == ["interrupted", "completed"]


def test_show_and_export_see_one_run_across_segments(tmp_path):
    path = tmp_path / "run.h5"
    w = _writer(path)
    _rows(w, range(4))
    w.close("aborted")
    w = _resume(path, reason="lamp replaced")
    _rows(w, range(4, 9))
    w.close("completed")

    shown = CliRunner().invoke(main, ["show", str(path)])
    assert shown.exit_code == 0, shown.output
    assert "stream jv: 9 rows" in shown.output
    assert "segment 0: " in shown.output and ", aborted (start)" in shown.output
    assert ", completed (lamp replaced)" in shown.output
    assert "gap 1: " in shown.output

    (csv,) = export_csv(load_run(path), tmp_path)
    lines = csv.read_text().splitlines()
    assert sum(1 for line in lines if line.startswith("# segment ")) == 2
    assert '"reason": "lamp replaced"' in lines[[k for k, x in enumerate(lines) if x.startswith("# segment 1")][0]]
    data = [line for line in lines if not line.startswith("#")]
    assert data[0] == "time_s,voltage_V,j_mA_cm2,scan" and len(data) == 1 + 9
    assert [float(line.split(",")[0]) for line in data[1:]] == list(range(9))

    exported = CliRunner().invoke(main, ["export", str(path), "--csv", "--out", str(tmp_path / "x")])
    assert exported.exit_code == 0, exported.output
    assert (tmp_path / "x" / "run_jv.csv").read_text() == csv.read_text()


def test_a_column_written_past_the_others_by_a_killed_writer_is_cut_on_reading_and_on_resuming(tmp_path):
    path = tmp_path / "partial.h5"
    w = _writer(path)
    _rows(w, range(5))
    w.close("aborted")
    with h5py.File(path, "a") as f:  # as if the writer died after resizing one column of its next write
        f["entry/jv/time_s"].resize((6,))
        f["entry/jv/time_s"][5] = 99.0
    run = load_run(path)
    assert len(run.streams["jv"]) == 5 and list(run.streams["jv"]["time_s"]) == [0.0, 1.0, 2.0, 3.0, 4.0]
    w = _resume(path)
    _rows(w, range(5, 7))
    w.close("completed")
    run = load_run(path)
    np.testing.assert_array_equal(run.streams["jv"]["time_s"], np.arange(7.0))  # the stray value is gone
    assert run.segments[1]["first_rows"] == {"jv": 5}
