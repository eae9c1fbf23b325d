"""600 h on stations/stability-bench.yaml, virtual clock, with periodic J–V (issue 11, "Tests and benchmarks").

Two runs as a user would set them up for the seed papers' protocols: MPP tracking (``mpp``) for 600 h with a J–V
every 30 min (the issue's case), and a hold at open circuit (``hold``) for 600 h with a J–V every 2 h (the J–V's
own defaults otherwise: −0.1 to 1.3 V by 10 mV at 100 mV/s, reverse then forward). The J–V sub-runs cost most of
the wall time (≈ 0.12 s each: their sweep and their own analysis), so the hold, whose 600 h at open circuit is
the point, takes its figure from 300 of them rather than 1200.

* MPP: one tracking step a minute (``dwell_s = 60``), every step recorded: a perovskite cell's ionic response
  is seconds to minutes, so a step a minute stays at the stabilised MPP (methods ref. §7.1), and 36,000 rows
  over 600 h (one a minute) is the resolution published stability curves have — a step a second would be
  2.2 million rows for the same figures.
* Hold: a reading every 10 min (``interval_s = 600``), the J–V every 2 h giving the figure (its PCE).

Expected values come from pvlib (``pvlib.pvsystem.singlediode``, Lambert-W) for the bench's cell (set A of
methods ref. §1.6, station.yaml) with the degradation law of methods ref. §1.7 (J0 × exp(t / 383 h): 94.0 %
of the PCE left after 600 h at open circuit) and the bench's lamp drift (−1e−5 per hour of light: Jph × (1 −
0.006) at 600 h), not from the simulator. The wall time of each run is printed (``-s``); speed targets are
benchmarks/bench_stability.py's, not this test's.
"""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pvlib
import pytest
import yaml
from scipy import constants

from labctl.config import parse_station
from labctl.engine import RunEngine
from labctl.station import Station
from labctl.storage import load_run
from procedures.hold import HoldProcedure
from procedures.mpp import MPPProcedure
from tests.helpers import REPO

BENCH = yaml.safe_load((REPO / "stations" / "stability-bench.yaml").read_text())
DEVICE = yaml.safe_load((REPO / "station.yaml").read_text())["simulation"]["device"]
TAU_J0_H = 383.0  # methods ref. §1.7: J0 × 4.791 in 600 h at open circuit
DRIFT_PER_H = BENCH["simulation"]["light"]["drift_per_h"]
HOURS = 600.0
#: a generous bound against a hang (pytest-timeout), not a speed target: measured 2026-12-02 on the shared 2-core
#: machine, mpp 182.5 s wall (1200 J–V sub-runs dominate: benchmarks/README.md)
WALL_LIMIT_S = 600.0


def pvlib_pmp(t_h: float | np.ndarray, temperature_K: float = 298.15) -> np.ndarray:
    """Pmp (mW/cm²) of the bench's cell after ``t_h`` hours of light: J0 × exp(t/τ), Jph × (1 + drift·t)."""
    t = np.asarray(t_h, dtype=float)
    n_vt = DEVICE["ideality"] * constants.k * temperature_K / constants.e
    out = pvlib.pvsystem.singlediode(DEVICE["jph_mA_cm2"] * 1e-3 * (1 + DRIFT_PER_H * t),
                                     DEVICE["j0_A_cm2"] * np.exp(t / TAU_J0_H), DEVICE["rs_ohm_cm2"],
                                     DEVICE["rsh_ohm_cm2"], n_vt)
    return np.asarray(out["p_mp"], dtype=float) * 1e3


def expected_t80_h() -> float:
    """T80 by the linear extrapolation of the last half of the pvlib curve (hourly), as ISOS Table 5 does
    for a curve that does not reach 80 %."""
    t = np.arange(0.0, HOURS + 1)
    p = pvlib_pmp(t) / float(pvlib_pmp(0.0))
    slope, intercept = np.polyfit(t[t >= HOURS / 2], p[t >= HOURS / 2], 1)
    return float((0.8 - intercept) / slope)


def _run(folder, procedure):
    station = Station(parse_station(json.loads(json.dumps(BENCH))))
    engine = RunEngine(station, folder, sample="cell-600h", catalog=False)
    start = time.perf_counter()
    result = engine.run(procedure)
    wall_s = time.perf_counter() - start
    station.close()
    print(f"\n{procedure.NAME} 600 h with J-V every {procedure.jv_interval_min:g} min: {wall_s:.1f} s wall")
    assert result.status == "completed", result.error
    return result, wall_s


@pytest.fixture(scope="module")
def mpp_run(tmp_path_factory):
    procedure = MPPProcedure()
    procedure.duration_h, procedure.dwell_s, procedure.jv_interval_min = HOURS, 60.0, 30.0
    return _run(tmp_path_factory.mktemp("mpp600"), procedure)


@pytest.fixture(scope="module")
def hold_run(tmp_path_factory):
    procedure = HoldProcedure()
    procedure.duration_h, procedure.interval_s, procedure.jv_interval_min = HOURS, 600.0, 120.0
    return _run(tmp_path_factory.mktemp("hold600"), procedure)


def test_the_expected_values_are_the_methods_reference_calibration():
    assert float(pvlib_pmp(0.0)) == pytest.approx(16.765, abs=2e-3)  # methods ref. §7.1 worked table
    n_vt = DEVICE["ideality"] * constants.k * 298.15 / constants.e
    no_drift = pvlib.pvsystem.singlediode(DEVICE["jph_mA_cm2"] * 1e-3, DEVICE["j0_A_cm2"] * math.exp(600 / 383),
                                          DEVICE["rs_ohm_cm2"], DEVICE["rsh_ohm_cm2"], n_vt)
    assert float(no_drift["p_mp"]) * 1e3 / float(pvlib_pmp(0.0)) == pytest.approx(0.94, abs=0.001)  # §1.7


@pytest.mark.timeout(WALL_LIMIT_S + 120)
def test_600_h_of_mpp_tracking_with_a_jv_every_30_min_gives_the_issue_results_against_pvlib(mpp_run):
    result, wall_s = mpp_run
    r = result.results
    for key in ("t80_h", "ts80_h", "t80_extrapolated", "retained_pce_pct", "hours", "interruptions",
                "suspended_h"):
        assert key in r, key
    assert r["hours"] == pytest.approx(HOURS, abs=60 / 3600 + 1e-3)
    assert r["interruptions"] == 0 and r["suspended_h"] == 0.0 and r["jv_scans"] == 1200
    retained = 100 * float(pvlib_pmp(HOURS)) / float(pvlib_pmp(0.0))  # 93.4 %: J0 law and the lamp's drift
    assert r["retained_pce_pct"] == pytest.approx(retained, abs=0.5)
    assert r["t80_extrapolated"] is True and r["t80_h"] == pytest.approx(expected_t80_h(), rel=0.15)
    assert r["ts80_h"] is not None and r["ts80_h"] <= r["t80_h"] * 1.05
    run = load_run(result.path)
    mpp = run.streams["mpp"]
    assert len(mpp) == r["steps"] and 35_000 <= len(mpp) <= 36_000
    # the tracked power follows pvlib's Pmp of the degrading cell all along (every 50 h, an hour's mean)
    t_h = mpp["time_s"].to_numpy() / 3600
    for at_h in np.arange(50.0, HOURS + 1, 50.0):
        window = (t_h > at_h - 1) & (t_h <= at_h)
        tracked = mpp["power_mW_cm2"].to_numpy()[window].mean()
        assert tracked == pytest.approx(float(pvlib_pmp(at_h - 0.5)), rel=0.01), at_h
    scans = run.streams["jv_figures"]
    assert scans["jv_index"].nunique() == 1200


@pytest.mark.timeout(WALL_LIMIT_S + 120)
def test_600_h_at_open_circuit_with_a_jv_every_2_h_keeps_94_percent(hold_run):
    """The seed paper's hold: 600 h at open circuit under 1 sun, 94 % retained (methods ref. §1.7); here also
    the lamp's −0.6 % drift, so pvlib gives 93.4 %."""
    result, wall_s = hold_run
    r = result.results
    assert r["hours"] == pytest.approx(HOURS, abs=0.2) and r["jv_scans"] == 300
    assert r["retained_pce_pct"] == pytest.approx(100 * float(pvlib_pmp(HOURS)) / float(pvlib_pmp(0.0)), abs=0.5)
    assert r["retained_pce_pct"] == pytest.approx(94.0, abs=1.0)
    assert r["t80_extrapolated"] is True and r["t80_h"] == pytest.approx(expected_t80_h(), rel=0.15)
