"""Benchmark: the 8-pixel substrate of stations/substrate-bench.yaml, a J–V per pixel with the defaults, virtual
clock, in-process: two source meters at once (the station as shipped) against every pixel on one source meter.

Prints, for each: the wall time, the station (virtual) time the substrate took, and the reverse PCE of each pixel
(the two ways must agree: concurrency changes the timing, not the figures). On two source meters the station time
should be about half, since each runs its four pixels while the other does.

Run with ``python benchmarks/bench_substrate.py``.
"""

from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from labctl.config import parse_station
from labctl.station import Station
from labctl.substrate import SubstrateRunner, parse_pixels
from procedures.jv import JVProcedure

REPO = Path(__file__).resolve().parents[1]
STATION = yaml.safe_load((REPO / "stations" / "substrate-bench.yaml").read_text())


def one_smu(data: dict[str, Any]) -> dict[str, Any]:
    """The same substrate with every pixel on ``smu`` (the fixture rewired: bank 2's pixels on bank 1's SMU)."""
    data = copy.deepcopy(data)
    for pixel in data["layouts"]["qd8"]["pixels"]:
        pixel["smu"] = "smu"
    for wire in data["simulation"]["wiring"]:
        wire["terminal"] = "smu"
    data["instruments"].pop("smu2")
    return data


def measure(data: dict[str, Any]) -> dict[str, Any]:
    """Wall time (s), station time (s) and each pixel's reverse PCE (%) of one substrate run."""
    config = parse_station(data)
    name, layout = config.layout()
    station = Station(config)
    with tempfile.TemporaryDirectory() as out:
        runner = SubstrateRunner(station, name, layout, parse_pixels("all", name, layout), lambda p: JVProcedure(),
                                 out, sample="bench", plot=False)
        t0_station, t0_wall = station.clock.now(), time.perf_counter()
        result = runner.run()
        wall_s, station_s = time.perf_counter() - t0_wall, station.clock.now() - t0_station
    pce = {n: (o.results.get("reverse") or {}).get("pce_pct") for n, o in result.pixels.items()}
    return {"status": result.status, "concurrent": runner.concurrent, "wall_s": wall_s, "station_s": station_s,
            "pce": pce}


def main() -> None:
    two, one = measure(STATION), measure(one_smu(STATION))
    for label, m in (("two SMUs at once", two), ("one SMU", one)):
        print(f"{label:17s}: {m['status']}, concurrent={m['concurrent']}, wall {m['wall_s']:.2f} s, "
              f"station time {m['station_s']:.1f} s")
    print(f"station time, two SMUs / one SMU: {two['station_s'] / one['station_s']:.3f}")
    print("reverse PCE (%) per pixel, two SMUs vs one:")
    for name in two["pce"]:
        a, b = two["pce"][name], one["pce"][name]
        shown = "—" if a is None else f"{a:.4f}"
        other = "—" if b is None else f"{b:.4f}"
        print(f"  pixel {name}: {shown} vs {other}")


if __name__ == "__main__":
    main()
