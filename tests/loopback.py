"""Real loopback TCP peers for fault tests: each runs a handler per connection on 127.0.0.1 (ephemeral port)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

HTTP_400 = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
KEITHLEY_IDN = "KEITHLEY INSTRUMENTS INC.,MODEL 2400,4100001,C33   Mar 31 2015 09:32:39/A02  /S/K"


class LoopbackPeer:
    """A TCP server on 127.0.0.1 running ``handler(conn, stop)`` for each client; use as a context manager.

    ``stop`` is a threading.Event set on close; handlers must return soon after it is set."""

    def __init__(self, handler: Callable[[socket.socket, threading.Event], None]) -> None:
        self.handler = handler
        self.stop = threading.Event()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._loop, daemon=True)
        self._accept.start()

    @property
    def resource(self) -> str:
        return f"TCPIP::127.0.0.1::{self.port}::SOCKET"

    def _loop(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(0.05)
            thread = threading.Thread(target=self._run, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _run(self, conn: socket.socket) -> None:
        with conn:
            try:
                self.handler(conn, self.stop)
            except OSError:
                pass

    def close(self) -> None:
        self.stop.set()
        self.sock.close()
        self._accept.join(2)
        for thread in self.threads:
            thread.join(2)

    def __enter__(self) -> LoopbackPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def lines(conn: socket.socket, stop: threading.Event, term: bytes = b"\n"):  # noqa: ANN201 - a generator of str
    """The messages a client sends, one at a time, until it disconnects or ``stop`` is set."""
    pending = b""
    while not stop.is_set():
        try:
            data = conn.recv(4096)
        except TimeoutError:
            continue
        if not data:
            return
        pending += data
        *complete, pending = pending.split(term)
        for message in complete:
            yield message.decode("latin-1")


def http_400(conn: socket.socket, stop: threading.Event) -> None:
    """A local web server: whatever it is sent, it answers ``400 Bad Request`` and closes."""
    for _ in lines(conn, stop):
        conn.sendall(HTTP_400)
        return


def recording_http_400(received: bytearray):  # noqa: ANN201 - a handler for LoopbackPeer
    """As :func:`http_400`, keeping every byte it was sent in ``received`` (what a client sent first)."""

    def handler(conn: socket.socket, stop: threading.Event) -> None:
        conn.settimeout(2.0)
        data = conn.recv(4096)
        received.extend(data)
        if data:
            conn.sendall(HTTP_400)

    return handler


def silent(conn: socket.socket, stop: threading.Event) -> None:
    """Takes everything, answers nothing, never closes."""
    for _ in lines(conn, stop):
        pass


def spew(conn: socket.socket, stop: threading.Event) -> None:
    """After the first message, sends garbage without any line end, without pause, until the client leaves."""
    for _ in lines(conn, stop):
        break
    while not stop.is_set():
        conn.sendall(b"\x00garbage" * 512)
        time.sleep(0.001)


def fake_keithley(answers: dict[str, str], go_bad: threading.Event, how: str = "close"):  # noqa: ANN201
    """A 2400 that answers ``answers`` (query -> reply; other queries: no reply) until ``go_bad`` is set,
    then closes the connection (``how="close"``) or stops answering anything (``how="silent"``)."""

    def handler(conn: socket.socket, stop: threading.Event) -> None:
        pending = b""
        while not stop.is_set():
            if go_bad.is_set() and how == "close":
                return  # hang up as soon as the link goes bad, whether or not a message is waiting
            try:
                data = conn.recv(4096)
            except TimeoutError:
                continue
            if not data:
                return
            pending += data
            *complete, pending = pending.split(b"\n")
            for message in complete:
                reply = None if go_bad.is_set() else answers.get(message.decode("latin-1").strip())
                if reply is not None:
                    conn.sendall(reply.encode() + b"\n")

    return handler
