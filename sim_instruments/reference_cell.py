"""The Si reference cell under the solar simulator, as a source-meter sees it at ``sim://reference_cell``.

A linear cell (its short-circuit current proportional to the irradiance, IEC 60904-2 reference devices): it sees
the same lamp as the device (shutter, drift, dips: :meth:`sim_instruments.bench.Light.effective_irradiance_W_m2`),
with its own draw of the flicker. Model: photocurrent-positive I(V) = I_L − I_s·(exp(V/V_t) − 1),
I_L = isc_at_1000_W_m2_A·E/(1000 W/m²), I_s = isc_at_1000_W_m2_A/(exp(voc_at_1000_W_m2_V/V_t) − 1),
V_t = kT/q at 298.15 K; the SMU reports −I (current into HI, anode on HI). A stability run's suspender reads
its short-circuit current and turns it into an irradiance with the cell's calibration value.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from labctl.analysis import sdm

REFERENCE_CELL_TEMPERATURE_K = sdm.STC_TEMPERATURE_K
"""The reference cell's temperature (K): held at 25 °C, as its calibration assumes."""


@dataclass(frozen=True)
class ReferenceCell:
    """The reference cell's calibration: Isc (A) and Voc (V) at 1000 W/m²."""

    isc_at_1000_W_m2_A: float = 0.1
    voc_at_1000_W_m2_V: float = 0.60

    @property
    def vt_V(self) -> float:
        return float(sdm.thermal_voltage_V(REFERENCE_CELL_TEMPERATURE_K))

    @property
    def saturation_current_A(self) -> float:
        """I_s (A) such that Voc at 1000 W/m² is ``voc_at_1000_W_m2_V``."""
        return self.isc_at_1000_W_m2_A / math.expm1(self.voc_at_1000_W_m2_V / self.vt_V)


class ReferenceCellTerminal:
    """The reference cell's terminals as a source-meter sees them: the bench interface the SMU emulators use
    (``set_cell_bias``, ``cell_current_A``, ``voltage_at_current_V``, ``open_circuit_voltage_V``,
    ``steady_light``, ``clock``, ``rng``, ``lock``, ``line_frequency_Hz``, ``instrument_options``).

    ValueError (naming the key) when the bench has no reference cell."""

    def __init__(self, bench: Any) -> None:
        cell = getattr(bench, "reference_cell", None)
        if cell is None:
            raise ValueError("sim://reference_cell is the reference cell, and the simulated bench has none "
                             "(allowed: give simulation.reference_cell)")
        self.bench = bench
        self.cell: ReferenceCell = cell
        self.clock = bench.clock
        self.rng = bench.rng
        self.lock = bench.lock
        self.line_frequency_Hz = bench.line_frequency_Hz
        self.instrument_options = getattr(bench, "instrument_options", {})
        self._bias_V: float | None = None
        self._held_A: float | None = None

    def light_current_A(self) -> float:
        """I_L (A) now: the lamp's irradiance on the sample plane (a new flicker draw) times the calibration."""
        irradiance = self.bench.light.effective_irradiance_W_m2(self.rng, self.bench.time_s())
        return self.cell.isc_at_1000_W_m2_A * irradiance / 1000.0

    def _light_A(self) -> float:
        return self._held_A if self._held_A is not None else self.light_current_A()

    @contextmanager
    def steady_light(self) -> Any:
        """One flicker draw for everything inside (one reading)."""
        with self.lock:
            held = self._held_A
            if held is None:
                self._held_A = self.light_current_A()
            try:
                yield
            finally:
                self._held_A = held

    def set_cell_bias(self, voltage_V: float | None) -> None:
        """The terminal voltage the SMU forces (V); None = open circuit."""
        self._bias_V = None if voltage_V is None else float(voltage_V)

    def cell_current_A(self) -> float:
        """Current into HI at the forced bias (A): −I(V); 0 at open circuit."""
        with self.lock:
            if self._bias_V is None:
                return 0.0
            return -(self._light_A() - self.cell.saturation_current_A * math.expm1(self._bias_V / self.cell.vt_V))

    def voltage_at_current_V(self, current_A: float) -> float | None:
        """Terminal voltage (V) at which the SMU's current into HI is ``current_A``: V_t·ln(1 + (I_L + I)/I_s)
        (None when no voltage gives it: more reverse current than the light makes)."""
        with self.lock:
            arg = (self._light_A() + current_A) / self.cell.saturation_current_A
            return self.cell.vt_V * math.log1p(arg) if arg > -1.0 else None

    def open_circuit_voltage_V(self) -> float:
        """Voltage with nothing forcing the cell (V)."""
        return self.voltage_at_current_V(0.0) or 0.0
