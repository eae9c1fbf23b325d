"""The contact check before a pixel is measured: a small bias, one reading, the apparent resistance |V/I|.

A probe that does not touch its pad (or a relay that connects nothing) leaves the source meter on an open
circuit: it reads only its own noise (pA on a 2400's lowest ranges), so |V/I| at a 10 mV bias is 1e9 Ω or more.
A connected cell reads its shunt and diode in the dark (for the simulated set A cell, 2000 Ω·cm² on 0.049 cm²:
about 41 kΩ) and its photocurrent in the light (|V/I| of tens of Ω): both far below the default threshold of
1e7 Ω (:class:`labctl.config.ContactCheckConfig`). A pixel above the threshold is skipped, not measured into
garbage. The bias is small (0 < |bias_V| <= 0.5 V) so the check does not stress a cell; the output is switched
off again, at 0 V, however the check ends.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from labctl.config import ContactCheckConfig


@dataclass(frozen=True)
class ContactResult:
    """One contact check: passed or not, the apparent resistance |V/I| (Ω; inf for no current), the reading (V,
    A) and, when it failed, why (one line naming the threshold)."""

    ok: bool
    resistance_ohm: float
    voltage_V: float
    current_A: float
    compliance: bool
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        if math.isinf(self.resistance_ohm):
            out["resistance_ohm"] = None  # JSON has no infinity: null = no current at all
        return out


def judge_contact(voltage_V: float, current_A: float, config: ContactCheckConfig,
                  compliance: bool = False) -> ContactResult:
    """The verdict on one reading (no I/O): |V/I| above ``config.max_resistance_ohm`` is no contact."""
    resistance = math.inf if current_A == 0 else abs(voltage_V / current_A)
    if resistance > config.max_resistance_ohm:
        shown = "no current at all" if math.isinf(resistance) else f"|V/I| = {resistance:.3g} Ω"
        reason = (f"no contact: {shown} at {voltage_V:.3g} V ({current_A:.3g} A), above "
                  f"contact_check.max_resistance_ohm = {config.max_resistance_ohm:.3g} Ω")
        return ContactResult(False, resistance, voltage_V, current_A, compliance, reason)
    return ContactResult(True, resistance, voltage_V, current_A, compliance)


def check_contact(smu: Any, config: ContactCheckConfig) -> ContactResult:
    """Bias ``smu`` (a :class:`drivers.smu.SourceMeter`) at ``config.bias_V`` with ``config.compliance_A``, read
    once, switch the output off at 0 V; the verdict of :func:`judge_contact`. Instrument errors propagate (the
    caller stops the substrate: a source meter that cannot do this cannot measure either)."""
    smu.configure_voltage_source(compliance_A=config.compliance_A, nplc=config.nplc)
    smu.set_voltage(config.bias_V)
    smu.enable_output()
    try:
        reading = smu.measure_point()
    finally:
        smu.disable_output()
        smu.set_voltage(0.0)
    voltage = float(reading.voltage_V[0])
    current = float(reading.current_A[0])
    compliance = bool(getattr(reading, "compliance", None) is not None and bool(reading.compliance[0]))
    return judge_contact(voltage, current, config, compliance)
