"""Protocol tests for drivers.keithley2400 (Keithley 2400 / 2420) and its shared reply parsers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymeasure.test import expected_protocol

from drivers.keithley2400 import (
    Keithley2400,
    Keithley2420,
    ReplyError,
    parse_error_entry,
    parse_groups,
    parse_numbers,
)
from drivers.smu import InstrumentError, SweepData
from tests.fakes import IDN_SYNC, NO_ERROR, assert_sweep_arrays, spy_timeouts


def configure_pairs(
    compliance: bytes = b"0.1",
    nplc: bytes = b"1",
    rsen: bytes = b"0",
    delay: bytes = b"0",
    lfr: bytes = b"50",
) -> list[tuple[bytes, bytes | None]]:
    """Everything configure_voltage_source sends, up to and including the line-frequency query."""
    return [
        (b":SOUR:FUNC VOLT", None),
        (b":SOUR:VOLT:MODE FIX", None),
        (b":SOUR:VOLT:RANG:AUTO 1", None),
        (b":SENS:FUNC:CONC OFF", None),
        (b':SENS:FUNC "CURR"', None),
        (b":SENS:CURR:PROT " + compliance, None),
        (b":SENS:CURR:RANG:AUTO 1", None),
        (b":SENS:CURR:NPLC " + nplc, None),
        (b":SYST:RSEN " + rsen, None),
        (b":SOUR:DEL:AUTO 0", None),
        (b":SOUR:DEL " + delay, None),
        (b":SYST:AZER 1", None),
        (b":SOUR:CLE:AUTO 0", None),
        (b":ARM:COUN 1", None),
        (b":TRIG:COUN 1", None),
        (b":FORM:ELEM VOLT,CURR,TIME,STAT", None),
        (b":SYST:LFR?", lfr),
    ]


CONFIGURED = [*configure_pairs(), NO_ERROR]  # after configure_voltage_source(0.1)


def sweep_pairs(reply: bytes, points: int = 5) -> list[tuple[bytes, bytes | None]]:
    return [
        (b":SOUR:VOLT:MODE SWE", None),
        (b":SOUR:VOLT:STAR -0.2", None),
        (b":SOUR:VOLT:STOP 1.2", None),
        (f":SOUR:SWE:POIN {points}".encode(), None),
        (b":SOUR:SWE:RANG BEST", None),
        (b":SOUR:SWE:SPAC LIN", None),
        (b":SOUR:SWE:DIR UP", None),
        (b":SOUR:SWE:CAB NEV", None),
        (f":TRIG:COUN {points}".encode(), None),
        (b":SOUR:DEL 0.01", None),
        (b":OUTP 1", None),
        (b":READ?", reply),
        (b":SOUR:VOLT:MODE FIX", None),
        (b":TRIG:COUN 1", None),
    ]


def reading(v: float, i: float, t: float, status: int) -> str:
    return f"{v:+.6E},{i:+.6E},{t:+.6E},{float(status):+.6E}"


V_SOURCE_I_MEASURED = (1 << 14) | (1 << 12)  # status word without compliance
IN_COMPLIANCE = V_SOURCE_I_MEASURED | (1 << 3)
SWEEP_V = [-0.2, 0.15, 0.5, 0.85, 1.2]
SWEEP_I = [-0.02, -0.0199, -0.015, 0.01, 0.1]
SWEEP_T = [100.0, 100.07, 100.14, 100.21, 100.28]
SWEEP_STATUS = [V_SOURCE_I_MEASURED] * 4 + [IN_COMPLIANCE]
SWEEP_REPLY = ",".join(map(reading, SWEEP_V, SWEEP_I, SWEEP_T, SWEEP_STATUS)).encode()


# ----------------------------------------------------------------------------------------- construction


def test_constructor_sends_nothing():
    """Not even the stock ``:FORM:ELEM``: the station verifies the identity first (configure sets the format)."""
    with expected_protocol(Keithley2400, []) as smu:
        assert smu.name == "Keithley 2400 SourceMeter"


def test_idn():
    idn = "KEITHLEY INSTRUMENTS INC.,MODEL 2400,1248014,C30   Mar 17 2006 09:29:29/A02  /K/J"
    with expected_protocol(Keithley2400, [(b"*IDN?", idn.encode())]) as smu:
        assert smu.idn == idn


def test_model_limits():
    assert (Keithley2400.limits.voltage_max_V, Keithley2400.limits.current_max_A) == (210.0, 1.05)
    assert (Keithley2420.limits.voltage_max_V, Keithley2420.limits.current_max_A) == (63.0, 3.15)
    assert Keithley2400.limits.max_sweep_points == Keithley2420.limits.max_sweep_points == 2500


# ---------------------------------------------------------------------------------------- configuration


def test_configure_default_protocol_and_timing():
    with expected_protocol(Keithley2400, CONFIGURED) as smu:
        smu.configure_voltage_source(0.1)
        assert smu.line_frequency_Hz == 50.0
        assert smu.measurement_time_s(1.0, 0.0) == pytest.approx(3 / 50 + 0.5e-3)


def test_configure_four_wire_nplc_delay_and_60_hz():
    pairs = configure_pairs(compliance=b"0.02", nplc=b"0.1", rsen=b"1", delay=b"0.05", lfr=b"6.000000E+01")
    with expected_protocol(Keithley2400, [*pairs, NO_ERROR]) as smu:
        smu.configure_voltage_source(0.02, nplc=0.1, four_wire=True, source_delay_s=0.05)
        assert smu.measurement_time_s(0.1, 0.05) == pytest.approx(0.05 + 0.1 / 60 * 3 + 0.5e-3)


def test_configure_raises_listing_every_queued_error():
    errors = [
        (b":SYST:ERR?", b'-222,"Parameter data out of range"'),
        (b":SYST:ERR?", b'-113,"Undefined header"'),
        NO_ERROR,
    ]
    with expected_protocol(Keithley2400, [*CONFIGURED, *configure_pairs(), *errors]) as smu:
        smu.configure_voltage_source(0.1)
        with pytest.raises(InstrumentError) as info:
            smu.configure_voltage_source(0.1)
        message = str(info.value)
        assert "Keithley 2400" in message and "configure_voltage_source" in message
        assert '-222,"Parameter data out of range"' in message and '-113,"Undefined header"' in message
        with pytest.raises(RuntimeError, match="configure_voltage_source"):
            smu.sweep_voltage(0.0, 1.0, 11, 0.0)  # a failed reconfiguration undoes the earlier one


@pytest.mark.parametrize(
    "kwargs",
    [
        {"compliance_A": 1.2},
        {"compliance_A": 0.0},
        {"compliance_A": -0.1},
        {"compliance_A": math.nan},
        {"compliance_A": 0.1, "nplc": 0.001},
        {"compliance_A": 0.1, "nplc": 11.0},
        {"compliance_A": 0.1, "source_delay_s": -0.001},
        {"compliance_A": 0.1, "source_delay_s": 1000.0},
    ],
)
def test_impossible_configuration_raises_before_sending(kwargs):
    with expected_protocol(Keithley2400, []) as smu:
        with pytest.raises(ValueError):
            smu.configure_voltage_source(**kwargs)


def test_2420_accepts_3_amp_compliance_that_the_2400_refuses():
    with expected_protocol(Keithley2400, []) as smu:
        with pytest.raises(ValueError):
            smu.configure_voltage_source(3.0)
    pairs = configure_pairs(compliance=b"3")
    with expected_protocol(Keithley2420, [*pairs, NO_ERROR]) as smu:
        assert smu.name == "Keithley 2420 SourceMeter"
        smu.configure_voltage_source(3.0)


@pytest.mark.parametrize(
    "cls, name, value",
    [
        (Keithley2400, "source_voltage", 210.5),
        (Keithley2400, "source_voltage", -211.0),
        (Keithley2400, "compliance_current", 1.06),
        (Keithley2400, "source_current", 1.1),
        (Keithley2400, "current_nplc", 0.005),
        (Keithley2400, "source_delay", 1000.0),
        (Keithley2420, "source_voltage", 63.5),
        (Keithley2420, "source_voltage_range", 100.0),
        (Keithley2420, "compliance_voltage", 64.0),
        (Keithley2420, "compliance_current", 3.2),
        (Keithley2420, "current_range", -3.2),
    ],
)
def test_property_validators_refuse_before_sending(cls, name, value):
    with expected_protocol(cls, []) as smu:
        with pytest.raises(ValueError):
            setattr(smu, name, value)


def test_property_values_inside_the_model_range_are_sent():
    pairs = [(b":SOUR:VOLT 60", None), (b":SENS:CURR:PROT 3.15", None), (b":SOUR:CURR -3", None)]
    with expected_protocol(Keithley2420, pairs) as smu:
        smu.source_voltage = 60
        smu.compliance_current = 3.15
        smu.source_current = -3.0
    with expected_protocol(Keithley2400, [(b":SOUR:VOLT 200", None)]) as smu:
        smu.source_voltage = 200


# ------------------------------------------------------------------------------------- source / output


def test_set_voltage_and_output():
    pairs = [(b":SOUR:VOLT 0.45", None), (b":OUTP 1", None), (b":OUTP 0", None)]
    with expected_protocol(Keithley2400, pairs) as smu:
        smu.set_voltage(0.45)
        smu.enable_output()
        smu.disable_output()


def test_set_voltage_outside_range_sends_nothing():
    with expected_protocol(Keithley2420, []) as smu:
        with pytest.raises(ValueError):
            smu.set_voltage(100.0)


def test_safe_state_and_shutdown():
    # a running sweep would ignore :OUTP 0 (2400 manual, Triggering): the safe state aborts it first
    pairs = [(b":ABOR", None), IDN_SYNC, (b":SOUR:VOLT 0", None), (b":OUTP 0", None),
             (b":ABOR", None), IDN_SYNC, (b":SOUR:VOLT 0", None), (b":OUTP 0", None)]
    with expected_protocol(Keithley2400, pairs) as smu:
        smu.safe_state()
        smu.shutdown()
        assert smu.isShutdown


def test_safe_state_turns_output_off_even_if_zeroing_fails():
    with expected_protocol(Keithley2400, [(b":ABOR", None), IDN_SYNC, (b":OUTP 0", None)]) as smu:
        original = smu.write

        def write(command: str, **kwargs) -> None:
            if command == ":SOUR:VOLT 0":
                raise ConnectionError("bus glitch")
            original(command, **kwargs)

        smu.write = write
        with pytest.raises(ConnectionError, match="bus glitch"):
            smu.safe_state()


# ------------------------------------------------------------------------------------------ measuring


def test_measure_point_parses_elements_and_compliance():
    reply = reading(0.5, -0.0123, 123.456, IN_COMPLIANCE).encode()
    with expected_protocol(Keithley2400, [(b":READ?", reply)]) as smu:
        point = smu.measure_point()
    assert isinstance(point, SweepData)
    np.testing.assert_allclose(point.voltage_V, [0.5])
    np.testing.assert_allclose(point.current_A, [-0.0123])
    np.testing.assert_allclose(point.time_s, [123.456])  # the instrument's own time stamp
    assert point.compliance.tolist() == [True]


def test_measure_point_without_compliance_and_nan_placeholder():
    reply = b"+9.910000E+37,+1.000000E-03,+1.000000E+00,+2.048000E+04"
    with expected_protocol(Keithley2400, [(b":READ?", reply)]) as smu:
        point = smu.measure_point()
    assert math.isnan(point.voltage_V[0]) and point.compliance.tolist() == [False]


@pytest.mark.parametrize(
    "reply, fragment",
    [
        (b"+5.0E-01,-1.0E-02,+1.0E+00", "3 numbers, expected 4"),
        (b"+5.0E-01,-1.0E-02,+1.0E+00,+2.0E+04,+1.0E+00", "5 numbers, expected 4"),
        (b"+5.0E-01,oops,+1.0E+00,+2.0E+04", "'oops'"),
        (b"", "empty reply"),
        (b"+5.0E-01,-1.0E-02,+1.0E+00,+2.5E-01", "status word"),
    ],
)
def test_bad_reply_names_instrument_and_reply(reply, fragment):
    with expected_protocol(Keithley2400, [(b":READ?", reply)]) as smu:
        with pytest.raises(ReplyError) as info:
            smu.measure_point()
    assert "Keithley 2400 SourceMeter" in str(info.value) and fragment in str(info.value)


def test_measure_point_raises_the_read_timeout_when_configured():
    reply = reading(0.5, -0.01, 1.0, V_SOURCE_I_MEASURED).encode()
    pairs = [*CONFIGURED, (b":SOUR:DEL 999", None), (b":READ?", reply)]
    with expected_protocol(Keithley2400, pairs, connection_attributes={"timeout": 2000}) as smu:
        smu.configure_voltage_source(0.1)
        smu.source_delay = 999.0
        smu._source_delay_s = 999.0  # as a sweep with that delay would leave it
        seen = spy_timeouts(smu)
        smu.measure_point()
    assert seen[0] == pytest.approx(1e3 * (((999.0 + 0.06 + 0.5e-3) * 1.25 + 0.01) + 10.0))
    assert smu.adapter.connection.timeout == 2000


# --------------------------------------------------------------------------------------------- sweeps


def test_sweep_protocol_data_and_timeout():
    pairs = [*CONFIGURED, *sweep_pairs(SWEEP_REPLY), NO_ERROR]
    with expected_protocol(Keithley2400, pairs, connection_attributes={"timeout": 2000}) as smu:
        smu.configure_voltage_source(0.1)
        seen = spy_timeouts(smu)
        data = smu.sweep_voltage(-0.2, 1.2, 5, 0.01)
    assert_sweep_arrays(data, SWEEP_V, SWEEP_I, SWEEP_T)
    assert data.compliance.tolist() == [False, False, False, False, True]
    per_point_s = (0.01 + 3 / 50 + 0.5e-3) * 1.25 + 0.01
    assert seen == [pytest.approx(1e3 * (5 * per_point_s + 10.0)), 2000]  # :READ?, then :SYST:ERR?
    assert smu.adapter.connection.timeout == 2000


def test_sweep_short_reply_raises_but_restores_fixed_mode():
    short = b",".join(SWEEP_REPLY.split(b",")[:-4])
    with expected_protocol(Keithley2400, [*CONFIGURED, *sweep_pairs(short)]) as smu:
        smu.configure_voltage_source(0.1)
        with pytest.raises(ReplyError, match="16 numbers, expected 20"):
            smu.sweep_voltage(-0.2, 1.2, 5, 0.01)


def test_sweep_raises_on_queued_errors():
    errors = [(b":SYST:ERR?", b'+803,"Not permitted with OUTPUT off"'), NO_ERROR]
    with expected_protocol(Keithley2400, [*CONFIGURED, *sweep_pairs(SWEEP_REPLY), *errors]) as smu:
        smu.configure_voltage_source(0.1)
        with pytest.raises(InstrumentError, match=r'803,"Not permitted with OUTPUT off"'):
            smu.sweep_voltage(-0.2, 1.2, 5, 0.01)


@pytest.mark.parametrize(
    "args, error",
    [
        ((-0.2, 1.2, 1, 0.0), ValueError),
        ((-0.2, 1.2, 2501, 0.0), ValueError),
        ((-211.0, 1.2, 11, 0.0), ValueError),
        ((-0.2, 210.5, 11, 0.0), ValueError),
        ((-0.2, 1.2, 11, -0.01), ValueError),
        ((-0.2, 1.2, 11, 1000.0), ValueError),
        ((-0.2, 1.2, 10.5, 0.0), TypeError),
    ],
)
def test_impossible_sweep_raises_before_sending(args, error):
    with expected_protocol(Keithley2400, CONFIGURED) as smu:
        smu.configure_voltage_source(0.1)
        with pytest.raises(error):
            smu.sweep_voltage(*args)


def test_2420_sweep_limited_to_63_volts():
    with expected_protocol(Keithley2420, [*configure_pairs(), NO_ERROR]) as smu:
        smu.configure_voltage_source(0.1)
        with pytest.raises(ValueError):
            smu.sweep_voltage(0.0, 64.0, 11, 0.0)


def test_sweep_before_configure_raises_before_sending():
    with expected_protocol(Keithley2400, []) as smu:
        with pytest.raises(RuntimeError):
            smu.sweep_voltage(0.0, 1.0, 11, 0.0)


# --------------------------------------------------------------------------------- timing, misc, errors


def test_measurement_time_reads_line_frequency_once_when_not_configured():
    with expected_protocol(Keithley2400, [(b":SYST:LFR?", b"60")]) as smu:
        assert smu.measurement_time_s(1.0, 0.1) == pytest.approx(0.1 + 3 / 60 + 0.5e-3)
        assert smu.measurement_time_s(10.0, 0.0) == pytest.approx(30 / 60 + 0.5e-3)
        with pytest.raises(ValueError):
            smu.measurement_time_s(20.0, 0.0)


def test_unexpected_line_frequency_is_a_reply_error():
    with expected_protocol(Keithley2400, [(b":SYST:LFR?", b"55")]) as smu:
        with pytest.raises(ReplyError, match="50 or 60"):
            smu.measurement_time_s(1.0, 0.0)


def test_stock_methods_relying_on_resistance_element_refuse():
    with expected_protocol(Keithley2400, []) as smu:
        with pytest.raises(NotImplementedError):
            smu.measure_all()
        with pytest.raises(NotImplementedError):
            _ = smu.resistance


def test_stock_current_property_still_reads_the_current_element():
    reply = reading(0.5, -0.0123, 1.0, V_SOURCE_I_MEASURED).encode()
    with expected_protocol(Keithley2400, [(b":MEASURE:CURRENT?", reply)]) as smu:
        assert smu.current == pytest.approx(-0.0123)


def test_check_errors_keeps_commas_in_messages_and_returns_them():
    pairs = [(b":SYST:ERR?", b'-222,"Parameter data out of range, too big"'), NO_ERROR]
    with expected_protocol(Keithley2400, pairs) as smu:
        assert smu.check_errors() == [(-222, "Parameter data out of range, too big")]


def test_error_queue_that_never_empties_is_returned_and_check_set_errors_raises():
    pairs = [] + [(b":SYST:ERR?", b'-350,"Queue overflow"')] * 50
    with expected_protocol(Keithley2400, pairs) as smu:
        assert smu.check_errors() == [(-350, "Queue overflow")] * 50  # never raises for queued errors
    with expected_protocol(Keithley2400, pairs) as smu:
        with pytest.raises(InstrumentError, match="never emptied"):
            smu.check_set_errors()


def test_unreadable_error_reply():
    with expected_protocol(Keithley2400, [(b":SYST:ERR?", b"garbage")]) as smu:
        with pytest.raises(ReplyError, match="garbage"):
            smu.check_set_errors()


# ----------------------------------------------------------------------------------- parser properties

finite = st.floats(min_value=-1e36, max_value=1e36, allow_nan=False, allow_infinity=False)
formats = st.sampled_from(["{:+.6E}", "{:g}", "{!r}", "{:.9e}", " {:+.4E} "])


@given(st.lists(st.tuples(finite, formats), min_size=1, max_size=40))
def test_parse_numbers_round_trips_formatted_numbers(items):
    texts = [fmt.format(x) for x, fmt in items]
    parsed = parse_numbers(",".join(texts), instrument="SMU", command=":READ?")
    np.testing.assert_array_equal(parsed, [float(t) for t in texts])


@given(st.integers(min_value=1, max_value=6), st.integers(min_value=1, max_value=30), st.data())
def test_parse_groups_round_trips_and_checks_the_count(n_elements, points, data):
    values = data.draw(st.lists(finite, min_size=n_elements * points, max_size=n_elements * points))
    reply = ",".join(f"{x:+.6E}" for x in values)
    rows = parse_groups(reply, n_elements, instrument="SMU", command=":READ?", points=points)
    assert rows.shape == (points, n_elements)
    np.testing.assert_array_equal(rows.ravel(), [float(f"{x:+.6E}") for x in values])
    with pytest.raises(ReplyError):
        parse_groups(reply, n_elements, instrument="SMU", command=":READ?", points=points + 1)


def test_parse_numbers_special_readings():
    parsed = parse_numbers("+9.91E37,-9.9E+37,+9.900000E+37,1.5", instrument="SMU", command=":READ?")
    assert math.isnan(parsed[0]) and parsed[1] == -math.inf and parsed[2] == math.inf and parsed[3] == 1.5


@given(st.integers(-999, 999), st.text(st.characters(exclude_characters='"'), max_size=40))
def test_parse_error_entry_round_trip(code, message):
    assert parse_error_entry(f'{code},"{message}"', instrument="SMU") == (code, message)
