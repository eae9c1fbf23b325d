"""The ``hold`` procedure end to end on the simulated bench, against a hand calculation of the default cell.

Expected Voc, Jsc and J(V) come from the single-diode equation (methods ref. §1.6) solved here with scipy for the
device of the repository's station.yaml, not from the simulator: J = Jph − J0·(exp((V + J·Rs)/(n·Vt)) − 1) −
(V + J·Rs)/Rsh with Vt = kT/q at 298.15 K (scipy.constants, CODATA). The methods reference gives this set A as
Voc 1.1700 V, Jsc 18.300 mA/cm² (§1.6, tests.helpers.FOM_A), which the hand calculation is checked against first.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from scipy import constants
from scipy.optimize import brentq

from labctl.cli import main
from labctl.station import Station
from labctl.storage import load_run
from tests.helpers import FOM_A, REPO, station_file

DEVICE = yaml.safe_load((REPO / "station.yaml").read_text())["simulation"]["device"]


def _j_A_cm2(v_V: float, light: bool = True) -> float:
    """Photocurrent-positive J (A/cm²) of the station's cell at device voltage V, 298.15 K."""
    n_vt = DEVICE["ideality"] * constants.k * DEVICE["temperature_K"] / constants.e
    jph = DEVICE["jph_mA_cm2"] * 1e-3 if light else 0.0
    j0, rs, rsh = DEVICE["j0_A_cm2"], DEVICE["rs_ohm_cm2"], DEVICE["rsh_ohm_cm2"]

    def residual(j: float) -> float:
        vj = v_V + j * rs
        return jph - j0 * math.expm1(vj / n_vt) - vj / rsh - j

    return brentq(residual, -1.0, 1.0, xtol=1e-15)


VOC_V = brentq(lambda v: _j_A_cm2(v), 0.5, 1.5, xtol=1e-12)
JSC_MA_CM2 = 1e3 * _j_A_cm2(0.0)


def test_the_hand_calculation_matches_the_methods_reference():
    assert VOC_V == pytest.approx(FOM_A["voc_V"], abs=5e-4)
    assert JSC_MA_CM2 == pytest.approx(FOM_A["jsc_mA_cm2"], abs=5e-3)


def _run(tmp_path, *settings: str, station=None):
    args = ["run", "hold", "--station", str(station or REPO / "station.yaml"), "--out", str(tmp_path / "runs"),
            "--json", "--no-plot"]
    for item in settings:
        args += ["--set", item]
    res = CliRunner().invoke(main, args, catch_exceptions=False)
    return res, (json.loads(res.stdout) if res.stdout.strip().startswith("{") else None)


@pytest.mark.parametrize("driver", ["keithley2400", "keithley2450"])
def test_open_circuit_hold_reads_the_cells_voc(tmp_path, driver):
    station = station_file(tmp_path, lambda d: d["instruments"]["smu"].update(driver=driver))
    res, out = _run(tmp_path, "duration_h=0.5", "interval_s=10", station=station)
    assert res.exit_code == 0, res.output
    results = out["results"]
    assert results["rows"] == 180 and results["readings_planned"] == 180 and results["points_in_compliance"] == 0
    assert results["voc_mean_V"] == pytest.approx(VOC_V, abs=5e-4)
    run = load_run(out["file"])
    hold = run.streams["hold"]
    np.testing.assert_allclose(hold["time_s"], 10.0 * np.arange(180), atol=0.1)  # one reading every 10 s
    assert np.all(np.abs(hold["voltage_V"] - VOC_V) < 2e-3)
    assert np.all(np.abs(hold["j_mA_cm2"]) < 1e-3)  # I = 0 at open circuit
    assert run.parameters["bias"] == "oc" and run.units["duration_h"] == "h"
    assert [s["status"] for s in out["results"]["segments"]] == ["completed"] and out["results"]["gaps"] == []


def test_short_circuit_and_voltage_holds_read_the_cells_current(tmp_path):
    res, out = _run(tmp_path, "bias=sc", "duration_h=0.05", "interval_s=1")
    assert res.exit_code == 0, res.output
    assert out["results"]["rows"] == 180
    assert out["results"]["jsc_mean_mA_cm2"] == pytest.approx(JSC_MA_CM2, rel=1e-3)
    res, out = _run(tmp_path, "bias=0.95", "duration_h=0.01", "interval_s=2")
    assert res.exit_code == 0, res.output
    expected = 1e3 * _j_A_cm2(0.95)
    assert out["results"]["j_mean_mA_cm2"] == pytest.approx(expected, rel=2e-3)
    assert out["results"]["power_mean_mW_cm2"] == pytest.approx(0.95 * expected, rel=2e-3)
    hold = load_run(out["file"]).streams["hold"]
    np.testing.assert_allclose(hold["voltage_V"], 0.95, atol=1e-3)


def test_a_hold_in_the_dark_has_no_photovoltage(tmp_path):
    res, out = _run(tmp_path, "light=false", "duration_h=0.01", "interval_s=6")
    assert res.exit_code == 0, res.output
    assert abs(out["results"]["voc_mean_V"]) < 1e-3  # the dark cell at I = 0 sits at 0 V


@pytest.fixture
def connections(monkeypatch):
    calls = []
    real = Station.connect

    def spy(self, roles=None):
        calls.append(roles)
        return real(self, roles)

    monkeypatch.setattr(Station, "connect", spy)
    return calls


@pytest.mark.parametrize(("settings", "fragment"), [
    (["bias=mpp"], "parameter bias = 'mpp': allowed oc (open circuit, I = 0), sc (short circuit, V = 0) or a "
                   "voltage from -1.5 to 1.5 V"),
    (["bias=1.6"], "parameter bias = 1.6: allowed range is -1.5 to 1.5"),
    (["bias=nan"], "parameter bias = 'nan'"),
    (["duration_h=0.001", "interval_s=10"], "parameter interval_s = 10: longer than duration_h = 0.001 h"),
    (["interval_s=0.05", "nplc=10"], "parameter interval_s = 0.05: shorter than one reading at nplc = 10"),
    (["compliance_V=2"], "parameter compliance_V = 2.0: allowed range is 0.02 to 1.5"),
    (["duration_h=0"], "parameter duration_h = '0': allowed 0.0001 to 10000 h"),
])
def test_bad_settings_are_refused_in_one_line_before_any_instrument_is_touched(tmp_path, connections, settings,
                                                                                fragment):
    res, out = _run(tmp_path, *settings)
    assert res.exit_code == 2, res.output
    assert len(res.stderr.strip().splitlines()) == 1 and fragment in res.stderr, res.stderr
    assert out["status"] == "error" and fragment in out["error"]
    assert connections == [] and not list(tmp_path.rglob("*.h5"))


def test_open_circuit_hold_of_a_hysteretic_cell_settles_at_the_static_voc(tmp_path):
    """With ion-lag hysteresis the simulated SMU finds V(I = 0) by search (no closed form): once the ions have
    followed the held bias (tau 10 s, methods ref. §1.7) the cell is the static single-diode cell again."""
    station = station_file(tmp_path, lambda d: d["simulation"]["device"]["hysteresis"].update(enabled=True))
    res, out = _run(tmp_path, "duration_h=0.05", "interval_s=10", station=station)
    assert res.exit_code == 0, res.output
    assert out["results"]["voc_final_V"] == pytest.approx(VOC_V, abs=5e-4)


def test_params_says_what_the_bias_accepts():
    res = CliRunner().invoke(main, ["params", "hold"])
    assert res.exit_code == 0, res.output
    (line,) = [row for row in res.output.splitlines() if "│ bias " in row]
    assert "oc, sc, or a voltage in V" in line and "a value" not in line
