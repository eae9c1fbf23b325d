"""EQE analysis and spectra (Methods ref. §2, §3; reference cases S1–S3, M1–M2, E1)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pvlib
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labctl.analysis import eqe as E
from labctl.analysis import spectra as S

REF = json.loads((Path(__file__).parent / "data" / "reference_cases.json").read_text())


# --- spectra ---------------------------------------------------------------------------------------
def test_hc_over_q_and_photon_energy():
    assert S.HC_OVER_Q_NM_V == pytest.approx(1239.841984, abs=1e-6)
    assert S.photon_energy_eV(520.0) == pytest.approx(2.38431, rel=1e-5)  # Methods ref. §0 (K2)


def test_s1_g173_global_integral():
    case = REF["S1_G173_global_W_m2"]
    wl, e = S.g173_wavelength_nm(), S.am15g_W_m2_nm()
    assert wl.size == e.size == 2002 and wl[0] == 280.0 and wl[-1] == 4000.0
    assert np.trapezoid(e, wl) == pytest.approx(case["value"], abs=case["tol_W_m2"])


def test_am15g_on_a_grid_matches_pvlib_and_is_zero_outside():
    wl = np.array([250.0, 280.0, 300.25, 555.5, 1000.0, 4000.0, 4100.0])
    expected = pvlib.spectrum.get_reference_spectra(wl)["global"].to_numpy()
    np.testing.assert_array_equal(S.am15g_W_m2_nm(wl), expected)
    assert S.am15g_W_m2_nm(wl)[0] == 0.0 and S.am15g_W_m2_nm(wl)[-1] == 0.0


def test_cached_spectrum_cannot_be_corrupted_by_callers():
    e = S.am15g_W_m2_nm()
    e[:] = 0.0
    assert S.am15g_W_m2_nm().max() > 1.0


def test_responsivity_eqe_worked_value_and_pvlib():
    # Methods ref. §3.1: 0.40 A/W at 600 nm ↔ EQE 0.82656; 1 A/W at 600 nm ↔ 2.0664
    assert S.responsivity_to_eqe(600.0, 0.40) == pytest.approx(REF["E1_substitution_eqe"]["eqe_ref"], abs=1e-5)
    assert S.responsivity_to_eqe(600.0, 1.0) == pytest.approx(2.0664, abs=1e-4)
    wl = np.linspace(300, 1200, 19)
    sr = np.linspace(0.1, 0.6, 19)
    np.testing.assert_allclose(S.responsivity_to_eqe(wl, sr), pvlib.spectrum.sr_to_qe(sr, wl), rtol=1e-12)


@settings(max_examples=200, deadline=None)
@given(st.floats(150.0, 3000.0), st.floats(0.0, 1.0))
def test_responsivity_eqe_round_trip(wavelength_nm, eqe):
    r = S.eqe_to_responsivity(wavelength_nm, eqe)
    assert S.responsivity_to_eqe(wavelength_nm, r) == pytest.approx(eqe, rel=1e-12, abs=1e-15)


def test_photon_flux_of_am15g_equals_eqe1_current():
    # Methods ref. §2.2: total photon flux 280–4000 nm = 4.3056e21 m⁻² s⁻¹ ↔ 68.98 mA/cm² at EQE = 1
    wl = S.g173_wavelength_nm()
    flux = np.trapezoid(S.photon_flux_per_m2_s_nm(wl, S.am15g_W_m2_nm()), wl)
    assert flux == pytest.approx(4.3056e21, rel=1e-4)
    assert E.integrated_jsc_mA_cm2(wl, np.ones_like(wl)) == pytest.approx(68.98, abs=0.005)


@pytest.mark.parametrize("bad", [0.0, -1.0])
def test_conversions_reject_non_positive_wavelength(bad):
    for fn in (S.responsivity_to_eqe, S.eqe_to_responsivity, S.photon_flux_per_m2_s_nm):
        with pytest.raises(ValueError, match="wavelength_nm"):
            fn(bad, 1.0)


# --- E1: substitution -------------------------------------------------------------------------------
def test_e1_eqe_from_ratio():
    c = REF["E1_substitution_eqe"]
    got = E.eqe_from_ratio(c["signal_dut_V"], c["gain_V_A"], c["signal_ref_V"], c["gain_V_A"],
                           c["responsivity_ref_A_W"], c["wavelength_nm"])
    assert got == pytest.approx(c["eqe_dut"], abs=c["tol"])


def test_eqe_from_ratio_uses_the_gains_and_is_vectorised():
    # a DUT read at 10× the gain gives 10× the voltage for the same current: same EQE
    base = E.eqe_from_ratio(0.3, 1e6, 0.45, 1e6, 0.4, 600.0)
    assert E.eqe_from_ratio(3.0, 1e7, 0.45, 1e6, 0.4, 600.0) == pytest.approx(base, rel=1e-14)
    out = E.eqe_from_ratio([0.3, 0.2], 1e6, [0.45, 0.0], 1e6, [0.4, 0.3], [600.0, 500.0])
    assert out[0] == pytest.approx(base, rel=1e-14) and np.isnan(out[1])


def test_eqe_from_ratio_rejects_bad_gains():
    with pytest.raises(ValueError, match="gains"):
        E.eqe_from_ratio(0.3, 0.0, 0.45, 1e6, 0.4, 600.0)


# --- S2, S3: integrated Jsc -------------------------------------------------------------------------
@pytest.mark.parametrize("eg", ["1.3", "1.5", "1.6", "1.7"])
def test_s2_jsc_max_step_eqe(eg):
    case = REF["S2_jsc_max_mA_cm2"]
    lam_g = S.HC_OVER_Q_NM_V / float(eg)
    got = E.integrated_jsc_mA_cm2([280.0, lam_g], [1.0, 1.0])
    assert got == pytest.approx(case["by_Eg_eV"][eg], abs=case["tol_mA_cm2"])
    assert got == pytest.approx(case["by_Eg_eV"][eg], abs=1e-6)  # same definition: integral stops at λg


def test_s3_flat_eqe_and_the_reference_definition():
    case = REF["S3_jsc_eqe080_300_760_mA_cm2"]
    got = E.integrated_jsc_mA_cm2([300.0, 760.0], [0.8, 0.8])
    assert got == pytest.approx(case["value"], abs=case["tol_mA_cm2"])
    # the published value also integrates the ramps to zero over the neighbouring G173 steps: exactly that
    padded = E.integrated_jsc_mA_cm2([299.5, 300.0, 760.0, 761.0], [0.0, 0.8, 0.8, 0.0])
    assert padded == pytest.approx(case["value"], abs=1e-9)
    assert got < padded


def test_jsc_interpolates_eqe_not_the_spectrum():
    # Methods ref. §3.5: the flat case on a 10 nm EQE grid still gives ≈ 19.73, not the 19.452 grid artefact
    wl = np.arange(300.0, 761.0, 10.0)
    assert E.integrated_jsc_mA_cm2(wl, np.full(wl.size, 0.8)) == pytest.approx(19.7314, abs=1e-3)


def test_jsc_point_order_and_custom_spectrum():
    wl = np.linspace(350, 800, 46)
    q = 0.8 / (1 + np.exp((wl - 760) / 10))
    perm = np.random.default_rng(1).permutation(wl.size)
    assert E.integrated_jsc_mA_cm2(wl[perm], q[perm]) == E.integrated_jsc_mA_cm2(wl, q)
    grid = S.g173_wavelength_nm()
    assert E.integrated_jsc_mA_cm2(wl, q, spectrum=(grid, S.am15g_W_m2_nm())) == pytest.approx(
        E.integrated_jsc_mA_cm2(wl, q), rel=1e-14
    )
    # flat 1 W/m²/nm, EQE 1 on 400–500 nm: ∫λ/1239.842 dλ /10
    flat = (np.array([300.0, 600.0]), np.array([1.0, 1.0]))
    assert E.integrated_jsc_mA_cm2([400, 500], [1, 1], spectrum=flat) == pytest.approx(
        (500**2 - 400**2) / 2 / S.HC_OVER_Q_NM_V / 10, rel=1e-12
    )


@pytest.mark.parametrize(
    "wl, q, match",
    [([500.0], [0.5], "at least 2"), ([500, 500], [0.5, 0.6], "duplicate"), ([500, 600], [0.5, np.nan], "finite"),
     ([500, 600], [0.5], "differ in length")],
)
def test_jsc_rejects_bad_curves(wl, q, match):
    with pytest.raises(ValueError, match=match):
        E.integrated_jsc_mA_cm2(wl, q)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0.0, 1.0), min_size=3, max_size=12),
    st.floats(0.01, 100.0),
    st.floats(300.0, 700.0),
    st.floats(50.0, 800.0),
)
def test_integrated_jsc_is_linear_in_eqe(values, k, start, span):
    wl = np.linspace(start, start + span, len(values))
    q = np.asarray(values)
    q2 = q[::-1].copy()
    j1, j2 = E.integrated_jsc_mA_cm2(wl, q), E.integrated_jsc_mA_cm2(wl, q2)
    assert E.integrated_jsc_mA_cm2(wl, k * q) == pytest.approx(k * j1, rel=1e-9, abs=1e-12)
    assert E.integrated_jsc_mA_cm2(wl, q + q2) == pytest.approx(j1 + j2, rel=1e-9, abs=1e-12)


# --- M1, M2: spectral mismatch ----------------------------------------------------------------------
def _m1_spectra(a: float):
    """Methods ref. §2.3: 300–1200 nm at 1 nm; E_sim tilted by a; S_R = pvlib c-Si example; S_T = logistic EQE."""
    wl = np.arange(300.0, 1201.0, 1.0)
    e_ref = S.am15g_W_m2_nm(wl)
    e_sim = e_ref * (1 + a * (wl - 750.0) / 450.0)
    s_r = pvlib.spectrum.get_example_spectral_response(wl).to_numpy()
    s_t = S.eqe_to_responsivity(wl, 0.80 / (1 + np.exp((wl - 760.0) / 10.0)))
    return wl, e_sim, s_r, s_t, e_ref


@pytest.mark.parametrize("a", ["0.0", "0.02", "0.05", "-0.05"])
def test_m1_worked_mismatch(a):
    case = REF["M1_mismatch_by_a"]
    wl, e_sim, s_r, s_t, _ = _m1_spectra(float(a))
    assert E.spectral_mismatch(wl, e_sim, s_r, s_t) == pytest.approx(case["by_a"][a], abs=case["tol"])


def test_m2_identities_exact():
    tol = REF["M2_mismatch_identity"]["tol"]
    wl, e_sim, s_r, s_t, e_ref = _m1_spectra(0.05)
    assert E.spectral_mismatch(wl, e_ref, s_r, s_t, e_ref=e_ref) == pytest.approx(1.0, abs=tol)
    assert E.spectral_mismatch(wl, e_sim, s_r, s_r) == pytest.approx(1.0, abs=tol)
    assert E.spectral_mismatch(wl, e_ref, s_r, s_t, e_ref=e_ref) == 1.0
    assert E.spectral_mismatch(wl, e_sim, s_t, s_t) == 1.0


def test_mismatch_with_flat_reference_equals_pvlib_field_mismatch():
    # Methods ref. §2.1: with a thermal (flat) reference detector M is the ratio of usable fractions
    wl, e_sim, _, s_t, e_ref = _m1_spectra(0.05)
    expected = pvlib.spectrum.calc_spectral_mismatch_field(pd.Series(s_t, index=wl), pd.Series(e_sim, index=wl))
    assert E.spectral_mismatch(wl, e_sim, 1.0, s_t) == pytest.approx(float(expected), rel=1e-12)


def test_mismatch_point_order_does_not_matter():
    wl, e_sim, s_r, s_t, e_ref = _m1_spectra(0.02)
    p = np.random.default_rng(2).permutation(wl.size)
    assert E.spectral_mismatch(wl[p], e_sim[p], s_r[p], s_t[p], e_ref[p]) == pytest.approx(
        E.spectral_mismatch(wl, e_sim, s_r, s_t, e_ref), rel=1e-13
    )


def test_mismatch_rejects_bad_input():
    wl, e_sim, s_r, s_t, _ = _m1_spectra(0.0)
    with pytest.raises(ValueError, match="values for"):
        E.spectral_mismatch(wl, e_sim[:-1], s_r, s_t)
    with pytest.raises(ValueError, match=">= 0"):
        E.spectral_mismatch(wl, -e_sim, s_r, s_t)
    with pytest.raises(ValueError, match="overlap"):
        E.spectral_mismatch(wl, e_sim, np.zeros_like(s_r), s_t)


_spectrum_strategy = st.lists(st.floats(0.05, 10.0), min_size=8, max_size=8)


@settings(max_examples=100, deadline=None)
@given(_spectrum_strategy, _spectrum_strategy, _spectrum_strategy, _spectrum_strategy,
       st.sampled_from(["e_sim", "s_ref", "s_test", "e_ref"]), st.floats(1e-3, 1e3))
def test_mismatch_invariant_to_scaling_any_spectrum(e_sim, s_ref, s_test, e_ref, which, k):
    wl = np.linspace(400.0, 1100.0, 8)
    args = {"e_sim": np.array(e_sim), "s_ref": np.array(s_ref), "s_test": np.array(s_test), "e_ref": np.array(e_ref)}
    m = E.spectral_mismatch(wl, **args)
    args[which] = args[which] * k
    assert E.spectral_mismatch(wl, **args) == pytest.approx(m, rel=1e-12)


@settings(max_examples=100, deadline=None)
@given(_spectrum_strategy, _spectrum_strategy, _spectrum_strategy, st.floats(1e-3, 1e3))
def test_mismatch_is_one_when_test_responsivity_proportional_to_reference(e_sim, s_ref, e_ref, k):
    wl = np.linspace(400.0, 1100.0, 8)
    s_r = np.array(s_ref)
    m = E.spectral_mismatch(wl, np.array(e_sim), s_r, k * s_r, np.array(e_ref))
    assert m == pytest.approx(1.0, rel=1e-12)


# --- Jsc agreement ----------------------------------------------------------------------------------
def test_jsc_ratio_and_agreement_check():
    assert E.jsc_ratio(18.0, 18.3) == pytest.approx(18.0 / 18.3)
    assert E.check_jsc_agreement(18.0, 18.3) == []
    problems = E.check_jsc_agreement(16.0, 18.3)
    assert len(problems) == 1 and "-12.6 %" in problems[0] and "16.000" in problems[0]
    assert E.check_jsc_agreement(18.0, 18.3, tolerance=0.01) != []
    with pytest.raises(ValueError, match="jv_jsc"):
        E.jsc_ratio(18.0, 0.0)


# --- order sorting (Methods ref. §3.6) -------------------------------------------------------------
GOOD_TABLE = [
    E.OrderSortingRow(300, 480),  # open: 480 < 2·250
    E.OrderSortingRow(480, 780, 400, 0.05),  # usable 420–780
    E.OrderSortingRow(780, 1300, 700, 0.05),  # usable 735–1365
    E.OrderSortingRow(1300, 1900, 1000, 0.05),  # usable 1050–1950
]


def test_order_sorting_good_table_has_no_problems():
    assert E.check_order_sorting(GOOD_TABLE, lamp_min_nm=250) == []


def test_order_sorting_open_beam_above_twice_lamp_minimum():
    problems = E.check_order_sorting([(300, 520, None)], lamp_min_nm=250)
    assert len(problems) == 1
    assert "row 1" in problems[0] and "500 ≤ λ ≤ 520 nm" in problems[0] and "second order" in problems[0]
    # a lamp that starts at 300 nm allows the open beam up to 600 nm
    assert E.check_order_sorting([(300, 520, None)], lamp_min_nm=300) == []


def test_order_sorting_second_order_leak_above_two_cut_on_minus_edge():
    # 400 nm LP with a 6 % edge is usable to 776 nm: 776 < λ ≤ 780 leaks
    problems = E.check_order_sorting([{"start_nm": 480, "stop_nm": 780, "cut_on_nm": 400, "edge_fraction": 0.06}])
    assert len(problems) == 1 and "776 < λ ≤ 780 nm" in problems[0] and "400 nm long-pass" in problems[0]
    # exactly at the limits is allowed (no floating-point surprise: 2·400 − 0.06·400 is 775.9999999999999)
    assert E.check_order_sorting([(424, 776, 400, 0.06), (300, 499.9, None)]) == []
    assert len(E.check_order_sorting([(424, 776.01, 400, 0.06), (423.99, 776, 400, 0.06), (300, 500, None)])) == 3
    # the illustrative 1000 nm LP for 1300–2000 nm leaks above 1950 nm
    problems = E.check_order_sorting([(1300, 2000, 1000, 0.05)])
    assert len(problems) == 1 and "1950 < λ ≤ 2000 nm" in problems[0]


def test_order_sorting_filter_edge_cuts_the_signal():
    problems = E.check_order_sorting([(700, 1300, 700, 0.05)])
    assert len(problems) == 1 and "700 ≤ λ < 735 nm" in problems[0] and "attenuates" in problems[0]


def test_order_sorting_reports_every_bad_row_and_whole_ranges():
    table = [(300, 560, None), (560, 800, 400, 0.08), (820, 900, 400, 0.05)]
    problems = E.check_order_sorting(table)
    assert [p.split(" ")[1] for p in problems] == ["1", "2", "3"]
    assert "all of 820–900 nm" in problems[2]


@pytest.mark.parametrize(
    "row, match",
    [((500, 400, None), "start_nm <= stop_nm"), ((400, 500, -1.0), "cut_on_nm"), ((400, 500, 300, 0.7), "edge")],
)
def test_order_sorting_rejects_malformed_rows(row, match):
    with pytest.raises(ValueError, match=match):
        E.check_order_sorting([row])


@settings(max_examples=200, deadline=None)
@given(st.floats(200.0, 1500.0), st.floats(0.0, 0.1), st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_order_sorting_agrees_with_pointwise_rule(cut_on, edge, u, v):
    # a row is reported clean exactly when every wavelength in it satisfies λc + Δ ≤ λ ≤ 2λc − Δ
    lo_ok, hi_ok = cut_on * (1 + edge), cut_on * (2 - edge)
    a, b = sorted((100 + 3000 * u, 100 + 3000 * v))
    clean = E.check_order_sorting([(a, b, cut_on, edge)]) == []
    assert clean == (a >= lo_ok - 1e-6 and b <= hi_ok + 1e-6)
