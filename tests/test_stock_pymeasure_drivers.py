"""PyMeasure's stock, unmodified Keithley2400 / Keithley2450 classes against the emulators, on both transports.

The same driver code talks to the in-process EmulatorAdapter and, through pyvisa-py, to the loopback TCP
server (``TCPIP::127.0.0.1::<port>::SOCKET``). The bench is the real physical model: readings are checked
against the cell's own current at the forced bias and against its open-circuit voltage.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from pymeasure.instruments import Instrument
from pymeasure.instruments.keithley import Keithley2400, Keithley2450

from sim_instruments.adapter import EmulatorAdapter
from sim_instruments.bench import Bench, Light
from sim_instruments.keithley2400 import Keithley2400Emulator
from sim_instruments.keithley2450 import Keithley2450Emulator
from sim_instruments.server import serve

Connect = Callable[[type[Instrument], Any], Any]
N_POINTS = 21


@pytest.fixture
def bench() -> Bench:
    return Bench(light=Light(irradiance_W_m2=1000.0, shutter_open=True))


@pytest.fixture(params=["in-process", pytest.param("tcp", marks=pytest.mark.tcp)])
def connect(request: pytest.FixtureRequest) -> Iterator[Connect]:
    """Factory: stock driver class + emulator -> connected driver over the parametrised transport."""
    opened: list[Any] = []
    servers = []

    def _connect(cls: type[Instrument], emulator: Any) -> Any:
        if request.param == "in-process":
            inst = cls(EmulatorAdapter(emulator, read_termination="\n", write_termination="\n"))
        else:
            srv = serve({"smu": (emulator, "\n", "\n")})
            servers.append(srv)
            inst = cls(srv.resource_strings()["smu"], visa_library="@py",
                       read_termination="\n", write_termination="\n", timeout=5000)
        opened.append(inst)
        return inst

    yield _connect
    for inst in opened:
        inst.adapter.close()
    for srv in servers:
        srv.close()


def _sweep_stop(bench: Bench) -> tuple[float, float]:
    """(Voc of the cell, a sweep end point 0.1 V beyond it) in V."""
    voc = bench.open_circuit_voltage_V()
    assert 0.5 < voc < 1.5
    return voc, round(voc + 0.1, 2)


def _check_jv(v: np.ndarray, i: np.ndarray, stop: float, voc: float) -> None:
    """Read-back voltages on the programmed staircase, photocurrent at 0 V, zero crossing at Voc."""
    np.testing.assert_allclose(v, np.linspace(0.0, stop, N_POINTS), atol=2e-3)
    assert i[0] < 0 < i[-1]
    assert np.all(np.diff(i) > 0)
    v_cross = float(np.interp(0.0, i, v))
    assert v_cross == pytest.approx(voc, abs=0.01)


@pytest.mark.parametrize("model", ["2400", "2420"])
def test_keithley2400_configures_and_reads(connect: Connect, bench: Bench, model: str) -> None:
    k = connect(Keithley2400, Keithley2400Emulator(bench, model=model))
    assert f"MODEL {model}" in k.id
    k.source_mode = "voltage"
    k.compliance_current = 0.01
    k.source_voltage = 0.0
    k.current_nplc = 1
    k.current_range_auto_enabled = True
    k.enable_source()
    assert k.source_enabled is True
    assert k.source_voltage == 0.0
    current = k.current
    assert current < 0  # power quadrant under light, SMU sign convention
    assert current == pytest.approx(bench.cell_current_A(), rel=1e-3)
    assert k.check_errors() == []
    k.disable_source()
    assert k.source_enabled is False


def test_keithley2400_staircase_sweep_with_read(connect: Connect, bench: Bench) -> None:
    voc, stop = _sweep_stop(bench)
    k = connect(Keithley2400, Keithley2400Emulator(bench))
    k.source_mode = "voltage"
    k.compliance_current = 0.05
    k.write(':SENS:FUNC "CURR"')
    k.current_nplc = 0.1
    k.source_delay = 1e-3
    for command in (":SOUR:VOLT:MODE SWE", ":SOUR:VOLT:STAR 0", f":SOUR:VOLT:STOP {stop}",
                    f":SOUR:SWE:POIN {N_POINTS}", ":SOUR:SWE:SPAC LIN", ":SOUR:SWE:DIR UP"):
        k.write(command)
    k.trigger_count = N_POINTS
    k.enable_source()
    data = np.array(k.values(":READ?"), dtype=float).reshape(-1, 5)  # V, I, R, TIME, STATUS per point
    assert data.shape == (N_POINTS, 5)
    _check_jv(data[:, 0], data[:, 1], stop, voc)
    assert np.all(np.diff(data[:, 3]) > 0)  # time stamps advance
    k.write(":SOUR:VOLT:MODE FIX")
    assert k.check_errors() == []


def test_keithley2400_buffer_methods(connect: Connect, bench: Bench) -> None:
    voc, stop = _sweep_stop(bench)
    k = connect(Keithley2400, Keithley2400Emulator(bench))
    k.source_mode = "voltage"
    k.compliance_current = 0.05
    k.write(':SENS:FUNC "CURR"')
    k.current_nplc = 0.1
    k.config_buffer(points=N_POINTS)
    for command in (":SOUR:VOLT:MODE SWE", ":SOUR:VOLT:STAR 0", f":SOUR:VOLT:STOP {stop}",
                    f":SOUR:SWE:POIN {N_POINTS}"):
        k.write(command)
    k.enable_source()
    k.start_buffer()
    k.wait_for_buffer(timeout=5, interval=0.01)
    assert k.is_buffer_full()
    data = k.buffer_data.reshape(-1, 5)
    assert data.shape == (N_POINTS, 5)
    _check_jv(data[:, 0], data[:, 1], stop, voc)
    assert k.check_errors() == []


def test_keithley2400_errors_reach_the_stock_driver(connect: Connect, bench: Bench) -> None:
    k = connect(Keithley2400, Keithley2400Emulator(bench))
    k.write(":NOT:A:COMMAND 1")
    errors = k.check_errors()
    assert [int(e[0]) for e in errors] == [-113]
    assert k.check_errors() == []


def test_keithley2450_configures_and_reads(connect: Connect, bench: Bench) -> None:
    k = connect(Keithley2450, Keithley2450Emulator(bench))
    assert "MODEL 2450" in k.id
    k.apply_voltage(compliance_current=0.01)  # source mode, auto range, limit, then check_errors()
    k.measure_current(nplc=1, current=0.01)
    k.source_voltage = 0.0
    k.enable_source()
    assert k.source_enabled is True
    assert k.source_mode == "voltage"
    assert k.compliance_current == pytest.approx(0.01)
    current = k.current
    assert current < 0
    assert current == pytest.approx(bench.cell_current_A(), rel=1e-3)
    assert k.check_errors() == []
    k.disable_source()
    assert k.source_enabled is False


def test_keithley2450_native_sweep_into_defbuffer1(connect: Connect, bench: Bench) -> None:
    voc, stop = _sweep_stop(bench)
    k = connect(Keithley2450, Keithley2450Emulator(bench))
    k.apply_voltage(compliance_current=0.05)
    k.measure_current(nplc=0.1, current=0.05)
    k.enable_source()
    k.write(':TRAC:CLE "defbuffer1"')
    k.write(f':SOUR:SWE:VOLT:LIN 0, {stop}, {N_POINTS}, 0.001, 1, BEST, OFF, OFF, "defbuffer1"')
    k.write(":INIT")
    k.write("*WAI")
    assert int(k.values(':TRAC:ACT? "defbuffer1"')[0]) == N_POINTS
    data = np.array(k.values(f':TRAC:DATA? 1, {N_POINTS}, "defbuffer1", SOUR, READ'), dtype=float)
    data = data.reshape(-1, 2)  # source level, current reading per point
    _check_jv(data[:, 0], data[:, 1], stop, voc)
    assert k.check_errors() == []
