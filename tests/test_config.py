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


# --- impossible simulated devices (issue 6, item 10) ------------------------------------------------
def _tail_jsc_mA_cm2(bandgap_eV: float, urbach_meV: float) -> float:
    """Jsc (mA/cm², AM1.5G) of the Urbach tail exp((E − Eg)/E_U) below the gap out to 2000 nm, on the G173 grid."""
    import numpy as np
    import pvlib

    spectrum = pvlib.spectrum.get_reference_spectra()["global"]
    wl, irr = spectrum.index.to_numpy(dtype=float), spectrum.to_numpy(dtype=float)
    lam_g = 1239.841984 / bandgap_eV
    keep = (wl >= lam_g) & (wl < 2000.0)
    wl, irr = np.concatenate(([lam_g], wl[keep])), np.concatenate(([np.interp(lam_g, wl, irr)], irr[keep]))
    eqe = np.exp((1239.841984 / wl - bandgap_eV) / (urbach_meV * 1e-3))
    return float(np.trapezoid(eqe * wl / 1239.841984 * irr, wl)) / 10.0  # A/m² → mA/cm²


# methods ref. §3.5: Jsc,max (EQE = 1 from 280 nm to λg) for Eg 1.50 and 1.30 eV
JSC_MAX_MA_CM2 = {1.50: 28.97, 1.30: 35.82}


@pytest.mark.parametrize("bandgap_eV", [1.50, 1.30])
def test_photocurrent_above_what_the_gap_allows_is_an_error(station_dict, bandgap_eV):
    """jph above Jsc,max of its gap needs an EQE above 1: refused, naming the keys, the values and the maximum."""
    urbach_meV = station_dict["simulation"]["device"]["eqe"]["urbach_meV"]
    jph_max = JSC_MAX_MA_CM2[bandgap_eV] + _tail_jsc_mA_cm2(bandgap_eV, urbach_meV)
    jph = round(jph_max + 0.3, 1)  # 30.0 at 1.50 eV, as in the issue
    station_dict["simulation"]["device"].update(jph_mA_cm2=jph)
    station_dict["simulation"]["device"]["eqe"]["bandgap_eV"] = bandgap_eV
    with pytest.raises(ConfigError) as exc:
        parse_station(station_dict)
    msg = str(exc.value)
    assert len(msg.splitlines()) == 1
    assert f"simulation.device.jph_mA_cm2 = {jph:g}" in msg and "peak EQE of 1.0" in msg
    assert f"simulation.device.eqe.bandgap_eV = {bandgap_eV:g}" in msg and f"urbach_meV = {urbach_meV:g}" in msg
    allowed = float(msg.split("jph_mA_cm2 <= ")[1].split(" mA/cm²")[0])
    assert allowed == pytest.approx(jph_max, abs=0.02)


@pytest.mark.parametrize("bandgap_eV", [1.50, 1.30])
def test_photocurrent_the_gap_allows_is_accepted(station_dict, bandgap_eV):
    station_dict["simulation"]["device"].update(jph_mA_cm2=JSC_MAX_MA_CM2[bandgap_eV] - 0.05)
    station_dict["simulation"]["device"]["eqe"]["bandgap_eV"] = bandgap_eV
    assert parse_station(station_dict).simulation.device.eqe.bandgap_eV == bandgap_eV


def test_explicit_plateau_does_not_excuse_an_impossible_photocurrent(station_dict):
    station_dict["simulation"]["device"].update(jph_mA_cm2=30.0)
    station_dict["simulation"]["device"]["eqe"].update(bandgap_eV=1.5, plateau=0.9)
    with pytest.raises(ConfigError, match=r"jph_mA_cm2 = 30 is more than an EQE of 1 gives"):
        parse_station(station_dict)


def test_explicit_plateau_that_disagrees_with_jph_is_accepted(station_dict):
    """A deliberate J–V/EQE mismatch (the EQE run's Jsc check reports it) is a possible device."""
    station_dict["simulation"]["device"]["eqe"]["plateau"] = 0.5
    assert parse_station(station_dict).simulation.device.eqe.plateau == 0.5


def test_shape_lifting_the_eqe_above_1_is_an_error(station_dict):
    station_dict["simulation"]["device"]["eqe"].update(plateau=0.9, shape=[[400, 1.0], [500, 1.25], [600, 1.0]])
    with pytest.raises(ConfigError) as exc:
        parse_station(station_dict)
    msg = str(exc.value)
    assert "simulation.device.eqe.plateau = 0.9" in msg and "EQE of 1.1250" in msg and "<= 1" in msg


def test_impossible_device_makes_the_cli_exit_2(station_dict, write_station):
    from click.testing import CliRunner

    from labctl.cli import main

    station_dict["simulation"]["device"].update(jph_mA_cm2=30.0)
    station_dict["simulation"]["device"]["eqe"]["bandgap_eV"] = 1.5
    res = CliRunner().invoke(main, ["run", "jv", "--station", str(write_station(station_dict))],
                             catch_exceptions=False)
    assert res.exit_code == 2, res.output
    assert "simulation.device.jph_mA_cm2 = 30" in res.output and "Traceback" not in res.output


def test_an_impossible_pixel_of_a_substrate_is_named_by_its_own_path():
    """The device check names the keys of the device it checks: `simulation.devices.<n>.` for a substrate's pixel
    (it said `simulation.device.jph_mA_cm2` there, a key the file does not have)."""
    from tests.helpers import default_station

    data = default_station()
    del data["simulation"]["device"]
    data["simulation"]["devices"] = [{"jph_mA_cm2": 18.0}, {"jph_mA_cm2": 40.0}]
    with pytest.raises(ConfigError) as info:
        parse_station(data)
    msg = str(info.value)
    assert msg.startswith("station.yaml: simulation.devices.1.jph_mA_cm2 = 40 would need a peak EQE of")
    assert "simulation.device." not in msg


def test_a_limit_beyond_the_instrument_is_one_line_with_its_full_key():
    from tests.helpers import default_station

    data = default_station()
    data["instruments"]["smu"]["limits"] = {"voltage_V": 2.0, "current_A": 2.0}
    with pytest.raises(ConfigError) as info:
        parse_station(data)
    assert str(info.value) == ("station.yaml: instruments.smu.limits.current_A = 2.0 exceeds the keithley2400's "
                               "compliance range (allowed: 0 < current_A <= 1.05)")
