"""Hysteresis indices (Methods ref. §1.5; reference case J5 with the ion-lag model of §1.7)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from labctl.analysis import sdm
from labctl.analysis.hysteresis import HI_KEYS, hysteresis_indices, hysteresis_type
from labctl.analysis.sdm import IonLagParams, SDMParams

REF = json.loads((Path(__file__).parent / "data" / "reference_cases.json").read_text())
J5 = REF["J5_ion_lag_set_A"]
_A = REF["J1_J2_sdm_sets"]["A"]["params"]
SET_A = SDMParams(_A["Jph"], _A["J0"], _A["n"], _A["Rs"], _A["Rsh"], _A["T"])
RS_V = sdm.staircase_voltages_V(1.3, -0.1, 0.01)
FS_V = sdm.staircase_voltages_V(-0.1, 1.3, 0.01)


def _j5_scans(rate_V_s: float) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    res = sdm.simulate_staircase(
        SET_A, np.concatenate([RS_V, FS_V]), 0.01 / rate_V_s, 1.3, IonLagParams(**J5["ion"])
    )
    j_mA = 1e3 * res.j_A_cm2
    return (RS_V, j_mA[: RS_V.size]), (FS_V, j_mA[RS_V.size :])


@pytest.fixture(scope="module")
def scans_01() -> tuple:
    return _j5_scans(0.1)


@pytest.mark.parametrize("rate", ["0.01", "0.1", "1.0"])
def test_j5_hi_pce(rate: str) -> None:
    rev, fwd = _j5_scans(float(rate))
    hi = hysteresis_indices(rev, fwd, mpp_method="discrete")  # J5 uses the discrete staircase maximum
    assert hi["hi_pce"] == pytest.approx(J5["table_rounded"][rate]["HI_PCE"], abs=J5["hi_tol"])
    assert hi["hi_pce"] == pytest.approx(J5["by_rate_V_s"][rate]["HI_PCE"], abs=1e-9)
    # the ASTM-fit MPP shifts the index by up to ~2.5e-4 on this 10 mV grid: that is why J5 fixes the method
    fitted = hysteresis_indices(rev, fwd)
    assert fitted["hi_pce"] == pytest.approx(hi["hi_pce"], abs=5e-4)


def test_j5_worked_indices_at_0p1_V_s(scans_01: tuple) -> None:
    table = J5["table_rounded"]["0.1"]
    hi = hysteresis_indices(*scans_01, mpp_method="discrete")
    assert hi["hi_j08"] == pytest.approx(table["HI_J08"], abs=J5["hi_tol"])
    # the worked HI_area (0.0442) integrates from the scan start; the definition (from 0 V) gives more
    from_start = hysteresis_indices(*scans_01, v_lower_V=-0.1)
    assert from_start["hi_area"] == pytest.approx(table["HI_area"], abs=J5["hi_tol"])
    assert hi["hi_area"] == pytest.approx(0.0482, abs=J5["hi_tol"])
    assert abs(hi["hi_area"] - table["HI_area"]) > 10 * J5["hi_tol"]
    # normal hysteresis everywhere: magnitude, signed value and area between the curves agree
    assert hi["hi_area"] == hi["hi_area_signed"]
    assert hi["hi_area_between"] == pytest.approx(hi["hi_area_signed"], abs=1e-12)
    assert hysteresis_type(hi) == "normal"


def test_pce_mean_variant(scans_01: tuple) -> None:
    hi = hysteresis_indices(*scans_01)
    h = hi["hi_pce"]
    assert hi["hi_pce_mean"] == pytest.approx(2 * h / (2 - h), rel=1e-12)


def test_swapping_scans_flips_the_signs(scans_01: tuple) -> None:
    rev, fwd = scans_01
    hi = hysteresis_indices(rev, fwd)
    sw = hysteresis_indices(fwd, rev)
    assert hi["hi_pce"] > 0 and sw["hi_pce"] < 0
    assert sw["hi_pce"] == pytest.approx(-hi["hi_pce"] / (1 - hi["hi_pce"]), rel=1e-12)
    assert sw["hi_pce_mean"] == pytest.approx(-hi["hi_pce_mean"], rel=1e-12)
    assert hi["hi_area_signed"] > 0 and sw["hi_area_signed"] < 0
    assert sw["hi_area"] == -sw["hi_area_signed"]
    # the same area difference and area between the curves, normalised by the other curve's area
    assert sw["hi_area"] == pytest.approx(hi["hi_area"] / (1 - hi["hi_area_signed"]), rel=1e-12)
    assert sw["hi_area_between"] == pytest.approx(hi["hi_area_between"] / (1 - hi["hi_area_signed"]), rel=1e-12)
    assert hysteresis_type(sw) == "inverted"
    assert sw["hi_j08"] != hi["hi_j08"]  # J(0.8·Voc) is taken at the (new) reverse scan's Voc


def test_areas_are_exact_for_straight_lines() -> None:
    """RS: J = 20·(1 − V/1.0), FS: J = 20·(1 − V/0.8): areas 10 and 8 mA·V/cm², area between them 2."""
    v = np.linspace(-0.1, 1.2, 14)  # 0.1 V grid: neither Voc of the FS line nor 0.8·Voc is a knot
    hi = hysteresis_indices((v, 20 * (1 - v / 1.0)), (v, 20 * (1 - v / 0.8)), mpp_method="discrete")
    assert hi["hi_area_signed"] == pytest.approx(0.2, rel=1e-12)
    assert hi["hi_area"] == pytest.approx(0.2, rel=1e-12)
    assert hi["hi_area_between"] == pytest.approx(0.2, rel=1e-12)
    assert hi["hi_j08"] == pytest.approx(1 - (1 - 0.8 / 0.8) / (1 - 0.8), abs=1e-12)


def test_crossing_curves_are_mixed() -> None:
    """Higher Jsc but lower Voc in the forward scan: the curves cross; the signed area partly cancels."""
    v = FS_V
    rev = (v, 1e3 * SET_A.current_density_A_cm2(v))
    other = SDMParams(
        SET_A.jph_A_cm2 * 1.05, SET_A.j0_A_cm2 * 8, SET_A.ideality, SET_A.rs_ohm_cm2, SET_A.rsh_ohm_cm2
    )
    hi = hysteresis_indices(rev, (v, 1e3 * other.current_density_A_cm2(v)))
    assert hi["hi_area_between"] > abs(hi["hi_area_signed"]) + 1e-3
    assert hi["hi_area"] == abs(hi["hi_area_signed"])
    assert hysteresis_type(hi) == "mixed"


# piecewise-linear scans on a 0.1 V grid: the trapezoid areas below are exact, computed by hand
HAND_V = np.round(np.linspace(-0.1, 1.2, 14), 12)
HAND_RS = 20.0 * (1.0 - HAND_V)  # Voc 1.0 V; A_RS = ½·20·1.0 = 10 mA·V/cm²


def _piecewise(knots_v: list[float], knots_j: list[float]) -> np.ndarray:
    """The forward scan through (V, J) knots, sampled on HAND_V (all knots are grid points)."""
    return np.interp(HAND_V, knots_v, knots_j, left=np.nan, right=np.nan)


def test_area_indices_of_crossing_curves_by_hand() -> None:
    """FS: 22 → 8 mA/cm² over 0–0.5 V, then 8 → 0 at 0.9 V (and on with the same slope); it crosses the RS line
    at 0.25 V (J = 15).

    A_FS = (22 + 8)/2·0.5 + 8/2·0.4 = 7.5 + 1.6 = 9.1, so HI_area = |10 − 9.1|/10 = 0.09 (signed +0.09).
    Area between: 0–0.25 V: FS above by 2 → 0, triangle ½·0.25·2 = 0.25; 0.25–0.5 V: RS above, 0 → 2,
    0.25; 0.5–0.9 V: RS above by 2 throughout, 0.8; 0.9–1.0 V: RS alone, 2 → 0, 0.1. Total 1.4 → 0.14.
    """
    fs = _piecewise([-0.1, 0.0, 0.5, 0.9, 1.2], [24.8, 22.0, 8.0, 0.0, -6.0])
    hi = hysteresis_indices((HAND_V, HAND_RS), (HAND_V, fs), mpp_method="discrete")
    assert hi["hi_area_signed"] == pytest.approx(0.09, rel=1e-12)
    assert hi["hi_area"] == pytest.approx(0.09, rel=1e-12)
    assert hi["hi_area_between"] == pytest.approx(0.14, rel=1e-12)
    assert hysteresis_type(hi) == "mixed"


def test_crossing_curves_with_equal_areas_by_hand() -> None:
    """FS: 24 → 8 over 0–0.5 V, 8 → 0 at 1.0 V: A_FS = 8 + 2 = 10 = A_RS, so HI_area = HI_signed = 0, but the
    curves cross at V = 1/3 (J = 13.33): between = ½·(1/3)·4 + ½·(1/6)·2 + ½·0.5·2 = 2/3 + 1/6 + 1/2 = 4/3."""
    fs = _piecewise([-0.1, 0.0, 0.5, 1.0, 1.2], [27.2, 24.0, 8.0, 0.0, -3.2])
    hi = hysteresis_indices((HAND_V, HAND_RS), (HAND_V, fs), mpp_method="discrete")
    assert hi["hi_area"] == pytest.approx(0.0, abs=1e-12)
    assert hi["hi_area_signed"] == pytest.approx(0.0, abs=1e-12)
    assert hi["hi_area_between"] == pytest.approx(0.4 / 3, rel=1e-12)
    assert hysteresis_type(hi) == "mixed"


def test_forward_scan_without_power() -> None:
    rev = (FS_V, 1e3 * SET_A.current_density_A_cm2(FS_V))
    dark = SDMParams(0.0, SET_A.j0_A_cm2, SET_A.ideality, SET_A.rs_ohm_cm2, SET_A.rsh_ohm_cm2)
    hi = hysteresis_indices(rev, (FS_V, 1e3 * dark.current_density_A_cm2(FS_V)))
    assert hi["hi_pce"] == 1.0 and hi["hi_pce_mean"] == 2.0
    assert hi["hi_area"] == pytest.approx(1.0) and hi["hi_area_signed"] == pytest.approx(1.0)
    assert hi["hi_area_between"] == pytest.approx(1.0)


def test_invalid_reverse_scan_gives_nan_not_exception() -> None:
    dark = SDMParams(0.0, SET_A.j0_A_cm2, SET_A.ideality, SET_A.rs_ohm_cm2, SET_A.rsh_ohm_cm2)
    fwd = (FS_V, 1e3 * SET_A.current_density_A_cm2(FS_V))
    hi = hysteresis_indices((FS_V, 1e3 * dark.current_density_A_cm2(FS_V)), fwd)
    assert set(hi) == set(HI_KEYS)
    assert all(math.isnan(x) for x in hi.values())
    assert hysteresis_type(hi) == "undefined"


def test_forward_scan_stopping_below_voc_leaves_area_undefined() -> None:
    rev = (FS_V, 1e3 * SET_A.current_density_A_cm2(FS_V))
    short = FS_V <= 1.0
    hi = hysteresis_indices(rev, (FS_V[short], rev[1][short]))
    assert math.isnan(hi["hi_area"]) and math.isnan(hi["hi_area_between"]) and math.isnan(hi["hi_pce"])
    assert hi["hi_j08"] == pytest.approx(0.0, abs=1e-12)  # 0.8·Voc = 0.936 V is still inside the scan


cells = st.builds(
    SDMParams,
    jph_A_cm2=st.floats(2e-3, 4e-2),
    j0_A_cm2=st.floats(-20, -8).map(lambda e: 10.0**e),
    ideality=st.floats(1.0, 2.0),
    rs_ohm_cm2=st.floats(0.0, 10.0),
    rsh_ohm_cm2=st.floats(200.0, 1e5),
)


@settings(max_examples=40, deadline=None)
@given(params=cells, seed=st.integers(0, 2**16))
def test_identical_curves_give_zero(params: SDMParams, seed: int) -> None:
    voc = params.open_circuit_voltage_V()
    v = np.linspace(-0.1, 1.1 * voc, 161)
    j = 1e3 * params.current_density_A_cm2(v)
    order = np.random.default_rng(seed).permutation(v.size)  # the forward scan in another point order
    hi = hysteresis_indices((v, j), (v[order], j[order]))
    for key in HI_KEYS:
        assert hi[key] == pytest.approx(0.0, abs=1e-12), key
    assert hysteresis_type(hi) == "none"


@settings(max_examples=30, deadline=None)
@given(params=cells, loss=st.floats(0.02, 0.3))
def test_lower_forward_scan_is_normal_hysteresis(params: SDMParams, loss: float) -> None:
    """A forward scan with uniformly lower photocurrent gives positive indices and sign flips when swapped."""
    voc = params.open_circuit_voltage_V()
    v = np.linspace(-0.1, 1.1 * voc, 161)
    low = SDMParams(
        params.jph_A_cm2 * (1 - loss), params.j0_A_cm2, params.ideality, params.rs_ohm_cm2, params.rsh_ohm_cm2
    )
    rev, fwd = (v, 1e3 * params.current_density_A_cm2(v)), (v, 1e3 * low.current_density_A_cm2(v))
    hi, sw = hysteresis_indices(rev, fwd), hysteresis_indices(fwd, rev)
    for key in ("hi_pce", "hi_pce_mean", "hi_j08", "hi_area_signed"):
        assert hi[key] > 0 > sw[key], key
    assert hi["hi_area"] == hi["hi_area_signed"] and sw["hi_area"] == -sw["hi_area_signed"]
    assert hi["hi_area_between"] == pytest.approx(hi["hi_area_signed"], rel=1e-9)


@settings(max_examples=40, deadline=None)
@given(params=cells, jph_scale=st.floats(0.8, 1.2), j0_scale=st.floats(-1.0, 1.5).map(lambda e: 10.0**e))
def test_area_indices_relations(params: SDMParams, jph_scale: float, j0_scale: float) -> None:
    """Any two diode curves (crossing or not): hi_area = |hi_area_signed| ≤ hi_area_between, whatever the
    point order, and swapping the scans rescales the area between the curves by A_RS/A_FS."""
    voc = params.open_circuit_voltage_V()
    v = np.linspace(-0.1, 1.1 * voc, 161)
    other = SDMParams(
        params.jph_A_cm2 * jph_scale, params.j0_A_cm2 * j0_scale, params.ideality, params.rs_ohm_cm2,
        params.rsh_ohm_cm2,
    )
    rev, fwd = (v, 1e3 * params.current_density_A_cm2(v)), (v, 1e3 * other.current_density_A_cm2(v))
    hi, sw = hysteresis_indices(rev, fwd), hysteresis_indices(fwd, rev)
    order = np.random.default_rng(0).permutation(v.size)
    shuffled = hysteresis_indices((v[order], rev[1][order]), (v[::-1], fwd[1][::-1]))
    assert shuffled == pytest.approx(hi, rel=1e-12, abs=1e-15, nan_ok=True)
    assume(np.isfinite(hi["hi_area_signed"]))
    assert hi["hi_area"] == abs(hi["hi_area_signed"])
    assert hi["hi_area_between"] >= hi["hi_area"] - 1e-12
    ratio = 1.0 - hi["hi_area_signed"]  # A_FS/A_RS
    assert sw["hi_area_between"] == pytest.approx(hi["hi_area_between"] / ratio, rel=1e-9)


# --- compliance (item 1) ---------------------------------------------------------------------------------
def _clamp(curve: tuple[np.ndarray, np.ndarray], limit: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    v, j = curve
    return v, np.clip(j, -limit, limit), np.abs(j) >= limit


def test_clamped_scans_give_nan_indices(scans_01: tuple) -> None:
    """Both scans clamped at 10 mA/cm² (a 1 cm² cell at 10 mA): without the mask the clamp reads as a
    hysteresis-free plateau; with it every index is NaN (MPP, 0.8·Voc and the areas lie in compliance)."""
    rev, fwd = (_clamp(c, 10.0) for c in scans_01)
    blind = hysteresis_indices(rev[:2], fwd[:2])
    assert abs(blind["hi_j08"]) < 1e-12  # both read the limit at 0.8·Voc
    hi = hysteresis_indices(rev, fwd)
    assert all(math.isnan(x) for x in hi.values()), hi
    assert hysteresis_type(hi) == "undefined"


def test_compliance_beyond_voc_changes_no_index(scans_01: tuple) -> None:
    rev, fwd = (_clamp(c, 20.0) for c in scans_01)
    assert rev[2].any() and fwd[2].any() and rev[0][rev[2]].min() > 1.2
    assert hysteresis_indices(rev, fwd) == pytest.approx(hysteresis_indices(*scans_01), rel=1e-12)


@settings(max_examples=20, deadline=None)
@given(params=cells)
def test_all_false_masks_equal_no_masks(params: SDMParams) -> None:
    voc = params.open_circuit_voltage_V()
    v = np.linspace(-0.1, 1.1 * voc, 161)
    low = SDMParams(params.jph_A_cm2 * 0.9, params.j0_A_cm2 * 3, params.ideality, params.rs_ohm_cm2,
                    params.rsh_ohm_cm2)
    rev, fwd = (v, 1e3 * params.current_density_A_cm2(v)), (v, 1e3 * low.current_density_A_cm2(v))
    none = np.zeros(v.size, dtype=bool)
    assert repr(hysteresis_indices((*rev, none), (*fwd, none))) == repr(hysteresis_indices(rev, fwd))
