"""Shared constants live once (issue 8 §6): hc/q, the lock-in slope → poles map and the source-meter timing model
are defined in labctl.analysis and used from there by the drivers, the simulator and the procedures. Expected
values are from the definitions (CODATA 2018 exact constants; instruments ref. §1.7), not from the code."""

from __future__ import annotations

import pytest

import drivers.keithley2400 as k2400_driver
import drivers.sr830 as sr830_driver
import sim_instruments.keithley2400 as k2400_emulator
import sim_instruments.lockin_filter as lockin_filter
import sim_instruments.optics as optics
import sim_instruments.smu_emulator as smu_emulator
from labctl.analysis import lockin, smu_timing, spectra

# CODATA 2018, exact: h = 6.62607015e-34 J s, c = 299792458 m/s, q = 1.602176634e-19 C
H_J_S, C_M_S, Q_C = 6.62607015e-34, 299792458.0, 1.602176634e-19


def test_hc_over_q_is_the_codata_value_everywhere():
    hc_q_nm_V = H_J_S * C_M_S / Q_C * 1e9  # 1239.84198433...
    assert spectra.HC_OVER_Q_NM_V == pytest.approx(hc_q_nm_V, rel=1e-14)
    assert optics.HC_NM_V == pytest.approx(hc_q_nm_V, rel=1e-14)  # the simulated beam converts with the same
    assert optics.Q_E == Q_C


@pytest.mark.parametrize(("slope_dB_oct", "poles"), [(6, 1), (12, 2), (18, 3), (24, 4)])
def test_slope_to_poles_is_one_map(slope_dB_oct, poles):
    """6 dB/oct per RC pole (methods ref. §3.4): the driver, the emulator and the analysis agree."""
    assert lockin.slope_to_poles(slope_dB_oct) == poles
    assert sr830_driver.POLES[slope_dB_oct] == poles
    assert lockin_filter.poles_for_slope(slope_dB_oct) == poles


@pytest.mark.parametrize(("nplc", "line_Hz", "auto_zero", "expected_s"),
                         [(1.0, 50.0, True, 3 * 0.020 + 0.0005), (1.0, 50.0, False, 0.020 + 0.0005),
                          (0.01, 60.0, True, 3 * 0.01 / 60 + 0.0005), (10.0, 60.0, False, 10 / 60 + 0.0005)])
def test_the_smu_timing_model_is_the_one_the_driver_and_the_emulator_use(nplc, line_Hz, auto_zero, expected_s):
    """t = NPLC/f_line × (3 with auto-zero, else 1) + 0.5 ms (instruments ref. §1.7)."""
    assert smu_timing.reading_time_s(nplc, line_Hz, auto_zero) == pytest.approx(expected_s, rel=1e-12)
    assert k2400_driver.Keithley2400.reading_time_s(nplc, line_Hz, auto_zero) == pytest.approx(expected_s, rel=1e-12)
    window_s = expected_s - 0.0005
    assert smu_emulator.integration_time_s(nplc, line_Hz, auto_zero) == pytest.approx(window_s, rel=1e-12)
    assert smu_emulator.integration_time_s is smu_timing.integration_time_s is k2400_emulator.integration_time_s
    assert smu_emulator.READING_OVERHEAD_S == 0.0005
