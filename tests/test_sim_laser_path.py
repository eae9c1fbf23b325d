"""The light-intensity-Voc bench's laser path on the simulated bench (stations/voc-bench.yaml): laser -> two OD
wheels -> integrating sphere -> device or reference sensor at the sample port, and the in-sphere monitor photodiode.

Expected values are hand formulas written out here, not the simulator's functions:
- sphere multiplier M = ρ/(1 − ρ(1 − f)), surface A_s = π·d², sample-port irradiance E = P·T1·T2·M/A_s
  (Labsphere technical guide "A guide to integrating sphere theory and applications");
- photodiode current E·A·QE·λ·q/(h·c) + dark (scipy.constants), reference power E·π(d_ap/2)²;
- the device's suns X = E·EQE(520)·λ·q/(h·c)/Jsc and its Voc as the root (scipy brentq) of the three-diode
  equation of methods ref. §4.3 with the 2450's offset and input resistance (methods ref. §4.2).
The station's numbers (sphere, transmissions, device) are read from the station file the user gets.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from pyvisa.errors import VisaIOError
from scipy.constants import Boltzmann, elementary_charge, h, speed_of_light
from scipy.optimize import brentq

from labctl.cli import main
from labctl.config import ConfigError, load_station, parse_station
from labctl.station import Station
from sim_instruments.bench import Bench, CellParameters, Laser, Light
from sim_instruments.clock import RealClock
from sim_instruments.fw102c import FW102CEmulator
from sim_instruments.laser_path import AttenuatorWheel, IntegratingSphere, MonitorPhotodiode, ReferenceSensor, Sphere
from sim_instruments.pm100 import PM100Emulator
from sim_instruments.serve import served_station, start_server
from sim_instruments.server import serve

REPO = Path(__file__).resolve().parents[1]
STATION_FILE = REPO / "stations" / "voc-bench.yaml"
HC_Q_NM_V = h * speed_of_light / elementary_charge * 1e9  # 1239.84 nm·V
VT_V = Boltzmann * 298.15 / elementary_charge
WAVELENGTH_NM = 520.0


def station_data() -> dict:
    return yaml.safe_load(STATION_FILE.read_text())


def expected_irradiance_W_cm2(data: dict, power_W: float, slots: tuple[int, int]) -> float:
    """E = P·T1·T2·M/A_s with the station's true transmissions and sphere."""
    s = data["simulation"]["sphere"]
    wheels = data["simulation"]["filter_wheels"]
    rho, f = s["wall_reflectance"], s["port_fraction"]
    multiplier = rho / (1 - rho * (1 - f))
    surface_cm2 = math.pi * (s["diameter_mm"] / 10) ** 2
    t = wheels["od_wheel_1"][slots[0]] * wheels["od_wheel_2"][slots[1]]
    return power_W * t * multiplier / surface_cm2


def expected_monitor_A(data: dict, irradiance_W_cm2: float) -> float:
    s = data["simulation"]["sphere"]
    return (irradiance_W_cm2 * s["monitor_area_mm2"] / 100 * s["monitor_quantum_efficiency"] * WAVELENGTH_NM
            / HC_Q_NM_V + s["monitor_dark_current_A"])


def expected_voc_V(data: dict, suns: float) -> float:
    """Root of X·Jsc·A = A·[Σ J0k·(exp(V/(n_k V_t)) − 1) + V/Rsh] + I_drawn + V/R_in (Rs drops out at I ≈ 0)."""
    dev, k2450 = data["simulation"]["device"], data["simulation"]["keithley2450"]
    diodes = [(dev["ideality"], dev["j0_A_cm2"])] + [(d["ideality"], d["j0_A_cm2"]) for d in dev["extra_diodes"]]
    area, jsc = dev["area_cm2"], dev["jph_mA_cm2"] * 1e-3
    drawn_A = -k2450["current_offset_A"]  # the emulator's offset is into HI: a negative one is drawn from the cell

    def f(v: float) -> float:
        rec = sum(j0 * math.expm1(v / (n * VT_V)) for n, j0 in diodes) + v / dev["rsh_ohm_cm2"]
        return suns * jsc * area - rec * area - drawn_A - v / k2450["input_resistance_ohm"]
    return brentq(f, -1.0, 2.0, xtol=1e-12)


def write_station(tmp_path: Path, data: dict) -> Path:
    folder = tmp_path / "stations"
    folder.mkdir(exist_ok=True)
    path = folder / "voc-bench.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def quiet(data: dict) -> dict:
    """The station without laser noise and drift and without the junction capacitance (Voc follows the light at
    once: its settling is tested in test_sim_capacitance.py), for comparisons with the static hand formulas."""
    data["simulation"]["laser"].update({"power_noise": 0.0, "power_drift_per_h": 0.0})
    data["simulation"]["device"]["capacitance_nF_cm2"] = 0.0
    return data


@pytest.fixture
def quiet_station(tmp_path: Path):
    data = quiet(station_data())
    data["simulation"]["device"]["eqe"]["plateau"] = 0.80  # pin EQE(520 nm) to the §4.2 worked value
    station = Station(load_station(write_station(tmp_path, data)))
    station.connect()
    yield station, data
    station.close()


def _light(station: Station, power_W: float, slots: tuple[int, int]) -> None:
    laser = station["laser"]
    laser.set_power_W(power_W)
    laser.set_emission(True)
    station["od_wheel_1"].position, station["od_wheel_2"].position = slots


def _voc_V(station: Station) -> float:
    smu = station["smu"]
    smu.configure_current_source(compliance_V=2.0, nplc=1.0)
    smu.set_current(0.0)
    smu.enable_output()
    return float(smu.measure_point().voltage_V[0])


# -- the station file ------------------------------------------------------------------------------------------
def test_the_station_file_loads_and_station_check_passes() -> None:
    config = load_station(STATION_FILE)
    assert config.station.name == "voc-bench"
    assert set(config.instruments) == {"smu", "laser", "od_wheel_1", "od_wheel_2", "monitor", "reference"}
    assert config.simulation.laser.wavelength_nm == 520.0 and config.simulation.sphere is not None
    for role in ("od_wheel_1", "od_wheel_2"):  # the calibrated settings describe the true filters
        settings = config.instruments[role].settings
        assert settings.calibration_wavelength_nm == 520
        assert settings.transmission_table() == getattr(config.simulation.filter_wheels, role)
    res = CliRunner().invoke(main, ["station", "check", "--station", str(STATION_FILE)])
    assert res.exit_code == 0, res.output
    assert "od_wheel_2: thorlabs_fw102c at sim://od_wheel_2" in res.output and "errors: none" in res.output


def test_the_wheels_span_70_dB_and_open_wheels_near_78_mW_are_one_sun() -> None:
    """methods ref. §4.2: OD 0-7 over the 36 combinations; 1 sun at 520 nm for Jsc 18.3 mA/cm² and EQE 0.80 is
    54.54 mW/cm² at the sample port."""
    data = station_data()
    wheels = data["simulation"]["filter_wheels"]
    lowest = min(wheels["od_wheel_1"].values()) * min(wheels["od_wheel_2"].values())
    assert 10 * math.log10(1 / lowest) >= 70.0
    one_sun_W_cm2 = 18.3e-3 / (0.80 * WAVELENGTH_NM / HC_Q_NM_V)
    assert one_sun_W_cm2 == pytest.approx(54.54e-3, rel=1e-3)
    power_W = one_sun_W_cm2 / expected_irradiance_W_cm2(data, 1.0, (1, 1))
    assert 0.060 <= power_W <= 0.090


def test_default_station_device_sees_one_sun_at_the_one_sun_power(tmp_path: Path) -> None:
    """The user's station (noise, drift, derived EQE plateau): the power that makes 54.54 mW/cm² gives the
    device a short-circuit current of Jsc·A = 18.3 mA/cm² × 0.049 cm² within 2 %."""
    data = station_data()
    station = Station(load_station(STATION_FILE))
    station.connect(["smu", "laser", "od_wheel_1", "od_wheel_2"])
    try:
        _light(station, 54.54e-3 / expected_irradiance_W_cm2(data, 1.0, (1, 1)), (1, 1))
        smu = station["smu"]
        smu.configure_voltage_source(compliance_A=5e-3, nplc=1.0)
        smu.set_voltage(0.0)
        smu.enable_output()
        isc_A = -float(smu.measure_point().current_A[0])
        assert isc_A == pytest.approx(18.3e-3 * 0.049, rel=0.02)
    finally:
        station.close()


# -- the path: wheels, sphere, monitor, reference, device ------------------------------------------------------
@pytest.mark.parametrize("slots", [(1, 1), (2, 3), (4, 2), (6, 6)])
def test_monitor_current_through_wheels_and_sphere(quiet_station, slots: tuple[int, int]) -> None:
    station, data = quiet_station
    _light(station, 0.070, slots)
    e = expected_irradiance_W_cm2(data, 0.070, slots)
    assert station["monitor"].read_current_A() == pytest.approx(expected_monitor_A(data, e), rel=1e-5)
    # the console's power reading is that current over its own responsivity at its wavelength (QE 0.8 here)
    power_W = station["monitor"].read_power_W()
    assert power_W == pytest.approx(expected_monitor_A(data, e) / (0.8 * WAVELENGTH_NM / HC_Q_NM_V), rel=1e-5)


@pytest.mark.parametrize("slots", [(1, 1), (2, 4), (3, 5), (5, 3), (6, 6)])
def test_device_voc_at_a_wheel_combination_is_the_three_diode_voc_at_the_hand_suns(quiet_station, slots) -> None:
    station, data = quiet_station
    _light(station, 0.070, slots)
    suns = expected_irradiance_W_cm2(data, 0.070, slots) * 0.80 * WAVELENGTH_NM / HC_Q_NM_V / 18.3e-3
    assert _voc_V(station) == pytest.approx(expected_voc_V(data, suns), abs=0.3e-3)


def test_reference_sensor_reads_the_sample_port_only_when_placed_there_and_the_device_is_dark(quiet_station):
    station, data = quiet_station
    _light(station, 0.050, (2, 1))
    ref_W = expected_irradiance_W_cm2(data, 0.050, (2, 1)) * math.pi * (data["simulation"]["sphere"]
                                                                         ["reference_aperture_mm"] / 20) ** 2
    assert station["reference"].read_power_W() == 0.0  # off the sphere while the device is at the port
    voc_lit = _voc_V(station)
    assert voc_lit > 0.9
    station.place_in_beam("reference")
    assert station["reference"].read_power_W() == pytest.approx(ref_W, rel=1e-5)
    assert station.bench.suns == 0.0 and _voc_V(station) < 0.05  # the device is off the port: dark
    monitor_A = station["monitor"].read_current_A()  # the sphere is lit either way
    assert monitor_A == pytest.approx(expected_monitor_A(data, expected_irradiance_W_cm2(data, 0.050, (2, 1))),
                                      rel=1e-5)
    station.place_in_beam("dut")
    assert station["reference"].read_power_W() == 0.0
    assert _voc_V(station) == pytest.approx(voc_lit, abs=0.3e-3)  # lit again (within the 2450's reading noise)


def test_without_a_sphere_the_beam_is_as_before() -> None:
    """The default station's laser slot: all of the laser's power on the device, no laser path objects in it."""
    bench = Bench(laser=Laser(power_W=1e-3, on=True))
    assert bench.laser.wavelength_nm == 520.0  # the seed paper's wavelength is the default now
    assert bench.laser_path.sphere is None and bench.laser_path.device_power_W(0.049) == 1e-3
    with pytest.raises(ValueError, match="no integrating sphere"):
        bench.laser_path.monitor_current_A()


def test_sphere_objects_follow_the_hand_formulas() -> None:
    sphere = IntegratingSphere(diameter_mm=50.8, wall_reflectance=0.95, port_fraction=0.03)
    assert sphere.multiplier == pytest.approx(0.95 / (1 - 0.95 * 0.97))
    assert sphere.irradiance_W_cm2(0.01) == pytest.approx(0.01 * 0.95 / (1 - 0.95 * 0.97) / (math.pi * 5.08**2))
    pd = MonitorPhotodiode(area_mm2=10.0, quantum_efficiency=0.5, dark_current_A=1e-9)
    assert pd.current_A(1e-3, 633.0) == pytest.approx(1e-3 * 0.1 * 0.5 * 633.0 / HC_Q_NM_V + 1e-9)
    assert ReferenceSensor(aperture_mm=10.0).power_W(2e-3) == pytest.approx(2e-3 * math.pi * 0.5**2)
    assert AttenuatorWheel("od_wheel_1", {7: 0.5}).wheel_slots == 12  # a slot above 6: a 12-slot wheel
    assert AttenuatorWheel("od_wheel_1", {1: 1.0, 2: 0.1}).transmissions == {1: 1.0, 2: 0.1, 3: 1.0, 4: 1.0,
                                                                              5: 1.0, 6: 1.0}


# -- laser noise and drift --------------------------------------------------------------------------------------
def _sphere_bench(noise: float = 0.0, drift: float = 0.0) -> Bench:
    sphere = Sphere(IntegratingSphere(25.4, 0.98, 0.05), MonitorPhotodiode(13.0, 0.7, 0.0), ReferenceSensor(9.5))
    laser = Laser(power_W=0.05, on=True, power_noise=noise, power_drift_per_h=drift)
    cell = CellParameters(eqe=lambda wavelength_nm: 0.8)
    return Bench(cell=cell, light=Light(shutter_open=False), laser=laser, sphere=sphere, seed=1)


def test_laser_noise_is_the_relative_sigma_per_reading_seen_by_the_monitor() -> None:
    bench = _sphere_bench(noise=0.01)
    monitor = PM100Emulator(bench, sim_name="monitor")
    readings = np.array([float(monitor.handle("MEAS:CURR?")) for _ in range(1000)])
    e_W_cm2 = 0.05 * 0.98 / (1 - 0.98 * 0.95) / (math.pi * 2.54**2)  # 50 mW into the 1-inch sphere
    mean_expected = e_W_cm2 * 0.13 * 0.7 * WAVELENGTH_NM / HC_Q_NM_V
    assert readings.mean() == pytest.approx(mean_expected, rel=2e-3)  # 4.4 σ of the mean of 1000
    assert readings.std(ddof=1) / readings.mean() == pytest.approx(0.01, rel=0.12)  # σ of σ: 2.2 %
    # the device at the sample port sees the same emitted power: its short-circuit current fluctuates alike
    bench.set_cell_bias(0.0)
    isc = -np.array([bench.cell_current_A() for _ in range(1000)])
    assert isc.std(ddof=1) / isc.mean() == pytest.approx(0.01, rel=0.12)
    divider = 1 / (1 + 3.84022 / 2000)  # the default cell's Rs/Rsh current divider at short circuit
    assert isc.mean() == pytest.approx(e_W_cm2 * 0.049 * 0.8 * WAVELENGTH_NM / HC_Q_NM_V * divider, rel=2e-3)


def test_laser_drift_per_hour_of_emission_is_seen_alike_by_device_and_monitor() -> None:
    bench = _sphere_bench(drift=0.02)
    monitor = PM100Emulator(bench, sim_name="monitor")
    i0, suns0 = float(monitor.handle("MEAS:CURR?")), bench.suns
    bench.clock.sleep(1800.0)
    assert float(monitor.handle("MEAS:CURR?")) / i0 == pytest.approx(1.01, rel=1e-6)
    assert bench.suns / suns0 == pytest.approx(1.01, rel=1e-6)
    bench.laser.on = False  # time without emission does not drift the laser
    bench.clock.sleep(7200.0)
    bench.laser.on = True
    bench.clock.sleep(1800.0)
    assert float(monitor.handle("MEAS:CURR?")) / i0 == pytest.approx(1.02, rel=1e-6)
    assert bench.suns / suns0 == pytest.approx(1.02, rel=1e-6)


# -- the monitor on a second SMU ------------------------------------------------------------------------------
def test_monitor_smu_alternative_reads_the_photodiode_short_circuit_current(tmp_path: Path) -> None:
    """The commented alternative of the station file: a 2400 on sim://monitor_smu at 0 V reads −I_monitor."""
    data = quiet(station_data())
    data["instruments"]["monitor"] = {"driver": "keithley2400", "resource": "sim://monitor_smu",
                                      "read_termination": "\n", "write_termination": "\n"}
    station = Station(load_station(write_station(tmp_path, data)))
    station.connect(["laser", "od_wheel_1", "od_wheel_2", "monitor"])
    try:
        _light(station, 0.060, (3, 2))
        smu = station["monitor"]
        smu.configure_voltage_source(compliance_A=0.01, nplc=1.0)
        smu.set_voltage(0.0)
        smu.enable_output()
        current_A = float(smu.measure_point().current_A[0])
        expected = expected_monitor_A(data, expected_irradiance_W_cm2(data, 0.060, (3, 2)))
        assert -current_A == pytest.approx(expected, rel=1e-4)
    finally:
        station.close()


def test_monitor_smu_sees_a_photodiode_open_circuit_at_zero_current() -> None:
    """The photodiode as a diode: at I = 0 its voltage is V_t·ln(1 + I_mon/I_s) with the saturation current
    I_s = 1e-10 A the simulator assumes [L]; reverse bias leaves the current at −I_mon (a photodiode's plateau)."""
    from drivers.keithley2400 import Keithley2400
    from sim_instruments.adapter import EmulatorAdapter
    from sim_instruments.keithley2400 import Keithley2400Emulator

    bench = _sphere_bench()
    smu = Keithley2400(EmulatorAdapter(Keithley2400Emulator(bench, sim_name="monitor_smu")))
    smu.reset()
    e_W_cm2 = 0.05 * 0.98 / (1 - 0.98 * 0.95) / (math.pi * 2.54**2)
    i_mon_A = e_W_cm2 * 0.13 * 0.7 * WAVELENGTH_NM / HC_Q_NM_V
    smu.configure_current_source(compliance_V=2.0, nplc=1.0)
    smu.set_current(0.0)
    smu.enable_output()
    assert float(smu.measure_point().voltage_V[0]) == pytest.approx(VT_V * math.log1p(i_mon_A / 1e-10), abs=1e-4)
    smu.configure_voltage_source(compliance_A=0.01, nplc=1.0)
    smu.set_voltage(-1.0)
    assert -float(smu.measure_point().current_A[0]) == pytest.approx(i_mon_A + 1e-10, rel=1e-3)
    assert bench.cell_current_A() == 0.0  # the device's terminals are untouched (open circuit)


def test_a_monitor_needs_a_sphere() -> None:
    data = station_data()
    data["simulation"]["sphere"] = None
    with pytest.raises(ConfigError, match=r"instruments\.monitor\.resource = 'sim://monitor'.*simulation\.sphere"):
        parse_station(data)


# -- a stuck wheel through the real driver --------------------------------------------------------------------
def test_a_stuck_wheel_times_out_in_the_driver_and_does_not_move(quiet_station) -> None:
    station, _ = quiet_station
    wheel = station["od_wheel_1"]
    emulator = wheel.adapter.link.emulator
    emulator.stuck = True
    with pytest.raises(VisaIOError):
        wheel.position = 4
    assert station.bench.laser_path.wheel("od_wheel_1").wheel_position == 1
    emulator.stuck = False
    wheel.position = 4
    assert wheel.position == 4 and station.bench.laser_path.transmission() == pytest.approx(9.62e-4)


@pytest.mark.tcp
def test_a_stuck_wheel_over_tcp_times_out_after_the_shortened_move_timeout() -> None:
    bench = Bench(clock=RealClock(), od_wheels={"od_wheel_1": AttenuatorWheel("od_wheel_1", {2: 0.1})})
    emulator = FW102CEmulator(bench, sim_name="od_wheel_1")
    emulator.stuck = True
    data = station_data()
    data["instruments"] = {"od_wheel_1": dict(data["instruments"]["od_wheel_1"], timeout_ms=200)}
    config = parse_station(data)
    with serve({"od_wheel_1": (emulator, "\r", "\r")}, serial=["od_wheel_1"]) as server:
        station = Station(parse_station(served_station(config, server.resource_strings())))
        station.connect(["od_wheel_1"])
        try:
            wheel = station["od_wheel_1"]
            wheel.move_timeout_s = 0.3  # the driver's wait for the prompt after pos=n (default 20 s)
            start = time.monotonic()
            with pytest.raises(VisaIOError):
                wheel.position = 2
            assert 0.25 <= time.monotonic() - start < 3.0
            assert bench.laser_path.transmission() == 1.0
        finally:
            station.close()


# -- served over TCP -------------------------------------------------------------------------------------------
@pytest.mark.tcp
def test_served_bench_gives_each_od_wheel_and_the_monitor_its_own_instrument() -> None:
    data = station_data()
    config = load_station(STATION_FILE)
    with start_server(config) as server:
        station = Station(parse_station(served_station(config, server.resource_strings())))
        station.connect(["laser", "od_wheel_1", "od_wheel_2", "monitor", "reference"])
        try:
            _light(station, 0.050, (1, 1))
            monitor = station["monitor"]
            open_A = monitor.read_current_A()
            assert open_A == pytest.approx(expected_monitor_A(data, expected_irradiance_W_cm2(data, 0.05, (1, 1))),
                                           rel=0.02)  # real clock, laser noise 0.2 %
            station["od_wheel_1"].position = 2
            station["od_wheel_2"].position = 6
            assert (station["od_wheel_1"].position, station["od_wheel_2"].position) == (2, 6)
            ratio = monitor.read_current_A() / open_A
            assert ratio == pytest.approx(0.1047 * 0.01034, rel=0.02)
            assert station["reference"].read_power_W() == 0.0
            station.place_in_beam("reference")  # the served bench's operator puts it at the sample port
            ref_W = expected_irradiance_W_cm2(data, 0.05, (2, 6)) * math.pi * 0.475**2
            assert station["reference"].read_power_W() == pytest.approx(ref_W, rel=0.02)
        finally:
            station.close()

