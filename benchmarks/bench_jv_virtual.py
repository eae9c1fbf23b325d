"""Benchmarks 2 and 3: J–V on the virtual clock.

(2) The achieved scan rate, from the stored time stamps, within 2 % of the requested one.
(3) A 141-point J–V at 100 mV/s on the virtual clock in under 1 s of wall time.
Prints the figures; run with `python benchmarks/bench_jv_virtual.py`.
"""

from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from labctl.config import parse_station
from labctl.engine import RunEngine
from labctl.station import Station
from labctl.storage import load_run
from procedures.jv import JVProcedure

REPO = Path(__file__).resolve().parents[1]


def run_once(out: Path, **params) -> tuple[float, Path]:
    data = copy.deepcopy(yaml.safe_load((REPO / "station.yaml").read_text()))
    station = Station(parse_station(data))
    procedure = JVProcedure()
    for name, value in params.items():
        setattr(procedure, name, value)
    t0 = time.perf_counter()
    result = RunEngine(station, out).run(procedure)
    wall = time.perf_counter() - t0
    assert result.status == "completed", result.error
    return wall, result.path


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        run_once(out, direction="forward")  # warm-up (imports, first file)
        walls = []
        for _ in range(5):
            wall, path = run_once(out, direction="forward", scan_rate_V_s=0.1, step_V=0.01)
            walls.append(wall)
        jv = load_run(path).streams["jv"]
        assert len(jv) == 141
        simulated_s = float(jv.time_s.iloc[-1] - jv.time_s.iloc[0])
        print(f"(3) 141-point J-V at 100 mV/s, virtual clock: wall time {min(walls):.3f} s best, "
              f"{np.median(walls):.3f} s median of 5 (target < 1 s); simulated duration {simulated_s:.2f} s")
        for rate in (0.01, 0.1, 1.0):
            _, path = run_once(out, direction="forward", scan_rate_V_s=rate, nplc=0.1)
            jv = load_run(path).streams["jv"]
            achieved = np.polyfit(jv.time_s, jv.voltage_V, 1)[0]
            print(f"(2) requested {rate:g} V/s → achieved {achieved:.5g} V/s from stored time stamps "
                  f"({100 * (achieved / rate - 1):+.3f} %, target within ±2 %)")


if __name__ == "__main__":
    main()
