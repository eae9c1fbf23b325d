"""station.yaml ``layouts:``: every mistake is one line naming the key, the value and what is allowed, found
before any instrument is touched (the fake switch's log stays empty)."""

from __future__ import annotations

import pytest
import yaml
from click.testing import CliRunner

from labctl.cli import main
from labctl.config import ConfigError, parse_station
from tests import substrate_fakes
from tests.substrate_fakes import substrate_station


@pytest.fixture(autouse=True)
def fake_switch():
    substrate_fakes.register()
    substrate_fakes.LOG.clear()
    yield
    substrate_fakes.LOG.clear()


def _error(data: dict) -> str:
    with pytest.raises(ConfigError) as info:
        parse_station(data)
    text = str(info.value)
    assert "\n" not in text, text  # one line
    return text


def test_a_good_layout_parses_with_its_defaults():
    config = parse_station(substrate_station(pixels=3))
    name, layout = config.layout()
    assert name == "test4" and [p.name for p in layout.pixels] == ["1", "2", "3"]
    assert layout.contact_check.enabled and layout.contact_check.max_resistance_ohm == 1.0e7
    assert layout.pixel("2").channel == 2 and layout.pixel("2").smu == "smu"


def test_duplicate_pixel_name():
    data = substrate_station()
    data["layouts"]["test4"]["pixels"][2]["name"] = "1"
    assert "layouts.test4.pixels[2].name = '1': used by pixels[0] too; allowed: one pixel per name" in _error(data)


def test_duplicate_channel():
    data = substrate_station()
    data["layouts"]["test4"]["pixels"][3]["channel"] = 2
    assert ("layouts.test4.pixels[3].channel = 2: pixel '2' is on that channel too; allowed: one pixel per switch "
            "channel") in _error(data)


def test_unknown_smu_role():
    data = substrate_station()
    data["layouts"]["test4"]["pixels"][1]["smu"] = "smu9"
    text = _error(data)
    assert "layouts.test4.pixels[1].smu = 'smu9': no such instrument (the station has: " in text
    assert "switch" in text and "shutter" in text


def test_a_smu_role_that_is_not_a_source_meter():
    data = substrate_station()
    data["layouts"]["test4"]["pixels"][0]["smu"] = "shutter"
    assert ("layouts.test4.pixels[0].smu = 'shutter': a thorlabs_sc10, which offers shutter; allowed: an instrument "
            "that offers source_meter") in _error(data)


def test_a_switch_role_that_is_not_a_switch_matrix():
    data = substrate_station()
    data["layouts"]["test4"]["switch"] = "smu"
    assert "layouts.test4.switch = 'smu': a keithley2400, which offers source_meter" in _error(data)
    assert "allowed: an instrument that offers switch_matrix" in _error(data)


def test_a_channel_the_switch_does_not_have():
    data = substrate_station()
    data["layouts"]["test4"]["pixels"][0]["channel"] = 11  # the fake switch has 1-10 (its driver's CHANNELS)
    assert "layouts.test4.pixels[0].channel = 11: the fake_switch has no such channel (allowed: 1-10)" in _error(data)


@pytest.mark.parametrize("name", ["all", "1 2", "a,b", ""])
def test_a_pixel_name_that_could_not_be_typed_in_pixels(name):
    data = substrate_station()
    data["layouts"]["test4"]["pixels"][0]["name"] = name
    text = _error(data)
    assert "layouts.test4.pixels.0.name" in text


def test_a_contact_bias_that_would_stress_the_cell():
    data = substrate_station(contact={"bias_V": 1.0})
    assert ("layouts.test4.contact_check.bias_V = 1.0: allowed: 0 < |bias_V| <= 0.5 V") in _error(data)


def test_station_layout_must_name_a_layout():
    data = substrate_station()
    data["station"]["layout"] = "qd8"
    assert "station.layout = 'qd8': no such layout (allowed: test4)" in _error(data)


def test_two_layouts_need_a_choice():
    config = parse_station({**substrate_station(), "layouts": {
        "a": substrate_station()["layouts"]["test4"], "b": substrate_station()["layouts"]["test4"]}})
    with pytest.raises(ConfigError, match=r"the station has 2 layouts \(a, b\): give --layout NAME"):
        config.layout()
    assert config.layout("b")[0] == "b"
    with pytest.raises(ConfigError, match=r"--layout = 'c': no such layout \(allowed: a, b\)"):
        config.layout("c")


def test_a_station_without_layouts_refuses_pixels():
    data = substrate_station()
    del data["layouts"]
    with pytest.raises(ConfigError, match="--pixels needs a substrate layout, and the station has none"):
        parse_station(data).layout()


def test_the_cli_reports_a_bad_layout_in_one_line_before_any_io(tmp_path):
    data = substrate_station()
    data["layouts"]["test4"]["pixels"][3]["channel"] = 2
    station = tmp_path / "station.yaml"
    station.write_text(yaml.safe_dump(data))
    res = CliRunner().invoke(main, ["run", "jv", "--station", str(station), "--pixels", "all", "--out",
                                    str(tmp_path / "runs"), "--no-plot"])
    assert res.exit_code == 2
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "layouts.test4.pixels[3].channel = 2" in lines[0], res.output
    assert substrate_fakes.LOG == []  # the switch was never made, let alone told anything
    assert not (tmp_path / "runs").exists()
