"""Benchmark: a 600 h ``mpp`` run with a J–V every 30 min on stations/stability-bench.yaml, virtual clock.

The settings of tests/test_stability_600h.py (one tracking step a minute, every step recorded; the periodic J–V
with its defaults: −0.1 to 1.3 V by 10 mV, reverse then forward). Prints the wall and CPU time (simulated hours
per wall second), the process's resident memory against run length (sampled every 50 h of stress time: flat
is the target), and the run file's size (per simulated hour) against the raw size of what it holds (the
compression). Run with ``python benchmarks/bench_stability.py`` (``--hours 60`` for a quick look,
``--jv-interval-min 0`` for tracking alone).
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import yaml

from labctl.config import parse_station
from labctl.engine import RunEngine
from labctl.station import Station
from procedures.mpp import MPPProcedure

REPO = Path(__file__).resolve().parents[1]


def rss_MB() -> float:
    """Resident set size of this process now (MB), from /proc (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def stored_sizes(path: Path) -> tuple[int, int]:
    """(bytes of the datasets' contents as held in memory, bytes they take in the file)."""
    raw = stored = 0

    def visit(_: str, obj: object) -> None:
        nonlocal raw, stored
        if isinstance(obj, h5py.Dataset):
            stored += obj.id.get_storage_size()
            if obj.dtype.kind == "O":  # variable-length strings: their characters
                values = np.atleast_1d(np.asarray(obj[()], dtype=object)).ravel()
                raw += sum(len(v) if isinstance(v, bytes | str) else 8 for v in values)
            else:
                raw += obj.size * obj.dtype.itemsize
    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return raw, stored


def run(out: Path, hours: float, dwell_s: float, jv_interval_min: float) -> None:
    data = copy.deepcopy(yaml.safe_load((REPO / "stations" / "stability-bench.yaml").read_text()))
    station = Station(parse_station(data))
    procedure = MPPProcedure()
    procedure.duration_h, procedure.dwell_s, procedure.jv_interval_min = hours, dwell_s, jv_interval_min
    engine = RunEngine(station, out, sample="bench", catalog=False)
    samples: list[tuple[float, float]] = []
    next_h = [0.0]

    def sample_rss(name: str, doc: object) -> None:
        if name == "event" and getattr(doc, "stream", "") == "mpp":
            t_h = float(doc.data["time_s"]) / 3600.0  # type: ignore[attr-defined]
            if t_h >= next_h[0]:
                samples.append((t_h, rss_MB()))
                next_h[0] += 50.0

    engine.subscribe(sample_rss)
    rss_start = rss_MB()
    t0, cpu0 = time.perf_counter(), time.process_time()
    result = engine.run(procedure)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    rss_end = rss_MB()
    station.close()
    assert result.status == "completed", result.error
    r = result.results
    print(f"mpp {hours:g} h, dwell {dwell_s:g} s, J-V every {jv_interval_min:g} min, virtual clock: {r['steps']} "
          f"tracking rows, {r['jv_scans']} J-Vs")
    print(f"  wall {wall:.1f} s ({hours / wall:.1f} simulated h per wall s), CPU {cpu:.1f} s "
          f"({hours / cpu:.1f} h per CPU s: the figure a busy machine does not inflate)")
    print(f"  RSS {rss_start:.1f} MB at the start, {rss_end:.1f} MB at the end ({rss_end - rss_start:+.1f} MB); "
          "against stress time: " + ", ".join(f"{t:.0f} h {m:.1f} MB" for t, m in samples))
    size = result.path.stat().st_size
    raw, stored = stored_sizes(result.path)
    print(f"  file {size / 1e6:.2f} MB ({size / hours / 1e3:.1f} kB per simulated hour); datasets {raw / 1e6:.2f} MB "
          f"of data in {stored / 1e6:.2f} MB of storage (x{raw / max(stored, 1):.2f})")
    print(f"  results: t80_h {r['t80_h']}, ts80_h {r['ts80_h']}, retained_pce_pct {r['retained_pce_pct']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=600.0)
    parser.add_argument("--dwell-s", type=float, default=60.0)
    parser.add_argument("--jv-interval-min", type=float, default=30.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run(Path(tmp), args.hours, args.dwell_s, args.jv_interval_min)


if __name__ == "__main__":
    main()
