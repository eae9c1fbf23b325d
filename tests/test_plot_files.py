"""Plots and files as a person reads them (issue 7, item 9): curves in voltage order, a dark J–V on a log axis,
axes that fit the data, no empty groups, integer counts, units on every number, CSV without binary noise and
with its results as JSON, `labctl show` saying which bench and clock a run had."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import matplotlib.pyplot as plt
import numpy as np
import pytest
from click.testing import CliRunner

from labctl.cli import main
from labctl.export import export_csv
from labctl.plotting import figure
from labctl.storage import Column, RunWriter, load_run
from tests.helpers import REPO


def _run(tmp_path: Path, *settings: str) -> Path:
    args = ["run", "jv", "--station", str(REPO / "station.yaml"), "--out", str(tmp_path), "--json", "--no-plot"]
    for s in settings:
        args += ["--set", s]
    res = CliRunner().invoke(main, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return Path(json.loads(res.stdout)["file"])


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("runs")
    return {"light": _run(out), "qss": _run(out, "mode=qss"), "dark": _run(out, "light=false"),
            "dark_qss": _run(out, "light=false", "mode=qss")}


def _lines(run_file: Path):
    fig = figure(load_run(run_file))
    try:
        ax = fig.axes[0]
        return ax, [(line.get_label(), line.get_xdata(), line.get_ydata()) for line in ax.get_lines()
                    if not line.get_label().startswith("_")]
    finally:
        plt.close(fig)


def test_qss_points_are_plotted_in_voltage_order(runs):
    measured = load_run(runs["qss"]).streams["jv"]["voltage_V"].to_numpy()
    assert np.any(np.diff(measured) < 0)  # measured out of order (MPP search first), which made a zig-zag
    _, lines = _lines(runs["qss"])
    (label, v, _), = lines
    assert "quasi-steady-state" in label and np.all(np.diff(v) >= 0) and len(v) == len(measured)


def test_event_log_describes_the_mode_that_ran(runs):
    def plan(name):
        return next(e for e in load_run(runs[name]).events if " J-V " in e)

    assert "141 points/scan" in plan("light") and "light on" in plan("light")
    assert "qss, 10 grid points" in plan("qss") and "points/scan" not in plan("qss")
    dark_qss = plan("dark_qss")  # in the dark there is no Voc or MPP to search: the grid alone
    assert "10 grid points from -0.1 to 1.3 V" in dark_qss and "Voc" not in dark_qss and "light off" in dark_qss
    assert len(load_run(runs["dark_qss"]).streams["jv"]) == 10


def test_dark_jv_is_semilog_abs_j_with_dark_in_the_title(runs):
    ax, lines = _lines(runs["dark"])
    assert ax.get_yscale() == "log" and "dark" in ax.get_title()
    data = load_run(runs["dark"]).streams["jv"]
    scan0 = next(y for label, _, y in lines if label.startswith("scan 0"))
    j = data.loc[data.scan == 0, "j_mA_cm2"].to_numpy()
    np.testing.assert_allclose(np.sort(scan0), np.sort(np.abs(j[j != 0])))
    assert any("single-diode fit" in label for label, _, _ in lines)


def test_light_jv_axes_fit_the_data(runs):
    ax, _ = _lines(runs["light"])
    data = load_run(runs["light"]).streams["jv"]
    v, j = data["voltage_V"].to_numpy(), data["j_mA_cm2"].to_numpy()
    y_lo, y_hi = ax.get_ylim()
    x_lo, x_hi = ax.get_xlim()
    shown = v[(j >= y_lo) & (j <= y_hi)]
    span = shown.max() - shown.min()
    assert x_lo <= shown.min() and x_hi >= shown.max()  # every point in the window is in view
    assert x_hi - shown.max() < 0.05 * span and shown.min() - x_lo < 0.05 * span  # and no empty band beside it


def test_staircase_file_has_no_empty_qss_trace_group_and_qss_has_it(runs):
    with h5py.File(runs["light"], "r") as f:
        assert "qss_trace" not in f["entry"] and f["entry"].attrs["default"] == "jv"
    with h5py.File(runs["qss"], "r") as f:
        assert f["entry/qss_trace/time_s"].shape[0] > 0


def test_counts_are_integers_and_every_number_has_units(runs):
    with h5py.File(runs["dark"], "r") as f:
        assert f["entry/results/dark/reverse/points"].dtype.kind == "i"
        assert f["entry/results/dark/reverse/ideality"].attrs["units"] == "1"
        assert f["entry/results/dark/reverse/j0_A_cm2"].attrs["units"] == "A/cm^2"
    for name in ("light", "qss", "dark"):
        missing = []
        with h5py.File(runs[name], "r") as f:
            def visit(path, obj, missing=missing):
                if isinstance(obj, h5py.Dataset) and obj.dtype.kind in "iuf" and "units" not in obj.attrs:
                    missing.append(path)
            f.visititems(visit)
        assert not missing, f"{name}: numbers without units: {missing}"
    with h5py.File(runs["light"], "r") as f:
        assert f["entry/results/reverse/points_in_compliance"].dtype.kind == "i"
        assert f["entry/parameters/mismatch"].attrs["units"] == "1"
        assert f["entry/jv/scan"].attrs["units"] == "1"


def test_eqe_is_declared_dimensionless_and_every_numeric_column_has_units():
    from procedures.eqe import EQECalibrationProcedure, EQEProcedure
    from procedures.jv import JVProcedure

    cols = {c.name: c for c in EQEProcedure.STREAMS["eqe"].columns}
    assert cols["eqe"].units == "1"
    for procedure in (EQEProcedure, EQECalibrationProcedure, JVProcedure):
        for stream, spec in procedure.STREAMS.items():
            # integer columns (indices, 0/1 flags) are stored as "1"; a float column must say its unit
            blank = [c.name for c in spec.columns if c.dtype == "f8" and not c.units]
            assert not blank, f"{procedure.NAME} {stream}: numeric columns without units: {blank}"


def test_csv_has_no_float_noise_and_results_as_json(tmp_path):
    path = tmp_path / "r.h5"
    w = RunWriter(path)
    w.create_stream("jv", [Column("time_s", "s"), Column("voltage_V", "V")], signal="voltage_V", axes="time_s")
    w.append("jv", {"time_s": 0.1 + 0.2, "voltage_V": 1.1 * 3})  # 0.30000000000000004, 3.3000000000000003
    w.append("jv", {"time_s": 1.0 / 3.0, "voltage_V": 1.23456789012e-7})
    w.write_results({"reverse": {"voc_V": 1.17, "flags": ["x"], "jsc_mA_cm2": None}, "points": 3})
    w.close("completed")
    run = load_run(path)
    (csv,) = export_csv(run, tmp_path / "csv")
    text = csv.read_text()
    rows = [line for line in text.splitlines() if not line.startswith("#")]
    assert rows[1] == "0.3,3.3" and "0000000000000" not in text.split("# result")[0] + "\n".join(rows)
    assert float(rows[2].split(",")[0]) == pytest.approx(1 / 3, rel=1e-15)
    assert float(rows[2].split(",")[1]) == 1.23456789012e-7
    results = {line.split(":", 1)[0][len("# result "):]: json.loads(line.split(":", 1)[1])
               for line in text.splitlines() if line.startswith("# result ")}
    assert results["reverse"] == {"voc_V": 1.17, "flags": ["x"], "jsc_mA_cm2": None}
    assert results["units"]["reverse/voc_V"] == "V" and results["units"]["points"] == "1"


def test_show_states_bench_and_clock(runs, tmp_path):
    res = CliRunner().invoke(main, ["show", str(runs["light"])], catch_exceptions=False)
    assert "bench: simulated (in-process" in res.stdout and "clock: virtual" in res.stdout
    from labctl.cli import _bench_and_clock

    real = {"simulation": {"enabled": False}, "instruments": {"smu": {"resource": "GPIB0::24::INSTR"}}}
    assert _bench_and_clock(real) == ("real instruments", "real")
    served = {"simulation": {"enabled": True, "clock": "real", "operator_resource": "TCPIP::127.0.0.1::5099::SOCKET"},
              "instruments": {"smu": {"resource": "TCPIP::127.0.0.1::5001::SOCKET"}}}
    bench, clock = _bench_and_clock(served)
    assert "simulated, served over TCP" in bench and clock == "real"
