"""Emulator of the Thorlabs SC10 optical beam shutter controller (drives ``bench.light.shutter_open``).

Protocol (RS-232, 9600 baud 8N1, commands and replies end in CR, all keywords lower case). The controller
echoes each command, then prints the reply line (queries and errors only), then the prompt ``"> "``:

    host ``ens?\\r``  ->  ``ens?\\r0\\r> ``
    host ``ens\\r``   ->  ``ens\\r> ``                                (toggle the enable state)
    host ``foo\\r``   ->  ``foo\\rCommand error CMD_NOT_DEFINED\\r> ``

This class implements :meth:`handle` (reply text only); echo, prompt and terminations are added by the
transport, which reads :attr:`echo` and :attr:`prompt` from here. :data:`FRAMING` holds all four.

Sources and confidence ([H] seen in the manual or in drivers talking to real units, [M] one secondary source
or by analogy, [L] assumption):
- Command table (``? id? ens ens? rep= rep? mode= mode? trig= trig? xto= xto? open= open? shut= shut?
  closed? interlock? baud= baud? save savp resp``), ranges rep 1-99, mode 1-5, open/shut <= 6 digits (ms),
  lower-case keywords, "error string" on a bad keyword or argument: SC10 manual, keyword table [H].
- Echo + reply + ``"> "`` framing, CR terminator, ``id?`` -> ``THORLABS SC10 VERSION 1.07``: InstrumentKit
  SC10 driver/tests, Micro-Manager SC10 adapter, public lab code [H].
- ``*idn?`` answered like ``id?``: Micro-Manager's adapter sends it at start-up [M]. ``default`` (factory
  reset): InstrumentKit [M].
- Error texts ``Command error CMD_NOT_DEFINED`` / ``Command error CMD_ARG_INVALID``: FW102C manual and drivers
  (same Thorlabs console firmware family), InstrumentKit's check_cmd tokens [M].
  Bare CR -> CMD_NOT_DEFINED [M].
- Shutter physics: in manual mode (1) the shutter is open iff enabled [H]. Timed modes 2-5 (auto, single,
  repeat, external gate) are accepted and stored but not run: the emulated shutter stays closed in them [L].
  A tripped interlock disables the output and ``ens`` cannot enable it [L]. Save/restore commands print
  nothing [L]; factory defaults open=shut=100 ms [L].
"""

from __future__ import annotations

from typing import Any

IDENTITY = "THORLABS SC10 VERSION 1.07"
ERR_NOT_DEFINED = "Command error CMD_NOT_DEFINED"
ERR_ARG_INVALID = "Command error CMD_ARG_INVALID"
FRAMING: dict[str, Any] = {"read_termination": "\r", "write_termination": "\r", "echo": True, "prompt": "> "}

MODE_MANUAL = 1
# keyword -> (allowed values, default); open/shut are times in ms with at most 6 digits
_SETTINGS: dict[str, tuple[range, int]] = {
    "mode": (range(1, 6), MODE_MANUAL),
    "rep": (range(1, 100), 1),
    "trig": (range(0, 2), 0),
    "xto": (range(0, 2), 0),
    "open": (range(0, 1_000_000), 100),
    "shut": (range(0, 1_000_000), 100),
    "baud": (range(0, 2), 0),
}
_COMMANDS = [
    "? - list commands", "id? - get id", "ens - toggle enable", "ens? - get enable",
    "rep=n - set repeat count", "rep? - get repeat count", "mode=n - set mode", "mode? - get mode",
    "trig=n - set trigger mode", "trig? - get trigger mode", "xto=n - set ex-trigger mode",
    "xto? - get ex-trigger mode", "open=n - set open duration", "open? - get open duration",
    "shut=n - set close duration", "shut? - get close duration", "closed? - get closed state",
    "interlock? - get interlock tripped", "baud=n - set baud rate", "baud? - get baud rate",
    "save - save mode information", "savp - store configuration", "resp - load configuration",
]


class SC10Emulator:
    """The SC10 controller with an SH05 shutter in front of the bench light.

    bench: any object with ``bench.light.shutter_open`` (bool); only that attribute is written.
    The power-on state (output disabled, shutter closed) is applied to the bench at construction.
    """

    #: the ``sim://<name>`` resources of the bench this emulator can be (the shutter)
    SIM_NAMES: tuple[str, ...] = ("shutter",)

    echo = True
    prompt = "> "

    def __init__(self, bench: Any) -> None:
        self.bench = bench
        self.enabled = False
        self._interlock_tripped = False
        self.settings = {key: default for key, (_, default) in _SETTINGS.items()}
        self._saved = dict(self.settings)
        self._apply()

    # -- state ---------------------------------------------------------------------------------------------
    @property
    def shutter_open(self) -> bool:
        """Whether the shutter lets the light through (manual mode, enabled, interlock not tripped)."""
        return self.enabled and self.settings["mode"] == MODE_MANUAL and not self._interlock_tripped

    @property
    def interlock_tripped(self) -> bool:
        return self._interlock_tripped

    @interlock_tripped.setter
    def interlock_tripped(self, tripped: bool) -> None:
        """Fault injection: trip (True) or reset (False) the interlock; tripping disables the output."""
        self._interlock_tripped = bool(tripped)
        if tripped:
            self.enabled = False
        self._apply()

    def _apply(self) -> None:
        self.bench.light.shutter_open = self.shutter_open

    # -- protocol ------------------------------------------------------------------------------------------
    def handle(self, message: str) -> str | None:
        """One command (terminator stripped) in; reply line out, or None for commands that print nothing."""
        cmd = message.strip()
        if cmd == "?":
            return "\r".join(_COMMANDS)
        if cmd in ("id?", "*idn?"):
            return IDENTITY
        if cmd == "ens?":
            return "1" if self.enabled else "0"
        if cmd == "ens":
            if not self._interlock_tripped:
                self.enabled = not self.enabled
            self._apply()
            return None
        if cmd == "closed?":
            return "0" if self.shutter_open else "1"
        if cmd == "interlock?":
            return "1" if self._interlock_tripped else "0"
        if cmd in ("save", "savp"):
            self._saved = dict(self.settings)
            return None
        if cmd == "resp":
            self.settings = dict(self._saved)
            self._apply()
            return None
        if cmd == "default":
            self.settings = {key: default for key, (_, default) in _SETTINGS.items()}
            self._apply()
            return None
        if cmd.endswith("?") and cmd[:-1] in _SETTINGS:
            return str(self.settings[cmd[:-1]])
        key, sep, arg = cmd.partition("=")
        if sep and key in _SETTINGS:
            return self._set(key, arg)
        return ERR_NOT_DEFINED

    def _set(self, key: str, arg: str) -> str | None:
        allowed, _ = _SETTINGS[key]
        if not (arg.isascii() and arg.isdigit() and len(arg) <= 6) or int(arg) not in allowed:
            return ERR_ARG_INVALID
        self.settings[key] = int(arg)
        self._apply()
        return None
