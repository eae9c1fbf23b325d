"""`labctl run jv --pixels ...`: which pixels, one run file per pixel linked in the catalog by the substrate id
and the pixel name, the --json pixels map, the substrate record, and an older catalog brought up to date."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from labctl.catalog import Catalog, catalog_url
from labctl.cli import main
from labctl.config import ConfigError, parse_station
from labctl.storage import load_run
from labctl.substrate import load_substrate, parse_pixels
from tests import substrate_fakes
from tests.substrate_fakes import substrate_station


@pytest.fixture(autouse=True)
def fake_switch():
    substrate_fakes.register()
    substrate_fakes.LOG.clear()
    yield


@pytest.fixture
def layout():
    return parse_station(substrate_station(pixels=6)).layout()


# -- --pixels ----------------------------------------------------------------------------------------------------
def test_all_is_every_pixel_in_layout_order(layout):
    assert parse_pixels("all", *layout) == ["1", "2", "3", "4", "5", "6"]


def test_a_list_is_those_pixels_in_the_order_given(layout):
    assert parse_pixels("1,3,5", *layout) == ["1", "3", "5"]
    assert parse_pixels(" 5, 1 ", *layout) == ["5", "1"]


def test_an_unknown_pixel_is_one_line_naming_it_and_the_layouts(layout):
    with pytest.raises(ConfigError) as info:
        parse_pixels("1,9", *layout)
    assert str(info.value) == ("--pixels = '1,9': layout 'test4' has no pixel '9' (allowed: all, or some of "
                               "1, 2, 3, 4, 5, 6)")


@pytest.mark.parametrize("spec", ["", "1,,3", ","])
def test_an_empty_name_is_refused(layout, spec):
    with pytest.raises(ConfigError, match=r"allowed: all, or pixel names separated by commas"):
        parse_pixels(spec, *layout)


def test_a_pixel_named_twice_is_refused(layout):
    with pytest.raises(ConfigError, match=r"pixel '3' is named twice"):
        parse_pixels("3,1,3", *layout)


def _station(tmp_path: Path, **kwargs) -> Path:
    path = tmp_path / "station.yaml"
    path.write_text(yaml.safe_dump(substrate_station(**kwargs)))
    return path


def _run(tmp_path: Path, *args: str, station: Path | None = None):
    station = station or _station(tmp_path)
    return CliRunner().invoke(main, ["run", "jv", "--station", str(station), "--out", str(tmp_path / "runs"),
                                     "--no-plot", *args])


def test_the_cli_refuses_an_unknown_pixel_with_a_json_error(tmp_path):
    res = _run(tmp_path, "--pixels", "2,7", "--json")
    assert res.exit_code == 2
    payload = json.loads(res.stdout)
    assert payload["status"] == "error" and "layout 'test4' has no pixel '7'" in payload["error"]
    assert substrate_fakes.LOG == [] and not (tmp_path / "runs").exists()


def test_a_procedure_that_does_not_run_per_pixel_is_refused(tmp_path):
    res = CliRunner().invoke(main, ["run", "eqe", "--station", str(_station(tmp_path)), "--pixels", "all"])
    assert res.exit_code == 2
    assert "--pixels: procedure eqe does not run per pixel (allowed with --pixels: " in res.output
    assert "jv" in res.output and "mpp" in res.output


def test_the_area_comes_from_the_layout_not_from_set(tmp_path):
    res = _run(tmp_path, "--pixels", "all", "--set", "area_cm2=0.1")
    assert res.exit_code == 2 and "--set area_cm2: with --pixels each pixel's area is the layout's" in res.output


# -- the runs, the catalog, the record ---------------------------------------------------------------------------
def test_one_file_per_pixel_linked_in_the_catalog_and_the_json_pixels_map(tmp_path):
    data = substrate_station(pixels=4)
    data["layouts"]["test4"]["pixels"][2]["area_cm2"] = 0.1  # pixel 3 is bigger: its own area in its run
    data["simulation"]["devices"][2] = {**data["simulation"]["devices"][2], "area_cm2": 0.1}
    station = tmp_path / "station.yaml"
    station.write_text(yaml.safe_dump(data))
    res = _run(tmp_path, "--pixels", "1,3,4", "--sample", "QD-17", "--json", station=station)
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)  # exactly one JSON object on stdout
    assert payload["status"] == "completed" and payload["error"] is None
    assert list(payload["pixels"]) == ["1", "3", "4"]
    substrate_id = payload["substrate_id"]
    for name, pixel in payload["pixels"].items():
        assert pixel["status"] == "completed" and pixel["reason"] is None
        assert pixel["channel"] == int(name)
        run = load_run(pixel["file"])
        assert run.info["substrate_id"] == substrate_id and run.info["pixel"] == name
        assert run.info["sample"] == "QD-17"
        assert run.parameters["area_cm2"] == pytest.approx(0.1 if name == "3" else 0.049)
        # the set A cell (methods ref. §1.6): Voc 1.170 V, Jsc 18.30 mA/cm², FF 0.783, whatever the area
        reverse = pixel["results"]["reverse"]
        assert reverse["voc_V"] == pytest.approx(1.170, abs=0.003)
        assert reverse["jsc_mA_cm2"] == pytest.approx(18.30, rel=0.01)
        assert reverse["ff"] == pytest.approx(0.783, abs=0.005)
    record = Path(payload["file"])
    assert record.name == f"{substrate_id}.substrate.json" and record.parent.parent == tmp_path / "runs"
    with Catalog(catalog_url(None, tmp_path / "runs")) as catalog:
        rows = catalog.runs(substrate=substrate_id)
    assert sorted(r.pixel for r in rows) == ["1", "3", "4"]
    assert {r.sample for r in rows} == {"QD-17"} and {r.substrate_id for r in rows} == {substrate_id}
    assert {str(Path(r.path)) for r in rows} == {p["file"] for p in payload["pixels"].values()}
    # the substrate read back: its record, and each pixel's run file opened only when asked for
    substrate = load_substrate(record)
    assert substrate.status == "completed" and set(substrate.pixels) == {"1", "3", "4"}
    assert substrate._runs == {}
    assert substrate.run("3").info["pixel"] == "3" and set(substrate._runs) == {"3"}
    listed = CliRunner().invoke(main, ["runs", "--out", str(tmp_path / "runs"), "--substrate", substrate_id,
                                       "--json"])
    assert listed.exit_code == 0
    assert sorted(r["pixel"] for r in json.loads(listed.stdout)["runs"]) == ["1", "3", "4"]
    # every relay change left at most one channel closed, and the substrate ended with all open
    relays = [closed for source, what, closed in substrate_fakes.LOG if what == "relays"]
    assert max(len(c) for c in relays) == 1 and relays[-1] == []


def test_an_older_catalog_gets_the_new_columns(tmp_path):
    """A catalog made before substrates (no substrate_id, no pixel): opened, its columns are added, its rows
    kept (NULL: runs of one cell), and a pixel run is recorded into it."""
    folder = tmp_path / "runs"
    folder.mkdir()
    db = folder / "catalog.sqlite"
    with sqlite3.connect(db) as conn:  # the runs table as labctl made it before this issue
        conn.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, station VARCHAR(200) NOT NULL, "
                     "run_id VARCHAR(300) NOT NULL, procedure VARCHAR(100) NOT NULL, sample VARCHAR(300) NOT NULL, "
                     "operator VARCHAR(200) NOT NULL, start_time DATETIME, end_time DATETIME, status VARCHAR(20) "
                     "NOT NULL, reason TEXT, path TEXT NOT NULL, segment INTEGER NOT NULL, results JSON NOT NULL, "
                     "CONSTRAINT uq_runs_station_run_id UNIQUE (station, run_id))")
        conn.execute("INSERT INTO runs (station, run_id, procedure, sample, operator, status, path, segment, "
                     "results) VALUES ('sim-bench', 'old-run', 'jv', 'cell-1', 'me', 'completed', '/x.h5', 0, '{}')")
    with Catalog(catalog_url(None, folder)) as catalog:
        (old,) = catalog.runs()
        assert old.run_id == "old-run" and old.substrate_id is None and old.pixel is None
    with sqlite3.connect(db) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
        indexes = {row[1] for row in conn.execute("PRAGMA index_list(runs)")}
    assert {"substrate_id", "pixel"} <= columns and "ix_runs_substrate_id" in indexes
    with Catalog(catalog_url(None, folder)) as catalog:  # opened again: nothing added twice
        assert len(catalog.runs()) == 1
    res = _run(tmp_path, "--pixels", "2", "--sample", "S", "--json")
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    with Catalog(catalog_url(None, folder)) as catalog:
        rows = {r.run_id: r for r in catalog.runs()}
    assert rows["old-run"].pixel is None
    new = rows[payload["pixels"]["2"]["run_id"]]
    assert (new.substrate_id, new.pixel) == (payload["substrate_id"], "2")


def test_reindex_keeps_the_link(tmp_path):
    res = _run(tmp_path, "--pixels", "1,2", "--json")
    payload = json.loads(res.stdout)
    (tmp_path / "runs" / "catalog.sqlite").unlink()
    with Catalog(catalog_url(None, tmp_path / "runs")) as catalog:
        catalog.reindex(tmp_path / "runs")
        rows = catalog.runs(substrate=payload["substrate_id"])
    assert sorted(r.pixel for r in rows) == ["1", "2"]


def test_show_names_the_substrate_and_resume_refuses_a_pixel_run(tmp_path):
    res = _run(tmp_path, "--pixels", "2", "--sample", "S", "--json")
    payload = json.loads(res.stdout)
    file = payload["pixels"]["2"]["file"]
    shown = CliRunner().invoke(main, ["show", file])
    assert shown.exit_code == 0
    assert f"substrate_id: {payload['substrate_id']}" in shown.output and "pixel: 2" in shown.output
    resumed = CliRunner().invoke(main, ["resume", file, "--station", str(tmp_path / "station.yaml")])
    assert resumed.exit_code == 2
    assert f"is pixel '2' of substrate {payload['substrate_id']}: labctl resume does not select" in resumed.output


def test_a_pixel_the_procedure_refuses_is_named_before_any_io(tmp_path):
    """Pixel 3 is a 5 cm² cell: at 1 sun it would pass 92 mA, beyond the default 10 mA compliance of the J–V.
    The J–V's own check refuses it for that pixel, in one line, before anything is switched or sourced."""
    data = substrate_station(pixels=4)
    data["layouts"]["test4"]["pixels"][2]["area_cm2"] = 5.0
    station = tmp_path / "station.yaml"
    station.write_text(yaml.safe_dump(data))
    res = _run(tmp_path, "--pixels", "all", "--json", station=station)
    assert res.exit_code == 2
    error = json.loads(res.stdout)["error"]
    assert error.startswith("pixel '3' (layouts.test4): parameter compliance_A = 0.01: too low for area_cm2 = 5 cm²")
    assert "\n" not in error
    assert substrate_fakes.LOG == [] and not (tmp_path / "runs").exists()
