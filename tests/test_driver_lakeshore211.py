"""LakeShore211 driver: the exact traffic of each call (expected_protocol), the settings, and end to end on the
simulated bench in-process and over a loopback serial socket (real pyvisa-py)."""

from __future__ import annotations

import warnings

import pytest
from pymeasure.test import expected_protocol
from pyvisa.constants import Parity

from drivers.lakeshore211 import (
    LAKESHORE211_REGISTRATION,
    LakeShore211,
    LakeShore211Settings,
    configure_lakeshore211,
    lakeshore211_safe_state,
)
from sim_instruments.adapter import EmulatorAdapter
from sim_instruments.clock import VirtualClock
from sim_instruments.lakeshore211 import FRAMING, LakeShore211Emulator
from sim_instruments.server import serve


class _Bench:
    """A device at a set temperature on a virtual clock (the emulator reads only these two)."""

    def __init__(self, t_K: float = 298.15) -> None:
        self.t_K = t_K
        self.clock = VirtualClock()

    def device_temperature_K(self) -> float:
        return self.t_K


def test_constructor_sends_nothing_and_does_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the stock chain's SCPIUnknownMixin would warn
        with expected_protocol(LakeShore211, []):
            pass


def test_identity() -> None:
    with expected_protocol(LakeShore211, [(b"*IDN?", b"LSCI,MODEL211,21A0000,022607")]) as ls:
        assert ls.id == "LSCI,MODEL211,21A0000,022607"
    assert LakeShore211.IDENTITY.matches("LSCI,MODEL211,21A0000,022607")
    assert not LakeShore211.IDENTITY.matches("LSCI,MODEL218S,21A0000,022607")


def test_read_temperature_K_is_krdg() -> None:
    with expected_protocol(LakeShore211, [(b"KRDG?", b"+298.150")]) as ls:
        assert ls.read_temperature_K() == 298.15


@pytest.mark.parametrize("status, errors", [
    (b"000", []),
    (b"008", []),  # the high alarm is not a fault
    (b"032", [(32, "temperature over range")]),
    (b"018", [(2, "A/D not responding"), (16, "temperature under range")]),
])
def test_check_errors_reports_the_reading_faults_of_rdgst(status, errors) -> None:
    with expected_protocol(LakeShore211, [(b"RDGST?", status)]) as ls:
        assert ls.check_errors() == errors


def test_alarms_active_from_rdgst() -> None:
    with expected_protocol(LakeShore211, [(b"RDGST?", b"012")]) as ls:
        assert ls.alarms_active() == (True, True)


def test_settings_are_applied_and_read_back() -> None:
    settings = LakeShore211Settings(display_units="celsius", alarm_high_K=318.15)
    with expected_protocol(LakeShore211, [(b"DISPFLD 1", None), (b"DISPFLD?", b"1"),
                                          (b"ALARM 1,318.15,0,0,1", None),
                                          (b"ALARM?", b"1,+318.2,+0.0,+0.0,1")]) as ls:
        configure_lakeshore211(ls, settings)


def test_a_setting_the_211_ignored_is_an_error() -> None:
    with expected_protocol(LakeShore211, [(b"DISPFLD 3", None), (b"DISPFLD?", b"0")]) as ls, \
            pytest.raises(RuntimeError, match="DISPFLD"):
        configure_lakeshore211(ls, LakeShore211Settings(display_units="fahrenheit"))


def test_safe_state_sends_nothing_and_says_so() -> None:
    with expected_protocol(LakeShore211, []) as ls:
        assert "nothing to make safe" in lakeshore211_safe_state(ls, LakeShore211Settings())


def test_registration() -> None:
    reg = LAKESHORE211_REGISTRATION
    assert reg.name == "lakeshore211" and reg.capabilities == ("temperature_sensor",)
    conn = reg.connection
    assert (conn.read_termination, conn.write_termination, conn.baud_rate, conn.serial) == ("\r\n", "\r\n", 9600,
                                                                                               True)


def _exercise(ls: LakeShore211, bench: _Bench) -> None:
    assert ls.id.startswith("LSCI,MODEL211,")
    assert ls.read_temperature_K() == pytest.approx(bench.t_K, abs=1e-3)
    bench.t_K = 310.5
    assert ls.read_temperature_K() == pytest.approx(310.5, abs=1e-3)
    assert ls.temperature_celsius == pytest.approx(310.5 - 273.15, abs=1e-3)
    configure_lakeshore211(ls, LakeShore211Settings(display_units="kelvin", alarm_high_K=315.0))
    assert ls.alarms_active() == (False, False)
    bench.t_K = 316.0
    assert ls.alarms_active() == (False, True)
    bench.t_K = 300.0
    assert ls.alarms_active() == (False, True)  # latched
    ls.reset_alarm()
    assert ls.alarms_active() == (False, False)
    assert ls.check_errors() == []


def test_end_to_end_in_process() -> None:
    bench = _Bench()
    _exercise(LakeShore211(EmulatorAdapter(LakeShore211Emulator(bench), **FRAMING)), bench)


@pytest.mark.tcp
def test_end_to_end_over_asrlsocket() -> None:
    bench = _Bench()
    with serve({"temperature": (LakeShore211Emulator(bench), "\r\n", "\r\n")}, serial=["temperature"]) as srv:
        ls = LakeShore211(srv.resource_strings()["temperature"], visa_library="@py", timeout=2000)
        try:
            assert ls.adapter.connection.baud_rate == 9600
            assert ls.adapter.connection.data_bits == 7
            assert ls.adapter.connection.parity == Parity.odd
            _exercise(ls, bench)
        finally:
            ls.adapter.close()
