"""HDF5 run files: layout, NeXus default plot, reading back, CSV export, crash safety."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import h5py
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from labctl.export import export_csv
from labctl.storage import Column, RunWriter, load_run

COLUMNS = [Column("time_s", "s"), Column("voltage_V", "V"), Column("j_mA_cm2", "mA/cm^2"), Column("scan", "", "i4")]


def _writer(path, **kw):
    w = RunWriter(path, **kw)
    w.write_metadata(
        run_id="r1", procedure="jv", sample="A17", operator="op", area_cm2=0.049,
        parameters={"step_V": (0.01, "V"), "direction": ("reverse", ""), "light": (True, "")},
        station={"station": {"name": "x"}}, idn={"smu": "KEITHLEY INSTRUMENTS INC.,MODEL 2400,1,C30"},
        software_version="0.1.0", start_time="2026-01-01T00:00:00+00:00",
    )
    w.create_stream("jv", COLUMNS, signal="j_mA_cm2", axes="voltage_V")
    return w


def test_layout_and_round_trip(tmp_path):
    path = tmp_path / "run.h5"
    w = _writer(path)
    for k in range(10):
        w.append("jv", {"time_s": k * 0.1, "voltage_V": k * 0.01, "j_mA_cm2": 18.0 - k, "scan": 0})
    w.write_results({"reverse": {"voc_V": 1.17, "ff": 0.78, "flags": ["mpp_fit_fallback_discrete"]}, "note": "ok",
                     "warnings": ["reverse scan: 3 points in current compliance"]})
    w.close("completed")
    with h5py.File(path) as f:
        assert [x.decode() for x in f["entry/results/reverse/flags"][()]] == ["mpp_fit_fallback_discrete"]
        assert f["entry/results/warnings"].shape == (1,)
        assert f.attrs["default"] == "entry"
        assert f["entry"].attrs["NX_class"] == "NXentry"
        assert f["entry"].attrs["default"] == "jv"
        jv = f["entry/jv"]
        assert jv.attrs["NX_class"] == "NXdata" and jv.attrs["signal"] == "j_mA_cm2"
        assert list(jv.attrs["axes"]) == ["voltage_V"]
        assert jv["voltage_V"].attrs["units"] == "V"
        assert f["entry/parameters/step_V"].attrs["units"] == "V"
        assert f["entry/results/reverse/voc_V"].attrs["units"] == "V"
    run = load_run(path)
    assert run.status == "completed"
    assert run.info["sample"] == "A17" and run.info["run_id"] == "r1"
    assert run.parameters == {"step_V": 0.01, "direction": "reverse", "light": True}
    assert run.idn["smu"].startswith("KEITHLEY")
    assert run.results["reverse"]["voc_V"] == 1.17
    assert run.results["reverse"]["flags"] == ["mpp_fit_fallback_discrete"]
    np.testing.assert_allclose(run.streams["jv"]["j_mA_cm2"], 18.0 - np.arange(10))
    assert "end_time" in run.info


def test_periodic_flush_makes_rows_visible_while_open(tmp_path):
    path = tmp_path / "run.h5"
    w = _writer(path, flush_interval_s=0.2)
    w.append("jv", {"time_s": 0.0, "voltage_V": 0.5, "j_mA_cm2": 1.0, "scan": 0})
    time.sleep(0.6)  # the background flusher must write the pending row without another append
    assert len(load_run(path).streams["jv"]) == 1
    assert load_run(path).status == "running"
    w.close("aborted")
    assert load_run(path).status == "aborted"


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64), min_size=0, max_size=50))
def test_values_survive_round_trip(tmp_path_factory, values):
    path = tmp_path_factory.mktemp("h") / "run.h5"
    w = _writer(path)
    for v in values:
        w.append("jv", {"voltage_V": v})
    w.close("completed")
    got = load_run(path).streams["jv"]
    np.testing.assert_array_equal(got["voltage_V"].to_numpy(), np.asarray(values, dtype=float))
    assert np.isnan(got["time_s"].to_numpy()).all()


def test_sigkill_leaves_a_readable_file_with_flushed_rows(tmp_path):
    path = tmp_path / "killed.h5"
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(os.getcwd())!r})
        from tests.test_storage import _writer
        w = _writer({str(path)!r}, flush_interval_s=0.1)
        k = 0
        while True:
            w.append("jv", {{"time_s": k, "voltage_V": k, "j_mA_cm2": k, "scan": 0}})
            k += 1
            if k == 500:
                print("ready", flush=True)
            time.sleep(0.0005)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    run = load_run(path)
    n = len(run.streams["jv"])
    assert n >= 500
    np.testing.assert_array_equal(run.streams["jv"]["voltage_V"], np.arange(n))
    assert run.status == "interrupted"  # truthful: the run never ended, and its writer is gone
    with h5py.File(path, "r", locking=False) as f:
        assert f["entry/status"][()].decode() == "running"  # the file itself is left as the writer left it


def test_csv_export(tmp_path):
    path = tmp_path / "run.h5"
    w = _writer(path)
    w.append("jv", {"time_s": 0.0, "voltage_V": 0.5, "j_mA_cm2": 1.0, "scan": 0})
    w.close("completed")
    (csv,) = export_csv(load_run(path))
    text = csv.read_text()
    assert "# parameter step_V: 0.01 V" in text
    assert "time_s,voltage_V,j_mA_cm2,scan" in text
