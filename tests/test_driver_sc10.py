"""ThorlabsSC10 driver: exact traffic (echo, reply, prompt) per command; end to end on both transports."""

from __future__ import annotations

import pytest
from pymeasure.test import expected_protocol

from drivers.thorlabs_sc10 import SC10Error, ThorlabsSC10
from sim_instruments.adapter import EmulatorAdapter
from sim_instruments.sc10 import FRAMING, SC10Emulator
from sim_instruments.server import serve
from tests.fakes import PROMPT_REPLY as P
from tests.fakes import ShutterBench as FakeBench
from tests.fakes import console_command as command
from tests.fakes import console_query as query


def test_constructor_sends_nothing() -> None:
    with expected_protocol(ThorlabsSC10, []):
        pass


def test_idn_and_id() -> None:
    with expected_protocol(ThorlabsSC10, query("id?", "THORLABS SC10 VERSION 1.07") * 2) as sc:
        assert sc.idn == "THORLABS SC10 VERSION 1.07"
        assert sc.id == "THORLABS SC10 VERSION 1.07"


def test_mode_get_set_and_validation() -> None:
    with expected_protocol(ThorlabsSC10, query("mode?", "3") + command("mode=1")) as sc:
        assert sc.mode == 3
        sc.mode = 1
    with expected_protocol(ThorlabsSC10, []) as sc, pytest.raises(ValueError):
        sc.mode = 6


def test_closed_and_interlock() -> None:
    with expected_protocol(ThorlabsSC10, query("closed?", "1") + query("interlock?", "0")) as sc:
        assert sc.closed is True
        assert sc.interlock_tripped is False


@pytest.mark.parametrize(("reply", "state"), [("0", False), ("1", True)])
def test_shutter_open_reads_ens(reply: str, state: bool) -> None:
    with expected_protocol(ThorlabsSC10, query("ens?", reply)) as sc:
        assert sc.shutter_open is state


def test_shutter_open_setter_toggles_only_when_state_differs() -> None:
    with expected_protocol(ThorlabsSC10, query("ens?", "1")) as sc:
        sc.shutter_open = True
    with expected_protocol(ThorlabsSC10, query("ens?", "0") + command("ens") + query("ens?", "1")) as sc:
        sc.shutter_open = True


def test_shutter_setter_raises_when_state_does_not_change() -> None:
    with expected_protocol(ThorlabsSC10, query("ens?", "0") + command("ens") + query("ens?", "0")) as sc:
        with pytest.raises(SC10Error, match="did not open"):
            sc.shutter_open = True


def test_open_shutter_switches_to_manual_mode_first() -> None:
    traffic = query("mode?", "2") + command("mode=1")
    traffic += query("ens?", "0") + command("ens") + query("ens?", "1")
    with expected_protocol(ThorlabsSC10, traffic) as sc:
        sc.open_shutter()
    with expected_protocol(ThorlabsSC10, query("mode?", "1") + query("ens?", "1")) as sc:
        sc.open_shutter()


@pytest.mark.parametrize("method", ["close_shutter", "safe_state", "shutdown"])
def test_close_paths(method: str) -> None:
    with expected_protocol(ThorlabsSC10, query("ens?", "1") + command("ens") + query("ens?", "0")) as sc:
        getattr(sc, method)()
    with expected_protocol(ThorlabsSC10, query("ens?", "0")) as sc:
        getattr(sc, method)()


def test_error_line_after_a_command_raises() -> None:
    traffic = [("mode=1", "mode=1"), (None, "Command error CMD_ARG_INVALID"), P]
    with expected_protocol(ThorlabsSC10, traffic) as sc, pytest.raises(SC10Error, match="CMD_ARG_INVALID"):
        sc.write("mode=1")


def test_error_line_after_a_query_raises() -> None:
    with expected_protocol(ThorlabsSC10, query("ens?", "Command error CMD_NOT_DEFINED")) as sc:
        with pytest.raises(SC10Error, match="CMD_NOT_DEFINED"):
            sc.shutter_open  # noqa: B018 - the property read is the action under test


def test_wrong_echo_raises() -> None:
    with expected_protocol(ThorlabsSC10, [("ens?", "ens")]) as sc, pytest.raises(SC10Error, match="echo"):
        sc.shutter_open  # noqa: B018


def test_missing_prompt_raises() -> None:
    traffic = [("ens", "ens"), (None, "garbage"), (None, "xx")]
    with expected_protocol(ThorlabsSC10, traffic) as sc, pytest.raises(SC10Error, match="prompt"):
        sc.write("ens")


# -- end to end against the emulator -----------------------------------------------------------------------

def _exercise(sc: ThorlabsSC10, bench: FakeBench) -> None:
    assert sc.idn == "THORLABS SC10 VERSION 1.07"
    assert sc.shutter_open is False and bench.light.shutter_open is False
    sc.mode = 2
    sc.open_shutter()
    assert sc.mode == 1 and sc.shutter_open is True and bench.light.shutter_open is True
    assert sc.closed is False
    sc.open_shutter()  # idempotent
    assert bench.light.shutter_open is True
    sc.safe_state()
    assert bench.light.shutter_open is False and sc.closed is True
    with pytest.raises(SC10Error, match="CMD_NOT_DEFINED"):
        sc.write("nonsense")
    with pytest.raises(SC10Error, match="CMD_ARG_INVALID"):
        sc.write("rep=0")
    assert sc.interlock_tripped is False  # the link is still in step after errors


def test_end_to_end_in_process() -> None:
    bench = FakeBench()
    emulator = SC10Emulator(bench)
    _exercise(ThorlabsSC10(EmulatorAdapter(emulator, **FRAMING)), bench)
    emulator.interlock_tripped = True
    sc = ThorlabsSC10(EmulatorAdapter(emulator, **FRAMING))
    assert sc.interlock_tripped is True
    with pytest.raises(SC10Error, match="interlock"):
        sc.open_shutter()


@pytest.mark.tcp
def test_end_to_end_over_asrlsocket() -> None:
    bench = FakeBench()
    with serve({"shutter": (SC10Emulator(bench), "\r", "\r")}, serial=["shutter"]) as srv:
        sc = ThorlabsSC10(srv.resource_strings()["shutter"], visa_library="@py", timeout=2000)
        try:
            assert sc.adapter.connection.baud_rate == 9600
            assert sc.adapter.connection.read_termination == "\r"
            _exercise(sc, bench)
        finally:
            sc.adapter.close()
