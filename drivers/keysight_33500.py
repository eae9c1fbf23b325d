"""Keysight (Agilent) 33500B-series function generator, channel 1, built on PyMeasure's ``Agilent33500``.

Commands are the 33500 series' SCPI set (Keysight "33500 Series Trueform Waveform Generators Operating and
Service Guide", its SCPI programming reference; limits from the 33500B series data sheet): ``FUNC``, ``FREQ``,
``VOLT``, ``VOLT:UNIT VPP|VRMS``, ``VOLT:OFFS``, ``OUTP:LOAD <Ω>|INF``, ``OUTP ON|OFF``, ``SYST:ERR?``.
PyMeasure 0.16 has no Keysight 33500B class; this subclasses its ``Agilent33500`` (the same family).

The load setting: the output is a source behind 50 Ω, and ``OUTP:LOAD`` only tells the generator what load the
*displayed* amplitude and offset refer to: with ``OUTP:LOAD 50`` a high-impedance input (such as a laser's analog
modulation input) sees twice the set amplitude, with ``OUTP:LOAD INF`` it sees the set amplitude. Changing the
setting rescales the displayed values, not the output (user's guide, "Output termination"). So set the load
first, then the amplitude (:meth:`Keysight33500B.set_waveform` does).

Fixes to the stock PyMeasure 0.16 class (each has a scenario in ``tests/test_driver_33500.py`` that passes here
and fails on the stock class); the stock attribute names ``frequency``, ``amplitude``, ``offset`` and
``output_load`` go through the checked methods below (the stock channel objects ``ch_1``/``ch_2`` are left as
they are and not used: this driver speaks to channel 1 through the un-suffixed commands):

* the amplitude's range is the data sheet's for the load and unit set (into 50 Ω 1 mVpp–10 Vpp, into high
  impedance 2 mVpp–20 Vpp; in Vrms those over 2√2), checked with the offset (|offset| + Vpk within 5 V into 50 Ω,
  10 V into high impedance) before anything is sent: the stock ``amplitude`` accepted 10–10 000 mV whatever the
  unit and load, so it sent 5 Vrms (14 Vpp, out of range) and refused 15 Vpp into high impedance and 5 mVpp;
* the offset's range follows the load and the amplitude (the stock one was fixed at ±4.995 V: it refused 6 V into
  high impedance and sent 4.9 V with a 10 Vpp amplitude, a settings conflict);
* the sine frequency is at most 30 MHz (the stock range went to 120 MHz, the 33600A's, and sent 50 MHz);
* ``OUTP:LOAD`` is validated (1 Ω–10 kΩ or INF; the stock one sent anything) and read back as ``math.inf`` for the
  generator's ``9.9E+37`` (the stock getter returned the float 9.9e37);
* :meth:`check_errors` follows the labctl contract: (code, message) tuples, the message unquoted and its commas
  kept (the stock one returned lists, quotes kept, and split a message at its commas).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pymeasure.instruments.agilent import Agilent33500

from drivers.identity import IdentitySpec
from drivers.registration import ConnectionDefaults, InstrumentRegistration
from drivers.safe import run_steps
from drivers.scpi_errors import ScpiErrorQueueMixin
from drivers.smu import InstrumentError

SOURCE_OHM = 50.0
"""The output impedance (Ω), user's guide "Output termination"."""
VPP_RANGE_50_OHM = (1e-3, 10.0)
"""Amplitude limits into 50 Ω (Vpp), 33500B data sheet (sine)."""
PEAK_LIMIT_50_OHM_V = 5.0
"""|offset| + Vpk limit into 50 Ω (V), 33500B data sheet."""
FREQUENCY_RANGE_HZ = (1e-6, 30e6)
"""Sine frequency (Hz), 33519B–33522B (the 20 MHz 33509B–33512B refuse more with -222)."""
LOAD_RANGE_OHM = (1.0, 10e3)
SHAPES = ("SIN", "SQU", "TRI", "RAMP", "PULS", "PRBS", "NOIS", "ARB", "DC")
UNITS = ("VPP", "VRMS")
SCPI_INF_THRESHOLD = 9e37
"""Replies at or above this are the generator's "infinity" (it answers ``9.9E+37`` for INF)."""


class Fgen33500Error(InstrumentError):
    """The generator reported an error, or did not do what it was told."""


def display_factor(load_ohm: float) -> float:
    """Displayed / open-circuit voltage for an ``OUTP:LOAD`` setting (Ω; ``math.inf`` for INF): R/(R + 50 Ω)."""
    return 1.0 if math.isinf(load_ohm) else load_ohm / (load_ohm + SOURCE_OHM)


def vpp_from(amplitude: float, unit: str) -> float:
    """A sine's peak-to-peak voltage (V) from an amplitude in ``VPP`` or ``VRMS``: Vpp = 2√2·Vrms."""
    if unit == "VPP":
        return amplitude
    if unit == "VRMS":
        return amplitude * 2.0 * math.sqrt(2.0)
    raise ValueError(f"amplitude unit {unit!r} not in {list(UNITS)}")


def _num(value: float) -> str:
    return f"{value:.12g}"


class Keysight33500B(ScpiErrorQueueMixin, Agilent33500):
    """A 33500B-series generator (e.g. 33522B), channel 1 (the un-suffixed ``SOURce`` / ``OUTPut``)."""

    error_query = "SYST:ERR?"
    error_class = Fgen33500Error

    IDENTITY = IdentitySpec(
        query="*IDN?",
        accepts=(r"(Agilent|Keysight) Technologies,335\d\dB,",),
        expected="Agilent Technologies,33522B,<serial>,<firmware> (or Keysight, any 335xxB)",
    )

    def __init__(self, adapter: Any, name: str = "Keysight 33500B function generator", **kwargs: Any) -> None:
        super().__init__(adapter, name, **kwargs)

    @property
    def id(self) -> str:
        return self.ask("*IDN?").strip()

    # --- replies -------------------------------------------------------------------------------------------
    # --- shape, frequency ----------------------------------------------------------------------------------
    def set_shape(self, shape: str) -> None:
        """Waveform shape, ``FUNC <shape>`` (SIN for the PLQY modulation)."""
        shape = shape.upper()
        if shape not in SHAPES:
            raise ValueError(f"shape {shape!r} not in {list(SHAPES)}")
        self.write(f"FUNC {shape}")

    def read_shape(self) -> str:
        return self.ask("FUNC?").strip().upper()

    def set_frequency_Hz(self, frequency_Hz: float) -> None:
        """Frequency (Hz), ``FREQ``, 1 µHz–30 MHz (checked before sending)."""
        lo, hi = FREQUENCY_RANGE_HZ
        if not (math.isfinite(frequency_Hz) and lo <= frequency_Hz <= hi):
            raise ValueError(f"frequency {frequency_Hz!r} Hz outside {lo:g}–{hi:g} Hz")
        self.write(f"FREQ {_num(frequency_Hz)}")

    def read_frequency_Hz(self) -> float:
        return self._ask_float("FREQ?")

    # --- load, amplitude, offset ---------------------------------------------------------------------------
    def set_output_load(self, load_ohm: float | str) -> None:
        """The load the displayed voltages refer to, ``OUTP:LOAD``: 1 Ω–10 kΩ, or ``"INF"`` / ``math.inf``
        (high impedance: the displayed voltage is the open-circuit one)."""
        if isinstance(load_ohm, str) and load_ohm.strip().upper() in ("INF", "INFINITY"):
            load_ohm = math.inf
        if isinstance(load_ohm, str) or isinstance(load_ohm, bool):
            raise ValueError(f"output load {load_ohm!r} must be 1–10000 Ω or 'INF'")
        if math.isinf(load_ohm) and load_ohm > 0:
            self.write("OUTP:LOAD INF")
            return
        lo, hi = LOAD_RANGE_OHM
        if not (math.isfinite(load_ohm) and lo <= load_ohm <= hi):
            raise ValueError(f"output load {load_ohm!r} Ω must be 1–10000 Ω or 'INF'")
        self.write(f"OUTP:LOAD {_num(load_ohm)}")

    def read_output_load_ohm(self) -> float:
        """The load setting (Ω), ``math.inf`` for INF (the generator answers ``9.9E+37``)."""
        value = self._ask_float("OUTP:LOAD?")
        return math.inf if value >= SCPI_INF_THRESHOLD else value

    def set_amplitude_unit(self, unit: str) -> None:
        """``VOLT:UNIT VPP|VRMS`` (dBm is not offered: it needs a finite load and means power, not voltage)."""
        unit = unit.upper()
        if unit not in UNITS:
            raise ValueError(f"amplitude unit {unit!r} not in {list(UNITS)}")
        self.write(f"VOLT:UNIT {unit}")

    def read_amplitude_unit(self) -> str:
        return self.ask("VOLT:UNIT?").strip().upper()

    def amplitude_limits(self, unit: str, load_ohm: float) -> tuple[float, float]:
        """(min, max) amplitude in ``unit`` for a load setting R (Ω or inf): the data sheet's 50 Ω limits times
        [R/(R + 50 Ω)] / [50/(50 + 50)] (the same open-circuit output, displayed for another load)."""
        scale = display_factor(load_ohm) / display_factor(SOURCE_OHM)
        lo, hi = VPP_RANGE_50_OHM[0] * scale, VPP_RANGE_50_OHM[1] * scale
        per_vpp = vpp_from(1.0, unit)
        return lo / per_vpp, hi / per_vpp

    def peak_limit_V(self, load_ohm: float) -> float:
        """The |offset| + Vpk limit (V) for a load setting (5 V into 50 Ω, 10 V into high impedance)."""
        return PEAK_LIMIT_50_OHM_V * display_factor(load_ohm) / display_factor(SOURCE_OHM)

    def set_amplitude(self, amplitude: float, unit: str = "VPP", load_ohm: float | None = None,
                      offset_V: float | None = None) -> None:
        """Sine amplitude in ``unit`` (``VPP`` or ``VRMS``), ``VOLT:UNIT`` then ``VOLT``; checked first against
        the limits for the load (read with ``OUTP:LOAD?`` unless given) and the offset (``VOLT:OFFS?`` unless
        given)."""
        unit = unit.upper()
        vpp_from(1.0, unit)  # an unknown unit: ValueError before anything is asked
        load = self.read_output_load_ohm() if load_ohm is None else load_ohm
        lo, hi = self.amplitude_limits(unit, load)
        if not (math.isfinite(amplitude) and lo * (1 - 1e-9) <= amplitude <= hi * (1 + 1e-9)):
            raise ValueError(f"amplitude {amplitude!r} {unit} outside {lo:.6g}–{hi:.6g} {unit} for the load "
                             f"{'INF' if math.isinf(load) else f'{load:g} Ω'}")
        offset = self.read_offset_V() if offset_V is None else offset_V
        limit = self.peak_limit_V(load)
        if abs(offset) + vpp_from(amplitude, unit) / 2.0 > limit * (1 + 1e-9):
            raise ValueError(f"amplitude {amplitude!r} {unit} with offset {offset!r} V exceeds ±{limit:g} V "
                             "(|offset| + peak) for this load")
        self.set_amplitude_unit(unit)
        self.write(f"VOLT {_num(amplitude)}")

    def read_amplitude(self) -> float:
        """The amplitude in the unit set (``VOLT?``)."""
        return self._ask_float("VOLT?")

    def set_offset_V(self, offset_V: float, load_ohm: float | None = None, vpp: float | None = None) -> None:
        """DC offset (V), ``VOLT:OFFS``, checked with the amplitude (Vpp; read unless given) for the load."""
        load = self.read_output_load_ohm() if load_ohm is None else load_ohm
        if vpp is None:
            vpp = vpp_from(self.read_amplitude(), self.read_amplitude_unit())
        limit = self.peak_limit_V(load)
        if not (math.isfinite(offset_V) and abs(offset_V) + vpp / 2.0 <= limit * (1 + 1e-9)):
            raise ValueError(f"offset {offset_V!r} V with {vpp:g} Vpp exceeds ±{limit:g} V for this load")
        self.write(f"VOLT:OFFS {_num(offset_V)}")

    def read_offset_V(self) -> float:
        return self._ask_float("VOLT:OFFS?")

    # --- the stock attributes, through the checked methods -----------------------------------------------------
    @property
    def frequency(self) -> float:
        """Control the frequency (Hz), checked (1 µHz–30 MHz)."""
        return self.read_frequency_Hz()

    @frequency.setter
    def frequency(self, value: float) -> None:
        self.set_frequency_Hz(value)

    @property
    def amplitude(self) -> float:
        """Control the amplitude in the unit set (``VOLT:UNIT?``), checked for the load and the offset."""
        return self.read_amplitude()

    @amplitude.setter
    def amplitude(self, value: float) -> None:
        unit = self.read_amplitude_unit()
        if unit not in UNITS:
            raise ValueError(f"the generator's amplitude unit is {unit!r}; set VPP or VRMS first")
        self.set_amplitude(value, unit)

    @property
    def offset(self) -> float:
        """Control the DC offset (V), checked for the load and the amplitude."""
        return self.read_offset_V()

    @offset.setter
    def offset(self, value: float) -> None:
        self.set_offset_V(value)

    @property
    def output_load(self) -> float:
        """Control the load setting (Ω; ``math.inf`` / ``"INF"`` for high impedance), validated."""
        return self.read_output_load_ohm()

    @output_load.setter
    def output_load(self, value: float | str) -> None:
        self.set_output_load(value)

    # --- output --------------------------------------------------------------------------------------------
    def set_output(self, on: bool) -> None:
        """Output relay on/off, ``OUTP ON|OFF``."""
        self.write(f"OUTP {'ON' if on else 'OFF'}")

    def output_is_on(self) -> bool:
        return self.ask("OUTP?").strip() == "1"

    def set_waveform(self, shape: str, frequency_Hz: float, amplitude_V: float, unit: str = "VPP",
                     offset_V: float = 0.0, load_ohm: float | str | None = None) -> None:
        """The function-generator capability: shape, frequency (Hz), amplitude (V, in ``unit``: Vpp by default),
        offset (V); the load setting first when given (it changes what the amplitude means)."""
        if load_ohm is not None:
            self.set_output_load(load_ohm)
        load = self.read_output_load_ohm()
        self.set_shape(shape)
        self.set_frequency_Hz(frequency_Hz)
        # the offset to 0 first so that the new amplitude fits whatever offset was set before
        self.set_offset_V(0.0, load_ohm=load, vpp=0.0)
        self.set_amplitude(amplitude_V, unit, load_ohm=load, offset_V=offset_V)
        if offset_V:
            self.set_offset_V(offset_V, load_ohm=load, vpp=vpp_from(amplitude_V, unit.upper()))

    # --- errors, safety ------------------------------------------------------------------------------------

    def safe_state(self) -> None:
        """Output off, read back (``OUTP OFF``, ``OUTP?`` must be 0)."""
        self.set_output(False)
        if self.output_is_on():
            raise Fgen33500Error(f"{self.name}: the output still reads on after 'OUTP OFF'")


class Fgen33500Settings(BaseModel):
    """``instruments.<role>.settings`` of a 33500B.

    output_load: the load the generator drives, 1–10000 Ω or ``INF`` (high impedance). A laser's analog
    modulation input is high impedance, so ``INF`` (the default) makes the set amplitude the voltage at the laser;
    with ``50`` the laser sees twice the set amplitude. amplitude_unit: ``VPP`` or ``VRMS``.
    """

    model_config = ConfigDict(extra="forbid")

    output_load: Literal["INF"] | float = Field("INF", description="load setting (Ω) or INF")
    amplitude_unit: Literal["VPP", "VRMS"] = "VPP"

    @field_validator("output_load")
    @classmethod
    def _load_in_range(cls, value: Any) -> Any:
        if value != "INF" and not LOAD_RANGE_OHM[0] <= float(value) <= LOAD_RANGE_OHM[1]:
            raise ValueError("must be 1–10000 (Ω) or INF")
        return value

    def load_ohm(self) -> float:
        return math.inf if self.output_load == "INF" else float(self.output_load)


def configure_33500(inst: Keysight33500B, settings: Fgen33500Settings | None) -> None:
    """Output off, the station file's load setting and amplitude unit; then the error queue must be empty."""
    settings = settings if settings is not None else Fgen33500Settings()
    inst.set_output(False)
    inst.set_output_load(settings.load_ohm())
    inst.set_amplitude_unit(settings.amplitude_unit)
    inst.check_set_errors("configure")


def fgen_safe_state(inst: Keysight33500B, settings: Any = None) -> str:
    """Output off, and it reads off."""
    run_steps([("output off", inst.safe_state)])
    return "output off (output reads off)"


KEYSIGHT_33500B_REGISTRATION = InstrumentRegistration(
    name="keysight_33500b",
    driver=Keysight33500B,
    model="Keysight 33500B",
    capabilities=("function_generator",),
    # LAN socket (port 5025) / USB-TMC: LF both ways (user's guide, "Remote interface configuration")
    connection=ConnectionDefaults(read_termination="\n", write_termination="\n", timeout_ms=5000),
    settings=Fgen33500Settings,
    configure=configure_33500,
    safe_state=fgen_safe_state,
    emulator="sim_instruments.fgen33500:Fgen33500Emulator",
    emulator_options={},
)
