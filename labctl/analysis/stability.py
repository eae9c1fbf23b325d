"""Stability figures of a degradation curve: T80, T95, TS80, TS95, η1000, retained metric (methods ref. §7.3).

The metric is any quantity normalised by its own initial value (PCE from periodic J–V, or MPP power); times are in
hours of stress (``time_s`` of the stability streams / 3600). Conventions (methods ref. §7.3, Khenkin et al.,
"Consensus statement for stability assessment and reporting for perovskite photovoltaics based on ISOS
procedures", Nat. Energy 5, 35 (2020), its Table 5 of reported figures):

* the curve is median-filtered (about 5 samples) to suppress glitches before any threshold is looked for;
* intervals that must not count (suspended, recovering from a fault) are removed first (:func:`keep_mask`);
* **T80** / **T95**: the first time the filtered metric falls to 0.80 / 0.95 of its initial value, by linear
  interpolation between the bracketing samples. Not crossed: the time is extrapolated by a straight line fitted to
  the post-burn-in region and flagged (``t80_extrapolated``) when that region falls significantly (its slope
  below zero by more than ``DECLINE_SIGMAS`` standard errors; otherwise there is no time: "not reached");
  "T80 > t_end" is what is reported then;
* **TS80** / **TS95** relative to the stabilised value after burn-in, two ways:
  from the maximum of the filtered metric after the burn-in (``ts80_h``; time counted from t = 0, from where that
  maximum is), and from the linear region's fit back-extrapolated to t = 0 (``ts80_backextrapolated_h``, the
  consensus statement's E_S);
* **η1000**: the metric at 1000 h.

All results are JSON-able (``StabilityFigures.to_dict()``; None for not available).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.ndimage import median_filter as _ndimage_median_filter

LINEAR_RESIDUAL_SIGMAS = 3.0  # the linear region: smoothed residuals within this × their spread on the last half...
LINEAR_RMS_FLOOR = 1e-3  # ... plus this fraction of the initial value (0.1 %: below a J–V's reproducibility)
ETA_AT_H = 1000.0

Interval = tuple[float, float]


def median_filter(y: ArrayLike, window: int = 5) -> NDArray[np.float64]:
    """Running median over ``window`` samples (odd, ≥ 1), centred; the ends repeat the first/last sample
    (methods ref. §7.3: a ~5-sample median suppresses glitches before thresholds are looked for)."""
    if not isinstance(window, (int, np.integer)) or window < 1 or window % 2 == 0:
        raise ValueError(f"median_filter: window={window!r}; allowed: an odd integer >= 1")
    arr = np.asarray(y, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"median_filter: y must be one-dimensional, got shape {arr.shape}")
    if window == 1 or arr.size < 2:
        return arr.copy()
    return _ndimage_median_filter(arr, size=int(window), mode="nearest")


def _intervals(intervals_h: Iterable[Sequence[float | None]]) -> list[Interval]:
    out: list[Interval] = []
    for iv in intervals_h:
        start = float(iv[0])  # type: ignore[arg-type]
        end = math.inf if iv[1] is None else float(iv[1])  # still open (a suspension going on)
        if math.isnan(start) or math.isnan(end) or end < start:
            raise ValueError(f"interval [{start!r}, {end!r}] h; allowed: start <= end, not NaN")
        out.append((start, end))
    return out


def keep_mask(t_h: ArrayLike, intervals_h: Iterable[Sequence[float | None]] = ()) -> NDArray[np.bool_]:
    """True for the samples outside every interval ``[start_h, end_h]`` (closed; ``end_h`` None: still open),
    False inside one."""
    t = np.asarray(t_h, dtype=float)
    keep = np.ones(t.shape, dtype=bool)
    for start, end in _intervals(intervals_h):
        keep &= ~((t >= start) & (t <= end))
    return keep


DENSE_POINTS = 4096
"""Above this many readings a curve is averaged into this many equal-count bins before its figures
(:func:`bin_average`): a first crossing on dense noisy readings comes early by a few σ/|slope|."""


def bin_average(t_h: ArrayLike, y: ArrayLike, max_points: int = DENSE_POINTS
                ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Mean time and mean value of consecutive equal-count bins, at most ``max_points`` of them (the readings as
    they are when there are no more than that). Non-finite readings are dropped first; ``t_h`` must be sorted."""
    t = np.asarray(t_h, dtype=float).ravel()
    v = np.asarray(y, dtype=float).ravel()
    finite = np.isfinite(t) & np.isfinite(v)
    t, v = t[finite], v[finite]
    if max_points < 1:
        raise ValueError(f"bin_average: max_points = {max_points}; allowed: 1 or more")
    if t.size <= max_points:
        return t, v
    edges = np.linspace(0, t.size, max_points + 1).round().astype(int)
    counts = np.diff(edges)
    sums_t = np.add.reduceat(t, edges[:-1])
    sums_v = np.add.reduceat(v, edges[:-1])
    return sums_t / counts, sums_v / counts


@dataclass(frozen=True)
class StabilityFigures:
    """Stability figures (methods ref. §7.3). Times in h from t = 0, the metric in its own unit; None: not available.

    ``*_reached`` says the threshold was crossed by the data; ``*_extrapolated`` that the time comes from the
    straight line fitted to the post-burn-in region instead (never both). ``burn_in_detected`` says ``burn_in_h``
    was found by :func:`detect_burn_in_h` rather than given. ``stabilised_reference`` is the post-burn-in maximum
    (at ``stabilised_reference_h``), ``backextrapolated_reference`` the linear fit at t = 0,
    ``linear_slope_per_h`` that fit's slope (metric per h) and ``linear_slope_stderr_per_h`` its standard error (from
    the unfiltered readings); ``decline_significant`` says the slope is below zero by more than ``DECLINE_SIGMAS``
    standard errors — only then are threshold times extrapolated. ``eta1000`` is the filtered metric at 1000 h when the
    data reach it; otherwise ``eta1000_extrapolated`` is the linear fit's value there (when the decline is
    significant). ``points_used`` and ``points_masked`` count raw readings.
    """

    initial: float | None
    final: float | None
    retained_pct: float | None
    hours: float | None
    t80_h: float | None
    t80_reached: bool
    t80_extrapolated: bool
    t95_h: float | None
    t95_reached: bool
    t95_extrapolated: bool
    ts80_h: float | None
    ts80_reached: bool
    ts80_extrapolated: bool
    ts95_h: float | None
    ts95_reached: bool
    ts95_extrapolated: bool
    ts80_backextrapolated_h: float | None
    ts80_backextrapolated_reached: bool
    burn_in_h: float | None
    burn_in_detected: bool
    stabilised_reference: float | None
    stabilised_reference_h: float | None
    backextrapolated_reference: float | None
    linear_slope_per_h: float | None
    linear_slope_stderr_per_h: float | None
    decline_significant: bool
    eta1000: float | None
    eta1000_extrapolated: float | None
    points_used: int
    points_masked: int

    def to_dict(self) -> dict[str, float | int | bool | None]:
        """JSON-able dict (non-finite numbers become None)."""
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


def _finite_or_none(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _crossing_h(t: NDArray[np.float64], y: NDArray[np.float64], level: float, start: int) -> float | None:
    """First time at or after index ``start`` where ``y`` falls to ``level``, linearly interpolated; None if never."""
    below = np.flatnonzero(y[start:] <= level)
    if below.size == 0:
        return None
    i = start + int(below[0])
    if i == start:
        return float(t[i])
    t0, t1, y0, y1 = t[i - 1], t[i], y[i - 1], y[i]
    return float(t1) if y0 == y1 else float(t0 + (level - y0) * (t1 - t0) / (y1 - y0))


def _line_fit(t: NDArray[np.float64], y: NDArray[np.float64]) -> tuple[float, float] | None:
    """Least-squares y = a + b·t; None with fewer than two distinct times."""
    if t.size < 2 or t[-1] == t[0]:
        return None
    tc = t - t.mean()
    b = float(np.dot(tc, y - y.mean()) / np.dot(tc, tc))
    return float(y.mean() - b * t.mean()), b


DECLINE_SIGMAS = 3.0
"""A linear decline is extrapolated only when the fitted slope is below zero by at least this many of its standard
errors (computed from the unfiltered readings: the median filter's output is correlated). Below that, the slope is
what the noise gives a flat curve, and an extrapolated T80 of it would be a number made of noise."""


SIGNIFICANCE_BLOCKS = 50
"""The slope's standard error is computed from the means of this many consecutive equal-count blocks of the
readings: neighbouring readings are correlated (a tracker's oscillation, lamp flicker, the median filter), and
the residuals of raw readings would give a standard error too small by the square root of their correlation
length (a static cell tracked for 55 h then "declined" at 3.7 σ); what correlation remains between blocks (a
wander slower than a block) inflates it by √((1 + ρ)/(1 − ρ)), ρ the lag-1 autocorrelation of the block residuals."""


def _decline_is_significant(t: NDArray[np.float64], raw: NDArray[np.float64]) -> tuple[bool, float | None]:
    """(whether ``raw`` falls with t by more than ``DECLINE_SIGMAS`` standard errors of the slope, that standard
    error in metric per h); (False, None) with fewer than three distinct times. Computed on block means
    (``SIGNIFICANCE_BLOCKS``)."""
    if t.size > SIGNIFICANCE_BLOCKS:
        t, raw = bin_average(t, raw, SIGNIFICANCE_BLOCKS)
    if t.size < 3 or t[-1] == t[0]:
        return False, None
    fit = _line_fit(t, raw)
    assert fit is not None
    a, b = fit
    tc = t - t.mean()
    dof = t.size - 2
    residual = raw - (a + b * t)
    s2 = float(np.sum(residual**2)) / dof
    se = math.sqrt(s2 / float(np.dot(tc, tc)))
    if residual.size > 3 and np.any(residual):  # blocks still correlated (a wander slower than a block): AR(1)
        rho = float(np.dot(residual[:-1], residual[1:]) / np.dot(residual, residual))
        rho = min(max(rho, 0.0), 0.95)
        se *= math.sqrt((1 + rho) / (1 - rho))  # the variance inflation of a slope under AR(1) residuals
    # as a t ratio with a margin, so that scaling the metric (a unit) cannot move a borderline case across
    return bool(b < 0 and (se == 0 or -b / se > DECLINE_SIGMAS * (1 + 1e-9))), se


def _moving_average(x: NDArray[np.float64], window: int) -> NDArray[np.float64]:
    """Centred running mean over ``window`` samples (shrinking at the ends)."""
    if window <= 1:
        return x.copy()
    c = np.concatenate([[0.0], np.cumsum(x)])
    half = window // 2
    lo = np.clip(np.arange(x.size) - half, 0, x.size)
    hi = np.clip(np.arange(x.size) + half + 1, 0, x.size)
    return (c[hi] - c[lo]) / (hi - lo)


def detect_burn_in_h(t_h: ArrayLike, y: ArrayLike) -> float | None:
    """End of the burn-in of a (filtered, masked) curve, in h.

    The last half of the run is taken as linear: a straight line is fitted to it and the residuals of the whole
    curve from that line are smoothed (running mean over 2 % of the samples). The linear region starts after the
    last sample of the first half whose smoothed residual exceeds ``LINEAR_RESIDUAL_SIGMAS`` × the smoothed
    residuals' standard deviation over the last half plus ``LINEAR_RMS_FLOOR`` × |initial value|; the burn-in
    ends there. When the curve first rises (light soaking: the smoothed curve's maximum exceeds its start by more
    than that tolerance) and the maximum comes before the linear region, the burn-in ends at the maximum instead.
    None with fewer than 3 samples.
    """
    t = np.asarray(t_h, dtype=float)
    v = np.asarray(y, dtype=float)
    if t.size < 3 or t[-1] == t[0]:
        return None
    mid = int(np.searchsorted(t, t[0] + 0.5 * (t[-1] - t[0]), side="left"))
    mid = min(max(mid, 1), t.size - 2)
    fit = _line_fit(t[mid:], v[mid:])
    if fit is None:
        return float(t[0])
    window = max(1, t.size // 50)
    residual = _moving_average(v - (fit[0] + fit[1] * t), window)
    tol = LINEAR_RESIDUAL_SIGMAS * float(np.std(residual[mid:])) + LINEAR_RMS_FLOOR * abs(v[0])
    outside = np.flatnonzero(np.abs(residual[:mid]) > tol)
    i_lin = int(outside[-1]) + 1 if outside.size else 0
    smooth = _moving_average(v, window)
    i_peak = int(np.argmax(v))
    if float(np.max(smooth)) - smooth[0] > tol and i_peak < i_lin:  # a rise above what noise explains
        return float(t[i_peak])
    return float(t[i_lin])


def _extrapolated_h(fit: tuple[float, float] | None, level: float, t_last: float) -> float | None:
    """Time where the fitted line reaches ``level`` (never before the last sample: the data did not cross it)."""
    if fit is None or not fit[1] < 0:
        return None
    a, b = fit
    return max(float((level - a) / b), t_last)


def _threshold(
    t: NDArray[np.float64],
    y: NDArray[np.float64],
    reference: float | None,
    fraction: float,
    start: int,
    fit: tuple[float, float] | None,
) -> tuple[float | None, bool, bool]:
    """(time, reached, extrapolated) of the fall to ``fraction`` × ``reference`` (a positive metric only)."""
    if reference is None or not reference > 0:
        return None, False, False
    level = fraction * reference
    crossed = _crossing_h(t, y, level, start)
    if crossed is not None:
        return crossed, True, False
    extrapolated = _extrapolated_h(fit, level, float(t[-1]))
    return extrapolated, False, extrapolated is not None


def _clean(t_h: ArrayLike, metric: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    t = np.asarray(t_h, dtype=float).ravel()
    y = np.asarray(metric, dtype=float).ravel()
    if t.shape != y.shape:
        raise ValueError(f"stability figures: t_h has {t.size} values, metric {y.size}; allowed: the same number")
    finite = np.isfinite(t) & np.isfinite(y)
    t, y = t[finite], y[finite]
    order = np.argsort(t, kind="stable")
    return t[order], y[order]


def _empty(hours: float | None, used: int, masked: int, burn_in_h: float | None) -> StabilityFigures:
    return StabilityFigures(
        initial=None, final=None, retained_pct=None, hours=hours,
        t80_h=None, t80_reached=False, t80_extrapolated=False, t95_h=None, t95_reached=False, t95_extrapolated=False,
        ts80_h=None, ts80_reached=False, ts80_extrapolated=False, ts95_h=None, ts95_reached=False,
        ts95_extrapolated=False, ts80_backextrapolated_h=None, ts80_backextrapolated_reached=False,
        burn_in_h=burn_in_h, burn_in_detected=False, stabilised_reference=None, stabilised_reference_h=None,
        backextrapolated_reference=None, linear_slope_per_h=None, linear_slope_stderr_per_h=None,
        decline_significant=False, eta1000=None, eta1000_extrapolated=None,
        points_used=used, points_masked=masked,
    )


def stability_figures(
    t_h: ArrayLike,
    metric: ArrayLike,
    *,
    intervals_h: Iterable[Sequence[float | None]] = (),
    burn_in_h: float | None = None,
    median_window: int = 5,
    t_end_h: float | None = None,
) -> StabilityFigures:
    """T80, T95, TS80, TS95, η1000 and the retained metric of a stability curve (methods ref. §7.3).

    Parameters
    ----------
    t_h : array_like
        Stress time of each reading (h from the start of the stress).
    metric : array_like
        The metric (e.g. PCE in %, or MPP power in mW/cm²); non-finite readings are ignored.
    intervals_h : iterable of (start_h, end_h)
        Intervals not to use (suspended, recovering); readings inside them are dropped before anything else.
    burn_in_h : float, optional
        End of the burn-in t_S (h). None: detected by :func:`detect_burn_in_h` (``burn_in_detected`` True).
    median_window : int
        Samples of the running median applied to the kept readings (odd; 1 = none).
    t_end_h : float, optional
        The run's length (h) for ``hours``; default the last reading's time (masked or not).

    Returns
    -------
    StabilityFigures
        The initial value is the filtered metric's first kept sample, the final its last; the linear region is
        ``t ≥ burn_in_h`` (the whole curve if none).

    Notes
    -----
    A first crossing comes early on a noisy curve by a few σ/|slope| (σ after the median filter); for dense readings
    (MPP every few seconds) average them into bins first — :class:`LiveStabilityFigures` does so once it holds
    ``max_points`` points. Periodic J–V (every 30 min) needs no binning.
    """
    t_all, y_all = _clean(t_h, metric)
    keep = keep_mask(t_all, intervals_h)
    t, raw = t_all[keep], y_all[keep]
    masked = int(t_all.size - t.size)
    hours = float(t_end_h) if t_end_h is not None else (float(t_all[-1]) if t_all.size else None)
    if t.size == 0:
        return _empty(hours, 0, masked, burn_in_h)
    y = median_filter(raw, median_window)
    initial, final = float(y[0]), float(y[-1])
    detected = burn_in_h is None
    t_s = detect_burn_in_h(t, y) if detected else float(burn_in_h)
    start_s = int(np.searchsorted(t, t_s, side="left")) if t_s is not None else 0
    start_s = min(start_s, t.size - 1)
    fit = _line_fit(t[start_s:], y[start_s:])
    significant, slope_se = _decline_is_significant(t[start_s:], raw[start_s:])
    falling = fit if significant else None  # the line threshold times are extrapolated along, if any
    t80 = _threshold(t, y, initial, 0.80, 0, falling)
    t95 = _threshold(t, y, initial, 0.95, 0, falling)
    i_ref = start_s + int(np.argmax(y[start_s:]))
    y_ref = float(y[i_ref])
    ts80 = _threshold(t, y, y_ref, 0.80, i_ref, falling)
    ts95 = _threshold(t, y, y_ref, 0.95, i_ref, falling)
    back = fit[0] if fit is not None else None
    ts80_back = _threshold(t, y, back, 0.80, start_s, falling)
    eta, eta_x = None, None
    if t[0] <= ETA_AT_H <= t[-1]:
        eta = float(np.interp(ETA_AT_H, t, y))
    elif falling is not None and t[-1] < ETA_AT_H:
        eta_x = falling[0] + falling[1] * ETA_AT_H
    return StabilityFigures(
        initial=initial,
        final=final,
        retained_pct=_finite_or_none(100.0 * final / initial) if initial != 0 else None,
        hours=hours,
        t80_h=t80[0], t80_reached=t80[1], t80_extrapolated=t80[2],
        t95_h=t95[0], t95_reached=t95[1], t95_extrapolated=t95[2],
        ts80_h=ts80[0], ts80_reached=ts80[1], ts80_extrapolated=ts80[2],
        ts95_h=ts95[0], ts95_reached=ts95[1], ts95_extrapolated=ts95[2],
        ts80_backextrapolated_h=ts80_back[0], ts80_backextrapolated_reached=ts80_back[1],
        burn_in_h=t_s, burn_in_detected=detected and t_s is not None,
        stabilised_reference=y_ref, stabilised_reference_h=float(t[i_ref]),
        backextrapolated_reference=back, linear_slope_per_h=fit[1] if fit is not None else None,
        linear_slope_stderr_per_h=_finite_or_none(slope_se), decline_significant=significant,
        eta1000=eta, eta1000_extrapolated=_finite_or_none(eta_x),
        points_used=int(t.size), points_masked=masked,
    )


def retained_at(
    t_h: ArrayLike,
    metric: ArrayLike,
    at_h: float,
    *,
    intervals_h: Iterable[Sequence[float | None]] = (),
    median_window: int = 5,
) -> float | None:
    """Retained metric at ``at_h`` (h), in % of the initial value (methods ref. §7.3: PCE(t)/PCE(t0)), from the
    filtered kept readings interpolated linearly; None outside the kept readings' time range."""
    t_all, y_all = _clean(t_h, metric)
    keep = keep_mask(t_all, intervals_h)
    t, y = t_all[keep], y_all[keep]
    if t.size == 0 or not t[0] <= at_h <= t[-1]:
        return None
    y = median_filter(y, median_window)
    if y[0] == 0:
        return None
    return _finite_or_none(100.0 * float(np.interp(at_h, t, y)) / float(y[0]))


def stabilised_value(
    t_s: ArrayLike, y: ArrayLike, *, window_s: float, max_drift_per_h: float
) -> tuple[float | None, bool, float | None]:
    """The stabilised value of a settling quantity (e.g. PCE under MPP tracking) with a drift criterion.

    Over the last ``window_s`` (s) of readings, a straight line is fitted; its slope relative to the window's mean
    is the drift (fraction per hour). The value is stabilised when the readings span the whole window and
    |drift| ≤ ``max_drift_per_h`` (e.g. 0.005 = 0.5 %/h): stop on drift, not on time (the practice of the
    stabilised-efficiency ("asymptotic" or MPP-tracked) measurements of certification labs such as NREL's).

    Returns
    -------
    (value, stable, drift_per_h)
        ``value``: the window's mean when stable, else None; ``drift_per_h``: None when the window is not yet
        covered by the readings (or its mean is 0).
    """
    if not (math.isfinite(window_s) and window_s > 0):
        raise ValueError(f"stabilised_value: window_s={window_s!r}; allowed: a finite number > 0")
    if not (math.isfinite(max_drift_per_h) and max_drift_per_h >= 0):
        raise ValueError(f"stabilised_value: max_drift_per_h={max_drift_per_h!r}; allowed: a finite number >= 0")
    t, v = _clean(t_s, y)
    if t.size < 2 or t[-1] - t[0] < window_s:
        return None, False, None
    sel = t >= t[-1] - window_s
    fit = _line_fit(t[sel], v[sel])
    mean = float(v[sel].mean())
    if fit is None or mean == 0:
        return None, False, None
    drift = fit[1] * 3600.0 / abs(mean)
    stable = abs(drift) <= max_drift_per_h
    return (mean if stable else None), stable, drift


class LiveStabilityFigures:
    """Stability figures updated reading by reading, in bounded memory.

    Keeps the first ``median_window`` readings as they are (they make the initial value, where the curve changes
    fastest) and at most ``max_points`` further points of equal weight: readings are averaged in bins of
    ``resolution`` readings (count-weighted means of time and value; each point keeps its time span); when the
    buffer is full, neighbouring pairs are merged and the bin size doubles. A run of any length thus costs
    O(``max_points``) memory and :meth:`figures` O(``max_points``) time, with the same time resolution over the
    whole run. Readings inside a masked interval are dropped (also merged points whose span touches it).
    :meth:`figures` is :func:`stability_figures` on the kept points; until the buffer first fills it equals the
    batch result on the same readings exactly.
    """

    _FIELDS = ("_t", "_y", "_w", "_lo", "_hi")

    def __init__(self, max_points: int = 4096, *, burn_in_h: float | None = None, median_window: int = 5) -> None:
        if not isinstance(max_points, int) or max_points < 16:
            raise ValueError(f"LiveStabilityFigures: max_points={max_points!r}; allowed: an integer >= 16")
        median_filter([0.0], median_window)  # the window's one-line error now, not at the first figures()
        self.max_points = max_points
        self.burn_in_h = burn_in_h
        self.median_window = median_window
        for name in self._FIELDS:
            setattr(self, name, np.empty(max_points))
        self._head_t: list[float] = []
        self._head_y: list[float] = []
        self._n = 0
        self.resolution = 1  # readings per point
        self._pending: list[float] = [0.0, 0.0, 0.0, 0.0, 0.0]  # sum t·w, sum y·w, w, lo, hi
        self._intervals: list[Interval] = []
        self._masked = 0
        self._last_t: float | None = None

    def __len__(self) -> int:
        """Points held (the buffer and the bin being filled)."""
        return len(self._head_t) + self._n + (1 if self._pending[2] else 0)

    def _inside_mask(self, t: float) -> bool:
        return any(a <= t <= b for a, b in self._intervals)

    def add(self, t_h: float, value: float) -> None:
        """Add a reading at ``t_h`` (h, not before the previous one); non-finite values are ignored."""
        t, v = float(t_h), float(value)
        if not math.isfinite(t):
            raise ValueError(f"LiveStabilityFigures.add: t_h={t_h!r}; allowed: a finite number")
        if self._last_t is not None and t < self._last_t:
            raise ValueError(f"LiveStabilityFigures.add: t_h={t!r} before the previous reading {self._last_t!r}")
        self._last_t = t
        if not math.isfinite(v):
            return
        if self._inside_mask(t):
            self._masked += 1
            return
        p = self._pending
        if self._n == 0 and not p[2] and len(self._head_t) < max(self.median_window, 3):
            self._head_t.append(t)
            self._head_y.append(v)
            return
        if not p[2]:
            p[3] = t
        p[0] += t
        p[1] += v
        p[2] += 1.0
        p[4] = t
        if p[2] >= self.resolution:
            self._push()

    def _push(self) -> None:
        p = self._pending
        if self._n == self.max_points:
            self._merge()
        n = self._n
        self._t[n], self._y[n], self._w[n], self._lo[n], self._hi[n] = p[0] / p[2], p[1] / p[2], p[2], p[3], p[4]
        self._n = n + 1
        self._pending = [0.0, 0.0, 0.0, 0.0, 0.0]

    def _merge(self) -> None:
        n = self._n - self._n % 2
        w0, w1 = self._w[:n:2], self._w[1:n:2]
        w = w0 + w1
        t = (self._t[:n:2] * w0 + self._t[1:n:2] * w1) / w
        y = (self._y[:n:2] * w0 + self._y[1:n:2] * w1) / w
        lo, hi = self._lo[:n:2].copy(), self._hi[1:n:2].copy()
        m = n // 2
        self._t[:m], self._y[:m], self._w[:m], self._lo[:m], self._hi[:m] = t, y, w, lo, hi
        if self._n % 2:  # the odd last point stays as it is
            for name in self._FIELDS:
                arr = getattr(self, name)
                arr[m] = arr[self._n - 1]
            m += 1
        self._n = m
        self.resolution *= 2

    def mask(self, start_h: float, end_h: float) -> None:
        """Exclude ``[start_h, end_h]`` (h): points already inside are dropped, later readings inside it too."""
        (start, end), = _intervals([(start_h, end_h)])
        head = [(t, y) for t, y in zip(self._head_t, self._head_y, strict=True) if not start <= t <= end]
        self._masked += len(self._head_t) - len(head)
        self._head_t, self._head_y = [t for t, _ in head], [y for _, y in head]
        n = self._n
        drop = (self._lo[:n] <= end) & (self._hi[:n] >= start)
        if drop.any():
            self._masked += int(self._w[:n][drop].sum())
            keep = ~drop
            m = int(keep.sum())
            for name in self._FIELDS:
                arr = getattr(self, name)
                arr[:m] = arr[:n][keep]
            self._n = m
        p = self._pending
        if p[2] and p[3] <= end and p[4] >= start:
            self._masked += int(p[2])
            self._pending = [0.0, 0.0, 0.0, 0.0, 0.0]
        self._intervals = _merge_intervals([*self._intervals, (start, end)])

    def _points(self) -> tuple[NDArray[np.float64], NDArray[np.float64], float]:
        n = self._n
        t = np.concatenate([self._head_t, self._t[:n]])
        y = np.concatenate([self._head_y, self._y[:n]])
        used = len(self._head_t) + float(self._w[:n].sum())
        p = self._pending
        if p[2]:
            t = np.append(t, p[0] / p[2])
            y = np.append(y, p[1] / p[2])
            used += p[2]
        return t, y, used

    def figures(self) -> StabilityFigures:
        """:func:`stability_figures` of the kept points (``points_used`` / ``points_masked`` count readings)."""
        t, y, used = self._points()
        fig = stability_figures(t, y, burn_in_h=self.burn_in_h, median_window=self.median_window,
                                t_end_h=self._last_t)
        return replace(fig, points_used=int(used), points_masked=self._masked)


def _merge_intervals(intervals: list[Interval]) -> list[Interval]:
    out: list[Interval] = []
    for start, end in sorted(intervals):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out
