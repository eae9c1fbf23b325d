"""Numato 8-channel relay module emulator: command set, the bytes on the wire (echo, LF CR, prompt), no data for
an unknown command, the bench contract (relays_changed after every change, stuck relays), relay timing, faults."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pyvisa.errors import VisaIOError

from drivers.numato_relay import NUMATO_RELAY8_REGISTRATION, NumatoRelay8, NumatoRelayError
from drivers.switch import SwitchReadbackError
from sim_instruments import make_emulator
from sim_instruments.adapter import EmulatorAdapter
from sim_instruments.faults import FaultSchedule, FaultSpec
from sim_instruments.numato_relay import FRAMING, NumatoRelayEmulator
from tests.fakes import FakeClock


class RelayBench:
    """What the relay board needs of a bench: a clock, ``relays_changed`` (recorded), ``stuck_relays``."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.reports: list[tuple[str, frozenset[int]]] = []
        self.stuck_relays: dict[str, set[int]] = {}

    def relays_changed(self, switch: str, closed: frozenset[int]) -> None:
        self.reports.append((switch, closed))


@pytest.fixture
def bench() -> RelayBench:
    return RelayBench()


@pytest.fixture
def board(bench: RelayBench) -> NumatoRelayEmulator:
    return NumatoRelayEmulator(bench)


def wire(emulator: NumatoRelayEmulator, command: str) -> bytes:
    """The bytes the module sends back for ``command`` + CR (everything, through the in-process transport)."""
    adapter = EmulatorAdapter(emulator, **FRAMING)
    adapter.write(command)
    return adapter.read_bytes(-1)


def test_power_on_every_relay_off_and_reported(bench: RelayBench, board: NumatoRelayEmulator) -> None:
    assert bench.reports == [("relay_board", frozenset())]
    assert board.reply("relay readall") == "00"
    assert all(board.reply(f"relay read {k}") == "off" for k in range(8))


def test_bytes_on_the_wire(board: NumatoRelayEmulator) -> None:
    assert wire(board, "relay on 3") == b"relay on 3\r\n\r>"
    assert wire(board, "relay read 3") == b"relay read 3\r\n\ron\n\r>"
    assert wire(board, "relay readall") == b"relay readall\r\n\r08\n\r>"  # relay 3 = bit 3 = 0x08
    assert wire(board, "ver") == b"ver\r\n\r00000008\n\r>"
    assert wire(board, "id get") == b"id get\r\n\r00000000\n\r>"


@pytest.mark.parametrize("unknown", [
    "relay on 8", "relay off 9", "relay read 8", "relay on 10", "relay on -1", "relay on", "relay on x",
    "RELAY ON 0", "Relay readall", "relay writeall", "relay writeall 1ff", "relay writeall g0", "relay writeall f",
    "relay toggle 0", "id set 1234567", "id set 123456789", "id set 1234 678", "id", "ver 2", "gpio set 0",
    "adc read 0", "foo", "", "*IDN?",
])
def test_unknown_command_or_bad_argument_gives_the_prompt_only_and_changes_nothing(
        bench: RelayBench, board: NumatoRelayEmulator, unknown: str) -> None:
    board.reply("relay writeall 5a")
    board.reply("id set ABCDEFGH")
    reports = len(bench.reports)
    assert board.reply(unknown) is None
    assert wire(board, unknown) == unknown.encode() + b"\r\n\r>"  # echo, line end, prompt: never data
    assert board.reply("relay readall") == "5A" and board.reply("id get") == "ABCDEFGH"
    assert len(bench.reports) == reports


@pytest.mark.parametrize("relay", range(8))
def test_relay_on_off_read_each_relay(bench: RelayBench, board: NumatoRelayEmulator, relay: int) -> None:
    assert board.reply(f"relay on {relay}") is None
    assert board.reply(f"relay read {relay}") == "on"
    assert board.reply("relay readall") == f"{1 << relay:02X}"
    assert bench.reports[-1] == ("relay_board", frozenset({relay + 1}))  # channel = relay + 1
    assert board.reply(f"relay off {relay}") is None
    assert board.reply(f"relay read {relay}") == "off"
    assert bench.reports[-1] == ("relay_board", frozenset())


def test_readall_writeall(bench: RelayBench, board: NumatoRelayEmulator) -> None:
    board.reply("relay on 0")
    board.reply("relay on 3")
    assert board.reply("relay readall") == "09"  # 0000 1001
    assert board.reply("relay writeall a5") is None
    assert board.reply("relay readall") == "A5"
    # 0xA5 = 1010 0101: relays 0, 2, 5, 7 = channels 1, 3, 6, 8
    assert bench.reports[-1] == ("relay_board", frozenset({1, 3, 6, 8}))
    assert [board.reply(f"relay read {k}") for k in range(8)] == ["on", "off", "on", "off", "off", "on", "off", "on"]
    assert board.reply("relay writeall FF") is None  # either case
    assert board.reply("relay readall") == "FF"
    assert board.reply("reset") is None
    assert board.reply("relay readall") == "00"
    assert bench.reports[-1] == ("relay_board", frozenset())


def test_id_set_takes_exactly_eight_characters(board: NumatoRelayEmulator) -> None:
    assert board.reply("id set PIX8-#01") is None
    assert board.reply("id get") == "PIX8-#01"


def test_relays_changed_after_every_relay_command(bench: RelayBench, board: NumatoRelayEmulator) -> None:
    bench.reports.clear()
    for command in ("relay on 1", "relay on 1", "relay off 4", "relay writeall 03", "reset", "relay on 7"):
        board.reply(command)
    assert bench.reports == [("relay_board", s) for s in (frozenset({2}), frozenset({2}), frozenset({2}),
                                                           frozenset({1, 2}), frozenset(), frozenset({8}))]
    for query in ("relay readall", "relay read 7", "ver", "id get", "foo"):
        board.reply(query)
    assert len(bench.reports) == 6  # queries change nothing and report nothing


def test_stuck_relay_does_not_close_and_reads_back_open(bench: RelayBench, board: NumatoRelayEmulator) -> None:
    bench.stuck_relays["relay_board"] = {3}
    assert board.reply("relay on 2") is None  # channel 3: its coil is driven, its contact stays open
    assert board.reply("relay read 2") == "off"
    assert board.reply("relay readall") == "00"
    assert bench.reports[-1] == ("relay_board", frozenset())
    board.reply("relay writeall ff")
    assert board.reply("relay readall") == "FB"  # 1111 1011: every relay but relay 2
    assert bench.reports[-1] == ("relay_board", frozenset({1, 2, 4, 5, 6, 7, 8}))
    bench.stuck_relays.clear()  # freed: the next relay command moves it as commanded (its coil is still on)
    board.reply("relay on 0")
    assert board.reply("relay readall") == "FF"


def test_stuck_relays_of_another_board_do_not_matter(bench: RelayBench) -> None:
    bench.stuck_relays["relay_board"] = {1}
    second = NumatoRelayEmulator(bench, sim_name="relay_board2")
    second.reply("relay on 0")
    assert second.reply("relay readall") == "01"
    assert bench.reports[-1] == ("relay_board2", frozenset({1}))


def test_driver_sees_the_stuck_relay_as_a_read_back_error(bench: RelayBench) -> None:
    bench.stuck_relays["relay_board"] = {4}
    driver = NumatoRelay8(EmulatorAdapter(NumatoRelayEmulator(bench), **FRAMING))
    with pytest.raises(SwitchReadbackError, match="closed 4, but reads back closed: none"):
        driver.close_channels([4])
    with pytest.raises(SwitchReadbackError, match="selected 4"):
        driver.select(4, group=[1, 2, 3, 4])
    driver.select(3, group=[1, 2, 3, 4])  # the other relays still work
    assert driver.closed_channels() == {3}


def test_relay_timing_on_the_bench_clock(bench: RelayBench, board: NumatoRelayEmulator) -> None:
    t0 = bench.clock.now()
    board.reply("relay on 0")
    assert bench.clock.now() - t0 == pytest.approx(0.010)  # operate time
    board.reply("relay on 0")  # already on: nothing moves
    board.reply("relay readall")
    board.reply("ver")
    assert bench.clock.now() - t0 == pytest.approx(0.010)
    board.reply("relay off 0")
    assert bench.clock.now() - t0 == pytest.approx(0.015)  # + release time
    board.reply("relay writeall 01")
    board.reply("relay writeall 02")  # one opens, one closes at once: the slower (operate) time
    assert bench.clock.now() - t0 == pytest.approx(0.035)


def test_a_bench_without_the_hooks_works() -> None:
    class BareBench:
        clock = FakeClock()

    board = NumatoRelayEmulator(BareBench())
    board.reply("relay on 5")
    assert board.reply("relay readall") == "20"


def test_sim_names_and_options(bench: RelayBench) -> None:
    assert NumatoRelayEmulator.SIM_NAMES == ("relay_board", "relay_board2")
    with pytest.raises(ValueError, match="allowed: relay_board, relay_board2"):
        NumatoRelayEmulator(bench, sim_name="switch")
    with pytest.raises(ValueError, match="exactly 8"):
        NumatoRelayEmulator(bench, version="1.0")
    board = NumatoRelayEmulator(bench, version="A0M09.01", board_id="BOX00001")
    assert board.reply("ver") == "A0M09.01" and board.reply("id get") == "BOX00001"


def test_made_from_the_registration(bench: RelayBench) -> None:
    board = make_emulator(NUMATO_RELAY8_REGISTRATION, bench, name="relay_board2")
    assert isinstance(board, NumatoRelayEmulator) and board.sim_name == "relay_board2"
    with pytest.raises(ValueError, match="sim://relay_board"):
        make_emulator(NUMATO_RELAY8_REGISTRATION, bench, name="smu")


def test_timeout_fault_echo_then_silence(bench: RelayBench) -> None:
    faults = FaultSchedule(clock=bench.clock)
    faults.add(FaultSpec(instrument="relay_board", kind="timeout", at_message=2))
    driver = NumatoRelay8(EmulatorAdapter(NumatoRelayEmulator(bench), faults=faults, timeout=500, **FRAMING))
    driver.relay_on(1)
    t0 = bench.clock.now()
    with pytest.raises(VisaIOError):
        driver.relay_on(2)  # echoed, then no line end and no prompt: the board hangs
    assert bench.clock.now() - t0 == pytest.approx(0.5 + 0.010)  # the timeout, on the bench clock (+ the relay)
    assert faults.count("timeout") == 1


def test_garbage_fault_is_an_error_never_data(bench: RelayBench) -> None:
    faults = FaultSchedule(clock=bench.clock)
    faults.add(FaultSpec(instrument="relay_board", kind="garbage", at_message=1))
    driver = NumatoRelay8(EmulatorAdapter(NumatoRelayEmulator(bench), faults=faults, **FRAMING))
    with pytest.raises(NumatoRelayError):
        driver.closed_channels()


# -- through labctl's station (sim://relay_board on the simulated bench) -----------------------------------

@pytest.fixture
def registered() -> Iterator[None]:
    """The board's registration known to labctl: its entry point once installed, else registered in-process."""
    from labctl.plugins import instrument_registrations, register_instrument, unregister_instrument

    if "numato_relay8" in instrument_registrations():
        yield
        return
    register_instrument(NUMATO_RELAY8_REGISTRATION)
    try:
        yield
    finally:
        unregister_instrument("numato_relay8")


def test_station_connects_switches_and_makes_safe(registered: None) -> None:
    from labctl.config import parse_station
    from labctl.station import Station
    from tests.helpers import default_station

    data = default_station()
    data["instruments"]["switch"] = {"driver": "numato_relay8", "resource": "sim://relay_board"}
    station = Station(parse_station(data))
    station.connect()
    try:
        switch = station.require("switch", "switch_matrix")
        assert station.idn()["switch"] == "00000008"
        switch.select(3, group=[1, 2, 3, 4])
        switch.close_channels([8])
        assert switch.closed_channels() == {3, 8}
        assert station.safe_state() == []  # the failures: none
        outcome = next(o for o in station.safe_report if o.role == "switch")
        assert outcome.ok and outcome.detail == "all relays open (read back)"
        assert switch.closed_channels() == frozenset()
        stuck = getattr(station.bench, "stuck_relays", None)  # the contract's fault hook (issue 12, Part A/B)
        if stuck is None:
            station.bench.stuck_relays = stuck = {}
        stuck["relay_board"] = {5}
        with pytest.raises(SwitchReadbackError, match="selected 5, but reads back closed: none"):
            switch.select(5, group=[5, 6])
        assert station.safe_state() == []
    finally:
        station.close()


def test_reboot_fault_opens_every_relay_and_reports_it(bench: RelayBench) -> None:
    faults = FaultSchedule(clock=bench.clock)
    emulator = NumatoRelayEmulator(bench)
    driver = NumatoRelay8(EmulatorAdapter(emulator, faults=faults, **FRAMING))
    driver.close_channels([2, 7])
    emulator.reply("id set BOX00002")
    faults.add(FaultSpec(instrument="relay_board", kind="reboot", at_message=1))
    with pytest.raises(VisaIOError):
        driver.relay_on(1)  # lost with the power cycle
    assert faults.injected[-1]["state_reset"] is True
    assert bench.reports[-1] == ("relay_board", frozenset())
    driver = NumatoRelay8(EmulatorAdapter(emulator, faults=faults, **FRAMING))  # reopened
    assert driver.closed_channels() == frozenset() and driver.board_id == "BOX00002"
