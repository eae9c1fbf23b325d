"""Thorlabs PM100D / PM100USB optical power meter, built on PyMeasure's ``ThorlabsPM100USB`` (instruments ref. §7).

Commands are the consoles' SCPI set (PM100USB operation manual, "SCPI commands"; the PM100D speaks the same
set): ``SYST:SENS:IDN?``, ``SENS:CORR:WAV``, ``MEAS:POW?``, ``MEAS:CURR?``, ``SENS:POW:UNIT``,
``SENS:POW:RANG[:AUTO]``, ``SENS:AVER:COUN``, ``SENS:CORR:COLL:ZERO``, ``SYST:ERR?``.

Fixes to the stock PyMeasure 0.16 class:

* the constructor sends nothing (the stock one asks ``SYST:SENSOR:IDN?`` at once, before the station has
  checked ``*IDN?``, and refuses to construct without a sensor); the sensor is read by :meth:`read_sensor`
  (on first need, and by ``configure``), and "no sensor" is a :class:`PM100Error`;
* ``SYST:SENS:IDN?`` is split as text: the stock ``values()`` turned a numeric serial such as ``00123456``
  into the float 123456.0, and kept the quotes the manual allows around the string fields;
* the sensor flags are tested bit by bit (manual, ``SYST:SENS:IDN?``: 1 power, 2 energy, 16 response
  settable, 32 wavelength settable, 64 τ settable, 256 temperature sensor): the stock decoding unpacked
  exactly nine binary digits, so a flag word of 512 or more (the PM100D2 sets bit 31) raised ValueError;
* a wavelength outside the sensor's ``SENS:CORR:WAV? MIN``…``MAX`` is refused (ValueError, nothing sent):
  the stock setter silently clamped it, so the correction was for another wavelength than asked;
* a sensor that cannot measure power or set the wavelength raises :class:`PM100Error`, not AttributeError
  (which, raised inside a property, reads as "no such attribute" to ``hasattr``/``getattr``);
* readings are parsed strictly (an unreadable reply is a :class:`drivers.keithley2400.ReplyError`), and
  :meth:`read_power_W` is in watts because ``configure`` sets ``SENS:POW:UNIT W`` (the stock ``power``
  returned dBm as if it were W when the console was left in dBm);
* :meth:`check_errors` follows the labctl contract: (code, message) entries, message commas kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pymeasure.instruments.generic_types import SCPIUnknownMixin
from pymeasure.instruments.thorlabs import ThorlabsPM100USB as _StockPM100USB

from drivers.identity import IdentitySpec
from drivers.keithley2400 import ReplyError
from drivers.registration import ConnectionDefaults, InstrumentRegistration
from drivers.safe import driver_safe_state
from drivers.scpi_errors import ScpiErrorQueueMixin
from drivers.smu import InstrumentError

#: SYST:SENS:IDN? flag bits (PM100USB manual, "SYSTem:SENSor:IDN?"; instruments ref. §7.2)
FLAG_POWER, FLAG_ENERGY, FLAG_RESPONSE_SETTABLE = 1, 2, 16
FLAG_WAVELENGTH_SETTABLE, FLAG_TAU_SETTABLE, FLAG_TEMPERATURE = 32, 64, 256
MAX_AVERAGES = 10000
"""Largest ``SENS:AVER:COUN`` accepted here (each sample ≈ 3 ms, so ≈ 30 s per reading) [M]."""
LINE_FREQUENCIES_HZ = (50, 60)


class PM100Error(InstrumentError):
    """The console has no (suitable) sensor, or reported an error."""


@dataclass(frozen=True)
class SensorInfo:
    """The reply of ``SYST:SENS:IDN?``: name, serial, calibration message, type, subtype and flag word."""

    name: str
    serial: str
    calibration: str
    type: int
    subtype: int
    flags: int

    def has(self, bit: int) -> bool:
        return bool(self.flags & bit)


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


def parse_sensor_idn(reply: str, instrument: str = "PM100") -> SensorInfo:
    """``S120C,00123456,10-Mar-2020,1,18,289`` → :class:`SensorInfo` (strings kept as text, quotes removed).

    Raises :class:`PM100Error` for ``no sensor`` and :class:`ReplyError` for a reply without six fields.
    """
    fields = [_unquote(f) for f in reply.strip().split(",")]
    if fields and fields[0].lower() == "no sensor":
        raise PM100Error(f"{instrument}: no sensor connected (SYST:SENS:IDN? answered {reply.strip()!r})")
    if len(fields) != 6:
        raise ReplyError(f"{instrument}: reply to 'SYST:SENS:IDN?' has {len(fields)} fields, expected 6: {reply!r}")
    try:
        return SensorInfo(fields[0], fields[1], fields[2], int(fields[3]), int(fields[4]), int(fields[5]))
    except ValueError:
        raise ReplyError(f"{instrument}: unreadable type/subtype/flags in 'SYST:SENS:IDN?' reply {reply!r}") from None


class ThorlabsPM100(ScpiErrorQueueMixin, _StockPM100USB):
    """Thorlabs PM100D or PM100USB console with a power sensor (e.g. S120C photodiode), instruments ref. §7.

    Accepts either console; the registrations use :class:`ThorlabsPM100D` / :class:`ThorlabsPM100USBConsole`,
    which accept only their own model."""

    error_query = "SYST:ERR?"
    error_class = PM100Error

    IDENTITY = IdentitySpec(
        query="*IDN?",
        accepts=(r"Thorlabs,PM100D,", r"Thorlabs,PM100USB,"),
        expected="Thorlabs,PM100D,<serial>,<firmware> (or PM100USB)",
    )

    def __init__(self, adapter: Any, name: str = "Thorlabs PM100 optical power meter", **kwargs: Any) -> None:
        # past the stock constructor (it queries the sensor) and its "SCPI unknown" warning: SCPIMixin onwards
        super(SCPIUnknownMixin, self).__init__(adapter, name, **kwargs)
        self._sensor: SensorInfo | None = None

    # --- sensor --------------------------------------------------------------------------------------------
    def read_sensor(self) -> SensorInfo:
        """Ask ``SYST:SENS:IDN?`` and keep the answer (also as the stock attributes ``sensor_name``…)."""
        info = parse_sensor_idn(self.ask("SYST:SENS:IDN?"), self.name)
        self._sensor = info
        self.sensor_name, self.sensor_sn, self.sensor_cal_msg = info.name, info.serial, info.calibration
        self.sensor_type, self.sensor_subtype = info.type, info.subtype
        self.is_power_sensor, self.is_energy_sensor = info.has(FLAG_POWER), info.has(FLAG_ENERGY)
        self.response_settable = info.has(FLAG_RESPONSE_SETTABLE)
        self.wavelength_settable = info.has(FLAG_WAVELENGTH_SETTABLE)
        self.tau_settable, self.has_temperature_sensor = info.has(FLAG_TAU_SETTABLE), info.has(FLAG_TEMPERATURE)
        return info

    _set_flags = read_sensor  # the stock name

    @property
    def sensor(self) -> SensorInfo:
        """The connected sensor (read once, on first need; :meth:`read_sensor` reads it again)."""
        return self._sensor if self._sensor is not None else self.read_sensor()

    # --- replies -------------------------------------------------------------------------------------------
    # --- wavelength correction -----------------------------------------------------------------------------
    def wavelength_range_nm(self) -> tuple[float, float]:
        """The sensor's correction range (nm): ``SENS:CORR:WAV? MIN`` and ``? MAX``."""
        return self._ask_float("SENS:CORR:WAV? MIN"), self._ask_float("SENS:CORR:WAV? MAX")

    @property
    def wavelength(self) -> float:
        """Control the correction wavelength (nm), ``SENS:CORR:WAV``; out of the sensor's range: ValueError."""
        return self._ask_float("SENS:CORR:WAV?")

    @wavelength.setter
    def wavelength(self, value: float) -> None:
        self.set_wavelength_nm(value)

    def set_wavelength_nm(self, wavelength_nm: float) -> None:
        """Set the wavelength the reading is corrected for (nm), checked against the sensor's range first."""
        if not self.sensor.has(FLAG_WAVELENGTH_SETTABLE):
            raise PM100Error(f"{self.name}: sensor {self.sensor.name} does not allow setting the wavelength")
        lo, hi = self.wavelength_range_nm()
        if not (math.isfinite(wavelength_nm) and lo <= wavelength_nm <= hi):
            raise ValueError(f"wavelength {wavelength_nm!r} nm outside sensor {self.sensor.name}'s {lo:g}–{hi:g} nm")
        self.write(f"SENS:CORR:WAV {wavelength_nm:g}")

    # --- readings ------------------------------------------------------------------------------------------
    def read_power_W(self) -> float:
        """One power reading (W, in the unit ``configure`` set), ``MEAS:POW?``."""
        if not self.sensor.has(FLAG_POWER):
            raise PM100Error(f"{self.name}: sensor {self.sensor.name} is not a power sensor")
        return self._ask_float("MEAS:POW?")

    @property
    def power(self) -> float:
        """Measure the power in W (``MEAS:POW?``)."""
        return self.read_power_W()

    @property
    def energy(self) -> float:
        """Measure the pulse energy in J (``MEAS:ENER?``), energy sensors only."""
        if not self.sensor.has(FLAG_ENERGY):
            raise PM100Error(f"{self.name}: sensor {self.sensor.name} is not an energy sensor")
        return self._ask_float("MEAS:ENER?")

    def read_current_A(self) -> float:
        """The photodiode current (A), ``MEAS:CURR?``."""
        return self._ask_float("MEAS:CURR?")

    def set_power_unit_watts(self) -> None:
        """``SENS:POW:UNIT W`` (the other choice is DBM)."""
        self.write("SENS:POW:UNIT W")

    # --- range and averaging -------------------------------------------------------------------------------
    def set_auto_range(self, on: bool) -> None:
        """Auto ranging on/off, ``SENS:POW:RANG:AUTO ON|OFF``."""
        self.write(f"SENS:POW:RANG:AUTO {'ON' if on else 'OFF'}")

    def auto_range(self) -> bool:
        return self.ask("SENS:POW:RANG:AUTO?").strip() == "1"

    def set_power_range_W(self, upper_W: float) -> None:
        """A fixed range that holds ``upper_W`` (W), ``SENS:POW:RANG`` (the console rounds to its ranges)."""
        if not (math.isfinite(upper_W) and upper_W > 0):
            raise ValueError(f"power range {upper_W!r} W must be a positive number")
        self.write(f"SENS:POW:RANG {upper_W:g}")

    def power_range_W(self) -> float:
        return self._ask_float("SENS:POW:RANG?")

    def set_averages(self, count: int) -> None:
        """Samples averaged per reading, ``SENS:AVER:COUN`` (each ≈ 3 ms), 1–:data:`MAX_AVERAGES`."""
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_AVERAGES:
            raise ValueError(f"averages {count!r} must be an integer 1–{MAX_AVERAGES}")
        self.write(f"SENS:AVER:COUN {count:d}")

    def averages(self) -> int:
        return int(self._ask_float("SENS:AVER:COUN?"))

    def set_line_frequency_Hz(self, frequency_Hz: int) -> None:
        """Mains frequency for the console's noise filter, ``SYST:LFR 50|60``."""
        if frequency_Hz not in LINE_FREQUENCIES_HZ:
            raise ValueError(f"line frequency {frequency_Hz!r} Hz not in {list(LINE_FREQUENCIES_HZ)}")
        self.write(f"SYST:LFR {frequency_Hz:d}")

    def zero(self) -> None:
        """Dark zero: measure and subtract the sensor's dark reading, ``SENS:CORR:COLL:ZERO`` (beam blocked!)."""
        self.write("SENS:CORR:COLL:ZERO")

    # --- errors, safety ------------------------------------------------------------------------------------

    def safe_state(self) -> None:
        """Nothing to do: a power meter only measures. Sends nothing, so it cannot fail on a dead link."""


class ThorlabsPM100D(ThorlabsPM100):
    """Thorlabs PM100D handheld console (``*IDN?`` model field ``PM100D``)."""

    IDENTITY = IdentitySpec(query="*IDN?", accepts=(r"Thorlabs,PM100D,",),
                            expected="Thorlabs,PM100D,<serial>,<firmware>")


class ThorlabsPM100USBConsole(ThorlabsPM100):
    """Thorlabs PM100USB interface (``*IDN?`` model field ``PM100USB``)."""

    IDENTITY = IdentitySpec(query="*IDN?", accepts=(r"Thorlabs,PM100USB,",),
                            expected="Thorlabs,PM100USB,<serial>,<firmware>")


class PM100Settings(BaseModel):
    """``instruments.<role>.settings`` of a PM100D / PM100USB.

    wavelength_nm: correction wavelength (nm); None leaves the console's. averages: samples per reading
    (≈ 3 ms each). auto_range: True for auto ranging; power_range_W: a fixed range (W), needs auto_range False.
    line_frequency_Hz: 50 or 60; None leaves the console's.
    """

    model_config = ConfigDict(extra="forbid")

    wavelength_nm: float | None = Field(None, gt=0, description="correction wavelength (nm)")
    averages: int = Field(1, ge=1, le=MAX_AVERAGES, description="samples averaged per reading")
    auto_range: bool = True
    power_range_W: float | None = Field(None, gt=0, description="fixed power range (W), with auto_range false")
    line_frequency_Hz: Literal[50, 60] | None = Field(None, description="mains frequency (Hz)")

    @model_validator(mode="after")
    def _fixed_range_needs_auto_off(self) -> PM100Settings:
        if self.power_range_W is not None and self.auto_range:
            raise ValueError("power_range_W needs auto_range: false")
        return self


def configure_pm100(meter: ThorlabsPM100, settings: PM100Settings | None) -> None:
    """Read the sensor (none: error), watts, then the station file's wavelength, averaging and range."""
    settings = settings if settings is not None else PM100Settings()
    meter.read_sensor()
    meter.set_power_unit_watts()
    if settings.wavelength_nm is not None:
        meter.set_wavelength_nm(settings.wavelength_nm)
    meter.set_averages(settings.averages)
    meter.set_auto_range(settings.auto_range)
    if settings.power_range_W is not None:
        meter.set_power_range_W(settings.power_range_W)
    if settings.line_frequency_Hz is not None:
        meter.set_line_frequency_Hz(settings.line_frequency_Hz)
    meter.check_set_errors("configure")


def _registration(name: str, driver: type[ThorlabsPM100], model: str) -> InstrumentRegistration:
    return InstrumentRegistration(
        name=name,
        driver=driver,
        model=model,
        capabilities=("power_meter",),
        # USB-TMC: input ends LF (CR LF accepted), replies end LF (PM100USB manual, "SCPI commands"; ref. §7.1)
        connection=ConnectionDefaults(read_termination="\n", write_termination="\n", timeout_ms=5000),
        settings=PM100Settings,
        configure=configure_pm100,
        safe_state=driver_safe_state("nothing to do (measures only)"),
        emulator="sim_instruments.pm100:PM100Emulator",
        emulator_options={"model": model.removeprefix("Thorlabs ")},
    )


THORLABS_PM100D_REGISTRATION = _registration("thorlabs_pm100d", ThorlabsPM100D, "Thorlabs PM100D")
THORLABS_PM100USB_REGISTRATION = _registration("thorlabs_pm100usb", ThorlabsPM100USBConsole, "Thorlabs PM100USB")
