"""``station.auto_resume`` + ``labctl resume --interrupted`` (issue 11): a lab PC that restarts resumes the
station's interrupted runs, newest first, one after the other; it says so when there are none and refuses when the
station does not allow it.

An interrupted run is made for real: a forked child process runs a hold on the simulated bench (virtual clock) and
dies with ``os._exit`` in the middle (no clean-up, like SIGKILL or a power cut), so its file and the catalog say
it was running and its writer's process is gone.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from labctl.cli import main
from labctl.config import load_station
from labctl.engine import RunEngine
from labctl.station import Station
from labctl.storage import load_run
from procedures.hold import HoldProcedure
from tests.helpers import REPO, default_station


def write_station(folder: Path, auto_resume: bool) -> Path:
    data = default_station()
    data["station"]["auto_resume"] = auto_resume
    data["station"]["data_dir"] = "runs"
    path = folder / "station.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def interrupted_hold(station_file: Path, sample: str, rows: int = 12) -> Path:
    """A hold (0.1 h every 10 s: 36 readings) in a forked child process that dies with ``os._exit`` after
    ``rows`` readings (its last flush on disk, nothing cleaned up); the path of its run file."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        signal.alarm(60)  # a child that hangs (e.g. on a lock another thread of the parent held at the fork) dies
        try:
            config = load_station(station_file)
            hold = HoldProcedure()
            hold.duration_h, hold.interval_s = 0.1, 10.0

            def die(name: str, doc: object) -> None:
                if name == "event" and doc.seq_num == rows:  # type: ignore[attr-defined]
                    engine._file.flush()  # what a writer had flushed before the power went
                    os._exit(9)

            engine = RunEngine(Station(config), station_file.parent / config.station.data_dir, sample=sample,
                               subscribers=[die])
            engine.run(hold)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 9, f"the child ended with {os.waitstatus_to_exitcode(status)}"
    (path,) = [p for p in (station_file.parent / "runs").rglob("*.h5") if f"_hold_{sample}_" in p.name]
    assert load_run(path).status == "interrupted"
    return path


def _resume_interrupted(station_file: Path, *extra: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(main, ["resume", "--interrupted", "--station", str(station_file), "--no-plot", *extra],
                             catch_exceptions=False)
    return res.exit_code, res.stdout, res.stderr


def test_auto_resume_is_off_by_default_and_then_refuses_in_one_line(tmp_path):
    from labctl.config import parse_station

    assert parse_station(default_station()).station.auto_resume is False
    station_file = write_station(tmp_path, auto_resume=False)
    code, out, err = _resume_interrupted(station_file)
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [f"error: {station_file}: station.auto_resume is false: `labctl resume "
                                        "--interrupted` resumes nothing (set station.auto_resume: true, or resume "
                                        "one run with `labctl resume FILE`)"]


def test_nothing_to_resume_says_so_and_exits_0(tmp_path):
    station_file = write_station(tmp_path, auto_resume=True)
    code, out, _ = _resume_interrupted(station_file)
    assert code == 0 and out.strip() == f"no interrupted runs of station 'sim-bench' to resume (data folder " \
                                        f"{tmp_path / 'runs'})"
    code, out, _ = _resume_interrupted(station_file, "--json")
    assert code == 0 and json.loads(out)["runs"] == []


def test_a_file_and_interrupted_together_or_neither_is_refused(tmp_path):
    station_file = write_station(tmp_path, auto_resume=True)
    for args in (["resume", "--station", str(station_file)],
                 ["resume", str(station_file), "--interrupted", "--station", str(station_file)]):
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 2 and "give either a run FILE or --interrupted" in res.stderr


def test_interrupted_runs_are_resumed_newest_first_each_to_completion(tmp_path):
    station_file = write_station(tmp_path, auto_resume=True)
    older = interrupted_hold(station_file, "cell-1", rows=10)
    newer = interrupted_hold(station_file, "cell-2", rows=20)
    code, out, err = _resume_interrupted(station_file, "--json")
    assert code == 0, err
    outcome = json.loads(out)
    assert outcome["station"] == "sim-bench"
    assert [r["file"] for r in outcome["runs"]] == [str(newer), str(older)]
    assert [r["status"] for r in outcome["runs"]] == ["completed", "completed"]
    for path, kept in ((older, 10), (newer, 20)):
        run = load_run(path)
        assert run.status == "completed" and len(run.streams["hold"]) == 36  # 0.1 h every 10 s
        assert [s["status"] for s in run.segments] == ["interrupted", "completed"]
        assert run.segments[1]["reason"] == "resumed at start-up (labctl resume --interrupted)"
        assert run.segments[1]["first_rows"] == {"hold": kept}
    code, out, _ = _resume_interrupted(station_file)  # nothing left
    assert code == 0 and out.startswith("no interrupted runs")


@pytest.mark.parametrize("unit", ["docs/stability.md"])
def test_the_docs_give_a_systemd_unit_that_resumes_at_boot(unit):
    text = (REPO / unit).read_text()
    block = text.split("```ini", 1)[1].split("```", 1)[0]
    for line in ("[Unit]", "After=network.target", "[Service]", "Restart=on-failure", "KillSignal=SIGTERM",
                 "[Install]"):
        assert line in block, line
    exec_line = next(line for line in block.splitlines() if line.startswith("ExecStart="))
    assert "labctl resume --interrupted --station " in exec_line
    stop = next(line for line in block.splitlines() if line.startswith("TimeoutStopSec="))
    from labctl.station import SAFE_STATE_TOTAL_BUDGET_S

    assert float(stop.split("=", 1)[1]) > SAFE_STATE_TOTAL_BUDGET_S  # the safe state finishes before a SIGKILL
