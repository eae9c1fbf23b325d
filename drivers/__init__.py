"""Instrument drivers, one class per model.

Each driver module ends with the :class:`~drivers.registration.InstrumentRegistration` of the models it drives;
labctl finds them through the ``labctl.instruments`` entry points (pyproject.toml), ``labctl.plugins``.

There is no second table of them here: code asks ``labctl.plugins.registration(name)`` (which also sees
instruments registered in-process).
"""

from __future__ import annotations

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

