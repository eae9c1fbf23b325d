"""EQE analysis and spectra (Methods ref. §2, §3; reference cases S1–S3, M1–M2, E1)."""

from __future__ import annotations

import json
import re
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


# --- mismatch with each response over its own range (IEC 60904-7) ------------------------------------
def _fine_mismatch(s_ref, s_test, e_sim):
    """Independent M: every curve linearly interpolated (zero outside its table) onto one 0.01 nm grid."""
    x = np.arange(250.0, 1400.0, 0.01)
    g173 = pvlib.spectrum.get_reference_spectra()
    e_ref = np.interp(x, g173.index, g173["global"], left=0, right=0)
    sr, st_, es = (np.interp(x, *c, left=0, right=0) for c in (s_ref, s_test, e_sim))

    def integral(a, b):
        return np.trapezoid(a * b, x)

    return integral(e_ref, sr) * integral(es, st_) / (integral(es, sr) * integral(e_ref, st_))


def test_mismatch_factor_reproduces_m1_when_all_responses_share_one_range():
    case = REF["M1_mismatch_by_a"]
    wl, e_sim, s_r, s_t, _ = _m1_spectra(0.02)
    assert E.mismatch_factor((wl, s_r), (wl, s_t), (wl, e_sim)) == pytest.approx(case["by_a"]["0.02"], abs=2e-5)


def test_mismatch_factor_integrates_each_response_over_its_own_range():
    """A c-Si reference responding to 1190 nm, a device measured on 300–900 nm (past its edge), a NIR-rich
    simulator: agrees with a plain fine-grid integration; truncating the reference at 900 nm (the old way)
    biases M by about +2 %."""
    sr_wl = np.arange(280.0, 1201.0, 5.0)
    s_ref = (sr_wl, pvlib.spectrum.get_example_spectral_response(sr_wl).to_numpy())
    t_wl = np.arange(300.0, 901.0, 10.0)
    s_test = (t_wl, S.eqe_to_responsivity(t_wl, 0.68 / (1 + np.exp((t_wl - 790.0) / 12.0))))
    e_wl = np.arange(280.0, 1301.0, 1.0)
    e_sim = (e_wl, S.am15g_W_m2_nm(e_wl) * (1 + 0.15 * np.clip((e_wl - 700.0) / 300.0, 0, None)))
    m = E.mismatch_factor(s_ref, s_test, e_sim)
    assert m == pytest.approx(_fine_mismatch(s_ref, s_test, e_sim), abs=2e-5)
    inside = (sr_wl >= 300) & (sr_wl <= 900)
    truncated = E.mismatch_factor((sr_wl[inside], s_ref[1][inside]), s_test, e_sim)
    assert truncated / m - 1 > 0.015
    # identities (methods ref. §2.1): E_sim = E_ref, or S_T ∝ S_R over the same range
    g = (S.g173_wavelength_nm(), S.am15g_W_m2_nm())
    assert E.mismatch_factor(s_ref, s_test, g) == pytest.approx(1.0, abs=1e-12)
    assert E.mismatch_factor(s_ref, (s_ref[0], 3 * s_ref[1]), e_sim) == pytest.approx(1.0, abs=1e-12)


def test_mismatch_factor_refuses_a_spectrum_that_does_not_cover_the_responses():
    sr_wl = np.arange(280.0, 1201.0, 5.0)
    s_ref = (sr_wl, pvlib.spectrum.get_example_spectral_response(sr_wl).to_numpy())
    s_test = ([300.0, 900.0], [0.2, 0.001])
    e_wl = np.arange(280.0, 596.0, 1.0)
    with pytest.raises(ValueError, match=r"e_sim covers 280–595 nm; needed 290–1190 nm .*300–900 nm"):
        E.mismatch_factor(s_ref, s_test, (e_wl, S.am15g_W_m2_nm(e_wl)))


def test_response_support_shrinks_to_the_zeros_at_the_ends():
    assert E.response_support_nm([280, 290, 300, 1190, 1200], [0, 0, 0.1, 0, 0]) == (290.0, 1190.0)
    assert E.response_support_nm([300, 1100], [0.1, 0.04]) == (300.0, 1100.0)
    with pytest.raises(ValueError, match="zero everywhere"):
        E.response_support_nm([300, 400], [0, 0])
    with pytest.raises(ValueError, match=">= 0"):
        E.response_support_nm([300, 400], [0.1, -0.01])


# --- Jsc agreement ----------------------------------------------------------------------------------
def test_jsc_ratio_and_agreement_check():
    assert E.jsc_ratio(18.0, 18.3) == pytest.approx(18.0 / 18.3)
    assert E.check_jsc_agreement(18.0, 18.3) == []
    problems = E.check_jsc_agreement(16.0, 18.3)
    assert len(problems) == 1 and "-12.6 %" in problems[0] and "16.000" in problems[0]
    assert E.check_jsc_agreement(18.0, 18.3, tolerance=0.01) != []
    with pytest.raises(ValueError, match="jv_jsc"):
        E.jsc_ratio(18.0, 0.0)


# --- band edge -------------------------------------------------------------------------------------
def test_band_edge_reached_only_when_the_last_point_is_below_the_fraction_of_the_maximum():
    wl = np.arange(300.0, 901.0, 10.0)
    pbs = np.full(wl.size, 0.82)  # a 1.3 eV cell scanned to 900 nm: still on its plateau
    edge = E.check_band_edge(wl, pbs)
    assert edge.reached is False and edge.fraction == E.BAND_EDGE_FRACTION == 0.01
    assert edge.last_wavelength_nm == 900.0 and edge.eqe_last == 0.82 and edge.last_fraction == pytest.approx(1.0)
    wide = 0.7 / (1 + np.exp((wl - 700.0) / 10.0))  # 0.7·e^-20 at 900 nm
    assert E.check_band_edge(wl, wide).reached is True
    # the rule is strict and uses the stated fraction: 0.7·e^-5 = 0.47 % of the maximum at the last point
    short = wl <= 750.0
    assert E.check_band_edge(wl[short], wide[short], fraction=0.01).reached is True
    assert E.check_band_edge(wl[short], wide[short], fraction=0.004).reached is False
    # point order does not matter; a curve without signal never reaches an edge
    assert E.check_band_edge(wl[::-1], wide[::-1]).reached is True
    assert E.check_band_edge(wl, np.zeros(wl.size)).reached is False
    with pytest.raises(ValueError, match="fraction"):
        E.check_band_edge(wl, wide, fraction=1.5)


# --- order sorting (Methods ref. §3.6) -------------------------------------------------------------
def _logistic_T(lam, cut_on, edge, peak=0.9, blocking=1e-5):
    """A long-pass edge through its datasheet points, written out: 50 % of peak at cut_on, 2·blocking at
    cut_on − edge."""
    w = edge / np.log((peak - blocking) / blocking)
    return blocking + (peak - blocking) / (1 + np.exp(-(np.asarray(lam, dtype=float) - cut_on) / w))


def test_long_pass_filter_passes_its_datasheet_points():
    f = E.LongPassFilter(420.0, 34.0)
    assert f.transmission(420.0) == pytest.approx(0.45, abs=1e-5)
    assert f.transmission(420.0 - 34.0) == pytest.approx(2e-5, rel=1e-3)
    assert f.transmission(300.0) == pytest.approx(1e-5, rel=1e-6) and f.transmission(600.0) == pytest.approx(0.9)
    lam = np.linspace(300, 600, 31)
    np.testing.assert_allclose(f.transmission(lam), _logistic_T(lam, 420.0, 34.0), rtol=1e-12)
    assert E.LongPassFilter.from_cut_on(400.0) == E.LongPassFilter(400.0, 32.0)  # 8 % edge by default
    assert E.second_order_leak(f, 780.0) == pytest.approx(_logistic_T(390, 420, 34) / _logistic_T(780, 420, 34))
    with pytest.raises(ValueError, match="blocking"):
        E.LongPassFilter(400.0, 30.0, peak_transmission=0.9, blocking=0.95)


#: the default table of station.yaml (filters as described there)
DEFAULT_TABLE = [
    E.OrderSortingRow(250, 480),
    E.OrderSortingRow(480, 780, E.LongPassFilter(420, 34)),
    E.OrderSortingRow(780, 1300, E.LongPassFilter(700, 56)),
    E.OrderSortingRow(1300, 1900, E.LongPassFilter(1000, 80)),
]


def test_order_sorting_default_table_has_no_problems():
    assert E.check_order_sorting(DEFAULT_TABLE, lamp_min_nm=250) == []
    # and really keeps second order below the bound everywhere: leak from the written-out edge on a fine grid
    for row, (cut, edge) in zip(DEFAULT_TABLE[1:], [(420, 34), (700, 56), (1000, 80)], strict=True):
        lam = np.linspace(row.start_nm, row.stop_nm, 5001)
        assert (_logistic_T(lam / 2, cut, edge) / _logistic_T(lam, cut, edge)).max() < E.MAX_SECOND_ORDER_LEAK


def test_order_sorting_reports_the_old_400nm_filter_up_to_780nm():
    """The old table: a plain 400 nm cut-on (8 % edge) used up to 780 nm lets 2.8 % of second order through at
    780 nm; the check names the range from where T(λ/2)/T(λ) first exceeds 0.1 %."""
    from scipy.optimize import brentq

    table = [(480, 780, E.LongPassFilter.from_cut_on(400))]
    problems = E.check_order_sorting(table)
    assert len(problems) == 1 and "second order" in problems[0] and "400 nm long-pass" in problems[0]
    start = brentq(lambda lam: _logistic_T(lam / 2, 400, 32) / _logistic_T(lam, 400, 32) - 1e-3, 600, 780)
    reported = float(re.search(r"for ([\d.]+)–780.0 nm", problems[0]).group(1))
    assert start <= reported <= start + 0.1  # the first 0.1 nm grid point above the crossing (761.1 nm)
    leak_780 = _logistic_T(390, 400, 32) / _logistic_T(780, 400, 32)
    assert f"up to {100 * leak_780:.2g} %" in problems[0] and leak_780 > 0.02
    # the old simulated filter had an even softer edge: 6.8 % transmission at 385 nm, as in the issue
    soft = E.LongPassFilter(400, 0.015 * 400 * np.log((0.9 - 1e-5) / 1e-5))
    assert soft.transmission(385.0) == pytest.approx(0.068, abs=0.001)
    assert E.check_order_sorting([(480, 780, soft)]) != []


def test_order_sorting_open_beam_above_twice_lamp_minimum():
    problems = E.check_order_sorting([(300, 520, None)], lamp_min_nm=250)
    assert len(problems) == 1
    assert "row 1" in problems[0] and "500.0–520.0 nm" in problems[0] and "second order" in problems[0]
    # a lamp that starts at 300 nm allows the open beam up to 600 nm
    assert E.check_order_sorting([(300, 520, None)], lamp_min_nm=300) == []


def test_order_sorting_filter_edge_cuts_the_first_order():
    # T(λ) ≥ 90 % of the peak from cut_on + w·ln 9 on: 700 + 4.909·2.197 = 710.8 nm for a 56 nm edge
    problems = E.check_order_sorting([(700, 1300, E.LongPassFilter(700, 56))])
    assert len(problems) == 1 and "attenuates the first order" in problems[0]
    w = 56 / np.log((0.9 - 1e-5) / 1e-5)
    hi = float(re.search(r"for 700.0–([\d.]+) nm", problems[0]).group(1))
    assert 700 + w * np.log(9) - 0.1 <= hi <= 700 + w * np.log(9)
    assert E.check_order_sorting([(712, 1300, E.LongPassFilter(700, 56))]) == []


def test_order_sorting_reports_every_bad_row():
    table = [(300, 560, None), (560, 800, E.LongPassFilter(400, 32)), (820, 900, E.LongPassFilter.from_cut_on(400))]
    problems = E.check_order_sorting(table)
    assert [p.split(" ")[1] for p in problems] == ["1", "2", "3"]
    assert "820.0–900.0 nm" in problems[2]


@pytest.mark.parametrize(
    "row, match",
    [((500, 400, None), "start_nm <= stop_nm"), ((400, 500, 400.0), "LongPassFilter"), ((-1, 500, None), "0 <")],
)
def test_order_sorting_rejects_malformed_rows(row, match):
    with pytest.raises(ValueError, match=match):
        E.check_order_sorting([row])


@settings(max_examples=100, deadline=None)
@given(st.floats(300.0, 1500.0), st.floats(0.02, 0.12), st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_order_sorting_agrees_with_pointwise_rule(cut_on, edge_fraction, u, v):
    # a row is reported clean exactly when, on its 0.1 nm grid, leak ≤ 0.1 % and first order ≥ 90 % of peak
    a, b = sorted((200 + 2500 * u, 200 + 2500 * v))
    edge = edge_fraction * cut_on
    clean = E.check_order_sorting([(a, b, E.LongPassFilter(cut_on, edge))]) == []
    lam = np.linspace(a, b, max(2, int(np.ceil((b - a) / 0.1)) + 1))
    leak = _logistic_T(lam / 2, cut_on, edge) / _logistic_T(lam, cut_on, edge)
    first = _logistic_T(lam, cut_on, edge) / 0.9
    assert clean == bool(leak.max() <= 1e-3 and first.min() >= 0.9)
