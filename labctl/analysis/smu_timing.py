"""The timing model of one source-meter reading (Keithley 2400 series and 2450), used by both sides of the wire.

The driver sizes read timeouts and checks a requested scan rate with it before anything is sent; the simulated
source-meters spend the same time on the bench clock, so a simulated sweep takes as long as the model says a
real one does. One model, here (instruments ref. §1.7, "suggested simulator model"; Keithley 2400 manual,
measurement speed and auto-zero):

    t_reading = NPLC / f_line × (3 with auto-zero, else 1) + 0.5 ms;  t_point = source delay + t_reading

Auto-zero takes a reference and a zero conversion beside each signal conversion, hence the factor 3. The 0.5 ms
per-reading overhead is an engineering estimate (instruments ref. §1.7, confidence [L]).
"""

from __future__ import annotations

#: A/D conversions per reading with auto-zero on (signal, reference, zero); 1 with it off
AUTO_ZERO_CONVERSIONS = 3.0
#: fixed per-reading overhead of the model (s)
READING_OVERHEAD_S = 0.5e-3


def integration_time_s(nplc: float, line_frequency_Hz: float, auto_zero: bool = True) -> float:
    """The A/D window of one reading (s): NPLC / f_line, tripled by auto-zero's reference and zero conversions.

    Parameters
    ----------
    nplc : float
        Integration time in power-line cycles (PLC).
    line_frequency_Hz : float
        Power-line frequency (Hz), 50 or 60.
    auto_zero : bool
        Whether auto-zero is on.
    """
    return nplc / line_frequency_Hz * (AUTO_ZERO_CONVERSIONS if auto_zero else 1.0)


def reading_time_s(nplc: float, line_frequency_Hz: float, auto_zero: bool = True) -> float:
    """Time of one reading without the source delay (s): :func:`integration_time_s` + :data:`READING_OVERHEAD_S`."""
    return integration_time_s(nplc, line_frequency_Hz, auto_zero) + READING_OVERHEAD_S
