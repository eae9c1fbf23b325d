"""`labctl run voc-intensity-calibration`, `labctl run jv`, `labctl run voc-intensity --json` on the simulated voc bench
(stations/voc-bench.yaml) as the README's light-intensity Voc section gives them: the calibration and the sample's
J–V run are found through the run catalog, the results object has the issue's keys, the plot is written."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from labctl.cli import main
from labctl.storage import load_run
from tests.helpers import REPO

STATION = str(REPO / "stations" / "voc-bench.yaml")


def _invoke(*args: str):  # noqa: ANN202
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):  # noqa: ANN001, ANN201
    out = str(tmp_path_factory.mktemp("cli-voc"))
    cal = _invoke("run", "voc-intensity-calibration", "--station", STATION, "--out", out, "--json", "--no-plot")
    jv = _invoke("run", "jv", "--station", STATION, "--out", out, "--sample", "qd1", "--json", "--no-plot")
    voc = _invoke("run", "voc-intensity", "--station", STATION, "--out", out, "--sample", "qd1", "--json")
    return {"cal": cal, "jv": jv, "voc": voc}


def test_voc_intensity_json_has_the_issues_keys(runs):  # noqa: ANN001
    for name in ("cal", "jv", "voc"):
        assert runs[name].exit_code == 0, runs[name].output
    payload = json.loads(runs["voc"].stdout)
    assert payload["status"] == "completed"
    r = payload["results"]
    for key in ("n_global", "n_global_stderr", "dynamic_range_dB", "regimes", "instrument_limited_points"):
        assert key in r, key
    assert isinstance(r["n_global"], float) and r["n_global_stderr"] > 0
    assert r["regimes"] and all({"phi_min_suns", "phi_max_suns", "n"} <= set(g) for g in r["regimes"])
    assert [g["label"] for g in r["regimes"]][0] == "n≈1"  # from 1 sun down
    # the 2450's specification (100 pA, 10 GΩ) flags the lowest intensities of the 70 dB ladder
    assert r["instrument_limited_points"] and max(r["instrument_limited_points"]) < 1e-4
    assert r["meter_offset_A"] == 100e-12 and r["meter_input_resistance_ohm"] == 10e9  # the bounds it used
    assert r["ladder_dynamic_range_dB"] >= 70
    run = load_run(payload["file"])
    assert run.info["procedure"] == "voc-intensity"
    cal_file = json.loads(runs["cal"].stdout)["file"]
    assert r["calibration_run"] == load_run(cal_file).info["run_id"]  # found through the catalog
    jv_file = json.loads(runs["jv"].stdout)["file"]
    assert any(jv_file in line for line in run.events)  # the sample's J–V run, found through the catalog
    assert run.parameters["jv_file"] == jv_file and run.parameters["calibration_file"] == cal_file  # recorded
    assert (run.path.with_suffix(".png")).is_file()


def test_voc_intensity_without_a_calibration_is_a_json_error(tmp_path):  # noqa: ANN001
    result = _invoke("run", "voc-intensity", "--station", STATION, "--out", str(tmp_path), "--json",
                     "--set", "one_sun_mW_cm2=54.54")
    assert result.exit_code == 2
    payload = json.loads(result.stdout)
    assert payload["status"] == "error" and payload["file"] is None
    assert "give --set calibration_file=PATH" in payload["error"]


def test_a_bad_direction_is_refused_with_the_allowed_values(tmp_path):  # noqa: ANN001
    result = _invoke("run", "voc-intensity", "--station", STATION, "--out", str(tmp_path), "--json",
                     "--set", "direction=sideways")
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"] == ("parameter direction = 'sideways': allowed one of up, down, "
                                                  "up-down")
