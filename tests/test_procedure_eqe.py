"""End-to-end EQE on the simulated bench: calibration, EQE vs the configured cell, Jsc vs J–V, second order."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from labctl.config import ConfigError, parse_station
from labctl.engine import RunEngine
from labctl.station import Station, dut_eqe_function
from labctl.storage import load_run
from procedures.eqe import EQECalibrationProcedure, EQEProcedure
from tests.helpers import default_station, run_jv

GRID = {"start_nm": 300.0, "stop_nm": 900.0, "step_nm": 10.0}


def _run(tmp_path, station_data, procedure_cls, **params):
    station = Station(parse_station(station_data))
    proc = procedure_cls()
    for name, value in params.items():
        setattr(proc, name, value)
    result = RunEngine(station, tmp_path, sample="eqe-test").run(proc)
    return result, station


@pytest.fixture(scope="module")
def bench_runs(tmp_path_factory):
    """A calibration, a J–V and an EQE run on the default simulated station (shared by several tests)."""
    out = tmp_path_factory.mktemp("eqe")
    data = default_station()
    cal, _ = _run(out, data, EQECalibrationProcedure, **GRID)
    jv, _ = run_jv(out, data, direction="reverse")
    eqe, station = _run(out, data, EQEProcedure, jv_file=str(jv.path), **GRID)
    return {"cal": cal, "jv": jv, "eqe": eqe, "station": station, "data": data, "out": out}


def test_runs_complete_and_instruments_end_safe(bench_runs):
    for key in ("cal", "jv", "eqe"):
        assert bench_runs[key].status == "completed", (key, bench_runs[key].error)
    station = bench_runs["station"]
    assert station.bench.optics.mono_shutter_open is False  # safe state closes the monochromator shutter
    assert station.bench.light.shutter_open is False


def test_measured_eqe_matches_configured_within_1pct_absolute(bench_runs):
    data = load_run(bench_runs["eqe"].path).streams["eqe"]
    cfg = parse_station(bench_runs["data"])
    dev = cfg.simulation.device
    divider = dev.rsh_ohm_cm2 / (dev.rs_ohm_cm2 + dev.rsh_ohm_cm2)  # small-signal short-circuit collection
    expected = dut_eqe_function(cfg)(data.wavelength_nm.to_numpy()) * divider
    error = np.abs(data.eqe.to_numpy() - expected)
    assert error.max() < 0.01, data.assign(expected=expected, error=error).sort_values("error").tail()
    assert set(data.reference_run) == {bench_runs["cal"].run_id}


def test_integrated_jsc_matches_jv_within_2pct(bench_runs):
    results = bench_runs["eqe"].results
    assert results["jsc_jv_mA_cm2"] == pytest.approx(bench_runs["jv"].results["reverse"]["jsc_mA_cm2"])
    assert abs(results["jsc_ratio"] - 1) < 0.02, results
    assert {"jsc_integrated_mA_cm2", "wavelength_min_nm", "wavelength_max_nm"} <= set(results)


def test_calibration_reports_the_si_ge_overlap(bench_runs):
    overlap = bench_runs["cal"].results["overlap_max_deviation"]
    assert overlap is not None and overlap < 0.02  # the simulated detectors follow their own tables exactly
    cal = load_run(bench_runs["cal"].path).streams["calibration"]
    assert set(cal.detector) == {"si", "ge"}


def test_points_record_their_settings(bench_runs):
    data = load_run(bench_runs["eqe"].path).streams["eqe"]
    for col in ("wavelength_nm", "filter", "grating", "time_constant_s", "sensitivity", "phase_deg", "overload",
                "reference_run", "converged", "settle_time_s"):
        assert col in data
    assert set(data.grating) == {1, 2} and set(data["filter"]) == {1, 2, 3}
    assert (data.converged == 1).mean() > 0.8


def test_missing_order_sorting_filter_shows_second_order_artefact(bench_runs, tmp_path):
    """With the long-pass filters taken out of the table, λ/2 light reaches the cell: below the band gap
    (λ > 800 nm) the device responds to 400-450 nm light and the 'EQE' is far from zero."""
    good = load_run(bench_runs["eqe"].path).streams["eqe"]
    data = copy.deepcopy(bench_runs["data"])
    for row in data["eqe"]["order_sorting"]:
        row["filter"] = 1  # open slot everywhere
    cal, _ = _run(tmp_path, data, EQECalibrationProcedure, **GRID)
    bad_run, _ = _run(tmp_path, data, EQEProcedure, calibration_file=str(cal.path), **GRID)
    bad = load_run(bad_run.path).streams["eqe"]
    assert not bench_runs["eqe"].results["order_sorting_problems"]
    assert any("second" in p or "order" in p for p in bad_run.results["order_sorting_problems"])
    sub_gap = good.wavelength_nm >= 850
    assert good.eqe[sub_gap].max() < 0.02
    assert bad.eqe[bad.wavelength_nm >= 850].min() > 0.1
    # below twice the lamp's shortest wavelength there is nothing to sort: both agree
    short = good.wavelength_nm <= 500
    np.testing.assert_allclose(bad.eqe[short], good.eqe[short], atol=0.01)


def test_eqe_without_calibration_is_a_clear_error(tmp_path):
    station = Station(parse_station(default_station()))
    with pytest.raises(ConfigError, match="eqe-calibration"):
        RunEngine(station, tmp_path).run(EQEProcedure(**GRID))
    assert station.instruments == {}


def test_wavelength_outside_order_sorting_table_is_rejected(tmp_path):
    station = Station(parse_station(default_station()))
    proc = EQECalibrationProcedure()
    proc.start_nm, proc.stop_nm = 220.0, 400.0
    with pytest.raises(ConfigError, match="220 nm is not covered by eqe.order_sorting"):
        RunEngine(station, tmp_path).run(proc)


def test_bias_light_with_high_reserve_leaves_the_linear_cell_eqe_unchanged(bench_runs, tmp_path):
    """White bias light adds ~0.9 mA DC: with a 1e3 V/A preamp and high reserve the chopped signal is still
    measured (the simulated cell is linear, so its EQE is unchanged); the lock-in must not overload."""
    data = copy.deepcopy(bench_runs["data"])
    data["eqe"]["preamp_gain_V_A"] = 1e3
    grid = {"start_nm": 500.0, "stop_nm": 700.0, "step_nm": 50.0}
    cal, _ = _run(tmp_path, data, EQECalibrationProcedure, reserve="High Reserve", **grid)
    biased, station = _run(tmp_path, data, EQEProcedure, calibration_file=str(cal.path), bias_light=True,
                           reserve="High Reserve", **grid)
    assert biased.status == "completed", biased.error
    frame = load_run(biased.path).streams["eqe"]
    assert frame.overload.sum() == 0
    np.testing.assert_allclose(frame.eqe, 0.6792 * 2000 / 2003.84, atol=0.01)
    assert station.bench.light.shutter_open is False  # the bias-light shutter is closed at the end
    # the same with normal reserve: the DC bias overloads the input on the range the signal wants, so the
    # ranging settles on a ≥ 10x less sensitive range (the DC really reaches the lock-in)
    normal, _ = _run(tmp_path, data, EQEProcedure, calibration_file=str(cal.path), bias_light=True,
                     reserve="Normal", **grid)
    assert load_run(normal.path).streams["eqe"].sensitivity.min() >= 10 * frame.sensitivity.max()


def test_sr570_preamp_sets_the_gain_used_for_the_data(bench_runs, tmp_path):
    """With an SR570 as the 'preamp' role, its sensitivity (not station.yaml's fixed gain) scales the data."""
    data = copy.deepcopy(bench_runs["data"])
    data["instruments"]["preamp"] = {"driver": "sr570", "resource": "sim://preamp", "baud_rate": 9600,
                                     "read_termination": "\r", "write_termination": "\r"}
    grid = {"start_nm": 500.0, "stop_nm": 600.0, "step_nm": 50.0}
    cal, _ = _run(tmp_path, data, EQECalibrationProcedure, preamp_sensitivity_A_V=1e-5, **grid)
    run, station = _run(tmp_path, data, EQEProcedure, calibration_file=str(cal.path), preamp_sensitivity_A_V=1e-5,
                        **grid)
    assert run.status == "completed", run.error
    assert station.bench.optics.preamp_gain_V_A == pytest.approx(1e5)
    frame = load_run(run.path).streams["eqe"]
    np.testing.assert_allclose(frame.eqe, 0.6792 * 2000 / 2003.84, atol=0.01)
    assert not frame.overload.any()
    assert "SR570" in load_run(run.path).idn["preamp"]
    # 100x more gain: ~10 V into the lock-in, beyond its 1 V top range — every point says it overloaded
    hot, _ = _run(tmp_path, data, EQEProcedure, calibration_file=str(cal.path), preamp_sensitivity_A_V=1e-7, **grid)
    assert load_run(hot.path).streams["eqe"].overload.all()
    with pytest.raises(ConfigError, match="preamp_sensitivity_A_V = 3e-07"):
        _run(tmp_path, data, EQEProcedure, calibration_file=str(cal.path), preamp_sensitivity_A_V=3e-7, **grid)
