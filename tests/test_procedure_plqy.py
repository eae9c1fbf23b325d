"""The modulated device-PLQY procedure (procedures/plqy.py) on the simulated PLQY bench (stations/plqy-bench.yaml).

Expected values are independent of the code under test: the configured PLQY (``simulation.pl.plqy``), the
J–V run's Jsc, and the chain of methods ref. §5.1 worked by hand here with scipy's constants (F of a 10 × 10 mm
detector at 50 mm = 1.25650e-2, methods ref. §5.2 / §9 case L1).
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from scipy.constants import Planck, elementary_charge, speed_of_light

from labctl.cli import main
from labctl.config import ConfigError, parse_station
from labctl.engine import RunEngine
from labctl.station import Station
from labctl.storage import load_run
from procedures.jv import JVProcedure
from procedures.plqy import SPECTRUM_POINTS, PLQYProcedure
from tests.helpers import REPO

STATION = REPO / "stations" / "plqy-bench.yaml"


def bench_data(**pl) -> dict:  # noqa: ANN003
    """stations/plqy-bench.yaml with ``simulation.pl`` keys replaced (``stray`` as its scattered fraction)."""
    data = copy.deepcopy(yaml.safe_load(STATION.read_text()))
    for key, value in pl.items():
        if key == "stray":
            data["simulation"]["pl"]["stray"] = {"scattered_fraction": value}
        else:
            data["simulation"]["pl"][key] = value
    return data


def run(out: Path, data: dict, procedure):  # noqa: ANN001, ANN201
    station = Station(parse_station(data))
    return RunEngine(station, out, sample="qd").run(procedure), station


@pytest.fixture(scope="module")
def jv_run(tmp_path_factory) -> Path:  # noqa: ANN001
    """The J–V run under AM1.5G on the PLQY bench (its solar simulator): the 1-sun Jsc."""
    result, _ = run(tmp_path_factory.mktemp("jv"), bench_data(), JVProcedure())
    assert result.status == "completed", result.error
    return result.path


def _jsc_mA_cm2(jv: Path) -> float:
    results = load_run(jv).results
    return next(r["jsc_mA_cm2"] for r in results.values() if isinstance(r, dict) and r.get("jsc_mA_cm2"))


def _laser_emits(station: Station) -> bool:
    return station["laser"].adapter.emulator.handle("?L").strip() == "1"


def _generator_on(station: Station) -> bool:
    return station["fgen"].output_is_on()


def _events(result) -> list[str]:  # noqa: ANN001
    return load_run(result.path).events


# -- the measurement -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("plqy", [0.1, 0.01, 0.001])
def test_the_measured_plqy_matches_the_configured_one_over_two_decades(tmp_path, jv_run, plqy):
    result, station = run(tmp_path, bench_data(plqy=plqy), PLQYProcedure(jv_file=str(jv_run)))
    assert result.status == "completed", result.error
    r = result.results
    assert r["plqy"] == pytest.approx(plqy, rel=0.05)
    assert r["snr_dB"] >= 40 and r["snr_ok"]  # the default chain keeps 40 dB down to 0.1 %
    # the default device's recombination has ideality 1.5: the differential PLQY is ~1.5 × the integral one
    assert 1.3 < r["k_factor"] < 1.7
    assert r["plqy_differential"] == pytest.approx(r["k_factor"] * r["plqy"], rel=1e-9)
    # 1 sun: the laser's Isc is the J–V run's Jsc on 0.049 cm² (the search's tolerance 0.3 %, noise 0.2 %/reading)
    assert r["isc_A"] == pytest.approx(_jsc_mA_cm2(jv_run) * 1e-3 * 0.049, rel=0.005)
    assert r["f_mod_Hz"] == 7.0 and r["modulation_depth"] == pytest.approx(0.005, rel=1e-9)
    assert 1.0 < r["voc_V"] < 1.3
    assert not _laser_emits(station) and not _generator_on(station)


def test_1_sun_by_the_jv_runs_voc(tmp_path, jv_run):
    result, station = run(tmp_path, bench_data(), PLQYProcedure(jv_file=str(jv_run), one_sun_by="voc"))
    assert result.status == "completed", result.error
    r = result.results
    voc_jv = next(x["voc_V"] for x in load_run(jv_run).results.values() if isinstance(x, dict) and x.get("voc_V"))
    assert r["voc_V"] == pytest.approx(voc_jv, abs=1e-3)  # the search's 0.5 mV, then Voc read again
    assert r["plqy"] == pytest.approx(0.10, rel=0.05)
    assert not _laser_emits(station) and not _generator_on(station)


def test_the_chain_matches_a_hand_calculation(tmp_path, jv_run):
    """From the stored line power, by hand: V = √(50 Ω·1 mW·10^(P/10)), I = V/1e7, N_det = I/(q·R·hc/(qλ)),
    N_em = N_det/(F·0.95²), δN_abs = m·(Isc/q)/√2."""
    result, _ = run(tmp_path, bench_data(), PLQYProcedure(jv_file=str(jv_run)))
    r = result.results
    c = {k: v["value"] for k, v in r["chain"].items()}
    v = math.sqrt(0.05 * 10 ** (r["pl_line_dBm"] / 10))
    i = v / 1e7
    eqe_det = 0.50 * Planck * speed_of_light / (elementary_charge * 785e-9)
    n_em = i / (elementary_charge * eqe_det) / (1.25650e-2 * 0.95**2)
    n_abs = 0.005 * (r["isc_A"] / elementary_charge) / math.sqrt(2)
    assert c["line_v_rms_V"] == pytest.approx(v, rel=1e-9)
    assert c["photocurrent_rms_A"] == pytest.approx(i, rel=1e-9)
    assert c["collection_fraction"] == pytest.approx(1.25650e-2, rel=1e-5)
    assert c["emitted_photon_rate_rms_per_s"] == pytest.approx(n_em, rel=1e-4)
    assert r["plqy_differential"] == pytest.approx(n_em / n_abs, rel=1e-4)
    assert r["chain"]["photocurrent_rms_A"]["unit"] == "A"
    run_file = load_run(result.path)
    chain = run_file.streams["chain"]
    assert dict(zip(chain.quantity, chain.unit, strict=True))["emitted_photon_rate_rms_per_s"] == "1/s"
    spectrum = run_file.streams["spectrum"]
    assert set(spectrum.kind) == {"line", "stray", "k"}
    assert len(spectrum.level_dBm.iloc[0]) == SPECTRUM_POINTS  # the N-D column: one trace per row
    assert r["qfls_eV"] is None  # no EQE run given: the QFLS needs Voc,R (labctl analyze voc-loss)


# -- SNR, stray pump -------------------------------------------------------------------------------------------
def test_an_snr_below_40_dB_is_warned(tmp_path, jv_run):
    # no stray pump; PLQY 1e-4: the line ~60 dB below the default's, the floor (Johnson noise of 1e7 V/A) lower
    result, _ = run(tmp_path, bench_data(plqy=1e-4, stray=0.0), PLQYProcedure(jv_file=str(jv_run)))
    assert result.status == "completed", result.error
    assert 20 <= result.results["snr_dB"] < 40 and not result.results["snr_ok"]
    assert any("WARNING: SNR" in e and "snr_warn_dB = 40" in e for e in _events(result))


def test_an_snr_below_the_floor_fails_with_laser_and_generator_off(tmp_path, jv_run):
    result, station = run(tmp_path, bench_data(plqy=1e-5, stray=0.0), PLQYProcedure(jv_file=str(jv_run)))
    assert result.status == "failed"
    assert "below snr_min_dB = 20 dB" in result.error
    assert not _laser_emits(station) and not _generator_on(station)


def test_a_stray_pump_leak_is_detected_and_reported(tmp_path, jv_run):
    # 100 × the default scatter and a 650 nm filter of OD 2 instead of 3: the leak 60 dB above its default (82 dB
    # below the PL), about 22 dB below the PL line
    filters = [{"cut_on_nm": 550, "transmission": 0.95, "stopband_od": 2.0},
               {"cut_on_nm": 650, "transmission": 0.95, "stopband_od": 2.0}]
    result, _ = run(tmp_path, bench_data(stray=1.0, filters=filters), PLQYProcedure(jv_file=str(jv_run)))
    assert result.status == "completed", result.error
    r = result.results
    assert r["stray_pump_detected"] and r["snr_stray_dB"] < 40 and r["snr_dB"] == r["snr_stray_dB"]
    assert any("WARNING: stray pump leak" in e for e in _events(result))
    assert r["plqy"] == pytest.approx(0.10, rel=0.05)  # the in-phase leak is taken off the line


# -- validation before I/O ---------------------------------------------------------------------------------------
def test_parameters_are_checked_before_any_instrument_is_touched(jv_run):
    station = Station(parse_station(bench_data()))
    cases = [
        (PLQYProcedure(jv_file=str(jv_run), snr_min_dB=50.0), "snr_min_dB = 50"),
        (PLQYProcedure(jv_file=str(jv_run), span_Hz=4.0), "span_Hz = 4"),
        (PLQYProcedure(jv_file=str(jv_run), k_power_factors="0.9, 3"), "k_power_factors = '0.9, 3'"),
        (PLQYProcedure(jv_file="/nonexistent.h5"), "jv_file = '/nonexistent.h5': no such file"),
    ]
    for procedure, message in cases:
        procedure.station = station
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
            procedure.validate(station)
    data = bench_data()
    del data["plqy"]
    bare = Station(parse_station(data))
    procedure = PLQYProcedure(jv_file=str(jv_run))
    procedure.station = bare
    with pytest.raises(ConfigError, match="station section plqy: missing"):
        procedure.validate(bare)


def test_without_a_jv_run_the_cli_refuses_before_any_io_and_writes_no_file(tmp_path):
    result = CliRunner().invoke(main, ["run", "plqy", "--station", str(STATION), "--out", str(tmp_path), "--json"],
                                catch_exceptions=False)
    assert result.exit_code == 2
    payload = json.loads(result.stdout)
    assert payload["status"] == "error" and payload["file"] is None
    assert "no completed jv run" in payload["error"] and "--set jv_file=PATH" in payload["error"]
    assert "\n" not in payload["error"]  # one line
    assert not list(tmp_path.rglob("*.h5"))


def test_a_1_sun_beyond_the_lasers_reach_is_a_clear_error_with_the_laser_off(tmp_path, jv_run):
    # area 5 cm²: the J–V Jsc over 5 cm² (92 mA) needs ~100 × the 3 mW that 0.049 cm² needs; the laser has 100 mW
    result, station = run(tmp_path, bench_data(), PLQYProcedure(jv_file=str(jv_run), area_cm2=5.0))
    assert result.status == "failed"
    assert "above this laser's maximum 100 mW" in result.error
    assert not _laser_emits(station) and not _generator_on(station)


def test_the_station_safe_state_alone_switches_generator_and_laser_off(tmp_path, jv_run, monkeypatch):
    """A failure whose shutdown does nothing (as if it crashed): the engine's safe state still ends with the
    generator's output and the laser off."""
    monkeypatch.setattr(PLQYProcedure, "shutdown", lambda self: None)
    monkeypatch.setattr(PLQYProcedure, "_end", lambda self: None)
    result, station = run(tmp_path, bench_data(plqy=1e-5, stray=0.0), PLQYProcedure(jv_file=str(jv_run)))
    assert result.status == "failed"
    assert not _laser_emits(station) and not _generator_on(station)
    events = _events(result)
    assert any("safe state: fgen: output off" in e for e in events)
    assert any("safe state: laser: emission off" in e for e in events)


# -- the CLI -------------------------------------------------------------------------------------------------------
def test_labctl_run_plqy_json_has_the_issues_keys(tmp_path):
    out = str(tmp_path)
    jv = CliRunner().invoke(main, ["run", "jv", "--station", str(STATION), "--out", out, "--sample", "qd1",
                                   "--json", "--no-plot"], catch_exceptions=False)
    assert jv.exit_code == 0, jv.output
    result = CliRunner().invoke(main, ["run", "plqy", "--station", str(STATION), "--out", out, "--sample", "qd1",
                                       "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["status"] == "completed"
    r = payload["results"]
    for key in ("plqy", "plqy_differential", "snr_dB", "f_mod_Hz", "qfls_eV", "k_factor", "modulation_depth",
                "voc_V"):
        assert key in r, key
    assert r["plqy"] == pytest.approx(0.10, rel=0.05)
    run_file = load_run(payload["file"])
    assert run_file.parameters["jv_file"] == json.loads(jv.stdout)["file"]  # the sample's J–V run, from the catalog
    assert Path(payload["file"]).with_suffix(".png").is_file()


def test_the_plqy_run_feeds_labctl_analyze_voc_loss(tmp_path):
    """The PLQY bench has no EQE bench: the EQE run comes from the default station (the same device, station.yaml),
    the J–V and the PLQY runs from the PLQY bench. Checked by hand: ΔVoc,NR = kT·ln(1/PLQY) with the run's PLQY,
    the loss identity, and the QFLS the plqy procedure gives itself with that EQE run (--set eqe_file)."""
    out, default = str(tmp_path), str(REPO / "station.yaml")
    grid = ["--set", "start_nm=700", "--set", "stop_nm=950", "--set", "step_nm=10"]

    def invoke(*args: str):  # noqa: ANN202
        result = CliRunner().invoke(main, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    invoke("run", "eqe-calibration", "--station", default, "--out", out, "--json", "--no-plot", *grid)
    eqe = invoke("run", "eqe", "--station", default, "--out", out, "--json", "--no-plot", *grid)
    jv = invoke("run", "jv", "--station", str(STATION), "--out", out, "--json", "--no-plot")
    plqy = invoke("run", "plqy", "--station", str(STATION), "--out", out, "--json", "--no-plot",
                  "--set", f"jv_file={jv['file']}", "--set", f"eqe_file={eqe['file']}")
    loss = invoke("analyze", "voc-loss", "--station", str(STATION), "--out", out, "--jv", jv["file"],
                  "--eqe", eqe["file"], "--plqy", plqy["file"], "--json")["results"]
    p = plqy["results"]
    kt = 1.380649e-23 * loss["temperature_K"] / elementary_charge
    assert loss["plqy"] == pytest.approx(p["plqy"], rel=1e-9)
    assert loss["dvoc_nr_V"] == pytest.approx(kt * math.log(1 / p["plqy"]), rel=1e-6)
    assert loss["eg_eV"] - loss["dvoc_rad_V"] - loss["dvoc_nr_V"] - loss["dvoc_sr_V"] == pytest.approx(
        loss["voc_V"], abs=1e-3)
    # the procedure's own QFLS from the same EQE: Jsc there is its Isc/area (within the 0.3 % search tolerance)
    assert p["qfls_eV"] == pytest.approx(loss["qfls_eV"], abs=0.5e-3)
