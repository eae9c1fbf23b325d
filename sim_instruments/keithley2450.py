"""Emulator of the Keithley 2450 SourceMeter, native SCPI command set (``*LANG SCPI``; instruments.md §2).

The source-measure physics (ranges, compliance, noise, timing) and the source side of the emulator are
shared with the 2400 emulator (:mod:`sim_instruments.smu_physics`, :mod:`sim_instruments.smu_emulator`).
Behaviour and confidence ([H] manual/driver source, [M] secondary, [L] our assumption):

- Ranges V 20 mV-200 V (+-210 V), I 10 nA-1 A (+-1.05 A); power envelope: 200 V range -> 100 mA range max,
  1 A range -> 20 V range max (-221) [H/M]. ``:SOUR:VOLT:ILIM`` 1 nA-1.05 A (default 105 uA),
  ``:SOUR:CURR:VLIM`` 20 mV-210 V (default 21 V) [L limits]; ``...:ILIM:TRIP?`` is evaluated live [M]. At the
  limit the source holds the limit and the voltage is what the cell develops, on any source range; the SOUR
  read-back shows it [H clamp, L range].
- One measure function at a time (``:SENS:FUNC "CURR"``, query ``"CURR:DC"``) with per-function NPLC
  (0.01-10), range/auto range, ``RSENse`` (4-wire), auto-zero and filter [H]. 2400-only commands
  (``:SYST:RSEN``, ``:TRAC:FEED``, ``:SENS:CURR:PROT``, ``:FORM:ELEM``, ``:TRIG:COUN``, ``:STAT:MEAS``...)
  are not in the tree and give -113 [H].
- Reading buffers ``defbuffer1``/``defbuffer2`` (100 000 readings [L]) and user buffers (``:TRAC:MAKE``,
  1-6 875 000 readings [L]) fill continuously (the oldest reading drops out) [M]. Indexes start at 1; an
  index outside 1..``:TRAC:ACT?`` -> -222 and no reply; an unknown buffer -> -224 [L code]. *RST clears the
  default buffers and deletes user buffers [L].
- ``:READ?`` / ``:MEAS:<f>?`` make ``:SENS:COUN`` readings into the buffer and return only the latest [H].
  With the output off no measurement is made: READ is +9.91E37 and SOUR the programmed level [L].
- Native sweep (§2.4): ``:SOUR:SWE:<f>:LIN start, stop, points[, delay[, count[, rangeType[, failAbort
  [, dual[, "buffer"]]]]]]`` (also ``:LIN:STEP`` and ``:LIST startIndex[, delay[, count[, failAbort
  [, "buffer"]]]]``) replaces the trigger model; ``:INIT`` runs it into the buffer. A sweep with more readings
  than the buffer holds is refused at set-up (-221, model unchanged) [L]; dual appends the reversed points
  (stop repeated) [L]; failAbort ON ends the sweep at the first reading in the source limit [H]; afterwards
  the output returns to the programmed bias level [L]; the sweep's function must be the source function
  (-221) [L]. ``:INIT`` without a sweep makes one ``:SENS:COUN`` reading set into defbuffer1 [L].
- Current source at I = 0: the emulator's ``current_offset_A`` (source error, A into HI; default 0) and
  ``input_resistance_ohm`` (voltmeter across the terminals; default inf) load the cell by
  −offset + V/R_in (instruments ref. §2: 10 nA range ±(0.1 % + 100 pA), input resistance > 10 GΩ [H]; a given
  unit's offset within that bound is ours to choose [L]).
- Timing as the 2400 (delay + NPLC/f_line x (3 with auto-zero) + 0.5 ms per reading); sweep delay -1 and the
  auto source delay are 1 ms [L]. Buffer time stamps: the instrument clock reads 2024-01-01 00:00:00 UTC at
  power-on and runs on the bench clock [L]; REL = seconds since the buffer's first reading.
- ``:INIT`` of a sweep is overlapped: in real time the trigger model runs in the background, other commands
  run meanwhile (``:TRAC:ACT?`` counts the readings so far) and ``*WAI`` / ``*OPC?`` wait for its end [H: "other
  commands can be executed while the trigger model is running if they do not conflict"; *WAI suspends the
  commands that follow]. ``:ABORt`` and the bus's device clear end it at once, also behind a ``*WAI`` [L], as
  does ``*RST``; the readings so far stay in the buffer, the output returns to the bias level, ON [L]. That
  commands conflicting with the running sweep (``:OUTP OFF``) are obeyed at once is our assumption [L]. On a
  virtual clock the sweep runs at once inside ``:INIT``. Its readings appear in the buffer one by one
  (``:TRAC:ACT?`` / ``:TRAC:DATA?`` read them as it fills) and ``:TRIG:STAT?`` answers ``RUNNING;RUNNING;<block>``,
  then ``IDLE;IDLE;<block>`` [M].
- Element codes: STAT 1 over-range, 8 front terminals; SOURSTAT 1 read-back on, 4 source limit reached,
  8 four-wire, 16 output on [L]. ``:SYST:ERR?`` answers ``code,"text"`` without the event-log time stamp [L].
"""

from __future__ import annotations

import datetime as dt
import math
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sim_instruments.adapter import instrument_lock
from sim_instruments.clock import bench_lock_held, held_locks
from sim_instruments.scpi import (
    COMMON_COMMANDS,
    SYSTEM_ERROR_COMMANDS,
    Command,
    EventRegister,
    Params,
    ScpiError,
    choice,
    flag,
    nr3,
    number,
    status_register_commands,
)
from sim_instruments.smu_emulator import FRAMING as FRAMING
from sim_instruments.smu_emulator import (
    SmuEmulator,
    SweepAborted,
    sense_function_name,
    source_list_commands,
    source_setting_commands,
)
from sim_instruments.smu_physics import (
    AUTO_DELAY_S,
    HEADROOM,
    NOT_MEASURED,
    OVERFLOW,
    OVERRANGE,
    RES_RANGES_OHM,
    SmuModel,
    Terminal,
    check_envelope,
    force_current,
    pick_range,
    reading_noise,
)

MODEL = SmuModel(
    "2450", (0.02, 0.2, 2, 20, 200), (1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 0.01, 0.1, 1.0), 210.0, 1.05, 0.1,
    firmware="1.7.3c",
)
DEFAULT_BUFFERS = ("defbuffer1", "defbuffer2")
DEFAULT_CAPACITY = 100_000
MAX_CAPACITY = 6_875_000
EPOCH = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
UNITS = {"VOLT": "Volt DC", "CURR": "Amp DC", "RES": "Ohm"}
SYMBOLS = {"VOLT": "V", "CURR": "A", "RES": "Ohm"}
ELEMENT_WORDS = (
    "DATE", "FORMatted", "FRACtional", "READing", "RELative", "SEConds", "SOURce", "SOURFORMatted",
    "SOURSTATus", "SOURUNIT", "STATus", "TIME", "TSTamp", "UNIT",
)


@dataclass
class BufferReading:
    """One stored reading: value, source value, bench time (s), status words, units."""

    reading: float
    source: float
    t_s: float
    status: int
    source_status: int
    function: str
    source_function: str

    @property
    def tripped(self) -> bool:
        return bool(self.source_status & 4)


@dataclass
class ReadingBuffer:
    capacity: int
    data: list[BufferReading] = field(default_factory=list)

    def append(self, rd: BufferReading) -> None:
        self.data.append(rd)
        if len(self.data) > self.capacity:
            del self.data[0]


@dataclass
class _Source:
    level: float = 0.0
    range: float = 0.0
    auto: bool = True
    limit: float = 0.0
    delay_s: float = 0.0
    delay_auto: bool = True
    readback: bool = True
    smode: str = "NORM"


@dataclass
class _Measure:
    nplc: float = 1.0
    range: float = 0.0
    auto: bool = True
    rsense: bool = False
    azero: bool = True
    avg_on: bool = False
    avg_tcon: str = "REP"
    avg_count: int = 10


@dataclass
class _Sweep:
    values: list[float]
    delay_s: float
    count: int
    range_type: str
    fail_abort: bool
    buffer: str


class Keithley2450Emulator(SmuEmulator):
    """A 2450 (native SCPI) on ``bench``: ``handle(message) -> reply | None`` (see module docstring)."""

    STATUS_REGISTERS = (("ques_reg", 8), ("oper_reg", 128))

    def __init__(self, bench: Any, serial: str = "04096218", current_offset_A: float | None = None,
                 input_resistance_ohm: float | None = None, sim_name: str = "smu") -> None:
        super().__init__(bench, MODEL, serial, sim_name)
        station = getattr(bench, "instrument_options", {}).get("keithley2450", {})  # simulation.keithley2450
        if current_offset_A is None:
            current_offset_A = station.get("current_offset_A", 0.0)
        if input_resistance_ohm is None:
            input_resistance_ohm = station.get("input_resistance_ohm", math.inf)
        #: error of the current source (A, into HI): it outputs the programmed current plus this
        self.current_offset_A = float(current_offset_A)
        #: input resistance of the voltmeter across the terminals while sourcing current (Ω; inf: none)
        self.input_resistance_ohm = float(input_resistance_ohm)
        if not self.input_resistance_ohm > 0:
            raise ValueError(f"input_resistance_ohm = {input_resistance_ohm!r} (allowed: > 0, inf for none)")
        self.t_boot_s = bench.clock.now()
        self.language = "SCPI"
        self.oper_reg, self.ques_reg = EventRegister(), EventRegister()
        self.reset()

    # -- IEEE 488.2 hooks ----------------------------------------------------------------------------------
    def reset(self) -> None:
        if self.busy:  # *RST ends a running trigger model first
            self._abort.set()
            self._wait_idle()
        m = self.model
        self.output, self.source_fn, self.sense_fn = False, "VOLT", "CURR"
        self.src = {
            "VOLT": _Source(range=m.v_ranges_V[0], limit=105e-6),
            "CURR": _Source(range=m.i_ranges_A[0], limit=21.0),
        }
        self.meas = {"VOLT": _Measure(range=0.02), "CURR": _Measure(range=1e-8), "RES": _Measure(range=20.0)}
        self.count, self.terminals, self.beeper_on = 1, "FRON", True
        self.buffers = {name: ReadingBuffer(DEFAULT_CAPACITY) for name in DEFAULT_BUFFERS}
        self.sweep: _Sweep | None = None
        self.lists: dict[str, list[float]] = {"VOLT": [], "CURR": []}
        self._active_range: float | None = None
        self._v_last: float | None = None  # last terminal voltage while sourcing current: solver start (V)
        self._apply_output()

    # -- physics -------------------------------------------------------------------------------------------
    def _source_limit(self) -> float:
        return self.src[self.source_fn].limit

    def _output_off_mode(self) -> str:
        return self.src[self.source_fn].smode

    def _check_source_envelope(self, fn: str, src_range: float) -> None:
        check_envelope(self.model, fn, src_range, self.src[fn].limit)

    def _force(self, value: float) -> Terminal:
        """As the shared source side, but a sourced current carries the source offset and the voltmeter's
        input resistance (:func:`sim_instruments.smu_physics.force_current`): what limits Voc at I = 0 in
        very low light (methods ref. §4.2)."""
        if self.source_fn == "VOLT":
            return super()._force(value)
        if self._v_last is None:
            self._v_last = self.bench.open_circuit_voltage_V()
        term = force_current(self.bench, value, self._source_limit(), self._v_last, self.current_offset_A,
                             self.input_resistance_ohm)
        self._v_last = term.v_V
        return term

    def _meas_range(self, fn: str, value: float, term: Terminal) -> float:
        """Range of the measured function: the source range for the sourced quantity, else auto or fixed."""
        ranges = self._ranges(fn)
        if fn == self.source_fn:
            rng = self._src_range()
            return max(rng, pick_range(value, ranges) or rng) if term.limited else rng
        m = self.meas[fn]
        if not m.auto:
            return m.range
        cap = pick_range(self.src[self.source_fn].limit, ranges) if fn != "RES" else None
        return min(pick_range(value, ranges) or ranges[-1], cap or ranges[-1])

    def _sdm(self, value: float, delay_s: float | None) -> BufferReading:
        """One source-delay-measure cycle on the bench clock; the cell current is sampled mid-window."""
        s, m = self.src[self.source_fn], self.meas[self.sense_fn]
        if self.output:
            self._force(value)
        if delay_s is None:
            delay_s = AUTO_DELAY_S if s.delay_auto else s.delay_s
        self._wait(delay_s)
        n_avg = m.avg_count if m.avg_on else 1
        t_s, term = self._integrate(value, m.nplc, m.azero, n_avg, m.avg_on and m.avg_tcon == "REP", self.output)
        status = 8 if self.terminals == "FRON" else 0
        src_status = (1 if s.readback else 0) | (8 if m.rsense else 0) | (16 if self.output else 0)
        if term is None:
            return BufferReading(NOT_MEASURED, value, t_s, status, src_status, self.sense_fn, self.source_fn)
        src_status |= 4 if term.limited else 0
        true = {"VOLT": term.v_V, "CURR": term.i_A}
        if self.sense_fn == "RES":
            reading = term.v_V / term.i_A if term.i_A else OVERFLOW
            rng = self._meas_range("RES", reading, term) if reading != OVERFLOW else RES_RANGES_OHM[-1]
        else:
            rng = self._meas_range(self.sense_fn, true[self.sense_fn], term)
            reading = true[self.sense_fn] + reading_noise(self.bench.rng, rng, m.nplc, n_avg)
        if abs(reading) > rng * OVERRANGE:
            reading, status = OVERFLOW, status | 1
        source = value
        if s.readback:
            src_rng = self._meas_range(self.source_fn, true[self.source_fn], term)
            source = true[self.source_fn] + reading_noise(self.bench.rng, src_rng, m.nplc, n_avg)
        return BufferReading(reading, source, t_s, status, src_status, self.sense_fn, self.source_fn)

    # -- buffers -------------------------------------------------------------------------------------------
    def _buffer(self, name: str) -> ReadingBuffer:
        if name not in self.buffers:
            raise ScpiError(-224, "buffer not found")
        return self.buffers[name]

    def _buffer_arg(self, p: Params, i: int) -> str:
        name = p.string(i) if len(p) > i else "defbuffer1"
        self._buffer(name)
        return name

    def _elements(self, p: Params, first: int) -> list[str]:
        words = [p.keyword(k, ELEMENT_WORDS) for k in range(first, len(p))]
        if len(words) > 14:
            raise ScpiError(-108)
        return words or ["READ"]

    def _format(self, buf: ReadingBuffer, rows: list[BufferReading], elements: list[str]) -> str:
        t_first = buf.data[0].t_s if buf.data else 0.0
        out: list[str] = []
        for rd in rows:
            whole, ns = divmod(int(round((rd.t_s - self.t_boot_s) * 1e9)), 1_000_000_000)
            stamp = EPOCH + dt.timedelta(seconds=whole)
            clock_text = f"{stamp:%H:%M:%S}.{ns:09d}"
            values = {
                "READ": nr3(rd.reading, plus=False), "SOUR": nr3(rd.source, plus=False),
                "REL": nr3(rd.t_s - t_first, plus=False), "SEC": str(int(stamp.timestamp())),
                "FRAC": f"{ns / 1e9:.9f}", "DATE": f"{stamp:%m/%d/%Y}", "TIME": clock_text,
                "TST": f"{stamp:%m/%d/%Y} {clock_text}", "STAT": str(rd.status),
                "SOURSTAT": str(rd.source_status),
                "UNIT": UNITS[rd.function], "SOURUNIT": UNITS[rd.source_function],
                "FORM": f"{nr3(rd.reading, plus=False)} {SYMBOLS[rd.function]}",
                "SOURFORM": f"{nr3(rd.source, plus=False)} {SYMBOLS[rd.source_function]}",
            }
            out.extend(values[e] for e in elements)
        return ",".join(out)

    def _trace_data(self, p: Params) -> str:
        name = self._buffer_arg(p, 2)
        buf = self.buffers[name]
        start, end = p.integer(0, 1, MAX_CAPACITY), p.integer(1, 1, MAX_CAPACITY)
        if not 1 <= start <= end <= len(buf.data):
            raise ScpiError(-222, "index outside the buffer")
        return self._format(buf, buf.data[start - 1 : end], self._elements(p, 3))

    def _make(self, p: Params) -> None:
        name, size = p.string(0), p.integer(1, 1, MAX_CAPACITY)
        if len(p) > 2:
            p.keyword(2, ("STANdard", "COMPact", "FULL", "WRITable", "FULLWRITable"))
        if name in self.buffers or not name[:1].isalpha() or len(name) > 31:
            raise ScpiError(-224, "buffer name")
        self.buffers[name] = ReadingBuffer(size)

    def _delete(self, p: Params) -> None:
        name = self._buffer_arg(p, 0)
        if name in DEFAULT_BUFFERS:
            raise ScpiError(-221, "default buffer")
        del self.buffers[name]

    def _resize(self, p: Params) -> None:
        size, name = p.integer(0, 1, MAX_CAPACITY), self._buffer_arg(p, 1)
        self.buffers[name] = ReadingBuffer(size)

    def _buf(self, p: Params, i: int = 0) -> ReadingBuffer:
        """The buffer named by parameter ``i`` (default defbuffer1)."""
        return self.buffers[self._buffer_arg(p, i)]

    def _trace_trigger(self, p: Params) -> None:
        self._buf(p).append(self._sdm(self.src[self.source_fn].level, None))

    def _stat(self, p: Params, kind: str) -> str:
        data = [rd.reading for rd in self._buf(p).data if rd.reading not in (NOT_MEASURED, OVERFLOW)]
        if not data:
            raise ScpiError(-230)
        a = np.array(data)
        std = a.std(ddof=1) if len(a) > 1 else 0.0
        value = {"AVER": a.mean(), "MAX": a.max(), "MIN": a.min(), "STDD": std}
        return nr3(float(value[kind]), plus=False)

    # -- measurement and trigger model ---------------------------------------------------------------------
    def _read(self, p: Params, fn: str | None = None) -> str:
        if fn is not None:
            self.sense_fn = fn
        name = self._buffer_arg(p, 0)
        elements = self._elements(p, 1)
        buf = self.buffers[name]
        level = self.src[self.source_fn].level
        for _ in range(self.count):
            buf.append(self._sdm(level, None))
        return self._format(buf, buf.data[-1:], elements)

    def _fetch(self, p: Params) -> str:
        buf = self.buffers[self._buffer_arg(p, 0)]
        if not buf.data:
            raise ScpiError(-230)
        return self._format(buf, buf.data[-1:], self._elements(p, 1))

    def _initiate(self, p: Params) -> None:
        """``:INIT``: without a sweep, ``:SENS:COUN`` readings into defbuffer1; with one, the trigger model runs
        it — in the background in real time (``:INIT`` is overlapped: other commands run meanwhile, ``*WAI`` /
        ``*OPC?`` wait for it), at once on a virtual clock (nothing can arrive in between)."""
        sw = self.sweep
        if sw is None:
            buf = self.buffers["defbuffer1"]
            for _ in range(self.count):
                buf.append(self._sdm(self.src[self.source_fn].level, None))
            return
        self._wait_idle()
        self._begin_sweep()
        if getattr(self.bench.clock, "virtual", False):
            self._run_sweep(sw)
            return
        held = held_locks()
        locks = (instrument_lock(self), *held[-1:])  # this instrument's lock, then the bench's

        def trigger_model() -> None:
            with bench_lock_held(*locks):
                try:
                    self._run_sweep(sw)
                except SweepAborted:
                    pass

        self._trigger_thread = threading.Thread(target=trigger_model, name="sim-2450-trigger", daemon=True)
        self._trigger_thread.start()

    def _run_sweep(self, sw: _Sweep) -> None:
        buf = self._buffer(sw.buffer)
        ranges = self._ranges(self.source_fn)
        best = pick_range(max(abs(v) for v in sw.values), ranges)
        fixed = {"BEST": best, "FIX": self.src[self.source_fn].range}
        try:
            for _ in range(sw.count):
                for value in sw.values:
                    self._active_range = fixed.get(sw.range_type) or pick_range(value, ranges) or ranges[-1]
                    rd = self._sdm(value, sw.delay_s)
                    buf.append(rd)
                    if rd.tripped and sw.fail_abort:
                        return
        finally:
            self._end_sweep()
            self._active_range = None
            self._apply_output()

    def _wait_idle(self) -> None:
        """Until a trigger model running in the background is over (``*WAI``, ``*OPC?``): this link's locks are
        let go meanwhile, so the trigger model (and an ``:ABORt``) can proceed."""
        thread = getattr(self, "_trigger_thread", None)
        if thread is None or not thread.is_alive() or thread is threading.current_thread():
            return
        released = []
        for lock in reversed((instrument_lock(self), *held_locks(), self._lock)):
            try:
                lock.release()
            except RuntimeError:  # not held by this thread (a direct call, no transport)
                continue
            released.append(lock)
        try:
            thread.join()
        finally:
            for lock in reversed(released):
                lock.acquire()

    def _opc(self, p: Params) -> None:
        self._wait_idle()
        self.esr |= 1

    def _abort_trigger_model(self) -> None:
        """``:ABORt`` taken in order (a transport hands it over out of turn, see :meth:`interrupt`): end a
        running trigger model and return when it has stopped."""
        if self.busy:
            self._abort.set()
            self._wait_idle()

    def _trigger_state(self) -> str:
        """``:TRIG:STAT?``: the trigger model's state, twice, and the block it is in (always 1 here)."""
        state = "RUNNING" if self.busy else "IDLE"
        return f"{state};{state};1"

    def _set_sweep(self, fn: str, kind: str, p: Params) -> None:
        """``:SOUR:SWE:<fn>:LIN|LIN:STEP|LIST``: a new sweep model, checked before it replaces the old."""
        if fn != self.source_fn:
            raise ScpiError(-221, "sweep function is not the source function")
        hi = self._max(fn)
        if kind == "LIST":
            if not self.lists[fn]:
                raise ScpiError(-221, "empty source list")
            start = p.integer(0, 1, len(self.lists[fn]))
            values, rest = self.lists[fn][start - 1 :], 1
        else:
            start, stop = p.number(0, -hi, hi), p.number(1, -hi, hi)
            if kind == "LIN":
                n = p.integer(2, 2, 1_000_000)
            else:
                step = p.number(2, -2 * hi, 2 * hi)
                if step == 0 or (stop - start) / step < 0 or abs(stop - start) / abs(step) > 999_999:
                    raise ScpiError(-222, "step")
                n = int(round(abs(stop - start) / abs(step))) + 1
            values, rest = [float(x) for x in np.linspace(start, stop, n)], 3
        delay = p.number(rest, -1.0, 10_000.0, -1.0) if len(p) > rest else -1.0
        if delay not in (-1.0, 0.0) and delay < 50e-6:
            raise ScpiError(-222, "delay")
        count = p.integer(rest + 1, 1, 268_435_455, 1) if len(p) > rest + 1 else 1
        k = rest + 2
        range_type = "BEST"
        if kind != "LIST":
            range_type = p.keyword(k, ("AUTO", "BEST", "FIXed")) if len(p) > k else "BEST"
            k += 1
        fail_abort = p.boolean(k) if len(p) > k else True
        dual = kind != "LIST" and len(p) > k + 1 and p.boolean(k + 1)
        k += 1 if kind == "LIST" else 2
        name = self._buffer_arg(p, k)
        if len(p) > k + 1:
            raise ScpiError(-108)
        if dual:
            values = values + values[::-1]
        if range_type == "FIX" and any(abs(v) > self.src[fn].range * HEADROOM for v in values):
            raise ScpiError(-221, "sweep exceeds fixed range")
        if len(values) * count > self.buffers[name].capacity:
            raise ScpiError(-221, "buffer too small for sweep")
        delay = AUTO_DELAY_S if delay == -1.0 else delay
        self.sweep = _Sweep(values, delay, count, range_type, fail_abort, name)

    # -- settings ------------------------------------------------------------------------------------------
    def _set_limit(self, fn: str, p: Params) -> None:
        s = self.src[fn]
        lo, hi, default = (1e-9, 1.05, 105e-6) if fn == "VOLT" else (0.02, 210.0, 21.0)
        x = abs(p.number(0, -hi, hi, default))
        if x < lo:
            raise ScpiError(-222, "limit")
        check_envelope(self.model, fn, s.range, x)
        s.limit = x
        if self.output and fn == self.source_fn:
            self._apply_output()

    def _tripped(self, fn: str) -> str:
        if not self.output or fn != self.source_fn:
            return "0"
        return "1" if self._force(self.src[fn].level).limited else "0"

    def _set_delay(self, fn: str, p: Params) -> None:
        self.src[fn].delay_s, self.src[fn].delay_auto = p.number(0, 0.0, 10_000.0, 0.0), False

    def _set_meas_range(self, fn: str, p: Params) -> None:
        m = self.meas[fn]
        m.range, m.auto = self._range_value(p, m.range, self._ranges(fn)), False

    def _set_sense_function(self, p: Params) -> None:
        self.sense_fn = sense_function_name(p.string(0))

    def _set_list(self, fn: str, p: Params, append: bool) -> None:
        hi = self._max(fn)
        values = (self.lists[fn] if append else []) + [p.number(k, -hi, hi) for k in range(len(p))]
        if len(values) > 100_000:
            raise ScpiError(-222, "list too long")
        self.lists[fn] = values

    def _set_language(self, p: Params) -> None:
        self.language = p.keyword(0, ("SCPI", "TSP", "SCPI2400"))

    def _beep(self, p: Params) -> None:
        p.number(0, 20.0, 8000.0)
        p.number(1, 0.001, 100.0)


def _nr3_bare(value: float) -> str:
    """:func:`nr3` without the leading ``+`` (the 2450's number format)."""
    return nr3(value, plus=False)


def _commands() -> tuple[Command, ...]:
    """The native 2450 command tree (instruments.md §2.3-§2.4)."""
    E = Keithley2450Emulator
    src, sens, trac = ":SOURce[1]", "[:SENSe[1]]", ":TRACe"
    smodes = ("HIMPedance", "NORMal", "ZERO", "GUARd")
    cmds: list[Command] = [
        Command("*LANG", write=E._set_language, query=lambda s, p: s.language),
        choice(f"{src}:FUNCtion[:MODE]", "source_fn", ("VOLTage", "CURRent"), after="_apply_output"),
        Command(f"{sens}:FUNCtion[:ON]", write=E._set_sense_function,
                query=lambda s, p: '"RES"' if s.sense_fn == "RES" else f'"{s.sense_fn}:DC"'),
        Command(f"{sens}:AZERo:ONCE", write=lambda s, p: s.bench.clock.sleep(2 / s.line_Hz), wargs=(0, 0)),
        number(f"{sens}:COUNt", "count", 1, 300_000, 1, integer=True),
        flag(":OUTPut[1][:STATe]", "output", after="_apply_output"),
        choice(":ROUTe:TERMinals", "terminals", ("FRONt", "REAR")),
        Command(":SYSTem:LFRequency", query=lambda s, p: str(s.line_Hz)),
        Command(":SYSTem:BEEPer[:IMMediate]", write=E._beep, wargs=(2, 2)),
        Command(":FORMat[:DATA]", write=E._set_data_format, wargs=(1, 2), query=lambda s, p: "ASC"),
        Command(":INITiate[:IMMediate]", write=E._initiate, wargs=(0, 0)),
        Command(":ABORt", write=lambda s, p: s._abort_trigger_model(), wargs=(0, 0)),
        Command(":TRIGger:STATe", query=lambda s, p: s._trigger_state()),
        Command(":READ", query=E._read, qargs=(0, 15)),
        Command(":FETCh", query=E._fetch, qargs=(0, 15)),
        Command(":MEASure", query=E._read, qargs=(0, 15)),
        Command(f"{trac}:MAKE", write=E._make, wargs=(2, 3)),
        Command(f"{trac}:DELete", write=E._delete),
        Command(f"{trac}:CLEar", write=lambda s, p: s._buf(p).data.clear(), wargs=(0, 1)),
        Command(f"{trac}:ACTual", query=lambda s, p: str(len(s._buf(p).data)), qargs=(0, 1)),
        Command(f"{trac}:ACTual:STARt", query=lambda s, p: str(min(1, len(s._buf(p).data))), qargs=(0, 1)),
        Command(f"{trac}:ACTual:END", query=lambda s, p: str(len(s._buf(p).data)), qargs=(0, 1)),
        Command(f"{trac}:POINts", write=E._resize, wargs=(1, 2), query=lambda s, p: str(s._buf(p).capacity),
                qargs=(0, 1)),
        Command(f"{trac}:DATA", query=E._trace_data, qargs=(2, 17)),
        Command(f"{trac}:TRIGger", write=E._trace_trigger, wargs=(0, 1)),
        Command(":STATus:PRESet", write=lambda s, p: s.preset_status(), wargs=(0, 0)),
        Command(":STATus:CLEar", write=lambda s, p: s.clear_status(), wargs=(0, 0)),
        *status_register_commands("OPERation", "oper_reg"),
        *status_register_commands("QUEStionable", "ques_reg"),
    ]
    for kind, node in (("AVER", "AVERage"), ("MAX", "MAXimum"), ("MIN", "MINimum"), ("STDD", "STDDev")):
        cmds.append(Command(f"{trac}:STATistics:{node}", query=lambda s, p, k=kind: s._stat(p, k),
                            qargs=(0, 1)))
    for fn, word in (("VOLT", "VOLTage"), ("CURR", "CURRent")):
        f_src, lim = f"{src}:{word}", "ILIMit" if fn == "VOLT" else "VLIMit"

        def of_src(f: str = fn) -> Any:
            return lambda s: s.src[f]

        cmds += [
            *source_setting_commands(f_src, fn, _nr3_bare),
            Command(f"{f_src}:{lim}[:LEVel]", write=lambda s, p, f=fn: s._set_limit(f, p),
                    query=lambda s, p, f=fn: nr3(s.src[f].limit, plus=False)),
            Command(f"{f_src}:{lim}[:LEVel]:TRIPped", query=lambda s, p, f=fn: s._tripped(f)),
            Command(f"{f_src}:DELay", write=lambda s, p, f=fn: s._set_delay(f, p),
                    query=lambda s, p, f=fn: nr3(s.src[f].delay_s, plus=False)),
            flag(f"{f_src}:DELay:AUTO", "delay_auto", obj=of_src()),
            flag(f"{f_src}:READ:BACK", "readback", obj=of_src()),
            choice(f":OUTPut[1]:{word}:SMODe", "smode", smodes, after="_apply_output", obj=of_src()),
            Command(f"{src}:SWEep:{word}:LINear", write=lambda s, p, f=fn: s._set_sweep(f, "LIN", p),
                    wargs=(3, 9)),
            Command(f"{src}:SWEep:{word}:LINear:STEP", write=lambda s, p, f=fn: s._set_sweep(f, "STEP", p),
                    wargs=(3, 9)),
            Command(f"{src}:SWEep:{word}:LIST", write=lambda s, p, f=fn: s._set_sweep(f, "LIST", p),
                    wargs=(1, 5)),
            *source_list_commands(src, word, fn, lambda s, f=fn: s.lists[f], _nr3_bare),
        ]
    for fn, word in (("VOLT", "VOLTage[:DC]"), ("CURR", "CURRent[:DC]"), ("RES", "RESistance")):
        f_sens = f"{sens}:{word}"

        def of_meas(f: str = fn) -> Any:
            return lambda s: s.meas[f]

        cmds += [
            Command(f":MEASure:{word}", query=lambda s, p, f=fn: s._read(p, f), qargs=(0, 15)),
            Command(f"{f_sens}:RANGe[:UPPer]", write=lambda s, p, f=fn: s._set_meas_range(f, p),
                    query=lambda s, p, f=fn: nr3(s.meas[f].range, plus=False)),
            flag(f"{f_sens}:RANGe:AUTO", "auto", obj=of_meas()),
            flag(f"{f_sens}:RSENse", "rsense", obj=of_meas()),
            flag(f"{f_sens}:AZERo[:STATe]", "azero", obj=of_meas()),
            flag(f"{f_sens}:AVERage[:STATe]", "avg_on", obj=of_meas()),
            choice(f"{f_sens}:AVERage:TCONtrol", "avg_tcon", ("REPeat", "MOVing"), obj=of_meas()),
            number(f"{f_sens}:AVERage:COUNt", "avg_count", 1, 100, 10, integer=True, obj=of_meas()),
            number(f"{f_sens}:NPLCycles", "nplc", 0.01, 10.0, 1.0, fmt=lambda x: nr3(x, plus=False),
                   obj=of_meas()),
        ]
    overlapped = {  # the sweep runs in the background: these wait for it (K2450 reference manual, *WAI / *OPC)
        "*WAI": Command("*WAI", write=lambda s, p: s._wait_idle(), wargs=(0, 0)),
        "*OPC": Command("*OPC", write=E._opc, query=lambda s, p: (s._wait_idle(), "1")[1], wargs=(0, 0)),
    }
    common = tuple(overlapped.get(c.pattern, c) for c in COMMON_COMMANDS)
    return common + SYSTEM_ERROR_COMMANDS + tuple(cmds)


Keithley2450Emulator.COMMANDS = _commands()
