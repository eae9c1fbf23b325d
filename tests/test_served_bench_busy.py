"""The served bench (sim_instruments.server) in real time: a busy source meter, how it is aborted, and the
other instruments answering meanwhile (issue 7, item 3). Raw sockets on 127.0.0.1, no driver in between."""

from __future__ import annotations

import re
import socket
import time

import pytest

from labctl.config import parse_station
from sim_instruments.serve import start_server
from tests.helpers import default_station

POINT_DELAY_S = 1.0
POINTS = 8  # an 8 s sweep: far longer than any wait below

SWEEP_2400 = (":SOUR:FUNC VOLT;:SOUR:VOLT:MODE SWE;:SOUR:VOLT:STAR 0;:SOUR:VOLT:STOP 0.7;"
              f":SOUR:SWE:POIN {POINTS};:TRIG:COUN {POINTS};:SOUR:DEL {POINT_DELAY_S};:SENS:CURR:PROT 0.01;:OUTP ON")
SWEEP_2450 = (':SOUR:FUNC VOLT;:SOUR:VOLT:ILIM 0.01;'
              f':SOUR:SWE:VOLT:LIN 0, 0.7, {POINTS}, {POINT_DELAY_S}, 1, BEST, OFF, OFF, "defbuffer1";:OUTP ON')


class Client:
    """A raw TCP client of one served instrument."""

    def __init__(self, resource: str, term: bytes) -> None:
        port = int(re.search(r"127\.0\.0\.1(?:::|:)(\d+)", resource).group(1))
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=2)
        self.term = term
        self.buffer = b""

    def send(self, text: str) -> None:
        self.sock.sendall(text.encode() + self.term)

    def receive(self, ends: bytes, within_s: float) -> str | None:
        """Bytes up to and including ``ends`` if they arrive within ``within_s``, else None."""
        end = time.monotonic() + within_s
        while ends not in self.buffer:
            left = end - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return None
            if not data:
                return None
            self.buffer += data
        index = self.buffer.index(ends) + len(ends)
        out, self.buffer = self.buffer[:index], self.buffer[index:]
        return out.decode()

    def close(self) -> None:
        self.sock.close()


def _serve(driver: str):  # noqa: ANN202
    data = default_station()
    data["instruments"]["smu"]["driver"] = driver
    return start_server(parse_station(data))


@pytest.fixture(params=["keithley2400", "keithley2450"])
def bench(request):
    server = _serve(request.param)
    smu = server._servers["smu"].endpoint.emulator
    clients: list[Client] = []

    def client(role: str) -> Client:
        term = b"\r" if role == "shutter" else b"\n"
        c = Client(server.resource_strings()[role], term)
        clients.append(c)
        return c

    try:
        yield request.param, server, smu, client
    finally:
        for c in clients:
            c.close()
        server.close()


def _start_sweep(driver: str, smu_client: Client) -> None:
    if driver == "keithley2400":
        smu_client.send(SWEEP_2400)
        smu_client.send(":READ?")
    else:  # as drivers.keithley2450 does: :INIT is overlapped, *WAI holds the commands that follow
        smu_client.send(SWEEP_2450)
        smu_client.send(":INIT")
        smu_client.send("*WAI")


def test_shutter_answers_while_the_smu_sweeps(bench):
    """One instrument's sweep must not block another's replies (the bench lock was held for the whole sweep)."""
    driver, _, smu, client = bench
    sm, shutter = client("smu"), client("shutter")
    _start_sweep(driver, sm)
    time.sleep(0.5)
    t0 = time.monotonic()
    shutter.send("ens?")
    assert shutter.receive(b"> ", within_s=0.5) == "ens?\r0\r> "
    assert time.monotonic() - t0 < 0.5
    sm.send(":ABOR")


def test_a_sweeping_smu_defers_output_off_until_aborted(bench):
    """As the real 2400 does: a running sweep leaves ``:OUTP OFF`` waiting; ``:ABORt`` ends the sweep at once,
    then the queued ``:OUTP OFF`` runs; the aborted query never answers."""
    driver, server, smu, client = bench
    sm = client("smu")
    _start_sweep(driver, sm)
    time.sleep(0.5)
    sm.send(":OUTP OFF")
    sm.send(":OUTP?")
    assert sm.receive(b"\n", within_s=1.0) is None  # busy: nothing runs, the output stays on
    assert smu.output
    t0 = time.monotonic()
    sm.send(":ABOR")
    assert sm.receive(b"\n", within_s=1.0) == "0\n"  # only the :OUTP? reply: no sweep data
    assert time.monotonic() - t0 < 0.3
    assert not smu.output
    assert smu.bench._bias_V in (None, 0.0)  # the cell is no longer biased


def test_a_second_client_of_the_busy_smu(bench):
    """A 2400 does one thing at a time over all its links: a query from another connection is answered only
    once the sweep is aborted (not interleaved with it). A 2450 runs its sweep in the background: answered at
    once, and ``:TRAC:ACT?`` sees the buffer filling."""
    driver, _, smu, client = bench
    sm, other = client("smu"), client("smu")
    _start_sweep(driver, sm)
    time.sleep(0.5 + POINT_DELAY_S)
    other.send(":OUTP?")
    if driver == "keithley2400":
        assert other.receive(b"\n", within_s=0.8) is None
        sm.send(":ABOR")
        assert other.receive(b"\n", within_s=1.0) == "1\n"  # aborted: idle again, output on (bias level)
    else:
        assert other.receive(b"\n", within_s=0.3) == "1\n"
        other.send(':TRAC:ACT? "defbuffer1"')
        assert other.receive(b"\n", within_s=0.3) in ("1\n", "2\n")
        sm.send(":ABOR")
