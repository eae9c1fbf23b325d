"""Emulator of the Stanford Research SR830 DSP lock-in amplifier on the EQE bench (instruments.md §3).

Protocol ([H] manual/driver source, [M] secondary or consistent across drivers, [L] our assumption):
- 4-letter mnemonics, case-insensitive; ``;`` separates commands; ``,`` separates parameters; spaces are
  ignored around ``?`` and parameters (``OUTP? 1``, ``OUTP?1``, ``DDEF ? 1``, ``TRCL ? 1, 0, 100``) [H].
  Integer parameters sent as floats are truncated (PyMeasure's ``SRAT13.000000``) [H]. Several queries in one
  message: the answers are joined with ``reply_separator`` (GPIB: each answer LF-terminated) [H]. Not
  tree-structured SCPI, so ``sim_instruments.scpi`` is not used: no error queue exists on the SR830.
- Errors: an unknown mnemonic, a missing ``?``, a wrong parameter count or a non-numeric parameter sets
  ``*ESR`` bit 5 (CMD); a parameter out of range sets bit 4 (EXE) and leaves the setting unchanged; either way
  the unit produces no reply and the following units still run [M bits; L parameter-count/next-unit rules].
  ``FREQ`` in external reference mode and ``OFLT`` > 30 s above 200 Hz detection are EXE errors [L].
- Status: ``*STB?`` SCN 1 / IFC 2 / ERR 4 / LIA 8 / ESB 32 / SRQ 64; ``*ESR?`` (PON set at power-on);
  ``LIAS?`` 0 input/reserve overload, 1 filter overload, 2 output overload, 3 unlock, 4 detection frequency
  crossed 200 Hz, 5 time constant changed indirectly, 6 storage triggered; ``ERRS?`` (hardware; all clear);
  reading a register (or ``REG? j``, one bit) clears what was read; ``*CLS`` clears them all [H SRSM, M bits].
  A LIAS condition latches once it has lasted any bench time, and at every reading [L]. Detection crossing
  200 Hz with τ > 30 s forces OFLT 13 (bits 4, 5) [L].
- ``*RST`` defaults: internal reference 1 kHz, phase 0, sine 1 V, A input, AC, float, no notch, 1 V, normal
  reserve, 100 ms, 12 dB/oct, CH1 X, CH2 Y, 1 Hz storage, loop [L: from memory of the manual].

Physics (docs/architecture.md "Optics of the EQE bench"):
- Input: voltage modes (A, A−B) see the preamp output G·I (A−B = A, B grounded [L]); current modes see the
  detector current when ``preamp_gain_V_A`` is None; the unwired input sees 0. In current modes every
  reading, sensitivity and overload is in amperes: full scale = SENS table × 1e-6 A/V (1 MΩ) or × 1e-8 A/V
  (100 MΩ) [H 1 MΩ table; M 100 MΩ scaling and A-valued OUTP?, see ``drivers/sr830.py``].
- The lock-in sees the fundamental of the 50 % square wave: R = (√2/π)·A_pp (methods §3.3); harmonic n of the
  reference sees (√2/π)·A_pp/n with phase n·φ for odd n, 0 for even n. θ = n·φ_signal − PHAS. External
  reference follows the chopper (none → unlock); internal: locked only if |FREQ − f_chop| <= ENBW (the
  chopper is then taken as slaved to the reference output), else 0 and LIAS bit 3 [L].
- Output filter: N = 1…4 identical RC poles on X + iY, run exactly over the piecewise-constant input history
  (``optics.signal_history_since``) and over this instrument's own setting changes (``lockin_filter``).
  A change of sensitivity, input configuration or reserve restarts the filter from zero (conservative: always
  wait the settling time after a range change, methods §3.4) [L]; a time-constant change keeps the state; a
  slope change keeps the output value. Phase/reference changes change the input, so the output settles.
- Noise: X and Y each get σ = e_n·√ENBW, e_n = √(detector density² + input noise²) (6 nV/√Hz voltage,
  130 / 13 fA/√Hz current [L from the data sheet]), as an AR(1) process with correlation time 1/(4·ENBW)
  (exact for one pole). The detector DC never reaches X/Y.
- Overload: input (bit 0) when max(|dc|, |dc + pp|) exceeds min(FS × reserve ratio, 1.5 V-equivalent);
  ratios 1000 / 100 / 10 for high reserve / normal / low noise [L]. Filter (bit 1) when the demodulated input
  exceeds 1.09 FS; output (bit 2) when |X|, |Y| or R exceeds FS at a reading; readings clip at ±1.09 FS [L].
- Offset/expand (OEXP, AOFF) apply to the CH1/CH2 displays (OUTR?, SNAP? 10/11, storage), not to OUTP? [L].
- Timing: queries take no bench time [L, GPIB transfer ~ms neglected]; ``AGAN`` sleeps the bench clock
  (1 + Δindex/3 steps of max(k(0.1 %)·τ, 50 ms)) and returns settled; IFC therefore always reads 1 [L].
- Storage: SRAT/SEND/TSTR/STRT/PAUS/REST/TRIG/SPTS?/TRCA?/TRCB?/TRCL? store CH1/CH2 at the sample instants
  (16383 points). ``FAST`` is stored, not streamed; ``STRD`` = ``STRT`` [L]. TRCB?/TRCL? replies are binary
  text (latin-1); the transports append the read terminator, which a real SR830 does not send.
Not emulated: aux inputs (read 0 V), ratio displays (k ignored), notch/sync filters, line pickup.
"""

from __future__ import annotations

import math
import re
import struct
import threading
from collections import deque
from collections.abc import Callable
from copy import deepcopy
from typing import Any

import numpy as np

from sim_instruments.lockin_filter import enbw_factor, propagate, settle_factor

FRAMING: dict[str, Any] = {"read_termination": "\n", "write_termination": "\n"}
SENSITIVITIES_V = (2e-9, 5e-9, 1e-8, 2e-8, 5e-8, 1e-7, 2e-7, 5e-7, 1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4,
                   2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1, 0.2, 0.5, 1.0)
TIME_CONSTANTS_S = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0,
                    1e3, 3e3, 1e4, 3e4)
CURRENT_GAIN_A_PER_V = {2: 1e-6, 3: 1e-8}  # ISRC 2 = I (1 MOhm), 3 = I (100 MOhm)
SAMPLE_RATES_HZ = tuple(0.0625 * 2**i for i in range(14))  # SRAT 0..13; 14 = trigger
BUFFER_POINTS = 16383
FUNDAMENTAL_RMS_PER_PP = math.sqrt(2.0) / math.pi  # 0.450158 (methods §3.3)
RESERVE_RATIO = (1000.0, 100.0, 10.0)  # RMOD 0 high reserve, 1 normal, 2 low noise
INPUT_MAX_PEAK_V = 1.5
OUTPUT_CLIP_FS = 1.09
VOLTAGE_NOISE_V_RTHZ = 6e-9
CURRENT_NOISE_A_RTHZ = {2: 130e-15, 3: 13e-15}
HIGH_DETECTION_HZ = 200.0
MAX_TC_INDEX_ABOVE_200HZ = 13  # 30 s
MAX_DETECTION_HZ = 102e3
AGAN_HEADROOM = 1.25
ESR_EXE, ESR_CMD, ESR_PON = 16, 32, 128
LIA_INPUT, LIA_FILTER, LIA_OUTPUT, LIA_UNLOCK, LIA_RANGE, LIA_TC, LIA_TRIG = 1, 2, 4, 8, 16, 32, 64

DEFAULTS: dict[str, float] = {
    "FMOD": 1, "FREQ": 1000.0, "PHAS": 0.0, "RSLP": 0, "HARM": 1, "SLVL": 1.0, "ISRC": 0, "IGND": 0,
    "ICPL": 0, "ILIN": 0, "SENS": 26, "RMOD": 1, "OFLT": 8, "OFSL": 1, "SYNC": 0, "SRAT": 4, "SEND": 1,
    "TSTR": 0, "FAST": 0,
}
INT_RANGES = {
    "FMOD": (0, 1), "RSLP": (0, 2), "HARM": (1, 19999), "ISRC": (0, 3), "IGND": (0, 1), "ICPL": (0, 1),
    "ILIN": (0, 3), "SENS": (0, 26), "RMOD": (0, 2), "OFLT": (0, 19), "OFSL": (0, 3), "SYNC": (0, 1),
    "SRAT": (0, 14), "SEND": (0, 1), "TSTR": (0, 1), "FAST": (0, 2),
}
FLOAT_RANGES = {"FREQ": (0.001, 102000.0), "PHAS": (-360.0, 729.99), "SLVL": (0.004, 5.0)}
RESTART_FILTER = {"SENS", "ISRC", "RMOD"}

_UNIT = re.compile(r"\s*(\*?[A-Za-z]+)\s*(\?)?\s*(.*?)\s*", re.S)
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


class CommandError(Exception):
    """Unrecognised or malformed command: *ESR bit 5, no reply."""


class ExecutionError(Exception):
    """Parameter out of range or not allowed now: *ESR bit 4, setting unchanged, no reply."""


def parse_unit(unit: str) -> tuple[str, bool, list[float]]:
    """(mnemonic upper-case, is query, numeric parameters) of one command; CommandError if malformed."""
    m = _UNIT.fullmatch(unit)
    if m is None:
        raise CommandError(unit)
    text = m.group(3)
    tokens = [t.strip() for t in text.split(",")] if text else []
    if any(_NUMBER.fullmatch(t) is None for t in tokens):
        raise CommandError(unit)
    return m.group(1).upper(), m.group(2) is not None, [float(t) for t in tokens]


def int_arg(value: float, lo: int, hi: int) -> int:
    """An integer parameter: truncated (``13.000000`` -> 13), ExecutionError outside [lo, hi]."""
    i = int(value)
    if not lo <= i <= hi:
        raise ExecutionError(value)
    return i


def nargs(args: list[float], lo: int, hi: int | None = None) -> None:
    if not lo <= len(args) <= (lo if hi is None else hi):
        raise CommandError(f"{len(args)} parameters")


def fmt(value: float) -> str:
    return f"{value:.6g}"


def trcl_pair(value: float) -> bytes:
    """SR830 TRCL encoding: int16 mantissa m, int16 exponent e, value = m·2^(e−124), little-endian."""
    if value == 0.0 or not math.isfinite(value):
        return struct.pack("<hh", 0, 0)
    e = math.floor(math.log2(abs(value))) - 14 + 124
    m = round(value * 2.0 ** (124 - e))
    if abs(m) > 32767:
        e, m = e + 1, round(value * 2.0 ** (123 - e))
    return struct.pack("<hh", m, e)


class SR830Emulator:
    """An SR830 on ``bench`` (needs ``bench.clock``, ``bench.rng``, ``bench.optics``): ``handle(message)``.

    input_noise_V_rtHz / current_noise_A_rtHz: the instrument's own input noise densities (0 for exact tests).
    reply_separator: between the answers of several queries in one message ("\\n" on GPIB, "\\r" on RS-232).
    Fault injection: set ``errs`` (ERRS? bits) or ``aux_in_V``.
    """

    #: the ``sim://<name>`` resources of the bench this emulator can be (the lock-in)
    SIM_NAMES: tuple[str, ...] = ("lockin",)

    def __init__(
        self,
        bench: Any,
        serial: str = "46117",
        firmware: str = "1.07",
        input_noise_V_rtHz: float = VOLTAGE_NOISE_V_RTHZ,
        current_noise_A_rtHz: dict[int, float] | None = None,
        reply_separator: str = "\n",
    ) -> None:
        if getattr(bench, "optics", None) is None:
            raise ValueError("the SR830 emulator needs a bench with optics (an EQE bench)")
        self.bench = bench
        self.identity = f"Stanford_Research_Systems,SR830,s/n{serial},ver{firmware}"
        self.input_noise_V_rtHz = input_noise_V_rtHz
        self.current_noise_A_rtHz = dict(CURRENT_NOISE_A_RTHZ if current_noise_A_rtHz is None
                                         else current_noise_A_rtHz)
        self.reply_separator = reply_separator
        self.aux_in_V = [0.0, 0.0, 0.0, 0.0]
        self.esr, self.ese, self.sre = ESR_PON, 0, 0
        self.lias, self.liae, self.errs, self.erre = 0, 0, 0, 0
        self.outx, self.locl, self.ovrm, self.psc = 1, 0, 0, 1
        self._lock = threading.RLock()
        self._t = bench.clock.now()
        self._sig = bench.optics.detector_signal()
        self._setups: dict[int, tuple] = {}
        rng = bench.rng
        self._noise = complex(rng.normal(), rng.normal())
        self._t_noise = self._t
        self._reset_settings()
        self._high_detection = self._detection_Hz(self._sig) > HIGH_DETECTION_HZ
        self._state = np.full(4, self._phasor(self._sig)[0], dtype=complex)  # settled at power-on

    # -- settings ------------------------------------------------------------------------------------------
    def _reset_settings(self) -> None:
        self.settings: dict[str, float] = dict(DEFAULTS)
        self.ddef = {1: [0, 0], 2: [0, 0]}
        self.oexp = {1: [0.0, 0], 2: [0.0, 0], 3: [0.0, 0]}
        self.auxv = [0.0, 0.0, 0.0, 0.0]
        self._state = np.zeros(4, dtype=complex)
        self._reset_storage()

    def _reset_storage(self) -> None:
        self.scan = "idle"  # idle, armed, running, paused, done
        self.buffer: tuple[deque, deque] = (deque(maxlen=BUFFER_POINTS), deque(maxlen=BUFFER_POINTS))
        self._next_sample_t = math.inf

    def _int(self, name: str) -> int:
        return int(self.settings[name])

    @property
    def unit_scale(self) -> float:
        """Amperes per volt of the sensitivity table in current modes, 1 in voltage modes."""
        return CURRENT_GAIN_A_PER_V.get(self._int("ISRC"), 1.0)

    @property
    def full_scale(self) -> float:
        """Full-scale sensitivity (V, or A in current modes)."""
        return SENSITIVITIES_V[self._int("SENS")] * self.unit_scale

    @property
    def tau_s(self) -> float:
        return TIME_CONSTANTS_S[self._int("OFLT")]

    @property
    def poles(self) -> int:
        return self._int("OFSL") + 1

    @property
    def enbw_Hz(self) -> float:
        return enbw_factor(self.poles) / self.tau_s

    # -- physics -------------------------------------------------------------------------------------------
    def _input(self, sig: Any) -> tuple[float, float, float]:
        """(peak-to-peak, DC, noise density) at the selected input, in V or A."""
        gain = self.bench.optics.preamp_gain_V_A
        if self._int("ISRC") >= 2:  # current input
            wired, g, inst = gain is None, 1.0, self.current_noise_A_rtHz[self._int("ISRC")]
        else:
            wired, g, inst = gain is not None, gain or 0.0, self.input_noise_V_rtHz
        if not wired:
            return 0.0, 0.0, inst
        return g * sig.chopped_pp_A, g * sig.dc_A, math.hypot(g * sig.noise_A_rtHz, inst)

    def _reference_Hz(self, sig: Any) -> float:
        return float(sig.frequency_Hz or 0.0) if self._int("FMOD") == 0 else self.settings["FREQ"]

    def _detection_Hz(self, sig: Any) -> float:
        return self._int("HARM") * self._reference_Hz(sig)

    def _phasor(self, sig: Any) -> tuple[complex, int]:
        """Demodulated input X + iY before the output filter, and the LIAS bits it raises."""
        pp, dc, _ = self._input(sig)
        fs, flags = self.full_scale, 0
        limit = min(fs * RESERVE_RATIO[self._int("RMOD")], INPUT_MAX_PEAK_V * self.unit_scale)
        if max(abs(dc), abs(dc + pp)) > limit:
            flags |= LIA_INPUT
        f_chop = float(sig.frequency_Hz or 0.0)
        if self._int("FMOD") == 0:
            locked = f_chop > 0.0
        else:
            locked = abs(self.settings["FREQ"] - f_chop) <= self.enbw_Hz
        n = self._int("HARM")
        if not locked:
            return 0j, flags | LIA_UNLOCK
        if n % 2 == 0:
            return 0j, flags
        theta = math.radians(n * sig.phase_deg - self.settings["PHAS"])
        u = FUNDAMENTAL_RMS_PER_PP * pp / n * complex(math.cos(theta), math.sin(theta))
        if abs(u) > OUTPUT_CLIP_FS * fs:
            flags |= LIA_FILTER
        return u, flags

    def _check_detection_range(self, sig: Any) -> None:
        high = self._detection_Hz(sig) > HIGH_DETECTION_HZ
        if high != self._high_detection:
            self.lias |= LIA_RANGE
            self._high_detection = high
        if high and self._int("OFLT") > MAX_TC_INDEX_ABOVE_200HZ:
            self.settings["OFLT"] = MAX_TC_INDEX_ABOVE_200HZ
            self.lias |= LIA_TC

    def _advance(self) -> None:
        """Run the output filter (and storage) from the last update to ``clock.now()``."""
        t_now = self.bench.clock.now()
        history = self.bench.optics.signal_history_since(self._t) if t_now > self._t else []
        if not history:
            history = [(t_now, self.bench.optics.detector_signal())]
        for k, (_, sig) in enumerate(history):
            t_end = min(history[k + 1][0], t_now) if k + 1 < len(history) else t_now
            self._sig = sig
            self._check_detection_range(sig)
            u, flags = self._phasor(sig)
            if t_end > self._t:  # conditions latch when they last; readings latch the present one
                self.lias |= flags
            while self.scan == "running" and self._int("SRAT") < 14 and self._next_sample_t <= t_end:
                self._filter_to(max(self._next_sample_t, self._t), u)
                self._store_sample()
                self._next_sample_t += 1.0 / SAMPLE_RATES_HZ[self._int("SRAT")]
            self._filter_to(max(t_end, self._t), u)

    def _filter_to(self, t: float, u: complex) -> None:
        n = self.poles
        self._state[:n] = propagate(self._state[:n], u, t - self._t, self.tau_s)
        self._t = t

    def _sigma(self) -> float:
        """rms noise of X (and of Y) at the output (V or A)."""
        return self._input(self._sig)[2] * math.sqrt(self.enbw_Hz)

    def _outputs(self) -> tuple[float, float, float, float]:
        """(X, Y, R, θ deg) as read now: filtered signal + noise, output overload latched, clipped."""
        rho = math.exp(-(self._t - self._t_noise) * 4.0 * self.enbw_Hz)
        if rho < 1.0:
            rng = self.bench.rng
            self._noise = rho * self._noise + math.sqrt(1.0 - rho * rho) * complex(rng.normal(), rng.normal())
            self._t_noise = self._t
        z = self._state[self.poles - 1] + self._sigma() * self._noise
        self.lias |= self._phasor(self._sig)[1]
        fs, clip = self.full_scale, OUTPUT_CLIP_FS * self.full_scale
        if max(abs(z.real), abs(z.imag), abs(z)) > fs:
            self.lias |= LIA_OUTPUT
        x, y = (min(max(v, -clip), clip) for v in (z.real, z.imag))
        return x, y, min(abs(z), clip), math.degrees(math.atan2(z.imag, z.real))

    def _display(self, channel: int, out: tuple[float, float, float, float]) -> float:
        """CH1/CH2 display value (DDEF j), with offset and expand on X, Y, R [L: ratio k ignored]."""
        j = self.ddef[channel][0]
        x, y, r, theta = out
        values = (x, r, self._sigma(), *self.aux_in_V[0:2]) if channel == 1 else \
            (y, theta, self._sigma(), *self.aux_in_V[2:4])
        offset_channel = {(1, 0): 1, (1, 1): 3, (2, 0): 2}.get((channel, j))
        if offset_channel is None:
            return values[j]
        offset_pct, expand = self.oexp[offset_channel]
        return (values[j] - offset_pct / 100.0 * self.full_scale) * (1, 10, 100)[expand]

    def _store_sample(self) -> None:
        if self.scan != "running":
            return
        if self._int("SEND") == 0 and len(self.buffer[0]) >= BUFFER_POINTS:
            self.scan = "done"
            return
        out = self._outputs()
        self.buffer[0].append(self._display(1, out))
        self.buffer[1].append(self._display(2, out))

    # -- protocol ------------------------------------------------------------------------------------------
    def handle(self, message: str) -> str | None:
        """One message (terminator stripped) in; the replies joined by ``reply_separator``, or None."""
        with self._lock:
            replies = []
            for unit in message.split(";"):
                if not unit.strip():
                    continue
                try:
                    reply = self._execute(unit)
                except CommandError:
                    self.esr |= ESR_CMD
                    continue
                except ExecutionError:
                    self.esr |= ESR_EXE
                    continue
                if reply is not None:
                    replies.append(reply)
            return self.reply_separator.join(replies) if replies else None

    def _execute(self, unit: str) -> str | None:
        name, query, args = parse_unit(unit)
        self._advance()
        if name in INT_RANGES or name in FLOAT_RANGES:
            return self._setting(name, query, args)
        if (name, query) not in COMMANDS:
            raise CommandError(unit)
        handler, lo, hi = COMMANDS[(name, query)]
        nargs(args, lo, hi)
        return handler(self, args)

    def _setting(self, name: str, query: bool, args: list[float]) -> str | None:
        if query:
            nargs(args, 0)
            value = self.settings[name]
            if name == "FREQ" and self._int("FMOD") == 0:
                value = float(self._sig.frequency_Hz or 0.0)
            return fmt(value) if name in FLOAT_RANGES else str(int(value))
        nargs(args, 1)
        if name in INT_RANGES:
            value: float = int_arg(args[0], *INT_RANGES[name])
        else:
            lo, hi = FLOAT_RANGES[name]
            if not lo <= args[0] <= hi:
                raise ExecutionError(args[0])
            value = args[0]
        self._check_allowed(name, value)
        old_output = self._state[self.poles - 1]
        changed = value != self.settings[name]
        self.settings[name] = value
        if name == "PHAS":
            self.settings[name] = (value + 180.0) % 360.0 - 180.0
        elif name == "SLVL":
            self.settings[name] = round(value / 0.002) * 0.002
        if changed and name in RESTART_FILTER:
            self._state[:] = 0.0
        elif changed and name == "OFSL":
            self._state[:] = old_output
        return None

    def _check_allowed(self, name: str, value: float) -> None:
        """Settings the SR830 refuses in the present state [L]: ExecutionError, unchanged."""
        f_ref = self._reference_Hz(self._sig)
        if name == "FREQ" and (self._int("FMOD") == 0 or value * self._int("HARM") > MAX_DETECTION_HZ):
            raise ExecutionError("FREQ")
        if name == "HARM" and value * f_ref > MAX_DETECTION_HZ:
            raise ExecutionError("HARM")
        if name == "OFLT" and value > MAX_TC_INDEX_ABOVE_200HZ and self._high_detection:
            raise ExecutionError("OFLT above 200 Hz")

    # status registers: "REG? [j]" reads (and clears) the byte or bit j; "REG [j,]k" sets the byte or bit j
    def _read_register(self, attr: str, args: list[float], clear: bool) -> str:
        value = getattr(self, attr)
        bit = int_arg(args[0], 0, 7) if args else None
        if clear:
            setattr(self, attr, 0 if bit is None else value & ~(1 << bit))
        return str(value if bit is None else value >> bit & 1)

    def _write_enable(self, attr: str, args: list[float]) -> None:
        if len(args) == 1:
            setattr(self, attr, int_arg(args[0], 0, 255))
            return
        bit, on = int_arg(args[0], 0, 7), int_arg(args[1], 0, 1)
        value = getattr(self, attr)
        setattr(self, attr, value | (1 << bit) if on else value & ~(1 << bit))

    def status_byte(self) -> int:
        """SCN 1 (no scan), IFC 2 (always idle: AGAN runs synchronously), ERR 4, LIA 8, ESB 32, SRQ 64."""
        stb = 2 | (0 if self.scan in ("running", "armed") else 1)
        stb |= (4 if self.errs & self.erre else 0) | (8 if self.lias & self.liae else 0)
        stb |= 32 if self.esr & self.ese else 0
        return stb | (64 if stb & self.sre else 0)

    def _q_stb(self, args: list[float]) -> str:
        stb = self.status_byte()
        return str(stb if not args else stb >> int_arg(args[0], 0, 7) & 1)

    def _rst(self, args: list[float]) -> None:
        self._reset_settings()
        self._high_detection = self._detection_Hz(self._sig) > HIGH_DETECTION_HZ

    def _cls(self, args: list[float]) -> None:
        self.esr = self.lias = self.errs = 0

    # outputs, displays, offsets, aux
    def _q_snap(self, args: list[float]) -> str:
        items = [int_arg(a, 1, 11) for a in args]
        out = self._outputs()
        table = {**dict(enumerate(out, 1)), **{4 + i: v for i, v in enumerate(self.aux_in_V, 1)},
                 9: self._reference_Hz(self._sig), 10: self._display(1, out), 11: self._display(2, out)}
        return ",".join(fmt(table[i]) for i in items)

    def _ddef(self, args: list[float]) -> None:
        self.ddef[int_arg(args[0], 1, 2)] = [int_arg(args[1], 0, 4), int_arg(args[2], 0, 2)]

    def _oexp(self, args: list[float]) -> None:
        channel, offset, expand = int_arg(args[0], 1, 3), args[1], int_arg(args[2], 0, 2)
        if not -105.0 <= offset <= 105.0:
            raise ExecutionError(offset)
        self.oexp[channel] = [round(offset, 2), expand]

    def _aoff(self, args: list[float]) -> None:
        channel = int_arg(args[0], 1, 3)
        pct = self._outputs()[channel - 1] / self.full_scale * 100.0
        self.oexp[channel][0] = round(min(max(pct, -105.0), 105.0), 2)

    def _auxv(self, args: list[float]) -> None:
        channel = int_arg(args[0], 1, 4)
        if not -10.5 <= args[1] <= 10.5:
            raise ExecutionError(args[1])
        self.auxv[channel - 1] = round(args[1], 3)

    # auto functions
    def _agan(self, args: list[float]) -> None:
        """Auto gain: smallest sensitivity holding 1.25 × the settled R without input overload; takes time."""
        old = self._int("SENS")
        magnitude = abs(self._phasor(self._sig)[0]) + 2.0 * self._sigma()
        for i in range(len(SENSITIVITIES_V)):
            self.settings["SENS"] = i
            if self.full_scale >= AGAN_HEADROOM * magnitude and not self._phasor(self._sig)[1] & LIA_INPUT:
                break
        if self._int("SENS") != old:
            self._state[:] = 0.0
        steps = 1 + math.ceil(abs(self._int("SENS") - old) / 3)
        self.bench.clock.sleep(steps * max(settle_factor(self.poles, 1e-3) * self.tau_s, 0.05))

    def _arsv(self, args: list[float]) -> None:
        """Auto reserve: the lowest-noise reserve without input overload (high reserve if none)."""
        old = self._int("RMOD")
        for mode in (2, 1, 0):
            self.settings["RMOD"] = mode
            if not self._phasor(self._sig)[1] & LIA_INPUT:
                break
        if self._int("RMOD") != old:
            self._state[:] = 0.0

    def _aphs(self, args: list[float]) -> None:
        """Auto phase: shift PHAS by the present θ (the output then settles towards θ = 0)."""
        self.settings["PHAS"] = (self.settings["PHAS"] + self._outputs()[3] + 180.0) % 360.0 - 180.0

    # storage
    def _strt(self, args: list[float]) -> None:
        if self.scan == "idle" and self._int("TSTR"):
            self.scan = "armed"
        elif self.scan in ("idle", "paused"):
            self._start_scan()

    def _start_scan(self) -> None:
        self.scan = "running"
        self._next_sample_t = self._t
        self._advance()

    def _paus(self, args: list[float]) -> None:
        if self.scan in ("running", "armed"):
            self.scan = "paused"

    def _trig(self, args: list[float]) -> None:
        if self.scan == "armed":
            self.lias |= LIA_TRIG
            self._start_scan()
        elif self.scan == "running" and self._int("SRAT") == 14:
            self.lias |= LIA_TRIG
            self._store_sample()

    def _trace(self, args: list[float]) -> list[float]:
        channel, start, count = int_arg(args[0], 1, 2), int_arg(args[1], 0, BUFFER_POINTS), int(args[2])
        if count < 1 or start + count > len(self.buffer[0]):
            raise ExecutionError("bins beyond the stored points")
        return list(self.buffer[channel - 1])[start: start + count]

    # setups
    def _sset(self, args: list[float]) -> None:
        self._setups[int_arg(args[0], 1, 9)] = deepcopy((self.settings, self.ddef, self.oexp, self.auxv))

    def _rset(self, args: list[float]) -> None:
        i = int_arg(args[0], 1, 9)
        if i not in self._setups:
            raise ExecutionError("empty setup")
        self.settings, self.ddef, self.oexp, self.auxv = deepcopy(self._setups[i])
        self._state[:] = 0.0


Handler = Callable[[SR830Emulator, list[float]], "str | None"]
E = SR830Emulator


def _register(attr: str, clear: bool) -> Handler:
    return lambda s, a: s._read_register(attr, a, clear)


def _enable(attr: str) -> Handler:
    return lambda s, a: s._write_enable(attr, a)


def _setter(attr: str, hi: int) -> Handler:
    return lambda s, a: setattr(s, attr, int_arg(a[0], 0, hi))


def _getter(attr: str) -> Handler:
    return lambda s, a: str(getattr(s, attr))


def _pick(values: Callable[[SR830Emulator], list[float]], lo: int, hi: int, form: str = "{}") -> Handler:
    """Query answering one element (1-based index in [lo, hi]) of ``values(emulator)``."""
    return lambda s, a: form.format(values(s)[int_arg(a[0], lo, hi) - lo])


#: (mnemonic, is query) -> (handler, min params, max params); the generic settings are in INT/FLOAT_RANGES
COMMANDS: dict[tuple[str, bool], tuple[Handler, int, int]] = {
    ("*IDN", True): (_getter("identity"), 0, 0), ("*RST", False): (E._rst, 0, 0), ("*CLS", False): (E._cls, 0, 0),
    ("*STB", True): (E._q_stb, 0, 1), ("*ESR", True): (_register("esr", True), 0, 1),
    ("*ESE", False): (_enable("ese"), 1, 2), ("*ESE", True): (_register("ese", False), 0, 1),
    ("*SRE", False): (_enable("sre"), 1, 2), ("*SRE", True): (_register("sre", False), 0, 1),
    ("*PSC", False): (_setter("psc", 1), 1, 1), ("*PSC", True): (_getter("psc"), 0, 0),
    ("*OPC", False): (lambda s, a: None, 0, 0), ("*OPC", True): (lambda s, a: "1", 0, 0),
    ("LIAS", True): (_register("lias", True), 0, 1), ("LIAE", False): (_enable("liae"), 1, 2),
    ("LIAE", True): (_register("liae", False), 0, 1), ("ERRS", True): (_register("errs", True), 0, 1),
    ("ERRE", False): (_enable("erre"), 1, 2), ("ERRE", True): (_register("erre", False), 0, 1),
    ("OUTP", True): (_pick(lambda s: list(s._outputs()), 1, 4, "{:.6g}"), 1, 1),
    ("OUTR", True): (_pick(lambda s: [s._display(c, s._outputs()) for c in (1, 2)], 1, 2, "{:.6g}"), 1, 1),
    ("SNAP", True): (E._q_snap, 2, 6), ("OAUX", True): (_pick(lambda s: s.aux_in_V, 1, 4, "{:.4f}"), 1, 1),
    ("DDEF", False): (E._ddef, 3, 3), ("OEXP", False): (E._oexp, 3, 3),
    ("DDEF", True): (_pick(lambda s: [s.ddef[1], s.ddef[2]], 1, 2, "{0[0]},{0[1]}"), 1, 1),
    ("OEXP", True): (_pick(lambda s: [s.oexp[c] for c in (1, 2, 3)], 1, 3, "{0[0]:.2f},{0[1]}"), 1, 1),
    ("AOFF", False): (E._aoff, 1, 1), ("AUXV", False): (E._auxv, 2, 2),
    ("AUXV", True): (_pick(lambda s: s.auxv, 1, 4, "{:.3f}"), 1, 1), ("AGAN", False): (E._agan, 0, 0),
    ("ARSV", False): (E._arsv, 0, 0), ("APHS", False): (E._aphs, 0, 0), ("STRT", False): (E._strt, 0, 0),
    ("STRD", False): (E._strt, 0, 0), ("PAUS", False): (E._paus, 0, 0),
    ("REST", False): (lambda s, a: s._reset_storage(), 0, 0), ("TRIG", False): (E._trig, 0, 0),
    ("SPTS", True): (lambda s, a: str(len(s.buffer[0])), 0, 0),
    ("TRCA", True): (lambda s, a: "".join(f"{v:.6e}," for v in s._trace(a)), 3, 3),
    ("TRCB", True): (lambda s, a: struct.pack(f"<{int(a[2])}f", *s._trace(a)).decode("latin-1"), 3, 3),
    ("TRCL", True): (lambda s, a: b"".join(trcl_pair(v) for v in s._trace(a)).decode("latin-1"), 3, 3),
    ("SSET", False): (E._sset, 1, 1), ("RSET", False): (E._rset, 1, 1), ("OUTX", False): (_setter("outx", 1), 1, 1),
    ("OUTX", True): (_getter("outx"), 0, 0), ("LOCL", False): (_setter("locl", 2), 1, 1),
    ("LOCL", True): (_getter("locl"), 0, 0), ("OVRM", False): (_setter("ovrm", 1), 1, 1),
}
