"""The Keithley 7001 + 7011-S emulator: the manual's [:ROUTe] commands, errors to the queue (never data), relay
settling on the bench clock, bench.relays_changed after every change, stuck relays; and the driver against it
in-process (EmulatorAdapter, with a link fault) and over loopback TCP."""

from __future__ import annotations

import threading

import pytest
from pyvisa.constants import StatusCode
from pyvisa.errors import VisaIOError

from drivers.keithley7001 import KEITHLEY7001_REGISTRATION, Keithley7001
from drivers.switch import SwitchReadbackError
from sim_instruments import make_emulator, sim_name_problem
from sim_instruments.adapter import EmulatorAdapter
from sim_instruments.clock import VirtualClock
from sim_instruments.faults import FaultSchedule, FaultSpec
from sim_instruments.keithley7001 import Keithley7001Emulator, format_channel_list
from sim_instruments.server import serve


class _Bench:
    """A clock, and a record of what the fixture heard from the switch."""

    def __init__(self, stuck: set[int] | None = None) -> None:
        self.clock = VirtualClock()
        self.changes: list[tuple[str, frozenset[int]]] = []
        self.stuck_relays: dict[str, set[int]] = {"switch": set(stuck or ())}

    def relays_changed(self, switch: str, closed: frozenset[int]) -> None:
        self.changes.append((switch, closed))


def _emulator(**kwargs) -> tuple[Keithley7001Emulator, _Bench]:
    bench = _Bench(kwargs.pop("stuck", None))
    return Keithley7001Emulator(bench, **kwargs), bench


def _errors(sw: Keithley7001Emulator) -> list[int]:
    codes = []
    while True:
        code = int(sw.handle(":SYST:ERR?").split(",")[0])
        if code == 0:
            return codes
        codes.append(code)


def test_identity() -> None:
    sw, _ = _emulator()
    assert sw.handle("*IDN?").startswith("KEITHLEY INSTRUMENTS INC.,MODEL 7001,")


def test_close_open_and_the_closed_list() -> None:
    sw, _ = _emulator()
    assert sw.handle(":CLOS:STAT?") == "(@)"
    assert sw.handle(":CLOS (@1!3)") is None
    assert sw.handle(":CLOS:STAT?") == "(@1!3)"
    assert sw.handle("rout:close (@ 1!12, 1!40)") is None  # long form, lower case, blanks, [:ROUTe]
    assert sw.handle(":ROUTE:CLOSE:STATE?") == "(@1!3,1!12,1!40)"
    assert sw.handle(":OPEN (@1!12)") is None
    assert sw.handle(":CLOS:STAT?") == "(@1!3,1!40)"
    assert sw.handle(":OPEN ALL") is None
    assert sw.handle(":CLOS:STAT?") == "(@)"
    assert _errors(sw) == []


def test_per_channel_state_queries() -> None:
    sw, _ = _emulator()
    sw.handle(":CLOS (@1!2)")
    assert sw.handle(":CLOS? (@1!1:1!3)") == "0,1,0"
    assert sw.handle(":OPEN? (@1!2,1!9)") == "0,1"


def test_ranges_close_and_are_reported_as_ranges() -> None:
    sw, _ = _emulator(cards=("C7011", "C7011"))
    sw.handle(":CLOS (@1!1:1!4, 1!7, 1!9:1!10, 1!39:1!40, 2!1:2!3)")
    assert sw.handle(":CLOS:STAT?") == "(@1!1:1!4,1!7,1!9,1!10,1!39,1!40,2!1:2!3)"


def test_format_channel_list_by_hand() -> None:
    assert format_channel_list([]) == "(@)"
    assert format_channel_list([5, 3, 4, 12, 41]) == "(@1!3:1!5,1!12,2!1)"
    assert format_channel_list([38, 39, 40, 41, 42]) == "(@1!38:1!40,2!1,2!2)"  # a range never spans cards


@pytest.mark.parametrize("message, code", [
    (":CLOS (@1!41)", -222),         # a 7011 has 40 channels
    (":CLOS (@1!0)", -222),
    (":CLOS (@2!1)", -222),          # no card in slot 2
    (":CLOS (@3!1)", -222),          # the 7001 has two slots
    (":CLOS (@1!2!3)", -222),        # a matrix crosspoint on a multiplexer
    (":CLOS (@1!5:1!3)", -222),      # a descending range
    (":CLOS (@1!3,1!41)", -222),     # one bad channel: none of the list closes
    (":CLOS 1!3", -104),             # not a channel list
    (":CLOS (@1-3)", -102),
    (":CLOS (@)", -109),
    (":CLOS", -109),
    (":OPEN", -109),
    (":OPEN SOME", -104),
    (":CLOZ (@1!3)", -113),
    (":ROUT:SWITCH (@1!3)", -113),
    (":CLOS:STAT? (@1!3)", -108),
    (":CONF:SLOT3:CTYP?", -114),
])
def test_an_unknown_command_or_a_bad_channel_goes_to_the_error_queue_and_switches_nothing(message, code) -> None:
    sw, bench = _emulator()
    sw.handle(":CLOS (@1!20)")
    before, heard = sw.handle(":CLOS:STAT?"), list(bench.changes)
    assert sw.handle(message) is None
    assert _errors(sw) == [code]
    assert sw.handle(":CLOS:STAT?") == before
    assert bench.changes == heard


def test_a_command_error_discards_the_rest_of_the_message_an_execution_error_does_not() -> None:
    sw, _ = _emulator()
    sw.handle(":CLOZ (@1!1);:CLOS (@1!2)")
    assert sw.handle(":CLOS:STAT?") == "(@)"
    sw.handle(":CLOS (@1!41);:CLOS (@1!2)")
    assert sw.handle(":CLOS:STAT?") == "(@1!2)"
    assert _errors(sw) == [-113, -222]


def test_card_types() -> None:
    sw, _ = _emulator()
    assert sw.handle(":CONF:SLOT1:CTYP?") == "C7011"
    assert sw.handle(":CONFIGURE:SLOT2:CTYPE?") == "NONE"
    with pytest.raises(ValueError, match="each 'C7011' or 'NONE'"):
        Keithley7001Emulator(_Bench(), cards=("C7012", "NONE"))


def test_rst_leaves_the_channels_a_power_cycle_opens_them() -> None:
    sw, bench = _emulator()
    sw.handle(":CLOS (@1!4);:CLOS (@1!41)")
    sw.handle("*RST")
    assert sw.handle(":CLOS:STAT?") == "(@1!4)"
    assert _errors(sw) == [-222]
    sw.handle(":CLOS (@1!41)")
    sw.power_on()
    assert sw.handle(":CLOS:STAT?") == "(@)"
    assert _errors(sw) == []
    assert bench.changes[-1] == ("switch", frozenset())


def test_each_relay_change_takes_the_settling_time_and_nothing_else_does() -> None:
    """3 ms per command that moves relays (7011-S settling < 3 ms), whatever their number; a query, a command
    that moves none (closing a closed one, opening an open one) and an error take no time."""
    sw, bench = _emulator()
    sw.handle(":CLOS (@1!1:1!10)")
    assert bench.clock.now() == pytest.approx(3e-3, abs=1e-12)
    for message in (":CLOS (@1!5)", ":OPEN (@1!20)", ":CLOS:STAT?", ":CLOS (@1!41)", "*OPC?"):
        sw.handle(message)
    assert bench.clock.now() == pytest.approx(3e-3, abs=1e-12)
    sw.handle(":OPEN ALL")
    assert bench.clock.now() == pytest.approx(6e-3, abs=1e-12)
    assert sw.relay_operations == 2


def test_the_settling_time_is_an_option() -> None:
    sw, bench = _emulator(settle_s=0.010)
    sw.handle(":CLOS (@1!1)")
    assert bench.clock.now() == pytest.approx(0.010, abs=1e-12)
    with pytest.raises(ValueError, match="settle_s"):
        Keithley7001Emulator(_Bench(), settle_s=-1.0)


def test_relays_changed_hears_power_up_and_every_change_with_the_closed_channels() -> None:
    sw, bench = _emulator(cards=("C7011", "C7011"))
    assert bench.changes == [("switch", frozenset())]
    sw.handle(":CLOS (@1!3)")
    sw.handle(":CLOS (@1!3)")  # no change: not heard again
    sw.handle(":CLOS (@2!1,1!12)")
    sw.handle(":OPEN (@1!3)")
    sw.handle(":OPEN ALL")
    sw.handle(":OPEN ALL")
    assert bench.changes == [("switch", frozenset()), ("switch", frozenset({3})), ("switch", frozenset({3, 12, 41})),
                             ("switch", frozenset({12, 41})), ("switch", frozenset())]


def test_a_bench_without_relays_changed_or_stuck_relays_is_fine() -> None:
    class Plain:
        clock = VirtualClock()

    sw = Keithley7001Emulator(Plain())
    sw.handle(":CLOS (@1!1)")
    assert sw.handle(":CLOS:STAT?") == "(@1!1)"


def test_a_stuck_relay_does_not_close_and_reads_back_open() -> None:
    sw, bench = _emulator(stuck={5})
    sw.handle(":CLOS (@1!4:1!6)")
    assert sw.handle(":CLOS:STAT?") == "(@1!4,1!6)"
    assert sw.handle(":CLOS? (@1!5)") == "0"
    assert _errors(sw) == []
    assert bench.changes[-1] == ("switch", frozenset({4, 6}))


def test_the_registration_makes_it_as_sim_switch_only() -> None:
    bench = _Bench()
    emu = make_emulator(KEITHLEY7001_REGISTRATION, bench, "switch")
    assert isinstance(emu, Keithley7001Emulator) and emu.sim_name == "switch"
    assert "allowed: 'sim://switch'" in sim_name_problem(KEITHLEY7001_REGISTRATION, "smu")


# -- the driver against the emulator ----------------------------------------------------------------------------
def _driver(bench: _Bench, faults: FaultSchedule | None = None, **kwargs) -> tuple[Keithley7001, Keithley7001Emulator]:
    emu = Keithley7001Emulator(bench, **kwargs)
    adapter = EmulatorAdapter(emu, read_termination="\n", write_termination="\n", faults=faults)
    return Keithley7001(adapter), emu


def test_driver_in_process_selects_pixel_by_pixel_break_before_make() -> None:
    """Pixels 1-4 on bank 1 (one SMU), 11-14 on bank 2 (another): select each in turn in its bank. What the
    fixture hears never has two channels of one bank closed, and ends with every relay open."""
    bench = _Bench()
    sw, _ = _driver(bench)
    assert sw.id.startswith("KEITHLEY INSTRUMENTS INC.,MODEL 7001,")
    bank1, bank2 = range(1, 11), range(11, 21)
    for a, b in zip((1, 2, 3, 4), (11, 12, 13, 14), strict=True):
        sw.select(a, group=bank1)
        sw.select(b, group=bank2)
        assert sw.closed_channels() == {a, b}
    sw.disconnect_all()
    heard = [closed for _, closed in bench.changes]
    assert all(len(closed & set(bank1)) <= 1 and len(closed & set(bank2)) <= 1 for closed in heard)
    # from {1, 11}: selecting 2 opens 1 ({11}) before closing 2 ({2, 11})
    assert heard[heard.index(frozenset({1, 11})) + 1:][:2] == [frozenset({11}), frozenset({2, 11})]
    assert heard[-1] == frozenset()
    assert sw.check_errors() == []


def test_driver_in_process_a_stuck_relay_stops_with_a_clear_error() -> None:
    bench = _Bench(stuck={5})
    sw, _ = _driver(bench)
    sw.select(4, group=range(1, 11))
    with pytest.raises(SwitchReadbackError) as info:
        sw.select(5, group=range(1, 11))
    assert str(info.value) == "Keithley 7001 switch system: selected 5 (1!5), but reads back closed: none"
    assert sw.closed_channels() == frozenset()  # break-before-make left bank 1 open, not on pixel 4


def test_driver_in_process_a_channel_off_the_card_never_reaches_it() -> None:
    bench = _Bench()
    sw, emu = _driver(bench)
    with pytest.raises(ValueError, match="channel 41 not on this switch"):
        sw.close_channels([41])
    assert emu.handle(":SYST:ERR:COUN?") == "0"


def test_driver_in_process_the_error_queue_explains_a_slot_without_a_card() -> None:
    """The driver was told there are two cards; slot 2 is empty: the 7001 refuses 2!1 with -222, and the
    read-back error quotes it."""
    bench = _Bench()
    sw, _ = _driver(bench)
    sw.set_slots(2)
    with pytest.raises(SwitchReadbackError, match=r'closed 41 \(2!1\), but reads back closed: none \(error queue: '
                                                  r'-222,"Parameter data out of range;no card in slot 2"\)'):
        sw.close_channels([41])


def test_driver_in_process_a_timeout_fault_is_a_visa_timeout() -> None:
    bench = _Bench()
    faults = FaultSchedule(bench.clock)
    sw, _ = _driver(bench, faults)
    faults.add(FaultSpec("switch", "timeout", at_message=2))  # the *OPC? after :CLOS
    with pytest.raises(VisaIOError) as info:
        sw.close_channels([3])
    assert info.value.error_code == StatusCode.error_timeout
    assert [f["kind"] for f in faults.injected] == ["timeout"]


def test_driver_in_process_a_reboot_fault_drops_the_link_and_opens_every_relay() -> None:
    bench = _Bench()
    faults = FaultSchedule(bench.clock)
    sw, emu = _driver(bench, faults)
    sw.close_channels([3])
    faults.add(FaultSpec("switch", "reboot", at_message=1))
    with pytest.raises(VisaIOError) as info:
        sw.closed_channels()
    assert info.value.error_code == StatusCode.error_connection_lost
    assert emu.closed == set() and bench.changes[-1] == ("switch", frozenset())
    assert faults.injected[-1]["state_reset"] is True


def test_driver_in_process_two_threads_on_one_switch_never_interleave() -> None:
    """Two SMU threads select in their own banks on one shared driver: each select holds the switch, so the
    fixture never hears two of one bank closed and every select reads back its own pixel."""
    bench = _Bench()
    sw, _ = _driver(bench)
    failures: list[BaseException] = []

    def worker(bank: range) -> None:
        try:
            for _ in range(20):
                for channel in list(bank)[:4]:
                    sw.select(channel, group=bank)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(bank,)) for bank in (range(1, 11), range(11, 21))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert failures == []
    heard = [closed for _, closed in bench.changes]
    assert all(len(closed & set(range(1, 11))) <= 1 and len(closed & set(range(11, 21))) <= 1 for closed in heard)
    assert sw.closed_channels() == {4, 14}


@pytest.mark.tcp
def test_driver_over_loopback_tcp() -> None:
    bench = _Bench()
    with serve({"switch": (Keithley7001Emulator(bench), "\n", "\n")}) as srv:
        sw = Keithley7001(srv.resource_strings()["switch"], visa_library="@py", timeout=2000,
                          read_termination="\n", write_termination="\n")
        try:
            assert sw.id.startswith("KEITHLEY INSTRUMENTS INC.,MODEL 7001,")
            sw.select(7, group=range(1, 11))
            sw.select(8, group=range(1, 11))
            assert sw.closed_channels() == {8}
            sw.disconnect_all()
            assert sw.check_errors() == []
        finally:
            sw.adapter.close()
    assert [closed for _, closed in bench.changes] == [frozenset(), frozenset({7}), frozenset(), frozenset({8}),
                                                       frozenset()]


# -- through a station (the registration end to end: identity, configure, capability, safe state) ---------------
@pytest.fixture
def registered():
    """The 7001 registration, in-process unless the installed entry points already provide it."""
    from labctl.plugins import instrument_registrations, register_instrument, unregister_instrument

    if "keithley7001" in instrument_registrations():
        yield
        return
    register_instrument(KEITHLEY7001_REGISTRATION)
    try:
        yield
    finally:
        unregister_instrument("keithley7001")


def test_a_station_connects_it_as_sim_switch_and_opens_every_relay_in_its_safe_state(registered) -> None:
    from labctl.config import parse_station
    from labctl.station import Station
    from tests.helpers import default_station

    data = default_station()
    data["instruments"]["switch"] = {"driver": "keithley7001", "resource": "sim://switch"}
    station = Station(parse_station(data))
    try:
        station.connect(["switch"])
        sw = station.require("switch", "switch_matrix")
        sw.select(3, group=range(1, 11))
        assert sw.closed_channels() == {3}
        assert station.safe_state() == []
        assert {o.role: o.detail for o in station.safe_report}["switch"] == "all relays open (read back)"
        assert sw.closed_channels() == frozenset()
    finally:
        station.close()
