"""Small I/O helpers shared by the drivers: read timeouts, and exchanges with a deadline.

:class:`DeadlineVISAAdapter` is the PyMeasure ``VISAAdapter`` every non-simulated instrument is opened with
(labctl.station). It bounds every exchange in time, whatever the peer does:

* a read ends by the resource's timeout even when the peer keeps sending bytes without the read
  termination (pyvisa-py's socket read only looks at its deadline while *no* data arrives, so a peer
  spewing garbage kept it reading forever);
* a peer that has closed its end is an error at once (``ConnectionError``), not a read that spins on
  ``recv() == b""`` until its timeout;
* :meth:`~DeadlineVISAAdapter.flush_read_buffer` drains what is waiting for a bounded time: pyvisa-py's
  ``clear()`` of a ``TCPIP::...::SOCKET`` session loops while the socket is readable, and a closed socket is
  always readable, so it spun at 100 % CPU forever (the hang of issue 7, item 1).

PyVISA itself is not patched: the adapter reaches the socket of a pyvisa-py session (TCP socket, or the
pyserial ``socket://`` URL behind ``ASRLsocket://``) only to *look* whether the peer closed.
"""

from __future__ import annotations

import logging
import math
import select
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pymeasure.adapters import VISAAdapter
from pyvisa.constants import StatusCode
from pyvisa.errors import VisaIOError

_log = logging.getLogger(__name__)
READ_CHUNK_BYTES = 1 << 20
"""Largest read asked of PyVISA in one call (bytes); a longer reply is read in several calls."""
FLUSH_BUDGET_S = 0.5
"""Longest time :meth:`DeadlineVISAAdapter.flush_read_buffer` drains unread replies (s)."""


@contextmanager
def timeout_at_least(adapter: Any, seconds: float) -> Iterator[None]:
    """Raise ``adapter``'s VISA read timeout (ms) to ``seconds`` for the duration, then restore it."""
    connection = getattr(adapter, "connection", None)
    old = getattr(connection, "timeout", None)
    if isinstance(old, bool) or not isinstance(old, (int, float)):
        yield  # no numeric timeout to raise (None = infinite, or a test double)
        return
    connection.timeout = max(old, seconds * 1000.0)
    try:
        yield
    finally:
        connection.timeout = old


def session_socket(connection: Any) -> socket.socket | None:
    """The OS socket under a pyvisa-py session (TCPIP SOCKET, or ASRL over a ``socket://`` URL), else None."""
    try:
        session = connection.visalib.sessions[connection.session]
    except Exception:  # noqa: BLE001 - another VISA library, a closed session: nothing to look at
        return None
    interface = getattr(session, "interface", None)
    for candidate in (interface, getattr(interface, "_socket", None)):
        if isinstance(candidate, socket.socket):
            return candidate
    return None


def peer_closed(sock: socket.socket) -> bool:
    """True if the peer of ``sock`` has closed its end and nothing more is to be read (does not consume)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        return sock.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):  # reset, or our own end already closed
        return True


class DeadlineVISAAdapter(VISAAdapter):
    """``VISAAdapter`` whose reads and flushes end in bounded time (see the module docstring).

    Constructor arguments as PyMeasure's ``VISAAdapter``; the read deadline is the resource's ``timeout``.
    """

    def _socket(self) -> socket.socket | None:
        return session_socket(self.connection)

    def _check_peer(self) -> None:
        sock = self._socket()
        if sock is None:
            return
        try:
            pending = self.connection.visalib.sessions[self.connection.session]._pending_buffer
        except (AttributeError, KeyError):
            pending = b""
        if not pending and peer_closed(sock):
            raise ConnectionError(f"{self.resource_name}: the peer closed the connection")

    def _deadline_s(self) -> float:
        timeout_ms = getattr(self.connection, "timeout", None)
        if not isinstance(timeout_ms, (int, float)) or isinstance(timeout_ms, bool) or math.isinf(timeout_ms):
            return math.inf
        return timeout_ms / 1000.0

    def _write(self, command: str, **kwargs: Any) -> None:
        self._check_peer()
        super()._write(command, **kwargs)

    def _read(self, **kwargs: Any) -> str:
        """Up to (excluding) the read termination; ``VisaIOError(timeout)`` once the resource's timeout has
        passed, ``ConnectionError`` if the peer closed."""
        connection = self.connection
        term = (connection.read_termination or "").encode(connection.encoding)
        if kwargs or not term:
            self._check_peer()
            return super()._read(**kwargs)
        timeout_ms = connection.timeout
        deadline = time.monotonic() + self._deadline_s()
        reply = bytearray()
        try:
            while True:
                self._check_peer()
                remaining_s = deadline - time.monotonic()
                if remaining_s <= 0:
                    raise VisaIOError(StatusCode.error_timeout)
                if not math.isinf(remaining_s):
                    connection.timeout = max(1.0, remaining_s * 1000.0)
                reply += connection.read_bytes(READ_CHUNK_BYTES, break_on_termchar=True)
                if reply.endswith(term):
                    return reply[: -len(term)].decode(connection.encoding, errors="replace")
        finally:
            if connection.timeout != timeout_ms:
                connection.timeout = timeout_ms

    def _read_bytes(self, count: int, break_on_termchar: bool = False, **kwargs: Any) -> bytes:
        self._check_peer()
        return super()._read_bytes(count, break_on_termchar, **kwargs)

    def flush_read_buffer(self) -> None:
        """Discard unread replies, for at most :data:`FLUSH_BUDGET_S`; ``ConnectionError`` if the peer closed."""
        sock = self._socket()
        if sock is None:
            super().flush_read_buffer()
            return
        session = self.connection.visalib.sessions[self.connection.session]
        pending = getattr(session, "_pending_buffer", None)
        if pending is not None:
            pending.clear()
        serial = getattr(session, "interface", None)
        if serial is not None and serial is not sock and hasattr(serial, "reset_input_buffer"):
            serial.reset_input_buffer()
        end = time.monotonic() + FLUSH_BUDGET_S
        while time.monotonic() < end:
            try:
                readable, _, _ = select.select([sock], [], [], 0.02)
                if not readable:
                    return
                if not sock.recv(65536):
                    raise ConnectionError(f"{self.resource_name}: the peer closed the connection")
            except OSError as exc:
                raise ConnectionError(f"{self.resource_name}: connection lost ({exc})") from exc

    def device_clear(self) -> bool:
        """Send the bus's device clear (GPIB SDC, USBTMC/VXI-11/HiSLIP clear) if the resource has one.

        Returns False, sending nothing, on transports without a device clear (a raw TCP socket, a serial
        line: pyvisa-py's ``clear()`` there only drains the local buffer)."""
        name = str(self.resource_name).upper()
        if name.startswith("GPIB") or name.startswith("USB") or (name.startswith("TCPIP") and
                                                                 name.endswith("::INSTR")):
            self.connection.clear()
            return True
        return False


def set_serial_framing(adapter: Any, settings: dict[str, Any]) -> None:
    """Data bits, parity and stop bits (``settings``: ``data_bits``, ``parity``, ``stop_bits`` as pyvisa takes
    them) on a pyvisa serial connection given ready-made (PyMeasure sets them only on a port it opens itself);
    nothing for another connection. A socket-backed ASRL resource that lacks an attribute is logged, not fatal."""
    connection = getattr(adapter, "connection", None)
    try:
        from pyvisa.resources import SerialInstrument
    except ImportError:  # pragma: no cover - pyvisa is a dependency of PyMeasure
        return
    if not isinstance(connection, SerialInstrument):
        return
    for attribute in ("data_bits", "parity", "stop_bits"):
        try:
            setattr(connection, attribute, settings[attribute])
        except Exception as exc:  # noqa: BLE001 - e.g. a socket-backed ASRL resource without the attribute
            _log.warning("%s: cannot set %s on %r: %s", type(adapter).__name__, attribute, connection, exc)
