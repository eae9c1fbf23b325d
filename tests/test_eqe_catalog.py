"""The EQE procedure finds its calibration through the run catalog (issue 8 §5), not by globbing the data folder.

The end-to-end EQE tests (tests/test_procedure_eqe.py, tests/test_cli_eqe.py) still pass as they did; these pin
down which calibration is chosen.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from labctl.catalog import Catalog
from labctl.config import ConfigError, parse_station
from procedures.eqe import EQEProcedure
from tests.catalog_helpers import write_run_file
from tests.helpers import default_station


def _procedure(data_dir, catalog: str | None = None) -> EQEProcedure:
    data = default_station()  # station.name: sim-bench
    if catalog:
        data["station"]["catalog"] = catalog
    proc = EQEProcedure()
    proc.station = SimpleNamespace(config=parse_station(data))
    proc.data_dir = data_dir
    return proc


def _calibration(path, run_id, start, station="sim-bench", status="completed"):
    return write_run_file(path, run_id, procedure="eqe-calibration", station=station, status=status, results={},
                          start=start)


def test_the_newest_completed_calibration_of_this_station_in_a_shared_catalog(tmp_path):
    """Benches sharing a catalog: this station's newest completed calibration, wherever its file is; not another
    bench's newer one, not one that failed, not one whose file is gone. (Globbing the data folder found none.)"""
    url = f"sqlite:///{tmp_path / 'shared' / 'lab.sqlite'}"
    (tmp_path / "runs").mkdir()
    ours = _calibration(tmp_path / "bench-a" / "old.h5", "c1", "2026-12-01T08:00:00+00:00")
    _calibration(tmp_path / "bench-a" / "failed.h5", "c2", "2026-12-01T09:00:00+00:00", status="failed")
    _calibration(tmp_path / "bench-b" / "other.h5", "c3", "2026-12-01T10:00:00+00:00", station="bench-b")
    gone = _calibration(tmp_path / "bench-a" / "gone.h5", "c4", "2026-12-01T11:00:00+00:00")
    with Catalog(url) as catalog:
        for folder in ("bench-a", "bench-b"):
            catalog.reindex(tmp_path / folder)
    gone.unlink()
    assert _procedure(tmp_path / "runs", url)._find_calibration() == ours.resolve()


def test_runs_made_without_the_catalog_are_found_by_reindexing_the_data_folder(tmp_path):
    """An empty catalog but calibration files in the data folder (e.g. runs of a RunEngine without the catalog
    subscriber): the folder is reindexed, and the newest completed one is used, whatever its file name."""
    data = tmp_path / "runs"
    _calibration(data / "2026-11-30" / "first.h5", "c1", "2026-11-30T08:00:00+00:00")
    newest = _calibration(data / "2026-12-01" / "second.h5", "c2", "2026-12-01T08:00:00+00:00")
    assert _procedure(data)._find_calibration() == newest.resolve()
    with Catalog(f"sqlite:///{data / 'catalog.sqlite'}") as catalog:
        assert [r.run_id for r in catalog.runs()] == ["c1", "c2"]  # the catalog has caught up


def test_no_calibration_anywhere_is_one_clear_line(tmp_path):
    with pytest.raises(ConfigError, match=r"^no completed eqe-calibration run of station 'sim-bench' in the run "
                                          r"catalog sqlite:///.*catalog.sqlite nor in the data folder .*: run "
                                          r"`labctl run eqe-calibration` first, or give --set calibration_file=PATH$"):
        _procedure(tmp_path / "missing")._find_calibration()
    assert not (tmp_path / "missing").exists()  # nothing created for a folder that is not there
