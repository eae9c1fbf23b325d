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


def make_emulator(driver: str, bench: Any) -> Any:
    """A new emulator of the instrument that ``driver`` (a station.yaml driver name) talks to."""
    import importlib

    try:
        module, cls, kwargs = EMULATORS[driver]
    except KeyError:
        raise ValueError(f"no simulated instrument for driver '{driver}'; simulated: {sorted(EMULATORS)}") from None
    return getattr(importlib.import_module(module), cls)(bench, **kwargs)
