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
from dataclasses import dataclass
from typing import Any

from labctl.analysis import sdm
from sim_instruments.terminals import DiodeTerminal

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


class ReferenceCellTerminal(DiodeTerminal):
    """The reference cell's terminals as a source-meter sees them (:class:`sim_instruments.terminals.DiodeTerminal`).

    ValueError (naming the key) when the bench has no reference cell."""

    def __init__(self, bench: Any) -> None:
        cell = getattr(bench, "reference_cell", None)
        if cell is None:
            raise ValueError("sim://reference_cell is the reference cell, and the simulated bench has none "
                             "(allowed: give simulation.reference_cell)")
        super().__init__(bench)
        self.cell: ReferenceCell = cell
        self.saturation_current_A = cell.saturation_current_A
        self.vt_V = cell.vt_V

    def light_current_A(self) -> float:
        """I_L (A) now: the lamp's irradiance on the sample plane (a new flicker draw) times the calibration."""
        irradiance = self.bench.light.effective_irradiance_W_m2(self.rng, self.bench.time_s())
        return self.cell.isc_at_1000_W_m2_A * irradiance / 1000.0
