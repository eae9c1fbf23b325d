"""Emulator of a Keithley 7001 switch system with a 7011-S quad 1×10 multiplexer card (``sim://switch``).

Strict SCPI (:class:`sim_instruments.scpi.ScpiInstrument`): short/long forms, any case, the optional ``[:ROUTe]``
root; an unknown header (-113), a missing or extra parameter (-109/-108), a parameter that is not a channel
list (-104), a malformed channel list (-102) or a channel that is not on a card (-222) goes to ``:SYST:ERR?`` and
switches nothing; a failing query gives no reply.

Channels: ``slot!channel`` (slot 1–2, channel 1–40 of a 7011-S); the simulated fixture sees them as labctl does,
slot 1's n as n and slot 2's m as 40 + m. After every change of the relays the emulator calls
``bench.relays_changed(sim_name, frozenset(closed))`` when the bench has that method (the simulated substrate:
which pixel each SMU terminal sees), and once at power-up (all open).

Faults for tests: ``bench.stuck_relays`` (dict: sim name → set of channels; default empty) — a stuck relay does not
close when commanded and ``:CLOS:STAT?`` reports it open, no error queued (as a card whose drive line failed
would look to the mainframe). The link faults of :mod:`sim_instruments.faults` act in the transport.

Sources and confidence ([H] manual, [M] secondary or drivers of real units, [L] assumption): Model 7001
Instruction Manual §5.13 (``[:ROUTe]`` subsystem) and the Model 7011 instruction manual (specifications):
- ``[:ROUTe]:CLOSe <list>``, ``[:ROUTe]:OPEN <list>|ALL``, ``[:ROUTe]:CLOSe? <list>`` / ``[:ROUTe]:OPEN? <list>``
  (1 or 0 per listed channel, comma separated), ``[:ROUTe]:CLOSe:STATe?`` (the closed channels as a channel list,
  ``(@)`` when none); chanlist forms ``1!6``, ``1!6, 1!18``, ``1!2:1!10`` with optional blanks after ``(@`` [H];
- power-up (and the ``reboot`` fault, :meth:`Keithley7001Emulator.power_on`): all channels open; ``*RST`` and
  ``:SYSTem:PRESet`` have no effect on the channels [H, §5.13.2; M: a public 7001/7002 script sends ``*rst`` and
  then finds its channels still closed]; ``:CLOS:STAT?`` of two closed channels reads ``(@3!10,3!40)``-
  like, no blanks [M: the same script compares that reply verbatim];
- ``:CLOS:STAT?`` gives runs of three or more neighbouring channels as a range (``1!1:1!3``) [M: a public 7001
  reader parses ranges in that reply]; ``:CONFigure:SLOT<n>:CTYPe?`` answers ``C7011`` / ``NONE`` [M];
- a channel off the card or in an empty slot: -222 "Parameter data out of range" [M: the 2700/2750 manuals'
  wording for an invalid channel]; a matrix crosspoint (``1!2!3``) on the multiplexer: -222 [L];
- relay settling < 3 ms [H 7011 specifications]: a command that changes relays takes 3 ms on ``bench.clock``;
  one that changes none takes no time [L]; ``*IDN?`` ``KEITHLEY INSTRUMENTS INC.,MODEL 7001,0,A06  /A02`` [M].
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from sim_instruments.scpi import (
    COMMON_COMMANDS,
    SYSTEM_ERROR_COMMANDS,
    Command,
    Params,
    ScpiError,
    ScpiInstrument,
    noop,
)

IDENTITY = "KEITHLEY INSTRUMENTS INC.,MODEL 7001,0,A06  /A02"
CHANNELS_PER_CARD = 40
SLOTS = 2
CARD_7011 = "C7011"
NO_CARD = "NONE"
RELAY_SETTLE_S = 3e-3
#: runs of at least this many neighbouring closed channels are reported as a range by ``:CLOS:STAT?``
RANGE_RUN = 3

_ENTRY = re.compile(r"^(\d+)!(\d+)(?:!(\d+))?$")


def channel_text(channel: int) -> str:
    """``slot!channel`` of a labctl channel (1–40 slot 1, 41–80 slot 2)."""
    slot, index = divmod(channel - 1, CHANNELS_PER_CARD)
    return f"{slot + 1}!{index + 1}"


def format_channel_list(channels: Iterable[int]) -> str:
    """The 7001's list of ``channels``: ``(@1!1:1!3,1!12)`` (runs of :data:`RANGE_RUN` or more as ranges within a
    card), ``(@)`` when empty."""
    ordered = sorted(set(channels))
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while (j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1
               and (ordered[j + 1] - 1) // CHANNELS_PER_CARD == (ordered[i] - 1) // CHANNELS_PER_CARD):
            j += 1
        if j - i + 1 >= RANGE_RUN:
            parts.append(f"{channel_text(ordered[i])}:{channel_text(ordered[j])}")
        else:
            parts.extend(channel_text(c) for c in ordered[i:j + 1])
        i = j + 1
    return "(@" + ",".join(parts) + ")"


class Keithley7001Emulator(ScpiInstrument):
    """A 7001 mainframe with 7011-S cards; its relays are the simulated fixture's switch ``sim_name``.

    bench: object with ``clock``; optionally ``relays_changed(name, closed)`` and ``stuck_relays``.
    cards: what slots 1 and 2 hold (``"C7011"`` or ``"NONE"``); default a 7011-S in slot 1 only.
    sim_name: the switch's ``sim://`` name (what ``relays_changed`` and ``stuck_relays`` call it).
    settle_s: the time a command that moves relays takes on ``bench.clock`` (s; default the 7011-S's 3 ms).
    """

    SIM_NAMES: tuple[str, ...] = ("switch",)

    def __init__(self, bench: Any, cards: Sequence[str] = (CARD_7011, NO_CARD), sim_name: str = "switch",
                 settle_s: float = RELAY_SETTLE_S) -> None:
        if sim_name not in self.SIM_NAMES:
            raise ValueError(f"no 7001 switch {sim_name!r} on the bench (allowed: {', '.join(self.SIM_NAMES)})")
        cards = tuple(str(c).upper() for c in cards)
        if len(cards) != SLOTS or any(c not in (CARD_7011, NO_CARD) for c in cards):
            raise ValueError(f"cards {cards!r}: the 7001 has {SLOTS} slots, each {CARD_7011!r} or {NO_CARD!r}")
        if not settle_s >= 0.0:
            raise ValueError(f"settle_s {settle_s!r} must be a time >= 0 (s)")
        super().__init__()
        self.bench = bench
        self.cards = cards
        self.settle_s = float(settle_s)
        self.sim_name = sim_name
        self.closed: set[int] = set()
        self.relay_operations = 0  # commands that changed relays (each took the settling time)
        self._notify()  # power-up: every channel open

    # -- hooks ----------------------------------------------------------------------------------------------
    def identity(self) -> str:
        return IDENTITY

    def reset(self) -> None:
        """``*RST``: no effect on the channels (manual §5.13.2); nothing else of the 7001 is modelled."""

    def power_on(self) -> None:
        """A power cycle (the ``reboot`` fault): every channel open, the error queue and status cleared."""
        self.clear_status()
        self.ese = self.sre = 0
        self._apply(set())

    # -- the relays -----------------------------------------------------------------------------------------
    def _stuck(self) -> set[int]:
        stuck = getattr(self.bench, "stuck_relays", None) or {}
        return {int(c) for c in stuck.get(self.sim_name, ())}

    def _notify(self) -> None:
        changed = getattr(self.bench, "relays_changed", None)
        if changed is not None:
            changed(self.sim_name, frozenset(self.closed))

    def _apply(self, closed: set[int]) -> None:
        """Make ``closed`` the closed relays: when any changes, the settling time passes, then the bench hears."""
        if closed == self.closed:
            return
        self.closed = closed
        self.relay_operations += 1
        if self.settle_s > 0.0:
            self.bench.clock.sleep(self.settle_s)
        self._notify()

    def close_relays(self, channels: set[int]) -> None:
        self._apply(self.closed | (channels - self._stuck()))

    def open_relays(self, channels: set[int]) -> None:
        self._apply(self.closed - channels)

    # -- channel lists --------------------------------------------------------------------------------------
    def _entry(self, text: str) -> int:
        m = _ENTRY.match(text.strip())
        if m is None:
            raise ScpiError(-102, f"channel {text.strip()!r}")
        if m.group(3) is not None:
            raise ScpiError(-222, f"{text.strip()} is a matrix crosspoint; a 7011 is a multiplexer")
        slot, index = int(m.group(1)), int(m.group(2))
        if not 1 <= slot <= SLOTS or self.cards[slot - 1] != CARD_7011:
            raise ScpiError(-222, f"no card in slot {slot}")
        if not 1 <= index <= CHANNELS_PER_CARD:
            raise ScpiError(-222, f"channel {text.strip()}")
        return (slot - 1) * CHANNELS_PER_CARD + index

    def channels(self, p: Params) -> list[int]:
        """The channels of a ``(@ ...)`` list parameter, in the order given (ranges expanded)."""
        text = ",".join(p.tokens).strip()
        if not (text.startswith("(@") and text.endswith(")")):
            raise ScpiError(-104, "expected a channel list (@ ...)")
        body = text[2:-1].strip()
        if not body:
            raise ScpiError(-109, "empty channel list")
        result: list[int] = []
        for item in body.split(","):
            first, sep, last = item.partition(":")
            lo = self._entry(first)
            if not sep:
                result.append(lo)
                continue
            hi = self._entry(last)
            if (hi - 1) // CHANNELS_PER_CARD != (lo - 1) // CHANNELS_PER_CARD or hi < lo:
                raise ScpiError(-222, f"range {item.strip()}")
            result.extend(range(lo, hi + 1))
        return result

    def slot_card(self, p: Params) -> str:
        slot = p.suffixes[0]
        if not 1 <= slot <= SLOTS:
            raise ScpiError(-114)
        return self.cards[slot - 1]


def _open(inst: Keithley7001Emulator, p: Params) -> None:
    if len(p) == 1 and p.is_word(0, "ALL"):
        inst.open_relays(set(inst.closed))
        return
    inst.open_relays(set(inst.channels(p)))


def _state_of(inst: Keithley7001Emulator, p: Params, closed: bool) -> str:
    return ",".join("1" if (c in inst.closed) == closed else "0" for c in inst.channels(p))


_MAX_LIST = 200  # parameter tokens of one channel list (the 7001 has 80 channels; ranges count as one)

Keithley7001Emulator.COMMANDS = (
    *COMMON_COMMANDS,
    *SYSTEM_ERROR_COMMANDS,
    Command("[:ROUTe]:CLOSe", write=lambda s, p: s.close_relays(set(s.channels(p))),
            query=lambda s, p: _state_of(s, p, True), wargs=(1, _MAX_LIST), qargs=(1, _MAX_LIST)),
    Command("[:ROUTe]:CLOSe:STATe", query=lambda s, p: format_channel_list(s.closed)),
    Command("[:ROUTe]:OPEN", write=_open, query=lambda s, p: _state_of(s, p, False),
            wargs=(1, _MAX_LIST), qargs=(1, _MAX_LIST)),
    Command(":CONFigure:SLOT#:CTYPe", query=lambda s, p: s.slot_card(p)),
    noop(":SYSTem:PRESet"),
)
