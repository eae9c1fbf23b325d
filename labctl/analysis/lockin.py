"""Lock-in amplifier maths for chopped-light measurements (Methods ref. §3.3, §3.4).

A dual-phase lock-in (SR830 class) multiplies by a sine at the reference frequency, so it reports the
rms of the *fundamental* Fourier component of its input. Its output filter is a cascade of N identical RC
low-pass sections (6 dB/oct per pole, time constant τ each), so

* step response:      y(x) = 1 − e^(−x)·Σ_{k<N} x^k/k!,  x = t/τ  (the regularised gamma function P(N, x));
* noise bandwidth:    ENBW = C(2N−2, N−1)/(4^N·τ)  (1/4, 1/8, 3/32, 5/64 ÷ τ for N = 1…4);
* −3 dB frequency:    f = √(2^(1/N) − 1)/(2πτ).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import gammainc, gammainccinv, gammaincinv

from labctl.analysis.spectra import FloatOrArray

#: attenuation slope of one RC pole in dB/octave (20·log10(2) = 6.02, quoted as 6)
DB_PER_OCTAVE_PER_POLE = 6.0


def _as_result(x: np.ndarray) -> FloatOrArray:
    return float(x) if np.ndim(x) == 0 else x


def _check_poles(poles: int) -> int:
    if isinstance(poles, bool) or not isinstance(poles, (int, np.integer)) or poles < 1:
        raise ValueError(f"poles must be an integer >= 1, got {poles!r}")
    return int(poles)


def square_wave_fundamental_rms(pp: ArrayLike, duty: ArrayLike = 0.5) -> FloatOrArray:
    """Rms of the fundamental of a rectangular wave of peak-to-peak amplitude ``pp`` and duty cycle ``duty``.

    rms = (√2/π)·pp·sin(π·D) — what a lock-in reads for light chopped between 0 and ``pp`` (Methods ref.
    §3.3; SR830 manual p. 3-3). At D = 0.5 the factor is 0.450158 (case P1). Same unit as ``pp``.
    """
    d = np.asarray(duty, dtype=float)
    if np.any((d < 0) | (d > 1)):
        raise ValueError(f"duty must be within [0, 1], got {duty!r}")
    return _as_result(math.sqrt(2.0) / math.pi * np.asarray(pp, dtype=float) * np.sin(np.pi * d))


def square_wave_pp_from_rms(rms: ArrayLike, duty: ArrayLike = 0.5) -> FloatOrArray:
    """Peak-to-peak amplitude of a rectangular wave from the lock-in rms reading (inverse of
    :func:`square_wave_fundamental_rms`; Methods ref. §3.2: I_on = L·π/(√2·G) at 50 % duty)."""
    d = np.asarray(duty, dtype=float)
    if np.any((d <= 0) | (d >= 1)):
        raise ValueError(f"duty must be within (0, 1), got {duty!r}")
    return _as_result(np.asarray(rms, dtype=float) * math.pi / (math.sqrt(2.0) * np.sin(np.pi * d)))


def step_response(t_over_tau: ArrayLike, poles: int) -> FloatOrArray:
    """Fraction of a step reached by an N-pole RC cascade after t/τ time constants (Methods ref. §3.4).

    y = 1 − e^(−x)·Σ_{k<N} x^k/k! = P(N, x) (``scipy.special.gammainc``); 0 for x ≤ 0.
    E.g. x = 5 gives 0.9933 (6 dB/oct) but only 0.7350 (24 dB/oct).
    """
    n = _check_poles(poles)
    x = np.asarray(t_over_tau, dtype=float)
    return _as_result(np.where(x < 0, 0.0, gammainc(n, np.maximum(x, 0.0))))


def settle_time_constants(poles: int, fraction: ArrayLike = 0.99) -> FloatOrArray:
    """Time, in units of τ, for an N-pole RC cascade to reach ``fraction`` of a step (Methods ref. §3.4).

    The exact root of :func:`step_response` (``scipy.special.gammaincinv``). 99 %: 4.605, 6.638, 8.406,
    10.045 τ for 1–4 poles (6/12/18/24 dB/oct, case P2) — "5τ" is not enough at 24 dB/oct.
    """
    n = _check_poles(poles)
    f = np.asarray(fraction, dtype=float)
    if np.any((f <= 0) | (f >= 1)):
        raise ValueError(f"fraction must be within (0, 1), got {fraction!r}")
    return _as_result(gammaincinv(n, f))


def settle_time_constants_to_tolerance(poles: int, tolerance: ArrayLike = 0.01) -> FloatOrArray:
    """Time, in units of τ, for an N-pole RC cascade to come within ``tolerance`` (a fraction of the step) of
    its final value: :func:`settle_time_constants` at ``1 − tolerance`` (Methods ref. §3.4).

    Solved for the remaining fraction, e^(−x)·Σ_{k<N} x^k/k! = ``tolerance`` (``scipy.special.gammainccinv``),
    so it stays exact for tolerances far below 1e-3, where ``1 − tolerance`` would lose digits.
    """
    n = _check_poles(poles)
    t = np.asarray(tolerance, dtype=float)
    if not np.all((t > 0) & (t < 1)):
        raise ValueError(f"tolerance must be within (0, 1), got {tolerance!r}")
    return _as_result(gammainccinv(n, t))


def enbw_Hz(time_constant_s: ArrayLike, poles: int) -> FloatOrArray:
    """Equivalent noise bandwidth in Hz of an N-pole RC cascade (Methods ref. §3.4).

    ENBW = ∫₀^∞ |H(f)|² df = C(2N−2, N−1)/(4^N·τ): 1/(4τ), 1/(8τ), 3/(32τ), 5/(64τ) for 1–4 poles (case P3).
    """
    n = _check_poles(poles)
    tau = np.asarray(time_constant_s, dtype=float)
    if np.any(tau <= 0):
        raise ValueError(f"time_constant_s must be > 0, got {time_constant_s!r}")
    return _as_result(math.comb(2 * n - 2, n - 1) / 4.0**n / tau)


def minus3dB_frequency_Hz(time_constant_s: ArrayLike, poles: int) -> FloatOrArray:
    """−3 dB frequency in Hz of an N-pole RC cascade: √(2^(1/N) − 1)/(2πτ) (Methods ref. §3.4).

    f·2πτ = 1.000, 0.644, 0.510, 0.435 for 1–4 poles (SR844 manual p. 3-11).
    """
    n = _check_poles(poles)
    tau = np.asarray(time_constant_s, dtype=float)
    if np.any(tau <= 0):
        raise ValueError(f"time_constant_s must be > 0, got {time_constant_s!r}")
    return _as_result(math.sqrt(2.0 ** (1.0 / n) - 1.0) / (2.0 * math.pi * tau))


def slope_to_poles(dB_per_oct: float) -> int:
    """Number of RC poles of a lock-in filter slope: 6 → 1, 12 → 2, 18 → 3, 24 → 4 dB/oct (Methods ref. §3.4).

    Accepts any positive multiple of 6 dB/oct (±0.1, so 6.02·N also works); anything else is a ValueError.
    """
    n = round(float(dB_per_oct) / DB_PER_OCTAVE_PER_POLE)
    if n < 1 or abs(float(dB_per_oct) - DB_PER_OCTAVE_PER_POLE * n) > 0.1 * n:
        raise ValueError(f"filter slope must be a multiple of 6 dB/oct (6, 12, 18, 24), got {dB_per_oct!r}")
    return n


def residual_factor(t_over_tau: ArrayLike, poles: int) -> FloatOrArray:
    """(1 − y(x))/y'(x) for the N-pole step response y, with y'(x) = x^(N−1)·e^(−x)/(N−1)!.

    After a step, a lock-in output still lacks ΔR·(1 − y(x)); its slope is ΔR·y'(x) per τ. So the remaining
    error equals |slope per τ| × this factor, whatever the step size: the basis of convergence-based settling.
    The factor is 1 for one pole and grows without bound as x → 0 for more (the start of the response is flat).
    """
    n = _check_poles(poles)
    x = np.maximum(np.asarray(t_over_tau, dtype=float), 1e-12)
    # Σ_{k<N} x^k/k! ÷ (x^(N−1)/(N−1)!)  — e^(−x) cancels
    terms = sum(x**k / math.factorial(k) for k in range(n))
    return _as_result(np.asarray(terms / (x ** (n - 1) / math.factorial(n - 1))))
