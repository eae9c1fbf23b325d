"""The run watchdog (station.yaml ``station.watchdog_s``, issue 11): a procedure loop that stalls (no document,
no checkpoint) is forced to the safe state from the watchdog's thread and the run ends ``failed`` with the reason;
a run that shows signs of life (checkpoints, a long suspension) is left alone."""

from __future__ import annotations

import time

from labctl.config import parse_station
from labctl.engine import RunEngine
from labctl.station import Station
from labctl.storage import load_run
from procedures.base import LabProcedure
from tests.engine_procedures import Ticks, make
from tests.helpers import default_station, smu_output_on


def _station(watchdog_s: float | None) -> Station:
    data = default_station()
    if watchdog_s is not None:
        data["station"]["watchdog_s"] = watchdog_s
    return Station(parse_station(data))


class Stalls(LabProcedure):
    """Turns the SMU output on at 0.5 V, then loops forever without a checkpoint (a stuck tracker loop)."""

    NAME = "stalls"
    REQUIRES = ("smu",)

    def execute(self) -> None:
        smu = self.station["smu"]
        smu.configure_voltage_source(compliance_A=0.01)
        smu.set_voltage(0.5)
        smu.enable_output()
        self.log("output on")
        while True:
            time.sleep(0.02)


class Busy(LabProcedure):
    """Real wall time between checkpoints (0.1 s), 1.5 s in all."""

    NAME = "busy"

    def execute(self) -> None:
        for _ in range(15):
            self.checkpoint()
            time.sleep(0.1)


def test_the_default_watchdog_is_ten_minutes():
    assert parse_station(default_station()).station.watchdog_s == 600.0


def test_a_stalled_loop_is_made_safe_by_the_watchdog_and_the_run_fails_with_the_reason(tmp_path):
    station = _station(0.5)
    t0 = time.monotonic()
    result = RunEngine(station, tmp_path, catalog=False).run(Stalls())
    assert time.monotonic() - t0 < 10
    assert result.status == "failed"
    assert result.error.startswith("watchdog: no activity for ")
    assert "(station.watchdog_s = 0.5): the procedure stalled; safe state forced" in result.error
    assert not smu_output_on(station)
    run = load_run(result.path)
    assert run.status == "failed"
    lines = run.events
    forced = next(i for i, line in enumerate(lines) if " WARNING: watchdog: no activity" in line)
    assert any(" watchdog safe state: smu: " in line for line in lines[forced:])
    station.close()


def test_a_run_that_checkpoints_or_waits_in_a_suspension_is_not_a_stall(tmp_path):
    station = _station(0.5)
    assert RunEngine(station, tmp_path, catalog=False).run(Busy()).status == "completed"
    engine = RunEngine(station, tmp_path, catalog=False)
    end = time.monotonic() + 1.5
    engine.add_suspender(lambda: "interlock" if time.monotonic() < end else None)  # 1.5 s of wall time held
    result = engine.run(make(Ticks, points=3, interval_s=1.0))
    assert result.status == "completed", result.error
    assert not any("watchdog" in line for line in load_run(result.path).events)
    station.close()


def test_watchdog_zero_turns_it_off(tmp_path):
    station = _station(0)

    class ShortStall(LabProcedure):
        NAME = "short-stall"

        def execute(self) -> None:
            time.sleep(0.3)

    assert RunEngine(station, tmp_path, catalog=False).run(ShortStall()).status == "completed"
    station.close()
