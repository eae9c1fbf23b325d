"""The bench holds several light sources (solar simulator, monochromator beam, laser) and several devices (pixels),
one connected at a time. Expected values: hand calculation (photon flux × EQE) and pvlib's single-diode solution,
never the bench's own functions."""

from __future__ import annotations

import numpy as np
import pvlib
import pytest
from scipy.constants import Boltzmann, elementary_charge

from labctl.config import ConfigError, parse_station
from sim_instruments.clock import VirtualClock
from sim_instruments.compose import build_bench
from tests.helpers import default_station

HC_NM_V = 1239.841984  # hc/q (nm·V), CODATA
T_K = 298.15
#: the default station's device (station.yaml = methods ref. §1.6 set A on 0.049 cm²)
JPH_A_CM2, J0_A_CM2, N, RS, RSH, AREA_CM2 = 18.33514e-3, 1.16004e-15, 1.5, 3.84022, 2000.0, 0.049
N_VT_V = N * Boltzmann * T_K / elementary_charge


def _bench(mutate=None):
    data = default_station()
    data["simulation"]["device"]["eqe"]["plateau"] = 0.8  # a flat EQE of 0.8 above the gap (785 nm)
    data["simulation"]["light"]["flicker"] = 0.0  # steady lamp: compare with the exact solution
    if mutate:
        mutate(data["simulation"])
    return build_bench(parse_station(data), VirtualClock())


def _sc_current_A(jph_A_cm2: float, area_cm2: float = AREA_CM2, rsh: float = RSH) -> float:
    """What the SMU reads at 0 V (A, SMU convention) for photocurrent ``jph_A_cm2``: pvlib, single diode."""
    return -float(pvlib.pvsystem.i_from_v(0.0, jph_A_cm2, J0_A_CM2, RS, rsh, N_VT_V)) * area_cm2


#: 1 mW at 532 nm, EQE 0.8: 1e-3 W × 0.8 × 532/1239.841984 A/W = 3.4327e-4 A on 0.049 cm² = 7.0055 mA/cm²
J_LASER_A_CM2 = 1e-3 * 0.8 * 532.0 / HC_NM_V / AREA_CM2


def test_hand_number_of_the_laser_photocurrent():
    assert J_LASER_A_CM2 == pytest.approx(7.0055e-3, rel=1e-4)


def test_default_bench_is_one_device_with_the_laser_off():
    data = default_station()
    data["simulation"]["light"]["flicker"] = 0.0
    bench = build_bench(parse_station(data), VirtualClock())
    assert len(bench.devices) == 1 and bench.selected_device == 1
    assert set(bench.sources) == {"solar_simulator", "monochromator", "laser"}
    assert bench.sources["monochromator"] is bench.optics and bench.laser.on is False
    bench.light.shutter_open = True
    bench.set_cell_bias(0.0)
    assert bench.cell_current_A() == pytest.approx(_sc_current_A(JPH_A_CM2), rel=1e-9)


def test_laser_alone_gives_its_photocurrent_and_voc():
    bench = _bench(lambda sim: sim.update(laser={"wavelength_nm": 532, "power_mW": 1.0, "on": True}))
    assert bench.light.shutter_open is False  # only the laser lights the cell
    bench.set_cell_bias(0.0)
    assert bench.cell_current_A() == pytest.approx(_sc_current_A(J_LASER_A_CM2), rel=1e-6)
    bench.set_cell_bias(None)
    voc = float(pvlib.pvsystem.v_from_i(0.0, J_LASER_A_CM2, J0_A_CM2, RS, RSH, N_VT_V))
    assert bench.open_circuit_voltage_V() == pytest.approx(voc, abs=1e-6)


def test_laser_adds_to_the_solar_simulator_and_follows_its_power():
    bench = _bench(lambda sim: sim.update(laser={"wavelength_nm": 532, "power_mW": 1.0, "on": True}))
    bench.light.shutter_open = True
    bench.set_cell_bias(0.0)
    assert bench.cell_current_A() == pytest.approx(_sc_current_A(JPH_A_CM2 + J_LASER_A_CM2), rel=1e-6)
    bench.laser.power_W = 2e-3
    assert bench.cell_current_A() == pytest.approx(_sc_current_A(JPH_A_CM2 + 2 * J_LASER_A_CM2), rel=1e-6)
    bench.laser.on = False
    assert bench.cell_current_A() == pytest.approx(_sc_current_A(JPH_A_CM2), rel=1e-9)


def test_laser_below_the_gap_generates_almost_nothing():
    """At 1064 nm (1.165 eV), 0.41 eV below the 1.5789 eV gap: EQE = 0.8·exp(−0.414/0.020) ≈ 8e-10."""
    bench = _bench(lambda sim: sim.update(laser={"wavelength_nm": 1064, "power_mW": 1.0, "on": True}))
    eqe = 0.8 * np.exp((HC_NM_V / 1064.0 - 1.5789) / 0.020)
    bench.set_cell_bias(0.0)
    j = 1e-3 * eqe * 1064.0 / HC_NM_V / AREA_CM2
    assert bench.cell_current_A() == pytest.approx(_sc_current_A(j), rel=1e-6)
    assert abs(bench.cell_current_A()) < 1e-12


def _substrate(sim):
    sim.pop("device")
    sim["devices"] = [{"area_cm2": 0.049, "eqe": {"plateau": 0.8}},
                      {"area_cm2": 0.16, "rsh_ohm_cm2": 100.0, "eqe": {"plateau": 0.4}}]


def test_the_selected_device_is_the_one_the_smu_measures():
    bench = _bench(_substrate)
    bench.light.shutter_open = True
    assert len(bench.devices) == 2 and bench.selected_device == 1
    bench.set_cell_bias(0.0)
    assert bench.cell_current_A() == pytest.approx(_sc_current_A(JPH_A_CM2), rel=1e-9)
    bench.select_device(2)
    assert bench.cell_current_A() == pytest.approx(_sc_current_A(JPH_A_CM2, 0.16, 100.0), rel=1e-9)
    with pytest.raises(ValueError, match=r"no device 3 on the bench \(allowed: 1-2\)"):
        bench.select_device(3)


def test_the_eqe_optics_see_the_selected_device():
    """Short-circuit responsivity EQE·λ/(hc/q)·Rsh/(Rs+Rsh): 0.8·600/1239.84·2000/2003.84, then 0.4·…·100/103.84."""
    bench = _bench(_substrate)
    r1 = 0.8 * 600.0 / HC_NM_V * RSH / (RS + RSH)
    assert bench.optics.dut_responsivity(600.0) == pytest.approx(r1, rel=1e-9)
    bench.select_device(2)
    assert bench.optics.dut_responsivity(600.0) == pytest.approx(0.4 * 600.0 / HC_NM_V * 100.0 / (RS + 100.0),
                                                                 rel=1e-9)


def test_every_device_receives_the_light_dose():
    bench = _bench(_substrate)
    bench.light.shutter_open = True
    bench.set_cell_bias(0.0)
    bench.clock.sleep(3600.0)
    bench.cell_current_A()  # brings the bench up to date
    assert [d.light_dose_s for d in bench.devices] == pytest.approx([3600.0, 3600.0])


def test_selected_device_in_the_station_file(station_dict):
    _substrate(station_dict["simulation"])
    station_dict["simulation"]["selected_device"] = 2
    cfg = parse_station(station_dict)
    assert cfg.simulation.device.area_cm2 == 0.16  # `device` is the selected one
    assert build_bench(cfg, VirtualClock()).selected_device == 2
    assert parse_station(cfg.snapshot()).simulation.device.area_cm2 == 0.16  # the snapshot reads back


def test_selected_device_beyond_the_substrate_is_refused(station_dict):
    _substrate(station_dict["simulation"])
    station_dict["simulation"]["selected_device"] = 3
    with pytest.raises(ConfigError, match=r"simulation.selected_device = 3: the bench has 2 devices \(allowed: 1-2\)"):
        parse_station(station_dict)


def test_device_and_devices_together_are_refused(station_dict):
    station_dict["simulation"]["devices"] = [{"area_cm2": 0.1}]
    with pytest.raises(ConfigError, match=r"simulation.device or .* simulation.devices, not both"):
        parse_station(station_dict)


def test_the_smu_of_a_station_reads_the_laser_photocurrent():
    """Through the station: the Keithley driver on its sim:// adapter measures the laser-lit device at 0 V.

    Tolerance: the emulator's reading noise, 2e-5 of the range rms at 1 NPLC, is 2e-7 A on the 10 mA range;
    1.5e-6 A is over 7 sigma."""
    from labctl.station import Station

    data = default_station()
    data["simulation"]["device"]["eqe"]["plateau"] = 0.8
    data["simulation"]["laser"] = {"wavelength_nm": 532, "power_mW": 1.0, "on": True}
    station = Station(parse_station(data))
    station.connect(["smu"])
    smu = station["smu"]
    smu.configure_voltage_source(compliance_A=0.01, nplc=1.0)
    smu.set_voltage(0.0)
    smu.enable_output()
    reading = smu.measure_point()
    station.safe_state()
    station.close()
    assert float(reading.current_A[0]) == pytest.approx(_sc_current_A(J_LASER_A_CM2), abs=1.5e-6)
    assert abs(float(reading.current_A[0])) > 3e-4  # the laser alone: the solar simulator's shutter is closed
