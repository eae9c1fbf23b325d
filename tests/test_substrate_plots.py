"""The substrate summary for people: the PNG (:mod:`labctl.substrate_plots`) and the CLI table
(:func:`procedures.summary.print_substrate_summary`), on the real pixel results of ``tests/data/substrate_results.json``
(see tests/test_analysis_substrate.py)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.image import imread
from rich.console import Console

from labctl import substrate_plots
from labctl.analysis.substrate import summarise_substrate
from procedures.summary import print_substrate_summary

DATA = json.loads((Path(__file__).parent / "data" / "substrate_results.json").read_text())
ENTRIES = ["set-a", "lower-jph", "resistive", "higher-j0", "hysteretic", "shunted", "dark", "shorted"]
PLACES = [(6.0, 6.0), (12.5, 6.0), (19.0, 6.0), (6.0, 19.0), (12.5, 19.0), (19.0, 19.0), (6.0, 12.5), (19.0, 12.5)]
REASON = "contact check: 1.2e+09 Ω > 1e+07 Ω at 10 mV"


def _summary(positions: bool = True) -> dict:
    pixels = {str(i + 1): {"status": "completed", "results": DATA[e], "reason": None, "area_cm2": 0.049,
                           "x_mm": PLACES[i][0] if positions else None, "y_mm": PLACES[i][1] if positions else None}
              for i, e in enumerate(ENTRIES)}
    pixels["9"] = {"status": "skipped", "results": None, "reason": REASON, "area_cm2": 0.049,
                   "x_mm": 12.5 if positions else None, "y_mm": 12.5 if positions else None}
    return summarise_substrate(pixels)


def _panel_titles(fig) -> list[str]:
    return [ax.get_title() for ax in fig.axes]


def test_the_png_has_four_box_panels_and_the_map_and_is_a_real_image(tmp_path):
    path = substrate_plots.plot_substrate(_summary(), (25.0, 25.0), tmp_path / "QD-17.png", title="QD-17")
    assert path == tmp_path / "QD-17.png" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = imread(path)
    assert image.shape[0] > 500 and image.shape[1] > 1000  # 13 × 6.5 in at 110 dpi
    assert np.std(image[..., :3]) > 0.05  # not a blank canvas
    fig = substrate_plots.figure(_summary(), (25.0, 25.0), title="QD-17")
    try:
        titles = _panel_titles(fig)
        # four boxes, the map, and the map's colour bar (no title)
        assert titles == ["PCE (%)", "Voc (V)", "Jsc (mA/cm²)", "FF (%)", "Substrate map", ""]
        assert "QD-17" in fig._suptitle.get_text() and "2 dead" in fig._suptitle.get_text()
    finally:
        plt.close(fig)


def test_the_box_panels_hold_the_live_pixels_per_direction_ff_in_percent():
    fig = substrate_plots.figure(_summary(), (25.0, 25.0))
    try:
        pce, _, _, ff = fig.axes[:4]
        assert [t.get_text() for t in pce.get_xticklabels()] == ["reverse", "forward"]
        points = {line.get_gid(): line for line in pce.lines if line.get_gid()}
        # pixels 1–6 per direction: the dead 7 and 8 and the skipped 9 are not in the boxes
        assert sorted(points) == sorted(f"{d}:{n}" for d in ("reverse", "forward") for n in "123456")
        assert points["reverse:1"].get_ydata()[0] == DATA["set-a"]["reverse"]["pce_pct"]
        assert points["reverse:6"].get_marker() == "^"  # shunted
        assert points["reverse:1"].get_marker() == "o"
        ff_points = {line.get_gid(): line for line in ff.lines if line.get_gid()}
        assert ff_points["forward:3"].get_ydata()[0] == pytest.approx(100 * DATA["resistive"]["forward"]["ff"])
    finally:
        plt.close(fig)


def test_the_map_places_every_pixel_at_its_position_to_scale_and_marks_dead_and_skipped():
    fig = substrate_plots.figure(_summary(), (25.0, 25.0))
    try:
        ax = fig.axes[4]
        squares = {p.get_gid(): p for p in ax.patches if p.get_gid()}
        assert sorted(squares) == sorted(f"pixel:{n}" for n in range(1, 10))
        side = (0.049 * 100) ** 0.5  # 0.049 cm² = 4.9 mm² → 2.21 mm
        for i, (x, y) in enumerate(PLACES):
            sq = squares[f"pixel:{i + 1}"]
            assert sq.get_width() == pytest.approx(side) and sq.get_height() == pytest.approx(side)
            assert (sq.get_x() + side / 2, sq.get_y() + side / 2) == (pytest.approx(x), pytest.approx(y))
        assert squares["pixel:9"].get_hatch() == "///"
        texts = {t.get_text() for t in ax.texts}
        assert {"7\ndead", "8\ndead", "9\nskipped", "6\nshunted", "1"} <= texts
        # coloured by the reverse PCE: the best pixel is the top of the colour map, the dead ones are black
        top = plt.get_cmap("viridis")(1.0)
        assert squares["pixel:1"].get_facecolor() == pytest.approx(top)
        assert squares["pixel:7"].get_facecolor()[:3] == pytest.approx((0.1, 0.1, 0.1))
        outline = [p for p in ax.patches if not p.get_gid()]
        assert len(outline) == 1 and (outline[0].get_width(), outline[0].get_height()) == (25.0, 25.0)
    finally:
        plt.close(fig)


def test_a_layout_without_positions_is_drawn_in_layout_order_and_says_so(tmp_path):
    fig = substrate_plots.figure(_summary(positions=False), None)
    try:
        assert "layout order" in fig.axes[4].get_title()
        assert len([p for p in fig.axes[4].patches if p.get_gid()]) == 9
    finally:
        plt.close(fig)


def test_an_mpp_substrate_draws_its_run_figures_and_an_empty_one_still_draws(tmp_path):
    summary = summarise_substrate({"a": {"status": "completed", "results": DATA["mpp_set-a"], "x_mm": 5, "y_mm": 5},
                                   "b": {"status": "completed", "results": DATA["mpp_resistive"], "x_mm": 10,
                                         "y_mm": 5}})
    fig = substrate_plots.figure(summary, (15, 10))
    try:
        assert _panel_titles(fig)[:2] == ["Stabilised PCE (%)", "Settled PCE (%)"]
        assert "Substrate map" in _panel_titles(fig)
    finally:
        plt.close(fig)
    empty = summarise_substrate({"1": {"status": "skipped", "reason": "contact", "x_mm": 3, "y_mm": 3},
                                 "2": {"status": "not measured", "x_mm": 8, "y_mm": 3}})
    path = substrate_plots.plot_substrate(empty, (12, 6), tmp_path / "empty.png")
    assert path.stat().st_size > 1000


def _table(summary: dict) -> str:
    console = Console(record=True, width=250)
    print_substrate_summary(console, summary)
    return console.export_text()


def test_the_table_has_a_row_per_pixel_with_the_skip_reason_then_best_median_and_spread():
    text = _table(_summary())
    rows = {line.split("│")[1].strip(): line for line in text.splitlines() if line.count("│") > 3}
    assert [r for r in rows if r] == [*map(str, range(1, 10)), "best", "median", "mean", "std", "IQR", "min", "max"]
    r = DATA["set-a"]["reverse"]
    cells = [c.strip() for c in rows["1"].split("│")[2:-1]]
    assert cells[:4] == [f"{r['pce_pct']:.2f}", f"{r['voc_V']:.4f}", f"{r['jsc_mA_cm2']:.3f}", f"{100 * r['ff']:.2f}"]
    assert cells[-1] == "ok"
    assert "skipped" in rows["9"] and REASON not in rows["9"]  # the reason goes under the table, not into a cell
    assert f"pixel 9: {REASON}" in text
    assert "dead" in rows["7"] and "dead, shunted" in rows["8"] and "shunted" in rows["6"]
    # best PCE (reverse): set A on pixel 1; the median by hand over pixels 1–6
    live = sorted(DATA[e]["reverse"]["pce_pct"] for e in ENTRIES[:6])
    assert [c.strip() for c in rows["best"].split("│")[2:-1]][0] == f"{live[-1]:.2f} (1)"
    assert [c.strip() for c in rows["median"].split("│")[2:-1]][0] == f"{(live[2] + live[3]) / 2:.2f}"
    assert "statistics over 6" in text and "dead 2, shunted 2" in text and "skipped 1" in text
    assert "Voc < 0.1 V" in text and "R_sh/(Voc/Jsc) < 10" in text


def test_the_table_of_an_mpp_substrate_shows_the_stabilised_pce():
    summary = summarise_substrate({"a": {"status": "completed", "results": DATA["mpp_set-a"]}})
    text = _table(summary)
    assert "Stabilised PCE (%)" in text and f"{DATA['mpp_set-a']['stabilised_pce_pct']:.2f} (a)" in text
