"""Keithley7001 driver: the exact traffic of every call (expected_protocol), the read-back after every change,
break-before-make in select(), the channel numbering (n <-> 1!n, 40 + m <-> 2!m), and the registration."""

from __future__ import annotations

import warnings

import pytest
from pymeasure.test import expected_protocol

from drivers.keithley2400 import ReplyError
from drivers.keithley7001 import (
    KEITHLEY7001_REGISTRATION,
    Keithley7001,
    Keithley7001Error,
    Keithley7001Settings,
    bank_channels,
    channel_list,
    channel_to_text,
    configure_keithley7001,
    keithley7001_safe_state,
    parse_channel_list,
)
from drivers.switch import SwitchReadbackError
from labctl.capabilities import CAPABILITIES, SwitchMatrix, missing_methods

OPC = (b"*OPC?", b"1")
NO_ERROR = (b":SYST:ERR?", b'0,"No error"')


def _stat(reply: bytes) -> tuple[bytes, bytes]:
    return (b":CLOS:STAT?", reply)


def test_constructor_sends_nothing_and_does_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with expected_protocol(Keithley7001, []):
            pass


def test_identity() -> None:
    idn = b"KEITHLEY INSTRUMENTS INC.,MODEL 7001,0,A06  /A02"
    with expected_protocol(Keithley7001, [(b"*IDN?", idn)]) as sw:
        assert sw.id == idn.decode()
    assert Keithley7001.IDENTITY.matches(idn.decode())
    assert not Keithley7001.IDENTITY.matches("KEITHLEY INSTRUMENTS INC.,MODEL 2400,1234,C30")
    assert not Keithley7001.IDENTITY.matches("KEITHLEY INSTRUMENTS INC.,MODEL 7002,0,A01")


@pytest.mark.parametrize("channel, text", [(1, "1!1"), (10, "1!10"), (11, "1!11"), (40, "1!40"), (41, "2!1"),
                                           (80, "2!40")])
def test_channel_numbering(channel: int, text: str) -> None:
    assert channel_to_text(channel) == text
    assert parse_channel_list(f"(@{text})") == {channel}


def test_banks_are_ten_channels_on_one_common() -> None:
    assert list(bank_channels(1)) == list(range(1, 11))
    assert list(bank_channels(4)) == list(range(31, 41))
    assert list(bank_channels(1, slot=2)) == list(range(41, 51))
    with pytest.raises(ValueError, match="banks 1..4"):
        bank_channels(5)


@pytest.mark.parametrize("reply, channels", [
    ("(@)", set()), ("(@ )", set()), ("(@1!1,1!12)", {1, 12}), ("(@ 1!2, 1!4)", {2, 4}),
    ("(@1!1:1!3,2!40)", {1, 2, 3, 80}), ("(@1!39:2!2)", {39, 40, 41, 42}), ("(@1!5)\n", {5}),
])
def test_closed_channel_lists_are_parsed(reply: str, channels: set[int]) -> None:
    assert parse_channel_list(reply) == channels


@pytest.mark.parametrize("reply", ["", "1,0", "(1!1)", "(@1!2!3)", "(@3!1)", "(@1!41)", "(@1!0)", "(@1!4:1!2)",
                                   "(@1!a)"])
def test_an_unreadable_closed_list_is_a_reply_error(reply: str) -> None:
    with pytest.raises(ReplyError, match="Keithley 7001"):
        parse_channel_list(reply)


def test_channel_lists_are_written_in_ascending_order() -> None:
    assert channel_list([41, 3, 12]) == "(@1!3,1!12,2!1)"


def test_close_channels_then_read_back() -> None:
    with expected_protocol(Keithley7001, [(b":CLOS (@1!3,1!12)", None), OPC, _stat(b"(@1!3,1!12)")]) as sw:
        sw.close_channels([12, 3])


def test_close_channels_keeps_the_others_closed() -> None:
    with expected_protocol(Keithley7001, [(b":CLOS (@1!3)", None), OPC, _stat(b"(@1!3,1!20)")]) as sw:
        sw.close_channels([3])


def test_a_second_card_is_slot_2() -> None:
    with expected_protocol(Keithley7001, [(b":CLOS (@1!3,2!1)", None), OPC, _stat(b"(@1!3,2!1)")],
                           slots=2) as sw:
        sw.close_channels([3, 41])


def test_open_channels_then_read_back() -> None:
    with expected_protocol(Keithley7001, [(b":OPEN (@1!3)", None), OPC, _stat(b"(@1!20)")]) as sw:
        sw.open_channels([3])


def test_open_all_then_read_back_empty() -> None:
    with expected_protocol(Keithley7001, [(b":OPEN ALL", None), OPC, _stat(b"(@)")]) as sw:
        sw.open_all()


def test_disconnect_all_and_the_registrations_safe_state() -> None:
    with expected_protocol(Keithley7001, [(b":OPEN ALL", None), OPC, _stat(b"(@)")] * 2) as sw:
        sw.disconnect_all()
        assert keithley7001_safe_state(sw, Keithley7001Settings()) == "all relays open (read back)"


def test_a_relay_that_stays_closed_after_open_all_stops_the_safe_state() -> None:
    with expected_protocol(Keithley7001, [(b":OPEN ALL", None), OPC, _stat(b"(@1!7)"), NO_ERROR]) as sw, \
            pytest.raises(SwitchReadbackError, match=r"opened all, but reads back closed: 7 \(1!7\)"):
        keithley7001_safe_state(sw)


def test_a_relay_that_does_not_close_is_a_readback_error_naming_both() -> None:
    with expected_protocol(Keithley7001, [(b":CLOS (@1!3)", None), OPC, _stat(b"(@)"), NO_ERROR]) as sw, \
            pytest.raises(SwitchReadbackError) as info:
        sw.close_channels([3])
    assert str(info.value) == "Keithley 7001 switch system: closed 3 (1!3), but reads back closed: none"


def test_the_readback_error_quotes_the_error_queue() -> None:
    with expected_protocol(Keithley7001, [(b":CLOS (@2!1)", None), OPC, _stat(b"(@)"),
                                          (b":SYST:ERR?", b'-222,"Parameter data out of range"'), NO_ERROR],
                           slots=2) as sw, \
            pytest.raises(SwitchReadbackError, match=r'error queue: -222,"Parameter data out of range"'):
        sw.close_channels([41])


def test_select_is_break_before_make_within_its_group() -> None:
    """Channel 3 (bank 1) and 12 (bank 2) closed; select 5 in bank 1: open 3, read back none of bank 1 closed,
    then close 5 and read back that 5 is bank 1's only one; 12 (another SMU's bank) is left alone."""
    with expected_protocol(Keithley7001, [
        _stat(b"(@1!3,1!12)"),
        (b":OPEN (@1!3)", None), OPC, _stat(b"(@1!12)"),
        (b":CLOS (@1!5)", None), OPC, _stat(b"(@1!5,1!12)"),
    ]) as sw:
        sw.select(5, group=range(1, 11))


def test_select_never_closes_while_the_group_still_reads_closed() -> None:
    """The open does not take (3 still reads closed): SwitchReadbackError, and no :CLOS is sent."""
    with expected_protocol(Keithley7001, [
        _stat(b"(@1!3)"), (b":OPEN (@1!3)", None), OPC, _stat(b"(@1!3)"), NO_ERROR,
    ]) as sw, pytest.raises(SwitchReadbackError, match=r"opened 3 \(1!3\) before closing 5 \(1!5\)"):
        sw.select(5, group=range(1, 11))


def test_select_without_a_group_opens_every_relay_first() -> None:
    with expected_protocol(Keithley7001, [
        _stat(b"(@1!3,1!12)"), (b":OPEN ALL", None), OPC, _stat(b"(@)"),
        (b":CLOS (@1!5)", None), OPC, _stat(b"(@1!5)"),
    ]) as sw:
        sw.select(5)


def test_select_from_nothing_closed_only_closes() -> None:
    with expected_protocol(Keithley7001, [_stat(b"(@)"), (b":CLOS (@1!5)", None), OPC, _stat(b"(@1!5)")]) as sw:
        sw.select(5, group=[5, 6])


def test_select_of_the_channel_already_selected_switches_nothing() -> None:
    with expected_protocol(Keithley7001, [_stat(b"(@1!5,1!12)")]) as sw:
        sw.select(5, group=range(1, 11))


def test_select_that_reads_back_a_second_channel_of_the_group_is_an_error() -> None:
    """The card closed 5, but 6 reads closed too (e.g. a welded driver): two pixels on one SMU — refused."""
    with expected_protocol(Keithley7001, [
        _stat(b"(@)"), (b":CLOS (@1!5)", None), OPC, _stat(b"(@1!5:1!6)"), NO_ERROR,
    ]) as sw, pytest.raises(SwitchReadbackError, match=r"selected 5 \(1!5\), but reads back closed: 5 \(1!5\), "
                                                     r"6 \(1!6\)"):
        sw.select(5, group=range(1, 11))


@pytest.mark.parametrize("call, match", [
    (lambda sw: sw.close_channels([41]), r"channel 41 not on this switch \(allowed: 1..40\)"),
    (lambda sw: sw.close_channels([0]), r"channel 0 not on this switch"),
    (lambda sw: sw.open_channels(["3"]), r"channel '3' is not an int"),
    (lambda sw: sw.close_channels(3), r"channels must be an iterable of ints, got 3"),
    (lambda sw: sw.select(True), r"channel True is not an int"),
    (lambda sw: sw.select(5, group=[5, 81]), r"group channel 81 not on this switch"),
])
def test_a_channel_the_switch_lacks_is_refused_before_any_io(call, match) -> None:
    with expected_protocol(Keithley7001, []) as sw, pytest.raises(ValueError, match=match):
        call(sw)


def test_the_channels_a_layout_may_use_follow_the_settings_before_any_io() -> None:
    assert Keithley7001.channels_for_settings(None) == range(1, 41)
    assert Keithley7001.channels_for_settings(Keithley7001Settings()) == range(1, 41)
    assert Keithley7001.channels_for_settings(Keithley7001Settings(slots=2)) == range(1, 81)


def test_slots_beyond_two_are_refused() -> None:
    with pytest.raises(ValueError, match=r"slots 3 not allowed \(allowed: 1 or 2"):
        with expected_protocol(Keithley7001, [], slots=3):
            pass


def test_closed_channels_is_the_stat_query() -> None:
    with expected_protocol(Keithley7001, [_stat(b"(@1!1:1!3,1!12)")]) as sw:
        assert sw.closed_channels() == {1, 2, 3, 12}


def test_opc_that_does_not_answer_1_is_a_reply_error() -> None:
    with expected_protocol(Keithley7001, [(b":OPEN ALL", None), (b"*OPC?", b"0")]) as sw, \
            pytest.raises(ReplyError, match=r"'\*OPC\?'"):
        sw.open_all()


def test_check_errors_reads_the_queue_until_no_error() -> None:
    with expected_protocol(Keithley7001, [(b":SYST:ERR?", b'-113,"Undefined header"'), NO_ERROR]) as sw:
        assert sw.check_errors() == [(-113, "Undefined header")]


def test_reset_clear_and_card_type() -> None:
    with expected_protocol(Keithley7001, [(b"*RST", None), (b"*CLS", None),
                                          (b":CONF:SLOT2:CTYP?", b"NONE")]) as sw:
        sw.reset()
        sw.clear()
        assert sw.card_type(2) == "NONE"


def test_configure_checks_the_card_in_each_slot_and_the_queue() -> None:
    with expected_protocol(Keithley7001, [(b":CONF:SLOT1:CTYP?", b"C7011"), (b":CONF:SLOT2:CTYP?", b"C7011"),
                                          NO_ERROR]) as sw:
        configure_keithley7001(sw, Keithley7001Settings(slots=2))
        assert list(sw.CHANNELS) == list(range(1, 81))


def test_configure_refuses_a_slot_without_a_7011() -> None:
    with expected_protocol(Keithley7001, [(b":CONF:SLOT1:CTYP?", b"C7011"), (b":CONF:SLOT2:CTYP?", b"NONE")]) as sw, \
            pytest.raises(Keithley7001Error, match=r"slot 2 holds 'NONE', not a 7011"):
        configure_keithley7001(sw, Keithley7001Settings(slots=2))


def test_settings_are_strict() -> None:
    with pytest.raises(ValueError):
        Keithley7001Settings(slots=3)
    with pytest.raises(ValueError):
        Keithley7001Settings(cards=2)


def test_registration_and_capability() -> None:
    reg = KEITHLEY7001_REGISTRATION
    assert (reg.name, reg.model, reg.capabilities) == ("keithley7001", "Keithley 7001", ("switch_matrix",))
    conn = reg.connection
    assert (conn.read_termination, conn.write_termination, conn.serial) == ("\n", "\n", False)
    assert reg.settings is Keithley7001Settings and reg.configure is configure_keithley7001
    assert reg.emulator == "sim_instruments.keithley7001:Keithley7001Emulator"
    assert CAPABILITIES["switch_matrix"] is SwitchMatrix
    with expected_protocol(Keithley7001, []) as sw:
        assert missing_methods(sw, "switch_matrix") == []
        assert isinstance(sw, SwitchMatrix)
