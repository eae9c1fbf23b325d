"""Instrument drivers, one class per model; ``REGISTRY`` maps station.yaml driver names to classes."""

from __future__ import annotations

from drivers.keithley2400 import Keithley2400, Keithley2420
from drivers.keithley2450 import Keithley2450
from drivers.thorlabs_sc10 import ThorlabsSC10

REGISTRY: dict[str, type] = {
    # source-meters (drivers.smu.SourceMeter)
    "keithley2400": Keithley2400,
    "keithley2420": Keithley2420,
    "keithley2450": Keithley2450,
    # shutter controllers
    "thorlabs_sc10": ThorlabsSC10,
}

__all__ = ["REGISTRY", "Keithley2400", "Keithley2420", "Keithley2450", "ThorlabsSC10"]
