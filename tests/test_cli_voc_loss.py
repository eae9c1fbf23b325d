"""`labctl analyze voc-loss` end to end on the default simulated station: `run jv`, `run eqe-calibration`,
`run eqe` (a grid reaching below the gap into the EQE's noise floor), then the analysis with --plqy-value.

The expectation is written out here from the station's device parameters (station.yaml: the EQE model of
sim_instruments/optics.py's documentation — plateau above Eg, Urbach tail exp((E − Eg)/E_U) below, the plateau
such that ∫EQE·Φ_AM1.5G = jph — integrated with pvlib's G173 and a black body written out with scipy's
constants), and the J–V figures of the methods' set A (tests/helpers.py FOM_A), not from labctl's functions.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pvlib
import pytest
from click.testing import CliRunner
from scipy import constants

from labctl.catalog import Catalog
from labctl.cli import main
from labctl.storage import load_run
from tests.helpers import FOM_A, REPO, default_station

STATION = str(REPO / "station.yaml")
GRID = ["--set", "start_nm=700", "--set", "stop_nm=950", "--set", "step_nm=10"]
Q, H, C, KB = constants.e, constants.h, constants.c, constants.k


def _invoke(args):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def _device():
    return default_station()["simulation"]["device"]


def _model_eqe_vs_energy(energy_eV, device):
    eqe = device["eqe"]
    eg, eu = eqe["bandgap_eV"], eqe["urbach_meV"] * 1e-3
    unit = np.where(energy_eV >= eg, 1.0, np.exp(np.minimum(energy_eV - eg, 0.0) / eu))
    # the plateau: ∫ plateau·unit(λ)·E(λ)·λ/(hc) dλ · q = jph (AM1.5G, ASTM G173 global, 280-4000 nm)
    g173 = pvlib.spectrum.get_reference_spectra()
    lam = np.arange(280.0, 4000.0, 0.05)
    irr = np.interp(lam, g173.index.to_numpy(float), g173["global"].to_numpy(float))
    e_lam = H * C / (lam * 1e-9) / Q
    unit_lam = np.where(e_lam >= eg, 1.0, np.exp(np.minimum(e_lam - eg, 0.0) / eu))
    jsc_unit_mA_cm2 = Q * np.trapezoid(unit_lam * irr * lam * 1e-9 / (H * C), lam) * 0.1  # A/m² → mA/cm²
    plateau = device["jph_mA_cm2"] / jsc_unit_mA_cm2
    return plateau * unit


def _expected(plqy):
    device = _device()
    t = device["temperature_K"]
    kt_eV = KB * t / Q
    e = np.arange(0.5, 4.4, 1e-5)
    phi_bb = 2 * np.pi / (H**3 * C**2) * (e * Q) ** 2 / np.expm1(e / kt_eV) * Q * 1e-4  # cm⁻² s⁻¹ eV⁻¹
    j0r = Q * np.trapezoid(_model_eqe_vs_energy(e, device) * phi_bb, e)
    jsc_A_cm2 = FOM_A["jsc_mA_cm2"] * 1e-3
    voc_rad = kt_eV * np.log(jsc_A_cm2 / j0r + 1)
    qfls = voc_rad + kt_eV * np.log(plqy)
    return {"temperature_K": t, "j0r_A_cm2": j0r, "voc_rad_V": voc_rad, "qfls_eV": qfls,
            "dvoc_nr_V": -kt_eV * np.log(plqy), "voc_V": FOM_A["voc_V"], "dvoc_sr_V": qfls - FOM_A["voc_V"],
            "eg_eV": device["eqe"]["bandgap_eV"], "urbach_eV": device["eqe"]["urbach_meV"] * 1e-3}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli-voc-loss")
    cal = _invoke(["run", "eqe-calibration", "--station", STATION, "--out", str(out), "--json", "--no-plot", *GRID])
    assert cal.exit_code == 0, cal.output
    jv = _invoke(["run", "jv", "--station", STATION, "--out", str(out), "--json", "--no-plot"])
    assert jv.exit_code == 0, jv.output
    eqe = _invoke(["run", "eqe", "--station", STATION, "--out", str(out), "--json", "--no-plot", *GRID])
    assert eqe.exit_code == 0, eqe.output
    return {"out": out, "jv": json.loads(jv.stdout), "eqe": json.loads(eqe.stdout)}


def _analyze(runs, *extra):
    return _invoke(["analyze", "voc-loss", "--station", STATION, "--out", str(runs["out"]), *extra])


def _run_id(payload):
    return load_run(payload["file"]).info["run_id"]


def test_voc_loss_json_matches_the_hand_calculation_and_is_stored(runs):
    jv_id, eqe_id = _run_id(runs["jv"]), _run_id(runs["eqe"])
    result = _analyze(runs, "--jv", jv_id, "--eqe", runs["eqe"]["file"], "--plqy-value", "0.1", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    r = payload["results"]
    x = _expected(0.1)
    for key in ("eg_eV", "eg_method", "j0r_A_cm2", "voc_rad_V", "qfls_eV", "dvoc_rad_V", "dvoc_nr_V", "dvoc_sr_V",
                "voc_V", "urbach_extension"):
        assert key in r, key
    assert r["temperature_K"] == x["temperature_K"]
    assert r["voc_scan"] == "reverse"  # the default J–V has no QSS scan
    assert r["voc_V"] == pytest.approx(x["voc_V"], abs=1e-3)
    assert r["jsc_mA_cm2"] == pytest.approx(FOM_A["jsc_mA_cm2"], abs=0.05)
    assert r["urbach_extension"] is True
    assert r["urbach_energy_eV"] == pytest.approx(x["urbach_eV"], rel=0.05)
    assert r["j0r_A_cm2"] == pytest.approx(x["j0r_A_cm2"], rel=0.03)
    assert r["voc_rad_V"] == pytest.approx(x["voc_rad_V"], abs=1e-3)
    assert r["qfls_eV"] == pytest.approx(x["qfls_eV"], abs=1e-3)
    assert r["dvoc_nr_V"] == pytest.approx(x["dvoc_nr_V"], abs=1e-9)
    assert r["dvoc_sr_V"] == pytest.approx(x["dvoc_sr_V"], abs=1.5e-3)
    # inflection point on a 10 nm grid: good to one grid spacing at the gap (785 nm: 20 meV)
    assert r["eg_eV"] == pytest.approx(x["eg_eV"], abs=0.02)
    assert "inflection" in r["eg_method"]
    assert r["eg_eV"] - r["dvoc_rad_V"] - r["dvoc_nr_V"] - r["dvoc_sr_V"] == pytest.approx(r["voc_V"], abs=1e-6)
    assert r["warnings"] == []

    stored = load_run(payload["file"])
    assert stored.info["procedure"] == "voc-loss" and stored.status == "completed"
    assert stored.parameters["jv_run"] == jv_id and stored.parameters["eqe_run"] == eqe_id
    assert stored.parameters["plqy_value"] == 0.1 and stored.units["temperature_K"] == "K"
    assert stored.results["dvoc_sr_V"] == r["dvoc_sr_V"]
    with Catalog(f"sqlite:///{runs['out'] / 'catalog.sqlite'}") as catalog:
        row = catalog.get(default_station()["station"]["name"], payload["run_id"])
    assert row is not None and row.procedure == "voc-loss" and row.status == "completed"


def test_voc_loss_table_and_an_inconsistent_plqy_warns(runs):
    result = _analyze(runs, "--jv", runs["jv"]["file"], "--eqe", _run_id(runs["eqe"]), "--plqy-value", "0.003")
    assert result.exit_code == 0, result.output
    assert "ΔV_oc,sr" in result.stdout and "reverse scan" in result.stdout
    assert "VOC-LOSS WARNING" in result.output
    run = load_run(re.search(r"stored: (\S+\.h5)", result.stdout).group(1))
    assert run.results["dvoc_sr_V"] < 0
    assert any("VOC-LOSS WARNING" in line for line in run.events)


@pytest.mark.parametrize(("args", "message"), [
    (["--plqy-value", "0.1", "--plqy", "x"], "exactly one of --plqy"),
    (["--plqy-value", "1.5"], "plqy = 1.5"),
    (["--plqy-value", "0.1", "--jv-scan", "qss"], "--jv-scan = 'qss'"),
])
def test_voc_loss_bad_input_is_one_line_exit_2(runs, args, message):
    result = _analyze(runs, "--jv", runs["jv"]["file"], "--eqe", runs["eqe"]["file"], *args)
    assert result.exit_code == 2
    assert message in result.output


def test_voc_loss_unknown_run_id_and_wrong_procedure(runs):
    result = _analyze(runs, "--jv", "no-such-run", "--eqe", runs["eqe"]["file"], "--plqy-value", "0.1")
    assert result.exit_code == 2 and "--jv = 'no-such-run'" in result.output
    result = _analyze(runs, "--jv", runs["jv"]["file"], "--eqe", runs["jv"]["file"], "--plqy-value", "0.1")
    assert result.exit_code == 2 and "allowed: an 'eqe' run" in result.output


def _plqy_run_file(folder, plqy):
    """A stand-in for a `plqy` run (the procedure lands later): its results as the plan's contract names them."""
    from labctl.storage import RunWriter

    path = folder / "plqy-standin.h5"
    with RunWriter(path) as writer:
        writer.write_metadata(run_id="plqy-standin", procedure="plqy", sample="sample", operator="t", area_cm2=0.049,
                              parameters={}, station=default_station(), idn={}, software_version="0",
                              start_time="2026-12-02T00:00:00Z")
        writer.write_results({"plqy": plqy, "plqy_differential": plqy * 1.05, "snr_dB": 60.0, "f_mod_Hz": 7.0,
                              "qfls_eV": 1.2})
    return path


def test_voc_loss_takes_the_plqy_of_a_plqy_run_by_file_and_by_run_id(runs, tmp_path):
    path = _plqy_run_file(runs["out"], 0.05)
    x = _expected(0.05)
    for ref in (str(path), "plqy-standin"):
        result = _analyze(runs, "--jv", runs["jv"]["file"], "--eqe", runs["eqe"]["file"], "--plqy", ref, "--json")
        assert result.exit_code == 0, result.output
        payload = json.loads(result.stdout)
        assert payload["plqy_run"] == "plqy-standin"
        assert payload["results"]["plqy"] == 0.05
        assert payload["results"]["dvoc_nr_V"] == pytest.approx(x["dvoc_nr_V"], abs=1e-9)
        assert payload["results"]["qfls_eV"] == pytest.approx(x["qfls_eV"], abs=1e-3)
    result = _analyze(runs, "--jv", runs["jv"]["file"], "--eqe", runs["eqe"]["file"], "--plqy", runs["eqe"]["file"])
    assert result.exit_code == 2 and "allowed: a 'plqy' run" in result.output
