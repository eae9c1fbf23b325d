"""J–V hysteresis indices from a reverse (Voc→Jsc) and a forward (Jsc→Voc) scan (Methods ref. §1.5).

Several definitions are in use; all are returned, labelled (fractions, not %). J in any consistent unit
(mA/cm² in labctl), photocurrent-positive; V in V. Positive values mean "normal" hysteresis (reverse scan
above forward scan)::

    hi_pce          = (PCE_RS − PCE_FS)/PCE_RS
    hi_pce_mean     = (PCE_RS − PCE_FS)/((PCE_RS + PCE_FS)/2)
    hi_j08          = (J_RS(0.8·Voc,RS) − J_FS(0.8·Voc,RS))/J_RS(0.8·Voc,RS)     (usually attributed to
                                                                                 Kim & Park, JPCL 2014)
    hi_area_signed  = (A_RS − A_FS)/A_RS,  A = ∫ max(J, 0) dV from 0 V to the curve's own Voc  (HI_signed)
    hi_area         = |A_RS − A_FS|/A_RS = |hi_area_signed|                                  (HI_area)
    hi_area_between = ∫ |J⁺_RS − J⁺_FS| dV / A_RS   (area between the curves, not in the methods reference:
                                                   ≥ |hi_area_signed|, equal when one scan lies above the
                                                   other everywhere, larger for crossing ("mixed") curves
                                                   whose area difference partly cancels)

Methods ref. §1.5 defines HI_area as the normalised difference of the two areas and HI_signed as "the same
but keeps the sign", so HI_area is read as its magnitude; the sign lives in ``hi_area_signed``.

The index depends on preconditioning, scan order, step, delay and rate: record them with the result.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from labctl.analysis.jv import MppMethod, figures_of_merit, prepare_masked_curve

#: (V, J) or (V, J, in_compliance): the source-meter's compliance flag per point, optional
Curve = tuple[ArrayLike, ArrayLike] | tuple[ArrayLike, ArrayLike, ArrayLike] | Sequence[ArrayLike]

HI_KEYS = ("hi_pce", "hi_pce_mean", "hi_j08", "hi_area", "hi_area_signed", "hi_area_between")


def _positive_part(
    v: NDArray[np.float64], j: NDArray[np.float64], voc_V: float, v_lower_V: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Knots (V, J⁺) of the piecewise-linear J ≥ 0 part on [v_lower, Voc]; J⁺ = 0 at Voc and beyond."""
    inside = (v > v_lower_V) & (v < voc_V)
    knots = np.concatenate(([v_lower_V], v[inside], [voc_V]))
    vals = np.interp(knots, v, j)
    vals[-1] = 0.0
    return knots, np.maximum(vals, 0.0)


def _trapezoid(x: NDArray[np.float64], y: NDArray[np.float64]) -> float:
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1])) / 2.0)


def _integral_abs(x: NDArray[np.float64], d: NDArray[np.float64]) -> float:
    """Exact ∫|d| dx for piecewise-linear d given at knots x (sign changes inside a segment handled)."""
    h = np.diff(x)
    d0, d1 = d[:-1], d[1:]
    same = d0 * d1 >= 0
    s = np.abs(d0) + np.abs(d1)
    with np.errstate(invalid="ignore", divide="ignore"):
        crossing = np.where(s > 0, (d0**2 + d1**2) / s, 0.0)
    return float(np.sum(h * np.where(same, s, crossing)) / 2.0)


def _clean(curve: Curve) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]]:
    v, j, c, _ = prepare_masked_curve(curve[0], curve[1], curve[2] if len(curve) > 2 else None)
    return v, j, c


def _interp_unclamped(v: NDArray[np.float64], j: NDArray[np.float64], c: NDArray[np.bool_], x: float) -> float:
    """J(x) by linear interpolation; NaN when a point at or bracketing x is in compliance."""
    k = int(np.searchsorted(v, x))
    lo = k - 1 if k == v.size or v[k] != x else k
    if any(c[i] for i in (lo, k) if 0 <= i < v.size):
        return float("nan")
    return float(np.interp(x, v, j))


def _clamped_in(v: NDArray[np.float64], c: NDArray[np.bool_], lo: float, hi: float) -> bool:
    return bool(np.any(c & (v >= lo) & (v <= hi)))


def hysteresis_indices(
    reverse: Curve, forward: Curve, mpp_method: MppMethod = "astm_e1036", v_lower_V: float = 0.0
) -> dict[str, float]:
    """Hysteresis indices (Methods ref. §1.5) of ``reverse = (V, J)`` and ``forward = (V, J)``.

    Each curve may carry a third array, the source-meter's per-point compliance flag: clamped readings are
    left out as in :func:`labctl.analysis.jv.figures_of_merit`, and an index is NaN when it would need one
    (the PCE ratios when an MPP is in compliance, hi_j08 when a point bracketing 0.8·Voc,RS is, the area
    indices when any point between ``v_lower_V`` and a curve's Voc is).

    ``v_lower_V`` is the lower limit of the area integrals (0 V by the definition). Note: the worked value
    HI_area = 0.0442 quoted in Methods ref. §1.5 (set A, 0.1 V/s) is reproduced only with the scan start,
    ``v_lower_V=-0.1`` (0.04420); from 0 V, as the formula there reads, the same curves give 0.0482.

    PCE ratios use Pmp from :func:`labctl.analysis.jv.figures_of_merit` with ``mpp_method`` (irradiance and
    mismatch cancel). J(0.8·Voc,RS) is linearly interpolated on each curve. Returns NaN for every index that
    cannot be formed (reverse scan without a valid Voc or Pmp, 0.8·Voc,RS outside the forward scan, …).
    """
    v_rs, j_rs, c_rs = _clean(reverse)
    v_fs, j_fs, c_fs = _clean(forward)
    fom_rs = figures_of_merit(v_rs, j_rs, mpp_method=mpp_method, compliance=c_rs, single_diode_fit=False)
    fom_fs = figures_of_merit(v_fs, j_fs, mpp_method=mpp_method, compliance=c_fs, single_diode_fit=False)
    out = dict.fromkeys(HI_KEYS, float("nan"))

    p_rs, p_fs = fom_rs.pmp_mW_cm2, fom_fs.pmp_mW_cm2
    if np.isfinite(p_rs) and p_rs > 0:
        no_power_fs = v_fs.size > 0 and bool(np.all(j_fs[v_fs >= 0] <= 0))
        p_fs_or_0 = p_fs if np.isfinite(p_fs) else (0.0 if no_power_fs else np.nan)
        out["hi_pce"] = (p_rs - p_fs_or_0) / p_rs
        out["hi_pce_mean"] = (p_rs - p_fs_or_0) / ((p_rs + p_fs_or_0) / 2.0)

    voc_rs = fom_rs.voc_V
    if not (np.isfinite(voc_rs) and voc_rs > 0):
        return out
    v08 = 0.8 * voc_rs
    if v_fs.size >= 2 and v_fs[0] <= v08 <= v_fs[-1]:
        j08_rs = _interp_unclamped(v_rs, j_rs, c_rs, v08)
        out["hi_j08"] = (j08_rs - _interp_unclamped(v_fs, j_fs, c_fs, v08)) / j08_rs

    if not (v_rs[0] <= v_lower_V and v_fs.size >= 2 and v_fs[0] <= v_lower_V < voc_rs):
        return out
    voc_fs = fom_fs.voc_V
    x_rs, y_rs = _positive_part(v_rs, j_rs, voc_rs, v_lower_V)
    if np.isfinite(voc_fs) and voc_fs > v_lower_V:
        x_fs, y_fs = _positive_part(v_fs, j_fs, voc_fs, v_lower_V)
    elif np.all(j_fs[v_fs >= 0] <= 0):  # forward scan gives no power at all
        x_fs, y_fs = np.array([v_lower_V, voc_rs]), np.zeros(2)
    else:  # forward scan positive but never reaches Voc: its area is unknown
        return out
    if _clamped_in(v_rs, c_rs, v_lower_V, x_rs[-1]) or _clamped_in(v_fs, c_fs, v_lower_V, x_fs[-1]):
        return out
    area_rs, area_fs = _trapezoid(x_rs, y_rs), _trapezoid(x_fs, y_fs)
    knots = np.union1d(x_rs, x_fs)
    diff = np.interp(knots, x_rs, y_rs, right=0.0) - np.interp(knots, x_fs, y_fs, right=0.0)
    out["hi_area_signed"] = (area_rs - area_fs) / area_rs
    out["hi_area"] = abs(area_rs - area_fs) / area_rs
    out["hi_area_between"] = _integral_abs(knots, diff) / area_rs
    return out


def hysteresis_type(indices: dict[str, float], tolerance: float = 1e-3) -> str:
    """Classify from :func:`hysteresis_indices`: "normal", "inverted", "mixed" (curves cross), "none" or
    "undefined". "none" when the area between the curves (``hi_area_between``) is at most ``tolerance``;
    "mixed" when it exceeds |``hi_area_signed``| by more than ``tolerance``; else the sign decides."""
    signed, between = indices.get("hi_area_signed", np.nan), indices.get("hi_area_between", np.nan)
    if not (np.isfinite(signed) and np.isfinite(between)):
        return "undefined"
    if between <= tolerance:
        return "none"
    if between - abs(signed) > tolerance:
        return "mixed"
    return "normal" if signed > 0 else "inverted"
