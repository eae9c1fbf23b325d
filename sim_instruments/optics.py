"""Optics of the simulated EQE bench: lamp → monochromator → order-sorting filter → chopper → detector.

The beam power at the sample plane (W) at dial wavelength λ is the sum of the diffraction orders m = 1, 2:

    P_m(λ) = P_lamp(λ/m) · η_m(λ/m) · T_wheel(λ/m) · T_monofilter · bandwidth_m

A wrong (or missing) order-sorting filter lets λ/2 through, which a detector with response at λ/2 converts
into a spurious signal — as on a real bench (methods ref. §3.6). The filters are the station's own descriptions
(:class:`labctl.analysis.eqe.LongPassFilter`, the model the order-sorting check uses too).

The detector in the beam turns the power into current: a reference photodiode with its responsivity R(λ)
(A/W), or the device under test at short circuit with R = EQE(λ)·λ/1239.842 · Rsh/(Rs+Rsh) (the small-signal
short-circuit current divider of the single-diode model, so the integrated EQE reproduces the J–V Jsc). The
chopper makes it a 50 % duty square wave.

All emulators change the state through the setters, which stamp the time of the change and record the new
detector signal, so the lock-in can run its output filter exactly over what happened between two queries.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from labctl.analysis.eqe import LongPassFilter, integrated_jsc_mA_cm2
from labctl.analysis.spectra import ELEMENTARY_CHARGE_C as Q_E
from labctl.analysis.spectra import HC_OVER_Q_NM_V as HC_NM_V

if TYPE_CHECKING:
    from sim_instruments.config import DeviceConfig, EQEConfig


@dataclass(frozen=True)
class Grating:
    """A monochromator grating; efficiency is a log-normal bump around the blaze wavelength (1st order)."""

    number: int
    lines_per_mm: int
    blaze_nm: float
    min_nm: float
    max_nm: float
    label: str
    peak_efficiency: float = 0.8
    width: float = 0.45  # log-normal width of the efficiency curve

    def efficiency(self, wavelength_nm: float, order: int = 1) -> float:
        """Diffraction efficiency in order ``order`` for light of ``wavelength_nm`` (fraction)."""
        if wavelength_nm <= 0:
            return 0.0
        blaze = self.blaze_nm / order
        peak = self.peak_efficiency * (1.0 if order == 1 else 0.5)
        return peak * math.exp(-0.5 * (math.log(wavelength_nm / blaze) / self.width) ** 2)


@dataclass(frozen=True)
class DetectorSignal:
    """The detector current at the lock-in's input: a square wave between dc_A and dc_A + chopped_pp_A (A)."""

    chopped_pp_A: float
    dc_A: float
    frequency_Hz: float
    phase_deg: float
    noise_A_rtHz: float


def xe_lamp_W_nm(wavelength_nm: float, scale_W_nm: float = 3.39e-7) -> float:
    """Relative Xe-arc output at the exit slit per nm of bandpass (W/nm): a 6000 K grey body with the bulb's
    UV cut-off near 260 nm and IR tail; normalised so that ~2.5 µW reach the sample at 600 nm (grating 1)."""
    lam_m = wavelength_nm * 1e-9
    planck = 1.0 / (lam_m**5 * math.expm1(min(1.4387769e-2 / (lam_m * 6000.0), 700)))
    planck_600 = 1.0 / ((600e-9) ** 5 * math.expm1(1.4387769e-2 / (600e-9 * 6000.0)))
    uv_cut = 1.0 / (1.0 + math.exp(-(wavelength_nm - 265.0) / 8.0))
    return scale_W_nm * planck / planck_600 * uv_cut


@dataclass
class Optics:
    """State of the EQE bench optics and the detector signal it produces (see the module docstring)."""

    clock: object
    gratings: list[Grating]
    wheel_filters: dict[int, LongPassFilter | None]
    mono_filters: dict[int, LongPassFilter | None]
    reference_responsivity: dict[str, Callable[[float], float]]
    #: A/W of the device under test at λ (nm); the bench connects its selected device's (``Bench.select_device``)
    dut_responsivity: Callable[[float], float] = field(default=lambda wavelength_nm: 0.0)
    chopper_frequency_Hz: float = 220.0
    preamp_gain_V_A: float | None = 1e6
    bandpass_nm: float = 10.0
    lamp_W_nm: Callable[[float], float] = xe_lamp_W_nm
    input_noise_A_rtHz: float = 2e-14
    flicker_rtHz: float = 2e-5
    bias_light_A: float = 0.0
    wheel_slots: int = 6
    # state
    wavelength_nm: float = 500.0
    grating: int = 1
    mono_shutter_open: bool = False
    mono_filter: int = 1
    wheel_position: int = 1
    in_beam: str = "dut"
    chopper_on: bool = True
    _history: list[tuple[float, DetectorSignal]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._record()

    # -- setters used by emulators and the station (each stamps the change) --------------------------------------
    def set_wavelength(self, wavelength_nm: float) -> None:
        self.wavelength_nm = float(wavelength_nm)
        self._record()

    def set_grating(self, number: int) -> None:
        self.grating = int(number)
        self._record()

    def set_mono_shutter(self, is_open: bool) -> None:
        self.mono_shutter_open = bool(is_open)
        self._record()

    def set_mono_filter(self, position: int) -> None:
        self.mono_filter = int(position)
        self._record()

    def set_wheel_position(self, position: int) -> None:
        self.wheel_position = int(position)
        self._record()

    def place_in_beam(self, detector: str) -> None:
        """Put ``"dut"`` or a reference detector (by name) at the sample position."""
        if detector != "dut" and detector not in self.reference_responsivity:
            known = ", ".join(["dut", *self.reference_responsivity])
            raise ValueError(f"no detector '{detector}' on the bench; have {known}")
        self.in_beam = detector
        self._record()

    def set_preamp_gain(self, gain_V_A: float | None) -> None:
        """Transimpedance gain between the detector and the lock-in (V/A), e.g. from an SR570's sensitivity."""
        self.preamp_gain_V_A = gain_V_A
        self._record()

    def set_bias_light(self, current_A: float) -> None:
        self.bias_light_A = float(current_A)
        self._record()

    # -- physics ------------------------------------------------------------------------------------------------
    def grating_by_number(self, number: int) -> Grating:
        for g in self.gratings:
            if g.number == number:
                return g
        raise KeyError(number)

    def beam_power_W(self, order: int) -> float:
        """Power at the sample plane in diffraction order ``order`` (W), with the present settings."""
        if not self.mono_shutter_open:
            return 0.0
        lam = self.wavelength_nm / order
        grating = self.grating_by_number(self.grating)
        wheel = self.wheel_filters.get(self.wheel_position)
        mono = self.mono_filters.get(self.mono_filter)
        t = (wheel.transmission(lam) if wheel else 1.0) * (mono.transmission(lam) if mono else 1.0)
        # the bandpass in wavelength shrinks as 1/m in order m
        return self.lamp_W_nm(lam) * grating.efficiency(lam, order) * t * self.bandpass_nm / order

    def _responsivity(self, wavelength_nm: float) -> float:
        if self.in_beam == "dut":
            return self.dut_responsivity(wavelength_nm)
        return self.reference_responsivity[self.in_beam](wavelength_nm)

    def _compute(self) -> DetectorSignal:
        current = 0.0
        for order in (1, 2):
            lam = self.wavelength_nm / order
            power = self.beam_power_W(order)
            if power > 0:
                current += power * max(self._responsivity(lam), 0.0)
        pp = current if self.chopper_on else 0.0
        bias = self.bias_light_A if self.in_beam == "dut" else 0.0
        dc = bias + (0.0 if self.chopper_on else current)
        mean = dc + pp / 2
        noise = math.sqrt(self.input_noise_A_rtHz**2 + 2 * Q_E * abs(mean) + (self.flicker_rtHz * pp) ** 2)
        phase = -12.0 if self.in_beam == "dut" else -8.0  # preamp + chopper-slot geometry lag (deg)
        return DetectorSignal(pp, dc, self.chopper_frequency_Hz, phase, noise)

    def _record(self) -> None:
        now = self.clock.now()
        self._history.append((now, self._compute()))
        if len(self._history) > 4096:
            del self._history[:2048]

    def detector_signal(self) -> DetectorSignal:
        return self._history[-1][1]

    def signal_history_since(self, t_s: float) -> list[tuple[float, DetectorSignal]]:
        """[(t_change, signal)], the first entry being the signal in force at ``t_s`` (stamped ``t_s``)."""
        hist = self._history
        i = len(hist) - 1
        while i > 0 and hist[i][0] > t_s:
            i -= 1
        first = (max(t_s, hist[i][0]), hist[i][1])
        return [first] + [h for h in hist[i + 1 :] if h[0] > t_s]


def eqe_band_edge(wavelength_nm: float | np.ndarray, bandgap_eV: float, urbach_eV: float, plateau: float,
                  shape: Sequence[tuple[float, float]] | None = None) -> np.ndarray:
    """EQE(λ): ``plateau`` above the gap, an Urbach tail exp((E − Eg)/E_U) below (methods ref. §6.3), times an
    optional relative shape table [(nm, factor)] interpolated linearly (1 outside it)."""
    lam = np.asarray(wavelength_nm, dtype=float)
    energy = HC_NM_V / np.maximum(lam, 1e-9)
    eqe = plateau * np.where(energy >= bandgap_eV, 1.0, np.exp(np.minimum(energy - bandgap_eV, 0.0) / urbach_eV))
    if shape:
        xs, ys = zip(*sorted(shape), strict=True)
        eqe = eqe * np.interp(lam, xs, ys, left=1.0, right=1.0)
    return eqe


#: wavelength grid (nm) on which the simulated EQE is integrated and searched for its peak
_EQE_GRID_NM = (280.0, 2000.0, 1.0)


def eqe_limits(eqe: EQEConfig) -> tuple[float, float]:
    """(Jsc in mA/cm², peak EQE) of the simulated EQE shape with ``plateau = 1`` under AM1.5G (methods ref. §3.5).

    Jsc/peak is the largest photocurrent the gap (with its Urbach tail and ``shape``) allows: the EQE then reaches
    1 at its peak. Without a shape the peak is 1 and Jsc is the methods' Jsc,max (e.g. 28.97 mA/cm² at 1.50 eV)
    plus the Urbach tail below the gap.
    """
    grid = np.arange(*_EQE_GRID_NM)
    unit = eqe_band_edge(grid, eqe.bandgap_eV, eqe.urbach_meV / 1e3, 1.0, eqe.shape)
    return integrated_jsc_mA_cm2(grid, unit), float(np.max(unit))


def dut_eqe_plateau(device: DeviceConfig) -> float:
    """The simulated cell's EQE plateau: ``eqe.plateau``, or (null) derived so that ∫EQE·Φ_AM1.5G = jph_mA_cm2."""
    if device.eqe.plateau is not None:
        return device.eqe.plateau
    jsc_unit_mA_cm2, _ = eqe_limits(device.eqe)
    return device.jph_mA_cm2 / jsc_unit_mA_cm2


def dut_eqe_function(device: DeviceConfig) -> Callable[[float | np.ndarray], np.ndarray]:
    """The simulated cell's EQE(λ in nm), with the plateau derived from jph_mA_cm2 when not given (AM1.5G)."""
    e = device.eqe
    plateau = dut_eqe_plateau(device)

    def eqe(wavelength_nm: float | np.ndarray) -> np.ndarray:
        return eqe_band_edge(wavelength_nm, e.bandgap_eV, e.urbach_meV / 1e3, plateau, e.shape)

    return eqe
