"""station.yaml mistakes that used to be accepted silently (issue 7, items 5 and 7): refused when the file is
loaded, one line naming the key, the value and what is allowed; through the CLI exit 2, no run file.

Hardware facts used here, from the manuals rather than the drivers: the FW102C wheel has 6 positions (the FW212C
12); the Cornerstone 130 turret holds 2 gratings, the Cornerstone 260 3; the SR830 locks to 1 mHz … 102 kHz.
"""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from labctl.cli import main
from labctl.config import ConfigError, load_station, parse_station
from labctl.storage import load_run
from tests.helpers import REPO, default_station

TEXT = (REPO / "station.yaml").read_text()


def _line_of(text: str, line: str, start: int = 0) -> int:
    """1-based number of the first line equal to ``line`` at or after line ``start``."""
    lines = text.splitlines()
    return next(i + 1 for i in range(start, len(lines)) if lines[i] == line)


def _refused_by_cli(tmp_path, station_path, procedure="jv", fragments=()):
    out = tmp_path / "runs"
    res = CliRunner().invoke(main, ["run", procedure, "--station", str(station_path), "--out", str(out),
                                    "--no-plot"], catch_exceptions=False)
    assert res.exit_code == 2, res.output
    assert len(res.output.strip().splitlines()) == 1, res.output
    for fragment in fragments:
        assert fragment in res.output, (fragment, res.output)
    assert not list(out.rglob("*.h5"))


# -- duplicate keys ------------------------------------------------------------------------------------------
def test_duplicate_key_in_an_instrument_names_both_lines(tmp_path):
    text = TEXT.replace('    resource: "sim://smu"\n', '    resource: "sim://smu"\n    timeout_ms: 3000\n', 1)
    first = _line_of(text, "    timeout_ms: 3000")
    second = _line_of(text, "    timeout_ms: 10000")
    path = tmp_path / "station.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_station(path)
    message = str(info.value)
    assert "'timeout_ms'" in message and "instruments.smu" in message
    assert f"lines {first} and {second}" in message
    _refused_by_cli(tmp_path, path, fragments=[f"lines {first} and {second}"])


def test_duplicate_top_level_and_slot_keys(tmp_path):
    top = TEXT + "\nsimulation:\n  enabled: false\n"
    path = tmp_path / "top.yaml"
    path.write_text(top)
    first, second = _line_of(top, "simulation:"), _line_of(top, "simulation:", _line_of(top, "simulation:"))
    with pytest.raises(ConfigError, match=rf"'simulation' appears twice at the top level, at lines {first} and "
                                          rf"{second}"):
        load_station(path)
    slots = TEXT.replace("    5: null\n", "    5: null\n    2: {cut_on_nm: 450}\n", 1)
    path = tmp_path / "slots.yaml"
    path.write_text(slots)
    first = _line_of(slots, "    2: {cut_on_nm: 420, edge_nm: 34}     # absorbing glass, e.g. a GG420-type: 8 % edges")
    second = _line_of(slots, "    2: {cut_on_nm: 450}")
    _refused_by_cli(tmp_path, path, "eqe-calibration",
                    ["'2'", "eqe.filter_wheel_slots", f"lines {first} and {second}"])


def test_the_default_station_has_no_duplicate_and_loads():
    assert load_station(REPO / "station.yaml").eqe.filter_wheel_slot_count == 6


# -- the filter wheel ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("use_it", [True, False], ids=["used-by-order-sorting", "defined-only"])
def test_filter_wheel_slot_7_on_a_6_slot_wheel_is_refused(tmp_path, use_it):
    data = default_station()
    data["eqe"]["filter_wheel_slots"][7] = 1100
    if use_it:
        data["eqe"]["order_sorting"][3]["filter"] = 7
    path = tmp_path / "station.yaml"
    path.write_text(yaml.safe_dump(data))
    _refused_by_cli(tmp_path, path, "eqe-calibration", ["slot 7", "6-slot", "allowed: slots 1-6",
                                                        "filter_wheel_slot_count: 12"])


def test_a_12_slot_wheel_declared_takes_slot_7(tmp_path):
    """With ``filter_wheel_slot_count: 12`` slot 7 is allowed, and the simulated wheel then has 12 slots."""
    data = default_station()
    data["eqe"]["filter_wheel_slot_count"] = 12
    data["eqe"]["filter_wheel_slots"][7] = {"cut_on_nm": 1000, "edge_nm": 80}  # slot 4's filter, moved to 7
    data["eqe"]["order_sorting"][3]["filter"] = 7
    path = tmp_path / "station.yaml"
    path.write_text(yaml.safe_dump(data))
    res = CliRunner().invoke(main, ["run", "eqe-calibration", "--station", str(path), "--out", str(tmp_path / "runs"),
                                    "--json", "--no-plot", "--set", "start_nm=1300", "--set", "stop_nm=1400",
                                    "--set", "step_nm=100"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    run = load_run(json.loads(res.stdout)["file"])
    assert set(run.streams["calibration"]["filter"]) == {7}
    data["eqe"]["filter_wheel_slot_count"] = 8
    with pytest.raises(ConfigError, match="filter_wheel_slot_count = 8"):
        parse_station(data)


# -- the monochromator's gratings ----------------------------------------------------------------------------
def test_order_sorting_grating_3_on_the_two_grating_simulated_monochromator(tmp_path):
    """The simulated Cornerstone 260 has the two gratings of simulation.optics: grating 3 used to fail at 480 nm."""
    data = default_station()
    data["eqe"]["order_sorting"][1]["grating"] = 3
    path = tmp_path / "station.yaml"
    path.write_text(yaml.safe_dump(data))
    _refused_by_cli(tmp_path, path, "eqe-calibration",
                    ["eqe.order_sorting[1].grating = 3", "480-780 nm", "allowed: 1, 2"])


def _real_hardware(driver: str) -> dict:
    data = default_station()
    data["simulation"]["enabled"] = False
    for role, inst in data["instruments"].items():
        inst["resource"] = f"ASRL/dev/ttyUSB{len(role)}::INSTR"
    data["instruments"]["monochromator"]["driver"] = driver
    data["eqe"]["order_sorting"][1]["grating"] = 3
    return data


def test_real_monochromator_grating_count_is_the_models_turret():
    """Without a simulated bench the model's turret bounds the table: 2 on a Cornerstone 130, 3 on a 260."""
    with pytest.raises(ConfigError, match=r"order_sorting\[1\]\.grating = 3 .*cornerstone130.*allowed: 1, 2\)"):
        parse_station(_real_hardware("cornerstone130"))
    assert parse_station(_real_hardware("cornerstone260")).eqe.order_sorting[1].grating == 3


def test_simulated_gratings_fit_the_model_turret():
    data = default_station()
    data["instruments"]["monochromator"]["driver"] = "cornerstone130"
    data["simulation"]["optics"] = {"gratings": [
        {"number": n, "lines_per_mm": 600, "blaze_nm": 500, "min_nm": 200, "max_nm": 2800, "label": f"G{n}"}
        for n in (1, 2, 3)]}
    with pytest.raises(ConfigError, match=r"simulation\.optics\.gratings\[2\]\.number = 3: a cornerstone130 turret"):
        parse_station(data)


def test_chopper_frequency_below_what_the_lockin_locks_to(tmp_path):
    data = default_station()
    data["eqe"]["chopper_frequency_Hz"] = 0.0005
    path = tmp_path / "station.yaml"
    path.write_text(yaml.safe_dump(data))
    _refused_by_cli(tmp_path, path, "eqe-calibration", ["eqe.chopper_frequency_Hz = 0.0005", "0.001"])
