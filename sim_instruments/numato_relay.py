"""Emulator of the Numato Lab 8 Channel USB Relay Module (the cheap pixel switch of a substrate fixture).

Protocol (USB CDC virtual serial port, commands end with CR). The module is a console: it echoes the command
(its CR too), starts a new line with LF CR, prints a reply line for queries, then the prompt ``">"``:

    host ``relay on 3\\r``     ->  ``relay on 3\\r\\n\\r>``
    host ``relay read 3\\r``   ->  ``relay read 3\\r\\n\\ron\\n\\r>``
    host ``relay readall\\r``  ->  ``relay readall\\r\\n\\r08\\n\\r>``
    host ``relay foo\\r``      ->  ``relay foo\\r\\n\\r>``           (unknown command: no reply line, nothing changes)

The transport echoes (command + CR) and adds the read termination LF CR and the prompt (:data:`FRAMING`);
:meth:`handle` returns what lies between: ``""`` (a command without a reply: the bare line end) or LF CR +
the reply line. :meth:`reply` is the reply alone. Since every command prints at least that line end, a
scheduled ``timeout`` fault (:mod:`sim_instruments.faults`) lands on the next command of any kind: the board
echoes it and then hangs (no line end, no prompt); a ``garbage`` fault garbles the line after the echo.

Sources and confidence ([H] the maker's documentation, [M] drivers/sample code talking to real modules or one
secondary source, [L] assumption):
- Command set ``ver``, ``id get``, ``id set xxxxxxxx`` (exactly 8 characters), ``relay on|off|read N`` (relay
  numbers from 0), ``relay readall`` (hexadecimal, bit N = relay N, ``00`` all off, ``FF`` all on), ``relay
  writeall xx`` (hexadecimal, ``ff`` all on), ``reset`` (every relay off, the default state): Numato Lab's
  8 Channel USB Relay Module guide and "Understanding readall/writeall commands for Relay Modules" [H].
- CR-terminated commands, the echo, LF CR line ends and the ``>`` prompt: Numato's sample code (its Python
  sample slices the reply just before ``"\\n\\r>"``) and drivers of real modules (``"\\n\\ron\\n\\r"`` in the
  reply to ``relay read``; a GPIO-module driver skips command + CR + LF CR before a reply, so the echo carries
  the CR) [M].
- ``readall`` answered in upper case (``FF``, as the guide writes it), ``writeall`` taking either case [M].
- No error message: an unknown command, a wrong relay number (8 or more, or not one digit) or a malformed
  argument is echoed and answered with the prompt only, and changes nothing [L]: the documentation lists no
  error reply, and drivers of real modules detect failures only by the missing reply. Keywords are lower
  case only [L]. ``gpio`` / ``adc`` commands are not emulated (answered like an unknown command) [L].
- ``ver`` answers ``00000008``-like 8 characters, ``id get`` ``00000000`` from the factory [M] (the values of
  other Numato USB modules); both are options here.
- Relay timing: mechanical relays of this class operate in <= 10 ms and release in <= 5 ms (typical datasheet
  values of 10 A PCB relays) [M]; the module prints its prompt only once the contacts have moved, so every
  command that moves a relay costs that time on ``bench.clock`` [L].

Bench contract (issue 12, Part B): after every relay command (``relay on/off``, ``relay writeall``, ``reset``)
the emulator calls ``bench.relays_changed(sim_name, frozenset(closed channels))`` if the bench has that method;
channels are labctl's (channel n = relay n - 1, 1..8). ``bench.stuck_relays`` (sim name -> channels that do not
close, read with an empty default) makes a relay refuse to close; ``relay read`` / ``relay readall`` then
honestly report it off.
"""

from __future__ import annotations

import re
from typing import Any

RELAY_COUNT = 8
PROMPT = ">"
LINE_END = "\n\r"
FRAMING: dict[str, Any] = {"read_termination": LINE_END, "write_termination": "\r", "echo": True,
                           "prompt": PROMPT}
VERSION = "00000008"
FACTORY_ID = "00000000"
RELAY_OPERATE_S = 0.010
"""Time for a relay contact to close after its coil is energised (s)."""
RELAY_RELEASE_S = 0.005
"""Time for a relay contact to open after its coil is released (s)."""

_RELAY_CMD = re.compile(r"^relay (on|off|read) ([0-9])$")
_WRITEALL = re.compile(r"^relay writeall ([0-9A-Fa-f]{2})$")
_ID_SET = re.compile(r"^id set ([!-~]{8})$")


class NumatoRelayEmulator:
    """The 8-relay module; its relays are the switch ``sim_name`` of the bench (channel n = relay n - 1).

    bench: any object with ``clock`` (``sleep``); optionally ``relays_changed(name, closed)`` and
    ``stuck_relays`` (dict: sim name -> channels that do not close).
    version, board_id: what ``ver`` and ``id get`` answer (8 characters each).
    The power-on state (every relay off) is reported to the bench at construction.
    """

    #: the ``sim://<name>`` resources of the bench this emulator can be (a first and a second relay board)
    SIM_NAMES: tuple[str, ...] = ("relay_board", "relay_board2")

    echo = True
    prompt = PROMPT

    def __init__(self, bench: Any, sim_name: str = "relay_board", version: str = VERSION,
                 board_id: str = FACTORY_ID) -> None:
        if sim_name not in self.SIM_NAMES:
            raise ValueError(f"no Numato relay board {sim_name!r} on the bench (allowed: {', '.join(self.SIM_NAMES)})")
        for what, value in (("version", version), ("board_id", board_id)):
            if not re.fullmatch(r"[!-~]{8}", value):
                raise ValueError(f"Numato relay board {what} {value!r}: must be exactly 8 characters without blanks")
        self.bench = bench
        self.sim_name = sim_name
        self.version = version
        self.board_id = board_id
        self.coils = 0  # bit k: relay k commanded on
        self.contacts = 0  # bit k: relay k's contact actually closed (a stuck relay's stays open)
        self._report()

    # -- state ---------------------------------------------------------------------------------------------
    @property
    def closed_channels(self) -> frozenset[int]:
        """The channels whose contacts are closed (channel n = relay n - 1)."""
        return frozenset(k + 1 for k in range(RELAY_COUNT) if self.contacts >> k & 1)

    def _stuck_mask(self) -> int:
        stuck = (getattr(self.bench, "stuck_relays", None) or {}).get(self.sim_name, ())
        return sum(1 << (channel - 1) for channel in stuck if 1 <= channel <= RELAY_COUNT)

    def _drive(self, coils: int) -> None:
        """Energise the coils of ``coils`` (bit mask), wait for the contacts to move, report to the bench."""
        self.coils = coils & 0xFF
        contacts = self.coils & ~self._stuck_mask()
        closing, opening = contacts & ~self.contacts, self.contacts & ~contacts
        move_s = max(RELAY_OPERATE_S if closing else 0.0, RELAY_RELEASE_S if opening else 0.0)
        clock = getattr(self.bench, "clock", None)
        if move_s > 0 and clock is not None:
            clock.sleep(move_s)  # the prompt comes once the contacts have moved
        self.contacts = contacts
        self._report()

    def power_on(self) -> None:
        """A power cycle (the ``reboot`` / ``reset`` faults, :func:`sim_instruments.faults.power_on_reset`):
        every coil released, so every relay opens; the module ID is kept (it is stored in the module) [L]."""
        self._drive(0)

    def _report(self) -> None:
        changed = getattr(self.bench, "relays_changed", None)
        if changed is not None:
            changed(self.sim_name, self.closed_channels)

    # -- protocol ------------------------------------------------------------------------------------------
    def handle(self, message: str) -> str:
        """One command (its CR stripped) in; what the module prints between the echo and the final line end
        out: ``""`` for a command without a reply, else LF CR + the reply line (the transport adds the echo,
        the final LF CR and the prompt)."""
        reply = self.reply(message)
        return "" if reply is None else LINE_END + reply

    def reply(self, message: str) -> str | None:
        """Execute one command; its reply line, or None (a command that prints nothing, or an unknown one)."""
        cmd = message.strip()
        if cmd == "ver":
            return self.version
        if cmd == "id get":
            return self.board_id
        if cmd == "relay readall":
            return f"{self.contacts:02X}"
        if cmd == "reset":
            self._drive(0)
            return None
        match = _RELAY_CMD.match(cmd)
        if match:
            action, relay = match.group(1), int(match.group(2))
            if relay >= RELAY_COUNT:
                return None
            if action == "read":
                return "on" if self.contacts >> relay & 1 else "off"
            self._drive(self.coils | 1 << relay if action == "on" else self.coils & ~(1 << relay))
            return None
        match = _WRITEALL.match(cmd)
        if match:
            self._drive(int(match.group(1), 16))
            return None
        match = _ID_SET.match(cmd)
        if match:
            self.board_id = match.group(1)
            return None
        return None  # unknown command or bad argument: echo and prompt only
