"""Benchmark: the bench window (labctl gui) through a 600 h hold on stations/stability-bench.yaml, virtual clock.

The window runs the hold as an operator would (queued from its form, run from its queue) while the window's own
timer redraws the live stability plot from its LiveBuffer. Every half second of wall time this samples the
process's resident memory (``/proc/self/statm``), the stress time reached and the last redraw's wall time; it
prints them against the run's length and a summary: memory growth from the first tenth of the run to its end,
and the median and largest redraw time in the first and the last fifth. PyMeasure's own plots re-send every
point on each redraw, so their redraw time and memory grow with the run (pymeasure#333, #1076); the window's
stay flat because the buffer keeps at most ``max_rows`` decimated rows per stream.

Run with ``QT_QPA_PLATFORM=offscreen python benchmarks/bench_gui_memory.py`` (``--hours 60`` for a quick look,
``--interval-s 10`` for the README's one reading per 10 s; ``--no-window``: the engine alone, the memory baseline;
``--plot-only``: the live plot and its buffer alone, fed the same number of rows without a run).
tests/test_gui_stability.py calls :func:`measure`.
"""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
BENCH = yaml.safe_load((REPO / "stations" / "stability-bench.yaml").read_text())
#: two lamp dips the station's suspender holds the run through: shaded on the window's plot
DIPS = [{"start_h": 100.0, "duration_h": 2.0, "depth": 0.5}, {"start_h": 400.0, "duration_h": 1.0, "depth": 0.5}]
SUSPENDER = {"name": "lamp", "role": "reference_cell", "signal": "irradiance_W_m2", "suspend_below": 800.0,
             "resume_above": 950.0, "settle_s": 300.0, "poll_s": 10.0,
             "isc_at_1000_W_m2_A": BENCH["simulation"]["reference_cell"]["isc_at_1000_W_m2_A"]}


def station_data(dips: bool = True) -> dict[str, Any]:
    """stations/stability-bench.yaml with the lamp dips and the suspender (a mapping for parse_station)."""
    data = copy.deepcopy(BENCH)
    data["simulation"]["light"]["dips"] = copy.deepcopy(DIPS) if dips else []
    data["suspenders"] = [dict(SUSPENDER)]
    return data


def rss_MB() -> float:  # noqa: N802 - unit in the name
    """The process's resident memory (MB), from /proc/self/statm."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def measure(out_dir: str | Path, hours: float = 600.0, interval_s: float = 30.0, jv_interval_min: float = 1440.0,
            sample_every_s: float = 0.5, window: Any = None, timeout_s: float = 900.0) -> dict[str, Any]:
    """Run a ``hours`` h hold at open circuit from the window's queue and sample memory and redraw times.

    ``window``: a :class:`labctl.gui.window.BenchWindow` on :func:`station_data` (default: one is made, shown and
    closed here). Returns ``{"samples": [(stress_h, rss_MB, last_redraw_s), ...], "redraw_s": [...], "result":
    the QueuedRun, "wall_s", "window"}``."""
    from qtpy import QtWidgets

    from labctl.config import parse_station
    from labctl.gui.window import BenchWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["bench_gui_memory"])
    own = window is None
    if own:
        window = BenchWindow(parse_station(station_data()), out_dir)
        window.show()
    window.procedure_box.setCurrentText("hold")
    form = window.form("hold")
    for name, text in {"duration_h": hours, "interval_s": interval_s, "jv_interval_min": jv_interval_min}.items():
        form.set_text(name, f"{text:g}")
    item = window.add_to_queue()
    if item is None:
        raise RuntimeError(window.form_error.text())
    plot = window.plot("hold")
    samples: list[tuple[float, float, float]] = []
    start = time.perf_counter()
    window.run_all()
    next_sample = start
    while window.running:
        app.processEvents()
        time.sleep(0.01)
        now = time.perf_counter()
        if now >= next_sample and window.buffer is not None and plot.redraw_times_s:
            frame = window.buffer.frame("hold")
            stress_h = float(frame["time_s"].iloc[-1]) / 3600.0 if len(frame) else 0.0
            samples.append((stress_h, rss_MB(), plot.redraw_times_s[-1]))
            next_sample = now + sample_every_s
        if now - start > timeout_s:
            window.abort()
            raise TimeoutError(f"the {hours:g} h hold still runs after {timeout_s:g} s")
    app.processEvents()
    out = {"samples": samples, "redraw_s": list(plot.redraw_times_s), "result": item,
           "wall_s": time.perf_counter() - start, "window": window}
    if own:
        window.close()
    return out


def summary(samples: list[tuple[float, float, float]]) -> dict[str, float]:
    """Memory growth (MB) from the first tenth of the run to its end; median and largest redraw (ms) early (from a
    tenth to three tenths of the run, the buffer long full) and in the last fifth (by stress time)."""
    import numpy as np

    t = np.array([s[0] for s in samples])
    rss = np.array([s[1] for s in samples])
    redraw = np.array([s[2] for s in samples]) * 1e3
    end = t.max()
    early, first, last = t <= 0.1 * end, (t >= 0.1 * end) & (t <= 0.3 * end), t >= 0.8 * end
    return {"rss_early_MB": float(rss[early].max()), "rss_end_MB": float(rss[-1]),
            "rss_growth_MB": float(rss[-1] - rss[early].max()), "rss_max_MB": float(rss.max()),
            "redraw_first_median_ms": float(np.median(redraw[first])),
            "redraw_first_max_ms": float(redraw[first].max()),
            "redraw_last_median_ms": float(np.median(redraw[last])), "redraw_last_max_ms": float(redraw[last].max())}


def measure_engine_only(out_dir: str | Path, hours: float = 600.0, interval_s: float = 30.0,
                        jv_interval_min: float = 1440.0) -> list[tuple[float, float]]:
    """The same hold without a window (the engine and a LiveBuffer only): [(stress_h, rss_MB), ...] every 0.5 s,
    the baseline the window's memory is compared with."""
    from labctl.config import parse_station
    from labctl.engine import RunEngine
    from labctl.live import LiveBuffer
    from labctl.station import Station
    from procedures.hold import HoldProcedure

    station = Station(parse_station(station_data()))
    buffer = LiveBuffer()
    engine = RunEngine(station, out_dir, sample="bench", subscribers=[buffer])
    procedure = HoldProcedure()
    procedure.duration_h, procedure.interval_s, procedure.jv_interval_min = hours, interval_s, jv_interval_min
    samples = []
    engine.start(procedure)
    while engine.running:
        time.sleep(0.5)
        frame = buffer.frame("hold")
        samples.append((float(frame["time_s"].iloc[-1]) / 3600.0 if len(frame) else 0.0, rss_MB()))
    engine.join()
    station.close()
    return samples


def measure_plot_only(rows: int = 72_000, redraws_per_step: int = 20,
                      steps: int = 12) -> list[tuple[int, float, float]]:
    """The live stability plot and its buffer alone, fed hold rows as fast as they can be made (no run, no
    engine thread competing for the interpreter): [(rows so far, rss_MB, median redraw s of the step), ...]."""
    import numpy as np
    from qtpy import QtWidgets

    from labctl.documents import DESCRIPTOR, EVENT, START, Descriptor, Event, RunStart
    from labctl.gui.plots import StabilityPlot
    from labctl.live import LiveBuffer
    from procedures.hold import HoldProcedure

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["bench_gui_memory"])
    buffer = LiveBuffer()
    buffer(START, RunStart("bench", "hold", "s", "o", "st", "2026-12-02T00:00:00Z"))
    for name, spec in HoldProcedure.STREAMS.items():
        buffer(DESCRIPTOR, Descriptor("bench", name, tuple(spec.columns), spec.signal, spec.axes))
    plot = StabilityPlot(HoldProcedure)
    plot.resize(900, 700)
    plot.show()
    out, k = [], 0
    for _ in range(steps):
        for _ in range(rows // steps):
            k += 1
            buffer(EVENT, Event("bench", "hold", k, 0.0, {"time_s": 30.0 * k, "voltage_V": 1.1, "current_A": 0.0,
                                                          "j_mA_cm2": 0.0, "power_mW_cm2": 0.0}))
        for _ in range(redraws_per_step):
            plot.update_from(buffer, force=True)
            app.processEvents()
        out.append((k, rss_MB(), float(np.median(plot.redraw_times_s[-redraws_per_step:]))))
    plot.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hours", type=float, default=600.0)
    parser.add_argument("--interval-s", type=float, default=30.0)
    parser.add_argument("--jv-interval-min", type=float, default=1440.0)
    parser.add_argument("--no-window", action="store_true", help="the engine alone (the memory baseline)")
    parser.add_argument("--plot-only", action="store_true", help="the live plot and its buffer alone, no run")
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    if args.plot_only:
        print(f"{'rows':>8} {'RSS (MB)':>9} {'redraw (ms)':>12}")
        for rows, rss, redraw in measure_plot_only(int(args.hours * 3600 / args.interval_s)):
            print(f"{rows:8d} {rss:9.1f} {1e3 * redraw:12.2f}")
        return
    if args.no_window:
        with tempfile.TemporaryDirectory() as folder:
            samples = measure_engine_only(folder, args.hours, args.interval_s, args.jv_interval_min)
        t = [s[0] for s in samples]
        early = max(r for h, r in samples if h <= 0.1 * max(t))
        print(f"engine only: RSS {early:.1f} MB after a tenth of the run, {samples[-1][1]:.1f} MB at its end "
              f"(+{samples[-1][1] - early:.1f} MB)")
        return
    with tempfile.TemporaryDirectory() as folder:
        out = measure(folder, args.hours, args.interval_s, args.jv_interval_min)
    print(f"{args.hours:g} h hold, a reading every {args.interval_s:g} s, J-V every {args.jv_interval_min:g} min: "
          f"{out['result'].status} in {out['wall_s']:.1f} s wall, {len(out['redraw_s'])} redraws")
    print(f"{'stress (h)':>10} {'RSS (MB)':>9} {'redraw (ms)':>12}")
    step = max(1, len(out["samples"]) // 20)
    for t_h, rss, redraw in out["samples"][::step]:
        print(f"{t_h:10.1f} {rss:9.1f} {1e3 * redraw:12.2f}")
    for key, value in summary(out["samples"]).items():
        print(f"{key}: {value:.2f}")


if __name__ == "__main__":
    main()
