"""Benchmark: EQE scan time with convergence-based settling against fixed 10 τ waits, at equal accuracy.

Both scans run on the simulated bench (virtual clock, so the scan times are those of the real instruments:
monochromator moves, filter-wheel moves, lock-in settling) against the same calibration run. Target: the
convergence scan at least 2x faster, with the two EQE curves within 0.5 % absolute of each other.
Run: ``python benchmarks/bench_eqe_settling.py``.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import numpy as np
import yaml

from labctl.config import parse_station
from labctl.engine import RunEngine
from labctl.station import Station
from labctl.storage import load_run
from procedures.eqe import EQECalibrationProcedure, EQEProcedure
from sim_instruments.optics import dut_eqe_function

REPO = Path(__file__).resolve().parents[1]
GRID = {"start_nm": 300.0, "stop_nm": 900.0, "step_nm": 10.0, "time_constant_s": 0.3, "settle_tolerance": 0.005}


def run(out: Path, data: dict, cls, **params):
    station = Station(parse_station(copy.deepcopy(data)))
    t0 = station.clock.now()
    result = RunEngine(station, out).run(cls(**params))
    assert result.status == "completed", result.error
    return result, station.clock.now() - t0


def compare(out: Path, data: dict, cfg, slope_dB: int) -> None:
    dev = cfg.simulation.device
    grid = {**GRID, "filter_slope_dB": slope_dB}
    cal, cal_s = run(out, data, EQECalibrationProcedure, settle="fixed", **grid)
    curves, times = {}, {}
    for settle in ("convergence", "fixed"):
        result, scan_s = run(out, data, EQEProcedure, calibration_file=str(cal.path), settle=settle, **grid)
        curves[settle], times[settle] = load_run(result.path).streams["eqe"], scan_s
    wl = curves["fixed"].wavelength_nm.to_numpy()
    truth = dut_eqe_function(cfg.simulation.device)(wl) * dev.rsh_ohm_cm2 / (dev.rs_ohm_cm2 + dev.rsh_ohm_cm2)
    diff = np.abs(curves["convergence"].eqe.to_numpy() - curves["fixed"].eqe.to_numpy())
    print(f"EQE {grid['start_nm']:g}-{grid['stop_nm']:g} nm in {grid['step_nm']:g} nm steps ({len(wl)} points), "
          f"tau = {grid['time_constant_s']} s, {slope_dB} dB/oct, settle_tolerance {grid['settle_tolerance']}")
    for settle in ("convergence", "fixed"):
        err = np.abs(curves[settle].eqe.to_numpy() - truth)
        bound = int((curves[settle].converged == 0).sum())
        print(f"  {settle:>11}: scan {times[settle]:7.1f} s (instrument time), max |EQE - true| "
              f"{100 * err.max():.3f} % abs, points stopped by the 99 % bound {bound}")
    print(f"  convergence vs fixed 10 tau: {times['fixed'] / times['convergence']:.2f}x faster (target >= 2x); "
          f"max |difference| {100 * diff.max():.3f} % abs (target <= 0.5 %)")


def main() -> None:
    data = yaml.safe_load((REPO / "station.yaml").read_text())
    cfg = parse_station(copy.deepcopy(data))
    with tempfile.TemporaryDirectory() as tmp:
        for slope in (24, 12):
            compare(Path(tmp), data, cfg, slope)


if __name__ == "__main__":
    main()
