"""Emulator of the Oxxius LaserBoxx LBX diode laser (drives the bench's laser slot ``bench.laser``).

Protocol (USB virtual COM / RS-232): commands end CR, every command produces one reply line ending CR LF;
commands are case-insensitive. This class implements :meth:`handle` (reply text only); the transport adds the
terminations (:data:`FRAMING`).

Sources and confidence ([H] the LBX user's guide as the maker's Micro-Manager adapter and public drivers of real
units use it, [M] one secondary source, [L] assumption), instruments ref. §8.1:
- Commands and queries: ``L 0|1 ?L``, ``P <mW> ?SP ?P``, ``CM|C <val> ?SC ?C``, ``APC 1 ACC 1 ?APC ?ACC``,
  ``AM 0|1 ?AM``, ``TTL 0|1 ?TTL`` (LBX: only in ACC mode), ``CDRH 0|1 ?CDRH``, ``?STA`` (2 standby, 3 emission
  on), ``?F``, ``?INT``, ``?KEY``, ``?BT``, ``?HH``, ``?HID``, ``?SV``, ``INF?``, ``?MAXLP``, ``?MAXLC``,
  ``?CDC``, ``RST``, ``T 0|1`` [H]; case-insensitive [H]; CR in, CR LF out [H].
- Setter reply text: not documented; this emulator answers ``OK`` [L]. Reply to an unknown command or a bad
  argument: not documented; this emulator answers :data:`ERR_REPLY` and changes nothing [L].
- ``INF?`` reply ``LBX-<λ nm>-<P mW>-CSB`` (type-wavelength-power-...), parsed that way by drivers [M]; ``?HID``
  ``LAS-<serial>,<λ>`` [M]. Numeric reply formats (``%.1f``, ``%.2f``) [L].
- A set-point above ``?MAXLP`` (or a current above 100 %) is refused with the error reply [L]. ACC power is
  proportional to the current set-point (P = Pmax·C/100) and the diode current is C % of ``?MAXLC`` [L].
- No warm-up and no CDRH emission delay are modelled: emission follows ``L 1`` at once; CDRH is stored and
  read back [L]. ``APC 1`` switches TTL modulation off (the LBX allows it only in ACC) [L].
  Power-on state: emission off, APC, CDRH 0, interlock closed, key on, no fault [L].
- Analog modulation (``AM 1``): the input's voltage drives the power, linear above a threshold of typically 0.1 V
  up to the set-point (Oxxius LaserBoxx/L4CC user's manual, "ACC mode, analog modulation") [H]; full scale
  :data:`ANALOG_FULL_SCALE_V` and impedance :data:`ANALOG_INPUT_OHM` [L]. The bench models a sine on it as
  modulation about the set-point power (:mod:`sim_instruments.modulation`). The LBX has no internal modulation
  generator in its command set (only the external analog ``AM`` and digital ``TTL`` inputs) [H].
"""

from __future__ import annotations

from typing import Any

from sim_instruments.modulation import AnalogInput, link, update_laser_modulation

FRAMING: dict[str, Any] = {"read_termination": "\r\n", "write_termination": "\r", "echo": False, "prompt": ""}
SETTER_REPLY = "OK"
ERR_REPLY = "ERROR"
SERIAL = "LAS-00520"
SOFTWARE_VERSION = "1.6.0"
STA_STANDBY, STA_EMISSION = 2, 3
_FLAGS = ("L", "AM", "TTL", "CDRH", "T")
ANALOG_FULL_SCALE_V = 5.0
"""Full scale of the analog modulation input (V) [L: the LBX manual's analog-modulation curve (linear above a
threshold of typically 0.1 V, up to the set-point) gives no full scale in the material at hand; 0–5 V assumed]."""
ANALOG_INPUT_OHM = 10e3
"""Input impedance of the analog modulation input (Ω) [L: not documented in the material at hand]."""


class LaserBoxxEmulator:
    """An LBX laser whose beam is the bench's laser slot.

    bench: any object with ``bench.laser`` having ``on`` (bool), ``power_W`` (W) and ``wavelength_nm`` (nm); only
    ``on`` and ``power_W`` are written. The power-on state (emission off) is applied at construction.
    max_power_mW: the laser's nominal power (``?MAXLP``, and the ``INF?`` model); max_current_mA: ``?MAXLC``.
    analog_full_scale_V: the analog modulation input's full scale (V), the voltage that stands for the set-point
    power; analog_input_ohm: that input's impedance (Ω). With ``AM 1`` a sine on the input modulates the laser
    slot (``modulation_depth``, ``modulation_frequency_Hz``, :mod:`sim_instruments.modulation`); ``AM 0``: depth 0.
    """

    #: the ``sim://<name>`` resources of the bench this emulator can be (its laser slot)
    SIM_NAMES: tuple[str, ...] = ("laser",)

    def __init__(self, bench: Any, max_power_mW: float = 100.0, max_current_mA: float = 150.0,
                 analog_full_scale_V: float = ANALOG_FULL_SCALE_V, analog_input_ohm: float = ANALOG_INPUT_OHM) -> None:
        if not (analog_full_scale_V > 0 and analog_input_ohm > 0):
            raise ValueError(f"analog_full_scale_V {analog_full_scale_V!r} and analog_input_ohm {analog_input_ohm!r} "
                             "must be positive")
        self.bench = bench
        self.analog_input = AnalogInput(False, float(analog_full_scale_V), float(analog_input_ohm))
        link(bench).laser_input = self.analog_input
        self.max_power_mW = float(max_power_mW)
        self.max_current_mA = float(max_current_mA)
        self.flags = {flag: 0 for flag in _FLAGS} | {"T": 1}
        self.apc = 1
        self.power_setpoint_mW = 0.0
        self.current_setpoint_percent = 0.0
        self.interlock_closed = True
        self.key_on = True
        self.fault = 0
        self._apply()

    # -- state ---------------------------------------------------------------------------------------------
    @property
    def emitting(self) -> bool:
        return bool(self.flags["L"]) and self.interlock_closed and self.key_on and self.fault == 0

    @property
    def output_mW(self) -> float:
        """The output power (mW): the APC set-point, or in ACC the share of the nominal power the current sets."""
        if not self.emitting:
            return 0.0
        if self.apc:
            return self.power_setpoint_mW
        return self.max_power_mW * self.current_setpoint_percent / 100.0

    def _apply(self) -> None:
        self.bench.laser.on = self.emitting
        self.bench.laser.power_W = self.output_mW * 1e-3
        self.analog_input.enabled = bool(self.flags["AM"])
        update_laser_modulation(self.bench)

    # -- protocol ------------------------------------------------------------------------------------------
    def handle(self, message: str) -> str | None:
        """One command (terminator stripped) in; its one reply line out."""
        text = message.strip().upper()
        head, _, arg = text.partition(" ")
        arg = arg.strip()
        if head.startswith("?") or head == "INF?":
            return self._query(head) if not arg else ERR_REPLY
        return self._set(head, arg)

    def _query(self, head: str) -> str:
        wavelength_nm = float(self.bench.laser.wavelength_nm)
        flag = head[1:]
        if flag in self.flags:
            return str(self.flags[flag])
        replies = {
            "INF?": f"LBX-{wavelength_nm:.0f}-{self.max_power_mW:.0f}-CSB",
            "?HID": f"{SERIAL},{wavelength_nm:.0f}",
            "?SV": SOFTWARE_VERSION,
            "?SP": f"{self.power_setpoint_mW:.2f}",
            "?P": f"{self.output_mW:.2f}",
            "?SC": f"{self.current_setpoint_percent:.1f}",
            "?C": f"{self.max_current_mA * self.current_setpoint_percent / 100.0 if self.emitting else 0.0:.1f}",
            "?APC": str(self.apc),
            "?ACC": str(1 - self.apc),
            "?STA": str(STA_EMISSION if self.emitting else STA_STANDBY),
            "?F": str(self.fault),
            "?INT": "1" if self.interlock_closed else "0",
            "?KEY": "1" if self.key_on else "0",
            "?BT": "25.0",
            "?HH": "1234.5",
            "?MAXLP": f"{self.max_power_mW:.1f}",
            "?MAXLC": f"{self.max_current_mA:.1f}",
            "?CDC": "1",
        }
        return replies.get(head, ERR_REPLY)

    def _set(self, head: str, arg: str) -> str:
        if head == "RST" and not arg:
            self.fault = 0
            self._apply()
            return SETTER_REPLY
        try:
            value = float(arg)
        except ValueError:
            return ERR_REPLY
        if head in self.flags:
            if value not in (0, 1):
                return ERR_REPLY
            if head == "TTL" and value == 1 and self.apc:
                return ERR_REPLY  # LBX: TTL modulation only in current (ACC) mode
            self.flags[head] = int(value)
        elif head in ("APC", "ACC"):
            if value != 1:
                return ERR_REPLY
            self.apc = 1 if head == "APC" else 0
            if self.apc:
                self.flags["TTL"] = 0
        elif head == "P":
            if not 0 <= value <= self.max_power_mW:
                return ERR_REPLY
            self.power_setpoint_mW = value
        elif head in ("CM", "C"):
            if not 0 <= value <= 100:
                return ERR_REPLY
            self.current_setpoint_percent = value
        else:
            return ERR_REPLY
        self._apply()
        return SETTER_REPLY

    # -- fault injection -----------------------------------------------------------------------------------
    def open_interlock(self) -> None:
        """Open the interlock: emission stops and ``?INT`` reads 0."""
        self.interlock_closed = False
        self._apply()
