"""Device PLQY by modulated photoluminescence: collection geometry and the analyser → PLQY chain (methods ref. §5).

The chain (methods ref. §5.1), each step one function here:

1. analyser line power P (dBm, rms of a sinusoid into 50 Ω) → V_rms = √(R·1 mW·10^(P/10))  (§9 case L4);
2. V_rms → photocurrent I_rms = V_rms/(G_TIA·κ_load);
3. I_rms → photon rate at the detector δN_det = I_rms/(q·EQE_det);
4. δN_det → total emitted rate δN_em = δN_det/(F·T_filter), F the Lambertian collection fraction (§5.2);
5. absorbed modulated pump rate δN_abs,rms = m·N_abs/√2 (m = peak/mean modulation depth of a sinusoid);
6. PLQY_diff = δN_em/δN_abs,rms (§9 case L3), and the integral PLQY = PLQY_diff/k with k = d ln Φ_PL/d ln G.

Lengths in the geometry functions may be in any unit as long as all are in the same one (here named mm).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from labctl.analysis.spectra import ELEMENTARY_CHARGE_C

#: the spectrum analyser's input impedance, Ω (Keysight N9010A: 50 Ω)
ANALYSER_IMPEDANCE_OHM = 50.0
#: the power the dBm scale refers to, W
ONE_MILLIWATT_W = 1e-3
#: the SNR the modulated-PL method asks of the line over the noise floor and the stray pump, dB (methods ref. §5.3)
MIN_SNR_DB = 40.0


def _positive(name: str, value: float) -> float:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _fraction(name: str, value: float) -> float:
    if not (isinstance(value, int | float) and 0 < value <= 1):
        raise ValueError(f"{name} must be in (0, 1], got {value!r}")
    return float(value)


# --- collection geometry (methods ref. §5.2) -------------------------------------------------------------------

def collection_fraction_rectangle(width_mm: float, height_mm: float, distance_mm: float) -> float:
    """Fraction F of a point Lambertian emitter's photons reaching a centred a×b rectangle at distance d.

    F = (2/π)·[X/√(1+X²)·atan(Y/√(1+X²)) + Y/√(1+Y²)·atan(X/√(1+Y²))], X = a/(2d), Y = b/(2d) (exact; methods
    ref. §5.2). 10 × 10 mm at 50 mm → 1.25650e-2 (§9 case L1); the small-detector form A/(πd²) is 1.3 % higher.
    """
    x = _positive("width_mm", width_mm) / (2 * _positive("distance_mm", distance_mm))
    y = _positive("height_mm", height_mm) / (2 * distance_mm)
    sx, sy = math.sqrt(1 + x * x), math.sqrt(1 + y * y)
    return (2 / math.pi) * (x / sx * math.atan(y / sx) + y / sy * math.atan(x / sy))


def collection_fraction_disk(radius_mm: float, distance_mm: float) -> float:
    """F of a point Lambertian emitter on the axis of a coaxial disk of radius a at distance d: a²/(a²+d²)
    (= sin²θ_max, exact; methods ref. §5.2)."""
    a2 = _positive("radius_mm", radius_mm) ** 2
    return a2 / (a2 + _positive("distance_mm", distance_mm) ** 2)


def collection_fraction_disk_to_disk(emitter_radius_mm: float, detector_radius_mm: float, distance_mm: float) -> float:
    """F from a uniformly emitting Lambertian disk (r1) to a coaxial detector disk (r2) a gap d away (view factor).

    R1 = r1/d, R2 = r2/d, S = 1 + (1 + R2²)/R1², F = ½·[S − √(S² − 4(R2/R1)²)] (methods ref. §5.2):
    r1 10 mm, r2 5 mm, d 20 mm → 0.048059 (§9 case L2; the point-source form would give 0.0588).
    """
    d = _positive("distance_mm", distance_mm)
    r1 = _positive("emitter_radius_mm", emitter_radius_mm) / d
    r2 = _positive("detector_radius_mm", detector_radius_mm) / d
    s = 1 + (1 + r2 * r2) / (r1 * r1)
    # ½(S − √(S² − c)) written as 2c/4/(S + √(S² − c)): no cancellation for a small or distant detector
    c = 4 * (r2 / r1) ** 2
    return 0.5 * c / (s + math.sqrt(s * s - c))


# --- the chain (methods ref. §5.1) -------------------------------------------------------------------------------

def dbm_to_v_rms(power_dBm: ArrayLike, impedance_ohm: float = ANALYSER_IMPEDANCE_OHM) -> float | np.ndarray:
    """RMS voltage (V) of a line of ``power_dBm`` into ``impedance_ohm``: √(R·1 mW·10^(P/10)) (§9 case L4:
    0 dBm → 0.223607 V, +13.0103 dBm → 1.000 V in 50 Ω)."""
    v = np.sqrt(_positive("impedance_ohm", impedance_ohm) * ONE_MILLIWATT_W * 10.0 ** (np.asarray(power_dBm) / 10))
    return float(v) if np.ndim(v) == 0 else v


def v_rms_to_dbm(v_rms: float, impedance_ohm: float = ANALYSER_IMPEDANCE_OHM) -> float:
    """Line power in dBm of ``v_rms`` (V) into ``impedance_ohm``: the inverse of :func:`dbm_to_v_rms`."""
    return 10 * math.log10(_positive("v_rms", v_rms) ** 2 / (impedance_ohm * ONE_MILLIWATT_W))


def photocurrent_A(v_rms: float, tia_gain_V_A: float, load_factor: float = 1.0) -> float:
    """Detector photocurrent (A rms) behind a transimpedance amplifier: V_rms/(G·κ_load) (methods ref. §5.1 step 2).

    ``load_factor`` κ_load is 1 when the gain G (V/A) is specified at the analyser's load, 0.5 when a 50 Ω
    source drives the 50 Ω input with the gain specified into a high impedance.
    """
    return v_rms / (_positive("tia_gain_V_A", tia_gain_V_A) * _fraction("load_factor", load_factor))


def detector_photon_rate_per_s(current_A: float, detector_eqe: float) -> float:
    """Photon rate (s⁻¹) absorbed by the detector for a photocurrent (A): I/(q·EQE_det) (methods ref. §5.1 step 3).

    ``detector_eqe`` is the detector's EQE at the PL (or PL-spectrum weighted), without the filters.
    """
    return current_A / (ELEMENTARY_CHARGE_C * _fraction("detector_eqe", detector_eqe))


def emitted_photon_rate_per_s(detector_rate_per_s: float, collection_fraction: float,
                              filter_transmission: float) -> float:
    """Total photon rate (s⁻¹) the sample emits: detector rate/(F·T_filter), the filters counted once
    (methods ref. §5.1 step 4)."""
    return detector_rate_per_s / (_fraction("collection_fraction", collection_fraction)
                                  * _fraction("filter_transmission", filter_transmission))


def absorbed_modulation_rate_per_s(modulation_depth: float, absorbed_rate_per_s: float) -> float:
    """RMS of the absorbed pump modulation (s⁻¹): m·N_abs/√2 for P0·(1 + m·sin 2πft) (methods ref. §5.1 step 5)."""
    return _fraction("modulation_depth", modulation_depth) * _positive("absorbed_rate_per_s",
                                                                      absorbed_rate_per_s) / math.sqrt(2)


def absorbed_rate_from_jsc_per_s(jsc_mA_cm2: float, area_cm2: float) -> float:
    """Absorbed photon rate (s⁻¹) at the 1-sun equivalent with unity collection at short circuit: Jsc·A/q
    (methods ref. §5.1: 18.3 mA/cm² on 0.049 cm² → 5.5968e15 s⁻¹)."""
    return _positive("jsc_mA_cm2", jsc_mA_cm2) * 1e-3 * _positive("area_cm2", area_cm2) / ELEMENTARY_CHARGE_C


def plqy_chain(power_dBm: float, tia_gain_V_A: float, detector_eqe: float, collection_fraction: float,
               filter_transmission: float, modulation_depth: float, absorbed_rate_per_s: float,
               load_factor: float = 1.0, impedance_ohm: float = ANALYSER_IMPEDANCE_OHM) -> dict[str, float]:
    """Every step from the analyser's line power to the differential PLQY, each with its unit in its key.

    Returns ``line_power_dBm``, ``line_v_rms_V``, ``photocurrent_rms_A``, ``detector_photon_rate_rms_per_s``,
    ``emitted_photon_rate_rms_per_s``, ``absorbed_modulation_rms_per_s`` and ``plqy_differential`` (fraction;
    methods ref. §5.4: −17.669 dBm → 0.1000, §9 case L3).
    """
    v = dbm_to_v_rms(power_dBm, impedance_ohm)
    i = photocurrent_A(v, tia_gain_V_A, load_factor)
    n_det = detector_photon_rate_per_s(i, detector_eqe)
    n_em = emitted_photon_rate_per_s(n_det, collection_fraction, filter_transmission)
    n_abs = absorbed_modulation_rate_per_s(modulation_depth, absorbed_rate_per_s)
    return {
        "line_power_dBm": float(power_dBm),
        "line_v_rms_V": v,
        "photocurrent_rms_A": i,
        "detector_photon_rate_rms_per_s": n_det,
        "emitted_photon_rate_rms_per_s": n_em,
        "absorbed_modulation_rms_per_s": n_abs,
        "plqy_differential": n_em / n_abs,
    }


# --- SNR and the differential → integral PLQY (methods ref. §5.1, §5.3) -----------------------------------------

def snr_dB(line_dBm: float, reference_dBm: float) -> float:
    """Line over a reference (the noise floor in the same RBW, or the stray-pump line) in dB: P_line − P_ref."""
    return float(line_dBm) - float(reference_dBm)


def snr_report(line_dBm: float, noise_floor_dBm: float, stray_pump_dBm: float | None = None,
               min_snr_dB: float = MIN_SNR_DB) -> dict[str, float | bool | None]:
    """The line's SNR against the noise floor and the stray pump (dB), the smaller of the two as ``snr_dB``, and
    whether it reaches ``min_snr_dB`` (methods ref. §5.3: 40 dB; the floor measured off the line in the same RBW,
    the stray pump with the emission blocked or a non-emissive dummy, methods ref. §5.1)."""
    noise = snr_dB(line_dBm, noise_floor_dBm)
    stray = None if stray_pump_dBm is None else snr_dB(line_dBm, stray_pump_dBm)
    worst = noise if stray is None else min(noise, stray)
    return {"snr_noise_dB": noise, "snr_stray_dB": stray, "snr_dB": worst, "snr_ok": worst >= min_snr_dB}


def k_factor(generation: ArrayLike, pl_signal: ArrayLike) -> float:
    """k = d ln Φ_PL/d ln G: the least-squares slope of ln(PL) against ln(generation) (methods ref. §5.1).

    Sweep the background intensity by about ±20 % around the working point; any proportional units for both.
    """
    g = np.asarray(generation, dtype=float)
    p = np.asarray(pl_signal, dtype=float)
    if g.shape != p.shape or g.size < 2 or np.any(g <= 0) or np.any(p <= 0):
        raise ValueError("generation and pl_signal must be equally long (≥ 2 points), all > 0")
    if np.ptp(np.log(g)) == 0:
        raise ValueError("generation must take at least two different values")
    return float(np.polyfit(np.log(g), np.log(p), 1)[0])


def plqy_absolute(plqy_differential: float, k: float) -> float:
    """Integral PLQY from the differential one: PLQY = PLQY_diff/k (methods ref. §5.1 step 7; if Φ_PL ∝ G^k then
    δΦ_PL/δG = k·Φ_PL/G). With QFLS tracking qVoc, k is the light ideality factor at the working intensity."""
    return _positive("plqy_differential", plqy_differential) / _positive("k", k)
