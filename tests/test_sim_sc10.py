"""SC10 shutter-controller emulator: command set, error strings, framing and the bench light it drives."""

from __future__ import annotations

import pytest

from sim_instruments.adapter import EmulatorAdapter
from sim_instruments.sc10 import ERR_ARG_INVALID, ERR_NOT_DEFINED, FRAMING, IDENTITY, SC10Emulator
from tests.fakes import ShutterBench as FakeBench


@pytest.fixture
def bench() -> FakeBench:
    return FakeBench()


@pytest.fixture
def sc10(bench: FakeBench) -> SC10Emulator:
    return SC10Emulator(bench)


def test_power_on_closes_the_bench_shutter(bench: FakeBench, sc10: SC10Emulator) -> None:
    assert bench.light.shutter_open is False
    assert sc10.handle("ens?") == "0"
    assert sc10.handle("closed?") == "1"


def test_identity(sc10: SC10Emulator) -> None:
    assert sc10.handle("id?") == IDENTITY == "THORLABS SC10 VERSION 1.07"
    assert sc10.handle("*idn?") == IDENTITY


def test_ens_toggles_and_drives_the_light(bench: FakeBench, sc10: SC10Emulator) -> None:
    assert sc10.handle("ens") is None
    assert sc10.handle("ens?") == "1"
    assert bench.light.shutter_open is True
    assert sc10.handle("closed?") == "0"
    assert sc10.handle("ens") is None
    assert sc10.handle("ens?") == "0"
    assert bench.light.shutter_open is False


@pytest.mark.parametrize(
    ("key", "default", "good", "bad"),
    [
        ("mode", "1", ["1", "5"], ["0", "6", "x", ""]),
        ("rep", "1", ["1", "99"], ["0", "100", "-1"]),
        ("trig", "0", ["0", "1"], ["2"]),
        ("xto", "0", ["0", "1"], ["2"]),
        ("open", "100", ["0", "999999"], ["1000000", "0000001", "1.5"]),
        ("shut", "100", ["5", "999999"], ["1234567", "²"]),
        ("baud", "0", ["1", "0"], ["9600"]),
    ],
)
def test_settings_round_trip_and_reject_bad_arguments(
    sc10: SC10Emulator, key: str, default: str, good: list[str], bad: list[str]
) -> None:
    assert sc10.handle(f"{key}?") == default
    for value in good:
        assert sc10.handle(f"{key}={value}") is None
        assert sc10.handle(f"{key}?") == str(int(value))
    before = sc10.handle(f"{key}?")
    for value in bad:
        assert sc10.handle(f"{key}={value}") == ERR_ARG_INVALID
        assert sc10.handle(f"{key}?") == before


@pytest.mark.parametrize("message", ["foo", "ENS?", "Mode?", "ens=1", "", "idn?", "interlock=1", "closed"])
def test_unknown_commands_give_the_error_string(sc10: SC10Emulator, message: str) -> None:
    assert sc10.handle(message) == ERR_NOT_DEFINED
    assert sc10.handle("ens?") == "0"  # nothing changed


def test_timed_modes_keep_the_shutter_closed(bench: FakeBench, sc10: SC10Emulator) -> None:
    sc10.handle("ens")
    assert bench.light.shutter_open is True
    sc10.handle("mode=2")
    assert bench.light.shutter_open is False
    assert sc10.handle("closed?") == "1"
    assert sc10.handle("ens?") == "1"  # enabled, but auto mode is not modelled as light
    sc10.handle("mode=1")
    assert bench.light.shutter_open is True


def test_interlock_disables_and_blocks_enable(bench: FakeBench, sc10: SC10Emulator) -> None:
    sc10.handle("ens")
    sc10.interlock_tripped = True
    assert bench.light.shutter_open is False
    assert sc10.handle("interlock?") == "1"
    assert sc10.handle("ens") is None
    assert sc10.handle("ens?") == "0"
    sc10.interlock_tripped = False
    assert sc10.handle("interlock?") == "0"
    sc10.handle("ens")
    assert bench.light.shutter_open is True


def test_save_restore_and_factory_default(sc10: SC10Emulator) -> None:
    sc10.handle("rep=7")
    assert sc10.handle("savp") is None
    sc10.handle("rep=9")
    assert sc10.handle("resp") is None
    assert sc10.handle("rep?") == "7"
    assert sc10.handle("default") is None
    assert sc10.handle("rep?") == "1"
    assert sc10.handle("save") is None


def test_command_list(sc10: SC10Emulator) -> None:
    listing = sc10.handle("?")
    assert listing is not None
    assert "ens?" in listing and "interlock?" in listing


def test_wire_framing_through_the_adapter(bench: FakeBench, sc10: SC10Emulator) -> None:
    # echo and prompt come from the emulator's own attributes
    adapter = EmulatorAdapter(sc10, read_termination="\r", write_termination="\r")
    adapter.write("ens?")
    adapter.write("ens")
    adapter.write("foo")
    assert adapter.read_bytes(-1) == b"ens?\r0\r> ens\r> foo\r" + ERR_NOT_DEFINED.encode() + b"\r> "
    assert bench.light.shutter_open is True
    assert FRAMING == {"read_termination": "\r", "write_termination": "\r", "echo": True, "prompt": "> "}
