"""PNG plots of run files (matplotlib, no display needed)."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from labctl.storage import RunData  # noqa: E402


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


_DRAW_LOCK = threading.Lock()  # pyplot's state is global: one figure at a time, whichever thread draws


def png_bytes(run: RunData) -> bytes:
    """The run's figure (:func:`figure`) as PNG bytes, drawn in memory (nothing written); thread-safe."""
    with _DRAW_LOCK:
        fig = figure(run)
        try:
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png")
        finally:
            plt.close(fig)
    return buffer.getvalue()


def figure(run: RunData) -> Figure:
    """The run's main data as a figure, drawn by the run's procedure (its ``plot`` classmethod: a light J–V as J
    against V per scan with the figures of merit, a dark J–V as semilog |J| with its single-diode fit, EQE against
    wavelength, a calibration's beam power; see :mod:`procedures.plots`), titled with the procedure, the sample and
    the status. A procedure that is not registered gets the default plot. The caller closes it
    (``matplotlib.pyplot.close``)."""
    from procedures import procedure_classes
    from procedures.base import LabProcedure

    procedure = procedure_classes().get(run.info.get("procedure", ""), LabProcedure)
    fig, ax = plt.subplots(figsize=(7, 5), dpi=110)
    name = procedure.plot(ax, run)
    ax.set_title(f"{name} — {run.info.get('sample', '')} — {run.status}", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
