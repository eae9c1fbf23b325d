"""The junction capacitance of a device under a sourced current: how its terminal voltage settles in time.

A current source (or nothing: open circuit) does not fix the voltage of a cell with capacitance C (F); the
voltage is a state that the net current charges::

    C·dV/dt = I(V),   I(V) = I_s + J(V)·A − V/R_in   (A)

with V the device's voltage (anode − cathode), I_s the source's current into the anode, J the cell's
photocurrent-positive current density at V and R_in a resistance across the terminals (a voltmeter).
``I(V)`` decreases with V (the cell's recombination grows, its J–V is concave), so V relaxes to the root of
``I`` with the local time constant τ = C/G, G = −dI/dV: at Voc under light X, τ = C·n·Vt/J_ph(X) for a diode of
ideality n — seconds at 1e-7 sun for C ~ 100 nF/cm², 0.1 µs at 1 sun. The problem is stiff (τ spans seven
decades over a light-intensity ladder), so :func:`relax_voltage_V` integrates it with the exponential
Rosenbrock–Euler method (exact relaxation of the ODE linearised at the present voltage, L-stable, second order
for an autonomous ODE: Hochbruck, Ostermann & Schweitzer, "Exponential Rosenbrock-type methods", SIAM J.
Numer. Anal. 47 (2009) 786). Each step moves the voltage by at most a step that adapts to the curvature of I(V)
(the conductance may change by :data:`CONDUCTANCE_CHANGE` per step: ~0.25 mV where a diode of n = 1 dominates,
volts where the cell is ohmic), and the integration goes straight to the equilibrium once the time left is
many time constants.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from scipy.optimize import brentq

CONDUCTANCE_CHANGE = 0.01
"""Largest relative change of the conductance G = −dI/dV over one step: for a diode, a step of 1 % of n·Vt,
whose linearisation error is ~(0.01)³·n·Vt/6 (the whole transient stays within a few µV)."""
STEP_V = 0.5e-3
"""The first step's largest voltage change (V), adapted from there (from STEP_V/4 to MAX_STEP_V)."""
MAX_STEP_V = 1.0
"""The largest voltage change of one step (V), where I(V) is nearly straight (ohmic)."""
SETTLED_TAU = 25.0
"""Time left, in time constants, beyond which the state is at its equilibrium (e^-25 of the distance, < 1e-10 V)."""
STEP_TAU = 3.0
"""Longest step near the equilibrium, in local time constants (keeps the linearisation up to date)."""
DERIVATIVE_V = 1e-6
"""Voltage increment of the finite-difference conductance (V)."""
EQUILIBRIUM_TOL_V = 1e-10
"""The equilibrium is found to this (V)."""
MAX_BRACKET_V = 10.0
"""Farthest the equilibrium is looked for from the present voltage (V)."""
BRACKET_START_V = 0.1
"""Largest first step of the search for the equilibrium (V; the steps then double)."""
MAX_STEPS = 100_000


@dataclass
class CurrentSource:
    """What drives the selected device's terminal voltage when it is a state (a device with capacitance): a
    current source of ``current_A`` (A, into HI) with ``parallel_ohm`` (Ω) across the terminals and the voltage
    limit ``limit_V`` (V), or nothing (``floating``: the output is off). ``suns``: the light on the device
    since the bench last advanced (the interval's light: a change of the light first advances the bench)."""

    current_A: float = 0.0
    parallel_ohm: float = math.inf
    limit_V: float = math.inf
    floating: bool = False
    suns: float = 0.0


def relax_voltage_V(net_current_A: Callable[[float], float], v0_V: float, dt_s: float, capacitance_F: float,
                    v_min_V: float = -math.inf, v_max_V: float = math.inf) -> float:
    """The voltage (V) after ``dt_s`` seconds of ``C·dV/dt = net_current_A(V)`` from ``v0_V``.

    Parameters
    ----------
    net_current_A
        I(V) in A: the current that charges the capacitance at voltage V; decreasing and concave in V (a cell's
        J–V), which bounds the time to the equilibrium (below: by the local τ; above: by τ at the equilibrium).
    v0_V
        The voltage at the start (V).
    dt_s
        The time to integrate over (s); <= 0 returns ``v0_V`` (clamped).
    capacitance_F
        The capacitance (F), > 0.
    v_min_V, v_max_V
        A source's voltage limit: the voltage is held at the edge while I(V) pushes beyond it (compliance).

    Returns
    -------
    float
        V(dt_s), within a few µV of the exact solution over a transient of 1 V (the accumulated linearisation
        error; tests/test_sim_capacitance.py compares it with an independent solution).
    """
    v = min(max(v0_V, v_min_V), v_max_V)
    t_left = dt_s
    step_V, g_last = STEP_V, math.nan
    recheck_tau = math.inf  # the far-from-equilibrium bound is tried again once τ has halved
    for _ in range(MAX_STEPS):
        if t_left <= 0:
            break
        i0 = net_current_A(v)
        if _held(v, i0, v_min_V, v_max_V):
            break  # at the equilibrium, or held at the limit
        g = _conductance_S(net_current_A, v, i0)
        step_V = _adapted_step_V(step_V, g_last, g)
        g_last = g
        tau = capacitance_F / g if g > 0 else math.inf
        newton = i0 / g if g > 0 else math.copysign(math.inf, i0)  # the linearised equilibrium's distance (V)
        if t_left >= SETTLED_TAU * tau:
            if abs(newton) <= step_V:  # close to it, with many τ left: there
                found = _equilibrium(net_current_A, v, i0, newton, v_min_V, v_max_V)
                if found is not None:
                    return found[0]
            elif tau < recheck_tau:
                recheck_tau = tau / 2
                settled = _settled_V(net_current_A, v, i0, g, newton, t_left, capacitance_F, v_min_V, v_max_V)
                if settled is not None:
                    return settled
        # the time in which the linearised relaxation moves the voltage by step_V, at most STEP_TAU·τ
        if abs(newton) > step_V:
            h = -tau * math.log1p(-step_V / abs(newton)) if g > 0 else step_V * capacitance_F / abs(i0)
        else:
            h = STEP_TAU * tau
        h = min(h, t_left)
        v += newton * -math.expm1(-h / tau) if g > 0 else i0 * h / capacitance_F
        v = min(max(v, v_min_V), v_max_V)
        t_left -= h
    return v


def _adapted_step_V(step_V: float, g_last_S: float, g_S: float) -> float:
    """The next step's largest voltage change (V): grown or shrunk (at most ×2, /2) so that the conductance
    changes by about :data:`CONDUCTANCE_CHANGE` per step."""
    if not (g_last_S > 0 and g_S > 0):
        return min(2.0 * step_V, MAX_STEP_V) if g_S == g_last_S == 0.0 else step_V
    change = abs(g_S / g_last_S - 1.0)
    factor = min(max(CONDUCTANCE_CHANGE / change, 0.5), 2.0) if change > 0 else 2.0
    return min(max(step_V * factor, STEP_V / 4), MAX_STEP_V)


def _held(v_V: float, i_A: float, v_min_V: float, v_max_V: float) -> bool:
    """Nothing moves the voltage: no net current, or the limit holds it."""
    return i_A == 0.0 or (v_V >= v_max_V and i_A > 0) or (v_V <= v_min_V and i_A < 0)


def _conductance_S(net_current_A: Callable[[float], float], v_V: float, i_A: float) -> float:
    """G = −dI/dV (S, >= 0) by a finite difference towards where the voltage moves."""
    d = math.copysign(DERIVATIVE_V, i_A)
    return max(-(net_current_A(v_V + d) - i_A) / d, 0.0)


def _settled_V(net_current_A: Callable[[float], float], v_V: float, i_A: float, g_S: float, newton_V: float,
               t_left_s: float, capacitance_F: float, v_min_V: float, v_max_V: float) -> float | None:
    """The equilibrium (V) if the voltage certainly reaches it within ``t_left_s``, else None.

    A concave decreasing I(V) lies above its chords and below its tangents, so |dV/dt| >= G_b·|V − V_eq|/C
    along the way with G_b = G(V) when rising (the chord to the equilibrium is steeper than the tangent here)
    and G_b = G(V_eq) when falling: the distance shrinks at least as e^(−t·G_b/C)."""
    found = _equilibrium(net_current_A, v_V, i_A, newton_V, v_min_V, v_max_V)
    if found is None:
        return None
    v_eq, g_eq = found
    bound_S = g_S if i_A > 0 else g_eq
    return v_eq if bound_S > 0 and t_left_s * bound_S >= SETTLED_TAU * capacitance_F else None


def _equilibrium(net_current_A: Callable[[float], float], v_V: float, i_A: float, newton_V: float,
                 v_min_V: float, v_max_V: float) -> tuple[float, float] | None:
    """(V_eq, G at V_eq): the root of I(V) from the present ``v_V`` (or the limit that holds the voltage),
    bracketed from V by steps growing from the linearised distance ``newton_V``, then Brent's method; None if
    there is neither within :data:`MAX_BRACKET_V` (the integration steps on)."""
    far = v_max_V if i_A > 0 else v_min_V
    # the first step at most BRACKET_START_V: a tiny conductance (a dark floating cell suddenly lit) predicts a
    # far equilibrium, and the cell's current evaluated volts beyond it overflows (e^(V/Vt))
    step = math.copysign(min(max(abs(newton_V), STEP_V), BRACKET_START_V), i_A)
    inner = v_V
    while True:
        outer = min(max(inner + step, v_min_V), v_max_V)
        i_outer = net_current_A(outer)
        if (i_outer > 0) != (i_A > 0) or i_outer == 0.0:
            break
        if outer == far:
            return outer, _conductance_S(net_current_A, outer, -i_A)  # held at the limit
        if abs(outer - v_V) >= MAX_BRACKET_V:
            return None
        inner, step = outer, 2.0 * step
    v_eq = outer if i_outer == 0.0 else float(brentq(net_current_A, *sorted((inner, outer)), xtol=EQUILIBRIUM_TOL_V))
    d = DERIVATIVE_V
    return v_eq, max(-(net_current_A(v_eq + d) - net_current_A(v_eq - d)) / (2 * d), 0.0)
