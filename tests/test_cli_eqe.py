"""`labctl run eqe-calibration`, `labctl run eqe --json`, `labctl analyze mismatch` on the simulated station."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from labctl.cli import main
from tests.helpers import REPO

STATION = str(REPO / "station.yaml")
GRID = ["--set", "start_nm=300", "--set", "stop_nm=900", "--set", "step_nm=20"]


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


def test_mismatch_is_one_for_an_am15g_simulator_and_moves_with_a_tilted_spectrum(runs, tmp_path):
    eqe_file = json.loads(runs["eqe"].stdout)["file"]
    res = _invoke(["analyze", "mismatch", "--eqe", eqe_file, "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["mismatch"] == pytest.approx(1.0, abs=1e-12)
    # a blue-rich simulator (methods ref. §2.3 tilt, a = 0.05) against a c-Si reference cell
    from labctl.analysis.spectra import am15g_W_m2_nm

    wl = np.arange(300.0, 1201.0)
    spectrum = am15g_W_m2_nm(wl) * (1 + 0.05 * (wl - 750.0) / 450.0)
    path = tmp_path / "sim.csv"
    rows = "\n".join(f"{a},{b}" for a, b in zip(wl, spectrum, strict=True))
    path.write_text("wavelength_nm,irradiance_W_m2_nm\n" + rows)
    res = _invoke(["analyze", "mismatch", "--eqe", eqe_file, "--simulator-spectrum", str(path), "--json"])
    m = json.loads(res.stdout)["mismatch"]
    # same direction and size as methods ref. case M1 (a = +0.02 → 0.994, +0.05 → 0.985 for a similar cell)
    assert 0.97 < m < 0.999
    text = _invoke(["analyze", "mismatch", "--eqe", eqe_file, "--simulator-spectrum", str(path)]).output
    assert "labctl run jv --set mismatch=" in text


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
