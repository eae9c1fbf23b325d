"""The simulated environment of a stability run: degradation, lamp drift and dips, device temperature, the
reference cell (issue 11, section 2 of the plan).

Expected values are computed here independently of the bench: pvlib's single-diode model with the degraded
J0 written out (methods ref. §1.7: J0 × exp(600 h / 383.0 h) retains 94 % of the PCE of set A), hand
integrals of the light over a schedule, and the first-order warming law solved by hand.
"""

from __future__ import annotations

import math

import numpy as np
import pvlib
import pytest
from scipy.constants import Boltzmann, elementary_charge

from labctl.config import ConfigError, parse_station
from labctl.engine import RunEngine
from labctl.station import Station
from sim_instruments.clock import VirtualClock
from sim_instruments.compose import build_bench
from tests.helpers import make_procedure, station_with

HOUR_S = 3600.0
T_REF_K = 298.15
VT_298 = Boltzmann * T_REF_K / elementary_charge


def _pvlib_figures(dev: dict, j0_factor: float = 1.0, t_K: float = T_REF_K) -> dict:
    """Voc (V), Jsc (mA/cm²), PCE (%) at 1 sun of the station's device (J0 at t_K by hand), by pvlib."""
    j0 = dev["j0_A_cm2"] * j0_factor * (t_K / T_REF_K) ** 3 * math.exp(
        -(dev["eqe"]["bandgap_eV"] * elementary_charge / (dev["ideality"] * Boltzmann)) * (1 / t_K - 1 / T_REF_K))
    out = pvlib.pvsystem.singlediode(dev["jph_mA_cm2"] * 1e-3, j0, dev["rs_ohm_cm2"], dev["rsh_ohm_cm2"],
                                     dev["ideality"] * Boltzmann * t_K / elementary_charge)
    return {"voc_V": float(out["v_oc"]), "jsc_mA_cm2": float(out["i_sc"]) * 1e3, "pce_pct": float(out["p_mp"]) * 1e3}


def _jv_after_light(tmp_path, data: dict, hours: float) -> dict:
    """A reverse J–V after ``hours`` of 1 sun at open circuit (shutter open, SMU output off) on the bench."""
    station = Station(parse_station(data))
    station.bench.light.shutter_open = True
    station.bench.clock.sleep(hours * HOUR_S)
    result = RunEngine(station, tmp_path, sample="aged").run(make_procedure(direction="reverse"))
    assert result.status == "completed", result.error
    return result.results["reverse"]


def test_degradation_is_off_by_default_and_600_h_of_light_change_nothing(tmp_path):
    """The default station after 600 h of light at OC: still set A (pvlib), so the default J–V is unchanged."""
    data = station_with()
    assert parse_station(data).simulation.device.degradation.enabled is False
    r = _jv_after_light(tmp_path, data, 600.0)
    fresh = _pvlib_figures(data["simulation"]["device"])
    assert r["voc_V"] == pytest.approx(fresh["voc_V"], abs=2e-3)
    assert r["pce_pct"] == pytest.approx(fresh["pce_pct"], rel=6e-3)


def test_enabled_degradation_defaults_lose_6_pct_after_600_h_at_oc(tmp_path):
    """`degradation: {enabled: true}` alone: J0 grows with τ = 383.0 h; after 600 h of 1 sun at OC the J–V
    matches pvlib with J0 × exp(600/383), which retains 94 % of the PCE (methods ref. §1.7)."""
    data = station_with(device={"degradation": {"enabled": True}})
    assert parse_station(data).simulation.device.degradation.j0_growth_tau_h == 383.0
    dev = data["simulation"]["device"]
    fresh = _pvlib_figures(dev)
    aged = _pvlib_figures(dev, j0_factor=math.exp(600.0 / 383.0))
    assert aged["pce_pct"] / fresh["pce_pct"] == pytest.approx(0.94, abs=2e-3)  # the calibration itself
    r = _jv_after_light(tmp_path, data, 600.0)
    assert r["voc_V"] == pytest.approx(aged["voc_V"], abs=2e-3)
    assert r["voc_V"] - fresh["voc_V"] == pytest.approx(-0.0603, abs=2e-3)
    assert r["pce_pct"] == pytest.approx(aged["pce_pct"], rel=6e-3)
    assert r["pce_pct"] / fresh["pce_pct"] == pytest.approx(0.94, abs=5e-3)


def test_a_law_given_is_used_alone():
    """Giving any law key replaces the calibrated default (the methods' one-mechanism-at-a-time cases)."""
    cfg = parse_station(station_with(device={"degradation": {"enabled": True, "linear_loss_per_h": 1e-4}}))
    assert cfg.simulation.device.degradation.j0_growth_tau_h is None
    again = parse_station(station_with(device={"degradation": cfg.simulation.device.degradation.model_dump()}))
    assert again.simulation.device.degradation == cfg.simulation.device.degradation  # a snapshot reloads alike


def _bench(**sim):
    return build_bench(parse_station(station_with(**sim)), VirtualClock())


def test_a_lamp_dip_darkens_the_device_in_station_time_and_its_dose_excludes_it():
    """A 50 % dip from 1.0 h for 0.5 h: Jsc halves inside it (pvlib at half the photocurrent), not before or
    after; the light dose over 0–2 h is 2 − 0.5·0.5 = 1.75 sun·h (hand integral)."""
    bench = _bench(light={"dips": [{"start_h": 1.0, "duration_h": 0.5, "depth": 0.5}]})
    bench.light.shutter_open = True
    dev = station_with()["simulation"]["device"]
    vt = dev["ideality"] * VT_298

    def jsc_mA_cm2(fraction: float) -> float:
        return 1e3 * float(pvlib.pvsystem.i_from_v(0.0, dev["jph_mA_cm2"] * 1e-3 * fraction, dev["j0_A_cm2"],
                                                   dev["rs_ohm_cm2"], dev["rsh_ohm_cm2"], vt))

    def bench_jsc() -> float:
        bench.set_cell_bias(0.0)
        return -bench.cell_current_A() / dev["area_cm2"] * 1e3

    for t_h, fraction in ((0.5, 1.0), (1.25, 0.5), (1.75, 1.0)):
        bench.clock.sleep(t_h * HOUR_S - bench.clock.now())
        assert bench_jsc() == pytest.approx(jsc_mA_cm2(fraction), rel=1e-9), t_h
    fresh = _bench(light={"dips": [{"start_h": 1.0, "duration_h": 0.5, "depth": 0.5}]})
    fresh.light.shutter_open = True
    fresh.clock.sleep(2 * HOUR_S)  # one long interval across the dip
    fresh.open_circuit_voltage_V()
    assert fresh.cell.light_dose_s / HOUR_S == pytest.approx(1.75, rel=1e-12)


def test_lamp_drift_is_relative_per_hour_of_lamp_on_time():
    """drift −0.1 %/h: after 100 h the device sees 0.9 sun (Jsc by pvlib), dose = ∫(1 − 0.001 t) = 95 sun·h."""
    bench = _bench(light={"drift_per_h": -0.001})
    bench.light.shutter_open = True
    bench.clock.sleep(100 * HOUR_S)
    dev = station_with()["simulation"]["device"]
    bench.set_cell_bias(0.0)
    jsc = -bench.cell_current_A() / dev["area_cm2"]
    expected = float(pvlib.pvsystem.i_from_v(0.0, dev["jph_mA_cm2"] * 1e-3 * 0.9, dev["j0_A_cm2"],
                                             dev["rs_ohm_cm2"], dev["rsh_ohm_cm2"], dev["ideality"] * VT_298))
    assert jsc == pytest.approx(expected, rel=1e-9)
    assert bench.cell.light_dose_s / HOUR_S == pytest.approx(95.0, rel=1e-12)


def test_the_device_warms_under_light_and_voc_follows():
    """temperature_rise_K 10 K, τ 600 s: after 600 s of 1 sun T = 298.15 + 10·(1 − e⁻¹) K (hand solution of the
    first-order law), and Voc is pvlib's at that T; with the shutter closed it cools back."""
    bench = _bench(device={"temperature_rise_K": 10.0, "temperature_tau_s": 600.0})
    dev = station_with()["simulation"]["device"]
    bench.light.shutter_open = True
    bench.clock.sleep(600.0)
    voc = bench.open_circuit_voltage_V()
    t_K = T_REF_K + 10.0 * (1 - math.exp(-1.0))
    assert bench.cell.temperature_K == pytest.approx(t_K, abs=1e-9)
    assert voc == pytest.approx(_pvlib_figures(dev, t_K=t_K)["voc_V"], abs=1e-9)
    assert voc < _pvlib_figures(dev)["voc_V"] - 5e-3
    bench.light.shutter_open = False
    bench.clock.sleep(6000.0)
    bench.open_circuit_voltage_V()
    assert bench.cell.temperature_K == pytest.approx(T_REF_K + 10.0 * (1 - math.exp(-1.0)) * math.exp(-10.0),
                                                     abs=1e-9)


def test_a_temperature_schedule_in_station_time():
    """+5 K from 1 h for 1 h: 298.15 K before, 303.15 K inside (Voc by pvlib), 298.15 K after."""
    bench = _bench(temperature_schedule=[{"start_h": 1.0, "duration_h": 1.0, "rise_K": 5.0}])
    bench.light.shutter_open = True
    dev = station_with()["simulation"]["device"]
    for t_h, t_K in ((0.5, T_REF_K), (1.5, T_REF_K + 5.0), (2.5, T_REF_K)):
        bench.clock.sleep(t_h * HOUR_S - bench.clock.now())
        assert bench.open_circuit_voltage_V() == pytest.approx(_pvlib_figures(dev, t_K=t_K)["voc_V"], abs=1e-9)
        assert bench.cell.temperature_K == pytest.approx(t_K, abs=1e-12)


def _reference_station(driver: str = "keithley2400", **sim) -> Station:
    data = station_with(reference_cell={"isc_at_1000_W_m2_A": 0.1}, **sim)
    smu = dict(data["instruments"]["smu"])
    smu.pop("limits", None)
    data["instruments"]["reference_cell"] = smu | {"resource": "sim://reference_cell", "driver": driver}
    return Station(parse_station(data))


def _reference_isc_A(station: Station) -> float:
    ref = station["reference_cell"]
    ref.configure_voltage_source(compliance_A=0.5, nplc=1.0)
    ref.set_voltage(0.0)
    ref.enable_output()
    return -float(np.mean(ref.measure_point().current_A))


@pytest.mark.parametrize("driver", ["keithley2400", "keithley2450"])
def test_the_reference_cell_sees_the_shutter_the_drift_and_the_dips(driver):
    """A 2400 or 2450 on sim://reference_cell at 0 V: 0 A with the shutter closed, 0.1 A at 1000 W/m², and the
    lamp's drift and dip as the device sees them (0.1 A × 0.99 × 0.4 at 10.5 h; linear cell, hand calculation)."""
    station = _reference_station(driver, light={"drift_per_h": -0.001,
                                        "dips": [{"start_h": 10.0, "duration_h": 1.0, "depth": 0.6}]})
    station.connect(["reference_cell"])
    try:
        assert _reference_isc_A(station) == pytest.approx(0.0, abs=1e-6)
        station.bench.light.shutter_open = True
        assert _reference_isc_A(station) == pytest.approx(0.1, rel=1e-4)
        station.bench.clock.sleep(10.5 * HOUR_S - station.bench.clock.now())
        t_h = station.bench.clock.now() / HOUR_S
        assert _reference_isc_A(station) == pytest.approx(0.1 * (1 - 0.001 * t_h) * 0.4, rel=1e-4)
    finally:
        station.close()


def test_a_reference_cell_resource_without_one_on_the_bench_is_refused():
    data = station_with()
    data["instruments"]["reference_cell"] = dict(data["instruments"]["smu"]) | {"resource": "sim://reference_cell"}
    station = Station(parse_station(data))
    with pytest.raises(Exception, match="simulation.reference_cell"):
        station.connect(["reference_cell"])
    station.close()


@pytest.mark.parametrize("sim, line", [
    ({"light": {"dips": [{"start_h": 1.0, "duration_h": 1.0, "depth": 0.0}]}},
     "simulation.light.dips.0.depth = 0.0: Input should be greater than 0"),
    ({"light": {"drift_per_h": 0.5}}, "simulation.light.drift_per_h = 0.5: Input should be less than or equal to 0.01"),
    ({"temperature_schedule": [{"start_h": 1.0, "duration_h": 0.0, "rise_K": 5}]},
     "simulation.temperature_schedule.0.duration_h = 0.0: Input should be greater than 0"),
    ({"reference_cell": {"isc_at_1000_W_m2_A": -1}},
     "simulation.reference_cell.isc_at_1000_W_m2_A = -1: Input should be greater than 0"),
])
def test_bad_environment_keys_are_one_line_errors_naming_the_key_the_value_and_the_limit(sim, line):
    with pytest.raises(ConfigError) as info:
        parse_station(station_with(**sim))
    assert str(info.value) == f"station.yaml: {line}"


def test_the_stability_bench_checks_and_its_instruments_see_one_bench():
    """stations/stability-bench.yaml: `labctl station check` connects all four; the 211 reads the device
    temperature and the reference cell the lamp (CliRunner, in-process)."""
    from click.testing import CliRunner

    from labctl.cli import main
    from tests.helpers import REPO

    path = REPO / "stations" / "stability-bench.yaml"
    res = CliRunner().invoke(main, ["station", "check", "--station", str(path)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    for text in ("MODEL 2400", "SC10", "LSCI,MODEL211", "reference_cell", "temperature_sensor"):
        assert text in res.output, (text, res.output)
    assert "UNREACHABLE" not in res.output
    cfg = parse_station(__import__("yaml").safe_load(path.read_text()))
    assert cfg.simulation.device.degradation.j0_growth_tau_h == 383.0
    station = Station(cfg)
    station.connect()
    try:
        station.light().set_light(True)
        assert _reference_isc_A(station) == pytest.approx(0.1, rel=0.01)
        assert station["temperature"].read_temperature_K() == pytest.approx(298.15, abs=0.01)
        station.bench.clock.sleep(3000.0)
        assert station["temperature"].read_temperature_K() == pytest.approx(300.15, abs=0.01)  # + 2 K under light
    finally:
        station.close()

