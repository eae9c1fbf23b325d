"""Protocol tests for drivers.keithley2450 (native 2450 SCPI command set)."""

from __future__ import annotations

import numpy as np
import pytest
from pymeasure.test import expected_protocol

from drivers.keithley2400 import ReplyError
from drivers.keithley2450 import Keithley2450
from drivers.smu import InstrumentError
from tests.fakes import IDN_SYNC, NO_ERROR, assert_sweep_arrays, spy_timeouts

BUF = b'"labctlbuf"'


def configure_pairs(
    limit: bytes = b"0.1", nplc: bytes = b"1", rsen: bytes = b"OFF", delay: bytes = b"0", lfr: bytes = b"50"
) -> list[tuple[bytes, bytes | None]]:
    """Everything configure_voltage_source sends, including the final error check."""
    return [
        (b":SOUR:FUNC VOLT", None),
        (b":SOUR:VOLT:RANG:AUTO 1", None),
        (b':SENS:FUNC "CURR"', None),
        (b":SOUR:VOLT:ILIM " + limit, None),
        (b":SENS:CURR:RANG:AUTO 1", None),
        (b":SENS:CURR:NPLC " + nplc, None),
        (b":SENS:CURR:RSEN " + rsen, None),
        (b":SOUR:VOLT:DEL:AUTO 0", None),
        (b":SOUR:VOLT:DEL " + delay, None),
        (b":SENS:CURR:AZER ON", None),
        (b":SOUR:VOLT:READ:BACK ON", None),
        (b":SENS:COUN 1", None),
        (b":SYST:LFR?", lfr),
        NO_ERROR,
    ]


CONFIGURED = configure_pairs()  # after configure_voltage_source(0.1)
SWEEP_V = [-0.2, 0.15, 0.5, 0.85, 1.2]
SWEEP_I = [-0.0999, -0.05, -0.02, 0.098, 0.09996]  # first, last within 0.5 % of the 0.1 A limit; 4th not
SWEEP_T = [3.5, 3.57, 3.64, 3.71, 3.78]
SWEEP_REPLY = ",".join(
    f"{v:+.6E},{i:+.6E},{t:+.6E}" for v, i, t in zip(SWEEP_V, SWEEP_I, SWEEP_T, strict=True)
).encode()


def make_pairs(capacity: int = 2500) -> list[tuple[bytes, bytes | None]]:
    return [(b':TRAC:MAKE "labctlbuf", ' + str(capacity).encode(), None), NO_ERROR]


def sweep_pairs(points: int = 5, reply: bytes = SWEEP_REPLY, count: int | None = None) -> list:
    """Commands of one sweep after the buffer exists, up to the data read (no final error check); the trigger
    model has finished by the first look at it, with ``count`` readings stored."""
    n = points if count is None else count
    pairs = [
        (b":TRAC:CLE " + BUF, None),
        (f":SOUR:SWE:VOLT:LIN -0.2, 1.2, {points}, 0.01, 1, BEST, OFF, OFF, ".encode() + BUF, None),
        (b":OUTP 1", None),
        (b":INIT", None),
        (b":TRIG:STAT?", b"IDLE;IDLE;7"),
        (b":TRAC:ACT? " + BUF, str(n).encode()),
    ]
    if n == points:
        pairs.append((f":TRAC:DATA? 1, {n}, ".encode() + BUF + b", SOUR, READ, REL", reply))
    elif n > 0:
        pairs.append((f":TRAC:DATA? 1, {n}, ".encode() + BUF + b", SOUR, READ, REL",
                      b",".join(reply.split(b",")[: 3 * n])))
    return pairs


# ---------------------------------------------------------------------------------------- configuration


def test_constructor_sends_nothing_and_limits():
    with expected_protocol(Keithley2450, []) as smu:
        assert smu.name == "Keithley 2450 SourceMeter"
    assert (Keithley2450.limits.voltage_max_V, Keithley2450.limits.current_max_A) == (210.0, 1.05)
    assert Keithley2450.limits.nplc_range == (0.01, 10.0)


def test_configure_default_protocol_and_timing():
    with expected_protocol(Keithley2450, CONFIGURED) as smu:
        smu.configure_voltage_source(0.1)
        assert smu.measurement_time_s(1.0, 0.0) == pytest.approx(3 / 50 + 0.5e-3)


def test_configure_four_wire_nplc_delay():
    pairs = configure_pairs(limit=b"0.02", nplc=b"10", rsen=b"ON", delay=b"0.5", lfr=b"60")
    with expected_protocol(Keithley2450, pairs) as smu:
        smu.configure_voltage_source(0.02, nplc=10.0, four_wire=True, source_delay_s=0.5)
        assert smu.measurement_time_s(10.0, 0.5) == pytest.approx(0.5 + 10 / 60 * 3 + 0.5e-3)


def test_configure_raises_listing_every_queued_error():
    errors = [
        (b":SYST:ERR?", b'-113,"Undefined header"'),
        (b":SYST:ERR?", b'-222,"Parameter data out of range"'),
        NO_ERROR,
    ]
    listing = r'2 error\(s\).*-113,"Undefined header"; -222,"Parameter data out of range"'
    with expected_protocol(Keithley2450, [*CONFIGURED[:-1], *errors]) as smu:
        with pytest.raises(InstrumentError, match=listing):
            smu.configure_voltage_source(0.1)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"compliance_A": 1.06},
        {"compliance_A": 0.0},
        {"compliance_A": 0.1, "nplc": 0.005},
        {"compliance_A": 0.1, "nplc": 10.5},
        {"compliance_A": 0.1, "source_delay_s": -1.0},
        {"compliance_A": 0.1, "source_delay_s": 10_001.0},
    ],
)
def test_impossible_configuration_raises_before_sending(kwargs):
    with expected_protocol(Keithley2450, []) as smu:
        with pytest.raises(ValueError):
            smu.configure_voltage_source(**kwargs)


@pytest.mark.parametrize(
    "name, value",
    [
        ("source_voltage", 211.0),
        ("compliance_current", 1.1),  # stock: silently truncated to 1.05
        ("source_voltage_range", 300.0),  # stock: silently truncated
        ("current_range", 2.0),
        ("current_nplc", 11.0),  # stock: no validator at all
        ("voltage_nplc", 0.001),
        ("source_voltage_delay", 20_000.0),
    ],
)
def test_property_validators_refuse_before_sending(name, value):
    with expected_protocol(Keithley2450, []) as smu:
        with pytest.raises(ValueError):
            setattr(smu, name, value)


def test_properties_send_native_commands():
    pairs = [
        (b":SOUR:VOLT:RANG:AUTO 0;:SOUR:VOLT:RANG 2", None),
        (b":SOUR:VOLT:ILIM 1.05", None),
        (b":SENS:CURR:RSEN?", b"1"),
        (b":OUTP?", b"0"),
    ]
    with expected_protocol(Keithley2450, pairs) as smu:
        smu.source_voltage_range = 2
        smu.compliance_current = 1.05
        assert smu.current_four_wire_enabled is True
        assert smu.source_enabled is False


# ------------------------------------------------------------------------------------- source / output


def test_set_voltage_output_and_safe_state():
    pairs = [(b":SOUR:VOLT -0.3", None), (b":OUTP 1", None), (b":ABOR", None), IDN_SYNC,
             (b":SOUR:VOLT 0", None), (b":OUTP 0", None)]
    with expected_protocol(Keithley2450, pairs) as smu:
        smu.set_voltage(-0.3)
        smu.enable_output()
        smu.safe_state()


def test_shutdown_is_safe_state():
    pairs = [(b":ABOR", None), IDN_SYNC, (b":SOUR:VOLT 0", None), (b":OUTP 0", None)]
    with expected_protocol(Keithley2450, pairs) as smu:
        smu.shutdown()
        assert smu.isShutdown


# ------------------------------------------------------------------------------------------ measuring


def test_measure_point_reads_source_reading_time_and_trip():
    pairs = [
        (b':READ? "defbuffer1", SOUR, READ, REL', b"+5.000100E-01,-1.234000E-02,+1.250000E+01"),
        (b":SOUR:VOLT:ILIM:TRIP?", b"1"),
    ]
    with expected_protocol(Keithley2450, pairs) as smu:
        point = smu.measure_point()
    np.testing.assert_allclose(point.voltage_V, [0.50001])
    np.testing.assert_allclose(point.current_A, [-0.01234])
    np.testing.assert_allclose(point.time_s, [12.5])
    assert point.compliance.tolist() == [True]


@pytest.mark.parametrize("reply, trip", [(b"0.5,-0.01", b"0"), (b"0.5,-0.01,1.0", b"2")])
def test_measure_point_bad_replies(reply, trip):
    pairs = [(b':READ? "defbuffer1", SOUR, READ, REL', reply)]
    if reply.count(b",") == 2:
        pairs.append((b":SOUR:VOLT:ILIM:TRIP?", trip))
    with expected_protocol(Keithley2450, pairs) as smu:
        with pytest.raises(ReplyError, match="Keithley 2450 SourceMeter"):
            smu.measure_point()


# --------------------------------------------------------------------------------------------- sweeps


def test_first_sweep_makes_the_buffer_and_reads_everything_once():
    pairs = [*CONFIGURED, *make_pairs(), *sweep_pairs(), NO_ERROR]
    with expected_protocol(Keithley2450, pairs, connection_attributes={"timeout": 2000}) as smu:
        smu.configure_voltage_source(0.1)
        seen = spy_timeouts(smu)
        data = smu.sweep_voltage(-0.2, 1.2, 5, 0.01)
    assert_sweep_arrays(data, SWEEP_V, SWEEP_I, SWEEP_T)
    assert data.compliance.tolist() == [True, False, False, False, True]
    transfer_ms = pytest.approx(1e3 * (10.0 + 5 * 0.01))  # margin + per-point transfer allowance
    # make check, :TRIG:STAT?, :TRAC:ACT? (answered at once, never waiting for the sweep), :TRAC:DATA?, errors
    assert seen == [2000, 2000, 2000, transfer_ms, 2000]
    assert smu.adapter.connection.timeout == 2000


def test_buffer_is_reused_then_remade_larger():
    big = 3000
    big_reply = ",".join(["+1.0E-01,-1.0E-03,+1.0E+00"] * big).encode()
    remake = [(b":TRAC:DEL " + BUF, None), (b':TRAC:MAKE "labctlbuf", 3000', None)]
    big_sweep = [*remake, *sweep_pairs(big, big_reply)]
    pairs = [
        *CONFIGURED,
        *make_pairs(), *sweep_pairs(), NO_ERROR,
        *sweep_pairs(), NO_ERROR,  # reused: no :TRAC:MAKE
        *big_sweep, NO_ERROR,
    ]
    with expected_protocol(Keithley2450, pairs) as smu:
        smu.configure_voltage_source(0.1)
        smu.sweep_voltage(-0.2, 1.2, 5, 0.01)
        smu.sweep_voltage(-0.2, 1.2, 5, 0.01)
        assert smu.sweep_voltage(-0.2, 1.2, big, 0.01).current_A.size == big


def test_buffer_left_by_an_earlier_session_is_remade():
    exists = (b":SYST:ERR?", b'1115,"Parameter error: TRACe:MAKE cannot take an existing buffer name"')
    make = (b':TRAC:MAKE "labctlbuf", 2500', None)
    remake = [(b":TRAC:DEL " + BUF, None), make]
    pairs = [*CONFIGURED, make, exists, NO_ERROR, *remake, *sweep_pairs(), NO_ERROR]
    with expected_protocol(Keithley2450, pairs) as smu:
        smu.configure_voltage_source(0.1)
        assert smu.sweep_voltage(-0.2, 1.2, 5, 0.01).voltage_V.size == 5


def test_buffer_make_failure_raises():
    failure = (b":SYST:ERR?", b'-222,"Parameter data out of range"')
    pairs = [*CONFIGURED, (b':TRAC:MAKE "labctlbuf", 2500', None), failure, NO_ERROR]
    with expected_protocol(Keithley2450, pairs) as smu:
        smu.configure_voltage_source(0.1)
        with pytest.raises(InstrumentError, match="making buffer"):
            smu.sweep_voltage(-0.2, 1.2, 5, 0.01)


def test_incomplete_sweep_raises_with_the_queued_errors():
    errors = [(b":SYST:ERR?", b'5074,"Output interlock asserted"'), NO_ERROR]
    pairs = [*CONFIGURED, *make_pairs(), *sweep_pairs(count=3), *errors]
    with expected_protocol(Keithley2450, pairs) as smu:
        smu.configure_voltage_source(0.1)
        with pytest.raises(InstrumentError, match=r"stored 3 of 5 points.*5074"):
            smu.sweep_voltage(-0.2, 1.2, 5, 0.01)


def test_incomplete_sweep_without_errors_still_raises():
    pairs = [*CONFIGURED, *make_pairs(), *sweep_pairs(count=0), NO_ERROR]
    with expected_protocol(Keithley2450, pairs) as smu:
        smu.configure_voltage_source(0.1)
        with pytest.raises(InstrumentError, match="stored 0 of 5 points"):
            smu.sweep_voltage(-0.2, 1.2, 5, 0.01)


def test_sweep_errors_after_the_data_raise():
    errors = [(b":SYST:ERR?", b'-221,"Settings conflict"'), NO_ERROR]
    pairs = [*CONFIGURED, *make_pairs(), *sweep_pairs(), *errors]
    with expected_protocol(Keithley2450, pairs) as smu:
        smu.configure_voltage_source(0.1)
        with pytest.raises(InstrumentError, match="Settings conflict"):
            smu.sweep_voltage(-0.2, 1.2, 5, 0.01)


def test_short_sweep_data_is_a_reply_error():
    short = b",".join(SWEEP_REPLY.split(b",")[:-1])
    pairs = [*CONFIGURED, *make_pairs(), *sweep_pairs(reply=short)]
    with expected_protocol(Keithley2450, pairs) as smu:
        smu.configure_voltage_source(0.1)
        with pytest.raises(ReplyError, match="14 numbers, expected 15"):
            smu.sweep_voltage(-0.2, 1.2, 5, 0.01)


@pytest.mark.parametrize(
    "args",
    [(-0.2, 1.2, 5, 20e-6), (-0.2, 1.2, 1, 0.0), (-0.2, 1.2, 100_001, 0.0), (-211.0, 0.0, 5, 0.0)],
)
def test_impossible_sweep_raises_before_sending(args):
    with expected_protocol(Keithley2450, CONFIGURED) as smu:
        smu.configure_voltage_source(0.1)
        with pytest.raises(ValueError):
            smu.sweep_voltage(*args)


def test_sweep_before_configure_raises_before_sending():
    with expected_protocol(Keithley2450, []) as smu:
        with pytest.raises(RuntimeError):
            smu.sweep_voltage(-0.2, 1.2, 5, 0.0)


def test_reset_forgets_configuration_and_buffer():
    pairs = [
        *CONFIGURED, *make_pairs(), *sweep_pairs(), NO_ERROR,
        (b"*RST;:stat:pres;:*CLS;", None),
        *CONFIGURED, *make_pairs(), *sweep_pairs(), NO_ERROR,  # *RST deleted the user buffer
    ]
    with expected_protocol(Keithley2450, pairs) as smu:
        smu.configure_voltage_source(0.1)
        smu.sweep_voltage(-0.2, 1.2, 5, 0.01)
        smu.reset()
        with pytest.raises(RuntimeError):
            smu.sweep_voltage(-0.2, 1.2, 5, 0.01)
        smu.configure_voltage_source(0.1)
        smu.sweep_voltage(-0.2, 1.2, 5, 0.01)


# ---------------------------------------------------------------------------- stock buffer methods fixed


def test_2400_only_buffer_methods_refuse_without_sending():
    with expected_protocol(Keithley2450, []) as smu:
        for method in (smu.config_buffer, smu.disable_buffer, smu.is_buffer_full):
            with pytest.raises(NotImplementedError):
                method()


def test_native_buffer_methods():
    pairs = [
        (b':TRAC:CLE "defbuffer1"', None),
        (b':TRAC:ACT? "defbuffer1"', b"3"),
        (b':TRAC:DATA? 1, 3, "defbuffer1"', b"1.0E-03,2.0E-03,3.0E-03"),
        (b':TRAC:ACT? "defbuffer1"', b"0"),
    ]
    with expected_protocol(Keithley2450, pairs) as smu:
        smu.reset_buffer()
        np.testing.assert_allclose(smu.buffer_data, [1e-3, 2e-3, 3e-3])
        assert smu.buffer_data.size == 0
