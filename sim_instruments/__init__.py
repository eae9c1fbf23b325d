"""The simulated bench: one physical model (bench.py), a virtual clock, and emulators that speak each
instrument's real command set, reachable in-process (adapter.py) or over loopback TCP (server.py)."""

from __future__ import annotations

from typing import Any

#: station.yaml driver name → (module, class, keyword arguments), imported lazily
EMULATORS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "keithley2400": ("sim_instruments.keithley2400", "Keithley2400Emulator", {"model": "2400"}),
    "keithley2420": ("sim_instruments.keithley2400", "Keithley2400Emulator", {"model": "2420"}),
    "keithley2450": ("sim_instruments.keithley2450", "Keithley2450Emulator", {}),
    "thorlabs_sc10": ("sim_instruments.sc10", "SC10Emulator", {}),
    "cornerstone260": ("sim_instruments.cornerstone", "CornerstoneEmulator", {"model": "260"}),
    "cornerstone130": ("sim_instruments.cornerstone", "CornerstoneEmulator", {"model": "130"}),
    "thorlabs_fw102c": ("sim_instruments.fw102c", "FW102CEmulator", {}),
    "sr830": ("sim_instruments.sr830", "SR830Emulator", {}),
    "sr570": ("sim_instruments.sr570", "SR570Emulator", {}),
}

#: emulators reached like serial instruments (ASRLsocket:// over TCP)
SERIAL_DRIVERS = {"thorlabs_sc10", "cornerstone260", "cornerstone130", "thorlabs_fw102c", "sr570"}

#: station.yaml driver name → the names (``sim://<name>``) of the simulated bench's instrument of that kind:
#: one source meter (whichever model the driver asks for), one shutter, lock-in, monochromator, filter wheel
#: and current preamplifier
SIM_NAMES: dict[str, tuple[str, ...]] = {
    "keithley2400": ("smu",),
    "keithley2420": ("smu",),
    "keithley2450": ("smu",),
    "thorlabs_sc10": ("shutter",),
    "cornerstone260": ("monochromator",),
    "cornerstone130": ("monochromator",),
    "thorlabs_fw102c": ("filter_wheel",),
    "sr830": ("lockin",),
    "sr570": ("preamp",),
}


def sim_name_problem(driver: str, name: str) -> str | None:
    """Why ``sim://<name>`` cannot be a ``driver`` instrument of the simulated bench (None: it can).

    The text names the allowed resources, e.g. ``the simulated bench has no keithley2400 named 'lockin'
    (allowed: 'sim://smu')``; a driver without an emulator is reported by :func:`make_emulator`.
    """
    allowed = SIM_NAMES.get(driver)
    if allowed is None or name in allowed:
        return None
    listing = ", ".join(repr(f"sim://{n}") for n in allowed)
    return f"the simulated bench has no {driver} named {name!r} (allowed: {listing})"


def make_emulator(driver: str, bench: Any, name: str | None = None) -> Any:
    """A new emulator of the instrument that ``driver`` (a station.yaml driver name) talks to.

    name: the ``<name>`` of a ``sim://<name>`` resource; ValueError unless it is one of :data:`SIM_NAMES`
    for ``driver`` (None: not checked, e.g. when serving the bench on TCP ports by role).
    """
    import importlib

    try:
        module, cls, kwargs = EMULATORS[driver]
    except KeyError:
        raise ValueError(f"no simulated instrument for driver '{driver}'; simulated: {sorted(EMULATORS)}") from None
    problem = None if name is None else sim_name_problem(driver, name)
    if problem is not None:
        raise ValueError(problem)
    return getattr(importlib.import_module(module), cls)(bench, **kwargs)
