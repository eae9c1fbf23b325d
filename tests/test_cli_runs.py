"""`labctl runs` and `labctl runs reindex DIR` (issue 8 §5) through click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from click.testing import CliRunner

from labctl.catalog import Catalog
from labctl.cli import main
from tests.catalog_helpers import killed_writer, write_run_file
from tests.helpers import REPO, default_station

EQE = {"jsc_integrated_mA_cm2": 22.31, "eqe_max": 0.679}


def _invoke(args: list[str]):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def _three_runs(data):
    day = data / "2026-12-01"
    write_run_file(day / "r1.h5", "r1", start="2026-11-30T10:00:00.000+00:00")
    write_run_file(day / "r2.h5", "r2", procedure="eqe", results=EQE, start="2026-12-01T09:00:00.000+00:00")
    write_run_file(day / "r3.h5", "r3", sample="B7", status="failed", start="2026-12-01T11:00:00.000+00:00")


def _ids(result) -> list[str]:
    assert result.exit_code == 0, result.output
    return [run["run_id"] for run in json.loads(result.stdout)["runs"]]


def test_reindex_then_list_and_filter(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no station.yaml here: the catalog is DIR/catalog.sqlite
    data = tmp_path / "runs"
    _three_runs(data)
    (data / "broken.h5").write_text("not hdf5")
    done = _invoke(["runs", "reindex", str(data)])
    assert done.exit_code == 0, done.output
    assert f"indexed 3 run file(s) from {data} into sqlite:///{data / 'catalog.sqlite'}" in done.stdout
    assert "skipped 1 unreadable file(s)" in done.stdout
    assert f"skipped {data / 'broken.h5'}: not a readable run file" in done.stderr

    out = ["--out", str(data)]
    assert _ids(_invoke(["runs", *out, "--json"])) == ["r1", "r2", "r3"]
    assert _ids(_invoke(["runs", *out, "--sample", "A1", "--json"])) == ["r1", "r2"]
    assert _ids(_invoke(["runs", *out, "--procedure", "eqe", "--json"])) == ["r2"]
    assert _ids(_invoke(["runs", *out, "--since", "2026-12-01", "--json"])) == ["r2", "r3"]
    assert _ids(_invoke(["runs", *out, "--status", "failed", "--json"])) == ["r3"]
    [r1] = json.loads(_invoke(["runs", *out, "--json", "--procedure", "jv", "--sample", "A1"]).stdout)["runs"]
    assert (r1["station"], r1["status"], r1["start_time"]) == ("bench-1", "completed", "2026-11-30T10:00:00+00:00")
    assert r1["results"]["pce_pct"] == 18.82 and r1["path"] == str((data / "2026-12-01" / "r1.h5").resolve())

    table = _invoke(["runs", *out]).stdout
    assert "r1" in table and "PCE 18.8 %" in table and "Voc 1.071 V" in table and "Jsc(EQE) 22.31 mA/cm²" in table
    assert "2026-12-01 11:00:00" in table and "failed" in table


def test_a_run_whose_writer_died_is_listed_as_interrupted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "runs"
    killed_writer(data / "k1.h5", f"sqlite:///{data / 'catalog.sqlite'}")
    [run] = json.loads(_invoke(["runs", "--out", str(data), "--json"]).stdout)["runs"]
    assert (run["run_id"], run["status"]) == ("k1", "interrupted")
    assert _ids(_invoke(["runs", "--out", str(data), "--status", "interrupted", "--json"])) == ["k1"]
    assert _ids(_invoke(["runs", "--out", str(data), "--status", "running", "--json"])) == []


def test_the_station_file_names_the_catalog(tmp_path):
    """station.catalog (any SQLAlchemy URL) is where `labctl runs` and `labctl runs reindex` go."""
    shared = tmp_path / "shared" / "lab.sqlite"
    data = default_station()
    data["station"]["catalog"] = f"sqlite:///{shared}"
    station = tmp_path / "station.yaml"
    station.write_text(yaml.safe_dump(data))
    _three_runs(tmp_path / "runs")
    done = _invoke(["runs", "reindex", str(tmp_path / "runs"), "--station", str(station)])
    assert done.exit_code == 0, done.output
    assert shared.is_file() and not (tmp_path / "runs" / "catalog.sqlite").exists()
    assert _ids(_invoke(["runs", "--station", str(station), "--json"])) == ["r1", "r2", "r3"]
    with Catalog(f"sqlite:///{shared}") as catalog:
        assert len(catalog.runs()) == 3


def test_listing_an_empty_data_folder_creates_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = _invoke(["runs", "--out", str(tmp_path / "runs")])
    assert res.exit_code == 0
    assert res.stdout.startswith("no runs in the catalog sqlite:///")
    assert not (tmp_path / "runs").exists()
    assert json.loads(_invoke(["runs", "--out", str(tmp_path / "runs"), "--json"]).stdout)["runs"] == []


def test_bad_input_is_one_line_and_exit_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(main, ["runs", "--out", str(tmp_path), "--since", "last week"])
    assert res.exit_code == 2
    assert res.stderr.strip() == ("error: --since = 'last week': not a date; allowed: YYYY-MM-DD or "
                                  "YYYY-MM-DDTHH:MM[:SS][+HH:MM] (UTC unless a zone is given)")
    res = CliRunner().invoke(main, ["runs"])  # no station file, no --out: which catalog?
    assert res.exit_code == 2 and "station file station.yaml not found" in res.stderr
    res = CliRunner().invoke(main, ["runs", "--out", str(tmp_path), "--status", "lost"])
    assert res.exit_code == 2 and "'lost' is not one of" in res.output


def test_labctl_run_indexes_every_run(tmp_path, monkeypatch):
    """`labctl run` records the run at its start and its end; reindexing the folder afterwards changes nothing."""
    monkeypatch.chdir(tmp_path)
    station = str(REPO / "station.yaml")
    out = tmp_path / "runs"
    ran = json.loads(_invoke(["run", "jv", "--station", station, "--out", str(out), "--json", "--no-plot",
                              "--sample", "cat-1"]).stdout)
    [run] = json.loads(_invoke(["runs", "--out", str(out), "--json"]).stdout)["runs"]
    assert (run["station"], run["procedure"], run["sample"], run["status"]) == ("sim-bench", "jv", "cat-1",
                                                                                "completed")
    assert run["path"] == str(Path(ran["file"]).resolve()) and run["end_time"] is not None
    assert run["run_id"] == Path(ran["file"]).stem
    first = next(iter(d for d in ("reverse", "forward") if d in ran["results"]))
    assert run["results"]["direction"] == first
    for key in ("voc_V", "jsc_mA_cm2", "ff", "pce_pct"):
        assert run["results"][key] == ran["results"][first][key]
    assert _invoke(["runs", "reindex", str(out)]).exit_code == 0
    assert json.loads(_invoke(["runs", "--out", str(out), "--json"]).stdout)["runs"] == [run]


def test_a_run_goes_on_when_its_catalog_cannot_be_opened(tmp_path):
    data = default_station()
    data["station"]["catalog"] = "postgresql+psycopg://labctl@127.0.0.1:1/none?connect_timeout=2"
    station = tmp_path / "station.yaml"
    station.write_text(yaml.safe_dump(data))
    res = _invoke(["run", "jv", "--station", str(station), "--out", str(tmp_path / "runs"), "--no-plot",
                   "--set", "step_V=0.1"])
    assert res.exit_code == 0, res.output
    assert "WARNING: run catalog postgresql+psycopg://labctl@127.0.0.1:1/none?connect_timeout=2: cannot open it" in (
        " ".join(res.stderr.split()))
    assert "this run is not indexed (`labctl runs reindex" in " ".join(res.stderr.split())


def test_a_catalog_that_is_not_a_database_is_one_line_and_exit_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "catalog.sqlite").write_bytes(b"this is not a SQLite database, it only has its name" * 100)
    for args in (["runs", "--out", str(tmp_path)], ["runs", "reindex", str(tmp_path)]):
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 2, res.output
        line = res.stderr.strip()
        assert "\n" not in line and line.startswith(f"error: run catalog sqlite:///{tmp_path / 'catalog.sqlite'}: ")
        assert "file is not a database" in line
