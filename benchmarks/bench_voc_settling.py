"""Benchmark: a 70 dB light-intensity Voc ladder with convergence-based settling against the shortest fixed wait
per step that gives the same Voc within 0.5 mV at every step.

Both run on the simulated voc bench (stations/voc-bench.yaml, virtual clock: the times are those of the real
instruments and of the device) with a junction capacitance of 100 nF/cm² (simulation.device.capacitance_nF_cm2),
which makes Voc at I = 0 settle with τ = C·n·Vt/J: seconds at 1e-7 sun, microseconds at 1 sun, and neither laser
drift nor noise (see :func:`bench`: they would move Voc between runs whatever the settling). The shortest
fixed wait is found by bisection (to 1 %); a 600 s fixed wait is the steady-state reference both are compared
with. Target (issue 9): convergence at least 2x faster. Run: ``python benchmarks/bench_voc_settling.py``.
"""

from __future__ import annotations

import copy
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from labctl.config import parse_station  # noqa: E402
from labctl.engine import RunEngine  # noqa: E402
from labctl.station import Station  # noqa: E402
from labctl.storage import load_run  # noqa: E402
from procedures.voc_intensity import VocIntensityCalibrationProcedure, VocIntensityProcedure  # noqa: E402

CAPACITANCE_NF_CM2 = 100.0
TOLERANCE_V = 0.5e-3
ONE_SUN = {"one_sun_mW_cm2": 54.54}  # methods ref. §4.2 worked: 1 sun at 520 nm for EQE 0.80


def bench() -> dict:
    data = yaml.safe_load((REPO / "stations" / "voc-bench.yaml").read_text())
    data["simulation"]["device"]["capacitance_nF_cm2"] = CAPACITANCE_NF_CM2
    # no laser drift: a 600 s wait per step is 4.5 h of emission, and the 1 %/h drift would move Voc by
    # n·Vt·ln(1.045) ≈ 1-4 mV between the runs (the monitor corrects the intensity, not Voc); the noise stays
    data["simulation"]["laser"]["power_drift_per_h"] = 0.0
    # no laser noise either: each reading's draw holds until the next, so a long wait settles Voc on one draw, and
    # 0.2 % of intensity is 0.2 mV of Voc where n ≈ 3.6 (1e-7 sun): two runs differ by that much whatever the wait
    data["simulation"]["laser"]["power_noise"] = 0.0
    return data


def run(out: Path, procedure) -> tuple[object, float, float]:  # noqa: ANN001
    """(result, station-clock seconds, wall seconds) of one run on a fresh simulated bench."""
    station = Station(parse_station(copy.deepcopy(bench())))
    t0, w0 = station.clock.now(), time.perf_counter()
    result = RunEngine(station, out, sample="bench").run(procedure)
    assert result.status == "completed", result.error
    return result, station.clock.now() - t0, time.perf_counter() - w0


def ladder(out: Path, cal: Path, **params) -> tuple[np.ndarray, float, float, float]:  # noqa: ANN003
    """(Voc per step, settling s summed, run s on the station clock, wall s)."""
    result, clock_s, wall_s = run(out, VocIntensityProcedure(calibration_file=str(cal), **ONE_SUN, **params))
    frame = load_run(result.path).streams["voc"]
    return frame.voc_V.to_numpy(), float(frame.settle_time_s.sum()), clock_s, wall_s


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        cal, _, _ = run(out, VocIntensityCalibrationProcedure(check_filters=False))
        conv, conv_settle, conv_clock, conv_wall = ladder(out, cal.path)
        ref, *_ = ladder(out, cal.path, settle_mode="fixed", fixed_wait_s=600.0)
        worst = int(np.argmax(np.abs(conv - ref)))
        print(f"worst step {worst}: convergence {conv[worst]:.5f} V, reference {ref[worst]:.5f} V")
        print(f"70 dB ladder, {len(conv)} steps, C = {CAPACITANCE_NF_CM2:g} nF/cm², tolerance "
              f"{TOLERANCE_V * 1e3:g} mV; convergence: |Voc - 600 s reference| max "
              f"{1e3 * np.max(np.abs(conv - ref)):.3f} mV")

        def ok(wait_s: float) -> tuple[bool, tuple]:
            got = ladder(out, cal.path, settle_mode="fixed", fixed_wait_s=wait_s)
            return bool(np.max(np.abs(got[0] - conv)) <= TOLERANCE_V), got

        lo, hi = 0.0, 600.0
        best = ok(hi)[1]
        while hi - lo > 0.01 * hi:
            mid = 0.5 * (lo + hi)
            good, got = ok(mid)
            if good:
                hi, best = mid, got
            else:
                lo = mid
        fixed, fixed_settle, fixed_clock, fixed_wall = best
        print(f"shortest fixed wait within {TOLERANCE_V * 1e3:g} mV of the convergence Voc at every step: {hi:.2f} s "
              f"(max |ΔVoc| {1e3 * np.max(np.abs(fixed - conv)):.3f} mV)")
        for name, settle, clock, wall in (("convergence", conv_settle, conv_clock, conv_wall),
                                          ("fixed", fixed_settle, fixed_clock, fixed_wall)):
            print(f"  {name:12s} settling {settle:8.1f} s, whole run {clock:8.1f} s simulated, {wall:6.2f} s wall")
        print(f"ratio (fixed / convergence): settling {fixed_settle / conv_settle:.2f}x, whole run "
              f"{fixed_clock / conv_clock:.2f}x simulated, {fixed_wall / conv_wall:.2f}x wall (target >= 2x)")


if __name__ == "__main__":
    main()
