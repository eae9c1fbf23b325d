"""Threshold suspenders (station.yaml ``suspenders:``, issue 11): hysteresis, settle time, poll interval, the
engine's on_suspend/on_resume hooks, and only for procedures that declare SUSPENDABLE.

The state machine is driven by a temperature signal given as a function of station time (a stepping clock, so the
poll interval and settle time are checked to the second); the run-level tests read a real irradiance from the
simulated bench: its source meter holds the cell at short circuit while the solar simulator's shutter closes and
opens on a schedule of station time.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from labctl.config import ConfigError, SuspenderConfig, parse_station
from labctl.engine import RunEngine
from labctl.station import Station
from labctl.storage import load_run
from labctl.suspenders import OK, SETTLING, SUSPENDED, ThresholdSuspender
from tests.engine_procedures import Ticks, make
from tests.helpers import default_station


class StepClock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def sleep(self, dt_s: float) -> None:
        self.t += dt_s


class Thermometer:
    """A temperature sensor whose reading (K) is ``profile(station time)``; counts its reads."""

    def __init__(self, clock: StepClock, profile: Any) -> None:
        self.clock, self.profile, self.reads = clock, profile, 0

    def read_temperature_K(self) -> float:
        self.reads += 1
        return float(self.profile(self.clock.now()))


def _suspender(profile: Any, **config: Any) -> tuple[ThresholdSuspender, StepClock, Thermometer]:
    clock = StepClock()
    sensor = Thermometer(clock, profile)
    station = SimpleNamespace(clock=clock, config=None, __getitem__=None)
    cfg = SuspenderConfig(name="hot", role="temperature", signal="temperature_K", **config)
    io = lambda role, operation, **_: operation(sensor)  # noqa: E731 - the instrument of the role
    return ThresholdSuspender(cfg, station, io), clock, sensor


def _walk(suspender: ThresholdSuspender, clock: StepClock, until_s: float, step_s: float = 1.0) -> list[tuple]:
    """Ask the suspender every ``step_s`` until ``until_s``: (time, state, reason is not None) each time."""
    seen = []
    while clock.now() <= until_s:
        reason = suspender()
        seen.append((clock.now(), suspender.state, reason is not None))
        clock.sleep(step_s)
    return seen


def test_hysteresis_keeps_the_run_suspended_between_the_two_thresholds():
    """Above 330 K suspends; back to 325 K (between the thresholds) stays suspended; 319 K resumes."""
    def profile(t: float) -> float:
        return 300.0 if t < 10 else 335.0 if t < 20 else 325.0 if t < 40 else 319.0

    sus, clock, _ = _suspender(profile, suspend_above=330.0, resume_below=320.0, poll_s=1.0)
    seen = dict((t, held) for t, _, held in _walk(sus, clock, 50))
    assert not seen[9.0] and seen[10.0] and seen[39.0] and not seen[40.0]
    assert sus.count == 1 and sus.state == OK


def test_without_hysteresis_the_resume_threshold_is_the_suspend_threshold():
    sus, clock, _ = _suspender(lambda t: 335.0 if 5 <= t < 8 else 329.0, suspend_above=330.0, poll_s=1.0)
    held = [t for t, _, h in _walk(sus, clock, 12) if h]
    assert held == [5.0, 6.0, 7.0]


def test_the_settle_time_must_pass_in_band_and_a_relapse_restarts_it():
    """Back in band at 20 s, out again at 25 s, in again at 30 s: with settle_s = 10 the run goes on at 40 s."""
    def profile(t: float) -> float:
        return 340.0 if 10 <= t < 20 or 25 <= t < 30 else 300.0

    sus, clock, _ = _suspender(profile, suspend_above=330.0, settle_s=10.0, poll_s=1.0)
    walk = _walk(sus, clock, 45)
    states = {t: s for t, s, _ in walk}
    held = {t: h for t, _, h in walk}
    assert states[20.0] == SETTLING and states[25.0] == SUSPENDED and states[30.0] == SETTLING
    assert held[39.0] and not held[40.0] and states[40.0] == OK
    assert sus.count == 1  # one suspension, with a relapse inside its settle time


def test_the_signal_is_read_at_most_every_poll_s_by_default():
    """The default poll_s (10 s): asked every second for 60 s, the sensor is read 7 times (0, 10, ..., 60 s)."""
    sus, clock, sensor = _suspender(lambda t: 300.0, suspend_above=330.0)
    _walk(sus, clock, 60)
    assert sensor.reads == 7


@pytest.mark.parametrize(("entry", "message"), [
    ({"suspend_below": 800, "suspend_above": 900}, "give exactly one of suspend_below, suspend_above"),
    ({}, "give exactly one of suspend_below, suspend_above"),
    ({"suspend_below": 800, "resume_above": 700}, "resume_above = 700 is below suspend_below = 800"),
    ({"suspend_below": 800, "resume_below": 900}, "resume_below = 900 goes with suspend_above"),
    ({"suspend_above": 330, "resume_below": 340}, "resume_below = 340 is above suspend_above = 330"),
])
def test_a_suspender_band_that_makes_no_sense_is_one_line(entry, message):
    data = {"instruments": {"ref": {"driver": "keithley2400", "resource": "TCPIP::127.0.0.1::1::SOCKET"}},
            "suspenders": [{"name": "lamp", "role": "ref", "signal": "temperature_K", **entry}]}
    with pytest.raises(ConfigError, match=message) as info:
        parse_station(data)
    assert "\n" not in str(info.value) and "suspenders.0" in str(info.value)


def test_a_suspender_of_an_unknown_role_or_irradiance_without_the_reference_isc_is_refused():
    base = {"instruments": {"ref": {"driver": "keithley2400", "resource": "TCPIP::127.0.0.1::1::SOCKET"}}}
    with pytest.raises(ConfigError, match=r"suspenders\[0\]\.role = 'reference': no such instrument"):
        parse_station({**base, "suspenders": [{"name": "lamp", "role": "reference", "signal": "temperature_K",
                                               "suspend_above": 330}]})
    with pytest.raises(ConfigError, match="needs isc_at_1000_W_m2_A"):
        parse_station({**base, "suspenders": [{"name": "lamp", "role": "ref", "signal": "irradiance_W_m2",
                                               "suspend_below": 800}]})


# -- in a run: a lamp dip on the simulated bench -----------------------------------------------------------------
class LampSchedule:
    """The station clock, closing the solar simulator's shutter during ``off`` (s from now, station time)."""

    def __init__(self, clock: Any, bench: Any, off: tuple[float, float]) -> None:
        self.inner, self.bench, self.off = clock, bench, off
        self.t0 = clock.now()
        bench.light.shutter_open = True  # the bench starts with the shutter shut (no procedure opens it here)

    def now(self) -> float:
        return self.inner.now()

    def sleep(self, dt_s: float) -> None:
        self.inner.sleep(dt_s)
        t = self.inner.now() - self.t0
        self.bench.light.shutter_open = not (self.off[0] <= t < self.off[1])


class SuspendableTicks(Ticks):
    SUSPENDABLE = True

    def startup(self) -> None:
        self.hooks: list[tuple[str, float, str]] = []

    def on_suspend(self, reason: str) -> None:
        self.wait(2.0)  # a hook may wait (e.g. ramp to a safe bias): it does not suspend again
        self.hooks.append(("suspend", self.station.clock.now(), reason))

    def on_resume(self) -> None:
        self.hooks.append(("resume", self.station.clock.now(), ""))


def _lamp_station(off: tuple[float, float]) -> Station:
    data = default_station()
    # the reference cell: the bench's cell held at short circuit by the SMU; 1 mA at 1000 W/m² (a 0.049 cm² cell
    # of more than 12 mA/cm² reads well above 600 W/m² under the simulator's 1 sun, and 0 with the shutter shut)
    data["suspenders"] = [{"name": "lamp", "role": "smu", "signal": "irradiance_W_m2", "suspend_below": 500,
                           "resume_above": 600, "settle_s": 15, "isc_at_1000_W_m2_A": 0.001}]
    station = Station(parse_station(data))
    station.clock = LampSchedule(station.clock, station.bench, off)
    return station


def test_a_lamp_dip_suspends_a_suspendable_run_once_and_resumes_after_the_settle_time(tmp_path):
    """Shutter shut from 12 s to 40 s. Read every 10 s (default poll_s): dark seen at 20 s, light again at 40 s,
    then 15 s of settling: rows stop after 20 s and go on at 55 s; on_suspend/on_resume once each."""
    station = _lamp_station((12.0, 40.0))
    t0 = station.clock.now()
    proc = make(SuspendableTicks, points=30, interval_s=1.0)
    result = RunEngine(station, tmp_path, catalog=False).run(proc)
    assert result.status == "completed", result.error
    run = load_run(result.path)
    times = run.streams["ticks"]["time_s"].to_numpy()
    assert len(times) == 30
    assert not ((times > 20.5) & (times < 54.5)).any()  # nothing recorded while suspended
    assert [h[0] for h in proc.hooks] == ["suspend", "resume"]
    # suspended at 20 s, the hook waited 2 s (plus the readings' own time on the bench: connection, NPLC)
    assert proc.hooks[0][1] - t0 == pytest.approx(22.0, abs=0.5)
    assert proc.hooks[0][2].startswith("lamp: irradiance_W_m2 = ")
    assert proc.hooks[1][1] - t0 == pytest.approx(55.0, abs=1.0)
    suspended = [line for line in run.events if " suspended: lamp: irradiance_W_m2 = " in line]
    assert suspended and "below 500 W/m²; resumes at or above 600" in suspended[0]
    assert sum(line.endswith(" resumed") for line in run.events) == 1
    station.close()


def test_a_procedure_that_is_not_suspendable_ignores_the_station_suspenders(tmp_path):
    station = _lamp_station((2.0, 100.0))
    result = RunEngine(station, tmp_path, catalog=False).run(make(Ticks, points=10, interval_s=1.0))
    assert result.status == "completed"
    run = load_run(result.path)
    assert not any("suspended" in line for line in run.events)
    assert "smu" not in run.idn and "smu" not in station.instruments  # the suspender's role was not connected
    station.close()
