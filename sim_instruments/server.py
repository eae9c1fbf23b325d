"""Out-of-process transport: each emulator behind its own TCP port on 127.0.0.1 (real time, real sockets).

Any VISA client reaches them with pyvisa-py: ``TCPIP::127.0.0.1::<port>::SOCKET`` for LAN/GPIB-style
instruments, ``ASRLsocket://127.0.0.1:<port>::INSTR`` for serial ones (pyvisa-py hands the board string to
``serial.serial_for_url``, so serial drivers run unchanged). Framing is the same as the in-process
:class:`~sim_instruments.adapter.EmulatorAdapter` (shared :class:`~sim_instruments.adapter.InstrumentLink`).

Threads: one accept loop per instrument; per client connection a reader thread (takes bytes as they arrive,
hands a busy instrument the messages it acts on out of turn, e.g. ``:ABORt`` during a sweep) and an executor
thread (runs the others in order, like an instrument's input buffer); sequential and simultaneous clients are
served, a disconnect only ends its own threads. Each instrument handles one message at a time over all its
links; the bench physics, shared, is serialised by one lock for the whole server, which an instrument lets go
while instrument time passes (:func:`~sim_instruments.clock.bench_lock_held`): one instrument's sweep never
holds up another's replies. Sockets bind to the loopback interface only.
"""

from __future__ import annotations

import ipaddress
import queue
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from sim_instruments.adapter import Emulator, InstrumentLink, framing_hint
from sim_instruments.faults import LinkDropped

POLL_S = 0.05  # how often blocked threads look at the stop flag (s)
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only


class Endpoint(NamedTuple):
    """One served instrument. Terminations as a client configures them (pyvisa ``open_resource`` kwargs).

    read_termination: ends the instrument's replies; write_termination: ends the commands it receives.
    echo / prompt: serial-console behaviour (None: the emulator's ``echo``/``prompt`` attributes).
    serial: advertise an ``ASRLsocket://`` resource instead of ``TCPIP::...::SOCKET``.
    faults: the bench's :class:`~sim_instruments.faults.FaultSchedule` (None: no faults); ``names``: what its
    entries may call this instrument (the ``sim://`` name, then the station role).
    """

    emulator: Emulator
    read_termination: str = "\n"
    write_termination: str = "\n"
    echo: bool | None = None
    prompt: str | None = None
    serial: bool = False
    faults: Any = None
    names: tuple[str, ...] = ()


def _check_loopback(host: str) -> str:
    address = "127.0.0.1" if host == "localhost" else host
    if not ipaddress.ip_address(address).is_loopback:
        raise ValueError(f"the simulator binds to the loopback interface only, not {host!r}")
    return address


class _InstrumentServer:
    """Listening socket + accept thread for one instrument."""

    def __init__(self, name: str, endpoint: Endpoint, host: str, port: int, owner: SimServer) -> None:
        self.name = name
        self.endpoint = endpoint
        self.owner = owner
        echo, prompt = framing_hint(endpoint.emulator, endpoint.echo, endpoint.prompt)
        self.echo, self.prompt = echo, prompt
        self.host = host
        self._sock_lock = threading.Lock()
        #: the listening socket; None while a fault holds the instrument ``unavailable`` (connections refused)
        self.sock: socket.socket | None = self._listen(port)
        self.port: int = self.sock.getsockname()[1]
        self.connections: list[tuple[socket.socket, threading.Thread]] = []
        self.thread = threading.Thread(target=self._accept_loop, name=f"sim-{name}-accept", daemon=True)
        self.thread.start()

    def _listen(self, port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, port))
            sock.listen(4)
        except OSError:
            sock.close()
            raise
        sock.settimeout(POLL_S)
        return sock

    def go_offline(self) -> None:
        """Close the listening socket (a client's connect is refused) and every connection; the accept loop
        listens again on the same port once the fault schedule lets the instrument be reached."""
        with self._sock_lock:
            sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()
        self.drop_connections()

    def drop_connections(self) -> None:
        """Shut every client connection of this instrument (a power cycle, an unplugged cable)."""
        for conn, _ in list(self.connections):
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _refused(self) -> bool:
        faults = self.endpoint.faults
        return faults is not None and faults.refuses_open(self.endpoint.names)

    def _accept_loop(self) -> None:
        while not self.owner.stopping.is_set():
            with self._sock_lock:
                sock = self.sock
            if sock is None:
                if self._refused():
                    self.owner.stopping.wait(POLL_S)
                    continue
                try:
                    with self._sock_lock:
                        self.sock = sock = self._listen(self.port)
                except OSError:
                    self.owner.stopping.wait(POLL_S)  # the port is not free yet: try again
                    continue
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                if self.sock is None and not self.owner.stopping.is_set():
                    continue  # taken offline by a fault
                return  # listening socket closed
            if self._refused():
                conn.close()  # accepted just before the fault closed the port
                continue
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.settimeout(POLL_S)
            name = f"sim-{self.name}-conn"
            thread = threading.Thread(target=self._serve, args=(conn,), name=name, daemon=True)
            self.connections = [(c, t) for c, t in self.connections if t.is_alive()]
            self.connections.append((conn, thread))
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        """Read the client's bytes as they come; run its messages in order on an executor thread.

        Reading never waits for the instrument: a message the busy instrument handles out of turn (``:ABORt``
        during a sweep, :meth:`InstrumentLink.interrupt`) reaches it at once, the others queue as in an
        instrument's input buffer."""
        ep = self.endpoint
        link = InstrumentLink(ep.emulator, ep.read_termination, ep.write_termination, self.echo, self.prompt,
                              lock=self.owner.lock, faults=ep.faults, names=ep.names, transport="tcp")
        messages: queue.Queue[str | None] = queue.Queue()
        executor = threading.Thread(target=self._execute, args=(conn, link, messages),
                                    name=f"sim-{self.name}-exec", daemon=True)
        executor.start()
        self.connections.append((conn, executor))
        try:
            while not self.owner.stopping.is_set():
                try:
                    data = conn.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    return  # reset by the client or closed by us
                if not data:
                    return  # client disconnected
                if _QUICKACK is not None:
                    # ACK at once, as instruments' embedded stacks do: otherwise a client's write followed by a
                    # query (Nagle on the client) waits out Linux's 40 ms delayed ACK
                    try:
                        conn.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
                    except OSError:
                        pass
                for message in link.split(data):
                    if not link.interrupt(message):
                        messages.put(message)
        finally:
            messages.put(None)  # the executor runs what was received, then closes the connection

    def _execute(self, conn: socket.socket, link: InstrumentLink, messages: queue.Queue[str | None]) -> None:
        with conn:
            while True:
                message = messages.get()
                if message is None or self.owner.stopping.is_set():
                    return
                try:
                    out, replies = link.execute(message)
                except LinkDropped as exc:
                    self._link_dropped(conn, exc)
                    return
                if replies and self.owner.latency_s > 0:
                    time.sleep(self.owner.latency_s * replies)
                if out:
                    try:
                        conn.sendall(out)
                    except OSError:
                        pass  # the client has gone; its remaining commands still run (as they would)

    def _link_dropped(self, conn: socket.socket, exc: LinkDropped) -> None:
        """A fault closed the link: this connection (``drop``), every one (``reboot``), and the port too
        (``unavailable``); the messages queued behind it are lost with the connection."""
        if exc.kind == "unavailable":
            self.go_offline()
        elif exc.every_link:
            self.drop_connections()
        try:
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def resource_string(self, host: str) -> str:
        if self.endpoint.serial:
            return f"ASRLsocket://{host}:{self.port}::INSTR"
        return f"TCPIP::{host}::{self.port}::SOCKET"

    def close(self, timeout_s: float) -> None:
        with self._sock_lock:
            sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()
        for conn, _ in self.connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.thread.join(timeout_s)
        for _, thread in self.connections:
            thread.join(timeout_s)


class SimServer:
    """Running TCP servers for a set of emulators (see :func:`serve`). Close it, or use it as a context."""

    def __init__(
        self,
        instruments: Mapping[str, Endpoint],
        host: str,
        ports: Mapping[str, int],
        latency_s: float,
        lock: Any,
    ) -> None:
        self.host = host
        self.latency_s = float(latency_s)
        self.lock = lock if lock is not None else threading.RLock()
        self.stopping = threading.Event()
        self._servers: dict[str, _InstrumentServer] = {}
        try:
            for name, endpoint in instruments.items():
                self._servers[name] = _InstrumentServer(name, endpoint, host, ports.get(name, 0), self)
        except BaseException:
            self.close()
            raise

    @property
    def ports(self) -> dict[str, int]:
        """TCP port of each instrument."""
        return {name: srv.port for name, srv in self._servers.items()}

    def resource_strings(self) -> dict[str, str]:
        """VISA resource name of each instrument, for pyvisa-py (``@py``)."""
        return {name: srv.resource_string(self.host) for name, srv in self._servers.items()}

    def close(self, timeout_s: float = 2.0) -> None:
        """Stop accepting, drop the clients, join every thread (each join bounded by ``timeout_s``)."""
        self.stopping.set()
        for srv in self._servers.values():
            srv.close(timeout_s)

    def __enter__(self) -> SimServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(
    instruments: Mapping[str, Endpoint | tuple[Any, ...]],
    host: str = "127.0.0.1",
    ports: Mapping[str, int] | None = None,
    latency_s: float = 0.0,
    serial: Iterable[str] = (),
    lock: Any = None,
) -> SimServer:
    """Serve each emulator on its own TCP port of ``host`` (loopback only) and return the running server.

    instruments: name -> ``(emulator, read_termination, write_termination)`` or an :class:`Endpoint`
        (a longer tuple fills the further Endpoint fields).
    ports: name -> port; missing or 0 = a free port chosen by the OS.
    latency_s: added before every reply to a query (s, once per reply), e.g. 0.005 to mimic a GPIB round trip.
    serial: names of serial instruments, advertised as ``ASRLsocket://`` resources.
    lock: lock serialising emulator access (default: a new RLock shared by all instruments of this server).
    """
    address = _check_loopback(host)
    serial_names = set(serial)
    endpoints = {}
    for name, spec in instruments.items():
        endpoint = spec if isinstance(spec, Endpoint) else Endpoint(*spec)
        if name in serial_names:
            endpoint = endpoint._replace(serial=True)
        endpoints[name] = endpoint
    unknown = serial_names - set(endpoints)
    if unknown:
        raise ValueError(f"serial names not among the instruments: {sorted(unknown)}")
    return SimServer(endpoints, address, dict(ports or {}), latency_s, lock)
