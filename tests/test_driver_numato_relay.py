"""NumatoRelay8 driver: exact traffic (echo, reply, prompt) of every command and of the switch methods built on
them; end to end against the emulator in-process and over loopback TCP."""

from __future__ import annotations

import pytest
from pymeasure.test import expected_protocol

from drivers.identity import verify_identity
from drivers.io_helpers import DeadlineVISAAdapter
from drivers.numato_relay import NUMATO_RELAY8_REGISTRATION, NumatoRelay8, NumatoRelayError
from drivers.switch import SwitchReadbackError
from labctl.capabilities import SwitchMatrix
from sim_instruments import emulator_factory
from sim_instruments.adapter import EmulatorAdapter
from sim_instruments.numato_relay import FRAMING, NumatoRelayEmulator
from sim_instruments.server import serve

PROMPT = (None, ">")


def command(cmd: str) -> list[tuple[str | None, str]]:
    """A command without a reply: the echo, then the prompt (terminations excluded, as in expected_protocol)."""
    return [(cmd, cmd), PROMPT]


def query(cmd: str, reply: str) -> list[tuple[str | None, str]]:
    """A query: the echo, the reply line, the prompt."""
    return [(cmd, cmd), (None, reply), PROMPT]


def test_constructor_sends_nothing() -> None:
    with expected_protocol(NumatoRelay8, []):
        pass


def test_version_and_id_are_ver() -> None:
    with expected_protocol(NumatoRelay8, query("ver", "00000008") * 2) as board:
        assert board.version == "00000008"
        assert board.id == "00000008"


def test_board_id_get_and_set() -> None:
    with expected_protocol(NumatoRelay8, query("id get", "00000000") + command("id set PIX8BOX1")) as board:
        assert board.board_id == "00000000"
        board.board_id = "PIX8BOX1"


@pytest.mark.parametrize("bad", ["short", "TOOLONG99", "has blnk", 12345678])
def test_board_id_set_refuses_a_bad_id_before_any_io(bad: object) -> None:
    with expected_protocol(NumatoRelay8, []) as board, pytest.raises(ValueError, match="exactly 8"):
        board.board_id = bad


@pytest.mark.parametrize(("channel", "relay"), [(1, 0), (4, 3), (8, 7)])
def test_relay_on_off_read_number_the_relays_from_zero(channel: int, relay: int) -> None:
    traffic = command(f"relay on {relay}") + command(f"relay off {relay}")
    traffic += query(f"relay read {relay}", "on") + query(f"relay read {relay}", "off")
    with expected_protocol(NumatoRelay8, traffic) as board:
        board.relay_on(channel)
        board.relay_off(channel)
        assert board.relay_is_on(channel) is True
        assert board.relay_is_on(channel) is False


@pytest.mark.parametrize("bad", [0, 9, -1, True, "3", 2.0])
def test_a_channel_not_on_the_board_is_refused_before_any_io(bad: object) -> None:
    with expected_protocol(NumatoRelay8, []) as board:
        for method in (board.relay_on, board.relay_off, board.relay_is_on):
            with pytest.raises(ValueError, match=r"channel|int"):
                method(bad)
        with pytest.raises(ValueError):
            board.close_channels([bad])
        with pytest.raises(ValueError):
            board.select(bad)


def test_relay_read_unexpected_reply_raises() -> None:
    with expected_protocol(NumatoRelay8, query("relay read 0", "high")) as board:
        with pytest.raises(NumatoRelayError, match="on/off"):
            board.relay_is_on(1)


@pytest.mark.parametrize(("reply", "mask", "closed"), [
    ("00", 0x00, set()), ("FF", 0xFF, {1, 2, 3, 4, 5, 6, 7, 8}),
    # 0xA5 = 1010 0101: bits 0, 2, 5, 7 = relays 0, 2, 5, 7 = channels 1, 3, 6, 8
    ("A5", 0xA5, {1, 3, 6, 8}), ("a5", 0xA5, {1, 3, 6, 8}),
    ("10", 0x10, {5}),
])
def test_readall_and_closed_channels(reply: str, mask: int, closed: set[int]) -> None:
    with expected_protocol(NumatoRelay8, query("relay readall", reply) * 2) as board:
        assert board.read_all() == mask
        assert board.closed_channels() == frozenset(closed)


@pytest.mark.parametrize("reply", ["FFF", "100", "0x", "on", "GG"])
def test_readall_unexpected_reply_raises(reply: str) -> None:
    with expected_protocol(NumatoRelay8, query("relay readall", reply)) as board:
        with pytest.raises(NumatoRelayError, match="2 hexadecimal"):
            board.read_all()


@pytest.mark.parametrize(("mask", "sent"), [(0, "00"), (0xA5, "a5"), (0xFF, "ff"), (0x08, "08")])
def test_writeall_sends_two_hex_digits(mask: int, sent: str) -> None:
    with expected_protocol(NumatoRelay8, command(f"relay writeall {sent}")) as board:
        board.write_all(mask)


@pytest.mark.parametrize("bad", [-1, 256, True, 1.0, "ff"])
def test_writeall_refuses_a_bad_mask_before_any_io(bad: object) -> None:
    with expected_protocol(NumatoRelay8, []) as board, pytest.raises(ValueError, match="0..255"):
        board.write_all(bad)


def test_reset() -> None:
    with expected_protocol(NumatoRelay8, command("reset")) as board:
        board.reset()


# -- the switch methods (drivers.switch) on the board's commands --------------------------------------------

def test_close_channels_one_command_per_channel_then_read_back() -> None:
    # relays 0 and 2 on: readall 0000 0101 = 05
    traffic = command("relay on 0") + command("relay on 2") + query("relay readall", "05")
    with expected_protocol(NumatoRelay8, traffic) as board:
        board.close_channels([3, 1])


def test_close_channels_read_back_failure_raises() -> None:
    traffic = command("relay on 2") + query("relay readall", "00")
    with expected_protocol(NumatoRelay8, traffic) as board:
        with pytest.raises(SwitchReadbackError, match=r"closed 3, but reads back closed: none"):
            board.close_channels([3])


def test_open_channels_then_read_back() -> None:
    traffic = command("relay off 1") + query("relay readall", "01")
    with expected_protocol(NumatoRelay8, traffic) as board:
        board.open_channels([2])
    traffic = command("relay off 1") + query("relay readall", "02")
    with expected_protocol(NumatoRelay8, traffic) as board, pytest.raises(SwitchReadbackError, match="opened 2"):
        board.open_channels([2])


@pytest.mark.parametrize("method", ["open_all", "disconnect_all", "safe_state"])
def test_open_all_paths_write_zero_then_read_back(method: str) -> None:
    with expected_protocol(NumatoRelay8, command("relay writeall 00") + query("relay readall", "00")) as board:
        getattr(board, method)()
    traffic = command("relay writeall 00") + query("relay readall", "04")
    with expected_protocol(NumatoRelay8, traffic) as board:
        with pytest.raises(SwitchReadbackError, match="reads back closed: 3"):
            getattr(board, method)()


def test_registration_safe_state_reports_the_read_back() -> None:
    with expected_protocol(NumatoRelay8, command("relay writeall 00") + query("relay readall", "00")) as board:
        assert NUMATO_RELAY8_REGISTRATION.safe_state(board, None) == "all relays open (read back)"


def test_select_is_break_before_make_within_the_group() -> None:
    # channel 1 (relay 0) closed, channel 5 (relay 4, outside the group) closed: readall 0001 0001 = 11
    traffic = query("relay readall", "11")
    traffic += command("relay off 0") + query("relay readall", "10")  # break: the group reads open
    traffic += command("relay on 1") + query("relay readall", "12")  # make: channel 2 alone in the group
    with expected_protocol(NumatoRelay8, traffic) as board:
        board.select(2, group=[1, 2, 3])


def test_select_already_selected_switches_nothing() -> None:
    with expected_protocol(NumatoRelay8, query("relay readall", "02")) as board:
        board.select(2, group=[1, 2])


def test_select_stops_when_the_break_does_not_read_back() -> None:
    traffic = query("relay readall", "01") + command("relay off 0") + query("relay readall", "01")
    with expected_protocol(NumatoRelay8, traffic) as board:
        with pytest.raises(SwitchReadbackError, match="before closing 2"):
            board.select(2, group=[1, 2])


def test_select_stops_when_the_make_does_not_read_back() -> None:
    traffic = query("relay readall", "00") + command("relay on 1") + query("relay readall", "00")
    with expected_protocol(NumatoRelay8, traffic) as board:
        with pytest.raises(SwitchReadbackError, match="selected 2"):
            board.select(2, group=[1, 2])


# -- framing errors -----------------------------------------------------------------------------------------

def test_a_query_answered_by_the_prompt_alone_raises() -> None:
    with expected_protocol(NumatoRelay8, [("relay readall", "relay readall"), PROMPT]) as board:
        with pytest.raises(NumatoRelayError, match="no reply to 'relay readall'"):
            board.read_all()


def test_wrong_echo_raises() -> None:
    with expected_protocol(NumatoRelay8, [("relay on 0", "relay on 1")]) as board:
        with pytest.raises(NumatoRelayError, match="echo"):
            board.relay_on(1)


def test_missing_prompt_raises() -> None:
    with expected_protocol(NumatoRelay8, [("relay on 0", "relay on 0"), (None, "x")]) as board:
        with pytest.raises(NumatoRelayError, match="prompt"):
            board.relay_on(1)


def test_check_errors_sends_nothing() -> None:
    with expected_protocol(NumatoRelay8, []) as board:
        assert board.check_errors() == []
        assert board.check_set_errors("x") == []


def test_shutdown_opens_every_relay() -> None:
    with expected_protocol(NumatoRelay8, command("relay writeall 00") + query("relay readall", "00")) as board:
        board.shutdown()


def test_registration() -> None:
    reg = NUMATO_RELAY8_REGISTRATION
    assert reg.name == "numato_relay8" and reg.driver is NumatoRelay8
    assert reg.capabilities == ("switch_matrix",)
    assert reg.connection.read_termination == "\n\r" and reg.connection.write_termination == "\r"
    assert reg.connection.serial is True
    assert emulator_factory(reg) is NumatoRelayEmulator
    assert list(NumatoRelay8.CHANNELS) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert list(NumatoRelay8.channels_for_settings(None)) == [1, 2, 3, 4, 5, 6, 7, 8]
    with expected_protocol(NumatoRelay8, []) as board:
        assert isinstance(board, SwitchMatrix)


# -- end to end against the emulator -----------------------------------------------------------------------

class RecordingBench:
    """A bench that records every relay state the board reports (``relays_changed``)."""

    def __init__(self) -> None:
        self.reports: list[tuple[str, frozenset[int]]] = []
        self.stuck_relays: dict[str, set[int]] = {}

    def relays_changed(self, switch: str, closed: frozenset[int]) -> None:
        self.reports.append((switch, closed))


def _exercise(board: NumatoRelay8, bench: RecordingBench) -> None:
    assert verify_identity(board) == "00000008"
    assert board.closed_channels() == frozenset()
    board.close_channels([1, 5])
    assert board.relay_is_on(1) and board.relay_is_on(5) and not board.relay_is_on(2)
    bench.reports.clear()
    board.select(2, group=[1, 2, 3, 4])
    assert board.closed_channels() == {2, 5}
    # break-before-make as the bench saw it: channels 1 and 2 never closed together
    assert [closed for _, closed in bench.reports] == [frozenset({5}), frozenset({2, 5})]
    with pytest.raises(NumatoRelayError, match="no reply"):
        board.ask("relay read 8")  # not a relay of this board: echo and prompt only
    board.write_all(0xA5)
    assert board.closed_channels() == {1, 3, 6, 8}
    board.safe_state()
    assert board.closed_channels() == frozenset() and bench.reports[-1] == ("relay_board", frozenset())
    bench.stuck_relays["relay_board"] = {7}
    with pytest.raises(SwitchReadbackError, match="selected 7, but reads back closed: none"):
        board.select(7)
    assert board.board_id == "00000000"  # the link is still in step after the errors


def test_end_to_end_in_process() -> None:
    bench = RecordingBench()
    _exercise(NumatoRelay8(EmulatorAdapter(NumatoRelayEmulator(bench), **FRAMING)), bench)


def test_end_to_end_in_process_with_the_stations_terminations() -> None:
    """The registration's terminations and the emulator's own echo/prompt flags (how labctl.station opens it)."""
    bench = RecordingBench()
    conn = NUMATO_RELAY8_REGISTRATION.connection
    adapter = EmulatorAdapter(NumatoRelayEmulator(bench), read_termination=conn.read_termination,
                              write_termination=conn.write_termination)
    _exercise(NumatoRelay8(adapter), bench)


@pytest.mark.tcp
def test_end_to_end_over_asrlsocket_as_labctl_opens_it() -> None:
    """Over loopback TCP through DeadlineVISAAdapter (what labctl.station opens a serial resource with)."""
    bench = RecordingBench()
    conn = NUMATO_RELAY8_REGISTRATION.connection
    with serve({"relay_board": (NumatoRelayEmulator(bench), conn.read_termination, conn.write_termination)},
               serial=["relay_board"]) as srv:
        adapter = DeadlineVISAAdapter(srv.resource_strings()["relay_board"], visa_library="@py", timeout=2000,
                                      read_termination=conn.read_termination,
                                      write_termination=conn.write_termination, asrl={"baud_rate": conn.baud_rate})
        try:
            _exercise(NumatoRelay8(adapter), bench)
        finally:
            adapter.close()


@pytest.mark.tcp
def test_end_to_end_over_asrlsocket_with_plain_pyvisa() -> None:
    """Plain pyvisa-py stops a read at the first CR (the echoed one, before LF CR): the driver copes."""
    bench = RecordingBench()
    with serve({"relay_board": (NumatoRelayEmulator(bench), "\n\r", "\r")}, serial=["relay_board"]) as srv:
        board = NumatoRelay8(srv.resource_strings()["relay_board"], visa_library="@py", timeout=2000)
        try:
            assert board.adapter.connection.read_termination == "\n\r"
            with pytest.warns(UserWarning, match="termination"):  # pyvisa's note on the echo line
                _exercise(board, bench)
        finally:
            board.adapter.close()
