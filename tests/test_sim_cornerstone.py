"""Cornerstone monochromator emulator: statements, error codes, status byte, framing, timing and the optics."""

from __future__ import annotations

from typing import Any, NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim_instruments import cornerstone as cs
from sim_instruments.adapter import EmulatorAdapter
from sim_instruments.clock import VirtualClock
from sim_instruments.cornerstone import FRAMING, CornerstoneEmulator


class Grating(NamedTuple):
    number: int
    lines_per_mm: int
    blaze_nm: float
    min_nm: float
    max_nm: float
    label: str


GRATINGS = [
    Grating(1, 1200, 500.0, 200.0, 1400.0, "vis"),
    Grating(2, 600, 1000.0, 400.0, 2500.0, "NIR"),
    Grating(3, 300, 2000.0, 800.0, 2500.0, "IR"),
]


class FakeOptics:
    """The optics state of the contract; every setter call is logged as (time, setter, value)."""

    def __init__(self, clock: VirtualClock, gratings: list[Grating] | None = None) -> None:
        self.clock = clock
        self.gratings = list(GRATINGS if gratings is None else gratings)
        self.wheel_slots = 6
        self.wavelength_nm = 500.0
        self.grating = 1
        self.mono_shutter_open = False
        self.mono_filter = 1
        self.wheel_position = 1
        self.changes: list[tuple[float, str, Any]] = []

    def _set(self, name: str, attr: str, value: Any) -> None:
        setattr(self, attr, value)
        self.changes.append((self.clock.now(), name, value))

    def set_wavelength(self, nm: float) -> None:
        self._set("set_wavelength", "wavelength_nm", float(nm))

    def set_grating(self, n: int) -> None:
        self._set("set_grating", "grating", int(n))

    def set_mono_shutter(self, is_open: bool) -> None:
        self._set("set_mono_shutter", "mono_shutter_open", bool(is_open))

    def set_mono_filter(self, n: int) -> None:
        self._set("set_mono_filter", "mono_filter", int(n))

    def set_wheel_position(self, n: int) -> None:
        self._set("set_wheel_position", "wheel_position", int(n))

    def state(self) -> tuple[Any, ...]:
        return (self.wavelength_nm, self.grating, self.mono_shutter_open, self.mono_filter, self.wheel_position)


class FakeBench:
    def __init__(self, gratings: list[Grating] | None = None) -> None:
        self.clock = VirtualClock()
        self.optics = FakeOptics(self.clock, gratings)


@pytest.fixture
def bench() -> FakeBench:
    return FakeBench()


@pytest.fixture
def mono(bench: FakeBench) -> CornerstoneEmulator:
    return CornerstoneEmulator(bench)


def assert_error(mono: CornerstoneEmulator, code: int) -> None:
    assert mono.handle("STB?") == "20"
    assert mono.handle("STB?") == "00"  # reading clears it
    assert mono.handle("ERROR?") == str(code)
    assert mono.handle("ERROR?") == "0"


def test_construction_adopts_the_bench_state_without_writing(bench: FakeBench, mono: CornerstoneEmulator) -> None:
    assert bench.optics.changes == []
    assert mono.handle("WAVE?") == "500.000"
    assert mono.handle("GRAT?") == "1,1200,VIS"  # responses are upper case
    assert mono.handle("FILTER?") == "1"
    assert mono.handle("SHUTTER?") == "C"
    assert mono.handle("UNITS?") == "NM"
    assert mono.handle("STB?") == "00"
    assert mono.handle("ERROR?") == "0"


def test_wire_framing_echo_and_crlf(bench: FakeBench, mono: CornerstoneEmulator) -> None:
    adapter = EmulatorAdapter(mono, read_termination="\r\n", write_termination="\r\n")  # echo from the emulator
    adapter.write("GOWAVE 600")
    adapter.write("wave?")
    adapter.write("GOWAVE 9000")  # out of range: only the echo
    adapter.write("STB?")
    assert adapter.read_bytes(-1) == b"GOWAVE 600\r\nwave?\r\n600.000\r\nGOWAVE 9000\r\nSTB?\r\n20\r\n"
    assert FRAMING == {"read_termination": "\r\n", "write_termination": "\r\n", "echo": True, "prompt": ""}


def test_gowave_echoes_at_once_and_the_next_statement_waits_for_the_move(
    bench: FakeBench, mono: CornerstoneEmulator
) -> None:
    clock = bench.clock
    assert mono.handle("GOWAVE 800") is None
    assert clock.now() == 0.0  # the echo is not delayed
    move_s = 300.0 / cs.SLEW_NM_PER_S + cs.SETTLE_S
    assert mono.busy_until_s == pytest.approx(move_s)
    assert bench.optics.changes == [(0.0, "set_wavelength", 800.0)]  # stamped when commanded
    assert mono.handle("WAVE?") == "800.000"
    assert clock.now() == pytest.approx(move_s)
    assert mono.handle("WAVE?") == "800.000"
    assert clock.now() == pytest.approx(move_s)  # idle: no further wait
    mono.handle("GOWAVE 800")  # no move, no wait
    mono.handle("SHUTTER?")
    assert clock.now() == pytest.approx(move_s)


def test_the_time_already_spent_counts_towards_the_move(bench: FakeBench, mono: CornerstoneEmulator) -> None:
    mono.handle("GOWAVE 650")  # 1 s slew + settle
    bench.clock.sleep(5.0)
    mono.handle("WAVE?")
    assert bench.clock.now() == 5.0


@settings(max_examples=60, deadline=None)
@given(target_nm=st.floats(200.0, 1400.0), case=st.sampled_from(["GOWAVE", "gowave", "GoWave"]),
       spaces=st.sampled_from([" ", "  ", "\t"]))
def test_gowave_any_in_range_wavelength_round_trips(target_nm: float, case: str, spaces: str) -> None:
    bench = FakeBench()
    mono = CornerstoneEmulator(bench)
    text = f"{target_nm:.3f}"
    assert mono.handle(f"{case}{spaces}{text}") is None
    assert mono.handle("wave?") == text
    expected_s = abs(float(text) - 500.0) / cs.SLEW_NM_PER_S + (cs.SETTLE_S if float(text) != 500.0 else 0.0)
    assert bench.clock.now() == pytest.approx(expected_s, abs=1e-9)
    assert mono.handle("STB?") == "00"


@pytest.mark.parametrize("target", ["199.999", "1400.001", "0", "2500"])
def test_wavelength_outside_the_grating_range_is_error_3(
    bench: FakeBench, mono: CornerstoneEmulator, target: str
) -> None:
    assert mono.handle(f"GOWAVE {target}") is None
    assert bench.optics.changes == [] and mono.handle("WAVE?") == "500.000"
    assert bench.clock.now() == 0.0
    assert_error(mono, cs.ERR_WAVELENGTH)


@pytest.mark.parametrize(
    ("statement", "code"),
    [
        ("FOO", 1), ("", 1), ("GOWAVE500", 1), ("WAVE? 3", 1), ("*IDN?", 1), ("ABORT 1", 1), ("ECHO 0", 1),
        ("GOWAVE", 2), ("GOWAVE abc", 2), ("GOWAVE 5e", 2), ("GOWAVE nan", 2), ("GOWAVE 500,600", 2),
        ("GRAT 4", 2), ("GRAT 0", 2), ("GRAT 1.0", 2), ("GRAT", 2), ("FILTER 7", 2), ("FILTER 0", 2),
        ("FILTER -1", 2), ("SHUTTER X", 2), ("SHUTTER", 2), ("UNITS MM", 2), ("HANDSHAKE 2", 2),
        ("FILTER7LABEL AB", 2), ("GRAT4LABEL AB", 2), ("FILTER1LABEL", 2),
        ("FILTER1LABEL TOOLONGXX", 9), ("GRAT2LABEL NINECHARS", 9),
    ],
)
def test_bad_statements_echo_only_and_record_the_code(
    bench: FakeBench, mono: CornerstoneEmulator, statement: str, code: int
) -> None:
    before = bench.optics.state()
    assert mono.handle(statement) is None
    assert bench.optics.state() == before and bench.optics.changes == []
    assert mono.handle("UNITS?") == "NM" and mono.handle("FILTER1LABEL?") == ""
    assert_error(mono, code)


def test_the_last_error_code_wins(mono: CornerstoneEmulator) -> None:
    mono.handle("FOO")
    mono.handle("GOWAVE 9000")
    assert mono.handle("ERROR?") == "3"


def test_units_um_and_wavenumbers(bench: FakeBench, mono: CornerstoneEmulator) -> None:
    mono.handle("units um")
    assert mono.handle("UNITS?") == "UM"
    mono.handle("GOWAVE 0.6")
    assert bench.optics.wavelength_nm == pytest.approx(600.0)
    assert mono.handle("WAVE?") == "0.600000"
    mono.handle("UNITS WN")
    mono.handle("GOWAVE 20000")
    assert bench.optics.wavelength_nm == pytest.approx(500.0)
    assert mono.handle("WAVE?") == "20000.000"
    mono.handle("GOWAVE 0")
    assert_error(mono, cs.ERR_BAD_PARAMETER)
    mono.handle("GOWAVE 100000")  # 100 nm: outside grating 1
    assert_error(mono, cs.ERR_WAVELENGTH)
    mono.handle("UNITS NM")
    assert mono.handle("WAVE?") == "500.000"


def test_grating_change_takes_its_time_and_clamps_the_wavelength(bench: FakeBench, mono: CornerstoneEmulator) -> None:
    mono.handle("GOWAVE 300")
    mono.handle("WAVE?")
    t0 = bench.clock.now()
    assert mono.handle("GRAT 2") is None
    assert bench.clock.now() == t0
    assert mono.handle("GRAT?") == "2,600,NIR"
    assert bench.clock.now() == pytest.approx(t0 + cs.GRATING_CHANGE_S)
    assert bench.optics.wavelength_nm == 400.0  # 300 nm is below grating 2's range
    assert mono.handle("WAVE?") == "400.000"
    mono.handle("GRAT 2")  # already there: no move
    mono.handle("GRAT?")
    assert bench.clock.now() == pytest.approx(t0 + cs.GRATING_CHANGE_S)
    mono.handle("GOWAVE 2400")
    mono.handle("GRAT 3")
    assert bench.optics.wavelength_nm == 2400.0  # inside grating 3's range: kept
    mono.handle("GOWAVE 300")
    assert_error(mono, cs.ERR_WAVELENGTH)  # the range check follows the grating


@pytest.mark.parametrize(("start", "target", "slots_moved"), [(1, 4, 3), (1, 6, 1), (2, 5, 3), (6, 2, 2), (3, 3, 0)])
def test_filter_moves_the_shorter_way_at_2_s_per_slot(start: int, target: int, slots_moved: int) -> None:
    bench = FakeBench()
    bench.optics.mono_filter = start
    mono = CornerstoneEmulator(bench)
    assert mono.handle(f"FILTER {target}") is None
    assert mono.handle("FILTER?") == str(target)
    assert bench.clock.now() == pytest.approx(slots_moved * cs.FILTER_S_PER_SLOT)
    assert cs.FILTER_S_PER_SLOT == 2.0
    assert bench.optics.mono_filter == target


def test_no_filter_wheel_is_error_6(bench: FakeBench) -> None:
    mono = CornerstoneEmulator(bench, filter_wheel=False)
    for statement in ("FILTER 2", "FILTER?", "FILTER1LABEL AB", "FILTER1LABEL?"):
        assert mono.handle(statement) is None
        assert_error(mono, cs.ERR_NO_ACCESSORY)
    assert bench.optics.changes == []


def test_labels(mono: CornerstoneEmulator) -> None:
    assert mono.handle("filter2label lp400") is None
    assert mono.handle("FILTER2LABEL?") == "LP400"
    assert mono.handle("FILTER3LABEL 8CHARSXX") is None
    assert mono.handle("FILTER3LABEL?") == "8CHARSXX"
    mono.handle("GRAT1LABEL UV-VIS")
    assert mono.handle("GRAT1LABEL?") == "UV-VIS"
    assert mono.handle("GRAT?") == "1,1200,UV-VIS"
    assert mono.handle("STB?") == "00"


def test_shutter(bench: FakeBench, mono: CornerstoneEmulator) -> None:
    assert mono.handle("SHUTTER O") is None
    assert bench.optics.mono_shutter_open is True and mono.handle("SHUTTER?") == "O"
    assert mono.handle("shutter c") is None
    assert bench.optics.mono_shutter_open is False and mono.handle("SHUTTER?") == "C"


def test_abort_stops_a_slew_where_it_is(bench: FakeBench, mono: CornerstoneEmulator) -> None:
    mono.handle("GOWAVE 800")
    bench.clock.sleep(1.0)  # 150 nm done
    assert mono.handle("ABORT") is None
    assert bench.clock.now() == 1.0  # ABORT is not queued behind the move
    assert mono.handle("WAVE?") == "650.000"
    assert bench.clock.now() == 1.0
    assert bench.optics.changes[-1] == (1.0, "set_wavelength", 650.0)


def test_abort_waits_for_a_filter_move(bench: FakeBench, mono: CornerstoneEmulator) -> None:
    mono.handle("FILTER 3")
    mono.handle("ABORT")
    assert bench.clock.now() == pytest.approx(2 * cs.FILTER_S_PER_SLOT)
    assert mono.handle("FILTER?") == "3"


def test_handshake_mode_sends_the_status_byte_after_each_statement(
    bench: FakeBench, mono: CornerstoneEmulator
) -> None:
    assert mono.handle("HANDSHAKE 1") == "00"
    assert mono.handle("GOWAVE 650") == "00"
    assert bench.clock.now() == pytest.approx(1.0 + cs.SETTLE_S)  # sent when the move is complete
    assert mono.handle("WAVE?") == "650.000\r\n00"
    assert mono.handle("FOO") == "20"
    assert mono.handle("HANDSHAKE 0") is None
    assert mono.handle("WAVE?") == "650.000"


def test_models(bench: FakeBench) -> None:
    cs130 = CornerstoneEmulator(bench, model="130")
    assert cs130.handle("GRAT 3") is None  # only two turret positions, though the bench has three gratings
    assert cs130.handle("ERROR?") == "2"
    assert cs130.handle("GRAT 2") is None and cs130.handle("GRAT?") == "2,600,NIR"
    assert cs130.handle("INFO?") == "CORNERSTONE 130 VER 1.00"
    b = CornerstoneEmulator(bench, model="260b")
    assert b.handle("*IDN?") == "NEWPORT CORPORATION,CS260B,0,1.00"
    assert b.handle("*WAI") is None and b.handle("*OPC?") == "1"
    assert b.handle("STB?") == "00"
    with pytest.raises(ValueError, match="model"):
        CornerstoneEmulator(bench, model="360")


def test_status_byte_in_decimal(bench: FakeBench) -> None:
    mono = CornerstoneEmulator(bench, status_decimal=True)
    mono.handle("FOO")
    assert mono.handle("STB?") == "32"
    assert mono.handle("STB?") == "0"


def test_missing_grating_is_a_bad_parameter() -> None:
    bench = FakeBench(gratings=GRATINGS[:2])
    mono = CornerstoneEmulator(bench)
    mono.handle("GRAT 3")
    assert_error(mono, cs.ERR_BAD_PARAMETER)
    mono.handle("GRAT3LABEL?")
    assert_error(mono, cs.ERR_BAD_PARAMETER)
