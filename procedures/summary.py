"""How results are printed for a person: the tables and lines that ``labctl run`` and ``labctl show`` print.

Each procedure picks what it prints in its ``summarise(console, results)`` classmethod (default: every scalar
result, see :meth:`procedures.base.LabProcedure.summarise`); the shared table code is here. Everything goes to
the given rich ``Console`` (stdout in the CLI: never wrapped or truncated in a pipe).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

#: the figures-of-merit table of a light J–V: result key, row label, format
FOM_ROWS = [
    ("voc_V", "Voc (V)", "{:.4f}"),
    ("jsc_mA_cm2", "Jsc (mA/cm²)", "{:.3f}"),
    ("ff", "FF (%)", "{:.2%}"),
    ("pce_pct", "PCE (%)", "{:.3f}"),
    ("vmp_V", "Vmp (V)", "{:.4f}"),
    ("jmp_mA_cm2", "Jmp (mA/cm²)", "{:.3f}"),
    ("r_oc_ohm_cm2", "R_oc at Voc (Ω·cm²)", "{:.2f}"),
    ("r_sc_ohm_cm2", "R_sc at 0 V (Ω·cm²)", "{:.0f}"),
    ("rs_ohm_cm2", "Rs, SDM fit (Ω·cm²)", "{:.2f}"),
    ("rsh_ohm_cm2", "Rsh, SDM fit (Ω·cm²)", "{:.0f}"),
]

#: the dark J–V table: result key, its uncertainty's key, row label, format
DARK_ROWS = [
    ("j0_A_cm2", "j0_uncertainty_A_cm2", "J0 (A/cm²)", "{:.4g}"),
    ("ideality", "ideality_uncertainty", "n", "{:.4f}"),
    ("rs_ohm_cm2", "rs_uncertainty_ohm_cm2", "Rs (Ω·cm²)", "{:.3f}"),
    ("rsh_ohm_cm2", "rsh_uncertainty_ohm_cm2", "Rsh (Ω·cm²)", "{:.0f}"),
    ("rms_log_residual", None, "rms ln(J_fit/J)", "{:.2g}"),
    ("points", None, "points fitted", "{}"),
]


def fmt(spec: str, value: Any) -> str:
    """``value`` in format ``spec``; "—" for a figure that was not computed (None); a percentage without its %."""
    if value is None:
        return "—"
    return spec.format(value).rstrip("%") if spec.endswith("%}") else spec.format(value)


def _plus_minus(text: str, value: Any, u: Any) -> str:
    return f"{text} ± {float(f'{u:.2g}'):g}" if u is not None and value is not None else text


def with_uncertainty(spec: str, figures: Mapping[str, Any], key: str) -> str:
    """The figure, with ``± u`` when the analysis gives its uncertainty (``<name>_uncertainty_<unit>``)."""
    text = fmt(spec, figures.get(key))
    name, _, unit = key.partition("_ohm")
    u = figures.get(f"{name}_uncertainty_ohm{unit}") if unit or key.endswith("_ohm") else None
    return _plus_minus(text, figures.get(key), u)


def _flags(figures: Mapping[str, Any]) -> str:
    return "\n".join(figures.get("flags") or []) or "—"


def print_scalars(console: Console, results: Mapping[str, Any]) -> None:
    """Every result that is not a nested mapping, one ``key: value`` line each (floats to 6 significant digits)."""
    for key, value in results.items():
        if isinstance(value, float):
            console.print(f"{key}: {value:.6g}", highlight=False)
        elif not isinstance(value, dict):
            console.print(f"{key}: {value}", highlight=False)


def print_figures_of_merit(console: Console, results: Mapping[str, Any], directions: list[str]) -> None:
    """The figures-of-merit table, one column per J–V direction (``results[direction]``), then its flags."""
    table = Table(title="Figures of merit")
    table.add_column("")
    for d in directions:
        table.add_column(d, justify="right")
    for key, label, spec in FOM_ROWS:
        table.add_row(label, *[with_uncertainty(spec, results[d], key) for d in directions])
    table.add_row("flags", *[_flags(results[d]) for d in directions])
    console.print(table)


def print_hysteresis(console: Console, hysteresis: Mapping[str, Any]) -> None:
    """One line: the hysteresis indices (methods ref. §2) and their flags."""
    values = ", ".join(f"{k} {v:.4f}" for k, v in hysteresis.items() if isinstance(v, (int, float)))
    flags = ", ".join(hysteresis.get("flags") or [])
    console.print("hysteresis: " + (values or "not computed") + (f" (flags: {flags})" if flags else ""),
                  soft_wrap=True)


def print_dark_fit(console: Console, dark: Mapping[str, Mapping[str, Any]]) -> None:
    """The dark J–V table: the single-diode dark fit per direction (methods ref. §1.8)."""
    table = Table(title="Dark J–V, single-diode fit")
    table.add_column("")
    for d in dark:
        table.add_column(d, justify="right")
    for key, u_key, label, spec in DARK_ROWS:
        cells = [_plus_minus(fmt(spec, fit.get(key)), fit.get(key), fit.get(u_key) if u_key else None)
                 for fit in dark.values()]
        table.add_row(label, *cells)
    table.add_row("flags", *[_flags(fit) for fit in dark.values()])
    console.print(table)


def print_eqe_checks(console: Console, results: Mapping[str, Any]) -> None:
    """The two checks of an EQE run: band edge reached, integrated Jsc against the J–V Jsc."""
    frac = results.get("band_edge_fraction")
    last, peak = results.get("eqe_at_last_point"), results.get("eqe_max")
    if results.get("band_edge_reached") is not None and frac is not None and last is not None and peak:
        state = "reached" if results["band_edge_reached"] else "[bold yellow]NOT reached[/]"
        console.print(f"band edge: {state} (EQE at {results['wavelength_max_nm']:g} nm is {100 * last / peak:.3g} % "
                      f"of its maximum; needs < {100 * frac:g} %)", highlight=False)
    ratio, tol = results.get("jsc_ratio"), results.get("jsc_tolerance")
    if ratio is not None and tol is not None:
        ok = abs(ratio - 1) <= tol
        console.print(f"Jsc: integrated EQE {results['jsc_integrated_mA_cm2']:.3f} / J–V "
                      f"{results['jsc_jv_mA_cm2']:.3f} mA/cm² = {ratio:.4f} "
                      f"({'within' if ok else '[bold yellow]outside[/]'} ±{100 * tol:g} %)", highlight=False)


def print_voc_intensity(console: Console, results: Mapping[str, Any]) -> None:
    """A light-intensity Voc run: the global ideality, the regimes table, the instrument-limited points and the
    up/down drift (methods ref. §4.1)."""
    n, u = results.get("n_global"), results.get("n_global_stderr")
    window = results.get("global_window_suns") or [None, None]
    span = f" over {window[0]:.3g}–{window[1]:.3g} suns" if None not in window else ""
    console.print(f"n (global): {_plus_minus(fmt('{:.3f}', n), n, u)}{span}; dynamic range "
                  f"{fmt('{:.1f}', results.get('dynamic_range_dB'))} dB", highlight=False)
    table = Table(title="Ideality regimes")
    for name in ("regime", "Φ from (suns)", "Φ to (suns)", "n", "95 % interval", "points"):
        table.add_column(name, justify="right")
    for r in results.get("regimes") or []:
        interval = f"{fmt('{:.3f}', r.get('n_low'))}–{fmt('{:.3f}', r.get('n_high'))}"
        table.add_row(str(r.get("label", "")), fmt("{:.3g}", r.get("phi_min_suns")),
                      fmt("{:.3g}", r.get("phi_max_suns")), fmt("{:.3f}", r.get("n")), interval,
                      str(r.get("points", "")))
    console.print(table)
    limited = results.get("instrument_limited_points") or []
    if limited:
        bound = ""
        if results.get("meter_offset_A") is not None:
            bound = (f" by the meter's offset bound {results['meter_offset_A']:.3g} A and input resistance "
                     f"{results.get('meter_input_resistance_ohm', float('inf')):.3g} Ω (give your unit's measured "
                     "values: --set meter_offset_A=…, meter_input_resistance_ohm=…)")
        console.print(f"instrument-limited (left out of the fits): {len(limited)} points, up to "
                      f"{max(limited):.3g} suns{bound}", highlight=False)
    if results.get("up_down_max_abs_dvoc_mV") is not None:
        console.print(f"up/down drift: |ΔVoc| max {results['up_down_max_abs_dvoc_mV']:.3f} mV, mean "
                      f"{results['up_down_mean_abs_dvoc_mV']:.3f} mV", highlight=False)


#: the stability table: the threshold figures (results key of the time, its figure key prefix, label)
STABILITY_THRESHOLDS = [
    ("t80_h", "t80", "T80 (to 80 % of the initial value)"),
    ("t95_h", "t95", "T95 (to 95 % of the initial value)"),
    ("ts80_h", "ts80", "TS80 (80 % of the post-burn-in maximum)"),
    ("ts95_h", "ts95", "TS95 (95 % of the post-burn-in maximum)"),
    ("ts80_backextrapolated_h", "ts80_backextrapolated", "TS80 (80 % of the back-extrapolated E_S)"),
]


def threshold_text(figures: Mapping[str, Any], key: str, prefix: str, hours: float | None) -> str:
    """One threshold time for a person: "500.0 h", "not reached (> 600 h); ≈ 2000 h extrapolated", or
    "not reached (> 2 h); no significant decline to extrapolate" — never an extrapolated time shown as measured."""
    value = figures.get(key)
    if figures.get(f"{prefix}_reached"):
        return f"{value:.1f} h"
    bound = f"> {hours:.3g} h" if hours is not None else "> the end of the run"
    if value is not None and figures.get(f"{prefix}_extrapolated", key.startswith("ts80_back")):
        return f"not reached ({bound}); ≈ {value:.0f} h extrapolated (linear, post-burn-in)"
    if figures.get("decline_significant") is False:
        return f"not reached ({bound}); no significant decline to extrapolate"
    return f"not reached ({bound})"


def print_stability(console: Console, results: Mapping[str, Any]) -> None:
    """The stability figures (ISOS consensus Table 5; methods ref. §7.3) as a table, then the interruptions line."""
    figures = results.get("figures")
    hours = results.get("hours")
    metric = results.get("metric") or "metric"
    if not isinstance(figures, Mapping):
        console.print(f"stability figures: not computed (too few {metric} readings)", highlight=False)
        return
    table = Table(title=f"Stability ({metric}, interruptions masked)")
    table.add_column("")
    table.add_column("value", justify="left")
    table.add_row("initial → final", f"{fmt('{:.4g}', figures.get('initial'))} → {fmt('{:.4g}', figures.get('final'))}")
    table.add_row("retained", fmt("{:.2f} %", figures.get("retained_pct")))
    for key, prefix, label in STABILITY_THRESHOLDS:
        table.add_row(label, threshold_text(figures, key, prefix, hours))
    burn_in = figures.get("burn_in_h")
    how = "detected" if figures.get("burn_in_detected") else "given"
    table.add_row("burn-in ends", f"{burn_in:.3g} h ({how})" if burn_in is not None else "—")
    eta = figures.get("eta1000")
    eta_x = figures.get("eta1000_extrapolated")
    table.add_row("η1000", fmt("{:.4g}", eta) if eta is not None else (
        f"not reached; ≈ {eta_x:.4g} extrapolated" if eta_x is not None else "—"))
    console.print(table)
    suspended = fmt("{:.3g}", results.get("suspended_h"))
    console.print(f"hours: {fmt('{:.4g}', hours)}, interruptions: {results.get('interruptions', 0)}, suspended: "
                  f"{suspended} h, I/O faults recovered: {results.get('io_faults', 0)}, J–V scans: "
                  f"{results.get('jv_scans', 0)}", highlight=False)


#: the substrate table's formats: figure key → format (FF a fraction shown in %, as in FOM_ROWS)
SUBSTRATE_FORMATS = {
    "pce_pct": "{:.2f}", "voc_V": "{:.4f}", "jsc_mA_cm2": "{:.3f}", "ff": "{:.2%}",
    "stabilised_pce_pct": "{:.2f}", "settled_pce_pct": "{:.2f}", "pce_final_pct": "{:.2f}",
    "retained_pct": "{:.1f}", "voc_mean_V": "{:.4f}", "jsc_mean_mA_cm2": "{:.3f}", "power_mean_mW_cm2": "{:.3f}",
}

#: the spread rows of the substrate table under the pixels: statistic key, row label
SUBSTRATE_STAT_ROWS = [("best", "best"), ("median", "median"), ("mean", "mean"), ("std", "std"),
                       ("iqr", "IQR"), ("min", "min"), ("max", "max")]


def _pixel_state(pixel: Mapping[str, Any]) -> str:
    """The status cell of one pixel: its status and the dead/shunted flags (the reasons are listed under the
    table, :func:`_pixel_reason`, so that a long one does not widen every row)."""
    status = str(pixel.get("status") or "")
    if pixel.get("skipped"):
        return "[yellow]skipped[/]"
    parts = [escape(status)] if status != "completed" else []
    if pixel.get("dead"):
        parts.append("[bold red]dead[/]")
    if pixel.get("shunted"):
        parts.append("[yellow]shunted[/]")
    return ", ".join(parts) or "ok"


def _pixel_reason(pixel: Mapping[str, Any]) -> str | None:
    """Why a pixel was skipped, or ended otherwise than completed (None: no reason to give)."""
    status = str(pixel.get("status") or "")
    if (pixel.get("skipped") or status != "completed") and pixel.get("reason"):
        return str(pixel["reason"])
    return None


def print_substrate_summary(console: Console, summary: Mapping[str, Any]) -> None:
    """The substrate table (:func:`labctl.analysis.substrate.summarise_substrate`): one row per pixel with its
    figures per group (J–V direction, or the stability run's figures) and its state (skipped with the reason,
    dead, shunted), then the best (with its pixel), median and spread rows over the included pixels, then the
    counts and the thresholds the flags used."""
    groups = list(summary.get("groups") or [])
    figures = summary.get("figures") or {}
    labels = summary.get("labels") or {}
    columns = [(g, k) for g in groups for k in figures.get(g, [])]
    table = Table(title="Substrate summary")
    table.add_column("pixel")
    for g, k in columns:
        label, unit = (labels.get(k) or (k, ""))[:2]
        unit = "%" if k == "ff" else unit
        head = f"{label} ({unit})" if unit else label
        table.add_column(head if g == "run" else f"{head}\n{g}", justify="right")
    table.add_column("state")
    for name, pixel in (summary.get("pixels") or {}).items():
        values = pixel.get("figures") or {}
        cells = [fmt(SUBSTRATE_FORMATS.get(k, "{:.4g}"), values.get(g, {}).get(k)) if g in values else ""
                 for g, k in columns]
        table.add_row(str(name), *cells, _pixel_state(pixel), style="dim" if not pixel.get("included") else None)
    stats = summary.get("statistics") or {}
    table.add_section()
    for key, label in SUBSTRATE_STAT_ROWS:
        cells = []
        for g, k in columns:
            s = stats.get(g, {}).get(k) or {}
            spec = SUBSTRATE_FORMATS.get(k, "{:.4g}")
            cell = fmt(spec, s.get(key))
            if key == "best" and s.get("best_pixel") is not None:
                cell += f" ({s['best_pixel']})"
            cells.append(cell)
        note = f"over {(summary.get('counts') or {}).get('included', 0)} pixels" if key == "best" else ""
        table.add_row(f"[bold]{label}[/]", *cells, note)
    console.print(table)
    for name, pixel in (summary.get("pixels") or {}).items():
        reason = _pixel_reason(pixel)
        if reason is not None:
            console.print(f"pixel {name}: {reason}", highlight=False, markup=False, soft_wrap=True)
    counts = summary.get("counts") or {}
    t = summary.get("thresholds") or {}
    console.print(
        f"pixels: {counts.get('pixels', 0)}, completed {counts.get('completed', 0)}, skipped "
        f"{counts.get('skipped', 0)}, not measured {counts.get('not measured', 0)}, aborted/failed "
        f"{counts.get('aborted', 0) + counts.get('failed', 0)}; dead {counts.get('dead', 0)}, shunted "
        f"{counts.get('shunted', 0)}; statistics over {counts.get('included', 0)} (completed, not dead)",
        highlight=False)
    if t:
        console.print(
            f"dead: Jsc < {t.get('dead_jsc_mA_cm2')} mA/cm², Voc < {t.get('dead_voc_V')} V or PCE < "
            f"{t.get('dead_pce_pct')} % in every scan; shunted: R_sh/(Voc/Jsc) < {t.get('shunt_normalised_rsh')}",
            highlight=False)
