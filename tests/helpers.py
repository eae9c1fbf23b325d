"""Helpers for end-to-end tests on the simulated bench."""

from __future__ import annotations

import copy
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from labctl.config import parse_station
from labctl.engine import RunEngine, RunResult
from labctl.station import Station
from procedures.jv import JVProcedure

REPO = Path(__file__).resolve().parents[1]

#: methods ref. §1.6 parameter sets (single-diode, 298.15 K) and their static figures of merit
SET_A = {"jph_mA_cm2": 18.33514, "j0_A_cm2": 1.16004e-15, "ideality": 1.5, "rs_ohm_cm2": 3.84022,
         "rsh_ohm_cm2": 2000.0}
FOM_A = {"voc_V": 1.1700, "jsc_mA_cm2": 18.300, "ff": 0.7830, "vmp_V": 0.97981}
SET_B = {"jph_mA_cm2": 30.34146, "j0_A_cm2": 4.12065e-10, "ideality": 1.4, "rs_ohm_cm2": 2.34208,
         "rsh_ohm_cm2": 500.0,
         # a PbS-type gap (methods ref. §3.5: Jsc,max 35.82 mA/cm² at 1.30 eV): station.yaml refuses 30.3 mA/cm²
         # from the default 1.5789 eV gap, which allows at most ~26.9 mA/cm²
         "eqe": {"bandgap_eV": 1.30}}
FOM_B = {"voc_V": 0.6500, "jsc_mA_cm2": 30.200, "ff": 0.6800, "vmp_V": 0.49367}


def default_station() -> dict:
    return copy.deepcopy(yaml.safe_load((REPO / "station.yaml").read_text()))


def station_file(tmp_path: Path, mutate: Any = None) -> Path:
    """The default station, changed by ``mutate(data)`` if given, written to ``tmp_path/station.yaml``."""
    data = default_station()
    if mutate:
        mutate(data)
    path = tmp_path / "station.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def station_with(device: dict | None = None, hysteresis: dict | None = None, **sim: Any) -> dict:
    data = default_station()
    if device:
        data["simulation"]["device"].update(device)
    if hysteresis:
        data["simulation"]["device"]["hysteresis"].update(hysteresis)
    data["simulation"].update(sim)
    return data


def make_procedure(**params: Any) -> JVProcedure:
    proc = JVProcedure()
    for name, value in params.items():
        assert name in proc._parameters, name
        setattr(proc, name, value)
    return proc


def run_jv(out_dir: Path, station_data: dict | None = None, procedure: JVProcedure | None = None,
           **params: Any) -> tuple[RunResult, Station]:
    """Run a J–V on a fresh simulated station; returns the result and the (closed-over) station."""
    station = Station(parse_station(station_data or default_station()))
    engine = RunEngine(station, out_dir, sample="test")
    result = engine.run(procedure or make_procedure(**params))
    return result, station


def smu_emulator(station: Station) -> Any:
    """The emulator behind the station's in-process SMU."""
    return station["smu"].adapter.emulator


def smu_output_on(station: Station) -> bool:
    """Ask the simulated SMU itself (not the driver) whether its output is on."""
    return smu_emulator(station).handle(":OUTP?").strip() == "1"


def reap(proc: subprocess.Popen) -> None:
    """However a test of a child process ends, leave no child behind: kill it if it still runs, wait for it, and
    close its pipes."""
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


@contextmanager
def served_bench(folder: Path, station_data: dict, duration_s: float = 240.0) -> Iterator[tuple[Path, str]]:
    """``labctl sim serve`` of ``station_data`` in a subprocess (real time, 127.0.0.1): yields (the served station
    file, the lines it printed); the server is stopped and reaped however the test ends."""
    station_path = folder / "station.yaml"
    station_path.write_text(yaml.safe_dump(station_data, sort_keys=False))
    served_path = folder / "served.yaml"
    server = subprocess.Popen(
        [sys.executable, "-m", "labctl.cli", "sim", "serve", "--station", str(station_path),
         "--write-station", str(served_path), "--duration-s", str(duration_s)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        lines = []
        deadline = time.monotonic() + 30
        while not served_path.exists() and time.monotonic() < deadline:
            lines.append(server.stdout.readline())
        assert served_path.exists(), "".join(lines) + server.stderr.read()
        yield served_path, "".join(lines)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        finally:
            reap(server)
