"""Expected EQE of a simulated cell, written out from its station parameters (independent of labctl's code).

The simulated cell's EQE is a plateau above the band gap with an Urbach tail below it (methods ref. §6.3), the
plateau chosen so that it integrates to ``jph_mA_cm2`` under AM1.5G (station.yaml: ``plateau: null``). Measured
at short circuit, the small-signal current divider Rsh/(Rs + Rsh) applies once. The AM1.5G spectrum is read
straight from pvlib (ASTM G173-03) and integrated on a 0.05 nm grid; hc/q from scipy's CODATA constants.
"""

from __future__ import annotations

import numpy as np
import pvlib
from scipy.constants import Planck, elementary_charge, speed_of_light

HC_NM_V = Planck * speed_of_light / elementary_charge * 1e9


def _shape(wavelength_nm: np.ndarray, bandgap_eV: float, urbach_meV: float) -> np.ndarray:
    energy = HC_NM_V / np.asarray(wavelength_nm, dtype=float)
    return np.where(energy >= bandgap_eV, 1.0, np.exp((energy - bandgap_eV) / (urbach_meV / 1000.0)))


def plateau(device: dict) -> float:
    """EQE plateau (fraction) that integrates to the device's jph_mA_cm2 under AM1.5G."""
    eqe = device["eqe"]
    assert eqe.get("plateau") is None and not eqe.get("shape"), "the model covers a derived plateau, no shape"
    g173 = pvlib.spectrum.get_reference_spectra(standard="ASTM G173-03")
    wl = np.arange(280.0, 4000.0, 0.05)
    irradiance = np.interp(wl, g173.index.to_numpy(), g173["global"].to_numpy())
    unit_mA_cm2 = np.trapezoid(_shape(wl, eqe["bandgap_eV"], eqe["urbach_meV"]) * wl / HC_NM_V * irradiance, wl) / 10
    return device["jph_mA_cm2"] / unit_mA_cm2


def divider(device: dict) -> float:
    """Small-signal short-circuit collection Rsh/(Rs + Rsh)."""
    return device["rsh_ohm_cm2"] / (device["rs_ohm_cm2"] + device["rsh_ohm_cm2"])


def expected_eqe(device: dict, wavelength_nm: np.ndarray) -> np.ndarray:
    """EQE the bench should measure at short circuit: plateau × band-edge shape × divider (applied once)."""
    eqe = device["eqe"]
    return plateau(device) * divider(device) * _shape(wavelength_nm, eqe["bandgap_eV"], eqe["urbach_meV"])


def integrated_jsc_mA_cm2(device: dict, lo_nm: float = 280.0, hi_nm: float = 4000.0) -> float:
    """∫ expected EQE · Φ_AM1.5G over [lo_nm, hi_nm] in mA/cm² (the whole range: jph·divider)."""
    g173 = pvlib.spectrum.get_reference_spectra(standard="ASTM G173-03")
    wl = np.arange(lo_nm, hi_nm + 0.025, 0.05)
    irradiance = np.interp(wl, g173.index.to_numpy(), g173["global"].to_numpy())
    return float(np.trapezoid(expected_eqe(device, wl) * wl / HC_NM_V * irradiance, wl) / 10)
