"""33500B emulator: strict SCPI (-113, -222, -221 into SYST:ERR?, nothing changed, no reply to a failed query),
*RST defaults, the load setting rescaling the displayed voltages (the 33500 user's guide), and end to end through
a station (sim://fgen) in-process and over loopback TCP (the served bench)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from labctl.config import ConfigError, parse_station
from labctl.station import Station
from sim_instruments.fgen33500 import Fgen33500Emulator
from sim_instruments.serve import served_station, start_server
from tests.helpers import default_station, served_bench


@pytest.fixture
def gen() -> Fgen33500Emulator:
    return Fgen33500Emulator(SimpleNamespace(laser=SimpleNamespace(on=False, power_W=0.0, wavelength_nm=520.0)))


def _errors(gen: Fgen33500Emulator) -> list[str]:
    out = []
    while (reply := gen.handle("SYST:ERR?")) != '0,"No error"':
        out.append(reply)
    return out


def test_reset_defaults_sine_1_kHz_100_mVpp_into_50_ohm_output_off(gen: Fgen33500Emulator) -> None:
    gen.handle("FREQ 7;VOLT 2;OUTP ON;OUTP:LOAD INF")
    gen.handle("*RST")
    assert gen.handle("FUNC?") == "SIN"
    assert float(gen.handle("FREQ?")) == 1000.0
    assert float(gen.handle("VOLT?")) == pytest.approx(0.1)
    assert float(gen.handle("VOLT:OFFS?")) == 0.0
    assert float(gen.handle("OUTP:LOAD?")) == 50.0
    assert gen.handle("VOLT:UNIT?") == "VPP"
    assert gen.handle("OUTP?") == "0"
    assert gen.handle("*IDN?").startswith("Agilent Technologies,33522B,")


def test_long_and_short_forms_with_the_optional_source_node(gen: Fgen33500Emulator) -> None:
    gen.handle("sour1:function square;:SOURce:FREQuency 2.5E+02;:output1 on")
    assert gen.handle("FUNC?") == "SQU" and float(gen.handle("SOUR1:FREQ?")) == 250.0
    assert gen.handle("OUTP1?") == "1"
    assert _errors(gen) == []


def test_unknown_header_is_minus_113_and_a_failed_query_gives_no_reply(gen: Fgen33500Emulator) -> None:
    assert gen.handle("VOLT:LEV 1") is None
    assert gen.handle("FREQ:CW?") is None  # not a 33500 header: no reply
    assert gen.handle("OUTP:STAT ON") is None
    assert gen.handle("OUTP?") == "0"  # nothing changed
    assert _errors(gen) == ['-113,"Undefined header"'] * 3


def test_out_of_range_is_minus_222_and_changes_nothing(gen: Fgen33500Emulator) -> None:
    gen.handle("FREQ 50E6")  # above 30 MHz
    gen.handle("VOLT 11")  # above 10 Vpp into 50 Ω
    gen.handle("VOLT 0.0005")  # below 1 mVpp
    gen.handle("OUTP:LOAD 0.5")
    assert float(gen.handle("FREQ?")) == 1000.0 and float(gen.handle("VOLT?")) == pytest.approx(0.1)
    assert float(gen.handle("OUTP:LOAD?")) == 50.0
    assert [e.split(",")[0] for e in _errors(gen)] == ["-222"] * 4
    gen.handle("FUNC TRIANGLE_WAVE")
    assert [e.split(",")[0] for e in _errors(gen)] == ["-141"]


def test_amplitude_and_offset_together_beyond_the_output_is_minus_221(gen: Fgen33500Emulator) -> None:
    gen.handle("VOLT 8")  # 4 V peak into 50 Ω
    gen.handle("VOLT:OFFS 1.5")  # 1.5 + 4 > 5 V
    assert float(gen.handle("VOLT:OFFS?")) == 0.0
    assert [e.split(",")[0] for e in _errors(gen)] == ["-221"]


def test_the_load_setting_rescales_the_displayed_amplitude_not_the_output(gen: Fgen33500Emulator) -> None:
    gen.handle("VOLT 1")  # 1 Vpp into 50 Ω = 2 Vpp open circuit
    gen.handle("OUTP:LOAD INF")
    assert gen.handle("OUTP:LOAD?") == "9.9E+37"
    assert float(gen.handle("VOLT?")) == pytest.approx(2.0)
    gen.handle("OUTP:LOAD 1000")  # 2 Vpp · 1000/1050
    assert float(gen.handle("VOLT?")) == pytest.approx(2.0 * 1000 / 1050)
    assert gen.output.peak_open_circuit_V == pytest.approx(1.0)
    gen.handle("OUTP:LOAD INF;VOLT 15")  # 15 Vpp is allowed into high impedance (≤ 20)
    assert float(gen.handle("VOLT?")) == pytest.approx(15.0)
    assert _errors(gen) == []


@settings(max_examples=60, deadline=None)
@given(load=st.one_of(st.just(math.inf), st.floats(1.0, 10e3)), fraction=st.floats(0.0, 1.0))
def test_the_output_behind_50_ohm_for_any_load_setting(load: float, fraction: float) -> None:
    """A displayed Vpp within the limits for the load R: open-circuit peak = Vpp/2·(R + 50)/R (INF: Vpp/2)."""
    gen = Fgen33500Emulator(SimpleNamespace(laser=SimpleNamespace(on=False, power_W=0.0, wavelength_nm=520.0)))
    factor = 1.0 if math.isinf(load) else load / (load + 50.0)
    lo, hi = 2e-3 * factor, 20.0 * factor  # 1 mVpp–10 Vpp into 50 Ω = 2 mVpp–20 Vpp open circuit
    vpp = lo + fraction * (hi - lo)
    gen.handle("OUTP:LOAD INF" if math.isinf(load) else f"OUTP:LOAD {load!r}")
    gen.handle(f"VOLT {vpp!r}")
    assert _errors(gen) == []
    assert gen.output.peak_open_circuit_V == pytest.approx(vpp / 2 / factor, rel=1e-9)
    assert float(gen.handle("VOLT?")) == pytest.approx(vpp, rel=1e-9)


def test_vrms_unit_and_dbm_needs_a_finite_load(gen: Fgen33500Emulator) -> None:
    gen.handle("VOLT:UNIT VRMS;VOLT 1")
    gen.handle("VOLT:UNIT VPP")
    assert float(gen.handle("VOLT?")) == pytest.approx(2.0 * math.sqrt(2.0))
    gen.handle("VOLT:UNIT DBM")
    # 2√2 Vpp into 50 Ω is 1 Vrms: 10·log10(1²/50/1 mW) = 13.0103 dBm
    assert float(gen.handle("VOLT?")) == pytest.approx(10 * math.log10(1 / 50 / 1e-3))
    gen.handle("OUTP:LOAD INF")
    assert float(gen.handle("OUTP:LOAD?")) == 50.0
    assert [e.split(",")[0] for e in _errors(gen)] == ["-221"]


# -- through a station ----------------------------------------------------------------------------------------
def _fgen_station(resource: str = "sim://fgen") -> dict:
    data = default_station()
    data["instruments"]["fgen"] = {"driver": "keysight_33500b", "resource": resource}
    return data


def test_a_station_drives_the_generator_and_its_safe_state_turns_the_output_off() -> None:
    station = Station(parse_station(_fgen_station()))
    station.connect(["fgen"])
    try:
        gen = station.require("fgen", "function_generator")
        emulator = station["fgen"].adapter.emulator
        assert emulator.handle("OUTP:LOAD?") == "9.9E+37"  # configure: the default load setting is INF
        gen.set_waveform("SIN", 7.0, 0.05)
        gen.set_output(True)
        assert emulator.handle("OUTP?") == "1" and float(emulator.handle("FREQ?")) == 7.0
        assert float(emulator.handle("VOLT?")) == pytest.approx(0.05)
        assert gen.check_errors() == []
        gen.write("VOLT:LEV 1")
        assert gen.check_errors() == [(-113, "Undefined header")]
        assert station.safe_state() == []
        outcome = {o.role: o for o in station.safe_report}["fgen"]
        assert outcome.ok and outcome.detail == "output off (output reads off)"
        assert emulator.handle("OUTP?") == "0"
    finally:
        station.close()


def test_a_sim_name_the_generator_cannot_be_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"instruments\.fgen\.resource = 'sim://awg'.*'sim://fgen'"):
        parse_station(_fgen_station("sim://awg"))


@pytest.mark.tcp
def test_over_loopback_tcp_the_generator_answers_and_drives_the_bench() -> None:
    config = parse_station(_fgen_station())
    with start_server(config) as server:
        resources = server.resource_strings()
        assert resources["fgen"].startswith("TCPIP::127.0.0.1::")
        station = Station(parse_station(served_station(config, {"fgen": resources["fgen"]})))
        station.connect(["fgen"])  # the identity check (*IDN?) passed over TCP
        try:
            gen = station.require("fgen", "function_generator")
            gen.set_waveform("SIN", 7.0, 0.1)
            gen.set_output(True)
            assert gen.output_is_on() and gen.read_frequency_Hz() == 7.0
            assert gen.read_amplitude() == pytest.approx(0.1)
            assert station.safe_state() == []
            assert gen.output_is_on() is False
        finally:
            station.close()


@pytest.mark.tcp
def test_labctl_sim_serve_serves_the_generator(tmp_path) -> None:
    with served_bench(tmp_path, _fgen_station(), duration_s=60) as (served, _lines):
        station = Station(parse_station(yaml.safe_load(served.read_text())))
        station.connect(["fgen"])
        try:
            gen = station.require("fgen", "function_generator")
            assert gen.id.startswith("Agilent Technologies,33522B,")
            gen.set_output_load(50)
            gen.set_amplitude(1.0, "VRMS")
            assert gen.read_amplitude_unit() == "VRMS" and gen.read_amplitude() == pytest.approx(1.0)
            assert gen.check_errors() == []
        finally:
            station.close()
