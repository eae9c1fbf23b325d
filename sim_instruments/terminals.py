"""A light-driven diode (a photodiode, a reference cell) as a second source-meter sees it at its terminals.

The SMU emulators force and measure a bench's selected solar cell through a small interface (``set_cell_bias``,
``cell_current_A``, ``voltage_at_current_V``, ``open_circuit_voltage_V``, ``steady_light``, ``clock``, ``rng``,
``lock``, ``line_frequency_Hz``, ``instrument_options``). :class:`DiodeTerminal` offers the same interface for an
ideal diode under light, anode on HI: photocurrent-positive I(V) = I_L − I_s·(exp(V/V_t) − 1); the SMU reports −I
(current into HI). Subclasses say what I_L is now (:meth:`light_current_A`), I_s and V_t.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any


class DiodeTerminal:
    """An ideal diode under light as an SMU emulator's bench; subclasses give I_L, I_s (A) and V_t (V)."""

    saturation_current_A: float
    vt_V: float

    def __init__(self, bench: Any) -> None:
        self.bench = bench
        self.clock = bench.clock
        self.rng = bench.rng
        self.lock = bench.lock
        self.line_frequency_Hz = bench.line_frequency_Hz
        self.instrument_options = getattr(bench, "instrument_options", {})
        self._bias_V: float | None = None
        self._held_A: float | None = None

    def light_current_A(self) -> float:
        """I_L (A) now (a new draw of the light's noise)."""
        raise NotImplementedError

    def _light_A(self) -> float:
        return self._held_A if self._held_A is not None else self.light_current_A()

    @contextmanager
    def steady_light(self) -> Any:
        """One draw of the light's noise for everything inside (one reading)."""
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
            return -(self._light_A() - self.saturation_current_A * math.expm1(self._bias_V / self.vt_V))

    def voltage_at_current_V(self, current_A: float) -> float | None:
        """Terminal voltage (V) at which the SMU's current into HI is ``current_A``: V_t·ln(1 + (I_L + I)/I_s)
        (None when no voltage gives it: more reverse current than the light makes)."""
        with self.lock:
            arg = (self._light_A() + current_A) / self.saturation_current_A
            return self.vt_V * math.log1p(arg) if arg > -1.0 else None

    def open_circuit_voltage_V(self) -> float:
        """Voltage with nothing forcing the diode (V)."""
        return self.voltage_at_current_V(0.0) or 0.0
