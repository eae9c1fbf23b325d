"""The laser's beam path on the simulated bench: laser -> od_wheel_1 -> od_wheel_2 -> integrating sphere.

The light-intensity-Voc bench (methods ref. §4.2) attenuates a 520 nm laser with two wheels of neutral-density
filters before an integrating sphere; the device (or, for the calibration, a reference power sensor) sits at the
sphere's sample port and a silicon monitor photodiode in the sphere wall reads the irradiance.

Model (one place for each formula):

- emitted power: the laser's set-point ``P`` with a relative drift per hour of emission and a relative noise
  per reading, ``P·(1 + drift·t_emission_h)·(1 + noise·z)``, z ~ N(0, 1) (:meth:`LaserPath.emitted_power_W`);
- wheels: the power into the sphere is ``P_emitted·T1(slot1)·T2(slot2)`` with the TRUE transmissions of the
  slots in the beam (``simulation.filter_wheels``; the station's calibrated values describe them);
- sphere: sample-port irradiance ``E = P_in·M/A_s`` with the sphere multiplier ``M = ρ/(1 − ρ(1 − f))`` and the
  sphere's inner surface ``A_s = π·d²`` (ρ wall reflectance, f port fraction; Labsphere technical guide "A guide
  to integrating sphere theory and applications", eqs. for the sphere multiplier and the radiance of the wall);
- monitor photodiode: ``I = E·A_mon·QE·λ/(hc/q) + I_dark`` (A; hc/q from :data:`sim_instruments.optics.HC_NM_V`);
- reference sensor at the sample port: ``P_ref = E·π(d_ap/2)²`` through its aperture, and nothing while the device
  is at the port (the sensor is then off the sphere);
- device at the sample port: ``P_dev = E·area`` (dark while the reference sensor is there).

Without a sphere (the default station) the beam goes straight to the device: all of the (attenuated) power
reaches it, as before this module existed (with no wheels and no noise, exactly ``laser.power_W``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from labctl.analysis import sdm
from sim_instruments.optics import HC_NM_V
from sim_instruments.terminals import DiodeTerminal

HOUR_S = 3600.0
#: the two wheels of the laser path, in beam order (their ``sim://`` names)
OD_WHEELS = ("od_wheel_1", "od_wheel_2")
#: what can sit at the sphere's sample port
PORT_OCCUPANTS = ("dut", "reference")
#: what can sit at the device's place in front of the PL detector (a blank: a non-emissive dummy sample)
PL_OCCUPANTS = ("dut", "blank")
SLOT_COUNTS = (6, 12)


class AttenuatorWheel:
    """A filter wheel on the laser path: the slot in the beam and the true transmission of every slot.

    Same wheel interface as :class:`sim_instruments.optics.Optics` offers the FW102C emulator
    (``wheel_position``, ``wheel_slots``, ``set_wheel_position``). Slots not in ``transmissions`` are open (T = 1).

    name: the wheel's ``sim://`` name. transmissions: {slot: T in (0, 1]} at the laser wavelength. slots: 6 or 12
    (None: 12 when a slot above 6 is given, else 6).
    """

    def __init__(self, name: str, transmissions: dict[int, float] | None = None, slots: int | None = None,
                 position: int = 1) -> None:
        table = {int(k): float(v) for k, v in (transmissions or {}).items()}
        if slots is None:
            slots = 12 if table and max(table) > 6 else 6
        if slots not in SLOT_COUNTS:
            raise ValueError(f"{name}: a filter wheel has 6 or 12 slots, not {slots!r}")
        for slot, t in table.items():
            if not 1 <= slot <= slots or not 0 < t <= 1:
                raise ValueError(f"{name}: slot {slot} transmission {t!r} (allowed: slots 1-{slots}, 0 < T <= 1)")
        self.name = name
        self.wheel_slots = slots
        self.transmissions = {slot: table.get(slot, 1.0) for slot in range(1, slots + 1)}
        self.wheel_position = int(position)
        self.listeners: list[Callable[[], None]] = []

    def set_wheel_position(self, slot: int) -> None:
        """Turn the wheel so that ``slot`` is in the beam (the emulator has slept the move time)."""
        self.wheel_position = int(slot)
        for listener in self.listeners:
            listener()

    @property
    def transmission(self) -> float:
        """True transmission of the slot in the beam (fraction)."""
        return self.transmissions[self.wheel_position]


@dataclass(frozen=True)
class IntegratingSphere:
    """An integrating sphere: inner diameter (mm), wall reflectance ρ and port fraction f (Labsphere guide)."""

    diameter_mm: float
    wall_reflectance: float
    port_fraction: float

    @property
    def multiplier(self) -> float:
        """Sphere multiplier M = ρ/(1 − ρ(1 − f)) (Labsphere technical guide, "sphere multiplier")."""
        rho, f = self.wall_reflectance, self.port_fraction
        return rho / (1.0 - rho * (1.0 - f))

    @property
    def surface_cm2(self) -> float:
        """Inner surface A_s = π·d² (cm²)."""
        return math.pi * (self.diameter_mm / 10.0) ** 2

    def irradiance_W_cm2(self, power_in_W: float) -> float:
        """Irradiance of the wall and the sample port (W/cm²) for ``power_in_W`` (W) entering: E = P·M/A_s."""
        return power_in_W * self.multiplier / self.surface_cm2


@dataclass(frozen=True)
class MonitorPhotodiode:
    """The silicon photodiode in the sphere wall: active area (mm²), quantum efficiency, dark current (A)."""

    area_mm2: float
    quantum_efficiency: float
    dark_current_A: float = 0.0

    def current_A(self, irradiance_W_cm2: float, wavelength_nm: float) -> float:
        """Photocurrent plus dark current (A): E·A·QE·λ/(hc/q) + I_dark."""
        responsivity_A_W = self.quantum_efficiency * wavelength_nm / HC_NM_V
        return irradiance_W_cm2 * self.area_mm2 * 1e-2 * responsivity_A_W + self.dark_current_A


@dataclass(frozen=True)
class ReferenceSensor:
    """The reference power sensor placed at the sample port: the diameter of its aperture (mm)."""

    aperture_mm: float

    @property
    def aperture_cm2(self) -> float:
        return math.pi * (self.aperture_mm / 20.0) ** 2

    def power_W(self, irradiance_W_cm2: float) -> float:
        """Power through the aperture (W): E·π(d/2)²."""
        return irradiance_W_cm2 * self.aperture_cm2


@dataclass
class Sphere:
    """The sphere with what is mounted on it: the monitor photodiode and the reference sensor."""

    sphere: IntegratingSphere
    monitor: MonitorPhotodiode
    reference: ReferenceSensor


@dataclass
class LaserPath:
    """Laser -> wheels -> sphere (or straight to the device without one), on the bench's clock.

    laser: the bench's :class:`sim_instruments.bench.Laser` (its ``power_W`` is the emitted set-point).
    clock, rng: the bench's. wheels: the laser-path wheels by ``sim://`` name (a missing one is made open on
    first use). sphere: None = the direct beam.
    """

    laser: Any
    clock: Any
    rng: np.random.Generator
    wheels: dict[str, AttenuatorWheel] = field(default_factory=dict)
    sphere: Sphere | None = None
    #: what is at the sphere's sample port: "dut" (the device) or "reference" (the reference sensor)
    at_sample_port: str = "dut"
    listeners: list[Callable[[], None]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self._emission_s = 0.0
        self._was_on = bool(self.laser.on)
        self._t_mark = self.clock.now()
        self.laser.listeners.append(self._laser_changed)
        for wheel in self.wheels.values():
            wheel.listeners.append(self._changed)

    # -- the laser -----------------------------------------------------------------------------------------
    def _laser_changed(self) -> None:
        self._tally()
        self._was_on = bool(self.laser.on)

    def _tally(self) -> None:
        now = self.clock.now()
        if self._was_on:
            self._emission_s += max(now - self._t_mark, 0.0)
        self._t_mark = now

    def emission_time_s(self) -> float:
        """Time the laser has emitted so far (s, bench clock)."""
        self._tally()
        return self._emission_s

    def emitted_power_W(self, draw: bool = True) -> float:
        """The laser's output now (W): set-point × (1 + drift·hours of emission) × (1 + noise·z), with a new draw
        z ~ N(0, 1) (``draw`` False: no noise). 0 when off. A reading holds its draw: the bench's
        ``steady_light`` for the device, :meth:`PhotodiodeTerminal.steady_light` for the monitor on an SMU.

        With modulation this is the mean power ``P0`` of ``P0·(1 + m·sin 2πft)``: ``laser.modulation_depth`` (m)
        and ``laser.modulation_frequency_Hz`` (f) are the laser slot's (:class:`sim_instruments.bench.Laser`); a
        model of the modulated signal reads them (no time dependence here)."""
        laser = self.laser
        if not laser.on or laser.power_W <= 0:
            return 0.0
        power = laser.power_W
        drift = getattr(laser, "power_drift_per_h", 0.0)
        if drift:
            power *= max(1.0 + drift * self.emission_time_s() / HOUR_S, 0.0)
        noise = getattr(laser, "power_noise", 0.0)
        if draw and noise > 0:
            power *= max(1.0 + noise * float(self.rng.standard_normal()), 0.0)
        return power

    # -- the path ------------------------------------------------------------------------------------------
    def wheel(self, name: str) -> AttenuatorWheel:
        """The laser-path wheel ``name`` (od_wheel_1 / od_wheel_2); an open 6-slot wheel when none is given."""
        if name not in OD_WHEELS:
            raise ValueError(f"no laser-path wheel {name!r} (allowed: {', '.join(OD_WHEELS)})")
        if name not in self.wheels:
            self.wheels[name] = AttenuatorWheel(name)
            self.wheels[name].listeners.append(self._changed)
        return self.wheels[name]

    def transmission(self) -> float:
        """Product of the true transmissions of the wheels' slots in the beam."""
        t = 1.0
        for wheel in self.wheels.values():
            t *= wheel.transmission
        return t

    def beam_power_W(self, draw: bool = True) -> float:
        """Power of the beam after the wheels (W): what enters the sphere, or without one reaches the device."""
        return self.emitted_power_W(draw) * self.transmission()

    def sample_port_irradiance_W_cm2(self, draw: bool = True) -> float:
        """Irradiance at the sphere's sample port (W/cm²); 0 without a sphere."""
        if self.sphere is None:
            return 0.0
        return self.sphere.sphere.irradiance_W_cm2(self.beam_power_W(draw))

    def device_power_W(self, area_cm2: float, draw: bool = True) -> float:
        """Laser power on the device (W): without a sphere all of the attenuated beam, with one E·area while the
        device is at the sample port (0 while the reference sensor is)."""
        if self.sphere is None:
            return self.beam_power_W(draw)
        if self.at_sample_port != "dut":
            return 0.0
        return self.sample_port_irradiance_W_cm2(draw) * area_cm2

    def monitor_current_A(self) -> float:
        """The in-sphere monitor photodiode's current (A), one noise draw. ValueError without a sphere."""
        sphere = self._require_sphere("monitor photodiode")
        return sphere.monitor.current_A(self.sample_port_irradiance_W_cm2(), float(self.laser.wavelength_nm))

    def reference_power_W(self) -> float:
        """Power on the reference sensor (W): through its aperture while it is at the sample port, else 0."""
        sphere = self._require_sphere("reference sensor")
        if self.at_sample_port != "reference":
            return 0.0
        return sphere.reference.power_W(self.sample_port_irradiance_W_cm2())

    def place_at_sample_port(self, occupant: str) -> None:
        """Put the device ("dut") or the reference sensor ("reference") at the sphere's sample port."""
        self._require_sphere("sample port")
        if occupant not in PORT_OCCUPANTS:
            raise ValueError(f"nothing called {occupant!r} fits the sphere's sample port (allowed: dut, reference)")
        self.at_sample_port = occupant
        self._changed()

    def _require_sphere(self, what: str) -> Sphere:
        if self.sphere is None:
            raise ValueError(f"the simulated bench has no integrating sphere, so no {what} "
                             "(allowed: give simulation.sphere)")
        return self.sphere

    def _changed(self) -> None:
        for listener in self.listeners:
            listener()


def place_in_beam(bench: Any, detector: str) -> None:
    """Put ``detector`` where it belongs on ``bench``: on a bench with a sphere "reference"/"dut" go to the
    sample port (and "dut" also to the EQE sample position, if the bench has one); any other detector, or any
    detector on a bench without a sphere, to the EQE optics' sample position (ValueError when unknown there).
    On a bench with a PL path (``bench.pl``) "blank" puts a non-emissive dummy in the device's place (the PL
    stops, the stray pump stays) and "dut" the device back."""
    pl = getattr(bench, "pl", None)
    if pl is not None and detector in PL_OCCUPANTS:
        pl.emission_blocked = detector == "blank"
        if detector == "blank" or (bench.optics is None and bench.laser_path.sphere is None):
            return
    path = getattr(bench, "laser_path", None)
    if path is not None and path.sphere is not None and detector in PORT_OCCUPANTS:
        path.place_at_sample_port(detector)
        if detector == "dut" and bench.optics is not None:
            bench.optics.place_in_beam("dut")
        return
    if bench.optics is None:
        raise ValueError(f"no detector '{detector}' on the bench (it has no EQE optics and no sphere)")
    bench.optics.place_in_beam(detector)


#: saturation current of the monitor photodiode's junction (A) when an SMU biases it: a ~13 mm² Si photodiode
#: [L: order of magnitude of a Thorlabs FDS100-type diode's dark characteristic]; ideality 1
MONITOR_SATURATION_CURRENT_A = 1e-10
MONITOR_TEMPERATURE_K = sdm.STC_TEMPERATURE_K


class PhotodiodeTerminal(DiodeTerminal):
    """The monitor photodiode's terminals as a source-meter sees them (``sim://monitor_smu``;
    :class:`sim_instruments.terminals.DiodeTerminal`), anode on HI.

    Model: photocurrent-positive I(V) = I_mon − I_s·(exp(V/V_t) − 1), I_mon = :meth:`LaserPath.monitor_current_A`
    (photocurrent plus dark current, so 0 V reads what the power meter reads), I_s =
    :data:`MONITOR_SATURATION_CURRENT_A`, V_t = kT/q at 298.15 K; the SMU reports −I (current into HI).
    """

    saturation_current_A = MONITOR_SATURATION_CURRENT_A

    def __init__(self, bench: Any) -> None:
        if bench.laser_path.sphere is None:
            raise ValueError("sim://monitor_smu is the in-sphere photodiode, and the simulated bench has no "
                             "integrating sphere (allowed: give simulation.sphere)")
        super().__init__(bench)
        self.path: LaserPath = bench.laser_path
        self.vt_V = float(sdm.thermal_voltage_V(MONITOR_TEMPERATURE_K))

    def light_current_A(self) -> float:
        """I_mon (A) now: the monitor's current with a new draw of the laser's noise."""
        return self.path.monitor_current_A()
