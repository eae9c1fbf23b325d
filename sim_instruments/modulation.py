"""The cable from the function generator's output to the laser's analog modulation input (the PLQY bench).

The 33500 emulator (:mod:`sim_instruments.fgen33500`) publishes what its output drives (:class:`GeneratorOutput`),
the LaserBoxx emulator (:mod:`sim_instruments.laserboxx`) publishes its analog-modulation flag (``AM 1``) and its
input's full scale and impedance (:class:`AnalogInput`); both call :func:`update_laser_modulation`, which writes
the laser slot's ``modulation_depth`` and ``modulation_frequency_Hz`` (:class:`sim_instruments.bench.Laser`):
the emitted power is then ``P(t) = P0·(1 + m·sin 2πft)`` with the mean (DC) power ``P0`` the laser's own
set-point, unchanged by the modulation. The link lives on the bench (:func:`link`), made on first use, so either
emulator may be made first and a bench without a generator keeps depth 0.

Model (instruments ref. §8.1; Oxxius LaserBoxx/L4CC user's manual, "Power versus current characteristics and
modulation": above a threshold of typically 0.1 V the optical power is linear in the analog input voltage, and
the largest reachable power is the laser's set-point):

* the voltage at the laser's input: the generator is a source of ``V_oc`` (open-circuit) behind 50 Ω (33500
  series user's guide, "Output termination"), so ``V_in = V_oc·R_in/(R_in + 50 Ω)``;
* the depth: ``m = V_in,peak / V_fs`` (the input's full scale ``V_fs`` stands for the set-point power), at most 1
  (the power cannot go below zero), and 0 unless the generator's output is on, its shape is a sine and the
  laser's analog modulation is on; the frequency is the generator's (0 when the depth is 0);
* the generator's DC offset is not mapped onto the mean power (the bench keeps ``P0``) [L simplification];
  ``V_fs`` and ``R_in`` are the LaserBoxx emulator's options (defaults there, marked [L]).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

GENERATOR_SOURCE_OHM = 50.0
"""The 33500's output impedance (Ω), 33500 series user's guide, "Output termination" [H]."""
_ATTRIBUTE = "_modulation_link"


@dataclass
class GeneratorOutput:
    """What the generator's output drives: shape (``SIN``...), frequency (Hz), peak open-circuit AC voltage (V),
    and whether the output relay is on."""

    on: bool = False
    shape: str = "SIN"
    frequency_Hz: float = 0.0
    peak_open_circuit_V: float = 0.0


@dataclass
class AnalogInput:
    """The laser's analog modulation input: on (``AM 1``), full scale (V), input impedance (Ω)."""

    enabled: bool = False
    full_scale_V: float = 5.0
    impedance_ohm: float = 10e3


@dataclass
class ModulationLink:
    """The generator output and the laser input it is cabled to (None: that instrument is not on the bench)."""

    generator: GeneratorOutput | None = None
    laser_input: AnalogInput | None = None

    def depth_and_frequency(self) -> tuple[float, float]:
        """(modulation depth 0–1, frequency Hz) the cable gives the laser now (see the module docstring)."""
        gen, inp = self.generator, self.laser_input
        if gen is None or inp is None or not (gen.on and gen.shape == "SIN" and inp.enabled):
            return 0.0, 0.0
        peak_at_input_V = gen.peak_open_circuit_V * inp.impedance_ohm / (inp.impedance_ohm + GENERATOR_SOURCE_OHM)
        depth = min(1.0, peak_at_input_V / inp.full_scale_V)
        return (depth, float(gen.frequency_Hz)) if depth > 0 else (0.0, 0.0)


def link(bench: Any) -> ModulationLink:
    """The bench's generator-to-laser cable (made on first use)."""
    found = getattr(bench, _ATTRIBUTE, None)
    if found is None:
        found = ModulationLink()
        setattr(bench, _ATTRIBUTE, found)
    return found


def update_laser_modulation(bench: Any) -> None:
    """Write the laser slot's ``modulation_depth`` and ``modulation_frequency_Hz`` from the cable's two ends
    (only when they change: the laser's listeners fire on every write)."""
    depth, frequency_Hz = link(bench).depth_and_frequency()
    laser = bench.laser
    if getattr(laser, "modulation_depth", None) != depth:
        laser.modulation_depth = depth
    if getattr(laser, "modulation_frequency_Hz", None) != frequency_Hz:
        laser.modulation_frequency_Hz = frequency_Hz
