"""Driver of the Keithley Model 7001 switch system with Model 7011-S quad 1×10 multiplexer cards (pixel switching).

PyMeasure 0.16 has no 7001 (``pymeasure.instruments.keithley`` stops at the 2000/2700 family), so this is a new
class on PyMeasure's ``Instrument``, with the switch-matrix methods of :class:`drivers.switch.SwitchMatrixBase`.

The 7001 (Model 7001 Instruction Manual, section 5 "IEEE-488 Reference", the ``[:ROUTe]`` subsystem, §5.13):

- a channel of a multiplexer card is ``slot!channel`` in a channel list ``(@ 1!6, 1!18, 2!3)``; a range is
  ``1!2:1!10`` (§5.13.2, the chanlist examples); a matrix card's crosspoint would be ``slot!row!column``;
- ``[:ROUTe]:CLOSe <list>`` closes the listed channels (others are left as they are), ``[:ROUTe]:OPEN <list>|ALL``
  opens the listed (or all) channels; power-up: all channels open; ``*RST`` and ``:SYSTem:PRESet``: "no effect"
  on the channels (§5.13.2's defaults) — so this driver never relies on ``*RST`` to open a relay;
- ``[:ROUTe]:CLOSe:STATe?`` answers the list of closed channels, e.g. ``(@1!1,1!12)``, ``(@)`` when none; a run
  of neighbours may come compressed as a range (``(@1!1:1!3)``), which :func:`parse_channel_list` expands;
- ``:SYSTem:ERRor?`` reads the error queue (``-222,"Parameter data out of range"`` for a channel the card does not
  have), ``*OPC?`` answers 1 once the previous commands (relay settling included) are done;
- ``:CONFigure:SLOT<n>:CTYPe?`` names the card the mainframe found in slot n (``C7011``; ``NONE`` when empty).

The 7011-S (Model 7011 Quad 1×10 Multiplexer Card instruction manual): four banks of ten channels, each bank
switching its ten inputs to one common output; bank k of the card is its channels 10(k−1)+1 … 10k; relay settling
time < 3 ms (the card's specifications). Each pixel's SMU is wired to the common of its bank(s), so "never two
pixels on one SMU" is "at most one closed channel in that SMU's group" — :meth:`select` with ``group``.

labctl numbers channels as ints (ISSUE12 plan): slot 1's channel n (1–40) is n, slot 2's channel m is 40 + m.
The GPIB interface (the 7001 has no RS-232) terminates with LF/EOI both ways.

What the read-back can and cannot see: ``:CLOS:STAT?`` reports the relays the mainframe drives. A channel it
refused (off the card, no card in that slot) or a command it missed reads back open and is caught here; a relay
whose contact welded or never touched is not — the substrate runner's contact check is what sees that.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pymeasure.instruments import Instrument

from drivers.identity import IdentitySpec
from drivers.keithley2400 import ReplyError
from drivers.registration import ConnectionDefaults, InstrumentRegistration
from drivers.scpi_errors import ScpiErrorQueueMixin
from drivers.smu import InstrumentError
from drivers.switch import SwitchMatrixBase, SwitchReadbackError, switch_safe_state

CHANNELS_PER_CARD = 40
"""A 7011-S: four banks of ten channels."""
CHANNELS_PER_BANK = 10
MAX_SLOTS = 2
"""The 7001 is a two-slot mainframe."""
CARD_TYPE = "C7011"
"""``:CONF:SLOT<n>:CTYP?`` of a 7011-S (or -C) card."""
RELAY_SETTLE_S = 3e-3
"""7011-S relay settling time (s): < 3 ms (7011 instruction manual, specifications)."""

_ENTRY = re.compile(r"^(\d+)!(\d+)$")


class Keithley7001Error(InstrumentError):
    """The 7001 refused a command (its error queue), or a card is not what the station says."""


def channel_to_text(channel: int) -> str:
    """labctl's int channel as the 7001 writes it: 1–40 → ``1!n``, 41–80 → ``2!(n−40)``."""
    slot, index = divmod(channel - 1, CHANNELS_PER_CARD)
    return f"{slot + 1}!{index + 1}"


def channel_list(channels: Iterable[int]) -> str:
    """A 7001 channel list of labctl channels, in ascending order: ``(@1!3,2!1)``."""
    return "(@" + ",".join(channel_to_text(c) for c in sorted(channels)) + ")"


def bank_channels(bank: int, slot: int = 1) -> range:
    """labctl's channels of bank ``bank`` (1–4) of the card in ``slot`` (1–2): the channels sharing one common."""
    if not 1 <= bank <= 4 or not 1 <= slot <= MAX_SLOTS:
        raise ValueError(f"a 7011-S has banks 1..4 in slots 1..{MAX_SLOTS}; got bank {bank}, slot {slot}")
    first = (slot - 1) * CHANNELS_PER_CARD + (bank - 1) * CHANNELS_PER_BANK + 1
    return range(first, first + CHANNELS_PER_BANK)


def _entry_to_int(text: str, reply: str) -> int:
    m = _ENTRY.match(text.strip())
    if m is None:
        raise ReplyError(f"Keithley 7001: not a multiplexer channel {text.strip()!r} in the reply {reply!r} to "
                         "':CLOS:STAT?' (a 7011-S channel is slot!channel, e.g. 1!3)")
    slot, index = int(m.group(1)), int(m.group(2))
    if not (1 <= slot <= MAX_SLOTS and 1 <= index <= CHANNELS_PER_CARD):
        raise ReplyError(f"Keithley 7001: channel {text.strip()!r} in the reply {reply!r} to ':CLOS:STAT?' is "
                         f"not on a 7011-S (slot 1..{MAX_SLOTS}, channel 1..{CHANNELS_PER_CARD})")
    return (slot - 1) * CHANNELS_PER_CARD + index


def parse_channel_list(reply: str) -> frozenset[int]:
    """labctl's channels in a 7001 channel list: ``(@1!1,1!12)``, ``(@ 1!2:1!4, 2!1)``, ``(@)``.

    Raises :class:`~drivers.keithley2400.ReplyError` for anything else (the link or the card is not what it
    should be)."""
    text = reply.strip()
    if not (text.startswith("(@") and text.endswith(")")):
        raise ReplyError(f"Keithley 7001: unreadable reply to ':CLOS:STAT?': {reply!r} (expected a channel list "
                         "such as (@1!1,1!12) or (@))")
    body = text[2:-1].strip()
    channels: set[int] = set()
    if not body:
        return frozenset()
    for item in body.split(","):
        first, sep, last = item.partition(":")
        lo = _entry_to_int(first, reply)
        hi = _entry_to_int(last, reply) if sep else lo
        if hi < lo:
            raise ReplyError(f"Keithley 7001: descending range {item.strip()!r} in the reply {reply!r}")
        channels.update(range(lo, hi + 1))
    return frozenset(channels)


class Keithley7001(SwitchMatrixBase, ScpiErrorQueueMixin, Instrument):
    """Keithley 7001 switch system, 7011-S quad 1×10 multiplexer card(s) in slot 1 (and 2).

    adapter: VISA resource name (e.g. ``GPIB0::7::INSTR``) or a PyMeasure adapter.
    slots: how many 7011-S cards (1: slot 1, channels 1–40; 2: slots 1 and 2, channels 1–80).

    Every switching method (:meth:`close_channels`, :meth:`open_channels`, :meth:`open_all`, :meth:`select`,
    :meth:`disconnect_all`) waits for the relays (``*OPC?``) and reads them back (``:CLOS:STAT?``);
    :class:`~drivers.switch.SwitchReadbackError` when they are not as commanded, naming what the error queue
    says. Channels are checked against :attr:`CHANNELS` before anything is sent.
    """

    error_query = ":SYST:ERR?"
    error_class = Keithley7001Error
    #: the 7001's ``*IDN?``, e.g. ``KEITHLEY INSTRUMENTS INC.,MODEL 7001,0,A06  /A02`` (instruction manual, *IDN?)
    IDENTITY = IdentitySpec(query="*IDN?", accepts=(r"KEITHLEY INSTRUMENTS INC\.,MODEL 7001,",),
                            expected="KEITHLEY INSTRUMENTS INC.,MODEL 7001,<serial>,<firmware>")
    CHANNELS = range(1, CHANNELS_PER_CARD + 1)

    def __init__(self, adapter: Any, name: str = "Keithley 7001 switch system", slots: int = 1,
                 **kwargs: Any) -> None:
        super().__init__(adapter, name, includeSCPI=False, **kwargs)
        self.set_slots(slots)

    def set_slots(self, slots: int) -> None:
        """How many 7011-S cards the mainframe holds (1 or 2): the channels this driver accepts. Sends nothing."""
        if slots not in (1, 2):
            raise ValueError(f"{self.name}: slots {slots!r} not allowed (allowed: 1 or 2, the 7001's two slots)")
        self.slots = slots
        self.CHANNELS = range(1, CHANNELS_PER_CARD * slots + 1)  # this instance's; the class keeps one card's

    @classmethod
    def channels_for_settings(cls, settings: Any = None) -> range:
        """The channels with ``settings.slots`` cards (None: one card): 1–40 or 1–80. Sends nothing."""
        slots = getattr(settings, "slots", 1) if settings is not None else 1
        return range(1, CHANNELS_PER_CARD * slots + 1)

    # -- identity, status ----------------------------------------------------------------------------------
    @property
    def id(self) -> str:
        """The identification (``*IDN?``)."""
        return self.ask("*IDN?").strip()

    def reset(self) -> None:
        """``*RST`` (the 7001's settings; it leaves the channels as they are, §5.13.2)."""
        self.write("*RST")

    def clear(self) -> None:
        """``*CLS``: the error queue and the event registers."""
        self.write("*CLS")

    def card_type(self, slot: int = 1) -> str:
        """The card the mainframe found in ``slot`` (``:CONF:SLOT<n>:CTYP?``), e.g. ``C7011`` or ``NONE``."""
        if slot not in (1, 2):
            raise ValueError(f"{self.name}: slot {slot!r} not allowed (allowed: 1 or 2)")
        return self.ask(f":CONF:SLOT{slot}:CTYP?").strip().strip('"')

    def wait_for_completion(self) -> None:
        """``*OPC?``: returns once the previous commands, the relays' settling included, are done."""
        reply = self.ask("*OPC?").strip()
        if reply != "1":
            raise ReplyError(f"{self.name}: unexpected reply {reply!r} to '*OPC?' (expected 1)")

    # -- the switch primitives (drivers.switch) ------------------------------------------------------------
    def _close(self, channels: frozenset[int]) -> None:
        self.write(f":CLOS {channel_list(channels)}")
        self.wait_for_completion()

    def _open(self, channels: frozenset[int]) -> None:
        self.write(f":OPEN {channel_list(channels)}")
        self.wait_for_completion()

    def _open_all(self) -> None:
        self.write(":OPEN ALL")
        self.wait_for_completion()

    def closed_channels(self) -> frozenset[int]:
        """The closed channels (``:CLOS:STAT?``), as labctl's ints; nothing is switched."""
        return parse_channel_list(self.ask(":CLOS:STAT?"))

    def format_channels(self, channels: Iterable[int]) -> str:
        """``"3 (1!3), 41 (2!1)"``: labctl's numbers with the 7001's."""
        ordered = sorted(channels)
        return ", ".join(f"{c} ({channel_to_text(c)})" for c in ordered) if ordered else "none"

    def _readback_error(self, commanded: str, closed: frozenset[int]) -> SwitchReadbackError:
        error = super()._readback_error(commanded, closed)
        try:
            queued = self.check_errors()
        except Exception:  # noqa: BLE001 - the read-back failure is the news; a dead link shows on the next call
            queued = []
        if queued:
            listing = "; ".join(f'{code},"{text}"' for code, text in queued)
            return SwitchReadbackError(f"{error} (error queue: {listing})")
        return error


class Keithley7001Settings(BaseModel):
    """instruments.<role>.settings of a 7001."""

    model_config = ConfigDict(extra="forbid")
    slots: Literal[1, 2] = Field(1, description="7011-S cards: 1 (slot 1, channels 1-40) or 2 (channels 1-80)")


def configure_keithley7001(inst: Keithley7001, settings: Keithley7001Settings | None) -> None:
    """The cards the station says are there: ``:CONF:SLOT<n>:CTYP?`` must name a 7011 in each slot used (one
    line naming the slot and what it holds otherwise), then the error queue must be empty. Switches nothing
    (a reconnection mid-run must not drop the pixel being measured)."""
    settings = settings if settings is not None else Keithley7001Settings()
    inst.set_slots(settings.slots)
    for slot in range(1, settings.slots + 1):
        card = inst.card_type(slot)
        if card.upper() != CARD_TYPE:
            raise Keithley7001Error(f"{inst.name}: slot {slot} holds {card!r}, not a 7011 quad 1x10 multiplexer "
                                    f"({CARD_TYPE}); settings.slots is {settings.slots} (allowed: the number of "
                                    "7011 cards, from slot 1)")
    inst.check_set_errors("configure")


def keithley7001_safe_state(inst: Keithley7001, settings: Any = None) -> str:
    """Every relay open (``:OPEN ALL``), read back empty (``:CLOS:STAT?``)."""
    return switch_safe_state(inst, settings)


KEITHLEY7001_REGISTRATION = InstrumentRegistration(
    name="keithley7001",
    driver=Keithley7001,
    model="Keithley 7001",
    capabilities=("switch_matrix",),
    # IEEE-488 (GPIB) only; LF with EOI both ways (7001 instruction manual, section 4 "IEEE-488 operation")
    connection=ConnectionDefaults(read_termination="\n", write_termination="\n", timeout_ms=5000),
    settings=Keithley7001Settings,
    configure=configure_keithley7001,
    safe_state=keithley7001_safe_state,
    emulator="sim_instruments.keithley7001:Keithley7001Emulator",
)
