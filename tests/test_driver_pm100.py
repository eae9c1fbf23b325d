"""ThorlabsPM100 driver (PM100D / PM100USB): exact traffic of every command, the stock class's faults fixed.

Expected traffic is written from the console's SCPI command list (instruments ref. §7.2), not from the driver.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from pymeasure.test import expected_protocol

from drivers.keithley2400 import ReplyError
from drivers.thorlabs_pm100 import (
    THORLABS_PM100D_REGISTRATION,
    THORLABS_PM100USB_REGISTRATION,
    PM100Error,
    PM100Settings,
    ThorlabsPM100,
    ThorlabsPM100D,
    ThorlabsPM100USBConsole,
    configure_pm100,
    parse_sensor_idn,
)

SENSOR = "S120C,00123456,10-Mar-2020,1,18,289"  # flags 289 = power (1) + wavelength settable (32) + temperature (256)
SENSOR_Q = ("SYST:SENS:IDN?", SENSOR)
RANGE_Q = [("SENS:CORR:WAV? MIN", "4.000000E+02"), ("SENS:CORR:WAV? MAX", "1.100000E+03")]


def test_constructor_sends_nothing() -> None:
    with expected_protocol(ThorlabsPM100, []):
        pass


def test_idn_and_identity_spec() -> None:
    with expected_protocol(ThorlabsPM100, [("*IDN?", "Thorlabs,PM100D,P0012345,2.6.0")]) as pm:
        assert pm.id == "Thorlabs,PM100D,P0012345,2.6.0"
    spec = ThorlabsPM100.IDENTITY
    assert spec.matches("Thorlabs,PM100D,P0012345,2.6.0") and spec.matches("Thorlabs,PM100USB,P2001234,1.7.0")
    assert not spec.matches("THORLABS FW102C/FW212C Filter Wheel version 1.07")
    assert ThorlabsPM100D.IDENTITY.matches("Thorlabs,PM100D,P1,2.6.0")
    assert not ThorlabsPM100D.IDENTITY.matches("Thorlabs,PM100USB,P1,1.7.0")
    assert ThorlabsPM100USBConsole.IDENTITY.matches("Thorlabs,PM100USB,P1,1.7.0")
    assert not ThorlabsPM100USBConsole.IDENTITY.matches("Thorlabs,PM100D,P1,2.6.0")


def test_sensor_fields_are_text_and_flags_by_bit() -> None:
    with expected_protocol(ThorlabsPM100, [SENSOR_Q]) as pm:
        info = pm.read_sensor()
        assert (info.name, info.serial, info.calibration, info.type, info.subtype, info.flags) == (
            "S120C", "00123456", "10-Mar-2020", 1, 18, 289)
        assert pm.sensor_sn == "00123456"  # the stock values() made it 123456.0
        assert pm.is_power_sensor and pm.wavelength_settable and pm.has_temperature_sensor
        assert not (pm.is_energy_sensor or pm.response_settable or pm.tau_settable)


def test_quoted_sensor_fields_and_a_flag_word_above_nine_bits() -> None:
    # the manual's "string response" fields may come quoted; a PM100D2 sets bit 31 (2**31 + 289)
    info = parse_sensor_idn('"S120C","00123456","10-Mar-2020",1,18,2147483937')
    assert (info.name, info.serial, info.calibration) == ("S120C", "00123456", "10-Mar-2020")
    assert info.has(1) and info.has(32) and not info.has(2)


def test_no_sensor_and_a_short_reply_are_refused() -> None:
    with pytest.raises(PM100Error, match="no sensor"):
        parse_sensor_idn("no sensor,,,0,0,0")
    with pytest.raises(ReplyError, match="6"):
        parse_sensor_idn("S120C,00123456")


def test_wavelength_query_range_and_set() -> None:
    traffic = [("SENS:CORR:WAV?", "6.350000E+02"), SENSOR_Q, *RANGE_Q, ("SENS:CORR:WAV 520", None), *RANGE_Q]
    with expected_protocol(ThorlabsPM100, traffic) as pm:
        assert pm.wavelength == 635.0
        pm.set_wavelength_nm(520.0)
        assert pm.wavelength_range_nm() == (400.0, 1100.0)


def test_wavelength_out_of_range_is_refused_not_clamped() -> None:
    # the stock setter sent "SENSE:CORR:WAV 1100" for 2000 nm (truncated_range)
    with expected_protocol(ThorlabsPM100, [SENSOR_Q, *RANGE_Q]) as pm:
        with pytest.raises(ValueError, match="2000"):
            pm.wavelength = 2000.0


def test_wavelength_on_a_fixed_wavelength_sensor_is_an_instrument_error() -> None:
    with expected_protocol(ThorlabsPM100, [("SYST:SENS:IDN?", "ES111C,00123,cal,3,1,2")]) as pm:
        with pytest.raises(PM100Error, match="does not allow"):
            pm.set_wavelength_nm(532.0)


def test_power_and_current() -> None:
    traffic = [SENSOR_Q, ("MEAS:POW?", "1.234567E-03"), ("MEAS:POW?", "2.000000E-06"), ("MEAS:CURR?", "3.5E-04")]
    with expected_protocol(ThorlabsPM100, traffic) as pm:
        assert pm.read_power_W() == pytest.approx(1.234567e-3, rel=1e-12)
        assert pm.power == pytest.approx(2e-6, rel=1e-12)
        assert pm.read_current_A() == pytest.approx(3.5e-4, rel=1e-12)


def test_power_from_an_energy_sensor_is_an_instrument_error_not_attribute_error() -> None:
    with expected_protocol(ThorlabsPM100, [("SYST:SENS:IDN?", "ES111C,00123,cal,3,1,2")]) as pm:
        with pytest.raises(PM100Error, match="not a power sensor"):
            pm.read_power_W()


def test_energy_only_from_an_energy_sensor() -> None:
    energy_sensor = ("SYST:SENS:IDN?", "ES111C,00123,cal,3,1,2")
    with expected_protocol(ThorlabsPM100, [energy_sensor, ("MEAS:ENER?", "1.5E-06")]) as pm:
        assert pm.energy == pytest.approx(1.5e-6, rel=1e-12)
    with expected_protocol(ThorlabsPM100, [SENSOR_Q]) as pm:
        with pytest.raises(PM100Error, match="not an energy sensor"):
            pm.energy  # noqa: B018 - the property is the measurement


def test_unreadable_power_reply() -> None:
    with expected_protocol(ThorlabsPM100, [SENSOR_Q, ("MEAS:POW?", "garbage")]) as pm:
        with pytest.raises(ReplyError, match="MEAS:POW"):
            pm.read_power_W()


def test_unit_range_averaging_line_frequency_zero() -> None:
    traffic = [("SENS:POW:UNIT W", None), ("SENS:POW:RANG:AUTO ON", None), ("SENS:POW:RANG:AUTO OFF", None),
               ("SENS:POW:RANG:AUTO?", "0"), ("SENS:POW:RANG 0.001", None), ("SENS:POW:RANG?", "1.000000E-03"),
               ("SENS:AVER:COUN 300", None), ("SENS:AVER:COUN?", "300"), ("SYST:LFR 60", None),
               ("SENS:CORR:COLL:ZERO", None)]
    with expected_protocol(ThorlabsPM100, traffic) as pm:
        pm.set_power_unit_watts()
        pm.set_auto_range(True)
        pm.set_auto_range(False)
        assert pm.auto_range() is False
        pm.set_power_range_W(1e-3)
        assert pm.power_range_W() == 1e-3
        pm.set_averages(300)
        assert pm.averages() == 300
        pm.set_line_frequency_Hz(60)
        pm.zero()


@pytest.mark.parametrize("call", [
    lambda pm: pm.set_averages(0), lambda pm: pm.set_averages(2.5), lambda pm: pm.set_averages(10001),
    lambda pm: pm.set_power_range_W(0.0), lambda pm: pm.set_power_range_W(float("nan")),
    lambda pm: pm.set_line_frequency_Hz(55),
])
def test_bad_settings_send_nothing(call) -> None:  # noqa: ANN001 - a lambda
    with expected_protocol(ThorlabsPM100, []) as pm:
        with pytest.raises(ValueError):
            call(pm)


def test_check_errors_reads_until_zero_and_keeps_commas() -> None:
    traffic = [("SYST:ERR?", '-113,"Undefined header"'), ("SYST:ERR?", '-222,"Data out of range, low"'),
               ("SYST:ERR?", '0,"No error"'), ("SYST:ERR?", '-222,"Parameter data out of range"'),
               ("SYST:ERR?", '0,"No error"')]
    with expected_protocol(ThorlabsPM100, traffic) as pm:
        assert pm.check_errors() == [(-113, "Undefined header"), (-222, "Data out of range, low")]
        with pytest.raises(PM100Error, match="-222"):
            pm.check_set_errors()


def test_configure_defaults_and_settings() -> None:
    default = [SENSOR_Q, ("SENS:POW:UNIT W", None), ("SENS:AVER:COUN 1", None), ("SENS:POW:RANG:AUTO ON", None),
               ("SYST:ERR?", '0,"No error"')]
    with expected_protocol(ThorlabsPM100, default) as pm:
        configure_pm100(pm, None)
    settings = PM100Settings(wavelength_nm=520, averages=100, auto_range=False, power_range_W=0.01,
                             line_frequency_Hz=50)
    full = [SENSOR_Q, ("SENS:POW:UNIT W", None), *RANGE_Q, ("SENS:CORR:WAV 520", None),
            ("SENS:AVER:COUN 100", None), ("SENS:POW:RANG:AUTO OFF", None), ("SENS:POW:RANG 0.01", None),
            ("SYST:LFR 50", None), ("SYST:ERR?", '0,"No error"')]
    with expected_protocol(ThorlabsPM100, full) as pm:
        configure_pm100(pm, settings)


def test_settings_refuse_a_fixed_range_with_auto_ranging_and_bad_values() -> None:
    with pytest.raises(ValidationError, match="auto_range"):
        PM100Settings(power_range_W=0.01)
    with pytest.raises(ValidationError, match="line_frequency_Hz"):
        PM100Settings(line_frequency_Hz=55)
    with pytest.raises(ValidationError, match="averages"):
        PM100Settings(averages=0)


def test_safe_state_sends_nothing() -> None:
    with expected_protocol(ThorlabsPM100, []) as pm:
        assert "nothing" in THORLABS_PM100D_REGISTRATION.safe_state(pm, None)


def test_registrations() -> None:
    for reg, model, cls in ((THORLABS_PM100D_REGISTRATION, "PM100D", ThorlabsPM100D),
                            (THORLABS_PM100USB_REGISTRATION, "PM100USB", ThorlabsPM100USBConsole)):
        assert reg.capabilities == ("power_meter",)
        assert reg.driver is cls and issubclass(cls, ThorlabsPM100)
        assert reg.emulator == "sim_instruments.pm100:PM100Emulator"
        assert reg.emulator_options == {"model": model}
        assert (reg.connection.read_termination, reg.connection.write_termination) == ("\n", "\n")
    assert THORLABS_PM100D_REGISTRATION.name == "thorlabs_pm100d"
    assert THORLABS_PM100USB_REGISTRATION.name == "thorlabs_pm100usb"


# --- the stock PyMeasure 0.16 faults this driver fixes (these pass against the stock class, as they document it)
def test_stock_class_faults_that_the_subclass_fixes() -> None:
    from pymeasure.instruments.thorlabs import ThorlabsPM100USB

    stock_sensor_q = ("SYST:SENSOR:IDN?", SENSOR)
    with pytest.warns(FutureWarning), expected_protocol(ThorlabsPM100USB, [stock_sensor_q]) as stock:
        assert stock.sensor_sn == 123456.0  # queried in the constructor; the serial's leading zeros lost
    traffic = [stock_sensor_q, ("SENS:CORR:WAV? MIN", "400"), ("SENS:CORR:WAV? MAX", "1100"),
               ("SENSE:CORR:WAV 1100.0", None)]
    with pytest.warns(FutureWarning), expected_protocol(ThorlabsPM100USB, traffic) as stock:
        stock.wavelength = 2000.0  # silently clamped to 1100 nm
    with pytest.warns(FutureWarning), pytest.raises(ValueError, match="too many values"):
        with expected_protocol(ThorlabsPM100USB, [("SYST:SENSOR:IDN?", "S120C,00123456,cal,1,18,2147483937")]):
            pass
