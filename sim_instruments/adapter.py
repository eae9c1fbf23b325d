"""In-process transport: a PyMeasure adapter that talks to an emulator object instead of a VISA resource.

The adapter models the byte stream of a real link. A write appends ``command + write_termination`` to the
instrument's input; every complete message (split on ``write_termination``) goes to ``emulator.handle``. What
the instrument sends back is appended to an output buffer:

    [command + write_termination]  if the instrument echoes its input (serial consoles such as the SC10)
    [reply + read_termination]     if ``handle`` returned a reply
    [prompt]                       if the instrument prints a prompt after each command (``"> "``, SC10)

Reads take from that buffer with VISA semantics: :meth:`read` returns up to the read termination; nothing
(or no termination) buffered raises ``VisaIOError(error_timeout)`` exactly where a VISA read would time
out, so drivers' error handling is the same as with hardware; such a read costs the resource's timeout on the
bench clock (a virtual clock passes it at once), as the read would on hardware. Otherwise nothing here sleeps:
the emulator runs on the bench clock.

Faults (:mod:`sim_instruments.faults`): a link given the bench's :class:`~sim_instruments.faults.FaultSchedule`
asks it about every complete message (both transports share :class:`InstrumentLink`, so a schedule acts alike
in-process and over TCP); what a client then sees is listed in that module's docstring.
"""

from __future__ import annotations

import math
import threading
from typing import Any, Protocol

from pymeasure.adapters import Adapter
from pyvisa.constants import StatusCode
from pyvisa.errors import VisaIOError

from sim_instruments.clock import ScheduledRLock, bench_lock_held
from sim_instruments.faults import GARBAGE, LINK_FAULTS, LinkDropped

ENCODING = "latin-1"  # lossless for bytes 0-255: binary blocks survive the str round trip


class Emulator(Protocol):
    """What a transport needs from an emulator (see docs/architecture.md)."""

    def handle(self, message: str) -> str | None: ...


def framing_hint(emulator: Any, echo: bool | None, prompt: str | None) -> tuple[bool, str]:
    """Echo flag and prompt: the explicit values, else the emulator's ``echo``/``prompt`` attributes.

    Echo and prompt are behaviour of the instrument, so an emulator may declare them; the terminations are
    always given by the caller.
    """
    if echo is None:
        echo = bool(getattr(emulator, "echo", False))
    if prompt is None:
        prompt = str(getattr(emulator, "prompt", ""))
    return echo, prompt


_LOCKS_GUARD = threading.Lock()


def instrument_lock(emulator: Any) -> ScheduledRLock:
    """The lock serialising one instrument's messages over all its links (each instrument does one thing at
    a time). Taken *before* the bench lock, which sleeps release: a second client of a busy instrument waits
    for it without holding up the rest of the bench. A re-entrant lock a virtual clock's concurrent group sees
    members wait on (:class:`~sim_instruments.clock.ScheduledRLock`): two members sharing an instrument (the
    switch) take turns on it in virtual time."""
    with _LOCKS_GUARD:
        lock = emulator.__dict__.get("_link_lock")
        if lock is None:
            lock = emulator.__dict__["_link_lock"] = ScheduledRLock()
        return lock


class InstrumentLink:
    """The instrument side of a link: feeds complete messages to the emulator, returns the bytes it sends.

    Shared by the in-process adapter and the TCP server so both frame messages identically.

    faults: the bench's :class:`~sim_instruments.faults.FaultSchedule` (None: no faults), asked about every
    message as the instrument called ``names`` (its sim name, then its station role); ``transport`` goes into
    the record of each fault injected (``"in-process"`` or ``"tcp"``).
    """

    def __init__(
        self,
        emulator: Emulator,
        read_termination: str,
        write_termination: str,
        echo: bool = False,
        prompt: str = "",
        lock: Any = None,
        faults: Any = None,
        names: tuple[str, ...] = (),
        transport: str = "in-process",
    ) -> None:
        self.emulator = emulator
        self.read_termination = read_termination
        self.write_termination = write_termination
        self.echo = echo
        self.prompt = prompt
        self.lock = lock if lock is not None else threading.RLock()
        self.faults = faults
        self.names = tuple(names)
        self.transport = transport
        self._pending = b""

    def feed(self, data: bytes, whole_message: bool = False) -> tuple[bytes, int]:
        """Take received bytes; return (bytes the instrument sends back, number of replies produced).

        whole_message: treat ``data`` as one complete message (used when there is no write termination).
        """
        out, replies = bytearray(), 0
        for message in self.split(data, whole_message):
            sent, n = self.execute(message)
            out += sent
            replies += n
        return bytes(out), replies

    def split(self, data: bytes, whole_message: bool = False) -> list[str]:
        """The complete messages in received bytes (a partial one is kept for the next call)."""
        if whole_message or not self.write_termination:
            return [data.decode(ENCODING)]
        self._pending += data
        term = self.write_termination.encode(ENCODING)
        *complete, self._pending = self._pending.split(term)
        return [m.decode(ENCODING) for m in complete]

    def interrupt(self, message: str) -> bool:
        """Offer ``message`` to the instrument *as it arrives*, before the messages queued ahead of it run.

        A busy instrument acts at once on the few messages its interface handles out of turn (e.g. ``:ABORt``
        during a 2400 sweep; emulator method ``interrupt(message) -> bool``); True means it consumed it.
        Thread-safe: takes no lock."""
        handler = getattr(self.emulator, "interrupt", None)
        return bool(handler(message)) if handler is not None else False

    def execute(self, message: str) -> tuple[bytes, int]:
        """Run one complete message; return (bytes the instrument sends back, number of replies).

        Raises :class:`~sim_instruments.faults.LinkDropped` when a scheduled fault closes the link (the message
        is lost); a ``timeout`` fault withholds the reply and the prompt, a ``garbage`` one replaces the reply
        (:data:`~sim_instruments.faults.GARBAGE` + the read termination)."""
        out, replies = bytearray(), 0
        faults, fault = self.faults, None
        with instrument_lock(self.emulator), bench_lock_held(self.lock):
            if faults is not None:
                kind = faults.before(self.names, self.emulator, message, self.transport)
                if kind in LINK_FAULTS:
                    raise LinkDropped(kind, every_link=kind != "drop")
            clock = getattr(getattr(self.emulator, "bench", None), "clock", None)
            if hasattr(clock, "resync"):
                clock.resync()  # the instrument starts on a command when it arrives, never earlier
            reply = self.emulator.handle(message)
            sends_prompt = getattr(self.emulator, "sends_prompt", None)  # e.g. a jammed FW102C withholds it
            prompt = self.prompt if sends_prompt is None or sends_prompt() else ""
            if faults is not None and reply is not None:
                fault = faults.reply_fault(self.names, message, self.transport)
        if self.echo:
            out += (message + self.write_termination).encode(ENCODING)
        if fault == "timeout":
            return bytes(out), 0  # the reply never comes, nor the prompt after it
        if fault == "garbage":
            out += GARBAGE + self.read_termination.encode(ENCODING)
            replies += 1
        elif reply is not None:
            out += (reply + self.read_termination).encode(ENCODING, errors="replace")
            replies += 1
        out += prompt.encode(ENCODING)
        return bytes(out), replies


class EmulatorConnection:
    """Stand-in for the pyvisa resource at ``adapter.connection`` (timeout in ms, terminations, close)."""

    def __init__(self, timeout: float, read_termination: str, write_termination: str) -> None:
        self.timeout = timeout
        self.read_termination = read_termination
        self.write_termination = write_termination
        self.closed = False

    def close(self) -> None:
        self.closed = True


class EmulatorAdapter(Adapter):
    """PyMeasure adapter connected in-process to ``emulator`` (``handle(message) -> reply | None``).

    read_termination: what ends the instrument's replies; write_termination: what ends commands.
    echo: the instrument echoes every command + write_termination before its reply (None: ask the emulator).
    prompt: text the instrument prints after each command, e.g. ``"> "`` (None: ask the emulator).
    timeout: VISA timeout (ms): a read that times out costs it on ``clock``.
    lock: held while the emulator handles a message (share it with other threads using the same bench).
    faults: the bench's :class:`~sim_instruments.faults.FaultSchedule` (None: none); ``name`` (the ``sim://``
    name; None: the emulator's ``sim_name``) and ``role`` are what its entries may call the instrument. Opening
    an instrument the schedule holds ``unavailable`` raises ``VisaIOError(error_resource_not_found)``.
    clock: the clock a timeout is spent on (None: the schedule's, else the emulator's ``bench.clock``, else none).
    """

    def __init__(
        self,
        emulator: Emulator,
        read_termination: str = "\n",
        write_termination: str = "\n",
        echo: bool | None = None,
        prompt: str | None = None,
        timeout: float = 2000,
        lock: Any = None,
        faults: Any = None,
        name: str | None = None,
        role: str | None = None,
        clock: Any = None,
        **kwargs: Any,
    ) -> None:
        name = name if name is not None else getattr(emulator, "sim_name", None)
        names = tuple(n for n in (name, role) if n)
        if faults is not None and faults.refuses_open(names):
            raise VisaIOError(StatusCode.error_resource_not_found)
        super().__init__(**kwargs)
        echo, prompt = framing_hint(emulator, echo, prompt)
        self.emulator = emulator
        self.link = InstrumentLink(emulator, read_termination, write_termination, echo, prompt, lock,
                                   faults=faults, names=names)
        self.connection = EmulatorConnection(timeout, read_termination, write_termination)
        if clock is None:
            clock = faults.clock if faults is not None else getattr(getattr(emulator, "bench", None), "clock", None)
        self.clock = clock
        self._out = bytearray()

    @property
    def read_termination(self) -> str:
        return self.link.read_termination

    @property
    def write_termination(self) -> str:
        return self.link.write_termination

    @property
    def timeout(self) -> float:
        """Nominal read timeout (ms)."""
        return self.connection.timeout

    @timeout.setter
    def timeout(self, value_ms: float) -> None:
        self.connection.timeout = value_ms

    # -- helpers -------------------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self.connection.closed:
            raise VisaIOError(StatusCode.error_connection_lost)

    def _timeout(self) -> VisaIOError:
        """What a VISA read does when the data never completes: it waits the timeout (on the bench clock), the
        partial data is lost, then it raises."""
        self._out.clear()
        timeout_ms = self.timeout
        if self.clock is not None and isinstance(timeout_ms, (int, float)) and 0 < timeout_ms < math.inf:
            self.clock.sleep(timeout_ms / 1000.0)  # an infinite timeout would hang: in-process it raises at once
        return VisaIOError(StatusCode.error_timeout)

    def _feed(self, data: bytes, whole_message: bool) -> None:
        """Send ``data`` to the instrument; a fault that closes the link closes this adapter (then raises)."""
        try:
            out, _ = self.link.feed(data, whole_message=whole_message)
        except LinkDropped:
            self.connection.close()
            self._out.clear()
            raise VisaIOError(StatusCode.error_connection_lost) from None
        self._out += out

    def _take(self, n: int) -> bytes:
        data = bytes(self._out[:n])
        del self._out[:n]
        return data

    # -- Adapter hooks -------------------------------------------------------------------------------------
    def _write(self, command: str, **kwargs: Any) -> None:
        self._check_open()
        if self.write_termination:
            self._write_bytes((command + self.write_termination).encode(ENCODING))
        else:
            self._feed(command.encode(ENCODING), whole_message=True)

    def _write_bytes(self, content: bytes, **kwargs: Any) -> None:
        self._check_open()
        self._feed(bytes(content), whole_message=not self.write_termination)

    def _read(self, **kwargs: Any) -> str:
        self._check_open()
        term = self.read_termination.encode(ENCODING)
        if not term:
            if not self._out:
                raise self._timeout()
            return self._take(len(self._out)).decode(ENCODING)
        index = self._out.find(term)
        if index < 0:
            raise self._timeout()
        return self._take(index + len(term))[: index].decode(ENCODING)

    def _read_bytes(self, count: int, break_on_termchar: bool = False, **kwargs: Any) -> bytes:
        self._check_open()
        term = self.read_termination.encode(ENCODING)
        if break_on_termchar and term:
            index = self._out.find(term)
            if index >= 0 and (count < 0 or index + len(term) <= count):
                return self._take(index + len(term))
            if count < 0:
                raise self._timeout()
        if count < 0:
            return self._take(len(self._out))  # "read everything until timeout" ends without error
        if len(self._out) < count:
            raise self._timeout()
        return self._take(count)

    def flush_read_buffer(self) -> None:
        """Discard everything the instrument has sent and nobody has read."""
        self._out.clear()

    @property
    def bytes_in_buffer(self) -> int:
        """Bytes sent by the instrument and not read yet."""
        return len(self._out)

    def close(self) -> None:
        """Close the link; further I/O raises ``VisaIOError(error_connection_lost)``."""
        connection = getattr(self, "connection", None)
        if connection is not None:
            connection.close()

    def __repr__(self) -> str:
        return f"<EmulatorAdapter({type(self.emulator).__name__})>"
