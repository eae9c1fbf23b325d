"""The contact check before a pixel is measured, in the dark: the apparent resistance |V/I| at a small bias, and
when that finds no contact, at a forward bias.

A probe that does not touch its pad (or a relay that connects nothing) leaves the source meter on an open
circuit: it reads only its own noise (pA on a 2400's lowest ranges), so |V/I| at a 10 mV bias is 1e9 Ω or more.
A connected cell reads its shunt and diode in the dark (for the simulated set A cell, 2000 Ω·cm² on 0.049 cm²:
about 41 kΩ), far below the default threshold of 1e7 Ω (:class:`labctl.config.ContactCheckConfig`). A very good
cell has a shunt of MΩ·cm² and a tiny J0, and reads as little as an open contact at 10 mV; but in forward bias
its diode conducts (the set A cell: about 10 µA at 1.0 V, the compliance at 1.2 V), while through an open
contact of 1e9 Ω the current stays near 1 nA. So when the small bias finds no contact, a second reading at
``forward_bias_V`` (1.2 V by default, never beyond the source meter's voltage limit; in the cell's forward
direction, −V on HI for a p-i-n stack) decides: contact when |V/I| is below the threshold there, or the reading
is in compliance. A pixel without contact either way is skipped, not measured into garbage. The small bias is at
most 0.5 V; the output is switched off again, at 0 V, however the check ends.

Made in the dark: in the light a probe that does not touch still carries a photocurrent through its gigaohms
(about Voc/1e9 Ω at any small bias, an apparent 1e7 Ω), as low as the threshold.
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


def check_contact(smu: Any, config: ContactCheckConfig, forward_sign: float = 1.0,
                  voltage_limit_V: float | None = None) -> ContactResult:
    """Bias ``smu`` (a :class:`drivers.smu.SourceMeter`) at ``config.bias_V`` with ``config.compliance_A`` and read
    once; when :func:`judge_contact` finds no contact and ``config.forward_bias_V`` is given, read again at that
    forward bias (``forward_sign``: +1 with the anode on HI, −1 for a p-i-n stack; at most ``voltage_limit_V``);
    switch the output off at 0 V. The verdict: contact when either reading shows it. Instrument errors propagate
    (the caller stops the substrate: a source meter that cannot do this cannot measure either)."""
    smu.configure_voltage_source(compliance_A=config.compliance_A, nplc=config.nplc)
    smu.set_voltage(config.bias_V)
    smu.enable_output()
    try:
        small = _judged(smu.measure_point(), config)
        if small.ok or config.forward_bias_V is None:
            return small
        forward_V = config.forward_bias_V if voltage_limit_V is None else min(config.forward_bias_V, voltage_limit_V)
        smu.set_voltage(forward_sign * forward_V)
        forward = _judged(smu.measure_point(), config)
    finally:
        smu.disable_output()
        smu.set_voltage(0.0)
    if forward.ok:
        return forward
    shown = "no current at all" if math.isinf(forward.resistance_ohm) else f"{forward.resistance_ohm:.3g} Ω"
    reason = f"{small.reason}; in forward bias {shown} at {forward.voltage_V:.3g} V ({forward.current_A:.3g} A)"
    return ContactResult(False, forward.resistance_ohm, forward.voltage_V, forward.current_A, forward.compliance,
                         reason)


def _judged(reading: Any, config: ContactCheckConfig) -> ContactResult:
    """:func:`judge_contact` of one reading (its first point); a reading in compliance is contact (current flows)."""
    voltage = float(reading.voltage_V[0])
    current = float(reading.current_A[0])
    compliance = bool(getattr(reading, "compliance", None) is not None and bool(reading.compliance[0]))
    if compliance:
        return ContactResult(True, abs(voltage / current) if current else math.inf, voltage, current, True)
    return judge_contact(voltage, current, config, compliance)
