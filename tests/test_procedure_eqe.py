"""End-to-end EQE on the simulated bench: calibration, EQE vs the configured cell, Jsc vs J–V, second order,
band edge, and calibrations that do not fit the grid.

Expected EQEs are written out from the station parameters in :mod:`tests.eqe_model` (not the simulator's code).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from labctl.config import ConfigError, parse_station
from labctl.engine import RunEngine
from labctl.station import Station
from labctl.storage import load_run
from procedures.eqe import EQECalibrationProcedure, EQEProcedure
from tests.eqe_model import HC_NM_V, expected_eqe, integrated_jsc_mA_cm2
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


def test_measured_eqe_matches_the_cell_written_out_from_its_parameters(bench_runs):
    """Within 0.3 % of the model (plus 1e-5 absolute: the filters' 1e-5 blocking lets that much λ/2 through)
    at every point, on the plateau and down the Urbach tail."""
    data = load_run(bench_runs["eqe"].path).streams["eqe"]
    expected = expected_eqe(bench_runs["data"]["simulation"]["device"], data.wavelength_nm.to_numpy())
    error = np.abs(data.eqe.to_numpy() - expected)
    bad = error > 0.003 * expected + 1e-5
    assert not bad.any(), data.assign(expected=expected, error=error)[bad][["wavelength_nm", "eqe", "expected"]]
    assert set(data.reference_run) == {bench_runs["cal"].run_id}


def test_every_point_with_signal_converges(bench_runs):
    """Unconverged (noise-limited) points may only be where the EQE is at the noise floor, in both runs."""
    for key, stream, col in (("eqe", "eqe", "eqe"), ("cal", "calibration", None)):
        data = load_run(bench_runs[key].path).streams[stream]
        if col is None:
            assert data.converged.all(), data[data.converged == 0][["wavelength_nm", "detector"]]
        else:
            signal = expected_eqe(bench_runs["data"]["simulation"]["device"], data.wavelength_nm.to_numpy()) > 1e-3
            assert data.converged[signal].all(), data[signal & (data.converged == 0)].wavelength_nm.tolist()


def test_integrated_jsc_matches_jv_and_the_band_edge_is_reached(bench_runs):
    results = bench_runs["eqe"].results
    assert results["jsc_jv_mA_cm2"] == pytest.approx(bench_runs["jv"].results["reverse"]["jsc_mA_cm2"])
    assert abs(results["jsc_ratio"] - 1) < 0.005, results
    assert results["jsc_problems"] == [] and results["jsc_tolerance"] == 0.05
    assert results["band_edge_reached"] is True and results["band_edge_fraction"] == 0.01
    assert results["eqe_at_last_point"] < 1e-4 and results["eqe_max"] == pytest.approx(0.6792, abs=0.002)
    assert {"jsc_integrated_mA_cm2", "wavelength_min_nm", "wavelength_max_nm"} <= set(results)


def test_calibration_reports_the_si_ge_overlap(bench_runs):
    overlap = bench_runs["cal"].results["overlap_max_deviation"]
    assert overlap is not None and overlap < 0.02  # the simulated detectors follow their own tables exactly
    cal = load_run(bench_runs["cal"].path).streams["calibration"]
    assert set(cal.detector) == {"si", "ge"}


def test_points_record_their_settings(bench_runs):
    data = load_run(bench_runs["eqe"].path).streams["eqe"]
    for col in ("wavelength_nm", "filter", "grating", "time_constant_s", "sensitivity_A", "phase_deg", "overload",
                "reference_run", "converged", "settle_time_s"):
        assert col in data
    assert set(data.grating) == {1, 2} and set(data["filter"]) == {1, 2, 3}


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
    assert any("second order" in p for p in bad_run.results["order_sorting_problems"])
    sub_gap = good.wavelength_nm >= 850
    expected = expected_eqe(bench_runs["data"]["simulation"]["device"], good.wavelength_nm[sub_gap].to_numpy())
    assert np.all(np.abs(good.eqe[sub_gap].to_numpy() - expected) <= 0.01 * expected + 1e-5)
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
    np.testing.assert_allclose(frame.eqe, expected_eqe(data["simulation"]["device"], frame.wavelength_nm), rtol=3e-3)
    assert station.bench.light.shutter_open is False  # the bias-light shutter is closed at the end
    # the same with normal reserve: the DC bias overloads the input on the range the signal wants, so the
    # ranging settles on a ≥ 10x less sensitive range (the DC really reaches the lock-in)
    normal, _ = _run(tmp_path, data, EQEProcedure, calibration_file=str(cal.path), bias_light=True,
                     reserve="Normal", **grid)
    assert load_run(normal.path).streams["eqe"].sensitivity_A.min() >= 10 * frame.sensitivity_A.max()


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
    np.testing.assert_allclose(frame.eqe, expected_eqe(data["simulation"]["device"], frame.wavelength_nm), rtol=3e-3)
    assert not frame.overload.any()
    assert "SR570" in load_run(run.path).idn["preamp"]
    # 100x more gain: ~10 V into the lock-in, beyond its 1 V top range — every point says it overloaded
    hot, _ = _run(tmp_path, data, EQEProcedure, calibration_file=str(cal.path), preamp_sensitivity_A_V=1e-7, **grid)
    assert load_run(hot.path).streams["eqe"].overload.all()
    with pytest.raises(ConfigError, match="preamp_sensitivity_A_V = 3e-07"):
        _run(tmp_path, data, EQEProcedure, calibration_file=str(cal.path), preamp_sensitivity_A_V=3e-7, **grid)


# --- item 11: a calibration is never interpolated across a grating or filter change -----------------------------
def test_a_grid_that_straddles_the_calibrations_filter_changes_is_refused(bench_runs, tmp_path):
    """step_nm=7 against the 10 nm calibration put 475 nm between 470 nm (open) and 480 nm (long-pass) and 776 nm
    between 770 nm (grating 1) and 780 nm (grating 2): it used to give EQE 71.5 % and 55.9 % on a 67.9 % plateau."""
    station = Station(parse_station(bench_runs["data"]))
    proc = EQEProcedure(calibration_file=str(bench_runs["cal"].path), start_nm=300.0, stop_nm=900.0, step_nm=7.0)
    with pytest.raises(ConfigError) as info:
        RunEngine(station, tmp_path).run(proc)
    message = str(info.value)
    assert "470–480 nm and 770–780 nm" in message and "EQE points 475, 776 nm" in message
    assert "\n" not in message and station.instruments == {}  # refused before any instrument was touched


def test_a_finer_grid_within_one_setting_uses_the_calibration(bench_runs, tmp_path):
    grid = {"start_nm": 490.0, "stop_nm": 770.0, "step_nm": 7.0}  # all between calibration points of filter 2
    run, _ = _run(tmp_path, bench_runs["data"], EQEProcedure, calibration_file=str(bench_runs["cal"].path), **grid)
    assert run.status == "completed", run.error
    frame = load_run(run.path).streams["eqe"]
    np.testing.assert_allclose(frame.eqe, expected_eqe(bench_runs["data"]["simulation"]["device"],
                                                       frame.wavelength_nm), rtol=3e-3)


def test_an_order_sorting_table_changed_since_the_calibration_is_refused(bench_runs, tmp_path):
    data = copy.deepcopy(bench_runs["data"])
    data["eqe"]["order_sorting"][1]["filter"] = 3  # 480–780 nm now behind the 700 nm long-pass
    proc = EQEProcedure(calibration_file=str(bench_runs["cal"].path), **GRID)
    with pytest.raises(ConfigError, match=r"changed since the calibration at 480 nm \(calibrated with grating 1, "
                                          r"filter 2; now grating 1, filter 3\)"):
        RunEngine(Station(parse_station(data)), tmp_path).run(proc)


# --- item 4: band edge and Jsc agreement; the default grid reaches where the reference detectors end -------------
PBS = {**{"jph_mA_cm2": 30.34146, "j0_A_cm2": 4.12065e-10, "ideality": 1.4, "rs_ohm_cm2": 2.34208,
          "rsh_ohm_cm2": 500.0}, "eqe": {"bandgap_eV": 1.3, "urbach_meV": 20, "plateau": None}}
WIDE_GAP = {"jph_mA_cm2": 14.0, "eqe": {"bandgap_eV": 1.8, "urbach_meV": 20, "plateau": None}}


def _station(device: dict) -> dict:
    data = default_station()
    dev = data["simulation"]["device"]
    dev.update({k: v for k, v in device.items() if k != "eqe"})
    dev["eqe"].update(device["eqe"])
    return data


def _events(run) -> list[str]:  # noqa: ANN001
    return [str(e) for e in load_run(run.path).events]


@pytest.fixture(scope="module")
def default_grid(tmp_path_factory):
    """A calibration with the default grid (the lamp and detectors do not depend on the device), and a PbS cell."""
    out = tmp_path_factory.mktemp("eqe-default")
    cal, _ = _run(out, default_station(), EQECalibrationProcedure)
    pbs = _station(PBS)
    jv, _ = run_jv(out, pbs, direction="reverse")
    return {"out": out, "cal": cal, "pbs": pbs, "jv": jv}


def test_default_calibration_grid_ends_where_the_reference_detectors_end(default_grid):
    cal = default_grid["cal"]
    assert cal.status == "completed", cal.error
    assert cal.results["wavelength_min_nm"] == 300.0 and cal.results["wavelength_max_nm"] == 1800.0  # ge: ≤ 1800
    assert load_run(cal.path).parameters["stop_nm"] == 1800.0  # the run file records the resolved value


def test_pbs_cell_on_the_default_grid_reaches_its_band_edge_and_the_jv_jsc(default_grid):
    """A 1.3 eV cell (EQE 0.82 at 900 nm) measured with the defaults is measured past its band edge."""
    run, _ = _run(default_grid["out"], default_grid["pbs"], EQEProcedure, jv_file=str(default_grid["jv"].path),
                  calibration_file=str(default_grid["cal"].path))
    assert run.status == "completed", run.error
    res = run.results
    assert res["wavelength_max_nm"] == 1800.0 and res["band_edge_reached"] is True
    assert abs(res["jsc_ratio"] - 1) < 0.005 and res["jsc_problems"] == []
    assert not any("WARNING" in e for e in _events(run))


def test_pbs_cell_scanned_to_900nm_says_it_missed_the_band_edge_and_the_jsc(default_grid):
    run, _ = _run(default_grid["out"], default_grid["pbs"], EQEProcedure, jv_file=str(default_grid["jv"].path),
                  calibration_file=str(default_grid["cal"].path), stop_nm=900.0)
    res = run.results
    assert run.status == "completed" and res["band_edge_reached"] is False
    assert res["eqe_at_last_point"] == pytest.approx(expected_eqe(default_grid["pbs"]["simulation"]["device"],
                                                                  np.array([900.0]))[0], rel=3e-3)
    # the fraction of the cell's Jsc that lies in 300–900 nm (0.926), from the model and pvlib's G173
    device = default_grid["pbs"]["simulation"]["device"]
    assert res["jsc_ratio"] == pytest.approx(integrated_jsc_mA_cm2(device, 300, 900) / integrated_jsc_mA_cm2(device),
                                             abs=2e-3)
    events = _events(run)
    band = [e for e in events if "BAND-EDGE WARNING" in e]
    assert len(band) == 1 and "900 nm" in band[0] and "--set stop_nm=1800" in band[0]
    jsc = [e for e in events if "JSC WARNING" in e]
    assert len(jsc) == 1 and "allowed ±5 %" in jsc[0]


def test_wide_gap_cell_on_the_default_grid(default_grid):
    """Item 4 the other way round, and item 5: below the gap of a 1.8 eV cell the default filter table lets no
    second-order light through (the old 400 nm long-pass showed 0.9 % 'EQE' at 770 nm)."""
    data = _station(WIDE_GAP)
    run, _ = _run(default_grid["out"], data, EQEProcedure, calibration_file=str(default_grid["cal"].path))
    assert run.status == "completed", run.error
    frame = load_run(run.path).streams["eqe"]
    sub_gap = HC_NM_V / frame.wavelength_nm < 1.8 - 0.15  # the true EQE is below 0.04 % there
    assert frame.eqe[sub_gap].max() < 0.005, frame[sub_gap].sort_values("eqe").tail(3)
    assert sub_gap.sum() > 90  # 760–1800 nm
    assert run.results["band_edge_reached"] is True and run.results["order_sorting_problems"] == []
    assert not any("WARNING" in e for e in _events(run))


# --- item 5: the order-sorting check uses each filter's transmission --------------------------------------------
def test_the_old_filter_table_is_now_reported(tmp_path):
    data = default_station()
    data["eqe"]["filter_wheel_slots"] = {1: None, 2: 400, 3: 700, 4: 1000, 5: None, 6: None}  # the old form
    run, _ = _run(tmp_path, data, EQECalibrationProcedure, start_nm=740.0, stop_nm=780.0, step_nm=40.0)
    warnings = [e for e in _events(run) if "ORDER-SORTING WARNING" in e]
    assert len(warnings) == 1 and "400 nm long-pass, edge 32 nm" in warnings[0] and "second order" in warnings[0]
