"""The PL path of the simulated bench: the device at open circuit emits photoluminescence, which long-pass
filters, a silicon photodetector and a transimpedance amplifier turn into what reaches the spectrum analyser.

The simulator is hardware: this is its own physical model (methods ref. §5, §6), not the analysis that
recovers the PLQY from a measurement (:mod:`labctl.analysis.plqy`); the two agree through the methods' numbers.

Model (one place for each formula):

- QFLS: the device is held at open circuit (the 2450 at I = 0 on the bench, or nothing connected), and the
  quasi-Fermi-level splitting is the junction voltage there, μ = q·Voc (a choice of the simulation: in a real
  device μ ≥ qVoc; methods ref. §6.1, ΔVoc,SR = 0 here). The PL is emitted for every terminal state as if at open
  circuit (the simulator does not quench it under a forced bias).
- Emission (detailed balance, methods ref. §6.1): the radiative recombination current is
  ``j_rad = j0_rad·(exp(Voc/V_t) − 1)`` (ideality 1), and at open circuit all the generation recombines, so the
  external PLQY is ``PLQY(X) = j_rad(Voc(X))/J_gen(X)`` with J_gen = X·Jph (X: generation in suns, the solar
  simulator plus the laser, :meth:`sim_instruments.bench.Bench.suns`). ``j0_rad`` is fixed by the configured
  PLQY at 1 sun of the fresh device at its temperature: ``j0_rad = PLQY_1sun·Jph/(exp(Voc(1 sun)/V_t) − 1)``;
  after that it is the material's (it follows the temperature as an ideality-1 diode; a degradation that grows
  the non-radiative J0 lowers Voc and with it the PLQY). The emitted photon rate is
  ``Φ_PL = j_rad·area/q`` (s⁻¹). Hence Φ_PL ∝ exp(qVoc/kT) and its intensity dependence is the cell's: where
  the recombination has local ideality n, PLQY ∝ X^(n − 1). PLQY cannot exceed 1: beyond the intensity where
  j_rad would exceed J_gen (X = PLQY_1sun^(−1/(n−1)) for n > 1) it is held at 1.
- Differential PLQY (methods ref. §5.1): a small modulation of the absorbed flux measures
  ``PLQY_diff = dΦ_PL/dN_abs = k·PLQY`` with ``k = d ln Φ_PL/d ln X`` (= the local light ideality factor n_id,
  computed here by a central difference of ln Φ_PL in ln X, ±0.1 %).
- Modulation: the laser emits P0·(1 + m·sin 2πft) (``bench.laser.modulation_depth``,
  ``modulation_frequency_Hz``); the absorbed modulated flux is ``δN_abs,rms = m·N_laser/√2`` with the laser's
  absorbed photon rate ``N_laser = P_dev·EQE(λ)·λ/(hc)`` (the cell's photogeneration,
  :meth:`sim_instruments.bench.SolarCell.laser_suns`), and the emitted line ``δN_em,rms = PLQY_diff·δN_abs,rms``.
  Its second harmonic is (k − 1)·m/4 of the line (methods ref. §5.1, the expansion of X^k).
- Collection: Lambertian emission, the exact fraction F of methods ref. §5.2 for a centred rectangular detector
  (point emitter) or a coaxial disk (point emitter, or the disk-to-disk view factor of an emitting disk).
- Filters: each long pass transmits ``transmission`` at and above ``cut_on_nm`` and 10^(−stopband_od) below (a
  sharp edge); the PL band's transmission is weighted by the PL photon spectrum, a Gaussian in wavelength
  (``peak_nm``, ``fwhm_nm``): T_PL = ∫T(λ)s(λ)dλ/∫s(λ)dλ (methods ref. §5.1 step 3).
- Detector: a Si photodiode of responsivity R at the PL peak (A/W), EQE_det = R·(hc/q)/λ_peak, flat across the
  PL band; at the pump wavelength its own responsivity.
- Stray pump: a fraction ``scattered_fraction`` of the pump photons on the device reaches the detector's filter
  stack (scatter and geometry together), leaks through the filters' stopband at the pump wavelength and is
  modulated like the pump; it is there with the emission blocked too (a non-emissive blank in the device's
  place: :attr:`PLPath.emission_blocked`, put there by ``place_in_beam("blank")``; ``"dut"`` puts the device back).
- TIA: V = I·G·κ_load; the output's white-noise density is G·κ·√(4kT/G + i_amp² + 2q·I_dc) (V/√Hz): the
  Johnson noise of a feedback resistor equal to the gain, the amplifier's input current noise and the shot noise
  of the DC photocurrent (PL and stray pump).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from labctl.analysis import sdm
from labctl.analysis.spectra import ELEMENTARY_CHARGE_C as Q_E
from labctl.analysis.spectra import HC_OVER_Q_NM_V as HC_NM_V

BOLTZMANN_J_K = 1.380649e-23
#: relative step of the central difference in ln X for k = d ln Φ_PL/d ln X
K_STEP = 1e-3


# -- collection geometry (methods ref. §5.2) --------------------------------------------------------------
def collection_fraction_rectangle(width_m: float, height_m: float, distance_m: float) -> float:
    """Fraction of a Lambertian point emitter's photons that fall on a centred a×b rectangle at distance d
    (exact; methods ref. §5.2): F = (2/π)·[X/√(1+X²)·atan(Y/√(1+X²)) + Y/√(1+Y²)·atan(X/√(1+Y²))],
    X = a/(2d), Y = b/(2d). Lengths in any one unit."""
    x, y = width_m / (2.0 * distance_m), height_m / (2.0 * distance_m)
    sx, sy = math.sqrt(1.0 + x * x), math.sqrt(1.0 + y * y)
    return 2.0 / math.pi * (x / sx * math.atan(y / sx) + y / sy * math.atan(x / sy))


def collection_fraction_disk(detector_radius_m: float, distance_m: float, emitter_radius_m: float = 0.0) -> float:
    """Fraction of a Lambertian emitter's photons on a coaxial disk of radius r2 at distance d (methods ref.
    §5.2): a point emitter F = r2²/(r2² + d²); an emitting disk of radius r1 > 0 the disk-to-disk view factor
    F = ½·[S − √(S² − 4(R2/R1)²)], R1 = r1/d, R2 = r2/d, S = 1 + (1 + R2²)/R1². Lengths in any one unit."""
    if emitter_radius_m <= 0:
        return detector_radius_m**2 / (detector_radius_m**2 + distance_m**2)
    r1, r2 = emitter_radius_m / distance_m, detector_radius_m / distance_m
    s, c = 1.0 + (1.0 + r2 * r2) / (r1 * r1), (r2 / r1) ** 2
    # ½·[S − √(S² − 4c)] written as 2c/(S + √(S² − 4c)): the same number without the cancellation of two
    # nearly equal terms when the emitter is small (S ≫ 1)
    return 2.0 * c / (s + math.sqrt(s * s - 4.0 * c))


# -- the parts ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LongPass:
    """A long-pass filter: ``transmission`` at and above ``cut_on_nm`` (nm), 10^(−``stopband_od``) below."""

    cut_on_nm: float
    transmission: float = 0.95
    stopband_od: float = 4.0

    def transmission_at(self, wavelength_nm: Any) -> Any:
        lam = np.asarray(wavelength_nm, dtype=float)
        t = np.where(lam >= self.cut_on_nm, self.transmission, 10.0 ** (-self.stopband_od))
        return float(t) if t.ndim == 0 else t


@dataclass(frozen=True)
class Collection:
    """The detector's geometry: ``shape`` "rectangle" (``width_mm`` × ``height_mm``) or "disk" (``radius_mm``,
    emitter of ``emitter_radius_mm``, 0: point-like) at ``distance_mm`` (mm) on the device's normal."""

    shape: str = "rectangle"
    width_mm: float = 10.0
    height_mm: float = 10.0
    radius_mm: float = 5.0
    emitter_radius_mm: float = 0.0
    distance_mm: float = 50.0

    @property
    def fraction(self) -> float:
        """Lambertian collection fraction F (methods ref. §5.2)."""
        if self.shape == "disk":
            return collection_fraction_disk(self.radius_mm, self.distance_mm, self.emitter_radius_mm)
        return collection_fraction_rectangle(self.width_mm, self.height_mm, self.distance_mm)


@dataclass(frozen=True)
class Transimpedance:
    """The amplifier: ``gain_V_A`` (V/A), ``load_factor`` κ (1: the gain holds at the analyser's 50 Ω; 0.5: a
    50 Ω output into 50 Ω), ``temperature_K`` of its feedback resistor, ``amplifier_noise_A_rtHz`` (input)."""

    gain_V_A: float = 1e7
    load_factor: float = 1.0
    temperature_K: float = 295.0
    amplifier_noise_A_rtHz: float = 1e-14

    def noise_V_rtHz(self, dc_current_A: float) -> float:
        """Output white-noise density (V/√Hz): G·κ·√(4kT/G + i_amp² + 2q·I_dc)."""
        johnson = 4.0 * BOLTZMANN_J_K * self.temperature_K / self.gain_V_A
        shot = 2.0 * Q_E * max(dc_current_A, 0.0)
        return self.gain_V_A * self.load_factor * math.sqrt(johnson + self.amplifier_noise_A_rtHz**2 + shot)


@dataclass(frozen=True)
class AnalyserInput:
    """What reaches the spectrum analyser's 50 Ω input: ``tones`` [(frequency Hz, amplitude V rms), ...] and the
    white noise density ``noise_V_rtHz`` (V/√Hz) of the TIA output."""

    tones: list[tuple[float, float]] = field(default_factory=list)
    noise_V_rtHz: float = 0.0


@dataclass
class PLPath:
    """The PL path of ``bench`` (its selected device, its laser through the laser path; see the module docstring).

    plqy_1sun: external integral PLQY at open circuit under 1 sun of generation. peak_nm: PL peak (None: the
    cell's gap, hc/Eg). fwhm_nm: PL width. responsivity_A_W: detector at the PL peak;
    pump_responsivity_A_W: at the pump wavelength. scattered_fraction: pump photons on the device that reach the
    filter stack. emission_blocked: a non-emissive blank is in the device's place (no PL, the stray pump stays).
    """

    bench: Any
    plqy_1sun: float = 0.10
    peak_nm: float | None = None
    fwhm_nm: float = 40.0
    collection: Collection = field(default_factory=Collection)
    filters: tuple[LongPass, ...] = (LongPass(550.0, 0.95, 2.0), LongPass(650.0, 0.95, 3.0))
    responsivity_A_W: float = 0.50
    pump_responsivity_A_W: float = 0.30
    tia: Transimpedance = field(default_factory=Transimpedance)
    scattered_fraction: float = 1e-2
    emission_blocked: bool = False
    #: j0_rad (A) and its temperature (K) per device (by id of its parameters), fixed at first use
    _j0_rad_ref: dict[int, tuple[float, float]] = field(default_factory=dict, init=False, repr=False)

    # -- the device ---------------------------------------------------------------------------------------------
    @property
    def _cell(self) -> Any:
        return self.bench.cell

    def _vt_V(self) -> float:
        return float(sdm.thermal_voltage_V(self._cell.params.temperature_K))

    def _generation_A(self, suns: float) -> float:
        """Generation current of the selected device (A) at ``suns``."""
        jph, _, _ = self._cell.parameters_now()
        return suns * jph * self._cell.params.area_cm2

    def _j0_rad_A(self) -> float:
        """Radiative saturation current (A) of the selected device at its temperature now.

        Fixed once per device by the configured PLQY at 1 sun on the fresh device (no light dose, ions in
        equilibrium) at its temperature then, ``j0_rad = PLQY_1sun·I_gen(1)/(exp(Voc(1)/V_t) − 1)``, and from
        then on a property of the material: it follows the temperature as a diode of ideality 1
        (:func:`labctl.analysis.sdm.j0_at_temperature_A_cm2`), and degradation, which grows the non-radiative
        J0, lowers the PLQY."""
        params = self._cell.params
        key = id(params)
        if key not in self._j0_rad_ref:
            fresh = type(self._cell)(params)
            vt = float(sdm.thermal_voltage_V(params.temperature_K))
            generation_A = fresh.parameters_now()[0] * params.area_cm2
            voc_1 = fresh.open_circuit_voltage_V(1.0)
            j0 = self.plqy_1sun * generation_A / math.expm1(voc_1 / vt) if voc_1 > 0 else 0.0  # a dark device
            self._j0_rad_ref[key] = (j0, params.temperature_K)
        j0, t_ref = self._j0_rad_ref[key]
        if params.temperature_K == t_ref:
            return j0
        return float(sdm.j0_at_temperature_A_cm2(j0, params.temperature_K, params.bandgap_eV, 1.0, t_ref))

    def emitted_flux_per_s(self, suns: float | None = None) -> float:
        """Φ_PL: photons emitted per second by the device at open circuit under ``suns`` (None: the bench's),
        j_rad/q, at most the generation (PLQY ≤ 1)."""
        suns = self.bench.suns if suns is None else suns
        generation_A = self._generation_A(suns)
        if generation_A <= 0:
            return 0.0
        voc = self._cell.open_circuit_voltage_V(suns)
        radiative_A = self._j0_rad_A() * math.expm1(voc / self._vt_V())
        return min(radiative_A, generation_A) / Q_E

    def plqy(self, suns: float | None = None) -> float:
        """External integral PLQY = Φ_PL/N_abs at ``suns`` (None: the bench's); 0 in the dark."""
        suns = self.bench.suns if suns is None else suns
        generation_A = self._generation_A(suns)
        return self.emitted_flux_per_s(suns) * Q_E / generation_A if generation_A > 0 else 0.0

    def k_factor(self, suns: float | None = None) -> float:
        """k = d ln Φ_PL/d ln X at ``suns`` (None: the bench's), by a central difference (methods ref. §5.1)."""
        suns = self.bench.suns if suns is None else suns
        if suns <= 0:
            return 0.0
        up, down = self.emitted_flux_per_s(suns * (1 + K_STEP)), self.emitted_flux_per_s(suns * (1 - K_STEP))
        return math.log(up / down) / math.log((1 + K_STEP) / (1 - K_STEP))

    def plqy_differential(self, suns: float | None = None) -> float:
        """PLQY_diff = dΦ_PL/dN_abs = k·PLQY (methods ref. §5.1)."""
        return self.k_factor(suns) * self.plqy(suns)

    def qfls_eV(self) -> float:
        """The quasi-Fermi-level splitting (eV): q·Voc of the selected device at the bench's light (the
        simulation's choice, module docstring)."""
        return self._cell.open_circuit_voltage_V(self.bench.suns) if self.bench.suns > 0 else 0.0

    # -- the pump -----------------------------------------------------------------------------------------------
    def _pump_on_device_per_s(self) -> float:
        """Pump photons per second falling on the device's position (no noise)."""
        laser = self.bench.laser
        power_W = self.bench.laser_path.device_power_W(self._cell.params.area_cm2, draw=False)
        if not laser.on or power_W <= 0:
            return 0.0
        return power_W * laser.wavelength_nm / HC_NM_V / Q_E

    def absorbed_pump_flux_per_s(self) -> float:
        """N_laser: pump photons absorbed (generating) per second in the device, P·EQE(λ)·λ/(hc): the laser's
        share of the cell's generation (:meth:`sim_instruments.bench.SolarCell.laser_suns`)."""
        power_W = self.bench.laser_path.device_power_W(self._cell.params.area_cm2, draw=False)
        return self._generation_A(self._cell.laser_suns(self.bench.laser, power_W)) / Q_E

    def modulation(self) -> tuple[float, float]:
        """(depth m, frequency Hz) of the laser's modulation (0, 0 when the laser has none)."""
        laser = self.bench.laser
        return float(getattr(laser, "modulation_depth", 0.0)), float(getattr(laser, "modulation_frequency_Hz", 0.0))

    # -- the detection chain ------------------------------------------------------------------------------------
    def pl_peak_nm(self) -> float:
        return self.peak_nm if self.peak_nm is not None else HC_NM_V / self._cell.params.bandgap_eV

    def filter_transmission_pl(self) -> float:
        """T_PL of the filter stack, weighted by the Gaussian PL photon spectrum (±6σ, 2001 points)."""
        sigma = self.fwhm_nm / (2.0 * math.sqrt(2.0 * math.log(2.0)))
        lam = np.linspace(self.pl_peak_nm() - 6 * sigma, self.pl_peak_nm() + 6 * sigma, 2001)
        s = np.exp(-0.5 * ((lam - self.pl_peak_nm()) / sigma) ** 2)
        t = np.ones_like(lam)
        for f in self.filters:
            t = t * f.transmission_at(lam)
        return float(np.sum(t * s) / np.sum(s))

    def filter_transmission_pump(self) -> float:
        """The filter stack's transmission at the pump wavelength."""
        t = 1.0
        for f in self.filters:
            t *= f.transmission_at(self.bench.laser.wavelength_nm)
        return t

    def detector_eqe_pl(self) -> float:
        """EQE_det at the PL peak: R·(hc/q)/λ."""
        return self.responsivity_A_W * HC_NM_V / self.pl_peak_nm()

    def detector_eqe_pump(self) -> float:
        return self.pump_responsivity_A_W * HC_NM_V / self.bench.laser.wavelength_nm

    def _pl_to_current_A(self) -> float:
        """Detector current (A) per emitted PL photon per second: F·T_PL·EQE_det·q."""
        return self.collection.fraction * self.filter_transmission_pl() * self.detector_eqe_pl() * Q_E

    def _stray_to_current_A(self) -> float:
        """Detector current (A) per pump photon per second on the device: scattered·T_pump·EQE_det(pump)·q."""
        return self.scattered_fraction * self.filter_transmission_pump() * self.detector_eqe_pump() * Q_E

    def dc_current_A(self) -> float:
        """DC photocurrent of the detector (A): the PL (none with the emission blocked) and the stray pump."""
        pl = 0.0 if self.emission_blocked else self.emitted_flux_per_s() * self._pl_to_current_A()
        return pl + self._pump_on_device_per_s() * self._stray_to_current_A()

    def line_currents_A_rms(self) -> tuple[float, float, float]:
        """(PL line, its second harmonic, stray-pump line) at the detector (A rms) for the laser's modulation."""
        m, f = self.modulation()
        if m <= 0 or f <= 0 or not self.bench.laser.on:
            return 0.0, 0.0, 0.0
        stray = m / math.sqrt(2.0) * self._pump_on_device_per_s() * self._stray_to_current_A()
        if self.emission_blocked:
            return 0.0, 0.0, stray
        suns = self.bench.suns
        k = self.k_factor(suns)
        delta_abs_rms = m / math.sqrt(2.0) * self.absorbed_pump_flux_per_s()
        line = k * self.plqy(suns) * delta_abs_rms * self._pl_to_current_A()
        return line, line * abs(k - 1.0) * m / 4.0, stray

    def analyser_input(self) -> AnalyserInput:
        """The TIA output at the spectrum analyser: the line at f_mod (PL and stray pump, in phase, added), its
        second harmonic, and the noise density (V/√Hz)."""
        gain = self.tia.gain_V_A * self.tia.load_factor
        with self.bench.lock:
            line, second, stray = self.line_currents_A_rms()
            noise = self.tia.noise_V_rtHz(self.dc_current_A())
        _, f = self.modulation()
        tones = []
        if line + stray > 0:
            tones.append((f, float((line + stray) * gain)))
        if second > 0:
            tones.append((2.0 * f, float(second * gain)))
        return AnalyserInput(tones=tones, noise_V_rtHz=float(noise))


def build_pl(section: Any, bench: Any) -> PLPath | None:
    """The PL path of ``simulation.pl`` (a :class:`sim_instruments.config.PLConfig`; None: no PL path)."""
    if section is None:
        return None
    return PLPath(
        bench=bench,
        plqy_1sun=section.plqy,
        peak_nm=section.peak_nm,
        fwhm_nm=section.fwhm_nm,
        collection=Collection(**section.collection.model_dump()),
        filters=tuple(LongPass(**f.model_dump()) for f in section.filters),
        responsivity_A_W=section.detector.responsivity_A_W,
        pump_responsivity_A_W=section.detector.pump_responsivity_A_W,
        tia=Transimpedance(**section.tia.model_dump()),
        scattered_fraction=section.stray.scattered_fraction,
        emission_blocked=section.emission_blocked,
    )
