"""Light-intensity-dependent open-circuit voltage: ideality factors and their regimes (methods ref. §4).

At open circuit no current flows through the series resistance, so the slope of Voc against the logarithm of the
light intensity Φ is the recombination's ideality (methods ref. §1.8, §4.1)::

    n = (q/(k_B·T)) · dVoc/d ln Φ = (1/Vt) · dVoc/d ln Φ          ΔVoc per decade = n·Vt·ln 10

Φ may be in any unit proportional to the photon flux (here suns-equivalent, methods ref. §4.2): a constant factor
shifts ln Φ and leaves n unchanged. Parallel recombination channels combine harmonically, so the local n(Φ) moves
between plateaus (n ≈ 1, ≈ 2, > 2) rather than jumping; a fit reports n with its window and uncertainty.

Instrument-limited points: the meter that holds the cell at I = 0 draws |I_offset| + Voc/R_in (source offset and
finite input resistance, methods ref. §4.2), so the device sees Igen − I_leak instead of Igen. To first order this
lowers Voc by (dVoc/d ln Φ)·ln(Igen/(Igen − I_leak)); a point whose estimated bias exceeds a tolerance is flagged
and left out of every fit.

Units: Φ in suns (or any flux unit), Voc in V, currents in A, resistances in Ω, temperatures in K.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import theilslopes

from labctl.analysis.sdm import STC_TEMPERATURE_K, thermal_voltage_V

__all__ = [
    "IdealityFit",
    "Regime",
    "fit_ideality",
    "local_ideality",
    "instrument_voc_bias_V",
    "instrument_limited",
    "segment_regimes",
    "analyse_voc_intensity",
]

#: sliding-window width for the local ideality (decades of Φ): the methods' "sliding 1-decade linear fit" (§4.1)
LOCAL_WINDOW_DECADES = 1.0
#: class edges of the local n: n < 1.5 is "n≈1", 1.5 ≤ n < 2.5 is "n≈2", n ≥ 2.5 is "n>2" (methods ref. §4.1)
REGIME_EDGES = (1.5, 2.5)
REGIME_LABELS = ("n≈1", "n≈2", "n>2")
#: a run of one class spanning less than this many decades of Φ is merged into a neighbour: a single change of
#: slope makes the sliding window (1 decade) report intermediate n over up to one window width, so a shorter
#: run is a crossover, not a regime
MIN_REGIME_DECADES = LOCAL_WINDOW_DECADES
#: an estimated instrument bias on Voc above this (V) makes a point instrument-limited; 0.5 mV is the
#: methods' Voc tolerance (§9 V1)
MAX_VOC_BIAS_V = 0.5e-3


@dataclass(frozen=True)
class IdealityFit:
    """Ideality from a linear fit of Voc against ln Φ over ``[phi_min_suns, phi_max_suns]``.

    ``n_stderr`` is the standard error of the least-squares slope divided by Vt (NaN with only two points);
    ``points`` is the number of points fitted, ``voc_at_1_V`` the fitted Voc at Φ = 1 (the line's intercept).
    """

    n: float
    n_stderr: float
    phi_min_suns: float
    phi_max_suns: float
    points: int
    voc_at_1_V: float
    temperature_K: float

    def to_dict(self) -> dict[str, object]:
        """JSON-able: NaN → None."""
        return _jsonable(asdict(self))


@dataclass(frozen=True)
class Regime:
    """A contiguous intensity range of one ideality class (``label`` from :data:`REGIME_LABELS`).

    ``n`` is the Theil–Sen slope over the regime's points divided by Vt (robust to the crossover points at its
    edges), ``n_low``/``n_high`` its 95 % confidence interval; ``n_stderr`` the least-squares standard error.
    """

    label: str
    phi_min_suns: float
    phi_max_suns: float
    n: float
    n_low: float
    n_high: float
    n_stderr: float
    points: int

    def to_dict(self) -> dict[str, object]:
        """JSON-able: NaN → None."""
        return _jsonable(asdict(self))


def _jsonable(d: dict[str, object]) -> dict[str, object]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def _ladder(phi_suns: ArrayLike, voc_V: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Φ and Voc as float arrays of equal length, sorted by increasing Φ; Φ must be finite and > 0."""
    phi = np.asarray(phi_suns, dtype=float).ravel()
    voc = np.asarray(voc_V, dtype=float).ravel()
    if phi.shape != voc.shape:
        raise ValueError(f"phi_suns and voc_V must have the same length, got {phi.size} and {voc.size}")
    if not np.all(np.isfinite(phi) & (phi > 0)):
        raise ValueError("phi_suns must be finite and > 0 (a photon flux or suns-equivalent intensity)")
    order = np.argsort(phi, kind="stable")
    return phi[order], voc[order]


def _usable(voc: NDArray[np.float64], exclude: ArrayLike | None, size: int) -> NDArray[np.bool_]:
    keep = np.isfinite(voc)
    if exclude is not None:
        ex = np.asarray(exclude, dtype=bool).ravel()
        if ex.size != size:
            raise ValueError(f"exclude must have one entry per point ({size}), got {ex.size}")
        keep &= ~ex
    return keep


def fit_ideality(
    phi_suns: ArrayLike, voc_V: ArrayLike, window_suns: tuple[float, float] | None = None,
    exclude: ArrayLike | None = None, temperature_K: float = STC_TEMPERATURE_K,
) -> IdealityFit:
    """Global ideality n = (1/Vt)·dVoc/d ln Φ over a declared intensity window (methods ref. §4.1, §4.3).

    Parameters
    ----------
    phi_suns
        Light intensity of each point (suns-equivalent, or any unit proportional to the photon flux).
    voc_V
        Open-circuit voltage of each point (V).
    window_suns
        ``(low, high)`` intensity bounds (same unit as ``phi_suns``), inclusive; None fits every usable point.
    exclude
        True for points left out (e.g. :func:`instrument_limited`); non-finite Voc is always left out.
    temperature_K
        Device temperature (K) for Vt = k_B·T/q.

    Returns
    -------
    IdealityFit
        n, its standard error and the window actually covered; NaN with fewer than two points.
    """
    phi, voc = _ladder(phi_suns, voc_V)
    keep = _usable(voc, exclude, phi.size)
    if window_suns is not None:
        lo, hi = sorted(float(w) for w in window_suns)
        keep &= (phi >= lo * (1 - 1e-12)) & (phi <= hi * (1 + 1e-12))
    vt = thermal_voltage_V(float(temperature_K))
    x, y = np.log(phi[keep]), voc[keep]
    nan = math.nan
    if x.size < 2 or np.ptp(x) == 0:
        return IdealityFit(nan, nan, nan, nan, int(x.size), nan, float(temperature_K))
    slope, intercept, stderr = _ols(x, y)
    return IdealityFit(slope / vt, stderr / vt, float(phi[keep].min()), float(phi[keep].max()), int(x.size),
                       intercept, float(temperature_K))


def _ols(x: NDArray[np.float64], y: NDArray[np.float64]) -> tuple[float, float, float]:
    """Least-squares slope, intercept and the slope's standard error (NaN with no degree of freedom)."""
    xm, ym = x.mean(), y.mean()
    sxx = float(np.sum((x - xm) ** 2))
    slope = float(np.sum((x - xm) * (y - ym)) / sxx)
    intercept = float(ym - slope * xm)
    dof = x.size - 2
    if dof < 1:
        return slope, intercept, math.nan
    resid = y - (intercept + slope * x)
    return slope, intercept, math.sqrt(float(np.sum(resid**2)) / dof / sxx)


def local_ideality(
    phi_suns: ArrayLike, voc_V: ArrayLike, window_decades: float = LOCAL_WINDOW_DECADES,
    exclude: ArrayLike | None = None, temperature_K: float = STC_TEMPERATURE_K,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Local ideality n(Φ): robust slope of Voc against ln Φ in a sliding window (methods ref. §4.1).

    At each point the slope is the Theil–Sen estimate (median of the pairwise slopes; Sen, J. Am. Stat. Assoc.
    63 (1968) 1379) over the usable points within ±``window_decades``/2 of it, so one outlying Voc does not move it.

    Parameters
    ----------
    phi_suns, voc_V
        Intensity (suns or any flux unit) and Voc (V) of each point.
    window_decades
        Full width of the sliding window in decades of Φ (> 0).
    exclude
        True for points left out (they get NaN and are not used by their neighbours).
    temperature_K
        Device temperature (K).

    Returns
    -------
    phi_suns, n
        The intensities sorted ascending and n at each (NaN where fewer than two usable points are in the window).
    """
    if not window_decades > 0:
        raise ValueError(f"window_decades must be > 0, got {window_decades!r}")
    phi, voc = _ladder(phi_suns, voc_V)
    keep = _usable(voc, exclude, phi.size)
    vt = thermal_voltage_V(float(temperature_K))
    lg = np.log10(phi)
    half = 0.5 * window_decades * (1 + 1e-9)
    n = np.full(phi.size, math.nan)
    for i in np.flatnonzero(keep):
        near = keep & (np.abs(lg - lg[i]) <= half)
        if near.sum() >= 2 and np.ptp(lg[near]) > 0:
            n[i] = _median_pairwise_slope(np.log(phi[near]), voc[near]) / vt
    return phi, n


def _median_pairwise_slope(x: NDArray[np.float64], y: NDArray[np.float64]) -> float:
    """Theil–Sen slope: the median of (y_j − y_i)/(x_j − x_i) over all pairs with x_j ≠ x_i."""
    i, j = np.triu_indices(x.size, k=1)
    dx = x[j] - x[i]
    ok = dx != 0
    return float(np.median((y[j] - y[i])[ok] / dx[ok]))


def _theil_sen(x: NDArray[np.float64], y: NDArray[np.float64]) -> tuple[float, float, float]:
    """Theil–Sen slope with its 95 % confidence bounds (scipy.stats.theilslopes)."""
    if x.size == 2:
        s = float((y[1] - y[0]) / (x[1] - x[0]))
        return s, s, s
    res = theilslopes(y, x, alpha=0.95)
    return float(res.slope), float(res.low_slope), float(res.high_slope)


def instrument_voc_bias_V(
    phi_suns: ArrayLike, voc_V: ArrayLike, generation_current_A: ArrayLike, meter_offset_A: float = 0.0,
    meter_input_resistance_ohm: float = math.inf, temperature_K: float = STC_TEMPERATURE_K,
) -> NDArray[np.float64]:
    """First-order estimate of how much the meter lowers each point's Voc (V; methods ref. §4.2).

    The meter holding I = 0 draws I_leak = |I_offset| + |Voc|/R_in, so the device's diode sees Igen − I_leak and
    its Voc drops by (dVoc/d ln Φ)·ln(Igen/(Igen − I_leak)) (Voc is a function of the diode current only).
    The local slope is the measured one (:func:`local_ideality`, 1-decade window). Worked case (methods ref. §4.2,
    §9 V2): 89.7 pA at 1e-7 sun and +10 pA offset lower Voc from 0.2027 V to 0.1924 V (this estimate: ≈ 11 mV).

    Parameters
    ----------
    phi_suns, voc_V
        Intensity and measured Voc (V) of each point.
    generation_current_A
        Photogenerated current (A): one value per point, in the order of ``phi_suns`` (e.g. Φ·Jsc(1 sun)·area,
        or the short-circuit current measured at each intensity), or one value for all.
    meter_offset_A
        Magnitude of the meter's current-source offset at I = 0 (A); its accuracy specification is a bound.
    meter_input_resistance_ohm
        Voltmeter input resistance (Ω); inf for none.
    temperature_K
        Device temperature (K).

    Returns
    -------
    NDArray
        The bias (V, ≥ 0) in the order of increasing Φ; inf where I_leak ≥ Igen (the reading is meaningless).
    """
    if not meter_input_resistance_ohm > 0:
        raise ValueError(f"meter_input_resistance_ohm must be > 0, got {meter_input_resistance_ohm!r}")
    phi_raw = np.asarray(phi_suns, dtype=float).ravel()
    igen = np.broadcast_to(np.asarray(generation_current_A, dtype=float), phi_raw.shape)[np.argsort(phi_raw,
                                                                                                    kind="stable")]
    phi, voc = _ladder(phi_raw, voc_V)
    if np.any(~(igen > 0)):
        raise ValueError("generation_current_A must be > 0 at every point")
    vt = thermal_voltage_V(float(temperature_K))
    _, n = local_ideality(phi, voc, temperature_K=temperature_K)
    slope = np.where(np.isfinite(n), np.abs(n), 1.0) * vt
    leak = abs(float(meter_offset_A)) + np.abs(voc) / meter_input_resistance_ohm
    with np.errstate(divide="ignore", invalid="ignore"):
        bias = np.where(leak < igen, slope * np.log(igen / (igen - np.minimum(leak, igen))), math.inf)
    return bias


def instrument_limited(
    phi_suns: ArrayLike, voc_V: ArrayLike, generation_current_A: ArrayLike, meter_offset_A: float = 0.0,
    meter_input_resistance_ohm: float = math.inf, max_voc_bias_V: float = MAX_VOC_BIAS_V,
    temperature_K: float = STC_TEMPERATURE_K,
) -> NDArray[np.bool_]:
    """True for points whose Voc is limited by the meter rather than the device (methods ref. §4.2).

    A point is flagged when :func:`instrument_voc_bias_V` exceeds ``max_voc_bias_V`` (V), or its Voc is not
    finite or ≤ 0 (no diode voltage to speak of). Order: increasing Φ, as every function here returns.
    """
    bias = instrument_voc_bias_V(phi_suns, voc_V, generation_current_A, meter_offset_A,
                                 meter_input_resistance_ohm, temperature_K)
    _, voc = _ladder(phi_suns, voc_V)
    return ~(np.isfinite(voc) & (voc > 0)) | (bias > max_voc_bias_V)


def _fin(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def _classify(n: NDArray[np.float64], edges: tuple[float, float]) -> NDArray[np.int64]:
    return np.where(np.isfinite(n), np.searchsorted(np.asarray(edges, dtype=float), n, side="right"), -1)


def segment_regimes(
    phi_suns: ArrayLike, voc_V: ArrayLike, exclude: ArrayLike | None = None,
    window_decades: float = LOCAL_WINDOW_DECADES, edges: tuple[float, float] = REGIME_EDGES,
    min_decades: float = MIN_REGIME_DECADES, temperature_K: float = STC_TEMPERATURE_K,
) -> list[Regime]:
    """Split the ladder into regimes of one ideality class: n ≈ 1, ≈ 2, > 2 (methods ref. §4.1, §4.3).

    Each usable point is classed by its local n (:func:`local_ideality`) against ``edges``. A run of one class
    spanning less than ``min_decades`` (a crossover, or one outlier) joins the neighbouring run whose class centre
    is nearer its median n, narrowest first. Each remaining run is a regime over its intensity range; its n is the
    Theil–Sen slope over its core, the points at least half a window from a neighbouring regime (whose local
    windows could straddle the change of slope), or over all its points when the core has fewer than two.

    Parameters
    ----------
    phi_suns, voc_V
        Intensity (suns or any flux unit) and Voc (V) of each point.
    exclude
        True for points left out (e.g. :func:`instrument_limited`).
    window_decades
        Sliding-window width for the local n (decades of Φ).
    edges
        Class edges of n: below ``edges[0]`` is "n≈1", below ``edges[1]`` "n≈2", above "n>2".
    min_decades
        Narrowest run (decades of Φ) that is a regime rather than a crossover.
    temperature_K
        Device temperature (K).

    Returns
    -------
    list of Regime
        Ordered by decreasing intensity (as a ladder is measured, from 1 sun down).
    """
    if len(edges) != 2 or not edges[0] < edges[1]:
        raise ValueError(f"edges must be two increasing ideality values, got {edges!r}")
    if not min_decades >= 0:
        raise ValueError(f"min_decades must be ≥ 0, got {min_decades!r}")
    phi, voc = _ladder(phi_suns, voc_V)
    keep = _usable(voc, exclude, phi.size)
    _, n = local_ideality(phi, voc, window_decades, exclude=~keep, temperature_K=temperature_K)
    idx = np.flatnonzero(keep & np.isfinite(n))
    lg = np.log10(phi[idx])
    runs = _merge_narrow_runs(_runs(_classify(n[idx], edges)), n[idx], lg, edges, min_decades)
    vt = thermal_voltage_V(float(temperature_K))
    half = 0.5 * window_decades * (1 - 1e-9)
    regimes = []
    for k, (cls, start, stop) in enumerate(runs):
        core = np.ones(stop - start, dtype=bool)
        if k > 0:
            core &= lg[start:stop] - lg[start] >= half
        if k < len(runs) - 1:
            core &= lg[stop - 1] - lg[start:stop] >= half
        pts = idx[start:stop][core] if core.sum() >= 2 else idx[start:stop]
        x, y = np.log(phi[pts]), voc[pts]
        s, lo, hi = _theil_sen(x, y)
        stderr = _ols(x, y)[2] if np.ptp(x) > 0 else math.nan
        regimes.append(Regime(REGIME_LABELS[cls], float(phi[idx[start]]), float(phi[idx[stop - 1]]), s / vt,
                              lo / vt, hi / vt, stderr / vt, int(stop - start)))
    return regimes[::-1]


def _runs(classes: NDArray[np.int64]) -> list[list[int]]:
    """[class, start, stop) runs of equal class."""
    runs: list[list[int]] = []
    for i, c in enumerate(classes.tolist()):
        if runs and runs[-1][0] == c:
            runs[-1][2] = i + 1
        else:
            runs.append([c, i, i + 1])
    return runs


def _merge_narrow_runs(runs: list[list[int]], n: NDArray[np.float64], lg: NDArray[np.float64],
                       edges: tuple[float, float], min_decades: float) -> list[list[int]]:
    """Merge runs spanning less than ``min_decades`` (log10 Φ in ``lg``) into a neighbour, narrowest first."""
    centres = np.array([edges[0] - 0.5, 0.5 * (edges[0] + edges[1]), edges[1] + 0.5])

    def span(r: list[int]) -> float:
        return float(lg[r[2] - 1] - lg[r[1]])

    runs = [r[:] for r in runs]
    while len(runs) > 1:
        narrow = [k for k, r in enumerate(runs) if span(r) < min_decades * (1 - 1e-9)]
        if not narrow:
            break
        k = min(narrow, key=lambda j: span(runs[j]))
        med = float(np.median(n[runs[k][1]:runs[k][2]]))
        j = min((m for m in (k - 1, k + 1) if 0 <= m < len(runs)), key=lambda m: abs(centres[runs[m][0]] - med))
        lo, hi = sorted((j, k))
        runs[lo:hi + 1] = [[runs[j][0], runs[lo][1], runs[hi][2]]]
        merged: list[list[int]] = []  # neighbours of one class that now touch become one run
        for r in runs:
            if merged and merged[-1][0] == r[0]:
                merged[-1][2] = r[2]
            else:
                merged.append(r)
        runs = merged
    return runs


def analyse_voc_intensity(
    phi_suns: ArrayLike, voc_V: ArrayLike, generation_current_A: ArrayLike | None = None,
    meter_offset_A: float = 0.0, meter_input_resistance_ohm: float = math.inf,
    window_suns: tuple[float, float] | None = None, max_voc_bias_V: float = MAX_VOC_BIAS_V,
    temperature_K: float = STC_TEMPERATURE_K,
) -> dict[str, object]:
    """The light-intensity Voc results of a ladder as a JSON-able dict (NaN → None).

    Keys: ``n_global``, ``n_global_stderr`` (over ``window_suns``, default every usable point),
    ``global_window_suns``, ``dynamic_range_dB`` (10·log10(Φmax/Φmin) of the usable points, optical dB, methods
    ref. §0), ``regimes`` (list of :meth:`Regime.to_dict`, from 1 sun down), ``instrument_limited_points`` (the
    Φ of the flagged points, suns) and ``local_n`` (``{"phi_suns": [...], "n": [...]}``).
    Without ``generation_current_A`` nothing is flagged except a Voc that is not finite or ≤ 0.
    """
    phi, voc = _ladder(phi_suns, voc_V)
    if generation_current_A is None:
        flagged = ~(np.isfinite(voc) & (voc > 0))
    else:
        flagged = instrument_limited(phi_suns, voc_V, generation_current_A, meter_offset_A,
                                     meter_input_resistance_ohm, max_voc_bias_V, temperature_K)
    fit = fit_ideality(phi, voc, window_suns, exclude=flagged, temperature_K=temperature_K)
    usable = phi[~flagged]
    dyn = 10 * math.log10(usable.max() / usable.min()) if usable.size else math.nan
    _, n_loc = local_ideality(phi, voc, exclude=flagged, temperature_K=temperature_K)
    regimes = segment_regimes(phi, voc, exclude=flagged, temperature_K=temperature_K)
    return {
        "n_global": _fin(fit.n),
        "n_global_stderr": _fin(fit.n_stderr),
        "global_window_suns": [_fin(fit.phi_min_suns), _fin(fit.phi_max_suns)],
        "dynamic_range_dB": _fin(dyn),
        "regimes": [r.to_dict() for r in regimes],
        "instrument_limited_points": [float(p) for p in phi[flagged]],
        "local_n": {"phi_suns": phi.tolist(), "n": [_fin(v) for v in n_loc]},
    }
