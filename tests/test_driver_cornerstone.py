"""Cornerstone drivers: exact traffic (echo, answer) per statement; parsers; end to end on both transports."""

from __future__ import annotations

import math
import re
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymeasure.test import expected_protocol

from drivers.cornerstone import (
    ERROR_MEANINGS,
    Cornerstone130,
    Cornerstone260,
    CornerstoneError,
    GratingInfo,
    parse_grating_reply,
    status_reports_error,
)
from sim_instruments import cornerstone as cs
from sim_instruments.adapter import EmulatorAdapter
from sim_instruments.clock import RealClock
from sim_instruments.cornerstone import FRAMING, CornerstoneEmulator
from sim_instruments.server import serve
from tests.fakes import TimeoutSpy
from tests.test_sim_cornerstone import FakeBench

Traffic = list[tuple[str | None, str | None]]


def query(cmd: str, answer: str) -> Traffic:
    """A query: echo, then the answer line (terminators excluded, as in expected_protocol)."""
    return [(cmd, cmd), (None, answer)]


def command(cmd: str) -> Traffic:
    return [(cmd, cmd)]


NM = command("UNITS NM") + query("UNITS?", "NM")  # sent once, before the first wavelength statement


def test_constructor_sends_nothing() -> None:
    with expected_protocol(Cornerstone260, []):
        pass
    with expected_protocol(Cornerstone130, []):
        pass


def test_idn_and_id() -> None:
    with expected_protocol(Cornerstone260, query("INFO?", "CORNERSTONE 260 VER 1.00") * 2) as mono:
        assert mono.idn == "CORNERSTONE 260 VER 1.00"
        assert mono.id == "CORNERSTONE 260 VER 1.00"


def test_wavelength_get_forces_nm_once() -> None:
    with expected_protocol(Cornerstone260, NM + query("WAVE?", "500.000") + query("WAVE?", "501.250")) as mono:
        assert mono.wavelength_nm == 500.0
        assert mono.wavelength_nm == 501.25


def test_wavelength_set_moves_then_confirms() -> None:
    traffic = NM + command("GOWAVE 600.000") + query("WAVE?", "600.000")
    traffic += command("GOWAVE 612.346") + query("WAVE?", "612.346")
    with expected_protocol(Cornerstone260, traffic) as mono:
        mono.wavelength_nm = 600
        mono.wavelength_nm = 612.3456


def test_wavelength_confirmation_runs_under_a_long_timeout() -> None:
    with expected_protocol(Cornerstone260, command("GOWAVE 600.000") + query("WAVE?", "600.000")) as mono:
        mono._units_nm = True
        spy = mono.adapter.connection = TimeoutSpy(2000)
        mono.wavelength_nm = 600
    assert spy.history == [mono.move_timeout_s * 1000, 2000]


def test_wavelength_out_of_grating_range_raises_the_instrument_error() -> None:
    traffic = NM + command("GOWAVE 2400.000") + query("WAVE?", "500.000") + query("STB?", "20")
    traffic += query("ERROR?", "3")
    with expected_protocol(Cornerstone260, traffic) as mono:
        with pytest.raises(CornerstoneError, match="error 3: destination wavelength not allowed"):
            mono.wavelength_nm = 2400


def test_wavelength_not_reached_without_error_still_raises() -> None:
    traffic = NM + command("GOWAVE 600.000") + query("WAVE?", "599.500") + query("STB?", "00")
    with expected_protocol(Cornerstone260, traffic) as mono:
        with pytest.raises(CornerstoneError, match="asked for 600.000 nm.*599.500 nm"):
            mono.wavelength_nm = 600


@pytest.mark.parametrize("value", [-0.001, 2500.001, math.nan, math.inf])
def test_wavelength_validator(value: float) -> None:
    with expected_protocol(Cornerstone260, []) as mono, pytest.raises(ValueError):
        mono.wavelength_nm = value


def test_units_get_set_and_validation() -> None:
    traffic = query("UNITS?", "UM") + command("UNITS WN") + query("UNITS?", "WN")
    traffic += NM + query("WAVE?", "500.000")  # leaving nm means the next wavelength statement restores it
    with expected_protocol(Cornerstone260, traffic) as mono:
        assert mono.units == "UM"
        mono.units = "wn"
        assert mono.wavelength_nm == 500.0
    with expected_protocol(Cornerstone260, []) as mono, pytest.raises(ValueError):
        mono.units = "MM"
    traffic = command("UNITS NM") + query("UNITS?", "UM") + query("STB?", "00")
    with expected_protocol(Cornerstone260, traffic) as mono, pytest.raises(CornerstoneError, match="units"):
        mono.configure()


def test_configure_sets_nm_every_time() -> None:
    with expected_protocol(Cornerstone260, NM + NM + query("WAVE?", "1.000")) as mono:
        mono.configure()
        mono.configure()
        assert mono.wavelength_nm == 1.0


def test_grating_info_and_get() -> None:
    traffic = query("GRAT?", "1,1200,VIS") + query("GRAT?", "2,600,NIR")
    with expected_protocol(Cornerstone260, traffic) as mono:
        assert mono.grating_info() == GratingInfo(1, 1200, "VIS")
        assert mono.grating == 2


def test_grating_set_waits_and_confirms() -> None:
    with expected_protocol(Cornerstone260, command("GRAT 3") + query("GRAT?", "3,300,IR")) as mono:
        spy = mono.adapter.connection = TimeoutSpy(2000)
        mono.grating = 3
    assert spy.history == [mono.grating_timeout_s * 1000, 2000]
    traffic = command("GRAT 2") + query("GRAT?", "1,1200,VIS") + query("STB?", "20") + query("ERROR?", "2")
    with expected_protocol(Cornerstone260, traffic) as mono:
        with pytest.raises(CornerstoneError, match="error 2: bad parameter"):
            mono.grating = 2


@pytest.mark.parametrize(("cls", "bad"), [(Cornerstone260, [0, 4, 1.5, True, "1"]), (Cornerstone130, [0, 3])])
def test_grating_validator_per_model(cls: type, bad: list) -> None:
    for value in bad:
        with expected_protocol(cls, []) as mono, pytest.raises(ValueError):
            mono.grating = value
    with expected_protocol(Cornerstone130, command("GRAT 2") + query("GRAT?", "2,600,NIR")) as mono:
        mono.grating = 2.0


def test_filter_get_set_and_validation() -> None:
    traffic = query("FILTER?", "1") + command("FILTER 4") + query("FILTER?", "4")
    with expected_protocol(Cornerstone260, traffic) as mono:
        assert mono.filter == 1
        mono.filter = 4
    for value in (0, 7, 2.5):
        with expected_protocol(Cornerstone260, []) as mono, pytest.raises(ValueError):
            mono.filter = value
    traffic = command("FILTER 2") + query("FILTER?", "1") + query("STB?", "32") + query("ERROR?", "6")
    with expected_protocol(Cornerstone260, traffic) as mono:
        with pytest.raises(CornerstoneError, match="error 6: accessory not present"):
            mono.filter = 2


def test_filter_labels() -> None:
    traffic = query("FILTER2LABEL?", "LP400") + command("FILTER3LABEL LP700")
    with expected_protocol(Cornerstone260, traffic) as mono:
        assert mono.filter_label(2) == "LP400"
        mono.set_filter_label(3, "LP700")
    for label in ("", "NINECHARS", " LP", "LP\r\n", "µm"):
        with expected_protocol(Cornerstone260, []) as mono, pytest.raises(ValueError):
            mono.set_filter_label(1, label)


@pytest.mark.parametrize(("answer", "state"), [("O", True), ("C", False)])
def test_shutter_get(answer: str, state: bool) -> None:
    with expected_protocol(Cornerstone260, query("SHUTTER?", answer)) as mono:
        assert mono.shutter_open is state


def test_shutter_get_unexpected_answer() -> None:
    with expected_protocol(Cornerstone260, query("SHUTTER?", "X")) as mono, pytest.raises(CornerstoneError):
        mono.shutter_open  # noqa: B018 - the property read is the action under test


@pytest.mark.parametrize("method", ["close_shutter", "safe_state", "shutdown"])
def test_close_paths(method: str) -> None:
    with expected_protocol(Cornerstone260, command("SHUTTER C") + query("SHUTTER?", "C")) as mono:
        getattr(mono, method)()


def test_open_shutter_and_failure() -> None:
    with expected_protocol(Cornerstone260, command("SHUTTER O") + query("SHUTTER?", "O")) as mono:
        mono.open_shutter()
    traffic = command("SHUTTER O") + query("SHUTTER?", "C") + query("STB?", "00")
    with expected_protocol(Cornerstone260, traffic) as mono, pytest.raises(CornerstoneError, match="did not open"):
        mono.shutter_open = True


def test_abort() -> None:
    with expected_protocol(Cornerstone260, command("ABORT")) as mono:
        mono.abort()


@pytest.mark.parametrize("stb", ["00", "0", " 0 "])
def test_check_errors_clean(stb: str) -> None:
    with expected_protocol(Cornerstone260, query("STB?", stb)) as mono:
        assert mono.check_errors() == []


@pytest.mark.parametrize("stb", ["20", "32", "0x20"])
@pytest.mark.parametrize("code", [1, 2, 3, 6, 9, 42])
def test_check_set_errors_raises_the_meaning(stb: str, code: int) -> None:
    with expected_protocol(Cornerstone260, query("STB?", stb) + query("ERROR?", str(code))) as mono:
        with pytest.raises(CornerstoneError, match=re.escape(f"error {code}: {ERROR_MEANINGS.get(code, 'unknown')}")):
            mono.check_set_errors()


@pytest.mark.parametrize("stb", ["20", "32", "0x20"])
@pytest.mark.parametrize(("code", "meaning"), [(1, "command not understood"), (2, "bad parameter"),
                                               (6, "accessory not present"), (42, "unknown error code")])
def test_check_errors_returns_the_recorded_error(stb: str, code: int, meaning: str) -> None:
    with expected_protocol(Cornerstone260, query("STB?", stb) + query("ERROR?", str(code))) as mono:
        errors = mono.check_errors()
    assert len(errors) == 1 and errors[0][0] == code and errors[0][1].startswith(meaning)


def test_check_errors_trusts_error_query() -> None:
    with expected_protocol(Cornerstone260, query("STB?", "20") + query("ERROR?", "0")) as mono:
        assert mono.check_errors() == []
    with expected_protocol(Cornerstone260, query("STB?", "zz")) as mono, pytest.raises(CornerstoneError):
        mono.check_errors()


def test_wrong_echo_raises() -> None:
    with expected_protocol(Cornerstone260, [("INFO?", "INFO")]) as mono, pytest.raises(CornerstoneError, match="echo"):
        mono.idn  # noqa: B018


# -- parsers -----------------------------------------------------------------------------------------------

@given(number=st.integers(0, 99), lines=st.integers(1, 10_000),
       label=st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=20))
def test_parse_grating_reply_round_trip(number: int, lines: int, label: str) -> None:
    assert parse_grating_reply(f"{number},{lines},{label}\r\n") == GratingInfo(number, lines, label)


@pytest.mark.parametrize("reply", ["", "1", "a,1200,X", "1,12.5,X"])
def test_parse_grating_reply_rejects_garbage(reply: str) -> None:
    with pytest.raises(CornerstoneError):
        parse_grating_reply(reply)


@given(value=st.integers(0, 255), form=st.sampled_from(["{:02X}", "{:X}", "{:d}", "{:02x}"]))
def test_status_error_bit_is_never_missed(value: int, form: str) -> None:
    text = form.format(value)
    if value & 0x20:
        assert status_reports_error(text)
    if value == 0:
        assert not status_reports_error(text)


def test_status_examples() -> None:
    assert status_reports_error("20") and status_reports_error("32")
    assert not status_reports_error("00") and not status_reports_error("10")


# -- end to end against the emulator -----------------------------------------------------------------------

def _exercise(mono: Cornerstone260, bench: FakeBench) -> None:
    assert mono.idn == "CORNERSTONE 260 VER 1.00"
    mono.configure()
    mono.wavelength_nm = 650.0
    assert mono.wavelength_nm == 650.0 and bench.optics.wavelength_nm == 650.0
    assert mono.grating_info() == GratingInfo(1, 1200, "VIS")
    with pytest.raises(CornerstoneError, match="error 3"):
        mono.wavelength_nm = 2000.0
    assert mono.wavelength_nm == 650.0
    mono.grating = 2
    assert mono.grating == 2 and bench.optics.grating == 2
    mono.wavelength_nm = 2000.0
    mono.filter = 3
    assert mono.filter == 3 and bench.optics.mono_filter == 3
    mono.set_filter_label(3, "lp1000")
    assert mono.filter_label(3) == "LP1000"
    mono.open_shutter()
    assert bench.optics.mono_shutter_open is True
    mono.safe_state()
    assert bench.optics.mono_shutter_open is False and mono.shutter_open is False
    assert mono.check_errors() == []


def test_end_to_end_in_process_on_the_virtual_clock() -> None:
    bench = FakeBench()
    mono = Cornerstone260(EmulatorAdapter(CornerstoneEmulator(bench), **FRAMING))
    _exercise(mono, bench)
    # the moves took their modelled time on the bench clock
    expected_s = (150 / cs.SLEW_NM_PER_S + cs.SETTLE_S) + cs.GRATING_CHANGE_S + (1350 / cs.SLEW_NM_PER_S + cs.SETTLE_S)
    expected_s += 2 * cs.FILTER_S_PER_SLOT
    assert bench.clock.now() == pytest.approx(expected_s)


def test_failed_query_reports_the_instrument_error() -> None:
    bench = FakeBench()
    mono = Cornerstone260(EmulatorAdapter(CornerstoneEmulator(bench, filter_wheel=False), **FRAMING))
    with pytest.raises(CornerstoneError, match="error 6: accessory not present"):
        mono.filter  # noqa: B018 - no answer comes; the driver asks why
    assert mono.check_errors() == []  # the link is still in step
    with pytest.raises(CornerstoneError, match="error 6"):
        mono.filter = 2


def test_end_to_end_cornerstone130_and_decimal_status() -> None:
    bench = FakeBench()
    mono = Cornerstone130(EmulatorAdapter(CornerstoneEmulator(bench, model="130", status_decimal=True), **FRAMING))
    mono.grating = 2
    with pytest.raises(ValueError):
        mono.grating = 3
    mono.write("GRAT 3")  # the instrument refuses it too
    assert [code for code, _ in mono.check_errors()] == [2]
    mono.write("GRAT 3")
    with pytest.raises(CornerstoneError, match="error 2: bad parameter"):
        mono.check_set_errors()


@pytest.mark.tcp
def test_end_to_end_over_asrlsocket() -> None:
    bench = FakeBench()
    with serve({"mono": (CornerstoneEmulator(bench), "\r\n", "\r\n")}, serial=["mono"]) as srv:
        mono = Cornerstone260(srv.resource_strings()["mono"], visa_library="@py", timeout=2000)
        try:
            assert mono.adapter.connection.baud_rate == 9600
            assert mono.adapter.connection.read_termination == "\r\n"
            _exercise(mono, bench)
            assert mono.adapter.connection.timeout == 2000  # restored after each move
        finally:
            mono.adapter.close()


@pytest.mark.tcp
def test_move_longer_than_the_read_timeout_in_real_time() -> None:
    bench = FakeBench()
    bench.clock = bench.optics.clock = RealClock()
    with serve({"mono": (CornerstoneEmulator(bench), "\r\n", "\r\n")}, serial=["mono"]) as srv:
        mono = Cornerstone260(srv.resource_strings()["mono"], visa_library="@py", timeout=300)
        try:
            mono.configure()
            t0 = time.monotonic()
            mono.wavelength_nm = 575.0  # WAVE? is answered after 0.5 s slew + settle, beyond the 0.3 s timeout
            assert time.monotonic() - t0 >= 75.0 / cs.SLEW_NM_PER_S + cs.SETTLE_S
            assert mono.wavelength_nm == 575.0
        finally:
            mono.adapter.close()
