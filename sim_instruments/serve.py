"""``labctl sim serve``: the station's simulated bench on loopback TCP ports, in real time.

The CLI reaches it through the simulator entry point (:meth:`sim_instruments.provider.Simulator.serve`)."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import click
import yaml

from sim_instruments import make_emulator
from sim_instruments.clock import RealClock
from sim_instruments.compose import build_bench
from sim_instruments.operator import OperatorEmulator
from sim_instruments.server import Endpoint, SimServer, serve

OPERATOR = "operator"  # the simulated operator's endpoint (detector swaps), not a station instrument


def start_server(config: Any, latency_s: float = 0.0) -> SimServer:
    """Start one TCP server per instrument of ``config`` on 127.0.0.1, all sharing one real-time bench.

    Each instrument's emulator comes from its registration (``config.instruments[role].registration``), as the
    bench's instrument its ``sim://<name>`` resource names (e.g. ``od_wheel_2``, ``monitor``); a serial
    instrument (``registration.connection.serial``) is served as an ``ASRLsocket://`` port. The bench's faults
    (``simulation.faults``, :mod:`sim_instruments.faults`) are injected on the served links, on the real clock."""
    bench = build_bench(config, RealClock())
    instruments = {}
    for role, inst in config.instruments.items():
        resource = str(inst.resource)
        name = resource.removeprefix("sim://") if resource.startswith("sim://") else None  # which od wheel, ...
        instruments[role] = Endpoint(make_emulator(inst.registration, bench, name=name), inst.read_termination,
                                     inst.write_termination, faults=bench.faults,
                                     names=tuple(n for n in (name, role) if n))
    serial = {role for role, inst in config.instruments.items() if inst.registration.connection.serial}
    if bench.optics is not None:
        instruments[OPERATOR] = (OperatorEmulator(bench), "\n", "\n")
    server = serve(instruments, serial=serial, latency_s=latency_s)
    server.bench = bench  # the served bench (its faults: ``server.bench.faults``), for tests and tools
    return server


def served_station(config: Any, resources: dict[str, str]) -> dict:
    """A station mapping that points at served resources (simulation kept for the record, real clock)."""
    data = copy.deepcopy(config.snapshot())
    for role, resource in resources.items():
        if role == OPERATOR:
            data["simulation"]["operator_resource"] = resource
        else:
            data["instruments"][role]["resource"] = resource
    data["simulation"]["clock"] = "real"
    return data


def run_server(config: Any, latency_s: float, write_station: str | None, duration_s: float) -> None:
    server = start_server(config, latency_s)
    resources = server.resource_strings()
    scheduled = server.bench.faults.specs
    if scheduled:  # first: a reader that stops once the station file exists has read at least this line
        kinds = ", ".join(sorted({spec.kind for spec in scheduled}))
        click.echo(f"faults: {len(scheduled)} scheduled (simulation.faults: {kinds})")
    for role, resource in resources.items():
        click.echo(f"{role}: {resource}")
    if write_station:
        Path(write_station).write_text(yaml.safe_dump(served_station(config, resources), sort_keys=False))
        click.echo(f"station file: {write_station}")
    click.echo("serving on 127.0.0.1 (Ctrl-C to stop)", err=True)
    try:
        end = time.monotonic() + duration_s if duration_s > 0 else None
        while end is None or time.monotonic() < end:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
