"""Station.reconnect(role) (issue 8, item 1): close that resource only, reopen it, verify the identity again.

A Keithley 2400 on a real loopback TCP socket (pyvisa-py, as with hardware) hangs up; the station reconnects it,
the new link asks ``*IDN?`` first, and the instrument answers through it. A peer that is gone, or a different
instrument at the address, is a StationError naming the role, and the role is left disconnected.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from labctl.config import parse_station
from labctl.station import Station, StationError
from tests.loopback import KEITHLEY_IDN, LoopbackPeer, lines

SR830_IDN = "Stanford_Research_Systems,SR830,s/n12345,ver1.07"


class Keithley:
    """A 2400 that answers ``*IDN?`` and ``:SYST:ERR?``; connections numbered below ``hang_up_below`` hang up."""

    def __init__(self) -> None:
        self.idn = KEITHLEY_IDN
        self.hang_up_below = 0
        self.received: list[list[str]] = []  # per connection, in order
        self._lock = threading.Lock()

    def handler(self, conn: Any, stop: threading.Event) -> None:
        with self._lock:
            number = len(self.received)
            self.received.append([])
        for message in lines(conn, stop):
            if number < self.hang_up_below:
                return
            self.received[number].append(message.strip())
            reply = {"*IDN?": self.idn, ":SYST:ERR?": '0,"No error"'}.get(message.strip())
            if reply is not None:
                conn.sendall(reply.encode() + b"\n")


def _station(resource: str) -> Station:
    data = {"instruments": {"smu": {"driver": "keithley2400", "resource": resource, "timeout_ms": 500},
                            "lockin": {"driver": "sr830", "resource": "TCPIP::127.0.0.1::1::SOCKET"}}}
    return Station(parse_station(data))


def test_reconnect_reopens_the_smu_and_asks_its_identity_first():
    smu = Keithley()
    with LoopbackPeer(smu.handler) as peer:
        station = _station(peer.resource)
        station.connect(["smu"])
        old = station["smu"]
        assert old.check_errors() == []
        smu.hang_up_below = 1  # the first link goes dead
        with pytest.raises(Exception):  # noqa: B017 - whatever the transport raises for a dead link
            old.check_errors()
        new = station.reconnect("smu")
        assert new is station["smu"] and new is not old
        assert new.check_errors() == []  # the instrument answers through the new link
        assert len(smu.received) == 2 and smu.received[1][0] == "*IDN?"  # identity first on the new link
        assert station.identities["smu"] == KEITHLEY_IDN
        assert list(station.instruments) == ["smu"]  # the other role was not touched
        station.close()


def test_a_different_instrument_after_reconnecting_is_refused():
    smu = Keithley()
    with LoopbackPeer(smu.handler) as peer:
        station = _station(peer.resource)
        station.connect(["smu"])
        smu.idn = SR830_IDN
        with pytest.raises(StationError, match=r"instrument 'smu' \(keithley2400\) at .* is not a keithley2400"):
            station.reconnect("smu")
        assert "smu" not in station and "smu" not in station.identities
        smu.idn = KEITHLEY_IDN
        station.reconnect("smu")  # a later attempt may succeed
        assert station.identities["smu"] == KEITHLEY_IDN
        station.close()


def test_reconnecting_to_a_peer_that_is_gone_is_one_station_error():
    smu = Keithley()
    peer = LoopbackPeer(smu.handler)
    station = _station(peer.resource)
    station.connect(["smu"])
    peer.close()
    with pytest.raises(StationError, match=r"instrument 'smu' \(keithley2400\) at TCPIP::127\.0\.0\.1::"):
        station.reconnect("smu")
    assert "smu" not in station
    with pytest.raises(StationError, match="no instrument 'preamp'"):
        station.reconnect("preamp")


def test_reconnect_replays_the_configuration_the_procedure_made_on_the_new_link():
    """A power-cycled source meter comes back with its defaults; reconnect sets it up as the procedure had it:
    the last call of each configure method, in the order they were last made (here: voltage source last)."""
    from tests.helpers import default_station

    station = Station(parse_station(default_station()))
    station.connect(["smu"])
    old = station["smu"]
    old.configure_current_source(compliance_V=1.5, nplc=0.1)
    old.configure_voltage_source(compliance_A=0.02, nplc=0.5)
    new = station.reconnect("smu")
    fresh = new.adapter.emulator
    assert fresh is not old.adapter.emulator  # a new instrument behind the new link, not the old state
    assert float(fresh.handle(":SENS:CURR:PROT?")) == pytest.approx(0.02)
    assert float(fresh.handle(":SENS:CURR:NPLC?")) == pytest.approx(0.5)
    assert fresh.handle(":SOUR:FUNC?").strip().strip('"') == "VOLT"
    assert list(station.configuration_calls["smu"]) == ["configure_current_source", "configure_voltage_source"]
    station.close()


def test_a_configure_call_that_failed_is_not_replayed():
    from tests.helpers import default_station

    station = Station(parse_station(default_station()))
    station.connect(["smu"])
    with pytest.raises(Exception):  # noqa: B017 - the driver refuses a compliance beyond the 2400's range
        station["smu"].configure_voltage_source(compliance_A=5.0)
    assert station.configuration_calls["smu"] == {}
    station.reconnect("smu")
    station.close()
