"""The Lake Shore 211 emulator: the manual's command set, its silence on anything else, its timing, and the
device temperature it reads on the simulated bench (Model 211 user's manual, chapter 4)."""

from __future__ import annotations

import pytest

from labctl.config import parse_station
from sim_instruments.clock import VirtualClock
from sim_instruments.compose import build_bench
from sim_instruments.lakeshore211 import LakeShore211Emulator
from tests.helpers import station_with


class _Bench:
    def __init__(self, t_K: float = 298.15) -> None:
        self.t_K = t_K
        self.clock = VirtualClock()

    def device_temperature_K(self) -> float:
        return self.t_K


def _emulator(t_K: float = 298.15) -> tuple[LakeShore211Emulator, _Bench]:
    bench = _Bench(t_K)
    return LakeShore211Emulator(bench), bench


def test_identity_and_readings_in_the_manuals_format() -> None:
    ls, _ = _emulator(298.15)
    assert ls.handle("*IDN?").startswith("LSCI,MODEL211,")
    assert ls.handle("KRDG?") == "+298.150"
    assert float(ls.handle("CRDG?")) == pytest.approx(25.0, abs=1e-4)
    assert float(ls.handle("FRDG?")) == pytest.approx(77.0, abs=1e-3)
    assert ls.handle("RDGST?") == "000"


@pytest.mark.parametrize("message", ["KRDGG?", "KRDG", "krdg ?", "DISPFLD 7", "ALARM 1,300", "RELAY 3,1",
                                     "KRDG? 1", "*IDN"])
def test_anything_else_is_ignored_silently(message: str) -> None:
    """Misspelled commands, a query without its ?, parameters out of range: no reply, nothing queued (manual
    §4.1.6.2), the settings unchanged."""
    ls, _ = _emulator()
    before = (ls.display_field, dict(ls.alarm), dict(ls.relays))
    assert ls.handle(message) is None
    assert ls.ignored == [message]
    assert (ls.display_field, ls.alarm, ls.relays) == before


def test_a_message_longer_than_64_characters_is_ignored() -> None:
    ls, _ = _emulator()
    assert ls.handle(";".join(["KRDG?"] * 11)) is None  # 65 characters


def test_commands_chain_with_semicolons() -> None:
    ls, _ = _emulator()
    assert ls.handle("INTYPE 0;INTYPE?") == "0"  # the manual's example
    assert ls.handle("DISPFLD 1;DISPFLD?;LOCK?") == "1;0"


def test_each_message_takes_its_serial_time_and_at_least_a_twentieth_of_a_second() -> None:
    """KRDG?: 7 + 10 characters at 960 characters/s = 17.7 ms, below the 20 commands/s limit: 50 ms. Ten chained
    queries: 61 + 89 characters (ten 8-character readings and 9 separators, each line with CR LF) = 156.25 ms."""
    ls, bench = _emulator()
    ls.handle("KRDG?")
    assert bench.clock.now() == pytest.approx(0.05, abs=1e-12)
    ls.handle(";".join(["KRDG?"] * 10))
    assert bench.clock.now() - 0.05 == pytest.approx((59 + 2 + 89 + 2) / 960.0, abs=1e-12)


def test_reading_status_flags_over_and_under_range() -> None:
    ls, bench = _emulator(600.0)
    assert ls.handle("RDGST?") == "032"
    bench.t_K = 1.0
    assert ls.handle("RDGST?") == "016"


def test_high_alarm_with_deadband_unlatched_and_latched() -> None:
    ls, bench = _emulator(300.0)
    ls.handle("ALARM 1,310.0,0,2.0,0")
    assert ls.handle("ALARM?") == "1,+310.0,+0.0,+2.0,0"
    bench.t_K = 311.0
    assert ls.handle("RDGST?") == "008"
    bench.t_K = 309.0  # inside the deadband: still active
    assert ls.handle("RDGST?") == "008"
    bench.t_K = 307.9
    assert ls.handle("RDGST?") == "000"
    ls.handle("ALARM 1,310.0,0,0,1")
    bench.t_K = 311.0
    ls.handle("RDGST?")
    bench.t_K = 300.0
    assert ls.handle("RDGST?") == "008"  # latched
    ls.handle("ALMRST")
    assert ls.handle("RDGST?") == "000"


def test_rst_restores_the_power_up_settings() -> None:
    ls, _ = _emulator()
    ls.handle("DISPFLD 2;BRIGT 3;RELAY 1,2;ALARM 1,300,0,0,1")
    ls.handle("*RST")
    assert ls.handle("DISPFLD?;BRIGT?;RELAY? 1;ALARM?") == "0;8;0;0,+0.0,+0.0,+0.0,0"


def test_on_the_bench_it_reads_the_device_warming_under_light() -> None:
    """temperature_rise_K 8 K, τ 100 s: after 1000 s of 1 sun the sensor reads 298.15 + 8·(1 − e⁻¹⁰) K."""
    import math

    bench = build_bench(parse_station(station_with(device={"temperature_rise_K": 8.0, "temperature_tau_s": 100.0})),
                        VirtualClock())
    ls = LakeShore211Emulator(bench)
    assert float(ls.handle("KRDG?")) == pytest.approx(298.15, abs=1e-3)
    bench.light.shutter_open = True
    bench.clock.sleep(1000.0 - bench.clock.now())
    assert float(ls.handle("KRDG?")) == pytest.approx(298.15 + 8.0 * (1 - math.exp(-10.0)), abs=1e-3)
