"""ThorlabsFW102C driver: exact traffic (echo, reply, prompt) per command; end to end on both transports."""

from __future__ import annotations

import time

import pytest
from pymeasure.test import expected_protocol

from drivers.thorlabs_fw102c import FW102CError, ThorlabsFW102C
from sim_instruments import fw102c
from sim_instruments.adapter import EmulatorAdapter
from sim_instruments.clock import RealClock
from sim_instruments.fw102c import FRAMING, FW102CEmulator
from sim_instruments.server import serve
from tests.fakes import PROMPT_REPLY as P
from tests.fakes import TimeoutSpy
from tests.fakes import console_command as command
from tests.fakes import console_query as query
from tests.test_sim_fw102c import FakeBench

IDENTITY = "THORLABS FW102C/FW212C Filter Wheel version 1.07"


def test_constructor_sends_nothing() -> None:
    with expected_protocol(ThorlabsFW102C, []):
        pass


def test_idn_and_id() -> None:
    with expected_protocol(ThorlabsFW102C, query("*idn?", IDENTITY) * 2) as fw:
        assert fw.idn == IDENTITY
        assert fw.id == IDENTITY


def test_position_get_and_set() -> None:
    traffic = query("pos?", "3") + command("pos=5") + query("pos?", "5") + command("pos=12") + query("pos?", "12")
    with expected_protocol(ThorlabsFW102C, traffic) as fw:
        assert fw.position == 3
        fw.position = 5
        fw.position = 12.0


def test_position_prompt_is_awaited_under_a_long_timeout() -> None:
    with expected_protocol(ThorlabsFW102C, command("pos=4") + query("pos?", "4")) as fw:
        spy = fw.adapter.connection = TimeoutSpy(2000)
        fw.position = 4
    assert spy.history == [fw.move_timeout_s * 1000, 2000]
    assert fw.move_timeout_s >= 12 * fw102c.MOVE_S_PER_SLOT_SLOW / 2  # half a turn of a 12-slot wheel, slow
    with expected_protocol(ThorlabsFW102C, command("speed=0")) as fw:
        spy = fw.adapter.connection = TimeoutSpy(2000)
        fw.speed_high = False
    assert spy.history == []  # other commands keep the normal timeout


@pytest.mark.parametrize("value", [0, 13, 2.5, True, "3", float("nan")])
def test_position_validator(value: object) -> None:
    with expected_protocol(ThorlabsFW102C, []) as fw, pytest.raises(ValueError):
        fw.position = value


def test_position_beyond_the_wheel_raises_the_controller_error() -> None:
    traffic = [("pos=9", "pos=9"), (None, "Command error CMD_ARG_INVALID"), P]
    with expected_protocol(ThorlabsFW102C, traffic) as fw, pytest.raises(FW102CError, match="CMD_ARG_INVALID"):
        fw.position = 9


def test_position_not_reached_raises() -> None:
    with expected_protocol(ThorlabsFW102C, command("pos=2") + query("pos?", "1")) as fw:
        with pytest.raises(FW102CError, match="slot 1"):
            fw.position = 2


def test_unreadable_position_raises() -> None:
    with expected_protocol(ThorlabsFW102C, query("pos?", "x")) as fw, pytest.raises(FW102CError, match="'x'"):
        fw.position  # noqa: B018 - the property read is the action under test


def test_slot_count() -> None:
    with expected_protocol(ThorlabsFW102C, query("pcount?", "6") + command("pcount=12")) as fw:
        assert fw.slot_count == 6
        fw.slot_count = 12
    with expected_protocol(ThorlabsFW102C, []) as fw, pytest.raises(ValueError):
        fw.slot_count = 8


@pytest.mark.parametrize(("name", "key"), [("speed_high", "speed"), ("sensors_always_on", "sensors")])
def test_boolean_settings(name: str, key: str) -> None:
    traffic = query(f"{key}?", "1") + query(f"{key}?", "0") + command(f"{key}=0") + command(f"{key}=1")
    with expected_protocol(ThorlabsFW102C, traffic) as fw:
        assert getattr(fw, name) is True
        assert getattr(fw, name) is False
        setattr(fw, name, False)
        setattr(fw, name, True)


def test_save() -> None:
    with expected_protocol(ThorlabsFW102C, command("save")) as fw:
        fw.save()


@pytest.mark.parametrize("method", ["safe_state", "shutdown"])
def test_safe_state_sends_nothing(method: str) -> None:
    with expected_protocol(ThorlabsFW102C, []) as fw:
        getattr(fw, method)()


def test_error_line_after_a_query_raises() -> None:
    with expected_protocol(ThorlabsFW102C, query("pos?", "Command error CMD_NOT_DEFINED")) as fw:
        with pytest.raises(FW102CError, match="CMD_NOT_DEFINED"):
            fw.position  # noqa: B018


def test_wrong_echo_and_missing_prompt_raise() -> None:
    with expected_protocol(ThorlabsFW102C, [("pos?", "pos")]) as fw, pytest.raises(FW102CError, match="echo"):
        fw.position  # noqa: B018
    traffic = [("save", "save"), (None, "garbage"), (None, "xx")]
    with expected_protocol(ThorlabsFW102C, traffic) as fw, pytest.raises(FW102CError, match="prompt"):
        fw.save()


# -- end to end against the emulator -----------------------------------------------------------------------

def _exercise(fw: ThorlabsFW102C, bench: FakeBench) -> None:
    assert fw.idn == IDENTITY
    assert fw.slot_count == 6 and fw.speed_high is True and fw.sensors_always_on is False
    assert fw.position == 1
    fw.position = 4
    assert fw.position == 4 and bench.optics.wheel_position == 4
    with pytest.raises(FW102CError, match="CMD_ARG_INVALID"):
        fw.position = 7
    fw.speed_high = False
    fw.position = 6  # 2 slots, slow
    assert bench.optics.wheel_position == 6
    with pytest.raises(FW102CError, match="CMD_NOT_DEFINED"):
        fw.write("pos")
    fw.safe_state()
    assert fw.position == 6  # the link is still in step after errors


def test_end_to_end_in_process_on_the_virtual_clock() -> None:
    bench = FakeBench()
    fw = ThorlabsFW102C(EmulatorAdapter(FW102CEmulator(bench), **FRAMING))
    _exercise(fw, bench)
    assert bench.clock.now() == pytest.approx(3 * fw102c.MOVE_S_PER_SLOT_HIGH + 2 * fw102c.MOVE_S_PER_SLOT_SLOW)


@pytest.mark.tcp
def test_end_to_end_over_asrlsocket() -> None:
    bench = FakeBench()
    with serve({"wheel": (FW102CEmulator(bench), "\r", "\r")}, serial=["wheel"]) as srv:
        fw = ThorlabsFW102C(srv.resource_strings()["wheel"], visa_library="@py", timeout=2000)
        try:
            assert fw.adapter.connection.baud_rate == 115200
            assert fw.adapter.connection.read_termination == "\r"
            _exercise(fw, bench)
            assert fw.adapter.connection.timeout == 2000  # restored after each move
        finally:
            fw.adapter.close()


@pytest.mark.tcp
def test_move_longer_than_the_read_timeout_in_real_time() -> None:
    bench = FakeBench()
    bench.clock = bench.optics.clock = RealClock()
    with serve({"wheel": (FW102CEmulator(bench), "\r", "\r")}, serial=["wheel"]) as srv:
        fw = ThorlabsFW102C(srv.resource_strings()["wheel"], visa_library="@py", timeout=300)
        try:
            t0 = time.monotonic()
            fw.position = 2  # the prompt comes after ~1 s, beyond the 0.3 s timeout
            assert time.monotonic() - t0 >= fw102c.MOVE_S_PER_SLOT_HIGH
            assert fw.position == 2
        finally:
            fw.adapter.close()


# -- the filters a wheel holds (station settings) -------------------------------------------------------------
def test_filter_settings_are_validated_and_give_the_transmission_table() -> None:
    from pydantic import ValidationError

    from drivers.thorlabs_fw102c import FW102CSettings

    s = FW102CSettings(calibration_wavelength_nm=520,
                       filters={3: {"od": 2.0, "transmission": 0.0102}, 1: {"od": 0, "transmission": 1.0}})
    assert s.transmission_table() == {1: 1.0, 3: 0.0102} and list(s.transmission_table()) == [1, 3]
    assert s.od_table() == {1: 0.0, 3: 2.0}
    assert FW102CSettings().transmission_table() == {}
    for bad in ({1: {"od": -0.1, "transmission": 1.0}}, {1: {"od": 1.0, "transmission": 0.0}},
                {1: {"od": 1.0, "transmission": 1.2}}, {13: {"od": 1.0, "transmission": 0.1}},
                {0: {"od": 1.0, "transmission": 0.1}}, {1: {"od": 1.0}}):
        with pytest.raises(ValidationError):
            FW102CSettings(calibration_wavelength_nm=520, filters=bad)
    with pytest.raises(ValidationError, match="calibration_wavelength_nm"):
        FW102CSettings(filters={1: {"od": 0.0, "transmission": 1.0}})


def test_filter_setting_errors_name_the_key() -> None:
    import yaml

    from labctl.config import ConfigError, parse_station
    from tests.test_sim_laser_path import STATION_FILE

    data = yaml.safe_load(STATION_FILE.read_text())
    data["instruments"]["od_wheel_2"]["settings"]["filters"][4]["transmission"] = 1.5
    with pytest.raises(ConfigError, match=r"instruments\.od_wheel_2\.settings\.filters\.4\.transmission = 1\.5"):
        parse_station(data)
    data["instruments"]["od_wheel_2"]["settings"]["filters"] = {13: {"od": 1.0, "transmission": 0.1}}
    with pytest.raises(ConfigError, match=r"instruments\.od_wheel_2\.settings\.filters\.13 = .*allowed: slots 1-12"):
        parse_station(data)


def test_configure_sends_nothing_for_the_filters_and_refuses_a_slot_beyond_the_wheel() -> None:
    from drivers.thorlabs_fw102c import FW102CSettings, configure_fw102c

    settings = FW102CSettings(calibration_wavelength_nm=520, filters={6: {"od": 5.0, "transmission": 9e-6}})
    with expected_protocol(ThorlabsFW102C, []) as fw:
        configure_fw102c(fw, settings)
    settings = FW102CSettings(calibration_wavelength_nm=520, filters={8: {"od": 5.0, "transmission": 9e-6}})
    with expected_protocol(ThorlabsFW102C, query("pcount?", "6")) as fw, \
            pytest.raises(FW102CError, match=r"filters\.8 is beyond the wheel's 6 slots"):
        configure_fw102c(fw, settings)
    with expected_protocol(ThorlabsFW102C, query("pcount?", "12")) as fw:
        configure_fw102c(fw, settings)
