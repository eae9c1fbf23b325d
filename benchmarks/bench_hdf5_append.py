"""Benchmark 4: single-row appends to a run file as the engine does them (1 s flushes).

Target: >= 100,000 rows/s. For comparison, a naive loop that resizes and writes the HDF5 datasets for every
row. Prints both rates and the ratio.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import h5py

from labctl.storage import Column, RunWriter

ROWS = 200_000
COLUMNS = [Column("time_s", "s"), Column("voltage_V", "V"), Column("current_A", "A"), Column("j_mA_cm2", "mA/cm^2"),
           Column("scan", "", "i4")]


def engine_rate(folder: Path) -> float:
    writer = RunWriter(folder / "engine.h5", flush_interval_s=1.0)
    writer.create_stream("jv", COLUMNS, signal="j_mA_cm2", axes="voltage_V")
    t0 = time.perf_counter()
    for k in range(ROWS):
        writer.append("jv", {"time_s": k * 1e-3, "voltage_V": 0.5, "current_A": -1e-3, "j_mA_cm2": 18.0, "scan": 0})
    writer.close("completed")
    return ROWS / (time.perf_counter() - t0)


def naive_rate(folder: Path, rows: int = 20_000) -> float:
    with h5py.File(folder / "naive.h5", "w") as f:
        ds = {c.name: f.create_dataset(c.name, (0,), maxshape=(None,), dtype=c.dtype, chunks=(4096,)) for c in COLUMNS}
        t0 = time.perf_counter()
        for k in range(rows):
            for name, d in ds.items():
                d.resize((k + 1,))
                d[k] = 0.5 if name != "scan" else 0
        return rows / (time.perf_counter() - t0)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        fast = engine_rate(folder)
        slow = naive_rate(folder)
        n = len(h5py.File(folder / "engine.h5", locking=False)["entry/jv/time_s"])
        assert n == ROWS, n
    print(f"engine appends (1 s flushes): {fast:,.0f} rows/s  (target >= 100,000)")
    print(f"naive resize-per-row loop:    {slow:,.0f} rows/s")
    print(f"ratio: {fast / slow:.1f}x")


if __name__ == "__main__":
    main()
