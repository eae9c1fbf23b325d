"""The live plots of the procedures other than J–V, fed documents directly (a LiveBuffer as the engine feeds it):
EQE in %, the beam power per detector, Voc against ln Φ with the ideality of its live fit, the PLQY spectrum,
the stability quantities against stress time with interruptions shaded, and the default plot.

The Voc data are made from Voc = a + n·(kT/q)·ln Φ with n = 1.62 at 300 K (k and q from scipy.constants), so the
fit must give 1.62 back; the rest checks that each curve holds the rows the documents carried, in their units.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy import constants  # noqa: E402

from labctl.documents import DESCRIPTOR, EVENT, START, Descriptor, Event, RunStart  # noqa: E402
from labctl.gui.plots import (  # noqa: E402
    BeamPowerPlot,
    DefaultPlot,
    EQEPlot,
    PLQYPlot,
    StabilityPlot,
    VocIntensityPlot,
    live_plot_for,
)
from labctl.live import LiveBuffer  # noqa: E402
from procedures import procedure_classes  # noqa: E402


def _buffer(procedure: str, rows: dict[str, list[dict]]) -> LiveBuffer:
    cls = procedure_classes()[procedure]
    buffer = LiveBuffer()
    buffer(START, RunStart("r1", procedure, "s", "o", "st", "2026-12-02T00:00:00Z"))
    for stream, spec in cls.STREAMS.items():
        buffer(DESCRIPTOR, Descriptor("r1", stream, tuple(spec.columns), spec.signal, spec.axes))
    for stream, items in rows.items():
        for k, data in enumerate(items, start=1):
            buffer(EVENT, Event("r1", stream, k, 0.0, data))
    return buffer


def _plot(qtbot, procedure, buffer, expected_cls):
    plot = live_plot_for(procedure_classes()[procedure])
    assert type(plot) is expected_cls
    qtbot.addWidget(plot)
    assert plot.update_from(buffer)
    assert not plot.update_from(buffer)  # nothing new: no redraw
    return plot


def test_eqe_plot_in_percent(qtbot):
    rows = [{"wavelength_nm": w, "eqe": e} for w, e in ((400.0, 0.5), (500.0, 0.8), (600.0, 0.75))]
    plot = _plot(qtbot, "eqe", _buffer("eqe", {"eqe": rows}), EQEPlot)
    x, y = plot.curves["EQE"].getData()
    np.testing.assert_array_equal(x, [400, 500, 600])
    np.testing.assert_allclose(y, [50, 80, 75])


def test_beam_power_per_detector_in_microwatts(qtbot):
    rows = [{"wavelength_nm": 500.0, "detector": "si", "beam_power_W": 2e-6},
            {"wavelength_nm": 900.0, "detector": "ge", "beam_power_W": 3e-6},
            {"wavelength_nm": 600.0, "detector": "si", "beam_power_W": 4e-6}]
    plot = _plot(qtbot, "eqe-calibration", _buffer("eqe-calibration", {"calibration": rows}), BeamPowerPlot)
    x, y = plot.curves["reference si"].getOriginalDataset()  # a log axis: getData() is log10
    np.testing.assert_array_equal(x, [500, 600])
    np.testing.assert_allclose(y, [2.0, 4.0])
    assert set(plot.curves) == {"reference si", "reference ge"}


def test_voc_against_ln_phi_gives_the_ideality_back(qtbot):
    n, t_k, a = 1.62, 300.0, 1.05
    vt = constants.k * t_k / constants.e
    suns = np.geomspace(1e-3, 1.0, 9)
    voc = a + n * vt * np.log(suns)
    rows = [{"suns": s, "voc_V": v, "direction": "up", "temperature_K": t_k}
            for s, v in zip(suns, voc, strict=True)]
    rows.append({"suns": 0.1, "voc_V": a + n * vt * np.log(0.1) + 0.002, "direction": "down",
                 "temperature_K": t_k})  # the down pass is not fitted (the first pass is)
    plot = _plot(qtbot, "voc-intensity", _buffer("voc-intensity", {"voc": rows}), VocIntensityPlot)
    assert plot.n_live == pytest.approx(n, rel=1e-9)
    x, y = plot.curves["Voc, up"].getOriginalDataset()  # a log axis: getData() is log10
    np.testing.assert_array_equal(x, suns)
    np.testing.assert_array_equal(y, voc)
    assert plot.curves["Voc, down"].getOriginalDataset()[0].tolist() == [0.1]
    assert "n = 1.62" in plot.plot.titleLabel.text


def test_plqy_plots_the_newest_spectrum(qtbot):
    freq = np.linspace(2.0, 12.0, 5)
    spectra = [{"kind": "pl", "laser_power_mW": 10.0, "frequency_Hz": freq, "level_dBm": np.full(5, -90.0)},
               {"kind": "pl", "laser_power_mW": 20.0, "frequency_Hz": freq, "level_dBm": np.arange(5.0) - 80}]
    points = [{"laser_power_mW": 10.0, "line_dBm": -70.0}, {"laser_power_mW": 20.0, "line_dBm": -64.0}]
    plot = _plot(qtbot, "plqy", _buffer("plqy", {"spectrum": spectra, "point": points}), PLQYPlot)
    x, y = plot.curves["spectrum"].getData()
    np.testing.assert_array_equal(x, freq)
    np.testing.assert_array_equal(y, np.arange(5.0) - 80)
    np.testing.assert_array_equal(plot.curves["line"].getData()[1], [-70, -64])


def test_mpp_plot_pce_and_jv_figures_against_hours_with_interruptions_shaded(qtbot):
    mpp = [{"time_s": 3600.0 * h, "pce_pct": 20 - h, "voltage_V": 0.9, "current_A": -1e-3} for h in range(5)]
    figures = [{"stress_time_s": 0.0, "direction": 0, "pce_pct": 20.0, "voc_V": 1.1, "jsc_mA_cm2": 22.0,
                "ff_pct": 80.0},
               {"stress_time_s": 7200.0, "direction": 1, "pce_pct": 18.0, "voc_V": 1.08, "jsc_mA_cm2": 21.5,
                "ff_pct": 78.0}]
    stops = [{"kind": "suspended", "start_s": 3600.0, "end_s": 5400.0},
             {"kind": "gap", "start_s": 9000.0, "end_s": 9000.0}]
    buffer = _buffer("mpp", {"mpp": mpp, "jv_figures": figures, "interruptions": stops})
    plot = _plot(qtbot, "mpp", buffer, StabilityPlot)
    x, y = plot.curves["tracked PCE"].getData()
    np.testing.assert_array_equal(x, [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(y, [20, 19, 18, 17, 16])
    assert plot.curves["J–V voc forward"].getData()[0].tolist() == [2.0]
    assert plot.curves["J–V ff reverse"].getData()[1].tolist() == [80.0]
    assert plot.shaded == [(1.0, 1.5)]  # a gap has no width in stress time: not a band


def test_hold_at_open_circuit_plots_voc(qtbot):
    rows = [{"time_s": 1800.0 * k, "voltage_V": 1.1 - 0.01 * k, "current_A": 0.0, "j_mA_cm2": 0.0,
             "power_mW_cm2": 0.0} for k in range(4)]
    plot = _plot(qtbot, "hold", _buffer("hold", {"hold": rows}), StabilityPlot)
    x, y = plot.curves["held Voc"].getData()
    np.testing.assert_array_equal(x, [0, 0.5, 1.0, 1.5])
    np.testing.assert_allclose(y, [1.1, 1.09, 1.08, 1.07])


def test_default_plot_signal_against_axis(qtbot):
    rows = [{"laser_power_mW": p, "monitor_current_A": 1e-6 * p, "reference_power_W": 1e-3 * p, "laser_on": 1}
            for p in (1.0, 2.0)]
    plot = _plot(qtbot, "voc-intensity-calibration", _buffer("voc-intensity-calibration", {"calibration": rows}),
                 DefaultPlot)
    spec = procedure_classes()["voc-intensity-calibration"].STREAMS["calibration"]
    x, y = plot.curves["calibration"].getData()
    assert len(x) == 2 and np.isfinite(x).all() == np.isfinite(y).all()
    assert spec.signal in plot.plots["calibration"].getAxis("left").labelText


def test_jv_plot_qss_points_in_voltage_order_and_dark_on_a_log_axis(qtbot):
    from labctl.gui.plots import JVPlot

    rows = [{"voltage_V": v, "j_mA_cm2": j, "scan": 0, "direction": 0}
            for v, j in ((0.0, 18.0), (1.1, 2.0), (0.5, 17.0), (0.9, 12.0))]  # the order a QSS run measures in
    plot = _plot(qtbot, "jv", _buffer("jv", {"jv": rows}), JVPlot)
    assert plot.curves["scan 0: reverse"].getData()[0].tolist() == [0.0, 1.1, 0.5, 0.9]  # staircase: as measured
    plot.set_mode(dark=False, qss=True)
    plot.update_from(_buffer("jv", {"jv": rows}), force=True)
    x, y = plot.curves["scan 0: reverse"].getData()
    assert x.tolist() == [0.0, 0.5, 0.9, 1.1] and y.tolist() == [18.0, 17.0, 12.0, 2.0]
    dark = [{"voltage_V": v, "j_mA_cm2": j, "scan": 0, "direction": 1} for v, j in ((-0.1, -1e-6), (0.0, 0.0),
                                                                                    (0.5, 1e-3))]
    plot.set_mode(dark=True, qss=False)
    plot.update_from(_buffer("jv", {"jv": dark}), force=True)
    x, y = plot.curves["scan 0: forward"].getOriginalDataset()
    assert x.tolist() == [-0.1, 0.5] and y.tolist() == [1e-6, 1e-3]  # |J|, the zero left out of the log axis
