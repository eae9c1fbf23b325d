"""Output-filter maths of a DSP lock-in: N identical RC poles in cascade (6 dB/oct per pole).

Pure functions, no instrument state (methods ref. §3.4):

* step response to a unit step from rest: ``y(x) = 1 − e^(−x)·Σ_{k<N} x^k/k!`` with ``x = t/τ``, i.e. the
  regularised lower incomplete gamma function P(N, x); the time to reach ``1 − tol`` is ``τ·P⁻¹(N, 1 − tol)``
  (99 %: 4.605, 6.638, 8.406, 10.045 τ for N = 1…4, methods §9 P2);
* equivalent noise bandwidth ``ENBW·τ = ¼·C(2N−2, N−1)/4^(N−1)`` = 1/4, 1/8, 3/32, 5/64 (§9 P3);
* :func:`enbw_factor`, :func:`step_response`, :func:`settle_factor`: thin wrappers, in the emulator's argument
  order, over the reference implementation :mod:`labctl.analysis.lockin`;
* :func:`propagate`: the exact state update of the cascade over a time step with a constant input, so an
  emulator can run the filter across any piecewise-constant input history without time stepping.

State convention: ``state[0]`` is the output of the first pole, ``state[N−1]`` the filter output; the input
may be complex (X + iY filtered together, the cascade being linear and real).
"""

from __future__ import annotations

import math

import numpy as np

from labctl.analysis import lockin

SLOPES_DB_OCT = (6, 12, 18, 24)


def poles_for_slope(slope_dB_oct: int) -> int:
    """Number of RC poles of a 6/12/18/24 dB/oct filter (1…4)."""
    if slope_dB_oct not in SLOPES_DB_OCT:
        raise ValueError(f"filter slope {slope_dB_oct!r} dB/oct not in {SLOPES_DB_OCT}")
    return lockin.slope_to_poles(slope_dB_oct)


def enbw_factor(poles: int) -> float:
    """ENBW·τ of ``poles`` identical RC poles: ∫₀^∞ df/(1 + (2πfτ)²)^N, exact (1/4, 1/8, 3/32, 5/64)."""
    return lockin.enbw_Hz(1.0, poles)


def step_response(poles: int, x: float | np.ndarray) -> float | np.ndarray:
    """Fraction of a step reached after ``x = t/τ`` time constants (0 for x <= 0)."""
    return lockin.step_response(x, poles)


def settle_factor(poles: int, tolerance: float) -> float:
    """k such that the step response reaches ``1 − tolerance`` at ``t = k·τ`` (e.g. 4.605 for 1 pole, 1 %)."""
    return float(lockin.settle_time_constants_to_tolerance(poles, tolerance))


def _poisson_weights(poles: int, x: float) -> np.ndarray:
    """e^(−x)·x^k/k! for k < poles, computed in logs so huge x underflows cleanly to 0."""
    k = np.arange(poles)
    if x <= 0.0:
        return (k == 0).astype(float)
    log_w = -x + k * math.log(x) - np.array([math.lgamma(i + 1) for i in k])
    return np.exp(log_w)


def propagate(state: np.ndarray, u: complex, dt_s: float, tau_s: float) -> np.ndarray:
    """State of the cascade ``dt_s`` later with the input held at ``u`` (exact).

    With d = state − u (the steady state is u in every pole), the system d' = (L − I)·d/τ (L = shift down)
    gives d(t) = e^(−x)·Σ_k x^k/k!·L^k·d(0): each pole sees the earlier poles' deviations Poisson-weighted.
    """
    if dt_s < 0.0:
        raise ValueError(f"cannot propagate backwards in time: {dt_s} s")
    if dt_s == 0.0:
        return np.array(state, copy=True)
    d = np.asarray(state) - u
    w = _poisson_weights(len(d), dt_s / tau_s)
    return u + np.convolve(d, w)[: len(d)]
