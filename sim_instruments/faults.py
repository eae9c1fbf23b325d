"""Fault injection on the simulated bench: what a client sees when a link or an instrument misbehaves.

One :class:`FaultSchedule` per bench (``bench.faults``), filled from station.yaml ``simulation.faults``
(:meth:`FaultSchedule.configure`) and from tests (:meth:`FaultSchedule.add` with a :class:`FaultSpec`). Both
transports consult it for every complete message an instrument receives (:class:`sim_instruments.adapter.
InstrumentLink`, shared by the in-process :class:`~sim_instruments.adapter.EmulatorAdapter` and the TCP server
of ``labctl sim serve``), so a schedule acts the same in-process and over loopback TCP. Every fault injected is
appended to :attr:`FaultSchedule.injected` (kind, instrument, role, station time, message, transport) so that
a test can check that each one was noticed and journaled.

Triggers (one per spec; messages are counted per spec, over every link of the instrument, from 1 for the first
message after the spec was added: with station.yaml's schedule the station's ``*IDN?`` on connecting is 1):
``at_message`` (the n-th message), ``every_messages`` (every n-th), ``probability`` (each message, seeded by
``simulation.faults.seed``), ``at_s`` (the first message at or after ``at_s`` seconds of station time after the
schedule was made), ``every_s`` (the first message of each further period). ``count`` caps the injections of a
spec (default: 1 for ``at_message`` / ``at_s``, unlimited otherwise). A fault that needs a particular message
(``timeout`` and ``garbage`` a reply, ``stall`` a move) waits, armed, for the next such message; triggers
meanwhile add nothing (one armed fault per spec), so ``every_messages: 3`` never piles up faults behind commands.

What a client sees, per kind (in-process: the :class:`~sim_instruments.adapter.EmulatorAdapter` a station opens
for ``sim://`` resources; over TCP: pyvisa-py ``TCPIP::127.0.0.1::<port>::SOCKET`` / ``ASRLsocket://`` resources,
as labctl opens them through :class:`drivers.io_helpers.DeadlineVISAAdapter`, and plain pyvisa-py):

``timeout``
    The query runs but its reply (and a serial console's prompt) never comes; an echo still does.
    In-process: the read raises ``pyvisa.errors.VisaIOError`` with ``error_code ==
    StatusCode.error_timeout`` after the resource's timeout (``instruments.<role>.timeout_ms``, or what the
    driver set meanwhile) has passed on the bench clock: the adapter sleeps it there, honest timing. TCP: the
    same ``VisaIOError(error_timeout)`` after the timeout in real time (pyvisa-py and DeadlineVISAAdapter alike).
``drop``
    The link is closed as the message arrives (the message is lost); the instrument keeps its state.
    In-process: the write of that message and every later write/read on the adapter raise ``VisaIOError`` with
    ``error_code == StatusCode.error_connection_lost`` until the station reopens the resource (a reopen makes a
    new emulator in-process: :meth:`labctl.station.Station.reconnect` always meets a power-on instrument there).
    TCP: the server shuts the socket; the write that carried the message succeeded, so the read waiting for its
    reply raises ``VisaIOError(error_timeout)`` after the timeout (DeadlineVISAAdapter and plain pyvisa-py);
    then DeadlineVISAAdapter raises ``ConnectionError`` ("the peer closed the connection") at once on every
    write or read, plain pyvisa-py ``BrokenPipeError`` / ``ConnectionResetError`` on a write and
    ``VisaIOError(error_timeout)`` on a read. The served instrument keeps its state for the next connection.
``garbage``
    The reply is replaced by :data:`GARBAGE` (bytes that are no number, no keyword, not ASCII) and the read
    termination. In-process: ``read()`` returns ``GARBAGE.decode("latin-1")``; TCP through DeadlineVISAAdapter
    it returns the text with U+FFFD replacement characters; plain pyvisa-py ``read()`` raises
    ``UnicodeDecodeError`` (its ASCII decoding). Then, in the driver: ``float(reply)`` raises ``ValueError``; a
    PyMeasure control with mapped values (e.g. ``source_enabled``) raises ``KeyError``; a PyMeasure numeric
    control (``values()``, e.g. ``source_voltage``) raises nothing and returns the garbage *string* (it keeps
    what it cannot cast): check the type of what a control returns.
``reboot``
    A power cycle as the message arrives (the message is lost): the instrument's state goes back to power-on /
    ``*RST`` defaults (:func:`power_on_reset`: output off, levels 0, error queue empty) and the link drops as for
    ``drop`` (over TCP every connection of that instrument). The client sees exactly what ``drop`` shows; after
    reconnecting, ``*IDN?`` answers and the read-back shows the defaults (``:OUTP?`` -> ``0``). Emulators with a
    state model: the SMUs (2400, 2450), the FW102C (its saved settings), the Cornerstone, and every SCPI emulator
    (``*RST`` + ``*CLS``); the others (SC10, LaserBoxx, SR830, SR570) keep their state (``state_reset`` False).
``reset``
    The instrument's state goes back to the defaults as for ``reboot``, the link stays up, the message then runs
    on the reset instrument. No exception at all: only a read-back (``:OUTP?`` -> ``0``, ``:SOUR:VOLT?`` ->
    ``0``) shows it.
``unavailable``
    The link drops as for ``drop`` and for ``duration_s`` of station time the instrument accepts no
    connection. In-process: opening the resource raises ``VisaIOError`` with ``error_code ==
    StatusCode.error_resource_not_found`` (no emulator is made); the station wraps it in ``StationError("cannot
    open instrument ...")`` with that VisaIOError as ``__cause__``. TCP: the port is closed for that time (connect
    refused). pyvisa-py's ``open_resource`` still returns a resource; its first write raises
    ``ConnectionRefusedError``; through DeadlineVISAAdapter the first write raises ``ConnectionError``, so the
    station's open is ``StationError("cannot open instrument ... no answer to '*IDN?' (ConnectionError: ...")``
    (``__cause__`` an ``IdentityError`` whose ``__cause__`` is the ``ConnectionError``).
``stall``
    A move of a filter wheel (FW102C ``pos=n``) or of a monochromator (Cornerstone ``GOWAVE``, ``GRAT``,
    ``FILTER``) never completes: the FW102C echoes the command and never prints its prompt; the Cornerstone
    echoes, and answers no query until the stall is over. The position does not change. The stall lasts
    ``duration_s`` of station time (0: until the next message). The client's read times out:
    ``VisaIOError(error_timeout)``, in-process after the timeout on the bench clock.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

KINDS: tuple[str, ...] = ("timeout", "drop", "garbage", "reboot", "reset", "unavailable", "stall")
"""The faults the bench can inject (see the module docstring)."""
TRIGGERS: tuple[str, ...] = ("at_message", "every_messages", "probability", "at_s", "every_s")
"""What starts a fault (exactly one per :class:`FaultSpec`)."""
LINK_FAULTS = frozenset({"drop", "reboot", "unavailable"})
"""Faults that close the link: the message that met them is lost."""
GARBAGE = b"\xfe\xa7#!~\x8f\xc3("
"""What a ``garbage`` reply is made of: no number, no keyword, not ASCII, no termination character."""


class LinkDropped(Exception):
    """Raised by :meth:`sim_instruments.adapter.InstrumentLink.execute` when a fault closes the link.

    every_link: True when every connection of the instrument goes (a power cycle), False for this one only."""

    def __init__(self, kind: str, every_link: bool) -> None:
        super().__init__(f"simulated fault: {kind}")
        self.kind = kind
        self.every_link = every_link


@dataclass
class FaultSpec:
    """One entry of a fault schedule (``simulation.faults.schedule``).

    instrument: the ``sim://<name>`` name of the instrument (e.g. ``smu``) or a station role.
    kind: one of :data:`KINDS`.
    at_message, every_messages, probability, at_s, every_s: the trigger (exactly one; see the module docstring).
    duration_s: how long ``unavailable`` refuses connections and a ``stall`` lasts (s of station time).
    count: most injections of this spec (None: 1 for ``at_message`` / ``at_s``, else unlimited).
    """

    instrument: str
    kind: str
    at_message: int | None = None
    every_messages: int | None = None
    probability: float | None = None
    at_s: float | None = None
    every_s: float | None = None
    duration_s: float = 0.0
    count: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"fault kind {self.kind!r} (allowed: {', '.join(KINDS)})")
        given = [t for t in TRIGGERS if getattr(self, t) is not None]
        if len(given) != 1:
            raise ValueError(f"a fault on {self.instrument!r} needs exactly one trigger, not {given or 'none'} "
                             f"(allowed: one of {', '.join(TRIGGERS)})")
        if self.count is None and given[0] in ("at_message", "at_s"):
            self.count = 1

    @property
    def trigger(self) -> str:
        """The name of the trigger given (one of :data:`TRIGGERS`)."""
        return next(t for t in TRIGGERS if getattr(self, t) is not None)


@dataclass
class _State:
    """What the schedule keeps per spec: messages counted, injections made, faults armed, next period."""

    messages: int = 0
    injected: int = 0
    armed: int = 0
    next_period: int = 1


@dataclass
class FaultSchedule:
    """The faults of one bench (see the module docstring). Thread-safe: the TCP server's links share it.

    clock: the bench clock (``now()`` in s); ``at_s`` / ``every_s`` count from its value at creation.
    seed: seed of the ``probability`` draws.
    """

    clock: Any
    seed: int | None = 0
    specs: list[FaultSpec] = field(default_factory=list)
    #: every fault injected, in order: {"kind", "instrument" (sim name), "role" (None when the link has none),
    #: "time" (station time, s), "message" (the one that met it), "transport" ("in-process" | "tcp")}, and for
    #: reboot / reset "state_reset" (False: the emulator has no state model, :func:`power_on_reset`)
    injected: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(self.seed)
        self._t0_s = float(self.clock.now())
        self._states: list[_State] = [_State() for _ in self.specs]
        self._unavailable_until: dict[str, float] = {}

    # -- filling it ----------------------------------------------------------------------------------------
    def add(self, spec: FaultSpec) -> FaultSpec:
        """Schedule ``spec`` from now on (its message count starts at 0); returns it."""
        with self._lock:
            self.specs.append(spec)
            self._states.append(_State())
        return spec

    def configure(self, section: Any) -> None:
        """Take the schedule of station.yaml ``simulation.faults`` (:class:`sim_instruments.config.FaultsConfig`,
        read by duck typing: ``seed``, ``schedule`` of entries with the :class:`FaultSpec` fields)."""
        if section is None:
            return
        self._rng = random.Random(section.seed)
        self.seed = section.seed
        for entry in section.schedule:
            data = entry.model_dump() if hasattr(entry, "model_dump") else dict(entry)
            self.add(FaultSpec(**data))

    def clear(self) -> None:
        """No more faults (the record of those injected stays)."""
        with self._lock:
            self.specs.clear()
            self._states.clear()
            self._unavailable_until.clear()

    def count(self, kind: str | None = None) -> int:
        """How many faults were injected (of ``kind``, or all)."""
        return sum(1 for f in self.injected if kind is None or f["kind"] == kind)

    # -- the transports' questions -------------------------------------------------------------------------
    def refuses_open(self, names: Iterable[str]) -> bool:
        """Whether an instrument called any of ``names`` accepts no connection now (``unavailable``)."""
        now = self.clock.now()
        with self._lock:
            return any(self._unavailable_until.get(n, -1.0) > now for n in names)

    def before(self, names: tuple[str, ...], emulator: Any, message: str, transport: str) -> str | None:
        """Count ``message`` for the instrument called ``names`` (its sim name first, then its role) and apply a
        fault that acts before it runs: returns ``"drop"`` / ``"reboot"`` / ``"unavailable"`` (the link
        closes, the message is lost: the emulator is already reset for ``reboot``), ``"reset"`` / ``"stall"``
        (applied; the message runs), or None."""
        now = self.clock.now()
        with self._lock:
            chosen = None
            for spec, state in self._matching(names):
                state.messages += 1
                if self._fires(spec, state, now):
                    state.armed = 1  # a fault still waiting for its message absorbs the triggers meanwhile
                if chosen is None and state.armed and spec.kind not in ("timeout", "garbage"):
                    if spec.kind == "stall" and not self._stall(spec, emulator, message, now):
                        continue
                    state.armed -= 1
                    state.injected += 1
                    chosen = spec
            if chosen is None:
                return None
            if chosen.kind == "unavailable":
                until = now + chosen.duration_s
                for n in names:
                    self._unavailable_until[n] = max(until, self._unavailable_until.get(n, -1.0))
            record = self._record(chosen, names, message, transport, now)
        if chosen.kind in ("reboot", "reset"):
            record["state_reset"] = power_on_reset(emulator)
        return chosen.kind

    def reply_fault(self, names: tuple[str, ...], message: str, transport: str) -> str | None:
        """After ``message`` ran and produced a reply: ``"timeout"`` (withhold it), ``"garbage"`` (replace it)
        when one is armed for this instrument, else None."""
        now = self.clock.now()
        with self._lock:
            for spec, state in self._matching(names):
                if state.armed and spec.kind in ("timeout", "garbage"):
                    state.armed -= 1
                    state.injected += 1
                    self._record(spec, names, message, transport, now)
                    return spec.kind
        return None

    # -- inside --------------------------------------------------------------------------------------------
    def _matching(self, names: tuple[str, ...]) -> list[tuple[FaultSpec, _State]]:
        return [(s, st) for s, st in zip(self.specs, self._states, strict=True) if s.instrument in names]

    def _fires(self, spec: FaultSpec, state: _State, now: float) -> bool:
        if spec.count is not None and state.injected + state.armed >= spec.count:
            return False
        t = now - self._t0_s
        trigger = spec.trigger
        if trigger == "at_message":
            return state.messages == spec.at_message
        if trigger == "every_messages":
            return state.messages % spec.every_messages == 0
        if trigger == "probability":
            return self._rng.random() < spec.probability
        if trigger == "at_s":
            if t < spec.at_s or state.next_period > 1:
                return False
            state.next_period = 2  # at_s starts one fault (its count more only if given)
            return True
        if t >= state.next_period * spec.every_s:  # every_s: once per period, however many passed unseen
            state.next_period = int(t // spec.every_s) + 1
            return True
        return False

    def _stall(self, spec: FaultSpec, emulator: Any, message: str, now: float) -> bool:
        hook = getattr(emulator, "stall", None)
        until = now + spec.duration_s if spec.duration_s > 0 else None
        return hook is not None and bool(hook(message, until))

    def _record(self, spec: FaultSpec, names: tuple[str, ...], message: str, transport: str,
                now: float) -> dict[str, Any]:
        record = {"kind": spec.kind, "instrument": names[0] if names else None,
                  "role": names[1] if len(names) > 1 else None, "time": now, "message": message,
                  "transport": transport}
        self.injected.append(record)
        return record


def power_on_reset(emulator: Any) -> bool:
    """Put ``emulator`` in its power-on state: its ``power_on()`` if it has one, else a SCPI instrument's
    ``*RST`` + ``*CLS`` (``reset()``, ``clear_status()``). Returns False when the emulator has no state model
    to reset (the link still drops for ``reboot``)."""
    hook = getattr(emulator, "power_on", None)
    if callable(hook):
        hook()
        return True
    reset = getattr(emulator, "reset", None)
    if not callable(reset):
        return False
    reset()
    clear = getattr(emulator, "clear_status", None)
    if callable(clear):
        clear()
    return True
