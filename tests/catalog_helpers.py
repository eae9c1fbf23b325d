"""Helpers of the catalog tests: the processes of the concurrency tests (this module imports only the catalog at
its top, so that a new process starts in well under a second), small run files, a run whose writer is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from labctl.catalog import Catalog, CatalogSubscriber
from labctl.documents import RunStart, RunStop
from tests.helpers import reap

REPO = Path(__file__).resolve().parents[1]
JV_RESULTS = {
    "reverse": {"voc_V": 1.071, "jsc_mA_cm2": 22.5, "ff": 0.781, "pce_pct": 18.82, "vmp_V": 0.9, "flags": []},
    "forward": {"voc_V": 1.065, "jsc_mA_cm2": 22.4, "ff": 0.770, "pce_pct": 18.37, "flags": []},
    "hysteresis": {"hi_pce": 0.024, "flags": []},
    "warnings": [],
}


def write_runs(url: str, station: str, n: int, barrier: Any) -> None:
    """One bench's process: ``n`` runs of its own, and ``n`` runs of ``shared-bench`` that a second process
    records too (start, then stop), starting together with the other process at ``barrier``."""
    with Catalog(url) as catalog:
        sub = CatalogSubscriber(catalog)
        barrier.wait(60)
        for i in range(n):
            for run_id, bench in ((f"{station}-{i}", station), (f"shared-{i}", "shared-bench")):
                sub("start", RunStart(run_id=run_id, procedure="jv", sample="A1", operator="ada", station_name=bench,
                                      time=f"2026-12-01T20:{i // 60:02d}:{i % 60:02d}+00:00", path="/data/r.h5"))
                sub("stop", RunStop(run_id=run_id, time="2026-12-01T21:00:00+00:00", status="completed",
                                    results={"n": i}))


def open_catalog(url: str, barrier: Any) -> None:
    """Open (and so create) the catalog, at the same moment as the other process."""
    barrier.wait(60)
    Catalog(url).close()


def write_run_file(path: Path, run_id: str, procedure: str = "jv", sample: str = "A1", station: str = "bench-1",
                   status: str = "completed", results: dict | None = None,
                   start: str = "2026-12-01T20:00:00.000+00:00", events: tuple[str, ...] = ()) -> Path:
    """A small run file as the engine writes it (metadata, results, terminal status)."""
    from labctl.storage import RunWriter

    writer = RunWriter(path)
    writer.write_metadata(run_id=run_id, procedure=procedure, sample=sample, operator="ada", area_cm2=0.049,
                          parameters={}, station={"station": {"name": station}}, idn={}, software_version="test",
                          start_time=start)
    for message in events:
        writer.log_event(message)
    writer.write_results(results if results is not None else JV_RESULTS)
    writer.close(status, end_time="2026-12-01T20:05:00.000+00:00")
    return path


def killed_writer(path: Path, url: str) -> None:
    """A run whose writer (and its catalog subscriber) is SIGKILLed mid-run."""
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from labctl.catalog import Catalog, CatalogSubscriber
        from labctl.documents import RunStart
        from labctl.storage import RunWriter, utc_now_iso
        w = RunWriter({str(path)!r})
        start = utc_now_iso()
        w.write_metadata(run_id="k1", procedure="jv", sample="A1", operator="ada", area_cm2=None, parameters={{}},
                         station={{"station": {{"name": "bench-1"}}}}, idn={{}}, software_version="t",
                         start_time=start)
        CatalogSubscriber(Catalog({url!r}))("start", RunStart(run_id="k1", procedure="jv", sample="A1",
            operator="ada", station_name="bench-1", time=start, path={str(path)!r}))
        print("ready", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        reap(proc)
