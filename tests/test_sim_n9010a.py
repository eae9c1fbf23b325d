"""The N9010A emulator: strict SCPI, the spectrum of a known input against hand formulas, its sweep time on the
virtual clock, and the analyser through a station in-process, over `labctl sim serve` with our driver, and with
an independent generic SCPI client (plain pyvisa + pyvisa-py, raw SCPI strings).

Hand numbers (instruments ref. §6.3, methods ref. §5.3): a tone of V rms into 50 Ω is 10·log10(V²/50 Ω/1 mW) dBm;
white noise in the RBW is (density²/50 Ω + DANL)·ENBW with ENBW = √(π/(4 ln 2))·RBW = 1.0645·RBW, the
integral of a Gaussian power response that is −3 dB at ±RBW/2; swept sweep time k·span/RBW² (k = 2.5 [L]).
The scatter of the log of exponentially distributed noise power is π/√6 · 10/ln 10 = 5.57 dB and its log mean
is γ·10/ln 10 = 2.51 dB below the mean power ("Spectrum Analysis Basics", instruments ref. §6.3).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pytest
import pyvisa
import yaml

from labctl.config import parse_station
from labctl.station import Station
from sim_instruments.clock import VirtualClock
from sim_instruments.n9010a import N9010AEmulator
from tests.helpers import default_station, served_bench

V_TONE = 1e-4  # V rms at the 50 Ω input
F_TONE_HZ = 7.0
NOISE_V_RTHZ = 1e-8  # V/√Hz
DANL_W_HZ = 1e-3 * 10 ** (-150 / 10)  # the model's analyser floor, −150 dBm/Hz [L]
ENBW_PER_RBW = math.sqrt(math.pi / (4 * math.log(2)))
EULER_GAMMA = 0.5772156649015329
LOG_MEAN_BELOW_DB = 10 * EULER_GAMMA / math.log(10)  # 2.507 dB
LOG_SCATTER_DB = math.pi / math.sqrt(6) * 10 / math.log(10)  # 5.57 dB


def dbm(power_W: float) -> float:
    return 10 * math.log10(power_W / 1e-3)


TONE_DBM = dbm(V_TONE**2 / 50)  # −66.99 dBm


@dataclass
class AnalyserInput:
    tones: list
    noise_V_rtHz: float


class FakePL:
    """What the plan's ``bench.pl.analyser_input()`` returns: one tone and a white noise density."""

    def __init__(self, tones=((F_TONE_HZ, V_TONE),), noise_V_rtHz=NOISE_V_RTHZ):
        self.tones, self.noise = list(tones), noise_V_rtHz

    def analyser_input(self):
        return AnalyserInput(self.tones, self.noise)


def bench(pl=None, seed=1):
    b = SimpleNamespace(clock=VirtualClock(), rng=np.random.default_rng(seed))
    if pl is not None:
        b.pl = pl
    return b


def emulator(pl=None, seed=1, *commands):
    emu = N9010AEmulator(bench(pl, seed))
    for c in (":INIT:CONT OFF", *commands):
        assert emu.handle(c) is None, c
    assert emu.handle(":SYST:ERR?") == '0,"No error"'
    return emu


def trace_dbm(emu) -> np.ndarray:
    emu.handle(":INIT:IMM")
    return np.array([float(v) for v in emu.handle(":TRAC? TRACE1").split(",")])


def floor_W(rbw_Hz: float, density=NOISE_V_RTHZ) -> float:
    return (density**2 / 50 + DANL_W_HZ) * ENBW_PER_RBW * rbw_Hz


# ------------------------------------------------------------------------------------------------- strictness
@pytest.mark.parametrize("command, code", [
    (":FOO:BAR 1", -113), (":SENS:FREQ:SPAN 5", -222), (":SENS:FREQ:CENT 4E9", -222), (":SENS:BAND 0.5", -222),
    (":SENS:DET:TRAC PEAK", -141), (":UNIT:POW DBW", -141), (":SENS:SWE:POIN 40002", -222),
    (":SENS:FREQ:CENT", -109), (":CALC:MARK1:MAX 3", -108), (":FORM INT,32", -221), (":SENS:AVER:COUN 0", -222),
])
def test_bad_commands_queue_their_error_and_change_nothing(command, code):
    emu = emulator()
    before = (emu.center_Hz, emu.span_Hz, emu.rbw_Hz, emu.detector, emu.unit, emu.points, emu.data_format)
    assert emu.handle(command) is None
    assert emu.handle(":SYST:ERR?").startswith(f"{code},")
    assert emu.handle(":SYST:ERR?") == '0,"No error"'
    assert (emu.center_Hz, emu.span_Hz, emu.rbw_Hz, emu.detector, emu.unit, emu.points, emu.data_format) == before


def test_a_failing_query_gives_no_data():
    emu = emulator()
    assert emu.handle(":TRAC? TRACE1") is None  # single sweep mode, no sweep taken yet
    assert emu.handle(":SYST:ERR?").startswith("-230,")
    assert emu.handle(":TRAC? TRACE2") is None
    assert emu.handle(":SYST:ERR?").startswith("-141,")
    assert emu.handle(":CALC:MARK1:Y?") == "9.91000000E+37"  # marker off: SCPI NaN


def test_preset_state_and_long_forms():
    emu = N9010AEmulator(bench())
    assert emu.handle("*IDN?").startswith("Agilent Technologies,N9010A,")
    assert float(emu.handle(":SENSe:FREQuency:CENTer?")) == 1.8e9
    assert float(emu.handle(":FREQ:SPAN?")) == 3.6e9
    assert float(emu.handle(":BANDwidth:RESolution?")) == 3e6  # auto: span/106 capped at 3 MHz
    assert emu.handle(":SWE:POIN?") == "1001" and emu.handle(":INIT:CONT?") == "1"
    assert emu.handle(":DET:TRAC?") == "NORM" and emu.handle(":UNIT:POW?") == "DBM"
    emu.handle(":sens:freq:span 1e6;:band:res:auto?")
    assert float(emu.handle(":BAND?")) == pytest.approx(1e6 / 106)


def test_unit_suffixes_as_the_reference_allows():
    emu = emulator(None, 1, ":FREQ:CENT 1.5 MHZ", ":FREQ:SPAN 20kHz", ":BAND 300 Hz", ":SWE:TIME 100 ms")
    assert float(emu.handle(":FREQ:CENT?")) == 1.5e6 and float(emu.handle(":FREQ:SPAN?")) == 2e4
    assert float(emu.handle(":BAND?")) == 300 and float(emu.handle(":SWE:TIME?")) == pytest.approx(0.1)
    assert emu.handle(":FREQ:CENT 7 V") is None
    assert emu.handle(":SYST:ERR?") == '-131,"Invalid suffix"'
    assert float(emu.handle(":FREQ:CENT?")) == 1.5e6


def test_max_hold_is_at_least_every_sweep_and_above_a_single_one():
    single = emulator(FakePL(), 11, ":FREQ:CENT 1E5", ":FREQ:SPAN 1E4", ":BAND 100", ":DET:TRAC SAMP")
    held = emulator(FakePL(), 11, ":FREQ:CENT 1E5", ":FREQ:SPAN 1E4", ":BAND 100", ":DET:TRAC SAMP",
                    ":AVER:COUN 10", ":TRAC:TYPE MAXH")
    # the max of 10 exponential powers has mean (1 + 1/2 + ... + 1/10) times the mean power: +4.69 dB
    gain_dB = 10 * math.log10(sum(1 / k for k in range(1, 11)))
    ratio = np.mean(10 ** (trace_dbm(held) / 10)) / np.mean(10 ** (trace_dbm(single) / 10))
    assert 10 * math.log10(ratio) == pytest.approx(gain_dB, abs=0.3)


# ---------------------------------------------------------------------------------------------- the spectrum
def test_marker_peak_reads_the_tone_power_in_dbm():
    emu = emulator(FakePL(), 1, ":FREQ:CENT 7", ":FREQ:SPAN 10", ":BAND 1", ":SWE:POIN 101")
    emu.handle(":INIT:IMM")
    emu.handle(":CALC:MARK1:STAT ON;:CALC:MARK1:MAX")
    assert float(emu.handle(":CALC:MARK1:X?")) == pytest.approx(F_TONE_HZ)
    # the floor is ~78 dB below: its contribution to the peak is ≤ 2·10^(-78/20) in amplitude, < 0.01 dB
    assert float(emu.handle(":CALC:MARK1:Y?")) == pytest.approx(TONE_DBM, abs=0.01)


def test_marker_in_volts_reads_the_tone_rms_voltage():
    emu = emulator(FakePL(), 2, ":FREQ:CENT 7", ":FREQ:SPAN 10", ":BAND 1", ":SWE:POIN 101", ":UNIT:POW V")
    emu.handle(":INIT:IMM")
    emu.handle(":CALC:MARK1:MAX")
    assert float(emu.handle(":CALC:MARK1:Y?")) == pytest.approx(V_TONE, rel=1e-3)


def test_the_line_has_the_gaussian_rbw_shape():
    """At ±RBW/2 from the tone the line is 3.01 dB down (the −3 dB width is the RBW)."""
    emu = emulator(FakePL(noise_V_rtHz=0.0), 3, ":FREQ:CENT 7", ":FREQ:SPAN 10", ":BAND 2", ":SWE:POIN 101",
                   ":DET:TRAC SAMP")
    level = trace_dbm(emu)
    freqs = np.linspace(2, 12, 101)
    assert level[np.argmin(abs(freqs - 8.0))] == pytest.approx(TONE_DBM - 10 * math.log10(2), abs=0.01)


@pytest.mark.parametrize("rbw_Hz", [10.0, 100.0, 1000.0])
def test_noise_floor_off_the_line_is_density_times_enbw(rbw_Hz):
    """RMS trace averaging and the average detector read the true noise power in the RBW (per-point power mean
    over 1001 points × 10 sweeps: ±0.05 dB)."""
    emu = emulator(FakePL(), 4, ":FREQ:CENT 1E5", f":FREQ:SPAN {100 * rbw_Hz:g}", f":BAND {rbw_Hz:g}",
                   ":AVER:TYPE RMS", ":AVER:COUN 10", ":AVER ON", ":DET:TRAC AVER", ":UNIT:POW W")
    emu.handle(":INIT:IMM")
    power = np.array([float(v) for v in emu.handle(":TRAC? TRACE1").split(",")])
    assert dbm(power.mean()) == pytest.approx(dbm(floor_W(rbw_Hz)), abs=0.2)


def test_noise_floor_scales_ten_db_per_decade_of_rbw():
    means = []
    for rbw in (10.0, 100.0, 1000.0):
        emu = emulator(FakePL(), 5, ":FREQ:CENT 1E5", f":FREQ:SPAN {100 * rbw:g}", f":BAND {rbw:g}",
                       ":AVER:TYPE RMS", ":AVER:COUN 10", ":AVER ON")
        means.append(10 * math.log10(np.mean(10 ** (trace_dbm(emu) / 10))))
    np.testing.assert_allclose(np.diff(means), [10.0, 10.0], atol=0.2)


def test_default_log_averaging_reads_noise_2_5_db_low():
    """The preset averaging type (log-power) under-reads Gaussian noise by 2.51 dB: emerges from the model."""
    emu = emulator(FakePL(), 6, ":FREQ:CENT 1E5", ":FREQ:SPAN 1E4", ":BAND 100", ":AVER:COUN 100", ":AVER ON")
    assert emu.handle(":AVER:TYPE?") == "LOG" and emu.handle(":DET:TRAC?") == "AVER"  # auto detector
    level = trace_dbm(emu)
    assert level.mean() == pytest.approx(dbm(floor_W(100.0)) - LOG_MEAN_BELOW_DB, abs=0.1)


def test_averaging_narrows_the_floors_scatter():
    one = emulator(FakePL(), 7, ":FREQ:CENT 1E5", ":FREQ:SPAN 1E4", ":BAND 100")
    scatter_1 = trace_dbm(one).std()
    assert scatter_1 == pytest.approx(LOG_SCATTER_DB, rel=0.08)  # one sample per point: 5.57 dB
    many = emulator(FakePL(), 7, ":FREQ:CENT 1E5", ":FREQ:SPAN 1E4", ":BAND 100", ":AVER:COUN 16", ":AVER ON")
    assert trace_dbm(many).std() == pytest.approx(scatter_1 / 4, rel=0.15)  # 1/√16


def test_without_a_pl_path_only_the_analysers_own_floor():
    emu = emulator(None, 8, ":FREQ:CENT 1E5", ":FREQ:SPAN 1E5", ":BAND 1000", ":AVER:TYPE RMS", ":AVER:COUN 10",
                   ":AVER ON", ":UNIT:POW W")
    emu.handle(":INIT:IMM")
    power = np.array([float(v) for v in emu.handle(":TRAC? TRACE1").split(",")])
    assert dbm(power.mean()) == pytest.approx(dbm(DANL_W_HZ * ENBW_PER_RBW * 1000.0), abs=0.2)


# -------------------------------------------------------------------------------------------------- sweep time
@pytest.mark.parametrize("span, rbw, vbw, averages, expected_s", [
    (10, 1, None, 1, 2.5 * 10 / 1**2),  # k·span/RBW²: 25 s for a 1 Hz RBW over 10 Hz
    (10, 1, None, 4, 4 * 2.5 * 10 / 1**2),  # × the averaged sweeps
    (100, 10, 1, 1, 2.5 * 100 / (10 * 1)),  # VBW below the RBW: k·span/(RBW·VBW)
    (1e6, 1e5, None, 1, 1e-3),  # the shortest sweep, 1 ms
])
def test_sweep_time_on_the_virtual_clock_is_the_hand_formula(span, rbw, vbw, averages, expected_s):
    commands = [":FREQ:CENT 1E6", f":FREQ:SPAN {span:g}", f":BAND {rbw:g}", f":AVER:COUN {averages}"]
    commands += [":AVER ON"] if averages > 1 else []
    commands += [f":BAND:VID {vbw:g}"] if vbw else []
    emu = emulator(FakePL(), 9, *commands)
    assert float(emu.handle(":SWE:TIME?")) * averages == pytest.approx(expected_s)
    t0 = emu.bench.clock.now()
    assert emu.handle(":INIT:IMM;*OPC?") == "1"
    assert emu.bench.clock.now() - t0 == pytest.approx(expected_s)


def test_real32_block_format_and_byte_order():
    emu = emulator(FakePL(), 10, ":FREQ:CENT 7", ":FREQ:SPAN 10", ":BAND 1", ":SWE:POIN 11")
    emu.handle(":INIT:IMM")
    ascii_values = [float(v) for v in emu.handle(":TRAC? TRACE1").split(",")]
    for order, fmt in (("NORM", ">11f"), ("SWAP", "<11f")):
        emu.handle(f":FORM REAL,32;:FORM:BORD {order}")
        block = emu.handle(":TRAC? TRACE1").encode("latin-1")
        assert block[:4] == b"#244"
        np.testing.assert_allclose(struct.unpack(fmt, block[4:]), ascii_values, rtol=1e-6)


# ------------------------------------------------------------------------------------------ through a station
def station_data(**settings):
    data = default_station()
    analyser = {"driver": "keysight_n9010a", "resource": "sim://spectrum_analyser"}
    if settings:
        analyser["settings"] = settings
    data["instruments"] = {"analyser": analyser}
    return data


def test_driver_through_an_in_process_station_with_a_pl_input():
    station = Station(parse_station(station_data(center_frequency_Hz=7.0, span_Hz=10.0, rbw_Hz=1.0,
                                                 sweep_points=101)))
    try:
        station.connect()
        analyser = station.require("analyser", "spectrum_analyser")
        emu = analyser.adapter.emulator
        emu.bench.pl = FakePL()
        t0 = emu.bench.clock.now()
        trace = analyser.read_trace()
        assert emu.bench.clock.now() - t0 == pytest.approx(2.5 * 10 / 1**2)  # the 1 Hz RBW sweep's 25 s
        assert trace.frequency_Hz[0] == 2.0 and trace.frequency_Hz[-1] == 12.0 and trace.level.size == 101
        x, y = analyser.peak()
        assert x == pytest.approx(F_TONE_HZ) and y == pytest.approx(TONE_DBM, abs=0.01)
        assert trace.level.max() == pytest.approx(y, abs=1e-4)  # the REAL,32 trace and the marker agree
        assert analyser.check_errors() == []
    finally:
        station.close()


SERVED_RBW_HZ = 1000.0  # real time over TCP: a 100 kHz span at 1 kHz RBW sweeps in 0.25 s


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    data = station_data(center_frequency_Hz=1e5, span_Hz=1e5, rbw_Hz=SERVED_RBW_HZ, averages=4,
                        average_type="RMS", detector="AVER", power_unit="DBM")
    with served_bench(tmp_path_factory.mktemp("n9010a"), data) as (served_path, printed):
        yield served_path, printed


def test_driver_over_labctl_sim_serve(served):
    served_path, printed = served
    assert "analyser: TCPIP::127.0.0.1::" in printed
    station = Station(parse_station(yaml.safe_load(served_path.read_text())))
    try:
        station.connect()
        analyser = station["analyser"]
        assert analyser.acquisition_time_s() == pytest.approx(4 * 2.5 * 1e5 / SERVED_RBW_HZ**2)
        trace = analyser.read_trace()
        assert trace.level.size == 1001 and trace.unit == "DBM"
        floor = 10 * math.log10(np.mean(10 ** (trace.level / 10)))
        assert floor == pytest.approx(dbm(DANL_W_HZ * ENBW_PER_RBW * SERVED_RBW_HZ), abs=0.3)  # no PL: DANL only
        x, y = analyser.peak()
        assert 0.5e5 <= x <= 1.5e5 and y == pytest.approx(trace.level.max(), abs=1e-4)
        assert analyser.check_errors() == []
    finally:
        station.close()


def test_an_independent_generic_scpi_client_reads_trace_and_marker(served):
    """Plain pyvisa (pyvisa-py backend) with raw SCPI strings and pyvisa's own block parser, not our driver."""
    resource = yaml.safe_load(served[0].read_text())["instruments"]["analyser"]["resource"]
    rm = pyvisa.ResourceManager("@py")
    inst = rm.open_resource(resource, read_termination="\n", write_termination="\n", timeout=10000)
    try:
        assert inst.query("*IDN?").startswith("Agilent Technologies,N9010A,")
        inst.write(":INIT:CONT OFF")
        inst.write(":SENS:AVER OFF")
        assert inst.query(":INIT:IMM;*OPC?").strip() == "1"
        inst.write(":FORM:DATA REAL,32")
        inst.write(":FORM:BORD SWAP")
        values = np.array(inst.query_binary_values(":TRAC:DATA? TRACE1", datatype="f", is_big_endian=False))
        inst.write(":FORM ASC")
        ascii_values = np.array(inst.query_ascii_values(":TRAC? TRACE1"))
        assert values.size == 1001
        np.testing.assert_allclose(values, ascii_values, rtol=1e-6)
        inst.write(":CALC:MARK1:STAT ON")
        inst.write(":CALC:MARK1:MAX")
        x, y = float(inst.query(":CALC:MARK1:X?")), float(inst.query(":CALC:MARK1:Y?"))
        start, stop = float(inst.query(":FREQ:STAR?")), float(inst.query(":FREQ:STOP?"))
        assert x == pytest.approx(start + (stop - start) * int(np.argmax(values)) / 1000)
        assert y == pytest.approx(values.max(), abs=1e-4)
        assert inst.query(":SYST:ERR?").strip() == '0,"No error"'
    finally:
        inst.close()
        rm.close()
