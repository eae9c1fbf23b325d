"""Keithley 2450 SourceMeter in its native SCPI command set, built on PyMeasure's ``Keithley2450``.

Fixes to the stock PyMeasure class:

* ranges use ``strict_range`` (stock ``truncated_range`` silently clamps) and the NPLC properties validate
  0.01-10 (stock: no validator);
* ``source_enabled`` can be set (stock: read-only);
* the 2400-only buffer commands inherited from ``KeithleyBuffer`` (``:TRAC:FEED SENSE``,
  ``:TRAC:FEED:CONT NEXT|NEV``, argument-less ``:TRAC:DATA?``) are replaced by native ones or refused;
* error queue, timing model, read timeouts and safe state as in :mod:`drivers.keithley2400`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from pymeasure.instruments import Instrument
from pymeasure.instruments.keithley import Keithley2450 as _StockKeithley2450
from pymeasure.instruments.validators import strict_range

from drivers.keithley2400 import (
    TIMEOUT_MARGIN_S,
    TRANSFER_ALLOWANCE_S,
    KeithleySourceMeterMixin,
    ReplyError,
    _sweep_data,
    bool_control,
    format_errors,
    join_sweeps,
    keithley_identity,
    parse_groups,
    parse_numbers,
    ranged_control,
    symmetric_control,
)
from drivers.registration import ConnectionDefaults, InstrumentRegistration
from drivers.safe import source_meter_safe_state
from drivers.smu import InstrumentError, ModelLimits, SourceMeter, SweepData

BUFFER_NAME = "labctlbuf"
"""The one reading buffer our sweeps reuse."""
BUFFER_MIN_CAPACITY = 2500
"""Capacity of :data:`BUFFER_NAME` when first made (readings); grown when a sweep needs more."""
BUFFER_EXISTS_CODE = 1115
"""Event code for ``:TRAC:MAKE`` with the name of an existing buffer."""
SWEEP_DELAY_MIN_S = 50e-6
"""Smallest non-zero delay ``:SOUR:SWE:VOLT:LIN`` accepts (s)."""
COMPLIANCE_FRACTION = 0.995
"""A sweep point counts as in compliance when |I| >= this fraction of the current limit."""
POLL_S = 0.25
"""Longest wait between two looks at the buffer while a sweep runs (s)."""
POLL_MIN_S = 0.005
"""Shortest such wait (s), near the end of a sweep."""
TRIGGER_BUSY = ("RUNNING", "WAITING", "BUILDING", "ABORTING")
"""``:TRIG:STAT?`` states (first field) of a trigger model that has not finished."""


def _fixed_range_control(command: str, doc: str, limit: float) -> property:
    """Range property that turns auto range off first (as the stock class does), strictly within ±limit."""
    return Instrument.control(
        f"{command}?",
        f"{command}:AUTO 0;{command} %g",
        f"{doc}, auto range off (float, strictly ±{limit:g}).",
        validator=strict_range,
        values=(-limit, limit),
    )


class Keithley2450(KeithleySourceMeterMixin, _StockKeithley2450, SourceMeter):
    """Keithley 2450 SourceMeter (native SCPI): ±210 V, ±1.05 A, per-function NPLC 0.01-10."""

    limits = ModelLimits(
        voltage_max_V=210.0, current_max_A=1.05, nplc_range=(0.01, 10.0),
        source_delay_max_s=10_000.0, max_sweep_points=100_000,
    )
    compliance_min_A = 1e-9
    IDENTITY = keithley_identity("2450")
    #: smallest non-zero delay of a built-in sweep (s), checked by procedures before anything is sent
    sweep_delay_min_s = SWEEP_DELAY_MIN_S

    source_voltage = symmetric_control(":SOUR:VOLT", "Source level (V)", limits.voltage_max_V)
    source_current = symmetric_control(":SOUR:CURR", "Source level (A)", limits.current_max_A)
    compliance_current = ranged_control(
        ":SOUR:VOLT:ILIM", "Current limit while sourcing V (A)", compliance_min_A, limits.current_max_A
    )
    compliance_voltage = symmetric_control(
        ":SOUR:CURR:VLIM", "Voltage limit while sourcing I (V)", limits.voltage_max_V
    )
    source_voltage_range = _fixed_range_control(":SOUR:VOLT:RANG", "Source range (V)", limits.voltage_max_V)
    source_current_range = _fixed_range_control(":SOUR:CURR:RANG", "Source range (A)", limits.current_max_A)
    voltage_range = _fixed_range_control(":SENS:VOLT:RANG", "Measure range (V)", limits.voltage_max_V)
    current_range = _fixed_range_control(":SENS:CURR:RANG", "Measure range (A)", limits.current_max_A)
    current_nplc = ranged_control(":SENS:CURR:NPLC", "Current integration time (PLC)", 0.01, 10.0)
    voltage_nplc = ranged_control(":SENS:VOLT:NPLC", "Voltage integration time (PLC)", 0.01, 10.0)
    source_voltage_delay = ranged_control(
        ":SOUR:VOLT:DEL", "Source delay (s; turns auto delay off)", 0.0, limits.source_delay_max_s
    )
    source_enabled = bool_control(":OUTP", "Output on")
    source_voltage_delay_auto = bool_control(":SOUR:VOLT:DEL:AUTO", "Source auto delay")
    source_voltage_range_auto_enabled = bool_control(":SOUR:VOLT:RANG:AUTO", "Source voltage auto range")
    current_range_auto_enabled = bool_control(":SENS:CURR:RANG:AUTO", "Current measure auto range")
    current_four_wire_enabled = bool_control(":SENS:CURR:RSEN", "4-wire sense for current", words=True)
    current_auto_zero_enabled = bool_control(":SENS:CURR:AZER", "Auto-zero for current", words=True)
    source_voltage_readback_enabled = bool_control(
        ":SOUR:VOLT:READ:BACK", "Record the measured (not programmed) source value", words=True
    )

    _buffer_capacity: int | None = None  # capacity of BUFFER_NAME once made by this driver

    def __init__(self, adapter, name: str = "Keithley 2450 SourceMeter", **kwargs) -> None:
        super().__init__(adapter, name, **kwargs)

    def _forget_configuration(self) -> None:
        super()._forget_configuration()
        self._buffer_capacity = None  # *RST deletes user buffers
        self._sourcing_current = False  # and sources voltage again

    # --- SourceMeter interface

    def configure_voltage_source(
        self, compliance_A: float, nplc: float = 1.0, four_wire: bool = False, source_delay_s: float = 0.0
    ) -> None:
        """Source V (auto range), sense I (auto range), limit (A), NPLC, 2/4-wire, source delay (s, auto
        delay off), auto-zero on, source read-back on, one reading per request; then check errors."""
        self._check_configuration(compliance_A, nplc, source_delay_s)
        self._nplc = None  # unconfigured until the error check passes
        self._sourcing_current = False
        self.source_mode = "voltage"
        self.source_voltage_range_auto_enabled = True
        self.write(':SENS:FUNC "CURR"')
        self.compliance_current = compliance_A
        self.current_range_auto_enabled = True
        self.current_nplc = nplc
        self.current_four_wire_enabled = bool(four_wire)
        self.source_voltage_delay_auto = False
        self.source_voltage_delay = source_delay_s
        self.current_auto_zero_enabled = True
        self.source_voltage_readback_enabled = True
        self.write(":SENS:COUN 1")
        self._line_frequency_Hz = self._read_line_frequency()
        self.check_set_errors("configure_voltage_source")
        self._remember_configuration(compliance_A, nplc, source_delay_s)

    def configure_current_source(self, compliance_V: float, nplc: float = 1.0, four_wire: bool = False) -> None:
        """Source I (auto range, level 0 A, read-back on), sense V (auto range), voltage limit (V), NPLC,
        2/4-wire, auto-zero on, one reading per request; then check errors (2450 reference manual,
        ``:SOURce:CURRent:VLIMit``: the voltage limit while sourcing current)."""
        self._check_current_source(compliance_V, nplc)
        self._nplc = None  # unconfigured until the error check passes
        self._sourcing_current = False
        self.source_mode = "current"
        self.write(":SOUR:CURR:RANG:AUTO ON")
        self.source_current = 0.0
        self.write(':SENS:FUNC "VOLT"')
        self.compliance_voltage = compliance_V
        self.write(":SENS:VOLT:RANG:AUTO ON")
        self.voltage_nplc = nplc
        self.write(f":SENS:VOLT:RSEN {'ON' if four_wire else 'OFF'}")
        self.write(":SENS:VOLT:AZER ON")
        self.write(":SOUR:CURR:READ:BACK ON")
        self.write(":SENS:COUN 1")
        self._line_frequency_Hz = self._read_line_frequency()
        self.check_set_errors("configure_current_source")
        self._remember_configuration(None, nplc, 0.0)  # no current compliance: a V limit
        self._sourcing_current = True

    _sourcing_current = False  # True after configure_current_source (until configure_voltage_source)

    @property
    def compliance_tripped(self) -> bool:
        """``:SOUR:VOLT:ILIM:TRIP?`` (or ``:SOUR:CURR:VLIM:TRIP?`` when sourcing I): True while the limit is
        active."""
        command = ":SOUR:CURR:VLIM:TRIP?" if self._sourcing_current else ":SOUR:VOLT:ILIM:TRIP?"
        reply = self.ask(command)
        value = parse_numbers(reply, instrument=self.name, command=command)
        if value.size != 1 or value[0] not in (0.0, 1.0):
            raise ReplyError(f"{self.name}: reply {reply.strip()!r} to {command!r} is not 0 or 1")
        return bool(value[0])

    def measure_point(self) -> SweepData:
        """One reading into defbuffer1: source read-back, measurement (V and A: which is which follows the
        source function), the instrument's relative time stamp (s, not re-referenced), and the limit-trip state."""
        command = ':READ? "defbuffer1", SOUR, READ, REL'
        with self._read_timeout(self._point_timeout_s()):
            reply = self.ask(command)
        row = parse_groups(reply, 3, instrument=self.name, command=command, points=1)
        tripped = self.compliance_tripped
        v, i = (row[:, 1], row[:, 0]) if self._sourcing_current else (row[:, 0], row[:, 1])
        return _sweep_data(v, i, row[:, 2], np.array([tripped]), relative=False)

    def sweep_voltage(
        self, start_V: float, stop_V: float, points: int, source_delay_s: float,
        on_chunk: Callable[[SweepData], None] | None = None,
    ) -> SweepData:
        """Native linear sweep into the reusable buffer, read while it fills; output left on.

        After ``:INIT`` the buffer is read as it fills: ``:TRIG:STAT?``, ``:TRAC:ACT?``, then ``:TRAC:DATA?`` of
        the new readings only, every :data:`POLL_S` at most, each piece handed to ``on_chunk`` as it arrives
        (a killed run keeps all but the last fraction of a second). ``time_s`` is the buffer's REL stamp (from
        the sweep's first reading). ``compliance`` is |I| >= 99.5 % of the configured limit (the buffer
        elements carry no limit flag).
        """
        points = self._check_sweep(start_V, stop_V, points, source_delay_s)
        if 0.0 < source_delay_s < SWEEP_DELAY_MIN_S:
            raise ValueError(f"{self.name}: sweep delay {source_delay_s!r} s must be 0 or >= 50 us")
        point_s = self.measurement_time_s(self._nplc, source_delay_s)
        deadline = time.monotonic() + self.read_timeout_s(points, source_delay_s)
        self._ensure_buffer(points)
        self.write(f':TRAC:CLE "{BUFFER_NAME}"')
        self.write(
            f":SOUR:SWE:VOLT:LIN {start_V:g}, {stop_V:g}, {points:d}, {source_delay_s:g}, 1, BEST, OFF, OFF, "
            f'"{BUFFER_NAME}"'
        )
        self.enable_output()
        self.write(":INIT")
        chunks: list[SweepData] = []
        got, t0 = 0, 0.0
        while True:
            running = self._trigger_running()
            count = self._buffer_count(BUFFER_NAME)
            if count > got:
                piece = self._read_sweep_rows(got + 1, count)
                t0 = float(piece.time_s[0]) if got == 0 else t0  # the sweep's first reading is the origin
                piece.time_s = piece.time_s - t0
                chunks.append(piece)
                got = count
                if on_chunk is not None:
                    on_chunk(chunks[-1])
            if got >= points:
                break
            if not running or time.monotonic() > deadline:
                self.check_set_errors(f"a sweep that stored {got} of {points} points")
                raise InstrumentError(f"{self.name}: the sweep stored {got} of {points} points")
            time.sleep(min(POLL_S, max((points - got) * point_s, POLL_MIN_S)))
        self.check_set_errors("sweep_voltage")
        return join_sweeps(chunks)

    def _trigger_running(self) -> bool:
        """``:TRIG:STAT?`` (e.g. ``RUNNING;RUNNING;3``): whether the trigger model is still going."""
        return self.ask(":TRIG:STAT?").strip().split(";")[0].upper() in TRIGGER_BUSY

    def _read_sweep_rows(self, first: int, last: int) -> SweepData:
        """Buffer readings ``first``..``last`` (from 1) of the running sweep: SOUR, READ, REL."""
        command = f':TRAC:DATA? {first:d}, {last:d}, "{BUFFER_NAME}", SOUR, READ, REL'
        with self._read_timeout(TIMEOUT_MARGIN_S + (last - first + 1) * TRANSFER_ALLOWANCE_S):
            reply = self.ask(command)
        rows = parse_groups(reply, 3, instrument=self.name, command=command, points=last - first + 1)
        compliance = np.abs(rows[:, 1]) >= COMPLIANCE_FRACTION * self._compliance_A
        return _sweep_data(rows[:, 0], rows[:, 1], rows[:, 2], compliance, relative=False)

    # --- reading buffers (native commands)

    def _buffer_count(self, buffer: str) -> int:
        command = f':TRAC:ACT? "{buffer}"'
        value = parse_numbers(self.ask(command), instrument=self.name, command=command)
        if value.size != 1 or not (value[0] >= 0 and value[0] == np.rint(value[0])):
            raise ReplyError(f"{self.name}: reply {value.tolist()} to {command!r} is not a reading count")
        return int(value[0])

    def _ensure_buffer(self, points: int) -> None:
        """Make :data:`BUFFER_NAME` once (remade when too small); adopts one left by an earlier session."""
        if self._buffer_capacity is not None and self._buffer_capacity >= points:
            return
        capacity = max(points, BUFFER_MIN_CAPACITY)
        if self._buffer_capacity is not None:
            self.write(f':TRAC:DEL "{BUFFER_NAME}"')
            self.write(f':TRAC:MAKE "{BUFFER_NAME}", {capacity:d}')
        else:
            self.write(f':TRAC:MAKE "{BUFFER_NAME}", {capacity:d}')
            errors = self.check_errors()
            if errors and all(code == BUFFER_EXISTS_CODE for code, _ in errors):
                self.write(f':TRAC:DEL "{BUFFER_NAME}"')
                self.write(f':TRAC:MAKE "{BUFFER_NAME}", {capacity:d}')
            elif errors:
                raise InstrumentError(format_errors(self.name, f"making buffer {BUFFER_NAME!r}", errors))
        self._buffer_capacity = capacity

    def reset_buffer(self) -> None:
        """Clear defbuffer1 (native; replaces the 2400-only ``:TRAC:FEED:CONT NEXT``)."""
        self.write(':TRAC:CLE "defbuffer1"')

    @property
    def buffer_data(self) -> np.ndarray:
        """All readings in defbuffer1 (native ``:TRAC:ACT?`` + ``:TRAC:DATA? 1, N``)."""
        count = self._buffer_count("defbuffer1")
        if count == 0:
            return np.empty(0)
        command = f':TRAC:DATA? 1, {count:d}, "defbuffer1"'
        return parse_groups(self.ask(command), 1, instrument=self.name, command=command, points=count)[:, 0]

    def config_buffer(self, points: int = 64, delay: float = 0) -> None:
        """Not supported: the stock version sends 2400-only ``:TRAC:FEED`` commands; use sweep_voltage()."""
        raise NotImplementedError(f"{self.name}: config_buffer() sends 2400-only commands; use sweep_voltage")

    def disable_buffer(self) -> None:
        """Not supported: ``:TRAC:FEED:CONT NEV`` does not exist in the native 2450 command set."""
        raise NotImplementedError(f"{self.name}: disable_buffer() uses a 2400-only command")

    def is_buffer_full(self) -> bool:
        """Not supported: relies on the status setup of the 2400-only ``config_buffer``."""
        raise NotImplementedError(f"{self.name}: is_buffer_full() relies on 2400-only buffer setup")


KEITHLEY2450_REGISTRATION = InstrumentRegistration(
    name="keithley2450",
    driver=Keithley2450,
    model="Keithley 2450",
    capabilities=("source_meter",),
    # GPIB, USB-TMC and LAN: LF both ways (2450 reference manual, "Remote communications")
    connection=ConnectionDefaults(read_termination="\n", write_termination="\n", timeout_ms=5000),
    safe_state=source_meter_safe_state,
    emulator="sim_instruments.keithley2450:Keithley2450Emulator",
)
