"""The light-intensity Voc procedures (procedures/voc_intensity.py) on the simulated voc bench
(stations/voc-bench.yaml), and their pure parts.

Expected values are computed here, independently of the code under test and of the simulator: Voc as the root of
the multi-diode equation by scipy's brentq, the local ideality from the harmonic mixing of the channels
(methods ref. §4.1: n_local = Σ I_k / Σ (I_k/n_k)), the sphere's calibration constant from the station file's
geometry by hand, the methods' worked numbers (§4.2 photon flux at 1 sun; §4.3 J0s; §9 V2 offset).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.constants import Boltzmann, elementary_charge, h, speed_of_light
from scipy.optimize import brentq, curve_fit

from labctl.config import ConfigError, parse_station
from labctl.engine import RunEngine
from labctl.station import Station
from labctl.storage import load_run
from procedures.voc_intensity import (
    VocIntensityCalibrationProcedure,
    VocIntensityProcedure,
    build_ladder,
    fit_through_dark_point,
    ladder_dynamic_range_dB,
    laser_wavelength_nm,
    photon_flux_cm2_s,
    predicted_residual_V,
)
from tests.catalog_helpers import write_run_file
from tests.helpers import REPO

T_K = 298.15
VT = Boltzmann * T_K / elementary_charge
JSC_A_CM2 = 18.3e-3
AREA_CM2 = 0.049
J01 = JSC_A_CM2 / math.exp(1.17 / VT)  # methods ref. §4.3: Voc(1 sun) = 1.17 V for the n = 1 channel alone
IDEAL_METER = {"meter_offset_A": 0.0, "meter_input_resistance_ohm": 1e30}


# -- helpers -------------------------------------------------------------------------------------------------------
def crossing_j0(n_low: float, n_high: float, j0_low: float, suns: float) -> float:
    """J0 of a channel of ideality ``n_high`` carrying the same current as the ``n_low`` channel (J0 ``j0_low``) at
    ``suns`` (methods ref. §4.3 construction: each carries half of the generation there)."""
    v = n_low * VT * math.log(suns * JSC_A_CM2 / (2 * j0_low))
    return (suns * JSC_A_CM2 / 2) * math.exp(-v / (n_high * VT))


def expected_voc_V(suns: float, diodes: list[tuple[float, float]], load_A: float = 0.0,
                   r_in_ohm: float = math.inf) -> float:
    """Root of X·Jsc = Σ J0k(exp(V/(n_k Vt)) − 1) + (I_load + V/R_in)/A (shunt 1e12 Ω cm² neglected)."""
    def f(v: float) -> float:
        return (suns * JSC_A_CM2 - sum(j0 * math.expm1(v / (n * VT)) for n, j0 in diodes)
                - (load_A + v / r_in_ohm) / AREA_CM2)
    return brentq(f, -1.0, 2.0, xtol=1e-13)


def local_n(suns: float, diodes: list[tuple[float, float]]) -> float:
    """n_local = Σ I_k / Σ (I_k/n_k) at Voc (methods ref. §4.1)."""
    v = expected_voc_V(suns, diodes)
    currents = [(n, j0 * math.expm1(v / (n * VT))) for n, j0 in diodes]
    return sum(i for _, i in currents) / sum(i / n for n, i in currents)


def bench_data(diodes: list[tuple[float, float]] | None = None, meter: dict | None = None,
               slots: int | list[int] | None = None) -> dict:
    """stations/voc-bench.yaml, with the device's channels ``diodes`` [(n, J0 A/cm²)], the simulated 2450's
    ``meter`` limits, and each wheel cut to its first ``slots`` filters, or to the slots listed (a short ladder)."""
    data = copy.deepcopy(yaml.safe_load((REPO / "stations" / "voc-bench.yaml").read_text()))
    if diodes is not None:
        dev = data["simulation"]["device"]
        (n1, j1), *extra = diodes
        dev["ideality"], dev["j0_A_cm2"] = n1, j1
        dev["extra_diodes"] = [{"ideality": n, "j0_A_cm2": j0} for n, j0 in extra]
    if meter is not None:
        data["simulation"]["keithley2450"] = meter
    if slots is not None:
        for role in ("od_wheel_1", "od_wheel_2"):
            f = data["instruments"][role]["settings"]["filters"]
            keep = sorted(f)[:slots] if isinstance(slots, int) else slots
            data["instruments"][role]["settings"]["filters"] = {k: f[k] for k in keep}
    return data


def run(out: Path, data: dict, procedure, sample: str = "qd", on_event=None, station: Station | None = None):  # noqa: ANN001, ANN201
    station = station or Station(parse_station(data))
    engine = RunEngine(station, out, sample=sample, on_event=on_event)
    return engine.run(procedure), station


def voc(calibration: Path, **params) -> VocIntensityProcedure:  # noqa: ANN003
    return VocIntensityProcedure(calibration_file=str(calibration), **params)


@pytest.fixture(scope="module")
def calibration(tmp_path_factory) -> Path:  # noqa: ANN001
    """A monitor calibration on the default voc bench (its sphere and reference sensor)."""
    result, _ = run(tmp_path_factory.mktemp("cal"), bench_data(), VocIntensityCalibrationProcedure())
    assert result.status == "completed", result.error
    return result.path


def regimes_ok(regimes: list[dict], diodes: list[tuple[float, float]], tol: float = 0.01) -> None:
    """Each regime's n lies within the local n of the device over the regime (the least and greatest harmonic
    n_local at its points; the slope of a smooth Voc(ln Φ) between two points lies between its local slopes)."""
    for r in regimes:
        grid = np.geomspace(r["phi_min_suns"], r["phi_max_suns"], 40)
        ns = [local_n(x, diodes) for x in grid]
        assert min(ns) - tol <= r["n"] <= max(ns) + tol, (r, min(ns), max(ns))


# -- pure parts ----------------------------------------------------------------------------------------------------
def test_the_contract_wheels_give_a_70_dB_ladder_sorted_with_duplicates_dropped():
    """Wheels {0..5} × {0, 0.3, 0.6, 1, 1.3, 2} OD (methods ref. §4.2) with the voc bench's calibrated values."""
    data = bench_data()
    filters = [{int(k): (v["od"], v["transmission"]) for k, v in data["instruments"][r]["settings"]["filters"].items()}
               for r in ("od_wheel_1", "od_wheel_2")]
    ladder, dropped = build_ladder(*filters)
    t = [s.transmission for s in ladder]
    assert t == sorted(t)
    assert len(ladder) + len(dropped) == 36
    assert ladder_dynamic_range_dB(ladder) == pytest.approx(10 * math.log10(1 / (9.35e-6 * 0.01034)))
    assert ladder_dynamic_range_dB(ladder) >= 70
    assert all(b / a > 1.1 for a, b in zip(t[:-1], t[1:], strict=True))  # no two steps within the 10 % tolerance


def test_of_two_near_duplicates_the_one_with_fewer_wheel_moves_is_kept():
    # T: (2,2) 0.0098·... by hand: 1+3 = 0.098 and 2+1 = 0.1047 are within 10 %; after (2,2) = 0.05235 the
    # step to (2,1) moves one wheel, to (1,3) two
    ladder, dropped = build_ladder({1: (0, 1.0), 2: (1, 0.1047)}, {1: (0, 1.0), 2: (0.3, 0.5), 3: (1.0, 0.098)})
    assert [(s.slot_1, s.slot_2) for s in ladder] == [(2, 3), (2, 2), (2, 1), (1, 2), (1, 1)]
    assert [((a.slot_1, a.slot_2), (b.slot_1, b.slot_2)) for a, b in dropped] == [((1, 3), (2, 1))]


def test_the_calibration_line_through_the_dark_point_matches_scipy():
    rng = np.random.default_rng(1)
    x = np.array([1e-6, 2e-6, 3.5e-6, 5e-6])
    y = 18.6 * x * (1 + 0.003 * rng.standard_normal(x.size))
    (k_ref,), cov = curve_fit(lambda i, k: k * i, x, y, p0=[10.0])
    k, stderr, worst = fit_through_dark_point(x, y)
    assert k == pytest.approx(k_ref, rel=1e-9)
    assert stderr == pytest.approx(math.sqrt(cov[0, 0]), rel=1e-6)
    assert worst == pytest.approx(np.max(np.abs(y - k_ref * x) / y), rel=1e-6)


def test_the_predicted_residual_of_an_exponential_is_exact():
    tau, v_inf = 7.0, 0.8123
    v = [v_inf - 0.3 * math.exp(-t / tau) for t in (10.0, 12.0, 14.0)]
    assert predicted_residual_V(v[1] - v[0], v[2] - v[1]) == pytest.approx(v_inf - v[2], rel=1e-9)
    assert predicted_residual_V(1e-4, -5e-5) == pytest.approx(1e-4)  # noise: the larger change
    assert predicted_residual_V(1e-4, 1e-4) == math.inf  # not decaying: no estimate


def test_photon_flux_and_the_laser_identity():
    # methods ref. §4.2 worked: 54.54 mW/cm² at 520 nm is 1.4277e17 photons cm⁻² s⁻¹
    assert photon_flux_cm2_s(545.4, 520.0) == pytest.approx(0.05454 / (h * speed_of_light / 520e-9), rel=1e-9)
    assert photon_flux_cm2_s(545.4, 520.0) == pytest.approx(1.4277e17, rel=1e-3)
    assert laser_wavelength_nm("LBX-520-100-CSB") == 520.0
    assert laser_wavelength_nm("something else") is None


# -- the calibration -----------------------------------------------------------------------------------------------
def test_the_calibration_transfers_the_reference_to_the_monitor(calibration):
    """k = P_ref/I_mon: the reference aperture's area over the monitor's (area × QE × λ/(hc/q)) for the voc bench's
    sphere (both see the same sphere irradiance), by hand from stations/voc-bench.yaml."""
    sphere = bench_data()["simulation"]["sphere"]
    a_ref_m2 = math.pi * (sphere["reference_aperture_mm"] * 1e-3 / 2) ** 2
    responsivity = sphere["monitor_quantum_efficiency"] * elementary_charge * 520e-9 / (h * speed_of_light)
    k = a_ref_m2 / (sphere["monitor_area_mm2"] * 1e-6 * responsivity)
    r = load_run(calibration).results
    assert r["k_W_A"] == pytest.approx(k, rel=0.005)  # the laser's 0.2 % noise per reading, averaged
    assert r["irradiance_per_A"] == pytest.approx(k / a_ref_m2, rel=0.005)
    assert r["dark_current_A"] == pytest.approx(sphere["monitor_dark_current_A"], rel=1e-6)
    assert r["wavelength_nm"] == 520.0
    assert r["points"] == 4
    assert r["filters_checked"] == 12 and r["filter_deviations"] == []  # calibrated = true transmissions


def test_a_filter_whose_calibrated_transmission_is_wrong_is_warned(tmp_path):
    data = bench_data()
    data["instruments"]["od_wheel_2"]["settings"]["filters"][4]["transmission"] = 0.1  # true 0.0982: 1.8 %
    data["instruments"]["od_wheel_1"]["settings"]["filters"][3]["transmission"] = 0.0125  # true 0.01021: -18 %
    result, _ = run(tmp_path, data, VocIntensityCalibrationProcedure())
    devs = result.results["filter_deviations"]
    assert [(d["wheel"], d["slot"]) for d in devs] == [("od_wheel_1", 3)]
    assert devs[0]["deviation"] == pytest.approx(0.01021 / 0.0125 - 1, abs=0.005)
    assert any("FILTER WARNING: od_wheel_1 slot 3" in line for line in load_run(result.path).events)


# -- the ladder on the simulated bench -----------------------------------------------------------------------------
def test_clean_regimes_are_fitted_to_their_configured_ideality_over_70_dB(tmp_path, calibration):
    """n = 1 and n = 3 channels crossing at 10^-3.5 sun (widely separated, 3.5 decades each side), an ideal meter."""
    diodes = [(1.0, J01), (3.0, crossing_j0(1.0, 3.0, J01, 10**-3.5))]
    data = bench_data(diodes, meter={"current_offset_A": 0.0, "input_resistance_ohm": None})
    result, _ = run(tmp_path, data, voc(calibration, one_sun_mW_cm2=54.54, **IDEAL_METER))
    assert result.status == "completed", result.error
    r = result.results
    assert r["ladder_dynamic_range_dB"] >= 70
    assert r["dynamic_range_dB"] >= 70  # the measured intensities, none instrument-limited
    assert r["instrument_limited_points"] == []
    assert [g["label"] for g in r["regimes"]] == ["n≈1", "n>2"]
    assert r["regimes"][0]["n"] == pytest.approx(1.0, abs=0.05)
    assert r["regimes"][1]["n"] == pytest.approx(3.0, abs=0.05)
    regimes_ok(r["regimes"], diodes)
    assert r["unconverged_points"] == 0


def test_other_regimes_are_segmented_where_the_device_has_them(tmp_path, calibration):
    """n = 1 and n = 2 crossing at 10^-2.5 sun: the boundary near there, each regime's n within its local n."""
    diodes = [(1.0, J01), (2.0, crossing_j0(1.0, 2.0, J01, 10**-2.5))]
    data = bench_data(diodes, meter={"current_offset_A": 0.0, "input_resistance_ohm": None})
    result, _ = run(tmp_path, data, voc(calibration, one_sun_mW_cm2=54.54, **IDEAL_METER))
    regimes = result.results["regimes"]
    assert [g["label"] for g in regimes] == ["n≈1", "n≈2"]
    boundary = math.log10(math.sqrt(regimes[0]["phi_min_suns"] * regimes[1]["phi_max_suns"]))
    assert boundary == pytest.approx(-2.5, abs=0.5)
    regimes_ok(regimes, diodes)


def test_the_methods_device_gives_its_three_regimes_and_its_voc(tmp_path, calibration):
    """Methods ref. §4.3 (the voc bench's device), 1 sun from a J–V run's Jsc (18.3 mA/cm²): Voc at each measured
    intensity is the three-diode root (within 0.5 mV, §9 V1), and the regimes are n≈1, n≈2, n>2 from 1 sun down."""
    j02 = crossing_j0(1.0, 2.0, J01, 10**-1.5)
    diodes = [(1.0, J01), (2.0, j02), (4.0, crossing_j0(2.0, 4.0, j02, 10**-4.5))]
    assert [d[1] for d in diodes] == pytest.approx([3.0574e-22, 2.9743e-13, 2.9336e-10], rel=1e-3)
    data = bench_data(meter={"current_offset_A": 0.0, "input_resistance_ohm": None})  # its device as configured
    jv = write_run_file(tmp_path / "jv.h5", "jv1", station="voc-bench", sample="qd",
                        results={"reverse": {"jsc_mA_cm2": 18.3}, "forward": {"jsc_mA_cm2": 18.3}})
    result, _ = run(tmp_path / "runs", data, voc(calibration, jv_file=str(jv), **IDEAL_METER))
    frame = load_run(result.path).streams["voc"]
    expected = [expected_voc_V(x, diodes) for x in frame.suns]
    assert np.max(np.abs(frame.voc_V.to_numpy() - expected)) < 0.5e-3  # methods ref. §9 V1: 0.5 mV
    r = result.results
    assert [g["label"] for g in r["regimes"]] == ["n≈1", "n≈2", "n>2"]
    regimes_ok(r["regimes"], diodes)
    assert r["one_sun_W_m2"] == pytest.approx(545.4, rel=0.01)  # EQE(520) 0.80 in the bench's device


def test_the_lowest_points_are_instrument_limited_with_the_meters_offset(tmp_path, calibration):
    """The voc bench's 2450: 10 pA drawn from the cell by the source offset, and 10 GΩ (methods ref. §4.2, §9 V2).
    Flagged: every point the meter lowers by more than 1 mV; not flagged: every point it lowers by less than
    0.25 mV (brentq, by hand)."""
    data = bench_data()
    meter = data["simulation"]["keithley2450"]
    result, _ = run(tmp_path, data, voc(calibration, one_sun_mW_cm2=54.54,
                                        meter_offset_A=abs(float(meter["current_offset_A"])),
                                        meter_input_resistance_ohm=float(meter["input_resistance_ohm"])))
    assert result.status == "completed", result.error
    j02 = crossing_j0(1.0, 2.0, J01, 10**-1.5)
    diodes = [(1.0, J01), (2.0, j02), (4.0, crossing_j0(2.0, 4.0, j02, 10**-4.5))]
    # V2: +10 pA at 1e-7 sun lowers Voc from 0.2027 V to 0.1924 V
    assert expected_voc_V(1e-7, diodes, load_A=1e-11) == pytest.approx(0.1924, abs=1e-3)
    frame = load_run(result.path).streams["voc"]
    flagged = set(np.round(result.results["instrument_limited_points"], 15))
    for x in frame.suns:
        # the offset is the source's error into HI (the anode): negative draws current from the cell
        bias = expected_voc_V(x, diodes) - expected_voc_V(x, diodes, -float(meter["current_offset_A"]),
                                                          float(meter["input_resistance_ohm"]))
        if bias > 1e-3:
            assert round(x, 15) in flagged, (x, bias)
        elif bias < 0.25e-3:
            assert round(x, 15) not in flagged, (x, bias)
    assert 0 < len(flagged) < len(frame)
    # the defaults (the 2450's specification: 100 pA, 10 GΩ; instruments ref. §2) flag at least those
    default = VocIntensityProcedure()
    assert (default.meter_offset_A, default.meter_input_resistance_ohm) == (100e-12, 10e9)
    stored = load_run(result.path).streams
    more = set(np.round(default.analyse(stored)["instrument_limited_points"], 15))
    assert flagged <= more


def test_up_down_gives_the_drift_per_intensity(tmp_path, calibration):
    data = bench_data(slots=3)  # 9 combinations → a short ladder
    result, station = run(tmp_path, data, voc(calibration, one_sun_mW_cm2=54.54, direction="up-down"))
    assert not _laser_emits(station)  # off at the end of a completed run
    frame = load_run(result.path).streams["voc"]
    up = frame[frame.direction == "up"].set_index("step").voc_V
    down = frame[frame.direction == "down"].set_index("step").voc_V
    assert list(frame.direction) == ["up"] * len(up) + ["down"] * len(down)
    dv = (down - up.reindex(down.index)).to_numpy() * 1e3
    r = result.results
    assert r["up_down_max_abs_dvoc_mV"] == pytest.approx(np.max(np.abs(dv)))
    assert r["up_down_mean_abs_dvoc_mV"] == pytest.approx(np.mean(np.abs(dv)))
    assert len(r["up_down"]["points"]) == len(up)
    # no light soaking in the simulated device: the drift is the laser noise on Voc, well below 1 mV
    assert r["up_down_max_abs_dvoc_mV"] < 1.0
    assert r["fitted_pass"] == "up"


def test_up_down_drift_is_the_light_soaking_of_the_device(tmp_path, calibration):
    """A single n = 1 diode whose J0 grows with the light dose, J0·exp(dose/τ) (simulation.device.degradation,
    dose in sun·s): between the up and the down reading of a step Voc changes by
    Vt·[ln(X_down/X_up) − ΔD/τ], ΔD = Σ X·Δt over the rows in between (each step's X held from the row before)."""
    tau_h = 0.02
    data = bench_data([(1.0, J01)], slots=3)
    data["simulation"]["device"]["degradation"] = {"enabled": True, "j0_growth_tau_h": tau_h}
    result, _ = run(tmp_path, data, voc(calibration, one_sun_mW_cm2=54.54, direction="up-down",
                                        settle_mode="fixed", fixed_wait_s=5.0))
    assert result.status == "completed", result.error
    frame = load_run(result.path).streams["voc"].reset_index(drop=True)
    t, x = frame.time_s.to_numpy(), frame.suns.to_numpy()
    dose = np.concatenate([[0.0], np.cumsum(x[1:] * np.diff(t))])
    n_up = int((frame.direction == "up").sum())
    expected, measured = [], []
    for k in range(n_up):
        j = int(np.flatnonzero((frame.direction == "down") & (frame.step == frame.step[k]))[0])
        expected.append(VT * (math.log(x[j] / x[k]) - (dose[j] - dose[k]) / (tau_h * 3600)) * 1e3)
        measured.append((frame.voc_V[j] - frame.voc_V[k]) * 1e3)
    points = result.results["up_down"]["points"]
    assert [p["dvoc_mV"] for p in points] == pytest.approx(measured)
    assert min(expected) < -5  # a drift well above the noise
    assert measured == pytest.approx(expected, rel=0.1, abs=0.3)
    assert result.results["up_down_mean_abs_dvoc_mV"] == pytest.approx(np.mean(np.abs(measured)))


def test_with_a_junction_capacitance_voc_converges_to_its_steady_state(tmp_path, calibration):
    """100 nF/cm² (τ ~ 5 s at 1e-7 sun): slots {1, 6} of each wheel give 4 steps over 70 dB, from 1e-7 sun up;
    the converged Voc is the static root within 0.5 mV (the benchmark's tolerance) at every step. (The simulated
    floating cell under the laser, before the Isc reading, used to crash the simulator's equilibrium search.)"""
    j02 = crossing_j0(1.0, 2.0, J01, 10**-1.5)
    diodes = [(1.0, J01), (2.0, j02), (4.0, crossing_j0(2.0, 4.0, j02, 10**-4.5))]
    data = bench_data(meter={"current_offset_A": 0.0, "input_resistance_ohm": None}, slots=[1, 6])
    data["simulation"]["device"]["capacitance_nF_cm2"] = 100.0
    jv = write_run_file(tmp_path / "jv.h5", "jv1", station="voc-bench", sample="qd",
                        results={"reverse": {"jsc_mA_cm2": 18.3}})  # 1 sun: X·Jsc of the diode equation
    result, _ = run(tmp_path / "runs", data, voc(calibration, jv_file=str(jv), **IDEAL_METER))
    assert result.status == "completed", result.error
    frame = load_run(result.path).streams["voc"]
    assert len(frame) == 4 and frame.converged.all()
    expected = [expected_voc_V(x, diodes) for x in frame.suns]
    assert np.max(np.abs(frame.voc_V.to_numpy() - expected)) < 0.5e-3
    assert frame.settle_time_s.iloc[0] > 5.0  # the lowest step charges slowly: convergence waited for it


def test_below_the_monitor_floor_the_irradiance_comes_from_the_ladder(tmp_path, calibration):
    """E = E_0·T_1·T_2 where the monitor's signal is below its floor (methods ref. §4.2), E_0 from the brightest
    step's monitor reading; the monitor above it."""
    data = bench_data(slots=3)
    result, _ = run(tmp_path, data, voc(calibration, one_sun_mW_cm2=54.54, monitor_floor_A=1e-4))
    events = load_run(result.path).events
    assert any("WARNING: the ladder spans 25.8 dB, less than 70 dB" in line for line in events)  # -log10(0.01021·0.259)
    frame = load_run(result.path).streams["voc"]
    isc = load_run(result.path).streams["isc"].iloc[0]
    below = frame.monitor_signal_A <= 1e-4
    assert below.any() and (~below).any()
    assert (frame.irradiance_source[below] == "ladder").all() and (frame.irradiance_source[~below] == "monitor").all()
    e0 = isc.irradiance_W_m2 / isc.transmission
    assert frame.irradiance_W_m2[below].to_numpy() == pytest.approx(e0 * frame.transmission[below].to_numpy())
    cal = load_run(calibration).results
    mon = frame[~below]
    assert mon.irradiance_W_m2.to_numpy() == pytest.approx(
        (mon.monitor_current_A - cal["dark_current_A"]).to_numpy() * cal["irradiance_per_A"])
    assert frame.suns.to_numpy() == pytest.approx(frame.irradiance_W_m2.to_numpy() / 545.4)
    assert frame.photon_flux_cm2_s.to_numpy() == pytest.approx(
        frame.irradiance_W_m2.to_numpy() * 1e-4 / (h * speed_of_light / 520e-9))


def test_the_monitor_read_by_a_second_smu(tmp_path):
    """The alternative of the station file: the photodiode at 0 V on a Keithley 2400 (sim://monitor_smu)."""
    data = bench_data(slots=2)
    data["instruments"]["monitor"] = {"driver": "keithley2400", "resource": "sim://monitor_smu",
                                      "read_termination": "\n", "write_termination": "\n"}
    cal, _ = run(tmp_path, data, VocIntensityCalibrationProcedure(check_filters=False))
    assert cal.status == "completed", cal.error
    sphere = data["simulation"]["sphere"]
    responsivity = sphere["monitor_quantum_efficiency"] * elementary_charge * 520e-9 / (h * speed_of_light)
    k = math.pi * (sphere["reference_aperture_mm"] * 1e-3 / 2) ** 2 / (sphere["monitor_area_mm2"] * 1e-6 * responsivity)
    assert cal.results["k_W_A"] == pytest.approx(k, rel=0.005)
    assert cal.results["monitor"] == "source_meter"
    result, _ = run(tmp_path, data, voc(cal.path, one_sun_mW_cm2=54.54))
    assert result.status == "completed", result.error


# -- the catalog -----------------------------------------------------------------------------------------------------
def test_the_calibration_and_the_jv_run_are_found_through_the_catalog(tmp_path):
    data = bench_data(slots=2)
    out = tmp_path / "runs"
    station = Station(parse_station(data))
    cal, _ = run(out, data, VocIntensityCalibrationProcedure(check_filters=False), station=station)
    write_run_file(out / "2026-12-01" / "jv.h5", "jv-qd", station="voc-bench", sample="qd",
                   results={"reverse": {"jsc_mA_cm2": 17.0}})
    write_run_file(out / "2026-12-01" / "jv-other.h5", "jv-other", station="voc-bench", sample="other",
                   results={"reverse": {"jsc_mA_cm2": 25.0}}, start="2026-12-01T21:00:00.000+00:00")
    result, _ = run(out, data, VocIntensityProcedure(), sample="qd", station=station)
    assert result.status == "completed", result.error
    assert result.results["calibration_run"] == cal.run_id
    events = load_run(result.path).events
    assert any("Jsc 17.000 mA/cm²" in line and "jv.h5" in line for line in events)  # this sample's, not the newer


# -- failures: clear errors, the laser off, the run file kept ---------------------------------------------------------
def _laser_emits(station: Station) -> bool:
    return station["laser"].adapter.emulator.handle("?L").strip() == "1"


def test_a_stuck_wheel_is_a_clear_error_with_the_laser_off(tmp_path, calibration):
    data = bench_data(slots=2)
    station = Station(parse_station(data))

    def jam(message: str) -> None:
        if message.startswith("Isc "):  # the ladder is about to start: the next move of od_wheel_1 jams
            station["od_wheel_1"].adapter.emulator.stuck = True

    result, _ = run(tmp_path, data, voc(calibration, one_sun_mW_cm2=54.54), on_event=jam, station=station)
    assert result.status == "failed"
    assert "filter wheel od_wheel_1 did not reach slot" in result.error
    assert "laser switched off" in result.error
    assert not _laser_emits(station)
    assert load_run(result.path).status == "failed"


def test_a_laser_fault_is_a_clear_error_with_the_laser_off(tmp_path, calibration):
    data = bench_data(slots=2)
    station = Station(parse_station(data))

    def fault(message: str) -> None:
        if message.startswith("Isc "):
            station["laser"].adapter.emulator.fault = 4  # diode temperature
    result, _ = run(tmp_path, data, voc(calibration, one_sun_mW_cm2=54.54), on_event=fault, station=station)
    assert result.status == "failed"
    assert "laser fault 4 (fault: diode temperature" in result.error
    station["laser"].adapter.emulator.fault = 0
    assert not _laser_emits(station)  # off, not merely blocked by the fault
    assert load_run(result.path).streams.get("isc") is not None


# -- checks before any I/O ---------------------------------------------------------------------------------------------
def _refused(tmp_path: Path, data: dict, procedure, match: str) -> None:  # noqa: ANN001
    station = Station(parse_station(data))
    with pytest.raises(ConfigError, match=match):
        RunEngine(station, tmp_path / "runs", sample="qd").run(procedure)
    assert station.instruments == {}  # nothing connected
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").rglob("*.h5"))


def test_no_calibration_is_one_line_naming_calibration_file(tmp_path):
    _refused(tmp_path, bench_data(), VocIntensityProcedure(one_sun_mW_cm2=54.54),
             r"^no completed voc-intensity-calibration run of station 'voc-bench' in the run catalog .* nor in the "
             r"data folder .*: run `labctl run voc-intensity-calibration` first, or give --set calibration_file=PATH$")


def test_no_one_sun_reference_is_one_line(tmp_path, calibration):
    _refused(tmp_path, bench_data(), voc(calibration),
             r"^no completed jv run of station 'voc-bench' and sample 'qd' .* for 1 sun: give --set jv_file=PATH .* or "
             r"--set one_sun_mW_cm2=VALUE")
    _refused(tmp_path, bench_data(), voc(calibration, jv_file=str(tmp_path / "nope.h5")),
             r"^parameter jv_file = '.*nope.h5': no such file$")


def test_a_wheel_without_calibrated_filters_is_refused(tmp_path, calibration):
    data = bench_data()
    settings = data["instruments"]["od_wheel_2"]["settings"]
    settings.pop("filters")
    settings.pop("calibration_wavelength_nm")
    _refused(tmp_path, data, voc(calibration, one_sun_mW_cm2=54.54),
             r"^instruments.od_wheel_2.settings.filters: missing; the intensity ladder needs")


def test_bad_parameters_are_refused_before_io(tmp_path, calibration):
    _refused(tmp_path, bench_data(), VocIntensityCalibrationProcedure(powers_mW="20, -3"),
             r"^parameter powers_mW = '20, -3': allowed a comma-separated list")
    _refused(tmp_path, bench_data(), VocIntensityCalibrationProcedure(reference_aperture_mm=10.0),
             r"^parameter reference_aperture_mm = 10: the simulated bench's reference sensor has a 9.5 mm aperture "
             r"\(simulation.sphere.reference_aperture_mm\); allowed: 9.5$")
    _refused(tmp_path, bench_data(), voc(calibration, one_sun_mW_cm2=54.54, compliance_V=5.0),
             r"^parameter compliance_V = 5.0: allowed range is 0.02 to 1.5 \(station limit of instrument 'smu'")
    data = bench_data()
    data["instruments"]["monitor"] = copy.deepcopy(data["instruments"]["od_wheel_1"])
    data["instruments"]["monitor"]["resource"] = "sim://filter_wheel"
    _refused(tmp_path, data, voc(calibration, one_sun_mW_cm2=54.54), r"needs instrument 'monitor' to be a power_meter")
