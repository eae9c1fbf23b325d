"""Regenerate labctl's built-in TYPICAL responsivity tables of the reference photodiodes (Methods ref. §3.2).

These are modelled curves, NOT calibrations: no vendor or certificate data went into them. They let the
simulated bench and the tests run, and show the expected shape; a real measurement must load the
calibration certificate of the actual detector (``labctl.calibration.load_responsivity(path)``).

Model, per detector (all lengths in µm, α in cm⁻¹)::

    R(λ) = (1 − L_front(λ)) · IQE(λ) · λ[nm]/1239.842                                  [A/W]
    IQE  = ∫₀^T α·e^(−α·x)·c(x) dx                                                    (closed form below)
    c(x) = p_s + (1 − p_s)·x/d_s   for x < d_s       surface recombination (dead-ish layer)
           1                        d_s ≤ x ≤ W       depletion region and near it
           e^(−(x − W)/L)          W < x ≤ T         diffusion towards the junction, L = diffusion length
    L_front(λ) = L_ir + (L_uv − L_ir)/(1 + e^((λ − λ_t)/w))                           effective front loss

* Silicon α(λ): Rajkanan, Singh & Shewchun, Solid-State Electronics 22, 793 (1979) — two indirect gaps with
  two phonons plus one direct gap, Varshni-type temperature shift; evaluated at 296.15 K. Above 4 eV
  (< 310 nm) the formula is extrapolated; there the absorption depth (< 10 nm) is far below d_s, so the
  IQE is set by p_s, not by α.
* Germanium α(λ): an effective two-edge form, α = A_d·√(E_U·ln(1 + e^((E − E_d)/E_U))) + B_i·(E − E_i)²,
  with the direct (Γ, 0.80 eV) and indirect (L, 0.66 eV) gaps at room temperature and rounded prefactors that
  give α of order 10⁴ cm⁻¹ at 1000–1300 nm and 10²–10³ cm⁻¹ near 1550–1600 nm.
* The collection parameters and the front loss are not measured; they were chosen so that the peaks land on
  typical published figures for such detectors: Si ≈ 0.5 A/W near 900–960 nm, Ge ≈ 0.85 A/W near
  1500–1550 nm. Back-surface reflection is neglected.

Usage: ``python labctl/data/make_detector_tables.py`` rewrites the CSV files beside this script;
``--check`` only compares and exits with status 1 on a difference.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy.constants import Boltzmann, elementary_charge

from labctl.analysis.spectra import HC_OVER_Q_NM_V

HERE = Path(__file__).resolve().parent


def alpha_si_per_cm(wavelength_nm: NDArray[np.float64], temperature_K: float = 296.15) -> NDArray[np.float64]:
    """Silicon absorption coefficient in cm⁻¹ (Rajkanan, Singh & Shewchun 1979)."""
    e = HC_OVER_Q_NM_V / np.asarray(wavelength_nm, dtype=float)
    kt = Boltzmann * temperature_K / elementary_charge

    def gap(e0_eV: float) -> float:
        return e0_eV - 7.021e-4 * temperature_K**2 / (temperature_K + 1108.0)

    phonon_eV, c = (1.827e-2, 5.773e-2), (5.5, 4.0)
    indirect = ((gap(1.1557), 3.231e2), (gap(2.5), 7.237e3))  # (gap eV, A_j cm⁻¹ eV⁻²)
    alpha = np.zeros_like(e)
    for ep, ci in zip(phonon_eV, c, strict=True):
        for eg, aj in indirect:
            absorb = np.clip(e - eg + ep, 0.0, None) ** 2 / np.expm1(ep / kt)
            emit = np.clip(e - eg - ep, 0.0, None) ** 2 / -np.expm1(-ep / kt)
            alpha += ci * aj * (absorb + emit)
    return alpha + 1.052e6 * np.sqrt(np.clip(e - gap(3.2), 0.0, None))


def alpha_ge_per_cm(wavelength_nm: NDArray[np.float64]) -> NDArray[np.float64]:
    """Germanium absorption coefficient in cm⁻¹, effective two-edge form at room temperature (see module doc)."""
    e = HC_OVER_Q_NM_V / np.asarray(wavelength_nm, dtype=float)
    e_u, e_d, e_i = 0.006, 0.80, 0.66
    direct = 2.0e4 * np.sqrt(e_u * np.logaddexp(0.0, (e - e_d) / e_u))
    return direct + 1.0e4 * np.clip(e - e_i, 0.0, None) ** 2


def collection_iqe(
    alpha_per_cm: NDArray[np.float64], p_s: float, d_s_um: float, w_um: float, l_um: float, t_um: float
) -> NDArray[np.float64]:
    """Internal QE = ∫α·e^(−αx)·c(x) dx over the collection profile c(x) of the module docstring (closed form)."""
    a = np.asarray(alpha_per_cm, dtype=float) * 1e-4  # µm⁻¹
    surface = p_s * -np.expm1(-a * d_s_um) + (1 - p_s) / d_s_um * (1 - np.exp(-a * d_s_um) * (1 + a * d_s_um)) / a
    depletion = np.exp(-a * d_s_um) - np.exp(-a * w_um)
    k = a + 1.0 / l_um
    diffusion = a * np.exp(-a * w_um) * -np.expm1(-k * (t_um - w_um)) / k
    return surface + depletion + diffusion


@dataclass(frozen=True)
class DetectorModel:
    """Parameters of one modelled detector (see the module docstring)."""

    name: str
    filename: str
    title: str
    material: str
    start_nm: float
    stop_nm: float
    step_nm: float
    p_s: float
    d_s_um: float
    w_um: float
    l_um: float
    t_um: float
    loss_uv: float
    loss_ir: float
    loss_transition_nm: float
    loss_width_nm: float

    def wavelength_nm(self) -> NDArray[np.float64]:
        n = int(round((self.stop_nm - self.start_nm) / self.step_nm))
        return self.start_nm + self.step_nm * np.arange(n + 1)

    def responsivity_A_W(self, wavelength_nm: NDArray[np.float64]) -> NDArray[np.float64]:
        alpha = alpha_si_per_cm(wavelength_nm) if self.material == "Si" else alpha_ge_per_cm(wavelength_nm)
        iqe = collection_iqe(alpha, self.p_s, self.d_s_um, self.w_um, self.l_um, self.t_um)
        loss = self.loss_ir + (self.loss_uv - self.loss_ir) / (
            1.0 + np.exp((wavelength_nm - self.loss_transition_nm) / self.loss_width_nm)
        )
        return (1.0 - loss) * iqe * wavelength_nm / HC_OVER_Q_NM_V


MODELS = (
    DetectorModel(
        "si-818uv-typical", "si_818uv_typical.csv", "silicon photodiode, UV-enhanced, like a Newport 818-UV",
        "Si", 200.0, 1100.0, 5.0,
        p_s=0.9, d_s_um=0.03, w_um=40.0, l_um=300.0, t_um=400.0,
        loss_uv=0.45, loss_ir=0.30, loss_transition_nm=330.0, loss_width_nm=40.0,
    ),
    DetectorModel(
        "ge-818ir-typical", "ge_818ir_typical.csv", "germanium photodiode, like a Newport 818-IR",
        "Ge", 780.0, 1800.0, 5.0,
        p_s=0.2, d_s_um=0.6, w_um=5.0, l_um=150.0, t_um=150.0,
        loss_uv=0.28, loss_ir=0.28, loss_transition_nm=1000.0, loss_width_nm=100.0,
    ),
)


def render_csv(model: DetectorModel) -> str:
    """The CSV text of one table: ``#`` provenance header, column names, one row per wavelength."""
    wl = model.wavelength_nm()
    r = model.responsivity_A_W(wl)
    k = int(np.argmax(r))
    alpha_src = (
        "Rajkanan, Singh & Shewchun, Solid-State Electron. 22, 793 (1979), at 296.15 K"
        if model.material == "Si"
        else "effective two-edge form (direct 0.80 eV, indirect 0.66 eV), room temperature"
    )
    header = [
        f"labctl built-in responsivity table '{model.name}': {model.title}, {model.start_nm:g}-{model.stop_nm:g} nm",
        "TYPICAL MODELLED CURVE - NOT A CALIBRATION. No vendor or certificate data were used, and it is not",
        "Newport data. For measurements, load the calibration certificate of your own detector:",
        "labctl.calibration.load_responsivity('path/to/certificate.csv').",
        "Model: R = (1 - front loss) * IQE * wavelength/1239.842; IQE from the absorption depth and a collection",
        f"profile (surface {model.p_s:g} rising to 1 at {model.d_s_um:g} um, 1 to {model.w_um:g} um, then",
        f"exp(-(x - {model.w_um:g} um)/{model.l_um:g} um) to {model.t_um:g} um); absorption coefficient: {alpha_src};",
        f"front loss {model.loss_uv:g} (short) to {model.loss_ir:g} (long wavelengths), logistic at "
        f"{model.loss_transition_nm:g} nm, width {model.loss_width_nm:g} nm.",
        f"Modelled peak: {r[k]:.3f} A/W at {wl[k]:g} nm. See labctl/data/README.md.",
        "Generated by labctl/data/make_detector_tables.py. Columns: wavelength in nm, responsivity in A/W.",
    ]
    lines = [f"# {h}" for h in header] + ["wavelength_nm,responsivity_A_W"]
    lines += [f"{w:g},{x:.5f}" for w, x in zip(wl, r, strict=True)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the files, do not write")
    args = parser.parse_args(argv)
    status = 0
    for model in MODELS:
        path = HERE / model.filename
        text = render_csv(model)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                print(f"{path} differs from the model", file=sys.stderr)
                status = 1
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    return status


if __name__ == "__main__":
    sys.exit(main())
