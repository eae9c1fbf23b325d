"""One check_errors() contract across the drivers (issue 8, item 1): a list of (code, message), [] when clean,
never an exception for an error the instrument reports; ``check_set_errors()`` is the raising form.

Each built-in instrument of the default station (plus an SR570 preamp and the 2420/2450 and 130 variants) is
connected on the simulated bench, sent a command its manual does not have, then asked.
"""

from __future__ import annotations

import pytest

from labctl.config import parse_station
from labctl.plugins import instrument_registrations
from labctl.station import Station
from tests.helpers import default_station

#: driver → (role, sim resource) on the default simulated bench
ROLES = {
    "keithley2400": ("smu", "sim://smu"), "keithley2420": ("smu", "sim://smu"), "keithley2450": ("smu", "sim://smu"),
    "thorlabs_sc10": ("shutter", "sim://shutter"), "sr830": ("lockin", "sim://lockin"),
    "cornerstone260": ("monochromator", "sim://monochromator"),
    "cornerstone130": ("monochromator", "sim://monochromator"),
    "thorlabs_fw102c": ("filter_wheel", "sim://filter_wheel"), "sr570": ("preamp", "sim://preamp"),
    "oxxius_laserboxx": ("laser", "sim://laser"),
    "thorlabs_pm100d": ("meter", "sim://power_meter"), "thorlabs_pm100usb": ("meter", "sim://power_meter"),
    "keysight_n9010a": ("analyser", "sim://spectrum_analyser"),
    "keysight_33500b": ("fgen", "sim://fgen"),
    "lakeshore211": ("temperature", "sim://temperature"),
    "keithley7001": ("switch", "sim://switch"),
    "numato_relay8": ("switch", "sim://relay_board"),
}
#: drivers whose instrument keeps an error for a later query (the others answer an error at once, or never)
REPORTING = {"keithley2400", "keithley2420", "keithley2450", "sr830", "cornerstone260", "cornerstone130",
             "thorlabs_pm100d", "thorlabs_pm100usb", "keysight_n9010a", "keysight_33500b", "keithley7001"}


def _connected(driver: str) -> tuple[Station, object]:
    role, resource = ROLES[driver]
    data = default_station()
    data["instruments"] = {role: {"driver": driver, "resource": resource}}
    station = Station(parse_station(data))
    station.connect()
    return station, station[role]


def test_every_builtin_driver_is_covered() -> None:
    assert set(ROLES) == set(instrument_registrations())


@pytest.mark.parametrize("driver", sorted(ROLES))
def test_check_errors_is_a_list_of_code_and_message_and_never_raises(driver: str) -> None:
    station, inst = _connected(driver)
    try:
        assert inst.check_errors() == []
        try:
            inst.write("NOSUCHCOMMAND 1")  # not in any of these manuals' command sets
        except Exception:  # noqa: BLE001 - a console instrument (SC10, FW102C) refuses it on the spot
            assert driver in {"thorlabs_sc10", "thorlabs_fw102c"}, driver
        errors = inst.check_errors()
        if driver in REPORTING:
            assert errors, driver
            assert all(isinstance(code, int) and code != 0 and isinstance(text, str) and text
                       for code, text in errors), errors
        else:
            assert errors == []
        assert inst.check_errors() == []  # reading them cleared them
        assert inst.check_set_errors() == []
    finally:
        station.close()


@pytest.mark.parametrize("driver", sorted(REPORTING))
def test_check_set_errors_raises_what_check_errors_would_return(driver: str) -> None:
    station, inst = _connected(driver)
    try:
        inst.write("NOSUCHCOMMAND 1")
        with pytest.raises(RuntimeError):
            inst.check_set_errors()
    finally:
        station.close()
