"""Benchmark: a 600 h ``hold`` at one point per 10 s (216,000 rows) on the virtual clock.

Prints the wall time (target <= 60 s) and the growth of the process's resident memory from the start of the run
to its end (target <= 50 MB). Run with ``python benchmarks/bench_hold.py`` (``--hours 6`` for a quick look,
``--bias sc`` or ``--bias 0.9`` for the other holds, ``--profile`` for the 25 hottest functions).
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import pstats
import tempfile
import time
from pathlib import Path

import yaml

from labctl.config import parse_station
from labctl.engine import RunEngine
from labctl.station import Station
from labctl.storage import load_run
from procedures.hold import HoldProcedure

REPO = Path(__file__).resolve().parents[1]


def rss_MB() -> float:
    """Resident set size of this process now (MB), from /proc (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def run_hold(out: Path, hours: float, interval_s: float, bias: str, profile: bool = False) -> None:
    data = copy.deepcopy(yaml.safe_load((REPO / "station.yaml").read_text()))
    station = Station(parse_station(data))
    procedure = HoldProcedure()
    procedure.duration_h, procedure.interval_s, procedure.bias = hours, interval_s, bias
    engine = RunEngine(station, out, sample="bench")
    rss_start = rss_MB()
    t0, cpu0 = time.perf_counter(), time.process_time()
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    result = engine.run(procedure)
    if profiler:
        profiler.disable()
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    rss_end = rss_MB()
    station.close()
    assert result.status == "completed", result.error
    rows = len(load_run(result.path).streams["hold"])
    expected = procedure.points()
    assert rows == expected, (rows, expected)
    print(f"hold {bias} {hours:g} h at one point per {interval_s:g} s, virtual clock: {rows} rows")
    print(f"  wall time {wall:.1f} s (target <= 60 s for 600 h), {1e6 * wall / rows:.0f} us per row; CPU time "
          f"{cpu:.1f} s ({1e6 * cpu / rows:.0f} us per row: the figure a busy machine does not inflate)")
    print(f"  RSS {rss_start:.1f} MB at the start, {rss_end:.1f} MB at the end: growth {rss_end - rss_start:+.1f} MB "
          "(target <= 50 MB)")
    print(f"  file {result.path.stat().st_size / 1e6:.1f} MB")
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=600.0)
    parser.add_argument("--interval-s", type=float, default=10.0)
    parser.add_argument("--bias", default="oc")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_hold(Path(tmp), args.hours, args.interval_s, args.bias, args.profile)


if __name__ == "__main__":
    main()
