"""A lamp dip on stations/stability-bench.yaml suspends the MPP run and does not show as degradation (issue 11).

Three runs of the same 50 h MPP tracking (one step a minute) on the stability bench, as shipped plus a suspender
on its reference cell: without a dip, with a 50 % dip of 1 h at 20 h, and with the same dip but no suspender.
The dip must suspend the run (the device held at the safe bias, open circuit, meanwhile), resume it after the
settle time once the irradiance is back above the resume threshold, leave T80 where the run without a dip puts
it, and be told to a local alert command; without the suspender the same dip moves T80 (what the masking is
for). The dip's times come from the station file, not from the run.
"""

from __future__ import annotations

import json
import sys
import time

import pytest
import yaml

from labctl.config import parse_station
from labctl.engine import RunEngine
from labctl.station import Station
from labctl.storage import load_run
from procedures.mpp import MPPProcedure
from tests.helpers import REPO

BENCH = yaml.safe_load((REPO / "stations" / "stability-bench.yaml").read_text())
DIP = {"start_h": 20.0, "duration_h": 1.0, "depth": 0.5}
SETTLE_S, POLL_S = 300.0, 10.0
SUSPENDER = {"name": "lamp", "role": "reference_cell", "signal": "irradiance_W_m2", "suspend_below": 800.0,
             "resume_above": 950.0, "settle_s": SETTLE_S, "poll_s": POLL_S,
             "isc_at_1000_W_m2_A": BENCH["simulation"]["reference_cell"]["isc_at_1000_W_m2_A"]}
DURATION_H, DWELL_S = 50.0, 60.0


def _run(folder, dip: bool, suspender: bool, alerts_file=None):
    data = json.loads(json.dumps(BENCH))
    data["simulation"]["light"]["dips"] = [DIP] if dip else []
    if suspender:
        data["suspenders"] = [SUSPENDER]
    if alerts_file is not None:
        script = f"import sys; open({str(alerts_file)!r}, 'a').write(sys.stdin.read().strip() + '\\n')"
        data["alerts"] = {"command": [sys.executable, "-c", script], "events": ["suspended", "resumed"]}
    station = Station(parse_station(data))
    engine = RunEngine(station, folder, sample="cell-d", catalog=False)
    procedure = MPPProcedure()
    procedure.duration_h, procedure.dwell_s = DURATION_H, DWELL_S
    result = engine.run(procedure)
    history = list(station.bench.__dict__.get("_source_histories", {}).get("smu", ()))
    station.close()
    assert result.status == "completed", result.error
    return result, history


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dip")
    alerts = folder / "alerts.jsonl"
    return {"plain": _run(folder, dip=False, suspender=True), "dip": _run(folder, True, True, alerts),
            "unmasked": _run(folder, dip=True, suspender=False), "alerts": alerts}


def test_a_lamp_dip_suspends_the_run_at_the_safe_bias_and_resumes_after_the_settle_time(runs):
    result, history = runs["dip"]
    run = load_run(result.path)
    stops = run.streams["interruptions"]
    assert list(stops["kind"]) == ["suspended"]
    start_h, end_h = stops["start_s"].iloc[0] / 3600, stops["end_s"].iloc[0] / 3600
    dip_end_h = DIP["start_h"] + DIP["duration_h"]
    # the stress clock starts a little after the station's: the dip is seen within a poll (and a step) of it
    assert DIP["start_h"] - 0.05 <= start_h <= DIP["start_h"] + (POLL_S + DWELL_S) / 3600 + 0.01
    assert dip_end_h + SETTLE_S / 3600 - 0.05 <= end_h <= dip_end_h + (SETTLE_S + POLL_S + DWELL_S) / 3600 + 0.05
    assert result.results["suspended_h"] == pytest.approx(end_h - start_h)
    assert result.results["interruptions"] == 1
    # no tracking row inside the suspension; the device held at open circuit (I = 0) meanwhile
    mpp = run.streams["mpp"]
    t_h = mpp["time_s"] / 3600
    assert not ((t_h > start_h + 0.01) & (t_h < end_h - 0.01)).any()
    held = [h for h in history if start_h * 3600 + 60 < h[0] < (end_h * 3600) - 60]
    assert all(h[1] and h[2] == "CURR" and h[3] == 0.0 for h in held)  # nothing else sourced meanwhile
    last_before = [h for h in history if h[0] <= start_h * 3600 + 60]  # the bias taken at the suspension
    assert last_before[-1][1] and last_before[-1][2] == "CURR" and last_before[-1][3] == 0.0
    # the tracker goes on at the maximum power point after it: the power right after matches before the dip
    before = mpp[(t_h > start_h - 1) & (t_h < start_h - 0.05)]["power_mW_cm2"].mean()
    after = mpp[(t_h > end_h + 0.2) & (t_h < end_h + 1.2)]["power_mW_cm2"].mean()
    assert after == pytest.approx(before, rel=3e-3)


def test_the_dip_does_not_appear_as_degradation_in_t80_and_unmasked_it_would(runs):
    plain, dip, unmasked = (runs[k][0].results for k in ("plain", "dip", "unmasked"))
    assert plain["t80_h"] is not None and plain["t80_extrapolated"]
    # T80 is extrapolated ~35x beyond a 50 h run: the lamp's 0.1 % flicker moves it by several % between two runs
    # (measured: 1696 h and 1816 h); the unmasked dip moves it to ~20 h
    assert dip["t80_h"] == pytest.approx(plain["t80_h"], rel=0.10)
    assert dip["retained_pce_pct"] == pytest.approx(plain["retained_pce_pct"], abs=0.2)
    assert unmasked["interruptions"] == 0
    moved = abs(unmasked["t80_h"] - plain["t80_h"]) if unmasked["t80_h"] is not None else float("inf")
    assert moved > 3 * abs(dip["t80_h"] - plain["t80_h"]) and moved > 0.5 * plain["t80_h"]


def test_suspension_and_resumption_are_told_to_the_local_alert_command(runs):
    path, deadline = runs["alerts"], time.monotonic() + 15
    while time.monotonic() < deadline and (not path.exists() or len(path.read_text().splitlines()) < 2):
        time.sleep(0.1)
    events = [json.loads(line) for line in path.read_text().splitlines()]
    assert [e["event"] for e in events] == ["suspended", "resumed"]
    assert all(e["path"] == str(runs["dip"][0].path) and e["procedure"] == "mpp" for e in events)
    assert "lamp" in events[0]["reason"]
