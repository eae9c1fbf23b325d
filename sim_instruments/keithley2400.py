"""Emulator of the Keithley 2400 / 2420 SourceMeter speaking the 2400-series SCPI set (instruments.md §1).

The source-measure physics shared with the 2450 emulator (range choice, forcing a voltage or a current on
``bench`` with compliance, integration time and range-dependent noise) is in :mod:`sim_instruments.smu_physics`,
the emulator logic both share (source side, status registers, identity) in :mod:`sim_instruments.smu_emulator`.

Behaviour and confidence ([H] manual/driver source, [M] secondary, [L] our assumption):
- Ranges, source limits, compliance limits, the power envelope (top V range -> 100 mA range max on the 2400,
  1 A on the 2420; top I range -> 20 V range max), *RST compliance 105 uA / 21 V [H §1.2]. A setting outside
  the envelope -> -221 [L]; compliance below 0.1 % of the lowest range -> -222 [L].
- Compliance: the source turns into a current (voltage) source at the limit and the terminal voltage
  (current) settles where the cell's curve meets it, on any source range (a cell pulls a 200 mV range to its
  ~1.1 V; the V reading then uses the range holding it) [H clamp, L range]; status bit 3 = real compliance,
  bit 16 = range compliance (a fixed measure range below the limit clamps at 105 % of it) [H clamp, M bits].
  ``:SENS:CURR:PROT:TRIP?`` is evaluated live, 1 in real or range compliance [M].
- Readings: auto range = lowest range holding 105 % of the value, capped at the compliance range; rms noise
  2e-5 x range / sqrt(NPLC x filter count) [L]; |reading| > 105.5 % of range -> +9.9E37 and status bit 0 [M];
  an element whose function is off -> +9.91E37, except the sourced quantity, which reads back the programmed
  level [H]. Resistance = V/I on auto ranges 20 ohm - 200 Mohm.
- Timing per reading on the bench clock: trigger delay + source delay (auto delay 1 ms [L]) + NPLC/f_line x
  (3 with auto-zero, else 1) x (filter count with the repeat filter) + 0.5 ms [§1.7 L]; the current is
  sampled mid-window. TIME = seconds since power-on or ``:SYST:TIME:RES``.
- ``:READ?`` / ``:INIT`` with the output off -> +803 and no reply, unless ``:SOUR:CLE:AUTO ON`` (output on for
  the trigger sequence, off after) [M]. After a sweep or list the output returns to the bias level [M]. A
  trigger count above the sweep points repeats the sweep; each arm cycle restarts it [L]. ``:SOUR:SWE:CAB
  EARL|LATE`` ends the sweep after the first reading in compliance [L]. Trigger/arm sources other than TIMer
  act as IMMediate [L].
- ``:MEAS:<f>?`` enables function f, sets arm and trigger counts to 1, turns the output on and reads [M].
- ``:SENS:FUNC:ALL`` (PyMeasure ``measure_all``) is ACCEPTED: the manual's node is ``FUNCtion[:ON]:ALL`` and
  ``[:ON]`` must be optional for ``:SENS:FUNC "CURR"`` to be legal, so the tree makes ``FUNC:ALL`` legal too.
- Trace: 1-2500 points (default 100); ``:TRAC:FEED:CONT NEXT`` restarts the buffer and stops when full
  (measurement event bit 9, BFL, which PyMeasure polls via ``*STB?`` after ``*SRE 1`` and
  ``:STAT:MEAS:ENAB 512``); changing points or feed while storing -> +800 [H]. *RST leaves the trace and the
  status enables alone [H]. ``:CALC3:DATA?`` = the statistic of each V, I, R element in ``:FORM:ELEM``.
- Busy while in the trigger model (a sweep, a ``:READ?``): in real time (TCP server) every message that arrives
  meanwhile waits until it is over (``:OUTP OFF`` included), except ``:ABORt`` and the bus's device clear, which
  end it at once, and ``*RST`` / ``:SYST:PRES`` / ``*RCL``, which end it, then run [H 2400 manual, Triggering:
  "SDC, DCL, or :ABORt place the SourceMeter in the idle state"]. The aborted query gives no reply and queues
  no error [L]; the readings made so far stay in the sample buffer; the output stays ON at the bias level
  (``:SOUR:CLE:AUTO OFF``) until ``:OUTP OFF`` [M].
- Not emulated: ``:FORM:DATA REAL|SREal`` (-221), ``:ARM:COUN INF`` (-141), ``:SOUR:FUNC MEM`` (-141). Source
  lists hold up to 2500 points [L].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from labctl.analysis.smu_timing import integration_time_s
from sim_instruments.scpi import (
    COMMON_COMMANDS,
    SYSTEM_ERROR_COMMANDS,
    Command,
    EventRegister,
    Params,
    ScpiError,
    choice,
    flag,
    format_error,
    noop,
    nr3,
    number,
    status_register_commands,
)
from sim_instruments.smu_emulator import FRAMING as FRAMING
from sim_instruments.smu_emulator import (
    SmuEmulator,
    sense_function_name,
    source_list_commands,
    source_setting_commands,
)
from sim_instruments.smu_physics import (
    AUTO_DELAY_S,
    HEADROOM,
    MODELS,
    NOT_MEASURED,
    OVERFLOW,
    OVERRANGE,
    RES_RANGES_OHM,
    check_envelope,
    pick_range,
    reading_noise,
)

ELEMENTS = ("VOLT", "CURR", "RES", "TIME", "STAT")
FEEDS = ("SENSe", "CALCulate", "CALC2")

# -------------------------------------------------------------------------------------------------- emulator
@dataclass
class _Source:
    """Settings of one source function (VOLT or CURR)."""

    level: float = 0.0
    mode: str = "FIX"
    range: float = 0.0
    auto: bool = True
    start: float = 0.0
    stop: float = 0.0
    values: list[float] = field(default_factory=lambda: [0.0])


@dataclass
class Reading:
    """One source-measure cycle: V (V), I (A), R (ohm), bench time (s), status word, in compliance."""

    v: float
    i: float
    r: float
    t_s: float
    status: int
    tripped: bool


class Keithley2400Emulator(SmuEmulator):
    """A 2400 or 2420 on ``bench``: ``handle(message) -> reply | None`` (see module docstring)."""

    ERROR_TEXTS = {800: "Illegal with storage active", 803: "Not permitted with OUTPUT off"}
    ABORT_THEN_RUN_HEADERS = frozenset({"*RST", "*RCL", "SYST:PRES", "SYST:PRESET", "SYSTEM:PRES", "SYSTEM:PRESET"})
    STATUS_REGISTERS = (("meas_reg", 1), ("ques_reg", 8), ("oper_reg", 128))
    SOURCE_RANGE_DEFAULTS = {"VOLT": 20.0, "CURR": 1e-4}

    def __init__(self, bench: Any, model: str = "2400", serial: str = "1248014", sim_name: str = "smu") -> None:
        if model not in MODELS:
            raise ValueError(f"unknown 2400-series model {model!r}; known: {sorted(MODELS)}")
        super().__init__(bench, MODELS[model], serial, sim_name)
        self.t_stamp0_s = bench.clock.now()
        self.lfr_auto = True
        self.meas_reg, self.oper_reg, self.ques_reg = EventRegister(), EventRegister(), EventRegister()
        self.trace: list[Reading] = []
        self.trace_points, self.trace_feed, self.trace_control, self.tst_format = 100, "SENS", "NEV", "ABS"
        self.last: list[Reading] = []
        self.reset()

    # -- IEEE 488.2 hooks ----------------------------------------------------------------------------------
    def reset(self) -> None:
        m = self.model
        self.output, self.smode, self.source_fn = False, "NORM", "VOLT"
        self.src = {"VOLT": _Source(range=m.v_ranges_V[0]), "CURR": _Source(range=m.i_ranges_A[0])}
        self.sweep_points, self.sweep_dir, self.sweep_ranging = 2500, "UP", "BEST"
        self.sweep_spacing, self.sweep_cab = "LIN", "NEV"
        self.functions, self.concurrent = ["CURR"], True
        self.prot = {"CURR": 105e-6, "VOLT": 21.0}
        self.meas_range = {"CURR": 1e-4, "VOLT": 20.0, "RES": 200e3}
        self.meas_auto = {"CURR": True, "VOLT": True, "RES": True}
        self.nplc, self.res_mode, self.azero, self.rsense, self.terminals = 1.0, "MAN", True, False, "FRON"
        self.filter_on, self.filter_tcon, self.filter_count = False, "REP", 10
        self.clear_auto, self.src_delay_s, self.src_delay_auto = False, 0.0, True
        self.trig_count, self.arm_count, self.trig_delay_s, self.arm_timer_s = 1, 1, 0.0, 0.1
        self.trig_source, self.arm_source, self.trig_output, self.arm_output = "IMM", "IMM", "NONE", "NONE"
        self.trig_ilin = self.trig_olin = self.arm_ilin = self.arm_olin = 1
        self.elements = list(ELEMENTS)
        self.calc3_format, self.display_on, self.beeper_on = "MEAN", True, True
        self._active_range: float | None = None
        self._v_last: float | None = None  # last terminal voltage while sourcing current: solver start (V)
        self._apply_output()

    # -- source side -----------------------------------------------------------------------------------------
    def _limit(self) -> tuple[float, bool]:
        """Active limit (A or V) on the non-sourced quantity; True if it comes from a fixed measure range."""
        other = "CURR" if self.source_fn == "VOLT" else "VOLT"
        if not self.meas_auto[other] and self.meas_range[other] * HEADROOM < self.prot[other]:
            return self.meas_range[other] * HEADROOM, True
        return self.prot[other], False

    def _source_limit(self) -> float:
        return self._limit()[0]

    def _output_off_mode(self) -> str:
        return self.smode

    def _check_source_envelope(self, fn: str, src_range: float) -> None:
        if fn == self.source_fn:
            check_envelope(self.model, fn, src_range, self.prot["CURR" if fn == "VOLT" else "VOLT"])

    def _level_is_live(self, fn: str) -> bool:
        return self.src[fn].mode == "FIX"

    def _set_output(self, on: bool) -> None:
        self.output = on
        self._apply_output()

    def _source_delay_s(self) -> float:
        return AUTO_DELAY_S if self.src_delay_auto else self.src_delay_s

    # -- one source-delay-measure cycle ---------------------------------------------------------------------
    def _measured(self, fn: str, true: float, rng: float, prog: float | None, n: int) -> tuple[float, int]:
        """(reading, OFLO bit): noisy value if ``fn`` is on, else the source read-back or +9.91E37."""
        if fn in self.functions:
            x = true + reading_noise(self.bench.rng, rng, self.nplc, n)
            return (OVERFLOW, 1) if abs(x) > rng * OVERRANGE else (x, 0)
        return (prog, 0) if prog is not None else (NOT_MEASURED, 0)

    def _meas_range(self, fn: str, value: float) -> float:
        if not self.meas_auto[fn]:
            return self.meas_range[fn]
        ranges = self._ranges(fn)
        cap = pick_range(self.prot[fn], ranges) or ranges[-1]
        return min(pick_range(value, ranges) or ranges[-1], cap)

    def _sdm(self, value: float) -> Reading:
        self._wait(self.trig_delay_s)
        self._force(value)
        self._wait(self._source_delay_s())
        n_avg = self.filter_count if self.filter_on else 1
        t_s, term = self._integrate(value, self.nplc, self.azero, n_avg, self.filter_on and self.filter_tcon == "REP")
        assert term is not None
        fn = self.source_fn
        _, by_range = self._limit()
        if fn == "VOLT":
            v_rng, i_rng = self._src_range(), self._meas_range("CURR", term.i_A)
            if term.limited:  # the cell pulled the terminal voltage away from the programmed level
                v_rng = max(v_rng, pick_range(term.v_V, self.model.v_ranges_V) or v_rng)
        else:
            v_rng, i_rng = self._meas_range("VOLT", term.v_V), self._src_range()
        v, of_v = self._measured("VOLT", term.v_V, v_rng, value if fn == "VOLT" else None, n_avg)
        i, of_i = self._measured("CURR", term.i_A, i_rng, value if fn == "CURR" else None, n_avg)
        r, of_r = NOT_MEASURED, 0
        if "RES" in self.functions:
            r, of_r = OVERFLOW, 1
            if i not in (0.0, OVERFLOW, NOT_MEASURED) and v not in (OVERFLOW, NOT_MEASURED):
                r_rng = pick_range(v / i, RES_RANGES_OHM) if self.meas_auto["RES"] else self.meas_range["RES"]
                if r_rng is not None and abs(v / i) <= r_rng * OVERRANGE:
                    r, of_r = v / i, 0
        status = of_v | of_i | of_r
        status |= (2 if self.filter_on else 0) | (4 if self.terminals == "FRON" else 0)
        status |= (1 << 16 if by_range else 1 << 3) if term.limited else 0
        status |= 1 << 10 if self.res_mode == "AUTO" else 0
        status |= sum(1 << b for f, b in (("VOLT", 11), ("CURR", 12), ("RES", 13)) if f in self.functions)
        status |= (1 << 14 if fn == "VOLT" else 1 << 15) | (1 << 22 if self.rsense else 0)
        self.meas_reg.raise_bits(1 << 5 | (1 << 14 if term.limited else 0))
        return Reading(v, i, r, t_s, status, term.limited)

    # -- trigger model -------------------------------------------------------------------------------------
    def _sweep_values(self) -> list[float]:
        s = self.src[self.source_fn]
        if s.mode == "LIST":
            return list(s.values)
        start, stop, n = s.start, s.stop, self.sweep_points
        if self.sweep_dir == "DOWN":
            start, stop = stop, start
        if n == 1:
            return [start]
        if self.sweep_spacing == "LOG":
            if start * stop <= 0:
                raise ScpiError(-221, "log sweep limits")
            return [float(x) for x in np.geomspace(start, stop, n)]
        return [float(x) for x in np.linspace(start, stop, n)]

    def _sweep_range(self, values: list[float]) -> float | None:
        """Source range used during the sweep (None = per point) per ``:SOUR:SWE:RANG``."""
        ranges = self._ranges(self.source_fn)
        if self.sweep_ranging == "AUTO":
            return None
        if self.sweep_ranging == "FIX":
            rng = self.src[self.source_fn].range
            if any(abs(x) > rng * HEADROOM for x in values):
                raise ScpiError(-221, "sweep exceeds fixed range")
            return rng
        return pick_range(max(abs(x) for x in values), ranges) or ranges[-1]

    def _store(self, rd: Reading) -> None:
        if self.trace_control != "NEXT":
            return
        self.trace.append(rd)
        if len(self.trace) * 2 == self.trace_points:
            self.meas_reg.raise_bits(1 << 8)
        if len(self.trace) >= self.trace_points:
            self.trace_control = "NEV"
            self.meas_reg.raise_bits(1 << 9)
            self.meas_reg.condition |= 1 << 9

    def _run(self) -> list[Reading]:
        """``:INIT``: arm x trigger source-measure cycles; readings go to the sample and trace buffers."""
        auto_off = not self.output
        if auto_off and not self.clear_auto:
            raise ScpiError(803)
        s = self.src[self.source_fn]
        values = self._sweep_values() if s.mode != "FIX" else [s.level]
        fixed_range = self._sweep_range(values) if s.mode != "FIX" else None
        if auto_off:
            self._set_output(True)
        readings: list[Reading] = []
        t_arm0 = self.bench.clock.now()
        abort_on_limit = s.mode != "FIX" and self.sweep_cab != "NEV"
        self._begin_sweep()
        try:
            for a, k in ((a, k) for a in range(self.arm_count) for k in range(self.trig_count)):
                if self.arm_source == "TIM" and a and not k:
                    self._wait(max(0.0, t_arm0 + a * self.arm_timer_s - self.bench.clock.now()))
                value = values[k % len(values)]
                if s.mode != "FIX":
                    self._active_range = fixed_range or pick_range(value, self._ranges(self.source_fn))
                rd = self._sdm(value)
                readings.append(rd)
                self._store(rd)
                if rd.tripped and abort_on_limit:
                    break
        finally:
            self._end_sweep()
            self.last = readings  # an aborted sweep keeps the readings it made
            self._active_range = None
            if auto_off:
                self._set_output(False)
            elif s.mode != "FIX":
                self._apply_output()  # back to the bias level: an abort leaves the output ON
        return readings

    def _format(self, readings: list[Reading], times: list[float]) -> str:
        out = []
        for rd, t in zip(readings, times, strict=True):
            values = {"VOLT": rd.v, "CURR": rd.i, "RES": rd.r, "TIME": t, "STAT": float(rd.status)}
            out.extend(nr3(values[e]) for e in ELEMENTS if e in self.elements)
        return ",".join(out)

    def _stamp(self, readings: list[Reading]) -> str:
        return self._format(readings, [rd.t_s - self.t_stamp0_s for rd in readings])

    def _read(self, p: Params | None = None) -> str:
        return self._stamp(self._run())

    def _fetch(self, p: Params) -> str:
        if not self.last:
            raise ScpiError(-230)
        return self._stamp(self.last)

    def _measure(self, fn: str | None) -> str:
        if fn is not None:
            keep = self.functions if self.concurrent else []
            self.functions = [f for f in ("VOLT", "CURR", "RES") if f == fn or f in keep]
        self.trig_count = self.arm_count = 1
        if not self.output and not self.clear_auto:
            self._set_output(True)
        return self._read()

    # -- command handlers ----------------------------------------------------------------------------------
    def _set_sweep_limit(self, fn: str, attr: str, p: Params) -> None:
        s, hi = self.src[fn], self._max(fn)
        x = p.number(0, -hi, hi, 0.0)
        start, stop = (x, s.stop) if attr == "start" else (s.start, x)
        if attr in ("center", "span"):
            c, span = (s.start + s.stop) / 2, s.stop - s.start
            c, span = (x, span) if attr == "center" else (c, x)
            start, stop = c - span / 2, c + span / 2
            if max(abs(start), abs(stop)) > hi:
                raise ScpiError(-222)
        s.start, s.stop = start, stop

    def _set_step(self, fn: str, p: Params) -> None:
        s, hi = self.src[fn], self._max(fn)
        step = p.number(0, -2 * hi, 2 * hi, 0.0)
        span = abs(s.stop - s.start)
        if step == 0.0 or span / abs(step) > 2499.5:
            raise ScpiError(-222, "step")
        self.sweep_points = int(round(span / abs(step))) + 1

    def _step(self, fn: str) -> float:
        s = self.src[fn]
        return (s.stop - s.start) / (self.sweep_points - 1) if self.sweep_points > 1 else 0.0

    def _set_list(self, fn: str, p: Params, append: bool) -> None:
        hi = self._max(fn)
        new = [p.number(k, -hi, hi) for k in range(len(p))]
        values = (self.src[fn].values if append else []) + new
        if len(values) > 2500:
            raise ScpiError(-222, "list too long")
        self.src[fn].values = values

    def _set_prot(self, fn: str, p: Params) -> None:
        hi = self._max(fn)
        x = abs(p.number(0, -hi, hi, 105e-6 if fn == "CURR" else 21.0))
        if x < self._ranges(fn)[0] * 1e-3:
            raise ScpiError(-222, "below minimum compliance")
        other = "VOLT" if fn == "CURR" else "CURR"
        if other == self.source_fn:
            check_envelope(self.model, other, self.src[other].range, x)
        self.prot[fn] = x
        if self.output:
            self._apply_output()

    def _tripped(self, fn: str) -> str:
        if not self.output or fn == self.source_fn:
            return "0"
        return "1" if self._force(self.src[self.source_fn].level).limited else "0"

    def _set_meas_range(self, fn: str, p: Params) -> None:
        ranges = self._ranges(fn)
        self.meas_range[fn] = self._range_value(p, self.meas_range[fn], ranges, ranges[-1])
        self.meas_auto[fn] = False

    def _meas_range_query(self, fn: str) -> str:
        if self.meas_auto[fn] and fn != "RES" and self.last:
            rd = self.last[-1]
            return nr3(self._meas_range(fn, rd.i if fn == "CURR" else rd.v))
        return nr3(self.meas_range[fn])

    def _set_functions(self, p: Params, on: bool) -> None:
        names = [sense_function_name(p.string(k)) for k in range(len(p))]
        if on and not self.concurrent and len(names) > 1:
            raise ScpiError(-221, "concurrent functions off")
        if on:
            keep = self.functions if self.concurrent else []
            self.functions = [f for f in ("VOLT", "CURR", "RES") if f in keep or f in names]
        else:
            self.functions = [f for f in self.functions if f not in names]

    def _set_all(self, on: bool) -> None:
        if on and not self.concurrent:
            raise ScpiError(-221, "concurrent functions off")
        self.functions = ["VOLT", "CURR", "RES"] if on else []

    def _set_concurrent(self, p: Params) -> None:
        self.concurrent = p.boolean(0)
        if not self.concurrent and len(self.functions) > 1:
            self.functions = ["CURR"] if "CURR" in self.functions else self.functions[:1]

    def _set_elements(self, p: Params) -> None:
        chosen = {p.keyword(k, ("VOLTage", "CURRent", "RESistance", "TIME", "STATus")) for k in range(len(p))}
        self.elements = [e for e in ELEMENTS if e in chosen]

    def _set_counts(self, p: Params, attr: str) -> None:
        n = p.integer(0, 1, 2500, 1)
        other = self.arm_count if attr == "trig_count" else self.trig_count
        if n * other > 2500:
            raise ScpiError(-221, "arm count x trigger count > 2500")
        setattr(self, attr, n)

    def _set_azero(self, p: Params) -> None:
        if p.is_word(0, "ONCE"):
            self.bench.clock.sleep(2 * integration_time_s(self.nplc, self.line_Hz, False))
            self.azero = False
        else:
            self.azero = p.boolean(0)

    def _set_trace(self, p: Params, attr: str, options: tuple[str, ...] | None) -> None:
        if self.trace_control == "NEXT":
            raise ScpiError(800)
        setattr(self, attr, p.keyword(0, options) if options else p.integer(0, 1, 2500, 100))

    def _set_trace_control(self, p: Params) -> None:
        self.trace_control = p.keyword(0, ("NEXT", "NEVer"))
        if self.trace_control == "NEXT":
            self.trace = []
            self.meas_reg.condition &= ~(1 << 9)

    def _trace_data(self, p: Params) -> str:
        if not self.trace:
            raise ScpiError(-230)
        t = [rd.t_s for rd in self.trace]
        rel = [x - (t[0] if self.tst_format == "ABS" else t[max(k - 1, 0)]) for k, x in enumerate(t)]
        return self._format(self.trace, rel)

    def _calc3(self, p: Params) -> str:
        cols = [e for e in ("VOLT", "CURR", "RES") if e in self.elements]
        if not self.trace or not cols:
            raise ScpiError(-230)
        data = np.array([[{"VOLT": rd.v, "CURR": rd.i, "RES": rd.r}[c] for c in cols] for rd in self.trace])
        stat = {
            "MEAN": lambda a: a.mean(axis=0),
            "SDEV": lambda a: a.std(axis=0, ddof=1 if len(a) > 1 else 0),
            "MAX": lambda a: a.max(axis=0),
            "MIN": lambda a: a.min(axis=0),
            "PKPK": lambda a: a.max(axis=0) - a.min(axis=0),
        }[self.calc3_format](data)
        return ",".join(nr3(float(x)) for x in np.atleast_1d(stat))

    def _sweep_limit(self, fn: str, attr: str) -> float:
        s = self.src[fn]
        center, span = (s.start + s.stop) / 2, s.stop - s.start
        limits = {"start": s.start, "stop": s.stop, "center": center, "span": span}
        return limits[attr]

    def _set_delay(self, p: Params) -> None:
        self.src_delay_s, self.src_delay_auto = p.number(0, 0.0, 999.9999, 0.0), False

    def _beep(self, p: Params) -> None:
        p.number(0, 65.0, 2e6)
        p.number(1, 0.0, 7.9)

    def _set_lfr(self, p: Params) -> None:
        f = p.integer(0, 50, 60, 60)
        if f not in (50, 60):
            raise ScpiError(-222)
        self.line_Hz = f


def _commands() -> tuple[Command, ...]:
    """The 2400-series command tree (instruments.md §1.3-§1.4)."""
    E = Keithley2400Emulator
    src, sens = ":SOURce[1]", "[:SENSe[1]]"
    arm, trig = ":ARM[:SEQuence[1]][:LAYer[1]]", ":TRIGger[:SEQuence[1]]"
    ints = {"integer": True}
    cmds: list[Command] = [
        choice(f"{src}:FUNCtion[:MODE]", "source_fn", ("VOLTage", "CURRent"), after="_apply_output"),
        Command(f"{src}:CLEar[:IMMediate]", write=lambda s, p: s._set_output(False), wargs=(0, 0)),
        flag(f"{src}:CLEar:AUTO", "clear_auto"),
        Command(f"{src}:DELay", write=E._set_delay, query=lambda s, p: nr3(s.src_delay_s)),
        flag(f"{src}:DELay:AUTO", "src_delay_auto"),
        number(f"{src}:SWEep:POINts", "sweep_points", 1, 2500, 2500, **ints),
        choice(f"{src}:SWEep:DIRection", "sweep_dir", ("UP", "DOWN")),
        choice(f"{src}:SWEep:RANGing", "sweep_ranging", ("BEST", "AUTO", "FIXed")),
        choice(f"{src}:SWEep:SPACing", "sweep_spacing", ("LINear", "LOGarithmic")),
        choice(f"{src}:SWEep:CABort", "sweep_cab", ("NEVer", "EARLy", "LATE")),
        flag(":OUTPut[1][:STATe]", "output", after="_apply_output"),
        choice(":OUTPut[1]:SMODe", "smode", ("HIMPedance", "NORMal", "ZERO", "GUARd"), after="_apply_output"),
        Command(f"{sens}:FUNCtion:CONCurrent", write=E._set_concurrent,
                query=lambda s, p: str(int(s.concurrent))),
        Command(f"{sens}:FUNCtion[:ON]", write=lambda s, p: s._set_functions(p, True), wargs=(1, 3),
                query=lambda s, p: ",".join('"RES"' if f == "RES" else f'"{f}:DC"' for f in s.functions)),
        Command(f"{sens}:FUNCtion[:ON]:ALL", write=lambda s, p: s._set_all(True), wargs=(0, 0)),
        Command(f"{sens}:FUNCtion:OFF", write=lambda s, p: s._set_functions(p, False), wargs=(1, 3)),
        Command(f"{sens}:FUNCtion:OFF:ALL", write=lambda s, p: s._set_all(False), wargs=(0, 0)),
        Command(f"{sens}:FUNCtion[:ON]:COUNt", query=lambda s, p: str(len(s.functions))),
        Command(f"{sens}:FUNCtion:OFF:COUNt", query=lambda s, p: str(3 - len(s.functions))),
        Command(f"{sens}:FUNCtion:STATe", qargs=(1, 1),
                query=lambda s, p: str(int(sense_function_name(p.string(0)) in s.functions))),
        choice(f"{sens}:RESistance:MODE", "res_mode", ("MANual", "AUTO")),
        flag(f"{sens}:AVERage[:STATe]", "filter_on"),
        choice(f"{sens}:AVERage:TCONtrol", "filter_tcon", ("REPeat", "MOVing")),
        number(f"{sens}:AVERage:COUNt", "filter_count", 1, 100, 10, **ints),
        flag(":SYSTem:RSENse", "rsense"),
        Command(":SYSTem:AZERo[:STATe]", write=E._set_azero, query=lambda s, p: str(int(s.azero))),
        Command(":SYSTem:LFRequency", write=E._set_lfr, query=lambda s, p: str(s.line_Hz)),
        flag(":SYSTem:LFRequency:AUTO", "lfr_auto"),
        Command(":SYSTem:TIME", query=lambda s, p: nr3(s.bench.clock.now() - s.t_stamp0_s)),
        Command(":SYSTem:TIME:RESet", write=lambda s, p: setattr(s, "t_stamp0_s", s.bench.clock.now()),
                wargs=(0, 0)),
        Command(":SYSTem:PRESet", write=lambda s, p: s.reset(), wargs=(0, 0)),
        Command(":SYSTem:BEEPer[:IMMediate]", write=E._beep, wargs=(2, 2)),
        flag(":SYSTem:BEEPer:STATe", "beeper_on"),
        Command(":SYSTem:VERSion", query=lambda s, p: "1999.0"),
        noop(":SYSTem:REMote"),
        noop(":SYSTem:LOCal"),
        noop(":SYSTem:RWLock"),
        flag(":DISPlay:ENABle", "display_on"),
        choice(":ROUTe:TERMinals", "terminals", ("FRONt", "REAR")),
        Command(":FORMat:ELEMents[:SENSe[1]]", write=E._set_elements, wargs=(1, 5),
                query=lambda s, p: ",".join(s.elements)),
        Command(":FORMat[:DATA]", write=E._set_data_format, wargs=(1, 2), query=lambda s, p: "ASC"),
        Command(f"{arm}:COUNt", write=lambda s, p: s._set_counts(p, "arm_count"),
                query=lambda s, p: str(s.arm_count)),
        Command(f"{trig}:COUNt", write=lambda s, p: s._set_counts(p, "trig_count"),
                query=lambda s, p: str(s.trig_count)),
        number(f"{trig}:DELay", "trig_delay_s", 0, 999.9999, 0),
        number(f"{arm}:TIMer", "arm_timer_s", 0.001, 99999.99, 0.1),
        choice(f"{trig}:SOURce", "trig_source", ("IMMediate", "TLINk")),
        choice(f"{arm}:SOURce", "arm_source",
               ("IMMediate", "TLINk", "TIMer", "MANual", "BUS", "NSTest", "PSTest", "BSTest")),
        choice(f"{trig}:OUTPut", "trig_output", ("SOURce", "DELay", "SENSe", "NONE")),
        choice(f"{arm}:OUTPut", "arm_output", ("TENTer", "TEXit", "NONE")),
        number(f"{trig}:ILINe", "trig_ilin", 1, 4, 1, **ints),
        number(f"{trig}:OLINe", "trig_olin", 1, 4, 1, **ints),
        number(f"{arm}:ILINe", "arm_ilin", 1, 4, 1, **ints),
        number(f"{arm}:OLINe", "arm_olin", 1, 4, 1, **ints),
        noop(f"{trig}:CLEar"),
        noop(":ABORt"),
        Command(":INITiate[:IMMediate]", write=lambda s, p: s._run(), wargs=(0, 0)),
        Command(":READ", query=E._read),
        Command(":FETCh", query=E._fetch),
        Command(":MEASure", query=lambda s, p: s._measure(None)),
        Command(":TRACe:CLEar", write=lambda s, p: setattr(s, "trace", []), wargs=(0, 0)),
        Command(":TRACe:POINts", write=lambda s, p: s._set_trace(p, "trace_points", None),
                query=lambda s, p: str(s.trace_points)),
        Command(":TRACe:POINts:ACTual", query=lambda s, p: str(len(s.trace))),
        Command(":TRACe:FEED", write=lambda s, p: s._set_trace(p, "trace_feed", FEEDS),
                query=lambda s, p: s.trace_feed),
        Command(":TRACe:FEED:CONTrol", write=E._set_trace_control, query=lambda s, p: s.trace_control),
        Command(":TRACe:DATA", query=E._trace_data),
        choice(":TRACe:TSTamp:FORMat", "tst_format", ("ABSolute", "DELTa")),
        choice(":CALCulate3:FORMat", "calc3_format", ("MEAN", "SDEViation", "MAXimum", "MINimum", "PKPK")),
        Command(":CALCulate3:DATA", query=E._calc3),
        Command(":STATus:PRESet", write=lambda s, p: s.preset_status(), wargs=(0, 0)),
        Command(":STATus:QUEue[:NEXT]", query=lambda s, p: format_error(*s.errors.pop())),
        Command(":STATus:QUEue:CLEar", write=lambda s, p: s.errors.clear(), wargs=(0, 0)),
        *status_register_commands("MEASurement", "meas_reg"),
        *status_register_commands("OPERation", "oper_reg"),
        *status_register_commands("QUEStionable", "ques_reg"),
    ]
    for fn, word in (("VOLT", "VOLTage"), ("CURR", "CURRent")):
        f_src = f"{src}:{word}"

        def on(f: str = fn) -> Any:
            return lambda s: s.src[f]

        cmds += [
            *source_setting_commands(f_src, fn, nr3),
            choice(f"{f_src}:MODE", "mode", ("FIXed", "SWEep", "LIST"), obj=on()),
            Command(f"{f_src}:STEP", write=lambda s, p, f=fn: s._set_step(f, p),
                    query=lambda s, p, f=fn: nr3(s._step(f))),
            *source_list_commands(src, word, fn, lambda s, f=fn: s.src[f].values, nr3),
            Command(f"{sens}:{word}[:DC]:PROTection[:LEVel]", write=lambda s, p, f=fn: s._set_prot(f, p),
                    query=lambda s, p, f=fn: nr3(s.prot[f])),
            Command(f"{sens}:{word}[:DC]:PROTection:TRIPped", query=lambda s, p, f=fn: s._tripped(f)),
        ]
        for attr, node in (("start", "STARt"), ("stop", "STOP"), ("center", "CENTer"), ("span", "SPAN")):
            cmds.append(Command(f"{f_src}:{node}",
                                write=lambda s, p, f=fn, a=attr: s._set_sweep_limit(f, a, p),
                                query=lambda s, p, f=fn, a=attr: nr3(s._sweep_limit(f, a))))
    for fn, word in (("VOLT", "VOLTage[:DC]"), ("CURR", "CURRent[:DC]"), ("RES", "RESistance")):
        cmds += [
            Command(f"{sens}:{word}:RANGe[:UPPer]", write=lambda s, p, f=fn: s._set_meas_range(f, p),
                    query=lambda s, p, f=fn: s._meas_range_query(f)),
            Command(f"{sens}:{word}:RANGe:AUTO",
                    write=lambda s, p, f=fn: s.meas_auto.__setitem__(f, p.boolean(0)),
                    query=lambda s, p, f=fn: str(int(s.meas_auto[f]))),
            number(f"{sens}:{word}:NPLCycles", "nplc", 0.01, 10.0, 1.0),  # global on the 2400
            Command(f":MEASure:{word}", query=lambda s, p, f=fn: s._measure(f)),
        ]
    return COMMON_COMMANDS + SYSTEM_ERROR_COMMANDS + tuple(cmds)


Keithley2400Emulator.COMMANDS = _commands()
