"""Quasi-steady-state J–V on the simulated bench with the DEFAULT settings (only ``mode=qss``): the searches that
bracket the MPP and Voc with converged points, the order of the biases (methods ref. §1.3), the warnings, the
compliance flag, and the p-i-n sign handling.

Expected figures come from the methods reference (set A, §1.6 table: ``FOM_A``) or from
``pvlib.pvsystem.singlediode`` on the station's device parameters, never from the simulator.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pvlib.pvsystem import singlediode
from scipy.constants import Boltzmann, elementary_charge

from labctl.storage import load_run
from procedures.jv import JVProcedure
from tests.helpers import FOM_A, SET_B, default_station, run_jv, station_with

DEFAULTS = JVProcedure()  # the defaults a user gets: the tests read the tolerances from them, never set them


def _pvlib_figures(device: dict, temperature_K: float = 298.15) -> dict:
    """Static single-diode figures (V, mA/cm², fraction) from pvlib for area-normalised parameters."""
    vt = Boltzmann * temperature_K / elementary_charge
    r = singlediode(device["jph_mA_cm2"] * 1e-3, device["j0_A_cm2"], device["rs_ohm_cm2"], device["rsh_ohm_cm2"],
                    device["ideality"] * vt)
    return {"voc_V": float(r["v_oc"]), "jsc_mA_cm2": float(r["i_sc"]) * 1e3,
            "ff": float(r["p_mp"] / (r["v_oc"] * r["i_sc"])), "vmp_V": float(r["v_mp"])}


def _qss(tmp_path, station: dict, **params) -> tuple[dict, pd.DataFrame, list[str]]:
    result, _ = run_jv(tmp_path, station, mode="qss", **params)
    assert result.status == "completed", result.error
    run = load_run(result.path)
    return result.results.get("qss", {}), run.streams["jv"], [e for e in run.events if "WARNING" in e]


def _assert_close(fom: dict, expected: dict, ff_abs: float) -> None:
    assert fom["voc_V"] is not None and fom["ff"] is not None, fom
    assert abs(fom["voc_V"] - expected["voc_V"]) < 1e-3, fom
    assert abs(fom["jsc_mA_cm2"] / expected["jsc_mA_cm2"] - 1) < 2e-3, fom
    assert abs(fom["ff"] - expected["ff"]) < ff_abs, fom


def test_static_cell_defaults_recover_ff(tmp_path):
    """Set A without ion lag: FF was 0.45 % abs low with the default 12-point grid (discrete maximum 25 mV from
    Vmp). The golden-section MPP search brings it to the lamp-flicker floor (0.05 % rms readings: ~0.04 % FF)."""
    fom, jv, warnings = _qss(tmp_path, default_station())
    _assert_close(fom, FOM_A, ff_abs=1e-3)
    assert jv.converged.all() and not warnings, warnings


def test_pbs_like_cell_defaults_match_pvlib(tmp_path):
    """Methods set B (Voc 0.65 V): another curvature of P(V); expected figures from pvlib.singlediode."""
    fom, jv, warnings = _qss(tmp_path, station_with(device=SET_B))
    _assert_close(fom, _pvlib_figures(SET_B), ff_abs=1e-3)
    assert jv.converged.all() and not warnings, warnings


def test_p_i_n_cell_with_p_i_n_polarity(tmp_path):
    """Anode on the SMU LO terminal: the searches run on device voltages, the SMU gets −V (self._sign)."""
    fom, jv, warnings = _qss(tmp_path, station_with(device={"stack": "p-i-n"}), polarity="p-i-n")
    _assert_close(fom, FOM_A, ff_abs=1e-3)
    assert (jv.voltage_V >= 0).all()
    assert (np.sign(jv.current_A) == np.sign(jv.j_mA_cm2)).all()  # J = +I/A: the SMU sees the cell reversed
    assert not warnings, warnings


def test_voc_and_mpp_are_bracketed_by_converged_points(tmp_path):
    """Ion-lag cell, defaults: the first J = 0 crossing lies between two converged points at most qss_voc_tol_V
    apart, and the highest-power point has converged neighbours on both sides at most qss_mpp_tol_V apart."""
    _, jv, _ = _qss(tmp_path, station_with(hysteresis={"enabled": True}))
    curve = jv.sort_values("voltage_V").reset_index(drop=True)
    v, j = curve.voltage_V.to_numpy(), curve.j_mA_cm2.to_numpy()
    down = np.flatnonzero((j[:-1] > 0) & (j[1:] <= 0) & (v[:-1] > 0))
    assert down.size == 1, curve
    k = int(down[0])
    assert curve.converged[k] and curve.converged[k + 1]
    assert v[k + 1] - v[k] <= DEFAULTS.qss_voc_tol_V + 1e-9, (v[k], v[k + 1])
    # the true Voc is inside the measured bracket (give or take the reading noise: ±0.01 mA/cm² × 6 Ω cm²)
    assert v[k] - 2e-4 < FOM_A["voc_V"] < v[k + 1] + 2e-4, (v[k], v[k + 1])
    p = v * j
    m = int(np.argmax(np.where(j > 0, p, -np.inf)))
    assert 0 < m < len(v) - 1 and curve.converged[m - 1] and curve.converged[m + 1]
    assert v[m + 1] - v[m - 1] <= DEFAULTS.qss_mpp_tol_V + 1e-9, (v[m - 1], v[m], v[m + 1])


def test_bias_order_follows_methods_protocol(tmp_path):
    """methods ref. §1.3: stabilise at Vmp first, then step towards 0 V, then from the MPP towards Voc; the Voc
    refinement stays inside the first sign change."""
    _, jv, _ = _qss(tmp_path, default_station())
    v, j = jv.voltage_V.to_numpy(), jv.j_mA_cm2.to_numpy()
    assert np.all(np.diff(jv.time_s) > 0)
    assert abs(v[0] - FOM_A["vmp_V"]) < 0.03  # the first bias held is the Vmp estimate
    k0 = int(np.argmin(v))
    assert v[k0] == 0.0
    search = np.flatnonzero(np.abs(v[:k0] - FOM_A["vmp_V"]) < 0.1)
    assert search.size >= 5 and np.array_equal(search, np.arange(search.size))  # the MPP search comes first
    assert np.all(np.diff(v[search.size:k0 + 1]) < 0)  # then monotonically towards 0 V
    first_neg = k0 + 1 + int(np.argmax(j[k0 + 1:] <= 0))
    assert np.all(np.diff(v[k0 + 1:first_neg + 1]) > 0)  # then up until J changes sign
    lo = max(v[k0 + 1:first_neg][j[k0 + 1:first_neg] > 0])
    assert np.all((v[first_neg + 1:] > lo) & (v[first_neg + 1:] < v[first_neg]))


def test_stop_below_voc_warns_and_reports_no_voc(tmp_path):
    fom, _, warnings = _qss(tmp_path, default_station(), stop_V=1.1)
    assert fom["voc_V"] is None
    assert any("stop_V = 1.1" in e and "Voc is not bracketed" in e for e in warnings), warnings


def test_compliance_is_recorded_and_kept_out_of_the_mpp_search(tmp_path):
    """A 0.7 cm² cell measured as the default 0.049 cm² at 10 mA: |I| reaches the limit in the power quadrant.
    The jv column carries the SMU's real compliance flag (it was hard-coded 0), and the MPP search stops there."""
    _, jv, warnings = _qss(tmp_path, station_with(device={"area_cm2": 0.7}))
    at_limit = jv.current_A.abs() >= 0.999 * DEFAULTS.compliance_A
    assert at_limit.any()
    assert (jv.compliance == at_limit.astype(int)).all(), jv
    assert any("in compliance" in e and "MPP search stopped" in e for e in warnings), warnings
