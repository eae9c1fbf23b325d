"""Dark J–V analysis: J0, ideality factor, series and shunt resistance of the dark curve (methods ref. §1.8).

The raw local ideality of a dark curve, n(V) = (1/Vt)·dV/d ln J, is not the diode's: the curve is dominated by
the shunt at low bias and by the series resistance at high bias (methods ref. §1.8, worked warning for set A:
the raw n(V) is 15–30 at 0.4–0.8 V and 3.4 at 1.2 V and never shows 1.5). So the single-diode model in the dark
(methods ref. §1.6 with Jph = 0), which holds both resistances::

    J_dark = J0·[exp((V − J_dark·Rs)/(n·Vt)) − 1] + (V − J_dark·Rs)/Rsh        (J_dark > 0 at forward bias)

is fitted to the whole curve at once, by non-linear least squares on ln|J_dark| (the curve spans many decades;
an absolute residual would fit only the top few points). The model is :func:`labctl.analysis.sdm.
current_density_A_cm2` with Jph = 0 (one model, in one place).

Units: V in V, J in A/cm² (``j_dark`` input in mA/cm², photocurrent-positive as stored), resistances in Ω·cm².
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import least_squares

from labctl.analysis.sdm import STC_TEMPERATURE_K, current_density_A_cm2, thermal_voltage_V
from labctl.analysis.sdm_fit import ILL_DETERMINED_REL_UNCERTAINTY

__all__ = ["DarkFit", "fit_dark_jv", "dark_current_A_cm2"]

_MIN_POINTS = 8
#: |V| below this (V) is left out: J_dark ≈ 0 there and its logarithm is noise
_V_MIN_V = 2e-3
#: the shunt slope for the starting value is taken over |V| up to this (V)
_SHUNT_WINDOW_V = 0.15
_N_BOUNDS = (0.3, 20.0)
_RS_MAX_OHM_CM2 = 1e4
_RSH_BOUNDS_OHM_CM2 = (1e-2, 1e12)


@dataclass(frozen=True)
class DarkFit:
    """Result of :func:`fit_dark_jv`. ``*_uncertainty*`` are standard uncertainties from the fit's covariance.

    A parameter whose relative uncertainty exceeds :data:`labctl.analysis.sdm_fit.ILL_DETERMINED_REL_UNCERTAINTY`
    is NaN with ``<name>_ill_determined`` in ``flags`` (e.g. ``rs_ill_determined`` for a scan that stops before
    Rs shows). Everything is NaN, flagged ``too_few_points``, ``no_diode_current`` or ``not_converged``, when there
    is no fit; with ``no_diode_current`` (the scan never leaves the shunt region) Rsh is the inverse slope near 0 V.
    ``rms_log_residual`` is the rms of ln(J_model/J_measured) over the fitted points.
    """

    j0_A_cm2: float
    ideality: float
    rs_ohm_cm2: float
    rsh_ohm_cm2: float
    j0_uncertainty_A_cm2: float
    ideality_uncertainty: float
    rs_uncertainty_ohm_cm2: float
    rsh_uncertainty_ohm_cm2: float
    rms_log_residual: float
    points: int
    temperature_K: float
    flags: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """JSON-able: NaN → None."""
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


def dark_current_A_cm2(
    voltage_V: ArrayLike, j0_A_cm2: float, ideality: float, rs_ohm_cm2: float, rsh_ohm_cm2: float,
    temperature_K: float = STC_TEMPERATURE_K,
) -> NDArray[np.float64]:
    """Dark current density in A/cm², positive at forward bias: −J(V) of the single-diode model with Jph = 0."""
    v = np.asarray(voltage_V, dtype=float)
    return -np.asarray(current_density_A_cm2(v, 0.0, j0_A_cm2, ideality, rs_ohm_cm2, rsh_ohm_cm2, temperature_K))


def _failed(points: int, temperature_K: float, flag: str) -> DarkFit:
    nan = math.nan
    return DarkFit(nan, nan, nan, nan, nan, nan, nan, nan, nan, points, temperature_K, [flag])


def _shunt_slope_ohm_cm2(v: NDArray[np.float64], jd: NDArray[np.float64]) -> float:
    """Rsh (Ω·cm²) as the inverse slope of J_dark(V) near 0 V, where the shunt carries the current."""
    near = np.abs(v) <= max(_SHUNT_WINDOW_V, np.sort(np.abs(v))[min(4, v.size - 1)])
    slope = np.polyfit(v[near], jd[near], 1)[0] if near.sum() >= 2 else 0.0
    return float(np.clip(1.0 / slope, *_RSH_BOUNDS_OHM_CM2)) if slope > 0 else _RSH_BOUNDS_OHM_CM2[1]


def _start(v: NDArray[np.float64], jd: NDArray[np.float64], vt: float) -> NDArray[np.float64] | None:
    """Starting θ = (ln J0, n, Rs, ln Rsh): shunt from the slope near 0 V, n and J0 from the steepest part of the
    shunt-corrected ln J, Rs from the excess voltage at the highest current."""
    rsh = _shunt_slope_ohm_cm2(v, jd)
    fwd = v > 0
    diode = jd[fwd] - v[fwd] / rsh
    vf = v[fwd]
    ok = diode > 0.5 * jd[fwd]  # where the diode carries at least half the current
    if ok.sum() < 2:
        return None
    vf, ln_jd = vf[ok], np.log(diode[ok])
    local = np.diff(ln_jd) / np.diff(vf)
    k = int(np.argmax(local))
    n = float(np.clip(1.0 / (vt * local[k]), *_N_BOUNDS)) if local[k] > 0 else 2.0
    ln_j0 = float(ln_jd[k] - vf[k] / (n * vt))
    top = int(np.argmax(jd))
    v_diode = n * vt * (math.log(jd[top]) - ln_j0)
    rs = float(np.clip((v[top] - v_diode) / jd[top], 0.0, _RS_MAX_OHM_CM2))
    return np.array([ln_j0, n, rs, math.log(rsh)])


def fit_dark_jv(
    voltage_V: ArrayLike, j_mA_cm2: ArrayLike, compliance: ArrayLike | None = None,
    temperature_K: float = STC_TEMPERATURE_K,
) -> DarkFit:
    """Fit the single-diode dark model to a dark J–V curve (methods ref. §1.6, §1.8).

    Parameters
    ----------
    voltage_V
        Device voltage (V).
    j_mA_cm2
        Current density as stored (mA/cm², photocurrent-positive: negative at forward bias in the dark).
    compliance
        True for readings in current compliance: left out (their current is the compliance, not the cell's).
    temperature_K
        Device temperature (K); only n·Vt is determined by the curve, n is reported at this temperature.

    Returns
    -------
    DarkFit
        J0 (A/cm²), n, Rs and Rsh (Ω·cm²) with their standard uncertainties and flags.
    """
    v = np.asarray(voltage_V, dtype=float)
    jd = -np.asarray(j_mA_cm2, dtype=float) * 1e-3  # dark current density (A/cm²), positive at forward bias
    keep = np.isfinite(v) & np.isfinite(jd) & (np.abs(v) > _V_MIN_V) & (np.sign(jd) == np.sign(v))
    if compliance is not None:
        keep &= ~np.asarray(compliance, dtype=bool)
    v, jd = v[keep], jd[keep]
    if v.size < _MIN_POINTS:
        return _failed(int(v.size), temperature_K, "too_few_points")
    vt = float(thermal_voltage_V(temperature_K))
    theta0 = _start(v, jd, vt)
    if theta0 is None:  # all shunt: only Rsh can be told, from the slope (no uncertainty from a fit)
        return replace(_failed(int(v.size), temperature_K, "no_diode_current"),
                       rsh_ohm_cm2=_shunt_slope_ohm_cm2(v, jd))
    ln_measured = np.log(np.abs(jd))

    def residuals(theta: NDArray[np.float64]) -> NDArray[np.float64]:
        model = dark_current_A_cm2(v, math.exp(theta[0]), theta[1], theta[2], math.exp(theta[3]), temperature_K)
        return np.log(np.maximum(np.abs(model), 1e-300)) - ln_measured

    lower = [-120.0, _N_BOUNDS[0], 0.0, math.log(_RSH_BOUNDS_OHM_CM2[0])]
    upper = [0.0, _N_BOUNDS[1], _RS_MAX_OHM_CM2, math.log(_RSH_BOUNDS_OHM_CM2[1])]
    theta0 = np.clip(theta0, np.array(lower) + 1e-9, np.array(upper) - 1e-9)
    try:
        sol = least_squares(residuals, theta0, bounds=(lower, upper), method="trf", x_scale="jac",
                            xtol=1e-12, ftol=1e-12, gtol=1e-12, max_nfev=2000)
    except (ValueError, FloatingPointError):
        return _failed(int(v.size), temperature_K, "not_converged")
    if not sol.success:
        return _failed(int(v.size), temperature_K, "not_converged")
    ln_j0, n, rs, ln_rsh = (float(x) for x in sol.x)
    dof = max(v.size - 4, 1)
    s2 = float(sol.fun @ sol.fun) / dof
    try:
        cov = s2 * np.linalg.pinv(sol.jac.T @ sol.jac)
        sd = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    except np.linalg.LinAlgError:
        sd = np.full(4, math.nan)
    j0, rsh = math.exp(ln_j0), math.exp(ln_rsh)
    values = {"j0": j0, "ideality": n, "rs": rs, "rsh": rsh}
    # ln J0 and ln Rsh: the standard uncertainty of the logarithm is the relative one
    rel = {"j0": sd[0], "ideality": sd[1] / n, "rs": sd[2] / rs if rs > 0 else math.inf, "rsh": sd[3]}
    flags = []
    for name, r in rel.items():
        if not r <= ILL_DETERMINED_REL_UNCERTAINTY:
            values[name] = math.nan
            flags.append(f"{name}_ill_determined")
    return DarkFit(
        j0_A_cm2=values["j0"], ideality=values["ideality"], rs_ohm_cm2=values["rs"], rsh_ohm_cm2=values["rsh"],
        j0_uncertainty_A_cm2=float(sd[0] * j0), ideality_uncertainty=float(sd[1]), rs_uncertainty_ohm_cm2=float(sd[2]),
        rsh_uncertainty_ohm_cm2=float(sd[3] * rsh), rms_log_residual=math.sqrt(float(sol.fun @ sol.fun) / v.size),
        points=int(v.size), temperature_K=temperature_K, flags=flags,
    )
