"""External quantum efficiency (EQE): substitution method, integrated Jsc, spectral mismatch, order sorting.

Conventions: wavelengths in nm, EQE as a fraction, responsivity in A/W, spectral irradiance in W m⁻² nm⁻¹,
current density in mA/cm². R = EQE·λ/1239.842 (Methods ref. §3.1). All integrals are trapezoids.

* :func:`eqe_from_ratio` — reference-detector (substitution) method, Methods ref. §3.2.
* :func:`integrated_jsc_mA_cm2` — Jsc = ∫SR·E_AM1.5G dλ (ASTM G173), Methods ref. §3.5.
* :func:`spectral_mismatch` — mismatch factor M of IEC 60904-7 / ASTM E973, Methods ref. §2.1.
* :func:`check_order_sorting` — second-order leakage of a grating monochromator, Methods ref. §3.6.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from labctl.analysis.spectra import HC_OVER_Q_NM_V, FloatOrArray, am15g_W_m2_nm, g173_wavelength_nm

SpectrumSpec = str | tuple[ArrayLike, ArrayLike]
#: wavelengths closer than this (nm) count as equal in the order-sorting rules (776 nm vs 2·400 − 0.06·400)
_NM_TOL = 1e-6


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


@dataclass(frozen=True)
class OrderSortingRow:
    """One row of an order-sorting filter table (Methods ref. §3.6).

    Between ``start_nm`` and ``stop_nm`` (monochromator setting, nm, inclusive) the long-pass filter with 50 %
    cut-on ``cut_on_nm`` is in the beam (None: no filter). ``edge_fraction`` is the filter edge width
    Δ/λc from 50 % transmission to blocking (absorbing glass: 0.05–0.08).
    """

    start_nm: float
    stop_nm: float
    cut_on_nm: float | None = None
    edge_fraction: float = 0.05

    def describe(self) -> str:
        filt = "no filter" if self.cut_on_nm is None else f"{self.cut_on_nm:g} nm long-pass"
        edge = "" if self.cut_on_nm is None else f", edge {100 * self.edge_fraction:g} %"
        return f"{self.start_nm:g}–{self.stop_nm:g} nm, {filt}{edge}"


def _as_row(row: OrderSortingRow | Mapping | Sequence, k: int) -> OrderSortingRow:
    r = row if isinstance(row, OrderSortingRow) else (
        OrderSortingRow(**row) if isinstance(row, Mapping) else OrderSortingRow(*row)
    )
    if not (0 < r.start_nm <= r.stop_nm):
        raise ValueError(f"order-sorting row {k}: need 0 < start_nm <= stop_nm, got {r.start_nm}–{r.stop_nm} nm")
    if r.cut_on_nm is not None and not r.cut_on_nm > 0:
        raise ValueError(f"order-sorting row {k}: cut_on_nm must be > 0 or None, got {r.cut_on_nm}")
    if not 0 <= r.edge_fraction < 0.5:
        raise ValueError(f"order-sorting row {k}: edge_fraction must be in [0, 0.5), got {r.edge_fraction}")
    return r


def _span(r: OrderSortingRow, above: float | None, below: float | None, closed: bool = False) -> str:
    """Text for the part of the row's range above ``above`` (or below ``below``)."""
    if above is not None:
        if r.start_nm > above or (closed and r.start_nm == above):
            return f"all of {r.start_nm:g}–{r.stop_nm:g} nm"
        return f"{above:g} {'≤' if closed else '<'} λ ≤ {r.stop_nm:g} nm"
    assert below is not None
    if r.stop_nm < below:
        return f"all of {r.start_nm:g}–{r.stop_nm:g} nm"
    return f"{r.start_nm:g} ≤ λ < {below:g} nm"


def check_order_sorting(
    table: Iterable[OrderSortingRow | Mapping | Sequence], lamp_min_nm: float = 250.0
) -> list[str]:
    """Check an order-sorting filter table against the rules of Methods ref. §3.6; returns the problems.

    At dial setting λ a grating also passes λ/2 (second order; λ/3 is blocked whenever λ/2 is). Each row
    (an :class:`OrderSortingRow`, a mapping with its fields or a tuple ``(start_nm, stop_nm, cut_on_nm,
    edge_fraction)``) is checked over its whole range, with edge Δ = edge_fraction·λc:

    * no filter: λ/2 reaches the detector where λ ≥ 2·``lamp_min_nm`` (shortest wavelength the lamp and
      optics deliver, about 250–300 nm for a Xe arc);
    * long-pass λc: λ/2 leaks where λ > 2·λc − Δ, and the filter edge attenuates the first order itself where
      λ < λc + Δ.

    Returns one human-readable message per offending range (empty list: the table is safe). Malformed rows
    raise ValueError.
    """
    if not lamp_min_nm > 0:
        raise ValueError(f"lamp_min_nm must be > 0, got {lamp_min_nm}")
    problems: list[str] = []
    for k, raw in enumerate(table, start=1):
        r = _as_row(raw, k)
        head = f"row {k} ({r.describe()})"
        if r.cut_on_nm is None:
            limit = 2.0 * lamp_min_nm
            if r.stop_nm >= limit - _NM_TOL:
                problems.append(
                    f"{head}: second order λ/2 is not blocked for {_span(r, limit, None, closed=True)} "
                    f"(without a filter only λ < 2·λ_min = {limit:g} nm is allowed, λ_min = {lamp_min_nm:g} nm)"
                )
            continue
        edge = r.edge_fraction * r.cut_on_nm
        upper = 2.0 * r.cut_on_nm - edge
        lower = r.cut_on_nm + edge
        if r.stop_nm > upper + _NM_TOL:
            problems.append(
                f"{head}: second order λ/2 is not blocked for {_span(r, upper, None)} "
                f"(this filter is usable up to 2·λc − Δ = {upper:g} nm)"
            )
        if r.start_nm < lower - _NM_TOL:
            problems.append(
                f"{head}: the filter edge attenuates the signal itself for {_span(r, None, lower)} "
                f"(this filter is usable from λc + Δ = {lower:g} nm)"
            )
    return problems
