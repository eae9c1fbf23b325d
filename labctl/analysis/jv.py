"""J–V figures of merit from sampled data (Methods ref. §1.1, §1.4).

Input convention: photocurrent-positive current density in mA/cm² (J > 0 in the power quadrant), voltage in V.
Points may come in any order, with duplicates and NaNs; a curve that does not cross J = 0 at V > 0 (dark
curve, scan stopped below Voc) gives NaN figures with a flag, never an exception.

Current compliance: points the source-meter reported in compliance (its reading is the limit, not the cell's
current) are excluded from every figure they would bias; a figure that cannot be formed without them is NaN with
a ``*_in_compliance`` flag (see :func:`figures_of_merit`).

Spectral-mismatch convention (IEC 60904-7 / ASTM E973; Methods ref. §2.1), with
M = [∫E_ref·S_R·∫E_sim·S_T]/[∫E_sim·S_R·∫E_ref·S_T]: the irradiance set with the reference cell is E_meas
(``irradiance_W_m2``), the device actually sees E_eff = M·E_meas. Current-like figures are therefore reported
for the reference spectrum at E_meas by dividing by M: Jsc, Jmp and Pmp are J/M (so M = 0.994 raises Jsc by
0.604 %), PCE = Pmp,meas/(M·E_meas). Voc, Vmp, FF and the resistances are as measured (the irradiance-only
translation moves Voc by n·Vt·ln(1/M) ≈ 0.2 mV for M = 0.994, which is neglected).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
from numpy.polynomial import Polynomial
from numpy.typing import ArrayLike, NDArray

from labctl.analysis.sdm_fit import STC_TEMPERATURE_K, fit_single_diode

MppMethod = Literal["astm_e1036", "discrete"]

# flags that make headline figures NaN (valid is False when any is set)
FATAL_FLAGS = frozenset(
    {
        "too_few_points",
        "voc_not_bracketed",
        "no_power_quadrant",
        "jsc_not_bracketed",
        "no_photocurrent",
        "jsc_in_compliance",
        "voc_in_compliance",
        "mpp_in_compliance",
    }
)

#: keys of :meth:`JVFigures.to_dict`, in order
FOM_KEYS = (
    "voc_V",
    "jsc_mA_cm2",
    "ff",
    "pce_pct",
    "vmp_V",
    "jmp_mA_cm2",
    "pmp_mW_cm2",
    "r_oc_ohm_cm2",
    "r_oc_uncertainty_ohm_cm2",
    "r_sc_ohm_cm2",
    "r_sc_uncertainty_ohm_cm2",
    "rs_ohm_cm2",
    "rs_uncertainty_ohm_cm2",
    "rsh_ohm_cm2",
    "rsh_uncertainty_ohm_cm2",
    "ideality",
    "ideality_uncertainty",
    "points_in_compliance",
    "flags",
)


# the float fields that start as NaN in figures_of_merit
_NAN_FIELDS = FOM_KEYS[:-2]


@dataclass(frozen=True)
class JVFigures:
    """Figures of merit of one J–V curve. ``ff`` is a fraction; current-like values are mismatch-corrected.

    Resistances (Ω·cm², methods ref. §1.4, §1.6): ``r_oc_ohm_cm2`` = −dV/dJ at Voc and ``r_sc_ohm_cm2`` =
    −dV/dJ at 0 V are slopes of the measured curve (R_oc ≈ Rs + n·Vt/Jsc is an upper bound for Rs, R_sc ≈ Rs + Rsh);
    ``rs_ohm_cm2``, ``rsh_ohm_cm2`` and ``ideality`` are the series and shunt resistance and the ideality factor
    of a single-diode fit of the whole curve (:func:`labctl.analysis.sdm_fit.fit_single_diode`): NaN when the fit
    is not asked for, NaN with an ``sdm_*`` flag when it fails or leaves them ill-determined. Each
    ``*_uncertainty*`` is one standard uncertainty estimated from the curve's own noise.

    ``points_in_compliance`` counts the finite input points the source-meter reported in compliance.
    ``flags`` lists what went wrong or which fallback was used (:data:`FATAL_FLAGS` are those that make
    headline figures NaN); ``valid`` is True when none of them is fatal.
    """

    voc_V: float
    jsc_mA_cm2: float
    ff: float
    pce_pct: float
    vmp_V: float
    jmp_mA_cm2: float
    pmp_mW_cm2: float
    r_oc_ohm_cm2: float
    r_oc_uncertainty_ohm_cm2: float
    r_sc_ohm_cm2: float
    r_sc_uncertainty_ohm_cm2: float
    rs_ohm_cm2: float
    rsh_ohm_cm2: float
    irradiance_W_m2: float
    mismatch: float
    mpp_method: str
    points_in_compliance: int = 0
    flags: tuple[str, ...] = ()
    rs_uncertainty_ohm_cm2: float = float("nan")
    rsh_uncertainty_ohm_cm2: float = float("nan")
    ideality: float = float("nan")
    ideality_uncertainty: float = float("nan")

    @property
    def valid(self) -> bool:
        """True when no fatal flag is set."""
        return not FATAL_FLAGS.intersection(self.flags)

    def to_dict(self) -> dict[str, object]:
        """The headline figures (:data:`FOM_KEYS`): floats, ``points_in_compliance`` (int) and ``flags``
        (a list of str)."""
        d: dict[str, object] = {k: float(getattr(self, k)) for k in FOM_KEYS[:-2]}
        d["points_in_compliance"] = int(self.points_in_compliance)
        d["flags"] = list(self.flags)
        return d

    def to_full_dict(self) -> dict[str, object]:
        """All fields, including the irradiance, M, the MPP method actually used, the flags and ``valid``."""
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
    v, jj, _, flags, _ = _prepare(voltage_V, j, None)
    return v, jj, flags


def prepare_masked_curve(
    voltage_V: ArrayLike, j: ArrayLike, compliance: ArrayLike | None
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_], list[str]]:
    """:func:`prepare_curve` with a per-point compliance mask carried along: returns (V, J, in_compliance,
    flags), a cleaned point being in compliance when any reading averaged into it was. ``None``: no point."""
    v, jj, c, flags, _ = _prepare(voltage_V, j, compliance)
    return v, jj, c, flags


def _prepare(
    voltage_V: ArrayLike, j: ArrayLike, compliance: ArrayLike | None
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_], list[str], int]:
    """:func:`prepare_curve` carrying a per-point compliance mask along (True where any averaged reading of
    that voltage was in compliance); also returns the number of finite readings in compliance."""
    v = np.asarray(voltage_V, dtype=float).ravel()
    jj = np.asarray(j, dtype=float).ravel()
    if v.shape != jj.shape:
        raise ValueError(f"voltage and current arrays differ in length: {v.size} != {jj.size}")
    c = np.zeros(v.shape, dtype=bool) if compliance is None else np.asarray(compliance, dtype=bool).ravel()
    if c.shape != v.shape:
        raise ValueError(f"compliance mask and voltage array differ in length: {c.size} != {v.size}")
    flags: list[str] = []
    finite = np.isfinite(v) & np.isfinite(jj)
    if not finite.all():
        flags.append("non_finite_dropped")
        v, jj, c = v[finite], jj[finite], c[finite]
    n_compliance = int(c.sum())
    order = np.lexsort((jj, v))  # by V, ties by J: identical output for any input order
    v, jj, c = v[order], jj[order], c[order]
    v_unique, start, counts = np.unique(v, return_index=True, return_counts=True)
    if v_unique.size < v.size:
        flags.append("duplicate_voltages_averaged")
        jj = np.add.reduceat(jj, start) / counts
        c = np.logical_or.reduceat(c, start)
        v = v_unique
    return v, jj, c, flags, n_compliance


def _line_fit(x: NDArray[np.float64], y: NDArray[np.float64]) -> tuple[float, float]:
    """Least-squares line y = a + b·x; returns (a, b). Centred for conditioning."""
    xm, ym = x.mean(), y.mean()
    dx = x - xm
    b = float(np.dot(dx, y - ym) / np.dot(dx, dx))
    return float(ym - b * xm), b


def _open_circuit_voltage_V(
    v: NDArray[np.float64], j: NDArray[np.float64]
) -> tuple[float, list[str], tuple[float, float]]:
    """Voc (V) of a cleaned, V-sorted curve: the zero crossing of J at V > 0 (Methods ref. §1.1).

    The crossing must start from a point with V > 0 and J > 0, so a dark curve (J ≥ 0 only at V ≤ 0) has none:
    flagged ``no_power_quadrant`` (no point with V > 0 and J > 0: a dark, dead or wrongly polarised cell; a higher
    stop voltage would not help), whereas a curve with J > 0 up to its last point is ``voc_not_bracketed``.

    A single crossing is linearly interpolated between its two bracketing points (the definition used for the
    reference values). Several crossings (noise near Voc) are replaced by a line fit V(J) over all points
    spanning them plus one on each side, and flagged. Also returns the voltage span of the points used.
    """
    nan = float("nan")
    down = np.flatnonzero((j[:-1] > 0) & (j[1:] <= 0) & (v[:-1] > 0))
    if down.size == 0:
        if not np.any((v > 0) & (j > 0)):
            return nan, ["no_power_quadrant"], (nan, nan)
        return nan, ["voc_not_bracketed"], (nan, nan)
    first = int(down[0])
    later_up = np.flatnonzero((j[first + 1 : -1] <= 0) & (j[first + 2 :] > 0))
    if later_up.size == 0:
        k = first
        voc = float(v[k] + j[k] * (v[k + 1] - v[k]) / (j[k] - j[k + 1]))
        return voc, [], (float(v[k]), float(v[k + 1]))
    last = int(down[-1])
    lo, hi = max(first - 1, 0), min(last + 3, v.size)
    a, _ = _line_fit(j[lo:hi], v[lo:hi])
    return a, ["multiple_voc_crossings"], (float(v[lo]), float(v[hi - 1]))


def _nearest(v: NDArray[np.float64], centre: float, count: int) -> NDArray[np.intp]:
    return np.sort(np.argsort(np.abs(v - centre), kind="stable")[:count])


JSC_WINDOW_V = 0.05


def _short_circuit(v: NDArray[np.float64], j: NDArray[np.float64]) -> float:
    """Jsc: line fit J(V) over the ≤ 5 points nearest V = 0 within ±50 mV (else the 2 nearest), at V = 0."""
    idx = _nearest(v, 0.0, 5)
    close = idx[np.abs(v[idx]) <= JSC_WINDOW_V]
    if close.size < 2:
        close = _nearest(v, 0.0, 2)
    if np.ptp(v[close]) == 0:
        return float(j[close[0]])
    a, _ = _line_fit(v[close], j[close])
    return a


# --- slope resistances (methods ref. §1.4) ---------------------------------------------------------------------

#: false-alarm probability of the per-window curvature test (two-sided; 0.27 % is the 3σ of a normal law)
SLOPE_CURVATURE_ALARM = 0.0027
#: the window stops growing once the slope's relative standard uncertainty is below this
SLOPE_TARGET_REL_UNCERTAINTY = 5e-3
#: windows grow by this factor in number of points
_WINDOW_GROWTH = 1.2


@dataclass(frozen=True)
class SlopeResistance:
    """Local slope resistance −dV/dJ (Ω·cm²) from :func:`slope_resistance`.

    ``uncertainty_ohm_cm2`` is one standard uncertainty (noise and the estimated curvature bias); ``points``
    and ``window_V`` describe the fitted window.
    """

    resistance_ohm_cm2: float
    uncertainty_ohm_cm2: float
    points: int
    window_V: tuple[float, float]
    flags: tuple[str, ...] = ()


def _run_around(c: NDArray[np.bool_], v: NDArray[np.float64], v0: float) -> tuple[int, int]:
    """Index range [lo, hi) of the contiguous run of points not in compliance that contains (or brackets) v0;
    an empty range when a point at or next to v0 is in compliance."""
    n = v.size
    p_hi = int(np.searchsorted(v, v0, side="left"))  # first index with v >= v0
    p_lo = p_hi - 1 if p_hi == n or v[p_hi] != v0 else p_hi  # last index with v <= v0
    if (p_lo >= 0 and c[p_lo]) or (p_hi < n and c[p_hi]):
        return 0, 0
    lo = p_lo
    while lo > 0 and not c[lo - 1]:
        lo -= 1
    hi = p_hi
    while hi < n and not c[hi]:
        hi += 1
    return max(lo, 0), hi


@dataclass(frozen=True)
class _NestedFits:
    """Polynomial fits of degree d and d + 1 on one window (from one QR factorisation)."""

    slope: float  # linear coefficient of the degree-d fit
    slope_unit_se: float  # its standard error per unit noise, √((XᵀX)⁻¹)₁₁
    s: float  # residual standard deviation of the degree-d fit
    slope_up: float  # linear coefficient of the degree-(d + 1) fit
    slope_up_unit_se: float
    s_up: float  # residual standard deviation of the degree-(d + 1) fit (NaN without degrees of freedom)
    top_t: float  # t statistic of the degree-(d + 1) coefficient


def _nested_fits(x: NDArray[np.float64], y: NDArray[np.float64], degree: int) -> _NestedFits:
    """Least-squares polynomials of ``degree`` and ``degree + 1`` in x. With X = QR for the larger one, the
    smaller one is the leading block of R (columns of a Vandermonde matrix in increasing powers)."""
    scale = float(np.max(np.abs(x))) or 1.0
    xs = np.vander(x / scale, degree + 2, increasing=True)
    q, r = np.linalg.qr(xs)
    qy = q.T @ y
    nan = float("nan")

    def fit(m: int) -> tuple[float, float, float]:
        r_m = r[:m, :m]
        coef = np.linalg.solve(r_m, qy[:m])
        inv_row = np.linalg.solve(r_m.T, np.eye(m)[1])  # row 1 of R⁻¹: (XᵀX)⁻¹₁₁ = |row|²
        resid = y - xs[:, :m] @ coef
        dof = y.size - m
        s = float(np.sqrt(resid @ resid / dof)) if dof > 0 else nan
        return float(coef[1]) / scale, float(np.sqrt(inv_row @ inv_row)) / scale, s

    b, ub, s = fit(degree + 1)
    if y.size <= degree + 2:
        return _NestedFits(b, ub, s, nan, nan, nan, nan)
    b2, ub2, s2 = fit(degree + 2)
    return _NestedFits(b, ub, s, b2, ub2, s2, float(qy[degree + 1]) / s2 if s2 > 0 else float("inf"))


@lru_cache(maxsize=256)
def _t_critical(dof: int) -> float:
    """Two-sided Student-t bound for the curvature test (false-alarm probability SLOPE_CURVATURE_ALARM)."""
    from scipy.stats import t as student_t

    return float(student_t.ppf(1.0 - SLOPE_CURVATURE_ALARM / 2.0, dof))


def slope_resistance(
    voltage_V: NDArray[np.float64], j_mA_cm2: NDArray[np.float64], v0_V: float, degree: int, min_points: int
) -> SlopeResistance:
    """−dV/dJ at ``v0_V`` (Ω·cm², J in mA/cm²) from a local polynomial fit of J(V) over a window sized by the
    noise (methods ref. §1.4).

    Windows of the k points nearest ``v0_V`` are tried for k = ``min_points``, ×1.2, … up to all points given
    (pass only the points that may be used), stopping early once the slope's relative standard uncertainty is
    below 0.5 %. In each, J is fitted by a polynomial of ``degree`` in (V − v0) — the slope b is its linear
    coefficient, its standard uncertainty σ_b comes from the window's own residual scatter — and by one of
    ``degree + 1``, whose top coefficient is the curvature test: the window is acceptable when that coefficient
    is within the two-sided 99.73 % Student-t bound of zero (the curvature is not visible above the noise).
    The widest acceptable window is used (the narrowest if none is). The uncertainty adds, in quadrature, the
    curvature bias estimated as the difference between the two fits' slopes less its own noise variance:
    u(b)² = σ_b² + max(Δb² − (σ²_b,deg+1 − σ²_b,deg), 0). Noise-free data keep the narrowest window.
    R = −1000/b, u(R) = 1000·u(b)/b².
    """
    v, j = voltage_V, j_mA_cm2
    nan = float("nan")
    if v.size < 2 or np.ptp(v) == 0:
        return SlopeResistance(nan, nan, int(v.size), (nan, nan), ("slope_undefined",))
    flags: list[str] = []
    if v.size < degree + 2:
        degree = v.size - 2 if v.size > 2 else 1
        flags.append("slope_low_order")
    k_min = min(max(min_points, degree + 2), v.size)
    order = np.argsort(np.abs(v - v0_V), kind="stable")
    sizes = [k_min]
    while sizes[-1] < v.size:
        sizes.append(min(v.size, max(sizes[-1] + 1, int(round(sizes[-1] * _WINDOW_GROWTH)))))
    tried: list[tuple[int, float, float, bool]] = []  # (k, b, u(b), acceptable)
    for k in sizes:
        idx = order[:k]
        fits = _nested_fits(v[idx] - v0_V, j[idx], degree)
        b = fits.slope
        sb = fits.s * fits.slope_unit_se if np.isfinite(fits.s) else 0.0
        ok, bias2 = True, 0.0
        if np.isfinite(fits.s_up):
            ok = abs(fits.top_t) <= _t_critical(k - degree - 2)
            noise2 = fits.s_up**2 * max(fits.slope_up_unit_se**2 - fits.slope_unit_se**2, 0.0)
            bias2 = max((b - fits.slope_up) ** 2 - noise2, 0.0)
        tried.append((k, b, float(np.sqrt(sb**2 + bias2)), ok))
        if sb <= SLOPE_TARGET_REL_UNCERTAINTY * abs(b):
            break
    good = [w for w in tried if w[3]]
    k, b, ub, _ = good[-1] if good else tried[0]
    window = (float(v[order[:k]].min()), float(v[order[:k]].max()))
    if b >= 0:
        return SlopeResistance(float("inf"), nan, k, window, (*flags, "slope_non_negative"))
    return SlopeResistance(-1000.0 / b, 1000.0 * ub / b**2, k, window, tuple(flags))


#: R_sc: line fits, at least 5 points, up to 0.7·Voc (above, the diode current bends the curve)
R_SC_DEGREE, R_SC_MIN_POINTS, R_SC_MAX_V_OVER_VOC = 1, 5, 0.7
#: R_oc: cubic fits (J(V) is exponential there: a line over 5 points on a 10 mV grid is +0.16 % high on set A),
#: at least 7 points, within ±25 % of Voc
R_OC_DEGREE, R_OC_MIN_POINTS, R_OC_HALF_SPAN_OVER_VOC = 3, 7, 0.25


def _usable(
    v: NDArray[np.float64], candidates: NDArray[np.intp], keep: NDArray[np.bool_], v0: float, fallback: int
) -> NDArray[np.intp]:
    """``candidates`` where ``keep`` (indexed like v[candidates]); if fewer than 3 remain, the ``fallback``
    candidates nearest v0."""
    sel = candidates[keep]
    if sel.size < 3 and candidates.size:
        sel = candidates[_nearest(v[candidates], v0, fallback)]
    return sel


def _local_slope(
    v: NDArray[np.float64],
    j: NDArray[np.float64],
    c: NDArray[np.bool_],
    v0: float,
    region: NDArray[np.bool_],
    degree: int,
    min_points: int,
    name: str,
) -> tuple[SlopeResistance, list[str]]:
    """Slope resistance at v0 from the points of ``region`` in the unclamped run around v0 (at least 3,
    else the ``min_points`` nearest). Flagged ``{name}_in_compliance`` (NaN) when the compliance mask leaves
    fewer than ``min_points`` of the points the unmasked curve would offer."""
    nan = float("nan")
    lo, hi = _run_around(c, v, v0)
    run = np.arange(lo, hi)
    sel = _usable(v, run, region[run], v0, min_points)
    if c.any():
        every = np.arange(v.size)
        offered = _usable(v, every, region, v0, min_points).size
        if sel.size < min(min_points, offered):
            return SlopeResistance(nan, nan, int(sel.size), (nan, nan)), [f"{name}_in_compliance"]
    fit = slope_resistance(v[sel], j[sel], v0, degree, min_points)
    return fit, [f"{name}_{x}" for x in fit.flags]


# --- maximum power point ---------------------------------------------------------------------------------------

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
) -> tuple[float, float, list[str], tuple[float, float]]:
    """(Vmp, Pmp) in V and mW/cm² from the power quadrant 0 < V ≤ Voc, J > 0.

    ``"astm_e1036"``: ASTM E1036 — a 4th-order polynomial P(V) fitted to the points within
    ``v_window``·Vmp,est and ``j_window``·Jmp,est of the discrete maximum, maximised at a real root of dP/dV
    inside the fitted span (as ``pvlib.ivtools.utils.astm_e1036``), further limited to the ``fit_points``
    samples nearest the discrete maximum (None: no limit, identical to pvlib). Falls back to the discrete
    maximum, flagged, when fewer than 6 points remain, no maximum lies inside the span, or the fitted Pmp
    is more than 2 % off the discrete one.

    Also returns the voltage span the result depends on: the fitted points and the discrete maximum's
    neighbours (0 V or Voc when the maximum is the first or last sample of the quadrant).
    """
    nan = float("nan")
    quad = (v > 0) & (v <= voc) & (j > 0)
    if not quad.any():
        return nan, nan, ["no_power_quadrant"], (nan, nan)
    vq, jq = v[quad], j[quad]
    p = vq * jq
    k = int(np.argmax(p))
    v_est, j_est, p_est = float(vq[k]), float(jq[k]), float(p[k])
    span = (float(vq[k - 1]) if k > 0 else 0.0, float(vq[k + 1]) if k + 1 < vq.size else voc)
    if method == "discrete":
        return v_est, p_est, [], span
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
        return v_est, p_est, ["mpp_fit_fallback_discrete"], span
    span = (min(span[0], float(vq[win].min())), max(span[1], float(vq[win].max())))
    fit = Polynomial.fit(vq[win], p[win], 4)
    roots = fit.deriv().roots()
    roots = roots.real[np.abs(roots.imag) < 1e-9]
    roots = roots[(roots > vq[win].min()) & (roots < vq[win].max())]
    if roots.size:
        vmp = float(roots[np.argmax(fit(roots))])
        pmp = float(fit(vmp))
        if fit.deriv(2)(vmp) < 0 and abs(pmp - p_est) <= 0.02 * p_est:
            return vmp, pmp, [], span
    return v_est, p_est, ["mpp_fit_fallback_discrete"], span


def _any_in(c: NDArray[np.bool_], v: NDArray[np.float64], span: tuple[float, float]) -> bool:
    """True when a compliance point lies in the closed voltage interval ``span``."""
    return bool(np.any(c & (v >= span[0]) & (v <= span[1])))


# --- figures of merit ------------------------------------------------------------------------------------------


def figures_of_merit(
    voltage_V: ArrayLike,
    j_mA_cm2: ArrayLike,
    irradiance_W_m2: float = 1000.0,
    mismatch: float = 1.0,
    mpp_method: MppMethod = "astm_e1036",
    mpp_v_window: tuple[float, float] = ASTM_V_WINDOW,
    mpp_j_window: tuple[float, float] = ASTM_J_WINDOW,
    mpp_fit_points: int | None = DEFAULT_MPP_FIT_POINTS,
    compliance: ArrayLike | None = None,
    single_diode_fit: bool = True,
    temperature_K: float = STC_TEMPERATURE_K,
) -> JVFigures:
    """Figures of merit of an illuminated J–V curve (Methods ref. §1.1, §1.4, §1.6; ASTM E1036, IEC 60904-7).

    * Voc: J = 0 crossing at V > 0, linear interpolation between the bracketing points.
    * Jsc: J at V = 0, line fit over the ≤ 5 points nearest 0 V (within ±50 mV); needs min V ≤ 0 ≤ max V.
    * MPP: ``mpp_method="astm_e1036"`` (4th-order fit of P(V) in the ASTM windows, discrete fallback; see
      ``_mpp``) or ``"discrete"`` (largest sampled V·J). By default the fit uses only the 9 samples nearest
      the discrete maximum: on high-FF cells P(V) is too asymmetric for one quartic over the full ASTM window
      (Pmp +0.10 % on Methods set A sampled every 10 mV, up to +0.7 % on ideal diodes; 9 points: < 0.02 %).
      ``mpp_fit_points=None`` gives exactly the procedure of ``pvlib.ivtools.utils.astm_e1036``.
    * FF = Pmp/(Voc·Jsc); PCE = Pmp/(M·E_meas) in % (E in mW/cm² = W/m²/10); mismatch convention in the
      module docstring.
    * r_oc_ohm_cm2 = −dV/dJ at Voc (cubic local fits within ±25 % of Voc) and r_sc_ohm_cm2 = −dV/dJ at 0 V
      (line fits, up to 0.7·Voc), each over a window sized by the noise (:func:`slope_resistance`), with their
      standard uncertainties.
    * rs_ohm_cm2, rsh_ohm_cm2, ideality: single-diode fit at ``temperature_K`` (K) of the points not in
      compliance when ``single_diode_fit`` (a few ms; :func:`labctl.analysis.sdm_fit.fit_single_diode`), with
      ``sdm_*`` flags when it fails or a parameter is ill-determined; NaN without a flag when not asked for.

    ``compliance`` (bool per point, True where the source-meter was in current compliance): those points are
    left out of every figure, and a figure whose data they would have been is NaN with a flag:

    * ``jsc_in_compliance``: a compliance point within ±50 mV of 0 V or among the two points bracketing 0 V
      (FF NaN too);
    * ``voc_in_compliance``: no J = 0 crossing among the other points although the whole curve has one, or a
      compliance point between (or at) the points bracketing it (then every MPP figure is NaN too);
    * ``mpp_in_compliance``: a compliance point within the voltage span the MPP is computed from (the fitted
      points and the discrete maximum's neighbours; from 0 V or up to Voc when the maximum is the first or
      last unclamped sample) — a clamped reading lies below the true P(V), so the maximum may be hidden there
      (Vmp, Jmp, Pmp, FF and PCE NaN; PCE and the MPP figures stay valid when only Jsc is in compliance);
    * ``r_sc_in_compliance`` / ``r_oc_in_compliance``: a compliance point at or next to 0 V / Voc, or fewer
      than 5 / 7 usable points in the unclamped run around it.

    ``compliance_points_excluded`` is set (not fatal) whenever any point was in compliance.
    """
    if not irradiance_W_m2 > 0 or not mismatch > 0:
        raise ValueError("irradiance_W_m2 and mismatch must be > 0")
    v_all, j_all, c_all, flags, n_comp = _prepare(voltage_V, j_mA_cm2, compliance)
    if n_comp:
        flags.append("compliance_points_excluded")
    ok = ~c_all
    v, j = v_all[ok], j_all[ok]
    nan = float("nan")
    out: dict[str, float] = dict.fromkeys(_NAN_FIELDS, nan)

    def result() -> JVFigures:
        return JVFigures(
            **out,
            irradiance_W_m2=float(irradiance_W_m2),
            mismatch=float(mismatch),
            mpp_method=mpp_method if "mpp_fit_fallback_discrete" not in flags else "discrete",
            points_in_compliance=n_comp,
            flags=tuple(flags),
        )

    if v_all.size < 3:
        flags.append("too_few_points")
        return result()

    voc, f, voc_span = _open_circuit_voltage_V(v, j) if v.size >= 2 else (nan, ["voc_not_bracketed"], (nan, nan))
    if n_comp and (
        (np.isnan(voc) and not np.isnan(_open_circuit_voltage_V(v_all, j_all)[0])) or _any_in(c_all, v_all, voc_span)
    ):
        voc, f = nan, ["voc_in_compliance"]
    flags += f

    jsc = nan
    if v_all[0] <= 0.0 <= v_all[-1]:
        v_cap = R_SC_MAX_V_OVER_VOC * voc if np.isfinite(voc) else 0.5 * max(float(v_all[-1]), 0.0)
        r_sc, f = _local_slope(v_all, j_all, c_all, 0.0, v_all <= v_cap, R_SC_DEGREE, R_SC_MIN_POINTS, "r_sc")
        out["r_sc_ohm_cm2"], out["r_sc_uncertainty_ohm_cm2"] = r_sc.resistance_ohm_cm2, r_sc.uncertainty_ohm_cm2
        flags += f
        if n_comp and _jsc_window_in_compliance(v_all, c_all):
            flags.append("jsc_in_compliance")
        else:
            jsc = _short_circuit(v, j)
            out["jsc_mA_cm2"] = jsc / mismatch
    else:
        flags.append("jsc_not_bracketed")

    if np.isnan(voc):
        return result()
    out["voc_V"] = voc
    near_voc = np.abs(v_all - voc) <= R_OC_HALF_SPAN_OVER_VOC * abs(voc)
    r_oc, f = _local_slope(v_all, j_all, c_all, voc, near_voc, R_OC_DEGREE, R_OC_MIN_POINTS, "r_oc")
    out["r_oc_ohm_cm2"], out["r_oc_uncertainty_ohm_cm2"] = r_oc.resistance_ohm_cm2, r_oc.uncertainty_ohm_cm2
    flags += f

    if single_diode_fit:
        _add_single_diode_fit(out, flags, v, j, temperature_K)

    if "jsc_not_bracketed" in flags:
        return result()
    if not (jsc > 0 or "jsc_in_compliance" in flags):
        flags.append("no_photocurrent")
        return result()
    vmp, pmp, f, mpp_span = _mpp(v, j, voc, mpp_method, mpp_v_window, mpp_j_window, mpp_fit_points)
    if n_comp and _any_in(c_all, v_all, mpp_span):
        flags.append("mpp_in_compliance")
        return result()
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


def _jsc_window_in_compliance(v: NDArray[np.float64], c: NDArray[np.bool_]) -> bool:
    """A compliance point within ±50 mV of 0 V, or among the points bracketing 0 V, or none unclamped on one
    side of 0 V."""
    p_hi = int(np.searchsorted(v, 0.0, side="left"))
    p_lo = p_hi - 1 if p_hi == v.size or v[p_hi] != 0.0 else p_hi
    bracket = [i for i in (p_lo, p_hi) if 0 <= i < v.size]
    if any(c[i] for i in bracket) or np.any(c & (np.abs(v) <= JSC_WINDOW_V)):
        return True
    return not (np.any(~c & (v <= 0.0)) and np.any(~c & (v >= 0.0)))


def _add_single_diode_fit(
    out: dict[str, float], flags: list[str], v: NDArray[np.float64], j: NDArray[np.float64], temperature_K: float
) -> None:
    fit = fit_single_diode(v, j, temperature_K=temperature_K)
    flags += [f"sdm_{x}" for x in fit.flags]
    out.update(
        rs_ohm_cm2=fit.rs_ohm_cm2,
        rs_uncertainty_ohm_cm2=fit.rs_uncertainty_ohm_cm2,
        rsh_ohm_cm2=fit.rsh_ohm_cm2,
        rsh_uncertainty_ohm_cm2=fit.rsh_uncertainty_ohm_cm2,
        ideality=fit.ideality,
        ideality_uncertainty=fit.ideality_uncertainty,
    )
