"""Lock-in maths (Methods ref. §3.3, §3.4; reference cases P1–P3)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import quad

from labctl.analysis import lockin as L

REF = json.loads((Path(__file__).parent / "data" / "reference_cases.json").read_text())
SLOPES = ["6", "12", "18", "24"]


# --- P1 ---------------------------------------------------------------------------------------------
def test_p1_square_wave_fundamental_rms():
    case = REF["P1_square_wave_rms_over_pp"]
    assert L.square_wave_fundamental_rms(1.0) == pytest.approx(case["value"], abs=case["tol"])
    # SR830 manual example: 2 V pk-pk square wave → 0.900 V rms
    assert L.square_wave_fundamental_rms(2.0) == pytest.approx(0.9003, abs=1e-4)


def test_p1_agrees_with_numerical_fourier_analysis():
    # fundamental rms of a 0→1 rectangular wave with duty D, from an FFT of one sampled period
    n = 100_000
    for duty in (0.5, 0.45, 0.4, 0.1):
        x = (np.arange(n) < duty * n).astype(float)
        rms = abs(np.fft.rfft(x)[1]) * 2 / n / math.sqrt(2)
        assert L.square_wave_fundamental_rms(1.0, duty) == pytest.approx(rms, rel=1e-6)


def test_duty_cycle_values_of_methods_section_3_3():
    # fundamental peak 0.6288·pp at D = 0.45 and 0.6055·pp at D = 0.40
    assert L.square_wave_fundamental_rms(1.0, 0.45) * math.sqrt(2) == pytest.approx(0.6288, abs=1e-4)
    assert L.square_wave_fundamental_rms(1.0, 0.40) * math.sqrt(2) == pytest.approx(0.6055, abs=1e-4)


def test_pp_from_rms_inverts_and_gives_the_worked_beam_current():
    # Methods ref. §3.2: L_ref = 0.4502 V at G = 1e6 V/A → I_on = 1.0001 µA
    assert L.square_wave_pp_from_rms(0.4502) / 1e6 == pytest.approx(1.0001e-6, abs=1e-10)
    assert L.square_wave_pp_from_rms(L.square_wave_fundamental_rms(3.0, 0.3), 0.3) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="duty"):
        L.square_wave_fundamental_rms(1.0, 1.5)


# --- P2 and the step response ------------------------------------------------------------------------
@pytest.mark.parametrize("slope", SLOPES)
def test_p2_settle_99_percent(slope):
    case = REF["P2_settle_99pct_tau"]
    poles = L.slope_to_poles(float(slope))
    assert L.settle_time_constants(poles, 0.99) == pytest.approx(case["by_dB_per_oct"][slope], abs=case["tol_tau"])
    assert L.settle_time_constants(poles, 0.99) == pytest.approx(case["by_dB_per_oct"][slope], rel=1e-10)


@pytest.mark.parametrize(
    "poles, fraction, tau",
    [(1, 0.632, 1.00), (1, 0.999, 6.91), (2, 0.9, 3.89), (3, 0.9999, 13.93), (4, 0.999, 13.06), (4, 0.9, 6.68)],
)
def test_settle_table_of_methods_section_3_4(poles, fraction, tau):
    assert L.settle_time_constants(poles, fraction) == pytest.approx(tau, abs=0.006)


@pytest.mark.parametrize("poles, reached", [(1, 0.9933), (2, 0.9596), (3, 0.8753), (4, 0.7350)])
def test_step_response_at_five_tau(poles, reached):
    assert L.step_response(5.0, poles) == pytest.approx(reached, abs=5e-5)


def test_step_response_closed_form_and_edges():
    x = np.linspace(0.0, 20.0, 81)
    for n in range(1, 6):
        closed = 1 - np.exp(-x) * sum(x**k / math.factorial(k) for k in range(n))
        np.testing.assert_allclose(L.step_response(x, n), closed, atol=1e-13)
    assert L.step_response(-1.0, 2) == 0.0
    with pytest.raises(ValueError, match="poles"):
        L.step_response(1.0, 0)
    with pytest.raises(ValueError, match="poles"):
        L.step_response(1.0, 2.0)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 8), st.floats(1e-6, 1 - 1e-9))
def test_settle_time_is_the_root_of_the_step_response(poles, fraction):
    t = L.settle_time_constants(poles, fraction)
    assert L.step_response(t, poles) == pytest.approx(fraction, rel=1e-9)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 7), st.floats(0.01, 0.999), st.floats(0.01, 0.999))
def test_settle_time_increases_with_poles_and_fraction(poles, f1, f2):
    assert L.settle_time_constants(poles + 1, f1) > L.settle_time_constants(poles, f1)
    lo, hi = sorted((f1, f2))
    if hi - lo > 1e-6:
        assert L.settle_time_constants(poles, hi) > L.settle_time_constants(poles, lo)


def test_settle_time_rejects_bad_fraction():
    for f in (0.0, 1.0, 1.2):
        with pytest.raises(ValueError, match="fraction"):
            L.settle_time_constants(2, f)


# --- P3 and bandwidths -------------------------------------------------------------------------------
@pytest.mark.parametrize("slope", SLOPES)
def test_p3_enbw_exact(slope):
    expected = REF["P3_enbw_times_tau"]["by_dB_per_oct"][slope]
    poles = L.slope_to_poles(float(slope))
    assert L.enbw_Hz(1.0, poles) == expected
    assert L.enbw_Hz(0.3, poles) == pytest.approx(expected / 0.3, rel=1e-15)


@pytest.mark.parametrize("poles", [1, 2, 3, 4, 6])
def test_enbw_equals_integral_of_power_response(poles):
    tau = 0.1
    integral, _ = quad(lambda f: (1 + (2 * math.pi * f * tau) ** 2) ** -poles, 0, math.inf)
    assert L.enbw_Hz(tau, poles) == pytest.approx(integral, rel=1e-8)


@pytest.mark.parametrize("poles, f_2pi_tau", [(1, 1.000), (2, 0.644), (3, 0.510), (4, 0.435)])
def test_minus3dB_frequency(poles, f_2pi_tau):
    tau = 0.3
    f = L.minus3dB_frequency_Hz(tau, poles)
    assert f * 2 * math.pi * tau == pytest.approx(f_2pi_tau, abs=5e-4)
    assert (1 + (2 * math.pi * f * tau) ** 2) ** -poles == pytest.approx(0.5, rel=1e-12)


def test_slope_to_poles():
    assert [L.slope_to_poles(s) for s in (6, 12, 18, 24, 24.08)] == [1, 2, 3, 4, 4]
    for bad in (0, 3, 10, -6):
        with pytest.raises(ValueError, match="multiple of 6"):
            L.slope_to_poles(bad)


@given(st.integers(1, 4), st.floats(0.5, 20.0))
def test_residual_factor_predicts_the_remaining_error_from_the_slope(poles, x):
    """For any step, the missing fraction 1 − y(x) equals the slope y'(x) times residual_factor(x)."""
    from labctl.analysis.lockin import residual_factor

    slope = x ** (poles - 1) * math.exp(-x) / math.factorial(poles - 1)  # dy/dx, checked against y below
    h = 1e-5
    assert slope == pytest.approx((L.step_response(x + h, poles) - L.step_response(x - h, poles)) / (2 * h),
                                  rel=1e-3, abs=1e-9)
    assert (1 - L.step_response(x, poles)) == pytest.approx(slope * residual_factor(x, poles), rel=1e-5, abs=1e-12)


def test_residual_factor_one_pole_is_one_and_grows_at_the_start():
    from labctl.analysis.lockin import residual_factor

    assert residual_factor(3.0, 1) == pytest.approx(1.0)
    assert residual_factor(0.5, 4) > 20 > residual_factor(8.0, 4) > 1
