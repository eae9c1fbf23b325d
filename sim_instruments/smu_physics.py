"""Source-measure physics shared by the Keithley emulators: ranges, compliance, noise, timing.

The terminal of a source-meter forcing a voltage or a current onto the bench's cell, with the model's range and
power envelope, compliance (the limit clamps the other quantity), range-dependent reading noise and the
integration time of one reading (instruments ref. §1.2, §1.7, §2.2; the timing model is
:mod:`labctl.analysis.smu_timing`, shared with the drivers).
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import brentq

from sim_instruments.scpi import ScpiError

OVERFLOW = 9.9e37
NOT_MEASURED = 9.91e37
HEADROOM = 1.05  # a range sources and clamps up to 105 % of its nominal value
OVERRANGE = 1.055  # readings above 105.5 % of the range are over-range
NOISE_FRACTION = 2e-5  # rms reading noise / range at 1 NPLC
AUTO_DELAY_S = 1e-3
RES_RANGES_OHM = (20.0, 200.0, 2e3, 20e3, 200e3, 2e6, 20e6, 200e6)


@dataclass(frozen=True)
class SmuModel:
    """Capabilities of one model. hv_cap_A: highest current range usable on the top voltage range."""

    name: str
    v_ranges_V: tuple[float, ...]
    i_ranges_A: tuple[float, ...]
    v_max_V: float
    i_max_A: float
    hv_cap_A: float
    firmware: str = "C30   Mar 17 2006 09:29:29/A02  /K/J"


MODELS = {
    "2400": SmuModel("2400", (0.2, 2, 20, 200), (1e-6, 1e-5, 1e-4, 1e-3, 0.01, 0.1, 1.0), 210.0, 1.05, 0.1),
    "2420": SmuModel("2420", (0.2, 2, 20, 60), (1e-5, 1e-4, 1e-3, 0.01, 0.1, 1.0, 3.0), 63.0, 3.15, 1.0),
}


# ------------------------------------------------------------------------------------ source-measure physics
def pick_range(value: float, ranges: tuple[float, ...]) -> float | None:
    """Lowest range holding |value| (up to 105 %), None if none does."""
    return next((r for r in ranges if abs(value) <= r * HEADROOM * (1 + 1e-12)), None)


def step_range(current: float, ranges: tuple[float, ...], up: bool) -> float:
    """The next range up or down from ``current`` (saturating)."""
    i = min(range(len(ranges)), key=lambda k: abs(ranges[k] - current))
    return ranges[min(i + 1, len(ranges) - 1)] if up else ranges[max(i - 1, 0)]


def reading_noise(rng: np.random.Generator, range_value: float, nplc: float, n_avg: int = 1) -> float:
    """Gaussian reading noise (same unit as the range), smaller with longer integration and averaging."""
    return float(rng.normal(0.0, NOISE_FRACTION * range_value / math.sqrt(max(nplc, 0.01) * max(n_avg, 1))))


@dataclass
class Terminal:
    """What the SMU output holds: voltage (V), current (A, SMU convention), whether a limit is active."""

    v_V: float
    i_A: float
    limited: bool


def check_envelope(model: SmuModel, source_fn: str, src_range: float, limit: float) -> None:
    """-221 unless (source range, range of the limit) is inside the power envelope: the top V range caps the
    current range at ``hv_cap_A``, the top I range caps the voltage range at 20 V (§1.2, §2.2)."""
    other = model.i_ranges_A if source_fn == "VOLT" else model.v_ranges_V
    lim_range = pick_range(limit, other) or other[-1]
    v_range, i_range = (src_range, lim_range) if source_fn == "VOLT" else (lim_range, src_range)
    if (v_range >= model.v_ranges_V[-1] and i_range > model.hv_cap_A) or (
        i_range >= model.i_ranges_A[-1] and v_range > 20.0
    ):
        raise ScpiError(-221, "power envelope")


CURRENT_SOURCE_STEP_V = 1e-3
"""First step (V) of the bracket search of a sourced current, from the last terminal voltage."""


def _probe(bench: Any, v_V: float, parallel_ohm: float = math.inf) -> float:
    """The current (A, into HI) at terminal voltage ``v_V``: the cell's, plus what a resistance ``parallel_ohm``
    across the terminals (the voltmeter's input resistance) draws."""
    bench.set_cell_bias(v_V)
    return float(bench.cell_current_A()) + v_V / parallel_ohm


def solve_voltage(bench: Any, target_A: float, v0: float, v_min: float, v_max: float,
                  step_V: float = 0.01, parallel_ohm: float = math.inf) -> tuple[float, bool]:
    """Terminal voltage in [v_min, v_max] where the cell current equals ``target_A`` (I(V) rises with V).

    Expands a bracket from ``v0`` by ``step_V``, doubling (so extreme biases are only probed when needed; a
    small step when ``v0`` is a good guess, such as the last reading's voltage), then refines it with
    Brent's method to 0.1 uV, all on one draw of the lamp's flicker (``bench.steady_light``: with a new draw
    per probe the bracket could stop straddling the target). Returns (V, reached); the bench is left biased at V.
    The current includes that of a resistance ``parallel_ohm`` (Ω) across the terminals.
    """
    steady = getattr(bench, "steady_light", None)  # a bench without a flickering lamp need not have it
    with steady() if steady is not None else nullcontext():
        return _solve_voltage(bench, target_A, v0, v_min, v_max, step_V, parallel_ohm)


def _solve_voltage(bench: Any, target_A: float, v0: float, v_min: float, v_max: float,
                   step_V: float, parallel_ohm: float) -> tuple[float, bool]:
    f0 = _probe(bench, v0, parallel_ohm) - target_A
    if f0 == 0.0:
        return v0, True
    up = f0 < 0.0
    lo = hi = v0
    step = step_V
    while True:
        edge = min(v0 + step, v_max) if up else max(v0 - step, v_min)
        f = _probe(bench, edge, parallel_ohm) - target_A
        if (f >= 0.0) == up or f == 0.0:
            lo, hi = (lo, edge) if up else (edge, hi)
            break
        if edge in (v_min, v_max):
            return edge, False
        lo, hi = (edge, hi) if up else (lo, edge)
        step *= 2.0
    if hi - lo > 1e-7:
        v = float(brentq(lambda x: _probe(bench, x, parallel_ohm) - target_A, lo, hi, xtol=1e-7))
    else:
        v = 0.5 * (lo + hi)
    bench.set_cell_bias(v)
    return v, True


def force_voltage(bench: Any, v_V: float, limit_A: float, v_abs_max_V: float) -> Terminal:
    """Source ``v_V`` with current limit ``limit_A``; in compliance the current is held at +-limit.

    In compliance the SMU is a current source at the limit and the terminal voltage is whatever the load develops
    at that current, anywhere within +-``v_abs_max_V`` (the model's output capability, not the source range: a cell
    that pulls the terminal of a 200 mV range to 1.1 V is at 1.1 V). If the load cannot be brought to the limit
    within that span the terminal stays at the edge with the current the load really draws there.
    """
    i = _probe(bench, v_V)
    if abs(i) <= limit_A:
        return Terminal(v_V, i, False)
    target = math.copysign(limit_A, i)
    v, reached = solve_voltage(bench, target, v_V, -v_abs_max_V, v_abs_max_V)
    return Terminal(v, target if reached else float(bench.cell_current_A()), True)


def force_current(bench: Any, i_A: float, limit_V: float, v_start_V: float = 0.0, offset_A: float = 0.0,
                  input_resistance_ohm: float = math.inf) -> Terminal:
    """Source ``i_A`` with voltage limit ``limit_V``; in compliance the voltage is held at +-limit.

    A real current source outputs ``i_A + offset_A`` (A, into HI: its source error), and its voltmeter's input
    resistance ``input_resistance_ohm`` (Ω) across the terminals takes V/R_in of it, so the cell carries
    ``i_A + offset_A − V/R_in``: at a programmed 0 A (Voc) the cell is loaded by −offset_A + V/R_in, which is
    what limits Voc at very low light (methods ref. §4.2; instruments ref. §2, Keithley 2450 10 nA-range source
    accuracy ±(0.1 % + 100 pA), input resistance > 10 GΩ). The terminal's current is the source output.
    Without input resistance, a bench that can invert its cell (``bench.voltage_at_current_V``) gives the voltage
    at once; otherwise the search starts at ``v_start_V`` (the emulator gives the last terminal voltage: a held
    current moves it by microvolts between readings) with a 1 mV step.

    On a device with junction capacitance (``bench.source_current`` answers) the voltage is not solved for: it is
    the bench's state, charged by the source's current minus the cell's and the voltmeter's since the last
    reading (:meth:`sim_instruments.bench.Bench.source_current`), so Voc settles with the device's time constant."""
    target_A = i_A + offset_A
    dynamic = getattr(bench, "source_current", None)  # a bench without capacitance need not have it
    state = dynamic(target_A, input_resistance_ohm, limit_V) if dynamic is not None else None
    if state is not None:
        v, limited = state
        if not limited:
            return Terminal(v, target_A, False)
        return Terminal(v, float(bench.cell_current_A()) + v / input_resistance_ohm, True)
    inverse = getattr(bench, "voltage_at_current_V", None) if math.isinf(input_resistance_ohm) else None
    v_direct = inverse(target_A) if inverse is not None else None
    if v_direct is not None and math.isfinite(v_direct) and abs(v_direct) <= limit_V:
        bench.set_cell_bias(v_direct)
        return Terminal(v_direct, target_A, False)
    v, reached = solve_voltage(bench, target_A, min(max(v_start_V, -limit_V), limit_V), -limit_V, limit_V,
                               step_V=CURRENT_SOURCE_STEP_V, parallel_ohm=input_resistance_ohm)
    if reached:
        return Terminal(v, target_A, False)
    return Terminal(v, float(bench.cell_current_A()) + v / input_resistance_ohm, True)
