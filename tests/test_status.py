"""The run's status file (``<run file>.status.json``) and ``labctl status`` (issue 11): what is running on this
station, its last values, suspensions and ETA; a run whose writer died shows ``interrupted``."""

from __future__ import annotations

import json
import math
import threading

import numpy as np
from click.testing import CliRunner

from labctl.cli import main
from labctl.config import parse_station
from labctl.documents import Event, LogLine, Progress, RunStart, RunStop
from labctl.engine import RunEngine
from labctl.station import Station
from labctl.status import StatusWriter, read_status, status_path
from tests.engine_procedures import Ticks, make
from tests.helpers import default_station
from tests.test_auto_resume import interrupted_hold, write_station


def _start(path: str) -> RunStart:
    return RunStart(run_id="r1", procedure="ticks", sample="cell-3", operator="op", station_name="bench",
                    time="2026-01-01T00:00:00+00:00", parameters={}, station={}, idn={}, software_version="x",
                    area_cm2=None, path=path, segment=0, resume_reason="")


def test_the_status_file_is_written_at_start_at_most_every_interval_and_at_stop(tmp_path):
    run_file = tmp_path / "r1.h5"
    writer = StatusWriter(extra=lambda: {"extra": {"t80_h": 512.5}}, interval_s=3600)
    writer("start", _start(str(run_file)))
    path = status_path(run_file)
    assert path.name == "r1.h5.status.json"
    first = json.loads(path.read_text())
    assert (first["run_id"], first["procedure"], first["sample"], first["status"]) == ("r1", "ticks", "cell-3",
                                                                                      "running")
    assert first["extra"] == {"t80_h": 512.5}
    writer("event", Event("r1", "ticks", 1, 0.0, {"time_s": 1.0, "value_V": math.nan, "spectrum": np.ones(3)}))
    writer("progress", Progress("r1", 0.5))
    writer("log", LogLine("r1", "2026-01-01T00:00:01+00:00", "WARNING: lamp flicker"))
    assert json.loads(path.read_text()) == first  # within the interval: not rewritten
    writer("stop", RunStop("r1", "2026-01-01T01:00:00+00:00", "completed", None, {}, {"ticks": 1}))
    last = json.loads(path.read_text())
    assert last["status"] == "completed" and last["ended"] == "2026-01-01T01:00:00+00:00"
    assert last["last"] == {"ticks": {"time_s": 1.0, "value_V": None}}  # NaN → null; arrays left out
    assert last["rows"] == {"ticks": 1} and last["progress"] == 0.5
    assert last["events"] == ["2026-01-01T00:00:01+00:00 WARNING: lamp flicker"]
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left beside it


class Watched(Ticks):
    """Ticks, suspendable by the engine's suspender, reading its own status file while suspended."""

    def startup(self) -> None:
        self.seen: dict = {}

    def on_suspend(self, reason: str) -> None:
        self.seen = read_status(self._path) or {}

    def status_extra(self) -> dict:
        return {"rows_so_far": "live"}


def test_a_run_reports_its_suspension_last_row_and_extra_and_ends_completed(tmp_path):
    station = Station(parse_station(default_station()))
    engine = RunEngine(station, tmp_path, catalog=False)
    t0 = station.clock.now()
    engine.add_suspender(lambda: "lamp dip" if 4.5 <= station.clock.now() - t0 < 9.5 else None)
    proc = make(Watched, points=12, interval_s=1.0)
    paths = []
    engine.subscribe(lambda name, doc: paths.append(doc.path) if name == "start" else None)
    original = proc.startup

    def startup() -> None:
        original()
        proc._path = paths[0]

    proc.startup = startup
    result = engine.run(proc)
    assert result.status == "completed"
    during = proc.seen
    assert during["status"] == "running" and during["suspensions"]["current"] == "lamp dip"
    assert during["suspensions"]["count"] == 1
    assert during["last"]["ticks"]["index"] == 4  # the rows at 0-4 s were taken
    assert during["extra"] == {"rows_so_far": "live"} and during["pid"] > 0
    final = read_status(result.path)
    assert final["status"] == "completed" and final["rows"] == {"ticks": 12}
    assert final["suspensions"]["current"] is None
    assert 4.0 <= final["suspensions"]["total_s"] <= 6.0  # held from the 5 s checkpoint to the one after 9.5 s
    station.close()


def _status(station_file, *extra) -> tuple[int, str]:
    res = CliRunner().invoke(main, ["status", "--station", str(station_file), *extra], catch_exceptions=False)
    return res.exit_code, res.stdout


def test_labctl_status_shows_a_running_run_with_its_last_values_then_nothing(tmp_path):
    station_file = write_station(tmp_path, auto_resume=False)
    assert _status(station_file) == (0, "nothing running on station 'sim-bench' (catalog sqlite:///"
                                        f"{tmp_path / 'runs' / 'catalog.sqlite'})\n")
    station = Station(parse_station(default_station()))
    engine = RunEngine(station, tmp_path / "runs", sample="cell-9")
    paused = threading.Event()

    def pause_after_five(name, doc):
        if name == "event" and doc.seq_num == 5:
            engine.pause()
        if name == "log" and doc.message == "paused":
            paused.set()

    engine.subscribe(pause_after_five)
    engine.start(make(Ticks, points=20, interval_s=1.0))
    try:
        assert paused.wait(30)
        code, out = _status(station_file, "--json")
        assert code == 0
        (run,) = json.loads(out)["runs"]
        assert (run["procedure"], run["sample"], run["status"]) == ("ticks", "cell-9", "running")
        assert run["last"]["ticks"]["index"] == 4 and run["progress"] == 0.25 and run["paused"] is True
        code, text = _status(station_file)
        assert "ticks  sample cell-9  running" in text and "progress 25.0 %" in text
        assert "last ticks: time_s=4, index=4, value_V=0.004" in text
    finally:
        engine.resume()
        result = engine.join(30)
    assert result.status == "completed"
    assert _status(station_file)[1].startswith("nothing running on station 'sim-bench'")
    station.close()


def test_labctl_status_shows_a_run_whose_writer_died_as_interrupted_with_how_to_resume(tmp_path):
    station_file = write_station(tmp_path, auto_resume=False)
    path = interrupted_hold(station_file, "cell-4", rows=7)
    assert read_status(path)["status"] == "interrupted"  # the file says running; its writer's process is gone
    code, out = _status(station_file, "--json")
    (run,) = json.loads(out)["runs"]
    assert run["status"] == "interrupted" and run["rows"] == {"hold": 7} and run["sample"] == "cell-4"
    code, text = _status(station_file)
    assert f"resume with: labctl resume {path}" in text
