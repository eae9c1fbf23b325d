"""The source-meter interface that procedures use, whatever the model.

Every source-meter driver (Keithley 2400, 2420, 2450, ...) implements these methods on top of its PyMeasure
``Instrument`` properties, so a procedure never sends a command string itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


class InstrumentError(RuntimeError):
    """The instrument reported errors in its error queue (after a configuration or a measurement)."""


@dataclass(frozen=True)
class ModelLimits:
    """What the model can physically do (not what the cell on the bench tolerates).

    voltage_max_V: largest |source voltage| the model accepts (V).
    current_max_A: largest |compliance current| the model accepts (A).
    nplc_range: (min, max) integration time in power-line cycles.
    source_delay_max_s: largest source delay (s).
    max_sweep_points: largest number of points in one built-in sweep.
    """

    voltage_max_V: float
    current_max_A: float
    nplc_range: tuple[float, float]
    source_delay_max_s: float
    max_sweep_points: int


@dataclass
class SweepData:
    """Readings of a sweep or a single point: arrays of equal length.

    voltage_V: measured (read-back) voltage per point (V).
    current_A: measured current per point, in the instrument's sign convention (A).
    time_s: instrument time stamp of each point, relative to the first point of this sweep (s).
    compliance: True where the reading hit the current limit.
    """

    voltage_V: np.ndarray
    current_A: np.ndarray
    time_s: np.ndarray
    compliance: np.ndarray


class SourceMeter:
    """Mixin documenting the methods every source-meter driver provides.

    Implementations raise ``ValueError`` (from their validators) *before* sending anything when a setting is
    outside :attr:`limits`, and raise :class:`InstrumentError` when the error queue is not empty after
    :meth:`configure_voltage_source` or a sweep.
    """

    limits: ModelLimits

    def configure_voltage_source(
        self,
        compliance_A: float,
        nplc: float = 1.0,
        four_wire: bool = False,
        source_delay_s: float = 0.0,
    ) -> None:
        """Source voltage, measure current; set compliance, NPLC, 2/4-wire, source delay; check errors."""
        raise NotImplementedError

    def set_voltage(self, voltage_V: float) -> None:
        """Program the source level (V); the output state is unchanged."""
        raise NotImplementedError

    def configure_current_source(self, compliance_V: float, nplc: float = 1.0, four_wire: bool = False) -> None:
        """Source current, measure voltage (auto ranges); voltage compliance (V), NPLC, 2/4-wire; check errors.

        With the level at 0 A the SMU holds a cell at open circuit and reads its Voc."""
        raise NotImplementedError

    def set_current(self, current_A: float) -> None:
        """Program the source level (A) after :meth:`configure_current_source`; the output state is unchanged."""
        raise NotImplementedError

    def enable_output(self) -> None:
        raise NotImplementedError

    def disable_output(self) -> None:
        raise NotImplementedError

    def measure_point(self) -> SweepData:
        """One reading (V, I, t) at the present source level, output on. Arrays of length 1."""
        raise NotImplementedError

    def sweep_voltage(
        self, start_V: float, stop_V: float, points: int, source_delay_s: float,
        on_chunk: Callable[[SweepData], None] | None = None,
    ) -> SweepData:
        """Built-in linear staircase sweep; output on during the sweep; returns all points.

        ``on_chunk`` receives the readings in order, in pieces, as soon as they are read from the instrument
        (all of them at once when the sweep is read in one piece); the pieces together are the return value."""
        raise NotImplementedError

    def safe_state(self) -> None:
        """Source 0 V and turn the output off."""
        raise NotImplementedError
