"""FW102C filter-wheel emulator: command set, error strings, framing, move timing and third-party traffic."""

from __future__ import annotations

import re
from typing import Any

import pytest

from sim_instruments import fw102c
from sim_instruments.adapter import EmulatorAdapter
from sim_instruments.clock import VirtualClock
from sim_instruments.fw102c import ERR_ARG_INVALID, ERR_NOT_DEFINED, FRAMING, IDENTITY, FW102CEmulator


class FakeOptics:
    """Only the wheel part of the optics contract; setter calls are logged as (time, position)."""

    def __init__(self, clock: VirtualClock, position: int = 1, slots: int = 6) -> None:
        self.clock = clock
        self.wheel_position = position
        self.wheel_slots = slots
        self.changes: list[tuple[float, int]] = []

    def set_wheel_position(self, n: int) -> None:
        self.wheel_position = int(n)
        self.changes.append((self.clock.now(), int(n)))


class FakeBench:
    def __init__(self, position: int = 1, slots: int = 6) -> None:
        self.clock = VirtualClock()
        self.optics = FakeOptics(self.clock, position, slots)


@pytest.fixture
def bench() -> FakeBench:
    return FakeBench()


@pytest.fixture
def wheel(bench: FakeBench) -> FW102CEmulator:
    return FW102CEmulator(bench)


def test_identity_and_power_on_state(bench: FakeBench, wheel: FW102CEmulator) -> None:
    assert wheel.handle("*idn?") == IDENTITY == "THORLABS FW102C/FW212C Filter Wheel version 1.07"
    assert wheel.handle("pos?") == "1"
    assert wheel.handle("pcount?") == "6"
    assert [wheel.handle(f"{k}?") for k in ("trig", "speed", "sensors", "baud")] == ["0", "1", "0", "1"]
    assert bench.optics.changes == []  # starts from the bench's state, writes nothing
    assert FW102CEmulator(FakeBench(slots=12), slots=12).handle("pcount?") == "12"
    with pytest.raises(ValueError, match="6 or 12"):
        FW102CEmulator(bench, slots=8)


@pytest.mark.parametrize(
    ("slots", "start", "target", "speed", "seconds"),
    [
        (6, 1, 2, 1, 1.0), (6, 1, 4, 1, 3.0), (6, 1, 6, 1, 1.0), (6, 2, 6, 1, 2.0), (6, 5, 5, 1, 0.0),
        (6, 1, 4, 0, 6.0), (6, 6, 1, 0, 2.0), (12, 1, 7, 1, 6.0), (12, 1, 12, 1, 1.0), (12, 3, 10, 0, 10.0),
    ],
)
def test_pos_sleeps_the_move_time_before_returning(
    slots: int, start: int, target: int, speed: int, seconds: float
) -> None:
    bench = FakeBench(position=start, slots=slots)
    wheel = FW102CEmulator(bench, slots=slots)
    wheel.handle(f"speed={speed}")
    assert wheel.handle(f"pos={target}") is None
    assert bench.clock.now() == pytest.approx(seconds)
    assert wheel.handle("pos?") == str(target)
    assert bench.clock.now() == pytest.approx(seconds)  # queries take no time
    expected = [] if start == target else [(pytest.approx(seconds), target)]
    assert bench.optics.changes == expected  # stamped on arrival
    assert fw102c.MOVE_S_PER_SLOT_HIGH == 1.0 and fw102c.MOVE_S_PER_SLOT_SLOW == 2.0


@pytest.mark.parametrize("arg", ["0", "7", "12", "", "x", "2.0", "-1", "+2"])
def test_bad_positions_are_invalid_arguments(bench: FakeBench, wheel: FW102CEmulator, arg: str) -> None:
    assert wheel.handle(f"pos={arg}") == ERR_ARG_INVALID
    assert wheel.handle("pos?") == "1" and bench.clock.now() == 0.0 and bench.optics.changes == []


def test_pcount_bounds_the_positions(bench: FakeBench, wheel: FW102CEmulator) -> None:
    assert wheel.handle("pcount=12") is None
    assert wheel.handle("pcount?") == "12"
    assert wheel.handle("pos=12") is None
    assert wheel.handle("pos?") == "12"
    assert bench.clock.now() == pytest.approx(1.0)  # 1 -> 12 on a 12-slot wheel: one slot back


@pytest.mark.parametrize(
    ("key", "good", "bad"),
    [
        ("pcount", ["12", "6"], ["8", "0", "x", ""]),
        ("trig", ["1", "0"], ["2", "on"]),
        ("speed", ["0", "1"], ["2", "-1"]),
        ("sensors", ["1", "0"], ["3"]),
        ("baud", ["0", "1"], ["9600", "115200"]),
    ],
)
def test_settings_round_trip_and_reject_bad_arguments(
    wheel: FW102CEmulator, key: str, good: list[str], bad: list[str]
) -> None:
    for value in good:
        assert wheel.handle(f"{key}={value}") is None
        assert wheel.handle(f"{key}?") == value
    before = wheel.handle(f"{key}?")
    for value in bad:
        assert wheel.handle(f"{key}={value}") == ERR_ARG_INVALID
        assert wheel.handle(f"{key}?") == before


@pytest.mark.parametrize("message", ["foo", "POS?", "*IDN?", "Pos=2", "", "pos", "speed", "id?", "idn?", "trig"])
def test_unknown_commands_give_the_error_string(wheel: FW102CEmulator, message: str) -> None:
    assert wheel.handle(message) == ERR_NOT_DEFINED
    assert wheel.handle("pos?") == "1"


def test_save_stores_the_settings(wheel: FW102CEmulator) -> None:
    wheel.handle("speed=0")
    assert wheel.handle("save") is None
    assert wheel.saved_settings["speed"] == 0


def test_wire_framing_through_the_adapter(bench: FakeBench, wheel: FW102CEmulator) -> None:
    adapter = EmulatorAdapter(wheel, read_termination="\r", write_termination="\r")  # echo/prompt: emulator's
    for cmd in ("pos?", "pos=3", "pos=9", "foo"):
        adapter.write(cmd)
    expected = b"pos?\r1\r> pos=3\r> pos=9\r" + ERR_ARG_INVALID.encode() + b"\r> foo\r"
    assert adapter.read_bytes(-1) == expected + ERR_NOT_DEFINED.encode() + b"\r> "
    assert bench.optics.wheel_position == 3
    assert FRAMING == {"read_termination": "\r", "write_termination": "\r", "echo": True, "prompt": "> "}


# -- traffic of third-party drivers (reference §9), byte for byte ------------------------------------------

def _until_prompt(adapter: EmulatorAdapter) -> bytes:
    """What a client reading up to the ``b"> "`` prompt receives."""
    data = adapter.read_bytes(-1)
    assert data.endswith(b"> "), data
    return data


def test_odemis_style_start_up(bench: FakeBench, wheel: FW102CEmulator) -> None:
    # write-only adapter: the client reads raw bytes up to the prompt, as odemis does
    adapter = EmulatorAdapter(wheel, read_termination="", write_termination="", echo=True, prompt="> ")
    adapter.write_bytes(b"\r")  # bare CR at connect, then the answer is flushed
    adapter.flush_read_buffer()
    replies: dict[str, Any] = {}
    for cmd in ("*idn?", "pcount?", "pos?", "speed?"):
        adapter.write_bytes(cmd.encode() + b"\r")
        data = _until_prompt(adapter)
        lines = data[:-2].split(b"\r")
        assert lines[0] == cmd.encode()
        replies[cmd] = lines[1].decode()
    assert re.search(r"FW102C", replies["*idn?"])
    assert replies["pcount?"] == "6" and replies["pos?"] == "1" and replies["speed?"] == "1"
    adapter.write_bytes(b"pos=4\r")
    assert _until_prompt(adapter) == b"pos=4\r> "
    assert bench.clock.now() == pytest.approx(3.0)


def test_sweepme_style_position_parsing(bench: FakeBench, wheel: FW102CEmulator) -> None:
    # line-based client: the value is the line after the echo; the prompt starts the next read
    adapter = EmulatorAdapter(wheel, read_termination="\r", write_termination="\r")
    adapter.write("pcount?")
    assert (adapter.read(), adapter.read()) == ("pcount?", "6")
    adapter.write("pos?")
    assert adapter.read_bytes(2) == b"> "
    assert (adapter.read(), adapter.read()) == ("pos?", "1")
    adapter.write("pos=2")
    assert adapter.read_bytes(2) == b"> "
    assert adapter.read() == "pos=2"
    assert adapter.read_bytes(2) == b"> "
    assert bench.optics.wheel_position == 2


# -- the laser path's attenuator wheels (sim://od_wheel_1, sim://od_wheel_2) -----------------------------------
def _laser_path_bench(table: dict[int, float] | None = None):
    from sim_instruments.bench import Bench
    from sim_instruments.laser_path import AttenuatorWheel

    wheels = {"od_wheel_1": AttenuatorWheel("od_wheel_1", table or {2: 0.1, 3: 0.01})}
    return Bench(od_wheels=wheels)


def test_od_wheels_turn_the_laser_path_not_the_eqe_wheel() -> None:
    bench = _laser_path_bench()
    eqe_before = bench.optics.wheel_position if bench.optics is not None else None
    wheel = FW102CEmulator(bench, sim_name="od_wheel_1")
    assert wheel.handle("pcount?") == "6"  # six slots: the true transmission table's size
    wheel.handle("pos=3")
    assert bench.clock.now() == pytest.approx(2.0)  # two adjacent slots at high speed
    assert bench.laser_path.wheel("od_wheel_1").wheel_position == 3
    assert bench.laser_path.transmission() == pytest.approx(0.01)
    second = FW102CEmulator(bench, sim_name="od_wheel_2")  # no table: an open wheel of 6 slots
    second.handle("pos=5")
    assert second.handle("pos?") == "5" and wheel.handle("pos?") == "3"
    assert bench.laser_path.transmission() == pytest.approx(0.01)
    assert (bench.optics.wheel_position if bench.optics is not None else None) == eqe_before


def test_an_od_wheel_with_a_slot_above_6_has_12_slots() -> None:
    wheel = FW102CEmulator(_laser_path_bench({1: 1.0, 9: 0.001}), sim_name="od_wheel_1")
    assert wheel.handle("pcount?") == "12"
    assert wheel.handle("pos=9") is None and wheel.handle("pos?") == "9"


def test_a_stuck_wheel_echoes_pos_but_never_sends_the_prompt_and_does_not_move(bench: FakeBench,
                                                                               wheel: FW102CEmulator) -> None:
    adapter = EmulatorAdapter(wheel, read_termination="\r", write_termination="\r")
    wheel.stuck = True
    adapter.write("pos=4")
    assert adapter.read() == "pos=4"  # the echo
    assert adapter.read_bytes(-1) == b""  # and nothing after it: no prompt
    assert bench.clock.now() == 0.0 and bench.optics.changes == []
    adapter.write("pos?")  # the controller still answers queries (the motor is jammed, not the console)
    assert adapter.read() == "pos?" and adapter.read() == "1" and adapter.read_bytes(2) == b"> "
    wheel.stuck = False
    adapter.write("pos=2")
    assert adapter.read() == "pos=2" and adapter.read_bytes(2) == b"> "
    assert bench.optics.changes == [(pytest.approx(1.0), 2)]


def test_make_emulator_hands_the_sim_name_to_the_wheel() -> None:
    from drivers.thorlabs_fw102c import THORLABS_FW102C_REGISTRATION
    from sim_instruments import make_emulator

    bench = _laser_path_bench()
    assert make_emulator(THORLABS_FW102C_REGISTRATION, bench, name="od_wheel_1").optics is \
        bench.laser_path.wheel("od_wheel_1")
    assert make_emulator(THORLABS_FW102C_REGISTRATION, bench, name="filter_wheel").optics is bench.optics
    with pytest.raises(ValueError, match=r"allowed: 'sim://filter_wheel', 'sim://od_wheel_1', 'sim://od_wheel_2'"):
        make_emulator(THORLABS_FW102C_REGISTRATION, bench, name="od_wheel_3")
