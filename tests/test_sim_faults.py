"""Fault injection on the simulated bench (issue 11, section 3): every kind in-process and over loopback TCP.

Each test shows what a client sees: the exception pyvisa / the in-process adapter raises, the garbage it reads,
the state a reset instrument reads back. Expected timings come from the station file (the resources' timeouts),
never from the simulator: a timeout in-process costs exactly ``instruments.<role>.timeout_ms`` of bench time.
"""

from __future__ import annotations

import time
import typing
from typing import Any

import pytest
import pyvisa
from pyvisa.constants import StatusCode
from pyvisa.errors import VisaIOError

from labctl.config import ConfigError, parse_station
from labctl.station import Station, StationError
from sim_instruments.bench import Bench
from sim_instruments.config import FaultEntryConfig
from sim_instruments.faults import GARBAGE, KINDS, FaultSpec
from sim_instruments.keithley2400 import Keithley2400Emulator
from sim_instruments.keithley2450 import Keithley2450Emulator
from sim_instruments.serve import start_server
from sim_instruments.smu_emulator import SOURCE_HISTORY_MAX
from tests.helpers import default_station, served_bench

SMU_TIMEOUT_S = default_station()["instruments"]["smu"]["timeout_ms"] / 1000.0  # 10 s in station.yaml


def _station(faults: list[dict] | None = None, seed: int = 0, roles: list[str] | None = None) -> Station:
    data = default_station()
    if faults is not None:
        data["simulation"]["faults"] = {"seed": seed, "schedule": faults}
    station = Station(parse_station(data))
    station.connect(roles or ["smu"])
    return station


def _ask(adapter: Any, message: str) -> str:
    """One query through an adapter (write, then read the reply)."""
    adapter.write(message)
    return adapter.read()


def _code(exc: pytest.ExceptionInfo) -> Any:
    return exc.value.error_code


def _smu_on_at(station: Station, volts: float) -> None:
    adapter = station["smu"].adapter
    adapter.write(f":SOUR:FUNC VOLT;:SOUR:VOLT {volts};:SENS:CURR:PROT 0.01;:OUTP ON")
    assert _ask(adapter, ":OUTP?").strip() == "1"


# -- in-process ------------------------------------------------------------------------------------------------

def test_timeout_in_process_is_a_visa_timeout_that_costs_the_resource_timeout_on_the_bench_clock():
    station = _station()
    adapter, clock = station["smu"].adapter, station.clock
    station.bench.faults.add(FaultSpec("smu", "timeout", at_message=1))
    adapter.write(":SOUR:VOLT 0.1")  # a command has no reply: the armed timeout waits for a query
    t0 = clock.now()
    adapter.write(":OUTP?")
    with pytest.raises(VisaIOError) as exc:
        adapter.read()
    assert _code(exc) == StatusCode.error_timeout
    assert clock.now() - t0 == pytest.approx(SMU_TIMEOUT_S)
    assert _ask(adapter, ":OUTP?").strip() == "0"  # the link is fine: the next query is answered
    [fault] = station.bench.faults.injected
    assert fault["kind"] == "timeout" and fault["instrument"] == "smu" and fault["role"] == "smu"
    assert fault["message"] == ":OUTP?" and fault["transport"] == "in-process" and fault["time"] == t0
    station.close()


def test_drop_in_process_is_connection_lost_until_reopened_and_the_instrument_keeps_its_state():
    station = _station()
    _smu_on_at(station, 0.5)
    old = station["smu"].adapter
    station.bench.faults.add(FaultSpec("smu", "drop", at_message=1))
    for _ in range(2):  # the message that met the fault, and every later one, until the station reopens it
        with pytest.raises(VisaIOError) as exc:
            old.write(":OUTP?")
        assert _code(exc) == StatusCode.error_connection_lost
    with pytest.raises(VisaIOError):
        old.read()
    assert old.emulator.output is True  # a dropped link is no power cycle
    assert old.emulator.handle(":SOUR:VOLT?").strip() != ""
    new = station.reconnect("smu")
    assert _ask(new.adapter, "*IDN?").startswith("KEITHLEY INSTRUMENTS INC.,MODEL 2400")
    assert station.bench.faults.count("drop") == 1
    station.close()


def test_garbage_in_process_reads_the_garbage_bytes_and_the_driver_cannot_parse_them():
    station = _station()
    smu = station["smu"]
    station.bench.faults.add(FaultSpec("smu", "garbage", at_message=1))
    assert _ask(smu.adapter, ":OUTP?") == GARBAGE.decode("latin-1")
    station.bench.faults.add(FaultSpec("smu", "garbage", at_message=1))
    # PyMeasure's values() keeps a reply it cannot cast as the string: a float control returns the garbage
    assert smu.source_voltage == GARBAGE.decode("latin-1")
    station.bench.faults.add(FaultSpec("smu", "garbage", at_message=1))
    with pytest.raises(ValueError):
        float(_ask(smu.adapter, ":SOUR:VOLT?"))
    station.bench.faults.add(FaultSpec("smu", "garbage", at_message=1))
    with pytest.raises(KeyError):
        smu.source_enabled  # noqa: B018 - PyMeasure's mapped values: the reply is none of them
    assert _ask(smu.adapter, ":OUTP?").strip() == "0"
    assert [f["kind"] for f in station.bench.faults.injected] == ["garbage"] * 4
    station.close()


def test_reboot_in_process_resets_to_rst_defaults_and_drops_the_link():
    station = _station()
    _smu_on_at(station, 0.5)
    old = station["smu"].adapter
    station.bench.faults.add(FaultSpec("smu", "reboot", at_message=1))
    with pytest.raises(VisaIOError) as exc:
        old.write(":SOUR:VOLT 0.6")  # lost with the power cycle
    assert _code(exc) == StatusCode.error_connection_lost
    emulator = old.emulator
    assert emulator.output is False and emulator.src["VOLT"].level == 0.0  # *RST: output off, 0 V
    assert emulator.source_history[-1][1:] == (False, "VOLT", 0.0)
    assert station.bench.cell_current_A() == 0.0  # the device is at open circuit: no current
    new = station.reconnect("smu")
    assert _ask(new.adapter, ":OUTP?").strip() == "0"
    assert float(_ask(new.adapter, ":SOUR:VOLT?")) == 0.0
    assert not any(v == 0.6 for _, _, _, v in emulator.source_history)  # the lost level never reached the output
    station.close()


def test_reset_in_process_keeps_the_link_and_only_a_read_back_shows_it():
    station = _station()
    _smu_on_at(station, 0.5)
    adapter = station["smu"].adapter
    station.bench.faults.add(FaultSpec("smu", "reset", at_message=1))
    assert _ask(adapter, ":OUTP?").strip() == "0"  # no exception: the query runs on the reset instrument
    assert float(_ask(adapter, ":SOUR:VOLT?")) == 0.0
    assert float(_ask(adapter, ":SENS:CURR:PROT?")) == pytest.approx(105e-6)  # the *RST compliance (2400 manual)
    assert [f["kind"] for f in station.bench.faults.injected] == ["reset"]
    station.close()


def test_unavailable_in_process_refuses_the_reopen_for_its_duration_of_station_time():
    # from station.yaml: the connect's *IDN? is message 1, the write below message 2
    station = _station([{"instrument": "smu", "kind": "unavailable", "at_message": 2, "duration_s": 30.0}])
    with pytest.raises(VisaIOError) as exc:
        station["smu"].adapter.write("*IDN?")
    assert _code(exc) == StatusCode.error_connection_lost
    with pytest.raises(StationError, match="cannot open instrument 'smu'") as refused:
        station.reconnect("smu")
    assert isinstance(refused.value.__cause__, VisaIOError)
    assert refused.value.__cause__.error_code == StatusCode.error_resource_not_found
    assert "smu" not in station
    station.clock.sleep(29.0)
    with pytest.raises(StationError):
        station.reconnect("smu")
    station.clock.sleep(1.0)
    station.reconnect("smu")
    assert _ask(station["smu"].adapter, "*IDN?").startswith("KEITHLEY")
    station.close()


def test_stall_of_the_filter_wheel_in_process_times_out_and_the_wheel_stays():
    station = _station(roles=["filter_wheel"])
    wheel, clock = station["filter_wheel"], station.clock
    start = wheel.position
    target = start % 6 + 1
    station.bench.faults.add(FaultSpec("filter_wheel", "stall", every_messages=1, count=1))
    wheel.adapter.connection.timeout = 2000  # so that the cost is the resource's, not the driver's move timeout
    t0 = clock.now()
    with pytest.raises(VisaIOError) as exc:
        wheel.position = target
    assert _code(exc) == StatusCode.error_timeout
    assert clock.now() - t0 >= wheel.move_timeout_s  # the driver's read of a move waits its move timeout
    assert wheel.position == start  # the motor stalled: the wheel is where it was
    wheel.position = target  # a stall of one move: the next move works
    assert wheel.position == target
    assert [f["kind"] for f in station.bench.faults.injected] == ["stall"]
    station.close()


def test_stall_of_the_monochromator_in_process_answers_nothing_for_its_duration():
    station = _station(roles=["monochromator"])
    mono, clock = station["monochromator"], station.clock
    start_nm = mono.wavelength_nm
    station.bench.faults.add(FaultSpec("monochromator", "stall", at_message=1, duration_s=60.0))
    with pytest.raises(VisaIOError) as exc:
        mono.wavelength_nm = start_nm + 100.0
    assert _code(exc) == StatusCode.error_timeout
    clock.sleep(60.0)
    assert mono.wavelength_nm == pytest.approx(start_nm)  # the move never happened
    mono.wavelength_nm = start_nm + 100.0
    assert mono.wavelength_nm == pytest.approx(start_nm + 100.0)
    station.close()


def test_a_schedule_from_station_yaml_counts_messages_and_is_seeded():
    faults = [{"instrument": "smu", "kind": "timeout", "every_messages": 3},
              {"instrument": "smu", "kind": "garbage", "probability": 0.25}]
    seen = []
    for _ in range(2):
        station = _station(faults, seed=7)
        adapter = station["smu"].adapter
        replies = []
        for _ in range(40):
            try:
                replies.append(_ask(adapter, ":OUTP?").strip())
            except VisaIOError:
                replies.append("timeout")
        seen.append(replies)
        injected = station.bench.faults.injected
        # the *IDN? of connect is message 1: the timeouts meet messages 3, 6, ... (queries 2, 5, ...)
        timeouts = [i for i, r in enumerate(replies) if r == "timeout"]
        assert timeouts[:3] == [1, 4, 7]
        assert sum(r == GARBAGE.decode("latin-1").strip() for r in replies) == station.bench.faults.count("garbage")
        assert 0 < station.bench.faults.count("garbage") < 40
        assert len(injected) == len(timeouts) + station.bench.faults.count("garbage")
        station.close()
    assert seen[0] == seen[1]  # same seed, same faults


def test_at_s_fires_on_the_first_message_at_or_after_that_station_time():
    station = _station([{"instrument": "smu", "kind": "reset", "at_s": 100.0}])
    _smu_on_at(station, 0.3)
    station.clock.sleep(99.0)
    assert _ask(station["smu"].adapter, ":OUTP?").strip() == "1"
    station.clock.sleep(1.0)
    assert _ask(station["smu"].adapter, ":OUTP?").strip() == "0"
    assert _ask(station["smu"].adapter, ":OUTP?").strip() == "0"
    assert station.bench.faults.count() == 1  # at_s: one fault
    station.close()


@pytest.mark.parametrize("entry, needle", [
    ({"instrument": "smu", "kind": "melt", "at_message": 1}, "kind"),
    ({"instrument": "smu", "kind": "timeout"}, "exactly one of"),
    ({"instrument": "smu", "kind": "timeout", "at_message": 1, "every_s": 2}, "exactly one of"),
    ({"instrument": "smu", "kind": "unavailable", "at_message": 1}, "duration_s"),
    ({"instrument": "smu", "kind": "timeout", "probability": 1.5}, "probability"),
])
def test_a_bad_fault_entry_is_one_config_error_naming_it(entry: dict, needle: str):
    data = default_station()
    data["simulation"]["faults"] = {"schedule": [entry]}
    with pytest.raises(ConfigError, match=needle) as exc:
        parse_station(data)
    assert "simulation.faults" in str(exc.value)


def test_a_fault_on_an_instrument_the_station_lacks_is_refused_naming_the_allowed_ones():
    data = default_station()
    data["simulation"]["faults"] = {"schedule": [{"instrument": "smu", "kind": "drop", "at_message": 3},
                                                 {"instrument": "smuu", "kind": "drop", "at_message": 3}]}
    with pytest.raises(ConfigError, match=r"schedule\[1\]\.instrument = 'smuu'.*allowed.*filter_wheel"):
        parse_station(data)


def test_fault_spec_refuses_an_unknown_kind_and_two_triggers():
    with pytest.raises(ValueError, match="allowed"):
        FaultSpec("smu", "melt", at_message=1)
    with pytest.raises(ValueError, match="exactly one trigger"):
        FaultSpec("smu", "drop", at_message=1, at_s=3)
    assert set(KINDS) == {"timeout", "drop", "garbage", "reboot", "reset", "unavailable", "stall"}
    assert typing.get_args(FaultEntryConfig.model_fields["kind"].annotation) == KINDS  # one list of kinds


# -- the source meters' source history and output query ---------------------------------------------------------

@pytest.mark.parametrize("cls", [Keithley2400Emulator, Keithley2450Emulator])
def test_source_history_records_each_change_and_is_bounded(cls: type, monkeypatch: pytest.MonkeyPatch):
    assert cls(Bench()).source_history.maxlen == SOURCE_HISTORY_MAX >= 1000
    monkeypatch.setattr("sim_instruments.smu_emulator.SOURCE_HISTORY_MAX", 40)  # a short bound: a fast test
    bench = Bench()
    emu = cls(bench)
    assert emu.handle(":OUTP?") == "0" and emu.handle(":OUTP:STAT?") == "0"
    emu.handle(":SOUR:FUNC VOLT")
    emu.handle(":SOUR:VOLT 0.25")
    bench.clock.sleep(2.0)
    emu.handle(":OUTP ON")
    assert emu.handle(":OUTP?") == "1" and emu.handle(":OUTP:STAT?") == "1"
    bench.clock.sleep(1.0)
    emu.handle(":SOUR:VOLT 0.5")
    emu.handle(":OUTP OFF")
    assert list(emu.source_history)[-3:] == [(2.0, True, "VOLT", 0.25), (3.0, True, "VOLT", 0.5),
                                             (3.0, False, "VOLT", 0.5)]
    emu.handle(":OUTP ON")
    for i in range(45):
        emu.handle(f":SOUR:VOLT {0.01 * (i + 1)}")
    assert len(emu.source_history) == 40
    assert emu.source_history[-1][1:] == (True, "VOLT", 0.45)


# -- over loopback TCP (the server of `labctl sim serve`, pyvisa-py as a client) ---------------------------------

def _served(faults: list[dict] | None = None):
    data = default_station()
    data["simulation"]["clock"] = "real"
    if faults:
        data["simulation"]["faults"] = {"schedule": faults}
    server = start_server(parse_station(data))
    return server, server.resource_strings()


def _open(rm: pyvisa.ResourceManager, resource: str, term: str = "\n", timeout_ms: int = 300) -> Any:
    return rm.open_resource(resource, read_termination=term, write_termination=term, timeout=timeout_ms)


@pytest.fixture
def rm():
    manager = pyvisa.ResourceManager("@py")
    yield manager
    manager.close()


def test_tcp_timeout_garbage_and_reset_seen_by_pyvisa_py(rm: pyvisa.ResourceManager):
    server, resources = _served()
    faults = server.bench.faults
    try:
        smu = _open(rm, resources["smu"])
        smu.write(":SOUR:VOLT 0.2;:SENS:CURR:PROT 0.01;:OUTP ON")
        assert smu.query(":OUTP?") == "1"
        faults.add(FaultSpec("smu", "timeout", at_message=1))
        t0 = time.monotonic()
        with pytest.raises(VisaIOError) as exc:
            smu.query(":OUTP?")
        assert _code(exc) == StatusCode.error_timeout and time.monotonic() - t0 >= 0.3
        assert smu.query(":OUTP?") == "1"
        faults.add(FaultSpec("smu", "garbage", at_message=1))
        with pytest.raises(UnicodeDecodeError):  # pyvisa-py decodes replies as ASCII
            smu.query(":OUTP?")
        assert smu.query(":OUTP?") == "1"
        faults.add(FaultSpec("smu", "reset", at_message=1))
        assert smu.query(":OUTP?") == "0" and float(smu.query(":SOUR:VOLT?")) == 0.0
        assert [(f["kind"], f["transport"]) for f in faults.injected] == [
            ("timeout", "tcp"), ("garbage", "tcp"), ("reset", "tcp")]
        smu.close()
    finally:
        server.close()


@pytest.mark.parametrize("kind", ["drop", "reboot"])
def test_tcp_drop_and_reboot_close_the_socket_and_a_reconnect_sees_the_state(rm: pyvisa.ResourceManager, kind: str):
    server, resources = _served()
    try:
        smu = _open(rm, resources["smu"])
        smu.write(":SOUR:VOLT 0.2;:SENS:CURR:PROT 0.01;:OUTP ON")
        assert smu.query(":OUTP?") == "1"
        server.bench.faults.add(FaultSpec("smu", kind, at_message=1))
        with pytest.raises(VisaIOError) as exc:
            smu.query(":OUTP?")  # lost: the server shut the socket
        assert _code(exc) == StatusCode.error_timeout
        with pytest.raises((BrokenPipeError, ConnectionResetError, VisaIOError)):
            for _ in range(3):  # the first write into a socket the peer closed may still be buffered
                smu.write(":OUTP?")
                time.sleep(0.05)
        smu.close()
        again = _open(rm, resources["smu"])
        assert again.query(":OUTP?") == ("1" if kind == "drop" else "0")  # a drop keeps the state, a reboot not
        again.close()
    finally:
        server.close()


def test_tcp_unavailable_refuses_connections_for_its_duration(rm: pyvisa.ResourceManager):
    server, resources = _served([{"instrument": "smu", "kind": "unavailable", "at_message": 1, "duration_s": 1.0}])
    try:
        smu = _open(rm, resources["smu"])
        t0 = time.monotonic()
        with pytest.raises(VisaIOError):
            smu.query("*IDN?")
        smu.close()
        refused = _open(rm, resources["smu"])  # pyvisa-py opens lazily: the first write meets the refusal
        with pytest.raises(ConnectionRefusedError):
            refused.write("*IDN?")
        refused.close()
        time.sleep(max(0.0, 1.2 - (time.monotonic() - t0)))
        back = _open(rm, resources["smu"])
        assert back.query("*IDN?").startswith("KEITHLEY INSTRUMENTS INC.,MODEL 2400")
        back.close()
    finally:
        server.close()


def test_tcp_stall_of_the_monochromator_echoes_and_never_answers(rm: pyvisa.ResourceManager):
    server, resources = _served()
    try:
        mono = _open(rm, resources["monochromator"], term="\r\n")
        assert mono.query("WAVE?") == "WAVE?"  # the echo
        start = float(mono.read())
        server.bench.faults.add(FaultSpec("monochromator", "stall", at_message=1))
        mono.write(f"GOWAVE {start + 50:.1f}")
        assert mono.read() == f"GOWAVE {start + 50:.1f}"
        assert mono.query("WAVE?") == "WAVE?"
        with pytest.raises(VisaIOError) as exc:
            mono.read()  # the answer never comes
        assert _code(exc) == StatusCode.error_timeout
        assert mono.query("WAVE?") == "WAVE?"
        assert float(mono.read()) == pytest.approx(start)  # the stall is over, the move never happened
        mono.close()
    finally:
        server.close()


def test_labctl_sim_serve_takes_faults_from_station_yaml_and_a_station_sees_the_reboot(tmp_path):
    data = default_station()
    data["instruments"] = {"smu": data["instruments"]["smu"]}
    data["instruments"]["smu"]["timeout_ms"] = 500
    data["simulation"]["faults"] = {"schedule": [{"instrument": "smu", "kind": "reboot", "at_message": 5}]}
    with served_bench(tmp_path, data, duration_s=60) as (served_path, printed):
        import yaml

        assert "faults: 1 scheduled (simulation.faults: reboot)" in printed

        station = Station(parse_station(yaml.safe_load(served_path.read_text())))
        station.connect(["smu"])  # *IDN? is message 1, then the registration's configure
        smu = station["smu"]
        with pytest.raises((ConnectionError, VisaIOError)):
            for _ in range(10):
                smu.adapter.write(":SOUR:VOLT 0.3;:OUTP ON")
                _ask(smu.adapter, ":OUTP?")
        new = station.reconnect("smu")
        assert _ask(new.adapter, ":OUTP?").strip() == "0"
        station.close()


def test_every_s_fires_once_per_period_of_station_time_however_many_passed_unseen():
    station = _station()
    adapter, clock = station["smu"].adapter, station.clock
    station.bench.faults.add(FaultSpec("smu", "garbage", every_s=60.0))
    garbage = GARBAGE.decode("latin-1")
    assert _ask(adapter, ":OUTP?") != garbage  # t = 0: no period is over yet
    clock.sleep(60.0)
    assert _ask(adapter, ":OUTP?") == garbage
    assert _ask(adapter, ":OUTP?") != garbage  # one per period
    clock.sleep(150.0)  # two more periods passed without a message: one fault, not two
    assert _ask(adapter, ":OUTP?") == garbage
    assert _ask(adapter, ":OUTP?") != garbage
    assert [f["time"] for f in station.bench.faults.injected] == [60.0, 210.0]
    station.close()


def test_tcp_reboot_drops_every_connection_of_the_instrument(rm: pyvisa.ResourceManager):
    server, resources = _served()
    try:
        first, second = _open(rm, resources["smu"]), _open(rm, resources["smu"])
        assert first.query("*IDN?").startswith("KEITHLEY") and second.query("*IDN?").startswith("KEITHLEY")
        server.bench.faults.add(FaultSpec("smu", "reboot", at_message=1))
        with pytest.raises(VisaIOError):
            first.query(":OUTP?")
        with pytest.raises((BrokenPipeError, ConnectionResetError, VisaIOError)):
            second.query(":OUTP?")  # the other client's link went with the power cycle
        first.close()
        second.close()
        assert [f["kind"] for f in server.bench.faults.injected] == ["reboot"]
        assert server.bench.faults.injected[0]["state_reset"] is True
    finally:
        server.close()


def test_tcp_stall_of_the_filter_wheel_echoes_pos_and_never_prompts(rm: pyvisa.ResourceManager):
    server, resources = _served()
    try:
        wheel = _open(rm, resources["filter_wheel"], term="\r")
        assert wheel.query("pos?") == "pos?"  # echo, then the reply, then the prompt
        start = int(wheel.read())
        assert wheel.read_bytes(2) == b"> "
        target = start % 6 + 1
        server.bench.faults.add(FaultSpec("filter_wheel", "stall", every_messages=1, count=1))
        wheel.write(f"pos={target}")
        assert wheel.read() == f"pos={target}"  # the echo comes
        with pytest.raises(VisaIOError) as exc:
            wheel.read_bytes(2)  # the prompt "> " that says "in position" never does
        assert _code(exc) == StatusCode.error_timeout
        wheel.write("pos?")
        assert wheel.read() == "pos?"
        assert int(wheel.read()) == start  # it never moved
        wheel.close()
    finally:
        server.close()


def test_triggers_while_a_fault_waits_for_its_query_do_not_pile_up():
    station = _station()
    adapter = station["smu"].adapter
    station.bench.faults.add(FaultSpec("smu", "timeout", every_messages=3))
    for _ in range(6):  # messages 1-6, commands: the triggers at 3 and 6 arm one timeout
        adapter.write(":SOUR:VOLT 0.1")
    outcomes = []
    for _ in range(3):  # messages 7, 8, 9 (9 triggers again)
        try:
            outcomes.append(_ask(adapter, ":OUTP?").strip())
        except VisaIOError:
            outcomes.append("timeout")
    assert outcomes == ["timeout", "0", "timeout"]
    station.close()


UNAVAILABLE_S = 4.0
"""The refusal window of the test below: long enough that a loaded 2-core machine still reaches the refused
reconnect inside it (s)."""


def test_tcp_faults_as_a_station_sees_them_through_labctls_visa_adapter():
    """What labctl.recovery classifies over TCP: DeadlineVISAAdapter's exceptions (the faults docstring)."""
    from drivers.identity import IdentityError
    from sim_instruments.serve import served_station

    data = default_station()
    data["instruments"] = {"smu": data["instruments"]["smu"]}
    data["instruments"]["smu"]["timeout_ms"] = 300
    data["simulation"]["clock"] = "real"
    config = parse_station(data)
    server = start_server(config)
    try:
        station = Station(parse_station(served_station(config, server.resource_strings())))
        station.connect(["smu"])
        server.bench.faults.add(FaultSpec("smu", "unavailable", at_message=1, duration_s=UNAVAILABLE_S))
        t0 = time.monotonic()
        # the query's reply is lost with the link: a read already waiting times out; one that starts after the
        # close was seen fails at once (which comes first is the OS's scheduling, not the adapter's choice)
        with pytest.raises((VisaIOError, ConnectionError)) as exc:
            _ask(station["smu"].adapter, ":OUTP?")
        if isinstance(exc.value, VisaIOError):
            assert _code(exc) == StatusCode.error_timeout
        else:
            assert "the peer closed the connection" in str(exc.value)
        with pytest.raises(ConnectionError, match="the peer closed the connection"):
            _ask(station["smu"].adapter, ":OUTP?")
        # refused: the server closes the new link at once, seen as a clean close or, when the OS resets it with
        # the *IDN? unread, as ConnectionResetError (a ConnectionError too)
        with pytest.raises(StationError, match=r"cannot open instrument 'smu'.*Connection(Reset)?Error") as refused:
            station.reconnect("smu")
        assert isinstance(refused.value.__cause__, IdentityError)
        assert isinstance(refused.value.__cause__.__cause__, ConnectionError)
        assert time.monotonic() - t0 < UNAVAILABLE_S, "the machine was too slow to see the refusal window"
        while True:  # reachable again once the window is over (polled: the served bench keeps its own clock)
            try:
                identity = _ask(station.reconnect("smu").adapter, "*IDN?")
                break
            except StationError:
                assert time.monotonic() - t0 < UNAVAILABLE_S + 10.0, "still refused long after the window"
                time.sleep(0.2)
        assert identity.startswith("KEITHLEY")
        assert time.monotonic() - t0 >= UNAVAILABLE_S - 0.5  # not before the window ended
        station.close()
    finally:
        server.close()
