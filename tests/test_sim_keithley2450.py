"""Keithley 2450 emulator: native SCPI set, reading buffers, native sweep, limits, stock PyMeasure traffic."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim_instruments.keithley2450 import Keithley2450Emulator
from tests.fakes import R_OHM, VOC_V, ResistorCellBench, replay_stock_traffic, values
from tests.real_cell import cell_bench, cell_current_A, cell_voltage_V

LINE_HZ = 60.0


class FakeBench(ResistorCellBench):
    def __init__(self) -> None:
        super().__init__(LINE_HZ, seed=2, t0_s=10.0)


@pytest.fixture
def bench() -> FakeBench:
    return FakeBench()


@pytest.fixture
def smu(bench: FakeBench) -> Keithley2450Emulator:
    return Keithley2450Emulator(bench, serial="04321987")


def codes(smu: Keithley2450Emulator) -> str:
    return smu.handle(":SYST:ERR:CODE:ALL?") or ""


def test_identity_language_and_line_frequency(smu: Keithley2450Emulator) -> None:
    assert smu.handle("*IDN?") == "KEITHLEY INSTRUMENTS INC.,MODEL 2450,04321987,1.7.3c"
    assert smu.handle("*LANG?;:SYST:LFR?") == "SCPI;60"
    smu.handle("*LANG SCPI2400")  # takes effect after a power cycle on a real unit
    assert smu.handle("*LANG?") == "SCPI2400"
    assert codes(smu) == "0"


def test_native_sweep_into_a_user_buffer(smu: Keithley2450Emulator, bench: FakeBench) -> None:
    n, delay_s = 11, 0.01
    smu.handle(':SOUR:FUNC VOLT;:SENS:FUNC "CURR";:SOUR:VOLT:ILIM 0.01;:SENS:CURR:NPLC 0.5')
    smu.handle(":SENS:CURR:RSEN ON")
    smu.handle(':TRAC:MAKE "iv", 100;:TRAC:CLE "iv"')
    smu.handle(f':SOUR:SWE:VOLT:LIN -0.2, 0.8, {n}, {delay_s}, 1, BEST, ON, OFF, "iv"')
    smu.handle(":OUTP ON;:INIT;*WAI")
    assert smu.handle('*OPC?;:TRAC:ACT? "iv";:TRAC:ACT? "defbuffer1"') == f"1;{n};0"
    data = np.array(values(smu.handle(f':TRAC:DATA? 1, {n}, "iv", SOUR, READ, REL'))).reshape(n, 3)
    source, reading, rel = data.T
    assert source == pytest.approx(np.linspace(-0.2, 0.8, n), abs=1e-3)  # read-back: measured, with noise
    assert reading == pytest.approx((source - VOC_V) / R_OHM, abs=1e-6)
    assert rel[0] == 0.0 and np.diff(rel) == pytest.approx(delay_s + 3 * 0.5 / LINE_HZ + 0.5e-3)
    assert bench.bias == 0.0  # back at the programmed level
    assert smu.handle(':TRAC:DATA? 3, 3, "iv", SOUR') == smu.handle(':TRAC:DATA? 3, 3, "iv", SOUR')
    assert codes(smu) == "0"


def test_buffer_elements_formats(smu: Keithley2450Emulator, bench: FakeBench) -> None:
    bench.clock.sleep(3725.25)  # 1 h 2 min 5.25 s after power-on
    smu.handle(":SOUR:VOLT:ILIM 0.01;:SOUR:VOLT 0.2;:SENS:CURR:RSEN 1;:OUTP ON")
    smu.handle(":SENS:CURR:AZER OFF;:SOUR:VOLT:DEL 0;:READ?")
    reply = smu.handle(
        ':TRAC:DATA? 1, 1, "defbuffer1", SEC, FRAC, TST, DATE, TIME, STAT, SOURSTAT, UNIT, SOURUNIT')
    sec, frac, tst, date, clock, stat, sourstat, unit, sourunit = (reply or "").split(",")
    assert int(sec) == 1704067200 + 3725 and date == "01/01/2024"
    assert tst == f"{date} {clock}" and re.fullmatch(r"01:02:05\.\d{9}", clock)
    assert float(frac) == pytest.approx(0.25 + 0.5 / LINE_HZ, abs=1e-9)
    assert (stat, unit, sourunit) == ("8", "Amp DC", "Volt DC")
    assert int(sourstat) == 1 | 8 | 16  # read-back, 4-wire, output on


def test_read_returns_only_the_latest_reading(smu: Keithley2450Emulator) -> None:
    smu.handle(":SOUR:VOLT:ILIM 0.01;:SOUR:VOLT 0.3;:OUTP ON;:SENS:COUN 5")
    reply = smu.handle(':READ? "defbuffer1", SOUR, READ, REL')
    assert len(values(reply)) == 3
    assert smu.handle(":TRAC:ACT?") == "5"
    last = values(smu.handle(':TRAC:DATA? 5, 5, "defbuffer1", SOUR, READ, REL'))
    assert values(reply) == last
    assert values(smu.handle(":READ?"))[0] == pytest.approx(-0.2e-3, abs=1e-6)
    assert values(smu.handle(':FETC? "defbuffer1", READ')) == values(smu.handle(":FETC?"))
    assert smu.handle(":TRAC:ACT?") == "10"


def test_buffer_indexes_names_and_capacity(smu: Keithley2450Emulator) -> None:
    smu.handle(':TRAC:MAKE "buf2", 3;:OUTP ON')
    for _ in range(5):
        smu.handle(':READ? "buf2"')
    assert smu.handle(':TRAC:ACT? "buf2";:TRAC:POIN? "buf2";:TRAC:POIN?') == "3;3;100000"
    assert smu.handle(':TRAC:DATA? 1, 4, "buf2"') is None
    assert smu.handle(':TRAC:DATA? 0, 1, "buf2"') is None
    assert smu.handle(':TRAC:DATA? 1, 1, "nobuf"') is None
    assert smu.handle(':TRAC:MAKE "buf2", 10;:TRAC:MAKE "x", 0;:TRAC:DEL "defbuffer1"') is None
    assert codes(smu) == "-222,-222,-224,-224,-222,-221"
    smu.handle(':TRAC:POIN 50, "buf2"')
    assert smu.handle(':TRAC:ACT? "buf2";:TRAC:POIN? "buf2"') == "0;50"
    smu.handle(':TRAC:DEL "buf2"')
    assert smu.handle(':TRAC:ACT? "buf2"') is None and codes(smu) == "-224"


def test_sweep_too_big_for_the_buffer_is_refused(smu: Keithley2450Emulator) -> None:
    smu.handle(':TRAC:MAKE "small", 20;:SOUR:VOLT:ILIM 0.01;:OUTP ON')
    smu.handle(':SOUR:SWE:VOLT:LIN 0, 1, 5, -1, 2, AUTO, OFF, ON, "small"')  # 5 x 2 (dual) x 2 = 20 fits
    assert codes(smu) == "0"
    smu.handle(':SOUR:SWE:VOLT:LIN 0, 1, 21, -1, 1, AUTO, OFF, OFF, "small"')
    assert codes(smu) == "-221"
    smu.handle(":INIT")  # the previous sweep is still the trigger model
    v = values(smu.handle(':TRAC:DATA? 1, 20, "small", SOUR'))
    assert v == pytest.approx(2 * ([0, 0.25, 0.5, 0.75, 1.0] + [1.0, 0.75, 0.5, 0.25, 0]), abs=1e-3)


def test_fail_abort_stops_the_sweep_at_the_limit(smu: Keithley2450Emulator) -> None:
    smu.handle(":SOUR:VOLT:ILIM 2e-4;:OUTP ON")
    smu.handle(":SOUR:SWE:VOLT:LIN 0, 1, 11, 0, 1, AUTO, ON")  # |I| > 0.2 mA below 0.3 V
    smu.handle(":INIT")
    assert smu.handle(":TRAC:ACT?") == "1"
    assert int(smu.handle(":TRAC:DATA? 1, 1, 'defbuffer1', SOURSTAT") or 0) & 4
    smu.handle(":TRAC:CLE;:SOUR:SWE:VOLT:LIN 0, 1, 11, 0, 1, AUTO, OFF;:INIT")
    readings = values(smu.handle(":TRAC:DATA? 1, 11, 'defbuffer1', READ"))
    assert len(readings) == 11 and min(readings) == pytest.approx(-2e-4, rel=1e-3)


def test_sweep_argument_checks(smu: Keithley2450Emulator) -> None:
    smu.handle(":SOUR:SWE:CURR:LIN 0, 1e-3, 5")  # sourcing voltage
    smu.handle(":SOUR:SWE:VOLT:LIN 0, 300, 5;:SOUR:SWE:VOLT:LIN 0, 1, 1;:SOUR:SWE:VOLT:LIN 0, 1, 5, 10e-6")
    smu.handle(":SOUR:SWE:VOLT:LIN 0, 1, 5, 0, 0")  # infinite count is not emulated
    smu.handle(":SOUR:SWE:VOLT:LIN 0, 1, 5, 0, 1, BEST, ON, OFF, \"defbuffer1\", 7")
    assert codes(smu) == "-221,-222,-222,-222,-222,-108"
    smu.handle(":SOUR:SWE:VOLT:LIN:STEP 0, 1, 0.25, 0;:SOUR:VOLT:ILIM 0.01;:OUTP ON;:INIT")
    assert values(smu.handle(":TRAC:DATA? 1, 5, 'defbuffer1', SOUR")) == pytest.approx(
        [0, 0.25, 0.5, 0.75, 1.0], abs=1e-3)


def test_list_sweep(smu: Keithley2450Emulator) -> None:
    smu.handle(":SOUR:LIST:VOLT 0.1, 0.4, 0.2;:SOUR:LIST:VOLT:APP 0.3;:SOUR:VOLT:READ:BACK OFF")
    assert smu.handle(":SOUR:LIST:VOLT:POIN?") == "4"
    smu.handle(":SOUR:SWE:VOLT:LIST 2, 0;:SOUR:VOLT:ILIM 0.01;:OUTP ON;:INIT")
    assert values(smu.handle(":TRAC:DATA? 1, 3, 'defbuffer1', SOUR")) == [0.4, 0.2, 0.3]


def test_current_limit_and_trip(smu: Keithley2450Emulator, bench: FakeBench) -> None:
    smu.handle(":SOUR:VOLT:ILIM 1e-4;:SOUR:VOLT 0;:OUTP ON")
    assert smu.handle(":SOUR:VOLT:ILIM?;:SOUR:VOLT:ILIM:TRIP?") == "1.000000E-04;1"
    assert values(smu.handle(":READ?"))[0] == pytest.approx(-1e-4, rel=1e-3)
    assert bench.bias == pytest.approx(0.4, abs=1e-4)
    smu.handle(":SOUR:VOLT:ILIM 2")  # beyond 1.05 A
    smu.handle(":SOUR:VOLT:ILIM 0.5;:SOUR:VOLT 100")  # 1 A range with the 200 V range
    assert codes(smu) == "-222,-221"
    assert smu.handle(":SOUR:VOLT:ILIM?;:SOUR:VOLT:ILIM:TRIP?;:SOUR:VOLT?") == "5.000000E-01;0;0.000000E+00"


# --- the real bench: a non-linear single-diode cell (1 cm², 1 sun, Jsc ≈ 18.3 mA) --------------------------
COMPLIANCE_A = 0.01  # below the cell's short-circuit current


@pytest.fixture
def cell_smu() -> Keithley2450Emulator:
    return Keithley2450Emulator(cell_bench(), serial="04321987")


def test_real_cell_at_the_current_limit(cell_smu: Keithley2450Emulator) -> None:
    """0 V programmed, 10 mA limit: READ is clamped at −10 mA, the SOUR read-back is the voltage the cell develops
    at 10 mA (pvlib), SOURSTAT has 'source limit reached' (4), TRIP? is 1 and the programmed level is unchanged."""
    cell_smu.handle(f":SOUR:VOLT:ILIM {COMPLIANCE_A};:SOUR:VOLT 0;:OUTP ON")
    assert -cell_current_A(0.0) > 0.018
    reading, source, sourstat = values(cell_smu.handle(':READ? "defbuffer1", READ, SOUR, SOURSTAT'))
    assert reading == pytest.approx(-COMPLIANCE_A, abs=1e-6)
    assert source == pytest.approx(cell_voltage_V(-COMPLIANCE_A), abs=2e-4) and 1.05 < source < 1.15
    assert int(sourstat) & 4
    assert cell_smu.handle(":SOUR:VOLT:ILIM:TRIP?;:SOUR:VOLT?") == "1;0.000000E+00"
    cell_smu.handle(":SOUR:VOLT:ILIM 0.1")
    reading, source, sourstat = values(cell_smu.handle(':READ? "defbuffer1", READ, SOUR, SOURSTAT'))
    assert reading == pytest.approx(cell_current_A(0.0), abs=1e-5) and source == pytest.approx(0.0, abs=1e-4)
    assert not int(sourstat) & 4 and cell_smu.handle(":SOUR:VOLT:ILIM:TRIP?") == "0"


def _sweep(smu: Keithley2450Emulator, start: float, stop: float, n: int, limit_A: float) -> np.ndarray:
    smu.handle(f":SOUR:VOLT:ILIM {limit_A};:OUTP ON")
    smu.handle(f':SOUR:SWE:VOLT:LIN {start}, {stop}, {n}, -1, 1, BEST, OFF, OFF, "defbuffer1";:INIT;*WAI')
    return np.array(values(smu.handle(f':TRAC:DATA? 1, {n}, "defbuffer1", SOUR, READ, SOURSTAT'))).reshape(n, 3)


def test_native_sweep_over_the_real_cell_follows_pvlib(cell_smu: Keithley2450Emulator) -> None:
    v_set = np.linspace(-0.2, 1.3, 16)
    v, i, sourstat = _sweep(cell_smu, -0.2, 1.3, 16, 0.1).T
    assert v == pytest.approx(v_set, abs=2e-4)  # read-back on the 2 V range: noise 40 uV
    assert i == pytest.approx(cell_current_A(v_set), abs=1e-5)  # 100 mA range: noise 2 uA
    assert not np.any(sourstat.astype(int) & 4)


def test_native_sweep_at_the_limit_clamps_only_the_points_beyond_it(cell_smu: Keithley2450Emulator) -> None:
    v_set = np.linspace(-0.2, 1.3, 16)
    v, i, sourstat = _sweep(cell_smu, -0.2, 1.3, 16, COMPLIANCE_A).T
    i_cell = cell_current_A(v_set)
    beyond = np.abs(i_cell) > COMPLIANCE_A
    assert np.array_equal(np.flatnonzero(~beyond), [13, 14])  # 1.1 and 1.2 V
    assert np.array_equal((sourstat.astype(int) & 4) > 0, beyond)
    clamped = np.copysign(COMPLIANCE_A, i_cell[beyond])
    assert i[beyond] == pytest.approx(clamped, abs=1e-6)
    assert v[beyond] == pytest.approx([cell_voltage_V(x) for x in clamped], abs=2e-4)
    assert i[~beyond] == pytest.approx(i_cell[~beyond], abs=1e-6)


def test_limit_on_a_low_source_range_still_reads_a_point_of_the_cell(cell_smu: Keithley2450Emulator) -> None:
    """A 0–0.2 V sweep (BEST: 200 mV range) at 10 mA: the cell pulls the terminal to ~1.1 V; the emulator used to
    stop it at 0.21 V and still report −10 mA, where the cell delivers 18 mA."""
    v, i, sourstat = _sweep(cell_smu, 0.0, 0.2, 3, COMPLIANCE_A).T
    assert np.all(sourstat.astype(int) & 4)
    assert i == pytest.approx(-COMPLIANCE_A, abs=1e-6)
    assert i == pytest.approx(cell_current_A(v), abs=1e-5)  # (V, I) lies on the cell's curve
    assert v == pytest.approx(cell_voltage_V(-COMPLIANCE_A), abs=2e-4)


def test_per_function_nplc_rsense_and_delay(smu: Keithley2450Emulator, bench: FakeBench) -> None:
    smu.handle(":SENS:CURR:NPLC 0.1;:SENS:VOLT:NPLC 5;:SENS:CURR:NPLC 20;:SENS:CURR:NPLC 0.001")
    nplcs = smu.handle(":SENS:CURR:NPLC?;:SENS:VOLT:NPLC?;:SENS:RES:NPLC?")
    assert nplcs == "1.000000E-01;5.000000E+00;1.000000E+00"
    assert codes(smu) == "-222,-222"
    smu.handle(":SENS:CURR:RSEN ON")
    assert smu.handle(":SENS:CURR:RSEN?;:SENS:VOLT:RSEN?") == "1;0"
    smu.handle(":SOUR:VOLT:DEL 0.25;:SENS:CURR:AZER OFF;:OUTP ON")
    assert smu.handle(":SOUR:VOLT:DEL:AUTO?") == "0"
    t0 = bench.clock.now()
    smu.handle(":READ?")
    assert bench.clock.now() - t0 == pytest.approx(0.25 + 0.1 / LINE_HZ + 0.5e-3)


def test_output_off_reading_is_not_a_number(smu: Keithley2450Emulator, bench: FakeBench) -> None:
    assert smu.handle("OUTPUT?") == "0"
    assert values(smu.handle(':READ? "defbuffer1", READ, SOUR')) == [9.91e37, 0.0]
    assert bench.bias is None
    smu.handle(":OUTP:VOLT:SMOD ZERO")
    assert bench.bias == 0.0 and smu.handle(":OUTP:VOLT:SMOD?") == "ZERO"


def test_2400_only_commands_are_undefined(smu: Keithley2450Emulator) -> None:
    for message in (":TRAC:FEED SENSE", ":TRAC:FEED:CONT NEXT", ":SYST:RSEN 1", ":SENS:CURR:PROT 0.1",
                    ":FORM:ELEM VOLT,CURR", ":TRIG:COUN 10", ":STAT:MEAS:ENAB 512", ":SOUR:VOLT:MODE SWE",
                    ":TRIGGER:COUNT?", ":CALC3:DATA?"):
        assert smu.handle(message) is None
        assert smu.handle(":SYST:ERR?") == '-113,"Undefined header"', message


def test_rst_clears_buffers_and_settings(smu: Keithley2450Emulator) -> None:
    smu.handle(':TRAC:MAKE "keep", 10;:SOUR:VOLT 1;:SENS:FUNC "VOLT";:OUTP ON;:READ?;:SENS:CURR:NPLC 3')
    smu.handle("*RST;:stat:pres;:*CLS;")
    assert smu.handle(':OUTP?;:SOUR:VOLT?;:SENS:FUNC?;:TRAC:ACT?;:SENS:CURR:NPLC?;:SOUR:VOLT:ILIM?') == (
        '0;0.000000E+00;"CURR:DC";0;1.000000E+00;1.050000E-04')
    assert smu.handle(':TRAC:ACT? "keep"') is None
    assert codes(smu) == "-224"


def test_statistics_skip_unmeasured_readings(smu: Keithley2450Emulator) -> None:
    smu.handle(":READ?")  # output off: +9.91E37
    assert smu.handle(":TRAC:STAT:AVER?") is None and codes(smu) == "-230"
    smu.handle(":SOUR:VOLT:ILIM 0.01;:SOUR:VOLT 0.3;:OUTP ON;:SENS:COUN 4;:READ?")
    assert values(smu.handle(":TRACe:STATistics:AVERage?"))[0] == pytest.approx(-2e-4, abs=1e-6)
    assert values(smu.handle(":TRAC:STAT:STDD? 'defbuffer1'"))[0] < 1e-6


# Command strings of the stock PyMeasure 0.16 Keithley2450 (templates as in its source, with a value);
# the test checks each template still appears in the installed source.
STOCK_2450 = [
    ("*RST;:stat:pres;:*CLS;", None, None),
    (":SOUR:FUNC %s", "VOLT", None),
    (":SOUR:FUNC?", None, "VOLT"),
    (":SOUR:VOLT:RANG:AUTO 1", None, None),
    (":SOUR:VOLT:ILIM %g", 0.1, None),
    ("SYST:ERR?", None, '0,"No error"'),
    (":SENS:FUNC 'CURR';:SENS:CURR:NPLC %f;", 1, None),
    (":SENS:CURR:RANG:AUTO 1;", None, None),
    ("OUTPUT ON", None, None),
    ("OUTPUT?", None, "1"),
    (":SOUR:VOLT:LEV %g", 0.3, None),
    (":SOUR:VOLT?", None, "3.000000E-01"),
    (":SOUR:VOLT:ILIM?", None, "1.000000E-01"),
    (":SENS:CURR:NPLC?", None, "1.000000E+00"),
    (":SENS:CURR:RANG:AUTO 0;:SENS:CURR:RANG %g", 0.001, None),
    (":SENS:CURR:RANG?", None, "1.000000E-03"),
    (":SOUR:VOLT:RANG:AUTO 0;:SOUR:VOLT:RANG %g", 2, None),
    (":SOUR:VOLT:DEL %g", 0.001, None),
    (":SOUR:VOLT:DEL:AUTO %d", 1, None),
    (":SENS:RES:RSENSE %d", 1, None),
    (":SENS:CURR:AVER:TCON %s", "REP", None),
    (":SENS:CURR:AVER:COUNT %d", 4, None),
    (":SENS:CURR:AVER %s", "OFF", None),
    (":OUTP:VOLT:SMOD %s", "HIMP", None),
    (":ROUT:TERM FRON", None, None),
    (":SOUR:CURR:VLIM %g", 10, None),
    (":READ?", None, None),
    (":TRACe:STATistics:AVERage?", None, None),
    ("*TRG", None, None),
    (":ABOR", None, None),
    ("OUTPUT OFF", None, None),
    (":SENS:FUNC 'VOLT';:SENS:VOLT:NPLC %f;", 2, None),
    (":SENS:VOLT:RANG:AUTO 1;", None, None),
    (":SENS:FUNC 'RES';:SENS:RES:NPLC %f;", 1, None),
    (":SENS:RES:RANG:AUTO 1;", None, None),
    (":SENS:FUNC 'CURR';:SENS:CURR:NPLC %f;", 1, None),
    (":SYST:BEEP %g, %g", (1000, 0.1), None),
]


def test_stock_pymeasure_2450_traffic(smu: Keithley2450Emulator) -> None:
    import pymeasure.instruments.keithley.keithley2450 as k2450

    replay_stock_traffic(smu, STOCK_2450, k2450)
    smu.handle("OUTPUT ON")
    assert len(values(smu.handle(":READ?"))) == 1  # stock `current` property
    # KeithleyBuffer.config_buffer sends 2400-only commands: the native set rejects them
    smu.handle(":STAT:PRES;*CLS;*SRE 1;:STAT:MEAS:ENAB 512;")
    smu.handle(":TRAC:FEED SENSE;:TRAC:FEED:CONT NEXT;")
    assert smu.handle(":TRIGGER:COUNT?") is None
    assert codes(smu) == "-113,-113,-113"


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30))
def test_random_text_never_breaks_the_emulator(text: str) -> None:
    smu = Keithley2450Emulator(FakeBench())
    reply = smu.handle(text)
    assert reply is None or "?" in text
    assert smu.handle("*LANG?") == "SCPI" or text.upper().lstrip(":").startswith("*LANG")
