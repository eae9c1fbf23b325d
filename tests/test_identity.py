"""The wrong instrument at an address is refused (issue 7, item 2), and ``sim://<name>`` must name an instrument
of the simulated bench (item 7).

Each driver declares the identities it accepts (``IDENTITY``, drivers.identity); the station asks that query
before anything else and refuses a mismatch with one line naming the role, the resource, what answered and
what was expected (StationError → exit 2), before a run file exists. The wrong-peer cases run over real
loopback TCP: the simulated bench served by sim_instruments.server, and a local server that answers like a
web server.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from drivers import SR570
from drivers.identity import IdentityError, identity_spec, verify_identity
from labctl.cli import main
from labctl.config import ConfigError, parse_station
from labctl.plugins import instrument_registrations, registration
from labctl.station import Station, StationError
from sim_instruments import emulator_factory, make_emulator
from sim_instruments.adapter import EmulatorAdapter
from sim_instruments.clock import RealClock, VirtualClock
from sim_instruments.compose import build_bench
from sim_instruments.serve import served_station
from sim_instruments.server import serve
from tests.helpers import default_station
from tests.loopback import LoopbackPeer, recording_http_400

#: driver class of each station.yaml driver name (the instrument plug-ins)
REGISTRY = {name: reg.driver for name, reg in instrument_registrations().items()}

#: terminations each driver's instrument uses (as in the default station.yaml; the SR570 as docs/station-yaml.md);
#: a pair is (read, write)
TERMINATIONS = {"keithley2400": "\n", "keithley2420": "\n", "keithley2450": "\n", "sr830": "\n",
                "thorlabs_sc10": "\r", "thorlabs_fw102c": "\r", "sr570": "\r",
                "cornerstone260": "\r\n", "cornerstone130": "\r\n", "oxxius_laserboxx": ("\r\n", "\r"),
                "thorlabs_pm100d": "\n", "thorlabs_pm100usb": "\n", "keysight_n9010a": "\n",
                "keysight_33500b": "\n", "lakeshore211": "\r\n", "keithley7001": "\n", "numato_relay8": ("\n\r", "\r")}
PREAMP = {"driver": "sr570", "resource": "sim://preamp", "baud_rate": 9600, "read_termination": "\r",
          "write_termination": "\r"}


class Recorder:
    """Wraps an emulator's ``handle`` so a test can see every message the instrument received."""

    def __init__(self, emulator) -> None:
        self.messages: list[str] = []
        self._handle = emulator.handle
        emulator.handle = self

    def __call__(self, message: str):
        self.messages.append(message)
        return self._handle(message)


def _invoke(args):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# ----------------------------------------------------------------------------------------- declarations


@pytest.mark.parametrize(
    ("driver", "reply"),
    [  # the replies of real units as quoted in the instrument reference (instruments.md §1.1, §2, §3, §5, §7)
        ("keithley2400", "KEITHLEY INSTRUMENTS INC.,MODEL 2400,1248014,C30   Mar 17 2006 09:29:29/A02  /K/J"),
        ("keithley2400", "KEITHLEY INSTRUMENTS INC.,MODEL 2400,4473504,C34 Sep 21 2016"),
        ("keithley2420", "KEITHLEY INSTRUMENTS INC.,MODEL 2420,1234567,C34 Sep 21 2016"),
        ("keithley2450", "KEITHLEY INSTRUMENTS INC.,MODEL 2450,01234567,1.0.0i"),
        ("keithley2450", "KEITHLEY INSTRUMENTS,MODEL 2450,04096331,1.6.4c"),
        ("sr830", "Stanford_Research_Systems,SR830,s/n46117,ver1.07"),
        ("thorlabs_fw102c", "THORLABS FW102C/FW212C Filter Wheel version 1.07"),
        ("thorlabs_sc10", "THORLABS SC10 VERSION 1.07"),
        ("oxxius_laserboxx", "LBX-488-100-CSB-PPA"),  # INF?: type-wavelength nm-power mW-..., as drivers parse it
        ("thorlabs_pm100d", "Thorlabs,PM100D,P0012345,2.6.0"),
        ("thorlabs_pm100usb", "Thorlabs,PM100USB,P2001234,1.7.0"),
        ("keysight_n9010a", "Agilent Technologies,N9010A,MY51234567,A.14.16"),  # instruments ref. §6.1
        ("keysight_n9010a", "Keysight Technologies,N9010A,MY51234567,A.25.05"),
        ("keysight_33500b", "Agilent Technologies,33522B,MY52800000,3.05-1.19-2.00-52-00"),  # [L] example values
        ("lakeshore211", "LSCI,MODEL211,21A0000,022607"),  # the Model 211 manual's example (§4.1.6.2)
    ],
)
def test_each_driver_accepts_its_model_and_no_other_drivers_does(driver, reply):
    assert identity_spec(REGISTRY[driver]).matches(reply)
    others = [name for name, cls in REGISTRY.items() if name != driver and identity_spec(cls).matches(reply)]
    assert others == []


@pytest.mark.parametrize(
    "reply",
    ["HTTP/1.1 400 Bad Request", "", "1", "0,\"No error\"", "KEITHLEY INSTRUMENTS INC.,MODEL 24000,1,A",
     "MODEL 2400", "SR830", "Stanford_Research_Systems,SR850,s/n1,ver1.0"],
)
def test_nothing_else_is_an_identity(reply):
    assert [name for name, cls in REGISTRY.items() if identity_spec(cls).matches(reply)] == []


def test_every_driver_declares_its_identity_and_the_sr570_is_explicitly_listen_only():
    specs = {name: identity_spec(cls) for name, cls in REGISTRY.items()}
    assert [name for name, spec in specs.items() if spec.is_listen_only] == ["sr570"]
    assert SR570.IDENTITY.query is None and "listen-only" in SR570.IDENTITY.expected
    assert all(spec.query and spec.accepts and spec.expected for name, spec in specs.items() if name != "sr570")


# ------------------------------------------------------------- every driver against every emulator, in-process


def _bench():
    return build_bench(parse_station(default_station()), VirtualClock())


@pytest.mark.parametrize("driver", [name for name in REGISTRY if name != "sr570"])
def test_a_driver_accepts_only_its_own_model_and_sends_nothing_after_the_identity_query(driver):
    """Each driver against each emulator: accepted only for the same model; only the identity query reaches
    the instrument either way (nothing is sent before it, or after a refusal)."""
    bench = _bench()
    cls, term = REGISTRY[driver], TERMINATIONS[driver]
    read_term, write_term = term if isinstance(term, tuple) else (term, term)
    for peer in REGISTRY:
        emulator = make_emulator(registration(peer), bench)
        received = Recorder(emulator)
        instrument = cls(EmulatorAdapter(emulator, read_termination=read_term, write_termination=write_term))
        if peer == driver:
            assert identity_spec(cls).matches(verify_identity(instrument))
        else:
            with pytest.raises(IdentityError) as info:
                verify_identity(instrument)
            assert identity_spec(cls).expected in str(info.value), peer
        assert received.messages == [identity_spec(cls).query], peer


class EchoOnly:
    """A serial peer that echoes every line and answers nothing (as a Cornerstone does to a failed query)."""

    echo = True

    def __init__(self) -> None:
        self.messages: list[str] = []

    def handle(self, message: str) -> None:
        self.messages.append(message)


def test_an_unanswered_cornerstone_identity_query_is_not_followed_by_its_error_diagnosis():
    """Other Cornerstone queries ask STB?/ERROR? when no answer comes; the identity query must not."""
    peer = EchoOnly()
    mono = REGISTRY["cornerstone260"](EmulatorAdapter(peer, read_termination="\r\n", write_termination="\r\n"))
    with pytest.raises(IdentityError, match="no answer to 'INFO\\?'"):
        verify_identity(mono)
    assert peer.messages == ["INFO?"]


# ------------------------------------------------------------------------ the wrong instrument over real TCP


@pytest.fixture(scope="module")
def tcp_bench():
    """The default bench plus an SR570 preamp, served on 127.0.0.1 (real time); yields (config, resources,
    role -> Recorder of what that instrument received)."""
    data = default_station()
    data["instruments"]["preamp"] = dict(PREAMP)
    config = parse_station(data)
    bench = build_bench(config, RealClock())
    recorders, instruments = {}, {}
    for role, inst in config.instruments.items():
        emulator = make_emulator(inst.registration, bench)
        recorders[role] = Recorder(emulator)
        instruments[role] = (emulator, inst.read_termination, inst.write_termination)
    serial = {role for role, inst in config.instruments.items() if inst.registration.connection.serial}
    server = serve(instruments, serial=serial)
    try:
        yield config, server.resource_strings(), recorders
    finally:
        server.close()


def _served(config, resources, tmp_path: Path, **moved: str) -> tuple[Path, dict]:
    """A station file pointing at the served bench; ``moved`` points roles at another role's port."""
    data = served_station(config, resources)
    for role, other in moved.items():
        data["instruments"][role]["resource"] = resources[other]
    path = tmp_path / "station.yaml"
    path.write_text(yaml.safe_dump(data))
    return path, data


def test_smu_at_the_lockins_port_is_refused_in_one_line_exit_2_no_file(tcp_bench, tmp_path):
    config, resources, recorders = tcp_bench
    for recorder in recorders.values():
        recorder.messages.clear()
    station_path, data = _served(config, resources, tmp_path, smu="lockin")
    res = _invoke(["run", "jv", "--station", str(station_path), "--out", str(tmp_path / "runs")])
    assert res.exit_code == 2, res.output
    lines = _lines(res.output)
    assert len(lines) == 1, res.output
    line = lines[0]
    resource = resources["lockin"]
    assert resource.startswith("TCPIP::127.0.0.1::") and data["instruments"]["smu"]["resource"] == resource
    for fragment in ("'smu'", resource, "'*IDN?'", "Stanford_Research_Systems,SR830",  # role, resource, answer
                     "KEITHLEY INSTRUMENTS INC.,MODEL 2400"):  # and what was expected
        assert fragment in line, line
    assert recorders["lockin"].messages == ["*IDN?"]  # nothing before the identity query, nothing after it
    assert recorders["smu"].messages == []
    assert not list(tmp_path.rglob("*.h5"))


def test_monochromator_at_the_filter_wheels_port_is_refused(tcp_bench, tmp_path):
    """A serial console at the wrong port (ASRLsocket): the Cornerstone's INFO? meets the FW102C's console."""
    config, resources, recorders = tcp_bench
    recorders["filter_wheel"].messages.clear()
    _, data = _served(config, resources, tmp_path, monochromator="filter_wheel")
    data["instruments"]["monochromator"]["timeout_ms"] = 500
    station = Station(parse_station(data))
    with pytest.raises(StationError) as info:
        station.connect(["monochromator"])
    message = str(info.value)
    assert "\n" not in message and "'monochromator'" in message and resources["filter_wheel"] in message
    assert "'INFO?'" in message and "CORNERSTONE 260" in message
    assert station.instruments == {}
    assert recorders["filter_wheel"].messages == ["INFO?"]


def test_the_right_instruments_connect_and_their_verified_identities_are_recorded(tcp_bench, tmp_path):
    config, resources, recorders = tcp_bench
    for recorder in recorders.values():
        recorder.messages.clear()
    _, data = _served(config, resources, tmp_path)
    station = Station(parse_station(data))
    try:
        station.connect()
        idn = station.idn()
    finally:
        station.close()
    assert "MODEL 2400" in idn["smu"] and "SR830" in idn["lockin"] and "SC10" in idn["shutter"]
    assert "FW102C" in idn["filter_wheel"] and "CORNERSTONE 260" in idn["monochromator"]
    # each instrument received exactly its identity query, once (idn() does not ask again)
    queries = {role: identity_spec(REGISTRY[config.instruments[role].driver]).query for role in recorders}
    assert {role: r.messages for role, r in recorders.items() if role != "preamp"} == {
        role: [q] for role, q in queries.items() if role != "preamp"}


def test_a_listen_only_instrument_connects_without_any_query(tcp_bench, tmp_path):
    config, resources, recorders = tcp_bench
    recorders["preamp"].messages.clear()
    _, data = _served(config, resources, tmp_path)
    assert data["instruments"]["preamp"]["resource"].startswith("ASRLsocket://127.0.0.1:")
    station = Station(parse_station(data))
    try:
        station.connect(["preamp"])
        assert station.idn() == {"preamp": SR570.IDENTITY.expected}
    finally:
        station.close()
    assert recorders["preamp"].messages == []


# ------------------------------------------------------------------------------------- a garbage TCP peer


def _smu_at(port: int, tmp_path: Path) -> tuple[Path, dict]:
    data = default_station()
    data["instruments"]["smu"].update(resource=f"TCPIP::127.0.0.1::{port}::SOCKET", timeout_ms=2000)
    path = tmp_path / "station.yaml"
    path.write_text(yaml.safe_dump(data))
    return path, data


def test_an_http_400_is_not_an_identity(tmp_path):
    sent = bytearray()
    with LoopbackPeer(recording_http_400(sent)) as peer:
        _, data = _smu_at(peer.port, tmp_path)
        station = Station(parse_station(data))
        with pytest.raises(StationError) as info:
            station.connect(["smu"])
        received = bytes(sent)
    message = str(info.value)
    assert "\n" not in message and "'smu'" in message and f"127.0.0.1::{peer.port}" in message
    assert "HTTP/1.1 400 Bad Request" in message and "MODEL 2400" in message
    assert station.instruments == {}
    assert received == b"*IDN?\n"  # the identity query was the first and only thing sent


def test_an_http_400_peer_ends_the_run_before_it_starts(tmp_path):
    with LoopbackPeer(recording_http_400(bytearray())) as peer:
        station_path, _ = _smu_at(peer.port, tmp_path)
        res = _invoke(["run", "jv", "--station", str(station_path), "--out", str(tmp_path / "runs")])
    assert res.exit_code == 2, res.output
    lines = _lines(res.output)
    assert len(lines) == 1 and "HTTP/1.1 400 Bad Request" in lines[0], res.output
    assert not list(tmp_path.rglob("*.h5"))


# --------------------------------------------------------------------------------------------- sim://<name>


def test_sim_name_must_be_the_benchs_instrument_of_that_kind(tmp_path):
    data = default_station()
    data["instruments"]["smu"]["resource"] = "sim://lockin"
    with pytest.raises(ConfigError) as info:
        parse_station(data)
    message = str(info.value)
    assert "\n" not in message
    assert "instruments.smu.resource = 'sim://lockin'" in message and "'sim://smu'" in message


def test_a_misspelt_sim_name_is_one_line_exit_2_and_no_file(tmp_path):
    data = default_station()
    data["instruments"]["shutter"]["resource"] = "sim://shuter"
    path = tmp_path / "station.yaml"
    path.write_text(yaml.safe_dump(data))
    res = _invoke(["run", "jv", "--station", str(path), "--out", str(tmp_path / "runs")])
    assert res.exit_code == 2, res.output
    lines = _lines(res.output)
    assert len(lines) == 1, res.output
    assert "instruments.shutter.resource" in lines[0] and "'sim://shuter'" in lines[0]
    assert "'sim://shutter'" in lines[0]
    assert not list(tmp_path.rglob("*.h5"))


def test_every_driver_has_a_sim_name_and_make_emulator_checks_it():
    assert all(emulator_factory(reg).SIM_NAMES for reg in instrument_registrations().values())
    bench = _bench()
    with pytest.raises(ValueError, match="'sim://smu'"):
        make_emulator(registration("keithley2400"), bench, name="lockin")
    make_emulator(registration("keithley2400"), bench, name="smu")
