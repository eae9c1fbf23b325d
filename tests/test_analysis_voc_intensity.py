"""Light-intensity Voc analysis (methods ref. §4.1–§4.3; reference cases V1, V2).

Expected values are independent of the code under test: the §9 V1/V2 numbers (tests/data/voc_intensity_V1_V2.json),
Voc ladders solved here with scipy's brentq from the three-diode model's published saturation currents, and
hand-built ladders Voc = Voc1 + n·Vt·ln Φ whose slope is n by construction.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.constants import Boltzmann, elementary_charge
from scipy.optimize import brentq
from scipy.stats import theilslopes

from labctl.analysis import voc_intensity as vi

REF = json.loads((Path(__file__).parent / "data" / "voc_intensity_V1_V2.json").read_text())
T_K = REF["T_K"]
VT = Boltzmann * T_K / elementary_charge  # V
JSC, AREA = REF["jsc_A_cm2"], REF["area_cm2"]
STEP_DECADES = 0.1  # the ladder: 1 sun down to 1e-7 sun in 0.1-decade steps (71 points)
LOG10_X = np.round(np.arange(0.0, -7.0 - 1e-9, -STEP_DECADES), 10)
X = 10.0**LOG10_X


def _voc_three_diode(x_suns: float, meter_offset_A: float = 0.0) -> float:
    """Voc (V) of the methods' §4.3 three-diode cell at x_suns, read by a meter drawing ``meter_offset_A``."""
    def f(v: float) -> float:
        rec = sum(j0 * math.expm1(v / (n * VT)) for j0, n in zip(REF["J0_A_cm2"], REF["ideality"], strict=True))
        return rec + meter_offset_A / AREA - x_suns * JSC
    return brentq(f, -1.0, 2.0, xtol=1e-15)


V1_VOC = np.array([_voc_three_diode(x) for x in X])


def _line(phi: np.ndarray, n: float, voc1: float = 1.17) -> np.ndarray:
    """Hand-built ladder: Voc = voc1 + n·Vt·ln Φ (V), slope n·Vt by construction."""
    return voc1 + n * VT * np.log(phi)


# --- V1 -------------------------------------------------------------------------------------------
def test_v1_ladder_reproduces_the_reference_voc_per_decade() -> None:
    """The test's own ladder is the methods' model: Voc at each decade within the V1 tolerance (0.5 mV)."""
    for key, voc in REF["V1_voc_by_decade_V"].items():
        assert _voc_three_diode(float(key)) == pytest.approx(voc, abs=REF["V1_voc_tol_V"])


@pytest.mark.parametrize("case", REF["V1_n_fit"], ids=lambda c: f"{c['window_suns'][0]:.2g}-{c['window_suns'][1]:.2g}")
def test_v1_global_fits_over_the_declared_windows(case: dict) -> None:
    fit = vi.fit_ideality(X, V1_VOC, window_suns=tuple(case["window_suns"]), temperature_K=T_K)
    assert fit.n == pytest.approx(case["n"], abs=REF["V1_n_tol"])
    assert fit.phi_min_suns == pytest.approx(case["window_suns"][0])
    assert fit.phi_max_suns == pytest.approx(case["window_suns"][1])
    assert 0 < fit.n_stderr < 0.05  # the ladder is curved, so not zero, but the window is nearly straight


def test_v1_segmentation_finds_the_three_regimes_in_order() -> None:
    """n → 1 at high intensity, ≈ 2 mid-range, > 2 at low intensity (methods ref. §4.3), crossovers near G12, G24."""
    regimes = vi.segment_regimes(X, V1_VOC, temperature_K=T_K)
    assert [r.label for r in regimes] == ["n≈1", "n≈2", "n>2"]
    assert regimes[0].phi_max_suns == pytest.approx(1.0)
    assert regimes[-1].phi_min_suns == pytest.approx(1e-7)
    assert sum(r.points for r in regimes) == X.size
    assert 1.0 <= regimes[0].n < 1.5 and 1.5 <= regimes[1].n < 2.5 and regimes[2].n >= 2.5
    # the boundaries lie within half a decade of the crossover intensities 10^-1.5 and 10^-4.5 sun
    for upper, lower, log10_g in ((regimes[0], regimes[1], -1.5), (regimes[1], regimes[2], -4.5)):
        boundary = 0.5 * (math.log10(upper.phi_min_suns) + math.log10(lower.phi_max_suns))
        assert abs(boundary - log10_g) <= 0.5
    # the mid regime's robust n is the n = 2 plateau (V1 fit over [10^-3.5, 10^-2.5]: 2.021)
    assert regimes[1].n_low <= 2.021 <= regimes[1].n_high


def test_v1_segmentation_survives_voc_noise() -> None:
    """2 mV of Voc noise (larger than a 2450's reading noise at these levels) does not split or lose a regime."""
    rng = np.random.default_rng(9)
    for _ in range(10):
        noisy = V1_VOC + rng.normal(0.0, 2e-3, V1_VOC.size)
        assert [r.label for r in vi.segment_regimes(X, noisy, temperature_K=T_K)] == ["n≈1", "n≈2", "n>2"]


def test_regime_n_is_fitted_away_from_the_crossover() -> None:
    """Two diodes (n = 1, 2) carrying equal current at 10^-3.5 sun: the local n moves harmonically between the
    plateaus (methods ref. §4.1), so a fit over a whole regime is dragged towards the other one. The regime's n,
    fitted on the points half a window or more from the neighbouring regime, is nearer its plateau than the
    Theil–Sen slope (scipy.stats.theilslopes) over all of the regime's points."""
    g, v_star = 10**-3.5, 0.6
    j01, j02 = (g * JSC / 2) / math.exp(v_star / VT), (g * JSC / 2) / math.exp(v_star / (2 * VT))
    voc = np.array([brentq(lambda v, x=x: j01 * math.exp(v / VT) + j02 * math.exp(v / (2 * VT)) - x * JSC,
                           0.0, 2.0, xtol=1e-15) for x in X])
    regimes = vi.segment_regimes(X, voc, temperature_K=T_K)
    assert [r.label for r in regimes] == ["n≈1", "n≈2"]
    for r, plateau in zip(regimes, (1.0, 2.0), strict=True):
        inside = (X >= r.phi_min_suns) & (X <= r.phi_max_suns)
        n_all = theilslopes(voc[inside], np.log(X[inside])).slope / VT
        assert abs(r.n - plateau) < abs(n_all - plateau)


# --- V2: meter offset -----------------------------------------------------------------------------
V2 = REF["V2"]
V2_VOC = np.array([_voc_three_diode(x, V2["meter_offset_A"]) for x in X])
IGEN_A = X * JSC * AREA  # photogenerated current of the 0.049 cm² aperture (A); 89.7 pA at 1e-7 sun


def test_v2_ladder_reproduces_the_reference_offset_reading() -> None:
    assert V2_VOC[-1] == pytest.approx(V2["voc_V"], abs=V2["tol_V"])
    assert V1_VOC[-1] == pytest.approx(V2["voc_unbiased_V"], abs=REF["V1_voc_tol_V"])


def test_v2_offset_limited_low_intensity_point_is_flagged_and_excluded() -> None:
    flagged = vi.instrument_limited(X, V2_VOC, IGEN_A, meter_offset_A=V2["meter_offset_A"], temperature_K=T_K)
    order = np.argsort(X)  # the functions return points in increasing Φ
    assert flagged[0]  # 1e-7 sun: 10 pA of 89.7 pA
    assert not flagged[X[order] >= 1e-5].any()  # 10 pA of ≥ 9 nA: far below 0.5 mV of bias
    # the flagged points are exactly those whose true bias (V1 − V2 Voc) exceeds 0.5 mV, up to one neighbour
    true_bias = (V1_VOC - V2_VOC)[order]
    disagree = np.flatnonzero(flagged != (true_bias > vi.MAX_VOC_BIAS_V))
    assert disagree.size <= 1
    res = vi.analyse_voc_intensity(X, V2_VOC, IGEN_A, meter_offset_A=V2["meter_offset_A"], temperature_K=T_K)
    assert 1e-7 in res["instrument_limited_points"]
    assert min(r["phi_min_suns"] for r in res["regimes"]) > 1e-7
    assert res["dynamic_range_dB"] == pytest.approx(10 * math.log10(1.0 / min(X[order][~flagged])))


def test_v2_bias_estimate_is_close_to_the_true_drop() -> None:
    """At 1e-7 sun the +10 pA offset lowers Voc by 10.3 mV (0.2027 → 0.1924 V); the first-order estimate is near it."""
    bias = vi.instrument_voc_bias_V(X, V2_VOC, IGEN_A, meter_offset_A=V2["meter_offset_A"], temperature_K=T_K)
    assert bias[0] == pytest.approx(V2["voc_unbiased_V"] - V2["voc_V"], rel=0.2)


def test_bias_hand_calculation_offset_and_input_resistance() -> None:
    """n = 1 ladder, Igen = 100 pA, |offset| 10 pA: bias = Vt·ln(100/90); with R_in the leak adds Voc/R_in."""
    phi = np.logspace(-3, 0, 31)
    voc = _line(phi, 1.0, voc1=0.6)
    igen = np.full(phi.size, 100e-12)
    bias = vi.instrument_voc_bias_V(phi, voc, igen, meter_offset_A=-10e-12, temperature_K=T_K)
    np.testing.assert_allclose(bias, VT * math.log(100 / 90), rtol=1e-9)
    bias_r = vi.instrument_voc_bias_V(phi, voc, igen, meter_input_resistance_ohm=1e10, temperature_K=T_K)
    np.testing.assert_allclose(bias_r, VT * np.log(100e-12 / (100e-12 - voc / 1e10)), rtol=1e-9)


def test_meaningless_and_negative_readings_are_flagged() -> None:
    phi = np.logspace(-2, 0, 5)
    voc = _line(phi, 1.0, voc1=0.05)  # 0.05 V at 1 sun, negative below exp(−0.05/Vt) = 0.143 sun
    igen = np.array([5e-12, 1e-9, 1e-9, 1e-9, 1e-9])  # the lowest: 5 pA against a 10 pA offset
    bias = vi.instrument_voc_bias_V(phi, voc, igen, meter_offset_A=10e-12, temperature_K=T_K)
    assert math.isinf(bias[0])
    flagged = vi.instrument_limited(phi, voc, igen, meter_offset_A=10e-12, temperature_K=T_K)
    assert flagged.tolist() == [True, True, True, False, False]  # inf bias, two Voc ≤ 0, two good


def test_results_are_json_with_nothing_usable() -> None:
    """Every point flagged: no fit, no regime, None rather than NaN (a run file is strict JSON)."""
    phi = np.logspace(-3, 0, 4)
    res = vi.analyse_voc_intensity(phi, -0.01 * np.ones(4), phi * 1e-9, temperature_K=T_K)
    assert res["n_global"] is None and res["regimes"] == [] and res["dynamic_range_dB"] is None
    assert res["instrument_limited_points"] == pytest.approx(phi.tolist())
    json.dumps(res, allow_nan=False)
    full = vi.analyse_voc_intensity(X, V2_VOC, IGEN_A, meter_offset_A=V2["meter_offset_A"], temperature_K=T_K)
    json.dumps(full, allow_nan=False)
    assert set(full["regimes"][0]) >= {"phi_min_suns", "phi_max_suns", "n"}


# --- hand-calculated ladders ----------------------------------------------------------------------
def test_pure_n15_diode_gives_15_exactly() -> None:
    phi = np.logspace(-6, 0, 61)
    fit = vi.fit_ideality(phi, _line(phi, 1.5), temperature_K=T_K)
    assert fit.n == pytest.approx(1.5, abs=1e-12)
    assert fit.n_stderr == pytest.approx(0.0, abs=1e-12)
    assert fit.voc_at_1_V == pytest.approx(1.17, abs=1e-12)
    _, n = vi.local_ideality(phi, _line(phi, 1.5), temperature_K=T_K)
    np.testing.assert_allclose(n, 1.5, atol=1e-12)


def test_per_decade_step_from_the_methods_table() -> None:
    """ΔVoc per decade = n × 59.159 mV at 298.15 K (methods ref. §0, §4.1): 88.7385 mV/decade is n = 1.5."""
    phi = 10.0 ** -np.arange(8.0)
    voc = 1.2 - 1.5 * 59.159e-3 * np.arange(8.0)
    assert vi.fit_ideality(phi, voc, temperature_K=298.15).n == pytest.approx(1.5, abs=2e-5)


def test_two_points_have_no_standard_error_and_one_point_no_fit() -> None:
    two = vi.fit_ideality([0.1, 1.0], [1.0, 1.1], temperature_K=T_K)
    assert two.n == pytest.approx(0.1 / (VT * math.log(10)))
    assert math.isnan(two.n_stderr) and two.to_dict()["n_stderr"] is None
    one = vi.fit_ideality([0.1, 1.0], [1.0, 1.1], window_suns=(0.5, 2.0), temperature_K=T_K)
    assert math.isnan(one.n) and one.points == 1


def test_noisy_ladder_stderr_covers_the_truth() -> None:
    """Voc noise σ = 1 mV on 15 points: n within 1 stderr in ~68 % of 400 ladders, within 3 in all; the stderr
    matches the textbook σ/(Vt·√Sxx)."""
    rng = np.random.default_rng(20261201)
    phi = np.logspace(-7, 0, 15)
    sigma = 1e-3
    expected_se = sigma / (VT * math.sqrt(np.sum((np.log(phi) - np.log(phi).mean()) ** 2)))
    within1, ses = 0, []
    for _ in range(400):
        fit = vi.fit_ideality(phi, _line(phi, 1.5) + rng.normal(0, sigma, phi.size), temperature_K=T_K)
        within1 += abs(fit.n - 1.5) <= fit.n_stderr
        assert abs(fit.n - 1.5) <= 5 * fit.n_stderr
        ses.append(fit.n_stderr)
    assert 0.58 <= within1 / 400 <= 0.78
    assert np.mean(ses) == pytest.approx(expected_se, rel=0.1)


def test_local_ideality_ignores_one_outlier() -> None:
    """Theil–Sen in the 1-decade window: a 50 mV glitch on one point leaves every local n at exactly 1.5."""
    phi = 10.0 ** np.arange(-4.0, 0.01, 0.1)
    voc = _line(phi, 1.5)
    voc[20] += 0.05
    _, n = vi.local_ideality(phi, voc, temperature_K=T_K)
    np.testing.assert_allclose(n, 1.5, atol=1e-9)
    neighbour_n = np.diff(voc) / np.diff(np.log(phi)) / VT  # the plain neighbour difference is thrown by it
    assert np.max(np.abs(neighbour_n - 1.5)) > 5


def test_excluded_points_are_not_fitted() -> None:
    phi = np.logspace(-4, 0, 9)
    voc = _line(phi, 2.0)
    voc[0] -= 0.1
    exclude = np.zeros(9, dtype=bool)
    exclude[0] = True
    assert vi.fit_ideality(phi, voc, exclude=exclude, temperature_K=T_K).n == pytest.approx(2.0, abs=1e-12)
    _, n = vi.local_ideality(phi, voc, exclude=exclude, temperature_K=T_K)
    assert math.isnan(n[0]) and np.allclose(n[1:], 2.0, atol=1e-12)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"phi_suns": [0.0, 1.0], "voc_V": [0.5, 0.6]}, "phi_suns"),
    ({"phi_suns": [0.1, 1.0], "voc_V": [0.5]}, "same length"),
])
def test_bad_input_names_the_argument(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        vi.fit_ideality(**kwargs)


# --- properties -----------------------------------------------------------------------------------
def _piecewise(ns: list[float], lengths: list[float]) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Continuous piecewise-linear Voc(ln Φ) from 1 sun down: regime k has slope ns[k]·Vt over lengths[k] decades.
    Returns Φ (0.1-decade steps), Voc and the log10 Φ of the kinks."""
    log10_phi = np.round(np.arange(0.0, -sum(lengths) - 1e-9, -STEP_DECADES), 10)
    kinks = list(-np.cumsum(lengths)[:-1])
    voc = np.full(log10_phi.size, 1.2)
    for k, n in enumerate(ns):
        top = -sum(lengths[:k])
        bottom = -sum(lengths[:k + 1])
        span = np.clip(log10_phi, bottom, top) - top  # ≤ 0: how far into regime k
        voc += n * VT * math.log(10) * span
    return 10.0**log10_phi, voc, kinks


n_by_class = st.tuples(st.floats(0.9, 1.3), st.floats(1.7, 2.3), st.floats(2.8, 4.5))
lengths = st.lists(st.sampled_from([2.0, 2.5, 3.0]), min_size=3, max_size=3)


@settings(max_examples=40, deadline=None)
@given(ns=n_by_class, lens=lengths, order=st.permutations([0, 1, 2]))
def test_segmentation_finds_the_configured_regimes(ns: tuple[float, float, float], lens: list[float],
                                                   order: list[int]) -> None:
    """Any ordering of one n from each class (methods ref. §4.1 flag: the ordering is configurable)."""
    n_cfg = [ns[i] for i in order]
    phi, voc, kinks = _piecewise(n_cfg, lens)
    regimes = vi.segment_regimes(phi, voc, temperature_K=T_K)
    assert [r.label for r in regimes] == [vi.REGIME_LABELS[i] for i in order]
    for r, n in zip(regimes, n_cfg, strict=True):
        assert r.n == pytest.approx(n, abs=1e-9)
        assert r.n_low <= n + 1e-9 and r.n_high >= n - 1e-9
    for upper, lower, kink in zip(regimes[:-1], regimes[1:], kinks, strict=True):
        boundary = 0.5 * (math.log10(upper.phi_min_suns) + math.log10(lower.phi_max_suns))
        assert abs(boundary - kink) <= 0.5 + 1e-9


V1_BASE = (vi.fit_ideality(X, V1_VOC, window_suns=(10**-3.5, 10**-2.5), temperature_K=T_K),
           vi.local_ideality(X, V1_VOC, temperature_K=T_K)[1],
           [(r.label, r.points) for r in vi.segment_regimes(X, V1_VOC, temperature_K=T_K)])


@settings(max_examples=25, deadline=None)
@given(scale=st.floats(1e-6, 1e6), shift=st.floats(-0.5, 0.5))
def test_scaling_intensity_or_shifting_voc_leaves_n_unchanged(scale: float, shift: float) -> None:
    """Φ in another unit (photons cm⁻² s⁻¹ instead of suns) or a constant Voc offset does not change any n."""
    base_fit, n0, labels0 = V1_BASE
    fit = vi.fit_ideality(X * scale, V1_VOC + shift, window_suns=(10**-3.5 * scale, 10**-2.5 * scale),
                          temperature_K=T_K)
    assert fit.n == pytest.approx(base_fit.n, rel=1e-7)
    assert fit.n_stderr == pytest.approx(base_fit.n_stderr, rel=1e-5)
    _, n1 = vi.local_ideality(X * scale, V1_VOC + shift, temperature_K=T_K)
    np.testing.assert_allclose(n1, n0, rtol=1e-7)
    labels1 = [(r.label, r.points) for r in vi.segment_regimes(X * scale, V1_VOC + shift, temperature_K=T_K)]
    assert labels1 == labels0


@settings(max_examples=10, deadline=None)
@given(perm=st.permutations(list(range(X.size))))
def test_point_order_does_not_matter(perm: list[int]) -> None:
    p = np.array(perm)
    a = vi.analyse_voc_intensity(X, V2_VOC, IGEN_A, meter_offset_A=V2["meter_offset_A"], temperature_K=T_K)
    b = vi.analyse_voc_intensity(X[p], V2_VOC[p], IGEN_A[p], meter_offset_A=V2["meter_offset_A"],
                                 temperature_K=T_K)
    assert b == a
