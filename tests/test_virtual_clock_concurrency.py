"""Concurrent members on the virtual clock (sim_instruments.clock.VirtualClock.concurrently / group.member).

The expected times are sums of the sleeps written out by hand (or the 2400 timing model: per point source delay +
3 x NPLC / line frequency with auto-zero + 0.5 ms reading overhead, the 2400 emulator's documented model), never
read back from the schedule under test. Every thread is joined with a wall-time limit, so a deadlock fails the test
instead of hanging it.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from drivers.keithley2400 import Keithley2400
from drivers.keithley2450 import Keithley2450
from labctl import clock as labctl_clock
from labctl.config import parse_station
from labctl.engine import RunEngine
from labctl.station import Station
from labctl.storage import load_run
from labctl.watchdog import WatchdogStall, raise_in_thread
from sim_instruments.adapter import EmulatorAdapter, instrument_lock
from sim_instruments.bench import Bench
from sim_instruments.clock import ScheduledRLock, VirtualClock, bench_lock_held
from sim_instruments.keithley2400 import Keithley2400Emulator
from sim_instruments.keithley2450 import Keithley2450Emulator
from sim_instruments.provider import Simulator
from tests.helpers import SET_A, SET_B, make_procedure, station_with

JOIN_S = 20.0  # wall time a worker may take before the test calls it a deadlock
NO_STALL_S = 3 * JOIN_S  # the stall rule kept out of the way: only the schedule itself may pass these tests


def run_members(clock: VirtualClock, work: dict[str, Callable[[], Any]], order: Sequence[str] | None = None,
                **group_kw: Any) -> dict[str, BaseException | None]:
    """Run each ``work[name]`` in its own thread as member ``name`` of one group; threads are started in ``order``.
    Returns each member's exception (None if it finished)."""
    errors: dict[str, BaseException | None] = {}
    group_kw.setdefault("stall_s", NO_STALL_S)
    with clock.concurrently(sorted(work), **group_kw) as group:
        def target(name: str) -> None:
            try:
                with group.member(name):
                    work[name]()
                errors[name] = None
            except BaseException as exc:  # noqa: BLE001 - handed to the test
                errors[name] = exc

        threads = [threading.Thread(target=target, args=(name,), daemon=True) for name in (order or sorted(work))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(JOIN_S)
        stuck = [t for t in threads if t.is_alive()]
        assert not stuck, f"deadlock: {len(stuck)} member thread(s) still running after {JOIN_S} s of wall time"
    return errors


def sleeper(clock: VirtualClock, durations: Sequence[float], seen: list[float],
            log: list[tuple[str, float]] | None = None, name: str = "") -> Callable[[], None]:
    def work() -> None:
        seen.append(clock.now())
        for dt in durations:
            clock.sleep(dt)
            seen.append(clock.now())
            if log is not None:
                log.append((name, clock.now()))
    return work


def alone(start_s: float, durations: Sequence[float]) -> list[float]:
    """What a member sleeping ``durations`` from ``start_s`` sees when it is alone on the clock."""
    return list(itertools.accumulate(durations, initial=start_s))


# -- the schedule -------------------------------------------------------------------------------------------------
def test_two_members_each_see_time_as_if_alone_and_the_group_takes_the_longest() -> None:
    clock = VirtualClock(start_s=100.0)
    a_sleeps = [0.25] * 12            # 3.0 s in all
    b_sleeps = [0.7, 0.1, 1.2, 0.005]  # 2.005 s
    seen_a: list[float] = []
    seen_b: list[float] = []
    errors = run_members(clock, {"a": sleeper(clock, a_sleeps, seen_a), "b": sleeper(clock, b_sleeps, seen_b)})
    assert errors == {"a": None, "b": None}
    assert seen_a == alone(100.0, a_sleeps)  # exactly: each now() after sleep(dt) is the one before plus dt
    assert seen_b == alone(100.0, b_sleeps)
    assert clock.now() == pytest.approx(103.0, abs=1e-12)  # the longest member (3 s), not the sum (5.005 s)


def test_the_schedule_is_the_same_on_every_repeat_whatever_order_the_threads_start_in() -> None:
    def once(order: Sequence[str]) -> list[tuple[str, float]]:
        clock = VirtualClock()
        log: list[tuple[str, float]] = []
        work = {"smu": sleeper(clock, [0.1, 0.1, 0.3, 0.05], [], log, "smu"),
                "smu2": sleeper(clock, [0.2, 0.1, 0.15, 0.05], [], log, "smu2"),
                "smu3": sleeper(clock, [0.05] * 9, [], log, "smu3")}
        run_members(clock, work, order)
        return log

    first = once(["smu", "smu2", "smu3"])
    for order in itertools.permutations(["smu", "smu2", "smu3"]):
        for _ in range(3):
            assert once(order) == first
    # the order itself: by wake-up time, ties in name order (the wake-ups by hand: smu 0.1 0.2 0.5 0.55, smu2 0.2 0.3
    # 0.45 0.5, smu3 every 0.05 to 0.45)
    times = [t for _, t in first]
    assert times == sorted(times)
    at_02 = [name for name, t in first if abs(t - 0.2) < 1e-9]
    assert at_02 == ["smu", "smu2", "smu3"]


def test_a_member_that_raises_does_not_hold_up_the_other() -> None:
    clock = VirtualClock()
    seen_b: list[float] = []

    def fails() -> None:
        clock.sleep(0.5)
        clock.sleep(0.5)
        raise RuntimeError("instrument on fire")

    b_sleeps = [0.3] * 10
    errors = run_members(clock, {"a": fails, "b": sleeper(clock, b_sleeps, seen_b)})
    assert isinstance(errors["a"], RuntimeError)
    assert errors["b"] is None
    assert seen_b == alone(0.0, b_sleeps)
    assert clock.now() == pytest.approx(3.0, abs=1e-12)


def test_a_member_that_raises_before_its_first_sleep_and_one_that_never_comes() -> None:
    clock = VirtualClock()
    seen: list[float] = []

    def fails() -> None:
        raise ValueError("bad setting")

    errors = run_members(clock, {"a": fails, "b": sleeper(clock, [1.0, 2.0], seen)})
    assert isinstance(errors["a"], ValueError)
    assert seen == [0.0, 1.0, 3.0]
    # a declared member whose worker never starts: withdrawn, the other goes on
    with clock.concurrently(["x", "y"]) as group:
        group.withdraw("y")
        done: list[float] = []

        def x() -> None:
            with group.member("x"):
                clock.sleep(1.0)
                done.append(clock.now())

        t = threading.Thread(target=x, daemon=True)
        t.start()
        t.join(JOIN_S)
        assert not t.is_alive()
    assert done == [4.0]


def test_a_sleeping_member_lets_go_of_the_bench_lock() -> None:
    """a holds the bench lock (as a transport does while an instrument works) and sleeps 5 s in it; b needs the
    lock at 1 s and gets it then, as on hardware (the sleep releases it), not at 5 s."""
    clock = VirtualClock()
    bench_lock = threading.RLock()
    got: dict[str, float] = {}

    def a() -> None:
        with bench_lock_held(bench_lock):
            clock.sleep(5.0)
            got["a_after_sleep"] = clock.now()

    def b() -> None:
        clock.sleep(1.0)
        with bench_lock_held(bench_lock):
            got["b_has_lock"] = clock.now()
            clock.sleep(0.5)
        got["b_done"] = clock.now()

    assert run_members(clock, {"a": a, "b": b}) == {"a": None, "b": None}
    assert got == {"b_has_lock": 1.0, "b_done": 1.5, "a_after_sleep": 5.0}


def test_a_member_waiting_for_a_lock_another_member_holds_while_asleep() -> None:
    """a holds an instrument's lock through a 5 s move (an instrument does one thing at a time); b needs the
    instrument at 1 s: it waits for it, in virtual time, until 5 s (not for ever, not at 1 s)."""
    clock = VirtualClock()
    lock = ScheduledRLock()
    got: dict[str, float] = {}

    def a() -> None:
        with lock:
            clock.sleep(5.0)
        got["a_released"] = clock.now()
        clock.sleep(1.0)
        got["a_done"] = clock.now()

    def b() -> None:
        clock.sleep(1.0)
        with lock:
            got["b_has_lock"] = clock.now()
            clock.sleep(2.0)
        got["b_done"] = clock.now()

    assert run_members(clock, {"a": a, "b": b}) == {"a": None, "b": None}
    assert got == {"a_released": 5.0, "b_has_lock": 5.0, "a_done": 6.0, "b_done": 7.0}
    assert clock.now() == 7.0


class MotorEmulator:
    """A one-axis stage: ``MOVE <s>`` takes that long on the bench clock, ``POS?`` answers the moves done."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.moves = 0

    def handle(self, message: str) -> str | None:
        if message.startswith("MOVE "):
            self.clock.sleep(float(message.split()[1]))
            self.moves += 1
            return None
        if message == "POS?":
            return str(self.moves)
        return None


def test_two_members_sharing_one_instrument_through_its_links_take_turns_in_virtual_time() -> None:
    """Each member has its own link (adapter) to the same instrument, as two pixel runs share the switch; the bench
    lock is shared too. b's move waits for a's (instrument lock) and starts when a's ends."""
    clock = VirtualClock()
    bench_lock = threading.RLock()
    motor = MotorEmulator(clock)
    links = {name: EmulatorAdapter(motor, lock=bench_lock) for name in ("a", "b")}
    got: dict[str, Any] = {}

    def a() -> None:
        links["a"].write("MOVE 3")
        got["a"] = clock.now()

    def b() -> None:
        clock.sleep(1.0)
        links["b"].write("MOVE 1")
        got["b"] = clock.now()
        links["b"].write("POS?")
        got["moves"] = links["b"].read().strip()

    assert run_members(clock, {"a": a, "b": b}) == {"a": None, "b": None}
    assert got == {"a": 3.0, "b": 4.0, "moves": "2"}
    assert isinstance(instrument_lock(motor), ScheduledRLock)


def test_sleeps_of_threads_that_are_not_members_pass_at_once() -> None:
    """A member waits (join) for a helper thread that sleeps on the clock, as the engine waits for its safe-state
    threads: the helper is no member, its sleep does not wait for a turn (that would hang both) and its time
    passes for everyone. Also the coordinator's own sleep while the group is open."""
    clock = VirtualClock()
    got: dict[str, float] = {}

    def a() -> None:
        helper = threading.Thread(target=lambda: clock.sleep(0.5), daemon=True)
        helper.start()
        helper.join(JOIN_S)
        assert not helper.is_alive()
        got["a_after_helper"] = clock.now()
        clock.sleep(1.0)
        got["a_done"] = clock.now()

    def b() -> None:  # b's turn comes after a's first (name order at t = 0), when the helper has slept
        got["b_start"] = clock.now()
        clock.sleep(2.0)
        got["b_done"] = clock.now()

    assert run_members(clock, {"a": a, "b": b}) == {"a": None, "b": None}
    assert got == {"a_after_helper": 0.5, "b_start": 0.5, "a_done": 1.5, "b_done": 2.5}
    with clock.concurrently(["late"]):
        clock.sleep(0.25)  # the coordinator (no member; "late" has not entered): at once
        assert clock.now() == 2.75


def test_a_member_blocked_on_something_the_clock_cannot_see_is_taken_off_the_schedule(
        caplog: pytest.LogCaptureFixture) -> None:
    """b sleeps inside a motor command (holding its link lock); a waits (join) for a helper thread that needs the
    motor: the helper is no member, so only the stall rule can let b's time come. It does, with a warning."""
    clock = VirtualClock()
    motor = MotorEmulator(clock)
    links = {name: EmulatorAdapter(motor) for name in ("a", "b", "helper")}
    got: dict[str, float] = {}

    def a() -> None:
        clock.sleep(0.5)  # b's move starts at 0 and lasts to 2
        helper = threading.Thread(target=lambda: links["helper"].write("MOVE 0.25"), daemon=True)
        helper.start()
        helper.join(JOIN_S)
        got["a_after_helper"] = clock.now()

    def b() -> None:
        links["b"].write("MOVE 2")
        got["b_done"] = clock.now()

    with caplog.at_level(logging.WARNING, logger="sim_instruments.clock"):
        assert run_members(clock, {"a": a, "b": b}, stall_s=0.3) == {"a": None, "b": None}
    assert got["b_done"] == 2.0
    assert got["a_after_helper"] == 2.25  # the helper's move after b's
    assert "member 'a'" in caplog.text and "no longer deterministic" in caplog.text


def test_names_and_membership_are_checked() -> None:
    clock = VirtualClock()
    with pytest.raises(ValueError, match="given twice"):
        with clock.concurrently(["smu", "smu"]):
            pass
    with pytest.raises(ValueError, match="not one string"):
        with clock.concurrently("smu"):
            pass
    with pytest.raises(ValueError, match="at least one"):
        with clock.concurrently([]):
            pass
    with clock.concurrently(["smu"]) as group:
        with pytest.raises(ValueError, match="'smu9' is not in this concurrent group"):
            with group.member("smu9"):
                pass
        with pytest.raises(RuntimeError, match="already open"):
            with clock.concurrently(["x"]):
                pass
        with group.member("smu"):
            clock.sleep(1.0)
            with pytest.raises(RuntimeError, match="already a member"):
                with group.member("smu"):
                    pass
        with pytest.raises(RuntimeError, match="already entered"):
            with group.member("smu"):
                pass
    assert clock.now() == 1.0
    clock.sleep(2.0)  # after the group: the plain virtual clock
    assert clock.now() == 3.0


def test_labctl_wall_clock_and_fallback_groups_are_no_ops() -> None:
    wall = labctl_clock.RealClock()
    with labctl_clock.concurrently(wall, ["smu", "smu2"]) as group:
        assert group.names == ("smu", "smu2")
        with group.member("smu2") as name:
            assert name == "smu2"
        with pytest.raises(ValueError, match="'smu3' is not in this concurrent group"):
            with group.member("smu3"):
                pass
    with pytest.raises(ValueError, match="given twice"):
        with wall.concurrently(["a", "a"]):
            pass

    class BareClock:  # a clock with only now() and sleep()
        def now(self) -> float:
            return 0.0

        def sleep(self, duration_s: float) -> None:
            pass

    with labctl_clock.concurrently(BareClock(), ["smu"]) as group:
        with group.member("smu"):
            pass
    assert isinstance(labctl_clock.new_lock(VirtualClock()), ScheduledRLock)
    plain = labctl_clock.new_lock(BareClock())
    with plain, plain:  # re-entrant
        pass


# -- end to end: two Keithley 2400s on one bench, each sweeping in its own thread ----------------------------------
LINE_HZ = 50.0
SWEEPS = {  # name: (points, source delay s, NPLC)
    "smu": (41, 0.05, 1.0),
    "smu2": (21, 0.02, 0.1),
}


def point_time_s(delay_s: float, nplc: float) -> float:
    """The 2400's time per point of a built-in sweep with auto-zero on: the source delay, three A/D windows
    (signal, reference, zero) of NPLC line cycles, and 0.5 ms of reading overhead."""
    return delay_s + 3 * nplc / LINE_HZ + 0.5e-3


MODELS = {"2400": (Keithley2400, Keithley2400Emulator), "2450": (Keithley2450, Keithley2450Emulator)}


def sweep_on(bench: Bench, names: Sequence[str], concurrent: bool,
             models: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Sweep every SMU named in ``names`` (its own emulator and driver, a 2400 unless ``models`` says, the bench's
    lock shared) over -0.2 to 1.2 V; concurrently (one thread each, members of one group) or one after another."""
    clock = bench.clock
    drivers = {}
    for k, name in enumerate(names):
        driver_cls, emulator_cls = MODELS[(models or {}).get(name, "2400")]
        drivers[name] = driver_cls(EmulatorAdapter(emulator_cls(bench, serial=f"10{k}"), lock=bench.lock))
    out: dict[str, dict[str, Any]] = {name: {} for name in names}

    def work(name: str) -> None:
        n, delay_s, nplc = SWEEPS[name]
        smu = drivers[name]
        smu.configure_voltage_source(compliance_A=0.05, nplc=nplc, source_delay_s=delay_s)
        t0 = clock.now()
        data = smu.sweep_voltage(-0.2, 1.2, n, delay_s)
        smu.disable_output()
        out[name].update(t0=t0, t1=clock.now(), v=np.asarray(data.voltage_V), i=np.asarray(data.current_A),
                         t=np.asarray(data.time_s))

    if concurrent:
        errors = run_members(clock, {name: (lambda name=name: work(name)) for name in names})
        assert errors == {name: None for name in names}
    else:
        for name in names:
            work(name)
    return out


def test_two_2400s_sweep_concurrently_on_one_bench_as_each_would_alone() -> None:
    start_s = 0.0
    both = sweep_on(Bench(clock=VirtualClock(start_s), seed=3), list(SWEEPS), concurrent=True)
    bench_end_s = max(r["t1"] for r in both.values())
    expected_s = {name: n * point_time_s(delay_s, nplc) for name, (n, delay_s, nplc) in SWEEPS.items()}
    assert expected_s["smu"] == pytest.approx(4.5305, abs=1e-12)  # 41 x (50 + 60 + 0.5) ms
    assert expected_s["smu2"] == pytest.approx(0.5565, abs=1e-12)  # 21 x (20 + 6 + 0.5) ms
    for name, (n, delay_s, nplc) in SWEEPS.items():
        r = both[name]
        assert r["t0"] == start_s  # both start at once: neither waits for the other
        assert r["t1"] - r["t0"] == pytest.approx(expected_s[name], rel=1e-12)
        assert np.diff(r["t"]) == pytest.approx(point_time_s(delay_s, nplc), rel=1e-9)
        assert r["v"] == pytest.approx(np.linspace(-0.2, 1.2, n), abs=1e-12)
    assert bench_end_s == pytest.approx(max(expected_s.values()), rel=1e-12)  # the longer one, not the sum

    # each alone on a bench of its own: the same time stamps exactly, the same currents within the reading noise
    # (independent draws: rms 2e-5 x range / sqrt(NPLC), range <= 1 mA here; 5 sigma of a difference of two)
    for name, (_, _, nplc) in SWEEPS.items():
        solo = sweep_on(Bench(clock=VirtualClock(start_s), seed=3), [name], concurrent=False)[name]
        assert np.max(np.abs(solo["i"])) < 1e-3 / 1.05  # the 1 mA range holds 105 % of every reading
        assert np.array_equal(both[name]["t"], solo["t"])
        assert both[name]["t1"] == solo["t1"]
        sigma_A = 2e-5 * 1e-3 / np.sqrt(nplc)
        assert np.max(np.abs(both[name]["i"] - solo["i"])) < 5 * np.sqrt(2) * sigma_A

    # one after the other on one bench takes the sum
    serial = sweep_on(Bench(clock=VirtualClock(start_s), seed=3), list(SWEEPS), concurrent=False)
    assert serial["smu2"]["t1"] == pytest.approx(sum(expected_s.values()), rel=1e-12)


def test_two_2400s_concurrently_give_the_same_data_on_every_repeat() -> None:
    runs = [sweep_on(Bench(clock=VirtualClock(), seed=11), list(SWEEPS), concurrent=True) for _ in range(4)]
    for other in runs[1:]:
        for name in SWEEPS:
            for key in ("v", "i", "t"):
                assert np.array_equal(other[name][key], runs[0][name][key]), (name, key)


@pytest.mark.parametrize("models", [{"smu": "2450", "smu2": "2450"}, {"smu": "2400", "smu2": "2450"}])
def test_2450s_sweep_concurrently_as_each_would_alone(models: dict[str, str]) -> None:
    """The 2450 runs its trigger model in a thread of its own only on a real clock; on the virtual one the sweep
    runs inside the member's command, and the driver's polling of the buffer sleeps in the member's thread."""
    both = sweep_on(Bench(clock=VirtualClock(), seed=5), list(SWEEPS), concurrent=True, models=models)
    solo = {name: sweep_on(Bench(clock=VirtualClock(), seed=5), [name], concurrent=False, models=models)[name]
            for name in SWEEPS}
    for name in SWEEPS:
        assert both[name]["t0"] == 0.0
        assert both[name]["t1"] == solo[name]["t1"]
        assert np.array_equal(both[name]["t"], solo[name]["t"])
    assert solo["smu"]["t1"] > solo["smu2"]["t1"] > 0.0
    assert max(r["t1"] for r in both.values()) == solo["smu"]["t1"]  # the longer, not the sum


# -- end to end: two RunEngines (J–V), one per member, on two benches that share one virtual clock -----------------
def jv_station(device: dict, clock: VirtualClock | None) -> Station:
    config = parse_station(station_with(device=device))
    return Station(config, simulator=Simulator(config, clock=clock if clock is not None else VirtualClock()))


JV_RUNS = {  # member: (device, J–V settings)
    "smu": (SET_A, {"step_V": 0.01, "delay_s": 0.1}),
    "smu2": (SET_B, {"step_V": 0.02, "delay_s": 0.05, "precondition_s": 20.0, "stop_V": 0.8}),
}


def run_jv_engine(station: Station, out_dir: Path, settings: dict) -> dict[str, Any]:
    clock = station.clock
    t0 = clock.now()
    result = RunEngine(station, out_dir, sample="vclock").run(make_procedure(**settings))
    return {"t0": t0, "t1": clock.now(), "result": result}


def test_two_jv_runs_concurrently_each_on_its_engine_as_one_by_one(tmp_path: Path) -> None:
    """The engine's whole run (its flusher, watchdog and safe-state threads included) inside a member: each run's
    data and figures are those of the same run alone, and the pair takes the longer run's time."""
    solo = {name: run_jv_engine(jv_station(device, None), tmp_path / f"solo-{name}", settings)
            for name, (device, settings) in JV_RUNS.items()}
    clock = VirtualClock()
    stations = {name: jv_station(device, clock) for name, (device, _) in JV_RUNS.items()}
    both: dict[str, dict[str, Any]] = {}

    def work(name: str) -> None:
        both[name] = run_jv_engine(stations[name], tmp_path / f"both-{name}", JV_RUNS[name][1])

    assert run_members(clock, {name: (lambda name=name: work(name)) for name in JV_RUNS}) == {n: None for n in JV_RUNS}
    for name in JV_RUNS:
        alone_run, run = solo[name], both[name]
        assert run["result"].status == alone_run["result"].status == "completed"
        assert run["t0"] == 0.0 and run["t1"] == alone_run["t1"] - alone_run["t0"]
        mine, theirs = load_run(run["result"].path).streams["jv"], load_run(alone_run["result"].path).streams["jv"]
        for column in ("time_s", "voltage_V", "current_A"):
            assert np.array_equal(mine[column].to_numpy(), theirs[column].to_numpy()), (name, column)
        assert run["result"].results == alone_run["result"].results
    durations = {name: r["t1"] - r["t0"] for name, r in solo.items()}
    assert durations["smu"] != durations["smu2"]
    assert clock.now() == max(durations.values())  # the longer run, not the sum


def test_the_scheduled_lock_is_a_re_entrant_lock_outside_a_group() -> None:
    lock = ScheduledRLock()
    with lock:
        with lock:
            assert lock.locked()
        taken: list[bool] = []
        t = threading.Thread(target=lambda: taken.extend([lock.acquire(blocking=False), lock.acquire(timeout=0.05)]))
        t.start()
        t.join(JOIN_S)
        assert taken == [False, False]  # held by this thread, twice: another cannot have it
    assert not lock.locked()
    with pytest.raises(RuntimeError, match="un-acquired"):
        lock.release()
    errors: list[BaseException] = []

    def release_unowned() -> None:
        try:
            lock.release()
        except RuntimeError as exc:
            errors.append(exc)

    with lock:
        t = threading.Thread(target=release_unowned)
        t.start()
        t.join(JOIN_S)
        assert lock.locked()
    assert len(errors) == 1


def test_a_member_whose_worker_never_enters_is_given_up_after_the_stall_time(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = VirtualClock()
    seen: list[float] = []
    with caplog.at_level(logging.WARNING, logger="sim_instruments.clock"):
        with clock.concurrently(["a", "ghost"], stall_s=0.3) as group:
            def a() -> None:
                with group.member("a"):
                    sleeper(clock, [1.0, 1.0], seen)()

            t = threading.Thread(target=a, daemon=True)
            t.start()
            t.join(JOIN_S)
            assert not t.is_alive()
            assert group.states() == {"a": "done", "ghost": "late"}
    assert seen == [0.0, 1.0, 2.0]
    assert "'ghost' did not enter" in caplog.text


def test_the_watchdog_s_exception_reaches_a_member_waiting_for_its_turn() -> None:
    """The engine's watchdog raises WatchdogStall into the run's thread (labctl.watchdog.raise_in_thread). A member
    waiting for its turn gets it (the wait looks again every POLL_S), leaves the schedule, and the other goes on."""
    clock = VirtualClock()
    idents: dict[str, int] = {}
    in_turn = threading.Event()
    seen_b: list[float] = []

    def a() -> None:
        idents["a"] = threading.get_ident()
        clock.sleep(1.0)  # a runs first (name order), then waits here through b's turn at 0.0
        clock.sleep(1.0)

    def b() -> None:
        in_turn.set()
        time.sleep(0.3)  # wall time within b's turn: a is waiting
        sleeper(clock, [0.5] * 6, seen_b)()

    def fire() -> None:
        in_turn.wait(JOIN_S)
        time.sleep(0.1)
        raise_in_thread(idents["a"], WatchdogStall)

    killer = threading.Thread(target=fire, daemon=True)
    killer.start()
    errors = run_members(clock, {"a": a, "b": b})
    killer.join(JOIN_S)
    assert isinstance(errors["a"], WatchdogStall)
    assert errors["b"] is None
    assert seen_b == alone(0.0, [0.5] * 6)
    assert clock.now() == 3.0
