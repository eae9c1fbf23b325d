"""LaserBoxx emulator: its command set, its error reply, the bench laser slot it drives; end to end through a
station (sim://laser) and over loopback TCP (the served bench, as `labctl sim serve` serves it)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.oxxius_laserboxx import OXXIUS_LASERBOXX_REGISTRATION
from labctl.cli import main
from labctl.config import ConfigError, parse_station
from labctl.station import Station
from sim_instruments.adapter import EmulatorAdapter
from sim_instruments.bench import Bench
from sim_instruments.clock import RealClock
from sim_instruments.laserboxx import ERR_REPLY, FRAMING, SETTER_REPLY, LaserBoxxEmulator
from sim_instruments.serve import served_station, start_server
from sim_instruments.server import serve
from tests.helpers import default_station


@pytest.fixture
def bench() -> SimpleNamespace:
    return SimpleNamespace(laser=SimpleNamespace(on=True, power_W=0.5, wavelength_nm=520.0))


@pytest.fixture
def laser(bench: SimpleNamespace) -> LaserBoxxEmulator:
    return LaserBoxxEmulator(bench)


def test_power_on_state_turns_the_bench_laser_off(bench: SimpleNamespace, laser: LaserBoxxEmulator) -> None:
    assert (bench.laser.on, bench.laser.power_W) == (False, 0.0)
    assert laser.handle("?L") == "0"
    assert laser.handle("?STA") == "2"  # standby
    assert laser.handle("?APC") == "1" and laser.handle("?ACC") == "0"
    assert laser.handle("?F") == "0" and laser.handle("?INT") == "1" and laser.handle("?KEY") == "1"


def test_identity_names_the_bench_wavelength_and_the_nominal_power(bench: SimpleNamespace) -> None:
    laser = LaserBoxxEmulator(bench, max_power_mW=50)
    assert laser.handle("INF?") == "LBX-520-50-CSB"
    assert laser.handle("?HID").endswith(",520")
    assert laser.handle("?MAXLP") == "50.0"


def test_emission_and_power_drive_the_laser_slot(bench: SimpleNamespace, laser: LaserBoxxEmulator) -> None:
    assert laser.handle("P 12.5") == SETTER_REPLY
    assert bench.laser.on is False  # a set-point alone emits nothing
    assert laser.handle("L 1") == SETTER_REPLY
    assert bench.laser.on is True and bench.laser.power_W == pytest.approx(12.5e-3)
    assert laser.handle("?L") == "1" and laser.handle("?STA") == "3"
    assert laser.handle("?SP") == "12.50" and laser.handle("?P") == "12.50"
    assert laser.handle("P 3") == SETTER_REPLY
    assert bench.laser.power_W == pytest.approx(3e-3)
    assert laser.handle("L 0") == SETTER_REPLY
    assert (bench.laser.on, bench.laser.power_W) == (False, 0.0)
    assert laser.handle("?P") == "0.00" and laser.handle("?SP") == "3.00"


def test_commands_are_case_insensitive(bench: SimpleNamespace, laser: LaserBoxxEmulator) -> None:
    assert laser.handle("p 7") == SETTER_REPLY and laser.handle("l 1") == SETTER_REPLY
    assert laser.handle("?l") == "1" and laser.handle("?sp") == "7.00" and laser.handle("inf?").startswith("LBX-")
    assert bench.laser.power_W == pytest.approx(7e-3)


def test_constant_current_mode_sets_the_power_from_the_current(bench: SimpleNamespace,
                                                               laser: LaserBoxxEmulator) -> None:
    assert laser.handle("ACC 1") == SETTER_REPLY
    assert laser.handle("?ACC") == "1" and laser.handle("?APC") == "0"
    assert laser.handle("CM 40") == SETTER_REPLY and laser.handle("?SC") == "40.0"
    assert laser.handle("C 20") == SETTER_REPLY and laser.handle("?SC") == "20.0"
    laser.handle("L 1")
    # 20 % of the 100 mW nominal power, 20 % of the 150 mA maximum current (the emulator's defaults)
    assert bench.laser.power_W == pytest.approx(20e-3)
    assert laser.handle("?C") == "30.0"


def test_ttl_modulation_only_in_current_mode(laser: LaserBoxxEmulator) -> None:
    assert laser.handle("TTL 1") == ERR_REPLY
    assert laser.handle("?TTL") == "0"
    laser.handle("ACC 1")
    assert laser.handle("TTL 1") == SETTER_REPLY and laser.handle("?TTL") == "1"
    laser.handle("APC 1")
    assert laser.handle("?TTL") == "0"


@pytest.mark.parametrize("keyword", ["AM", "CDRH", "T"])
def test_flags_round_trip(laser: LaserBoxxEmulator, keyword: str) -> None:
    for value in ("1", "0", "1"):
        assert laser.handle(f"{keyword} {value}") == SETTER_REPLY
        assert laser.handle(f"?{keyword}") == value


@pytest.mark.parametrize(
    "message",
    ["P 100.5", "P -1", "P x", "P", "L 2", "L", "CM 101", "APC 0", "ACC 2", "AM 1.5", "FOO 1", "?FOO", "?L 1",
     "*IDN?", "DL 1", "dl?", "", "RST 1"],
)
def test_unknown_commands_and_bad_arguments_get_the_error_reply(bench: SimpleNamespace, laser: LaserBoxxEmulator,
                                                                message: str) -> None:
    laser.handle("P 5")
    assert laser.handle(message) == ERR_REPLY
    # nothing changed
    assert laser.handle("?SP") == "5.00" and laser.handle("?L") == "0" and laser.handle("?APC") == "1"
    assert laser.handle("?AM") == "0" and (bench.laser.on, bench.laser.power_W) == (False, 0.0)


def test_an_open_interlock_stops_emission(bench: SimpleNamespace, laser: LaserBoxxEmulator) -> None:
    laser.handle("P 5")
    laser.handle("L 1")
    laser.open_interlock()
    assert (bench.laser.on, bench.laser.power_W) == (False, 0.0)
    assert laser.handle("?INT") == "0" and laser.handle("?STA") == "2" and laser.handle("?P") == "0.00"


def test_wire_framing_through_the_adapter(laser: LaserBoxxEmulator) -> None:
    adapter = EmulatorAdapter(laser, read_termination="\r\n", write_termination="\r")
    adapter.write("?L")
    adapter.write("L 1")
    adapter.write("FOO")
    assert adapter.read_bytes(-1) == b"0\r\nOK\r\nERROR\r\n"
    assert FRAMING == {"read_termination": "\r\n", "write_termination": "\r", "echo": False, "prompt": ""}


# -- through a station --------------------------------------------------------------------------------------
def _laser_station(resource: str = "sim://laser") -> dict:
    data = default_station()
    data["instruments"]["laser"] = {"driver": "oxxius_laserboxx", "resource": resource}
    return data


def test_a_station_turns_the_laser_on_and_its_safe_state_turns_it_off() -> None:
    station = Station(parse_station(_laser_station()))
    station.connect(["laser"])
    try:
        bench = station.bench
        laser = station.require("laser", "laser")
        laser.set_power_W(0.02)
        laser.set_emission(True)
        assert bench.laser.on is True and bench.laser.power_W == pytest.approx(0.02)
        assert laser.emission is True and laser.power_W == pytest.approx(0.02)
        assert laser.check_errors() == []
        assert station.safe_state() == []  # no failures
        outcome = {o.role: o for o in station.safe_report}["laser"]
        assert outcome.ok and outcome.detail == "emission off (emission reads off)"
        assert bench.laser.on is False and bench.laser.power_W == 0.0
        assert laser.emission is False
    finally:
        station.close()


def test_a_sim_name_the_laser_cannot_be_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"instruments\.laser\.resource = 'sim://diode'.*'sim://laser'"):
        parse_station(_laser_station("sim://diode"))


@pytest.mark.tcp
def test_the_served_station_serves_the_laser_as_a_serial_port() -> None:
    config = parse_station(_laser_station())
    with start_server(config) as server:
        resources = server.resource_strings()
        assert resources["laser"].startswith("ASRLsocket://127.0.0.1:")
        station = Station(parse_station(served_station(config, {"laser": resources["laser"]})))
        station.connect(["laser"])  # the identity check (INF?) passed over TCP
        try:
            assert station["laser"].id == "LBX-520-100-CSB"  # the default bench's laser slot is at 520 nm
        finally:
            station.close()


@pytest.mark.tcp
def test_over_loopback_tcp_the_laser_drives_the_bench_laser_slot() -> None:
    config = parse_station(_laser_station())
    bench = Bench(clock=RealClock())
    conn = OXXIUS_LASERBOXX_REGISTRATION.connection
    endpoint = (LaserBoxxEmulator(bench), conn.read_termination, conn.write_termination)
    with serve({"laser": endpoint}, serial=["laser"]) as server:
        station = Station(parse_station(served_station(config, server.resource_strings())))
        station.connect(["laser"])
        try:
            laser = station.require("laser", "laser")
            laser.set_power_W(0.0075)
            laser.set_emission(True)
            assert bench.laser.on is True and bench.laser.power_W == pytest.approx(0.0075)
            assert station.safe_state() == []
            assert bench.laser.on is False and bench.laser.power_W == 0.0
        finally:
            station.close()


def test_station_settings_cdrh_is_applied_after_the_identity_and_validated_first() -> None:
    data = _laser_station()
    data["instruments"]["laser"]["settings"] = {"cdrh": True}
    station = Station(parse_station(data))
    station.connect(["laser"])
    try:
        laser = station["laser"]
        assert laser.cdrh is True and laser.constant_power is True  # read back from the emulated laser
    finally:
        station.close()
    data["instruments"]["laser"]["settings"] = {"cdrh": "sometimes"}
    with pytest.raises(ConfigError, match=r"instruments\.laser\.settings\.cdrh = 'sometimes'"):
        parse_station(data)
    data["instruments"]["laser"]["settings"] = {"power_mW": 5}
    with pytest.raises(ConfigError, match=r"instruments\.laser\.settings\.power_mW"):
        parse_station(data)


def test_station_check_shows_the_laser(tmp_path) -> None:
    path = tmp_path / "station.yaml"
    path.write_text(yaml.safe_dump(_laser_station()))
    res = CliRunner().invoke(main, ["station", "check", "--station", str(path)])
    assert res.exit_code == 0, res.output
    block = res.output.split("laser: oxxius_laserboxx at sim://laser\n", 1)[1].splitlines()[:3]
    assert block[0].split() == ["offers:", "laser"] and block[1].endswith("LBX-520-100-CSB"), block
    assert block[2].split() == ["errors:", "none"], block


_WORDS = st.sampled_from(["L", "P", "CM", "C", "APC", "ACC", "AM", "TTL", "CDRH", "T", "RST", "?L", "?P", "?SP",
                          "?STA", "?F", "INF?", "X", ""])
_ARGS = st.one_of(st.just(""), st.sampled_from(["0", "1", "2", "-1", "50", "99.5", "100", "150", "abc"]),
                  st.text(max_size=6))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(_WORDS, _ARGS, st.booleans()), max_size=25))
def test_any_command_sequence_keeps_the_bench_slot_equal_to_what_the_laser_reports(commands) -> None:
    bench = SimpleNamespace(laser=SimpleNamespace(on=False, power_W=0.0, wavelength_nm=520.0))
    laser = LaserBoxxEmulator(bench)
    for word, arg, lower in commands:
        message = f"{word} {arg}" if arg else word
        reply = laser.handle(message.lower() if lower else message)
        assert isinstance(reply, str) and reply and "\r" not in reply and "\n" not in reply
        emitting = laser.handle("?L") == "1" and laser.handle("?STA") == "3"
        assert bench.laser.on is emitting
        assert bench.laser.power_W == pytest.approx(float(laser.handle("?P")) * 1e-3, abs=5e-6)
        assert 0.0 <= bench.laser.power_W <= 0.1  # never above the nominal 100 mW
