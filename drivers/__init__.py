"""Instrument drivers, one class per model; ``REGISTRY`` maps station.yaml driver names to classes."""

from __future__ import annotations

from drivers.cornerstone import Cornerstone130, Cornerstone260
from drivers.keithley2400 import Keithley2400, Keithley2420
from drivers.keithley2450 import Keithley2450
from drivers.sr570 import SR570
from drivers.sr830 import SR830
from drivers.thorlabs_fw102c import ThorlabsFW102C
from drivers.thorlabs_sc10 import ThorlabsSC10

REGISTRY: dict[str, type] = {
    # source-meters (drivers.smu.SourceMeter)
    "keithley2400": Keithley2400,
    "keithley2420": Keithley2420,
    "keithley2450": Keithley2450,
    # shutter controllers
    "thorlabs_sc10": ThorlabsSC10,
    # EQE bench
    "cornerstone260": Cornerstone260,
    "cornerstone130": Cornerstone130,
    "thorlabs_fw102c": ThorlabsFW102C,
    "sr830": SR830,
    "sr570": SR570,
}

__all__ = [
    "REGISTRY",
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
