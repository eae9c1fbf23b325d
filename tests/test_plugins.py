"""Instruments are plug-ins (issue 8, item 1).

A plug-in instrument is defined entirely in this file — driver, emulator and registration, registered
in-process (:func:`labctl.plugins.register_instrument`) — and, with no change under ``labctl/``, it is validated
by station.yaml (its own ``settings``), found by ``labctl station check``, used by a procedure through its
capability, made safe by its own action and reconnected. Its emulator is served on a loopback TCP port, so the
real VISA path is used (pyvisa-py, as with hardware). Also: the built-in instruments' entry points declared in
pyproject.toml all load, each naming itself as its entry point does.
"""

from __future__ import annotations

import importlib
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from pydantic import BaseModel, ConfigDict, Field
from pymeasure.instruments import Instrument

from drivers.identity import IdentitySpec
from drivers.registration import ConnectionDefaults, InstrumentRegistration
from labctl.cli import main
from labctl.config import ConfigError, parse_station
from labctl.engine import RunEngine
from labctl.plugins import (
    instrument_problems,
    instrument_registrations,
    register_instrument,
    registration,
    unregister_instrument,
)
from labctl.station import Station, StationError
from labctl.storage import Column, load_run
from procedures.base import LabProcedure, StreamSpec
from tests.loopback import LoopbackPeer, lines

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
IDN = "ACME,TC-1,0042,1.0"


# -- the plug-in: a made-up "ACME TC-1" thermometer with a heater ------------------------------------------------
class AcmeTC1(Instrument):
    """ACME TC-1: ``*IDN?``, ``TEMP?`` (K), ``AVER n`` / ``AVER?``, ``HEAT 0|1`` / ``HEAT?``, ``ERR?``."""

    IDENTITY = IdentitySpec(query="*IDN?", accepts=(r"ACME,TC-1,",), expected="ACME,TC-1,<serial>,<firmware>")

    def __init__(self, adapter: Any, name: str = "ACME TC-1 thermometer", **kwargs: Any) -> None:
        super().__init__(adapter, name, includeSCPI=False, **kwargs)

    @property
    def id(self) -> str:
        return self.ask("*IDN?").strip()

    def read_temperature_K(self) -> float:
        return float(self.ask("TEMP?"))

    def set_averages(self, count: int) -> None:
        self.write(f"AVER {count:d}")

    def heater_off(self) -> None:
        self.write("HEAT 0")

    def heater_is_on(self) -> bool:
        return self.ask("HEAT?").strip() == "1"

    def check_errors(self) -> list[tuple[int, str]]:
        code, _, message = self.ask("ERR?").strip().partition(",")
        return [] if int(code) == 0 else [(int(code), message)]


class AcmeTC1Emulator:
    """What the TC-1 answers (one line per command), and what it was told; on the simulated bench it reads the
    simulated cell's temperature, served alone it reads 301.25 K."""

    #: the sim://<name> resources it can be on the simulated bench
    SIM_NAMES = ("thermo",)

    def __init__(self, bench: Any = None) -> None:
        self.temperature_K = 301.25 if bench is None else bench.cell.params.temperature_K
        self.averages = 1
        self.heater = 1
        self.errors: list[str] = []
        self.aver_commands = 0
        self.max_averages = 64

    def handle(self, command: str) -> str | None:
        head, _, arg = command.strip().partition(" ")
        if head == "*IDN?":
            return IDN
        if head == "TEMP?":
            return f"{self.temperature_K:.3f}"
        if head == "AVER":
            self.aver_commands += 1
            if int(arg) > self.max_averages:  # an older firmware's limit
                self.errors.append('-222,"Data out of range"')
            else:
                self.averages = int(arg)
            return None
        if head == "AVER?":
            return str(self.averages)
        if head == "HEAT":
            self.heater = int(arg)
            return None
        if head == "HEAT?":
            return str(self.heater)
        if head == "ERR?":
            return self.errors.pop(0) if self.errors else "0,No error"
        self.errors.append(f'-113,"Undefined header {head}"')
        return None


class AcmeSettings(BaseModel):
    """``instruments.<role>.settings`` of a TC-1."""

    model_config = ConfigDict(extra="forbid")
    averages: int = Field(4, ge=1, le=64, description="readings averaged per TEMP?")


def configure_acme(inst: AcmeTC1, settings: AcmeSettings) -> None:
    inst.set_averages(settings.averages)
    errors = inst.check_errors()
    if errors:
        raise RuntimeError(f"AVER {settings.averages}: {errors}")


def acme_safe_state(inst: AcmeTC1, settings: AcmeSettings) -> str:
    inst.heater_off()
    if inst.heater_is_on():
        raise RuntimeError("the heater still reads on after 'HEAT 0'")
    return "heater off (heater reads off)"


ACME_REGISTRATION = InstrumentRegistration(
    name="acme_tc1",
    driver=AcmeTC1,
    model="ACME TC-1",
    capabilities=("temperature_sensor",),
    connection=ConnectionDefaults(read_termination="\n", write_termination="\n", timeout_ms=2000),
    settings=AcmeSettings,
    configure=configure_acme,
    safe_state=acme_safe_state,
    emulator=f"{__name__}:AcmeTC1Emulator",
)


class TemperatureLog(LabProcedure):
    """A tiny procedure: read the temperature three times."""

    NAME = "temperature-log"
    REQUIRES = {"thermo": "temperature_sensor"}
    STREAMS = {"temperature": StreamSpec([Column("index", ""), Column("temperature_K", "K")],
                                         signal="temperature_K", axes="index")}

    def execute(self) -> None:
        thermo = self.station.require("thermo", "temperature_sensor")
        for i in range(3):
            self.record("temperature", {"index": i, "temperature_K": thermo.read_temperature_K()})


# -- fixtures ------------------------------------------------------------------------------------------------
@pytest.fixture
def plugin():
    register_instrument(ACME_REGISTRATION)
    yield ACME_REGISTRATION
    unregister_instrument(ACME_REGISTRATION.name)


class Served:
    """The emulator on a loopback TCP port; counts connections."""

    def __init__(self) -> None:
        self.emulator = AcmeTC1Emulator()
        self.connections = 0
        self._lock = threading.Lock()
        self.peer = LoopbackPeer(self._handler)

    def _handler(self, conn: Any, stop: threading.Event) -> None:
        self.connections += 1
        for message in lines(conn, stop):
            with self._lock:
                reply = self.emulator.handle(message)
            if reply is not None:
                conn.sendall(reply.encode() + b"\n")


@pytest.fixture
def served():
    s = Served()
    with s.peer:
        yield s


def _station_data(resource: str, **settings: Any) -> dict:
    thermo: dict[str, Any] = {"driver": "acme_tc1", "resource": resource}
    if settings:
        thermo["settings"] = settings
    return {"station": {"name": "plugin-bench"}, "instruments": {"thermo": thermo}}


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "station.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


# -- the plug-in, end to end ---------------------------------------------------------------------------------
def test_station_check_finds_the_plugin_and_applies_its_settings(plugin, served, tmp_path):
    path = _write(tmp_path, _station_data(served.peer.resource, averages=8))
    res = CliRunner().invoke(main, ["station", "check", "--station", str(path)])
    assert res.exit_code == 0, res.output
    assert "thermo: acme_tc1 at TCPIP::127.0.0.1::" in res.output
    assert "offers: temperature_sensor" in res.output
    assert IDN in res.output and "errors: none" in res.output
    assert served.emulator.averages == 8  # the registration's configure, with the station file's settings


def test_the_plugins_settings_are_validated_by_its_model_before_any_io(plugin, served, tmp_path):
    path = _write(tmp_path, _station_data(served.peer.resource, averages=0))
    res = CliRunner().invoke(main, ["station", "check", "--station", str(path)])
    assert res.exit_code == 2, res.output
    out = [line for line in res.output.splitlines() if line.strip()]
    assert len(out) == 1 and "instruments.thermo.settings.averages = 0" in out[0], res.output
    assert served.connections == 0
    with pytest.raises(ConfigError, match=r"unknown key 'instruments\.thermo\.settings\.averagez'"):
        parse_station(_station_data(served.peer.resource, averagez=3))


def test_connection_keys_left_out_are_the_registrations(plugin, served):
    cfg = parse_station(_station_data(served.peer.resource)).instruments["thermo"]
    assert (cfg.read_termination, cfg.write_termination, cfg.timeout_ms, cfg.baud_rate) == ("\n", "\n", 2000, None)
    assert cfg.settings == AcmeSettings(averages=4)
    data = _station_data(served.peer.resource)
    data["instruments"]["thermo"].update(timeout_ms=750, write_termination="\r\n")  # the station file overrides
    cfg = parse_station(data).instruments["thermo"]
    assert (cfg.read_termination, cfg.write_termination, cfg.timeout_ms) == ("\n", "\r\n", 750)


def test_a_procedure_uses_the_plugin_through_its_capability(plugin, served, tmp_path):
    station = Station(parse_station(_station_data(served.peer.resource)))
    result = RunEngine(station, tmp_path / "runs", sample="plug").run(TemperatureLog())
    assert result.status == "completed", result.error
    data = load_run(result.path)
    assert data.streams["temperature"]["temperature_K"].tolist() == [301.25] * 3  # the emulator's 301.25 K
    assert data.idn["thermo"] == IDN
    # made safe by the registration's own action (station.yaml gives no safe_state keys)
    outcomes = [(o.role, o.ok, o.detail) for o in station.safe_report]
    assert outcomes == [("thermo", True, "heater off (heater reads off)")]
    assert served.emulator.heater == 0


def test_a_role_without_the_capability_is_refused_before_any_io(plugin, served):
    class NeedsSMU(TemperatureLog):
        NAME = "needs-smu"
        REQUIRES = {"thermo": "source_meter"}

    station = Station(parse_station(_station_data(served.peer.resource)))
    with pytest.raises(ConfigError) as info:
        RunEngine(station, "unused", sample="x").run(NeedsSMU())
    message = str(info.value)
    assert "'thermo'" in message and "source_meter" in message and "acme_tc1" in message
    assert "temperature_sensor" in message and "\n" not in message
    assert served.connections == 0


def test_reconnect_reopens_verifies_and_reapplies_the_settings(plugin, served):
    station = Station(parse_station(_station_data(served.peer.resource, averages=16)))
    station.connect()
    first = station["thermo"]
    first.read_temperature_K()  # a round trip: the server has handled what came before
    assert served.emulator.aver_commands == 1
    served.emulator.averages = 1  # e.g. the instrument was power-cycled
    again = station.reconnect("thermo")
    assert again is station["thermo"] and again is not first
    assert again.read_temperature_K() == pytest.approx(301.25)
    assert served.connections == 2 and station.identities["thermo"] == IDN
    assert served.emulator.aver_commands == 2 and served.emulator.averages == 16
    station.close()


def test_settings_the_instrument_refuses_are_one_station_error_and_it_is_not_kept(plugin, served):
    served.emulator.max_averages = 32
    station = Station(parse_station(_station_data(served.peer.resource, averages=48)))
    with pytest.raises(StationError, match=r"^instrument 'thermo' \(acme_tc1\) at TCPIP::.* refused its settings "
                                           r"\(instruments\.thermo\.settings\): RuntimeError: AVER 48: "):
        station.connect()
    assert "thermo" not in station and station.configurations == {}


def test_register_instrument_refuses_a_taken_name(plugin):
    with pytest.raises(ValueError, match="keithley2400"):
        register_instrument(InstrumentRegistration(name="keithley2400", driver=AcmeTC1, model="ACME TC-1"))
    assert registration("acme_tc1") is ACME_REGISTRATION
    unregister_instrument("acme_tc1")
    with pytest.raises(ConfigError, match="unknown driver"):
        parse_station(_station_data("TCPIP::127.0.0.1::1::SOCKET"))


# -- the same plug-in on the simulated bench (sim://): the simulator makes its emulator from the registration --
def _simulated_station(name: str = "thermo") -> dict:
    return {"station": {"name": "plugin-sim"}, "instruments": {"thermo": {"driver": "acme_tc1", "resource": f"sim://{name}"}},
            "simulation": {"enabled": True, "device": {"temperature_K": 310.5}}}


def test_station_check_finds_the_simulated_plugin(plugin, tmp_path):
    res = CliRunner().invoke(main, ["station", "check", "--station", str(_write(tmp_path, _simulated_station()))])
    assert res.exit_code == 0, res.output
    assert "thermo: acme_tc1 at sim://thermo" in res.output and "offers: temperature_sensor" in res.output
    assert IDN in res.output and "errors: none" in res.output


def test_a_procedure_reads_the_simulated_cell_through_the_plugin(plugin, tmp_path):
    station = Station(parse_station(_simulated_station()))
    result = RunEngine(station, tmp_path / "runs", sample="plug").run(TemperatureLog())
    assert result.status == "completed", result.error
    # the station file's simulation.device.temperature_K, read by the plug-in's emulator on the bench
    assert load_run(result.path).streams["temperature"]["temperature_K"].tolist() == [310.5] * 3


def test_a_sim_name_the_plugins_emulator_cannot_be_is_refused(plugin):
    with pytest.raises(ConfigError, match=r"instruments\.thermo\.resource = 'sim://oven'.*'sim://thermo'"):
        parse_station(_simulated_station("oven"))


# -- the built-in instruments register the same way -----------------------------------------------------------
def _declared_entry_points() -> dict[str, str]:
    with open(REPO / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["entry-points"]["labctl.instruments"]


def test_every_declared_instrument_entry_point_loads_and_names_itself():
    declared = _declared_entry_points()
    assert len(declared) == 17  # with keithley7001 and numato_relay8 (issue 12)
    for name, target in declared.items():
        module, _, attr = target.partition(":")
        reg = getattr(importlib.import_module(module), attr)
        assert isinstance(reg, InstrumentRegistration), name
        assert reg.name == name, (name, reg.name)
        assert reg.capabilities and reg.safe_state is not None, name
        emulator_module = reg.emulator.partition(":")[0]
        assert emulator_module.startswith("sim_instruments."), (name, reg.emulator)
    assert set(instrument_registrations()) >= set(declared) and instrument_problems() == {}


def test_the_builtin_connection_defaults_are_the_manuals():
    """Terminations and baud rates from the instruments' manuals (and docs/station-yaml.md)."""
    manuals = {"keithley2400": ("\n", None), "keithley2420": ("\n", None), "keithley2450": ("\n", None),
               "sr830": ("\n", None), "thorlabs_sc10": ("\r", 9600), "thorlabs_fw102c": ("\r", 115200),
               "sr570": ("\r", 9600), "cornerstone260": ("\r\n", 9600), "cornerstone130": ("\r\n", 9600),
               "thorlabs_pm100d": ("\n", None), "thorlabs_pm100usb": ("\n", None)}
    for name, (term, baud) in manuals.items():
        conn = registration(name).connection
        assert (conn.read_termination, conn.write_termination, conn.baud_rate) == (term, term, baud), name
    # the LaserBoxx reads CR LF and takes CR (instruments ref. §8.1)
    conn = registration("oxxius_laserboxx").connection
    assert (conn.read_termination, conn.write_termination, conn.baud_rate) == ("\r\n", "\r", 9600)


def test_a_builtin_settings_error_names_its_key():
    data = yaml.safe_load((REPO / "station.yaml").read_text())
    data["instruments"]["filter_wheel"]["settings"] = {"speed": "fast"}
    with pytest.raises(ConfigError, match=r"instruments\.filter_wheel\.settings\.speed = 'fast'"):
        parse_station(data)
    data["instruments"]["smu"]["settings"] = {"x": 1}
    data["instruments"]["filter_wheel"]["settings"] = {"speed": "slow"}
    with pytest.raises(ConfigError, match=r"instruments\.smu\.settings: a keithley2400 takes no settings"):
        parse_station(data)


def test_a_builtin_configure_applies_its_settings_after_the_identity():
    data = yaml.safe_load((REPO / "station.yaml").read_text())
    data["instruments"]["filter_wheel"]["settings"] = {"speed": "slow", "sensors_always_on": True}
    station = Station(parse_station(data))
    station.connect(["filter_wheel"])
    try:
        wheel = station["filter_wheel"]
        assert (wheel.speed_high, wheel.sensors_always_on) == (False, True)  # read back from the controller
    finally:
        station.close()


def test_labctl_finds_instruments_only_through_the_plugins_not_a_second_table():
    import drivers

    assert not hasattr(drivers, "REGISTRY")  # the one list of instruments is labctl.plugins'
