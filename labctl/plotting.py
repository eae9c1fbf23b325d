"""PNG plots of run files (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from labctl.storage import RunData  # noqa: E402

_DIRECTIONS = {0: "reverse", 1: "forward"}


def _num(value: float | None, fmt: str) -> str:
    """``value`` formatted, or "—" for a figure that was not computed (None)."""
    return "—" if value is None else format(value, fmt).replace("%", " %")


def _is_true(value: object) -> bool:
    """A boolean parameter as read back from a run file (bool, 0/1, or "True"/"False")."""
    return str(value).strip().lower() in ("true", "1") if isinstance(value, str) else bool(value)


def _curves(run: RunData):  # noqa: ANN202 - yields (label, voltage_V, j_mA_cm2) per scan
    """Each scan of the ``jv`` stream in voltage order (a QSS run measures its points out of order)."""
    data = run.streams["jv"]
    qss = run.parameters.get("mode") == "qss"
    for (scan, direction), group in data.groupby(["scan", "direction"]):
        label = "quasi-steady-state" if qss else _DIRECTIONS.get(int(direction), str(direction))
        if qss:
            group = group.sort_values("voltage_V", kind="stable")
        yield f"scan {scan}: {label}", group["voltage_V"].to_numpy(), group["j_mA_cm2"].to_numpy()


def _plot_light_jv(ax, run: RunData) -> None:  # noqa: ANN001 - a matplotlib Axes
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
        ax.text(0.02, 0.03, "\n".join(lines), transform=ax.transAxes, fontsize=8, va="bottom",
                bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "0.8"})
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


def _plot_dark_jv(ax, run: RunData) -> None:  # noqa: ANN001 - a matplotlib Axes
    """Dark J–V: |J| on a log axis against V, with the single-diode dark fit when the results have it."""
    import numpy as np

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
        ax.text(0.98, 0.03, "\n".join(lines), transform=ax.transAxes, fontsize=8, va="bottom", ha="right",
                bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "0.8"})
    data = run.streams["jv"]
    away = np.abs(data["j_mA_cm2"].to_numpy()[np.abs(data["voltage_V"].to_numpy()) >= 0.01])
    away = away[away > 0]
    if away.size:  # the dip through 0 V would otherwise take most of the decades
        ax.set_ylim(bottom=0.3 * float(away.min()))
    ax.set_xlabel("Voltage (V)")
    ax.set_ylabel("|J| (mA/cm²), dark")
    ax.legend(loc="upper left", fontsize=8)


def supported_formats() -> list[str]:
    """File suffixes (without the dot) that :func:`plot_run` can write: png, pdf, svg, ..."""
    from matplotlib.backend_bases import FigureCanvasBase

    return sorted(FigureCanvasBase.get_supported_filetypes())


def plot_run(run: RunData, path: str | Path | None = None) -> Path:
    """Write the run's plot (see :func:`figure`) to ``path`` (default: beside the run file, ``.png``)."""
    path = Path(path) if path else run.path.with_suffix(".png")
    fig = figure(run)
    try:
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path


def figure(run: RunData) -> Figure:
    """The run's main stream as a figure: a light J–V as J against V per scan (in voltage order) with the figures
    of merit, a dark J–V as semilog |J| with its single-diode fit, EQE against wavelength, a hold's Voc or J
    against time (across its segments), a calibration's beam power. The caller closes it
    (``matplotlib.pyplot.close``)."""
    fig, ax = plt.subplots(figsize=(7, 5), dpi=110)
    dark = False
    if "jv" in run.streams and not run.streams["jv"].empty:
        dark = not _is_true(run.parameters.get("light", True))
        if dark:
            _plot_dark_jv(ax, run)
        else:
            _plot_light_jv(ax, run)
    elif "eqe" in run.streams and not run.streams["eqe"].empty:
        data = run.streams["eqe"]
        ax.plot(data["wavelength_nm"], 100 * data["eqe"], marker=".", ms=3, lw=1)
        ax.set_xlabel("Wavelength (nm)")
        ax.set_ylabel("EQE (%)")
        r = run.results
        if r.get("jsc_integrated_mA_cm2") is not None:
            text = f"integrated Jsc (AM1.5G) {r['jsc_integrated_mA_cm2']:.2f} mA/cm²"
            if r.get("jsc_ratio") is not None:
                text += f"\nJ–V Jsc {r['jsc_jv_mA_cm2']:.2f} mA/cm², ratio {r['jsc_ratio']:.3f}"
            ax.text(0.02, 0.03, text, transform=ax.transAxes, fontsize=8, va="bottom",
                    bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "0.8"})
    elif "hold" in run.streams and not run.streams["hold"].empty:
        from procedures.hold import HoldProcedure  # the procedure draws its own plot

        HoldProcedure.plot(ax, run)
    elif "calibration" in run.streams and not run.streams["calibration"].empty:
        data = run.streams["calibration"]
        for detector, group in data.groupby("detector"):
            ax.semilogy(group["wavelength_nm"], 1e6 * group["beam_power_W"], marker=".", ms=3, lw=1,
                        label=f"reference {detector}")
        ax.set_xlabel("Wavelength (nm)")
        ax.set_ylabel("Beam power (µW)")
        ax.legend(fontsize=8)
    procedure = run.info.get("procedure", "") + (" (dark)" if dark else "")
    ax.set_title(f"{procedure} — {run.info.get('sample', '')} — {run.status}", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
