"""Stanford Research SR830 DSP lock-in amplifier, built on PyMeasure's ``SR830`` (instruments.md §3).

Fixes to the stock PyMeasure class:

* every setting is validated strictly (``ValueError`` before anything is sent) instead of being silently
  truncated or clamped: sensitivity and time constant by exact table value or by index, filter slope,
  reserve (the stock setter maps an unknown name to "Normal"), frequency 0.001–102 000 Hz, phase
  −360…729.99°, sine amplitude, harmonic 1–19 999 (the stock range excluded 19 999), aux outputs ±10.5 V;
* the input configuration is tracked, so sensitivities are in the right unit: volts for A and A−B, amperes
  for the current inputs, where the SENS table is scaled by the transimpedance of the input,
  ×1e-6 A/V for I (1 MΩ) [H: 2 fA…1 µA table in PyMeasure/QCoDeS and the SR850 manual's "nV/fA" table] and
  ×1e-8 A/V for I (100 MΩ) [M: instruments.md §3.3, same rule as the SRS SR124 manual; PyMeasure and QCoDeS
  use 1e-6 for both current inputs — one of the two is wrong, see :data:`CURRENT_GAIN_A_PER_V`];
* readings (``OUTP?``, ``SNAP?``) are taken as the instrument sends them, which in current mode is amperes
  [M: QCoDeS labels X/Y/R "A" in current mode, PyMeasure's ``quick_range`` treats R as amperes];
* ``set_scaling`` sends the expand index (the stock one sent the factor: ×1 became ×10), the ``channel1`` /
  ``channel2`` getters read the real ``j,k`` reply of ``DDEF?``;
* ``auto_gain`` waits for ``AGAN`` to finish (``*STB?`` bit 1, IFC); ``quick_range`` (time.sleep, wrong
  100 MΩ scaling) is replaced by :meth:`auto_sensitivity`;
* :meth:`check_errors` reads ``*ESR?`` and ``ERRS?`` and returns one (code, message) per bit set
  (:meth:`check_set_errors` raises them): the SR830 has no error queue; a bad command
  sets ESR bit 5, an out-of-range parameter bit 4 (setting unchanged), and neither produces a reply.

Time constants above 30 s are unavailable when the detection frequency is above ~200 Hz (the instrument
refuses them); :meth:`configure` checks this against the chopper frequency.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pymeasure.instruments import Instrument
from pymeasure.instruments.srs import SR830 as _StockSR830
from pymeasure.instruments.validators import strict_discrete_set, strict_range

from drivers.identity import IdentitySpec
from drivers.registration import ConnectionDefaults, InstrumentRegistration
from drivers.safe import driver_safe_state
from drivers.smu import InstrumentError
from labctl.analysis.lockin import enbw_Hz as _enbw_Hz
from labctl.analysis.lockin import settle_time_constants_to_tolerance, slope_to_poles

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())

SENSITIVITIES_V: tuple[float, ...] = tuple(_StockSR830.SENSITIVITIES)
"""``SENS`` index 0–26 → full scale in voltage mode (V rms)."""
TIME_CONSTANTS_S: tuple[float, ...] = tuple(_StockSR830.TIME_CONSTANTS)
"""``OFLT`` index 0–19 → time constant (s)."""
INPUT_CONFIGS: tuple[str, ...] = tuple(_StockSR830.INPUT_CONFIGS)  # 'A', 'A - B', 'I (1 MOhm)', 'I (100 MOhm)'
RESERVE_VALUES: tuple[str, ...] = tuple(_StockSR830.RESERVE_VALUES)  # 'High Reserve', 'Normal', 'Low Noise'
CURRENT_GAIN_A_PER_V: dict[str, float] = {"I (1 MOhm)": 1e-6, "I (100 MOhm)": 1e-8}
"""Amperes of full scale per volt of the SENS table on the current inputs (100 MΩ value: [M], see module doc)."""
POLES: dict[int, int] = {slope: slope_to_poles(slope) for slope in (6, 12, 18, 24)}
"""Filter slope (dB/oct; ``OFSL`` 0–3 = 6, 12, 18, 24) → RC poles of the output filter (1–4)."""
ENBW_TIMES_TAU: dict[int, float] = {slope: _enbw_Hz(1.0, poles) for slope, poles in POLES.items()}
"""Equivalent noise bandwidth × τ of the N-pole RC output filter: 1/4, 1/8, 3/32, 5/64 (methods §3.4)."""
HIGH_DETECTION_HZ = 200.0
MAX_TIME_CONSTANT_HIGH_FREQUENCY_S = 30.0
ESR_BITS = {0: "input queue overflow (INP)", 2: "output queue overflow (QRY)",
            4: "parameter out of range or not allowed now; the setting was NOT changed (EXE)",
            5: "command not recognised or malformed (CMD)"}
ERRS_BITS = {1: "battery backup failed", 2: "RAM error", 4: "ROM error", 5: "GPIB fast data transfer aborted",
             6: "DSP error", 7: "math error"}
STB_IFC = 2  # serial-poll bit 1: no command executing
LIA_BITS = ("input/reserve overload", "filter overload", "output overload", "reference unlock",
            "detection frequency crossed 200 Hz", "time constant changed indirectly", "data storage triggered")


class SR830Error(InstrumentError):
    """The lock-in reported a command/parameter error or a hardware error, or sent an unreadable reply."""


@dataclass(frozen=True)
class LockinReading:
    """X, Y, R (``unit``: "V", or "A" on a current input) and θ (deg), sampled at one instant (``SNAP?``)."""

    x: float
    y: float
    r: float
    theta_deg: float
    unit: str


@dataclass(frozen=True)
class LockinStatus:
    """The LIA status byte (``LIAS?``), decoded; reading it cleared it on the instrument."""

    raw: int

    def bit(self, n: int) -> bool:
        return bool(self.raw >> n & 1)

    @property
    def input_overload(self) -> bool:
        return self.bit(0)

    @property
    def filter_overload(self) -> bool:
        return self.bit(1)

    @property
    def output_overload(self) -> bool:
        return self.bit(2)

    @property
    def reference_unlock(self) -> bool:
        return self.bit(3)

    @property
    def overload(self) -> bool:
        """Any of the input, filter and output overloads."""
        return bool(self.raw & 0b111)

    def describe(self) -> str:
        return ", ".join(text for n, text in enumerate(LIA_BITS) if self.bit(n)) or "ok"


# ------------------------------------------------------------------------------------------- pure helpers
def settle_factor(filter_slope_dB: int, tolerance: float = 0.01) -> float:
    """k such that the N-pole RC step response is within ``tolerance`` of its final value after k·τ.

    Exact: 1 − e^(−k)·Σ_{j<N} k^j/j! = 1 − tolerance (methods §3.4): 4.605, 6.638, 8.406, 10.045 for 1 %.
    See :func:`labctl.analysis.lockin.settle_time_constants_to_tolerance`; this adds the slope → poles map.
    """
    if filter_slope_dB not in POLES:
        raise ValueError(f"filter slope {filter_slope_dB!r} dB/oct not in {sorted(POLES)}")
    return float(settle_time_constants_to_tolerance(POLES[filter_slope_dB], tolerance))


def pick_sensitivity_index(reading: float, scale: float = 1.0, headroom: float = 1.25) -> int:
    """Smallest SENS index whose full scale (table × ``scale``) is >= ``headroom`` × |reading| (26 if none)."""
    if not math.isfinite(reading):
        raise ValueError(f"reading {reading!r} is not finite")
    if not (math.isfinite(headroom) and headroom >= 1.0):
        raise ValueError(f"headroom {headroom!r} must be >= 1")
    need = headroom * abs(reading)
    for i, fs in enumerate(SENSITIVITIES_V):
        if fs * scale >= need:
            return i
    log.warning("reading %g needs more than the largest full scale %g", reading, SENSITIVITIES_V[-1] * scale)
    return len(SENSITIVITIES_V) - 1


def _table_index(value: float, table: tuple[float, ...], scale: float, what: str, unit: str) -> int:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        for i, entry in enumerate(table):
            if math.isclose(value, entry * scale, rel_tol=1e-6):
                return i
    allowed = ", ".join(f"{entry * scale:g}" for entry in table)
    raise ValueError(f"{what} {value!r} {unit} is not one of: {allowed}")


def _aux_out(channel: int) -> property:
    return Instrument.control(
        f"AUXV?{channel};", f"AUXV{channel},%f;", f"Aux output {channel} (V, strictly −10.5 to 10.5).",
        validator=strict_range, values=[-10.5, 10.5],
    )


class SR830(_StockSR830):
    """SR830 lock-in amplifier (GPIB or RS-232; the constructor sends nothing).

    ``sleep`` is what :meth:`auto_gain` waits with between polls (``time.sleep``; a station running on a
    virtual clock may set ``lockin.sleep = clock.sleep``).
    """

    #: ``*IDN?`` → ``Stanford_Research_Systems,SR830,s/n46117,ver1.07`` (instruments.md §3 [H])
    IDENTITY = IdentitySpec(
        query="*IDN?", accepts=(r"Stanford_Research_Systems,SR830,",),
        expected="Stanford_Research_Systems,SR830,s/n<serial>,ver<firmware>",
    )

    sensitivity_index = Instrument.control(
        "SENS?", "SENS%d", "Sensitivity index 0 (2 nV / 2 fA) to 26 (1 V / 1 µA) (int).",
        validator=strict_discrete_set, values=range(27), cast=int,
    )
    time_constant_index = Instrument.control(
        "OFLT?", "OFLT%d", "Time-constant index 0 (10 µs) to 19 (30 ks) (int).",
        validator=strict_discrete_set, values=range(20), cast=int,
    )
    filter_slope = Instrument.control(
        "OFSL?", "OFSL%d", "Output filter slope in dB/oct: 6, 12, 18 or 24 (int).",
        validator=strict_discrete_set, values=[6, 12, 18, 24], map_values=True,
    )
    reserve = Instrument.control(
        "RMOD?", "RMOD%d", f"Dynamic reserve mode, one of {list(RESERVE_VALUES)}.",
        validator=strict_discrete_set, values=list(RESERVE_VALUES), map_values=True,
    )
    frequency = Instrument.control(
        "FREQ?", "FREQ%0.5e", "Reference frequency (Hz): set only with the internal reference; with the "
        "external reference the query returns the measured frequency. Strictly 0.001 to 102000.",
        validator=strict_range, values=[0.001, 102000.0],
    )
    phase = Instrument.control(
        "PHAS?", "PHAS%0.2f", "Reference phase (deg, strictly −360 to 729.99; stored wrapped to ±180).",
        validator=strict_range, values=[-360.0, 729.99],
    )
    sine_voltage = Instrument.control(
        "SLVL?", "SLVL%0.3f", "Sine output amplitude (V rms, strictly 0.004 to 5).",
        validator=strict_range, values=[0.004, 5.0],
    )
    harmonic = Instrument.control(
        "HARM?", "HARM%d", "Detection harmonic 1 to 19999 (int; harmonic × frequency <= 102 kHz).",
        validator=strict_discrete_set, values=range(1, 20000), cast=int,
    )
    channel1 = Instrument.control(
        "DDEF?1;", "DDEF1,%d,0", "CH1 display: 'X', 'R', 'X Noise', 'Aux In 1' or 'Aux In 2' (no ratio).",
        validator=strict_discrete_set, values=["X", "R", "X Noise", "Aux In 1", "Aux In 2"], map_values=True,
        preprocess_reply=lambda reply: reply.split(",")[0],  # the reply is "j,k"; the stock getter failed on it
    )
    channel2 = Instrument.control(
        "DDEF?2;", "DDEF2,%d,0", "CH2 display: 'Y', 'Theta', 'Y Noise', 'Aux In 3' or 'Aux In 4' (no ratio).",
        validator=strict_discrete_set, values=["Y", "Theta", "Y Noise", "Aux In 3", "Aux In 4"], map_values=True,
        preprocess_reply=lambda reply: reply.split(",")[0],
    )
    aux_out_1, aux_out_2, aux_out_3, aux_out_4 = (_aux_out(i) for i in (1, 2, 3, 4))
    dac1, dac2, dac3, dac4 = aux_out_1, aux_out_2, aux_out_3, aux_out_4

    @staticmethod
    def allowed_time_constants_s(detection_frequency_Hz: float) -> tuple[float, ...]:
        """The time constants (s) the instrument accepts at this detection frequency (Hz); no I/O.

        All 20 steps (10 µs … 30 ks, 1-3 sequence) up to 200 Hz; above it, those up to 30 s (SR830 manual, OFLT).
        """
        if detection_frequency_Hz > HIGH_DETECTION_HZ:
            return tuple(tc for tc in TIME_CONSTANTS_S if tc <= MAX_TIME_CONSTANT_HIGH_FREQUENCY_S)
        return TIME_CONSTANTS_S

    def __init__(self, adapter: Any, name: str = "Stanford Research SR830 lock-in amplifier",
                 **kwargs: Any) -> None:
        super().__init__(adapter, name, **kwargs)
        self._input_config: str | None = None
        self.sleep: Callable[[float], None] = time.sleep

    # --- replies
    def _ask_int(self, command: str) -> int:
        reply = self.ask(command).strip()
        try:
            return int(float(reply))
        except ValueError:
            raise SR830Error(f"{self.name}: reply {reply!r} to {command!r} is not a number") from None

    def _ask_floats(self, command: str, count: int) -> list[float]:
        reply = self.ask(command).strip()
        try:
            values = [float(field) for field in reply.split(",")]
        except ValueError:
            values = []
        if len(values) != count:
            raise SR830Error(f"{self.name}: reply {reply!r} to {command!r} is not {count} numbers")
        return values

    # --- input configuration (tracked) and units
    @property
    def input_config(self) -> str:
        """Input: 'A', 'A - B', 'I (1 MOhm)' or 'I (100 MOhm)' (``ISRC``); queried and remembered."""
        index = self._ask_int("ISRC?")
        if not 0 <= index < len(INPUT_CONFIGS):
            raise SR830Error(f"{self.name}: ISRC? returned {index}")
        self._input_config = INPUT_CONFIGS[index]
        return self._input_config

    @input_config.setter
    def input_config(self, value: str) -> None:
        if value not in INPUT_CONFIGS:
            raise ValueError(f"input configuration {value!r} not in {list(INPUT_CONFIGS)}")
        self.write(f"ISRC {INPUT_CONFIGS.index(value)}")
        self._input_config = value

    def _mode(self) -> str:
        return self._input_config if self._input_config is not None else self.input_config

    @property
    def unit_scale(self) -> float:
        """Full scale per volt of the SENS table: 1 (voltage inputs) or the current input's A/V."""
        return CURRENT_GAIN_A_PER_V.get(self._mode(), 1.0)

    @property
    def reading_unit(self) -> str:
        """Unit of X, Y, R and of the sensitivity: "V", or "A" on a current input."""
        return "A" if self._mode() in CURRENT_GAIN_A_PER_V else "V"

    @property
    def sensitivity(self) -> float:
        """Full-scale sensitivity in V (voltage inputs) or A (current inputs); set by exact table value."""
        return SENSITIVITIES_V[self.sensitivity_index] * self.unit_scale

    @sensitivity.setter
    def sensitivity(self, value: float) -> None:
        unit = self.reading_unit
        self.sensitivity_index = _table_index(value, SENSITIVITIES_V, self.unit_scale, "sensitivity", unit)

    @property
    def time_constant(self) -> float:
        """Output-filter time constant (s); set by exact table value (10 µs … 30 ks)."""
        return TIME_CONSTANTS_S[self.time_constant_index]

    @time_constant.setter
    def time_constant(self, value_s: float) -> None:
        self.time_constant_index = _table_index(value_s, TIME_CONSTANTS_S, 1.0, "time constant", "s")

    # --- filter timing (no I/O when both settings are given)
    def settle_time_s(self, tolerance: float = 0.01, time_constant_s: float | None = None,
                      filter_slope_dB: int | None = None) -> float:
        """Wait (s) after a step for the output to be within ``tolerance``: k(slope, tolerance)·τ (methods §3.4).

        Add the detector/preamp response time; after a sensitivity, input or reserve change wait this too.
        """
        tau = self.time_constant if time_constant_s is None else time_constant_s
        slope = self.filter_slope if filter_slope_dB is None else filter_slope_dB
        return settle_factor(slope, tolerance) * tau

    def enbw_Hz(self, time_constant_s: float | None = None, filter_slope_dB: int | None = None) -> float:
        """Equivalent noise bandwidth (Hz): 1/4, 1/8, 3/32, 5/64 over τ for 6/12/18/24 dB/oct."""
        tau = self.time_constant if time_constant_s is None else time_constant_s
        slope = self.filter_slope if filter_slope_dB is None else filter_slope_dB
        if slope not in POLES:
            raise ValueError(f"filter slope {slope!r} dB/oct not in {sorted(POLES)}")
        return _enbw_Hz(tau, POLES[slope])

    # --- readings and status
    def snap_xyrt(self) -> LockinReading:
        """X, Y, R, θ at one instant (``SNAP? 1,2,3,4``) in V, or A on a current input."""
        x, y, r, theta = self._ask_floats("SNAP? 1,2,3,4", 4)
        return LockinReading(x, y, r, theta, self.reading_unit)

    def read_and_clear_status(self) -> LockinStatus:
        """``LIAS?``: the latched overload/unlock bits since the last read (reading clears them)."""
        return LockinStatus(self._ask_int("LIAS?"))

    def check_errors(self) -> list[tuple[int, str]]:
        """Read (and clear) ``*ESR?`` and ``ERRS?``: one ``(code, message)`` per error bit set, [] when none
        (the labctl check_errors contract: never raises for a reported error).

        The SR830 has no error queue and no error numbers (SR830 manual, "Status byte definitions"), so the codes
        are labctl's: ``100 + b`` for ``*ESR`` bit b, ``200 + b`` for ``ERRS`` bit b; the message names the bit,
        e.g. ``(105, "*ESR bit 5: command not recognised or malformed (CMD)")``. Power-on (ESR bit 7) and
        key-press (bit 6) are not errors.
        """
        return self._read_error_registers()[2]

    def _read_error_registers(self) -> tuple[int, int, list[tuple[int, str]]]:
        esr, errs = self._ask_int("*ESR?"), self._ask_int("ERRS?")
        errors = [(100 + b, f"*ESR bit {b}: {text}") for b, text in ESR_BITS.items() if esr >> b & 1]
        errors += [(200 + b, f"ERRS bit {b}: {text}") for b, text in ERRS_BITS.items() if errs >> b & 1]
        return esr, errs, errors

    def check_set_errors(self, context: str = "the last commands") -> list[tuple[int, str]]:
        """Read (and clear) the error bits; raise :class:`SR830Error` naming every one set; [] when none."""
        esr, errs, errors = self._read_error_registers()
        if errors:
            raise SR830Error(f"{self.name}: error after {context}: " + "; ".join(text for _, text in errors)
                             + f" (*ESR?={esr}, ERRS?={errs})")
        return errors

    def auto_gain(self, timeout_s: float = 300.0, poll_s: float = 0.1) -> None:
        """``AGAN``, then poll ``*STB?`` until bit 1 (IFC, no command executing) is set.

        AGAN takes many time constants; procedures should prefer :meth:`auto_sensitivity`. The SR830 buffers
        commands while AGAN runs, so on hardware the first ``*STB?`` may only be answered when it is done:
        keep the VISA timeout above the AGAN duration. Raises TimeoutError after ``timeout_s`` of polling
        (counted as polls × ``poll_s``, so it works on a virtual clock too).
        """
        self.write("AGAN")
        waited = 0.0
        while not self._ask_int("*STB?") & STB_IFC:
            if waited >= timeout_s:
                raise TimeoutError(f"{self.name}: auto gain not finished after {timeout_s:g} s")
            self.sleep(poll_s)
            waited += poll_s

    def auto_sensitivity(self, reading: float, headroom: float = 1.25) -> float:
        """Set the smallest sensitivity whose full scale is >= ``headroom`` × |reading|; return it (V or A).

        ``reading`` is a settled R in the present unit. Faster than AGAN: one command, no polling. The
        1-2-5 steps leave the reading at 40–80 % of full scale with the default headroom. Use: read R; if
        the output overloaded (:meth:`read_and_clear_status`) raise the sensitivity and read again; then call
        this and wait :meth:`settle_time_s` (the output restarts after a range change).
        """
        index = pick_sensitivity_index(reading, self.unit_scale, headroom)
        self.sensitivity_index = index
        return SENSITIVITIES_V[index] * self.unit_scale

    def set_scaling(self, channel: str, precent: float, expand: int = 1) -> None:
        """Display offset (% of full scale, −105…105) and expand factor (1, 10 or 100) of 'X', 'Y' or 'R'.

        ``OEXP i,x,j`` takes the expand INDEX j (0, 1, 2); the stock method sent the factor.
        """
        if channel not in self.CHANNELS:
            raise ValueError(f"channel {channel!r} not in {self.CHANNELS}")
        strict_range(precent, [-105.0, 105.0])
        if expand not in self.EXPANSION_VALUES:
            raise ValueError(f"expand {expand!r} not in {self.EXPANSION_VALUES}")
        index = self.EXPANSION_VALUES.index(expand)
        self.write(f"OEXP {self.CHANNELS.index(channel) + 1},{precent:.2f},{index}")

    def quick_range(self) -> None:
        """Not supported (blocks with ``time.sleep``, wrong 100 MΩ scaling); use :meth:`auto_sensitivity`."""
        raise NotImplementedError(f"{self.name}: quick_range() is not supported; use auto_sensitivity()")

    # --- configuration
    def configure(
        self,
        sensitivity: float,
        *,
        chopper_frequency_Hz: float,
        input_config: str = "A",
        time_constant_s: float = 0.3,
        filter_slope_dB: int = 24,
        reserve: str = "Normal",
        coupling: str = "AC",
        reference: str = "external",
        reference_trigger: str = "POS EDGE",
    ) -> None:
        """Set up an EQE measurement of chopped light, then :meth:`check_set_errors`.

        sensitivity: full scale in V (voltage inputs) or A (current inputs), an exact table value.
        chopper_frequency_Hz: the chopper's frequency (Hz). ``reference="external"`` locks to the chopper's
        reference output (edge ``reference_trigger``); "internal" sets FREQ to it (chopper slaved to the
        lock-in). Also sets harmonic 1, no line notch, synchronous filter off, offsets 0 and expand ×1.
        Everything is validated before anything is sent (ValueError).
        """
        mode_scale = CURRENT_GAIN_A_PER_V.get(input_config, 1.0)
        if input_config not in INPUT_CONFIGS:
            raise ValueError(f"input configuration {input_config!r} not in {list(INPUT_CONFIGS)}")
        unit = "A" if input_config in CURRENT_GAIN_A_PER_V else "V"
        sens_index = _table_index(sensitivity, SENSITIVITIES_V, mode_scale, "sensitivity", unit)
        tc_index = _table_index(time_constant_s, TIME_CONSTANTS_S, 1.0, "time constant", "s")
        checks = ((filter_slope_dB, POLES, "filter slope"), (reserve, RESERVE_VALUES, "reserve"),
                  (coupling, self.INPUT_COUPLINGS, "coupling"), (reference, ("external", "internal"), "reference"),
                  (reference_trigger, self.REFERENCE_SOURCE_TRIGGER, "reference trigger"))
        for value, allowed, what in checks:
            if value not in allowed:
                raise ValueError(f"{what} {value!r} not in {list(allowed)}")
        strict_range(chopper_frequency_Hz, [0.001, 102000.0])
        if time_constant_s > MAX_TIME_CONSTANT_HIGH_FREQUENCY_S and chopper_frequency_Hz > HIGH_DETECTION_HZ:
            raise ValueError(f"time constant {time_constant_s:g} s is unavailable above {HIGH_DETECTION_HZ:g} Hz "
                             f"detection frequency (chopper {chopper_frequency_Hz:g} Hz); max 30 s")
        self.write("*CLS")
        self.input_config = input_config
        self.write(f"ICPL {self.INPUT_COUPLINGS.index(coupling)}")
        self.write("ILIN 0")
        if reference == "external":
            self.write("FMOD 0")
        else:
            self.write("FMOD 1")
            self.frequency = chopper_frequency_Hz
        self.write(f"RSLP {self.REFERENCE_SOURCE_TRIGGER.index(reference_trigger)}")
        self.harmonic = 1
        self.filter_slope = filter_slope_dB
        self.time_constant_index = tc_index
        self.write("SYNC 0")
        self.sensitivity_index = sens_index
        self.reserve = reserve
        for channel in self.CHANNELS:
            self.set_scaling(channel, 0.0, 1)
        self.check_set_errors("configure")

    def reset(self) -> None:
        """``*RST`` (input A, internal reference, 1 V, 100 ms, 12 dB/oct)."""
        super().reset()
        self._input_config = "A"

    def load_setup(self, setup_number: int) -> None:
        """Recall setup 1–9 (``RSET``); the input configuration is read again when next needed."""
        super().load_setup(setup_number)
        self._input_config = None

    def safe_state(self) -> None:
        """Nothing to do: the lock-in only measures; its sine and aux outputs drive nothing on this bench.

        Sends nothing, so it cannot fail (or mask the original error) when the link is down.
        """


SR830_REGISTRATION = InstrumentRegistration(
    name="sr830",
    driver=SR830,
    model="Stanford Research SR830",
    capabilities=("lock_in",),
    # GPIB: LF in and out (replies end LF with EOI; over RS-232 they end CR): SR830 manual, "Programming"
    connection=ConnectionDefaults(read_termination="\n", write_termination="\n", timeout_ms=5000),
    safe_state=driver_safe_state("nothing to do (measures only)"),
    emulator="sim_instruments.sr830:SR830Emulator",
)
