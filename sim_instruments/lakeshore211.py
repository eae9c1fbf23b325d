"""Emulator of the Lake Shore Model 211 temperature monitor (one sensor input), at ``sim://temperature``.

It reads the simulated device's temperature (:meth:`sim_instruments.bench.Bench.device_temperature_K`: the
configured temperature, the warming under light and the station's temperature schedule), as a sensor glued to
the substrate would.

Protocol (Model 211 user's manual, chapter 4 "Remote operation"; the Omega CYD211 manual is the same
instrument): RS-232C, 9600 baud, 1 start, 7 data bits, odd parity, 1 stop bit (10 bits a character), half
duplex, no hardware handshake; messages end in CR LF; at most 20 commands per second; commands and queries may be
chained with ``;`` in one string of at most 64 characters; a query answers one line, a command nothing.

Sources and confidence ([H] seen in the manual, [M] one secondary source or by analogy, [L] assumption):
- Serial settings, terminators, the 20 commands/s rate, ``;`` chaining and the 64-character limit: manual
  Table 4-1 and §4.1.4 [H].
- ``*IDN?`` -> ``LSCI,MODEL211,<serial>,<mmddyy>`` (the manual's example ``LSCI,MODEL211,21A0000,022607``) [H].
- ``KRDG?`` answers ``+nnnnnn`` (e.g. ``+12.345``), ``CRDG?``/``FRDG?``/``SRDG?`` the same in °C, °F and sensor
  units; ``RDGST?`` the reading status bits (2 A/D not responding, 4 alarm low, 8 alarm high, 16 temperature
  under range, 32 over range, 64 sensor units zero, 128 sensor units over range; 0 valid) [H].
- ``ALARM <on>,<high>,<low>,<deadband>,<latch>`` / ``ALARM?``, ``LOCK``/``LOCK?``, ``RELAY <n>,<mode>`` /
  ``RELAY? <n>`` (1 low, 2 high; 0 off, 1 on, 2 alarms), ``INTYPE``/``INTYPE?``, ``*RST``: manual §4.2 [H];
  ``ALMRST``, ``ANALOG``/``ANALOG?``, ``AOUT?``, ``DISPFLD``/``DISPFLD?``: PyMeasure's LakeShore211 driver [M];
  ``BRIGT``/``BRIGT?`` 0-15 (default 8): the manual's command-summary key [M].
- Error behaviour: "incorrectly spelled commands and queries are ignored", and "a correctly spelled query
  without a ? returns nothing" (manual §4.1.6.2) [H]: nothing is queued, nothing answered. A parameter out of
  range is ignored alike [M]. There is no error queue: the reading status is the only report.
- Timing: each message takes the serial transfer of its characters (10 bits each at 9600 baud) and never less
  than 1/20 s (the command rate) on the bench clock [M].
- Input types 0-5 and the sensor ranges (silicon diode 1.4-500 K) [L]; the sensor units of a silicon diode as a
  straight line through 1.0 V at 77 K and 0.52 V at 300 K (close to a DT-670 near room temperature) [L];
  the alarm's deadband and latch as the Model 218 manual describes them [M]; analog output 0-10 V over the
  range chosen (AOUT? in % of full scale) [M].
"""

from __future__ import annotations

from typing import Any

IDENTITY = "LSCI,MODEL211,21A0042,022607"
FRAMING: dict[str, Any] = {"read_termination": "\r\n", "write_termination": "\r\n"}

BAUD_RATE = 9600
BITS_PER_CHARACTER = 10  # 1 start, 7 data, 1 parity, 1 stop
COMMAND_INTERVAL_S = 1.0 / 20.0  # "20 commands per second maximum"
MAX_MESSAGE_CHARS = 64
TERMINATOR_CHARS = 2  # CR LF

#: RDGST? bits
A_D_NOT_RESPONDING, ALARM_LOW, ALARM_HIGH = 2, 4, 8
TEMPERATURE_UNDER_RANGE, TEMPERATURE_OVER_RANGE = 16, 32
SENSOR_UNITS_ZERO, SENSOR_UNITS_OVER_RANGE = 64, 128

SENSOR_RANGE_K = (1.4, 500.0)  # [L] silicon diode
#: ANALOG ranges 0-5: full scale (K)
ANALOG_FULL_SCALE_K = (20.0, 100.0, 200.0, 325.0, 475.0, 1000.0)
_DIODE_V_AT_77_K, _DIODE_V_AT_300_K = 1.0, 0.52  # [L]


def _reading(value: float) -> str:
    """A reading as the 211 prints it: a sign and six significant digits (``+12.3450``, ``+298.150``)."""
    return f"{value:+#.6g}"


class LakeShore211Emulator:
    """The Model 211 with one sensor on the bench's selected device.

    bench: any object with ``device_temperature_K()`` and ``clock`` (the messages' time is slept on it).
    ``ignored`` keeps every message part the instrument ignored (for tests: it reports none of them).
    """

    #: the ``sim://<name>`` resources of the bench this emulator can be
    SIM_NAMES: tuple[str, ...] = ("temperature",)

    def __init__(self, bench: Any) -> None:
        self.bench = bench
        self.ignored: list[str] = []
        self.reset()

    def reset(self) -> None:
        """Power-up settings (``*RST``) [L: the defaults]."""
        self.input_type = 0
        self.display_field = 0
        self.brightness = 8
        self.locked = 0
        self.analog = (0, 3)
        self.relays = {1: 0, 2: 0}
        self.alarm = {"on": 0, "high": 0.0, "low": 0.0, "deadband": 0.0, "latch": 0}
        self._alarm_active = {"low": False, "high": False}

    # -- the sensor ----------------------------------------------------------------------------------------
    def temperature_K(self) -> float:
        """The sensor's temperature now (K); updates the alarm state."""
        t_K = float(self.bench.device_temperature_K())
        self._update_alarms(t_K)
        return t_K

    def _update_alarms(self, t_K: float) -> None:
        a = self.alarm
        if not a["on"]:
            self._alarm_active = {"low": False, "high": False}
            return
        for side, beyond, back in (("high", t_K > a["high"], t_K < a["high"] - a["deadband"]),
                                   ("low", t_K < a["low"], t_K > a["low"] + a["deadband"])):
            if beyond:
                self._alarm_active[side] = True
            elif back and not a["latch"]:
                self._alarm_active[side] = False

    def _status(self) -> int:
        t_K = self.temperature_K()
        bits = 0
        bits |= ALARM_LOW if self._alarm_active["low"] else 0
        bits |= ALARM_HIGH if self._alarm_active["high"] else 0
        bits |= TEMPERATURE_UNDER_RANGE if t_K < SENSOR_RANGE_K[0] else 0
        bits |= TEMPERATURE_OVER_RANGE if t_K > SENSOR_RANGE_K[1] else 0
        return bits

    def _sensor_units(self, t_K: float) -> float:
        slope = (_DIODE_V_AT_300_K - _DIODE_V_AT_77_K) / (300.0 - 77.0)
        return max(_DIODE_V_AT_77_K + slope * (t_K - 77.0), 0.0)

    # -- protocol ------------------------------------------------------------------------------------------
    def handle(self, message: str) -> str | None:
        """One message (terminator stripped): its ``;``-separated parts in order; the replies of the queries
        joined by ``;`` [M], or None when none answered. The message's time passes on the bench clock."""
        replies: list[str] = []
        if len(message) > MAX_MESSAGE_CHARS:
            self.ignored.append(message)
        else:
            for part in message.split(";"):
                reply = self._one(part.strip())
                if reply is not None:
                    replies.append(reply)
        answer = ";".join(replies) if replies else None
        chars = len(message) + TERMINATOR_CHARS + (len(answer) + TERMINATOR_CHARS if answer is not None else 0)
        self.bench.clock.sleep(max(chars * BITS_PER_CHARACTER / BAUD_RATE, COMMAND_INTERVAL_S))
        return answer

    def _one(self, part: str) -> str | None:
        head, _, arg = part.partition(" ")
        head, args = head.upper(), [a.strip() for a in arg.split(",")] if arg.strip() else []
        try:
            if head.endswith("?"):
                reply = self._query(head, args)
            else:
                reply = None
                if not self._command(head, args):
                    raise ValueError(part)
        except (ValueError, IndexError, KeyError):
            self.ignored.append(part)
            return None
        return reply

    def _query(self, head: str, args: list[str]) -> str:
        if head != "RELAY?" and args:
            raise ValueError(head)
        if head == "*IDN?":
            return IDENTITY
        if head == "KRDG?":
            return _reading(self.temperature_K())
        if head == "CRDG?":
            return _reading(self.temperature_K() - 273.15)
        if head == "FRDG?":
            return _reading((self.temperature_K() - 273.15) * 9.0 / 5.0 + 32.0)
        if head == "SRDG?":
            return _reading(self._sensor_units(self.temperature_K()))
        if head == "RDGST?":
            return f"{self._status():03d}"
        if head == "ALARM?":
            a = self.alarm
            return f"{a['on']},{a['high']:+.1f},{a['low']:+.1f},{a['deadband']:+.1f},{a['latch']}"
        if head == "ANALOG?":
            return f"{self.analog[0]},{self.analog[1]}"
        if head == "AOUT?":
            full_scale = ANALOG_FULL_SCALE_K[self.analog[1]]
            return f"{min(max(self.temperature_K() / full_scale * 100.0, 0.0), 100.0):+.2f}"
        if head == "RELAY?":
            return str(self.relays[int(args[0])])
        simple = {"INTYPE?": self.input_type, "DISPFLD?": self.display_field, "BRIGT?": self.brightness,
                  "LOCK?": self.locked}
        return str(simple[head])

    def _command(self, head: str, args: list[str]) -> bool:
        """Apply a command; False when the 211 would ignore it (unknown, wrong arguments)."""
        if head == "*RST" and not args:
            self.reset()
            return True
        if head == "ALMRST" and not args:
            self._alarm_active = {"low": False, "high": False}
            return True
        if head == "ALARM" and len(args) == 5:
            on, latch = _choice(args[0], 2), _choice(args[4], 2)
            high, low, deadband = float(args[1]), float(args[2]), float(args[3])
            if deadband < 0:
                return False
            self.alarm = {"on": on, "high": high, "low": low, "deadband": deadband, "latch": latch}
            return True
        if head == "ANALOG" and len(args) == 2:
            self.analog = (_choice(args[0], 2), _choice(args[1], len(ANALOG_FULL_SCALE_K)))
            return True
        if head == "RELAY" and len(args) == 2:
            relay = _choice(args[0], 3)
            if relay == 0:
                return False
            self.relays[relay] = _choice(args[1], 3)
            return True
        single = {"INTYPE": ("input_type", 6), "DISPFLD": ("display_field", 4), "BRIGT": ("brightness", 16),
                  "LOCK": ("locked", 2)}
        if head in single and len(args) == 1:
            name, count = single[head]
            setattr(self, name, _choice(args[0], count))
            return True
        return False


def _choice(text: str, count: int) -> int:
    """An integer 0..count-1 (ValueError otherwise)."""
    value = int(text)
    if not 0 <= value < count:
        raise ValueError(text)
    return value
