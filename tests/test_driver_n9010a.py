"""The N9010A driver's bytes on the wire (pymeasure.test.expected_protocol), against the Keysight X-Series
"Spectrum Analyzer Mode User's & Programmer's Reference" command forms (instruments ref. §6.2)."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from pymeasure.test import expected_protocol

from drivers.keithley2400 import ReplyError
from drivers.keysight_n9010a import (
    KEYSIGHT_N9010A_REGISTRATION,
    KeysightN9010A,
    N9010AError,
    N9010ASettings,
    configure_n9010a,
    parse_block,
)


def test_frequency_span_and_zero_span():
    with expected_protocol(KeysightN9010A, [
        (":SENS:FREQ:CENT 7", None), (":SENS:FREQ:SPAN 10", None),
        (":SENS:FREQ:CENT?", "7.000000000000E+00"), (":SENS:FREQ:SPAN?", "1.0E+01"),
        (":SENS:FREQ:CENT 1234567890.5", None), (":SENS:FREQ:SPAN 0", None), (":SENS:SWE:TIME 0.5", None),
    ]) as inst:
        inst.set_frequency(7.0, 10.0)
        assert inst.center_frequency_Hz == 7.0 and inst.span_Hz == 10.0
        inst.set_zero_span(1234567890.5, 0.5)


def test_out_of_range_settings_are_refused_before_anything_is_sent():
    with expected_protocol(KeysightN9010A, []) as inst:
        for name, value in (("center_frequency_Hz", -1.0), ("span_Hz", 4e9), ("rbw_Hz", 0.5),
                            ("vbw_Hz", 0.1), ("sweep_points", 40002), ("average_count", 0)):
            with pytest.raises(ValueError):
                setattr(inst, name, value)
        with pytest.raises(ValueError):
            inst.detector = "PEAK"
        with pytest.raises(ValueError):
            inst.power_unit = "DBW"
        with pytest.raises(ValueError):
            inst.set_trace_format("REAL,64")
        with pytest.raises(ValueError):
            inst.marker_x(13)


def test_bandwidths_detector_and_their_auto_forms():
    with expected_protocol(KeysightN9010A, [
        (":SENS:BAND:RES 1", None), (":SENS:BAND:RES:AUTO ON", None), (":SENS:BAND:RES:AUTO?", "1"),
        (":SENS:BAND:VID 3", None), (":SENS:BAND:VID:AUTO ON", None), (":SENS:BAND:RES?", "1.000000E+00"),
        (":SENS:DET:TRAC AVER", None), (":SENS:DET:TRAC:AUTO ON", None), (":SENS:DET:TRAC?", "SAMP"),
        (":SENS:DET:TRAC:AUTO?", "0"),
    ]) as inst:
        inst.set_rbw_Hz(1.0)
        inst.set_rbw_Hz(None)
        assert inst.rbw_auto is True
        inst.set_vbw_Hz(3.0)
        inst.set_vbw_Hz(None)
        assert inst.rbw_Hz == 1.0
        inst.set_detector("AVER")
        inst.set_detector(None)
        assert inst.detector == "SAMP" and inst.detector_auto is False


def test_averaging_trace_type_points_units_and_continuous():
    with expected_protocol(KeysightN9010A, [
        (":SENS:AVER:COUN 20", None), (":SENS:AVER:TYPE RMS", None), (":SENS:AVER ON", None),
        (":SENS:AVER?", "1"), (":TRAC1:TYPE MAXH", None), (":TRAC1:TYPE?", "AVER"),
        (":SENS:SWE:POIN 1001", None), (":UNIT:POW V", None), (":UNIT:POW?", "DBM"),
        (":INIT:CONT OFF", None), (":INIT:CONT?", "0"), (":SENS:SWE:TIME:AUTO ON", None),
    ]) as inst:
        inst.set_averaging(20, True, "RMS")
        assert inst.averaging_enabled is True
        inst.trace_type = "MAXH"
        assert inst.trace_type == "AVER"
        inst.sweep_points = 1001
        inst.power_unit = "V"
        assert inst.power_unit == "DBM"
        inst.continuous = False
        assert inst.continuous is False
        inst.sweep_time_auto = True


def test_single_sweep_asks_the_sweep_time_then_waits_on_opc():
    with expected_protocol(KeysightN9010A, [
        (":SENS:SWE:TIME?", "2.5E+01"), (":TRAC1:TYPE?", "AVER"), (":SENS:AVER:COUN?", "4"),
        (":INIT:IMM", None), ("*OPC?", "1"),
    ]) as inst:
        inst.single_sweep()


def test_acquisition_time_is_one_sweep_without_averaging():
    with expected_protocol(KeysightN9010A, [(":SENS:SWE:TIME?", "2.5E+01"), (":TRAC1:TYPE?", "WRIT")]) as inst:
        assert inst.acquisition_time_s() == 25.0


def test_a_single_sweep_whose_opc_answers_otherwise_is_an_error():
    with expected_protocol(KeysightN9010A, [
        (":SENS:SWE:TIME?", "1E-3"), (":TRAC1:TYPE?", "WRIT"), (":INIT:IMM", None), ("*OPC?", "0"),
    ]) as inst:
        with pytest.raises(ReplyError):
            inst.single_sweep()


def test_single_sweep_raises_the_visa_timeout_to_cover_the_sweep():
    """The *OPC? read runs under a VISA timeout of at least the acquisition time plus the margin."""
    seen = {}

    class Connection:
        timeout = 5000.0

        def close(self):
            pass

    with expected_protocol(KeysightN9010A, [
        (":SENS:SWE:TIME?", "2.5E+01"), (":TRAC1:TYPE?", "AVER"), (":SENS:AVER:COUN?", "10"),
        (":INIT:IMM", None), ("*OPC?", "1"),
    ]) as inst:
        inst.adapter.connection = Connection()
        original = inst.ask

        def ask(command):
            seen[command] = inst.adapter.connection.timeout
            return original(command)

        inst.ask = ask
        inst.single_sweep()
        assert seen["*OPC?"] == pytest.approx((250.0 + 5.0) * 1000.0)
        assert inst.adapter.connection.timeout == 5000.0


def test_ascii_trace_and_its_frequency_axis():
    with expected_protocol(KeysightN9010A, [
        (":FORM ASC", None), (":FORM:BORD NORM", None),
        (":SENS:SWE:TIME?", "1E-3"), (":TRAC1:TYPE?", "WRIT"), (":INIT:IMM", None), ("*OPC?", "1"),
        (":TRAC? TRACE1", "-5.87350E+01,-5.89110E+01,-6.00000E+01"),
        (":SENS:FREQ:SPAN?", "1E+01"), (":SENS:FREQ:STAR?", "2E+00"), (":SENS:FREQ:STOP?", "1.2E+01"),
        (":UNIT:POW?", "DBM"), (":SENS:BAND:RES?", "1E+00"),
    ]) as inst:
        inst.set_trace_format("ASC")
        trace = inst.read_trace()
        np.testing.assert_array_equal(trace.level, [-58.735, -58.911, -60.0])
        np.testing.assert_array_equal(trace.frequency_Hz, [2.0, 7.0, 12.0])
        assert trace.unit == "DBM" and trace.rbw_Hz == 1.0 and not trace.zero_span


@pytest.mark.parametrize("order, fmt", [("NORM", ">3f"), ("SWAP", "<3f")])
def test_real32_block_in_either_byte_order(order, fmt):
    values = (-58.5, 1.0e-3, -150.25)
    body = struct.pack(fmt, *values)
    assert len(body) == 12
    with expected_protocol(KeysightN9010A, [
        (":FORM REAL,32", None), (f":FORM:BORD {order}", None),
        (":TRAC? TRACE1", None), (None, b"#212" + body + b"\n"),
    ]) as inst:
        inst.set_trace_format("REAL,32", order)
        np.testing.assert_allclose(inst.fetch_trace(), values, rtol=1e-7)


def test_real32_block_whose_bytes_contain_a_newline_is_read_by_its_length():
    value = struct.unpack(">f", b"\x0a\x0a\x0a\x0a")[0]
    body = struct.pack(">2f", value, -1.0)
    with expected_protocol(KeysightN9010A, [
        (":FORM?", "REAL,32"), (":FORM:BORD?", "NORM"), (":TRAC? TRACE1", None), (None, b"#18" + body + b"\n"),
    ]) as inst:
        np.testing.assert_allclose(inst.fetch_trace(), [value, -1.0])


def test_parse_block_refuses_a_short_or_headerless_block():
    with pytest.raises(ReplyError):
        parse_block(b"-58.7,-58.9", "NORM")
    with pytest.raises(ReplyError):
        parse_block(b"#18" + b"\x00" * 4, "NORM")
    with pytest.raises(ReplyError):
        parse_block(b"#13" + b"\x00" * 3, "NORM")


def test_zero_span_trace_is_against_time():
    with expected_protocol(KeysightN9010A, [
        (":FORM?", "ASC"), (":FORM:BORD?", "NORM"), (":TRAC? TRACE1", "-60,-61,-62"),
        (":SENS:FREQ:SPAN?", "0"), (":SENS:SWE:TIME?", "2E-01"), (":UNIT:POW?", "DBM"), (":SENS:BAND:RES?", "1E+03"),
    ]) as inst:
        trace = inst.read_trace(sweep=False)
        assert trace.zero_span
        np.testing.assert_allclose(trace.x, [0.0, 0.1, 0.2])
        with pytest.raises(N9010AError):
            trace.frequency_Hz  # noqa: B018 - the property raises


def test_markers_peak_search_x_y_and_off_reads_nan():
    with expected_protocol(KeysightN9010A, [
        (":CALC:MARK1:STAT ON", None), (":CALC:MARK1:MAX", None),
        (":CALC:MARK1:X?", "7.000000000000E+00"), (":CALC:MARK1:Y?", "-6.698945E+01"),
        (":CALC:MARK2:STAT ON", None), (":CALC:MARK2:X 9.5", None), (":CALC:MARK2:Y?", "9.91E+37"),
    ]) as inst:
        assert inst.peak() == (7.0, -66.98945)
        inst.set_marker_x(9.5, marker=2)
        assert math.isnan(inst.marker_y(2))


def test_check_errors_reads_until_no_error_and_keeps_commas():
    with expected_protocol(KeysightN9010A, [
        (":SYST:ERR?", '-113,"Undefined header"'), (":SYST:ERR?", '-222,"Data out of range;span, 5 Hz"'),
        (":SYST:ERR?", '+0,"No error"'), (":SYST:ERR?", '-113,"Undefined header"'), (":SYST:ERR?", '0,"No error"'),
    ]) as inst:
        assert inst.check_errors() == [(-113, "Undefined header"), (-222, "Data out of range;span, 5 Hz")]
        with pytest.raises(N9010AError, match="-113"):
            inst.check_set_errors("configure")


def test_configure_defaults_sends_single_sweep_auto_couplings_unit_and_format():
    with expected_protocol(KeysightN9010A, [
        (":INIT:CONT OFF", None), (":SENS:BAND:RES:AUTO ON", None), (":SENS:BAND:VID:AUTO ON", None),
        (":SENS:DET:TRAC:AUTO ON", None), (":SENS:AVER:COUN 1", None), (":SENS:AVER:TYPE RMS", None),
        (":SENS:AVER OFF", None), (":SENS:SWE:POIN 1001", None), (":UNIT:POW DBM", None),
        (":FORM REAL,32", None), (":FORM:BORD NORM", None), (":SYST:ERR?", '0,"No error"'),
    ]) as inst:
        configure_n9010a(inst, None)


def test_configure_with_settings():
    settings = N9010ASettings(center_frequency_Hz=7.0, span_Hz=10.0, rbw_Hz=1.0, vbw_Hz=1.0, detector="AVER",
                              averages=10, average_type="LOG", sweep_points=101, power_unit="V",
                              trace_format="ASC", byte_order="SWAP")
    with expected_protocol(KeysightN9010A, [
        (":INIT:CONT OFF", None), (":SENS:FREQ:CENT 7", None), (":SENS:FREQ:SPAN 10", None),
        (":SENS:BAND:RES 1", None), (":SENS:BAND:VID 1", None), (":SENS:DET:TRAC AVER", None),
        (":SENS:AVER:COUN 10", None), (":SENS:AVER:TYPE LOG", None), (":SENS:AVER ON", None),
        (":SENS:SWE:POIN 101", None), (":UNIT:POW V", None), (":FORM ASC", None), (":FORM:BORD SWAP", None),
        (":SYST:ERR?", '0,"No error"'),
    ]) as inst:
        configure_n9010a(inst, settings)


def test_settings_model_refuses_what_the_analyser_cannot_do():
    for bad in ({"rbw_Hz": 0.5}, {"sweep_points": 0}, {"detector": "PEAK"}, {"averages": 0}, {"rbw": 1}):
        with pytest.raises(ValueError):
            N9010ASettings(**bad)


def test_safe_state_sends_nothing_and_identity_accepts_both_makers():
    with expected_protocol(KeysightN9010A, []) as inst:
        assert "nothing to do" in KEYSIGHT_N9010A_REGISTRATION.safe_state(inst, None)
    import re

    accepts = KeysightN9010A.IDENTITY.accepts
    for idn in ("Agilent Technologies,N9010A,MY51234567,A.14.16", "Keysight Technologies,N9010A,MY5,A.25.05"):
        assert any(re.match(p, idn, re.IGNORECASE) for p in accepts)
    assert not any(re.match(p, "Keysight Technologies,N9030B,1000,0.1", re.IGNORECASE) for p in accepts)
    assert KEYSIGHT_N9010A_REGISTRATION.capabilities == ("spectrum_analyser",)
