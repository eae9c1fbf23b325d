"""Emulator of the Keysight (Agilent) N9010A EXA signal analyser, swept SA measurement (instruments ref. §6).

Command set: Keysight X-Series Signal Analyzers, "Spectrum Analyzer Mode User's & Programmer's Reference"
(instruments ref. §6.2), strict SCPI on :class:`sim_instruments.scpi.ScpiInstrument`: an unknown header (-113),
a missing or extra parameter (-109/-108), a value out of range (-222), a bad keyword (-141) or unit suffix
(-131; frequencies take Hz/kHz/MHz/GHz, times s/ms/us/ns) goes to ``SYST:ERR?``, changes nothing and gives
no reply. A trace query before any sweep in single-sweep mode is -230 (no data).

What reaches the 50 Ω input: ``bench.pl.analyser_input()`` when the bench has a PL path (``tones`` as
``[(frequency_Hz, V_rms)]`` and a white ``noise_V_rtHz``, the plan's contract), else nothing but the analyser's
own noise floor. The model, per trace point at frequency f and per sweep:

* a tone of V rms gives P = V²/50 Ω (W) through the Gaussian RBW filter, power response
  H(Δf) = 2^-(2Δf/RBW)² (−3 dB at Δf = RBW/2);
* the noise power in the RBW is (noise_V_rtHz²/50 Ω + DANL)·ENBW with ENBW = √(π/(4 ln 2))·RBW ≈ 1.064·RBW,
  the equivalent noise bandwidth of that Gaussian (instruments ref. §6.3: ≈ 1.06 × RBW for the X-Series
  filters; methods ref. §5.3);
* the IF signal is the tone's phasor plus circular complex Gaussian noise: its detected power is Rician
  (exponential without a tone), drawn on ``bench.rng``. A trace point ("bucket") holds
  M = clip(bucket width / RBW, 1, 16) independent samples; the detector takes their maximum (POS, and NORM
  modelled as POS), minimum (NEG), the first (SAMP) or their average (AVER, with ``AVER:TYPE``: LOG = mean of
  dB, RMS = mean power, SCAL = mean voltage). A VBW below the RBW averages ceil(RBW/VBW) further samples in
  the log domain (the video filter on the log envelope; at most 64 samples per point in all). Tones are
  evaluated at the bucket centre, for POS at the point of the bucket nearest to the tone.
* trace averaging (``TRAC1:TYPE AVER`` = ``AVER:STAT ON``) averages ``AVER:COUN`` sweeps with ``AVER:TYPE``
  (preset LOG: Gaussian noise reads 2.51 dB low, instruments ref. §6.3 — the model reproduces it, it is not
  added); MAXH/MINH hold over ``AVER:COUN`` sweeps. The auto detector is AVER for an averaged trace, NEG for
  MINH, else NORM. At most ``SWE:POIN`` = 40001 points.

Sweep time: swept mode only (no FFT mode modelled): auto sweep time k·span/(RBW·min(RBW, VBW)), k = 2.5
(instruments ref. §6.3: k ≈ 2–3 for the Gaussian filter [L]), at least 1 ms; in zero span the set sweep time.
``INIT:IMM`` sleeps the sweep time × the number of sweeps on ``bench.clock`` before the trace is stored, so
``*OPC?`` after it answers when the real analyser would. In continuous mode (``INIT:CONT ON``, preset) a trace
or marker query first takes one sweep.

Sources and confidence ([H] manual, [M] secondary, [L] assumption), instruments ref. §6: command headers,
``SYST:ERR?`` format, FORM/FORM:BORD, block format ``#<n><len><bytes>``, marker-off NaN 9.91e37 [H/M];
``*IDN?`` ``Agilent Technologies,N9010A,MY51234567,A.14.16`` [M, serial made up]; preset centre 1.8 GHz,
span 3.6 GHz (option 503), 1001 points, auto RBW = span/106 (≤ 3 MHz), VBW = RBW [M]; RBW 1 Hz–8 MHz kept
as given (the real unit rounds to ~10 % steps) [L]; span 10 Hz–3.6 GHz or 0, frequencies 0–3.6 GHz (the
real unit's low-end accuracy below ~10 Hz is not modelled, nor the LO feedthrough near 0 Hz) [L]; DANL
−150 dBm/Hz flat (the spec's −146…−150 dBm/Hz, treated as the true noise density) [L].
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from sim_instruments.scpi import (
    COMMON_COMMANDS,
    SYSTEM_ERROR_COMMANDS,
    Command,
    Params,
    ScpiError,
    ScpiInstrument,
    choice,
    flag,
    number,
)

IDENTITY = "Agilent Technologies,N9010A,MY51234567,A.14.16"
INPUT_OHM = 50.0
DANL_DBM_HZ = -150.0
DANL_W_HZ = 1e-3 * 10.0 ** (DANL_DBM_HZ / 10.0)
FREQ_MAX_HZ = 3.6e9
SPAN_MIN_HZ = 10.0
RBW_RANGE_HZ = (1.0, 8e6)
RBW_AUTO_MAX_HZ = 3e6
SPAN_RBW_RATIO = 106.0
VBW_RANGE_HZ = (1.0, 50e6)
POINTS_RANGE = (1, 40001)
DEFAULT_POINTS = 1001
SWEEP_TIME_K = 2.5
SWEEP_TIME_MIN_S = 1e-3
SWEEP_TIME_MAX_S = 4000.0
MAX_SAMPLES_PER_POINT = 16
MAX_VIDEO_SAMPLES = 64
"""Most IF samples per trace point (detector samples × video samples)."""
MAX_AVERAGES = 10000
SCPI_NAN = 9.91e37
ENBW_PER_RBW = math.sqrt(math.pi / (4.0 * math.log(2.0)))
"""Equivalent noise bandwidth over the −3 dB width of a Gaussian power response (≈ 1.0645)."""
DETECTORS = ("NORMal", "AVERage", "POSitive", "SAMPle", "NEGative")
TRACE_TYPES = ("WRITe", "AVERage", "MAXHold", "MINHold")
AVERAGE_TYPES = ("LOG", "RMS", "SCALar")
AVERAGE_SCALES: dict[str, tuple[Any, Any]] = {
    "LOG": (np.log10, lambda m: np.power(10.0, m)),  # log-power: the mean of dB
    "RMS": (lambda w: w, lambda m: m),  # power
    "SCAL": (np.sqrt, np.square),  # voltage
}
"""``AVER:TYPE`` → (to the averaging scale, back to power)."""
UNITS = ("DBM", "DBMV", "DBMA", "DBUV", "DBUA", "V", "W", "A")


FREQUENCY_SUFFIXES = {"HZ": 1.0, "KHZ": 1e3, "MHZ": 1e6, "GHZ": 1e9}
"""Frequency suffixes (SCPI: ``MHZ`` is mega-, not milli-hertz)."""
TIME_SUFFIXES = {"S": 1.0, "MS": 1e-3, "US": 1e-6, "NS": 1e-9}
_WITH_SUFFIX = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-z]+)$")


def number_with_suffix(p: Params, i: int, lo: float, hi: float, suffixes: dict[str, float]) -> float:
    """A number in [lo, hi] with an optional unit suffix (``7 Hz``, ``1.5MHZ``, ``100 ms``): -131 for another
    suffix, -222 out of range (Spectrum Analyzer Mode reference: frequencies take Hz/kHz/MHz/GHz, times s/ms/us)."""
    match = _WITH_SUFFIX.match(p.raw(i))
    if match is None:
        return p.number(i, lo, hi)
    scale = suffixes.get(match.group(2).upper())
    if scale is None:
        raise ScpiError(-131)
    value = float(match.group(1)) * scale
    if not lo <= value <= hi:
        raise ScpiError(-222)
    return value


def dbm(power_W: np.ndarray | float) -> np.ndarray | float:
    """Power (W) in dBm."""
    return 10.0 * np.log10(np.asarray(power_W) / 1e-3)


def convert_power(power_W: np.ndarray, unit: str) -> np.ndarray:
    """Power into the 50 Ω input (W) in ``UNIT:POW`` units: V and A rms, dBmV/dBµV of the voltage, dBmA/dBµA of
    the current (Spectrum Analyzer Mode reference, ``UNIT:POWer``; instruments ref. §6.3)."""
    volts = np.sqrt(power_W * INPUT_OHM)
    amps = volts / INPUT_OHM
    return {
        "DBM": lambda: dbm(power_W), "W": lambda: power_W, "V": lambda: volts, "A": lambda: amps,
        "DBMV": lambda: 20.0 * np.log10(volts / 1e-3), "DBUV": lambda: 20.0 * np.log10(volts / 1e-6),
        "DBMA": lambda: 20.0 * np.log10(amps / 1e-3), "DBUA": lambda: 20.0 * np.log10(amps / 1e-6),
    }[unit]()


def rbw_response(offset_Hz: np.ndarray, rbw_Hz: float) -> np.ndarray:
    """Power response of the Gaussian RBW filter at ``offset_Hz`` from its centre (1 at 0, 0.5 at RBW/2)."""
    return np.power(2.0, -np.square(2.0 * np.asarray(offset_Hz) / rbw_Hz))


def analyser_input(bench: Any) -> tuple[list[tuple[float, float]], float]:
    """(tones [(f_Hz, V_rms)], white noise density V/√Hz) at the input: ``bench.pl.analyser_input()``, or nothing."""
    pl = getattr(bench, "pl", None)
    if pl is None:
        return [], 0.0
    given = pl.analyser_input()
    return [(float(f), float(v)) for f, v in given.tones], float(given.noise_V_rtHz)


class N9010AEmulator(ScpiInstrument):
    """An N9010A EXA in its swept SA measurement, fed by the bench's PL path (see the module docstring).

    bench: object with ``clock`` (``sleep``) and ``rng`` (numpy Generator), optionally ``pl``
    (``analyser_input()``)."""

    SIM_NAMES: tuple[str, ...] = ("spectrum_analyser",)
    ERROR_TEXTS = {-131: "Invalid suffix"}

    def __init__(self, bench: Any) -> None:
        super().__init__()
        self.bench = bench
        self.reset()

    # -- hooks ------------------------------------------------------------------------------------------------
    def identity(self) -> str:
        return IDENTITY

    def reset(self) -> None:
        self.center_Hz, self.span_Hz = FREQ_MAX_HZ / 2.0, FREQ_MAX_HZ
        self.rbw_set_Hz, self.rbw_auto = RBW_AUTO_MAX_HZ, True
        self.vbw_set_Hz, self.vbw_auto = RBW_AUTO_MAX_HZ, True
        self.detector, self.detector_auto = "NORM", True
        self.trace_type, self.average_type, self.average_count = "WRIT", "LOG", 100
        self.points = DEFAULT_POINTS
        self.sweep_time_set_s, self.sweep_time_auto = SWEEP_TIME_MIN_S, True
        self.continuous = True
        self.unit = "DBM"
        self.data_format, self.byte_order = "ASC", "NORM"
        self.markers: dict[int, int | None] = {}  # marker number → trace index (None: off)
        self.trace_W: np.ndarray | None = None

    # -- derived settings -------------------------------------------------------------------------------------
    @property
    def rbw_Hz(self) -> float:
        if self.rbw_auto and self.span_Hz > 0:
            return float(np.clip(self.span_Hz / SPAN_RBW_RATIO, RBW_RANGE_HZ[0], RBW_AUTO_MAX_HZ))
        return self.rbw_set_Hz

    @property
    def vbw_Hz(self) -> float:
        return self.rbw_Hz if self.vbw_auto else self.vbw_set_Hz

    @property
    def start_Hz(self) -> float:
        return self.center_Hz - self.span_Hz / 2.0

    @property
    def stop_Hz(self) -> float:
        return self.center_Hz + self.span_Hz / 2.0

    @property
    def sweep_time_s(self) -> float:
        """One sweep (s): the set time, or in auto k·span/(RBW·min(RBW, VBW)), at least 1 ms."""
        if not self.sweep_time_auto or self.span_Hz == 0:
            return self.sweep_time_set_s
        auto = SWEEP_TIME_K * self.span_Hz / (self.rbw_Hz * min(self.rbw_Hz, self.vbw_Hz))
        return float(min(max(auto, SWEEP_TIME_MIN_S), SWEEP_TIME_MAX_S))

    @property
    def effective_detector(self) -> str:
        if not self.detector_auto:
            return self.detector
        return {"AVER": "AVER", "MINH": "NEG"}.get(self.trace_type, "NORM")

    @property
    def sweeps(self) -> int:
        return 1 if self.trace_type == "WRIT" else self.average_count

    def frequencies_Hz(self) -> np.ndarray:
        if self.span_Hz == 0 or self.points == 1:
            return np.full(self.points, self.center_Hz)
        return np.linspace(self.start_Hz, self.stop_Hz, self.points)

    # -- the spectrum -----------------------------------------------------------------------------------------
    def _tone_power_W(self, freqs: np.ndarray, tones: list[tuple[float, float]], bucket_Hz: float,
                      detector: str) -> np.ndarray:
        power = np.zeros_like(freqs)
        for f_tone, v_rms in tones:
            offset = np.abs(freqs - f_tone)
            if detector in ("POS", "NORM"):
                offset = np.maximum(offset - bucket_Hz / 2.0, 0.0)
            power += v_rms**2 / INPUT_OHM * rbw_response(offset, self.rbw_Hz)
        return power

    @staticmethod
    def _average(power_W: np.ndarray, axis: int, kind: str) -> np.ndarray:
        """Mean along ``axis`` on the ``AVER:TYPE`` scale ``kind`` (:data:`AVERAGE_SCALES`)."""
        to_scale, back = AVERAGE_SCALES[kind]
        return back(np.mean(to_scale(power_W), axis=axis))

    def _one_sweep_W(self, tones: list[tuple[float, float]], noise_V_rtHz: float) -> np.ndarray:
        """One sweep's trace (W per point) with fresh noise."""
        rng = self.bench.rng
        freqs = self.frequencies_Hz()
        rbw = self.rbw_Hz
        bucket = self.span_Hz / max(self.points - 1, 1)
        detector = self.effective_detector
        samples = int(np.clip(round(bucket / rbw), 1, MAX_SAMPLES_PER_POINT)) if self.span_Hz > 0 else 1
        video = int(min(math.ceil(rbw / self.vbw_Hz), MAX_VIDEO_SAMPLES // samples)) if self.vbw_Hz < rbw else 1
        noise_W = (noise_V_rtHz**2 / INPUT_OHM + DANL_W_HZ) * ENBW_PER_RBW * rbw
        amplitude = np.sqrt(self._tone_power_W(freqs, tones, bucket, detector))[:, None, None]
        shape = (freqs.size, video, samples)
        field = amplitude + math.sqrt(noise_W / 2.0) * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape))
        power = np.maximum(np.abs(field) ** 2, 1e-30)
        if detector in ("POS", "NORM"):
            per_point = power.max(axis=2)
        elif detector == "NEG":
            per_point = power.min(axis=2)
        elif detector == "SAMP":
            per_point = power[:, :, 0]
        else:
            per_point = self._average(power, 2, self.average_type)
        return self._average(per_point, 1, "LOG") if video > 1 else per_point[:, 0]

    def sweep(self) -> None:
        """Take the sweep(s) the settings ask for: the instrument's time on the bench clock, then the trace."""
        self.bench.clock.sleep(self.sweep_time_s * self.sweeps)
        tones, noise = analyser_input(self.bench)
        held = self._one_sweep_W(tones, noise)
        if self.trace_type == "AVER":  # running sums: memory stays one trace whatever AVER:COUN is
            to_scale, back = AVERAGE_SCALES[self.average_type]
            total = to_scale(held)
            for _ in range(self.sweeps - 1):
                total = total + to_scale(self._one_sweep_W(tones, noise))
            held = back(total / self.sweeps)
        elif self.trace_type in ("MAXH", "MINH"):
            keep = np.maximum if self.trace_type == "MAXH" else np.minimum
            for _ in range(self.sweeps - 1):
                held = keep(held, self._one_sweep_W(tones, noise))
        self.trace_W = held

    def _trace(self) -> np.ndarray:
        if self.continuous:
            self.sweep()
        if self.trace_W is None or self.trace_W.size != self.points:
            raise ScpiError(-230, "no sweep taken with these settings")
        return self.trace_W

    # -- handlers ---------------------------------------------------------------------------------------------
    def _set_center(self, p: Params) -> None:
        self.center_Hz = number_with_suffix(p, 0, 0.0, FREQ_MAX_HZ, FREQUENCY_SUFFIXES)

    def _set_span(self, p: Params) -> None:
        span = number_with_suffix(p, 0, 0.0, FREQ_MAX_HZ, FREQUENCY_SUFFIXES)
        if 0.0 < span < SPAN_MIN_HZ:
            raise ScpiError(-222, f"span must be 0 or at least {SPAN_MIN_HZ:g} Hz")
        self.span_Hz = span

    def _set_edge(self, p: Params, which: str) -> None:
        value = number_with_suffix(p, 0, 0.0, FREQ_MAX_HZ, FREQUENCY_SUFFIXES)
        start, stop = (value, max(self.stop_Hz, value + SPAN_MIN_HZ)) if which == "start" else \
            (min(self.start_Hz, value - SPAN_MIN_HZ), value)
        if start < 0.0 or stop > FREQ_MAX_HZ:
            raise ScpiError(-222)
        self.center_Hz, self.span_Hz = (start + stop) / 2.0, stop - start

    def _set_rbw(self, p: Params) -> None:
        self.rbw_set_Hz, self.rbw_auto = number_with_suffix(p, 0, *RBW_RANGE_HZ, FREQUENCY_SUFFIXES), False

    def _set_vbw(self, p: Params) -> None:
        self.vbw_set_Hz, self.vbw_auto = number_with_suffix(p, 0, *VBW_RANGE_HZ, FREQUENCY_SUFFIXES), False

    def _set_sweep_time(self, p: Params) -> None:
        self.sweep_time_set_s, self.sweep_time_auto = number_with_suffix(p, 0, 1e-6, SWEEP_TIME_MAX_S, TIME_SUFFIXES), \
            False

    def _set_detector(self, p: Params) -> None:
        self.detector, self.detector_auto = p.keyword(0, DETECTORS), False

    def _set_averaging(self, p: Params) -> None:
        self.trace_type = "AVER" if p.boolean(0) else "WRIT"

    def _set_format(self, p: Params) -> None:
        kind = p.keyword(0, ("ASCii", "REAL", "INTeger"))
        if kind == "ASC":
            if len(p) > 1:
                raise ScpiError(-108)
            self.data_format = "ASC"
            return
        if kind == "INT":
            raise ScpiError(-221, "INT,32 trace data not emulated")
        bits = p.integer(1, 32, 64) if len(p) > 1 else 32
        if bits not in (32, 64):
            raise ScpiError(-222)
        self.data_format = f"REAL,{bits}"

    def _trace_query(self, p: Params) -> str:
        if len(p):
            p.keyword(0, ("TRACE1",))  # the one trace emulated; another is -141
        values = convert_power(self._trace(), self.unit)
        return self._format(values)

    def _format(self, values: np.ndarray) -> str:
        if self.data_format == "ASC":
            return ",".join(f"{v:.8E}" for v in values)
        kind = "f4" if self.data_format == "REAL,32" else "f8"
        data = np.asarray(values, dtype=(">" if self.byte_order == "NORM" else "<") + kind).tobytes()
        size = str(len(data))
        return f"#{len(size)}{size}" + data.decode("latin-1")

    def _marker(self, p: Params) -> int:
        return p.suffixes[0]

    def _marker_state(self, p: Params) -> None:
        n = self._marker(p)
        if not p.boolean(0):
            self.markers[n] = None
        elif self.markers.get(n) is None:
            self.markers[n] = self.points // 2

    def _marker_max(self, p: Params) -> None:
        trace = self._trace()
        self.markers[self._marker(p)] = int(np.argmax(trace))

    def _marker_set_x(self, p: Params) -> None:
        n = self._marker(p)
        freqs = self.frequencies_Hz()
        x = number_with_suffix(p, 0, -FREQ_MAX_HZ, 2 * FREQ_MAX_HZ,
                               TIME_SUFFIXES if self.span_Hz == 0 else FREQUENCY_SUFFIXES)
        self.markers[n] = int(np.argmin(np.abs(freqs - x)))

    def _marker_index(self, p: Params) -> int | None:
        index = self.markers.get(self._marker(p))
        return None if index is None or index >= self.points else index

    def _marker_x(self, p: Params) -> str:
        index = self._marker_index(p)
        if index is None:
            return f"{SCPI_NAN:.8E}"
        if self.span_Hz == 0:
            return f"{index * self.sweep_time_s / max(self.points - 1, 1):.12E}"
        return f"{self.frequencies_Hz()[index]:.12E}"

    def _marker_y(self, p: Params) -> str:
        index = self._marker_index(p)
        if index is None:
            return f"{SCPI_NAN:.8E}"
        trace = self.trace_W if self.trace_W is not None and self.trace_W.size == self.points else self._trace()
        return f"{float(convert_power(trace[index:index + 1], self.unit)[0]):.8E}"


def _fmt(value: float) -> str:
    return f"{value:.12E}"


E = N9010AEmulator
_SENS = "[:SENSe]"
N9010AEmulator.COMMANDS = (
    *COMMON_COMMANDS,
    *SYSTEM_ERROR_COMMANDS,
    Command(f"{_SENS}:FREQuency:CENTer", write=lambda s, p: s._set_center(p), query=lambda s, p: _fmt(s.center_Hz)),
    Command(f"{_SENS}:FREQuency:SPAN", write=lambda s, p: s._set_span(p), query=lambda s, p: _fmt(s.span_Hz)),
    Command(f"{_SENS}:FREQuency:STARt", write=lambda s, p: s._set_edge(p, "start"),
            query=lambda s, p: _fmt(s.start_Hz)),
    Command(f"{_SENS}:FREQuency:STOP", write=lambda s, p: s._set_edge(p, "stop"), query=lambda s, p: _fmt(s.stop_Hz)),
    Command(f"{_SENS}:BANDwidth[:RESolution]", write=lambda s, p: s._set_rbw(p), query=lambda s, p: _fmt(s.rbw_Hz)),
    flag(f"{_SENS}:BANDwidth[:RESolution]:AUTO", "rbw_auto"),
    Command(f"{_SENS}:BANDwidth:VIDeo", write=lambda s, p: s._set_vbw(p), query=lambda s, p: _fmt(s.vbw_Hz)),
    flag(f"{_SENS}:BANDwidth:VIDeo:AUTO", "vbw_auto"),
    Command(f"{_SENS}:DETector:TRACe[1]", write=lambda s, p: s._set_detector(p),
            query=lambda s, p: s.effective_detector),
    flag(f"{_SENS}:DETector:TRACe[1]:AUTO", "detector_auto"),
    number(f"{_SENS}:AVERage:COUNt", "average_count", 1, MAX_AVERAGES, 100, integer=True),
    Command(f"{_SENS}:AVERage[:STATe]", write=lambda s, p: s._set_averaging(p),
            query=lambda s, p: "1" if s.trace_type == "AVER" else "0"),
    choice(f"{_SENS}:AVERage:TYPE", "average_type", AVERAGE_TYPES),
    choice(":TRACe[1]:TYPE", "trace_type", TRACE_TYPES),
    number(f"{_SENS}:SWEep:POINts", "points", POINTS_RANGE[0], POINTS_RANGE[1], DEFAULT_POINTS, integer=True),
    Command(f"{_SENS}:SWEep:TIME", write=lambda s, p: s._set_sweep_time(p), query=lambda s, p: _fmt(s.sweep_time_s)),
    flag(f"{_SENS}:SWEep:TIME:AUTO", "sweep_time_auto"),
    flag(":INITiate:CONTinuous", "continuous"),
    Command(":INITiate[:IMMediate]", write=lambda s, p: s.sweep(), wargs=(0, 0)),
    Command(":ABORt", write=lambda s, p: None, wargs=(0, 0)),
    Command(":SYSTem:PRESet", write=lambda s, p: s.reset(), wargs=(0, 0)),
    choice(":UNIT:POWer", "unit", UNITS),
    Command(":FORMat[:TRACe][:DATA]", write=lambda s, p: s._set_format(p), query=lambda s, p: s.data_format,
            wargs=(1, 2)),
    choice(":FORMat:BORDer", "byte_order", ("NORMal", "SWAPped")),
    Command(":TRACe[:DATA]", query=lambda s, p: s._trace_query(p), qargs=(0, 1)),
    Command(":CALCulate:MARKer#:STATe", write=lambda s, p: s._marker_state(p),
            query=lambda s, p: "0" if s._marker_index(p) is None else "1"),
    Command(":CALCulate:MARKer#:MAXimum", write=lambda s, p: s._marker_max(p), wargs=(0, 0)),
    Command(":CALCulate:MARKer#:X", write=lambda s, p: s._marker_set_x(p), query=lambda s, p: s._marker_x(p)),
    Command(":CALCulate:MARKer#:Y", query=lambda s, p: s._marker_y(p)),
)
