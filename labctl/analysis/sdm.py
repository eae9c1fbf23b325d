"""Single-diode model (SDM) of a solar cell and a minimal ion-lag hysteresis extension.

Photocurrent-positive convention: J > 0 in the power quadrant (0 < V < Voc). All current densities are per
aperture area in A/cm², resistances in Ω·cm², voltages in V, temperatures in K.

Model (Methods ref. §1.6)::

    J = Jph − J0·[exp((V + J·Rs)/(n·Vt)) − 1] − (V + J·Rs)/Rsh

solved explicitly with the Lambert W function (Jain & Kapoor, Sol. Energy Mater. Sol. Cells 81 (2004) 269).
The W argument overflows double precision for realistic cells, so it is evaluated in log space with the
Wright omega function, W(exp(x)) = ω(x) (``scipy.special.wrightomega``).

Ion-lag hysteresis (Methods ref. §1.7): an ionic state s ∈ [0, 1] relaxes towards the bias-dependent
equilibrium s_eq(V) with time constant τ_ion; while it lags, recombination is raised,
J0,eff = J0·exp(β·(s_eq(V) − s)). In steady state (s = s_eq) the model is exactly the SDM.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.constants import Boltzmann, elementary_charge
from scipy.optimize import brentq
from scipy.special import expit, wrightomega

STC_TEMPERATURE_K = 298.15
ONE_SUN_W_CM2 = 0.100

FloatOrArray = float | NDArray[np.float64]


def thermal_voltage_V(temperature_K: ArrayLike) -> FloatOrArray:
    """Thermal voltage Vt = k_B·T/q in V (Methods ref. §0; CODATA 2018 exact constants).

    25.6926 mV at 298.15 K, 25.8520 mV at 300 K.
    """
    if type(temperature_K) is float:  # the simulator's hot path: one number, no array overhead
        if not temperature_K > 0:
            raise ValueError(f"temperature_K must be > 0, got {temperature_K!r}")
        return Boltzmann * temperature_K / elementary_charge
    t = np.asarray(temperature_K, dtype=float)
    if np.any(t <= 0):
        raise ValueError(f"temperature_K must be > 0, got {temperature_K!r}")
    vt = Boltzmann * t / elementary_charge
    return float(vt) if vt.ndim == 0 else vt


def j0_at_temperature_A_cm2(
    j0_ref_A_cm2: ArrayLike,
    temperature_K: ArrayLike,
    bandgap_eV: ArrayLike,
    ideality: ArrayLike,
    reference_temperature_K: ArrayLike = STC_TEMPERATURE_K,
) -> FloatOrArray:
    """Diode saturation current density J0 at ``temperature_K`` in A/cm², from its value at a reference temperature.

    ::

        J0(T) = J0(T_ref)·(T/T_ref)³·exp(−(Eg/(n·k_B))·(1/T − 1/T_ref))      (Eg in J, k_B in J/K)

    The T³·exp(−Eg/kT) law of the ideal (diffusion-limited, n = 1) diode, which follows n_i² ∝ T³·exp(−Eg/kT)
    (Sze & Ng, *Physics of Semiconductor Devices*, ideal-diode saturation current), with the activation energy
    taken as Eg/n. With Voc ≈ n·(kT/q)·ln(Jph/J0) this gives::

        dVoc/dT = (Voc − Eg/q)/T − 3·n·k_B/q

    so Voc extrapolates to Eg/q at T → 0 for any ideality n (the activation-energy analysis of Voc(T): Ea = Eg when
    bulk recombination dominates); with Eg instead of Eg/n in the exponent an n = 1.5 cell would extrapolate to
    n·Eg/q, far above the gap. Set A of methods ref. §1.6 with
    Eg = 1.5789 eV gives −1.76 mV/K, inside the 1.5–2.5 mV/K of methods ref. §1.7. Eg is held at its value
    (no Varshni shift) and the photocurrent does not change with T: the simulated EQE has one fixed band edge.
    At ``temperature_K == reference_temperature_K`` the factor is exactly 1.
    """
    args = (j0_ref_A_cm2, temperature_K, bandgap_eV, ideality, reference_temperature_K)
    if all(type(x) is float for x in args):  # the simulator's hot path: the same law in scalar arithmetic
        if not (temperature_K > 0 and reference_temperature_K > 0):
            raise ValueError(f"temperatures must be > 0 K, got {temperature_K!r} and {reference_temperature_K!r}")
        activation = bandgap_eV * elementary_charge / (ideality * Boltzmann)
        return j0_ref_A_cm2 * (temperature_K / reference_temperature_K) ** 3 * math.exp(
            -activation * (1.0 / temperature_K - 1.0 / reference_temperature_K))
    t = np.asarray(temperature_K, dtype=float)
    t_ref = np.asarray(reference_temperature_K, dtype=float)
    if np.any(t <= 0) or np.any(t_ref <= 0):
        raise ValueError(f"temperatures must be > 0 K, got {temperature_K!r} and {reference_temperature_K!r}")
    n = np.asarray(ideality, dtype=float)
    activation_K = np.asarray(bandgap_eV, dtype=float) * elementary_charge / (n * Boltzmann)  # Eg/(n·k_B)
    j0 = np.asarray(j0_ref_A_cm2, dtype=float) * (t / t_ref) ** 3 * np.exp(-activation_K * (1.0 / t - 1.0 / t_ref))
    return _as_result(j0)


def _as_result(x: NDArray[np.float64]) -> FloatOrArray:
    return float(x) if np.ndim(x) == 0 else x


def _solve_current(
    voltage_V: ArrayLike,
    jph_A_cm2: ArrayLike,
    j0_A_cm2: ArrayLike,
    ideality: ArrayLike,
    rs_ohm_cm2: ArrayLike,
    rsh_ohm_cm2: ArrayLike,
    temperature_K: ArrayLike,
) -> tuple[NDArray[np.float64], ...]:
    """Broadcast the inputs and solve the SDM: returns (J, J_diode, a = n·Vt, Gsh, Rs) as arrays.

    J_diode = J0·exp((V + J·Rs)/a) is computed without cancellation: for Rs > 0 it equals
    ω(x)·a·(1 + Rs·Gsh)/Rs, for Rs = 0 it is J0·exp(V/a).
    """
    a = np.asarray(ideality, dtype=float) * thermal_voltage_V(temperature_K)
    with np.errstate(divide="ignore"):
        gsh = 1.0 / np.asarray(rsh_ohm_cm2, dtype=float)
    v, jph, j0, rs, gsh, a = np.broadcast_arrays(
        np.asarray(voltage_V, dtype=float),
        np.asarray(jph_A_cm2, dtype=float),
        np.asarray(j0_A_cm2, dtype=float),
        np.asarray(rs_ohm_cm2, dtype=float),
        gsh,
        a,
    )
    if np.any(rs < 0) or np.any(gsh < 0) or np.any(j0 <= 0) or np.any(a <= 0):
        raise ValueError("need rs_ohm_cm2 >= 0, rsh_ohm_cm2 > 0, j0_A_cm2 > 0, ideality > 0")
    zero_rs = rs == 0.0
    rs_safe = np.where(zero_rs, 1.0, rs)
    denom = 1.0 + rs_safe * gsh
    lin = (rs_safe * (jph + j0) + v) / (a * denom)
    omega = wrightomega(np.log(rs_safe) + np.log(j0) - np.log(a * denom) + lin)
    with np.errstate(over="ignore"):
        # J_diode/(1 + Rs·Gsh) = (a/Rs)·ω(x) = (J0/denom)·exp(lin − ω(x))  (identity ln ω = x − ω); the second
        # form keeps full precision where ω(x) is tiny or underflows (very small Rs or J0).
        j_diode = np.where(omega > 1.0, omega * a * denom / rs_safe, np.exp(np.log(j0) + lin - omega))
        j_lambert = (jph + j0 - v * gsh) / denom - j_diode / denom
        j_explicit = jph - j0 * np.expm1(v / a) - v * gsh
        j_diode = np.where(zero_rs, j0 * np.exp(v / a), j_diode)
    return np.where(zero_rs, j_explicit, j_lambert), j_diode, a, gsh, rs


def current_density_A_cm2(
    voltage_V: ArrayLike,
    jph_A_cm2: ArrayLike,
    j0_A_cm2: ArrayLike,
    ideality: ArrayLike,
    rs_ohm_cm2: ArrayLike,
    rsh_ohm_cm2: ArrayLike,
    temperature_K: ArrayLike = STC_TEMPERATURE_K,
) -> FloatOrArray:
    """SDM current density J(V) in A/cm², explicit Lambert-W solution (Methods ref. §1.6).

    Vectorised over all arguments (numpy broadcasting). ``rs_ohm_cm2 = 0`` uses the explicit diode equation;
    ``rsh_ohm_cm2 = inf`` means no shunt. With Gsh = 1/Rsh and a = n·Vt::

        J = (Jph + J0 − V·Gsh)/(1 + Rs·Gsh) − (a/Rs)·ω(x),
        x = ln(Rs·J0/(a·(1 + Rs·Gsh))) + (Rs·(Jph + J0) + V)/(a·(1 + Rs·Gsh))
    """
    args = (voltage_V, jph_A_cm2, j0_A_cm2, ideality, rs_ohm_cm2, rsh_ohm_cm2, temperature_K)
    if all(type(x) is float for x in args):  # the simulator's hot path (one reading): no array overhead
        return _current_density_scalar(*args)
    j, *_ = _solve_current(*args)
    return _as_result(j)


def _current_density_scalar(v: float, jph: float, j0: float, ideality: float, rs: float, rsh: float,
                            temperature_K: float) -> float:
    """:func:`current_density_A_cm2` for one point, in scalar arithmetic: the same solution, term by term, as
    :func:`_solve_current` (tests/test_analysis_sdm.py checks that they agree)."""
    a = ideality * thermal_voltage_V(temperature_K)
    gsh = 1.0 / rsh if rsh != 0.0 else math.inf
    if rs < 0 or gsh < 0 or j0 <= 0 or a <= 0:
        raise ValueError("need rs_ohm_cm2 >= 0, rsh_ohm_cm2 > 0, j0_A_cm2 > 0, ideality > 0")
    if rs == 0.0:
        return jph - j0 * math.expm1(v / a) - v * gsh
    denom = 1.0 + rs * gsh
    lin = (rs * (jph + j0) + v) / (a * denom)
    omega = float(wrightomega(math.log(rs) + math.log(j0) - math.log(a * denom) + lin))
    try:
        j_diode = omega * a * denom / rs if omega > 1.0 else math.exp(math.log(j0) + lin - omega)
    except OverflowError:
        j_diode = math.inf
    return (jph + j0 - v * gsh) / denom - j_diode / denom


def voltage_V(
    current_density_A_cm2: ArrayLike,
    jph_A_cm2: ArrayLike,
    j0_A_cm2: ArrayLike,
    ideality: ArrayLike,
    rs_ohm_cm2: ArrayLike,
    rsh_ohm_cm2: ArrayLike,
    temperature_K: ArrayLike = STC_TEMPERATURE_K,
) -> FloatOrArray:
    """SDM terminal voltage V(J) in V, the inverse of :func:`current_density_A_cm2` (Methods ref. §1.6).

    V = (Jph + J0 − J)·Rsh − J·Rs − a·ω(x), x = ln(J0·Rsh/a) + Rsh·(Jph + J0 − J)/a, a = n·Vt.
    Where ω(x) > 1 the algebraically identical form V = a·(ln ω(x) − ln(J0·Rsh/a)) − J·Rs is used to avoid the
    cancellation of the two large terms. ``rsh_ohm_cm2 = inf`` gives V = a·ln(1 + (Jph − J)/J0) − J·Rs
    (NaN where J > Jph + J0, which an unshunted diode cannot deliver).
    """
    args = (current_density_A_cm2, jph_A_cm2, j0_A_cm2, ideality, rs_ohm_cm2, rsh_ohm_cm2, temperature_K)
    if all(type(x) is float for x in args):  # the simulator's hot path (a sourced current): no array overhead
        return _voltage_scalar(*args)
    a = np.asarray(ideality, dtype=float) * thermal_voltage_V(temperature_K)
    j, jph, j0, rs, rsh, a = np.broadcast_arrays(
        np.asarray(current_density_A_cm2, dtype=float),
        np.asarray(jph_A_cm2, dtype=float),
        np.asarray(j0_A_cm2, dtype=float),
        np.asarray(rs_ohm_cm2, dtype=float),
        np.asarray(rsh_ohm_cm2, dtype=float),
        a,
    )
    if np.any(rs < 0) or np.any(rsh <= 0) or np.any(j0 <= 0) or np.any(a <= 0):
        raise ValueError("need rs_ohm_cm2 >= 0, rsh_ohm_cm2 > 0, j0_A_cm2 > 0, ideality > 0")
    no_shunt = np.isinf(rsh)
    rsh_f = np.where(no_shunt, 1.0, rsh)
    log_pref = np.log(j0 * rsh_f / a)
    x = log_pref + rsh_f * (jph + j0 - j) / a
    w = wrightomega(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        v_direct = (jph + j0 - j) * rsh_f - j * rs - a * w
        v_log = a * (np.log(w) - log_pref) - j * rs
        v_shunted = np.where(w > 1.0, v_log, v_direct)
        v_unshunted = a * np.log1p((jph - j) / j0) - j * rs
    return _as_result(np.where(no_shunt, v_unshunted, v_shunted))


def _voltage_scalar(j: float, jph: float, j0: float, ideality: float, rs: float, rsh: float,
                    temperature_K: float) -> float:
    """:func:`voltage_V` for one point, in scalar arithmetic: the same solution, term by term."""
    a = ideality * thermal_voltage_V(temperature_K)
    if rs < 0 or rsh <= 0 or j0 <= 0 or a <= 0:
        raise ValueError("need rs_ohm_cm2 >= 0, rsh_ohm_cm2 > 0, j0_A_cm2 > 0, ideality > 0")
    if math.isinf(rsh):
        ratio = (jph - j) / j0
        log_term = math.log1p(ratio) if ratio > -1.0 else (-math.inf if ratio == -1.0 else math.nan)  # as numpy
        return a * log_term - j * rs
    log_pref = math.log(j0 * rsh / a)
    w = float(wrightomega(log_pref + rsh * (jph + j0 - j) / a))
    if w > 1.0:
        return a * (math.log(w) - log_pref) - j * rs
    return (jph + j0 - j) * rsh - j * rs - a * w


def open_circuit_voltage_V(
    jph_A_cm2: ArrayLike,
    j0_A_cm2: ArrayLike,
    ideality: ArrayLike,
    rs_ohm_cm2: ArrayLike,
    rsh_ohm_cm2: ArrayLike,
    temperature_K: ArrayLike = STC_TEMPERATURE_K,
) -> FloatOrArray:
    """SDM open-circuit voltage in V: V(J = 0), closed form (independent of Rs) (Methods ref. §1.6)."""
    return voltage_V(0.0, jph_A_cm2, j0_A_cm2, ideality, rs_ohm_cm2, rsh_ohm_cm2, temperature_K)


def differential_conductance_S_cm2(
    voltage_V: ArrayLike,
    jph_A_cm2: ArrayLike,
    j0_A_cm2: ArrayLike,
    ideality: ArrayLike,
    rs_ohm_cm2: ArrayLike,
    rsh_ohm_cm2: ArrayLike,
    temperature_K: ArrayLike = STC_TEMPERATURE_K,
) -> FloatOrArray:
    """−dJ/dV of the SDM in S/cm² (> 0), analytic (Methods ref. §1.4).

    With g = J0·exp((V + J·Rs)/(n·Vt))/(n·Vt) + 1/Rsh the diode+shunt conductance, −dJ/dV = g/(1 + Rs·g);
    −dV/dJ = Rs + 1/g is the slope resistance of Methods ref. §1.4 (R_oc at J = 0, R_sc at V = 0).
    """
    _, j_diode, a, gsh, rs = _solve_current(
        voltage_V, jph_A_cm2, j0_A_cm2, ideality, rs_ohm_cm2, rsh_ohm_cm2, temperature_K
    )
    g = j_diode / a + gsh
    with np.errstate(invalid="ignore"):
        return _as_result(np.where(rs == 0.0, g, g / (1.0 + rs * g)))


@dataclass(frozen=True)
class SDMParams:
    """Single-diode parameters, per aperture area (Methods ref. §1.6).

    Set A of the methods reference (perovskite, Voc 1.170 V, Jsc 18.30 mA/cm², FF 78.30 %) is
    ``SDMParams(18.33514e-3, 1.16004e-15, 1.5, 3.84022, 2000.0)``.
    """

    jph_A_cm2: float
    j0_A_cm2: float
    ideality: float
    rs_ohm_cm2: float
    rsh_ohm_cm2: float
    temperature_K: float = STC_TEMPERATURE_K

    def current_density_A_cm2(self, voltage_V: ArrayLike, j0_A_cm2: ArrayLike | None = None) -> FloatOrArray:
        """J(V) in A/cm²; ``j0_A_cm2`` overrides J0 (e.g. the ion-lag J0,eff)."""
        j0 = self.j0_A_cm2 if j0_A_cm2 is None else j0_A_cm2
        return current_density_A_cm2(
            voltage_V,
            self.jph_A_cm2,
            j0,
            self.ideality,
            self.rs_ohm_cm2,
            self.rsh_ohm_cm2,
            self.temperature_K,
        )

    def voltage_V(self, current_density_A_cm2: ArrayLike) -> FloatOrArray:
        """V(J) in V."""
        return voltage_V(
            current_density_A_cm2,
            self.jph_A_cm2,
            self.j0_A_cm2,
            self.ideality,
            self.rs_ohm_cm2,
            self.rsh_ohm_cm2,
            self.temperature_K,
        )

    def open_circuit_voltage_V(self) -> float:
        """Voc in V."""
        return float(self.voltage_V(0.0))


@dataclass(frozen=True)
class StaticFigures:
    """Figures of merit of the static SDM (Methods ref. §1.1). SI-ish units as named; ``ff`` is a fraction."""

    voc_V: float
    jsc_A_cm2: float
    ff: float
    vmp_V: float
    jmp_A_cm2: float
    pmp_W_cm2: float
    pce_pct: float
    r_oc_ohm_cm2: float
    r_sc_ohm_cm2: float


def _inverse(g: FloatOrArray) -> float:
    return float(np.inf) if g == 0 else 1.0 / float(g)


def static_figures(
    params: SDMParams, irradiance_W_cm2: float = ONE_SUN_W_CM2, grid_points: int = 2001
) -> StaticFigures:
    """Voc, Jsc, FF, MPP and PCE of the SDM (Methods ref. §1.1), plus the slope resistances (§1.4).

    Voc is closed form; the MPP is bracketed on a dense grid over [0, Voc] and refined as the root of
    dP/dV = J − V·(−dJ/dV) (analytic derivative) with Brent's method, to ~1e-15 V.
    PCE = Pmp/irradiance (0.100 W/cm² = 1 sun AM1.5G).
    """
    if not params.jph_A_cm2 > 0:
        raise ValueError("static_figures needs an illuminated cell (jph_A_cm2 > 0)")
    voc = params.open_circuit_voltage_V()
    jsc = float(params.current_density_A_cm2(0.0))
    args = (
        params.jph_A_cm2,
        params.j0_A_cm2,
        params.ideality,
        params.rs_ohm_cm2,
        params.rsh_ohm_cm2,
        params.temperature_K,
    )

    def dp_dv(v: float) -> float:
        return float(params.current_density_A_cm2(v) - v * differential_conductance_S_cm2(v, *args))

    grid = np.linspace(0.0, voc, grid_points)
    k = int(np.argmax(grid * params.current_density_A_cm2(grid)))
    lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, grid_points - 1)]
    vmp = (
        brentq(dp_dv, lo, hi, xtol=1e-15, rtol=4 * np.finfo(float).eps)
        if dp_dv(lo) * dp_dv(hi) < 0
        else grid[k]
    )
    jmp = float(params.current_density_A_cm2(vmp))
    pmp = vmp * jmp
    return StaticFigures(
        voc_V=voc,
        jsc_A_cm2=jsc,
        ff=pmp / (voc * jsc),
        vmp_V=float(vmp),
        jmp_A_cm2=jmp,
        pmp_W_cm2=pmp,
        pce_pct=100.0 * pmp / irradiance_W_cm2,
        r_oc_ohm_cm2=_inverse(differential_conductance_S_cm2(voc, *args)),
        r_sc_ohm_cm2=_inverse(differential_conductance_S_cm2(0.0, *args)),
    )


# --- ion-lag hysteresis (Methods ref. §1.7) -------------------------------------------------------------


@dataclass(frozen=True)
class IonLagParams:
    """Ion-migration lag parameters (Methods ref. §1.7). Defaults are the reference values."""

    beta: float = 3.0
    tau_s: float = 10.0
    v_half_V: float = 0.6
    width_V: float = 0.15


def ion_equilibrium(voltage_V: ArrayLike, v_half_V: float = 0.6, width_V: float = 0.15) -> FloatOrArray:
    """Equilibrium ionic state s_eq(V) = 1/(1 + exp(−(V − V_h)/w)), in [0, 1] (Methods ref. §1.7)."""
    if not width_V > 0:
        raise ValueError("width_V must be > 0")
    return _as_result(np.asarray(expit((np.asarray(voltage_V, dtype=float) - v_half_V) / width_V)))


def ion_state_step(
    s: ArrayLike,
    voltage_V: ArrayLike,
    dt_s: ArrayLike,
    tau_s: float,
    v_half_V: float = 0.6,
    width_V: float = 0.15,
) -> FloatOrArray:
    """Ionic state after holding bias ``voltage_V`` for ``dt_s`` seconds (Methods ref. §1.7).

    Exact solution of ds/dt = (s_eq(V) − s)/τ for constant V: s ← s_eq + (s − s_eq)·exp(−Δt/τ).
    ``tau_s = 0`` means instantaneous equilibrium, ``tau_s = inf`` a frozen state.
    """
    if tau_s < 0 or np.any(np.asarray(dt_s) < 0):
        raise ValueError("tau_s and dt_s must be >= 0")
    s_eq = np.asarray(ion_equilibrium(voltage_V, v_half_V, width_V))
    if tau_s == 0:
        decay = np.zeros_like(np.asarray(dt_s, dtype=float))
    else:
        decay = np.exp(-np.asarray(dt_s, dtype=float) / tau_s)
    return _as_result(np.asarray(s_eq + (np.asarray(s, dtype=float) - s_eq) * decay))


def effective_j0(j0_A_cm2: ArrayLike, s_eq: ArrayLike, s: ArrayLike, beta: float) -> FloatOrArray:
    """J0,eff = J0·exp(β·(s_eq − s)) in A/cm²: recombination is raised while the ions lag the bias.

    Methods ref. §1.7.
    """
    return _as_result(
        np.asarray(
            np.asarray(j0_A_cm2, dtype=float)
            * np.exp(beta * (np.asarray(s_eq, dtype=float) - np.asarray(s, dtype=float)))
        )
    )


def ion_lag_current_density_A_cm2(
    params: SDMParams, ion: IonLagParams, voltage_V: ArrayLike, s: ArrayLike
) -> FloatOrArray:
    """J in A/cm² at bias ``voltage_V`` with ionic state ``s``: the SDM with J0,eff (Methods ref. §1.7)."""
    s_eq = ion_equilibrium(voltage_V, ion.v_half_V, ion.width_V)
    return params.current_density_A_cm2(voltage_V, effective_j0(params.j0_A_cm2, s_eq, s, ion.beta))


def ion_lag_open_circuit_voltage_V(params: SDMParams, ion: IonLagParams, s: float) -> float:
    """Open-circuit voltage in V with the ionic state frozen at ``s`` (Methods ref. §1.7).

    J0,eff depends on V through s_eq(V), so Voc solves J(V; J0,eff(V, s)) = 0 (Brent's method). J decreases
    monotonically in V, and since J0,eff ≥ J0·exp(−β) the root lies in [0, Voc(J0·exp(−β))].
    """
    if not params.jph_A_cm2 > 0:
        return 0.0

    def j_of_v(v: float) -> float:
        return float(ion_lag_current_density_A_cm2(params, ion, v, s))

    hi = float(
        open_circuit_voltage_V(
            params.jph_A_cm2,
            params.j0_A_cm2 * np.exp(-abs(ion.beta)),
            params.ideality,
            params.rs_ohm_cm2,
            params.rsh_ohm_cm2,
            params.temperature_K,
        )
    )
    if j_of_v(hi) >= 0.0:
        return hi
    return float(brentq(j_of_v, 0.0, hi, xtol=1e-14, rtol=4 * np.finfo(float).eps))


@dataclass(frozen=True)
class StaircaseResult:
    """Output of :func:`simulate_staircase`: one J and one ionic state per applied voltage."""

    voltage_V: NDArray[np.float64]
    j_A_cm2: NDArray[np.float64]
    ion_state: NDArray[np.float64]


def simulate_staircase(
    params: SDMParams,
    voltages_V: ArrayLike,
    dt_per_point_s: float,
    precondition_V: float,
    ion: IonLagParams = IonLagParams(),
) -> StaircaseResult:
    """Staircase J–V sweep of the ion-lag SDM (Methods ref. §1.7), pure and deterministic.

    Time discretisation (this ordering reproduces the reference case J5 of Methods ref. §9): the ionic state
    starts at s = s_eq(precondition_V) (fully preconditioned); then for every point k, in order,

    1. the bias steps to V_k and is held for ``dt_per_point_s``: s ← ion_state_step(s, V_k, Δt, τ);
    2. J_k is evaluated at the end of the hold with that updated s (the SMU reads after its source delay).

    Scan rate = ΔV_step/Δt, e.g. 10 mV steps at Δt = 0.1 s are 0.1 V/s. The state carries over between
    consecutive points, so an RS→FS loop is one call with the concatenated voltages.
    """
    v = np.asarray(voltages_V, dtype=float).ravel()
    s = float(ion_equilibrium(precondition_V, ion.v_half_V, ion.width_V))
    states = np.empty_like(v)
    for k, vk in enumerate(v):
        s = float(ion_state_step(s, vk, dt_per_point_s, ion.tau_s, ion.v_half_V, ion.width_V))
        states[k] = s
    j = np.asarray(ion_lag_current_density_A_cm2(params, ion, v, states), dtype=float)
    return StaircaseResult(voltage_V=v, j_A_cm2=j, ion_state=states)


def staircase_voltages_V(start_V: float, stop_V: float, step_V: float) -> NDArray[np.float64]:
    """Staircase voltages from ``start_V`` to ``stop_V`` inclusive in steps of |``step_V``| (V).

    Values are start + k·step rounded to 1e-12 V, so 1.3 → −0.1 V in 10 mV steps gives exactly 141 points.
    """
    if step_V == 0:
        raise ValueError("step_V must be non-zero")
    n = int(round(abs(stop_V - start_V) / abs(step_V)))
    return np.round(np.linspace(start_V, start_V + np.sign(stop_V - start_V) * n * abs(step_V), n + 1), 12)


# ------------------------------------------------------------------------------------ several diodes in parallel
#: one recombination channel of a multi-diode model: (ideality factor, J0 in A/cm²)
Diode = tuple[float, float]

_EXP_MAX = 700.0  # exp() argument cap: beyond it the recombination current is "infinite" for any bracket


def multi_diode_recombination_A_cm2(junction_V: float, diodes: tuple[Diode, ...], temperature_K: float) -> float:
    """Recombination current density Σ_k J0k·(exp(V_j/(n_k·Vt)) − 1) in A/cm² at junction voltage ``junction_V``
    (V) of parallel diodes ``diodes`` = ((n_k, J0k in A/cm²), ...) (Methods ref. §4.1, §4.3)."""
    vt = thermal_voltage_V(float(temperature_K))
    return sum(j0 * math.expm1(min(junction_V / (n * vt), _EXP_MAX)) for n, j0 in diodes)


def _check_diodes(diodes: tuple[Diode, ...], rs: float, rsh: float) -> None:
    if not diodes or any(not (n > 0 and j0 > 0) for n, j0 in diodes) or rs < 0 or not rsh > 0:
        raise ValueError("need at least one diode with ideality > 0 and j0_A_cm2 > 0, rs_ohm_cm2 >= 0, "
                         "rsh_ohm_cm2 > 0")


def _decreasing_root(f: Callable[[float], float], start: float) -> float:
    """Root of the decreasing function ``f`` (V → A/cm²), bracketed by doubling steps from ``start``; NaN if
    there is none within ±1e4 V (e.g. more current than an unshunted cell can deliver)."""
    f0 = f(start)
    if f0 == 0.0:
        return start
    step, direction = 0.1, (1.0 if f0 > 0 else -1.0)
    edge = start
    while step < 1e4:
        nxt = start + direction * step
        if (f(nxt) > 0) != (f0 > 0):
            lo, hi = sorted((edge, nxt))
            return float(brentq(f, lo, hi, xtol=1e-13, rtol=4 * np.finfo(float).eps))
        edge, step = nxt, step * 2.0
    return math.nan


def multi_diode_voltage_V(current_density_A_cm2: float, jph_A_cm2: float, diodes: tuple[Diode, ...],
                          rs_ohm_cm2: float, rsh_ohm_cm2: float,
                          temperature_K: float = STC_TEMPERATURE_K) -> float:
    """Terminal voltage V(J) in V of the multi-diode model (scalar; Methods ref. §1.6 with §4.3's channels)::

        J = Jph − Σ_k J0k·[exp((V + J·Rs)/(n_k·Vt)) − 1] − (V + J·Rs)/Rsh

    The junction voltage is found by Brent's method (no closed form for several diodes); with J = 0 this is Voc.
    ``rsh_ohm_cm2 = inf``: no shunt. NaN where no voltage gives J."""
    _check_diodes(diodes, rs_ohm_cm2, rsh_ohm_cm2)
    j, jph = float(current_density_A_cm2), float(jph_A_cm2)

    def excess(v_j: float) -> float:  # decreasing in the junction voltage
        return jph - j - multi_diode_recombination_A_cm2(v_j, diodes, temperature_K) - v_j / rsh_ohm_cm2

    return _decreasing_root(excess, 0.0) - j * rs_ohm_cm2


def multi_diode_current_density_A_cm2(voltage_V: float, jph_A_cm2: float, diodes: tuple[Diode, ...],
                                      rs_ohm_cm2: float, rsh_ohm_cm2: float,
                                      temperature_K: float = STC_TEMPERATURE_K) -> float:
    """Photocurrent-positive J(V) in A/cm² of the multi-diode model of :func:`multi_diode_voltage_V` (scalar).

    With Rs > 0 the junction voltage V_j = V + J·Rs is the root of
    Jph − J_rec(V_j) − V_j/Rsh − (V_j − V)/Rs, bracketed between V and V + Rs·J(Rs = 0)."""
    _check_diodes(diodes, rs_ohm_cm2, rsh_ohm_cm2)
    v, jph = float(voltage_V), float(jph_A_cm2)

    def without_rs(v_j: float) -> float:
        return jph - multi_diode_recombination_A_cm2(v_j, diodes, temperature_K) - v_j / rsh_ohm_cm2

    j_at_v = without_rs(v)
    if rs_ohm_cm2 == 0.0 or j_at_v == 0.0:
        return j_at_v
    def balance(v_j: float) -> float:
        return without_rs(v_j) - (v_j - v) / rs_ohm_cm2

    end = v + rs_ohm_cm2 * j_at_v
    if (balance(end) >= 0) == (j_at_v > 0):  # the Rs drop is below the rounding of the balance: J(Rs = 0)
        return j_at_v
    v_j = float(brentq(balance, *sorted((v, end)), xtol=1e-15, rtol=4 * np.finfo(float).eps))
    return (v_j - v) / rs_ohm_cm2
