"""External quantum efficiency (EQE): substitution method, integrated Jsc, spectral mismatch, order sorting.

Conventions: wavelengths in nm, EQE as a fraction, responsivity in A/W, spectral irradiance in W m⁻² nm⁻¹,
current density in mA/cm². R = EQE·λ/1239.842 (Methods ref. §3.1). All integrals are trapezoids.

* :func:`eqe_from_ratio` — reference-detector (substitution) method, Methods ref. §3.2.
* :func:`integrated_jsc_mA_cm2` — Jsc = ∫SR·E_AM1.5G dλ (ASTM G173), Methods ref. §3.5.
* :func:`spectral_mismatch` — mismatch factor M of IEC 60904-7 / ASTM E973, Methods ref. §2.1, on a common grid;
  :func:`mismatch_factor` — the same, each response integrated over its own range.
* :func:`check_band_edge` — did the scan pass the absorption edge (Methods ref. §3.5).
* :func:`check_order_sorting` — second-order leakage of a grating monochromator through each filter's
  transmission (:class:`LongPassFilter`), Methods ref. §3.6.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from labctl.analysis.spectra import HC_OVER_Q_NM_V, FloatOrArray, am15g_W_m2_nm, g173_wavelength_nm

SpectrumSpec = str | tuple[ArrayLike, ArrayLike]
Curve = tuple[ArrayLike, ArrayLike]


def _as_result(x: NDArray[np.float64]) -> FloatOrArray:
    return float(x) if np.ndim(x) == 0 else x


def eqe_from_ratio(
    signal_dut: ArrayLike,
    gain_dut_V_A: ArrayLike,
    signal_ref: ArrayLike,
    gain_ref_V_A: ArrayLike,
    responsivity_ref_A_W: ArrayLike,
    wavelength_nm: ArrayLike,
) -> FloatOrArray:
    """EQE of the device under test by substitution against a calibrated reference detector (Methods ref. §3.2).

    EQE_DUT = (L_DUT/G_DUT)/(L_ref/G_ref) · R_ref(λ)·1239.842/λ[nm]

    ``signal_*`` are the lock-in readings (V rms, or any unit as long as both are read the same way, so
    that factors such as √2/π cancel), ``gain_*_V_A`` the transimpedance gains in V/A. Vectorised over all
    arguments. Case E1: λ = 600 nm, R_ref = 0.40 A/W, L_ref = 0.4502 V, L_DUT = 0.3466 V, equal gains →
    0.63635. A zero reference signal (no light on the reference) gives NaN.
    """
    g_dut = np.asarray(gain_dut_V_A, dtype=float)
    g_ref = np.asarray(gain_ref_V_A, dtype=float)
    r_ref = np.asarray(responsivity_ref_A_W, dtype=float)
    wl = np.asarray(wavelength_nm, dtype=float)
    if np.any(g_dut <= 0) or np.any(g_ref <= 0):
        raise ValueError("gains must be > 0 V/A")
    if np.any(r_ref <= 0) or np.any(wl <= 0):
        raise ValueError("responsivity_ref_A_W and wavelength_nm must be > 0")
    s_ref = np.asarray(signal_ref, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (np.asarray(signal_dut, dtype=float) / g_dut) / (s_ref / g_ref)
    ratio = np.where(s_ref == 0, np.nan, ratio)
    return _as_result(ratio * r_ref * HC_OVER_Q_NM_V / wl)


def _sorted_curve(wavelength_nm: ArrayLike, values: ArrayLike, what: str) -> tuple[NDArray, NDArray]:
    wl = np.asarray(wavelength_nm, dtype=float).ravel()
    y = np.asarray(values, dtype=float).ravel()
    if wl.shape != y.shape:
        raise ValueError(f"wavelength_nm and {what} differ in length: {wl.size} != {y.size}")
    if wl.size < 2:
        raise ValueError(f"need at least 2 points of {what}, got {wl.size}")
    if not (np.all(np.isfinite(wl)) and np.all(np.isfinite(y))):
        raise ValueError(f"wavelength_nm and {what} must be finite")
    order = np.argsort(wl, kind="stable")
    wl, y = wl[order], y[order]
    if np.any(np.diff(wl) == 0):
        raise ValueError(f"duplicate wavelengths in {what}: {sorted(set(wl[1:][np.diff(wl) == 0]))}")
    if wl[0] <= 0:
        raise ValueError("wavelength_nm must be > 0")
    return wl, y


def _spectrum_arrays(spectrum: SpectrumSpec) -> tuple[NDArray, NDArray]:
    if isinstance(spectrum, str):
        if spectrum.replace(" ", "").upper() not in {"AM1.5G", "G173", "ASTMG173"}:
            raise ValueError(f"unknown spectrum {spectrum!r}: use 'AM1.5G' or a (wavelength_nm, W/m²/nm) pair")
        return g173_wavelength_nm(), am15g_W_m2_nm()
    wl, e = spectrum
    return _sorted_curve(wl, e, "spectrum")


def integrated_jsc_mA_cm2(wavelength_nm: ArrayLike, eqe: ArrayLike, spectrum: SpectrumSpec = "AM1.5G") -> float:
    """Short-circuit current density in mA/cm² from an EQE curve (Methods ref. §3.5; ASTM G173).

    Jsc = ∫ EQE(λ)·λ/1239.842·E(λ) dλ  [A/m²] ÷ 10, with E the AM1.5G global spectrum (ASTM G173-03) or a
    ``(wavelength_nm, irradiance_W_m2_nm)`` pair.

    The EQE is linearly interpolated onto the spectrum's grid (never the spectrum onto the EQE grid: a 10 nm
    grid loses 1.5 %), with the measured wavelengths added to the grid, and integrated over exactly the
    measured range [λ_first, λ_last]; outside it the EQE counts as zero. Points may come in any order.

    Case S2 (EQE = 1 from 280 nm to λg = 1239.842/Eg) is reproduced to 1e-6 mA/cm². Case S3 (EQE = 0.80 on
    300–760 nm) gives 19.7314 mA/cm², 0.0065 below the published 19.738: that value also counts the trapezoid
    ramps from 0.80 to zero over the G173 steps just outside the range (299.5→300 and 760→761 nm).
    """
    wl, q = _sorted_curve(wavelength_nm, eqe, "eqe")
    grid, irr = _spectrum_arrays(spectrum)
    x = np.union1d(grid[(grid > wl[0]) & (grid < wl[-1])], wl)
    e = np.interp(x, grid, irr, left=0.0, right=0.0)
    sr_A_W = np.interp(x, wl, q) * x / HC_OVER_Q_NM_V
    return float(np.trapezoid(sr_A_W * e, x)) / 10.0


def spectral_mismatch(
    wavelength_nm: ArrayLike,
    e_sim: ArrayLike,
    s_ref: ArrayLike,
    s_test: ArrayLike,
    e_ref: ArrayLike | None = None,
) -> float:
    """Spectral mismatch factor M (IEC 60904-7 / ASTM E973; Methods ref. §2.1).

    M = [∫E_ref·S_R dλ · ∫E_sim·S_T dλ] / [∫E_sim·S_R dλ · ∫E_ref·S_T dλ]

    All spectra are sampled on the common grid ``wavelength_nm`` (any order); a scalar stands for a flat
    spectrum (e.g. ``s_ref=1`` for a thermal detector). ``e_sim``/``e_ref`` are irradiances and
    ``s_ref``/``s_test`` responsivities of the reference cell and the device, each on any relative scale: M is
    invariant to scaling any of them. ``e_ref`` defaults to AM1.5G (ASTM G173) interpolated onto the grid.
    M = 1 exactly when ``e_sim`` equals ``e_ref`` or ``s_test`` equals ``s_ref``. The device sees
    M × the irradiance set with the reference cell (workflow: Methods ref. §2.1, :mod:`labctl.analysis.jv`).
    """
    wl = np.asarray(wavelength_nm, dtype=float).ravel()
    if wl.size < 2 or not np.all(np.isfinite(wl)) or np.any(wl <= 0):
        raise ValueError("wavelength_nm needs at least 2 finite values > 0")
    order = np.argsort(wl, kind="stable")
    if np.any(np.diff(wl[order]) == 0):
        raise ValueError("duplicate wavelengths in wavelength_nm")
    e_ref_arr = am15g_W_m2_nm(wl) if e_ref is None else e_ref
    arrays = {}
    for name, y in (("e_sim", e_sim), ("s_ref", s_ref), ("s_test", s_test), ("e_ref", e_ref_arr)):
        a = np.asarray(y, dtype=float)
        if a.ndim and a.size != wl.size:
            raise ValueError(f"{name} has {a.size} values for {wl.size} wavelengths")
        a = np.broadcast_to(a.ravel() if a.ndim else a, wl.shape)
        if not np.all(np.isfinite(a)) or np.any(a < 0):
            raise ValueError(f"{name} must be finite and >= 0")
        arrays[name] = a[order]
    x = wl[order]

    def integral(a: NDArray, b: NDArray) -> float:
        value = float(np.trapezoid(a * b, x))
        if not value > 0:
            raise ValueError("a spectrum and a responsivity do not overlap (zero integral)")
        return value

    ref_r = integral(arrays["e_ref"], arrays["s_ref"])
    sim_t = integral(arrays["e_sim"], arrays["s_test"])
    sim_r = integral(arrays["e_sim"], arrays["s_ref"])
    ref_t = integral(arrays["e_ref"], arrays["s_test"])
    return (ref_r * sim_t) / (sim_r * ref_t)


def response_support_nm(wavelength_nm: ArrayLike, response: ArrayLike, what: str = "response") -> tuple[float, float]:
    """(first, last) wavelength in nm of the range over which a tabulated response is not zero.

    Zeros at the ends of a table (a reference cell with no response below 300 nm) shrink the range to the last
    leading and the first trailing zero: beyond them the linear interpolant is zero. Raises ValueError for a
    response that is negative somewhere or zero everywhere.
    """
    wl, y = _sorted_curve(wavelength_nm, response, what)
    if np.any(y < 0):
        raise ValueError(f"{what} must be >= 0")
    nonzero = np.flatnonzero(y > 0)
    if nonzero.size == 0:
        raise ValueError(f"{what} is zero everywhere")
    return float(wl[max(nonzero[0] - 1, 0)]), float(wl[min(nonzero[-1] + 1, wl.size - 1)])


def _overlap_integral(response: tuple[NDArray, NDArray], spectrum: tuple[NDArray, NDArray],
                      support: tuple[float, float]) -> float:
    """∫ spectrum·response dλ over ``support`` (nm), both linearly interpolated onto the union of their samples
    and a 0.5 nm lattice there; the spectrum counts as zero outside its table."""
    lo, hi = support
    (rx, ry), (ex, ey) = response, spectrum
    grid = np.unique(np.concatenate((rx[(rx >= lo) & (rx <= hi)], ex[(ex > lo) & (ex < hi)],
                                     np.arange(lo, hi, 0.5), [lo, hi])))
    value = float(np.trapezoid(np.interp(grid, rx, ry) * np.interp(grid, ex, ey, left=0.0, right=0.0), grid))
    if not value > 0:
        raise ValueError(f"a spectrum and a response do not overlap over {lo:g}–{hi:g} nm (zero integral)")
    return value


def mismatch_factor(s_ref: Curve, s_test: Curve, e_sim: Curve, e_ref: Curve | None = None) -> float:
    """Spectral mismatch factor M with each response integrated over its own range (IEC 60904-7; Methods ref. §2.1).

    M = [∫E_ref·S_R dλ · ∫E_sim·S_T dλ] / [∫E_sim·S_R dλ · ∫E_ref·S_T dλ]

    Each argument is a ``(wavelength_nm, values)`` table on its own grid: ``s_ref`` the reference cell's spectral
    response over its whole table (zeros allowed), ``s_test`` the device's over the range where it is known
    (outside it the device counts as not responding: the caller must know that, e.g. by
    :func:`check_band_edge`), ``e_sim`` the simulator's spectrum, ``e_ref`` the reference spectrum (default
    AM1.5G, ASTM G173-03, zero outside 280–4000 nm by definition). The integrals over S_R run over the range
    where S_R is not zero (:func:`response_support_nm`), those over S_T over the range of its table.
    ``e_sim`` must cover both ranges (ValueError naming the ranges): outside its table the simulator's output is
    unknown, not zero. Scales of all four cancel.
    """
    r_wl, r_y = _sorted_curve(*s_ref, "s_ref")
    t_wl, t_y = _sorted_curve(*s_test, "s_test")
    sim = _sorted_curve(*e_sim, "e_sim")
    ref = _spectrum_arrays("AM1.5G") if e_ref is None else _sorted_curve(*e_ref, "e_ref")
    for name, (_, y) in (("e_sim", sim), ("e_ref", ref), ("s_test", (t_wl, t_y))):
        if np.any(y < 0):
            raise ValueError(f"{name} must be >= 0")
    r_range = response_support_nm(r_wl, r_y, "s_ref")
    t_range = (float(t_wl[0]), float(t_wl[-1]))
    need = (min(r_range[0], t_range[0]), max(r_range[1], t_range[1]))
    if sim[0][0] > need[0] or sim[0][-1] < need[1]:
        raise ValueError(
            f"e_sim covers {sim[0][0]:g}–{sim[0][-1]:g} nm; needed {need[0]:g}–{need[1]:g} nm (s_ref responds over "
            f"{r_range[0]:g}–{r_range[1]:g} nm, s_test is known over {t_range[0]:g}–{t_range[1]:g} nm)"
        )
    if e_ref is not None and (ref[0][0] > need[0] or ref[0][-1] < need[1]):
        raise ValueError(f"e_ref covers {ref[0][0]:g}–{ref[0][-1]:g} nm; needed {need[0]:g}–{need[1]:g} nm")
    ref_r = _overlap_integral((r_wl, r_y), ref, r_range)
    sim_r = _overlap_integral((r_wl, r_y), sim, r_range)
    ref_t = _overlap_integral((t_wl, t_y), ref, t_range)
    sim_t = _overlap_integral((t_wl, t_y), sim, t_range)
    return (ref_r * sim_t) / (sim_r * ref_t)


def jsc_ratio(eqe_jsc_mA_cm2: float, jv_jsc_mA_cm2: float) -> float:
    """Integrated-EQE Jsc over J–V Jsc (both mA/cm², photocurrent-positive; Methods ref. §3.5)."""
    if not jv_jsc_mA_cm2 > 0:
        raise ValueError(f"jv_jsc_mA_cm2 must be > 0, got {jv_jsc_mA_cm2!r}")
    return float(eqe_jsc_mA_cm2) / float(jv_jsc_mA_cm2)


def check_jsc_agreement(eqe_jsc_mA_cm2: float, jv_jsc_mA_cm2: float, tolerance: float = 0.05) -> list[str]:
    """Compare integrated-EQE Jsc with J–V Jsc (Methods ref. §3.5, ISOS reporting checklist).

    Returns an empty list when |ratio − 1| ≤ ``tolerance`` (fraction), else one human-readable problem: a
    difference of more than a few % points to a spectral, area, bias-light or speed problem.
    """
    r = jsc_ratio(eqe_jsc_mA_cm2, jv_jsc_mA_cm2)
    if abs(r - 1.0) <= tolerance:
        return []
    return [
        f"integrated EQE Jsc {eqe_jsc_mA_cm2:.3f} mA/cm² differs from the J–V Jsc {jv_jsc_mA_cm2:.3f} mA/cm² "
        f"by {100 * (r - 1):+.1f} % (allowed ±{100 * tolerance:g} %): check the simulator spectrum and mismatch, "
        "the aperture area, bias light and the measurement speed"
    ]


#: default fraction of its maximum below which the EQE at the last point shows that the scan passed the band edge
BAND_EDGE_FRACTION = 0.01


@dataclass(frozen=True)
class BandEdgeCheck:
    """Did an EQE scan reach the absorption edge at its long-wavelength end? (see :func:`check_band_edge`)."""

    reached: bool
    fraction: float
    last_wavelength_nm: float
    eqe_last: float
    eqe_max: float

    @property
    def last_fraction(self) -> float:
        """EQE at the last point over the maximum EQE (NaN when the maximum is not > 0)."""
        return self.eqe_last / self.eqe_max if self.eqe_max > 0 else float("nan")


def check_band_edge(wavelength_nm: ArrayLike, eqe: ArrayLike, fraction: float = BAND_EDGE_FRACTION) -> BandEdgeCheck:
    """Whether an EQE curve ends beyond the device's absorption edge (Methods ref. §3.5).

    Reached when the EQE at the longest measured wavelength is below ``fraction`` of the curve's maximum: only
    then does the integrated Jsc miss nothing at the long end, and may a mismatch factor take the EQE as zero
    beyond the scan (IEC 60904-7). Points may come in any order; a curve with no positive value is not reached.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction!r}")
    wl, q = _sorted_curve(wavelength_nm, eqe, "eqe")
    peak, last = float(np.max(q)), float(q[-1])
    return BandEdgeCheck(bool(peak > 0 and last < fraction * peak), float(fraction), float(wl[-1]), last, peak)


# --- order-sorting filters (Methods ref. §3.6) ---------------------------------------------------------------------
#: default bound on the second-order leak T(λ/2)/T(λ) of an order-sorting filter: a leak L adds at most ≈ L/2 of the
#: EQE at λ/2 as a false EQE below the band gap (0.05 % absolute at L = 1e-3) and changes the EQE above it by ≲ L
MAX_SECOND_ORDER_LEAK = 1e-3
#: default lowest first-order transmission, as a fraction of the filter's peak, where a filter may be used
MIN_FIRST_ORDER_FRACTION = 0.9
#: default edge of a long-pass filter given only by its cut-on: 8 % of it, the soft end of absorbing glass (§3.6)
DEFAULT_EDGE_FRACTION = 0.08


@dataclass(frozen=True)
class LongPassFilter:
    """A long-pass (order-sorting) filter described as on a datasheet (Methods ref. §3.6).

    ``cut_on_nm``: 50 % of the peak transmission; ``edge_nm``: from there down to the blocking level (absorbing
    glass: 5–8 % of the cut-on); ``peak_transmission`` and ``blocking`` (transmission far below the cut-on).
    Transmission model: a logistic edge in wavelength through these points,

        T(λ) = blocking + (peak − blocking) / (1 + exp(−(λ − cut_on)/w)),   w = edge / ln((peak − blocking)/blocking)

    so that T(cut_on) ≈ peak/2 and T(cut_on − edge) = 2·blocking. The simulated bench uses the same model.
    """

    cut_on_nm: float
    edge_nm: float
    peak_transmission: float = 0.9
    blocking: float = 1e-5

    def __post_init__(self) -> None:
        if not (self.cut_on_nm > 0 and self.edge_nm > 0):
            raise ValueError(f"cut_on_nm and edge_nm must be > 0, got {self.cut_on_nm!r}, {self.edge_nm!r}")
        if not 0 < self.blocking < self.peak_transmission <= 1:
            raise ValueError(f"need 0 < blocking < peak_transmission <= 1, got {self.blocking!r}, "
                             f"{self.peak_transmission!r}")

    @classmethod
    def from_cut_on(cls, cut_on_nm: float) -> LongPassFilter:
        """A filter known only by its cut-on: edge :data:`DEFAULT_EDGE_FRACTION` of it, default peak and blocking."""
        return cls(cut_on_nm, DEFAULT_EDGE_FRACTION * cut_on_nm)

    @property
    def width_nm(self) -> float:
        """Logistic width w of the edge (nm)."""
        return self.edge_nm / math.log((self.peak_transmission - self.blocking) / self.blocking)

    def transmission(self, wavelength_nm: ArrayLike) -> FloatOrArray:
        """Transmission (fraction) at ``wavelength_nm``."""
        x = (np.asarray(wavelength_nm, dtype=float) - self.cut_on_nm) / self.width_nm
        t = self.blocking + (self.peak_transmission - self.blocking) / (1.0 + np.exp(-np.clip(x, -700.0, 700.0)))
        return _as_result(t)

    def describe(self) -> str:
        return f"{self.cut_on_nm:g} nm long-pass, edge {self.edge_nm:g} nm"


@dataclass(frozen=True)
class OrderSortingRow:
    """One row of an order-sorting table: from ``start_nm`` to ``stop_nm`` (monochromator setting, nm, inclusive)
    ``filter`` is in the beam (None: no filter)."""

    start_nm: float
    stop_nm: float
    filter: LongPassFilter | None = None

    def describe(self) -> str:
        filt = "no filter" if self.filter is None else self.filter.describe()
        return f"{self.start_nm:g}–{self.stop_nm:g} nm, {filt}"


def _as_row(row: OrderSortingRow | Mapping | Sequence, k: int) -> OrderSortingRow:
    r = row if isinstance(row, OrderSortingRow) else (
        OrderSortingRow(**row) if isinstance(row, Mapping) else OrderSortingRow(*row)
    )
    if not (0 < r.start_nm <= r.stop_nm):
        raise ValueError(f"order-sorting row {k}: need 0 < start_nm <= stop_nm, got {r.start_nm}–{r.stop_nm} nm")
    if r.filter is not None and not isinstance(r.filter, LongPassFilter):
        raise ValueError(f"order-sorting row {k}: filter must be a LongPassFilter or None, got {r.filter!r}")
    return r


def _runs(grid: NDArray, bad: NDArray) -> str:
    """'a–b nm, c–d nm' for the contiguous runs of ``bad`` on ``grid``."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], bad.astype(np.int8), [0]))))
    return ", ".join(f"{grid[i]:.1f}–{grid[j - 1]:.1f} nm" for i, j in zip(edges[::2], edges[1::2], strict=True))


def second_order_leak(filt: LongPassFilter, wavelength_nm: ArrayLike) -> FloatOrArray:
    """Second-order leak T(λ/2)/T(λ) of ``filt`` at dial setting λ (Methods ref. §3.6).

    It is the second-order power relative to the first for a lamp and grating that deliver equal power at λ and
    λ/2; the lamp's UV fall-off and the smaller second-order bandwidth usually make the real ratio smaller, a
    detector more sensitive at λ/2 than at λ (a cell below its gap) makes the error it causes larger.
    """
    lam = np.asarray(wavelength_nm, dtype=float)
    return _as_result(np.asarray(filt.transmission(lam / 2)) / np.asarray(filt.transmission(lam)))


def check_order_sorting(
    table: Iterable[OrderSortingRow | Mapping | Sequence],
    lamp_min_nm: float = 250.0,
    max_leak: float = MAX_SECOND_ORDER_LEAK,
    min_first_order: float = MIN_FIRST_ORDER_FRACTION,
) -> list[str]:
    """Check an order-sorting table against each filter's transmission (Methods ref. §3.6); returns the problems.

    At dial setting λ a grating also passes λ/2 (second order; λ/3 is blocked whenever λ/2 is). Each row (an
    :class:`OrderSortingRow`, a mapping with its fields or a tuple ``(start_nm, stop_nm, filter)``) is checked
    on a 0.1 nm grid over its whole range:

    * no filter: λ/2 reaches the detector where λ ≥ 2·``lamp_min_nm`` (shortest wavelength the lamp and
      optics deliver, about 250–300 nm for a Xe arc);
    * a :class:`LongPassFilter`: the second-order leak T(λ/2)/T(λ) (:func:`second_order_leak`) must not exceed
      ``max_leak``, and the first order must pass at least ``min_first_order`` of the peak transmission (on the
      edge the signal is small and follows the filter's temperature and angle).

    Returns one human-readable message per offending row and rule (empty list: the table is safe). Malformed
    rows raise ValueError.
    """
    if not lamp_min_nm > 0:
        raise ValueError(f"lamp_min_nm must be > 0, got {lamp_min_nm}")
    if not (0 < max_leak < 1 and 0 <= min_first_order <= 1):
        raise ValueError(f"need 0 < max_leak < 1 and 0 <= min_first_order <= 1, got {max_leak}, {min_first_order}")
    problems: list[str] = []
    for k, raw in enumerate(table, start=1):
        r = _as_row(raw, k)
        head = f"row {k} ({r.describe()})"
        grid = np.linspace(r.start_nm, r.stop_nm, max(2, int(math.ceil((r.stop_nm - r.start_nm) / 0.1)) + 1))
        if r.filter is None:
            limit = 2.0 * lamp_min_nm
            if r.stop_nm >= limit:
                problems.append(
                    f"{head}: second order λ/2 is not blocked for {_runs(grid, grid >= limit)} "
                    f"(without a filter only λ < 2·λ_min = {limit:g} nm is allowed, λ_min = {lamp_min_nm:g} nm)"
                )
            continue
        leak = np.asarray(second_order_leak(r.filter, grid))
        if np.any(leak > max_leak):
            problems.append(
                f"{head}: second order λ/2 leaks up to {100 * leak.max():.2g} % of the first order (T(λ/2)/T(λ); "
                f"allowed ≤ {100 * max_leak:g} %) for {_runs(grid, leak > max_leak)}"
            )
        first = np.asarray(r.filter.transmission(grid)) / r.filter.peak_transmission
        if np.any(first < min_first_order):
            problems.append(
                f"{head}: the filter edge attenuates the first order itself for {_runs(grid, first < min_first_order)} "
                f"(down to {100 * first.min():.2g} % of its peak transmission; allowed ≥ {100 * min_first_order:g} %)"
            )
    return problems
