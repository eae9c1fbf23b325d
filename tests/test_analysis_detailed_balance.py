"""labctl.analysis.detailed_balance against the methods reference §9 cases D1-D3
(tests/data/plqy_detailed_balance_L_D.json), the loss identity as a property, band gap and Urbach extension."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from labctl.analysis import detailed_balance as db
from labctl.analysis.eqe import integrated_jsc_mA_cm2
from tests.helpers import REPO

CASES = json.loads((REPO / "tests" / "data" / "plqy_detailed_balance_L_D.json").read_text())
HC_NM_V = 1239.841984  # methods §0, written out: the tests do not borrow the module's constant


def _synthetic_eqe(energy_eV, c):
    """methods §6.3: EQE0 above Eg, EQE0·exp((E − Eg)/E_U) below."""
    e = np.asarray(energy_eV, dtype=float)
    return c["EQE0"] * np.where(e >= c["Eg"], 1.0, np.exp(np.minimum(e - c["Eg"], 0) / c["EU"]))


def test_blackbody_prefactor():
    assert db.BLACKBODY_PREFACTOR_CM2_S_EV3 == pytest.approx(9.8833e22, rel=1e-4)  # methods §8


def test_D1_step_eqe():
    c = CASES["D1_step_eqe"]
    j0 = db.step_eqe_j0r_A_cm2(c["Eg_eV"], c["temperature_K"])
    assert j0 == pytest.approx(c["j0R_A_cm2"], rel=c["j0R_rel_tol"])
    assert db.shockley_queisser_voc_V(c["Eg_eV"], c["temperature_K"]) == pytest.approx(c["Voc_SQ_V"],
                                                                                      abs=c["Voc_tol_V"])
    lam = np.arange(280.0, HC_NM_V / c["Eg_eV"], 0.01)
    jsc_A_cm2 = integrated_jsc_mA_cm2(lam, np.ones_like(lam)) * 1e-3
    assert jsc_A_cm2 == pytest.approx(c["full_precision"]["Jsc_A_cm2"], rel=1e-4)
    # the Boltzmann closed form of methods §6.1 agrees to 4 significant figures
    kt = 1.380649e-23 * c["temperature_K"] / 1.602176634e-19
    eg = c["Eg_eV"]
    closed = 1.602176634e-19 * 9.8833e22 * kt * (eg**2 + 2 * eg * kt + 2 * kt**2) * np.exp(-eg / kt)
    assert j0 == pytest.approx(closed, rel=5e-4)


def test_D2_synthetic_loss_table():
    c = CASES["D2_synthetic"]
    grid = db.energy_grid_eV()
    j0 = db.radiative_saturation_current_A_cm2(grid, _synthetic_eqe(grid, c), c["temperature_K"])
    assert j0 == pytest.approx(c["j0R"], rel=1e-3)
    losses = db.voc_losses(c["Eg"], c["Jsc"], j0, c["Voc"], c["PLQY"], c["temperature_K"])
    tol = c["tol_V"]
    assert losses.voc_rad_V == pytest.approx(c["VocR"], abs=tol)
    assert losses.qfls_eV == pytest.approx(c["mu_over_q"], abs=tol)
    assert losses.dvoc_rad_V == pytest.approx(c["dVoc_R"], abs=tol)
    assert losses.dvoc_nr_V == pytest.approx(c["dVoc_NR"], abs=tol)
    assert losses.dvoc_sr_V == pytest.approx(c["dVoc_SR"], abs=tol)
    assert losses.eg_eV - losses.dvoc_rad_V - losses.dvoc_nr_V - losses.dvoc_sr_V == pytest.approx(c["Voc"], abs=1e-12)
    assert db.surface_loss_warnings(losses, db.dvoc_sr_uncertainty_V(c["temperature_K"])) == []


def test_D2_from_a_measured_eqe_with_its_tail_cut_at_a_noise_floor():
    """The §6.3 EQE sampled every 5 nm from 300 to 1000 nm, its tail below 1e-4 replaced by a 3e-5 floor (an
    EQE setup's noise): the fitted Urbach tail gives back E_U and j0,R close to the full integral."""
    c = CASES["D2_synthetic"]
    lam = np.arange(300.0, 1000.1, 5.0)
    eqe = _synthetic_eqe(HC_NM_V / lam, c)
    rng = np.random.default_rng(7)
    eqe = np.where(eqe < 1e-4, 3e-5 * np.abs(rng.standard_normal(lam.size)), eqe)
    limit = db.radiative_limit_from_eqe(lam, eqe, c["temperature_K"])
    assert limit.urbach_extension is True
    assert limit.urbach_energy_eV == pytest.approx(c["EU"], rel=0.03)
    assert limit.eg_eV == pytest.approx(c["Eg"], abs=0.01)  # 5 nm ≈ 10 meV at the gap
    assert limit.j0r_A_cm2 == pytest.approx(c["j0R"], rel=0.05)
    assert "inflection" in limit.eg_method
    # a scan that stops at the gap has no tail to fit: said so, and j0,R misses the tail
    cut = db.radiative_limit_from_eqe(lam[lam < 790], eqe[lam < 790], c["temperature_K"])
    assert cut.urbach_extension is False and cut.warnings
    assert cut.j0r_A_cm2 < 0.9 * c["j0R"]


def test_D3_nonradiative_loss():
    c = CASES["D3_nonradiative"]
    for plqy, expected in c["cases"]:
        assert db.nonradiative_loss_V(plqy, c["temperature_K"]) == pytest.approx(expected, abs=c["tol_V"])


def test_inconsistent_surface_loss_is_warned_with_its_causes():
    """methods §6.3: PLQY 0.30 % with Voc,R 1.27 V and Voc 1.17 V gives ΔSR = −50 mV: inconsistent."""
    c = CASES["D2_synthetic"]
    losses = db.voc_losses(c["Eg"], c["Jsc"], c["j0R"], c["Voc"], 0.0030, c["temperature_K"])
    assert losses.dvoc_sr_V == pytest.approx(-0.0502, abs=5e-4)
    (text,) = db.surface_loss_warnings(losses, db.dvoc_sr_uncertainty_V(c["temperature_K"]))
    assert "WARNING" in text and "dvoc_sr_V" in text and "PLQY" in text and "j0,R" in text


def test_bandgap_of_a_fine_step_with_tail():
    c = CASES["D2_synthetic"]
    lam = np.arange(300.0, 1000.0, 0.5)
    eg, method = db.bandgap_inflection_eV(*db.eqe_vs_energy(lam, _synthetic_eqe(HC_NM_V / lam, c)))
    assert eg == pytest.approx(c["Eg"], abs=2e-3) and method == db.BANDGAP_METHOD


finite = st.floats(allow_nan=False, allow_infinity=False)


@given(eg=st.floats(0.5, 3.0), jsc=st.floats(1e-4, 0.05), log_j0=st.floats(-40, -8), voc=st.floats(0.0, 2.0),
       plqy=st.floats(1e-8, 1.0), t=st.floats(200.0, 400.0))
def test_loss_identity_holds_for_any_inputs(eg, jsc, log_j0, voc, plqy, t):
    losses = db.voc_losses(eg, jsc, 10.0**log_j0, voc, plqy, t)
    assert losses.eg_eV - losses.dvoc_rad_V - losses.dvoc_nr_V - losses.dvoc_sr_V == pytest.approx(voc, abs=1e-9)
    assert losses.dvoc_nr_V >= 0
    assert losses.qfls_eV <= losses.voc_rad_V


@given(t=st.floats(250.0, 350.0), eg=st.floats(1.0, 2.0))
def test_j0r_rises_with_temperature_and_falls_with_gap(t, eg):
    assert db.step_eqe_j0r_A_cm2(eg, t + 5) > db.step_eqe_j0r_A_cm2(eg, t)
    assert db.step_eqe_j0r_A_cm2(eg + 0.05, t) < db.step_eqe_j0r_A_cm2(eg, t)
