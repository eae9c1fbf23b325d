"""The served bench's operator endpoint: detector swaps for a simulated bench in another process."""

from __future__ import annotations

import pytest

from labctl.config import parse_station
from sim_instruments.clock import VirtualClock
from sim_instruments.compose import build_bench
from sim_instruments.operator import OperatorEmulator
from tests.helpers import default_station


def test_place_and_query():
    bench = build_bench(parse_station(default_station()), VirtualClock())
    op = OperatorEmulator(bench)
    assert op.handle("PLACE?") == "dut"
    assert op.handle("PLACE si") == "OK" and bench.optics.in_beam == "si"
    assert op.handle("place ge") == "OK" and op.handle("PLACE?") == "ge"


@pytest.mark.parametrize("request_text", ["PLACE x", "MOVE si", "PLACE", ""])
def test_bad_requests_are_errors_and_change_nothing(request_text):
    bench = build_bench(parse_station(default_station()), VirtualClock())
    reply = OperatorEmulator(bench).handle(request_text)
    assert reply.startswith("ERROR") and bench.optics.in_beam == "dut"
