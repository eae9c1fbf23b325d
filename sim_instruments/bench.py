"""The physical model of the simulated bench, shared by every emulator of a station.

One :class:`Bench` holds the clock, the light sources (:attr:`Bench.sources`: a solar simulator with an irradiance
and a shutter, the monochromator beam of the EQE optics, a laser slot with a wavelength and a power) and the
devices of the substrate (:attr:`Bench.devices`, pixels; single-diode model, optionally with more diodes in
parallel (methods ref. §4.3), with ion-lag hysteresis and degradation), one of which is connected to the SMU at
a time (:meth:`Bench.select_device`; one device by default). Emulators only read and force the selected
device's terminal quantities through it, so the Keithley, the shutter and the lock-in all see the same device.
A multi-pixel fixture (``wiring``, :mod:`sim_instruments.wiring`) replaces the one selected device by SMU
terminals (``smu``, ``smu2``, ...; :meth:`Bench.terminal`) that see the devices whose relays the switch emulators
have closed (:meth:`Bench.relays_changed`): none (open circuit), one, or several in parallel; each device may
have a probe contact resistance in series.
Model: methods ref. §1.6 (single-diode, Lambert-W) and §1.7 (ion-migration lag, degradation laws, temperature:
J0 follows T, see :func:`labctl.analysis.sdm.j0_at_temperature_A_cm2`).

The environment of a stability run: the lamp drifts and dips in bench time (:class:`Light`), each device warms
under light and follows the bench's temperature schedule (:attr:`SolarCell.temperature_K`), the light dose that
drives the degradation integrates both, and a Si reference cell may sit under the same lamp
(:mod:`sim_instruments.reference_cell`).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np

from labctl.analysis import sdm
from sim_instruments.capacitance import CurrentSource, relax_voltage_V
from sim_instruments.clock import Clock, VirtualClock
from sim_instruments.faults import FaultSchedule
from sim_instruments.laser_path import AttenuatorWheel, LaserPath, Sphere
from sim_instruments.optics import HC_NM_V, Optics
from sim_instruments.wiring import TERMINALS, Wire, WiredTerminal, connections, wiring_problem

HOUR_S = 3600.0


@dataclass
class Hysteresis:
    """Ion-migration lag (methods ref. §1.7): s relaxes towards s_eq(V) with time constant tau_s.

    beta: recombination enhancement J0_eff = J0·exp(beta·(s_eq − s)); v_half_V, width_V: logistic s_eq(V).
    """

    enabled: bool = False
    tau_s: float = 10.0
    beta: float = 3.0
    v_half_V: float = 0.6
    width_V: float = 0.15


@dataclass
class Degradation:
    """Degradation laws (methods ref. §1.7), driven by the time the cell has spent under light.

    Jph(t) = Jph0·[1 − burn_in_fraction·(1 − e^(−t/burn_in_tau_h)) − linear_loss_per_h·t]
    J0(t) = J0_0·exp(t/j0_growth_tau_h)   (None: no growth)
    Rs(t) = Rs0·(1 + rs_growth_per_h·t)
    """

    enabled: bool = False
    burn_in_fraction: float = 0.0
    burn_in_tau_h: float = 20.0
    linear_loss_per_h: float = 0.0
    j0_growth_tau_h: float | None = None
    rs_growth_per_h: float = 0.0


@dataclass
class CellParameters:
    """Single-diode parameters at 1 sun (1000 W/m²), per aperture area (photocurrent-positive).

    ``j0_A_cm2`` is J0 at ``j0_reference_temperature_K``; at ``temperature_K`` the cell uses
    :func:`labctl.analysis.sdm.j0_at_temperature_A_cm2` with ``bandgap_eV`` (the gap of the cell's EQE, so the
    J–V and the EQE describe one material). Jph, Rs, Rsh and Eg do not change with temperature.
    """

    jph_mA_cm2: float = 18.33514
    j0_A_cm2: float = 1.16004e-15
    ideality: float = 1.5
    #: more recombination channels ((ideality, J0 in A/cm² at j0_reference_temperature_K), ...) in parallel with
    #: the main diode (methods ref. §4.3); empty: the single-diode cell (closed form, Lambert W)
    extra_diodes: tuple[tuple[float, float], ...] = ()
    rs_ohm_cm2: float = 3.84022
    rsh_ohm_cm2: float = 2000.0
    area_cm2: float = 0.049
    #: junction capacitance (nF/cm²) across the terminals: under a sourced current (Voc at I = 0) the terminal
    #: voltage settles with τ = C·dV/dJ (:meth:`Bench.source_current`); 0: it follows the light at once
    capacitance_nF_cm2: float = 0.0
    temperature_K: float = sdm.STC_TEMPERATURE_K
    #: warming under light (K at 1 sun, steady state; proportional to the light) with time constant
    #: ``temperature_tau_s`` (s), on top of ``temperature_K`` (:attr:`SolarCell.temperature_K`)
    temperature_rise_K: float = 0.0
    temperature_tau_s: float = 600.0
    bandgap_eV: float = 1.5789
    j0_reference_temperature_K: float = sdm.STC_TEMPERATURE_K
    hysteresis: Hysteresis = field(default_factory=Hysteresis)
    degradation: Degradation = field(default_factory=Degradation)
    #: the stack in the bench's fixture: "n-i-p" has its anode on the SMU HI terminal, "p-i-n" on LO
    stack: str = "n-i-p"
    #: the probe contact's resistance (Ω) in series with the device (its Rs grows by this times the area); 0: a
    #: good contact, ~1e9: a probe not touching the pad
    contact_resistance_ohm: float = 0.0
    #: the photogeneration EQE(λ in nm) (fraction; its AM1.5G integral is ``jph_mA_cm2``); None: a device that
    #: only the solar simulator lights (the laser and the EQE beam generate nothing in it)
    eqe: Callable[[float], float] | None = field(default=None, repr=False, compare=False)


class _Watched:
    """A light source whose ``_watched`` fields call each of ``listeners`` after they change."""

    _watched: tuple[str, ...] = ()

    def __setattr__(self, name: str, value: object) -> None:
        super().__setattr__(name, value)
        if name in self._watched:
            for listener in getattr(self, "listeners", ()):
                listener()


@dataclass(frozen=True)
class Interval:
    """An interval of bench time [start_s, start_s + duration_s) (s) carrying a ``value`` (a dip's depth, a
    temperature change in K)."""

    start_s: float
    duration_s: float
    value: float

    def covers(self, t_s: float) -> bool:
        return self.start_s <= t_s < self.start_s + self.duration_s


def schedule_value(intervals: tuple[Interval, ...], t_s: float) -> float:
    """The sum of the values of the ``intervals`` covering ``t_s`` (s) (0 outside all of them)."""
    return sum(i.value for i in intervals if i.covers(t_s))


@dataclass
class Light(_Watched):
    """A solar simulator: nominal irradiance (W/m²), a shutter, relative flicker (fraction, 1 σ), a drift and dips.

    The lamp burns from bench time ``lamp_on_since_s`` (the shutter only blocks it): its irradiance drifts by
    ``drift_per_h`` (relative, per hour of lamp-on time, linear, never below 0) and loses the fraction ``depth``
    during each of ``dips`` (:class:`Interval` in bench time, depths of overlapping dips add up, capped at 1).
    Bench time is the clock's time since the bench was built (station time on the virtual clock). Drift and
    dips are what the device and the reference cell see; they do not call the ``listeners``, which are called
    after the shutter or the nominal irradiance changes (the EQE optics use it as bias light).
    """

    irradiance_W_m2: float = 1000.0
    shutter_open: bool = True
    flicker: float = 0.0
    drift_per_h: float = 0.0
    dips: tuple[Interval, ...] = ()
    lamp_on_since_s: float = 0.0
    listeners: list = field(default_factory=list, repr=False, compare=False)
    _watched = ("shutter_open", "irradiance_W_m2")

    def irradiance_at_W_m2(self, t_s: float) -> float:
        """The lamp's irradiance (W/m², no flicker, shutter ignored) at bench time ``t_s`` (s)."""
        if not self.dips and not self.drift_per_h:
            return self.irradiance_W_m2
        drift = max(1.0 + self.drift_per_h * (t_s - self.lamp_on_since_s) / HOUR_S, 0.0)
        dip = min(schedule_value(self.dips, t_s), 1.0)
        return self.irradiance_W_m2 * drift * (1.0 - dip)

    def effective_irradiance_W_m2(self, rng: np.random.Generator, t_s: float = 0.0) -> float:
        """The irradiance on the sample plane (W/m²) at bench time ``t_s`` (s): 0 with the shutter closed, else
        :meth:`irradiance_at_W_m2` with a new draw of the flicker."""
        if not self.shutter_open:
            return 0.0
        irradiance = self.irradiance_at_W_m2(t_s)
        if self.flicker > 0:
            return irradiance * (1.0 + self.flicker * float(rng.standard_normal()))
        return irradiance


@dataclass
class Laser(_Watched):
    """The laser slot: a monochromatic beam of ``power_W`` (W, the emitted set-point) at ``wavelength_nm`` (nm).

    The beam goes through the bench's laser path (:class:`sim_instruments.laser_path.LaserPath`: wheels, an
    integrating sphere if any); without a sphere every photon of the (attenuated) beam falls on the selected
    device, where it generates ``P·EQE(λ)·λ/(hc/q)`` (A) (:meth:`SolarCell.laser_suns`). The emitted power drifts
    by ``power_drift_per_h`` (relative, per hour of emission) and fluctuates by ``power_noise`` (relative, 1 σ per
    reading). ``listeners`` are called after ``on``, the power, the wavelength or the modulation change.

    Modulation (the PLQY bench, :mod:`sim_instruments.modulation`): the emitted power is
    ``P(t) = P0·(1 + m·sin 2πft)`` with ``m = modulation_depth`` (0–1, peak over mean) and
    ``f = modulation_frequency_Hz`` (Hz); the mean ``P0`` is ``power_W``, unchanged by the modulation. Written by
    the LaserBoxx emulator's analog input (``AM 1``) from the function generator's output; 0 without one. The
    bench's power readings stay the mean (no time dependence here): a model of a modulated signal (the PL line)
    reads these two fields.
    """

    wavelength_nm: float = 520.0
    power_W: float = 0.0
    on: bool = False
    power_noise: float = 0.0
    power_drift_per_h: float = 0.0
    modulation_depth: float = 0.0
    modulation_frequency_Hz: float = 0.0
    listeners: list = field(default_factory=list, repr=False, compare=False)
    _watched = ("wavelength_nm", "power_W", "on", "modulation_depth", "modulation_frequency_Hz")

class SolarCell:
    """The device: static single-diode model plus the ion state and the light dose it has received."""

    def __init__(self, params: CellParameters) -> None:
        self.params = params
        hyst = params.hysteresis
        self.ion_state = sdm.ion_equilibrium(0.0, hyst.v_half_V, hyst.width_V)
        self.light_dose_s = 0.0
        #: warming under light now (K): first order towards temperature_rise_K·suns (:meth:`warm`)
        self.heating_K = 0.0
        #: the bench's temperature schedule now (K; :attr:`Bench.temperature_schedule`)
        self.schedule_K = 0.0

    @property
    def temperature_K(self) -> float:
        """The device temperature now (K): ``params.temperature_K`` plus the warming under light and the
        schedule's change; J0 follows it (:meth:`_j0_now`), and so does the thermal voltage."""
        return self.params.temperature_K + self.heating_K + self.schedule_K

    def warm(self, suns: float, dt_s: float) -> None:
        """``dt_s`` (s) under ``suns``: the warming relaxes towards temperature_rise_K·suns with
        temperature_tau_s (exact exponential update, the light taken as constant over the interval)."""
        p = self.params
        if p.temperature_rise_K <= 0 and self.heating_K == 0.0:
            return
        target = p.temperature_rise_K * suns
        self.heating_K = target + (self.heating_K - target) * math.exp(-dt_s / p.temperature_tau_s)

    def _j0_now(self, j0_ref_A_cm2: float, ideality: float) -> float:
        """J0 (A/cm²) of a diode of ``ideality`` at the cell temperature, grown by the degradation so far."""
        p, d = self.params, self.params.degradation
        j0 = float(sdm.j0_at_temperature_A_cm2(
            j0_ref_A_cm2, self.temperature_K, p.bandgap_eV, ideality, p.j0_reference_temperature_K
        ))
        if d.enabled and d.j0_growth_tau_h:
            j0 *= math.exp(self.light_dose_s / HOUR_S / d.j0_growth_tau_h)
        return j0

    def parameters_now(self) -> tuple[float, float, float]:
        """(Jph at 1 sun A/cm², J0 A/cm² at the cell temperature, Rs Ω·cm²) after the degradation so far; Rs
        as the terminals see it: the device's own (degraded) plus the contact's (``contact_resistance_ohm`` ×
        area, which does not degrade)."""
        p, d = self.params, self.params.degradation
        j0 = self._j0_now(p.j0_A_cm2, p.ideality)
        jph, rs = p.jph_mA_cm2 * 1e-3, p.rs_ohm_cm2
        if d.enabled:
            t_h = self.light_dose_s / HOUR_S
            jph *= 1.0 - d.burn_in_fraction * (1.0 - math.exp(-t_h / d.burn_in_tau_h)) - d.linear_loss_per_h * t_h
            rs *= 1.0 + d.rs_growth_per_h * t_h
        if p.contact_resistance_ohm:
            rs += p.contact_resistance_ohm * p.area_cm2
        return max(jph, 0.0), j0, rs

    def behind_contact_V(self, terminal_V: float, suns: float) -> float:
        """The device's own voltage (V) behind its contact when its terminal is at ``terminal_V`` (V, device
        frame) under ``suns``: V + J·area·R_contact (photocurrent-positive J; = ``terminal_V`` for a good
        contact). The ions follow it (a probe not touching leaves the device near its Voc)."""
        r_ohm = self.params.contact_resistance_ohm
        if not r_ohm:
            return terminal_V
        return terminal_V + self.current_density_A_cm2(terminal_V, suns) * self.params.area_cm2 * r_ohm

    def diodes_now(self, j0_main_A_cm2: float, j0_factor: float = 1.0) -> tuple[sdm.Diode, ...]:
        """All recombination channels ((ideality, J0 A/cm²), ...): the main diode with ``j0_main_A_cm2`` and the
        extra ones at the cell temperature and degradation; every J0 times ``j0_factor`` (ion lag)."""
        p = self.params
        return ((p.ideality, j0_main_A_cm2 * j0_factor),) + tuple(
            (n, self._j0_now(j0, n) * j0_factor) for n, j0 in p.extra_diodes
        )

    def static_current_density_A_cm2(self, voltage_V: float, suns: float) -> float:
        """Photocurrent-positive J (A/cm²) at ``voltage_V`` and ``suns`` with the ions in equilibrium."""
        p = self.params
        jph, j0, rs = self.parameters_now()
        if p.extra_diodes:
            return sdm.multi_diode_current_density_A_cm2(voltage_V, jph * suns, self.diodes_now(j0), rs,
                                                         p.rsh_ohm_cm2, self.temperature_K)
        return float(sdm.current_density_A_cm2(voltage_V, jph * suns, j0, p.ideality, rs, p.rsh_ohm_cm2,
                                               self.temperature_K))

    def voltage_at_density_V(self, current_density_A_cm2: float, suns: float) -> float:
        """Terminal voltage (V) at which the cell (ions in equilibrium) carries photocurrent-positive J (A/cm²)."""
        p = self.params
        jph, j0, rs = self.parameters_now()
        if p.extra_diodes:
            return sdm.multi_diode_voltage_V(current_density_A_cm2, jph * suns, self.diodes_now(j0), rs,
                                             p.rsh_ohm_cm2, self.temperature_K)
        return float(sdm.voltage_V(float(current_density_A_cm2), float(jph * suns), float(j0), float(p.ideality),
                                   float(rs), float(p.rsh_ohm_cm2), float(self.temperature_K)))

    def responsivity_A_W(self, wavelength_nm: float) -> float:
        """Short-circuit responsivity (A/W) to a small signal at ``wavelength_nm``: EQE·λ/(hc/q)·Rsh/(Rs + Rsh),
        the single-diode model's short-circuit current divider (so the integrated EQE reproduces the J–V Jsc)."""
        p = self.params
        if p.eqe is None:
            return 0.0
        rs = p.rs_ohm_cm2 + p.contact_resistance_ohm * p.area_cm2 if p.contact_resistance_ohm else p.rs_ohm_cm2
        divider = p.rsh_ohm_cm2 / (rs + p.rsh_ohm_cm2)
        return float(p.eqe(wavelength_nm)) * wavelength_nm / HC_NM_V * divider

    def laser_suns(self, laser: Laser, power_W: float | None = None) -> float:
        """The laser's photogeneration in suns: J_laser/Jph(1 sun), J_laser = P·EQE(λ)·λ/(hc/q)/area (A/cm²).

        power_W: the laser power on the device (W; None: ``laser.power_W``, the whole beam). Expressed in suns so
        that degradation, which scales Jph, scales the laser's photocurrent alike; 0 when the laser is off or the
        device has no EQE or no photocurrent at 1 sun."""
        p = self.params
        power_W = laser.power_W if power_W is None else power_W
        if not laser.on or power_W <= 0 or p.eqe is None or p.jph_mA_cm2 <= 0:
            return 0.0
        j_laser_A_cm2 = power_W * float(p.eqe(laser.wavelength_nm)) * laser.wavelength_nm / HC_NM_V / p.area_cm2
        return j_laser_A_cm2 / (p.jph_mA_cm2 * 1e-3)

    def relax(self, voltage_V: float, dt_s: float) -> None:
        """Let the ions follow the bias ``voltage_V`` for ``dt_s`` seconds (exact exponential update)."""
        hyst = self.params.hysteresis
        if hyst.enabled and dt_s > 0:
            self.ion_state = sdm.ion_state_step(
                self.ion_state, voltage_V, dt_s, hyst.tau_s, hyst.v_half_V, hyst.width_V
            )

    def precondition(self, voltage_V: float) -> None:
        """Put the ions in equilibrium with ``voltage_V`` (a long hold)."""
        hyst = self.params.hysteresis
        self.ion_state = sdm.ion_equilibrium(voltage_V, hyst.v_half_V, hyst.width_V)

    def _j0_eff(self, voltage_V: float, j0: float) -> float:
        hyst = self.params.hysteresis
        if not hyst.enabled:
            return j0
        s_eq = sdm.ion_equilibrium(voltage_V, hyst.v_half_V, hyst.width_V)
        return sdm.effective_j0(j0, s_eq, self.ion_state, hyst.beta)

    def current_density_A_cm2(self, voltage_V: float, suns: float) -> float:
        """Photocurrent-positive J at terminal voltage ``voltage_V`` and light ``suns`` (1 = 1000 W/m²)."""
        p = self.params
        jph, j0, rs = self.parameters_now()
        if p.extra_diodes:
            diodes = self.diodes_now(j0, self._j0_eff(voltage_V, 1.0))
            return sdm.multi_diode_current_density_A_cm2(voltage_V, jph * suns, diodes, rs, p.rsh_ohm_cm2,
                                                         self.temperature_K)
        return float(
            sdm.current_density_A_cm2(
                voltage_V, jph * suns, self._j0_eff(voltage_V, j0), p.ideality, rs, p.rsh_ohm_cm2, self.temperature_K
            )
        )

    def open_circuit_voltage_V(self, suns: float) -> float:
        """Voc of the static model with the present J0 (ions in equilibrium)."""
        jph, _, _ = self.parameters_now()
        if jph * suns <= 0:
            return 0.0
        return self.voltage_at_density_V(0.0, suns)


class Bench:
    """Clock + light sources + devices, and the terminal the SMU forces on the selected device. Thread-safe for
    the TCP server.

    cell: the one device of a single-device bench (ignored when ``devices`` is given).
    devices: the devices (pixels) of the substrate, numbered from 1; device 1 is selected first.
    laser: the laser slot (default: off, no power).
    sphere: the integrating sphere at the end of the laser path (None: the beam goes straight to the device).
    od_wheels: the filter wheels on the laser path by ``sim://`` name (od_wheel_1, od_wheel_2).
    temperature_schedule: changes of every device's temperature in bench time (:class:`Interval`, value in K).
    reference_cell: the Si reference cell under the solar simulator (``sim://reference_cell``; None: none).
    wiring: the fixture's wires (:class:`sim_instruments.wiring.Wire`: switch channel → device → SMU terminal);
        empty (the default): no switch, the SMU ``smu`` sees the selected device (:meth:`select_device`) and
        the bench itself is its terminal. With wires, each SMU terminal (:meth:`terminal`) sees the devices whose
        channels the switches have closed (:meth:`relays_changed`): none (open circuit), one, or several in
        parallel (:mod:`sim_instruments.wiring`).

    Bench time (:meth:`time_s`) is the clock's time since the bench was built: the lamp's drift and dips and the
    temperature schedule are given in it (on the virtual clock it is the station time).
    """

    def __init__(
        self,
        cell: CellParameters | None = None,
        light: Light | None = None,
        clock: Clock | None = None,
        line_frequency_Hz: float = 50.0,
        seed: int | None = 0,
        optics: Optics | None = None,
        devices: list[CellParameters] | None = None,
        laser: Laser | None = None,
        sphere: Sphere | None = None,
        od_wheels: dict[str, AttenuatorWheel] | None = None,
        temperature_schedule: tuple[Interval, ...] = (),
        reference_cell: Any = None,
        wiring: tuple[Wire, ...] | list[Wire] = (),
    ) -> None:
        self.clock: Clock = clock if clock is not None else VirtualClock()
        self.start_s = self.clock.now()
        self.temperature_schedule = tuple(temperature_schedule)
        #: the reference cell's parameters (:class:`sim_instruments.reference_cell.ReferenceCell`) or None
        self.reference_cell = reference_cell
        self.light = light if light is not None else Light()
        self.laser = laser if laser is not None else Laser()
        params = devices if devices else [cell if cell is not None else CellParameters()]
        #: the devices of the substrate (pixels); :attr:`cell` is the selected one
        self.devices = [SolarCell(p) for p in params]
        self._selected = 0
        problem = wiring_problem(tuple(wiring), len(self.devices))
        if problem is not None:
            raise ValueError(problem)
        #: the fixture's wires (None: not wired, the legacy single terminal: the bench itself is ``smu``)
        self.wiring: tuple[Wire, ...] | None = tuple(wiring) or None
        #: switch ``sim://`` name → channels whose relay does not close (a fault for tests; the switch emulators
        #: read it, and :meth:`relays_changed` never counts them closed)
        self.stuck_relays: dict[str, set[int]] = {}
        self._closed_relays: dict[str, frozenset[int]] = {}
        self._terminals: dict[str, WiredTerminal] = {}
        #: the EQE bench's beam path (None on a J–V-only bench)
        self.optics = optics
        self.light.listeners.append(self._bias_light_changed)
        self.laser.listeners.append(self._bias_light_changed)
        self.line_frequency_Hz = line_frequency_Hz
        self.rng = np.random.default_rng(seed)
        #: the seed the bench was built with (the wired terminals derive their own noise streams from it)
        self.seed = seed
        self.lock = threading.RLock()
        #: the laser's beam path: wheels, sphere, monitor photodiode and the sample port
        self.laser_path = LaserPath(self.laser, self.clock, self.rng, dict(od_wheels or {}), sphere)
        self.laser_path.listeners.append(self._bias_light_changed)
        self._bias_V: float | None = None
        self._t_last = self.clock.now()
        self._held_suns: float | None = None  # the lamp's irradiance during one reading (see steady_light)
        #: the station's settings of a simulated instrument model, by model name (e.g. the 2450's source offset,
        #: ``simulation.keithley2450``): the emulator's defaults for the instrument's own imperfections
        self.instrument_options: dict[str, dict[str, float]] = {}
        #: the PL path of the device at open circuit (:class:`sim_instruments.pl.PLPath`; None: no PL path)
        self.pl: Any = None
        #: the faults the transports inject (:mod:`sim_instruments.faults`; ``simulation.faults``, tests' ``add``)
        self.faults = FaultSchedule(self.clock)
        self._dut_changed()

    # -- the fixture: SMU terminals and the relays that connect the devices ----------------------------------
    def terminal(self, name: str) -> Any:
        """The terminal the SMU ``sim://name`` forces and measures: without wiring the bench itself for ``smu``
        (the selected device) and an open circuit for the others; with wiring its
        :class:`sim_instruments.wiring.WiredTerminal`. ValueError naming the allowed names."""
        if name not in TERMINALS:
            raise ValueError(f"no SMU terminal {name!r} on the bench (allowed: {', '.join(TERMINALS)})")
        if self.wiring is None and name == "smu":
            return self
        with self.lock:
            term = self._terminals.get(name)
            if term is None:
                term = self._terminals[name] = WiredTerminal(self, name)
                if self.wiring is not None:
                    term.connect(connections(self.wiring, self._closed_relays)[name])
            return term

    def relays_changed(self, switch: str, closed: frozenset[int]) -> None:
        """The switch ``sim://switch`` now has exactly the relays of channels ``closed`` closed (its emulator
        calls this after every change). Channels in :attr:`stuck_relays` do not count as closed. With wiring,
        each terminal then sees the devices wired through closed channels, and the EQE/PL/temperature DUT
        (:attr:`cell`) follows terminal ``smu`` when it sees exactly one device; without wiring it is recorded
        and changes nothing."""
        with self.lock:
            self._advance()
            stuck = frozenset(self.stuck_relays.get(switch, ()))
            self._closed_relays[switch] = frozenset(int(c) for c in closed) - stuck
            if self.wiring is None:
                return
            now = connections(self.wiring, self._closed_relays)
            for name in TERMINALS:
                self.terminal(name).connect(now[name])
            if len(now["smu"]) == 1 and now["smu"][0] - 1 != self._selected:
                self._selected = now["smu"][0] - 1
                self._dut_changed()

    def closed_relays(self, switch: str) -> frozenset[int]:
        """The channels of switch ``switch`` the bench counts closed (the last :meth:`relays_changed`)."""
        with self.lock:
            return self._closed_relays.get(switch, frozenset())

    def connected_devices(self, terminal: str) -> tuple[int, ...]:
        """The numbers (from 1) of the devices terminal ``terminal`` sees now: without wiring the selected
        device on ``smu`` and none elsewhere."""
        if self.wiring is None:
            return (self.selected_device,) if terminal == "smu" else ()
        return self.terminal(terminal).connected

    @property
    def cell(self) -> SolarCell:
        """The device connected to the SMU (and at the EQE sample position as the DUT)."""
        return self.devices[self._selected]

    @property
    def selected_device(self) -> int:
        """The number (from 1) of the selected device."""
        return self._selected + 1

    @property
    def sources(self) -> dict[str, object]:
        """The light sources of the bench by name: the solar simulator, the monochromator beam (the EQE optics;
        None on a J–V-only bench) and the laser slot (its beam path: :attr:`laser_path`)."""
        return {"solar_simulator": self.light, "monochromator": self.optics, "laser": self.laser}

    def select_device(self, number: int) -> None:
        """Connect device ``number`` (from 1) to the SMU, as a switch matrix or a moved probe does; the SMU's
        bias moves with it, the device left goes to open circuit. ValueError naming the allowed numbers."""
        if not 1 <= number <= len(self.devices):
            raise ValueError(f"no device {number} on the bench (allowed: 1-{len(self.devices)})")
        with self.lock:
            self._advance()
            self._selected = number - 1
            self._terminal_moved()
            self._dut_changed()

    def _dut_changed(self) -> None:
        """The EQE optics see the selected device as the DUT (its responsivity, its bias light)."""
        if self.optics is not None and self.cell.params.eqe is not None:
            self.optics.dut_responsivity = self.cell.responsivity_A_W
        self._bias_light_changed()

    def _bias_light_changed(self) -> None:
        """The solar simulator (and the laser) are the EQE bench's bias light: a DC short-circuit current.

        Called after every change of the light on the device (the sources' ``listeners``): a terminal voltage
        that is a state (:meth:`source_current`) is first brought up to now under the light before the change,
        so the new light acts from the moment it changed."""
        if self._source is not None:
            with self.lock:
                self._advance()
                self._source.suns = self._suns_now()
        if any(t._source is not None for t in getattr(self, "_terminals", {}).values()):
            with self.lock:
                self._advance()
                for term in self._terminals.values():
                    term.light_changed()
        if self.optics is not None:
            jsc = self.cell.static_current_density_A_cm2(0.0, self.suns)
            self.optics.set_bias_light(jsc * self.cell.params.area_cm2)

    def time_s(self) -> float:
        """Bench time (s): the clock's time since the bench was built."""
        return self.clock.now() - self.start_s

    def _solar_suns(self) -> float:
        return self.light.irradiance_at_W_m2(self.time_s()) / 1000.0 if self.light.shutter_open else 0.0

    def _mean_solar_suns(self, t0_s: float, t1_s: float) -> float:
        """The solar simulator's mean light (suns, no flicker) over bench time [t0_s, t1_s]: the interval cut at
        the dips' edges, each piece at its midpoint (exact for the linear drift)."""
        if not self.light.shutter_open:
            return 0.0
        if not self.light.dips and not self.light.drift_per_h:
            return self.light.irradiance_W_m2 / 1000.0
        edges = {t0_s, t1_s}
        for dip in self.light.dips:
            edges.update(t for t in (dip.start_s, dip.start_s + dip.duration_s) if t0_s < t < t1_s)
        total = sum((b - a) * self.light.irradiance_at_W_m2(0.5 * (a + b)) for a, b in pairwise(sorted(edges)))
        return total / (t1_s - t0_s) / 1000.0

    def suns_on(self, device: SolarCell) -> float:
        """Photogeneration in ``device`` in suns without flicker: solar simulator (0 with its shutter closed)
        plus the laser through its path without noise (:meth:`SolarCell.laser_suns`)."""
        power_W = self.laser_path.device_power_W(device.params.area_cm2, draw=False)
        return self._solar_suns() + device.laser_suns(self.laser, power_W)

    @property
    def suns(self) -> float:
        """Photogeneration in the selected device in suns, without flicker (:meth:`suns_on`)."""
        return self.suns_on(self.cell)

    def _advance(self) -> None:
        """Bring every device's slow state (ions, light dose) up to ``clock.now()``: the selected one under the
        bias held since, the others at open circuit."""
        now = self.clock.now()
        dt = now - self._t_last
        if dt <= 0:
            return
        t0_s, t1_s = self._t_last - self.start_s, now - self.start_s
        self._t_last = now
        if self._source is not None:
            self._charge_terminal(dt)
        held_by: dict[int, WiredTerminal] = {}
        if self.wiring is not None:
            for term in self._terminals.values():
                term.charge(dt)
                held_by.update((n - 1, term) for n in term.connected)
        solar_mean, solar_now = self._mean_solar_suns(t0_s, t1_s), self._solar_suns()
        schedule_K = schedule_value(self.temperature_schedule, t1_s) if self.temperature_schedule else 0.0
        for k, device in enumerate(self.devices):
            suns = self.suns_on(device)
            mean_suns = solar_mean + suns - solar_now  # the laser's part is constant over the interval
            device.warm(mean_suns, dt)
            device.schedule_K = schedule_K
            if self.wiring is not None:
                term = held_by.get(k)
                forced = term.device_voltage_V(device) if term is not None else None
            else:
                forced = self._bias_V if device is self.cell else None
                if forced is not None and device.params.contact_resistance_ohm:
                    forced = device.behind_contact_V(forced, suns)
            device.relax(forced if forced is not None else device.open_circuit_voltage_V(suns), dt)
            if mean_suns > 0:
                device.light_dose_s += dt * mean_suns

    @property
    def _sign(self) -> float:
        """+1 when the cell's anode is on the SMU HI terminal (n-i-p in the fixture), −1 for a p-i-n stack."""
        return -1.0 if self.cell.params.stack == "p-i-n" else 1.0

    def set_cell_bias(self, voltage_V: float | None) -> None:
        """The terminal voltage (HI − LO) the SMU forces from now on (V); None = open circuit (output off).

        A forced voltage holds at once also on a device with capacitance: the SMU's low output impedance charges
        it in far less than a reading. Open circuit on a device with capacitance lets it float: its voltage
        relaxes towards the static Voc with its own time constant (:meth:`source_current` with no current)."""
        with self.lock:
            self._advance()
            if voltage_V is None and self._capacitance_F() > 0:
                self._start_source(CurrentSource(floating=True))
                return
            self._source = None
            self._bias_V = None if voltage_V is None else self._sign * float(voltage_V)

    # -- a terminal voltage that is a state: the junction capacitance under a sourced current ---------------
    #: the source of the selected device's terminal voltage when it is a state (None: forced, or static)
    _source: CurrentSource | None = None

    def _capacitance_F(self) -> float:
        """The selected device's capacitance (F)."""
        p = self.cell.params
        return p.capacitance_nF_cm2 * 1e-9 * p.area_cm2

    def source_current(self, current_A: float, parallel_ohm: float = math.inf,
                       limit_V: float = math.inf) -> tuple[float, bool] | None:
        """The SMU sources ``current_A`` (A, into HI) from now on, with a resistance ``parallel_ohm`` (Ω, its
        voltmeter) across the terminals and the voltage limit ``limit_V`` (V).

        On a device with capacitance C·A (``capacitance_nF_cm2``) the terminal voltage is then a state,
        C·A·dV/dt = I_source − I_cell(V) − V/R_in (device convention; I_cell from the static model at the light of
        the moment, :meth:`SolarCell.current_density_A_cm2`), integrated on the bench clock as time passes
        (:func:`sim_instruments.capacitance.relax_voltage_V`), from the voltage the terminal had: Voc at I = 0
        settles with τ = C·dV/dJ, seconds at 1e-7 sun, microseconds at 1 sun. In the limit the voltage is held
        at ±``limit_V``.

        Returns
        -------
        tuple[float, bool] | None
            (terminal voltage HI − LO now (V), whether the limit holds it); None for a device without
            capacitance, whose voltage follows at once (the caller solves the static balance:
            :func:`sim_instruments.smu_physics.force_current`).
        """
        with self.lock:
            if not self._capacitance_F() > 0:
                return None
            self._advance()
            self._start_source(CurrentSource(float(current_A), float(parallel_ohm), float(limit_V)))
            u = self._bias_V
            return self._sign * u, abs(u) >= limit_V

    def _start_source(self, source: CurrentSource) -> None:
        """``source`` drives the terminal from now on, from the voltage it has: the state, the forced voltage,
        or (a terminal left open without a state) the static Voc, where a floating device has been all along."""
        if self._source is None and self._bias_V is None:
            self._bias_V = self.cell.open_circuit_voltage_V(self.suns)
        source.suns = self._suns_now()
        self._source = source

    def _charge_terminal(self, dt_s: float) -> None:
        """The terminal voltage state after ``dt_s`` (s) under the source and the interval's light."""
        source, cell = self._source, self.cell
        capacitance_F = self._capacitance_F()
        if source is None or not capacitance_F > 0:  # the device changed under the source: no state any more
            self._source = None
            return
        area, sign, suns = cell.params.area_cm2, self._sign, source.suns

        def net_current_A(u_V: float) -> float:  # into the capacitance, device convention
            return (sign * source.current_A + cell.current_density_A_cm2(u_V, suns) * area
                    - u_V / source.parallel_ohm)

        self._bias_V = relax_voltage_V(net_current_A, self._bias_V, dt_s, capacitance_F, -source.limit_V,
                                       source.limit_V)
        source.suns = self._suns_now()

    def _terminal_moved(self) -> None:
        """:meth:`select_device` under a source that makes the voltage a state: the device now connected has
        floated at its static Voc until now (an approximation: the others' voltages are not states)."""
        if self._source is None:
            return
        if self._capacitance_F() > 0:
            self._bias_V = self.cell.open_circuit_voltage_V(self.suns)
            self._source.suns = self._suns_now()
            return
        floating, self._source = self._source.floating, None
        self._bias_V = None if floating else self.cell.open_circuit_voltage_V(self.suns)

    def _floating(self) -> bool:
        """Nothing forces the selected device (output off), and its voltage is a state."""
        return self._source is not None and self._source.floating

    def precondition(self, voltage_V: float) -> None:
        """Test hook: ions in equilibrium with ``voltage_V`` as after a long hold."""
        with self.lock:
            self._advance()
            self.cell.precondition(voltage_V)

    @contextmanager
    def steady_light(self) -> Iterator[None]:
        """One flicker draw of the lamp for everything inside: the SMU's source loop settles a reading on the
        light of that moment, so a search for the voltage of a current (I = 0: Voc) sees one I(V) curve."""
        with self.lock:
            held = self._held_suns
            if held is None:
                self._held_suns = self._draw_suns()
            try:
                yield
            finally:
                self._held_suns = held

    def _draw_suns(self) -> float:
        """The light on the cell now (suns), with a new draw of the lamp's flicker and of the laser's noise."""
        power_W = self.laser_path.device_power_W(self.cell.params.area_cm2)
        return (self.light.effective_irradiance_W_m2(self.rng, self.time_s()) / 1000.0
                + self.cell.laser_suns(self.laser, power_W))

    def _suns_now(self) -> float:
        """The light on the cell for this reading (suns): the one held by :meth:`steady_light`, else a new draw."""
        return self._held_suns if self._held_suns is not None else self._draw_suns()

    def cell_current_A(self) -> float:
        """Current a Keithley reports while forcing the present bias (A): −J·area, no instrument noise."""
        with self.lock:
            self._advance()
            if self._bias_V is None or self._floating():
                return 0.0
            suns = self._suns_now()
            j = self.cell.current_density_A_cm2(self._bias_V, suns)
            return -self._sign * j * self.cell.params.area_cm2

    def voltage_at_current_V(self, current_A: float) -> float | None:
        """Terminal voltage (HI − LO, V) at which the cell carries ``current_A`` as a Keithley reports it (the
        inverse of :meth:`cell_current_A`), from the single-diode model in closed form (``sdm.voltage_V``;
        with extra diodes by Brent's method, ``sdm.multi_diode_voltage_V``), with the lamp as it is now; None
        under ion-lag hysteresis (J0 follows V: the caller searches). Does not bias the cell."""
        with self.lock:
            cell = self.cell
            if cell.params.hysteresis.enabled:
                return None
            self._advance()
            suns = self._suns_now()
            j = -self._sign * current_A / cell.params.area_cm2  # photocurrent-positive J of the cell (A/cm²)
            return self._sign * cell.voltage_at_density_V(j, suns)

    def device_temperature_K(self) -> float:
        """The selected device's temperature now (K; :attr:`SolarCell.temperature_K`), what a sensor on it reads."""
        with self.lock:
            self._advance()
            return self.cell.temperature_K

    def open_circuit_voltage_V(self) -> float:
        """Terminal voltage (HI − LO) with nothing forcing the cell (V): the static Voc, or the voltage of a
        floating device with capacitance (:meth:`set_cell_bias`)."""
        with self.lock:
            self._advance()
            if self._floating():
                return self._sign * self._bias_V
            return self._sign * self.cell.open_circuit_voltage_V(self.suns)
