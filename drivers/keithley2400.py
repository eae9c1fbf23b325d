"""Keithley 2400 and 2420 SourceMeters (2400-series SCPI), built on PyMeasure's ``Keithley2400``.

Also holds the pieces shared with :mod:`drivers.keithley2450`: the reply parsers, the raising error-queue
check and :class:`KeithleySourceMeterMixin` (timing model, read timeouts, safe state).

Fixes to the stock PyMeasure class:

* every range is a ``strict_range`` validator sized for the model (2420: ±63 V, ±3.15 A), so an impossible
  setting raises ``ValueError`` before anything is sent; the commands used are the reference short forms;
* the data format is ``:FORM:ELEM VOLT,CURR,TIME,STAT`` (what our readings need); ``resistance`` and
  ``measure_all`` (which sends the invalid ``:SENSE:FUNCTION:ALL``) therefore refuse to run;
* ``:SYST:ERR?`` replies are parsed without splitting the message at its commas, the error-queue loop is
  bounded; ``check_errors`` returns the entries (never raises for a queued error), ``check_set_errors`` /
  ``check_get_errors`` raise :class:`~drivers.smu.InstrumentError`;
* ``shutdown()`` is :meth:`safe_state` (abort a running sweep, 0 V, output off) instead of a 30-step ramp;
* the constructor sends nothing (the stock one sent ``:FORM:ELEM``), so the identity is verified before any
  command reaches the instrument (:attr:`Keithley2400.IDENTITY`, :func:`drivers.identity.verify_identity`); the data
  format is set by :meth:`Keithley2400.configure_voltage_source`.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
from pymeasure.instruments import Instrument
from pymeasure.instruments.keithley import Keithley2400 as _StockKeithley2400
from pymeasure.instruments.validators import strict_discrete_set, strict_range

from drivers.identity import IdentitySpec
from drivers.registration import ConnectionDefaults, InstrumentRegistration
from drivers.safe import source_meter_safe_state
from drivers.smu import InstrumentError, ModelLimits, SourceMeter, SweepData
from labctl.analysis.smu_timing import reading_time_s as _reading_time_s

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

NAN_READING = 9.91e37
"""The Keithley "not a number" placeholder (element not measured); parsed to NaN."""
OVERFLOW_READING = 9.9e37
"""The Keithley over-range reading; parsed to ±inf."""
TIMING_MARGIN = 1.25
"""Factor on the modelled measurement time when sizing read timeouts."""
TRANSFER_ALLOWANCE_S = 0.01
"""Read-timeout allowance per point for the reply transfer (s): GPIB/USB/LAN, or RS-232 >= 57600 Bd."""
TIMEOUT_MARGIN_S = 10.0
"""Fixed read-timeout margin (s)."""
KEITHLEY_MANUFACTURER = r"KEITHLEY INSTRUMENTS(?: INC\.)?"
"""The manufacturer field of a Keithley ``*IDN?`` reply: ``KEITHLEY INSTRUMENTS INC.`` (2400 series, 2450
manual example) or ``KEITHLEY INSTRUMENTS`` (newer 2450 firmware), instruments.md §1.1, §2."""
MAX_ERROR_READS = 50
"""``:SYST:ERR?`` reads before giving up on emptying the error queue."""
CHUNK_S = 1.0
"""Longest stretch of a slow built-in sweep that is read in one piece (s), or one point if longer: what a
killed run can lose of it (the run file's last flush aside)."""
MIN_CHUNKED_POINT_S = 0.5
"""Shortest time per point (s) of a 2400 sweep that is split into pieces. Each boundary adds one exchange to
the step across it (a few ms on GPIB; over a loopback socket 2-4 ms median, up to ~9 ms on a loaded PC): from
0.5 s per point, that stays within about 1 % of the requested scan rate."""
MAX_STALE_REPLIES = 10
"""Replies dropped at most, after an abort, while waiting for the reply to ``*IDN?``."""


class ReplyError(InstrumentError):
    """A reply could not be parsed (not numbers, wrong count); names the instrument, command and reply."""


# --------------------------------------------------------------------------------------------- parsing


def _excerpt(reply: str, limit: int = 160) -> str:
    text = reply.strip()
    return repr(text if len(text) <= limit else text[:limit] + "...")


def parse_numbers(reply: str, *, instrument: str, command: str) -> np.ndarray:
    """Comma-separated ASCII numbers to a float array; 9.91e37 -> NaN, ±9.9e37 (over range) -> ±inf."""
    text = reply.strip()
    if not text:
        raise ReplyError(f"{instrument}: empty reply to {command!r}")
    fields = text.split(",")
    try:
        values = np.array([float(field) for field in fields], dtype=np.float64)
    except ValueError:
        bad = next(i for i, field in enumerate(fields) if not _is_number(field))
        raise ReplyError(
            f"{instrument}: field {bad} ({fields[bad].strip()!r}) of the reply to {command!r} is not a "
            f"number; reply {_excerpt(reply)}"
        ) from None
    magnitude = np.abs(values)
    if magnitude.max() < 0.99 * OVERFLOW_READING:  # no placeholder, no overflow: nearly every reply
        return values
    # np.isclose(magnitude, X, rtol=1e-4, atol=0) written out: the same test at a fraction of its cost per reply
    placeholder = np.abs(magnitude - NAN_READING) <= 1e-4 * NAN_READING
    overflow = np.abs(magnitude - OVERFLOW_READING) <= 1e-4 * OVERFLOW_READING
    values[overflow] = np.copysign(np.inf, values[overflow])
    values[placeholder] = np.nan
    return values


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def parse_groups(
    reply: str, n_elements: int, *, instrument: str, command: str, points: int | None = None
) -> np.ndarray:
    """Flat reply of ``points`` groups of ``n_elements`` numbers to an array of shape (points, n_elements)."""
    values = parse_numbers(reply, instrument=instrument, command=command)
    expected = None if points is None else points * n_elements
    if values.size % n_elements or (expected is not None and values.size != expected):
        wanted = f"{expected}" if expected is not None else f"a multiple of {n_elements}"
        raise ReplyError(
            f"{instrument}: reply to {command!r} has {values.size} numbers, expected {wanted} "
            f"({n_elements} per point); reply {_excerpt(reply)}"
        )
    return values.reshape(-1, n_elements)


def parse_error_entry(reply: str, *, instrument: str) -> tuple[int, str]:
    """``-113,"Undefined header"`` -> (-113, 'Undefined header'); commas inside the message are kept."""
    code_text, _, message = reply.strip().partition(",")
    try:
        code = int(code_text)
    except ValueError:
        raise ReplyError(f"{instrument}: unreadable reply to ':SYST:ERR?': {_excerpt(reply)}") from None
    text = message.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1]
    return code, text


def format_errors(instrument: str, context: str, errors: list[tuple[int, str]]) -> str:
    listing = "; ".join(f'{code},"{message}"' for code, message in errors)
    return f"{instrument}: {len(errors)} error(s) in the error queue after {context}: {listing}"


def status_bit(status: np.ndarray, bit: int, *, instrument: str, command: str) -> np.ndarray:
    """True where ``bit`` is set in the 2400 STATus element (decimal 24-bit word, sent as a float)."""
    valid = (status >= 0) & (status < 2**24) & (status == np.floor(status))  # False for NaN and inf too
    if not valid.all():
        bad = status[~valid][:5]
        raise ReplyError(f"{instrument}: invalid status word(s) {bad} in the reply to {command!r}")
    return ((status.astype(np.int64) >> bit) & 1) == 1


def keithley_identity(model: str) -> IdentitySpec:
    """The ``*IDN?`` replies of Keithley ``model`` (e.g. ``"2400"``): ``KEITHLEY INSTRUMENTS INC.,MODEL 2400,
    <serial>,<firmware>`` (instruments.md §1.1 [H] for the 2400, [M] for the 2420; §2 for the 2450)."""
    return IdentitySpec(
        query="*IDN?",
        accepts=(rf"{KEITHLEY_MANUFACTURER},MODEL {model},",),
        expected=f"KEITHLEY INSTRUMENTS INC.,MODEL {model},<serial>,<firmware>",
    )


# ----------------------------------------------------------------------------------- property factories


def ranged_control(command: str, doc: str, low: float, high: float) -> property:
    """``command?`` / ``command %g`` with a strict [low, high] validator (raises before sending)."""
    return Instrument.control(
        f"{command}?", f"{command} %g", f"{doc} (float, strictly {low:g} to {high:g}).",
        validator=strict_range, values=(low, high),
    )


def symmetric_control(command: str, doc: str, limit: float) -> property:
    """:func:`ranged_control` over [-limit, limit]."""
    return ranged_control(command, doc, -limit, limit)


def with_model_ranges(cls: type) -> type:
    """Class decorator: the source, measure and compliance properties of a 2400-family model, validated
    against that model's ``limits`` and ``compliance_min_A`` (so an impossible setting raises before sending)."""
    v, i, compliance_min_A = cls.limits.voltage_max_V, cls.limits.current_max_A, cls.compliance_min_A
    controls = {
        "source_voltage": symmetric_control(":SOUR:VOLT", "Source level (V)", v),
        "source_voltage_range": symmetric_control(":SOUR:VOLT:RANG", "Source range (V)", v),
        "voltage_range": symmetric_control(":SENS:VOLT:RANG", "Measure range (V)", v),
        "compliance_voltage": symmetric_control(":SENS:VOLT:PROT", "Compliance (V)", v),
        "source_current": symmetric_control(":SOUR:CURR", "Source level (A)", i),
        "source_current_range": symmetric_control(":SOUR:CURR:RANG", "Source range (A)", i),
        "current_range": symmetric_control(":SENS:CURR:RANG", "Measure range (A)", i),
        "compliance_current": ranged_control(":SENS:CURR:PROT", "Compliance (A)", compliance_min_A, i),
    }
    for name, control in controls.items():
        setattr(cls, name, control)
    return cls


def _on_off(reply: object) -> str:
    return "ON" if str(reply).strip().upper() in {"1", "1.0", "ON"} else "OFF"


def bool_control(command: str, doc: str, words: bool = False) -> property:
    """``command?`` / ``command 1|0`` (or ``ON|OFF`` with ``words``); the query accepts 1/0/ON/OFF."""
    if words:
        return Instrument.control(
            f"{command}?", f"{command} %s", f"{doc} (bool).", validator=strict_discrete_set,
            values={True: "ON", False: "OFF"}, map_values=True, get_process=_on_off,
        )
    return Instrument.control(
        f"{command}?", f"{command} %d", f"{doc} (bool).", validator=strict_discrete_set,
        values={True: 1, False: 0}, map_values=True,
    )


# ------------------------------------------------------------------------------------------ shared mixin


class KeithleySourceMeterMixin:
    """What the Keithley SMU drivers share: error queue, timing model, read timeouts, safe state.

    Put it first in the bases so it overrides PyMeasure's ``SCPIMixin`` error handling.
    """

    limits: ModelLimits
    compliance_min_A: float
    _nplc: float | None = None
    _source_delay_s: float = 0.0
    _compliance_A: float | None = None
    _line_frequency_Hz: float | None = None
    _auto_zero_on: bool = True  # the *RST default
    _error_queue_never_emptied: bool = False

    # --- error queue (PyMeasure check_errors machinery; check_set_errors raises)

    @property
    def next_error(self) -> tuple[int, str]:
        """Next error-queue entry as (code, message); (0, 'No error') when empty."""
        return parse_error_entry(self.ask(":SYST:ERR?"), instrument=self.name)

    def check_errors(self) -> list[tuple[int, str]]:
        """Read the error queue until code 0; return the (code, message) entries (logged).

        The labctl check_errors contract: never raises for a queued error. A queue still not empty after
        :data:`MAX_ERROR_READS` reads returns what was read (and :meth:`check_set_errors` says it never emptied);
        an unreadable reply is a broken link (:class:`ReplyError`).
        """
        errors: list[tuple[int, str]] = []
        self._error_queue_never_emptied = False
        for _ in range(MAX_ERROR_READS):
            code, message = self.next_error
            if code == 0:
                return errors
            log.error("%s: %d, %s", self.name, code, message)
            errors.append((code, message))
        log.error("%s: the error queue never emptied in %d reads", self.name, MAX_ERROR_READS)
        self._error_queue_never_emptied = True
        return errors

    def check_set_errors(self, context: str = "a setting") -> list[tuple[int, str]]:
        """Raise :class:`InstrumentError` listing every queued error; return [] when the queue is empty."""
        errors = self.check_errors()
        if self._error_queue_never_emptied:
            context = f"{context}, {MAX_ERROR_READS} reads (the queue never emptied)"
        if errors:
            raise InstrumentError(format_errors(self.name, context, errors))
        return errors

    def check_get_errors(self) -> list[tuple[int, str]]:
        return self.check_set_errors("a query")

    @property
    def idn(self) -> str:
        """``*IDN?`` reply (alias of PyMeasure's ``id``)."""
        return self.id

    # --- timing

    @property
    def line_frequency_Hz(self) -> float:
        """Power-line frequency (Hz) as reported by ``:SYST:LFR?`` (read once, refreshed by configure)."""
        if self._line_frequency_Hz is None:
            self._line_frequency_Hz = self._read_line_frequency()
        return self._line_frequency_Hz

    def _read_line_frequency(self) -> float:
        value = parse_numbers(self.ask(":SYST:LFR?"), instrument=self.name, command=":SYST:LFR?")
        if value.size != 1 or round(float(value[0])) not in (50, 60):
            raise ReplyError(f"{self.name}: line frequency {value.tolist()} is not 50 or 60 Hz")
        return float(round(float(value[0])))

    @staticmethod
    def reading_time_s(nplc: float, line_frequency_Hz: float, auto_zero: bool = True) -> float:
        """Time of one reading without source delay (s): NPLC/f_line x (3 with auto-zero, else 1) + 0.5 ms
        (the model of :mod:`labctl.analysis.smu_timing`).

        Needs no I/O, so procedures can check a requested scan rate before anything is sent."""
        return _reading_time_s(nplc, line_frequency_Hz, auto_zero)

    def measurement_time_s(self, nplc: float, source_delay_s: float) -> float:
        """Instrument time per reading (s): delay + NPLC/f_line x (3 with auto-zero, else 1) + 0.5 ms."""
        self._check_range("nplc", nplc, *self.limits.nplc_range, "PLC")
        self._check_range("source_delay_s", source_delay_s, 0.0, self.limits.source_delay_max_s, "s")
        return source_delay_s + self.reading_time_s(nplc, self.line_frequency_Hz, self._auto_zero_on)

    def read_timeout_s(self, points: int, source_delay_s: float) -> float:
        """Read timeout (s) for ``points`` readings at the configured NPLC; requires a configuration."""
        nplc = self._require_configured()
        per_point_s = self.measurement_time_s(nplc, source_delay_s) * TIMING_MARGIN + TRANSFER_ALLOWANCE_S
        return points * per_point_s + TIMEOUT_MARGIN_S

    @contextmanager
    def _read_timeout(self, timeout_s: float | None) -> Iterator[None]:
        """Raise the VISA timeout to ``timeout_s`` (s) for the enclosed reads; never lowers it."""
        connection = getattr(self.adapter, "connection", None)
        old_ms = getattr(connection, "timeout", None)
        usable = isinstance(old_ms, (int, float)) and not isinstance(old_ms, bool)
        if timeout_s is None or not usable or old_ms >= timeout_s * 1e3:
            yield
            return
        connection.timeout = timeout_s * 1e3
        try:
            yield
        finally:
            connection.timeout = old_ms

    _point_timeout: float | None = None  # read_timeout_s(1, ...) of the present configuration, once computed

    def _point_timeout_s(self) -> float | None:
        """Read timeout (s) of one reading at the present configuration (computed once per configuration)."""
        if self._nplc is None:
            return None
        if self._point_timeout is None:
            self._point_timeout = self.read_timeout_s(1, self._source_delay_s)
        return self._point_timeout

    # --- validation helpers

    def _check_range(self, name: str, value: float, low: float, high: float, unit: str) -> None:
        if not (isinstance(value, (int, float, np.integer, np.floating)) and low <= value <= high):
            raise ValueError(f"{self.name}: {name}={value!r} outside [{low:g}, {high:g}] {unit}")

    def _check_configuration(self, compliance_A: float, nplc: float, source_delay_s: float) -> None:
        self._check_range("compliance_A", compliance_A, self.compliance_min_A, self.limits.current_max_A, "A")
        self._check_range("nplc", nplc, *self.limits.nplc_range, "PLC")
        self._check_range("source_delay_s", source_delay_s, 0.0, self.limits.source_delay_max_s, "s")

    def _check_sweep(self, start_V: float, stop_V: float, points: int, source_delay_s: float) -> int:
        self._require_configured()
        v_max = self.limits.voltage_max_V
        self._check_range("start_V", start_V, -v_max, v_max, "V")
        self._check_range("stop_V", stop_V, -v_max, v_max, "V")
        self._check_range("source_delay_s", source_delay_s, 0.0, self.limits.source_delay_max_s, "s")
        points = operator.index(points)
        self._check_range("points", points, 2, self.limits.max_sweep_points, "points")
        return points

    def _require_configured(self) -> float:
        if self._nplc is None:
            raise RuntimeError(f"{self.name}: call configure_voltage_source() first")
        return self._nplc

    def _remember_configuration(self, compliance_A: float | None, nplc: float, source_delay_s: float) -> None:
        self._compliance_A, self._nplc, self._source_delay_s = compliance_A, nplc, source_delay_s
        self._auto_zero_on = True
        self._point_timeout = None

    def _forget_configuration(self) -> None:
        self._nplc = self._compliance_A = self._line_frequency_Hz = self._point_timeout = None
        self._source_delay_s, self._auto_zero_on = 0.0, True

    # --- SourceMeter methods common to all models

    def set_voltage(self, voltage_V: float) -> None:
        """Program the source level (V); raises ValueError outside the model's range."""
        self.source_voltage = voltage_V

    def set_current(self, current_A: float) -> None:
        """Program the source level (A) of a current source; raises ValueError outside the model's range."""
        self.source_current = current_A

    def _check_current_source(self, compliance_V: float, nplc: float) -> None:
        self._check_range("compliance_V", compliance_V, 0.0, self.limits.voltage_max_V, "V")
        self._check_range("nplc", nplc, *self.limits.nplc_range, "PLC")

    def enable_output(self) -> None:
        self.source_enabled = True

    def disable_output(self) -> None:
        self.source_enabled = False

    def abort_sweep(self) -> None:
        """Stop a running sweep (trigger model), so that the commands that follow are obeyed; harmless if idle.

        A running 2400 sweep executes nothing but SDC/DCL, ``:ABORt``, ``:SYST:PRES``, ``*RST``, ``*RCL`` and
        ``*TRG``/GET until it ends, ``:OUTP OFF`` included (2400 manual, "Triggering": "SDC, DCL, or :ABORt
        place the SourceMeter in the idle state. For fastest response, use SDC or DCL"); the 2450 takes
        ``:ABORt`` or a device clear the same way. Per transport: GPIB, USB-TMC and VXI-11/HiSLIP
        (``TCPIP::...::INSTR``) send the bus's device clear (it also empties the instrument's input buffer
        and output queue), then ``:ABOR``; a raw TCP socket (``::SOCKET``) and a serial line have no device
        clear, so ``:ABOR`` alone. An aborted sweep leaves the output ON at the bias level: follow with
        :meth:`disable_output`. Then :meth:`_resynchronise` drops replies of queries that were queued behind
        the sweep (e.g. the 2450's ``:TRAC:ACT?``) so that no later query reads them as its own."""
        clear = getattr(self.adapter, "device_clear", None)
        if clear is not None:
            clear()
        self.write(":ABOR")
        self._resynchronise()

    def _resynchronise(self) -> None:
        """Send ``*IDN?`` and read until its reply (it names the model): every reply before it is stale."""
        self.write("*IDN?")
        for _ in range(MAX_STALE_REPLIES):
            reply = self.read()
            if "MODEL" in reply.upper():
                return
            log.warning("%s: dropped a stale reply %s after aborting", self.name, _excerpt(reply))
        raise InstrumentError(f"{self.name}: no reply to '*IDN?' after {MAX_STALE_REPLIES} stale replies")

    def safe_state(self) -> None:
        """Abort a running sweep, source 0 V, then output off; all are attempted, the first failure raised."""
        first: Exception | None = None
        for step in (self.abort_sweep, self._zero_source, self.disable_output):
            try:
                step()
            except Exception as exc:  # keep going; the first failure is re-raised below
                log.error("%s: safe-state step %s failed: %s", self.name, step.__name__, exc)
                first = first or exc
        if first is not None:
            raise first

    def _zero_source(self) -> None:
        self.source_voltage = 0.0

    def shutdown(self) -> None:
        """PyMeasure shutdown hook: :meth:`safe_state` (no ramp)."""
        try:
            self.safe_state()
        finally:
            Instrument.shutdown(self)

    def reset(self) -> None:
        """``*RST``; forgets the cached configuration."""
        super().reset()
        self._forget_configuration()


def sweep_chunks(points: int, point_time_s: float, min_point_time_s: float = 0.0) -> list[int]:
    """Sizes of the pieces in which a built-in sweep of ``points`` readings is read (they sum to ``points``).

    One piece when the sweep lasts at most :data:`CHUNK_S` or a reading is shorter than ``min_point_time_s``
    (s); else near-equal pieces of at most ``CHUNK_S`` each (at least one point). point_time_s: instrument
    time per reading (s), as :meth:`KeithleySourceMeterMixin.measurement_time_s`.
    """
    if points * point_time_s <= CHUNK_S or point_time_s < min_point_time_s:
        return [points]
    per_chunk = max(1, int(CHUNK_S // point_time_s))
    n_chunks = -(-points // per_chunk)
    base, extra = divmod(points, n_chunks)
    return [base + 1] * extra + [base] * (n_chunks - extra)


def join_sweeps(chunks: list[SweepData]) -> SweepData:
    """One :class:`SweepData` from consecutive pieces of a sweep (time stamps already on one origin)."""
    return SweepData(*(np.concatenate([getattr(c, f) for c in chunks]) for f in
                       ("voltage_V", "current_A", "time_s", "compliance")))


def _one_reading(reply: str, compliance_bit: int) -> SweepData | None:
    """A ``V,I,TIME,STAT`` reply of one reading read the quick way (a long hold reads hundreds of thousands),
    or None when it is anything else — a placeholder, an overflow, a bad status word, not four numbers — which
    :func:`parse_groups`/:func:`status_bit` then read (and report) as for a sweep. Same values either way."""
    fields = reply.split(",")
    if len(fields) != 4:
        return None
    try:
        v, i, t, status = (float(x) for x in fields)
    except ValueError:
        return None
    limit = 0.99 * OVERFLOW_READING
    if not (abs(v) < limit and abs(i) < limit and abs(t) < limit and 0 <= status < 2**24 and status == int(status)):
        return None
    return SweepData(voltage_V=np.array([v]), current_A=np.array([i]), time_s=np.array([t]),
                     compliance=np.array([(int(status) >> compliance_bit) & 1 == 1]))


def _sweep_data(
    voltage_V: np.ndarray, current_A: np.ndarray, time_s: np.ndarray, compliance: np.ndarray, relative: bool
) -> SweepData:
    times = time_s - time_s[0] if relative else time_s
    return SweepData(
        voltage_V=np.asarray(voltage_V, dtype=np.float64),
        current_A=np.asarray(current_A, dtype=np.float64),
        time_s=np.asarray(times, dtype=np.float64),
        compliance=np.asarray(compliance, dtype=bool),
    )


# ------------------------------------------------------------------------------------------- 2400 / 2420


@with_model_ranges
class Keithley2400(KeithleySourceMeterMixin, _StockKeithley2400, SourceMeter):
    """Keithley 2400 SourceMeter: ±210 V, ±1.05 A, NPLC 0.01-10, built-in sweeps up to 2500 points."""

    limits = ModelLimits(
        voltage_max_V=210.0, current_max_A=1.05, nplc_range=(0.01, 10.0),
        source_delay_max_s=999.9999, max_sweep_points=2500,
    )
    compliance_min_A = 1e-9  # 0.1 % of the lowest (1 uA) range
    IDENTITY = keithley_identity("2400")
    DATA_ELEMENTS = "VOLT,CURR,TIME,STAT"
    COMPLIANCE_BIT = 3  # status word: "in real compliance"


    # same on both models; short forms as in the reference
    current_nplc = ranged_control(":SENS:CURR:NPLC", "Integration time (PLC; global on the 2400)", 0.01, 10.0)
    source_delay = ranged_control(":SOUR:DEL", "Source delay in s (turns auto delay off)", 0.0, 999.9999)
    source_mode = Instrument.control(
        ":SOUR:FUNC?", ":SOUR:FUNC %s", "Source function ('voltage' or 'current').",
        validator=strict_discrete_set, values={"voltage": "VOLT", "current": "CURR"}, map_values=True,
    )
    source_enabled = bool_control(":OUTP", "Output on")
    source_delay_auto_enabled = bool_control(":SOUR:DEL:AUTO", "Source auto delay")
    source_voltage_range_auto_enabled = bool_control(":SOUR:VOLT:RANG:AUTO", "Source voltage auto range")
    current_range_auto_enabled = bool_control(":SENS:CURR:RANG:AUTO", "Current measure auto range")
    auto_zero_enabled = bool_control(":SYST:AZER", "Auto-zero")
    auto_output_off_enabled = bool_control(":SOUR:CLE:AUTO", "Auto output-off after each reading")
    four_wire_enabled = bool_control(":SYST:RSEN", "4-wire remote sense")

    def __init__(self, adapter, name: str = "Keithley 2400 SourceMeter", **kwargs) -> None:
        # past the stock constructor, which sends :FORM:ELEM before anyone could verify the identity
        super(_StockKeithley2400, self).__init__(adapter, name, **kwargs)

    def reset_data_format(self) -> None:
        """``:FORM:ELEM VOLT,CURR,TIME,STAT`` (sent by :meth:`configure_voltage_source`)."""
        self.write(f":FORM:ELEM {self.DATA_ELEMENTS}")

    @property
    def resistance(self) -> float:
        raise NotImplementedError(f"{self.name}: the RES element is not in our data format; not supported")

    def measure_all(self) -> dict:
        """Not supported: the stock version sends the invalid ':SENSE:FUNCTION:ALL'; use measure_point()."""
        raise NotImplementedError(f"{self.name}: measure_all() is not supported; use measure_point()")

    def configure_voltage_source(
        self, compliance_A: float, nplc: float = 1.0, four_wire: bool = False, source_delay_s: float = 0.0
    ) -> None:
        """Source V (fixed mode, auto range), sense I (auto range), compliance (A), NPLC, 2/4-wire,
        source delay (s, auto delay off), auto-zero on, one reading per ``:READ?``; then check errors."""
        self._check_configuration(compliance_A, nplc, source_delay_s)
        self._nplc = None  # unconfigured until the error check passes
        self.source_mode = "voltage"
        self.write(":SOUR:VOLT:MODE FIX")
        self.source_voltage_range_auto_enabled = True
        self.write(":SENS:FUNC:CONC OFF")
        self.write(':SENS:FUNC "CURR"')
        self.compliance_current = compliance_A
        self.current_range_auto_enabled = True
        self.current_nplc = nplc
        self._finish_configuration("configure_voltage_source", four_wire, source_delay_s)
        self._remember_configuration(compliance_A, nplc, source_delay_s)

    def configure_current_source(self, compliance_V: float, nplc: float = 1.0, four_wire: bool = False) -> None:
        """Source I (fixed mode, auto range, level 0 A), sense V (auto range), voltage compliance (V), NPLC,
        2/4-wire, auto-zero on, one reading per ``:READ?``; then check errors (2400 manual, "Source-measure
        concepts": with I sourced, compliance is the voltage limit and status bit 3 flags it)."""
        self._check_current_source(compliance_V, nplc)
        self._nplc = None  # unconfigured until the error check passes
        self.source_mode = "current"
        self.write(":SOUR:CURR:MODE FIX")
        self.write(":SOUR:CURR:RANG:AUTO ON")
        self.source_current = 0.0
        self.write(":SENS:FUNC:CONC OFF")
        self.write(':SENS:FUNC "VOLT"')
        self.compliance_voltage = compliance_V
        self.write(":SENS:VOLT:RANG:AUTO ON")
        self.write(f":SENS:VOLT:NPLC {nplc:g}")
        self._finish_configuration("configure_current_source", four_wire, 0.0)
        self._remember_configuration(None, nplc, 0.0)  # no current compliance: a V limit

    def _finish_configuration(self, what: str, four_wire: bool, source_delay_s: float) -> None:
        """What both source modes set the same way: 2/4-wire, a fixed source delay (s, auto delay off), auto-zero
        on, output left on after a reading, one reading per trigger, our data format; then the line frequency is
        read and the error queue checked (``what`` names the configuration in an error)."""
        self.four_wire_enabled = bool(four_wire)
        self.source_delay_auto_enabled = False
        self.source_delay = source_delay_s
        self.auto_zero_enabled = True
        self.auto_output_off_enabled = False
        self.write(":ARM:COUN 1")
        self.write(":TRIG:COUN 1")
        self.reset_data_format()
        self._line_frequency_Hz = self._read_line_frequency()
        self.check_set_errors(what)

    def measure_point(self) -> SweepData:
        """One ``:READ?`` (V, I, instrument time stamp in s, compliance from status bit 3); output must be on.

        ``time_s`` is the instrument's own time stamp, not made relative.
        """
        with self._read_timeout(self._point_timeout_s()):
            reply = self.ask(":READ?")
        return _one_reading(reply, self.COMPLIANCE_BIT) or self._readings(reply, points=1, relative=False)

    def sweep_voltage(
        self, start_V: float, stop_V: float, points: int, source_delay_s: float,
        on_chunk: Callable[[SweepData], None] | None = None,
    ) -> SweepData:
        """Built-in linear staircase; output left on, source back in FIX mode at the bias level it had.

        A fast sweep is one ``:READ?``. A slow one (:func:`sweep_chunks`: longer than ``CHUNK_S`` with at least
        ``MIN_CHUNKED_POINT_S`` per point) is run as consecutive built-in sweeps of at most ``CHUNK_S`` each,
        because the 2400 answers nothing while a sweep runs: each piece reaches ``on_chunk`` as soon as it is
        read, so a killed run keeps all but the last piece. Between pieces the source holds the last voltage
        (bias level) and only the piece's limits are sent, in one message; time stamps are the instrument's,
        from the first point of the whole sweep, so a boundary shows as it was.
        """
        points = self._check_sweep(start_V, stop_V, points, source_delay_s)
        sizes = sweep_chunks(points, self.measurement_time_s(self._nplc, source_delay_s), MIN_CHUNKED_POINT_S)
        if len(sizes) == 1:
            data = self._single_sweep(start_V, stop_V, points, source_delay_s)
            if on_chunk is not None:
                on_chunk(data)
            return data
        return self._chunked_sweep(start_V, stop_V, points, source_delay_s, sizes, on_chunk)

    def _setup_sweep(self, start_V: float, stop_V: float, points: int, source_delay_s: float) -> None:
        self.write(":SOUR:VOLT:MODE SWE")
        self.write(f":SOUR:VOLT:STAR {start_V:g}")
        self.write(f":SOUR:VOLT:STOP {stop_V:g}")
        self.write(f":SOUR:SWE:POIN {points:d}")
        self.write(":SOUR:SWE:RANG BEST")
        self.write(":SOUR:SWE:SPAC LIN")
        self.write(":SOUR:SWE:DIR UP")
        self.write(":SOUR:SWE:CAB NEV")
        self.write(f":TRIG:COUN {points:d}")
        self.source_delay = source_delay_s
        self._source_delay_s, self._point_timeout = source_delay_s, None
        self.enable_output()

    def _single_sweep(self, start_V: float, stop_V: float, points: int, source_delay_s: float) -> SweepData:
        timeout_s = self.read_timeout_s(points, source_delay_s)
        self._setup_sweep(start_V, stop_V, points, source_delay_s)
        with self._read_timeout(timeout_s):
            reply = self.ask(":READ?")
        try:
            data = self._readings(reply, points=points, relative=True)
        finally:
            self.write(":SOUR:VOLT:MODE FIX")
            self.write(":TRIG:COUN 1")
        self.check_set_errors("sweep_voltage")
        return data

    def _chunked_sweep(
        self, start_V: float, stop_V: float, points: int, source_delay_s: float, sizes: list[int],
        on_chunk: Callable[[SweepData], None] | None,
    ) -> SweepData:
        """The pieces of :meth:`sweep_voltage`. Each boundary adds the time of one exchange to the step across
        it; once measured (instrument time stamps), each later piece's source delay is shortened by that time
        shared over its points, so the scan rate over a piece and its boundary stays the requested one. The
        smallest boundary time seen so far is used: a late reply (a busy PC) only ever adds to it."""
        bias = self.source_voltage  # the level the output returns to after the sweep, as after one piece
        volts = np.linspace(start_V, stop_V, points)
        bounds = np.cumsum([0, *sizes])
        chunks: list[SweepData] = []
        t0, excess_s, delay_s = 0.0, [], source_delay_s
        try:
            for k, (i0, i1) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
                a, b, n = float(volts[i0]), float(volts[i1 - 1]), int(i1 - i0)
                hold = b if k < len(sizes) - 1 else bias  # between pieces the source holds the last voltage
                if k == 0:
                    self._setup_sweep(a, b, n, source_delay_s)
                    self.write(f":SOUR:VOLT {hold:.10g}")
                else:
                    last_delay_s = delay_s
                    if excess_s:
                        delay_s = max(0.0, source_delay_s - max(min(excess_s), 0.0) / n)
                    extra = f";:SOUR:SWE:POIN {n:d};:TRIG:COUN {n:d}" if n != sizes[k - 1] else ""
                    extra += f";:SOUR:DEL {delay_s:.6f}" if delay_s != last_delay_s else ""
                    self.write(f":SOUR:VOLT:STAR {a:.10g};:SOUR:VOLT:STOP {b:.10g}{extra};:SOUR:VOLT {hold:.10g}")
                with self._read_timeout(self.read_timeout_s(n, source_delay_s)):
                    reply = self.ask(":READ?")
                piece = self._readings(reply, points=n, relative=False)
                if k == 0:
                    t0 = float(piece.time_s[0])
                piece.time_s = piece.time_s - t0
                if k > 0:  # the step across this boundary, less what the instrument spent on the point itself
                    step_s = float(piece.time_s[0] - chunks[-1].time_s[-1])
                    excess_s.append(step_s - self.measurement_time_s(self._nplc, delay_s))
                chunks.append(piece)
                if on_chunk is not None:
                    on_chunk(piece)
        finally:
            self.write(":SOUR:VOLT:MODE FIX")
            self.write(":TRIG:COUN 1")
            if delay_s != source_delay_s:
                self.source_delay = source_delay_s
        self.check_set_errors("sweep_voltage")
        return join_sweeps(chunks)

    def _readings(self, reply: str, points: int, relative: bool) -> SweepData:
        rows = parse_groups(reply, 4, instrument=self.name, command=":READ?", points=points)
        compliance = status_bit(rows[:, 3], self.COMPLIANCE_BIT, instrument=self.name, command=":READ?")
        return _sweep_data(rows[:, 0], rows[:, 1], rows[:, 2], compliance, relative)


@with_model_ranges
class Keithley2420(Keithley2400):
    """Keithley 2420 SourceMeter: ±63 V, ±3.15 A (3 A range, no 1 uA range); otherwise as the 2400."""

    limits = ModelLimits(
        voltage_max_V=63.0, current_max_A=3.15, nplc_range=(0.01, 10.0),
        source_delay_max_s=999.9999, max_sweep_points=2500,
    )
    compliance_min_A = 1e-8  # 0.1 % of the lowest (10 uA) range
    IDENTITY = keithley_identity("2420")

    def __init__(self, adapter, name: str = "Keithley 2420 SourceMeter", **kwargs) -> None:
        super().__init__(adapter, name, **kwargs)


def _registration(name: str, driver: type, model: str) -> InstrumentRegistration:
    return InstrumentRegistration(
        name=name,
        driver=driver,
        model=f"Keithley {model}",
        capabilities=("source_meter",),
        # GPIB: LF (with EOI) both ways; RS-232 (factory 9600 Bd) is menu-selectable: 2400 manual, "Remote
        # operation" (GPIB terminator, RS-232 settings)
        connection=ConnectionDefaults(read_termination="\n", write_termination="\n", timeout_ms=5000),
        safe_state=source_meter_safe_state,
        emulator="sim_instruments.keithley2400:Keithley2400Emulator",
        emulator_options={"model": model},
    )


KEITHLEY2400_REGISTRATION = _registration("keithley2400", Keithley2400, "2400")
KEITHLEY2420_REGISTRATION = _registration("keithley2420", Keithley2420, "2420")
