"""Single-diode fit of a measured illuminated J–V curve (Methods ref. §1.6).

The model is the single-diode equation of :mod:`labctl.analysis.sdm` (explicit Lambert-W form), fitted to all
given points by non-linear least squares (``scipy.optimize.least_squares``, trust-region reflective, analytic
Jacobian). It estimates the five parameters Jph, J0, n, Rs and Rsh; unlike the slopes R_oc and R_sc of
Methods ref. §1.4 these are the series and shunt resistances themselves. Only n·Vt is determined by the curve:
the ideality factor is reported for the temperature given.

Parametrisation (for conditioning): θ = (Jph [mA/cm²], Voc,model [V], n, Rs [Ω·cm²], ln Rsh), with
J0 = (Jph − Voc,model/Rsh)/(exp(Voc,model/(n·Vt)) − 1): Voc and Jph are nearly fixed by the data, so the fit
does not have to move ln J0 and n together along their strong correlation.

Uncertainties are one standard uncertainty from the covariance s²·(JᵀJ)⁻¹ at the solution, with s² the residual
variance (unweighted: the current noise is taken as constant over the curve). They describe the noise only,
not a model error (a curve that is not single-diode-like, e.g. a hysteretic scan, is fitted all the same: look
at ``rms_residual_mA_cm2``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import least_squares

from labctl.analysis.sdm import STC_TEMPERATURE_K, current_density_A_cm2, thermal_voltage_V

__all__ = ["STC_TEMPERATURE_K", "SingleDiodeFit", "fit_single_diode", "ILL_DETERMINED_REL_UNCERTAINTY"]

#: a fitted Rs, Rsh or n whose relative standard uncertainty exceeds this is reported as NaN, flagged
ILL_DETERMINED_REL_UNCERTAINTY = 0.25
#: lower bound of the current noise assumed for the uncertainties, relative to the largest |J|
NOISE_FLOOR_REL = 1e-6
_MIN_POINTS = 10
_MAX_EVALUATIONS = 50
_N_BOUNDS = (0.3, 20.0)
_RSH_BOUNDS_OHM_CM2 = (1e-2, 1e12)


@dataclass(frozen=True)
class SingleDiodeFit:
    """Result of :func:`fit_single_diode`. Units as named; ``*_uncertainty*`` are standard uncertainties.

    ``rs_ohm_cm2``, ``rsh_ohm_cm2`` and ``ideality`` are NaN (with ``rs_ill_determined`` etc. in ``flags``)
    when their relative uncertainty exceeds :data:`ILL_DETERMINED_REL_UNCERTAINTY`; ``raw`` keeps the fitted
    values (Jph, J0, n, Rs, Rsh) whatever their uncertainty. Everything is NaN, flagged ``not_converged``,
    ``too_few_points`` or ``no_photocurrent``, when there is no fit.
    """

    jph_mA_cm2: float
    j0_A_cm2: float
    ideality: float
    rs_ohm_cm2: float
    rsh_ohm_cm2: float
    jph_uncertainty_mA_cm2: float
    j0_uncertainty_A_cm2: float
    ideality_uncertainty: float
    rs_uncertainty_ohm_cm2: float
    rsh_uncertainty_ohm_cm2: float
    rms_residual_mA_cm2: float
    points: int
    temperature_K: float
    raw: tuple[float, float, float, float, float]
    flags: tuple[str, ...] = ()

    @property
    def converged(self) -> bool:
        """True when there is a fit (possibly with ill-determined parameters)."""
        return not {"not_converged", "too_few_points", "no_photocurrent"}.intersection(self.flags)


def _failed(points: int, temperature_K: float, flag: str) -> SingleDiodeFit:
    nan = float("nan")
    return SingleDiodeFit(*([nan] * 11), points, temperature_K, (nan,) * 5, (flag,))


def _j0_A_cm2(jph_mA: float, voc: float, a: float, rsh: float) -> float:
    return (1e-3 * jph_mA - voc / rsh) / np.expm1(voc / a)


def _model_and_jacobian(
    theta: NDArray[np.float64], v: NDArray[np.float64], temperature_K: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """J(V) in mA/cm² and its derivatives with respect to θ (implicit differentiation of the diode equation)."""
    jph_mA, voc, n, rs, ln_rsh = theta
    vt = float(thermal_voltage_V(temperature_K))
    a, rsh = n * vt, float(np.exp(ln_rsh))
    jph = 1e-3 * jph_mA
    j0 = _j0_A_cm2(jph_mA, voc, a, rsh)
    if not (j0 > 0 and np.isfinite(j0)):  # Jph below Voc/Rsh: no such diode; the solver backs off
        bad = np.full(v.shape, np.nan)
        return bad, np.full((v.size, 5), np.nan)
    j = np.asarray(current_density_A_cm2(v, jph, j0, n, rs, rsh, temperature_K), dtype=float)
    # F(J; p) = Jph − J0·(e − 1) − (V + J·Rs)/Rsh − J = 0 with e = exp((V + J·Rs)/a); J0·e from F = 0
    vd = v + j * rs
    j0e = np.maximum(jph + j0 - j - vd / rsh, 0.0)
    dF_dJ = -(j0e * rs / a + rs / rsh + 1.0)
    dF = {
        "jph": np.ones_like(v),
        "j0": -(j0e / j0 - 1.0) if j0 > 0 else np.zeros_like(v),
        "a": j0e * vd / a**2,
        "rs": -(j0e * j / a + j / rsh),
        "rsh": vd / rsh**2,
    }
    dJ = {k: -val / dF_dJ for k, val in dF.items()}  # dJ/dp, A/cm² per unit of p
    # J0 = (Jph − Voc/Rsh)/(exp(Voc/a) − 1): its derivatives with respect to Jph, Voc, a, Rsh
    em1 = np.expm1(voc / a)
    ev = em1 + 1.0
    dj0 = {
        "jph": 1.0 / em1,
        "voc": (-1.0 / rsh) / em1 - j0 * ev / (a * em1),
        "a": j0 * ev * voc / (a**2 * em1),
        "rsh": (voc / rsh**2) / em1,
    }
    jac = np.empty((v.size, 5))
    jac[:, 0] = 1e-3 * (dJ["jph"] + dJ["j0"] * dj0["jph"])  # per mA/cm² of Jph
    jac[:, 1] = dJ["j0"] * dj0["voc"]
    jac[:, 2] = vt * (dJ["a"] + dJ["j0"] * dj0["a"])
    jac[:, 3] = dJ["rs"]
    jac[:, 4] = rsh * (dJ["rsh"] + dJ["j0"] * dj0["rsh"])
    return 1e3 * j, 1e3 * jac


def _start(v: NDArray[np.float64], j: NDArray[np.float64], vt: float) -> NDArray[np.float64] | None:
    """Starting point from the curve itself (J in mA/cm²; None without a J = 0 crossing or photocurrent).

    Jsc and Voc by interpolation; Rsh from the slope below 0.5·Voc; n from the slope of ln J_diode against
    the internal voltage V + J·Rs between 0.5·Voc and Voc, J_diode = Jsc − J − (V + J·Rs)/Rsh; Rs from the slope
    at Voc, R_oc = Rs + 1/(J_diode'(Voc) + 1/Rsh) (methods ref. §1.4). n and Rs are refined twice in turn.
    """
    down = np.flatnonzero((j[:-1] > 0) & (j[1:] <= 0) & (v[:-1] > 0))
    if down.size == 0:
        return None
    k = int(down[0])
    voc = float(v[k] + j[k] * (v[k + 1] - v[k]) / (j[k] - j[k + 1]))
    jsc = float(np.interp(0.0, v, j)) if v[0] <= 0 else float(j[0])
    if not jsc > 0:
        return None
    low = v <= 0.5 * voc
    rsh = 1e6
    if low.sum() >= 3 and np.ptp(v[low]) > 0:
        b = np.polyfit(v[low], j[low], 1)[0]
        rsh = -1000.0 / b if b < 0 else 1e6
    rsh = float(np.clip(rsh, 10 * _RSH_BOUNDS_OHM_CM2[0], 0.1 * _RSH_BOUNDS_OHM_CM2[1]))
    near = np.sort(np.argsort(np.abs(v - voc))[:5])
    b = np.polyfit(v[near], j[near], 1)[0]
    r_oc = -1000.0 / b if b < 0 else 0.0
    n, rs = 1.5, 0.0
    region = (v >= 0.5 * voc) & (v <= voc)
    for _ in range(2):
        v_int = v[region] + 1e-3 * j[region] * rs
        j_d = jsc - j[region] - 1e3 * v_int / rsh
        use = j_d > 1e-3 * jsc
        if use.sum() >= 3 and np.ptp(v_int[use]) > 0:
            slope = np.polyfit(v_int[use], np.log(j_d[use]), 1)[0]
            if slope > 0:
                n = float(np.clip(1.0 / (slope * vt), *_N_BOUNDS))
        g_d = 1e-3 * max(jsc - 1e3 * voc / rsh, 1e-3 * jsc) / (n * vt)  # diode conductance at Voc, S/cm²
        rs = float(np.clip(r_oc - 1.0 / (g_d + 1.0 / rsh), 0.0, r_oc)) if r_oc > 0 else 0.0
    jph = jsc * (1.0 + rs / rsh)
    return np.array([jph, voc, n, rs, np.log(rsh)])


def _covariance(jac: NDArray[np.float64], s2: float) -> NDArray[np.float64]:
    """s²·(JᵀJ)⁻¹ from the SVD of the column-scaled Jacobian; infinite variance along directions whose singular
    value is below 1e-10 of the largest (the parameters there are not determined by the data)."""
    norms = np.linalg.norm(jac, axis=0)
    norms = np.where(norms > 0, norms, 1.0)
    _, sv, vt = np.linalg.svd(jac / norms, full_matrices=False)
    if not (sv.size and sv[0] > 0 and sv[-1] > 1e-10 * sv[0]):
        return np.full((jac.shape[1], jac.shape[1]), np.inf)
    cov_scaled = (vt.T / sv**2) @ vt
    return s2 * cov_scaled / np.outer(norms, norms)


def fit_single_diode(
    voltage_V: ArrayLike, j_mA_cm2: ArrayLike, temperature_K: float = STC_TEMPERATURE_K
) -> SingleDiodeFit:
    """Fit the single-diode model (Methods ref. §1.6) to an illuminated J–V curve.

    Parameters
    ----------
    voltage_V, j_mA_cm2
        The curve: V in V, photocurrent-positive J in mA/cm² (points in any order; non-finite pairs dropped).
        Leave out points in compliance before calling.
    temperature_K
        Cell temperature in K (sets Vt; only n·Vt is determined by the curve).

    Returns
    -------
    SingleDiodeFit
        Parameters with standard uncertainties; flags ``too_few_points`` (< 10 points), ``no_photocurrent``
        (no J > 0 at 0 V or no J = 0 crossing at V > 0 to start from), ``not_converged`` (the solver failed
        within 50 evaluations) and ``rs_ill_determined`` / ``rsh_ill_determined`` / ``ideality_ill_determined``.
    """
    v = np.asarray(voltage_V, dtype=float).ravel()
    j = np.asarray(j_mA_cm2, dtype=float).ravel()
    finite = np.isfinite(v) & np.isfinite(j)
    v, j = v[finite], j[finite]
    order = np.argsort(v, kind="stable")
    v, j = v[order], j[order]
    vt = float(thermal_voltage_V(temperature_K))
    if v.size < _MIN_POINTS:
        return _failed(int(v.size), temperature_K, "too_few_points")
    x0 = _start(v, j, vt)
    if x0 is None:
        return _failed(int(v.size), temperature_K, "no_photocurrent")
    voc0 = x0[1]
    lower = np.array([1e-9, 0.2 * voc0, _N_BOUNDS[0], 0.0, np.log(_RSH_BOUNDS_OHM_CM2[0])])
    upper = np.array([np.inf, 5.0 * voc0 + 0.1, _N_BOUNDS[1], np.inf, np.log(_RSH_BOUNDS_OHM_CM2[1])])
    x0 = np.clip(x0, lower + 1e-12 * np.abs(lower), upper)

    cache: dict[bytes, tuple[NDArray[np.float64], NDArray[np.float64]]] = {}

    def evaluate(theta: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        key = theta.tobytes()
        if key not in cache:
            cache.clear()
            with np.errstate(all="ignore"):
                cache[key] = _model_and_jacobian(theta, v, temperature_K)
        return cache[key]

    def residuals(theta: NDArray[np.float64]) -> NDArray[np.float64]:
        model, _ = evaluate(theta)
        r = model - j
        return np.where(np.isfinite(r), r, 1e6)

    def jacobian(theta: NDArray[np.float64]) -> NDArray[np.float64]:
        _, jac = evaluate(theta)
        return np.where(np.isfinite(jac), jac, 0.0)

    try:
        sol = least_squares(
            residuals,
            x0,
            jac=jacobian,
            bounds=(lower, upper),
            x_scale="jac",
            method="trf",
            max_nfev=_MAX_EVALUATIONS,
            ftol=1e-12,
            xtol=1e-12,
            gtol=1e-12,
        )
    except (ValueError, np.linalg.LinAlgError):
        return _failed(int(v.size), temperature_K, "not_converged")
    theta = sol.x
    r = residuals(theta)
    if sol.status <= 0 or not np.all(np.abs(r) < 1e5):
        return _failed(int(v.size), temperature_K, "not_converged")
    dof = max(v.size - 5, 1)
    # the noise is taken as at least 1 ppm of the largest |J| (a source-meter's resolution): on noise-free data a
    # direction the curve hardly constrains must still show up as a large uncertainty
    s2 = max(float(np.dot(r, r) / dof), (NOISE_FLOOR_REL * float(np.max(np.abs(j)))) ** 2)
    cov = _covariance(jacobian(theta), s2)
    sd = np.sqrt(np.diag(cov))  # inf along directions the curve does not constrain

    jph_mA, voc, n, rs, ln_rsh = (float(x) for x in theta)
    rsh = float(np.exp(ln_rsh))
    a = n * vt
    j0 = float(_j0_A_cm2(jph_mA, voc, a, rsh))
    # J0 uncertainty by the delta method on ln J0(θ)
    h = 1e-7 * np.maximum(np.abs(theta), 1e-3)
    grad = np.empty(5)
    for i in range(5):
        t = theta.copy()
        t[i] += h[i]
        with np.errstate(invalid="ignore"):
            grad[i] = (np.log(_j0_A_cm2(t[0], t[1], t[2] * vt, np.exp(t[4]))) - np.log(j0)) / h[i]
    with np.errstate(invalid="ignore"):
        u_j0 = j0 * float(np.sqrt(max(grad @ cov @ grad, 0.0)))

    flags: list[str] = []
    values = {"rs": (rs, float(sd[3])), "rsh": (rsh, rsh * float(sd[4])), "ideality": (n, float(sd[2]))}
    shown: dict[str, tuple[float, float]] = {}
    for name, (value, u) in values.items():
        if not (np.isfinite(u) and u <= ILL_DETERMINED_REL_UNCERTAINTY * abs(value)):
            flags.append(f"{name}_ill_determined")
            shown[name] = (float("nan"), float("nan"))
        else:
            shown[name] = (value, u)
    return SingleDiodeFit(
        jph_mA_cm2=jph_mA,
        j0_A_cm2=j0,
        ideality=shown["ideality"][0],
        rs_ohm_cm2=shown["rs"][0],
        rsh_ohm_cm2=shown["rsh"][0],
        jph_uncertainty_mA_cm2=float(sd[0]),
        j0_uncertainty_A_cm2=u_j0,
        ideality_uncertainty=shown["ideality"][1],
        rs_uncertainty_ohm_cm2=shown["rs"][1],
        rsh_uncertainty_ohm_cm2=shown["rsh"][1],
        rms_residual_mA_cm2=float(np.sqrt(np.mean(r**2))),
        points=int(v.size),
        temperature_K=float(temperature_K),
        raw=(jph_mA, j0, n, rs, rsh),
        flags=tuple(flags),
    )
