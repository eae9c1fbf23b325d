"""The physical model of the simulated bench, shared by every emulator of a station.

One :class:`Bench` holds the clock, the light (a solar simulator with an irradiance and a shutter) and the cell
(single-diode model with ion-lag hysteresis and degradation). Emulators only read and force the cell's terminal
quantities through it, so the Keithley, the shutter and later the lock-in all see the same device.
Model: methods ref. §1.6 (single-diode, Lambert-W) and §1.7 (ion-migration lag, degradation laws, temperature:
J0 follows T, see :func:`labctl.analysis.sdm.j0_at_temperature_A_cm2`).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from labctl.analysis import sdm
from sim_instruments.clock import Clock, VirtualClock
from sim_instruments.optics import Optics

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
    rs_ohm_cm2: float = 3.84022
    rsh_ohm_cm2: float = 2000.0
    area_cm2: float = 0.049
    temperature_K: float = sdm.STC_TEMPERATURE_K
    bandgap_eV: float = 1.5789
    j0_reference_temperature_K: float = sdm.STC_TEMPERATURE_K
    hysteresis: Hysteresis = field(default_factory=Hysteresis)
    degradation: Degradation = field(default_factory=Degradation)
    #: the stack in the bench's fixture: "n-i-p" has its anode on the SMU HI terminal, "p-i-n" on LO
    stack: str = "n-i-p"


@dataclass
class Light:
    """A solar simulator: nominal irradiance (W/m²), a shutter, and relative flicker (fraction, 1 σ).

    ``listeners`` are called after the shutter or the irradiance changes (the EQE optics use it as bias light).
    """

    irradiance_W_m2: float = 1000.0
    shutter_open: bool = True
    flicker: float = 0.0
    listeners: list = field(default_factory=list, repr=False, compare=False)

    def __setattr__(self, name: str, value: object) -> None:
        super().__setattr__(name, value)
        if name in ("shutter_open", "irradiance_W_m2"):
            for listener in getattr(self, "listeners", ()):
                listener()

    def effective_irradiance_W_m2(self, rng: np.random.Generator) -> float:
        if not self.shutter_open:
            return 0.0
        if self.flicker > 0:
            return self.irradiance_W_m2 * (1.0 + self.flicker * float(rng.standard_normal()))
        return self.irradiance_W_m2


class SolarCell:
    """The device: static single-diode model plus the ion state and the light dose it has received."""

    def __init__(self, params: CellParameters) -> None:
        self.params = params
        hyst = params.hysteresis
        self.ion_state = sdm.ion_equilibrium(0.0, hyst.v_half_V, hyst.width_V)
        self.light_dose_s = 0.0

    def parameters_now(self) -> tuple[float, float, float]:
        """(Jph at 1 sun A/cm², J0 A/cm² at the cell temperature, Rs Ω·cm²) after the degradation so far."""
        p, d = self.params, self.params.degradation
        j0 = float(sdm.j0_at_temperature_A_cm2(
            p.j0_A_cm2, p.temperature_K, p.bandgap_eV, p.ideality, p.j0_reference_temperature_K
        ))
        jph, rs = p.jph_mA_cm2 * 1e-3, p.rs_ohm_cm2
        if d.enabled:
            t_h = self.light_dose_s / HOUR_S
            jph *= 1.0 - d.burn_in_fraction * (1.0 - math.exp(-t_h / d.burn_in_tau_h)) - d.linear_loss_per_h * t_h
            if d.j0_growth_tau_h:
                j0 *= math.exp(t_h / d.j0_growth_tau_h)
            rs *= 1.0 + d.rs_growth_per_h * t_h
        return max(jph, 0.0), j0, rs

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
        return float(
            sdm.current_density_A_cm2(
                voltage_V, jph * suns, self._j0_eff(voltage_V, j0), p.ideality, rs, p.rsh_ohm_cm2, p.temperature_K
            )
        )

    def open_circuit_voltage_V(self, suns: float) -> float:
        """Voc of the static model with the present J0 (ions in equilibrium)."""
        p = self.params
        jph, j0, rs = self.parameters_now()
        if jph * suns <= 0:
            return 0.0
        return float(sdm.open_circuit_voltage_V(jph * suns, j0, p.ideality, rs, p.rsh_ohm_cm2, p.temperature_K))


class Bench:
    """Clock + light + cell, and the terminal the SMU forces. Thread-safe for the TCP server."""

    def __init__(
        self,
        cell: CellParameters | None = None,
        light: Light | None = None,
        clock: Clock | None = None,
        line_frequency_Hz: float = 50.0,
        seed: int | None = 0,
        optics: Optics | None = None,
    ) -> None:
        self.clock: Clock = clock if clock is not None else VirtualClock()
        self.light = light if light is not None else Light()
        self.cell = SolarCell(cell if cell is not None else CellParameters())
        #: the EQE bench's beam path (None on a J–V-only bench)
        self.optics = optics
        self.light.listeners.append(self._bias_light_changed)
        self.line_frequency_Hz = line_frequency_Hz
        self.rng = np.random.default_rng(seed)
        self.lock = threading.RLock()
        self._bias_V: float | None = None
        self._t_last = self.clock.now()
        self._held_suns: float | None = None  # the lamp's irradiance during one reading (see steady_light)

    def _bias_light_changed(self) -> None:
        """The solar simulator doubles as the EQE bench's white bias light: a DC short-circuit current."""
        if self.optics is not None:
            p = self.cell.params
            jph, j0, rs = self.cell.parameters_now()
            jsc = sdm.current_density_A_cm2(0.0, jph * self.suns, j0, p.ideality, rs, p.rsh_ohm_cm2, p.temperature_K)
            self.optics.set_bias_light(float(jsc) * p.area_cm2)

    @property
    def suns(self) -> float:
        """Irradiance in suns without flicker (0 with the shutter closed)."""
        return self.light.irradiance_W_m2 / 1000.0 if self.light.shutter_open else 0.0

    def _advance(self) -> None:
        """Bring the cell's slow state (ions, light dose) up to ``clock.now()`` under the bias held since."""
        now = self.clock.now()
        dt = now - self._t_last
        if dt <= 0:
            return
        self._t_last = now
        bias = self._bias_V if self._bias_V is not None else self.cell.open_circuit_voltage_V(self.suns)
        self.cell.relax(bias, dt)
        if self.light.shutter_open:
            self.cell.light_dose_s += dt * self.suns

    @property
    def _sign(self) -> float:
        """+1 when the cell's anode is on the SMU HI terminal (n-i-p in the fixture), −1 for a p-i-n stack."""
        return -1.0 if self.cell.params.stack == "p-i-n" else 1.0

    def set_cell_bias(self, voltage_V: float | None) -> None:
        """The terminal voltage (HI − LO) the SMU forces from now on (V); None = open circuit (output off)."""
        with self.lock:
            self._advance()
            self._bias_V = None if voltage_V is None else self._sign * float(voltage_V)

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
        """The light on the cell now (suns), with a new draw of the lamp's flicker."""
        return self.light.effective_irradiance_W_m2(self.rng) / 1000.0

    def _suns_now(self) -> float:
        """The light on the cell for this reading (suns): the one held by :meth:`steady_light`, else a new draw."""
        return self._held_suns if self._held_suns is not None else self._draw_suns()

    def cell_current_A(self) -> float:
        """Current a Keithley reports while forcing the present bias (A): −J·area, no instrument noise."""
        with self.lock:
            self._advance()
            if self._bias_V is None:
                return 0.0
            suns = self._suns_now()
            j = self.cell.current_density_A_cm2(self._bias_V, suns)
            return -self._sign * j * self.cell.params.area_cm2

    def voltage_at_current_V(self, current_A: float) -> float | None:
        """Terminal voltage (HI − LO, V) at which the cell carries ``current_A`` as a Keithley reports it (the
        inverse of :meth:`cell_current_A`), from the single-diode model in closed form (``sdm.voltage_V``),
        with the lamp as it is now; None when there is no closed form (ion-lag hysteresis: J0 follows V).
        Does not bias the cell."""
        with self.lock:
            cell = self.cell
            if cell.params.hysteresis.enabled:
                return None
            self._advance()
            suns = self._suns_now()
            p = cell.params
            jph, j0, rs = cell.parameters_now()
            j = -self._sign * current_A / p.area_cm2  # photocurrent-positive J of the cell (A/cm²)
            v = sdm.voltage_V(float(j), float(jph * suns), float(j0), float(p.ideality), float(rs),
                              float(p.rsh_ohm_cm2), float(p.temperature_K))
            return self._sign * float(v)

    def open_circuit_voltage_V(self) -> float:
        """Terminal voltage (HI − LO) with nothing forcing the cell (V)."""
        with self.lock:
            self._advance()
            return self._sign * self.cell.open_circuit_voltage_V(self.suns)
