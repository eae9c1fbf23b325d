"""Spectral mismatch factor M for a J–V measurement, from an EQE run file and two spectra (IEC 60904-7).

As IEC 60904-7 asks, each response is integrated over its own range (:func:`labctl.analysis.eqe.mismatch_factor`):
the reference cell's spectral response over its whole table (zeros at its ends allowed), the device's over the
range its EQE run measured. Outside that range the device counts as not responding, which is true only if the
scan reached the band edge at its long end: an EQE run that did not is refused (re-measure further), as is a
simulator spectrum that does not cover where either response is not zero.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from labctl.analysis.eqe import BAND_EDGE_FRACTION, check_band_edge, mismatch_factor, response_support_nm
from labctl.analysis.spectra import am15g_W_m2_nm, eqe_to_responsivity, g173_wavelength_nm
from labctl.calibration import load_responsivity, load_spectrum
from labctl.storage import RunData

BUILTIN_REFERENCE_CELL = "csi-reference-typical"


def reference_sr(name_or_path: str) -> tuple[np.ndarray, np.ndarray]:
    """(wavelength_nm, SR) of a reference cell: ``csi-reference-typical`` (pvlib's example c-Si response, on a 1 nm
    grid over its 280–1200 nm table) or a responsivity CSV, where R = 0 rows are allowed (it is only integrated)."""
    if name_or_path == BUILTIN_REFERENCE_CELL:
        from pvlib.spectrum import get_example_spectral_response

        grid = np.arange(280.0, 1200.5, 1.0)
        return grid, get_example_spectral_response(grid).to_numpy(dtype=float)
    table = load_responsivity(name_or_path, allow_zero=True)
    return np.asarray(table.wavelength_nm), np.asarray(table.responsivity_A_W)


def simulator_spectrum(name_or_path: str) -> tuple[np.ndarray, np.ndarray]:
    """(wavelength_nm, irradiance) of the simulator: a CSV, or ``am15g`` (ASTM G173-03, zero below 280 nm)."""
    if name_or_path.lower() == "am15g":
        return np.concatenate(([150.0], g173_wavelength_nm())), np.concatenate(([0.0], am15g_W_m2_nm()))
    return load_spectrum(name_or_path)


def mismatch_for_run(eqe_run: RunData, reference_sr_name: str, simulator_spectrum_name: str,
                     band_edge_fraction: float | None = None) -> tuple[float, dict[str, Any]]:
    """M from the device's measured EQE, the reference cell's SR, the simulator's spectrum and AM1.5G.

    The device's SR is EQE·λ/1239.842 on the run's points. ``band_edge_fraction`` (default: the run's own
    parameter, else :data:`~labctl.analysis.eqe.BAND_EDGE_FRACTION`) decides whether the scan reached the band
    edge. Raises ValueError, one line naming the ranges, when it did not or when the spectrum does not cover
    the range needed. Returns M and what it was computed from.
    """
    if eqe_run.info.get("procedure") != "eqe" or "eqe" not in eqe_run.streams:
        raise ValueError(f"{eqe_run.path}: not an EQE run file")
    data = eqe_run.streams["eqe"].sort_values("wavelength_nm")
    data = data[np.isfinite(data.eqe)]
    run_id = eqe_run.info.get("run_id", "")
    fraction = band_edge_fraction or float(eqe_run.parameters.get("band_edge_fraction") or BAND_EDGE_FRACTION)
    edge = check_band_edge(data.wavelength_nm, data.eqe, fraction)
    wl = data.wavelength_nm.to_numpy(dtype=float)
    lo, hi = float(wl[0]), float(wl[-1])
    if not edge.reached:
        raise ValueError(
            f"EQE run {run_id} ends at {hi:g} nm with EQE {edge.eqe_last:.3f} ({100 * edge.last_fraction:.0f} % of "
            f"its maximum; the band edge needs below {100 * fraction:g} %): the device's response beyond {hi:g} nm "
            "is unknown, so M cannot be computed; measure the EQE past the band edge (larger stop_nm)"
        )
    s_test = (wl, eqe_to_responsivity(wl, data.eqe.to_numpy(dtype=float)))
    s_ref = reference_sr(reference_sr_name)
    r_lo, r_hi = response_support_nm(*s_ref, what=f"reference SR {reference_sr_name}")
    e_sim = simulator_spectrum(simulator_spectrum_name)
    need = (min(r_lo, lo), max(r_hi, hi))
    e_lo, e_hi = float(e_sim[0][0]), float(e_sim[0][-1])
    if e_lo > need[0] or e_hi < need[1]:
        raise ValueError(
            f"simulator spectrum {simulator_spectrum_name} covers {e_lo:g}–{e_hi:g} nm, but the reference SR "
            f"{reference_sr_name} responds over {r_lo:g}–{r_hi:g} nm and the device EQE (run {run_id}) was measured "
            f"over {lo:g}–{hi:g} nm: the spectrum must cover {need[0]:g}–{need[1]:g} nm (outside its table the "
            "simulator's output is unknown, not zero)"
        )
    m = mismatch_factor(s_ref, s_test, e_sim)
    return m, {
        "wavelength_min_nm": lo,
        "wavelength_max_nm": hi,
        "reference_sr_range_nm": [r_lo, r_hi],
        "simulator_spectrum_range_nm": [e_lo, e_hi],
        "band_edge_reached": True,
        "band_edge_fraction": fraction,
        "eqe_at_last_point": edge.eqe_last,
        "integration": "each response over its own range (IEC 60904-7); device EQE 0 outside its measured range",
        "reference_sr": reference_sr_name,
        "simulator_spectrum": simulator_spectrum_name,
        "eqe_run": run_id,
    }
