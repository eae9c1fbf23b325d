"""``labctl analyze voc-loss``: the detailed-balance Voc-loss table of a device from its J–V, EQE and PLQY runs.

Inputs (each a run file, or a run id the station's catalog resolves):

* J–V run: Voc and Jsc of one scan of its results (``qss`` if the run has it, else ``reverse``, else ``forward``;
  or the scan asked for);
* EQE run (procedure ``eqe``): its ``eqe`` stream, EQE(λ) with λ in nm;
* PLQY run (procedure ``plqy``): its results' ``plqy`` (absolute, integral PLQY; methods ref. §5.1), or a number.

The analysis (labctl.analysis.detailed_balance; methods ref. §6, §8) is stored as a run file of procedure
``voc-loss`` (no streams: its results, and the inputs' run ids as parameters) in the station's data folder, and
indexed in the catalog.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from labctl.analysis.detailed_balance import (
    VocLosses,
    dvoc_sr_uncertainty_V,
    radiative_limit_from_eqe,
    surface_loss_warnings,
    voc_losses,
)
from labctl.config import ConfigError

PROCEDURE = "voc-loss"
#: J–V scans in the order of preference when none is asked for: the steady state first, then the reverse scan
JV_SCANS = ("qss", "reverse", "forward")
#: the default temperature of the analysis, K: the J–V's standard test condition (25 °C; methods ref. §0)
DEFAULT_TEMPERATURE_K = 298.15
#: the keys of the loss table, in the order of the printed table: (key, label, unit, scale, format)
TABLE = (
    ("eg_eV", "E_g (EQE)", "eV", 1.0, "{:.4f}"),
    ("voc_rad_V", "V_oc,rad", "V", 1.0, "{:.4f}"),
    ("qfls_eV", "QFLS μ (μ/q)", "eV", 1.0, "{:.4f}"),
    ("voc_V", "V_oc (J–V)", "V", 1.0, "{:.4f}"),
    ("dvoc_rad_V", "ΔV_oc,rad = E_g/q − V_oc,rad", "mV", 1e3, "{:.1f}"),
    ("dvoc_nr_V", "ΔV_oc,nr = (kT/q)·ln(1/PLQY)", "mV", 1e3, "{:.1f}"),
    ("dvoc_sr_V", "ΔV_oc,sr = μ/q − V_oc", "mV", 1e3, "{:.1f}"),
    ("j0r_A_cm2", "j_0,rad", "A/cm²", 1.0, "{:.3e}"),
    ("jsc_mA_cm2", "J_sc (J–V)", "mA/cm²", 1.0, "{:.3f}"),
    ("plqy", "PLQY", "%", 100.0, "{:.3g}"),
)


def jv_figures(results: dict[str, Any], scan: str | None = None) -> tuple[str, float, float]:
    """(scan, Voc in V, Jsc in mA/cm²) of a J–V run's results: ``scan``, or the first of :data:`JV_SCANS`."""
    scans = [s for s in JV_SCANS if isinstance(results.get(s), dict)]
    if scan is not None and scan not in scans:
        raise ConfigError(f"--jv-scan = {scan!r}: the J–V run has no such scan; it has {scans or 'none'}")
    chosen = scan or (scans[0] if scans else None)
    if chosen is None:
        raise ConfigError(f"--jv: the run has no J–V scan results ({', '.join(JV_SCANS)}): not a light J–V run")
    voc, jsc = results[chosen].get("voc_V"), results[chosen].get("jsc_mA_cm2")
    for key, value in (("voc_V", voc), ("jsc_mA_cm2", jsc)):
        if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
            raise ConfigError(f"--jv: {chosen} {key} = {value!r}: a positive number is needed")
    return chosen, float(voc), float(jsc)


def eqe_curve(run: Any) -> tuple[list[float], list[float]]:
    """(wavelength_nm, eqe) of an ``eqe`` run's ``eqe`` stream (docs/data-format.md "EQE streams")."""
    procedure = run.info.get("procedure")
    if procedure != "eqe" or "eqe" not in run.streams:
        raise ConfigError(f"--eqe {run.path}: procedure {procedure!r} without an 'eqe' stream; allowed: an 'eqe' run")
    frame = run.streams["eqe"]
    return frame["wavelength_nm"].to_list(), frame["eqe"].to_list()


def plqy_from_run(run: Any) -> float:
    """The absolute (integral) PLQY of a ``plqy`` run: its results' ``plqy`` (fraction)."""
    value = run.results.get("plqy")
    if run.info.get("procedure") != "plqy" or not isinstance(value, int | float) or not 0 < value <= 1:
        raise ConfigError(f"--plqy {run.path}: procedure {run.info.get('procedure')!r}, results plqy = {value!r}; "
                          "allowed: a 'plqy' run with 0 < plqy <= 1")
    return float(value)


def analyse(wavelength_nm: list[float], eqe: list[float], voc_V: float, jsc_mA_cm2: float, plqy: float,
            temperature_K: float) -> dict[str, Any]:
    """The loss table (JSON-able): the keys of :data:`TABLE`, the band-gap method, the Urbach extension and its
    E_U, integration limits, the EQE floor, the ΔVoc,SR uncertainty, the identity's residual and warnings."""
    if not 0 < plqy <= 1:
        raise ConfigError(f"plqy = {plqy!r}: allowed 0 < plqy <= 1 (a fraction)")
    if not temperature_K > 0:
        raise ConfigError(f"--temperature = {temperature_K!r}: allowed > 0 K")
    try:
        limit = radiative_limit_from_eqe(wavelength_nm, eqe, temperature_K)
    except ValueError as exc:
        raise ConfigError(f"--eqe: {exc}") from None
    losses: VocLosses = voc_losses(limit.eg_eV, jsc_mA_cm2 * 1e-3, limit.j0r_A_cm2, voc_V, plqy, temperature_K)
    sigma = dvoc_sr_uncertainty_V(temperature_K)
    table = asdict(losses)
    table.pop("jsc_A_cm2")
    results: dict[str, Any] = {
        **table,
        "jsc_mA_cm2": jsc_mA_cm2,
        "eg_method": limit.eg_method,
        "urbach_extension": limit.urbach_extension,
        "urbach_energy_eV": limit.urbach_energy_eV,
        "urbach_extended_below_eV": limit.extended_below_eV,
        "eqe_noise_floor": limit.eqe_noise_floor,
        "integration_lo_eV": limit.integration_lo_eV,
        "integration_hi_eV": limit.integration_hi_eV,
        "dvoc_sr_uncertainty_V": sigma,
        "identity_residual_V": losses.eg_eV - losses.dvoc_rad_V - losses.dvoc_nr_V - losses.dvoc_sr_V - voc_V,
        "warnings": [*limit.warnings, *surface_loss_warnings(losses, sigma)],
    }
    return results


def resolve_run_file(ref: str, what: str, catalog_url: str | None, station: str, data_dir: Path) -> Path:
    """``ref`` as a run file if it is one, else a run id of ``station`` in the catalog (after a reindex of the data
    folder when the catalog does not know it)."""
    path = Path(ref)
    if path.is_file():
        return path
    from labctl.catalog import Catalog, CatalogError

    where = f"the catalog {catalog_url}" if catalog_url else "no catalog"
    if catalog_url is not None:
        try:
            with Catalog(catalog_url) as catalog:
                found = catalog.get(station, ref)
                if found is None and data_dir.is_dir():
                    catalog.reindex(data_dir)
                    found = catalog.get(station, ref)
        except CatalogError as exc:
            raise ConfigError(f"{what} {ref}: {exc}") from None
        if found is not None and Path(found.path).is_file():
            return Path(found.path)
    raise ConfigError(f"{what} = {ref!r}: neither a run file nor a run id of station {station!r} in {where}")


def store_run(data_dir: Path, results: dict[str, Any], parameters: dict[str, tuple[Any, str]], *, sample: str,
              operator: str, station: dict[str, Any], catalog_url: str | None) -> tuple[str, Path]:
    """Write the analysis as a run file ``<data_dir>/<UTC date>/<run id>.h5`` (procedure ``voc-loss``, no
    streams, status completed) and index it in the catalog; returns (run id, path)."""
    from labctl import __version__
    from labctl.engine import make_run_id
    from labctl.storage import RunWriter, utc_now_iso

    run_id = make_run_id(PROCEDURE, sample)
    path = data_dir / datetime.now(timezone.utc).strftime("%Y-%m-%d") / f"{run_id}.h5"
    with RunWriter(path) as writer:
        writer.write_metadata(run_id=run_id, procedure=PROCEDURE, sample=sample, operator=operator, area_cm2=None,
                              parameters=parameters, station=station, idn={}, software_version=__version__,
                              start_time=utc_now_iso())
        for text in results["warnings"]:
            writer.log_event(text)
        writer.write_results(results)
    if catalog_url is not None:
        from labctl.catalog import Catalog

        with Catalog(catalog_url) as catalog:
            catalog.record_file(path)
    return run_id, path


def print_table(console: Any, results: dict[str, Any]) -> None:
    """The loss table, as in a paper's supplementary table."""
    from rich.table import Table

    table = Table(title=f"Voc losses (detailed balance, T = {results['temperature_K']:g} K)")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_column("unit")
    for key, label, unit, scale, fmt in TABLE:
        value = results.get(key)
        table.add_row(label, "—" if value is None else fmt.format(value * scale), unit)
    console.print(table)
    tail = (f"Urbach tail fitted (E_U = {results['urbach_energy_eV'] * 1e3:.1f} meV) and extended below "
            f"{results['urbach_extended_below_eV']:.3f} eV" if results["urbach_extension"] else "no Urbach extension")
    console.print(f"E_g by {results['eg_method']}; {tail}; j0,rad integrated over "
                  f"{results['integration_lo_eV']:.2f}–{results['integration_hi_eV']:.2f} eV; EQE noise floor "
                  f"{results['eqe_noise_floor']:.2g}; ΔV_oc,sr uncertainty "
                  f"±{results['dvoc_sr_uncertainty_V'] * 1e3:.1f} mV", highlight=False)
