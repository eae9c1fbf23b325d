"""drivers.sr830.SR830: exact traffic of every command, validation before sending, filter timing (methods §9
P2, P3), error checks; end to end against the emulator (current-mode readings in amperes)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymeasure.test import expected_protocol

from drivers.smu import InstrumentError
from drivers.sr830 import (
    SENSITIVITIES_V,
    SR830,
    LockinReading,
    SR830Error,
    pick_sensitivity_index,
    settle_factor,
)
from sim_instruments.adapter import EmulatorAdapter
from sim_instruments.sr830 import SR830Emulator
from tests.test_sim_sr830 import DetectorSignal, FakeBench

CLEAN = [(b"*ESR?", b"0"), (b"ERRS?", b"0")]
SETTLE_99 = {6: 4.605, 12: 6.638, 18: 8.406, 24: 10.045}  # methods §9 P2 (τ)


def tracked(mode: bytes = b"0") -> list[tuple[bytes, bytes]]:
    """The one ISRC? query the driver makes when it does not know the input configuration yet."""
    return [(b"ISRC?", mode)]


def test_constructor_sends_nothing() -> None:
    with expected_protocol(SR830, []):
        pass


# ---------------------------------------------------------------------------------- settings by index
@pytest.mark.parametrize(("prop", "cmd", "value", "bad"), [
    ("sensitivity_index", b"SENS", 22, [27, -1, 2.5]),
    ("time_constant_index", b"OFLT", 8, [20, -1]),
    ("harmonic", b"HARM", 19999, [0, 20000]),
])
def test_index_controls(prop: str, cmd: bytes, value: int, bad: list[float]) -> None:
    text = str(value).encode()
    with expected_protocol(SR830, [(cmd + b"?", text), (cmd + text, None)]) as lockin:
        assert getattr(lockin, prop) == value
        setattr(lockin, prop, value)
    for v in bad:
        with expected_protocol(SR830, []) as lockin, pytest.raises(ValueError):
            setattr(lockin, prop, v)


@pytest.mark.parametrize(("prop", "value", "sent", "bad"), [
    ("filter_slope", 18, b"OFSL2", [9, 0, 30]),
    ("reserve", "Low Noise", b"RMOD2", ["Low noise", "max"]),
    ("frequency", 1000.0, b"FREQ1.00000e+03", [0.0005, 102000.1]),
    ("phase", -12.5, b"PHAS-12.50", [-360.5, 730.0]),
    ("sine_voltage", 0.1, b"SLVL0.100", [0.003, 5.1]),
    ("aux_out_1", 0.5, b"AUXV1,0.500000;", [10.6, -11]),
    ("aux_out_4", -10.5, b"AUXV4,-10.500000;", [10.51]),
])
def test_strict_controls(prop: str, value: object, sent: bytes, bad: list[object]) -> None:
    with expected_protocol(SR830, [(sent, None)]) as lockin:
        setattr(lockin, prop, value)
    for v in bad:
        with expected_protocol(SR830, []) as lockin, pytest.raises(ValueError):
            setattr(lockin, prop, v)


def test_getters() -> None:
    pairs = [(b"OFSL?", b"3"), (b"RMOD?", b"0"), (b"FREQ?", b"220.000"), (b"PHAS?", b"-90"), (b"OFLT?", b"9")]
    with expected_protocol(SR830, pairs) as lockin:
        assert (lockin.filter_slope, lockin.reserve, lockin.frequency) == (24, "High Reserve", 220.0)
        assert (lockin.phase, lockin.time_constant) == (-90.0, 0.3)


# ------------------------------------------------------------------------ input tracking and units
@pytest.mark.parametrize(("mode", "index", "value", "unit"), [
    (b"0", b"22", 50e-3, "V"), (b"1", b"26", 1.0, "V"), (b"2", b"5", 100e-15, "A"), (b"3", b"26", 10e-9, "A"),
])
def test_sensitivity_in_the_unit_of_the_input(mode: bytes, index: bytes, value: float, unit: str) -> None:
    with expected_protocol(SR830, [(b"SENS?", index), *tracked(mode), (b"SENS" + index, None)]) as lockin:
        assert lockin.sensitivity == pytest.approx(value, rel=1e-12)
        assert lockin.reading_unit == unit  # no second ISRC?: the configuration is remembered
        lockin.sensitivity = value


def test_input_config_setter_is_tracked() -> None:
    pairs = [(b"ISRC 2", None), (b"SENS?", b"26"), (b"ISRC 0", None), (b"SENS?", b"26"), (b"ISRC?", b"3")]
    with expected_protocol(SR830, pairs) as lockin:
        lockin.input_config = "I (1 MOhm)"
        assert lockin.sensitivity == pytest.approx(1e-6)
        lockin.input_config = "A"
        assert lockin.sensitivity == 1.0
        assert lockin.input_config == "I (100 MOhm)"
        assert lockin.unit_scale == 1e-8
    with expected_protocol(SR830, []) as lockin, pytest.raises(ValueError):
        lockin.input_config = "I"


@pytest.mark.parametrize(("mode", "value"), [(b"0", 0.04), (b"0", 2.0), (b"2", 50e-3), (b"3", 2e-6)])
def test_sensitivity_not_in_the_table_is_refused_before_sending(mode: bytes, value: float) -> None:
    with expected_protocol(SR830, tracked(mode)) as lockin, pytest.raises(ValueError, match="not one of"):
        lockin.sensitivity = value


def test_time_constant_by_value() -> None:
    with expected_protocol(SR830, [(b"OFLT10", None)]) as lockin:
        lockin.time_constant = 1.0
    with expected_protocol(SR830, []) as lockin, pytest.raises(ValueError):
        lockin.time_constant = 0.2


def test_reset_and_setup_recall_update_the_tracking() -> None:
    pairs = [(b"ISRC 3", None), (b"*RST", None), (b"SENS?", b"26"), (b"RSET2;", None), (b"SENS?", b"0"),
             (b"ISRC?", b"2")]
    with expected_protocol(SR830, pairs) as lockin:
        lockin.input_config = "I (100 MOhm)"
        lockin.reset()
        assert lockin.sensitivity == 1.0
        lockin.load_setup(2)
        assert lockin.sensitivity == pytest.approx(2e-15)


# ------------------------------------------------------------------------------ readings and status
@pytest.mark.parametrize(("mode", "unit"), [(b"0", "V"), (b"2", "A")])
def test_snap_xyrt(mode: bytes, unit: str) -> None:
    with expected_protocol(SR830, [(b"SNAP? 1,2,3,4", b"4.50158e-07,-1e-09,4.50159e-07,-0.127"),
                                   *tracked(mode)]) as lockin:
        assert lockin.snap_xyrt() == LockinReading(4.50158e-07, -1e-09, 4.50159e-07, -0.127, unit)


@pytest.mark.parametrize("reply", [b"1,2,3", b"1,2,x,4", b""])
def test_snap_bad_reply(reply: bytes) -> None:
    with expected_protocol(SR830, [(b"SNAP? 1,2,3,4", reply)]) as lockin, pytest.raises(SR830Error, match="SNAP"):
        lockin.snap_xyrt()


def test_read_and_clear_status() -> None:
    with expected_protocol(SR830, [(b"LIAS?", b"13"), (b"LIAS?", b"0")]) as lockin:
        status = lockin.read_and_clear_status()
        assert (status.input_overload, status.filter_overload, status.output_overload) == (True, False, True)
        assert status.reference_unlock and status.overload
        assert status.describe() == "input/reserve overload, output overload, reference unlock"
        assert not lockin.read_and_clear_status().overload


@pytest.mark.parametrize(("esr", "errs", "match"), [
    (b"32", b"0", "bit 5: command not recognised"), (b"16", b"0", "bit 4: parameter out of range"),
    (b"0", b"4", "ERRS bit 2: RAM error"), (b"176", b"0", r"\*ESR\?=176"),
])
def test_check_set_errors_raises(esr: bytes, errs: bytes, match: str) -> None:
    with expected_protocol(SR830, [(b"*ESR?", esr), (b"ERRS?", errs)]) as lockin:
        with pytest.raises(SR830Error, match=match):
            lockin.check_set_errors()
    assert issubclass(SR830Error, InstrumentError)


@pytest.mark.parametrize(("esr", "errs", "expected"), [
    (b"32", b"0", [(105, "*ESR bit 5: command not recognised or malformed (CMD)")]),
    (b"16", b"0", [(104, "*ESR bit 4: parameter out of range or not allowed now; the setting was NOT changed (EXE)")]),
    (b"0", b"4", [(202, "ERRS bit 2: RAM error")]),
    # 176 = bits 7 (power-on, not an error), 5 and 4
    (b"176", b"0", [(104, "*ESR bit 4: parameter out of range or not allowed now; the setting was NOT changed (EXE)"),
                    (105, "*ESR bit 5: command not recognised or malformed (CMD)")]),
])
def test_check_errors_returns_every_bit_and_never_raises(esr: bytes, errs: bytes, expected: list) -> None:
    with expected_protocol(SR830, [(b"*ESR?", esr), (b"ERRS?", errs)]) as lockin:
        assert lockin.check_errors() == expected


@pytest.mark.parametrize("esr", [b"0", b"128", b"64", b"192"])
def test_check_errors_ignores_power_on_and_key_press(esr: bytes) -> None:
    with expected_protocol(SR830, [(b"*ESR?", esr), (b"ERRS?", b"0")]) as lockin:
        assert lockin.check_errors() == []


def test_auto_gain_polls_the_ifc_bit() -> None:
    slept: list[float] = []
    with expected_protocol(SR830, [(b"AGAN", None), (b"*STB?", b"1"), (b"*STB?", b"1"), (b"*STB?", b"3")]) as lockin:
        lockin.sleep = slept.append
        lockin.auto_gain(poll_s=0.5)
    assert slept == [0.5, 0.5]
    with expected_protocol(SR830, [(b"AGAN", None), *[(b"*STB?", b"0")] * 3]) as lockin:
        lockin.sleep = lambda s: None
        with pytest.raises(TimeoutError):
            lockin.auto_gain(timeout_s=1.0, poll_s=0.5)


@pytest.mark.parametrize(("mode", "reading", "sent", "full_scale"), [
    (b"0", 0.03, b"SENS22", 50e-3), (b"0", 0.045, b"SENS23", 0.1), (b"2", 3e-7, b"SENS25", 5e-7),
    (b"3", 3e-9, b"SENS25", 5e-9), (b"0", 5.0, b"SENS26", 1.0), (b"0", 0.0, b"SENS0", 2e-9),
])
def test_auto_sensitivity(mode: bytes, reading: float, sent: bytes, full_scale: float) -> None:
    with expected_protocol(SR830, [*tracked(mode), (sent, None)]) as lockin:
        assert lockin.auto_sensitivity(reading) == pytest.approx(full_scale, rel=1e-12)


@given(st.floats(min_value=-10.0, max_value=10.0, allow_nan=False), st.floats(min_value=1.0, max_value=3.0),
       st.sampled_from([1.0, 1e-6, 1e-8]))
def test_pick_sensitivity_is_the_smallest_range_with_headroom(reading: float, headroom: float, scale: float) -> None:
    i = pick_sensitivity_index(reading, scale, headroom)
    need = headroom * abs(reading)
    assert SENSITIVITIES_V[i] * scale >= need or i == len(SENSITIVITIES_V) - 1
    assert i == 0 or SENSITIVITIES_V[i - 1] * scale < need


def test_pick_sensitivity_rejects_nonsense() -> None:
    for args in ((math.nan,), (1.0, 1.0, 0.9)):
        with pytest.raises(ValueError):
            pick_sensitivity_index(*args)


def test_display_and_scaling() -> None:
    pairs = [(b"DDEF?1;", b"1,0"), (b"DDEF?2;", b"1,2"), (b"DDEF2,2,0", None), (b"OEXP 2,-12.50,2", None),
             (b"OEXP 1,0.00,0", None), (b"OEXP? 3", b"5.00,1")]
    with expected_protocol(SR830, pairs) as lockin:
        assert (lockin.channel1, lockin.channel2) == ("R", "Theta")
        lockin.channel2 = "Y Noise"
        lockin.set_scaling("Y", -12.5, 100)
        lockin.set_scaling("X", 0.0)
        assert lockin.get_scaling("R") == (5.0, 10)
    for args in (("Z", 0.0, 1), ("X", 106.0, 1), ("X", 0.0, 0), ("X", 0.0, 1000)):
        with expected_protocol(SR830, []) as lockin, pytest.raises(ValueError):
            lockin.set_scaling(*args)


def test_quick_range_is_refused_and_safe_state_sends_nothing() -> None:
    with expected_protocol(SR830, []) as lockin:
        lockin.safe_state()
        with pytest.raises(NotImplementedError):
            lockin.quick_range()


# ----------------------------------------------------------------------------------- filter timing
@pytest.mark.parametrize("slope", [6, 12, 18, 24])
def test_p2_settle_factor(slope: int) -> None:
    assert settle_factor(slope, 0.01) == pytest.approx(SETTLE_99[slope], abs=1e-3)


@given(st.sampled_from([6, 12, 18, 24]), st.floats(min_value=1e-6, max_value=0.5))
def test_settle_factor_solves_the_step_response(slope: int, tolerance: float) -> None:
    k, n = settle_factor(slope, tolerance), slope // 6
    remaining = math.exp(-k) * sum(k**j / math.factorial(j) for j in range(n))
    assert remaining == pytest.approx(tolerance, rel=1e-9)


def test_settle_time_and_enbw() -> None:
    with expected_protocol(SR830, [(b"OFLT?", b"9"), (b"OFSL?", b"3"), (b"OFLT?", b"10"), (b"OFSL?", b"1")]) as lockin:
        assert lockin.settle_time_s() == pytest.approx(10.045 * 0.3, abs=1e-3 * 0.3)
        assert lockin.enbw_Hz() == 1 / 8  # P3
        assert lockin.settle_time_s(0.001, time_constant_s=0.3, filter_slope_dB=24) == pytest.approx(3.9, abs=0.02)
        assert [lockin.enbw_Hz(2.0, s) * 2.0 for s in (6, 12, 18, 24)] == [1 / 4, 1 / 8, 3 / 32, 5 / 64]
        with pytest.raises(ValueError):
            lockin.enbw_Hz(1.0, 9)
        with pytest.raises(ValueError):
            lockin.settle_time_s(1.5, 1.0, 6)


# ------------------------------------------------------------------------------------- configuration
def configure_pairs(isrc: bytes = b"0", sens: bytes = b"22", fmod: tuple = (b"FMOD 0",)) -> list:
    return [
        (b"*CLS", None), (b"ISRC " + isrc, None), (b"ICPL 0", None), (b"ILIN 0", None),
        *[(f, None) for f in fmod], (b"RSLP 1", None), (b"HARM1", None), (b"OFSL3", None), (b"OFLT9", None),
        (b"SYNC 0", None), (b"SENS" + sens, None), (b"RMOD1", None), (b"OEXP 1,0.00,0", None),
        (b"OEXP 2,0.00,0", None), (b"OEXP 3,0.00,0", None), *CLEAN,
    ]


def test_configure_voltage_input_external_reference() -> None:
    with expected_protocol(SR830, configure_pairs()) as lockin:
        lockin.configure(50e-3, chopper_frequency_Hz=220.0)
        assert lockin.reading_unit == "V"


def test_configure_current_input_internal_reference() -> None:
    pairs = configure_pairs(b"3", b"20", (b"FMOD 1", b"FREQ2.20000e+02"))
    with expected_protocol(SR830, pairs) as lockin:
        lockin.configure(1e-10, chopper_frequency_Hz=220.0, input_config="I (100 MOhm)", reference="internal")
        assert lockin.reading_unit == "A"


def test_configure_raises_when_the_instrument_reports_an_error() -> None:
    pairs = configure_pairs()[:-2] + [(b"*ESR?", b"16"), (b"ERRS?", b"0")]
    with expected_protocol(SR830, pairs) as lockin, pytest.raises(SR830Error, match="after configure"):
        lockin.configure(50e-3, chopper_frequency_Hz=220.0)


@pytest.mark.parametrize("kwargs", [
    {"sensitivity": 0.04}, {"sensitivity": 50e-3, "input_config": "I (1 MOhm)"}, {"time_constant_s": 0.2},
    {"time_constant_s": 100.0}, {"filter_slope_dB": 9}, {"reserve": "max"}, {"coupling": "ac"},
    {"reference": "chopper"}, {"reference_trigger": "edge"}, {"chopper_frequency_Hz": 2e5},
    {"input_config": "B"},
])
def test_configure_validates_before_sending(kwargs: dict) -> None:
    args = {"sensitivity": 50e-3, "chopper_frequency_Hz": 220.0} | kwargs
    with expected_protocol(SR830, []) as lockin, pytest.raises(ValueError):
        lockin.configure(**args)


def test_long_time_constant_allowed_below_200_hz() -> None:
    pairs = [p if p[0] != b"OFLT9" else (b"OFLT14", None) for p in configure_pairs()]
    with expected_protocol(SR830, pairs) as lockin:
        lockin.configure(50e-3, chopper_frequency_Hz=80.0, time_constant_s=100.0)


# ------------------------------------------------------------------------------- end to end (emulator)
def connect(bench: FakeBench) -> tuple[SR830, SR830Emulator]:
    emu = SR830Emulator(bench, input_noise_V_rtHz=0.0, current_noise_A_rtHz={2: 0.0, 3: 0.0})
    return SR830(EmulatorAdapter(emu, read_termination="\n", write_termination="\n")), emu


@pytest.mark.parametrize(("config", "i_pp_A", "sensitivity_A"), [
    ("I (1 MOhm)", 1e-6, 1e-6), ("I (1 MOhm)", 2e-9, 2e-9), ("I (100 MOhm)", 1e-8, 5e-9),
])
def test_current_mode_readings_in_amperes(config: str, i_pp_A: float, sensitivity_A: float) -> None:
    bench = FakeBench(DetectorSignal(chopped_pp_A=i_pp_A, phase_deg=30.0), preamp_gain_V_A=None)
    lockin, _ = connect(bench)
    lockin.configure(sensitivity_A, chopper_frequency_Hz=220.0, input_config=config, time_constant_s=0.1)
    bench.clock.sleep(lockin.settle_time_s(1e-7))
    reading = lockin.snap_xyrt()
    assert reading.unit == "A"
    assert reading.r == pytest.approx(0.450158 * i_pp_A, rel=5e-6)
    assert reading.theta_deg == pytest.approx(30.0, abs=1e-3)
    assert not lockin.read_and_clear_status().overload


def test_voltage_mode_end_to_end_with_auto_sensitivity_and_errors() -> None:
    bench = FakeBench(DetectorSignal(chopped_pp_A=1e-7))  # 45 mV at the input through 1e6 V/A
    lockin, emu = connect(bench)
    lockin.configure(1.0, chopper_frequency_Hz=220.0, time_constant_s=0.03, filter_slope_dB=24)
    bench.clock.sleep(lockin.settle_time_s(1e-3))
    coarse = lockin.snap_xyrt().r
    assert lockin.auto_sensitivity(coarse) == 0.1
    assert lockin.snap_xyrt().r == 0.0  # the output restarts after a range change
    bench.clock.sleep(lockin.settle_time_s(1e-7))
    assert lockin.snap_xyrt().r == pytest.approx(0.450158 * 0.1, rel=5e-6)
    assert lockin.sensitivity == 0.1
    lockin.write("SENS 30")
    with pytest.raises(SR830Error, match="out of range"):
        lockin.check_set_errors()
    lockin.sleep = bench.clock.sleep
    lockin.auto_gain()
    assert lockin.sensitivity == 0.1
    assert emu.handle("*ESR?") == "0"
