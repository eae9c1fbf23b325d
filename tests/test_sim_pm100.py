"""PM100D / PM100USB emulator: strict SCPI, the light of the bench's laser on the sensor, and third-party traffic.

Expected readings are hand calculations: the sensor gets ``fraction × P_laser``; a photodiode at constant QE has
R(λ) = QE·λ/(hc/q) with hc/q = 1239.841984 nm·V (CODATA 2018), so a meter set to λ_set reads
P·λ_laser/λ_set; 1 mW is 0 dBm.
"""

from __future__ import annotations

import pytest
import yaml
from click.testing import CliRunner
from pymeasure.instruments.thorlabs import ThorlabsPM100USB

from labctl.cli import main
from labctl.config import parse_station
from labctl.station import Station
from sim_instruments.adapter import EmulatorAdapter
from sim_instruments.bench import Bench
from sim_instruments.pm100 import PM100Emulator
from sim_instruments.serve import start_server
from sim_instruments.server import serve
from tests.helpers import default_station

HC_OVER_Q_NM_V = 1239.841984


@pytest.fixture
def bench() -> Bench:
    b = Bench()
    b.laser.wavelength_nm, b.laser.power_W, b.laser.on = 520.0, 1e-3, True
    return b


@pytest.fixture
def pm(bench: Bench) -> PM100Emulator:
    return PM100Emulator(bench)


def _errors(pm: PM100Emulator) -> list[str]:
    out = []
    while (reply := pm.handle("SYST:ERR?")) != '0,"No error"':
        out.append(reply)
    return out


def test_identity_sensor_and_power_on_settings(bench: Bench) -> None:
    assert PM100Emulator(bench).handle("*IDN?").startswith("Thorlabs,PM100D,")
    pm = PM100Emulator(bench, model="PM100USB")
    assert pm.handle("*IDN?").startswith("Thorlabs,PM100USB,")
    assert pm.handle("SYST:SENS:IDN?") == pm.handle("system:sensor:idn?") == "S120C,00123456,10-Mar-2020,1,18,289"
    assert float(pm.handle("SENS:CORR:WAV?")) == 635.0
    assert [float(pm.handle(f"SENS:CORR:WAV? {w}")) for w in ("MIN", "MAX")] == [400.0, 1100.0]
    assert pm.handle("SENS:POW:UNIT?") == "W" and pm.handle("SENS:POW:RANG:AUTO?") == "1"
    assert pm.handle("SENS:AVER:COUN?") == "1"
    with pytest.raises(ValueError, match="model"):
        PM100Emulator(bench, model="PM400")


def test_unknown_commands_and_bad_values_go_to_the_error_queue_and_change_nothing(pm: PM100Emulator) -> None:
    assert pm.handle("FOO:BAR 1") is None
    assert pm.handle("SENS:CORR:WAV 2000") is None  # S120C: 400–1100 nm
    assert pm.handle("SENS:POW:UNIT MW") is None
    assert pm.handle("SENS:AVER:COUN 0") is None
    assert pm.handle("SYST:LFR 55") is None
    assert pm.handle("MEAS:POW? 1") is None  # a query that failed gives no reply
    assert pm.handle("SENS:CORR:WAV") is None
    assert _errors(pm) == ['-113,"Undefined header"', '-222,"Parameter data out of range"',
                           '-141,"Invalid character data"', '-222,"Parameter data out of range"',
                           '-224,"Illegal parameter value"', '-108,"Parameter not allowed"', '-109,"Missing parameter"']
    assert float(pm.handle("SENS:CORR:WAV?")) == 635.0 and pm.handle("SENS:POW:UNIT?") == "W"
    assert pm.handle("SENS:AVER:COUN?") == "1" and pm.handle("SYST:LFR?") == "50"
    assert pm.handle("FETC?") is None and _errors(pm) == ['-230,"Data corrupt or stale"']  # nothing measured yet


def test_power_is_the_laser_power_at_its_wavelength_and_scales_with_the_set_wavelength(pm: PM100Emulator) -> None:
    pm.handle("SENS:CORR:WAV 520")
    assert float(pm.handle("MEAS:POW?")) == pytest.approx(1e-3, rel=1e-6)
    pm.handle("sense:correction:wavelength 635")
    assert float(pm.handle("MEAS:POW?")) == pytest.approx(1e-3 * 520 / 635, rel=1e-6)
    current = 0.8 * 520 / HC_OVER_Q_NM_V * 1e-3  # QE 0.8 S120C at 520 nm, 1 mW
    assert float(pm.handle("MEAS:CURR?")) == pytest.approx(current, rel=1e-6)


def test_fraction_laser_off_and_dbm(bench: Bench) -> None:
    pm = PM100Emulator(bench, laser_fraction=0.1)
    pm.handle("SENS:CORR:WAV 520;:SENS:POW:UNIT DBM")
    assert float(pm.handle("MEAS:POW?")) == pytest.approx(-10.0, abs=1e-5)  # 0.1 mW
    pm.handle("SENS:POW:UNIT W")
    assert float(pm.handle("MEAS:POW?")) == pytest.approx(1e-4, rel=1e-6)
    bench.laser.on = False
    assert float(pm.handle("MEAS:POW?")) == 0.0
    with pytest.raises(ValueError, match="laser_fraction"):
        PM100Emulator(bench, laser_fraction=1.5)


def test_conf_init_fetch_and_read(pm: PM100Emulator) -> None:
    pm.handle("SENS:CORR:WAV 520;:CONF:CURR")
    assert pm.handle("CONF?") == "CURR"
    assert float(pm.handle("READ?")) == pytest.approx(0.8 * 520 / HC_OVER_Q_NM_V * 1e-3, rel=1e-6)
    pm.handle("CONF:POW;:INIT")
    assert float(pm.handle("FETC?")) == pytest.approx(1e-3, rel=1e-6)


def test_dark_zero_subtracts_what_the_sensor_saw(bench: Bench, pm: PM100Emulator) -> None:
    pm.handle("SENS:CORR:WAV 520")
    bench.laser.on = False
    pm2 = PM100Emulator(bench, dark_current_A=1e-9)
    pm2.handle("SENS:CORR:WAV 520")
    assert float(pm2.handle("MEAS:CURR?")) == pytest.approx(1e-9, rel=1e-6)
    pm2.handle("SENS:CORR:COLL:ZERO")
    assert float(pm2.handle("MEAS:CURR?")) == pytest.approx(0.0, abs=1e-18)
    bench.laser.on = True
    assert float(pm2.handle("MEAS:POW?")) == pytest.approx(1e-3, rel=1e-6)


def test_range_is_rounded_up_to_a_decade_and_turns_auto_ranging_off(pm: PM100Emulator) -> None:
    pm.handle("SENS:POW:RANG 3e-4")
    assert float(pm.handle("SENS:POW:RANG?")) == pytest.approx(1e-3) and pm.handle("SENS:POW:RANG:AUTO?") == "0"
    pm.handle("SENS:POW:RANG:AUTO ON")
    assert pm.handle("SENS:POW:RANG:AUTO?") == "1"
    assert pm.handle("SENS:POW:RANG 5") is None and _errors(pm) == ['-222,"Parameter data out of range"']


def test_averaging_takes_3_ms_per_sample(bench: Bench, pm: PM100Emulator) -> None:
    pm.handle("SENS:AVER:COUN 300")
    t0 = bench.clock.now()
    pm.handle("MEAS:POW?")
    assert bench.clock.now() - t0 == pytest.approx(0.9)


@pytest.mark.parametrize("transport", ["in-process", pytest.param("tcp", marks=pytest.mark.tcp)])
def test_unmodified_pymeasure_driver_reads_the_laser_power(bench: Bench, transport: str) -> None:
    emulator = PM100Emulator(bench, model="PM100USB")
    server = None
    with pytest.warns(FutureWarning, match="SCPI"):  # the stock class's own "SCPI unknown" warning
        if transport == "in-process":
            meter = ThorlabsPM100USB(EmulatorAdapter(emulator, read_termination="\n", write_termination="\n"))
        else:
            server = serve({"power_meter": (emulator, "\n", "\n")})
            meter = ThorlabsPM100USB(server.resource_strings()["power_meter"], visa_library="@py",
                                     read_termination="\n", write_termination="\n", timeout=5000)
    try:
        assert meter.sensor_name == "S120C" and meter.is_power_sensor and meter.wavelength_settable
        meter.wavelength = 520
        assert meter.wavelength == 520.0
        assert meter.power == pytest.approx(1e-3, rel=1e-6)
        assert meter.check_errors() == []
    finally:
        meter.adapter.close()
        if server is not None:
            server.close()


@pytest.mark.parametrize("driver", ["thorlabs_pm100d", "thorlabs_pm100usb"])
def test_station_with_a_simulated_power_meter(driver: str) -> None:
    data = default_station()
    data["instruments"] = {"meter": {"driver": driver, "resource": "sim://power_meter",
                                     "settings": {"wavelength_nm": 520, "averages": 10}}}
    station = Station(parse_station(data))
    station.connect()
    try:
        laser = station.bench.laser
        laser.wavelength_nm, laser.power_W, laser.on = 520.0, 2.5e-3, True
        meter = station.require("meter", "power_meter")
        assert meter.read_power_W() == pytest.approx(2.5e-3, rel=1e-6)
        meter.set_wavelength_nm(1000.0)
        assert meter.read_power_W() == pytest.approx(2.5e-3 * 520 / 1000, rel=1e-6)
        assert meter.check_errors() == []
    finally:
        station.close()


@pytest.mark.tcp
def test_unmodified_pymeasure_driver_on_the_served_bench_of_labctl_sim_serve() -> None:
    """``labctl sim serve``'s server (start_server): the station's power meter role, lit by its laser slot."""
    data = default_station()
    data["instruments"] = {"meter": {"driver": "thorlabs_pm100usb", "resource": "sim://power_meter"}}
    data["simulation"]["laser"] = {"on": True, "power_mW": 2.0, "wavelength_nm": 850.0}
    with start_server(parse_station(data)) as server:
        with pytest.warns(FutureWarning, match="SCPI"):
            meter = ThorlabsPM100USB(server.resource_strings()["meter"], visa_library="@py",
                                     read_termination="\n", write_termination="\n", timeout=5000)
        try:
            assert meter.id.startswith("Thorlabs,PM100USB,")
            meter.wavelength = 850
            assert meter.power == pytest.approx(2e-3, rel=1e-6)
            meter.wavelength = 425  # corrected for another wavelength: P·850/425
            assert meter.power == pytest.approx(4e-3, rel=1e-6)
        finally:
            meter.adapter.close()


def test_station_check_lists_the_simulated_power_meter(tmp_path) -> None:  # noqa: ANN001 - pytest's tmp_path
    data = default_station()
    data["instruments"] = {"meter": {"driver": "thorlabs_pm100d", "resource": "sim://power_meter"}}
    path = tmp_path / "station.yaml"
    path.write_text(yaml.safe_dump(data))
    res = CliRunner().invoke(main, ["station", "check", "--station", str(path)])
    assert res.exit_code == 0, res.output
    assert "meter: thorlabs_pm100d at sim://power_meter" in res.output and "offers: power_meter" in res.output
    assert "Thorlabs,PM100D," in res.output and "errors: none" in res.output


# -- on a bench with an integrating sphere: the monitor photodiode and the reference sensor -------------------
def _sphere_bench() -> Bench:
    from sim_instruments.laser_path import IntegratingSphere, MonitorPhotodiode, ReferenceSensor, Sphere

    sphere = Sphere(IntegratingSphere(50.8, 0.95, 0.04), MonitorPhotodiode(10.0, 0.6, 5e-12), ReferenceSensor(8.0))
    from sim_instruments.bench import CellParameters, Light

    b = Bench(cell=CellParameters(eqe=lambda wavelength_nm: 0.8), light=Light(shutter_open=False), sphere=sphere)
    b.laser.wavelength_nm, b.laser.power_W, b.laser.on = 520.0, 0.04, True
    return b


#: sample-port irradiance (W/cm²) of 40 mW in a 2-inch sphere, ρ = 0.95, f = 0.04: E = P·ρ/(1 − ρ(1 − f))/(π d²)
E_SPHERE_W_CM2 = 0.04 * 0.95 / (1 - 0.95 * 0.96) / (3.141592653589793 * 5.08**2)


def test_monitor_reads_the_in_sphere_photodiode_current_and_its_power_over_the_console_responsivity() -> None:
    pm = PM100Emulator(_sphere_bench(), sim_name="monitor")
    current_A = E_SPHERE_W_CM2 * 0.10 * 0.6 * 520.0 / HC_OVER_Q_NM_V + 5e-12  # 10 mm², QE 0.6, dark 5 pA
    assert float(pm.handle("MEAS:CURR?")) == pytest.approx(current_A, rel=1e-6)
    pm.handle("SENS:CORR:WAV 520")
    # the console divides by its own sensor responsivity (QE 0.8 at its wavelength), as the real one does
    assert float(pm.handle("MEAS:POW?")) == pytest.approx(current_A / (0.8 * 520.0 / HC_OVER_Q_NM_V), rel=1e-6)


def test_power_meter_is_the_reference_sensor_read_only_at_the_sample_port() -> None:
    bench = _sphere_bench()
    pm = PM100Emulator(bench, model="PM100USB")
    assert pm.handle("SYST:SENS:IDN?").startswith("S121C,")  # the calibration's reference sensor
    assert PM100Emulator(bench, sim_name="monitor").handle("SYST:SENS:IDN?").startswith("S120C,")
    pm.handle("SENS:CORR:WAV 520")
    assert float(pm.handle("MEAS:POW?")) == 0.0  # the device is at the port, lit
    assert bench.suns > 0.0
    bench.laser_path.place_at_sample_port("reference")
    assert float(pm.handle("MEAS:POW?")) == pytest.approx(E_SPHERE_W_CM2 * 3.141592653589793 * 0.4**2, rel=1e-6)
    assert bench.suns == 0.0  # the device left the port: dark


def test_a_monitor_needs_a_sphere(bench: Bench) -> None:
    with pytest.raises(ValueError, match=r"no integrating sphere.*simulation\.sphere"):
        PM100Emulator(bench, sim_name="monitor")


def test_without_a_sphere_the_power_meter_sees_the_laser_noise_and_drift_as_the_device_does() -> None:
    import numpy as np

    from sim_instruments.bench import Laser

    bench = Bench(laser=Laser(wavelength_nm=520.0, power_W=1e-3, on=True, power_noise=0.01, power_drift_per_h=0.1))
    pm = PM100Emulator(bench)
    pm.handle("SENS:CORR:WAV 520")
    readings = np.array([float(pm.handle("MEAS:POW?")) for _ in range(1000)])
    assert readings.std(ddof=1) / readings.mean() == pytest.approx(0.01, rel=0.12)  # 1000 readings: σ of σ 2.2 %
    bench.laser.power_noise = 0.0
    t_h = bench.clock.now() / 3600  # 1000 readings of 3 ms each: 3 s of emission
    # the reply has 7 significant digits; the drift after 3 s is 8e-5 of the power
    assert float(pm.handle("MEAS:POW?")) == pytest.approx(1e-3 * (1 + 0.1 * (t_h + 3e-3 / 3600)), rel=1e-6)
