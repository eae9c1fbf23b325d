"""Benchmark 1: J–V over the TCP simulator through the real pyvisa-py stack, 1 ms added per query round trip.

* Our driver's built-in sweep: wall time against the time the instrument itself needs (source delays +
  integration); target within 5 % plus a fixed set-up under 100 ms.
* Against a point-by-point loop through PyMeasure's stock, unmodified Keithley2400 at zero source delay
  (``source_voltage = v`` then ``current``, the way most lab scripts do it); target at least 10x. Prints the ratio.

Run: ``python benchmarks/bench_jv_tcp.py``.
"""

from __future__ import annotations

import time

import numpy as np
from pymeasure.adapters import VISAAdapter
from pymeasure.instruments.keithley import Keithley2400 as StockKeithley2400

from drivers.keithley2400 import Keithley2400
from sim_instruments.bench import Bench
from sim_instruments.clock import RealClock
from sim_instruments.keithley2400 import Keithley2400Emulator
from sim_instruments.server import serve

LATENCY_S = 0.001
POINTS = 141


def _adapter(resource: str) -> VISAAdapter:
    return VISAAdapter(resource, visa_library="@py", read_termination="\n", write_termination="\n", timeout=60000)


def built_in_sweep(resource: str, nplc: float, delay_s: float) -> tuple[float, float, float]:
    """(configure wall s, sweep wall s, instrument time s) for one 141-point sweep with our driver."""
    t0 = time.perf_counter()
    smu = Keithley2400(_adapter(resource))
    smu.configure_voltage_source(compliance_A=0.01, nplc=nplc, source_delay_s=delay_s)
    t1 = time.perf_counter()
    data = smu.sweep_voltage(1.3, -0.1, POINTS, delay_s)
    t2 = time.perf_counter()
    smu.safe_state()
    assert len(data.current_A) == POINTS
    return t1 - t0, t2 - t1, POINTS * smu.measurement_time_s(nplc, delay_s)


def stock_loop(resource: str, nplc: float) -> float:
    """Wall time of a point-by-point loop through PyMeasure's stock driver (zero source delay)."""
    smu = StockKeithley2400(_adapter(resource))
    smu.write(':SENS:FUNC "CURR"')
    smu.source_mode = "voltage"
    smu.compliance_current = 0.01
    smu.current_nplc = nplc
    smu.source_delay = 0.0
    smu.source_enabled = True
    currents = []
    t0 = time.perf_counter()
    for v in np.linspace(1.3, -0.1, POINTS):
        smu.source_voltage = v
        currents.append(smu.current)
    wall = time.perf_counter() - t0
    smu.source_enabled = False
    return wall


def main() -> None:
    bench = Bench(clock=RealClock())
    bench.light.shutter_open = True
    with serve({"smu": (Keithley2400Emulator(bench, model="2400"), "\n", "\n")}, latency_s=LATENCY_S) as server:
        resource = server.resource_strings()["smu"]
        print(f"TCP simulator at {resource}, {LATENCY_S * 1e3:.0f} ms added per query round trip, {POINTS} points")
        for nplc, delay in ((1.0, 0.1), (0.1, 0.01), (0.01, 0.0)):
            setup, wall, need = built_in_sweep(resource, nplc, delay)
            print(f"built-in sweep nplc={nplc:<5} delay={delay:<5} s: wall {wall:.3f} s, instrument needs "
                  f"{need:.3f} s ({100 * (wall / need - 1):+.2f} %), configure {setup * 1e3:.0f} ms")
        for nplc in (0.01, 0.1):
            _, wall, _ = built_in_sweep(resource, nplc, 0.0)
            loop = stock_loop(resource, nplc)
            print(f"nplc={nplc}, zero delay: stock point-by-point loop {loop:.3f} s vs built-in sweep {wall:.3f} s "
                  f"→ {loop / wall:.1f}x faster (target >= 10x)")


if __name__ == "__main__":
    main()
