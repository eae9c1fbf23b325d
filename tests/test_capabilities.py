"""Capabilities (issue 8, item 1): a procedure asks for a role and a capability and gets a clear error before any
I/O when the station cannot provide it; the light is a shutter, the simulated solar simulator or the operator."""

from __future__ import annotations

import pytest
import yaml
from click.testing import CliRunner

from labctl.capabilities import OperatorLight, ShutterLight, SourceMeter
from labctl.cli import main
from labctl.config import ConfigError, parse_station
from labctl.station import Station, StationError
from procedures.jv import JVProcedure
from tests.helpers import default_station

UNREACHABLE = "TCPIP::127.0.0.1::1::SOCKET"  # nothing listens on port 1: any I/O would fail loudly


def _hardware_station_without_shutter() -> Station:
    return Station(parse_station({"instruments": {"smu": {"driver": "keithley2400", "resource": UNREACHABLE}}}))


def test_require_gives_the_instrument_that_offers_the_capability():
    station = Station(parse_station(default_station()))
    station.connect(["smu", "lockin"])
    try:
        smu = station.require("smu", "source_meter")
        assert smu is station["smu"] and isinstance(smu, SourceMeter)
        assert station.require("smu", SourceMeter) is smu  # the protocol itself names it too
        with pytest.raises(ConfigError) as info:
            station.require("lockin", "source_meter")
        assert str(info.value) == ("the run needs instrument 'lockin' to be a source_meter, and the station's "
                                   "'lockin' is a sr830, which offers: lock_in (instruments.lockin.driver)")
    finally:
        station.close()


def test_a_missing_role_names_the_roles_that_offer_it_and_sends_nothing():
    station = Station(parse_station(default_station()))
    with pytest.raises(ConfigError, match=r"needs instrument 'sun' \(shutter\) .*'monochromator', 'shutter' offers it"):
        station.check_capability("sun", "shutter")
    with pytest.raises(ValueError, match="unknown capability 'teleporter'"):
        station.offers("smu", "teleporter")
    assert station.instruments == {}


def test_run_jv_with_a_lockin_as_smu_is_one_line_before_any_io(tmp_path):
    data = default_station()
    data["instruments"]["smu"] = {"driver": "sr830", "resource": "sim://lockin"}
    path = tmp_path / "station.yaml"
    path.write_text(yaml.safe_dump(data))
    res = CliRunner().invoke(main, ["run", "jv", "--station", str(path), "--out", str(tmp_path / "runs")])
    assert res.exit_code == 2, res.output
    out = [line for line in res.output.splitlines() if line.strip()]
    assert len(out) == 1 and "procedure jv needs instrument 'smu' to be a source_meter" in out[0], res.output
    assert not list(tmp_path.rglob("*.h5"))


def test_the_light_is_the_shutter_when_there_is_one():
    station = Station(parse_station(default_station()))
    light = station.light()
    assert isinstance(light, ShutterLight) and station.light() is light
    station.connect(["shutter"])
    try:
        light.set_light(True)
        assert station["shutter"].shutter_open is True  # read back from the shutter controller
        light.set_light(False)
        assert station["shutter"].shutter_open is False
    finally:
        station.close()


def test_without_a_shutter_and_nobody_there_a_lit_jv_is_refused_before_any_io():
    station = _hardware_station_without_shutter()
    assert isinstance(station.light(), OperatorLight)
    with pytest.raises(ConfigError, match=r"^parameter light = true: nothing can turn the light on: the station has "
                                          r"no shutter and nobody is there to ask"):
        JVProcedure().validate(station)
    dark = JVProcedure()
    dark.light = False
    dark.validate(station)  # a dark J-V needs no light control
    with pytest.raises(StationError, match="nothing can turn the light on"):
        station.light().set_light(True)
    station.light().set_light(False)  # nothing to do, nobody to ask: left as it is
    assert station.instruments == {}


def test_the_operator_is_asked_once_per_change():
    station = _hardware_station_without_shutter()
    asked: list[str] = []
    station.operator = asked.append
    JVProcedure().validate(station)  # somebody is there: the lit J-V may run
    light = station.light()
    light.set_light(True)
    light.set_light(True)
    light.set_light(False)
    assert asked == ["Turn the light on (no shutter in the station), then press Enter",
                     "Turn the light off (no shutter in the station), then press Enter"]
