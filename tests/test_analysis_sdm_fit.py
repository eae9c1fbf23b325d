"""Single-diode fit of light J–V curves (methods ref. §1.6; sets A and B of §9 J1/J2).

The curves are computed by pvlib (``pvlib.pvsystem.i_from_v``), never by labctl's own model.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pvlib
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import constants

from labctl.analysis.sdm_fit import fit_single_diode

REF = json.loads((Path(__file__).parent / "data" / "reference_cases.json").read_text())
VT_298 = constants.Boltzmann * 298.15 / constants.elementary_charge
GRID_V = np.round(np.linspace(-0.1, 1.3, 141), 12)  # the default staircase, 10 mV


def _params(case: str) -> dict[str, float]:
    return REF["J1_J2_sdm_sets"][case]["params"]


def _curve_mA(p: dict[str, float], v: np.ndarray = GRID_V) -> np.ndarray:
    return 1e3 * pvlib.pvsystem.i_from_v(v, p["Jph"], p["J0"], p["Rs"], p["Rsh"], p["n"] * VT_298)


@pytest.mark.parametrize("case", ["A", "A_pce16.6", "B"])
def test_recovers_the_methods_sets_noise_free(case: str) -> None:
    p = _params(case)
    fit = fit_single_diode(GRID_V, _curve_mA(p))
    assert fit.converged and fit.flags == ()
    assert fit.jph_mA_cm2 == pytest.approx(1e3 * p["Jph"], rel=1e-7)
    assert fit.j0_A_cm2 == pytest.approx(p["J0"], rel=1e-5)
    assert fit.ideality == pytest.approx(p["n"], rel=1e-7)
    assert fit.rs_ohm_cm2 == pytest.approx(p["Rs"], rel=1e-6)
    assert fit.rsh_ohm_cm2 == pytest.approx(p["Rsh"], rel=1e-6)
    assert fit.rms_residual_mA_cm2 < 1e-9


@pytest.mark.parametrize("case", ["A", "B"])
@pytest.mark.parametrize("rel_noise", [5e-4, 3e-3])
def test_recovers_the_methods_sets_with_noise_within_the_stated_uncertainty(case: str, rel_noise: float) -> None:
    """Gaussian current noise of rms rel_noise·Jsc, 40 seeds: the errors are consistent with the stated
    standard uncertainties (about 68 % within 1σ, none beyond 4σ)."""
    p = _params(case)
    clean = _curve_mA(p)
    sigma = rel_noise * 1e3 * REF["J1_J2_sdm_sets"][case]["fom"]["Jsc"]
    z = {"rs": [], "rsh": [], "n": []}
    rms = []
    for seed in range(40):
        fit = fit_single_diode(GRID_V, clean + np.random.default_rng(seed).normal(0.0, sigma, GRID_V.size))
        assert fit.converged and fit.flags == (), seed
        z["rs"].append((fit.rs_ohm_cm2 - p["Rs"]) / fit.rs_uncertainty_ohm_cm2)
        z["rsh"].append((fit.rsh_ohm_cm2 - p["Rsh"]) / fit.rsh_uncertainty_ohm_cm2)
        z["n"].append((fit.ideality - p["n"]) / fit.ideality_uncertainty)
        rms.append(fit.rms_residual_mA_cm2)
    for name, values in z.items():
        values = np.abs(values)
        assert values.max() < 4.0, name
        assert 0.5 < np.mean(values <= 1.0) < 0.86, name
    assert np.median(rms) == pytest.approx(sigma, rel=0.1)  # the residual is the noise


def test_points_in_any_order_give_the_same_fit() -> None:
    j = _curve_mA(_params("A")) + np.random.default_rng(3).normal(0.0, 0.01, GRID_V.size)
    order = np.random.default_rng(4).permutation(GRID_V.size)
    assert fit_single_diode(GRID_V[order], j[order]) == fit_single_diode(GRID_V, j)


def test_non_finite_points_are_dropped() -> None:
    j = _curve_mA(_params("B"))
    j_bad = j.copy()
    j_bad[[5, 80]] = np.nan
    fit = fit_single_diode(GRID_V, j_bad)
    assert fit.points == GRID_V.size - 2
    assert fit.rs_ohm_cm2 == pytest.approx(_params("B")["Rs"], rel=1e-6)


def test_dark_curve_and_too_few_points_are_flagged_not_raised() -> None:
    p = dict(_params("A"), Jph=0.0)
    dark = fit_single_diode(GRID_V, 1e3 * pvlib.pvsystem.i_from_v(GRID_V, 0.0, p["J0"], p["Rs"], p["Rsh"],
                                                                   p["n"] * VT_298))
    assert dark.flags == ("no_photocurrent",) and not dark.converged and math.isnan(dark.rs_ohm_cm2)
    few = fit_single_diode(GRID_V[::20], _curve_mA(_params("A"), GRID_V[::20]))
    assert few.flags == ("too_few_points",) and math.isnan(few.rsh_ohm_cm2)


def test_parameters_the_curve_cannot_determine_are_nan_and_flagged() -> None:
    """Rsh = 1e5 Ω·cm² moves J by 0.013 mA/cm² over the scan, below 0.3 % noise (0.055 mA/cm²): NaN + flag,
    the raw value kept; Rs is still well determined."""
    p = dict(_params("A"), Rsh=1e5)
    j = _curve_mA(p) + np.random.default_rng(0).normal(0.0, 0.055, GRID_V.size)
    fit = fit_single_diode(GRID_V, j)
    assert fit.flags == ("rsh_ill_determined",)
    assert math.isnan(fit.rsh_ohm_cm2) and math.isnan(fit.rsh_uncertainty_ohm_cm2)
    assert fit.raw[4] > 1e4
    assert abs(fit.rs_ohm_cm2 - p["Rs"]) < 4 * fit.rs_uncertainty_ohm_cm2


cells = st.fixed_dictionaries(
    {
        "Jph": st.floats(5e-3, 4e-2),
        "J0": st.floats(-20, -9).map(lambda e: 10.0**e),
        "n": st.floats(1.0, 2.2),
        "Rs": st.floats(0.2, 12.0),
        "Rsh": st.floats(300.0, 1e5),
    }
)


@settings(max_examples=40, deadline=None)
@given(p=cells, seed=st.integers(0, 2**16))
def test_fit_is_right_or_says_so(p: dict[str, float], seed: int) -> None:
    """Any diode, 0.05 % noise, the default grid up to 1.15·Voc: every reported parameter lies within 5σ of
    the truth; the rest is NaN and flagged (or the fit says it did not converge)."""
    voc = float(pvlib.pvsystem.v_from_i(0.0, p["Jph"], p["J0"], p["Rs"], p["Rsh"], p["n"] * VT_298))
    v = np.linspace(-0.1, 1.15 * voc, 141)
    j = _curve_mA(p, v)
    j = j + np.random.default_rng(seed).normal(0.0, 5e-4 * 1e3 * p["Jph"], v.size)
    fit = fit_single_diode(v, j)
    if not fit.converged:
        assert fit.flags == ("not_converged",) and math.isnan(fit.rs_ohm_cm2)
        return
    for value, true, u, flag in (
        (fit.rs_ohm_cm2, p["Rs"], fit.rs_uncertainty_ohm_cm2, "rs_ill_determined"),
        (fit.rsh_ohm_cm2, p["Rsh"], fit.rsh_uncertainty_ohm_cm2, "rsh_ill_determined"),
        (fit.ideality, p["n"], fit.ideality_uncertainty, "ideality_ill_determined"),
    ):
        if math.isnan(value):
            assert flag in fit.flags
        else:
            assert abs(value - true) <= 5 * u, (flag, value, true, u)
