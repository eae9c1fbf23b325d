"""The simulated bench: one physical model (bench.py), a virtual clock, and emulators that speak each
instrument's real command set, reachable in-process (adapter.py) or over loopback TCP (server.py).

labctl reaches it only through :class:`sim_instruments.provider.Simulator` (the ``labctl.simulators`` entry
point). An emulator is made from the instrument's registration (``registration.emulator``, "module:attribute",
called with the bench and ``registration.emulator_options``); the emulator class says which ``sim://<name>``
resources of the bench it can be (its ``SIM_NAMES``).
"""

from __future__ import annotations

import importlib
from typing import Any

#: until every driver module carries its registration: station.yaml driver name → (emulator, options, serial)
_LOCAL: dict[str, tuple[str, dict[str, Any], bool]] = {
    "keithley2400": ("sim_instruments.keithley2400:Keithley2400Emulator", {"model": "2400"}, False),
    "keithley2420": ("sim_instruments.keithley2400:Keithley2400Emulator", {"model": "2420"}, False),
    "keithley2450": ("sim_instruments.keithley2450:Keithley2450Emulator", {}, False),
    "thorlabs_sc10": ("sim_instruments.sc10:SC10Emulator", {}, True),
    "cornerstone260": ("sim_instruments.cornerstone:CornerstoneEmulator", {"model": "260"}, True),
    "cornerstone130": ("sim_instruments.cornerstone:CornerstoneEmulator", {"model": "130"}, True),
    "thorlabs_fw102c": ("sim_instruments.fw102c:FW102CEmulator", {}, True),
    "sr830": ("sim_instruments.sr830:SR830Emulator", {}, False),
    "sr570": ("sim_instruments.sr570:SR570Emulator", {}, True),
}

#: emulators reached like serial instruments (ASRLsocket:// over TCP), by station.yaml driver name
SERIAL_DRIVERS = {name for name, (_, _, serial) in _LOCAL.items() if serial}


def _spec(instrument: Any) -> tuple[str, str | None, dict[str, Any]]:
    """(name, emulator "module:attribute" or None, options) of a registration, or of a driver name."""
    if isinstance(instrument, str):
        emulator, options, _ = _LOCAL.get(instrument, (None, {}, False))
        return instrument, emulator, dict(options)
    return instrument.name, instrument.emulator, dict(instrument.emulator_options)


def emulator_factory(instrument: Any) -> Any:
    """The emulator class (or factory) of ``instrument`` (a registration or a driver name); ValueError: none."""
    name, emulator, _ = _spec(instrument)
    if emulator is None:
        raise ValueError(f"no simulated instrument for driver '{name}' (its registration names no emulator)")
    module, _, attr = emulator.partition(":")
    return getattr(importlib.import_module(module), attr)


def sim_name_problem(instrument: Any, name: str) -> str | None:
    """Why ``sim://<name>`` cannot be the ``instrument`` (registration or driver name) of the simulated bench
    (None: it can). The text names the allowed resources, e.g. ``the simulated bench has no keithley2400 named
    'lockin' (allowed: 'sim://smu')``; an instrument without an emulator is reported by :func:`make_emulator`."""
    try:
        allowed = getattr(emulator_factory(instrument), "SIM_NAMES", None)
    except ValueError:
        return None
    if allowed is None or name in allowed:
        return None
    listing = ", ".join(repr(f"sim://{n}") for n in allowed)
    return f"the simulated bench has no {_spec(instrument)[0]} named {name!r} (allowed: {listing})"


def make_emulator(instrument: Any, bench: Any, name: str | None = None) -> Any:
    """A new emulator on ``bench`` of ``instrument`` (its registration, or a station.yaml driver name).

    name: the ``<name>`` of a ``sim://<name>`` resource; ValueError unless the emulator can be it (its
    ``SIM_NAMES``; None: not checked, e.g. when serving the bench on TCP ports by role).
    """
    factory = emulator_factory(instrument)
    problem = None if name is None else sim_name_problem(instrument, name)
    if problem is not None:
        raise ValueError(problem)
    return factory(bench, **_spec(instrument)[2])
