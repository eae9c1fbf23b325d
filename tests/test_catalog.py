"""The run catalog (issue 8 §5) on SQLite and on a real PostgreSQL server: a run indexed at its start and updated
at its stop, queries, reindex from run files, two writers at once, run ids unique across benches.

Expected rows are written out by hand from the documents and files each test makes.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
from datetime import datetime, timezone

import pytest

from labctl.catalog import CATALOG_FILE, Catalog, CatalogSubscriber, key_results, parse_since
from labctl.config import ConfigError, parse_station
from labctl.documents import DocumentBus, RunStart, RunStop
from tests.catalog_helpers import JV_RESULTS, killed_writer, open_catalog, write_run_file, write_runs
from tests.helpers import default_station
from tests.postgres import postgres_server, postgres_url  # noqa: F401 - fixtures

EQE_RESULTS = {"jsc_integrated_mA_cm2": 22.31, "eqe_max": 0.679, "band_edge_reached": True, "jsc_ratio": None,
               "order_sorting_problems": [], "wavelength_max_nm": 900.0}


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path) -> str:
    """A fresh, empty catalog on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cat' / CATALOG_FILE}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def catalog(url):
    with Catalog(url) as cat:
        yield cat


def _start(run_id: str, station: str = "bench-1", procedure: str = "jv", sample: str = "A1",
           time: str = "2026-12-01T20:00:00.000+00:00", path: str = "/data/r.h5") -> RunStart:
    return RunStart(run_id=run_id, procedure=procedure, sample=sample, operator="ada", station_name=station,
                    time=time, path=path)


def _utc(text_: str) -> datetime:
    return datetime.fromisoformat(text_).astimezone(timezone.utc)


# -- the subscriber -------------------------------------------------------------------------------------------------
def test_a_run_is_indexed_at_its_start_and_updated_at_its_stop(catalog):
    bus = DocumentBus()
    bus.subscribe(CatalogSubscriber(catalog))
    bus.emit("start", _start("r1", time="2026-12-01T21:00:00.250+01:00", path="/data/2026-12-01/r1.h5"))
    [run] = catalog.runs()
    assert (run.station, run.run_id, run.procedure, run.sample, run.operator) == ("bench-1", "r1", "jv", "A1", "ada")
    assert run.status == "running" and run.end_time is None and run.results == {}
    assert run.start_time == datetime(2026, 12, 1, 20, 0, 0, 250000, tzinfo=timezone.utc)  # stored as UTC
    assert run.path == "/data/2026-12-01/r1.h5"

    bus.emit("stop", RunStop(run_id="r1", time="2026-12-01T20:03:10+00:00", status="aborted",
                             reason="KeyboardInterrupt", results=JV_RESULTS, num_events={"jv": 40}))
    [run] = catalog.runs()
    assert run.status == "aborted" and run.reason == "KeyboardInterrupt"
    assert run.end_time == datetime(2026, 12, 1, 20, 3, 10, tzinfo=timezone.utc)
    # the first direction's figures, and its name; nothing nested, nothing that is not a scalar
    assert run.results == {"direction": "reverse", "voc_V": 1.071, "jsc_mA_cm2": 22.5, "ff": 0.781, "pce_pct": 18.82}
    assert run.start_time == datetime(2026, 12, 1, 20, 0, 0, 250000, tzinfo=timezone.utc)  # kept from the start


def test_a_resumed_run_keeps_its_first_start_and_becomes_running_again(catalog):
    sub = CatalogSubscriber(catalog)
    sub("start", _start("h1", procedure="hold", time="2026-12-01T08:00:00+00:00"))
    catalog.record(station="bench-1", run_id="h1", status="interrupted")
    sub("start", RunStart(run_id="h1", procedure="hold", sample="A1", operator="ada", station_name="bench-1",
                          time="2026-12-01T12:00:00+00:00", path="/data/r.h5", segment=1,
                          resume_reason="resumed after interrupted"))
    [run] = catalog.runs(check_running=False)
    assert (run.status, run.segment, run.end_time) == ("running", 1, None)
    assert run.start_time == datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc)
    sub("stop", RunStop(run_id="h1", time="2026-12-01T13:00:00+00:00", status="completed", results={"rows": 10}))
    [run] = catalog.runs(check_running=False)
    assert (run.status, run.results, run.end_time) == ("completed", {"rows": 10},
                                                       datetime(2026, 12, 1, 13, 0, tzinfo=timezone.utc))


def test_key_results_of_an_eqe_and_a_dark_jv():
    assert key_results(EQE_RESULTS) == {"jsc_integrated_mA_cm2": 22.31, "eqe_max": 0.679, "band_edge_reached": True,
                                        "wavelength_max_nm": 900.0}
    dark = {"dark": {"reverse": {"j0_A_cm2": 1e-12, "ideality": 1.31, "rs_ohm_cm2": 2.0, "flags": []}}}
    assert key_results(dark) == {"direction": "reverse", "j0_A_cm2": 1e-12, "ideality": 1.31}
    assert key_results({"x": float("nan"), "n": 3}) == {"n": 3}


def test_a_stop_without_its_start_is_not_recorded(catalog):
    CatalogSubscriber(catalog)("stop", RunStop(run_id="lost", time="2026-12-01T20:00:00+00:00", status="completed"))
    assert catalog.runs() == []


# -- queries --------------------------------------------------------------------------------------------------------
def _some_runs(catalog: Catalog) -> None:
    sub = CatalogSubscriber(catalog)
    for run_id, procedure, sample, day, status in (
        ("a", "jv", "A1", "2026-11-30T10:00:00+00:00", "completed"),
        ("b", "eqe", "A1", "2026-12-01T09:00:00+00:00", "completed"),
        ("c", "jv", "B7", "2026-12-01T11:30:00+00:00", "failed"),
        ("d", "jv", "A1", "2026-12-02T08:00:00+00:00", "completed"),
    ):
        sub("start", _start(run_id, procedure=procedure, sample=sample, time=day))
        sub("stop", RunStop(run_id=run_id, time=day, status=status,
                            results=EQE_RESULTS if procedure == "eqe" else JV_RESULTS))


def test_queries_filter_by_sample_procedure_date_and_status(catalog):
    _some_runs(catalog)
    ids = lambda runs: [r.run_id for r in runs]  # noqa: E731
    assert ids(catalog.runs()) == ["a", "b", "c", "d"]  # oldest first
    assert ids(catalog.runs(sample="A1")) == ["a", "b", "d"]
    assert ids(catalog.runs(procedure="jv")) == ["a", "c", "d"]
    assert ids(catalog.runs(since="2026-12-01")) == ["b", "c", "d"]
    assert ids(catalog.runs(since="2026-12-01T11:00")) == ["c", "d"]
    assert ids(catalog.runs(since="2026-12-01T12:00+01:00")) == ["c", "d"]  # 11:00 UTC
    assert ids(catalog.runs(status="failed")) == ["c"]
    assert ids(catalog.runs(sample="A1", procedure="jv", since="2026-12-01")) == ["d"]
    assert ids(catalog.runs(newest_first=True, limit=2)) == ["d", "c"]
    assert catalog.newest("jv") is None  # by default only a run whose file exists: /data/r.h5 does not
    assert catalog.newest("jv", existing_file=False).run_id == "d"
    assert catalog.newest("jv", status="failed", existing_file=False).run_id == "c"


def test_since_refuses_what_is_not_a_date():
    with pytest.raises(ValueError, match=r"--since = 'yesterday': not a date; allowed: YYYY-MM-DD"):
        parse_since("yesterday")


# -- benches sharing one catalog ------------------------------------------------------------------------------------
def test_run_ids_are_unique_per_station_across_benches_sharing_a_catalog(url):
    with Catalog(url) as one, Catalog(url) as two:  # two benches, one catalog
        CatalogSubscriber(one)("start", _start("20261201T200000Z_jv_A1_beef", station="bench-1"))
        CatalogSubscriber(two)("start", _start("20261201T200000Z_jv_A1_beef", station="bench-2"))
        CatalogSubscriber(two)("start", _start("20261201T200000Z_jv_A1_beef", station="bench-2", sample="again"))
        runs = one.runs()
    assert [(r.station, r.run_id, r.sample) for r in runs] == [
        ("bench-1", "20261201T200000Z_jv_A1_beef", "A1"), ("bench-2", "20261201T200000Z_jv_A1_beef", "again")]


def _together(target, arguments: list[tuple]) -> list[int | None]:
    """One process per argument tuple, each calling ``target(*args, barrier)``: they pass the barrier together
    (so they write at the same time). Returns their exit codes."""
    ctx = multiprocessing.get_context("forkserver")  # a fresh interpreter (no inherited threads or sockets)
    ctx.set_forkserver_preload(["tests.catalog_helpers"])  # started once, so each process starts in ~0.1 s
    barrier = ctx.Barrier(len(arguments))
    procs = [ctx.Process(target=target, args=(*args, barrier)) for args in arguments]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    return [proc.exitcode for proc in procs]


def test_two_writers_at_once_lose_and_duplicate_nothing(url):
    n = 30
    Catalog(url).close()  # the table exists (creating it concurrently is tested below)
    assert _together(write_runs, [(url, "bench-1", n), (url, "bench-2", n)]) == [0, 0]
    with Catalog(url) as catalog:
        runs = catalog.runs()
    keys = [(r.station, r.run_id) for r in runs]
    assert len(keys) == len(set(keys)) == 3 * n
    assert {k for k in keys if k[0] == "bench-1"} == {("bench-1", f"bench-1-{i}") for i in range(n)}
    assert {k for k in keys if k[0] == "bench-2"} == {("bench-2", f"bench-2-{i}") for i in range(n)}
    assert {k for k in keys if k[0] == "shared-bench"} == {("shared-bench", f"shared-{i}") for i in range(n)}
    assert all(r.status == "completed" and r.results == {"n": int(r.run_id.rsplit("-", 1)[1])} for r in runs)


def test_two_benches_creating_the_catalog_at_once(url):
    assert _together(open_catalog, [(url,), (url,)]) == [0, 0]


# -- the files stay the source of truth -----------------------------------------------------------------------------
def test_reindex_rebuilds_the_catalog_from_the_run_files(url, tmp_path):
    data = tmp_path / "runs"
    write_run_file(data / "2026-12-01" / "r1.h5", "r1")
    write_run_file(data / "2026-12-01" / "r2.h5", "r2", procedure="eqe", sample="B7", status="aborted",
                   results=EQE_RESULTS, start="2026-12-01T20:10:00.000+00:00",
                   events=("run r2 started", "ended: aborted: KeyboardInterrupt"))
    (data / "2026-12-01" / "notes.h5").write_text("not a run file")
    with Catalog(url) as catalog:
        catalog.record(station="bench-1", run_id="r1", procedure="jv", status="running")  # stale: the file wins
        report = catalog.reindex(data)
        assert report.indexed == 2 and report.removed == 0
        assert list(report.unreadable) == [str((data / "2026-12-01" / "notes.h5").resolve())]
        runs = {r.run_id: r for r in catalog.runs()}
        assert set(runs) == {"r1", "r2"}
        r1, r2 = runs["r1"], runs["r2"]
        assert (r1.station, r1.procedure, r1.sample, r1.operator, r1.status) == ("bench-1", "jv", "A1", "ada",
                                                                                  "completed")
        assert r1.start_time == _utc("2026-12-01T20:00:00+00:00")
        assert r1.end_time == _utc("2026-12-01T20:05:00+00:00")
        assert r1.path == str((data / "2026-12-01" / "r1.h5").resolve())
        assert r1.results["voc_V"] == 1.071 and r1.results["direction"] == "reverse"
        assert (r2.procedure, r2.sample, r2.status, r2.reason) == ("eqe", "B7", "aborted", "KeyboardInterrupt")
        assert r1.reason is None
        assert r2.results["jsc_integrated_mA_cm2"] == 22.31

        (data / "2026-12-01" / "r2.h5").unlink()
        catalog.record(station="bench-9", run_id="elsewhere", procedure="jv", status="completed",
                       path="/somewhere/else.h5")
        report = catalog.reindex(data)
        assert report.indexed == 1 and report.removed == 1  # r2's file is gone; rows outside DIR are kept
        assert sorted(r.run_id for r in catalog.runs()) == ["elsewhere", "r1"]


def test_a_run_whose_writer_died_shows_as_interrupted(url, tmp_path):
    path = tmp_path / "k1.h5"
    killed_writer(path, url)
    with Catalog(url) as catalog:
        assert [r.status for r in catalog.runs(check_running=False)] == ["running"]  # what the catalog was told
        assert [(r.run_id, r.status) for r in catalog.runs()] == [("k1", "interrupted")]  # what the file says
        assert [r.run_id for r in catalog.runs(status="interrupted", check_running=False)] == ["k1"]  # kept


# -- where the catalog is -------------------------------------------------------------------------------------------
def test_the_default_catalog_is_sqlite_in_wal_mode_in_the_data_folder(tmp_path):
    with Catalog.for_data_dir(None, tmp_path / "runs") as catalog:
        catalog.record(station="s", run_id="r", procedure="jv", status="running")
    db = tmp_path / "runs" / "catalog.sqlite"
    assert db.is_file()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("SELECT station, run_id, status FROM runs").fetchall() == [("s", "r", "running")]


def test_station_catalog_is_any_sqlalchemy_url_without_a_password():
    data = default_station()
    assert parse_station(data).station.catalog is None
    data["station"]["catalog"] = "postgresql+psycopg://labctl@db.lab/labctl"
    assert parse_station(data).station.catalog == "postgresql+psycopg://labctl@db.lab/labctl"
    data["station"]["catalog"] = "postgresql+psycopg://labctl:s3cret@db.lab/labctl"
    with pytest.raises(ConfigError, match=r"^station.yaml: station.catalog = .*: holds a password, which would be "
                                          r"stored in every run file"):
        parse_station(data)
    data["station"]["catalog"] = "catalog.sqlite"
    with pytest.raises(ConfigError, match=r"station.catalog = 'catalog.sqlite': not a database URL; allowed: a "
                                          r"SQLAlchemy URL"):
        parse_station(data)


def test_the_upsert_of_a_database_without_on_conflict(url):
    """Databases other than SQLite and PostgreSQL get an update-else-insert (exercised here on both backends)."""
    with Catalog(url) as catalog:
        catalog.backend = "another"
        CatalogSubscriber(catalog)("start", _start("g1"))
        catalog.record(station="bench-1", run_id="g1")  # nothing to change: still one row
        catalog.record(station="bench-1", run_id="g2")  # a new row with nothing but its key
        catalog.record_stop("bench-1", RunStop(run_id="g1", time="2026-12-01T20:01:00+00:00", status="completed"))
        runs = catalog.runs(check_running=False)
    # g2 has no start time: last, on both backends (their NULL orders differ)
    assert [(r.run_id, r.procedure, r.status) for r in runs] == [("g1", "jv", "completed"), ("g2", "", "running")]


def test_every_engine_run_is_indexed_also_from_python(tmp_path):
    """Not only `labctl run`: a RunEngine used from a script indexes its runs in the data folder's catalog (so
    the EQE finds a calibration made that way), unless told not to."""
    from tests.helpers import run_jv

    result, station = run_jv(tmp_path / "runs", step_V=0.1)
    station.close()
    with Catalog(f"sqlite:///{tmp_path / 'runs' / CATALOG_FILE}") as catalog:
        (run,) = catalog.runs()
    assert (run.run_id, run.status, run.procedure) == (result.run_id, "completed", "jv")
    assert run.results["voc_V"] == pytest.approx(result.results["reverse"]["voc_V"])

    from labctl.engine import RunEngine
    from labctl.station import Station
    from tests.helpers import make_procedure

    station = Station(parse_station(default_station()))
    RunEngine(station, tmp_path / "other", catalog=False).run(make_procedure(step_V=0.1))
    station.close()
    assert not (tmp_path / "other" / CATALOG_FILE).exists()
