"""J–V figures of merit from sampled data (Methods ref. §1.1, §1.4).

Input convention: photocurrent-positive current density in mA/cm² (J > 0 in the power quadrant), voltage in V.
Points may come in any order, with duplicates and NaNs; a curve that does not cross J = 0 at V > 0 (dark
curve, scan stopped below Voc) gives NaN figures with a flag, never an exception.

Spectral-mismatch convention (IEC 60904-7 / ASTM E973; Methods ref. §2.1), with
M = [∫E_ref·S_R·∫E_sim·S_T]/[∫E_sim·S_R·∫E_ref·S_T]: the irradiance set with the reference cell is E_meas
(``irradiance_W_m2``), the device actually sees E_eff = M·E_meas. Current-like figures are therefore reported
for the reference spectrum at E_meas by dividing by M: Jsc, Jmp and Pmp are J/M (so M = 0.994 raises Jsc by
0.604 %), PCE = Pmp,meas/(M·E_meas). Voc, Vmp, FF, Rs and Rsh are as measured (the irradiance-only translation
moves Voc by n·Vt·ln(1/M) ≈ 0.2 mV for M = 0.994, which is neglected).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
from numpy.polynomial import Polynomial
from numpy.typing import ArrayLike, NDArray

MppMethod = Literal["astm_e1036", "discrete"]

# flags that make the headline figures NaN
FATAL_FLAGS = frozenset({"too_few_points", "voc_not_bracketed", "jsc_not_bracketed", "no_photocurrent"})

_FOM_KEYS = ("voc_V", "jsc_mA_cm2", "ff", "pce_pct", "vmp_V", "jmp_mA_cm2", "rs_ohm_cm2", "rsh_ohm_cm2")


@dataclass(frozen=True)
class JVFigures:
    """Figures of merit of one J–V curve. ``ff`` is a fraction; current-like values are mismatch-corrected.

    ``flags`` lists what went wrong or which fallback was used (:data:`FATAL_FLAGS` are those that make
    the headline figures NaN); ``valid`` is True when none of them is fatal.
    """

    voc_V: float
    jsc_mA_cm2: float
    ff: float
    pce_pct: float
    vmp_V: float
    jmp_mA_cm2: float
    pmp_mW_cm2: float
    rs_ohm_cm2: float
    rsh_ohm_cm2: float
    irradiance_W_m2: float
    mismatch: float
    mpp_method: str
    flags: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        """True when no fatal flag is set."""
        return not FATAL_FLAGS.intersection(self.flags)

    def to_dict(self) -> dict[str, float]:
        """The eight headline figures (voc_V, jsc_mA_cm2, ff, pce_pct, vmp_V, jmp_mA_cm2, rs_ohm_cm2,
        rsh_ohm_cm2)."""
        return {k: float(getattr(self, k)) for k in _FOM_KEYS}

    def to_full_dict(self) -> dict[str, object]:
        """All fields, including pmp_mW_cm2, the irradiance, M, the MPP method actually used and the flags."""
        d = asdict(self)
        d["flags"] = list(self.flags)
        d["valid"] = self.valid
        return d


def prepare_curve(
    voltage_V: ArrayLike, j: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64], list[str]]:
    """Clean a sampled curve: drop non-finite pairs, sort by V, average J over duplicate voltages.

    Returns (V, J, flags). The result does not depend on the order of the input points. Raises ValueError only
    for arrays of different shape (a programming error, not a data problem).
    """
    v = np.asarray(voltage_V, dtype=float).ravel()
    jj = np.asarray(j, dtype=float).ravel()
    if v.shape != jj.shape:
        raise ValueError(f"voltage and current arrays differ in length: {v.size} != {jj.size}")
    flags: list[str] = []
    finite = np.isfinite(v) & np.isfinite(jj)
    if not finite.all():
        flags.append("non_finite_dropped")
        v, jj = v[finite], jj[finite]
    order = np.lexsort((jj, v))  # by V, ties by J: identical output for any input order
    v, jj = v[order], jj[order]
    v_unique, start, counts = np.unique(v, return_index=True, return_counts=True)
    if v_unique.size < v.size:
        flags.append("duplicate_voltages_averaged")
        jj = np.add.reduceat(jj, start) / counts
        v = v_unique
    return v, jj, flags


def _line_fit(x: NDArray[np.float64], y: NDArray[np.float64]) -> tuple[float, float]:
    """Least-squares line y = a + b·x; returns (a, b). Centred for conditioning."""
    xm, ym = x.mean(), y.mean()
    dx = x - xm
    b = float(np.dot(dx, y - ym) / np.dot(dx, dx))
    return float(ym - b * xm), b


def _open_circuit_voltage_V(v: NDArray[np.float64], j: NDArray[np.float64]) -> tuple[float, list[str]]:
    """Voc (V) of a cleaned, V-sorted curve: the zero crossing of J at V > 0 (Methods ref. §1.1).

    The crossing must start from a point with V > 0 and J > 0, so a dark curve (J ≥ 0 only at V ≤ 0) has none.

    A single crossing is linearly interpolated between its two bracketing points (the definition used for the
    reference values). Several crossings (noise near Voc) are replaced by a line fit V(J) over all points
    spanning them plus one on each side, and flagged.
    """
    down = np.flatnonzero((j[:-1] > 0) & (j[1:] <= 0) & (v[:-1] > 0))
    if down.size == 0:
        return float("nan"), ["voc_not_bracketed"]
    first = int(down[0])
    later_up = np.flatnonzero((j[first + 1 : -1] <= 0) & (j[first + 2 :] > 0))
    if later_up.size == 0:
        k = first
        return float(v[k] + j[k] * (v[k + 1] - v[k]) / (j[k] - j[k + 1])), []
    last = int(down[-1])
    lo, hi = max(first - 1, 0), min(last + 3, v.size)
    a, _ = _line_fit(j[lo:hi], v[lo:hi])
    return a, ["multiple_voc_crossings"]


def _nearest(v: NDArray[np.float64], centre: float, count: int) -> NDArray[np.intp]:
    return np.sort(np.argsort(np.abs(v - centre), kind="stable")[:count])


def _short_circuit(v: NDArray[np.float64], j: NDArray[np.float64]) -> float:
    """Jsc: line fit J(V) over the ≤ 5 points nearest V = 0 within ±50 mV (else the 2 nearest), at V = 0."""
    idx = _nearest(v, 0.0, 5)
    close = idx[np.abs(v[idx]) <= 0.05]
    if close.size < 2:
        close = _nearest(v, 0.0, 2)
    if np.ptp(v[close]) == 0:
        return float(j[close[0]])
    a, _ = _line_fit(v[close], j[close])
    return a


def _slope_resistance_ohm_cm2(
    x_v: NDArray[np.float64], y_j_mA: NDArray[np.float64]
) -> tuple[float, list[str]]:
    """−dV/dJ in Ω·cm² from a line fit of J(V) (J in mA/cm²)."""
    if x_v.size < 2 or np.ptp(x_v) == 0:
        return float("nan"), ["slope_undefined"]
    _, b = _line_fit(x_v, y_j_mA)
    if b >= 0:
        return float("inf"), ["slope_non_negative"]
    return -1000.0 / b, []


ASTM_V_WINDOW = (0.75, 1.15)
ASTM_J_WINDOW = (0.75, 1.15)
DEFAULT_MPP_FIT_POINTS = 9
_MIN_FIT_POINTS = 6  # a quartic has 5 coefficients: keep at least one degree of freedom


def _mpp(
    v: NDArray[np.float64],
    j: NDArray[np.float64],
    voc: float,
    method: MppMethod,
    v_window: tuple[float, float],
    j_window: tuple[float, float],
    fit_points: int | None,
) -> tuple[float, float, list[str]]:
    """(Vmp, Pmp) in V and mW/cm² from the power quadrant 0 < V ≤ Voc, J > 0.

    ``"astm_e1036"``: ASTM E1036 — a 4th-order polynomial P(V) fitted to the points within
    ``v_window``·Vmp,est and ``j_window``·Jmp,est of the discrete maximum, maximised at a real root of dP/dV
    inside the fitted span (as ``pvlib.ivtools.utils.astm_e1036``), further limited to the ``fit_points``
    samples nearest the discrete maximum (None: no limit, identical to pvlib). Falls back to the discrete
    maximum, flagged, when fewer than 6 points remain, no maximum lies inside the span, or the fitted Pmp
    is more than 2 % off the discrete one.
    """
    quad = (v > 0) & (v <= voc) & (j > 0)
    if not quad.any():
        return float("nan"), float("nan"), ["no_power_quadrant"]
    vq, jq = v[quad], j[quad]
    p = vq * jq
    k = int(np.argmax(p))
    v_est, j_est, p_est = float(vq[k]), float(jq[k]), float(p[k])
    if method == "discrete":
        return v_est, p_est, []
    win = (
        (vq >= v_window[0] * v_est)
        & (vq <= v_window[1] * v_est)
        & (jq >= j_window[0] * j_est)
        & (jq <= j_window[1] * j_est)
    )
    if fit_points is not None:
        lo, hi = max(k - fit_points // 2, 0), min(k + fit_points // 2 + 1, vq.size)
        win[:lo] = False
        win[hi:] = False
    if win.sum() < _MIN_FIT_POINTS:
        return v_est, p_est, ["mpp_fit_fallback_discrete"]
    fit = Polynomial.fit(vq[win], p[win], 4)
    roots = fit.deriv().roots()
    roots = roots.real[np.abs(roots.imag) < 1e-9]
    roots = roots[(roots > vq[win].min()) & (roots < vq[win].max())]
    if roots.size:
        vmp = float(roots[np.argmax(fit(roots))])
        pmp = float(fit(vmp))
        if fit.deriv(2)(vmp) < 0 and abs(pmp - p_est) <= 0.02 * p_est:
            return vmp, pmp, []
    return v_est, p_est, ["mpp_fit_fallback_discrete"]


def figures_of_merit(
    voltage_V: ArrayLike,
    j_mA_cm2: ArrayLike,
    irradiance_W_m2: float = 1000.0,
    mismatch: float = 1.0,
    mpp_method: MppMethod = "astm_e1036",
    mpp_v_window: tuple[float, float] = ASTM_V_WINDOW,
    mpp_j_window: tuple[float, float] = ASTM_J_WINDOW,
    mpp_fit_points: int | None = DEFAULT_MPP_FIT_POINTS,
) -> JVFigures:
    """Figures of merit of an illuminated J–V curve (Methods ref. §1.1, §1.4; ASTM E1036, IEC 60904-7).

    * Voc: J = 0 crossing at V > 0, linear interpolation between the bracketing points.
    * Jsc: J at V = 0, line fit over the ≤ 5 points nearest 0 V (within ±50 mV); needs min V ≤ 0 ≤ max V.
    * MPP: ``mpp_method="astm_e1036"`` (4th-order fit of P(V) in the ASTM windows, discrete fallback; see
      ``_mpp``) or ``"discrete"`` (largest sampled V·J). By default the fit uses only the 9 samples nearest
      the discrete maximum: on high-FF cells P(V) is too asymmetric for one quartic over the full ASTM window
      (Pmp +0.10 % on Methods set A sampled every 10 mV, up to +0.7 % on ideal diodes; 9 points: < 0.02 %).
      ``mpp_fit_points=None`` gives exactly the procedure of ``pvlib.ivtools.utils.astm_e1036``.
    * FF = Pmp/(Voc·Jsc); PCE = Pmp/(M·E_meas) in % (E in mW/cm² = W/m²/10); mismatch convention in the
      module docstring.
    * rs_ohm_cm2 = −dV/dJ at Voc from a line fit over the 5 points nearest Voc (an upper bound for the series
      resistance: it includes the diode's n·Vt/Jsc). rsh_ohm_cm2 = −dV/dJ at 0 V from a line fit over
      the points within ±0.1 V (≥ 3, else the 5 nearest) — that is Rs + Rsh.
    """
    if not irradiance_W_m2 > 0 or not mismatch > 0:
        raise ValueError("irradiance_W_m2 and mismatch must be > 0")
    v, j, flags = prepare_curve(voltage_V, j_mA_cm2)
    nan = float("nan")
    out = dict(
        voc_V=nan,
        jsc_mA_cm2=nan,
        ff=nan,
        pce_pct=nan,
        vmp_V=nan,
        jmp_mA_cm2=nan,
        pmp_mW_cm2=nan,
        rs_ohm_cm2=nan,
        rsh_ohm_cm2=nan,
    )

    def result() -> JVFigures:
        return JVFigures(
            **out,
            irradiance_W_m2=float(irradiance_W_m2),
            mismatch=float(mismatch),
            mpp_method=mpp_method if "mpp_fit_fallback_discrete" not in flags else "discrete",
            flags=tuple(flags),
        )

    if v.size < 3:
        flags.append("too_few_points")
        return result()

    if v[0] <= 0.0 <= v[-1]:
        jsc = _short_circuit(v, j)
        near0 = np.flatnonzero(np.abs(v) <= 0.1)
        sel = near0 if near0.size >= 3 else _nearest(v, 0.0, 5)
        out["rsh_ohm_cm2"], f = _slope_resistance_ohm_cm2(v[sel], j[sel])
        flags += [f"rsh_{x}" for x in f]
        out["jsc_mA_cm2"] = jsc / mismatch
    else:
        jsc = nan
        flags.append("jsc_not_bracketed")

    voc, f = _open_circuit_voltage_V(v, j)
    flags += f
    if np.isnan(voc):
        return result()
    out["voc_V"] = voc
    sel = _nearest(v, voc, 5)
    out["rs_ohm_cm2"], f = _slope_resistance_ohm_cm2(v[sel], j[sel])
    flags += [f"rs_{x}" for x in f]

    if np.isnan(jsc):
        return result()
    if not jsc > 0:
        flags.append("no_photocurrent")
        return result()
    vmp, pmp, f = _mpp(v, j, voc, mpp_method, mpp_v_window, mpp_j_window, mpp_fit_points)
    flags += f
    if np.isnan(pmp):
        return result()
    out.update(
        vmp_V=vmp,
        jmp_mA_cm2=pmp / vmp / mismatch,
        pmp_mW_cm2=pmp / mismatch,
        ff=pmp / (voc * jsc),
        pce_pct=100.0 * pmp / (mismatch * irradiance_W_m2 / 10.0),
    )
    return result()
