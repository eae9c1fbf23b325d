"""How runs are drawn: the plot of each procedure's main data, on a matplotlib ``Axes`` it is given.

Each procedure picks its plot in its ``plot(ax, run)`` classmethod (:meth:`procedures.base.LabProcedure.plot`);
:mod:`labctl.plotting` makes the figure, asks the run's procedure to draw it, adds the title and writes the file.
Nothing here imports matplotlib: the axes come from the caller.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from labctl.storage import RunData

_DIRECTIONS = {0: "reverse", 1: "forward"}
_BOX = {"facecolor": "white", "alpha": 0.8, "edgecolor": "0.8"}


def _num(value: float | None, fmt: str) -> str:
    """``value`` formatted, or "—" for a figure that was not computed (None)."""
    return "—" if value is None else format(value, fmt).replace("%", " %")


def is_true(value: object) -> bool:
    """A boolean parameter as read back from a run file (bool, 0/1, or "True"/"False")."""
    return str(value).strip().lower() in ("true", "1") if isinstance(value, str) else bool(value)


def has_rows(run: RunData, stream: str) -> bool:
    """Whether the run file has the stream ``stream`` with at least one row."""
    return stream in run.streams and not run.streams[stream].empty


def plot_signal(ax: Axes, data: pd.DataFrame, x: str, y: str) -> None:
    """The default plot: column ``y`` against column ``x`` (labelled with the column names, which carry units)."""
    ax.plot(data[x].to_numpy(), data[y].to_numpy(), marker=".", ms=3, lw=1)
    ax.set_xlabel(x)
    ax.set_ylabel(y)


def _curves(run: RunData) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """Each scan of the ``jv`` stream in voltage order (a QSS run measures its points out of order): (label,
    voltage_V, j_mA_cm2)."""
    data = run.streams["jv"]
    qss = run.parameters.get("mode") == "qss"
    for (scan, direction), group in data.groupby(["scan", "direction"]):
        label = "quasi-steady-state" if qss else _DIRECTIONS.get(int(direction), str(direction))
        if qss:
            group = group.sort_values("voltage_V", kind="stable")
        yield f"scan {scan}: {label}", group["voltage_V"].to_numpy(), group["j_mA_cm2"].to_numpy()


def plot_light_jv(ax: Axes, run: RunData) -> None:
    """J against V per scan, photocurrent positive, axes on the power quadrant and the data around it."""
    data = run.streams["jv"]
    for label, v, j in _curves(run):
        ax.plot(v, j, marker=".", ms=3, lw=1, label=label)
    ax.axhline(0, color="0.6", lw=0.8)
    ax.axvline(0, color="0.6", lw=0.8)
    ax.set_xlabel("Voltage (V)")
    ax.set_ylabel("Current density (mA/cm²), photocurrent positive")
    lines = []
    for name in ("reverse", "forward", "qss"):
        r = run.results.get(name)
        if r:  # a figure not computed (None, e.g. in compliance) is shown as "—"
            lines.append(f"{name}: Voc {_num(r.get('voc_V'), '.3f')} V, Jsc {_num(r.get('jsc_mA_cm2'), '.2f')} "
                         f"mA/cm², FF {_num(r.get('ff'), '.1%')}, PCE {_num(r.get('pce_pct'), '.2f')} %")
    if lines:
        ax.text(0.02, 0.03, "\n".join(lines), transform=ax.transAxes, fontsize=8, va="bottom", bbox=_BOX)
    v_all, j_all = data["voltage_V"].to_numpy(), data["j_mA_cm2"].to_numpy()
    j_max = float(j_all.max())
    if j_max > 0:
        j_low = -0.3 * j_max  # the power quadrant, plus the start of injection
        ax.set_ylim(j_low, 1.15 * j_max)
        shown = v_all[j_all >= j_low]  # the voltage axis ends where the data leave the plot
        v_lo, v_hi = float(v_all.min()), float(shown.max()) if shown.size else float(v_all.max())
        pad = 0.03 * (v_hi - v_lo) if v_hi > v_lo else 0.05
        ax.set_xlim(v_lo - pad, v_hi + pad)
    ax.legend(loc="upper right", fontsize=8)


def plot_dark_jv(ax: Axes, run: RunData) -> None:
    """Dark J–V: |J| on a log axis against V, with the single-diode dark fit when the results have it."""
    from labctl.analysis.dark import dark_current_A_cm2

    for label, v, j in _curves(run):
        nonzero = j != 0
        ax.semilogy(v[nonzero], np.abs(j[nonzero]), marker=".", ms=3, lw=1, label=label)
    lines = []
    temperature_K = float(run.parameters.get("temperature_K", 298.15))
    for name, fit in (run.results.get("dark") or {}).items():
        values = [fit.get(k) for k in ("j0_A_cm2", "ideality", "rs_ohm_cm2", "rsh_ohm_cm2")]
        if any(x is None for x in values):
            continue
        grid = np.linspace(float(run.streams["jv"]["voltage_V"].min()), float(run.streams["jv"]["voltage_V"].max()),
                           400)
        model = np.abs(dark_current_A_cm2(grid, *values, temperature_K=temperature_K)) * 1e3
        ax.semilogy(grid, model, color="0.2", lw=0.8, ls="--", label=f"{name}: single-diode fit")
        lines.append(f"{name}: J0 {values[0]:.3g} A/cm², n {values[1]:.3f}, Rs {values[2]:.2f} Ω·cm², "
                     f"Rsh {values[3]:.0f} Ω·cm²")
    if lines:
        ax.text(0.98, 0.03, "\n".join(lines), transform=ax.transAxes, fontsize=8, va="bottom", ha="right", bbox=_BOX)
    data = run.streams["jv"]
    away = np.abs(data["j_mA_cm2"].to_numpy()[np.abs(data["voltage_V"].to_numpy()) >= 0.01])
    away = away[away > 0]
    if away.size:  # the dip through 0 V would otherwise take most of the decades
        ax.set_ylim(bottom=0.3 * float(away.min()))
    ax.set_xlabel("Voltage (V)")
    ax.set_ylabel("|J| (mA/cm²), dark")
    ax.legend(loc="upper left", fontsize=8)


def plot_eqe(ax: Axes, run: RunData) -> None:
    """EQE (%) against wavelength, with the integrated Jsc (AM1.5G) and its ratio to the J–V Jsc when known."""
    data = run.streams["eqe"]
    ax.plot(data["wavelength_nm"], 100 * data["eqe"], marker=".", ms=3, lw=1)
    ax.set_xlabel("Wavelength (nm)")
    ax.set_ylabel("EQE (%)")
    r = run.results
    if r.get("jsc_integrated_mA_cm2") is not None:
        text = f"integrated Jsc (AM1.5G) {r['jsc_integrated_mA_cm2']:.2f} mA/cm²"
        if r.get("jsc_ratio") is not None:
            text += f"\nJ–V Jsc {r['jsc_jv_mA_cm2']:.2f} mA/cm², ratio {r['jsc_ratio']:.3f}"
        ax.text(0.02, 0.03, text, transform=ax.transAxes, fontsize=8, va="bottom", bbox=_BOX)


def plot_beam_power(ax: Axes, run: RunData) -> None:
    """A calibration's beam power (µW, log axis) against wavelength, one curve per reference detector."""
    data = run.streams["calibration"]
    for detector, group in data.groupby("detector"):
        ax.semilogy(group["wavelength_nm"], 1e6 * group["beam_power_W"], marker=".", ms=3, lw=1,
                    label=f"reference {detector}")
    ax.set_xlabel("Wavelength (nm)")
    ax.set_ylabel("Beam power (µW)")
    ax.legend(fontsize=8)


def plot_monitor_calibration(ax: Axes, run: RunData) -> None:
    """A voc-intensity calibration: reference power against the monitor signal above dark, with k's line."""
    data = run.streams["calibration"]
    dark = data[data["laser_on"] == 0]
    lit = data[data["laser_on"] == 1]
    i0 = float(dark["monitor_current_A"].iloc[0]) if len(dark) else 0.0
    p0 = float(dark["reference_power_W"].iloc[0]) if len(dark) else 0.0
    x = lit["monitor_current_A"].to_numpy() - i0
    ax.plot(1e6 * x, 1e3 * (lit["reference_power_W"].to_numpy() - p0), "o", ms=4, label="levels")
    k = run.results.get("k_W_A")
    if k is not None and x.size:
        grid = np.linspace(0, float(x.max()), 50)
        ax.plot(1e6 * grid, 1e3 * k * grid, lw=1, label=f"k = {k:.5g} W/A")
    ax.set_xlabel("Monitor current above dark (µA)")
    ax.set_ylabel("Reference power above dark (mW)")
    ax.legend(fontsize=8)


def plot_voc_intensity(ax: Axes, run: RunData) -> None:
    """Voc against the suns-equivalent intensity (log axis, i.e. ln Φ), up and down passes, instrument-limited
    points hollow, the fitted line of each regime and the global fit; the local n(Φ) on a second axis."""
    from labctl.analysis.sdm import thermal_voltage_V
    from procedures.voc_intensity import regime_line

    data = run.streams["voc"]
    r = run.results
    t_k = float(r.get("temperature_K") or 298.15)
    limited = np.isin(data["suns"].to_numpy(), np.asarray(r.get("instrument_limited_points") or [], dtype=float))
    for direction, marker in (("up", "o"), ("down", "s")):
        sel = (data["direction"] == direction).to_numpy()
        if sel.any():
            ax.semilogx(data["suns"][sel & ~limited], data["voc_V"][sel & ~limited], marker, ms=4, ls="",
                        label=f"Voc, {direction}")
        if (sel & limited).any():
            ax.semilogx(data["suns"][sel & limited], data["voc_V"][sel & limited], marker, ms=4, ls="", mfc="none",
                        color="0.5", label=f"instrument-limited, {direction}")
    fitted = data[data["direction"] == r.get("fitted_pass", "up")]
    phi, voc = fitted["suns"].to_numpy(), fitted["voc_V"].to_numpy()
    for reg in r.get("regimes") or []:
        lo, hi, n = reg.get("phi_min_suns"), reg.get("phi_max_suns"), reg.get("n")
        if None in (lo, hi, n):
            continue
        sel = (phi >= lo * (1 - 1e-9)) & (phi <= hi * (1 + 1e-9)) & ~np.isin(phi, r.get("instrument_limited_points")
                                                                              or [])
        if sel.sum() < 1:
            continue
        a = regime_line(phi[sel], voc[sel], n, t_k)
        grid = np.geomspace(lo, hi, 20)
        vt = float(thermal_voltage_V(t_k))
        ax.semilogx(grid, a + n * vt * np.log(grid), lw=2, alpha=0.7, label=f"{reg.get('label')}: n = {n:.2f}")
    window, n_g = r.get("global_window_suns") or [None, None], r.get("n_global")
    if n_g is not None and None not in window:
        sel = (phi >= window[0] * (1 - 1e-9)) & (phi <= window[1] * (1 + 1e-9))
        sel &= ~np.isin(phi, r.get("instrument_limited_points") or [])
        if sel.any():
            a = regime_line(phi[sel], voc[sel], n_g, t_k)
            grid = np.geomspace(window[0], window[1], 20)
            ax.semilogx(grid, a + n_g * float(thermal_voltage_V(t_k)) * np.log(grid), color="0.2", lw=0.8, ls="--",
                        label=f"global: n = {n_g:.2f}")
    ax.set_xlabel("Intensity (suns-equivalent, log axis = ln Φ)")
    ax.set_ylabel("Voc (V)")
    ax.legend(loc="upper left", fontsize=7)
    local = r.get("local_n") or {}
    if local.get("phi_suns"):
        n_loc = np.array([np.nan if v is None else v for v in local["n"]], dtype=float)
        twin = ax.twinx()
        twin.semilogx(local["phi_suns"], n_loc, color="tab:red", lw=1, marker=".", ms=3)
        twin.set_ylabel("local ideality n(Φ)", color="tab:red")
        twin.set_ylim(0, max(5.0, float(np.nanmax(n_loc)) + 0.5) if np.isfinite(n_loc).any() else 5.0)

