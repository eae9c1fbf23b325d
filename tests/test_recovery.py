"""Transport-fault recovery (issue 11): classify what the real transports raise, reconnect that instrument, restore,
retry, journal every step, give up with one clear line when the budget is spent.

The faults come from real loopback TCP peers (tests/loopback.py) talking to pyvisa-py through the station's
DeadlineVISAAdapter, as with hardware: a Keithley 2400 that goes silent, hangs up, answers garbage, or is gone. The
station's clock is replaced by a stepping clock so the back-off (on the station clock) is checked to the second
without waiting for it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pytest
import serial
from pymeasure.experiment import IntegerParameter

from labctl.config import ConfigError, parse_station
from labctl.documents import Column
from labctl.engine import RunEngine
from labctl.recovery import (
    CONNECTION_RESET,
    GARBAGE_REPLY,
    RESOURCE_GONE,
    TIMEOUT,
    Recovery,
    RecoveryFailed,
    RecoveryPolicy,
    classify_io_error,
)
from labctl.station import Station, StationError
from labctl.storage import load_run
from procedures.base import LabProcedure, StreamSpec
from tests.loopback import KEITHLEY_IDN, LoopbackPeer, lines

NO_ERROR = b'0,"No error"\n'


class StepClock:
    """A station clock that jumps on sleep (the virtual clock's behaviour, without a simulator)."""

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def sleep(self, dt_s: float) -> None:
        self.t += max(0.0, dt_s)


class FlakyKeithley:
    """A 2400 answering ``*IDN?`` and ``:SYST:ERR?``; ``faults`` (consumed in order, one per ``:SYST:ERR?``) make
    it hang up (``"hang_up"``: closes before answering), stay silent (``"silent"``) or answer garbage
    (``"garbage"``). ``received`` holds the messages of each connection."""

    def __init__(self, faults: list[str] | None = None) -> None:
        self.faults = list(faults or [])
        self.received: list[list[str]] = []
        self.idn = KEITHLEY_IDN
        self._lock = threading.Lock()

    def handler(self, conn: Any, stop: threading.Event) -> None:
        with self._lock:
            mine: list[str] = []
            self.received.append(mine)
        for message in lines(conn, stop):
            text = message.strip()
            mine.append(text)
            if text == "*IDN?":
                conn.sendall(self.idn.encode() + b"\n")
            elif text in (":OUTP?", ":OUTP:STAT?"):  # the safe state's read-back
                conn.sendall(b"0\n")
            elif text == ":SYST:ERR?":
                fault = self.faults.pop(0) if self.faults else None
                if fault == "hang_up":
                    return
                if fault == "garbage":
                    conn.sendall(b"\x15\xff#@!\x00garbage\n")
                elif fault != "silent":
                    conn.sendall(NO_ERROR)


def _station(resource: str, **extra: Any) -> Station:
    data = {"instruments": {"smu": {"driver": "keithley2400", "resource": resource, "timeout_ms": 300}}, **extra}
    station = Station(parse_station(data))
    station.clock = StepClock()
    return station


# -- classification of what the transports really raise ---------------------------------------------------------
def _fault_of(fault: str) -> BaseException:
    smu = FlakyKeithley([fault])
    with LoopbackPeer(smu.handler) as peer:
        station = _station(peer.resource)
        station.connect(["smu"])
        try:
            with pytest.raises(Exception) as info:  # noqa: B017 - what the transport raises is the point
                station["smu"].check_errors()
        finally:
            station.close()
    return info.value


@pytest.mark.parametrize(("fault", "kind"), [("silent", TIMEOUT), ("garbage", GARBAGE_REPLY)])
def test_a_query_the_peer_does_not_answer_properly_is_classified(fault, kind):
    """No reply: VISA timeout. Garbage: the driver's ReplyError."""
    assert classify_io_error(_fault_of(fault)) == kind


def test_a_link_the_peer_closed_is_a_connection_reset():
    go_bad = threading.Event()
    from tests.loopback import fake_keithley

    with LoopbackPeer(fake_keithley({"*IDN?": KEITHLEY_IDN, ":SYST:ERR?": NO_ERROR.decode().strip()}, go_bad)) as peer:
        station = _station(peer.resource)
        station.connect(["smu"])
        go_bad.set()
        for thread in peer.threads:
            thread.join(2)  # the peer has hung up
        with pytest.raises(ConnectionError) as info:  # DeadlineVISAAdapter: the peer closed
            station["smu"].check_errors()
        station.close()
    assert classify_io_error(info.value) == CONNECTION_RESET


def test_a_closed_session_a_vanished_peer_and_a_missing_serial_port_are_resource_gone():
    smu = FlakyKeithley()
    peer = LoopbackPeer(smu.handler)
    station = _station(peer.resource)
    station.connect(["smu"])
    old = station["smu"]
    old.adapter.close()
    with pytest.raises(Exception) as closed:  # noqa: B017 - pyvisa's InvalidSession
        old.check_errors()
    assert classify_io_error(closed.value) == RESOURCE_GONE
    peer.close()
    with pytest.raises(StationError) as gone:
        station.reconnect("smu")
    assert classify_io_error(gone.value) == RESOURCE_GONE
    with pytest.raises(serial.SerialException) as port:
        serial.serial_for_url("/dev/ttyLABCTL_NO_SUCH_PORT", do_not_open=False)
    assert classify_io_error(port.value) == RESOURCE_GONE


def test_errors_that_are_not_transport_faults_are_not_classified():
    smu = FlakyKeithley()
    with LoopbackPeer(smu.handler) as peer:
        station = _station(peer.resource)
        station.connect(["smu"])
        with pytest.raises(ValueError) as setting:  # outside the 2400's range: refused before anything is sent
            station["smu"].configure_voltage_source(compliance_A=5.0)
        assert classify_io_error(setting.value) is None
        smu.idn = "Stanford_Research_Systems,SR830,s/n12345,ver1.07"
        with pytest.raises(StationError) as other:  # another instrument at the address: not mended by retrying
            station.reconnect("smu")
        assert classify_io_error(other.value) is None
        station.close()
    assert classify_io_error(RuntimeError("a bug")) is None
    assert classify_io_error(KeyError("x")) is None


# -- Recovery.call ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fault", ["hang_up", "garbage", "silent"])
def test_one_fault_is_journaled_backed_off_reconnected_restored_and_retried(fault):
    smu = FlakyKeithley([fault])
    journal: list[dict] = []
    restored: list[Any] = []
    with LoopbackPeer(smu.handler) as peer:
        station = _station(peer.resource)
        station.connect(["smu"])
        recovery = Recovery(station, RecoveryPolicy(), journal.append)
        result = recovery.call("smu", lambda inst: inst.check_errors(), restore=restored.append, what="error queue")
        assert result == []
        assert [e["action"] for e in journal] == ["fault", "reconnected", "retry"]
        first = journal[0]
        assert first["role"] == "smu" and first["attempt"] == 1 and first["backoff_s"] == 1.0  # the default
        # a peer hanging up while its reply is awaited: DeadlineVISAAdapter sees the closed link (a reset) or,
        # when the hang-up comes after its check, pyvisa-py's read runs to its timeout: either is that link's end
        assert first["kind"] in {"hang_up": (TIMEOUT, CONNECTION_RESET), "garbage": (GARBAGE_REPLY,),
                                 "silent": (TIMEOUT,)}[fault]
        assert first["time"] == 0.0 and journal[1]["time"] == 1.0  # backed off 1 s on the station clock
        assert journal[1]["detail"] == KEITHLEY_IDN
        assert restored == [station["smu"]]  # the new instrument, before the retry
        assert len(smu.received) == 2 and smu.received[1][0] == "*IDN?"  # identity first on the new link
        assert recovery.summary()["recovered"] == 1
        station.close()


def test_the_budget_spent_is_one_line_naming_role_kind_and_attempts_with_the_default_back_off():
    smu = FlakyKeithley(["hang_up"])
    journal: list[dict] = []
    peer = LoopbackPeer(smu.handler)
    station = _station(peer.resource)
    station.connect(["smu"])
    peer.close()  # the instrument is gone for good
    recovery = Recovery(station, RecoveryPolicy.from_config(station.config.recovery), journal.append)
    with pytest.raises(RecoveryFailed) as info:
        recovery.call("smu", lambda inst: inst.check_errors(), what="error queue")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("instrument 'smu': resource_gone during error queue not recovered after 5 attempts: ")
    faults = [e for e in journal if e["action"] == "fault"]
    assert [e["backoff_s"] for e in faults] == [1.0, 2.0, 4.0, 8.0, 16.0]  # 1 s doubling (defaults)
    assert journal[-1]["action"] == "gave_up" and journal[-1]["attempt"] == 6
    assert station.clock.now() == pytest.approx(31.0)
    assert "smu" not in station  # left disconnected: the safe state does not talk to a dead link
    station.close()


def test_a_non_transport_error_is_raised_at_once_without_a_journal_entry():
    smu = FlakyKeithley()
    journal: list[dict] = []
    with LoopbackPeer(smu.handler) as peer:
        station = _station(peer.resource)
        station.connect(["smu"])
        recovery = Recovery(station, RecoveryPolicy(), journal.append)
        with pytest.raises(ValueError, match="outside"):
            recovery.call("smu", lambda inst: inst.configure_voltage_source(compliance_A=5.0))
        assert journal == [] and len(smu.received) == 1 and station.clock.now() == 0.0
        station.close()


def test_zero_attempts_gives_up_at_the_first_fault():
    smu = FlakyKeithley(["garbage"])
    journal: list[dict] = []
    with LoopbackPeer(smu.handler) as peer:
        station = _station(peer.resource, recovery={"attempts": 0})
        station.connect(["smu"])
        recovery = Recovery(station, RecoveryPolicy.from_config(station.config.recovery), journal.append)
        with pytest.raises(RecoveryFailed, match="garbage_reply not recovered after 0 attempts"):
            recovery.call("smu", lambda inst: inst.check_errors())
        assert [e["action"] for e in journal] == ["gave_up"]
        station.close()


def test_recovery_policy_from_station_yaml_and_its_errors():
    station = parse_station({"instruments": {}, "recovery": {"attempts": 3, "backoff_s": 0.5, "backoff_max_s": 1.5}})
    policy = RecoveryPolicy.from_config(station.recovery)
    assert [policy.delay_s(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 1.5, 1.5]
    assert RecoveryPolicy.from_config(parse_station({"instruments": {}}).recovery) == RecoveryPolicy(5, 1.0, 2.0, 60.0)
    with pytest.raises(ConfigError, match=r"recovery\.attempts = -1"):
        parse_station({"instruments": {}, "recovery": {"attempts": -1}})
    with pytest.raises(ConfigError, match=r"recovery\.backoff_factor = 0\.5"):
        parse_station({"instruments": {}, "recovery": {"backoff_factor": 0.5}})


# -- in a run ----------------------------------------------------------------------------------------------------
class Queries(LabProcedure):
    """``points`` rows, each the length of the SMU's error queue read through ``self.io``."""

    NAME = "queries"
    REQUIRES = ("smu",)
    points = IntegerParameter("Points", default=5, minimum=1)
    STREAMS = {"q": StreamSpec([Column("index", "", "i8"), Column("errors", "", "i8")], signal="errors",
                               axes="index")}

    def execute(self) -> None:
        for k in range(self.points):
            self.checkpoint()
            errors = self.io("smu", lambda smu: smu.check_errors(), what="error queue")
            self.record("q", {"index": k, "errors": len(errors)})

    def analyse(self, streams: Mapping[str, pd.DataFrame]) -> dict[str, Any]:
        return {"rows": int(len(streams["q"]))}


def _queries(points: int) -> Queries:
    proc = Queries()
    proc.points = points
    return proc


def test_a_run_survives_faults_of_every_reply_kind_and_journals_each(tmp_path):
    smu = FlakyKeithley([None, "garbage", None, "hang_up", "silent"])  # type: ignore[list-item]
    with LoopbackPeer(smu.handler) as peer:
        station = _station(peer.resource)
        result = RunEngine(station, tmp_path, catalog=False).run(_queries(6))
        station.close()
    assert result.status == "completed", result.error
    run = load_run(result.path)
    assert list(run.streams["q"]["index"]) == list(range(6))  # nothing lost, nothing twice
    faults = [line for line in run.events if " WARNING: I/O fault: smu:" in line]  # lines are "<UTC time> text"
    assert len(faults) == 3
    assert sum("I/O recovery: smu:" in line and ": retry:" in line for line in run.events) == 3


def test_a_run_whose_instrument_is_gone_fails_with_the_reason_and_can_be_resumed(tmp_path):
    smu = FlakyKeithley()
    peer = LoopbackPeer(smu.handler)
    station = _station(peer.resource)
    engine = RunEngine(station, tmp_path, catalog=False)

    class GoneAfterTwo(Queries):
        def record(self, stream: str, row: Mapping[str, Any]) -> None:
            super().record(stream, row)
            if row["index"] == 1:
                peer.close()

    proc = GoneAfterTwo()
    proc.points = 5
    result = engine.run(proc)
    station.close()
    assert result.status == "failed"
    assert result.error.startswith("RecoveryFailed: instrument 'smu': ")
    assert "not recovered after 5 attempts" in result.error
    run = load_run(result.path)
    assert len(run.streams["q"]) == 2 and run.status == "failed"
    assert any(" WARNING: I/O recovery gave up: smu:" in line for line in run.events)
    # the safe state could not reach the instrument that is gone: said so, not hidden
    assert any(" SAFE STATE FAILED: smu: not connected (the recovery gave up)" in line for line in run.events)


def test_a_reset_the_procedure_noticed_is_mended_by_a_journaled_reconnection():
    """The transport is fine but a read-back says the instrument was reset (output off): recover() reconnects it,
    replays its configuration and restores the level, journaled like a transport fault."""
    from labctl.recovery import INSTRUMENT_RESET

    smu = FlakyKeithley()
    journal: list[dict] = []
    restored: list[Any] = []
    with LoopbackPeer(smu.handler) as peer:
        station = _station(peer.resource)
        station.connect(["smu"])
        old = station["smu"]
        recovery = Recovery(station, RecoveryPolicy(), journal.append)
        new = recovery.recover("smu", INSTRUMENT_RESET, "output reads off", restore=restored.append)
        assert new is station["smu"] is not old and restored == [new]
        assert [(e["action"], e["kind"]) for e in journal] == [("fault", INSTRUMENT_RESET),
                                                              ("reconnected", INSTRUMENT_RESET),
                                                              ("retry", INSTRUMENT_RESET)]
        assert journal[0]["detail"] == "output reads off" and smu.received[1][0] == "*IDN?"
        station.close()


def test_an_abort_during_the_back_off_ends_the_recovery_as_an_abort():
    from procedures.base import RunAborted

    smu = FlakyKeithley(["garbage"])
    journal: list[dict] = []
    with LoopbackPeer(smu.handler) as peer:
        station = _station(peer.resource)
        station.connect(["smu"])
        recovery = Recovery(station, RecoveryPolicy(), journal.append, should_stop=lambda: True)
        with pytest.raises(RunAborted, match="while recovering instrument 'smu' \\(garbage_reply\\)"):
            recovery.call("smu", lambda inst: inst.check_errors())
        assert [e["action"] for e in journal] == ["fault", "gave_up"]
        station.close()


def test_the_engine_gives_each_run_a_recovery_with_the_station_policy_and_none_outside(tmp_path):
    from tests.helpers import default_station

    data = default_station()
    data["recovery"] = {"attempts": 2, "backoff_s": 0.25}
    station = Station(parse_station(data))
    seen = {}

    class Looks(LabProcedure):
        NAME = "looks"

        def execute(self) -> None:
            seen["policy"] = self.recovery.policy
            seen["io"] = self.io("smu", lambda smu: smu)

    looks = Looks()
    looks.REQUIRES = ("smu",)
    assert RunEngine(station, tmp_path, catalog=False).run(looks).status == "completed"
    assert seen["policy"] == RecoveryPolicy(attempts=2, backoff_s=0.25, backoff_factor=2.0, backoff_max_s=60.0)
    assert seen["io"] is station["smu"]
    outside = Looks()
    outside.station = station
    assert outside.recovery is None and outside.io("smu", lambda smu: smu) is station["smu"]  # no retries
    station.close()


def test_a_served_smu_whose_link_is_cut_is_reconnected_through_pyvisa_py_and_measures_again(tmp_path):
    """`labctl sim serve` (real time, 127.0.0.1) and pyvisa-py, as with hardware: the SMU's TCP link is cut under
    the driver (the socket shut down: the next exchange finds it closed); the recovery reconnects to the served
    port, the instrument answers *IDN? and its configuration is replayed, and the reading is taken."""
    import socket

    from drivers.io_helpers import session_socket
    from labctl.config import load_station
    from tests.helpers import default_station, served_bench

    with served_bench(tmp_path, default_station(), duration_s=60.0) as (served_path, _):
        station = Station(load_station(served_path))
        station.clock = StepClock()
        station.connect(["smu"])
        station["smu"].configure_voltage_source(compliance_A=0.005, nplc=0.1)
        old = station["smu"]
        session_socket(old.adapter.connection).shutdown(socket.SHUT_RDWR)
        journal: list[dict] = []
        restored: list[Any] = []

        def restore(smu: Any) -> None:
            smu.set_voltage(0.0)
            smu.enable_output()
            restored.append(smu)

        data = Recovery(station, RecoveryPolicy(), journal.append).call(
            "smu", lambda smu: smu.measure_point(), restore=restore, what="reading")
        assert len(data.current_A) == 1 and np.isfinite(data.current_A[0])
        assert [(e["action"], e["kind"]) for e in journal] == [("fault", CONNECTION_RESET),
                                                              ("reconnected", CONNECTION_RESET),
                                                              ("retry", CONNECTION_RESET)]
        assert journal[1]["detail"].startswith("KEITHLEY INSTRUMENTS")
        new = station["smu"]
        assert new is not old and restored == [new]
        assert float(new.ask(":SENS:CURR:PROT?")) == pytest.approx(0.005)  # as configured before the cut
        station.safe_state()
        station.close()
