"""Dark J–V analysis (labctl.analysis.dark): J0, n, Rs and Rsh from the dark curve, methods ref. §1.8.

Expected values are the parameters a dark curve was computed from with pvlib (methods ref. §1.6 sets A and B),
not the simulator's or the code's own functions. The methods' warning: the raw local n(V) of set A is 15–30 at
0.4–0.8 V and 3.4 at 1.2 V and never shows 1.5, so only a fit of the whole single-diode dark model recovers it.
"""

from __future__ import annotations

import json

import numpy as np
import pvlib
import pytest
from click.testing import CliRunner

from labctl.analysis.dark import fit_dark_jv
from labctl.cli import main
from tests.helpers import REPO, SET_A, SET_B

VT_298 = 1.380649e-23 * 298.15 / 1.602176634e-19  # k_B·T/q (V), CODATA 2018 exact constants


def pvlib_dark_j_mA_cm2(v: np.ndarray, p: dict) -> np.ndarray:
    """Dark J (mA/cm², photocurrent-positive) of a single-diode cell per cm²: pvlib with Jph = 0."""
    i = pvlib.pvsystem.i_from_v(v, 0.0, p["j0_A_cm2"], p["rs_ohm_cm2"], p["rsh_ohm_cm2"], p["ideality"] * VT_298)
    return np.asarray(i) * 1e3


def _default_sweep() -> np.ndarray:
    return np.round(np.linspace(-0.1, 1.3, 141), 6)  # labctl run jv's default staircase


def test_raw_local_ideality_is_not_the_diode_s_as_the_methods_warn():
    """The reason for the fit: the data's local n(V) = dV/d ln J / Vt is far from 1.5 (methods ref. §1.8)."""
    v = _default_sweep()
    jd = -pvlib_dark_j_mA_cm2(v, SET_A)
    fwd = v > 0.05
    n_local = np.gradient(v[fwd], np.log(jd[fwd])) / VT_298
    assert n_local[(v[fwd] >= 0.4) & (v[fwd] <= 0.8)].min() > 10
    assert abs(np.interp(1.2, v[fwd], n_local) - 3.4) < 0.3


@pytest.mark.parametrize("params", [SET_A, SET_B], ids=["set-A", "set-B"])
def test_fit_recovers_the_parameters_of_a_pvlib_dark_curve(params):
    v = _default_sweep()
    fit = fit_dark_jv(v, pvlib_dark_j_mA_cm2(v, params))
    assert fit.flags == []
    assert fit.j0_A_cm2 == pytest.approx(params["j0_A_cm2"], rel=1e-6)
    assert fit.ideality == pytest.approx(params["ideality"], rel=1e-6)
    assert fit.rs_ohm_cm2 == pytest.approx(params["rs_ohm_cm2"], rel=1e-6)
    assert fit.rsh_ohm_cm2 == pytest.approx(params["rsh_ohm_cm2"], rel=1e-6)


def test_fit_with_one_percent_noise_is_within_its_uncertainties():
    v = _default_sweep()
    rng = np.random.default_rng(7)
    j = pvlib_dark_j_mA_cm2(v, SET_A) * (1 + 0.01 * rng.standard_normal(v.size))
    fit = fit_dark_jv(v, j)
    for key, u_key in (("j0_A_cm2", "j0_uncertainty_A_cm2"), ("ideality", "ideality_uncertainty"),
                       ("rs_ohm_cm2", "rs_uncertainty_ohm_cm2"), ("rsh_ohm_cm2", "rsh_uncertainty_ohm_cm2")):
        got, u = getattr(fit, key), getattr(fit, u_key)
        assert abs(got - SET_A[key]) < 4 * u, (key, got, u)
        # and the uncertainty is a useful one: J0 moves with n along their correlation, the others are tight
        assert u < (0.25 if key == "j0_A_cm2" else 0.02) * SET_A[key], (key, u)
    assert 0.005 < fit.rms_log_residual < 0.02


def test_points_in_compliance_are_left_out_and_a_short_scan_flags_rs():
    v = _default_sweep()
    j = pvlib_dark_j_mA_cm2(v, SET_A)
    clipped = j < -5.0  # a 5 mA/cm² compliance: the readings there are the compliance, not the cell
    j_read = np.where(clipped, -5.0, j)
    fit = fit_dark_jv(v, j_read, clipped)
    assert fit.points == int(np.sum(~clipped & (np.abs(v) > 2e-3)))
    assert fit.ideality == pytest.approx(1.5, rel=1e-4)
    short = fit_dark_jv(v[v <= 0.9], j[v <= 0.9])  # never leaves the shunt region: no J0, n or Rs to tell
    assert short.flags == ["no_diode_current"]  # said, not a made-up number
    assert np.isnan([short.j0_A_cm2, short.ideality, short.rs_ohm_cm2]).all()
    assert short.rsh_ohm_cm2 == pytest.approx(2000, rel=0.01)  # the shunt it does show


def test_dark_run_on_the_bench_reports_j0_n_rs_rsh(tmp_path):
    """labctl run jv --set light=false on the default bench (a set-A cell): the fit, stored, printed and plotted."""
    base = ["run", "jv", "--station", str(REPO / "station.yaml"), "--out", str(tmp_path), "--set", "light=false"]
    res = CliRunner().invoke(main, [*base, "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    dark = payload["results"]["dark"]
    assert set(dark) == {"reverse", "forward"}
    for fit in dark.values():
        assert fit["flags"] == []
        assert fit["j0_A_cm2"] == pytest.approx(SET_A["j0_A_cm2"], rel=0.02)
        assert fit["ideality"] == pytest.approx(SET_A["ideality"], rel=2e-3)
        assert fit["rs_ohm_cm2"] == pytest.approx(SET_A["rs_ohm_cm2"], rel=0.01)
        assert fit["rsh_ohm_cm2"] == pytest.approx(SET_A["rsh_ohm_cm2"], rel=0.01)
    from labctl.storage import load_run

    assert load_run(payload["file"]).results["dark"] == dark  # stored in the run file
    table = CliRunner().invoke(main, [*base, "--no-plot"], catch_exceptions=False)
    assert "Dark J–V" in table.stdout and "J0 (A/cm²)" in table.stdout and "1.16e-15" in table.stdout
