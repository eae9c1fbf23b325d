"""The substrate summary as a PNG: a box plot per figure of merit with the pixels as points, and a map of the
substrate with each pixel at its place, coloured by its PCE (matplotlib, no display needed).

The input is :func:`labctl.analysis.substrate.summarise_substrate`'s summary. The boxes are over the pixels that
enter the statistics (completed, not dead; shunted ones are drawn as orange triangles); the map shows every pixel of
the layout: measured ones coloured by the primary figure (the reverse-scan PCE of a J–V), dead ones black, skipped
ones hatched grey with "skipped", pixels not measured (or aborted, failed) white with a dashed edge. The map is drawn
as the layout gives the places: x (mm) to the right, y (mm) up, each pixel a square of its area to scale.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import Normalize  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

#: the box-plot panels, in order: the J–V figures (one box per scan direction)
BOX_FIGURES = ("pce_pct", "voc_V", "jsc_mA_cm2", "ff")

#: the colour of each group's boxes and points
GROUP_COLOURS = {"reverse": "tab:blue", "forward": "tab:green", "qss": "tab:purple", "run": "tab:blue"}

#: the title of the map panel
MAP_TITLE = "Substrate map"

#: a pixel's drawn side (mm) when the layout gives no area
DEFAULT_PIXEL_SIDE_MM = 2.0


def _label(summary: Mapping[str, Any], key: str) -> str:
    label, unit = (summary.get("labels", {}).get(key) or (key, ""))[:2]
    unit = "%" if key == "ff" else unit
    return f"{label} ({unit})" if unit else label


def _scale(key: str) -> float:
    """FF is stored as a fraction and drawn in %."""
    return 100.0 if key == "ff" else 1.0


def _panels(summary: Mapping[str, Any]) -> list[tuple[str, list[str]]]:
    """(figure key, the groups that have it) per box panel: the J–V figures, else up to four run figures."""
    figures = summary.get("figures") or {}
    jv = [g for g in summary.get("groups") or [] if g != "run"]
    if jv:
        return [(k, jv) for k in BOX_FIGURES]
    return [(k, ["run"]) for k in (figures.get("run") or [])[:4]]


def _box_panel(ax: Any, summary: Mapping[str, Any], key: str, groups: Sequence[str]) -> None:
    pixels = summary.get("pixels") or {}
    scale = _scale(key)
    data, positions = [], []
    for i, g in enumerate(groups):
        points = [(name, p["figures"][g][key] * scale, bool(p.get("shunted"))) for name, p in pixels.items()
                  if p.get("included") and p["figures"].get(g, {}).get(key) is not None]
        values = [v for _, v, _ in points]
        if values:
            data.append(values)
            positions.append(i)
        n = len(points)
        for j, (name, v, shunted) in enumerate(points):
            dx = 0.25 * ((j + 0.5) / n - 0.5) if n > 1 else 0.0  # spread across the box, deterministic
            ax.plot(i + dx, v, ls="none", marker="^" if shunted else "o", ms=6 if shunted else 4,
                    color="tab:orange" if shunted else GROUP_COLOURS.get(g, "tab:blue"),
                    markeredgecolor="0.2", markeredgewidth=0.4, zorder=3, gid=f"{g}:{name}")
    if data:
        ax.boxplot(data, positions=positions, widths=0.5, showfliers=False, medianprops={"color": "k"},
                   boxprops={"color": "0.4"}, whiskerprops={"color": "0.4"}, capprops={"color": "0.4"})
    ax.set_xticks(range(len(groups)), list(groups))
    ax.set_xlim(-0.6, len(groups) - 0.4)
    ax.set_title(_label(summary, key), fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    if not data:
        ax.text(0.5, 0.5, "no measured pixel", transform=ax.transAxes, ha="center", va="center", color="0.4")


def _placed(pixels: Mapping[str, Mapping[str, Any]]) -> dict[str, tuple[float, float]]:
    """Each pixel's centre (mm): from the layout, or (none has a place) in a row in layout order."""
    placed = {n: (p["x_mm"], p["y_mm"]) for n, p in pixels.items()
              if p.get("x_mm") is not None and p.get("y_mm") is not None}
    if placed:
        return placed
    return {n: (4.0 * (i % 4) + 2.0, 4.0 * (i // 4) + 2.0) for i, n in enumerate(pixels)}


def _map_panel(ax: Any, fig: Figure, summary: Mapping[str, Any], layout_size_mm: Sequence[float] | None) -> None:
    pixels = summary.get("pixels") or {}
    primary = summary.get("primary")
    placed = _placed(pixels)
    values = {}
    if primary:
        g, k = primary
        values = {n: p["figures"][g][k] * _scale(k) for n, p in pixels.items()
                  if p.get("included") and p["figures"].get(g, {}).get(k) is not None}
    norm = Normalize(min(values.values()), max(values.values())) if values else Normalize(0, 1)
    if values and norm.vmin == norm.vmax:
        norm = Normalize(norm.vmin - 0.5, norm.vmax + 0.5)
    cmap = plt.get_cmap("viridis")
    sides = {}
    for name, (x, y) in placed.items():
        p = pixels[name]
        area = p.get("area_cm2")
        side = math.sqrt(area * 100.0) if area else DEFAULT_PIXEL_SIDE_MM  # true scale: cm² → mm²
        sides[name] = side
        text = str(name)
        style: dict[str, Any] = {"edgecolor": "0.2", "linewidth": 0.8}
        if p.get("skipped"):
            style |= {"facecolor": "0.85", "hatch": "///"}
            text += "\nskipped"
        elif p.get("dead"):
            style |= {"facecolor": "0.1"}
            text += "\ndead"
        elif name in values:
            style |= {"facecolor": cmap(norm(values[name]))}
            if p.get("shunted"):
                style |= {"edgecolor": "tab:orange", "linewidth": 2.0}
                text += "\nshunted"
        else:
            style |= {"facecolor": "white", "linestyle": "--"}
            text += f"\n{p.get('status')}"
        ax.add_patch(Rectangle((x - side / 2, y - side / 2), side, side, gid=f"pixel:{name}", **style))
        dark_face = p.get("dead") and not p.get("skipped")
        ax.text(x, y - side / 2 - 0.3, text, ha="center", va="top", fontsize=7, color="0.1")
        if dark_face:
            ax.plot(x, y, marker="x", color="white", ms=5)
    if layout_size_mm:
        width, height = float(layout_size_mm[0]), float(layout_size_mm[1])
        ax.add_patch(Rectangle((0, 0), width, height, facecolor="none", edgecolor="0.3", linewidth=1.2))
        x0, y0, x1, y1 = 0.0, 0.0, width, height
    else:
        xs = [x for x, _ in placed.values()]
        ys = [y for _, y in placed.values()]
        pad = max(sides.values(), default=DEFAULT_PIXEL_SIDE_MM)
        x0, y0, x1, y1 = min(xs) - pad, min(ys) - pad, max(xs) + pad, max(ys) + pad
    margin = 0.06 * max(x1 - x0, y1 - y0, 1.0)
    ax.set_xlim(x0 - margin, x1 + margin)
    ax.set_ylim(y0 - 2.5 * margin, y1 + margin)  # room for the labels under the bottom row
    ax.set_aspect("equal")
    ax.set_xlabel("x (mm)")
    ax.set_ylabel("y (mm)")
    title = MAP_TITLE
    missing = [n for n, p in pixels.items() if n not in placed]
    if len(placed) == len(pixels) and not any(p.get("x_mm") is not None for p in pixels.values()):
        title += " (no positions in the layout: pixels in layout order)"
    ax.set_title(title, fontsize=10)
    if missing:
        ax.text(0.01, 0.01, "not on the map (no x_mm/y_mm): " + ", ".join(missing), transform=ax.transAxes,
                fontsize=7, va="bottom")
    if values:
        mappable = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
        fig.colorbar(mappable, ax=ax, shrink=0.8, label=_label(summary, primary[1]) + f", {primary[0]}"
                     if primary[0] != "run" else _label(summary, primary[1]))


def figure(summary: Mapping[str, Any], layout_size_mm: Sequence[float] | None = None,
           title: str | None = None) -> Figure:
    """The substrate figure: a box panel per figure (:data:`BOX_FIGURES` of a J–V, one box per direction; else up to
    four of the run's figures) on the left, the map (:data:`MAP_TITLE`) on the right. ``layout_size_mm`` (width,
    height in mm) draws the substrate's outline; without it the map spans the pixels. The caller closes it."""
    panels = _panels(summary)
    fig = plt.figure(figsize=(13, 6.5), dpi=110)
    grid = fig.add_gridspec(2, 4, width_ratios=[1, 1, 1.1, 1.1])
    for i, (key, groups) in enumerate(panels):
        ax = fig.add_subplot(grid[i // 2, i % 2])
        _box_panel(ax, summary, key, groups)
        if i == 0 and any(p.get("shunted") and p.get("included") for p in (summary.get("pixels") or {}).values()):
            ax.plot([], [], ls="none", marker="^", color="tab:orange", markeredgecolor="0.2", label="shunted")
            ax.legend(loc="best", fontsize=8)
    _map_panel(fig.add_subplot(grid[:, 2:]), fig, summary, layout_size_mm)
    counts = summary.get("counts") or {}
    line = (f"{counts.get('pixels', 0)} pixels: {counts.get('included', 0)} in the statistics, "
            f"{counts.get('dead', 0)} dead, {counts.get('shunted', 0)} shunted, {counts.get('skipped', 0)} skipped, "
            f"{counts.get('not measured', 0)} not measured")
    fig.suptitle(f"{title} — {line}" if title else line, fontsize=11)
    fig.tight_layout()
    return fig


def plot_substrate(summary: Mapping[str, Any], layout_size_mm: Sequence[float] | None, out_png: str | Path,
                   title: str | None = None) -> Path:
    """Write the substrate figure (:func:`figure`) of ``summary`` to ``out_png``; returns its path."""
    path = Path(out_png)
    fig = figure(summary, layout_size_mm, title)
    try:
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path
