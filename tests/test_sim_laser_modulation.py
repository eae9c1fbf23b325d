"""The PLQY bench's modulation: the 33500B's output on the LaserBoxx analog input (``AM 1``) sets
``bench.laser.modulation_depth`` and ``modulation_frequency_Hz``; AM 0, output off, another shape, or the
generator's safe state give 0; the laser's mean power stays its set-point.

Expected depths by hand: the generator is ``V_oc`` behind 50 Ω; the displayed amplitude refers to the load setting
R (``V_display = V_oc·R/(R + 50)``, INF: ``V_oc``); the laser input (10 kΩ, full scale 5 V: the LaserBoxx
emulator's documented defaults, [L]) sees ``V_oc·10000/10050``; depth = peak at the input / 5 V.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from drivers.keysight_33500 import KEYSIGHT_33500B_REGISTRATION
from drivers.oxxius_laserboxx import OXXIUS_LASERBOXX_REGISTRATION
from labctl.config import parse_station
from labctl.station import Station
from sim_instruments.bench import Bench
from sim_instruments.clock import RealClock
from sim_instruments.fgen33500 import Fgen33500Emulator
from sim_instruments.laserboxx import LaserBoxxEmulator
from sim_instruments.serve import served_station
from sim_instruments.server import serve
from tests.helpers import default_station

R_IN_OHM, FULL_SCALE_V = 10e3, 5.0


def depth_by_hand(vpp_displayed: float, load_ohm: float | None) -> float:
    """Depth for a displayed Vpp at a load setting (None: INF)."""
    peak_oc = vpp_displayed / 2 * (1.0 if load_ohm is None else (load_ohm + 50.0) / load_ohm)
    return peak_oc * R_IN_OHM / (R_IN_OHM + 50.0) / FULL_SCALE_V


def _station_data() -> dict:
    data = default_station()
    data["instruments"]["laser"] = {"driver": "oxxius_laserboxx", "resource": "sim://laser"}
    data["instruments"]["fgen"] = {"driver": "keysight_33500b", "resource": "sim://fgen"}
    return data


@pytest.fixture
def station():
    station = Station(parse_station(_station_data()))
    station.connect(["laser", "fgen"])
    try:
        yield station
    finally:
        station.close()


def test_the_generator_on_the_analog_input_modulates_the_laser(station: Station) -> None:
    laser = station.require("laser", "laser")
    gen = station.require("fgen", "function_generator")
    bench = station.bench
    laser.set_power_W(0.02)
    laser.set_emission(True)
    laser.set_analog_modulation(True)
    gen.set_waveform("SIN", 7.0, 0.05)  # 50 mVpp, the default load setting INF
    assert bench.laser.modulation_depth == 0.0  # output still off
    gen.set_output(True)
    assert bench.laser.modulation_depth == pytest.approx(depth_by_hand(0.05, None), rel=1e-12)
    assert bench.laser.modulation_depth == pytest.approx(0.0049751, rel=1e-4)  # 0.025·10000/10050/5
    assert bench.laser.modulation_frequency_Hz == 7.0
    assert bench.laser.power_W == pytest.approx(0.02)  # the mean power is the set-point
    assert laser.power_W == pytest.approx(0.02)


def test_a_50_ohm_load_setting_doubles_what_the_high_impedance_input_sees(station: Station) -> None:
    laser = station.require("laser", "laser")
    gen = station.require("fgen", "function_generator")
    laser.set_power_W(0.02)
    laser.set_emission(True)
    laser.set_analog_modulation(True)
    gen.set_waveform("SIN", 13.0, 0.05, load_ohm=50)
    gen.set_output(True)
    assert station.bench.laser.modulation_depth == pytest.approx(depth_by_hand(0.05, 50.0), rel=1e-12)
    assert station.bench.laser.modulation_depth == pytest.approx(2 * depth_by_hand(0.05, None), rel=1e-12)


def test_am_off_output_off_another_shape_and_the_safe_state_give_no_modulation(station: Station) -> None:
    laser = station.require("laser", "laser")
    gen = station.require("fgen", "function_generator")
    bench = station.bench
    laser.set_power_W(0.02)
    laser.set_emission(True)
    gen.set_waveform("SIN", 7.0, 1.0)
    gen.set_output(True)
    assert (bench.laser.modulation_depth, bench.laser.modulation_frequency_Hz) == (0.0, 0.0)  # AM 0
    laser.set_analog_modulation(True)
    assert bench.laser.modulation_depth == pytest.approx(depth_by_hand(1.0, None), rel=1e-12)
    laser.set_analog_modulation(False)
    assert (bench.laser.modulation_depth, bench.laser.modulation_frequency_Hz) == (0.0, 0.0)
    laser.set_analog_modulation(True)
    gen.set_shape("SQU")
    assert bench.laser.modulation_depth == 0.0
    gen.set_shape("SIN")
    gen.set_output(False)
    assert bench.laser.modulation_depth == 0.0
    gen.set_output(True)
    assert bench.laser.modulation_depth > 0
    assert KEYSIGHT_33500B_REGISTRATION.safe_state(gen, None) == "output off (output reads off)"
    assert (bench.laser.modulation_depth, bench.laser.modulation_frequency_Hz) == (0.0, 0.0)
    assert bench.laser.power_W == pytest.approx(0.02)


def test_a_change_of_modulation_calls_the_laser_listeners() -> None:
    bench = Bench()
    calls = []
    bench.laser.listeners.append(lambda: calls.append(bench.laser.modulation_depth))
    laser, gen = LaserBoxxEmulator(bench), Fgen33500Emulator(bench)
    calls.clear()
    laser.handle("AM 1")
    gen.handle("OUTP:LOAD INF;VOLT 2;FREQ 7;OUTP ON")
    assert calls and calls[-1] == pytest.approx(depth_by_hand(2.0, None))
    assert bench.laser.modulation_frequency_Hz == 7.0


def test_either_emulator_may_come_first_and_depth_is_capped_at_one() -> None:
    bench = SimpleNamespace(laser=SimpleNamespace(on=False, power_W=0.0, wavelength_nm=520.0))
    gen = Fgen33500Emulator(bench)
    gen.handle("OUTP:LOAD INF;VOLT 20;OUTP ON")  # 10 V peak > the 5 V full scale
    assert bench.laser.modulation_depth == 0.0  # no laser cabled yet
    laser = LaserBoxxEmulator(bench)
    laser.handle("AM 1")
    assert bench.laser.modulation_depth == 1.0
    assert bench.laser.modulation_frequency_Hz == 1000.0


def test_a_bench_without_a_generator_has_no_modulation() -> None:
    bench = Bench()
    laser = LaserBoxxEmulator(bench)
    assert laser.handle("AM 1") == "OK"
    assert (bench.laser.modulation_depth, bench.laser.modulation_frequency_Hz) == (0.0, 0.0)


@pytest.mark.tcp
def test_over_loopback_tcp_the_two_instruments_modulate_the_bench_laser() -> None:
    config = parse_station(_station_data())
    bench = Bench(clock=RealClock())
    lconn, fconn = OXXIUS_LASERBOXX_REGISTRATION.connection, KEYSIGHT_33500B_REGISTRATION.connection
    endpoints = {"laser": (LaserBoxxEmulator(bench), lconn.read_termination, lconn.write_termination),
                 "fgen": (Fgen33500Emulator(bench), fconn.read_termination, fconn.write_termination)}
    with serve(endpoints, serial=["laser"]) as server:
        station = Station(parse_station(served_station(config, server.resource_strings())))
        station.connect(["laser", "fgen"])
        try:
            laser = station.require("laser", "laser")
            gen = station.require("fgen", "function_generator")
            laser.set_power_W(0.01)
            laser.set_emission(True)
            laser.set_analog_modulation(True)
            gen.set_waveform("SIN", 7.0, 0.1, unit="VRMS")  # 0.1 Vrms = 0.2828 Vpp into INF
            gen.set_output(True)
            assert gen.output_is_on()  # a query: the server has handled every command before it
            assert laser.analog_modulation is True
            assert bench.laser.modulation_depth == pytest.approx(depth_by_hand(0.1 * 2 * 2**0.5, None), rel=1e-9)
            assert bench.laser.modulation_frequency_Hz == 7.0
            assert station.safe_state() == []
            assert bench.laser.modulation_depth == 0.0
        finally:
            station.close()
