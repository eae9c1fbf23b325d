"""PyMeasure driver for the Numato Lab 8 Channel USB Relay Module, used as a cheap pixel switch.

The module is a USB CDC device (a virtual serial port: ``/dev/ttyACM0``, ``COM5``); the baud rate does not
matter on USB CDC, Numato's own examples open it at 19200 Bd 8N1. It speaks a small human-readable command set
(Numato Lab, "8 Channel USB Relay Module" user guide, https://numato.com/docs/8-channel-usb-relay-module, and
"Understanding readall/writeall commands for Relay Modules",
https://numato.com/kb/understanding-readallwriteall-commands-for-relay-modules/):

==========================  ==============================================================================
``ver``                     firmware version (8 characters)
``id get`` / ``id set X``   read / assign the module ID (exactly 8 characters)
``relay on N``              relay N on (contact closed); N = 0..7 on this module
``relay off N``             relay N off (contact open)
``relay read N``            ``on`` or ``off``
``relay readall``           all relays as a hexadecimal number, bit N = relay N (``00`` all off, ``FF`` all on)
``relay writeall XX``       set all relays at once from a hexadecimal number (``relay writeall ff``: all on)
``reset``                   every relay off (the power-on state)
==========================  ==============================================================================

Every command ends with a CR. The module is a console: it echoes what it receives (the CR too), starts a new
line with LF CR (``"\\n\\r"``), prints the reply line of a query, and prints the prompt ``">"`` (no
terminator) when it is ready for the next command, so

    host ``relay on 0\\r``    ->  ``relay on 0\\r\\n\\r>``
    host ``relay read 0\\r``  ->  ``relay read 0\\r\\n\\ron\\n\\r>``

(echo, LF CR line ends and the ``>`` prompt: Numato's sample code and drivers of real modules: Numato's Python
sample reads the reply just before ``"\\n\\r>"``, a Go driver looks for ``"\\n\\ron\\n\\r"``, and a
maintained Python driver of Numato's USB GPIO modules skips the echo as the command, its CR and LF CR before
the reply.) The driver reads lines up to LF CR and skips stray line-end bytes
before a reply or the prompt, so it also works through a VISA layer that stops a read at the first CR. The
module has no error message and no error queue: an unknown command or a bad argument is echoed and answered
with the prompt only. So a query whose echo is followed by the prompt raises :class:`NumatoRelayError`; for a
command that changes relays the only evidence is the relays themselves, which is why
:class:`~drivers.switch.SwitchMatrixBase` reads them back (``relay readall``) after every change.

Channels: labctl's channel ``n`` (1..8) is the module's relay ``n - 1`` (0..7, the numbers of its
commands); "closed" = relay on (the normally-open contact made).
"""

from __future__ import annotations

import re
from typing import Any

from pymeasure.instruments import Instrument
from pyvisa.constants import Parity, StopBits

from drivers.identity import IdentitySpec
from drivers.io_helpers import set_serial_framing
from drivers.registration import ConnectionDefaults, InstrumentRegistration
from drivers.switch import SwitchMatrixBase, switch_safe_state

#: the prompt the module prints when it is ready for the next command (no terminator)
PROMPT = ">"
#: what ends every line the module prints (LF then CR; the echo ends with the CR the host sent, then LF CR)
LINE_END = "\n\r"
#: what ends every command sent to it
COMMAND_END = "\r"
#: serial framing (USB CDC ignores it; Numato's examples open the port at 19200 Bd 8N1)
SERIAL_SETTINGS: dict[str, Any] = {"baud_rate": 19200, "data_bits": 8, "parity": Parity.none,
                                   "stop_bits": StopBits.one}
#: relays on the module (relay 0..7)
RELAY_COUNT = 8
#: most line-end bytes skipped before a reply or the prompt (a line end is 2; the echoed CR 1 more)
_MAX_LINE_END_BYTES = 4
#: the commands that print a reply line between the echo and the prompt
_QUERY = re.compile(r"^(ver|id get|relay readall|relay read \d)$")
#: an ID for ``id set``: exactly 8 characters, letters, digits or symbols (no blanks)
_BOARD_ID = re.compile(r"^[!-~]{8}$")


class NumatoRelayError(RuntimeError):
    """The module's reply broke the echo/prompt framing, or a query got no reply (unknown command, bad argument)."""


class NumatoRelay8(SwitchMatrixBase, Instrument):
    """Numato Lab 8 Channel USB Relay Module as a switch matrix of channels 1..8 (channel n = relay n - 1).

    adapter: VISA resource name (e.g. ``ASRL/dev/ttyACM0::INSTR``, ``ASRLsocket://127.0.0.1:5025::INSTR``) or a
    PyMeasure adapter; with an adapter object the caller sets its terminations (read ``"\\n\\r"``, write
    ``"\\r"``). The constructor sends nothing. Switch methods (``select``, ``close_channels``, ``open_all``,
    ``disconnect_all``, ``safe_state``...) come from :class:`~drivers.switch.SwitchMatrixBase`.
    """

    CHANNELS = range(1, RELAY_COUNT + 1)
    #: the module has no model string: ``ver`` (8 characters, e.g. ``00000008``; newer firmware ``A0M09.01``)
    #: answered through the console framing (echo, LF CR, ``>``) is what a Numato module looks like
    IDENTITY = IdentitySpec(query="ver", accepts=(r"[0-9A-Za-z.]{8}$",),
                            expected="an 8-character firmware version (Numato relay module console)")

    def __init__(self, adapter: Any, name: str = "Numato 8 channel USB relay module", **kwargs: Any) -> None:
        kwargs.setdefault("read_termination", LINE_END)
        kwargs.setdefault("write_termination", COMMAND_END)
        kwargs["asrl"] = {k: SERIAL_SETTINGS[k] for k in ("baud_rate", "data_bits")} | kwargs.pop("asrl", {})
        super().__init__(adapter, name, includeSCPI=False, **kwargs)
        set_serial_framing(self.adapter, SERIAL_SETTINGS)
        self._last_command = ""

    # -- framing -------------------------------------------------------------------------------------------
    def write(self, command: str, **kwargs: Any) -> None:
        """Send ``command`` and consume its echo; for a command without a reply also the prompt after it."""
        self._last_command = command
        super().write(command, **kwargs)
        echo = super().read()
        if echo.strip() != command:
            raise NumatoRelayError(f"{self.name}: sent {command!r}, echo was {echo!r}")
        if not _QUERY.match(command):
            self._expect_prompt(command)

    def read(self, **kwargs: Any) -> str:
        """The reply line of the last query and the prompt after it; NumatoRelayError when the prompt came
        instead of a reply (the module's answer to an unknown command or a bad argument)."""
        head = self._next_char()
        if head == PROMPT:
            raise NumatoRelayError(f"{self.name}: no reply to {self._last_command!r} (the module answers an "
                                   "unknown command or a bad argument with its prompt only)")
        reply = head + super().read(**kwargs)
        self._expect_prompt(self._last_command)
        return reply.strip()

    def _next_char(self) -> str:
        """The next character the module sends that is not a line end (CR, LF)."""
        for _ in range(_MAX_LINE_END_BYTES):
            char = self.read_bytes(1).decode("ascii", errors="replace")
            if char not in "\r\n":
                return char
        raise NumatoRelayError(f"{self.name}: only line ends after {self._last_command!r}, no reply or prompt")

    def _expect_prompt(self, command: str) -> None:
        head = self._next_char()
        if head != PROMPT:
            raise NumatoRelayError(f"{self.name}: expected the prompt {PROMPT!r} after {command!r}, got {head!r}")

    # -- identity ------------------------------------------------------------------------------------------
    @property
    def version(self) -> str:
        """Firmware version (``ver``), 8 characters."""
        return self.ask("ver")

    @property
    def id(self) -> str:
        """What identifies the module to labctl: its firmware version (``ver``; see :attr:`IDENTITY`)."""
        return self.version

    @property
    def board_id(self) -> str:
        """The module ID (``id get``), 8 characters the user may assign."""
        return self.ask("id get")

    @board_id.setter
    def board_id(self, value: str) -> None:
        if not isinstance(value, str) or not _BOARD_ID.match(value):
            raise ValueError(f"{self.name}: board_id {value!r} must be exactly 8 letters, digits or symbols "
                             "(no blanks)")
        self.write(f"id set {value}")

    # -- relays --------------------------------------------------------------------------------------------
    def _relay(self, channel: int) -> int:
        """The module's relay number (0..7) of ``channel`` (1..8); ValueError before any I/O otherwise."""
        (checked,) = self._checked([channel])
        return checked - 1

    def relay_on(self, channel: int) -> None:
        """Close ``channel`` (``relay on <channel - 1>``); no read-back (see :meth:`close_channels`)."""
        self.write(f"relay on {self._relay(channel)}")

    def relay_off(self, channel: int) -> None:
        """Open ``channel`` (``relay off <channel - 1>``); no read-back (see :meth:`open_channels`)."""
        self.write(f"relay off {self._relay(channel)}")

    def relay_is_on(self, channel: int) -> bool:
        """Whether ``channel`` reads closed (``relay read <channel - 1>``: ``on`` / ``off``)."""
        command = f"relay read {self._relay(channel)}"
        reply = self.ask(command)
        if reply not in ("on", "off"):
            raise NumatoRelayError(f"{self.name}: unexpected reply {reply!r} to {command!r} (expected on/off)")
        return reply == "on"

    def read_all(self) -> int:
        """All relays as a bit mask (``relay readall``): bit k set = relay k on = channel k + 1 closed."""
        reply = self.ask("relay readall")
        if not re.fullmatch(r"[0-9A-Fa-f]{2}", reply):
            raise NumatoRelayError(f"{self.name}: unexpected reply {reply!r} to 'relay readall' "
                                   "(expected 2 hexadecimal digits)")
        return int(reply, 16)

    def write_all(self, mask: int) -> None:
        """Set all relays at once (``relay writeall XX``): bit k of ``mask`` (0..255) = relay k = channel k + 1."""
        if isinstance(mask, bool) or not isinstance(mask, int) or not 0 <= mask <= 0xFF:
            raise ValueError(f"{self.name}: mask {mask!r} must be an int 0..255 (bit k = channel k + 1)")
        self.write(f"relay writeall {mask:02x}")

    def reset(self) -> None:
        """Every relay off (``reset``, the module's power-on state); no read-back (see :meth:`open_all`)."""
        self.write("reset")

    # -- the switch primitives (drivers.switch) ------------------------------------------------------------
    def closed_channels(self) -> frozenset[int]:
        """The closed channels, as the module reports them (``relay readall``)."""
        mask = self.read_all()
        return frozenset(bit + 1 for bit in range(RELAY_COUNT) if mask >> bit & 1)

    def _close(self, channels: frozenset[int]) -> None:
        for channel in sorted(channels):
            self.relay_on(channel)

    def _open(self, channels: frozenset[int]) -> None:
        for channel in sorted(channels):
            self.relay_off(channel)

    def _open_all(self) -> None:
        self.write_all(0)

    # -- errors --------------------------------------------------------------------------------------------
    def check_errors(self) -> list[tuple[int, str]]:
        """Always []: the module queues no errors (a query without a reply raises :class:`NumatoRelayError`,
        a change is checked by reading the relays back). Sends nothing (labctl's check_errors contract)."""
        return []

    def check_set_errors(self, context: str = "") -> list[tuple[int, str]]:
        """Always [] (see :meth:`check_errors`)."""
        return self.check_errors()

    def shutdown(self) -> None:
        """Open every relay (read back), then mark the instrument shut down."""
        self.safe_state()
        super().shutdown()


NUMATO_RELAY8_REGISTRATION = InstrumentRegistration(
    name="numato_relay8",
    driver=NumatoRelay8,
    model="Numato Lab 8 Channel USB Relay Module",
    capabilities=("switch_matrix",),
    # USB CDC virtual serial port; commands end with CR, the module's lines with LF CR (module docstring)
    connection=ConnectionDefaults(read_termination=LINE_END, write_termination=COMMAND_END, timeout_ms=2000,
                                  baud_rate=SERIAL_SETTINGS["baud_rate"], serial=True),
    safe_state=switch_safe_state,
    emulator="sim_instruments.numato_relay:NumatoRelayEmulator",
)
