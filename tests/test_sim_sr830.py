"""SR830 emulator: command set and quirks, status registers, lock-in physics (methods §9 P1–P3), storage.

The bench is a small fake (clock, rng, optics with a piecewise-constant detector-signal history) using the
``DetectorSignal`` fields of the optics contract in docs/architecture.md.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymeasure.instruments.srs import SR830 as StockSR830

from sim_instruments.adapter import EmulatorAdapter
from sim_instruments.clock import VirtualClock
from sim_instruments.lockin_filter import enbw_factor, propagate, settle_factor, step_response
from sim_instruments.sr830 import COMMANDS, FLOAT_RANGES, INT_RANGES, SR830Emulator, parse_unit, trcl_pair

RMS_PER_PP = 0.450158  # methods §9 P1 (√2/π to 6 digits)
SETTLE_99 = {0: 4.605, 1: 6.638, 2: 8.406, 3: 10.045}  # methods §9 P2, OFSL index -> k (τ)
ENBW_TAU = {1: 1 / 4, 2: 1 / 8, 3: 3 / 32, 4: 5 / 64}  # methods §9 P3
GAIN = 1e6  # preamp V/A
I_PP = 1e-6  # chopped photocurrent (A)
DIGITS = 5e-6  # relative resolution of a 6-significant-digit reply


@dataclass(frozen=True)
class DetectorSignal:
    chopped_pp_A: float = I_PP
    dc_A: float = 0.0
    frequency_Hz: float = 220.0
    phase_deg: float = 0.0
    noise_A_rtHz: float = 0.0


class FakeOptics:
    """Detector signal history: ``set_signal`` stamps a change at the clock's present time."""

    def __init__(self, clock: VirtualClock, signal: DetectorSignal, preamp_gain_V_A: float | None) -> None:
        self.clock = clock
        self.preamp_gain_V_A = preamp_gain_V_A
        self.history = [(clock.now(), signal)]

    def set_signal(self, **changes: float) -> None:
        self.history.append((self.clock.now(), replace(self.detector_signal(), **changes)))

    def detector_signal(self) -> DetectorSignal:
        return self.history[-1][1]

    def signal_history_since(self, t_s: float) -> list[tuple[float, DetectorSignal]]:
        start = max((i for i, (t, _) in enumerate(self.history) if t <= t_s), default=0)
        return list(self.history[start:])


class FakeBench:
    def __init__(self, signal: DetectorSignal | None = None, preamp_gain_V_A: float | None = GAIN,
                 seed: int = 1) -> None:
        self.clock = VirtualClock()
        self.rng = np.random.default_rng(seed)
        self.optics = FakeOptics(self.clock, signal or DetectorSignal(), preamp_gain_V_A)


def quiet(bench: FakeBench) -> SR830Emulator:
    """An emulator without its own input noise (exact physics tests)."""
    return SR830Emulator(bench, input_noise_V_rtHz=0.0, current_noise_A_rtHz={2: 0.0, 3: 0.0})


def run(emu: SR830Emulator, *commands: str) -> None:
    """Send setting commands; each must be accepted (no reply, no error bit)."""
    for cmd in commands:
        assert emu.handle(cmd) is None, cmd
    assert int(emu.handle("*ESR?")) & 0b0011_0000 == 0, commands


def snap(emu: SR830Emulator) -> list[float]:
    return [float(v) for v in emu.handle("SNAP? 1,2,3,4").split(",")]


@pytest.fixture
def bench() -> FakeBench:
    return FakeBench()


@pytest.fixture
def emu(bench: FakeBench) -> SR830Emulator:
    return quiet(bench)


# ------------------------------------------------------------------------------------- identity, defaults
def test_identity_and_power_on_event(emu: SR830Emulator) -> None:
    assert emu.handle("*IDN?") == "Stanford_Research_Systems,SR830,s/n46117,ver1.07"
    assert emu.handle("*ESR?") == "128"  # PON
    assert emu.handle("*ESR?") == "0"


def test_needs_an_eqe_bench() -> None:
    bench = FakeBench()
    bench.optics = None
    with pytest.raises(ValueError, match="optics"):
        SR830Emulator(bench)


def test_reset_defaults(emu: SR830Emulator) -> None:
    run(emu, "SENS 3", "OFLT 2", "FMOD 0", "DDEF 1,1,0")
    run(emu, "*RST")
    replies = {q: emu.handle(q) for q in ("SENS?", "OFLT?", "OFSL?", "FMOD?", "ISRC?", "RMOD?", "HARM?", "FREQ?")}
    assert replies == {"SENS?": "26", "OFLT?": "8", "OFSL?": "1", "FMOD?": "1", "ISRC?": "0", "RMOD?": "1",
                       "HARM?": "1", "FREQ?": "1000"}
    assert emu.handle("DDEF? 1") == "0,0"


# ---------------------------------------------------------------------------------------- parser quirks
@pytest.mark.parametrize(("command", "query", "expected"), [
    ("SENS22", "SENS?", "22"), ("SENS 22", "SENS ?", "22"), ("sens 22", "sEnS?", "22"),
    ("SENS22.9", "SENS?", "22"), ("SRAT13.000000", "SRAT ?", "13"), ("OFLT8", "OFLT?", "8"),
    ("FREQ1.00000e+03", "FREQ?", "1000"), ("FREQ 1000.0000", "FREQ?", "1000"), ("PHAS0.00", "PHAS?", "0"),
    ("PHAS 270", "PHAS?", "-90"), ("PHAS-360", "PHAS?", "0"), ("SLVL0.100", "SLVL?", "0.1"),
    ("RMOD1", "RMOD?", "1"), ("HARM1", "HARM?", "1"), ("DDEF1,1,0", "DDEF?1;", "1,0"),
    ("DDEF 2, 1, 2", "DDEF ? 2", "1,2"), ("AUXV1,0.500000;", "AUXV?1;", "0.500"),
    ("OEXP 1,12.5,1", "OEXP? 1", "12.50,1"), ("OUTX 1", "OUTX?", "1"), ("LIAE 2,1", "LIAE?", "4"),
])
def test_driver_spellings(emu: SR830Emulator, command: str, query: str, expected: str) -> None:
    run(emu, command)
    assert emu.handle(query) == expected


def test_several_queries_in_one_message_get_their_own_terminator(emu: SR830Emulator) -> None:
    assert emu.handle("SENS?;OFLT?") == "26\n8"
    assert SR830Emulator(FakeBench(), reply_separator="\r").handle("SENS?;OFLT?") == "26\r8"


@pytest.mark.parametrize("spelling", ["OUTP? 1", "OUTP?1", "OUTP ? 1", "outp?1;", " OUTP?  1 "])
def test_query_spacing(emu: SR830Emulator, spelling: str) -> None:
    assert emu.handle(spelling) is not None


@given(index=st.integers(0, 26), form=st.sampled_from(["SENS{}", "SENS {}", "SENS{:.6f}", "SENS {:e}", "sens{}"]))
def test_integer_parameters_in_any_numeric_form(index: int, form: str) -> None:
    emu = SR830Emulator(FakeBench())
    assert emu.handle(form.format(index)) is None
    assert emu.handle("SENS?") == str(index)


@settings(max_examples=300)
@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30))
def test_arbitrary_text_never_crashes(text: str) -> None:
    emu = SR830Emulator(FakeBench())
    reply = emu.handle(text)
    assert reply is None or isinstance(reply, str)


@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=4, max_size=4), st.booleans())
def test_unknown_mnemonics_set_cmd_bit_and_do_not_reply(name: str, query: bool) -> None:
    emu = SR830Emulator(FakeBench())
    emu.handle("*CLS")
    if (name, query) not in COMMANDS and name not in INT_RANGES and name not in FLOAT_RANGES:
        assert emu.handle(name + ("?" if query else "")) is None
        assert emu.handle("*ESR?") == "32"


def test_parse_unit() -> None:
    assert parse_unit("TRCL ? 1, 0, 100") == ("TRCL", True, [1.0, 0.0, 100.0])
    assert parse_unit("FREQ1.00000e+03") == ("FREQ", False, [1000.0])


# --------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(("message", "bit"), [
    ("FOOB", 32), ("FOOB?", 32), ("SENS", 32), ("SENS 1,2", 32), ("SENS x", 32), ("OUTP 1", 32), ("AGAN?", 32),
    ("SNAP? 1", 32), ("SENS 27", 16), ("SENS -1", 16), ("OFLT 20", 16), ("PHAS 730", 16), ("FREQ 0.0001", 16),
    ("SLVL 5.1", 16), ("SNAP? 1,12", 16), ("OUTP? 5", 16), ("DDEF 1,5,0", 16), ("OEXP 1,106,0", 16),
    ("AUXV 1,10.6", 16), ("TRCA? 1,0,1", 16), ("RSET 4", 16),
])
def test_bad_commands_set_esr_bits_reply_nothing_and_change_nothing(emu: SR830Emulator, message: str,
                                                                  bit: int) -> None:
    before = emu.handle("SENS?;OFLT?;PHAS?;FREQ?;SLVL?;DDEF?1;OEXP?1;AUXV?1")
    emu.handle("*CLS")
    assert emu.handle(message) is None
    assert emu.handle("*ESR?") == str(bit)
    assert emu.handle("SENS?;OFLT?;PHAS?;FREQ?;SLVL?;DDEF?1;OEXP?1;AUXV?1") == before


def test_an_error_does_not_stop_the_following_commands(emu: SR830Emulator) -> None:
    emu.handle("*CLS")
    assert emu.handle("FOOB;SENS 20;SENS?") == "20"
    assert emu.handle("*ESR?") == "32"


def test_freq_refused_in_external_mode_and_reports_the_chopper(emu: SR830Emulator, bench: FakeBench) -> None:
    run(emu, "FMOD 0")
    assert emu.handle("FREQ 1000") is None
    assert emu.handle("*ESR? 4") == "1"
    assert emu.handle("*ESR?") == "0"  # reading bit 4 cleared it
    assert emu.handle("FREQ?") == "220"


def test_status_byte_and_enables(emu: SR830Emulator) -> None:
    emu.handle("*CLS")
    assert int(emu.handle("*STB?")) == 3  # SCN (no scan) + IFC (idle)
    run(emu, "*ESE 32", "*SRE 32")
    emu.handle("FOOB")
    assert int(emu.handle("*STB?")) == 3 | 32 | 64
    assert emu.handle("*STB? 5") == "1"
    emu.handle("*CLS")
    run(emu, "LIAE 3,1", "FMOD 0")
    bench = emu.bench
    bench.optics.set_signal(frequency_Hz=0.0)
    assert int(emu.handle("*STB?")) & 8 == 0  # a condition latches once it has lasted
    bench.clock.sleep(0.01)
    assert int(emu.handle("*STB?")) & 8  # LIA summary: unlock enabled
    emu.errs = 4  # injected RAM error
    run(emu, "ERRE 4")
    assert int(emu.handle("*STB?")) & 4
    assert emu.handle("ERRS?") == "4" and emu.handle("ERRS?") == "0"


# -------------------------------------------------------------------------------------------- physics
def lock_external(emu: SR830Emulator, sens: int = 26, oflt: int = 8, ofsl: int = 3) -> None:
    run(emu, "FMOD 0", f"SENS {sens}", f"OFLT {oflt}", f"OFSL {ofsl}")


def test_p1_fundamental_of_the_chopped_square_wave(emu: SR830Emulator, bench: FakeBench) -> None:
    lock_external(emu)
    bench.clock.sleep(100.0)
    x, y, r, theta = snap(emu)
    assert r == pytest.approx(RMS_PER_PP * GAIN * I_PP, rel=1e-6)
    assert r == pytest.approx(math.sqrt(2) / math.pi * GAIN * I_PP, rel=1e-6)
    assert (x, y, theta) == (pytest.approx(r, rel=1e-6), pytest.approx(0.0, abs=1e-9), pytest.approx(0.0, abs=1e-6))


def test_phase_of_signal_minus_reference_phase(emu: SR830Emulator, bench: FakeBench) -> None:
    bench.optics.set_signal(phase_deg=50.0)
    lock_external(emu)
    run(emu, "PHAS 20")
    bench.clock.sleep(100.0)
    x, y, r, theta = snap(emu)
    assert theta == pytest.approx(30.0, abs=1e-6)
    assert (x, y) == (pytest.approx(r * math.cos(math.radians(30))), pytest.approx(r * math.sin(math.radians(30))))


@pytest.mark.parametrize(("harmonic", "factor"), [(1, 1.0), (2, 0.0), (3, 1 / 3), (5, 1 / 5)])
def test_harmonics_of_the_square_wave(emu: SR830Emulator, bench: FakeBench, harmonic: int, factor: float) -> None:
    lock_external(emu)
    run(emu, f"HARM {harmonic}")
    bench.clock.sleep(100.0)
    assert snap(emu)[2] == pytest.approx(factor * RMS_PER_PP * GAIN * I_PP, rel=DIGITS, abs=1e-12)


@pytest.mark.parametrize("isrc", [2, 3])
def test_current_input_reads_amperes(isrc: int) -> None:
    bench = FakeBench(DetectorSignal(chopped_pp_A=1e-8), preamp_gain_V_A=None)
    emu = quiet(bench)
    lock_external(emu)
    run(emu, f"ISRC {isrc}")
    bench.clock.sleep(100.0)
    assert snap(emu)[2] == pytest.approx(RMS_PER_PP * 1e-8, rel=DIGITS)  # full scale 1 µA / 10 nA
    run(emu, "ISRC 0")  # the voltage input is not wired
    bench.clock.sleep(100.0)
    assert snap(emu)[2] == 0.0


def test_current_input_sees_nothing_when_the_preamp_is_wired(emu: SR830Emulator, bench: FakeBench) -> None:
    lock_external(emu)
    run(emu, "ISRC 2")
    bench.clock.sleep(100.0)
    assert snap(emu)[2] == 0.0


@pytest.mark.parametrize("ofsl", [0, 1, 2, 3])
def test_p2_99_percent_settling_on_the_virtual_clock(ofsl: int) -> None:
    bench = FakeBench(DetectorSignal(chopped_pp_A=0.0))
    emu = quiet(bench)
    lock_external(emu, oflt=10, ofsl=ofsl)  # τ = 1 s
    bench.clock.sleep(1.0)
    bench.optics.set_signal(chopped_pp_A=I_PP)
    t_step, final = bench.clock.now(), RMS_PER_PP * GAIN * I_PP
    k = SETTLE_99[ofsl]
    bench.clock.sleep((k - 1e-3) - (bench.clock.now() - t_step))
    before = float(emu.handle("OUTP? 3"))
    bench.clock.sleep(2e-3)
    after = float(emu.handle("OUTP? 3"))
    assert before < 0.99 * final < after


def test_filter_runs_exactly_across_changes_between_queries(emu: SR830Emulator, bench: FakeBench) -> None:
    bench.optics.set_signal(chopped_pp_A=0.0)
    lock_external(emu, oflt=10, ofsl=1)  # τ = 1 s, 2 poles
    bench.clock.sleep(50.0)
    t0 = bench.clock.now()
    bench.clock.sleep(1.0)
    bench.optics.set_signal(chopped_pp_A=I_PP)
    bench.clock.sleep(0.5)
    bench.optics.set_signal(chopped_pp_A=3 * I_PP)
    bench.clock.sleep(1.5)  # one query, two changes since the last one
    assert bench.clock.now() - t0 == pytest.approx(3.0)
    unit = RMS_PER_PP * GAIN * I_PP
    expected = unit * step_response(2, 2.0) + 2 * unit * step_response(2, 1.5)
    assert float(emu.handle("OUTP? 3")) == pytest.approx(expected, rel=DIGITS)


def test_time_constant_change_keeps_state_sensitivity_change_restarts(emu: SR830Emulator,
                                                                     bench: FakeBench) -> None:
    lock_external(emu, oflt=10, ofsl=0)
    bench.clock.sleep(100.0)
    settled = float(emu.handle("OUTP? 3"))
    run(emu, "OFLT 8")
    assert float(emu.handle("OUTP? 3")) == pytest.approx(settled, rel=1e-12)
    run(emu, "SENS 25")
    assert float(emu.handle("OUTP? 3")) == 0.0
    bench.clock.sleep(0.1)
    assert float(emu.handle("OUTP? 3")) == pytest.approx(settled * step_response(1, 1.0), rel=DIGITS)


def test_slope_change_keeps_the_output_value(emu: SR830Emulator, bench: FakeBench) -> None:
    bench.optics.set_signal(chopped_pp_A=0.0)
    lock_external(emu, oflt=10, ofsl=0)
    bench.clock.sleep(1.0)
    bench.optics.set_signal(chopped_pp_A=I_PP)
    bench.clock.sleep(1.0)
    value = float(emu.handle("OUTP? 3"))
    run(emu, "OFSL 3")
    assert float(emu.handle("OUTP? 3")) == pytest.approx(value, rel=1e-12)


def test_p3_enbw_factors_exact() -> None:
    assert [enbw_factor(n) for n in (1, 2, 3, 4)] == [ENBW_TAU[n] for n in (1, 2, 3, 4)]
    assert [round(settle_factor(n, 0.01), 3) for n in (1, 2, 3, 4)] == list(SETTLE_99.values())


def test_propagate_is_a_semigroup_and_matches_the_step_response() -> None:
    state = np.array([0.3, -0.2, 0.1, 0.05], dtype=complex)
    once = propagate(state, 1.0 + 0.5j, 2.0, 0.7)
    twice = propagate(propagate(state, 1.0 + 0.5j, 0.8, 0.7), 1.0 + 0.5j, 1.2, 0.7)
    assert np.allclose(once, twice, rtol=1e-13, atol=1e-15)
    assert propagate(np.zeros(3), 1.0, 2.0, 1.0)[-1] == pytest.approx(step_response(3, 2.0), rel=1e-13)


def noise_sigma(ofsl: int, samples: int = 1500) -> float:
    """Standard deviation of X for a noisy, unchopped input read every 0.2 s (>> correlation time)."""
    bench = FakeBench(DetectorSignal(chopped_pp_A=0.0, noise_A_rtHz=1e-12), seed=ofsl + 7)
    emu = quiet(bench)
    lock_external(emu, sens=17, oflt=5, ofsl=ofsl)  # τ = 3 ms, 1 mV full scale
    xs = []
    for _ in range(samples):
        bench.clock.sleep(0.2)
        xs.append(float(emu.handle("OUTP? 1")))
    return float(np.std(xs))


def test_p3_noise_sigma_is_density_times_sqrt_enbw() -> None:
    tau, density = 3e-3, 1e-12 * GAIN
    s6, s24 = noise_sigma(0), noise_sigma(3)
    # standard error of a std estimate from 1500 independent samples: 1/sqrt(2N) = 1.8 %; 4 sigma bounds
    assert s6 == pytest.approx(density * math.sqrt(ENBW_TAU[1] / tau), rel=0.08)
    assert s24 == pytest.approx(density * math.sqrt(ENBW_TAU[4] / tau), rel=0.08)
    assert s6 / s24 == pytest.approx(math.sqrt(ENBW_TAU[1] / ENBW_TAU[4]), rel=0.1)


def test_noise_is_correlated_within_a_time_constant(bench: FakeBench) -> None:
    bench.optics.set_signal(chopped_pp_A=0.0, noise_A_rtHz=1e-12)
    emu = quiet(bench)
    lock_external(emu, sens=17, oflt=5, ofsl=0)
    first = emu.handle("OUTP? 1")
    assert emu.handle("OUTP? 1") == first  # same instant, same reading
    assert float(first) != 0.0


# ------------------------------------------------------------------------------------------- overloads
def test_output_overload_flags_and_clips(emu: SR830Emulator, bench: FakeBench) -> None:
    lock_external(emu, sens=22)  # 50 mV full scale, signal 0.45 V
    bench.clock.sleep(100.0)
    x, y, r, _ = snap(emu)
    assert x == pytest.approx(1.09 * 0.05) and r == pytest.approx(1.09 * 0.05)
    assert int(emu.handle("LIAS?")) & 0b110 == 0b110  # filter and output overload
    bench.optics.set_signal(chopped_pp_A=1e-9)
    bench.clock.sleep(100.0)
    emu.handle("LIAS?")
    snap(emu)
    assert emu.handle("LIAS?") == "0"


def test_lias_bit_read_clears_only_that_bit(emu: SR830Emulator, bench: FakeBench) -> None:
    lock_external(emu, sens=22)
    bench.clock.sleep(100.0)
    snap(emu)
    bench.optics.set_signal(chopped_pp_A=1e-9)
    bench.clock.sleep(100.0)
    assert emu.handle("LIAS? 2") == "1"
    assert emu.handle("LIAS? 2") == "0"
    assert emu.handle("LIAS? 1") == "1"


@pytest.mark.parametrize(("rmod", "overload"), [(2, True), (1, False), (0, False)])
def test_input_overload_from_dc_depends_on_reserve(emu: SR830Emulator, bench: FakeBench, rmod: int,
                                                  overload: bool) -> None:
    bench.optics.set_signal(chopped_pp_A=1e-8, dc_A=1e-7)  # 10 mV chopped on 100 mV DC at the input
    lock_external(emu, sens=19)  # 5 mV: low noise 50 mV, normal 0.5 V, high reserve capped at 1.5 V
    run(emu, f"RMOD {rmod}")
    emu.handle("LIAS?")
    bench.clock.sleep(1.0)
    lias = int(emu.handle("LIAS?"))
    assert bool(lias & 1) is overload
    bench.clock.sleep(10.0)
    assert snap(emu)[2] == pytest.approx(RMS_PER_PP * 1e-2, rel=DIGITS)  # DC never reaches X/Y


def test_external_reference_lost_unlocks(emu: SR830Emulator, bench: FakeBench) -> None:
    lock_external(emu)
    bench.clock.sleep(10.0)
    emu.handle("LIAS?")
    bench.optics.set_signal(frequency_Hz=0.0)
    bench.clock.sleep(100.0)
    assert snap(emu)[2] == pytest.approx(0.0, abs=1e-15)
    assert int(emu.handle("LIAS?")) & 8


@pytest.mark.parametrize(("freq", "locked"), [(220.0, True), (220.5, True), (226.0, False)])
def test_internal_reference_locks_only_within_the_enbw(emu: SR830Emulator, bench: FakeBench, freq: float,
                                                      locked: bool) -> None:
    run(emu, "FMOD 1", f"FREQ {freq}", "OFLT 8", "OFSL 0")  # ENBW = 2.5 Hz
    bench.clock.sleep(100.0)
    emu.handle("LIAS?")
    r = snap(emu)[2]
    assert (r == pytest.approx(RMS_PER_PP * GAIN * I_PP)) is locked
    assert bool(int(emu.handle("LIAS?")) & 8) is not locked


def test_long_time_constants_above_200_hz(bench: FakeBench) -> None:
    bench.optics.set_signal(frequency_Hz=100.0)
    emu = quiet(bench)
    run(emu, "FMOD 0", "OFLT 14")  # 100 s allowed at 100 Hz
    emu.handle("LIAS?")
    bench.clock.sleep(1.0)
    bench.optics.set_signal(frequency_Hz=300.0)
    bench.clock.sleep(1.0)
    assert emu.handle("OFLT?") == "13"
    assert int(emu.handle("LIAS?")) & 0b11_0000 == 0b11_0000  # range switched, time constant changed
    assert emu.handle("OFLT 15") is None and emu.handle("*ESR?") == "16"


def test_auto_gain_picks_a_range_and_takes_bench_time(emu: SR830Emulator, bench: FakeBench) -> None:
    bench.optics.set_signal(chopped_pp_A=1e-7)  # R = 45.0 mV: 1.25 R = 56 mV -> 100 mV full scale
    lock_external(emu, sens=26, oflt=8, ofsl=3)
    t0 = bench.clock.now()
    run(emu, "AGAN")
    assert bench.clock.now() - t0 >= settle_factor(4, 1e-3) * 0.1
    assert emu.handle("SENS?") == "23"
    assert int(emu.handle("*STB?")) & 2
    assert snap(emu)[2] == pytest.approx(RMS_PER_PP * 0.1, rel=1e-3)  # settled when AGAN returns


def test_auto_gain_from_a_small_range(emu: SR830Emulator, bench: FakeBench) -> None:
    bench.optics.set_signal(chopped_pp_A=1e-10)  # 45 µV at the input
    lock_external(emu, sens=3)
    run(emu, "AGAN")
    full_scale = [5e-5, 1e-4][int(emu.handle("SENS?")) - 13]
    assert 1.25 * 4.50158e-5 <= full_scale


def test_auto_phase_and_auto_offset(emu: SR830Emulator, bench: FakeBench) -> None:
    bench.optics.set_signal(phase_deg=40.0)
    lock_external(emu)
    bench.clock.sleep(100.0)
    run(emu, "APHS")
    assert float(emu.handle("PHAS?")) == pytest.approx(40.0, abs=1e-6)
    bench.clock.sleep(100.0)
    run(emu, "AOFF 1")
    assert float(emu.handle("OEXP? 1").split(",")[0]) == pytest.approx(45.02, abs=0.01)
    assert abs(float(emu.handle("OUTR? 1"))) < 1e-3  # CH1 display = X − offset
    assert float(emu.handle("OUTP? 1")) == pytest.approx(0.450158, rel=1e-5)  # OUTP? is not offset


def test_setups_save_and_recall(emu: SR830Emulator) -> None:
    run(emu, "SENS 10", "SSET 3", "SENS 20", "RSET 3")
    assert emu.handle("SENS?") == "10"


# ---------------------------------------------------------------------------------------------- storage
def test_storage_at_a_sample_rate(emu: SR830Emulator, bench: FakeBench) -> None:
    lock_external(emu)
    bench.clock.sleep(100.0)
    run(emu, "SRAT 4", "SEND 0", "REST", "STRT")
    assert int(emu.handle("*STB?")) & 1 == 0  # scan in progress
    bench.clock.sleep(10.5)
    assert emu.handle("SPTS ?") == "11"
    values = emu.handle("TRCA? 1,0,11")
    assert values.endswith(",") and len(values.split(",")) == 12
    assert float(values.split(",")[3]) == pytest.approx(0.450158, rel=1e-5)
    raw = emu.handle("TRCB? 1,2,3").encode("latin-1")
    assert np.allclose(np.frombuffer(raw, "<f4"), 0.450158, rtol=1e-5)
    raw = emu.handle("TRCL ? 2, 0, 2").encode("latin-1")
    pairs = np.frombuffer(raw, "<i2")
    assert np.allclose(pairs[::2] * 2.0 ** (pairs[1::2] - 124.0), 0.0, atol=1e-9)  # CH2 = Y
    run(emu, "PAUS")
    bench.clock.sleep(5.0)
    assert emu.handle("SPTS?") == "11"
    run(emu, "REST")
    assert emu.handle("SPTS?") == "0"


def test_triggered_storage(emu: SR830Emulator, bench: FakeBench) -> None:
    run(emu, "SRAT 14", "TSTR 1", "STRT")
    bench.clock.sleep(1.0)
    assert emu.handle("SPTS?") == "0"
    run(emu, "TRIG", "TRIG", "TRIG")
    assert emu.handle("SPTS?") == "2"  # the first trigger starts the scan
    assert int(emu.handle("LIAS? 6")) == 1


@given(st.floats(min_value=-1e3, max_value=1e3, allow_nan=False).filter(lambda v: abs(v) > 1e-30 or v == 0))
def test_trcl_encoding_round_trip(value: float) -> None:
    m, e = struct.unpack("<hh", trcl_pair(value))
    assert m * 2.0 ** (e - 124) == pytest.approx(value, rel=1 / 16000, abs=0.0)


# ----------------------------------------------------------------------------- stock PyMeasure driver
def test_stock_pymeasure_sr830_runs_against_the_emulator(bench: FakeBench) -> None:
    emu = quiet(bench)
    lockin = StockSR830(EmulatorAdapter(emu, read_termination="\n", write_termination="\n"))
    assert lockin.id == "Stanford_Research_Systems,SR830,s/n46117,ver1.07"
    lockin.clear()  # *CLS: forget the power-on event
    lockin.reference_source = "External"
    lockin.sensitivity = 1.0
    lockin.time_constant = 0.1
    lockin.filter_slope = 24
    lockin.reserve = "Normal"
    lockin.harmonic = 1
    lockin.phase = 0.0
    lockin.sine_voltage = 0.1
    lockin.input_config = "A"
    lockin.channel1 = "R"  # (the stock getter cannot parse the real "j,k" reply of DDEF?)
    lockin.aux_out_1 = 0.5
    lockin.sample_frequency = 512
    assert (lockin.sensitivity, lockin.time_constant, lockin.filter_slope) == (1.0, 0.1, 24)
    assert (lockin.reserve, emu.handle("DDEF? 1"), lockin.input_config) == ("Normal", "1,0", "A")
    assert (lockin.aux_out_1, lockin.aux_in_1, lockin.sample_frequency) == (0.5, 0.0, 512)
    assert lockin.frequency == pytest.approx(220.0)
    bench.clock.sleep(100.0)
    assert lockin.magnitude == pytest.approx(0.450158, rel=1e-5)
    assert lockin.x == pytest.approx(0.450158, rel=1e-5)
    x, y = lockin.xy
    assert (x, y) == (pytest.approx(0.450158, rel=1e-5), pytest.approx(0.0, abs=1e-9))
    assert lockin.snap("R", "theta", "frequency") == pytest.approx([0.450158, 0.0, 220.0], rel=1e-5, abs=1e-9)
    lockin.set_scaling("X", 10.0, 1)  # stock fault: sends the factor (1) where OEXP wants an index: ×10
    assert lockin.get_scaling("X") == (10.0, 10)
    lockin.set_scaling("X", 0.0, 100)  # "OEXP 1,0.00,100": refused (EXE), nothing changes
    assert lockin.get_scaling("X") == (10.0, 10) and emu.handle("*ESR?") == "16"
    assert int(lockin.lia_status) == 0 and int(lockin.err_status) == 0
    lockin.reset_buffer()
    lockin.start_scan()
    bench.clock.sleep(0.1)
    assert lockin.buffer_count == 52  # 512 Hz from t = 0 to 0.1 s inclusive
    lockin.pause_scan()
    lockin.sensitivity = 5e-3  # SENS19
    lockin.auto_gain()
    assert lockin.sensitivity == 1.0  # 1.25 × 0.45 V > 0.5 V
    assert int(emu.handle("*ESR?")) & 0b0011_0000 == 0


def test_qcodes_spellings(emu: SR830Emulator) -> None:
    for cmd in ("FREQ 1000.0000", "SENS 22", "OFLT 8", "OUTX 1", "SRAT 13", "DDEF 1, 1, 0"):
        assert emu.handle(cmd) is None
    assert [emu.handle(q) for q in ("SRAT ?", "SPTS ?", "DDEF ? 1", "OUTX?")] == ["13", "0", "1,0", "1"]
    assert len(emu.handle("SNAP? 1,2").split(",")) == 2
    assert emu.handle("*ESR?") == "128"
