"""Detailed-balance (reciprocity) Voc-loss analysis from EQE, PLQY and the J–V Voc (methods ref. §6, §8).

j0,R = q∫EQE(E)·φ_BB(E) dE, Voc,R = (k_BT/q)·ln(Jsc/j0,R + 1), μ = qVoc,R + k_BT·ln(PLQY) (QFLS from the external,
integral PLQY at open circuit and 1 sun), and the split of the loss below the gap

    ΔVoc,R = Eg/q − Voc,R,  ΔVoc,NR = (k_BT/q)·ln(1/PLQY),  ΔVoc,SR = μ/q − Voc,

so that Voc = Eg/q − ΔVoc,R − ΔVoc,NR − ΔVoc,SR holds by construction (methods ref. §6.1). Energies in eV, current
densities in A/cm², voltages in V, temperatures in K. The integrals use an energy grid (methods ref. §8: 0.5–4.4 eV)
onto which the measured EQE(λ) is mapped (E = hc/(qλ), no Jacobian for the dimensionless EQE).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.constants import Planck, speed_of_light

from labctl.analysis.sdm import thermal_voltage_V
from labctl.analysis.spectra import ELEMENTARY_CHARGE_C, HC_OVER_Q_NM_V

#: 2π q³/(h³c²)·1e-4: φ_BB prefactor in photons cm⁻² s⁻¹ eV⁻³ (methods ref. §8 prefactor check: 9.8833e22)
BLACKBODY_PREFACTOR_CM2_S_EV3 = 2 * math.pi * ELEMENTARY_CHARGE_C**3 / (Planck**3 * speed_of_light**2) * 1e-4
#: the energy grid of the j0,R integral (methods ref. §8): lower and upper limit and spacing, eV
ENERGY_GRID_EV = (0.5, 4.4, 1e-4)
#: at least this many points of the sub-gap tail, above the floor, for an Urbach fit
MIN_TAIL_POINTS = 3
#: tail points above this multiple of the EQE noise floor count as measured
TAIL_FLOOR_MULTIPLE = 3.0
#: tail points below this fraction of the EQE at the gap belong to the exponential tail (not the edge itself)
TAIL_TOP_FRACTION = 0.3
#: the band-gap method this module uses (returned with every value)
BANDGAP_METHOD = "inflection point: maximum of dEQE/dE (parabola through the steepest three points)"


def blackbody_photon_flux_cm2_s_eV(energy_eV: ArrayLike, temperature_K: float) -> NDArray[np.float64]:
    """Black-body photon flux through a flat surface into a hemisphere, per unit energy (methods ref. §6.1):
    φ_BB = (2π/(h³c²))·E²/(exp(E/k_BT) − 1) in photons cm⁻² s⁻¹ eV⁻¹ (E in eV)."""
    e = np.asarray(energy_eV, dtype=float)
    if np.any(e <= 0):
        raise ValueError("energy_eV must be > 0")
    return BLACKBODY_PREFACTOR_CM2_S_EV3 * e**2 / np.expm1(e / thermal_voltage_V(float(temperature_K)))


def energy_grid_eV(lo_eV: float = ENERGY_GRID_EV[0], hi_eV: float = ENERGY_GRID_EV[1],
                   step_eV: float = ENERGY_GRID_EV[2]) -> NDArray[np.float64]:
    """The integration grid of methods ref. §8 (eV)."""
    return np.arange(lo_eV, hi_eV + step_eV / 2, step_eV)


def radiative_saturation_current_A_cm2(energy_eV: ArrayLike, eqe: ArrayLike, temperature_K: float) -> float:
    """j0,R = q∫EQE(E)·φ_BB(E, T) dE (A/cm², trapezoid on the given energy grid; methods ref. §6.1, §8)."""
    e = np.asarray(energy_eV, dtype=float)
    order = np.argsort(e)
    integrand = np.asarray(eqe, dtype=float)[order] * blackbody_photon_flux_cm2_s_eV(e[order], temperature_K)
    return float(ELEMENTARY_CHARGE_C * np.trapezoid(integrand, e[order]))


def step_eqe_j0r_A_cm2(bandgap_eV: float, temperature_K: float) -> float:
    """j0,R for EQE = 1 above ``bandgap_eV`` and 0 below (Shockley–Queisser), on the methods ref. §8 grid."""
    e = energy_grid_eV(bandgap_eV, ENERGY_GRID_EV[1])
    return radiative_saturation_current_A_cm2(e, np.ones_like(e), temperature_K)


def shockley_queisser_voc_V(bandgap_eV: float, temperature_K: float) -> float:
    """Voc,SQ (V) of a step EQE: Jsc,SQ = q∫Φ_AM1.5G from 280 nm to λg = hc/(q·Eg) (ASTM G173 global, methods ref.
    §9 S2) over :func:`step_eqe_j0r_A_cm2` (methods ref. §6.2: 1.6 eV, 300 K → 1.3245 V)."""
    from labctl.analysis.eqe import integrated_jsc_mA_cm2

    lam = np.arange(280.0, HC_OVER_Q_NM_V / bandgap_eV, 0.01)
    jsc_A_cm2 = integrated_jsc_mA_cm2(lam, np.ones_like(lam)) * 1e-3
    return radiative_voc_V(jsc_A_cm2, step_eqe_j0r_A_cm2(bandgap_eV, temperature_K), temperature_K)


def radiative_voc_V(jsc_A_cm2: float, j0r_A_cm2: float, temperature_K: float) -> float:
    """Voc,R = (k_BT/q)·ln(Jsc/j0,R + 1) in V (methods ref. §6.1)."""
    if not (jsc_A_cm2 > 0 and j0r_A_cm2 > 0):
        raise ValueError(f"jsc_A_cm2 and j0r_A_cm2 must be > 0, got {jsc_A_cm2!r}, {j0r_A_cm2!r}")
    return thermal_voltage_V(float(temperature_K)) * math.log1p(jsc_A_cm2 / j0r_A_cm2)


def nonradiative_loss_V(plqy: float, temperature_K: float) -> float:
    """ΔVoc,NR = (k_BT/q)·ln(1/PLQY) in V (methods ref. §6.1; §9 D3: 10 % → 59.53 mV at 300 K)."""
    if not 0 < plqy <= 1:
        raise ValueError(f"plqy must be in (0, 1], got {plqy!r}")
    return -thermal_voltage_V(float(temperature_K)) * math.log(plqy)


def qfls_eV(voc_rad_V: float, plqy: float, temperature_K: float) -> float:
    """QFLS μ = q·Voc,R + k_BT·ln(PLQY) in eV (methods ref. §6.1; numerically μ/q in V)."""
    return voc_rad_V - nonradiative_loss_V(plqy, temperature_K)


@dataclass(frozen=True)
class VocLosses:
    """The loss table of methods ref. §6.1/§6.3 (V, eV, A/cm²)."""

    eg_eV: float
    jsc_A_cm2: float
    j0r_A_cm2: float
    voc_rad_V: float
    qfls_eV: float
    dvoc_rad_V: float
    dvoc_nr_V: float
    dvoc_sr_V: float
    voc_V: float
    plqy: float
    temperature_K: float


def voc_losses(eg_eV: float, jsc_A_cm2: float, j0r_A_cm2: float, voc_V: float, plqy: float,
               temperature_K: float) -> VocLosses:
    """Split Eg/q − Voc into ΔVoc,R, ΔVoc,NR and ΔVoc,SR (methods ref. §6.1); the identity
    Voc = Eg/q − ΔR − ΔNR − ΔSR holds by construction (to the rounding of floats)."""
    voc_rad = radiative_voc_V(jsc_A_cm2, j0r_A_cm2, temperature_K)
    dnr = nonradiative_loss_V(plqy, temperature_K)
    mu = voc_rad - dnr
    return VocLosses(eg_eV=eg_eV, jsc_A_cm2=jsc_A_cm2, j0r_A_cm2=j0r_A_cm2, voc_rad_V=voc_rad, qfls_eV=mu,
                     dvoc_rad_V=eg_eV - voc_rad, dvoc_nr_V=dnr, dvoc_sr_V=mu - voc_V, voc_V=voc_V, plqy=plqy,
                     temperature_K=temperature_K)


def dvoc_sr_uncertainty_V(temperature_K: float, voc_uncertainty_V: float = 1e-3, plqy_rel_uncertainty: float = 0.2,
                          j0r_rel_uncertainty: float = 0.1) -> float:
    """Standard uncertainty of ΔVoc,SR (V): √(σ_Voc² + (V_t·σ_PLQY/PLQY)² + (V_t·σ_j0/j0)²), linearised.

    Defaults: 1 mV on Voc; 20 % on the PLQY (the Lambertian collection assumption dominates, methods ref. §5.2);
    10 % on j0,R (the sub-gap tail, methods ref. §8 step 5). They are the check's assumptions, not measured.
    """
    vt = thermal_voltage_V(float(temperature_K))
    return math.hypot(voc_uncertainty_V, vt * plqy_rel_uncertainty, vt * j0r_rel_uncertainty)


def surface_loss_warnings(losses: VocLosses, uncertainty_V: float) -> list[str]:
    """The methods ref. §6.1 consistency check: ΔVoc,SR ≥ 0 within ``uncertainty_V``, i.e. qVoc ≤ μ. Returns the
    warning texts (empty when consistent)."""
    if losses.dvoc_sr_V >= -uncertainty_V:
        return []
    return [f"VOC-LOSS WARNING: dvoc_sr_V = {losses.dvoc_sr_V * 1e3:.1f} mV < 0 beyond its uncertainty "
            f"({uncertainty_V * 1e3:.1f} mV): qVoc exceeds the QFLS from the PLQY. Likely causes: the PLQY is "
            "underestimated (collection fraction F, differential PLQY not divided by k, filter losses, PLQY not "
            "measured at 1 sun or not at open circuit) or j0,R is overestimated (noisy sub-gap EQE floor taken "
            "as signal), or the QFLS is not uniform (reciprocity assumptions)."]


# --- the EQE side: mapping, band gap, Urbach tail ---------------------------------------------------------------

def eqe_vs_energy(wavelength_nm: ArrayLike, eqe: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(E in eV ascending, EQE) of a measured EQE(λ), E = hc/(qλ); NaN points dropped, duplicates averaged."""
    lam = np.asarray(wavelength_nm, dtype=float)
    q = np.asarray(eqe, dtype=float)
    if lam.shape != q.shape:
        raise ValueError("wavelength_nm and eqe must be equally long")
    ok = np.isfinite(lam) & np.isfinite(q) & (lam > 0)
    e = HC_OVER_Q_NM_V / lam[ok]
    values = q[ok]
    unique, inverse = np.unique(e, return_inverse=True)
    mean = np.bincount(inverse, weights=values) / np.bincount(inverse)
    if unique.size < 3:
        raise ValueError(f"the EQE needs at least 3 distinct wavelengths, got {unique.size}")
    return unique, mean


def bandgap_inflection_eV(energy_eV: ArrayLike, eqe: ArrayLike) -> tuple[float, str]:
    """Band gap as the inflection point of EQE(E): the energy of the largest dEQE/dE (finite differences between
    neighbours, refined by a parabola through the steepest difference and its neighbours). Returns (Eg in eV,
    the method's name). On a grid of spacing ΔE the result is good to about ΔE/2 for a sharp edge."""
    e = np.asarray(energy_eV, dtype=float)
    q = np.asarray(eqe, dtype=float)
    mid = 0.5 * (e[1:] + e[:-1])
    slope = np.diff(q) / np.diff(e)
    i = int(np.argmax(slope))
    eg = float(mid[i])
    if 0 < i < slope.size - 1:
        y0, y1, y2 = slope[i - 1], slope[i], slope[i + 1]
        x0, x1, x2 = mid[i - 1], mid[i], mid[i + 1]
        denom = (x0 - x1) * (x0 - x2) * (x1 - x2)
        a = (x2 * (y1 - y0) + x1 * (y0 - y2) + x0 * (y2 - y1)) / denom
        b = (x2**2 * (y0 - y1) + x1**2 * (y2 - y0) + x0**2 * (y1 - y2)) / denom
        if a < 0:
            eg = float(np.clip(-b / (2 * a), x0, x2))
    return eg, BANDGAP_METHOD


def eqe_noise_floor(energy_eV: ArrayLike, eqe: ArrayLike, eg_eV: float) -> float:
    """An estimate of the EQE's noise floor: the rms of the EQE over the lowest-energy quarter of the sub-gap
    points (at least 3; at least 0.1 eV below the gap), or 0 when there are too few such points."""
    e = np.asarray(energy_eV, dtype=float)
    q = np.asarray(eqe, dtype=float)
    deep = np.sort(np.flatnonzero(e < eg_eV - 0.1))
    if deep.size < MIN_TAIL_POINTS:
        return 0.0
    take = deep[: max(MIN_TAIL_POINTS, deep.size // 4)]
    return float(np.sqrt(np.mean(q[take] ** 2)))


@dataclass(frozen=True)
class UrbachTail:
    """The exponential tail EQE = EQE(Eg)·exp((E − Eg)/E_U) fitted to the measured sub-gap EQE above its floor."""

    urbach_energy_eV: float
    amplitude: float  # EQE extrapolated to E = eg_eV
    eg_eV: float
    fit_lo_eV: float
    fit_hi_eV: float
    points: int

    def __call__(self, energy_eV: ArrayLike) -> NDArray[np.float64]:
        return self.amplitude * np.exp((np.asarray(energy_eV, dtype=float) - self.eg_eV) / self.urbach_energy_eV)


def fit_urbach_tail(energy_eV: ArrayLike, eqe: ArrayLike, eg_eV: float, noise_floor: float) -> UrbachTail | None:
    """Least-squares line through ln EQE(E) of the tail points: below the gap, above TAIL_FLOOR_MULTIPLE × the
    floor and below TAIL_TOP_FRACTION of the EQE at the gap. None with fewer than MIN_TAIL_POINTS such points."""
    e = np.asarray(energy_eV, dtype=float)
    q = np.asarray(eqe, dtype=float)
    top = TAIL_TOP_FRACTION * float(np.interp(eg_eV, e, q))
    tail = (e < eg_eV) & (q > max(TAIL_FLOOR_MULTIPLE * noise_floor, 0.0)) & (q < top) & (q > 0)
    if np.count_nonzero(tail) < MIN_TAIL_POINTS:
        return None
    slope, intercept = np.polyfit(e[tail] - eg_eV, np.log(q[tail]), 1)
    if not slope > 0:
        return None
    return UrbachTail(urbach_energy_eV=float(1 / slope), amplitude=float(np.exp(intercept)), eg_eV=eg_eV,
                      fit_lo_eV=float(e[tail].min()), fit_hi_eV=float(e[tail].max()),
                      points=int(np.count_nonzero(tail)))


def eqe_on_grid(energy_eV: ArrayLike, eqe: ArrayLike, grid_eV: ArrayLike) -> NDArray[np.float64]:
    """The measured EQE on ``grid_eV``: interpolated linearly in ln EQE where both neighbours are > 0 (exact for
    an exponential tail), linearly otherwise; zero outside the measured range."""
    e = np.asarray(energy_eV, dtype=float)
    q = np.asarray(eqe, dtype=float)
    g = np.asarray(grid_eV, dtype=float)
    linear = np.interp(g, e, q, left=0.0, right=0.0)
    positive = np.all(q > 0)
    if positive:
        out = np.exp(np.interp(g, e, np.log(q)))
    else:
        idx = np.clip(np.searchsorted(e, g), 1, e.size - 1)
        both = (q[idx - 1] > 0) & (q[idx] > 0)
        logq = np.log(np.where(q > 0, q, 1.0))
        out = np.where(both, np.exp(np.interp(g, e, logq)), linear)
    return np.where((g >= e[0]) & (g <= e[-1]), out, 0.0)


@dataclass(frozen=True)
class RadiativeLimit:
    """j0,R from a measured EQE, with how it was obtained (methods ref. §8 step 5)."""

    j0r_A_cm2: float
    eg_eV: float
    eg_method: str
    urbach_extension: bool
    urbach_energy_eV: float | None
    eqe_noise_floor: float
    extended_below_eV: float | None
    integration_lo_eV: float
    integration_hi_eV: float
    warnings: tuple[str, ...] = ()


def radiative_limit_from_eqe(wavelength_nm: ArrayLike, eqe: ArrayLike, temperature_K: float,
                             noise_floor: float | None = None) -> RadiativeLimit:
    """j0,R from a measured EQE(λ): band gap by :func:`bandgap_inflection_eV`; where the sub-gap EQE reaches its
    noise floor (``noise_floor``, else :func:`eqe_noise_floor`), the fitted Urbach tail replaces it down to the
    grid's lower limit (methods ref. §6.2, §8); without a usable tail the measured EQE is integrated as it is."""
    e, q = eqe_vs_energy(wavelength_nm, eqe)
    eg, method = bandgap_inflection_eV(e, q)
    floor = eqe_noise_floor(e, q, eg) if noise_floor is None else float(noise_floor)
    grid = energy_grid_eV()
    values = eqe_on_grid(e, q, grid)
    tail = fit_urbach_tail(e, q, eg, floor)
    warnings: list[str] = []
    extended_below = None
    if tail is None:
        warnings.append("VOC-LOSS WARNING: no Urbach tail could be fitted (fewer than "
                        f"{MIN_TAIL_POINTS} sub-gap EQE points above {TAIL_FLOOR_MULTIPLE:g}× the noise floor "
                        f"{floor:.3g}): j0,R integrates the measured EQE only, from {e[0]:.3f} eV; extend the "
                        "EQE scan below the gap (longer stop_nm) or make it more sensitive")
    elif tail.urbach_energy_eV >= thermal_voltage_V(float(temperature_K)):
        warnings.append(f"VOC-LOSS WARNING: fitted Urbach energy {tail.urbach_energy_eV * 1e3:.1f} meV ≥ k_BT: "
                        "the extended tail would diverge towards low energy; j0,R integrates the measured EQE only")
        tail = None
    else:
        extended_below = tail.fit_lo_eV
        below = grid < extended_below
        values = np.where(below, tail(grid), values)
    j0 = radiative_saturation_current_A_cm2(grid, values, temperature_K)
    return RadiativeLimit(j0r_A_cm2=j0, eg_eV=eg, eg_method=method, urbach_extension=tail is not None,
                          urbach_energy_eV=None if tail is None else tail.urbach_energy_eV, eqe_noise_floor=floor,
                          extended_below_eV=extended_below,
                          integration_lo_eV=float(grid[0]) if tail is not None else float(max(grid[0], e[0])),
                          integration_hi_eV=float(min(grid[-1], e[-1])), warnings=tuple(warnings))
