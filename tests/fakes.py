"""Fakes and helpers shared by the emulator and driver tests (benches, clocks, VISA spies, traffic)."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

# ------------------------------------------------------------------------------------------ SMU emulators
VOC_V = 0.5
R_OHM = 1000.0


class FakeClock:
    """A clock that only moves when slept on (never backwards)."""

    def __init__(self, t0_s: float = 0.0) -> None:
        self.t = t0_s

    def now(self) -> float:
        return self.t

    def sleep(self, dt_s: float) -> None:
        assert dt_s >= 0
        self.t += dt_s


class ResistorCellBench:
    """A 'cell' that is a 0.5 V source behind 1 kOhm: I = (V - 0.5 V) / 1 kOhm (SMU sign convention).

    Every bias written is kept in ``history``.
    """

    def __init__(self, line_frequency_Hz: float, seed: int, t0_s: float) -> None:
        self.clock = FakeClock(t0_s)
        self.rng = np.random.default_rng(seed)
        self.line_frequency_Hz = line_frequency_Hz
        self.bias: float | None = None
        self.history: list[float | None] = []

    def set_cell_bias(self, v_V: float | None) -> None:
        self.bias = v_V
        self.history.append(v_V)

    def cell_current_A(self) -> float:
        return 0.0 if self.bias is None else (self.bias - VOC_V) / R_OHM

    def open_circuit_voltage_V(self) -> float:
        return VOC_V


def values(reply: str | None) -> list[float]:
    """The numbers of a comma-separated reply (which must be there)."""
    assert reply is not None
    return [float(x) for x in reply.split(",")]


def replay_stock_traffic(smu: Any, table: list[tuple[str, Any, str | None]], driver: Any) -> None:
    """Send each (template, argument, expected reply) of ``table`` to ``smu``; every template must occur in the
    stock PyMeasure ``driver`` module (or its buffer/generic helpers) and be accepted without an error."""
    import pymeasure.instruments.generic_types as generic
    import pymeasure.instruments.keithley.buffer as buffer

    source = inspect.getsource(driver) + inspect.getsource(buffer) + inspect.getsource(generic)
    for template, arg, expected in table:
        assert template.split(";")[0].split(" %")[0] in source, template
        message = template % arg if arg is not None else template
        reply = smu.handle(message)
        if expected is not None:
            assert reply == expected, message
        assert smu.handle(":SYST:ERR?") == '0,"No error"', message


# ------------------------------------------------------------------------------------------- SMU drivers
NO_ERROR = (b":SYST:ERR?", b'0,"No error"')
#: the *IDN? exchange a source meter's abort ends with (replies queued behind an aborted sweep are dropped)
IDN_SYNC = (b"*IDN?", b"KEITHLEY INSTRUMENTS INC.,MODEL 2400,4100001,C33")


def spy_timeouts(instr: Any) -> list[float]:
    """Record the VISA timeout (ms) in force at every read."""
    seen: list[float] = []
    original = instr.adapter._read

    def read(**kwargs):
        seen.append(instr.adapter.connection.timeout)
        return original(**kwargs)

    instr.adapter._read = read
    return seen


def assert_sweep_arrays(data: Any, v: list[float], i: list[float], t: list[float]) -> None:
    """``data`` (a SweepData) holds the voltages, currents and times (relative to the first) given."""
    np.testing.assert_allclose(data.voltage_V, v)
    np.testing.assert_allclose(data.current_A, i)
    np.testing.assert_allclose(data.time_s, np.array(t) - t[0], atol=1e-9)


# ------------------------------------------------------------------------------------ serial instruments
class TimeoutSpy:
    """Stands in for ``adapter.connection``: records every VISA timeout (ms) the driver sets."""

    def __init__(self, timeout_ms: float) -> None:
        self._timeout = timeout_ms
        self.history: list[float] = []

    @property
    def timeout(self) -> float:
        return self._timeout

    @timeout.setter
    def timeout(self, value: float) -> None:
        self._timeout = value
        self.history.append(value)

    def close(self) -> None:
        pass


#: the prompt a Thorlabs console (SC10, FW102C) prints after every command
PROMPT_REPLY = (None, "> ")


def console_query(cmd: str, reply: str) -> list[tuple[str | None, str]]:
    """Traffic of a Thorlabs console query: echo, reply line, prompt (terminators excluded, as in
    expected_protocol)."""
    return [(cmd, cmd), (None, reply), PROMPT_REPLY]


def console_command(cmd: str) -> list[tuple[str | None, str]]:
    """Traffic of a Thorlabs console command: echo, prompt."""
    return [(cmd, cmd), PROMPT_REPLY]


class FakeLight:
    """Only ``shutter_open`` can be written: any other attribute write fails the test."""

    __slots__ = ("shutter_open",)

    def __init__(self) -> None:
        self.shutter_open = True


class ShutterBench:
    """The part of the bench the SC10 drives: ``light.shutter_open``."""

    def __init__(self) -> None:
        self.light = FakeLight()
