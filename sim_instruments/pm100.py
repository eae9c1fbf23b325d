"""Emulator of the Thorlabs PM100D / PM100USB optical power meter with an S120C photodiode sensor (ref. §7).

The console speaks strict SCPI (:class:`sim_instruments.scpi.ScpiInstrument`): short/long forms, any case,
``MIN``/``MAX``/``DEF``; an unknown header (-113), a missing or extra parameter (-109/-108), a value out of
range (-222) or a bad keyword (-141) goes to the error queue (``SYST:ERR?``), changes nothing and, for a query,
gives no reply.

The light: :func:`light_on_sensor` — the bench's laser slot (``bench.laser``) times ``laser_fraction`` (the part
of the beam the sensor intercepts, e.g. a pick-off; 1.0 = the sensor in the device's place). On a bench with an
integrating sphere (``simulation.sphere``, :mod:`sim_instruments.laser_path`) ``sim://power_meter`` is the
reference sensor at the sample port and ``sim://monitor`` the in-sphere monitor photodiode. The photodiode
gives ``I = P·R(λ_laser) + dark_current_A`` with R(λ) = QE·λ/(hc/q) (A/W) at a constant quantum efficiency
(:func:`responsivity_A_W`); the console reports power as ``(I − zero)/R(λ_set)``, so the reading is the true
power only when ``SENS:CORR:WAV`` is set to the laser's wavelength, as on the real meter.

Sources and confidence ([H] manual or drivers of real units, [M] secondary, [L] assumption), instruments ref. §7:
- command set, flags of ``SYST:SENS:IDN?``, LF termination, ``MEAS:POW?`` in W as NR3, ``SYST:ERR?`` [H];
- ``*IDN?`` form ``Thorlabs,PM100D,P0012345,2.6.0`` [M]; the sensor line ``S120C,00123456,10-Mar-2020,1,18,289``
  (numeric serial, as newer PyMeasure needs) [L example values];
- S120C 400–1100 nm, up to 50 mW [H data sheet]; constant QE 0.8, 635 nm after ``*RST``, power ranges as decades
  1e-8…0.1 W (a range setting is rounded up to one; it is stored, readings are not clipped by it) [L];
- each averaged sample ≈ 3 ms (advanced on ``bench.clock``) [M]; a dBm reading of no light is 9.91E+37
  (SCPI NaN) [L].
"""

from __future__ import annotations

import math
from typing import Any

from sim_instruments.optics import HC_NM_V
from sim_instruments.scpi import (
    COMMON_COMMANDS,
    SYSTEM_ERROR_COMMANDS,
    Command,
    Params,
    ScpiError,
    ScpiInstrument,
    choice,
    flag,
    nr3,
    number,
)

IDENTITIES = {"PM100D": "Thorlabs,PM100D,P0012345,2.6.0", "PM100USB": "Thorlabs,PM100USB,P2001234,1.7.0"}
SENSOR_IDN = "S120C,00123456,10-Mar-2020,1,18,289"  # photodiode; flags 1 power + 32 λ settable + 256 temperature
#: the reference sensor of the light-intensity-Voc bench's calibration (S121C-type Si photodiode, 400–1100 nm,
#: up to 500 mW [H data sheet]; serial and date are example values [L])
REFERENCE_SENSOR_IDN = "S121C,00234567,02-Feb-2026,1,18,289"
WAVELENGTH_RANGE_NM = (400.0, 1100.0)
DEFAULT_WAVELENGTH_NM = 635.0
POWER_RANGES_W = tuple(10.0**k for k in range(-8, 0))
SAMPLE_S = 3e-3
MAX_AVERAGES = 10000
SCPI_NAN = 9.91e37


def _fmt(value: float) -> str:
    return nr3(value, plus=False)


def responsivity_A_W(wavelength_nm: float, quantum_efficiency: float) -> float:
    """A photodiode's responsivity (A/W) at a constant quantum efficiency: QE·λ/(hc/q), λ in nm."""
    return quantum_efficiency * wavelength_nm / HC_NM_V


def light_on_sensor(bench: Any, fraction: float) -> tuple[float, float]:
    """(power (W), wavelength (nm)) of the light on the sensor: ``fraction`` × the bench laser's beam when on
    (after the laser path's wheels, with the laser's noise and drift, when the bench has a laser path)."""
    laser = bench.laser
    if not laser.on or laser.power_W <= 0:
        return 0.0, float(laser.wavelength_nm)
    path = getattr(bench, "laser_path", None)
    power_W = path.beam_power_W() if path is not None else float(laser.power_W)
    return fraction * power_W, float(laser.wavelength_nm)


class PM100Emulator(ScpiInstrument):
    """A PM100D / PM100USB console with an S120C sensor, lit by the bench's laser.

    bench: object with ``clock`` and ``laser`` (``on``, ``power_W``, ``wavelength_nm``), and ``laser_path``
    (:class:`sim_instruments.laser_path.LaserPath`) for a bench with an integrating sphere.
    model: "PM100D" or "PM100USB" (the ``*IDN?`` model field). laser_fraction: part of the laser's power on the
    sensor (0–1). quantum_efficiency: the photodiode's QE (0–1). dark_current_A: its dark current (A).
    sim_name: which sensor of the bench the console reads. ``power_meter``: without a sphere the laser's beam
    (``laser_fraction`` of it), with one the reference sensor at the sample port (dark, only its dark current,
    while the device is at the port). ``monitor``: the in-sphere monitor photodiode (its own area, QE and dark
    current, ``simulation.sphere``); ``MEAS:CURR?`` is its current, ``MEAS:POW?`` that current over the
    console's responsivity (``quantum_efficiency``) at its set wavelength, as a real console computes it.
    """

    SIM_NAMES: tuple[str, ...] = ("power_meter", "monitor")

    def __init__(self, bench: Any, model: str = "PM100D", laser_fraction: float = 1.0,
                 quantum_efficiency: float = 0.8, dark_current_A: float = 0.0,
                 sim_name: str = "power_meter") -> None:
        if model not in IDENTITIES:
            raise ValueError(f"model {model!r} not in {sorted(IDENTITIES)}")
        if sim_name not in self.SIM_NAMES:
            raise ValueError(f"no PM100 sensor {sim_name!r} on the bench (allowed: {', '.join(self.SIM_NAMES)})")
        path = getattr(bench, "laser_path", None)
        if sim_name == "monitor" and (path is None or path.sphere is None):
            raise ValueError("sim://monitor is the in-sphere photodiode, and the simulated bench has no integrating "
                             "sphere (allowed: give simulation.sphere)")
        if not 0.0 <= laser_fraction <= 1.0:
            raise ValueError(f"laser_fraction {laser_fraction!r} must be within 0–1")
        if not 0.0 < quantum_efficiency <= 1.0:
            raise ValueError(f"quantum_efficiency {quantum_efficiency!r} must be within (0, 1]")
        super().__init__()
        self.bench, self.model = bench, model
        self.laser_fraction, self.quantum_efficiency = laser_fraction, quantum_efficiency
        self.dark_current_A = dark_current_A
        self.sim_name = sim_name
        #: the sensor's ``SYST:SENS:IDN?``: the reference sensor of a bench with a sphere is an S121C
        self.sensor_idn = REFERENCE_SENSOR_IDN if sim_name == "power_meter" and path is not None \
            and path.sphere is not None else SENSOR_IDN
        self.line_Hz = 50
        self.reset()

    # -- hooks ------------------------------------------------------------------------------------------------
    def identity(self) -> str:
        return IDENTITIES[self.model]

    def reset(self) -> None:
        self.wavelength_nm = DEFAULT_WAVELENGTH_NM
        self.unit = "W"
        self.auto_range = True
        self.range_W = POWER_RANGES_W[-1]
        self.averages = 1
        self.beam_mm = 9.5
        self.zero_A = 0.0
        self.function = "POW"
        self._fetched: float | None = None

    # -- the physics ------------------------------------------------------------------------------------------
    def photocurrent_A(self) -> float:
        """The sensor's current now (A): light × R(λ of the light) + dark current; averaging takes its time."""
        self.bench.clock.sleep(self.averages * SAMPLE_S)
        path = getattr(self.bench, "laser_path", None)
        if path is not None and path.sphere is not None:
            if self.sim_name == "monitor":
                return path.monitor_current_A()
            wavelength_nm = float(self.bench.laser.wavelength_nm)
            return (path.reference_power_W() * responsivity_A_W(wavelength_nm, self.quantum_efficiency)
                    + self.dark_current_A)
        power_W, wavelength_nm = light_on_sensor(self.bench, self.laser_fraction)
        return power_W * responsivity_A_W(wavelength_nm, self.quantum_efficiency) + self.dark_current_A

    def power_W(self) -> float:
        """The console's power reading (W): zero-corrected current over the responsivity at its set wavelength."""
        return (self.photocurrent_A() - self.zero_A) / responsivity_A_W(self.wavelength_nm, self.quantum_efficiency)

    def _power_reply(self) -> str:
        watts = self.power_W()
        if self.unit == "DBM":
            return _fmt(10.0 * math.log10(watts / 1e-3)) if watts > 0 else _fmt(SCPI_NAN)
        return _fmt(watts)

    def _measure(self, function: str) -> str:
        return self._power_reply() if function == "POW" else _fmt(self.photocurrent_A() - self.zero_A)

    # -- command handlers ---------------------------------------------------------------------------------------
    def _set_range(self, p: Params) -> None:
        value = p.number(0, 0.0, POWER_RANGES_W[-1], POWER_RANGES_W[-1])
        if value <= 0:
            raise ScpiError(-222)
        self.range_W = next(r for r in POWER_RANGES_W if r >= value * (1 - 1e-9))
        self.auto_range = False

    def _set_line(self, p: Params) -> None:
        value = p.integer(0, 50, 60)
        if value not in (50, 60):
            raise ScpiError(-224)
        self.line_Hz = value

    def _zero(self, p: Params) -> None:
        self.zero_A = 0.0
        self.zero_A = self.photocurrent_A()

    def _initiate(self, p: Params) -> None:
        self._fetched = float(self._measure(self.function))

    def _fetch(self, p: Params) -> str:
        if self._fetched is None:
            raise ScpiError(-230)
        return _fmt(self._fetched)

    def _read(self, p: Params) -> str:
        self._initiate(p)
        return self._fetch(p)


def _configure(function: str) -> Any:
    """``CONF:POW`` / ``CONF:CURR``: what INIT / READ? measure."""

    def write(inst: PM100Emulator, p: Params) -> None:
        inst.function = function

    return write


E = PM100Emulator
_SENS = "[:SENSe[1]]"
PM100Emulator.COMMANDS = (
    *COMMON_COMMANDS,
    *SYSTEM_ERROR_COMMANDS,
    Command(":SYSTem:SENSor:IDN", query=lambda s, p: s.sensor_idn),
    Command(":SYSTem:LFRequency", write=E._set_line, query=lambda s, p: str(s.line_Hz)),
    number(f"{_SENS}:CORRection:WAVelength", "wavelength_nm", *WAVELENGTH_RANGE_NM, DEFAULT_WAVELENGTH_NM, fmt=_fmt),
    number(f"{_SENS}:CORRection:BEAMdiameter", "beam_mm", 0.1, 20.0, 9.5, fmt=_fmt),
    Command(f"{_SENS}:CORRection:COLLect:ZERO[:INITiate]", write=E._zero, wargs=(0, 0)),
    number(f"{_SENS}:AVERage[:COUNt]", "averages", 1, MAX_AVERAGES, 1, integer=True),
    choice(f"{_SENS}:POWer[:DC]:UNIT", "unit", ("W", "DBM")),
    flag(f"{_SENS}:POWer[:DC]:RANGe:AUTO", "auto_range"),
    Command(f"{_SENS}:POWer[:DC]:RANGe[:UPPer]", write=E._set_range, query=lambda s, p: _fmt(s.range_W)),
    Command(":MEASure[:SCALar]:POWer", query=lambda s, p: s._measure("POW")),
    Command(":MEASure[:SCALar]:CURRent[:DC]", query=lambda s, p: s._measure("CURR")),
    Command(":CONFigure[:SCALar]:POWer", write=_configure("POW"), wargs=(0, 0)),
    Command(":CONFigure[:SCALar]:CURRent[:DC]", write=_configure("CURR"), wargs=(0, 0)),
    Command(":CONFigure", query=lambda s, p: s.function),
    Command(":INITiate[:IMMediate]", write=E._initiate, wargs=(0, 0)),
    Command(":FETCh", query=E._fetch),
    Command(":READ", query=E._read),
)
