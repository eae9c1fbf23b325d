"""Instrument drivers, one class per model.

Each driver module ends with the :class:`~drivers.registration.InstrumentRegistration` of the models it drives;
labctl finds them through the ``labctl.instruments`` entry points (pyproject.toml), ``labctl.plugins``.

``REGISTRY`` (station.yaml driver name → driver class) is a read-only view of those entry points, kept for code
written before the plug-ins; it does not see instruments registered in-process. New code asks
``labctl.plugins.registration(name).driver``.
"""

from __future__ import annotations

from typing import Any

from drivers.cornerstone import Cornerstone130, Cornerstone260
from drivers.keithley2400 import Keithley2400, Keithley2420
from drivers.keithley2450 import Keithley2450
from drivers.sr570 import SR570
from drivers.sr830 import SR830
from drivers.thorlabs_fw102c import ThorlabsFW102C
from drivers.thorlabs_sc10 import ThorlabsSC10

__all__ = [
    "Cornerstone130",
    "Cornerstone260",
    "Keithley2400",
    "Keithley2420",
    "Keithley2450",
    "SR570",
    "SR830",
    "ThorlabsFW102C",
    "ThorlabsSC10",
]


def __getattr__(name: str) -> Any:
    if name == "REGISTRY":
        from importlib.metadata import entry_points

        return {ep.name: ep.load().driver for ep in entry_points(group="labctl.instruments")}
    raise AttributeError(f"module 'drivers' has no attribute {name!r}")
