"""`labctl run eqe-calibration`, `labctl run eqe --json`, `labctl analyze mismatch` on the simulated station.

Expected mismatch factors come from a plain fine-grid integration written here (pvlib's G173 and c-Si SR).
"""

from __future__ import annotations

import json

import numpy as np
import pvlib
import pytest
import yaml
from click.testing import CliRunner

from labctl.cli import main
from labctl.storage import load_run
from tests.helpers import REPO, default_station

STATION = str(REPO / "station.yaml")
GRID = ["--set", "start_nm=300", "--set", "stop_nm=900", "--set", "step_nm=20"]
HC_NM_V = 1239.841984


def _invoke(args):
    return CliRunner().invoke(main, args, catch_exceptions=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli-eqe")
    cal = _invoke(["run", "eqe-calibration", "--station", STATION, "--out", str(out), "--json", *GRID])
    jv = _invoke(["run", "jv", "--station", STATION, "--out", str(out), "--json", "--no-plot"])
    jv_file = json.loads(jv.stdout)["file"]
    eqe = _invoke(["run", "eqe", "--station", STATION, "--out", str(out), "--json", *GRID,
                   "--set", f"jv_file={jv_file}"])
    return {"out": out, "cal": cal, "eqe": eqe, "jv_file": jv_file}


def test_eqe_json_results(runs):
    assert runs["cal"].exit_code == 0, runs["cal"].output
    assert runs["eqe"].exit_code == 0, runs["eqe"].output
    payload = json.loads(runs["eqe"].stdout)
    results = payload["results"]
    for key in ("jsc_integrated_mA_cm2", "wavelength_min_nm", "wavelength_max_nm", "jsc_jv_mA_cm2", "jsc_ratio"):
        assert key in results, key
    assert results["wavelength_min_nm"] == 300 and results["wavelength_max_nm"] == 900
    assert abs(results["jsc_ratio"] - 1) < 0.02
    assert payload["file"].endswith(".h5")
    cal = json.loads(runs["cal"].stdout)["results"]
    assert cal["reference_detectors"]["si"]["typical_not_calibrated"] is True


def _g173(x):
    g = pvlib.spectrum.get_reference_spectra()
    return np.interp(x, g.index, g["global"], left=0.0, right=0.0)


def _write_spectrum(path, wl, e):
    path.write_text("wavelength_nm,irradiance_W_m2_nm\n" + "\n".join(f"{a},{b}" for a, b in zip(wl, e, strict=True)))
    return str(path)


def _expected_m(eqe_file, e_sim, lo_nm=280.0, hi_nm=1200.0):
    """M written out: a 0.01 nm grid over [lo_nm, hi_nm]; the device's SR from the run's points, zero outside them;
    the reference cell pvlib's c-Si example SR; each product integrated where it is defined."""
    frame = load_run(eqe_file).streams["eqe"].sort_values("wavelength_nm")
    x = np.arange(lo_nm, hi_nm + 0.005, 0.01)
    s_ref = pvlib.spectrum.get_example_spectral_response(x).to_numpy()
    inside = (x >= frame.wavelength_nm.iloc[0]) & (x <= frame.wavelength_nm.iloc[-1])
    s_test = np.where(inside, np.interp(x, frame.wavelength_nm, frame.eqe) * x / HC_NM_V, 0.0)
    e_ref = _g173(x)

    def integral(a, b):
        return np.trapezoid(a * b, x)

    return integral(e_ref, s_ref) * integral(e_sim(x), s_test) / (integral(e_sim(x), s_ref) * integral(e_ref, s_test))


def test_mismatch_is_one_for_an_am15g_simulator_and_moves_with_a_tilted_spectrum(runs, tmp_path):
    eqe_file = json.loads(runs["eqe"].stdout)["file"]
    res = _invoke(["analyze", "mismatch", "--eqe", eqe_file, "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["mismatch"] == pytest.approx(1.0, abs=1e-12)
    # a blue-rich simulator (methods ref. §2.3 tilt, a = 0.05) against a c-Si reference cell
    def tilted(x):
        return _g173(x) * (1 + 0.05 * (x - 750.0) / 450.0)

    wl = np.arange(280.0, 1201.0)
    path = _write_spectrum(tmp_path / "sim.csv", wl, tilted(wl))
    res = _invoke(["analyze", "mismatch", "--eqe", eqe_file, "--simulator-spectrum", path, "--json"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    assert payload["mismatch"] == pytest.approx(_expected_m(eqe_file, tilted), abs=2e-5)
    assert payload["mismatch"] < 0.99  # methods ref. M1: a = +0.05 → 0.985 for a similar cell
    assert payload["reference_sr_range_nm"] == [290.0, 1190.0] and payload["band_edge_reached"] is True
    text = _invoke(["analyze", "mismatch", "--eqe", eqe_file, "--simulator-spectrum", path]).output
    assert "labctl run jv --set mismatch=" in text and "reference SR 290-1190 nm" in text


def _nir_rich(x):
    """AM1.5G with 15 % more per 300 nm above 700 nm (a Xe simulator's NIR excess)."""
    return _g173(x) * (1 + 0.15 * np.clip((x - 700.0) / 300.0, 0.0, None))


def test_mismatch_integrates_the_reference_cell_over_its_own_range(runs, tmp_path):
    """Item 3: the reference cell responds to 1190 nm, the EQE ends at 900 nm; a NIR-rich simulator. Integrating
    the reference only over 300–900 nm (the old way) makes M 2.2 % too large."""
    eqe_file = json.loads(runs["eqe"].stdout)["file"]
    wl = np.arange(280.0, 1301.0)
    path = _write_spectrum(tmp_path / "nir.csv", wl, _nir_rich(wl))
    res = _invoke(["analyze", "mismatch", "--eqe", eqe_file, "--simulator-spectrum", path, "--json"])
    assert res.exit_code == 0, res.output
    m = json.loads(res.stdout)["mismatch"]
    assert m == pytest.approx(_expected_m(eqe_file, _nir_rich), abs=2e-5)
    assert _expected_m(eqe_file, _nir_rich, 300.0, 900.0) / m - 1 > 0.02  # the bias the old range caused
    # the same reference cell as a certificate CSV with zeros at its ends (no response below 290 / above 1190 nm)
    sr_wl = np.arange(280.0, 1201.0, 5.0)
    sr = pvlib.spectrum.get_example_spectral_response(sr_wl).to_numpy() * 0.6
    cert = tmp_path / "reference_cell.csv"
    rows = "\n".join(f"{a},{float(b)!r}" for a, b in zip(sr_wl, sr, strict=True))
    cert.write_text("wavelength_nm,responsivity_A_W\n" + rows)
    res = _invoke(["analyze", "mismatch", "--eqe", eqe_file, "--simulator-spectrum", path, "--reference-sr",
                   str(cert), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["mismatch"] == pytest.approx(m, abs=2e-4)  # 5 nm table vs 1 nm spline


def test_mismatch_with_a_spectrum_that_does_not_cover_the_range_is_refused(runs, tmp_path):
    """Item 12: a spectrum of 280–595 nm used to give M = 1.39 with exit 0."""
    eqe_file = json.loads(runs["eqe"].stdout)["file"]
    wl = np.arange(280.0, 596.0)
    path = _write_spectrum(tmp_path / "short.csv", wl, _g173(wl))
    res = _invoke(["analyze", "mismatch", "--eqe", eqe_file, "--simulator-spectrum", path])
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert "covers 280–595 nm" in text and "responds over 290–1190 nm" in text
    assert "measured over 300–900 nm" in text and "must cover 290–1190 nm" in text and "Traceback" not in text


def test_mismatch_bad_spectrum_file_is_one_line(runs, tmp_path):
    eqe_file = json.loads(runs["eqe"].stdout)["file"]
    bad = tmp_path / "bad.csv"
    bad.write_text("400,1\n500,abc\n")
    res = _invoke(["analyze", "mismatch", "--eqe", eqe_file, "--simulator-spectrum", str(bad)])
    assert res.exit_code == 2
    assert "line 2" in res.output and "abc" in res.output and "Traceback" not in res.output


def test_mismatch_rejects_a_jv_file(runs):
    res = _invoke(["analyze", "mismatch", "--eqe", runs["jv_file"]])
    assert res.exit_code == 2 and "not an EQE run file" in res.output


def test_eqe_plot_written(runs):
    eqe_file = json.loads(runs["eqe"].stdout)["file"]
    from pathlib import Path

    assert Path(eqe_file).with_suffix(".png").stat().st_size > 10_000


def test_order_sorting_warning_reaches_the_operator(tmp_path):
    import yaml

    from tests.helpers import default_station

    data = default_station()
    for row in data["eqe"]["order_sorting"]:
        row["filter"] = 1
    station = tmp_path / "station.yaml"
    station.write_text(yaml.safe_dump(data))
    res = _invoke(["run", "eqe-calibration", "--station", str(station), "--out", str(tmp_path), "--no-plot",
                   "--set", "start_nm=400", "--set", "stop_nm=900", "--set", "step_nm=100"])
    assert res.exit_code == 0
    assert "ORDER-SORTING WARNING" in res.stderr and "second order" in res.stderr


@pytest.fixture(scope="module")
def pbs_runs(runs, tmp_path_factory):
    """A 1.3 eV cell scanned only to 900 nm (printed, not --json), against the default calibration."""
    out = tmp_path_factory.mktemp("cli-pbs")
    data = default_station()
    dev = data["simulation"]["device"]
    dev.update({"jph_mA_cm2": 30.34146, "j0_A_cm2": 4.12065e-10, "ideality": 1.4, "rs_ohm_cm2": 2.34208,
                "rsh_ohm_cm2": 500.0})
    dev["eqe"]["bandgap_eV"] = 1.3
    station = out / "station.yaml"
    station.write_text(yaml.safe_dump(data))
    jv = json.loads(_invoke(["run", "jv", "--station", str(station), "--out", str(out), "--json", "--no-plot"]).stdout)
    cal = json.loads(runs["cal"].stdout)["file"]
    eqe = _invoke(["run", "eqe", "--station", str(station), "--out", str(out), "--no-plot", *GRID,
                   "--set", f"calibration_file={cal}", "--set", f"jv_file={jv['file']}"])
    return {"eqe": eqe, "station": station, "out": out, "cal": cal}


def test_eqe_run_prints_the_band_edge_and_jsc_checks_and_warns(pbs_runs):
    res = pbs_runs["eqe"]
    assert res.exit_code == 0, res.output
    stderr = " ".join(res.stderr.split())
    assert "BAND-EDGE WARNING" in stderr and "--set stop_nm=1800" in stderr
    assert "JSC WARNING" in stderr and "allowed ±5 %" in stderr
    printed = " ".join(res.stderr.split() + res.stdout.split())
    assert "band edge: NOT reached (EQE at 900 nm is" in printed
    assert "Jsc: integrated EQE" in printed and "outside ±5 %" in printed


def test_eqe_printed_checks_for_a_cell_measured_past_its_edge(runs):
    from rich.console import Console

    from procedures.eqe import EQEProcedure

    console = Console(record=True, width=200)
    EQEProcedure.summarise(console, json.loads(runs["eqe"].stdout)["results"])
    text = console.export_text()
    assert "band edge: reached (EQE at 900 nm is" in text and "within ±5 %" in text


def test_mismatch_refuses_an_eqe_run_that_missed_the_band_edge(pbs_runs):
    eqe_file = next(pbs_runs["out"].rglob("*_eqe_*.h5"))
    res = _invoke(["analyze", "mismatch", "--eqe", str(eqe_file)])
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert "ends at 900 nm" in text and "band edge" in text and "cannot be computed" in text


def test_eqe_grid_across_the_calibrations_filter_change_exits_2(pbs_runs):
    """Item 11: step_nm=7 against the 20 nm calibration would interpolate across 460–480 and 760–780 nm."""
    res = _invoke(["run", "eqe", "--station", str(pbs_runs["station"]), "--out", str(pbs_runs["out"]), "--no-plot",
                   "--set", "start_nm=300", "--set", "stop_nm=900", "--set", "step_nm=7",
                   "--set", f"calibration_file={pbs_runs['cal']}"])
    assert res.exit_code == 2
    text = " ".join(res.output.split())
    assert "460–480 nm and 760–780 nm" in text and "Traceback" not in text
