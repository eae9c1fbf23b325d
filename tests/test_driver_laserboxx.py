"""OxxiusLaserBoxx driver: the exact traffic of every command (each command, setter or query, has one reply line)."""

from __future__ import annotations

import re

import pytest
from pymeasure.test import expected_protocol

from drivers.oxxius_laserboxx import (
    OXXIUS_LASERBOXX_REGISTRATION,
    LaserBoxxError,
    LaserBoxxSettings,
    OxxiusLaserBoxx,
    configure_laserboxx,
    laserboxx_safe_state,
)

OK = "OK"  # a setter's reply line: its text is not documented, the driver reads and discards it


def test_constructor_sends_nothing() -> None:
    with expected_protocol(OxxiusLaserBoxx, []):
        pass


def test_identity_serial_and_version() -> None:
    traffic = [("INF?", "LBX-520-100-CSB"), ("?HID", "LAS-00520,520"), ("?SV", "1.6.0")]
    with expected_protocol(OxxiusLaserBoxx, traffic) as laser:
        assert laser.id == "LBX-520-100-CSB"
        assert laser.serial_number == "LAS-00520,520"
        assert laser.software_version == "1.6.0"
    spec = OxxiusLaserBoxx.IDENTITY
    assert spec.query == "INF?" and spec.matches("LBX-520-100-CSB") and not spec.matches("THORLABS SC10")


@pytest.mark.parametrize(("on", "sent"), [(True, "L 1"), (False, "L 0")])
def test_set_emission_reads_the_reply_line(on: bool, sent: str) -> None:
    with expected_protocol(OxxiusLaserBoxx, [(sent, OK)]) as laser:
        laser.set_emission(on)


@pytest.mark.parametrize(("reply", "state"), [("0", False), ("1", True)])
def test_emission_reads_back(reply: str, state: bool) -> None:
    with expected_protocol(OxxiusLaserBoxx, [("?L", reply)]) as laser:
        assert laser.emission is state


def test_power_setpoint_is_sent_in_mW() -> None:
    traffic = [("P 12.500", OK), ("?SP", "12.50"), ("?P", "12.48"), ("?MAXLP", "100.0")]
    with expected_protocol(OxxiusLaserBoxx, traffic) as laser:
        laser.set_power_W(0.0125)
        assert laser.power_setpoint_W == pytest.approx(0.0125)
        assert laser.power_W == pytest.approx(0.01248)
        assert laser.max_power_W == pytest.approx(0.1)


@pytest.mark.parametrize("bad", [-1e-3, float("nan")])
def test_a_negative_power_is_refused_before_any_io(bad: float) -> None:
    with expected_protocol(OxxiusLaserBoxx, []) as laser, pytest.raises(ValueError, match="must be >= 0"):
        laser.set_power_W(bad)


def test_current_commands() -> None:
    traffic = [("CM 40.0", OK), ("?SC", "40.0"), ("?C", "60.0"), ("?MAXLC", "150.0")]
    with expected_protocol(OxxiusLaserBoxx, traffic) as laser:
        laser.set_current_percent(40)
        assert laser.current_setpoint_percent == 40.0
        assert laser.current_mA == 60.0
        assert laser.max_current_mA == 150.0
    with expected_protocol(OxxiusLaserBoxx, []) as laser, pytest.raises(ValueError, match="0..100"):
        laser.set_current_percent(101)


def test_control_mode_commands() -> None:
    traffic = [("APC 1", OK), ("ACC 1", OK), ("?APC", "1"), ("?ACC", "0")]
    with expected_protocol(OxxiusLaserBoxx, traffic) as laser:
        laser.set_constant_power(True)
        laser.set_constant_power(False)
        assert laser.constant_power is True
        assert laser.constant_current is False


@pytest.mark.parametrize(
    ("setter", "getter", "keyword"),
    [("set_analog_modulation", "analog_modulation", "AM"), ("set_digital_modulation", "digital_modulation", "TTL"),
     ("set_cdrh", "cdrh", "CDRH")],
)
def test_flag_commands(setter: str, getter: str, keyword: str) -> None:
    traffic = [(f"{keyword} 1", OK), (f"{keyword} 0", OK), (f"?{keyword}", "1"), (f"?{keyword}", "0")]
    with expected_protocol(OxxiusLaserBoxx, traffic) as laser:
        getattr(laser, setter)(True)
        getattr(laser, setter)(False)
        assert getattr(laser, getter) is True
        assert getattr(laser, getter) is False


def test_temperature_regulation_and_reset() -> None:
    with expected_protocol(OxxiusLaserBoxx, [("T 1", OK), ("T 0", OK), ("RST", OK)]) as laser:
        laser.set_temperature_regulation(True)
        laser.set_temperature_regulation(False)
        laser.reset()


def test_status_queries() -> None:
    traffic = [("?STA", "3"), ("?F", "0"), ("?INT", "1"), ("?KEY", "0"), ("?BT", "25.3"), ("?HH", "1234.5")]
    with expected_protocol(OxxiusLaserBoxx, traffic) as laser:
        assert laser.status == 3
        assert laser.fault == 0
        assert laser.interlock_closed is True
        assert laser.key_on is False
        assert laser.base_temperature_C == 25.3
        assert laser.hours == 1234.5


@pytest.mark.parametrize(("query", "reply"), [("?L", "2"), ("?L", "ON"), ("?STA", "3.5"), ("?P", "")])
def test_an_unreadable_reply_raises(query: str, reply: str) -> None:
    attribute = {"?L": "emission", "?STA": "status", "?P": "power_W"}[query]
    with expected_protocol(OxxiusLaserBoxx, [(query, reply)]) as laser:
        with pytest.raises(LaserBoxxError, match=re.escape(query)):
            getattr(laser, attribute)


def test_check_errors_reports_the_fault_code() -> None:
    with expected_protocol(OxxiusLaserBoxx, [("?F", "0"), ("?F", "4"), ("?F", "9")]) as laser:
        assert laser.check_errors() == []
        assert laser.check_errors() == [(4, "fault: diode temperature")]
        assert laser.check_errors() == [(9, "fault: unknown fault code")]


def test_a_refused_command_leaves_the_link_in_step() -> None:
    # whatever the laser answers a command, that line is read by write(), not by the next query
    with expected_protocol(OxxiusLaserBoxx, [("NOSUCH 1", "ERROR"), ("?F", "0")]) as laser:
        laser.write("NOSUCH 1")
        assert laser.check_errors() == []


@pytest.mark.parametrize("method", ["emission_off", "safe_state", "shutdown"])
def test_off_paths(method: str) -> None:
    with expected_protocol(OxxiusLaserBoxx, [("L 0", OK)]) as laser:
        getattr(laser, method)()


def test_registration_safe_state_turns_emission_off_and_reads_it_back() -> None:
    assert OXXIUS_LASERBOXX_REGISTRATION.safe_state is laserboxx_safe_state
    with expected_protocol(OxxiusLaserBoxx, [("L 0", OK), ("?L", "0")]) as laser:
        assert laserboxx_safe_state(laser) == "emission off (emission reads off)"
    with expected_protocol(OxxiusLaserBoxx, [("L 0", OK), ("?L", "1")]) as laser:
        with pytest.raises(RuntimeError, match="still reads on after 'L 0'"):
            laserboxx_safe_state(laser)


def test_configure_sets_constant_power_and_cdrh_only_when_given() -> None:
    with expected_protocol(OxxiusLaserBoxx, [("APC 1", OK)]) as laser:
        configure_laserboxx(laser, LaserBoxxSettings())
    with expected_protocol(OxxiusLaserBoxx, [("APC 1", OK), ("CDRH 0", OK)]) as laser:
        configure_laserboxx(laser, LaserBoxxSettings(cdrh=False))


def test_registration() -> None:
    reg = OXXIUS_LASERBOXX_REGISTRATION
    assert (reg.name, reg.model, reg.capabilities) == ("oxxius_laserboxx", "Oxxius LaserBoxx LBX", ("laser",))
    conn = reg.connection
    # commands end CR, replies CR LF (instruments ref. §8.1); served as a serial port
    assert (conn.write_termination, conn.read_termination, conn.baud_rate, conn.serial) == ("\r", "\r\n", 9600, True)
    assert reg.emulator == "sim_instruments.laserboxx:LaserBoxxEmulator"
