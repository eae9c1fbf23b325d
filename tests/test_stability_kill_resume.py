"""SIGKILL a ``labctl run mpp`` mid-run on the stability bench, then ``labctl resume`` (issue 11).

The killed run is a child process (``python -m labctl.cli run mpp``) on stations/stability-bench.yaml with the
simulated bench on the real clock (so that it is still running when it is killed); the rest is resumed on the
same bench on the virtual clock (no wall time). What must hold is taken from the file as it was on disk right
after the kill (the rows every reader could see), not from the code under test: every one of those rows is still
there, unchanged, the gap is one ``gap`` interruption at the last stored stress time, the tracker's first step
of the new segment is at the voltage its last saved state names (never 0 V), and the figures cover both
segments.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from labctl.cli import main
from labctl.storage import load_run
from tests.helpers import REPO, reap

BENCH = yaml.safe_load((REPO / "stations" / "stability-bench.yaml").read_text())
DWELL_S, DURATION_H = 0.1, 0.02  # 72 s of tracking at ~6 steps/s of real time: killed after a few seconds
KILL_AFTER_ROWS = 20


def _station(folder: Path, clock: str, auto_resume: bool = False) -> Path:
    data = json.loads(json.dumps(BENCH))
    data["simulation"]["clock"] = clock
    data["station"]["data_dir"] = "runs"
    data["station"]["auto_resume"] = auto_resume
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"stability-{clock}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _rows(path: Path) -> int:
    try:
        return len(load_run(path).streams.get("mpp", ()))
    except (OSError, KeyError, ValueError):
        return 0


def _killed_mpp_run(folder: Path) -> Path:
    """A ``labctl run mpp`` child on the real-clock bench, SIGKILLed once ``KILL_AFTER_ROWS`` rows are on disk."""
    station = _station(folder, "real")
    cmd = [sys.executable, "-m", "labctl.cli", "run", "mpp", "--station", str(station), "--no-plot",
           "--set", f"duration_h={DURATION_H}", "--set", f"dwell_s={DWELL_S}", "--sample", "cell-k"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        path = None
        while time.monotonic() < deadline and proc.poll() is None:
            files = list((folder / "runs").rglob("*.h5"))
            if files and _rows(files[0]) >= KILL_AFTER_ROWS:
                path = files[0]
                break
            time.sleep(0.1)
        assert path is not None, proc.stderr.read().decode() if proc.poll() is not None else "no rows in 60 s"
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        reap(proc)
    return path


def _check_resumed(path: Path, before, results: dict) -> None:
    """What a resumed run must show, against the rows on disk right after the kill (``before``)."""
    run = load_run(path)
    assert run.status == "completed"
    mpp, kept = run.streams["mpp"], before.streams["mpp"]
    # no flushed point lost or changed: the rows on disk before the resume are the first rows after it
    pd.testing.assert_frame_equal(mpp.iloc[:len(kept)].reset_index(drop=True), kept.reset_index(drop=True))
    assert (mpp["segment"] == 0).sum() == len(kept) and (mpp["segment"] == 1).sum() > 0
    assert [s["status"] for s in run.segments] == ["interrupted", "completed"]
    assert run.segments[1]["first_rows"]["mpp"] == len(kept)
    # the gap: one interruption of kind gap at the last stored stress time, zero width in stress time
    gaps = run.streams["interruptions"]
    gaps = gaps[gaps["kind"] == "gap"]
    last_s = float(kept["time_s"].max())
    assert len(gaps) == 1 and gaps["start_s"].iloc[0] == pytest.approx(last_s) == gaps["end_s"].iloc[0]
    # the tracker goes on from its saved voltage: never 0 V, not a new approach from Voc
    saved = json.loads(kept["tracker_state"].iloc[-1])
    new = mpp[mpp["segment"] == 1]
    assert saved["voltage_V"] > 0.8
    assert new["voltage_V"].iloc[0] == pytest.approx(saved["voltage_V"], abs=3e-3)
    assert new["voltage_V"].min() > 0.8 and set(new["phase"]) == {"track"}
    assert json.loads(new["tracker_state"].iloc[0])["updates"] == saved["updates"] + 1
    # stress time goes on without the gap, to the planned duration
    assert 0 < new["time_s"].iloc[0] - last_s < 3 * DWELL_S + 0.2
    times = mpp["time_s"].to_numpy()
    assert np.all(np.diff(times) > 0)
    assert times[-1] == pytest.approx(DURATION_H * 3600, abs=3 * DWELL_S + 0.2)
    # the figures are over the whole run (both segments), computed independently here from the stored rows
    track = mpp[(mpp["phase"] == "track") & (mpp["compliance"] == 0)]
    assert results["hours"] == pytest.approx(times[-1] / 3600)
    used = results["figures"]["points_used"]  # from the first converged tracking step on (procedures.mpp)
    assert 0.9 * len(track) < used <= len(track)
    assert results["figures"]["hours"] == pytest.approx(times[-1] / 3600)
    assert results["interruptions"] == 1 and results["suspended_h"] == 0
    assert results["retained_pce_pct"] is not None and results["t80_h"] is None or results["t80_extrapolated"]


def test_a_killed_mpp_run_resumes_with_every_flushed_point_and_the_tracker_at_its_saved_voltage(tmp_path):
    path = _killed_mpp_run(tmp_path)
    before = load_run(path)
    assert before.status == "interrupted" and KILL_AFTER_ROWS <= len(before.streams["mpp"])
    assert before.streams["mpp"]["time_s"].max() < DURATION_H * 3600 - 1  # killed mid-run
    res = CliRunner().invoke(main, ["resume", str(path), "--station", str(_station(tmp_path, "virtual")), "--json",
                                    "--no-plot"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["status"] == "completed" and out["file"] == str(path)
    _check_resumed(path, before, out["results"])


def test_a_killed_mpp_run_is_resumed_at_start_up_when_the_station_says_auto_resume(tmp_path):
    path = _killed_mpp_run(tmp_path)
    before = load_run(path)
    station = _station(tmp_path, "virtual", auto_resume=True)  # same folder: same data_dir, same catalog
    res = CliRunner().invoke(main, ["resume", "--interrupted", "--station", str(station), "--json", "--no-plot"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    outcome = json.loads(res.stdout)
    assert [(r["file"], r["status"]) for r in outcome["runs"]] == [(str(path), "completed")]
    results = outcome["runs"][0].get("results") or load_run(path).info.get("results")
    if isinstance(results, str):
        results = json.loads(results)
    _check_resumed(path, before, results)
    assert load_run(path).segments[1]["reason"] == "resumed at start-up (labctl resume --interrupted)"
    res = CliRunner().invoke(main, ["resume", "--interrupted", "--station", str(station), "--no-plot"],
                             catch_exceptions=False)
    assert res.exit_code == 0 and res.stdout.startswith("no interrupted runs")
