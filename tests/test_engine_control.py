"""Controlling a run: start() in a background thread with join()/abort(), pause()/resume(), suspenders, and the
procedure's checkpoint() — with the safe state on every exit path."""

from __future__ import annotations

import signal
import threading

import pytest

from labctl.config import ConfigError, parse_station
from labctl.engine import RunEngine
from labctl.station import Station
from labctl.storage import load_run
from procedures.base import LabProcedure, RunAborted
from tests.engine_procedures import Ticks, make
from tests.helpers import default_station, make_procedure, smu_output_on

TIMEOUT_S = 30.0


def _station() -> Station:
    return Station(parse_station(default_station()))


class LogWatch:
    """Subscriber: every log line, and an Event per awaited message."""

    def __init__(self, *awaited: str) -> None:
        self.lines: list[str] = []
        self.rows = 0
        self.seen = {message: threading.Event() for message in awaited}

    def __call__(self, name, doc):
        if name == "event":
            self.rows += 1
        elif name == "log":
            self.lines.append(doc.message)
            for message, event in self.seen.items():
                if doc.message.startswith(message):
                    event.set()

    def wait_for(self, message: str) -> None:
        assert self.seen[message].wait(TIMEOUT_S), f"no {message!r} in {self.lines}"


def test_start_returns_at_once_and_join_gives_the_result(tmp_path):
    engine = RunEngine(_station(), tmp_path)
    with pytest.raises(RuntimeError, match="no run was started"):
        engine.join()
    engine.pause()  # held at the first checkpoint: start() must have returned while the run waits
    watch = LogWatch("paused")
    engine.subscribe(watch)
    engine.start(make(Ticks, points=3))
    watch.wait_for("paused")
    assert engine.running and engine.paused
    with pytest.raises(RuntimeError, match="already going"):
        engine.start(make(Ticks, points=3))
    with pytest.raises(TimeoutError, match="still going"):
        engine.join(timeout_s=0.2)
    engine.resume()
    result = engine.join(timeout_s=TIMEOUT_S)
    assert not engine.running
    assert result.status == "completed", result.error
    assert result.results["rows"] == 3 and len(load_run(result.path).streams["ticks"]) == 3


def test_pause_holds_between_points_until_resume(tmp_path):
    watch = LogWatch("paused")
    engine = RunEngine(_station(), tmp_path, subscribers=[watch])

    class PauseAfterTwo(Ticks):
        def record(self, stream, row):
            super().record(stream, row)
            if row["index"] == 1:
                engine.pause()  # e.g. the operator presses pause in the GUI

    engine.start(make(PauseAfterTwo, points=5))
    watch.wait_for("paused")
    assert watch.rows == 2  # held at the checkpoint before the third point
    engine.resume()
    result = engine.join(TIMEOUT_S)
    assert result.status == "completed", result.error
    assert result.num_events["ticks"] == 5
    run = load_run(result.path)
    lines = [e.split(" ", 1)[1] for e in run.events]
    assert lines.index("paused") + 1 == lines.index("resumed")  # both in the file, nothing in between


def test_abort_during_a_pause_ends_aborted_with_the_instruments_safe(tmp_path):
    """A J–V paused in its preconditioning (bias applied, shutter open), aborted from another thread."""
    station = _station()
    watch = LogWatch("paused")
    engine = RunEngine(station, tmp_path, subscribers=[watch])
    engine.pause()
    engine.start(make_procedure(direction="forward", precondition_s=5.0))
    watch.wait_for("paused")
    assert smu_output_on(station) and station.bench.light.shutter_open  # held mid-run, not in a safe state
    engine.abort()
    result = engine.join(TIMEOUT_S)
    assert result.status == "aborted", result.error
    assert not smu_output_on(station)
    assert station.bench.light.shutter_open is False
    run = load_run(result.path)
    assert run.status == "aborted"
    assert "resumed" not in [e.split(" ", 1)[1] for e in run.events]
    assert any("safe state: smu" in e for e in run.events)


def test_a_suspender_holds_the_run_while_it_gives_a_reason(tmp_path):
    """Rows 1 s apart on the virtual clock; the lamp dips from 2.5 s to 6.5 s: the checkpoint at 3 s suspends,
    asked again at 4, 5, 6 and 7 s (SUSPEND_POLL_S = 1 s), so the points are at 0, 1, 2, then 7 and 8 s."""
    station = _station()
    t0 = station.clock.now()
    engine = RunEngine(station, tmp_path)
    engine.add_suspender(lambda: None)  # a condition that never holds does not get in the way
    engine.add_suspender(lambda: "lamp dip" if 2.5 <= station.clock.now() - t0 < 6.5 else None)
    result = engine.run(make(Ticks, points=5, interval_s=1.0))
    assert result.status == "completed", result.error
    run = load_run(result.path)
    assert run.streams["ticks"]["time_s"].tolist() == [0.0, 1.0, 2.0, 7.0, 8.0]
    lines = [e.split(" ", 1)[1] for e in run.events]
    assert lines.index("suspended: lamp dip") + 1 == lines.index("resumed")


def test_abort_ends_a_suspension(tmp_path):
    station = _station()
    watch = LogWatch("suspended")
    engine = RunEngine(station, tmp_path, subscribers=[watch])
    engine.add_suspender(lambda: "interlock open")
    engine.start(make_procedure(direction="forward", precondition_s=5.0))
    watch.wait_for("suspended")
    assert smu_output_on(station)
    engine.abort()
    result = engine.join(TIMEOUT_S)
    assert result.status == "aborted", result.error
    assert not smu_output_on(station) and station.bench.light.shutter_open is False
    assert "suspended: interlock open" in watch.lines and "resumed" not in watch.lines


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_while_join_waits_aborts_the_background_run_safely(tmp_path, signum):
    """The main thread waits in join(); Ctrl-C or SIGTERM ends the run aborted, through its safe state."""
    station = _station()
    watch = LogWatch("paused")
    engine = RunEngine(station, tmp_path, subscribers=[watch])
    engine.pause()
    engine.start(make_procedure(direction="forward", precondition_s=5.0))
    watch.wait_for("paused")
    assert smu_output_on(station)
    before = signal.getsignal(signum)
    threading.Timer(0.2, signal.raise_signal, (signum,)).start()
    result = engine.join(TIMEOUT_S)  # the signal arrives while join waits
    assert result.status == "aborted", result.error
    assert not smu_output_on(station) and station.bench.light.shutter_open is False
    assert load_run(result.path).status == "aborted"
    assert signal.getsignal(signum) is before  # join's handlers are gone again


def test_a_background_run_that_cannot_start_raises_from_join(tmp_path):
    engine = RunEngine(_station(), tmp_path)
    engine.start(make_procedure(stop_V=50.0))
    with pytest.raises(ConfigError, match="stop_V"):
        engine.join(TIMEOUT_S)


def test_checkpoint_outside_a_run_does_nothing_and_check_abort_is_the_same_check():
    proc = LabProcedure()
    proc.checkpoint()  # no engine: no abort, no pause
    held = []
    proc.pause_point = lambda: held.append("held")
    proc.check_abort()
    assert held == ["held"]  # the older name passes the engine's pause point too
    proc.should_stop = lambda: True
    with pytest.raises(RunAborted, match="abort requested"):
        proc.check_abort()
    assert held == ["held"]  # an abort is raised before holding
