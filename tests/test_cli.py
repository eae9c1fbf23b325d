"""The labctl command line: run --json, the figures table, bad input as one line, show/plot/export, station check."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from labctl.cli import main
from labctl.storage import load_run
from tests.helpers import REPO, station_file

FOM_KEYS = {"voc_V", "jsc_mA_cm2", "ff", "pce_pct", "vmp_V", "jmp_mA_cm2", "r_oc_ohm_cm2", "r_sc_ohm_cm2",
            "rs_ohm_cm2", "rsh_ohm_cm2", "flags"}
HI_KEYS = {"hi_pce", "hi_pce_mean", "hi_j08", "hi_area", "hi_area_signed"}


def _invoke(args, **kw):
    return CliRunner().invoke(main, args, catch_exceptions=False, **kw)


def test_run_json_is_one_object_with_the_documented_keys(tmp_path):
    res = _invoke(["run", "jv", "--station", str(REPO / "station.yaml"), "--out", str(tmp_path), "--json",
                   "--sample", "A17"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)  # exactly one JSON object, nothing else on stdout
    assert set(payload) == {"file", "status", "results"}
    assert payload["status"] == "completed"
    results = payload["results"]
    assert FOM_KEYS <= set(results["reverse"]) and FOM_KEYS <= set(results["forward"])
    assert HI_KEYS <= set(results["hysteresis"])
    assert 0 < results["reverse"]["ff"] < 1
    run = load_run(payload["file"])
    assert run.info["sample"] == "A17"
    assert (tmp_path / run.path.parent.name / (run.path.stem + ".png")).exists()


def test_run_prints_table_and_paths(tmp_path):
    res = _invoke(["run", "jv", "--station", str(REPO / "station.yaml"), "--out", str(tmp_path),
                   "--set", "direction=reverse"])
    assert res.exit_code == 0
    assert "Voc (V)" in res.output and "status: completed" in res.output and ".h5" in res.output


@pytest.mark.parametrize(
    ("args", "mutate", "fragment"),
    [
        (["--set", "compliance_A=5"], None, "compliance_A"),
        (["--set", "stop_V=3"], None, "stop_V = 3.0"),
        (["--set", "scan_rate=0.1"], None, "unknown parameter 'scan_rate'"),
        (["--set", "direction=sideways"], None, "allowed one of reverse"),
        ([], lambda d: d["instruments"]["smu"].update(driver="keithley2401"), "unknown driver"),
        ([], lambda d: d["instruments"]["smu"].update(complience=1), "unknown key 'instruments.smu.complience'"),
        ([], lambda d: d["instruments"]["smu"]["limits"].update(current_A=5.0), "current_A = 5.0"),
        ([], lambda d: d["instruments"]["smu"].update(resource="TCPIP::127.0.0.1::1::SOCKET", timeout_ms=500),
         "cannot open instrument 'smu'"),
    ],
    ids=["compliance-beyond-limit", "voltage-beyond-limit", "misspelt-parameter", "bad-choice", "unknown-driver",
         "misspelt-key", "limit-beyond-model", "unreachable-resource"],
)
def test_bad_input_is_one_clear_line_and_exit_2(tmp_path, args, mutate, fragment):
    station = station_file(tmp_path, mutate)
    res = _invoke(["run", "jv", "--station", str(station), "--out", str(tmp_path / "runs"), *args])
    assert res.exit_code == 2, res.output
    assert fragment in res.output
    assert "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1, res.output  # one line in a pipe too: never wrapped at 80
    assert not list((tmp_path / "runs").rglob("*.h5"))


def test_show_plot_export(tmp_path):
    res = _invoke(["run", "jv", "--station", str(REPO / "station.yaml"), "--out", str(tmp_path), "--json",
                   "--no-plot"])
    path = json.loads(res.stdout)["file"]
    shown = _invoke(["show", path])
    assert shown.exit_code == 0 and "completed" in shown.output and "MODEL 2400" in shown.output
    png = tmp_path / "x.png"
    assert _invoke(["plot", path, "--out", str(png)]).exit_code == 0 and png.stat().st_size > 10_000
    exported = _invoke(["export", path, "--csv", "--out", str(tmp_path / "csv")])
    assert exported.exit_code == 0
    csvs = list((tmp_path / "csv").glob("*_jv.csv"))  # a glob() generator is always truthy: list it
    assert len(csvs) == 1 and str(csvs[0]) in exported.output
    lines = [line for line in csvs[0].read_text().splitlines() if not line.startswith("#")]
    assert lines[0].split(",")[:3] == ["time_s", "voltage_V", "j_mA_cm2"] and len(lines) == 1 + 2 * 141


def test_station_check_lists_idn_and_errors(tmp_path):
    res = _invoke(["station", "check", "--station", str(REPO / "station.yaml")])
    assert res.exit_code == 0, res.output
    assert "MODEL 2400" in res.output and "SC10" in res.output and "none" in res.output
    assert "UNREACHABLE" not in res.output


def test_params_lists_units_and_ranges():
    res = _invoke(["params", "jv"])
    assert res.exit_code == 0 and "scan_rate_V_s" in res.output and "V/s" in res.output


@pytest.mark.parametrize("driver", ["keithley2420", "keithley2450"])
def test_other_source_meters_run_the_same_jv(tmp_path, driver):
    station = station_file(tmp_path, lambda d: d["instruments"]["smu"].update(driver=driver))
    res = _invoke(["run", "jv", "--station", str(station), "--out", str(tmp_path), "--json", "--no-plot"])
    assert res.exit_code == 0, res.output
    rev = json.loads(res.stdout)["results"]["reverse"]
    assert abs(rev["voc_V"] - 1.17) < 2e-3 and abs(rev["jsc_mA_cm2"] / 18.3 - 1) < 5e-3


def test_compliance_is_refused_or_warned_about_on_the_command_line(tmp_path):
    """A 1 cm² cell at the default 10 mA compliance: exit 2 with one line before any I/O; with the check off the
    run completes and prints a warning naming the compliance, the current reached and the compliance to use."""
    station = station_file(tmp_path, lambda d: d["simulation"]["device"].update(area_cm2=1.0))
    base = ["run", "jv", "--station", str(station), "--out", str(tmp_path / "runs"), "--no-plot",
            "--set", "area_cm2=1"]
    refused = _invoke(base)
    assert refused.exit_code == 2
    assert "compliance_A = 0.01" in refused.output and "Traceback" not in refused.output
    assert not list((tmp_path / "runs").rglob("*.h5"))
    ran = _invoke([*base, "--set", "expected_jsc_mA_cm2=0"])
    assert ran.exit_code == 0, ran.output  # the run completed; its results carry the flags
    line = next(x for x in ran.output.splitlines() if "WARNING" in x and "compliance" in x)
    assert "compliance_A = 0.01 A" in line and "10 mA" in line and "--set compliance_A=" in line
    assert "jsc_in_compliance" in ran.output  # the flags row of the table
    as_json = _invoke([*base, "--set", "expected_jsc_mA_cm2=0", "--json"])
    results = json.loads(as_json.stdout)["results"]
    assert "jsc_in_compliance" in results["reverse"]["flags"] and results["reverse"]["jsc_mA_cm2"] is None
    assert any("compliance" in w for w in results["warnings"])
