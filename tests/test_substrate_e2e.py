"""An 8-pixel substrate end to end, on the station an operator gets (stations/substrate-bench.yaml): a Keithley
7001 with a 7011-S card connecting each pixel to one of two Keithley 2400s through the simulated fixture's wiring,
the contact check, the summary; the faults that stop a substrate, on the real switch emulator; two source meters
at once measuring what each measures alone; and the same substrate over TCP (`labctl sim serve`).

Expected figures are computed independently of labctl: ``pvlib.pvsystem.singlediode`` on the station file's
single-diode parameters (area-normalised, 298.15 K), with the single-cell tolerances of tests/test_jv_devices.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pvlib.pvsystem import singlediode

from labctl.catalog import Catalog
from labctl.config import parse_station
from labctl.station import Station
from labctl.storage import load_run
from labctl.substrate import SubstrateRunner, load_substrate, parse_pixels
from procedures.jv import JVProcedure
from sim_instruments.faults import FaultSpec
from tests.helpers import REPO, served_bench

STATION = REPO / "stations" / "substrate-bench.yaml"
K_B, Q = 1.380649e-23, 1.602176634e-19
VT_298 = K_B * 298.15 / Q
#: pixels with a working cell (3 is shunted but works); 6 is dead, 8 has no contact
WORKING = ("1", "2", "3", "4", "5", "7")


def _station_data() -> dict:
    return yaml.safe_load(STATION.read_text())


def _device(data: dict, pixel: str) -> dict:
    """The simulated device behind ``pixel``, found through the fixture's wiring (not through the layout)."""
    channel = next(p["channel"] for p in data["layouts"]["qd8"]["pixels"] if p["name"] == pixel)
    device = next(w["device"] for w in data["simulation"]["wiring"] if w["channel"] == channel)
    return data["simulation"]["devices"][device - 1]


def _expected(device: dict) -> dict:
    """Voc (V), Jsc (mA/cm²), FF, PCE (%) of the single-diode model by pvlib (independent of labctl)."""
    out = singlediode(device["jph_mA_cm2"] * 1e-3, device["j0_A_cm2"], device["rs_ohm_cm2"], device["rsh_ohm_cm2"],
                      device["ideality"] * VT_298)
    isc, voc, pmp = float(out["i_sc"]), float(out["v_oc"]), float(out["p_mp"])
    return {"voc_V": voc, "jsc_mA_cm2": isc * 1e3, "ff": pmp / (voc * isc), "pce_pct": pmp * 1e3}


def _assert_recovered(results: dict, device: dict, where: str) -> None:
    expected = _expected(device)
    for direction in ("reverse", "forward"):
        r = results[direction]
        assert r["voc_V"] == pytest.approx(expected["voc_V"], abs=2e-3), (where, direction, r, expected)
        assert r["jsc_mA_cm2"] == pytest.approx(expected["jsc_mA_cm2"], rel=5e-3), (where, direction, r, expected)
        assert r["ff"] == pytest.approx(expected["ff"], abs=3e-3), (where, direction, r, expected)
        assert r["pce_pct"] == pytest.approx(expected["pce_pct"], rel=6e-3), (where, direction, r, expected)


def _cli(*args: str, station: Path = STATION) -> tuple[dict, str, int]:
    run = subprocess.run([sys.executable, "-m", "labctl.cli", "run", *args, "--station", str(station), "--json"],
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    return json.loads(run.stdout), run.stderr, run.returncode


@pytest.fixture(scope="module")
def substrate(tmp_path_factory):
    """`labctl run jv --pixels all` on the 8-pixel station with the defaults an operator gets."""
    out = tmp_path_factory.mktemp("substrate") / "runs"
    payload, stderr, code = _cli("jv", "--pixels", "all", "--sample", "QD-17", "--out", str(out))
    return payload, stderr, code, out


def test_every_working_pixel_is_recovered_within_the_single_cell_tolerances(substrate):
    payload, stderr, code, _ = substrate
    assert code == 0, stderr[-3000:]
    assert payload["status"] == "completed"
    data = _station_data()
    for name in WORKING:
        pixel = payload["pixels"][name]
        assert pixel["status"] == "completed", (name, pixel)
        _assert_recovered(pixel["results"], _device(data, name), f"pixel {name}")
        run = load_run(pixel["file"])  # one file per pixel, linked to its substrate
        assert run.info["substrate_id"] == payload["substrate_id"] and run.info["pixel"] == name
        assert run.info["sample"] == "QD-17" and run.status == "completed"


def test_the_bad_contact_is_skipped_with_a_clear_report_and_the_dead_and_shunted_pixels_are_flagged(substrate):
    payload, stderr, _, _ = substrate
    bad = payload["pixels"]["8"]
    assert bad["status"] == "skipped" and bad["file"] is None
    assert bad["reason"].startswith("no contact: |V/I| = ") and "max_resistance_ohm = 1e+07" in bad["reason"]
    assert bad["contact"]["resistance_ohm"] > 1e8  # 1e9 Ω of contact in the fixture
    assert "pixel 8: skipped (no contact" in stderr
    summary = payload["summary"]["pixels"]
    assert summary["6"]["dead"] and payload["pixels"]["6"]["status"] == "completed"
    assert "no_power_quadrant" in payload["pixels"]["6"]["results"]["reverse"]["flags"]
    assert summary["3"]["shunted"] and not summary["3"]["dead"]
    assert [n for n, p in summary.items() if p["included"]] == ["1", "2", "3", "4", "5", "7"]
    assert not any(summary[n]["dead"] or summary[n]["shunted"] for n in ("1", "2", "4", "5", "7"))
    # the substrate's best pixel, by pvlib: pixel 7 (the largest photocurrent, the lowest J0)
    data = _station_data()
    best = max(WORKING, key=lambda n: _expected(_device(data, n))["pce_pct"])
    assert payload["summary"]["statistics"]["reverse"]["pce_pct"]["best_pixel"] == best == "7"


def test_the_substrate_is_recorded_catalogued_and_plotted_and_ends_safe(substrate):
    payload, stderr, _, out = substrate
    record = load_substrate(payload["file"])
    assert record.pixels.keys() == payload["pixels"].keys()
    assert record.run("1").info["pixel"] == "1"
    assert Path(payload["png"]).stat().st_size > 10_000
    with Catalog.for_data_dir(None, out) as catalog:
        rows = catalog.runs(substrate=payload["substrate_id"])
    assert sorted(r.pixel for r in rows) == sorted(WORKING + ("6",))
    assert {r.sample for r in rows} == {"QD-17"}
    lines = stderr.splitlines()
    smu, smu2, switch = (next(k for k, line in enumerate(lines) if line.startswith(f"safe: {role}: "))
                         for role in ("smu", "smu2", "switch"))
    assert max(smu, smu2) < switch and "all instruments safe (4)" in stderr  # sources off, then the relays
    assert "all relays open (read back)" in lines[switch]


def test_two_source_meters_at_once_measure_what_each_measures_alone(tmp_path):
    """Pixels 1 (smu) and 5 (smu2) at once, then each alone, on the virtual clock: the same figures."""
    together, stderr, code = _cli("jv", "--pixels", "1,5", "--out", str(tmp_path / "together"))
    assert code == 0, stderr[-3000:]
    record = json.loads(Path(together["file"]).read_text())
    assert record["concurrent"] is True
    first = load_run(together["pixels"]["1"]["file"])
    second = load_run(together["pixels"]["5"]["file"])
    # at once: the two sweeps overlap in station time (each row's time is the station clock's)
    assert first.streams["jv"]["time_s"].iloc[-1] > second.streams["jv"]["time_s"].iloc[0]
    assert second.streams["jv"]["time_s"].iloc[-1] > first.streams["jv"]["time_s"].iloc[0]
    for name in ("1", "5"):
        alone, stderr, code = _cli("jv", "--pixels", name, "--out", str(tmp_path / f"alone{name}"))
        assert code == 0, stderr[-3000:]
        for direction in ("reverse", "forward"):
            a, b = together["pixels"][name]["results"][direction], alone["pixels"][name]["results"][direction]
            for key in ("voc_V", "jsc_mA_cm2", "ff", "pce_pct", "vmp_V"):
                assert a[key] == pytest.approx(b[key], rel=1e-9, abs=1e-12), (name, direction, key)


# -- in-process, on the real switch emulator ------------------------------------------------------------------
def _runner(tmp_path, pixels: str = "all") -> tuple[SubstrateRunner, Station]:
    config = parse_station(_station_data())
    name, layout = config.layout()
    station = Station(config)
    runner = SubstrateRunner(station, name, layout, parse_pixels(pixels, name, layout), lambda p: JVProcedure(),
                             tmp_path / "runs", sample="S")
    return runner, station


def _all_safe(station: Station) -> None:
    for role in [r for r in ("smu", "smu2") if r in station.instruments]:
        assert station[role].adapter.emulator.handle(":OUTP?").strip() == "0", role
    assert station.bench.closed_relays("switch") == frozenset()
    assert station.bench.connected_devices("smu") == () and station.bench.connected_devices("smu2") == ()
    assert [o.role for o in station.safe_report][-1] == "switch" and all(o.ok for o in station.safe_report)


def test_the_contact_check_is_made_in_the_dark_even_when_the_light_was_left_on(tmp_path):
    """In the light a probe that does not touch passes about Voc/1e9 Ω, |V/I| below the 1e7 Ω threshold: the
    checks must come first, with the light off."""
    runner, station = _runner(tmp_path, "8")
    station.connect(["shutter"])
    station.light().set_light(True)  # left on by whoever used the bench before
    result = runner.run()
    assert result.pixels["8"].status == "skipped", result.pixels["8"]
    # the small-bias reading was dark: only the SMU's noise (in the light it is about -1.2 nA, and passes)
    small_bias_A = float(re.search(r"at 0\.01 V \(([-+0-9.e]+) A\)", result.pixels["8"].reason).group(1))
    assert abs(small_bias_A) < 1e-10, result.pixels["8"].reason
    _all_safe(station)


def test_a_relay_that_sticks_mid_substrate_stops_it_safe_with_the_measured_files_intact(tmp_path):
    runner, station = _runner(tmp_path)

    def after(outcome):  # once pixel 1 is measured, pixel 2's relay (channel 2) stops closing
        if outcome.name == "1" and outcome.status == "completed":
            station.bench.stuck_relays["switch"] = {2}

    runner.on_pixel = after
    result = runner.run()
    assert result.status == "failed"
    assert result.error.startswith("switch 'switch': select channel 2 (pixel 2): SwitchReadbackError"), result.error
    assert result.pixels["2"].file is None  # nothing sourced on a pixel that could not be connected
    assert result.pixels["1"].status == "completed"
    assert {result.pixels[n].status for n in ("3", "4")} == {"not measured"}
    measured = [o for o in result.pixels.values() if o.file]
    assert all(load_run(o.file).status in ("completed", "aborted") for o in measured)  # every file intact
    assert load_run(result.pixels["1"].file).streams["jv"].shape[0] == 282  # both scans of 141 points
    _all_safe(station)


def test_a_switch_that_times_out_stops_the_substrate_safe(tmp_path):
    runner, station = _runner(tmp_path, "1,2,3")

    def after(outcome):  # after pixel 1, the switch's next message gets no reply
        if outcome.name == "1" and outcome.status == "completed":
            station.bench.faults.add(FaultSpec(instrument="switch", kind="timeout", at_message=1))

    runner.on_pixel = after
    result = runner.run()
    assert result.status == "failed"
    assert result.error.startswith("switch 'switch': "), result.error
    assert "pixel 2" in result.error and "Timeout" in result.error, result.error
    assert [result.pixels[n].status for n in "123"] == ["completed", "not measured", "not measured"]
    assert load_run(result.pixels["1"].file).status == "completed"
    _all_safe(station)


# -- over TCP -------------------------------------------------------------------------------------------------
def test_the_substrate_over_tcp_through_the_served_switch_and_two_smus(tmp_path):
    """`labctl sim serve` of the 8-pixel station, real time; pixels 1 and 5 at once, 8 checked and skipped."""
    with served_bench(tmp_path, _station_data()) as (served, _):
        payload, stderr, code = _cli("jv", "--pixels", "1,5,8", "--out", str(tmp_path / "runs"),
                                     "--set", "scan_rate_V_s=0.5", "--set", "nplc=0.1", station=served)
    assert code == 0, stderr[-3000:]
    data = _station_data()
    for name in ("1", "5"):
        assert payload["pixels"][name]["status"] == "completed"
        _assert_recovered(payload["pixels"][name]["results"], _device(data, name), f"pixel {name} over TCP")
    assert payload["pixels"]["8"]["status"] == "skipped" and "no contact" in payload["pixels"]["8"]["reason"]
    assert json.loads(Path(payload["file"]).read_text())["concurrent"] is True
    assert "all instruments safe (4)" in stderr


def test_mpp_tracks_two_pixels_on_two_source_meters_at_once(tmp_path):
    """The stability procedures run per pixel too: 1 h of MPP tracking on pixels 1 and 5 at once, each at its
    own maximum power point (pvlib's Pmp within 1 %)."""
    payload, stderr, code = _cli("mpp", "--pixels", "1,5", "--out", str(tmp_path / "runs"), "--set", "duration_h=1")
    assert code == 0, stderr[-3000:]
    assert json.loads(Path(payload["file"]).read_text())["concurrent"] is True
    data = _station_data()
    for name in ("1", "5"):
        pixel = payload["pixels"][name]
        assert pixel["status"] == "completed", pixel
        expected = _expected(_device(data, name))["pce_pct"]
        assert pixel["results"]["stabilised_pce_pct"] == pytest.approx(expected, rel=0.01), (name, pixel["results"])
    statistics = payload["summary"]["statistics"]["run"]["stabilised_pce_pct"]
    best = max(("1", "5"), key=lambda n: _expected(_device(data, n))["pce_pct"])  # pvlib: 5 (lower Rs, higher Rsh)
    assert statistics["n"] == 2 and statistics["best_pixel"] == best == "5"


def test_the_cheap_relay_board_serves_a_substrate_too(tmp_path):
    """The same substrate through a Numato 8-relay board (channels 1-8) instead of the 7001: same pixels."""
    data = _station_data()
    data["instruments"]["switch"] = {"driver": "numato_relay8", "resource": "sim://relay_board"}
    for pixel in data["layouts"]["qd8"]["pixels"]:
        pixel["channel"] = int(pixel["name"])
    for wire in data["simulation"]["wiring"]:
        wire["switch"], wire["channel"] = "relay_board", wire["device"]
    station = tmp_path / "relay-board.yaml"
    station.write_text(yaml.safe_dump(data, sort_keys=False))
    payload, stderr, code = _cli("jv", "--pixels", "2,7,8", "--out", str(tmp_path / "runs"), station=station)
    assert code == 0, stderr[-3000:]
    for name in ("2", "7"):
        _assert_recovered(payload["pixels"][name]["results"], _device(data, name), f"pixel {name}")
    assert payload["pixels"]["8"]["status"] == "skipped"
    assert "safe: switch: all relays open (read back)" in stderr


def test_light_intensity_voc_runs_per_pixel_through_the_switch(tmp_path):
    """voc-intensity per pixel on the light-intensity bench with a switch: the three-diode cell of methods ref.
    §4.3 (a very high shunt: found by the contact check's forward reading) gives its ideality; a pixel behind a
    probe that does not touch is skipped. The pixels run one after another (the laser is not shared)."""
    data = yaml.safe_load((REPO / "stations" / "voc-bench.yaml").read_text())
    data["station"]["data_dir"] = str(tmp_path / "runs")
    data["instruments"]["switch"] = _station_data()["instruments"]["switch"]
    device = data["simulation"].pop("device")
    data["simulation"]["devices"] = [device, {**device, "contact_resistance_ohm": 1.0e9}]
    data["simulation"]["wiring"] = [{"switch": "switch", "channel": n, "device": n, "terminal": "smu"} for n in (1, 2)]
    area = device.get("area_cm2", 0.049)
    data["layouts"] = {"two": {"switch": "switch", "pixels": [
        {"name": "a", "area_cm2": area, "channel": 1}, {"name": "b", "area_cm2": area, "channel": 2}]}}
    station = tmp_path / "voc-substrate.yaml"
    station.write_text(yaml.safe_dump(data, sort_keys=False))
    calibration, stderr, code = _cli("voc-intensity-calibration", station=station)
    assert code == 0 and calibration["status"] == "completed", stderr[-3000:]
    payload, stderr, code = _cli("voc-intensity", "--pixels", "all", "--set", "one_sun_mW_cm2=54.5", station=station)
    assert code == 0, stderr[-3000:]
    assert json.loads(Path(payload["file"]).read_text())["concurrent"] is False
    good = payload["pixels"]["a"]
    # found in forward bias: at 1.2 V the diode reaches the check's 0.1 mA compliance (the 2450 then reports the
    # voltage it could reach)
    assert good["status"] == "completed" and good["contact"]["compliance"] and good["contact"]["voltage_V"] > 1.0
    # the §4.3 cell: n from 1 (1 sun) to 4 (1e-7 sun); a global fit over its range sits in between
    assert 1.0 < good["results"]["n_global"] < 4.0
    assert payload["summary"]["statistics"]["run"]["n_global"]["median"] == good["results"]["n_global"]
    assert payload["pixels"]["b"]["status"] == "skipped" and "no contact" in payload["pixels"]["b"]["reason"]
