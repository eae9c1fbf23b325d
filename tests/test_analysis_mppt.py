"""MPP trackers (labctl.analysis.mppt; methods ref. §7.1 and §9 T3).

The cell is SDM set A of methods ref. §1.6 (reference_cases.json), evaluated with pvlib's single-diode functions
(independent of labctl.analysis.sdm and of the simulator); τ_ion = 0, so P(V) is static. The ion-lag rows of the
§7.1 table use labctl.analysis.sdm's ion-lag model (methods ref. §1.7).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pvlib import pvsystem
from scipy.constants import Boltzmann, elementary_charge

from labctl.analysis import sdm
from labctl.analysis.mppt import (
    ALGORITHMS,
    TrackerState,
    make_tracker,
    ramp_voltages,
    tracker_from_state,
)

_A = json.loads((Path(__file__).parent / "data" / "reference_cases.json").read_text())["J1_J2_sdm_sets"]["A"]["params"]
NVT = _A["n"] * Boltzmann * _A["T"] / elementary_charge


def power_mW_cm2(v: float, scale: float = 1.0) -> float:
    """P = V·J of set A at ``scale`` suns (Jph ∝ irradiance), mW/cm², pvlib's Lambert-W solution."""
    j = pvsystem.i_from_v(v, scale * _A["Jph"], _A["J0"], _A["Rs"], _A["Rsh"], NVT)
    return 1e3 * v * float(j)


def mpp(scale: float = 1.0) -> tuple[float, float]:
    out = pvsystem.singlediode(scale * _A["Jph"], _A["J0"], _A["Rs"], _A["Rsh"], NVT)
    return float(out["v_mp"]), 1e3 * float(out["p_mp"])


VMP, PMP = mpp()
VOC = float(pvsystem.singlediode(_A["Jph"], _A["J0"], _A["Rs"], _A["Rsh"], NVT)["v_oc"])


def run(tracker, steps: int, noise_mW_cm2: float = 0.0, seed: int = 0, scale=lambda k: 1.0):
    """Apply the tracker's voltage, read P (plus Gaussian noise), feed it back; ``steps`` readings."""
    rng = np.random.default_rng(seed)
    v = tracker.state.voltage_V
    vs, ps = [], []
    for k in range(steps):
        p = power_mW_cm2(v, scale(k))
        vs.append(v)
        ps.append(p)
        v = tracker.update(v, p + noise_mW_cm2 * rng.standard_normal())
    return np.array(vs), np.array(ps)


def test_set_a_reference_mpp_from_pvlib() -> None:
    # methods ref. §7.1: static MPP of set A, Vmp = 0.9798 V, Pmp = 16.765 mW/cm²
    assert VMP == pytest.approx(0.9798, abs=1e-4)
    assert PMP == pytest.approx(16.765, abs=1e-3)


def test_t3_adaptive_perturb_observe_on_set_a() -> None:
    # methods ref. §9 T3 and the §7.1 table's adaptive row (½ on reversal, ×1.2, 1–50 mV: the defaults):
    # start at 0.936 V, 300 steps, statistics over the last 50
    vs, ps = run(make_tracker("perturb-observe", start_V=0.936), 300)
    assert vs[-50:].mean() == pytest.approx(0.9797, abs=0.002)
    assert ps[-50:].mean() / PMP >= 0.9999
    assert ps[-50:].mean() / PMP >= 0.999985  # the table's 99.999 %
    assert vs[-50:].std() == pytest.approx(0.8e-3, abs=0.1e-3)  # the table's 0.8 mV


def test_fixed_step_row_of_the_table() -> None:
    # §7.1 table, τ_ion ≈ 0, fixed ΔV = 20 mV: ⟨V⟩ 0.9764 V, std 14.1 mV, ⟨P⟩ 99.76 % — P&O with grow = shrink = 1
    tracker = make_tracker("perturb-observe", start_V=0.936, step_initial_V=0.02, step_min_V=0.02, step_max_V=0.02,
                           grow=1.0, shrink=1.0)
    vs, ps = run(tracker, 300)
    assert vs[-50:].mean() == pytest.approx(0.9764, abs=5e-5)
    assert vs[-50:].std() == pytest.approx(14.1e-3, abs=0.05e-3)
    assert 100 * ps[-50:].mean() / PMP == pytest.approx(99.76, abs=0.005)
    adaptive = run(make_tracker("perturb-observe", start_V=0.936), 300)[1]
    assert adaptive[-50:].mean() > ps[-50:].mean()  # what the adaptive step is for


def run_ion_lag(tracker, steps: int = 300, dwell_s: float = 1.0):
    """As :func:`run` on set A with the ion lag of methods ref. §1.7 (β 3, τ_ion 10 s, V_h 0.6 V, w 0.15 V; the
    labctl.analysis.sdm model, preconditioned at the start voltage): the reading ends each dwell."""
    cell = sdm.SDMParams(_A["Jph"], _A["J0"], _A["n"], _A["Rs"], _A["Rsh"], _A["T"])
    ion = sdm.IonLagParams()
    v = tracker.state.voltage_V
    s = float(sdm.ion_equilibrium(v, ion.v_half_V, ion.width_V))
    vs, ps = [], []
    for _ in range(steps):
        s = float(sdm.ion_state_step(s, v, dwell_s, ion.tau_s, ion.v_half_V, ion.width_V))
        p = 1e3 * v * float(sdm.ion_lag_current_density_A_cm2(cell, ion, v, s))
        vs.append(v)
        ps.append(p)
        v = tracker.update(v, p)
    return np.array(vs), np.array(ps)


def test_table_rows_with_ion_lag_converge_to_the_stabilised_mpp() -> None:
    # §7.1 table, τ_ion = 10 s, t_dwell = 1 s, from 0.936 V, last 50 of 300: fixed 20 mV → 0.9764 V, 14.1 mV,
    # 99.73 %; adaptive → 0.9779 V, 99.995 % of the static Pmp (the steady state of the ion-lag model is the SDM)
    fixed = make_tracker("perturb-observe", start_V=0.936, step_initial_V=0.02, step_min_V=0.02, step_max_V=0.02,
                         grow=1.0, shrink=1.0)
    vs, ps = run_ion_lag(fixed)
    assert vs[-50:].mean() == pytest.approx(0.9764, abs=5e-5)
    assert vs[-50:].std() == pytest.approx(14.1e-3, abs=0.05e-3)
    assert 100 * ps[-50:].mean() / PMP == pytest.approx(99.73, abs=0.005)
    for algorithm, at_least in (("perturb-observe", 0.9999), ("gradient-momentum", 0.999)):
        vs, ps = run_ion_lag(make_tracker(algorithm, start_V=0.936))
        assert vs[-50:].mean() == pytest.approx(0.9779, abs=0.002), algorithm
        assert ps[-50:].mean() / PMP >= at_least, algorithm


def test_gradient_momentum_holds_999_per_mille() -> None:
    vs, ps = run(make_tracker("gradient-momentum", start_V=0.936), 300)
    assert ps[-50:].mean() / PMP >= 0.999
    assert vs[-50:].mean() == pytest.approx(VMP, abs=0.005)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_approach_ramps_from_voc_without_a_jump_then_tracks(algorithm: str) -> None:
    tracker = make_tracker(algorithm, start_V=VOC, target_V=0.95, ramp_step_V=0.01)
    assert tracker.state.phase == "approach"
    v, seen = tracker.state.voltage_V, [tracker.state.voltage_V]
    while tracker.state.phase == "approach":
        v = tracker.update(v, power_mW_cm2(v))
        seen.append(v)
    assert seen[-1] == 0.95  # exactly the target
    assert len(seen) - 1 == math.ceil((VOC - 0.95) / 0.01)
    assert np.all(np.diff(seen) < 0) and np.max(np.abs(np.diff(seen))) <= 0.01 + 1e-12
    vs, ps = run(tracker, 300)
    assert ps[-50:].mean() / PMP >= 0.999


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_resumed_tracker_ramps_from_voc_back_to_its_saved_voltage(algorithm: str) -> None:
    first = make_tracker(algorithm, start_V=0.936)
    run(first, 150)
    saved = json.loads(json.dumps(first.state.to_dict()))
    resumed = tracker_from_state(saved)
    assert resumed.approach(VOC) == VOC  # apply Voc first (the run measured it at I = 0)
    assert resumed.state.phase == "approach" and resumed.state.target_V == saved["voltage_V"]
    v, path = VOC, [VOC]
    while resumed.state.phase == "approach":
        v = resumed.update(v, power_mW_cm2(v))
        path.append(v)
    assert path[-1] == saved["voltage_V"]  # not 0 V, not a jump
    assert np.max(np.abs(np.diff(path))) <= 0.01 + 1e-12
    assert resumed.state.step_V == saved["step_V"]  # the step survives: no re-learning from step_initial
    vs, ps = run(resumed, 60)
    assert ps[-30:].mean() / PMP >= 0.999
    already_there = tracker_from_state(saved)
    assert already_there.approach(saved["voltage_V"]) == saved["voltage_V"]
    assert already_there.state.phase == "track" and already_there.state.last_power_mW_cm2 is None


def test_no_target_means_tracking_from_the_start() -> None:
    tracker = make_tracker("perturb-observe", start_V=0.9)
    assert tracker.state.phase == "track" and tracker.state.target_V is None
    assert tracker.state.voltage_V == 0.9


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("split", [3, 120])  # mid-approach and mid-track
def test_state_round_trip_continues_identically(algorithm: str, split: int) -> None:
    kw = dict(step_max_V=0.04, ramp_step_V=0.02)
    a = make_tracker(algorithm, start_V=VOC, target_V=0.9, **kw)
    run(a, split, noise_mW_cm2=0.01, seed=1)
    saved = json.loads(json.dumps(a.state.to_dict()))
    assert TrackerState.from_dict(saved) == a.state
    b = tracker_from_state(saved, **kw)
    c = tracker_from_state(a.state, **kw)
    assert c.state is not a.state  # a copy: the caller's state is not shared
    rest = [run(t, 100, noise_mW_cm2=0.01, seed=2)[0] for t in (a, b, c)]
    assert np.array_equal(rest[0], rest[1]) and np.array_equal(rest[0], rest[2])
    assert a.state == b.state == c.state


def test_state_errors_name_the_key() -> None:
    good = make_tracker("perturb-observe", start_V=0.9).state.to_dict()
    with pytest.raises(ValueError, match="unknown key.*'bogus'"):
        TrackerState.from_dict({**good, "bogus": 1})
    with pytest.raises(ValueError, match="algorithm='hill'"):
        TrackerState.from_dict({**good, "algorithm": "hill"})
    with pytest.raises(ValueError, match="missing key 'phase'"):
        TrackerState.from_dict({k: v for k, v in good.items() if k != "phase"})
    with pytest.raises(ValueError, match="algorithm='hill'"):
        make_tracker("hill", start_V=0.9)
    with pytest.raises(ValueError, match="voltage_V='0.9'; allowed: a number"):
        TrackerState.from_dict({**good, "voltage_V": "0.9"})
    with pytest.raises(ValueError, match="step_min_V=0.1 > step_max_V=0.05"):
        make_tracker("perturb-observe", start_V=0.9, step_min_V=0.1)
    with pytest.raises(ValueError, match="shrink=1.5"):
        make_tracker("perturb-observe", start_V=0.9, shrink=1.5)


def test_noise_free_tracking_never_reinflates_and_an_irradiance_step_does() -> None:
    tracker = make_tracker("perturb-observe", start_V=0.936)
    run(tracker, 300)
    assert tracker.state.reinflations == 0
    # 1 sun → 0.2 sun at step 300 (a lamp dip): the MPP moves by −19 mV; the step re-inflates and the tracker
    # settles on the new MPP
    vmp_low, pmp_low = mpp(0.2)
    assert VMP - vmp_low > 0.015
    vs, ps = run(tracker, 200, scale=lambda k: 0.2)
    assert tracker.state.reinflations >= 1
    assert vs[-50:].mean() == pytest.approx(vmp_low, abs=0.002)
    assert ps[-50:].mean() / pmp_low >= 0.9999


@pytest.mark.parametrize("given_noise", [False, True])
def test_known_or_estimated_noise_does_not_cause_reinflations(given_noise: bool) -> None:
    sigma = 1e-3 * PMP
    tracker = make_tracker("perturb-observe", start_V=0.936, noise_mW_cm2=sigma if given_noise else None)
    vs, ps = run(tracker, 400, noise_mW_cm2=sigma, seed=3)
    assert tracker.state.reinflations == 0
    assert ps[-200:].mean() / PMP >= 0.999
    if not given_noise:  # the running estimate of |ΔP| of two readings: √2·σ·√(2/π) = 1.128 σ for Gaussian noise
        assert tracker.state.noise_mW_cm2 == pytest.approx(1.128 * sigma, rel=0.35)


# --- properties ---------------------------------------------------------------------------------------------

readings = st.floats(allow_nan=True, allow_infinity=True, width=64)
settings_st = st.fixed_dictionaries({
    "step_min_V": st.floats(1e-4, 0.01),
    "step_max_V": st.floats(0.01, 0.2),
    "ramp_step_V": st.floats(1e-3, 0.1),
    "grow": st.floats(1.0, 3.0),
    "shrink": st.floats(0.05, 1.0),
})


@settings(max_examples=150, deadline=None)
@given(algorithm=st.sampled_from(ALGORITHMS), cfg=settings_st, start=st.floats(-1, 2), target=st.floats(-1, 2),
       powers=st.lists(readings, min_size=1, max_size=80))
def test_never_a_step_above_the_maximum_and_always_finite(algorithm, cfg, start, target, powers) -> None:
    tracker = make_tracker(algorithm, start_V=start, target_V=target, **cfg)
    limit = max(cfg["step_max_V"], cfg["ramp_step_V"])
    v = tracker.state.voltage_V
    for p in powers:
        nxt = tracker.update(v, p)
        assert math.isfinite(nxt)
        assert abs(nxt - v) <= limit + 4 * np.finfo(float).eps * max(abs(v), 1.0)  # float rounding of V ± limit
        assert tracker.state.voltage_V == nxt
        assert cfg["step_min_V"] <= tracker.state.step_V <= cfg["step_max_V"]
        v = nxt
    text = json.dumps(tracker.state.to_dict(), allow_nan=False)  # strict JSON: no NaN/Infinity in the state
    assert TrackerState.from_dict(json.loads(text)) == tracker.state


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_absurd_readings_leave_a_strict_json_state(algorithm: str) -> None:
    tracker = make_tracker(algorithm, start_V=0.9, step_initial_V=0.001)  # converged-sized steps from the start
    v = tracker.state.voltage_V
    for k in range(40):
        v = tracker.update(v, (-1) ** k * 1.7e308)  # differences overflow to ±inf
        assert math.isfinite(v)
    json.dumps(tracker.state.to_dict(), allow_nan=False)
    vs, ps = run(tracker, 300)  # and it still finds the MPP afterwards
    assert ps[-50:].mean() / PMP >= 0.999


@settings(max_examples=20, deadline=None)
@given(algorithm=st.sampled_from(ALGORITHMS), seed=st.integers(0, 2**32 - 1),
       rel_noise=st.floats(0.0, 1e-3))
def test_noise_robustness_on_set_a(algorithm: str, seed: int, rel_noise: float) -> None:
    # reading noise up to 0.1 % of Pmp (a few 1e-5 of range for the SMU plus lamp flicker, methods ref. §1.7):
    # the defaults still hold ⟨P⟩ ≥ 99.9 % of Pmp and stay near Vmp
    vs, ps = run(make_tracker(algorithm, start_V=0.936), 400, noise_mW_cm2=rel_noise * PMP, seed=seed)
    assert ps[-200:].mean() / PMP >= 0.999
    assert vs[-200:].mean() == pytest.approx(VMP, abs=0.01)


@settings(max_examples=200, deadline=None)
@given(a=st.floats(-10, 10), b=st.floats(-10, 10), step=st.floats(1e-4, 5))
def test_ramp_voltages_properties(a: float, b: float, step: float) -> None:
    ramp = ramp_voltages(a, b, step)
    if a == b:
        assert ramp == []
        return
    assert ramp[-1] == b and ramp[0] != a
    path = np.array([a, *ramp])
    rounding = 4 * np.finfo(float).eps * max(abs(a), abs(b))  # of the voltages themselves
    assert np.all(np.abs(np.diff(path)) <= step + rounding)
    assert np.all(np.sign(np.diff(path)) == np.sign(b - a))
    n = len(ramp)
    assert n == 1 or abs(b - a) / (n - 1) > step  # as few steps as the limit allows


def test_ramp_voltages_examples() -> None:
    assert ramp_voltages(1.17, 0.97, 0.1) == pytest.approx([1.07, 0.97])
    assert ramp_voltages(0.0, 0.25, 0.1) == pytest.approx([0.25 / 3, 0.5 / 3, 0.25])
    with pytest.raises(ValueError, match="max_step_V=0.0"):
        ramp_voltages(0.0, 1.0, 0.0)
