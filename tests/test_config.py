"""station.yaml validation: unknown keys, bad values and model ranges give one clear line each."""

from __future__ import annotations

import pytest

from labctl.config import ConfigError, load_station, parse_station
from tests.conftest import DEFAULT_STATION


def test_default_station_is_simulated_and_valid():
    cfg = load_station(DEFAULT_STATION)
    assert cfg.simulation.enabled
    assert cfg.simulation.clock == "virtual"
    assert all(inst.simulated for inst in cfg.instruments.values())
    assert cfg.instruments["smu"].driver in {"keithley2400", "keithley2420", "keithley2450"}
    dev = cfg.simulation.device
    assert (dev.ideality, dev.rsh_ohm_cm2, dev.area_cm2) == (1.5, 2000.0, 0.049)


def test_snapshot_holds_defaults(station_dict):
    del station_dict["simulation"]["device"]["hysteresis"]
    snap = parse_station(station_dict).snapshot()
    assert snap["simulation"]["device"]["hysteresis"]["tau_s"] == 10.0
    assert snap["instruments"]["smu"]["limits"]["voltage_V"] == 1.5


def test_unknown_key_is_named(station_dict):
    station_dict["instruments"]["smu"]["complience_A"] = 0.1
    with pytest.raises(ConfigError) as exc:
        parse_station(station_dict)
    msg = str(exc.value)
    assert "instruments.smu.complience_A" in msg and "unknown key" in msg


def test_unknown_driver_lists_allowed(station_dict):
    station_dict["instruments"]["smu"]["driver"] = "keithley9999"
    with pytest.raises(ConfigError) as exc:
        parse_station(station_dict)
    msg = str(exc.value)
    assert "instruments.smu.driver" in msg and "'keithley9999'" in msg and "keithley2400" in msg


def test_limit_beyond_model_range_is_rejected(station_dict):
    station_dict["instruments"]["smu"]["limits"]["current_A"] = 2.0  # a 2400 complies to 1.05 A at most
    with pytest.raises(ConfigError) as exc:
        parse_station(station_dict)
    assert "current_A = 2.0" in str(exc.value) and "1.05" in str(exc.value)


def test_2420_accepts_the_larger_current(station_dict):
    station_dict["instruments"]["smu"]["driver"] = "keithley2420"
    station_dict["instruments"]["smu"]["limits"]["current_A"] = 2.0
    assert parse_station(station_dict).instruments["smu"].limits.current_A == 2.0


def test_out_of_range_device_value_names_key_and_value(station_dict):
    station_dict["simulation"]["device"]["ideality"] = 42
    with pytest.raises(ConfigError) as exc:
        parse_station(station_dict)
    msg = str(exc.value)
    assert "simulation.device.ideality = 42" in msg and "10" in msg


def test_sim_resource_needs_simulation(station_dict):
    station_dict["simulation"]["enabled"] = False
    with pytest.raises(ConfigError, match="sim://"):
        parse_station(station_dict)


def test_bad_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "s.yaml"
    bad.write_text("instruments: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_station(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_station(tmp_path / "missing.yaml")


def test_missing_instruments_key():
    with pytest.raises(ConfigError, match="missing key 'instruments'"):
        parse_station({"station": {"name": "x"}})


def test_certificate_path_is_relative_to_the_station_file(tmp_path, station_dict, write_station):
    cert = tmp_path / "cert_si.csv"
    cert.write_text("wavelength_nm,responsivity_A_W\n400,0.1\n900,0.5\n")
    station_dict.setdefault("eqe", {})["reference_detectors"] = {
        "si": {"responsivity": "cert_si.csv", "min_nm": 400, "max_nm": 900}
    }
    cfg = load_station(write_station(station_dict))
    assert cfg.eqe.reference_detectors["si"].responsivity == str(cert)
