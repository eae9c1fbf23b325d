"""Spectral mismatch factor M for a J–V measurement, from an EQE run file and two spectra (IEC 60904-7)."""

from __future__ import annotations

from typing import Any

import numpy as np

from labctl.analysis.eqe import spectral_mismatch
from labctl.analysis.spectra import am15g_W_m2_nm, eqe_to_responsivity
from labctl.calibration import load_responsivity, load_spectrum
from labctl.storage import RunData

BUILTIN_REFERENCE_CELL = "csi-reference-typical"


def _reference_sr(name_or_path: str, grid: np.ndarray) -> np.ndarray:
    if name_or_path == BUILTIN_REFERENCE_CELL:
        from pvlib.spectrum import get_example_spectral_response

        return get_example_spectral_response(grid).to_numpy(dtype=float)
    table = load_responsivity(name_or_path)
    return np.interp(grid, table.wavelength_nm, table.responsivity_A_W, left=0.0, right=0.0)


def mismatch_for_run(eqe_run: RunData, reference_sr: str, simulator_spectrum: str) -> tuple[float, dict[str, Any]]:
    """M from the device's measured EQE, the reference cell's SR, the simulator's spectrum and AM1.5G.

    Integrals run over the EQE run's wavelength range on a 1 nm grid; the test device's SR is EQE·λ/1239.842.
    """
    if eqe_run.info.get("procedure") != "eqe" or "eqe" not in eqe_run.streams:
        raise ValueError(f"{eqe_run.path}: not an EQE run file")
    data = eqe_run.streams["eqe"].sort_values("wavelength_nm")
    lo, hi = float(data.wavelength_nm.min()), float(data.wavelength_nm.max())
    grid = np.arange(np.ceil(lo), np.floor(hi) + 1.0, 1.0)
    s_test = eqe_to_responsivity(grid, np.interp(grid, data.wavelength_nm, data.eqe))
    s_ref = _reference_sr(reference_sr, grid)
    if simulator_spectrum.lower() == "am15g":
        e_sim = am15g_W_m2_nm(grid)
    else:
        wl, e = load_spectrum(simulator_spectrum)
        e_sim = np.interp(grid, wl, e, left=0.0, right=0.0)
    m = float(spectral_mismatch(grid, e_sim, s_ref, s_test))
    return m, {"wavelength_min_nm": lo, "wavelength_max_nm": hi, "reference_sr": reference_sr,
               "simulator_spectrum": simulator_spectrum, "eqe_run": eqe_run.info.get("run_id", "")}
