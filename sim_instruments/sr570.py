"""Emulator of the Stanford Research SR570 low-noise current preamplifier on the EQE bench (instruments.md §8.3).

The SR570 is LISTEN-ONLY on RS-232 (9600 baud 8N2): :meth:`SR570Emulator.handle` always returns None, so the
transports never send a byte back (no echo, no prompt). What it accepts drives the bench: the transimpedance
gain between the detector and the lock-in, ``bench.optics.preamp_gain_V_A`` (V/A).

Protocol ([H] seen in PyMeasure's driver, [M] one secondary source, [L] our assumption):
- Commands ``SENS n`` (0–27 → 1 pA/V … 1 mA/V, 1-2-5) [H], ``SUCM 0|1`` / ``SUCV 0–100`` [M], ``IOON 0|1``,
  ``IOLV 0–29``, ``IOSN 0|1`` [H values, M ``IOLV`` name], ``IOUC 0–1000`` [M], ``BSON 0|1``,
  ``BSLV −5000…5000`` (mV) [H], ``FLTT 0–5``, ``LFRQ 0–15`` [H], ``HFRQ 0–11`` [H table, M upper index],
  ``GNMD 0–2``, ``INVT 0|1``, ``BLNK 0|1``, ``ROLD``, ``*RST`` [H]. Arguments are integers (a leading ``+``
  is accepted, a decimal point is not) [L].
- Terminations: a command ends at CR or LF, so CR, LF and CR LF all work; empty lines are ignored [M].
  Several commands on one line separated by ``;`` [L, SRS convention]. Mnemonics are case-insensitive [L].
- Unknown mnemonics, missing or extra or non-integer arguments and out-of-range values are ignored without
  a trace, as the real unit can report nothing; here each rejected command is appended to :attr:`log` (for
  tests), and the settings are unchanged [L].
- Power-on: the unit keeps the sensitivity the station was configured with: the bench's
  ``preamp_gain_V_A`` at construction, as a ``SENS`` index if 1/gain is in the table (otherwise unknown, None).
  Constructing the emulator does not touch the bench. ``*RST``: the reference gives no reset defaults, so
  ``*RST`` restores that power-on sensitivity (and the power-on gain on the bench) and sets everything else
  to :data:`RESET_DEFAULTS` (calibrated, bias and offset off, no filter, low-noise mode, not inverted,
  not blanked) [L].

Physics on the bench (``bench.optics.preamp_gain_V_A``):
- gain = ±1/sensitivity: negative with ``INVT 1`` (the lock-in then reads the phase 180° away) [H that
  INVT inverts; sign convention L]; × SUCV/100 with ``SUCM 1`` [L: the vernier law is not in the reference];
  0 with ``BLNK 1`` (front-end output blanked) [M]. While the sensitivity is unknown (the configured gain
  is not a table value, or there is none) the power-on gain stands in for 1/sensitivity.
- Each change writes the gain through ``optics.set_preamp_gain(gain)`` if the optics has that setter, else
  assigns the attribute and calls ``optics._record()`` so the lock-in's signal history gets the change;
  nothing is written when the gain does not change.
- Not emulated (stored only): the filters (FLTT/LFRQ/HFRQ: no attenuation or phase shift of the chopped
  signal), gain-mode noise/bandwidth differences and their sensitivity restrictions, the input offset
  current and the bias voltage (the device under test stays at short circuit), overload and ``ROLD``.
"""

from __future__ import annotations

import math
import re
from typing import Any

SENSITIVITIES_A_V: tuple[float, ...] = (
    1e-12, 2e-12, 5e-12, 10e-12, 20e-12, 50e-12, 100e-12, 200e-12, 500e-12,
    1e-9, 2e-9, 5e-9, 10e-9, 20e-9, 50e-9, 100e-9, 200e-9, 500e-9,
    1e-6, 2e-6, 5e-6, 10e-6, 20e-6, 50e-6, 100e-6, 200e-6, 500e-6,
    1e-3,
)  # fmt: skip
"""``SENS`` index → sensitivity (A/V)."""

#: mnemonic -> allowed integer arguments
COMMANDS: dict[str, range] = {
    "SENS": range(0, 28),
    "SUCM": range(0, 2),
    "SUCV": range(0, 101),
    "IOON": range(0, 2),
    "IOLV": range(0, 30),
    "IOSN": range(0, 2),
    "IOUC": range(0, 1001),
    "BSON": range(0, 2),
    "BSLV": range(-5000, 5001),
    "FLTT": range(0, 6),
    "LFRQ": range(0, 16),
    "HFRQ": range(0, 12),
    "GNMD": range(0, 3),
    "INVT": range(0, 2),
    "BLNK": range(0, 2),
}
NO_ARGUMENT = ("ROLD", "*RST")
#: ``*RST`` state of everything but the sensitivity [L]
RESET_DEFAULTS: dict[str, int] = {
    "SUCM": 0, "SUCV": 100, "IOON": 0, "IOLV": 0, "IOSN": 1, "IOUC": 0, "BSON": 0, "BSLV": 0,
    "FLTT": 5, "LFRQ": 15, "HFRQ": 0, "GNMD": 0, "INVT": 0, "BLNK": 0,
}  # fmt: skip
FRAMING: dict[str, Any] = {"read_termination": "\r", "write_termination": "\r", "echo": False, "prompt": ""}

_COMMAND = re.compile(r"^(\*?[A-Z]{3,4})\s*(.*)$")
_INTEGER = re.compile(r"^[+-]?\d+$")


def sensitivity_index(gain_V_A: float | None) -> int | None:
    """``SENS`` index whose 1/sensitivity equals ``gain_V_A`` (relative 1e-6), or None."""
    if gain_V_A is None or not math.isfinite(gain_V_A) or gain_V_A <= 0:
        return None
    for i, sens in enumerate(SENSITIVITIES_A_V):
        if math.isclose(1.0 / gain_V_A, sens, rel_tol=1e-6):
            return i
    return None


class SR570Emulator:
    """The SR570 between the bench's detector and the lock-in.

    bench: any object with ``bench.optics.preamp_gain_V_A`` (V/A or None) and either
    ``optics.set_preamp_gain(gain)`` or ``optics._record()``; only the gain is written.
    """

    #: the ``sim://<name>`` resources of the bench this emulator can be (the current preamplifier)
    SIM_NAMES: tuple[str, ...] = ("preamp",)

    echo = False
    prompt = ""

    def __init__(self, bench: Any) -> None:
        self.bench = bench
        self.power_on_gain_V_A: float | None = bench.optics.preamp_gain_V_A
        #: ``SENS`` index at power-on (None: the configured gain is not a table value, or there is none)
        self.power_on_sensitivity: int | None = sensitivity_index(self.power_on_gain_V_A)
        self.settings: dict[str, int | None] = {"SENS": self.power_on_sensitivity, **RESET_DEFAULTS}
        #: every command ignored as unknown, malformed or out of range (the real unit gives no sign)
        self.log: list[str] = []
        #: every command accepted, in order
        self.received: list[str] = []
        self.overload_resets = 0

    # -- state ---------------------------------------------------------------------------------------------
    @property
    def sensitivity_A_V(self) -> float | None:
        index = self.settings["SENS"]
        return None if index is None else SENSITIVITIES_A_V[index]

    @property
    def gain_V_A(self) -> float | None:
        """The gain the bench sees (see the module docstring); None only with no sensitivity and no power-on gain."""
        sens = self.sensitivity_A_V
        gain = 1.0 / sens if sens is not None else self.power_on_gain_V_A
        if gain is None:
            return None
        if self.settings["BLNK"]:
            return 0.0
        if self.settings["SUCM"]:
            gain *= (self.settings["SUCV"] or 0) / 100.0
        return -gain if self.settings["INVT"] else gain

    def _apply(self) -> None:
        gain, optics = self.gain_V_A, self.bench.optics
        if optics.preamp_gain_V_A == gain:
            return
        setter = getattr(optics, "set_preamp_gain", None)
        if callable(setter):
            setter(gain)
        else:
            optics.preamp_gain_V_A = gain
            optics._record()

    # -- protocol ------------------------------------------------------------------------------------------
    def handle(self, message: str) -> None:
        """One or more commands (split at CR, LF and ``;``) in; never a reply."""
        for line in re.split(r"[\r\n;]", message):
            command = line.strip()
            if command:
                self._command(command)
        return None

    def _command(self, command: str) -> None:
        match = _COMMAND.match(command.upper())
        if match is None:
            self.log.append(command)
            return
        mnemonic, arg = match.group(1), match.group(2).strip()
        if mnemonic in NO_ARGUMENT:
            if arg:
                self.log.append(command)
                return
            self.received.append(command)
            if mnemonic == "*RST":
                self.settings = {"SENS": self.power_on_sensitivity, **RESET_DEFAULTS}
                self._apply()
            else:
                self.overload_resets += 1
            return
        allowed = COMMANDS.get(mnemonic)
        if allowed is None or not _INTEGER.match(arg) or int(arg) not in allowed:
            self.log.append(command)
            return
        self.received.append(command)
        self.settings[mnemonic] = int(arg)
        if mnemonic in ("SENS", "SUCM", "SUCV", "INVT", "BLNK"):
            self._apply()
