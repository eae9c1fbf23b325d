"""PNG plots of run files (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from labctl.storage import RunData  # noqa: E402

_DIRECTIONS = {0: "reverse", 1: "forward"}


def supported_formats() -> list[str]:
    """File suffixes (without the dot) that :func:`plot_run` can write: png, pdf, svg, ..."""
    from matplotlib.backend_bases import FigureCanvasBase

    return sorted(FigureCanvasBase.get_supported_filetypes())


def plot_run(run: RunData, path: str | Path | None = None) -> Path:
    """Plot the run's main stream (for J–V: J against V per scan, with the figures of merit)."""
    path = Path(path) if path else run.path.with_suffix(".png")
    fig, ax = plt.subplots(figsize=(7, 5), dpi=110)
    if "jv" in run.streams and not run.streams["jv"].empty:
        data = run.streams["jv"]
        for (scan, direction), group in data.groupby(["scan", "direction"]):
            label = _DIRECTIONS.get(int(direction), str(direction))
            if run.parameters.get("mode") == "qss":
                label = "quasi-steady-state"
            ax.plot(group["voltage_V"], group["j_mA_cm2"], marker=".", ms=3, lw=1, label=f"scan {scan}: {label}")
        ax.axhline(0, color="0.6", lw=0.8)
        ax.axvline(0, color="0.6", lw=0.8)
        ax.set_xlabel("Voltage (V)")
        ax.set_ylabel("Current density (mA/cm²), photocurrent positive")
        lines = []
        for name in ("reverse", "forward", "qss"):
            r = run.results.get(name)
            if r and r.get("voc_V") is not None:
                lines.append(
                    f"{name}: Voc {r['voc_V']:.3f} V, Jsc {r['jsc_mA_cm2']:.2f} mA/cm², "
                    f"FF {100 * r['ff']:.1f} %, PCE {r['pce_pct']:.2f} %"
                )
        if lines:
            ax.text(0.02, 0.03, "\n".join(lines), transform=ax.transAxes, fontsize=8, va="bottom",
                    bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "0.8"})
        j_max = float(data["j_mA_cm2"].max())
        if run.parameters.get("light", True) and j_max > 0:
            ax.set_ylim(-0.3 * j_max, 1.15 * j_max)  # the power quadrant, plus the start of injection
        ax.legend(loc="upper right", fontsize=8)
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
    elif "calibration" in run.streams and not run.streams["calibration"].empty:
        data = run.streams["calibration"]
        for detector, group in data.groupby("detector"):
            ax.semilogy(group["wavelength_nm"], 1e6 * group["beam_power_W"], marker=".", ms=3, lw=1,
                        label=f"reference {detector}")
        ax.set_xlabel("Wavelength (nm)")
        ax.set_ylabel("Beam power (µW)")
        ax.legend(fontsize=8)
    ax.set_title(f"{run.info.get('procedure', '')} — {run.info.get('sample', '')} — {run.status}", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
