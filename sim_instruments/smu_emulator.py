"""What the Keithley 2400-series and 2450 emulators share: identity, status registers, the source side.

:class:`SmuEmulator` holds the logic that is the same on both command sets (source ranges and levels, forcing
the terminal on the bench, the integration window of one reading, output off modes); the subclasses supply
the limit in force (:meth:`SmuEmulator._source_limit`), the envelope check of a new source setting and their
own command trees, into which :func:`source_setting_commands` and :func:`source_list_commands` put the
source nodes they have in common.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar

from labctl.analysis.smu_timing import READING_OVERHEAD_S, integration_time_s
from sim_instruments.laser_path import PhotodiodeTerminal
from sim_instruments.reference_cell import ReferenceCellTerminal
from sim_instruments.scpi import Command, Params, ScpiError, ScpiInstrument
from sim_instruments.smu_physics import (
    HEADROOM,
    RES_RANGES_OHM,
    SmuModel,
    Terminal,
    force_current,
    force_voltage,
    pick_range,
    step_range,
)

FRAMING: dict[str, Any] = {"read_termination": "\n", "write_termination": "\n"}
WAIT_SLICE_S = 0.02
"""Longest piece of instrument time slept at once in a running sweep (s): how soon an abort is acted on."""
SOURCE_HISTORY_MAX = 10_000
"""Entries kept in a source meter's :attr:`SmuEmulator.source_history` (the oldest go first)."""


def shared_source_history(bench: Any, sim_name: str) -> deque[tuple[float, bool, str, float]]:
    """The source history of the source meter ``sim_name`` on ``bench``, kept on the bench so that it spans the
    emulators a station opens for it (in-process every reconnect makes a new one)."""
    histories = bench.__dict__.setdefault("_source_histories", {})
    return histories.setdefault(sim_name, deque(maxlen=SOURCE_HISTORY_MAX))


class SweepAborted(Exception):
    """A running sweep (trigger model) was aborted (``:ABORt`` or a device clear)."""


def message_header(message: str) -> str:
    """Upper-case header of the first unit of ``message`` without its leading colon, e.g. ``ABOR``."""
    unit = message.split(";", 1)[0].strip()
    return unit.split(None, 1)[0].lstrip(":").upper() if unit else ""


def sense_function_name(text: str) -> str:
    """'VOLT', 'CURR' or 'RES' from a sense function string such as ``curr:dc`` or ``RESistance``."""
    parts = text.upper().split(":")
    for name, short in (("VOLTAGE", "VOLT"), ("CURRENT", "CURR"), ("RESISTANCE", "RES")):
        if parts[0] in (name, short) and (parts[1:] in ([], ["DC"]) and (short != "RES" or len(parts) == 1)):
            return short
    raise ScpiError(-224, "unknown function")


class SmuEmulator(ScpiInstrument):
    """Base of the Keithley SMU emulators on ``bench``. Subclasses set ``src`` (per source function: level,
    range, auto), ``source_fn``, ``output``, ``_active_range`` and ``_v_last`` in :meth:`reset`."""

    #: the ``sim://<name>`` resources of the bench this emulator can be: the source meter on the device, or the
    #: one on the in-sphere monitor photodiode (:class:`sim_instruments.laser_path.PhotodiodeTerminal`), or the
    #: one on the reference cell (:class:`sim_instruments.reference_cell.ReferenceCellTerminal`), or a further
    #: source meter of a multi-pixel fixture (``smu2``..``smu4``: the devices ``simulation.wiring`` connects to
    #: it, :meth:`sim_instruments.bench.Bench.terminal`; unwired, an open circuit)
    SIM_NAMES: tuple[str, ...] = ("smu", "monitor_smu", "reference_cell", "smu2", "smu3", "smu4")

    #: (event register attribute, its summary bit in the status byte)
    STATUS_REGISTERS: ClassVar[tuple[tuple[str, int], ...]] = ()
    #: value of a source ``:RANGe`` command without a number, per source function (default: the top range)
    SOURCE_RANGE_DEFAULTS: ClassVar[dict[str, float]] = {}
    #: headers (as :func:`message_header` gives them) that abort a running sweep when they arrive
    ABORT_HEADERS: ClassVar[frozenset[str]] = frozenset({"ABOR", "ABORT"})
    #: headers that also end a running sweep, then run in their turn (e.g. ``*RST``)
    ABORT_THEN_RUN_HEADERS: ClassVar[frozenset[str]] = frozenset()

    src: dict[str, Any]
    source_fn: str
    output: bool
    _active_range: float | None
    _v_last: float | None

    def __init__(self, bench: Any, model: SmuModel, serial: str, sim_name: str = "smu") -> None:
        super().__init__()
        if sim_name not in self.SIM_NAMES:
            raise ValueError(f"no source meter {sim_name!r} on the bench (allowed: {', '.join(self.SIM_NAMES)})")
        #: what the output did, oldest first, bounded (:data:`SOURCE_HISTORY_MAX`): (station time s, output on,
        #: source function "VOLT" / "CURR", level V or A) at each change, e.g. for "the source never stepped to
        #: a stale level" tests; shared by every emulator of this ``sim_name`` on the bench
        self.source_history = shared_source_history(bench, sim_name)
        self.sim_name = sim_name
        if sim_name == "monitor_smu":
            bench = PhotodiodeTerminal(bench)  # the SMU's terminals are on the monitor photodiode
        elif sim_name == "reference_cell":
            bench = ReferenceCellTerminal(bench)  # ... on the reference cell under the solar simulator
        elif hasattr(bench, "terminal"):
            bench = bench.terminal(sim_name)  # ... on the fixture's terminal of that name (unwired smu: the bench)
        self.bench = bench
        self.model = model
        self.serial = serial
        self.line_Hz = int(round(bench.line_frequency_Hz))
        #: True while a sweep / the trigger model runs (the instrument executes nothing else meanwhile)
        self.busy = False
        self._abort = threading.Event()

    # -- a busy instrument ---------------------------------------------------------------------------------
    def interrupt(self, message: str) -> bool:
        """A message arriving while another may run (transport reader thread; see InstrumentLink.interrupt).

        While a sweep runs, ``:ABORt`` ends it at once and is consumed; ``ABORT_THEN_RUN_HEADERS`` end it and
        then run in turn; every other message waits in the input queue until the sweep is over (2400 manual,
        "Triggering": while in the trigger model only SDC/DCL, ``:ABORt``, ``:SYST:PRES``, ``*TRG``, ``*RST``,
        ``*RCL`` are executed). Idle, nothing is done out of turn: ``:ABORt`` then runs in order (a no-op)."""
        if not self.busy:
            return False
        header = message_header(message)
        if header in self.ABORT_HEADERS:
            self._abort.set()
            return True
        if header in self.ABORT_THEN_RUN_HEADERS:
            self._abort.set()
        return False

    def handle(self, message: str) -> str | None:
        """As :meth:`ScpiInstrument.handle`; an aborted sweep gives no reply, and the rest of its message is
        dropped (the 2400 manual: SDC/DCL/``:ABORt`` "abort any other command or query") [L: no error queued]."""
        try:
            return super().handle(message)
        except SweepAborted:
            return None

    def device_clear(self) -> None:
        """The bus's device clear (GPIB SDC/DCL, USBTMC/VXI-11 clear): abort a running sweep (no reply)."""
        if self.busy:
            self._abort.set()

    def _begin_sweep(self) -> None:
        self._abort.clear()
        self.busy = True

    def _end_sweep(self) -> None:
        self.busy = False
        self._abort.clear()

    def _wait(self, dt_s: float) -> None:
        """Instrument time passing (s) on the bench clock, in slices; raises :class:`SweepAborted` once an
        abort has arrived during a sweep (a virtual clock sleeps at once: nothing can arrive meanwhile)."""
        clock = self.bench.clock
        if getattr(clock, "virtual", False):
            clock.sleep(dt_s)
            return
        left = dt_s
        while True:
            if self.busy and self._abort.is_set():
                raise SweepAborted()
            if left <= 0:
                return
            piece = min(left, WAIT_SLICE_S)
            clock.sleep(piece)
            left -= piece

    # -- IEEE 488.2 hooks ----------------------------------------------------------------------------------
    def identity(self) -> str:
        return f"KEITHLEY INSTRUMENTS INC.,MODEL {self.model.name},{self.serial},{self.model.firmware}"

    def power_on(self) -> None:
        """A power cycle (fault injection, :func:`sim_instruments.faults.power_on_reset`): a running sweep ends,
        the settings go to their ``*RST`` defaults (output off, levels 0), the error queue and the status
        registers are cleared and their enables preset."""
        if self.busy:
            self._abort.set()
        self.busy = False
        self.reset()
        self.clear_status()
        self.preset_status()
        self.ese = self.sre = 0

    def clear_status(self) -> None:
        super().clear_status()
        for name, _ in self.STATUS_REGISTERS:
            getattr(self, name).event = 0

    def summary_bits(self) -> int:
        bits = 0
        for name, bit in self.STATUS_REGISTERS:
            bits |= bit if getattr(self, name).summary else 0
        return bits

    def preset_status(self) -> None:
        for name, _ in self.STATUS_REGISTERS:
            getattr(self, name).enable = 0

    # -- source side ---------------------------------------------------------------------------------------
    def _ranges(self, fn: str) -> tuple[float, ...]:
        return {"VOLT": self.model.v_ranges_V, "CURR": self.model.i_ranges_A, "RES": RES_RANGES_OHM}[fn]

    def _max(self, fn: str) -> float:
        return self.model.v_max_V if fn == "VOLT" else self.model.i_max_A

    def _src_range(self) -> float:
        return self._active_range or self.src[self.source_fn].range

    def _source_limit(self) -> float:
        """The limit (A or V) in force on the quantity that is not sourced."""
        raise NotImplementedError

    def _output_off_mode(self) -> str:
        """The output-off state (``ZERO`` shorts the terminals, the others leave them open)."""
        raise NotImplementedError

    def _check_source_envelope(self, fn: str, src_range: float) -> None:
        """Raise -221 if source range ``src_range`` of function ``fn`` leaves the power envelope."""
        raise NotImplementedError

    def _level_is_live(self, fn: str) -> bool:
        """Whether a new level of the source function goes to the output at once (output on)."""
        return True

    def _record_source(self, output_on: bool, level: float) -> None:
        """Append (now, output on, source function, level) to :attr:`source_history` if it changed."""
        entry = (float(self.bench.clock.now()), bool(output_on), self.source_fn, float(level))
        history = self.source_history
        if not history or history[-1][1:] != entry[1:]:
            history.append(entry)

    def _force(self, value: float) -> Terminal:
        self._record_source(self.output, value)
        limit = self._source_limit()
        if self.source_fn == "VOLT":
            # in compliance the load sets the voltage, on any source range (smu_physics.force_voltage)
            return force_voltage(self.bench, value, limit, self.model.v_max_V)
        if self._v_last is None:
            self._v_last = self.bench.open_circuit_voltage_V()
        term = force_current(self.bench, value, limit, self._v_last)
        self._v_last = term.v_V
        return term

    def _apply_output(self) -> None:
        """Put the programmed bias on the cell (output on) or release it (off: ZERO shorts, others open)."""
        if self.output:
            self._force(self.src[self.source_fn].level)
        else:
            self._record_source(False, self.src[self.source_fn].level)
            self.bench.set_cell_bias(0.0 if self._output_off_mode() == "ZERO" else None)

    def _integrate(
        self, value: float, nplc: float, azero: bool, n_avg: int, repeat: bool, measure: bool = True
    ) -> tuple[float, Terminal | None]:
        """The A/D window of one reading on the bench clock (``n_avg`` windows with the repeat filter):
        (bench time mid-window, the terminal forced to ``value`` then, or None if ``measure`` is false)."""
        clock = self.bench.clock
        window_s = integration_time_s(nplc, self.line_Hz, azero)
        window_s *= n_avg if repeat else 1
        self._wait(window_s / 2)
        t_s = clock.now()
        term = self._force(value) if measure else None
        self._wait(window_s / 2 + READING_OVERHEAD_S)
        return t_s, term

    # -- source command handlers ---------------------------------------------------------------------------
    def _set_level(self, fn: str, p: Params) -> None:
        s, hi = self.src[fn], self._max(fn)
        x = p.number(0, -hi, hi, 0.0)
        rng = s.range if not s.auto else (pick_range(x, self._ranges(fn)) or self._ranges(fn)[-1])
        if abs(x) > rng * HEADROOM * (1 + 1e-12):
            raise ScpiError(-222, "exceeds source range")
        self._check_source_envelope(fn, rng)
        s.level, s.range = x, rng
        if self.output and fn == self.source_fn and self._level_is_live(fn):
            self._apply_output()

    def _range_value(
        self, p: Params, current: float, ranges: tuple[float, ...], default: float | None = None
    ) -> float:
        """A range from ``UP``/``DOWN``, ``MIN``/``MAX`` or a value (the lowest range holding it)."""
        if p.is_word(0, "UP", "DOWN"):
            return step_range(current, ranges, p.is_word(0, "UP"))
        if p.is_word(0, "MINimum", "MAXimum"):
            return ranges[0] if p.is_word(0, "MINimum") else ranges[-1]
        x = p.number(0, -ranges[-1] * HEADROOM, ranges[-1] * HEADROOM, ranges[-1] if default is None else default)
        return pick_range(x, ranges) or ranges[-1]

    def _set_src_range(self, fn: str, p: Params) -> None:
        s = self.src[fn]
        rng = self._range_value(p, s.range, self._ranges(fn), self.SOURCE_RANGE_DEFAULTS.get(fn))
        if abs(s.level) > rng * HEADROOM:
            raise ScpiError(-221, "level exceeds range")
        self._check_source_envelope(fn, rng)
        s.range, s.auto = rng, False

    def _set_src_auto(self, fn: str, p: Params) -> None:
        s = self.src[fn]
        s.auto = p.boolean(0)
        if s.auto:
            s.range = pick_range(s.level, self._ranges(fn)) or self._ranges(fn)[-1]

    def _set_data_format(self, p: Params) -> None:
        if p.keyword(0, ("ASCii", "REAL", "SREal")) != "ASC":
            raise ScpiError(-221, "binary formats not emulated")


def source_setting_commands(f_src: str, fn: str, fmt: Callable[[float], str]) -> list[Command]:
    """Level, range and auto range of source function ``fn`` under ``f_src`` (e.g. ``:SOURce[1]:VOLTage``)."""
    return [
        Command(f"{f_src}[:LEVel][:IMMediate][:AMPLitude]", write=lambda s, p: s._set_level(fn, p),
                query=lambda s, p: fmt(s.src[fn].level)),
        Command(f"{f_src}:RANGe", write=lambda s, p: s._set_src_range(fn, p),
                query=lambda s, p: fmt(s.src[fn].range)),
        Command(f"{f_src}:RANGe:AUTO", write=lambda s, p: s._set_src_auto(fn, p),
                query=lambda s, p: str(int(s.src[fn].auto))),
    ]


def source_list_commands(
    src: str, word: str, fn: str, values: Callable[[Any], list[float]], fmt: Callable[[float], str]
) -> list[Command]:
    """``<src>:LIST:<word>`` (values), ``:APPend`` and ``:POINts``; ``values(emulator)`` is the stored list."""
    return [
        Command(f"{src}:LIST:{word}[:VALues]", write=lambda s, p: s._set_list(fn, p, False),
                wargs=(1, 2500), query=lambda s, p: ",".join(fmt(x) for x in values(s))),
        Command(f"{src}:LIST:{word}:APPend", write=lambda s, p: s._set_list(fn, p, True), wargs=(1, 2500)),
        Command(f"{src}:LIST:{word}:POINts", query=lambda s, p: str(len(values(s)))),
    ]
