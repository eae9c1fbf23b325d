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
# Each scenario uses the stock attribute names and raises (AssertionError from expected_protocol, or the stock
# class's ValueError) unless the class behaves as the 33500B does: it passes with Keysight33500B and fails with
# the stock Agilent33500 (both checked below).


def fault_vrms_amplitude_out_of_range_is_sent(cls: type) -> None:
    # 5 Vrms of a sine is 5·2√2 = 14.14 Vpp > 10 Vpp into 50 Ω: refused before anything is sent
    with expected_protocol(cls, [("VOLT:UNIT?", "VRMS"), ("OUTP:LOAD?", "+5.000000000000000E+01")]) as gen:
        with pytest.raises(ValueError):
            gen.amplitude = 5


def fault_15_vpp_into_high_impedance_is_refused(cls: type) -> None:
    # into high impedance the limit is 20 Vpp (|offset| + Vpk ≤ 10 V)
    with expected_protocol(cls, [("VOLT:UNIT?", "VPP"), ("OUTP:LOAD?", "9.9E+37"),
                                 ("VOLT:OFFS?", "+0.000000000000000E+00"), ("VOLT:UNIT VPP", None),
                                 ("VOLT 15", None)]) as gen:
        gen.amplitude = 15


def fault_5_mvpp_is_refused(cls: type) -> None:
    # into 50 Ω the smallest amplitude is 1 mVpp
    with expected_protocol(cls, [("VOLT:UNIT?", "VPP"), ("OUTP:LOAD?", "+5.000000000000000E+01"),
                                 ("VOLT:OFFS?", "+0.000000000000000E+00"), ("VOLT:UNIT VPP", None),
                                 ("VOLT 0.005", None)]) as gen:
        gen.amplitude = 0.005


def fault_6_V_offset_into_high_impedance_is_refused(cls: type) -> None:
    # into high impedance |offset| + Vpk ≤ 10 V: 6 V with 1 Vpp fits
    with expected_protocol(cls, [("OUTP:LOAD?", "9.9E+37"), ("VOLT?", "+1.000000000000000E+00"),
                                 ("VOLT:UNIT?", "VPP"), ("VOLT:OFFS 6", None)]) as gen:
        gen.offset = 6


def fault_offset_ignores_the_amplitude(cls: type) -> None:
    # 4.9 V + 5 V peak of 10 Vpp > 5 V into 50 Ω: refused before sending
    with expected_protocol(cls, [("OUTP:LOAD?", "+5.000000000000000E+01"), ("VOLT?", "+1.000000000000000E+01"),
                                 ("VOLT:UNIT?", "VPP")]) as gen:
        with pytest.raises(ValueError):
            gen.offset = 4.9


def fault_50_MHz_is_sent(cls: type) -> None:
    with expected_protocol(cls, []) as gen:
        with pytest.raises(ValueError):
            gen.frequency = 50e6


def fault_output_load_sends_anything(cls: type) -> None:
    with expected_protocol(cls, []) as gen:
        with pytest.raises(ValueError):
            gen.output_load = -5


def fault_output_load_reads_inf_as_a_number(cls: type) -> None:
    with expected_protocol(cls, [("OUTP:LOAD?", "9.9E+37")]) as gen:
        assert gen.output_load == math.inf


def fault_check_errors_splits_the_message(cls: type) -> None:
    with expected_protocol(cls, [("SYST:ERR?", '-222,"Data out of range;clipped, upper"'),
                                 ("SYST:ERR?", '+0,"No error"')]) as gen:
        assert gen.check_errors() == [(-222, "Data out of range;clipped, upper")]


FAULTS = [fault_vrms_amplitude_out_of_range_is_sent, fault_15_vpp_into_high_impedance_is_refused,
          fault_5_mvpp_is_refused, fault_6_V_offset_into_high_impedance_is_refused, fault_offset_ignores_the_amplitude,
          fault_50_MHz_is_sent, fault_output_load_sends_anything, fault_output_load_reads_inf_as_a_number,
          fault_check_errors_splits_the_message]


@pytest.mark.parametrize("scenario", FAULTS, ids=lambda f: f.__name__)
def test_the_driver_fixes(scenario) -> None:
    scenario(Keysight33500B)


@pytest.mark.parametrize("scenario", FAULTS, ids=lambda f: f.__name__)
def test_the_stock_class_has_the_fault(scenario) -> None:
    with pytest.raises((AssertionError, ValueError)):
        scenario(Agilent33500)


def test_direct_limits_for_high_impedance_and_50_ohm() -> None:
    with expected_protocol(Keysight33500B, [("VOLT:UNIT VPP", None), ("VOLT 20", None),
                                            ("VOLT:UNIT VRMS", None), ("VOLT 3.5", None)]) as gen:
        gen.set_amplitude(20.0, load_ohm=math.inf, offset_V=0.0)  # ≤ 20 Vpp into high impedance
        gen.set_amplitude(3.5, "VRMS", load_ohm=50.0, offset_V=0.0)  # ≤ 10/(2√2) = 3.5355 Vrms into 50 Ω
    with expected_protocol(Keysight33500B, []) as gen:
        for amplitude, unit, load in ((21.0, "VPP", math.inf), (0.0009, "VPP", 50.0), (3.6, "VRMS", 50.0),
                                      (1.0, "DBM", 50.0)):
            with pytest.raises(ValueError):
                gen.set_amplitude(amplitude, unit, load_ohm=load, offset_V=0.0)
        with pytest.raises(ValueError, match="exceeds"):
            gen.set_amplitude(10.0, load_ohm=50.0, offset_V=0.1)
        with pytest.raises(ValueError):
            gen.set_frequency_Hz(0.0)
        for bad in (0.5, 20e3, "HIGHZ", math.nan, -math.inf):
            with pytest.raises(ValueError):
                gen.set_output_load(bad)


def test_check_set_errors_raises_with_the_entries() -> None:
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
