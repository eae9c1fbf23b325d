"""Processes for the catalog's concurrency tests (tests/test_catalog.py), in a module that imports only the
catalog, so that a spawned process starts in well under a second."""

from __future__ import annotations

from typing import Any

from labctl.catalog import Catalog, CatalogSubscriber
from labctl.documents import RunStart, RunStop


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
