"""Keysight (Agilent) N9010A EXA signal analyser, swept SA measurement, on PyMeasure's ``Instrument``.

PyMeasure has no N9010A class. Commands are from Keysight X-Series Signal Analyzers, "Spectrum Analyzer Mode
User's & Programmer's Reference" (the N9010A EXA's SCPI; instruments ref. §6.2): ``:SENS:FREQ:CENT``/``SPAN``
(span 0 = zero span), ``:SENS:BAND[:RES]`` and ``:AUTO``, ``:SENS:BAND:VID`` and ``:AUTO``, ``:SENS:DET:TRAC``
and ``:AUTO``, ``:SENS:AVER:COUN``, ``:SENS:AVER[:STAT]``, ``:SENS:AVER:TYPE``, ``:TRAC1:TYPE``,
``:SENS:SWE:POIN``, ``:SENS:SWE:TIME[:AUTO]``, ``:INIT:CONT``, ``:INIT:IMM`` with ``*OPC?``, ``:UNIT:POW``,
``:FORM[:DATA] ASC|REAL,32``, ``:FORM:BORD NORM|SWAP``, ``:TRAC[:DATA]? TRACE1``, ``:CALC:MARK<n>:STAT``,
``:CALC:MARK<n>:MAX``, ``:CALC:MARK<n>:X``, ``:CALC:MARK<n>:Y?``, ``:SYST:ERR?``.

* A single sweep is ``:INIT:IMM`` then ``*OPC?``, read under a timeout that covers the sweep time the analyser
  reports (``:SWE:TIME?``) times the sweeps it takes (``:AVER:COUN?`` when the trace averages or holds) — never
  a sleep.
* Binary trace data (``REAL,32``) is an IEEE 488.2 definite-length block ``#<n><length><bytes>`` then the
  newline; the byte order is ``:FORM:BORD``: NORM = big-endian (IEEE 754 most significant byte first), SWAP =
  little-endian (the reference, ``FORMat:BORDer``). The block is read by its length, so data bytes equal to
  the newline do not end it.
* Trace values are in the ``:UNIT:POW`` unit (dBm preset; V and W are linear, into the 50 Ω input); a marker
  that is off reads 9.91e37 (SCPI NaN), reported here as NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from pymeasure.instruments import Instrument
from pymeasure.instruments.validators import strict_discrete_set, strict_range

from drivers.identity import IdentitySpec
from drivers.io_helpers import timeout_at_least
from drivers.keithley2400 import ReplyError, bool_control
from drivers.registration import ConnectionDefaults, InstrumentRegistration
from drivers.safe import driver_safe_state
from drivers.scpi_errors import ScpiErrorQueueMixin
from drivers.smu import InstrumentError

FREQUENCY_MAX_HZ = 3.6e9
"""Top of the N9010A option 503 range (Hz); options 507/513/526 reach 7, 13.6, 26.5 GHz (instruments ref. §6.3)."""
RBW_RANGE_HZ = (1.0, 8e6)
VBW_RANGE_HZ = (1.0, 50e6)
POINTS_RANGE = (1, 40001)
MAX_AVERAGES = 10000
DETECTORS = ("NORM", "AVER", "POS", "SAMP", "NEG")
TRACE_TYPES = ("WRIT", "AVER", "MAXH", "MINH")
AVERAGE_TYPES = ("LOG", "RMS", "SCAL")
POWER_UNITS = ("DBM", "DBMV", "DBMA", "DBUV", "DBUA", "V", "W", "A")
FORMATS = ("ASC", "REAL,32")
BYTE_ORDERS = ("NORM", "SWAP")
SCPI_NAN = 9.91e37
"""What a query answers when there is no value (a marker that is off)."""
SWEEP_TIMEOUT_MARGIN_S = 5.0
"""Added to the reported acquisition time for the ``*OPC?`` read (s): transfer, setup, a loaded PC."""


class N9010AError(InstrumentError):
    """The analyser reported an error, or a reply could not be used."""


@dataclass(frozen=True)
class Trace:
    """One trace: x (Hz, or s from the sweep's start in zero span), the levels in ``unit``, and the settings."""

    x: np.ndarray
    level: np.ndarray
    unit: str
    zero_span: bool
    rbw_Hz: float

    @property
    def frequency_Hz(self) -> np.ndarray:
        if self.zero_span:
            raise N9010AError("a zero-span trace is against time (Trace.x, s), not frequency")
        return self.x


def _bool_control(command: str, doc: str) -> property:
    return bool_control(command, doc, words=True)


def parse_block(data: bytes, byte_order: str, instrument: str = "N9010A") -> np.ndarray:
    """The float32 values of a definite-length block ``#<n><length><bytes>`` (no terminator) in ``byte_order``."""
    if len(data) < 2 or data[:1] != b"#" or not data[1:2].isdigit() or data[1:2] == b"0":
        raise ReplyError(f"{instrument}: trace reply is not a definite-length block: {data[:20]!r}")
    digits = int(data[1:2])
    length_text = data[2:2 + digits]
    if len(length_text) != digits or not length_text.isdigit():
        raise ReplyError(f"{instrument}: unreadable block length {length_text!r}")
    length = int(length_text)
    body = data[2 + digits:]
    if len(body) != length or length % 4:
        raise ReplyError(f"{instrument}: block of {len(body)} bytes, header says {length} (float32: 4 each)")
    return np.frombuffer(body, dtype=(">" if byte_order == "NORM" else "<") + "f4").astype(float)


class KeysightN9010A(ScpiErrorQueueMixin, Instrument):
    """Keysight/Agilent N9010A EXA signal analyser in its swept spectrum measurement (instruments ref. §6)."""

    error_query = ":SYST:ERR?"
    error_class = N9010AError

    IDENTITY = IdentitySpec(
        query="*IDN?",
        accepts=(r"(Agilent|Keysight) Technologies,N9010A,",),
        expected="Agilent Technologies,N9010A,<serial>,<firmware> (or Keysight Technologies,...)",
    )

    center_frequency_Hz = Instrument.control(
        ":SENS:FREQ:CENT?", ":SENS:FREQ:CENT %.12g", "Centre frequency (Hz).",
        validator=strict_range, values=(0.0, FREQUENCY_MAX_HZ))
    span_Hz = Instrument.control(
        ":SENS:FREQ:SPAN?", ":SENS:FREQ:SPAN %.12g", "Span (Hz); 0 is zero span (a trace against time).",
        validator=strict_range, values=(0.0, FREQUENCY_MAX_HZ))
    start_frequency_Hz = Instrument.measurement(":SENS:FREQ:STAR?", "Start frequency (Hz).")
    stop_frequency_Hz = Instrument.measurement(":SENS:FREQ:STOP?", "Stop frequency (Hz).")
    rbw_Hz = Instrument.control(
        ":SENS:BAND:RES?", ":SENS:BAND:RES %.12g", "Resolution bandwidth, −3 dB (Hz); setting it turns auto off.",
        validator=strict_range, values=RBW_RANGE_HZ)
    rbw_auto = _bool_control(":SENS:BAND:RES:AUTO", "RBW coupled to the span.")
    vbw_Hz = Instrument.control(
        ":SENS:BAND:VID?", ":SENS:BAND:VID %.12g", "Video bandwidth (Hz); setting it turns auto off.",
        validator=strict_range, values=VBW_RANGE_HZ)
    vbw_auto = _bool_control(":SENS:BAND:VID:AUTO", "VBW coupled to the RBW.")
    detector = Instrument.control(
        ":SENS:DET:TRAC?", ":SENS:DET:TRAC %s", "Trace 1 detector (NORM, AVER, POS, SAMP, NEG); turns auto off.",
        validator=strict_discrete_set, values=DETECTORS, get_process=lambda v: str(v).strip().upper())
    detector_auto = _bool_control(":SENS:DET:TRAC:AUTO", "Detector chosen by the analyser.")
    average_count = Instrument.control(
        ":SENS:AVER:COUN?", ":SENS:AVER:COUN %d", "Sweeps averaged (or held) per single sweep.",
        validator=strict_range, values=(1, MAX_AVERAGES), cast=int)
    averaging_enabled = _bool_control(":SENS:AVER", "Trace averaging on (the trace type becomes AVER).")
    average_type = Instrument.control(
        ":SENS:AVER:TYPE?", ":SENS:AVER:TYPE %s", "Averaging scale: LOG (log-power), RMS (power), SCAL (voltage).",
        validator=strict_discrete_set, values=AVERAGE_TYPES, get_process=lambda v: str(v).strip().upper())
    trace_type = Instrument.control(
        ":TRAC1:TYPE?", ":TRAC1:TYPE %s", "Trace 1 type: WRIT (clear/write), AVER, MAXH, MINH.",
        validator=strict_discrete_set, values=TRACE_TYPES, get_process=lambda v: str(v).strip().upper())
    sweep_points = Instrument.control(
        ":SENS:SWE:POIN?", ":SENS:SWE:POIN %d", "Trace points.",
        validator=strict_range, values=POINTS_RANGE, cast=int)
    sweep_time_s = Instrument.control(
        ":SENS:SWE:TIME?", ":SENS:SWE:TIME %.12g", "Time of one sweep (s) as the analyser reports it; setting it "
        "turns auto off.", validator=strict_range, values=(1e-6, 4000.0))
    sweep_time_auto = _bool_control(":SENS:SWE:TIME:AUTO", "Sweep time coupled to span, RBW and VBW.")
    continuous = _bool_control(":INIT:CONT", "Continuous sweeping (off: single sweeps on :INIT:IMM).")
    power_unit = Instrument.control(
        ":UNIT:POW?", ":UNIT:POW %s", "Y unit of traces and markers (DBM, DBMV, DBMA, DBUV, DBUA, V, W, A).",
        validator=strict_discrete_set, values=POWER_UNITS, get_process=lambda v: str(v).strip().upper())
    byte_order = Instrument.control(
        ":FORM:BORD?", ":FORM:BORD %s", "Binary byte order: NORM (big-endian) or SWAP (little-endian).",
        validator=strict_discrete_set, values=BYTE_ORDERS, get_process=lambda v: str(v).strip().upper())

    def __init__(self, adapter: Any, name: str = "Keysight N9010A EXA signal analyser", **kwargs: Any) -> None:
        super().__init__(adapter, name, includeSCPI=False, **kwargs)
        self._format: str | None = None  # the trace format this driver last set (None: ask)
        self._byte_order: str | None = None

    @property
    def id(self) -> str:
        return self.ask("*IDN?").strip()

    # --- replies -------------------------------------------------------------------------------------------
    # --- frequency settings ----------------------------------------------------------------------------------
    def set_frequency(self, center_Hz: float, span_Hz: float) -> None:
        """Centre and span (Hz); a span of 0 is zero span."""
        self.center_frequency_Hz = center_Hz
        self.span_Hz = span_Hz

    def set_zero_span(self, center_Hz: float, sweep_time_s: float) -> None:
        """Zero span at ``center_Hz``: the trace is the level in the RBW against time over ``sweep_time_s``."""
        self.center_frequency_Hz = center_Hz
        self.span_Hz = 0.0
        self.sweep_time_s = sweep_time_s

    def set_rbw_Hz(self, rbw_Hz: float | None) -> None:
        """RBW (Hz), or None for auto (coupled to the span)."""
        if rbw_Hz is None:
            self.rbw_auto = True
        else:
            self.rbw_Hz = rbw_Hz

    def set_vbw_Hz(self, vbw_Hz: float | None) -> None:
        """VBW (Hz), or None for auto (coupled to the RBW)."""
        if vbw_Hz is None:
            self.vbw_auto = True
        else:
            self.vbw_Hz = vbw_Hz

    def set_detector(self, detector: str | None) -> None:
        """Trace 1 detector (:data:`DETECTORS`), or None for auto."""
        if detector is None:
            self.detector_auto = True
        else:
            self.detector = detector

    def set_averaging(self, count: int, on: bool = True, kind: str | None = None) -> None:
        """Average ``count`` sweeps per single sweep (on), with the scale ``kind`` (:data:`AVERAGE_TYPES`)."""
        self.average_count = count
        if kind is not None:
            self.average_type = kind
        self.averaging_enabled = on

    # --- trace format --------------------------------------------------------------------------------------
    def set_trace_format(self, data_format: str, byte_order: str = "NORM") -> None:
        """``:FORM ASC`` or ``:FORM REAL,32`` with ``:FORM:BORD`` NORM (big-endian) or SWAP (little-endian)."""
        if data_format not in FORMATS:
            raise ValueError(f"trace format {data_format!r} not in {list(FORMATS)}")
        if byte_order not in BYTE_ORDERS:
            raise ValueError(f"byte order {byte_order!r} not in {list(BYTE_ORDERS)}")
        self.write(f":FORM {data_format}")
        self.byte_order = byte_order
        self._format, self._byte_order = data_format, byte_order

    def _trace_format(self) -> tuple[str, str]:
        if self._format is None or self._byte_order is None:
            fmt = self.ask(":FORM?").strip().upper().replace(" ", "")
            self._format = "ASC" if fmt.startswith("ASC") else fmt
            self._byte_order = self.byte_order
        return self._format, self._byte_order

    # --- sweeping ------------------------------------------------------------------------------------------
    def acquisition_time_s(self) -> float:
        """What one single sweep takes (s): ``:SWE:TIME?`` × the sweeps it averages or holds."""
        sweep = self.sweep_time_s
        sweeps = 1 if self.trace_type == "WRIT" else self.average_count
        return float(sweep) * sweeps

    def single_sweep(self) -> None:
        """``:INIT:IMM`` then ``*OPC?`` (answers ``1`` when the sweep and its averages are done), read under a
        timeout covering :meth:`acquisition_time_s` plus :data:`SWEEP_TIMEOUT_MARGIN_S`."""
        wait_s = self.acquisition_time_s() + SWEEP_TIMEOUT_MARGIN_S
        with timeout_at_least(self.adapter, wait_s):
            self.write(":INIT:IMM")
            reply = self.ask("*OPC?").strip()
        if reply != "1":
            raise ReplyError(f"{self.name}: reply {reply!r} to '*OPC?' after ':INIT:IMM' is not 1")

    def trace_axis(self, points: int) -> tuple[np.ndarray, bool]:
        """(x of each trace point: Hz, or s in zero span; whether zero span) for ``points`` points."""
        span = self.span_Hz
        if span == 0:
            return np.linspace(0.0, float(self.sweep_time_s), points), True
        return np.linspace(float(self.start_frequency_Hz), float(self.stop_frequency_Hz), points), False

    def fetch_trace(self) -> np.ndarray:
        """Trace 1 of the last sweep (``:TRAC? TRACE1``) in the current unit, ASCII or REAL,32 as set."""
        data_format, order = self._trace_format()
        command = ":TRAC? TRACE1"
        if data_format == "ASC":
            reply = self.ask(command)
            try:
                return np.array([float(v) for v in reply.strip().split(",")])
            except ValueError:
                raise ReplyError(f"{self.name}: unreadable ASCII trace: {reply[:80]!r}") from None
        if data_format != "REAL,32":
            raise N9010AError(f"{self.name}: trace format {data_format!r} is not read by this driver")
        self.write(command)
        head = self.read_bytes(2)
        if head[:1] != b"#" or not head[1:2].isdigit():
            raise ReplyError(f"{self.name}: trace reply is not a definite-length block: {head!r}")
        digits = self.read_bytes(int(head[1:2]))
        length = int(digits) if digits.isdigit() else -1
        if length < 0:
            raise ReplyError(f"{self.name}: unreadable block length {digits!r}")
        body = self.read_bytes(length)
        self.read_bytes(1)  # the terminating newline
        return parse_block(head + digits + body, order, self.name)

    def read_trace(self, sweep: bool = True) -> Trace:
        """A single sweep (``sweep``; else the last one) and its trace 1 with its x axis (the
        ``spectrum_analyser`` capability)."""
        if sweep:
            self.single_sweep()
        level = self.fetch_trace()
        x, zero_span = self.trace_axis(level.size)
        return Trace(x=x, level=level, unit=self.power_unit, zero_span=zero_span, rbw_Hz=float(self.rbw_Hz))

    # --- markers -------------------------------------------------------------------------------------------
    @staticmethod
    def _marker(marker: int) -> str:
        if isinstance(marker, bool) or not isinstance(marker, int) or not 1 <= marker <= 12:
            raise ValueError(f"marker {marker!r} must be 1–12")
        return f":CALC:MARK{marker:d}"

    def marker_peak_search(self, marker: int = 1) -> None:
        """Marker on, then to the trace's highest point (``:CALC:MARK<n>:MAX``)."""
        head = self._marker(marker)
        self.write(f"{head}:STAT ON")
        self.write(f"{head}:MAX")

    def set_marker_x(self, x: float, marker: int = 1) -> None:
        """Marker on, at ``x`` (Hz; s in zero span)."""
        head = self._marker(marker)
        self.write(f"{head}:STAT ON")
        self.write(f"{head}:X {x:.12g}")

    def _marker_value(self, command: str) -> float:
        value = self._ask_float(command, finite=False)
        return math.nan if value >= SCPI_NAN * 0.99 else value

    def marker_x(self, marker: int = 1) -> float:
        """The marker's x (Hz; s in zero span); NaN when it is off."""
        return self._marker_value(f"{self._marker(marker)}:X?")

    def marker_y(self, marker: int = 1) -> float:
        """The marker's level in the current unit; NaN when it is off."""
        return self._marker_value(f"{self._marker(marker)}:Y?")

    def peak(self, marker: int = 1) -> tuple[float, float]:
        """(x, level) of the trace's peak: peak search, then marker x and y."""
        self.marker_peak_search(marker)
        return self.marker_x(marker), self.marker_y(marker)

    # --- errors, safety ------------------------------------------------------------------------------------

    def safe_state(self) -> None:
        """Nothing hazardous: the analyser only measures (sweeping is left as it is). Sends nothing."""


class N9010ASettings(BaseModel):
    """``instruments.<role>.settings`` of an N9010A (None: left as the analyser has it; rbw/vbw/detector None:
    auto)."""

    model_config = ConfigDict(extra="forbid")

    center_frequency_Hz: float | None = Field(None, ge=0, le=FREQUENCY_MAX_HZ, description="centre (Hz)")
    span_Hz: float | None = Field(None, ge=0, le=FREQUENCY_MAX_HZ, description="span (Hz), 0 = zero span")
    rbw_Hz: float | None = Field(None, ge=RBW_RANGE_HZ[0], le=RBW_RANGE_HZ[1], description="RBW (Hz), None auto")
    vbw_Hz: float | None = Field(None, ge=VBW_RANGE_HZ[0], le=VBW_RANGE_HZ[1], description="VBW (Hz), None auto")
    detector: Literal["NORM", "AVER", "POS", "SAMP", "NEG"] | None = None
    averages: int = Field(1, ge=1, le=MAX_AVERAGES, description="sweeps averaged per single sweep (1: off)")
    average_type: Literal["LOG", "RMS", "SCAL"] = "RMS"
    sweep_points: int = Field(1001, ge=POINTS_RANGE[0], le=POINTS_RANGE[1], description="trace points")
    power_unit: Literal["DBM", "DBMV", "DBMA", "DBUV", "DBUA", "V", "W", "A"] = "DBM"
    trace_format: Literal["ASC", "REAL,32"] = "REAL,32"
    byte_order: Literal["NORM", "SWAP"] = "NORM"


def configure_n9010a(analyser: KeysightN9010A, settings: N9010ASettings | None) -> None:
    """Single-sweep mode, then the station file's settings, unit and trace format; errors checked."""
    settings = settings if settings is not None else N9010ASettings()
    analyser.continuous = False
    if settings.center_frequency_Hz is not None:
        analyser.center_frequency_Hz = settings.center_frequency_Hz
    if settings.span_Hz is not None:
        analyser.span_Hz = settings.span_Hz
    analyser.set_rbw_Hz(settings.rbw_Hz)
    analyser.set_vbw_Hz(settings.vbw_Hz)
    analyser.set_detector(settings.detector)
    analyser.set_averaging(settings.averages, settings.averages > 1, settings.average_type)
    analyser.sweep_points = settings.sweep_points
    analyser.power_unit = settings.power_unit
    analyser.set_trace_format(settings.trace_format, settings.byte_order)
    analyser.check_set_errors("configure")


KEYSIGHT_N9010A_REGISTRATION = InstrumentRegistration(
    name="keysight_n9010a",
    driver=KeysightN9010A,
    model="Keysight N9010A",
    capabilities=("spectrum_analyser",),
    # LAN raw socket 5025 / USB-TMC / GPIB: LF on input, replies end LF (X-Series programmer reference;
    # instruments ref. §6.1)
    connection=ConnectionDefaults(read_termination="\n", write_termination="\n", timeout_ms=5000),
    settings=N9010ASettings,
    configure=configure_n9010a,
    safe_state=driver_safe_state("nothing to do (measures only; sweeping left as it is)"),
    emulator="sim_instruments.n9010a:N9010AEmulator",
    emulator_options={},
)
