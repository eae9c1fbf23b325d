"""Keysight 33500B driver: every command it sends (expected_protocol), the limits it checks before sending, and
the stock PyMeasure Agilent33500's faults it fixes (each ``test_stock_*`` shows the fault on the stock class,
the test after it the fix). Limits are the 33500B data sheet's, computed here by hand."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError
from pymeasure.instruments.agilent import Agilent33500
from pymeasure.test import expected_protocol

from drivers.keysight_33500 import (
    KEYSIGHT_33500B_REGISTRATION,
    Fgen33500Error,
    Fgen33500Settings,
    Keysight33500B,
    configure_33500,
    fgen_safe_state,
)
from labctl.capabilities import missing_methods


def test_the_constructor_sends_nothing() -> None:
    with expected_protocol(Keysight33500B, []):
        pass


def test_identity_accepts_agilent_and_keysight_33500b_only() -> None:
    spec = Keysight33500B.IDENTITY
    assert spec.matches("Agilent Technologies,33522B,MY52800000,3.05-1.19-2.00-52-00")
    assert spec.matches("Keysight Technologies,33511B,MY5,4.00")
    assert not spec.matches("Agilent Technologies,33220A,MY4,2.02")


def test_registration_offers_the_function_generator_capability() -> None:
    reg = KEYSIGHT_33500B_REGISTRATION
    assert reg.name == "keysight_33500b" and reg.capabilities == ("function_generator",)
    assert reg.emulator == "sim_instruments.fgen33500:Fgen33500Emulator"
    with expected_protocol(Keysight33500B, []) as gen:
        assert missing_methods(gen, "function_generator") == []


def test_shape_frequency_unit_output_commands() -> None:
    with expected_protocol(Keysight33500B, [
        ("FUNC SIN", None), ("FUNC?", "SIN"), ("FREQ 7", None), ("FREQ?", "+7.000000000000000E+00"),
        ("VOLT:UNIT VRMS", None), ("VOLT:UNIT?", "VRMS"), ("OUTP ON", None), ("OUTP?", "1"), ("OUTP OFF", None),
    ]) as gen:
        gen.set_shape("sin")
        assert gen.read_shape() == "SIN"
        gen.set_frequency_Hz(7.0)
        assert gen.read_frequency_Hz() == 7.0
        gen.set_amplitude_unit("vrms")
        assert gen.read_amplitude_unit() == "VRMS"
        gen.set_output(True)
        assert gen.output_is_on() is True
        gen.set_output(False)


def test_amplitude_in_vpp_and_vrms_with_the_load_and_offset_read_first() -> None:
    with expected_protocol(Keysight33500B, [
        ("OUTP:LOAD?", "+5.000000000000000E+01"), ("VOLT:OFFS?", "+0.000000000000000E+00"),
        ("VOLT:UNIT VPP", None), ("VOLT 0.1", None),
        ("VOLT:UNIT VRMS", None), ("VOLT 0.0353553390593", None), ("VOLT?", "+3.535533905933000E-02"),
    ]) as gen:
        gen.set_amplitude(0.1)
        gen.set_amplitude(0.1 / (2 * math.sqrt(2)), "VRMS", load_ohm=50.0, offset_V=0.0)
        assert gen.read_amplitude() == pytest.approx(0.0353553390593)


def test_output_load_commands_and_inf_read_back() -> None:
    with expected_protocol(Keysight33500B, [
        ("OUTP:LOAD INF", None), ("OUTP:LOAD INF", None), ("OUTP:LOAD 50", None), ("OUTP:LOAD?", "9.9E+37"),
        ("OUTP:LOAD?", "+5.000000000000000E+01"),
    ]) as gen:
        gen.set_output_load("INF")
        gen.set_output_load(math.inf)
        gen.set_output_load(50)
        assert gen.read_output_load_ohm() == math.inf
        assert gen.read_output_load_ohm() == 50.0


def test_set_waveform_sets_the_load_before_the_amplitude() -> None:
    with expected_protocol(Keysight33500B, [
        ("OUTP:LOAD INF", None), ("OUTP:LOAD?", "9.9E+37"), ("FUNC SIN", None), ("FREQ 7", None),
        ("VOLT:OFFS 0", None), ("VOLT:UNIT VPP", None), ("VOLT 0.05", None),
    ]) as gen:
        gen.set_waveform("SIN", 7.0, 0.05, load_ohm="INF")


# -- stock faults and their fixes ---------------------------------------------------------------------------
def test_stock_amplitude_ignores_the_unit_and_sends_an_out_of_range_vrms() -> None:
    # 5 Vrms of a sine is 5·2√2 = 14.14 Vpp > 10 Vpp into 50 Ω: the stock class sends it
    with expected_protocol(Agilent33500, [("VOLT 5.000000", None)]) as gen:
        gen.amplitude = 5


def test_vrms_above_the_50_ohm_limit_is_refused_before_sending() -> None:
    # into 50 Ω the limit is 10 Vpp = 10/(2√2) = 3.5355 Vrms
    with expected_protocol(Keysight33500B, []) as gen:
        with pytest.raises(ValueError, match="outside"):
            gen.set_amplitude(5.0, "VRMS", load_ohm=50.0, offset_V=0.0)  # nothing sent (the protocol is empty)
    with expected_protocol(Keysight33500B, [("VOLT:UNIT VRMS", None), ("VOLT 3.5", None)]) as gen:
        gen.set_amplitude(3.5, "VRMS", load_ohm=50.0, offset_V=0.0)


def test_stock_amplitude_refuses_15_vpp_into_high_impedance_and_5_mvpp() -> None:
    for value in (15, 0.005):
        with expected_protocol(Agilent33500, []) as gen:
            with pytest.raises(ValueError):
                gen.amplitude = value


def test_high_impedance_allows_20_vpp_and_50_ohm_allows_1_mvpp() -> None:
    with expected_protocol(Keysight33500B, [("VOLT:UNIT VPP", None), ("VOLT 15", None),
                                            ("VOLT:UNIT VPP", None), ("VOLT 0.005", None)]) as gen:
        gen.set_amplitude(15.0, load_ohm=math.inf, offset_V=0.0)  # ≤ 20 Vpp into high impedance
        gen.set_amplitude(0.005, load_ohm=50.0, offset_V=0.0)  # ≥ 1 mVpp into 50 Ω
    with expected_protocol(Keysight33500B, []) as gen:
        with pytest.raises(ValueError):
            gen.set_amplitude(21.0, load_ohm=math.inf, offset_V=0.0)
        with pytest.raises(ValueError):
            gen.set_amplitude(0.0009, load_ohm=50.0, offset_V=0.0)


def test_stock_offset_is_fixed_at_4995_mV_whatever_the_load_and_amplitude() -> None:
    with expected_protocol(Agilent33500, []) as gen:
        with pytest.raises(ValueError):
            gen.offset = 6  # allowed into high impedance with a small amplitude (±10 V)
    with expected_protocol(Agilent33500, [("VOLT:OFFS 4.900000", None)]) as gen:
        gen.offset = 4.9  # sent even with 10 Vpp set: 4.9 + 5 > 5 V into 50 Ω


def test_offset_follows_the_load_and_the_amplitude() -> None:
    with expected_protocol(Keysight33500B, [("VOLT:OFFS 6", None)]) as gen:
        gen.set_offset_V(6.0, load_ohm=math.inf, vpp=1.0)  # 6 + 0.5 ≤ 10 V
    with expected_protocol(Keysight33500B, []) as gen:
        with pytest.raises(ValueError, match="exceeds"):
            gen.set_offset_V(4.9, load_ohm=50.0, vpp=10.0)  # 4.9 + 5 > 5 V
        with pytest.raises(ValueError, match="exceeds"):
            gen.set_amplitude(10.0, load_ohm=50.0, offset_V=4.9)


def test_stock_frequency_sends_50_MHz() -> None:
    with expected_protocol(Agilent33500, [("FREQ 50000000.000000", None)]) as gen:
        gen.frequency = 50e6


def test_frequency_above_30_MHz_is_refused() -> None:
    with expected_protocol(Keysight33500B, [("FREQ 30000000", None), ("FREQ 1e-06", None)]) as gen:
        gen.set_frequency_Hz(30e6)
        gen.set_frequency_Hz(1e-6)
        with pytest.raises(ValueError):
            gen.set_frequency_Hz(50e6)
        with pytest.raises(ValueError):
            gen.set_frequency_Hz(0.0)


def test_stock_output_load_sends_anything_and_reads_inf_as_a_number() -> None:
    with expected_protocol(Agilent33500, [("OUTP:LOAD -5", None), ("OUTP:LOAD?", "9.9E+37")]) as gen:
        gen.output_load = -5
        assert gen.output_load == pytest.approx(9.9e37)


def test_output_load_out_of_range_is_refused() -> None:
    with expected_protocol(Keysight33500B, []) as gen:
        for bad in (-5, 0.5, 20e3, "HIGHZ", math.nan, -math.inf):
            with pytest.raises(ValueError):
                gen.set_output_load(bad)


def test_stock_check_errors_splits_the_message_at_commas_and_keeps_quotes() -> None:
    with expected_protocol(Agilent33500, [("SYST:ERR?", '-222,"Data out of range;clipped, upper"'),
                                          ("SYST:ERR?", '+0,"No error"')]) as gen:
        assert gen.check_errors() == [[-222.0, '"Data out of range;clipped', ' upper"']]


def test_check_errors_returns_code_message_tuples() -> None:
    with expected_protocol(Keysight33500B, [("SYST:ERR?", '-222,"Data out of range;clipped, upper"'),
                                            ("SYST:ERR?", '-113,"Undefined header"'),
                                            ("SYST:ERR?", '+0,"No error"')]) as gen:
        assert gen.check_errors() == [(-222, "Data out of range;clipped, upper"), (-113, "Undefined header")]
    with expected_protocol(Keysight33500B, [("SYST:ERR?", '-113,"Undefined header"'),
                                            ("SYST:ERR?", '+0,"No error"')]) as gen:
        with pytest.raises(Fgen33500Error, match="-113"):
            gen.check_set_errors("test")


# -- safe state, configure, settings ----------------------------------------------------------------------------
def test_safe_state_turns_the_output_off_and_reads_it_back() -> None:
    with expected_protocol(Keysight33500B, [("OUTP OFF", None), ("OUTP?", "0")]) as gen:
        assert fgen_safe_state(gen) == "output off (output reads off)"
    with expected_protocol(Keysight33500B, [("OUTP OFF", None), ("OUTP?", "1")]) as gen:
        with pytest.raises(RuntimeError, match="still reads on"):
            fgen_safe_state(gen)


def test_configure_defaults_output_off_high_impedance_vpp() -> None:
    with expected_protocol(Keysight33500B, [("OUTP OFF", None), ("OUTP:LOAD INF", None), ("VOLT:UNIT VPP", None),
                                            ("SYST:ERR?", '+0,"No error"')]) as gen:
        configure_33500(gen, None)
    with expected_protocol(Keysight33500B, [("OUTP OFF", None), ("OUTP:LOAD 50", None), ("VOLT:UNIT VRMS", None),
                                            ("SYST:ERR?", '+0,"No error"')]) as gen:
        configure_33500(gen, Fgen33500Settings(output_load=50, amplitude_unit="VRMS"))


def test_settings_refuse_a_load_out_of_range_and_unknown_keys() -> None:
    for bad in ({"output_load": 0}, {"output_load": "HIGHZ"}, {"amplitude_unit": "DBM"}, {"load": 50}):
        with pytest.raises(ValidationError):
            Fgen33500Settings(**bad)
