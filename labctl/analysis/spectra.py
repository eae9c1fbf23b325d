"""Reference solar spectrum and spectral-unit conversions (Methods ref. §0, §2.2, §3.1).

AM1.5G is the ``global`` column of ASTM G173-03 (IEC 60904-3), read once through
``pvlib.spectrum.get_reference_spectra`` (pvlib ≥ 0.11): W m⁻² nm⁻¹ on the native 280–4000 nm grid of
2002 points (0.5 nm steps up to 400 nm, 1 nm to 1700 nm, then coarser). Its trapezoid integral is
1000.371 W/m² (Methods ref. §9 case S1), not exactly 1000 W/m²; nothing here renormalises it.

Photon energy and responsivity use hc/q = 1239.841984 nm·V from the exact CODATA 2018 constants.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.constants import Planck, elementary_charge, speed_of_light

#: hc/q in nm·V (1239.841984…): E_photon[eV] = HC_OVER_Q_NM_V / λ[nm]  (Methods ref. §0)
HC_OVER_Q_NM_V = Planck * speed_of_light / elementary_charge * 1e9
#: h·c in J·nm, for photon counting
HC_J_NM = Planck * speed_of_light * 1e9
#: the elementary charge q in C (e.g. for shot noise, 2·q·I)
ELEMENTARY_CHARGE_C = elementary_charge

FloatOrArray = float | NDArray[np.float64]


def _as_result(x: NDArray[np.float64]) -> FloatOrArray:
    return float(x) if np.ndim(x) == 0 else x


@lru_cache(maxsize=1)
def _g173_global() -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    from pvlib.spectrum import get_reference_spectra  # pvlib import is slow: only when first needed

    df = get_reference_spectra(standard="ASTM G173-03")
    wl = df.index.to_numpy(dtype=float)
    e = df["global"].to_numpy(dtype=float)
    wl.flags.writeable = False
    e.flags.writeable = False
    return wl, e


def g173_wavelength_nm() -> NDArray[np.float64]:
    """Native wavelength grid of ASTM G173-03 in nm (280–4000 nm, 2002 points; Methods ref. §2.2)."""
    return _g173_global()[0].copy()


def am15g_W_m2_nm(wavelength_nm: ArrayLike | None = None) -> NDArray[np.float64]:
    """AM1.5G spectral irradiance in W m⁻² nm⁻¹ (ASTM G173-03 global tilt; Methods ref. §2.2).

    ``wavelength_nm=None`` gives the native grid (see :func:`g173_wavelength_nm`); otherwise the table is
    linearly interpolated onto ``wavelength_nm`` with zero outside 280–4000 nm, exactly as
    ``pvlib.spectrum.get_reference_spectra(wavelengths)``.
    """
    wl, e = _g173_global()
    if wavelength_nm is None:
        return e.copy()
    return np.interp(np.asarray(wavelength_nm, dtype=float), wl, e, left=0.0, right=0.0)


def photon_energy_eV(wavelength_nm: ArrayLike) -> FloatOrArray:
    """Photon energy E = hc/(q·λ) in eV (Methods ref. §0: 520 nm → 2.38431 eV)."""
    wl = np.asarray(wavelength_nm, dtype=float)
    if np.any(wl <= 0):
        raise ValueError("wavelength_nm must be > 0")
    return _as_result(HC_OVER_Q_NM_V / wl)


def photon_flux_per_m2_s_nm(wavelength_nm: ArrayLike, irradiance_W_m2_nm: ArrayLike) -> FloatOrArray:
    """Spectral photon flux Φ(λ) = E(λ)·λ/(h·c) in photons m⁻² s⁻¹ nm⁻¹ (Methods ref. §3.5).

    ``irradiance_W_m2_nm`` is a spectral irradiance in W m⁻² nm⁻¹ (e.g. :func:`am15g_W_m2_nm`).
    """
    wl = np.asarray(wavelength_nm, dtype=float)
    if np.any(wl <= 0):
        raise ValueError("wavelength_nm must be > 0")
    return _as_result(np.asarray(irradiance_W_m2_nm, dtype=float) * wl / HC_J_NM)


def responsivity_to_eqe(wavelength_nm: ArrayLike, responsivity_A_W: ArrayLike) -> FloatOrArray:
    """External quantum efficiency (fraction) from responsivity: EQE = R·1239.842/λ[nm] (Methods ref. §3.1).

    R = 0.40 A/W at 600 nm → EQE = 0.82656. Same as ``pvlib.spectrum.sr_to_qe``.
    """
    wl = np.asarray(wavelength_nm, dtype=float)
    if np.any(wl <= 0):
        raise ValueError("wavelength_nm must be > 0")
    return _as_result(np.asarray(responsivity_A_W, dtype=float) * HC_OVER_Q_NM_V / wl)


def eqe_to_responsivity(wavelength_nm: ArrayLike, eqe: ArrayLike) -> FloatOrArray:
    """Responsivity in A/W from EQE (fraction): R = EQE·λ[nm]/1239.842 (Methods ref. §3.1).

    EQE = 1 is the physical upper bound of R at each wavelength (1 A/W needs λ ≥ 1239.842 nm).
    """
    wl = np.asarray(wavelength_nm, dtype=float)
    if np.any(wl <= 0):
        raise ValueError("wavelength_nm must be > 0")
    return _as_result(np.asarray(eqe, dtype=float) * wl / HC_OVER_Q_NM_V)
