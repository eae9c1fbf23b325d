"""Injected transport faults of every kind survived by one MPP run on the stability bench (issue 11).

The faults come from the station file (``simulation.faults``, seeded probability per message on the device's
source meter), as a user would write them. What must hold is checked against records the run does not write:
the bench's own list of injected faults (``bench.faults.injected``) against the run's ``journal`` stream, the SMU
emulator's ``source_history`` (what the instrument really sourced), and the expected power from pvlib
(``pvlib.pvsystem.singlediode``) for the stability bench's cell.
"""

from __future__ import annotations

import collections
import json

import numpy as np
import pvlib
import pytest
import yaml
from scipy import constants

from labctl.config import parse_station
from labctl.engine import RunEngine
from labctl.resume import ResumeEngine, prepare_resume
from labctl.station import Station
from labctl.storage import load_run
from procedures.mpp import MPPProcedure
from sim_instruments.faults import FaultSpec
from tests.helpers import REPO

BENCH = yaml.safe_load((REPO / "stations" / "stability-bench.yaml").read_text())
KINDS = ("timeout", "drop", "garbage", "reboot", "reset", "unavailable")
TCP_SECONDS = 40.0
REQUIRED_KINDS = frozenset({"timeout", "garbage_reply", "instrument_reset", "connection_reset"})
TCP_PERIODS = (293, 300, 307, 311, 317, 331)  # messages between two faults of each kind, about 1 in 50 in all
#: the journal's kind for the error each injected fault shows (labctl.recovery's classes); a reset is seen by the
#: read-back of the output, or first by the reading itself: a 2400 with its output off answers no :READ? (timeout)
JOURNAL_KINDS = {"timeout": {"timeout"}, "garbage": {"garbage_reply"}, "reset": {"instrument_reset", "timeout"},
                 "drop": {"connection_reset"}, "reboot": {"connection_reset"},
                 "unavailable": {"connection_reset", "resource_gone"}}


def _bench(probability: float, attempts: int = 10, seed: int = 11) -> dict:
    data = json.loads(json.dumps(BENCH))
    data["simulation"]["faults"] = {"seed": seed, "schedule": [
        {"instrument": "smu", "kind": kind, "probability": probability, **({"duration_s": 2.0}
                                                                          if kind == "unavailable" else {})}
        for kind in KINDS]}
    data["recovery"] = {"attempts": attempts, "backoff_s": 1.0, "backoff_factor": 2.0, "backoff_max_s": 30.0}
    return data


def _pvlib_mpp(device: dict, temperature_K: float) -> tuple[float, float, float]:
    """(Vmp V, Pmp mW/cm², Voc V) of the bench's undegraded cell at ``temperature_K`` (J0 as given, at 298.15 K
    it is the station's value; used as bounds only)."""
    n_vt = device["ideality"] * constants.k * temperature_K / constants.e
    out = pvlib.pvsystem.singlediode(device["jph_mA_cm2"] * 1e-3, device["j0_A_cm2"], device["rs_ohm_cm2"],
                                     device["rsh_ohm_cm2"], n_vt)
    return float(out["v_mp"]), float(out["p_mp"]) * 1e3, float(out["v_oc"])


def _run(tmp_path, data: dict, duration_h: float, faults: list[dict] | None = None):
    station = Station(parse_station(data))
    engine = RunEngine(station, tmp_path, sample="cell-f", catalog=False)
    history: list[tuple] = []  # the emulator's source history, copied as the run goes (it keeps the last 10,000)

    def copy_history(name, doc):
        live = station.bench.__dict__.get("_source_histories", {}).get("smu", ())
        new = []
        for entry in reversed(live):  # the entries after the last one copied (the same tuple object)
            if history and entry is history[-1]:
                break
            new.append(entry)
        history.extend(reversed(new))

    engine.subscribe(copy_history)
    if faults:
        def start_faults(name, doc):  # once tracking has begun (a fault while connecting fails before the run)
            if name == "event" and doc.stream == "mpp" and doc.seq_num == 1:
                for spec in faults:
                    station.bench.faults.add(FaultSpec(**spec))

        engine.subscribe(start_faults)
    procedure = MPPProcedure()
    procedure.duration_h = duration_h
    result = engine.run(procedure)
    copy_history("", None)
    return result, station, history


def _check_every_fault_journaled(injected: list[dict], journal, noticed_within_s: float = 60.0,
                                 required: frozenset = REQUIRED_KINDS) -> None:
    """Each injected fault (the bench's record) is followed within ``noticed_within_s`` of station time (the
    SMU's timeout and a back-off) by a journal ``fault`` entry (a reset met while a recovery re-configures
    and restores the instrument is undone by that recovery and shows nowhere); the journal's kinds are the classes the
    injected kinds show. Faults met inside one failing call (say a timeout, then a drop while the driver waits)
    end in one entry, so the entries are at least most, not exactly all, of the faults."""
    faults = journal[journal["action"] == "fault"]
    times = np.sort(faults["time_s"].to_numpy(float))
    retries = np.sort(journal[journal["action"] == "retry"]["time_s"].to_numpy(float))
    for i, fault in enumerate(injected):
        k = np.searchsorted(times, fault["time"] - 1e-9)
        if fault["kind"] == "reset" and k > 0:  # a reset while the instrument is being re-configured and restored
            r = np.searchsorted(retries, times[k - 1])  # (a recovery under way) is undone by it: nothing to see
            if r < len(retries) and retries[r] >= fault["time"]:
                continue
        assert k < len(times) and times[k] <= fault["time"] + noticed_within_s, f"fault {i} {fault} not journaled"
    assert len(faults) >= 0.8 * len(injected)
    allowed = set().union(*JOURNAL_KINDS.values(), {"resource_gone"})
    seen = set(faults["kind"])
    assert seen <= allowed and required <= seen, seen


def _check_the_source_never_stepped(history: list[tuple], voc_V: float, max_step_V: float, min_on: int = 1000) -> None:
    """What the SMU sourced with its output on: a current source only at 0 A (open circuit); a voltage source
    only switched in at the cell's Voc (within 30 mV) and then moved by at most the tracker's largest step."""
    on = 0
    for prev, (t, output, function, level) in zip([None, *history[:-1]], history, strict=True):
        if not output:
            continue
        on += 1
        if function == "CURR":
            assert level == 0.0, (t, function, level)
            continue
        assert level > 0.8, f"a step to a stale level: {level} V at {t} s"
        if prev is not None and prev[1] and prev[2] == "VOLT":
            assert abs(level - prev[3]) <= max_step_V + 2e-5, (prev, (t, output, function, level))  # 6-digit levels
        else:
            assert level == pytest.approx(voc_V, abs=0.03), (prev, (t, output, function, level))
    assert on > min_on


@pytest.mark.timeout(600)
def test_over_a_thousand_injected_faults_of_every_kind_are_survived_journaled_and_leave_no_trace(tmp_path):
    data = _bench(probability=1 / 600, attempts=20)
    schedule = data["simulation"]["faults"].pop("schedule")
    result, station, history = _run(tmp_path, data, duration_h=7.0, faults=schedule)
    injected = list(station.bench.faults.injected)
    station.close()
    assert result.status == "completed", result.error
    counts = collections.Counter(f["kind"] for f in injected)
    assert sum(counts.values()) >= 1000 and all(counts[k] >= 100 for k in KINDS), counts
    run = load_run(result.path)
    journal, mpp = run.streams["journal"], run.streams["mpp"]
    _check_every_fault_journaled(injected, journal)
    assert result.results["io_faults"] == int((journal["action"] == "fault").sum()) >= len(injected) - counts["reset"]
    # no corrupted or duplicated point: one row per tracker update, in order, every value a plausible number
    states = [json.loads(s) for s in mpp["tracker_state"]]
    assert [s["updates"] for s in states] == list(range(1, len(states) + 1))
    assert np.all(np.diff(mpp["time_s"].to_numpy()) > 0.9)
    for column in ("voltage_V", "current_A", "j_mA_cm2", "power_mW_cm2", "pce_pct"):
        assert np.isfinite(mpp[column].to_numpy(float)).all(), column
    _, pmp, voc = _pvlib_mpp(_default_device(), 298.15)
    track = mpp[mpp["phase"] == "track"]
    assert track["power_mW_cm2"].max() <= 1.005 * pmp  # never more than the cell can give: no garbage
    assert track["power_mW_cm2"].median() >= 0.97 * pmp
    _check_the_source_never_stepped(history, voc, max_step_V=0.05)


def _default_device() -> dict:
    """The stability bench's cell: station.yaml's default device (set A of methods ref. §1.6) unless it says
    otherwise."""
    device = yaml.safe_load((REPO / "station.yaml").read_text())["simulation"]["device"]
    return {**device, **{k: v for k, v in BENCH["simulation"]["device"].items() if k in device and k in (
        "jph_mA_cm2", "j0_A_cm2", "ideality", "rs_ohm_cm2", "rsh_ohm_cm2")}}


def test_a_spent_recovery_budget_ends_in_the_safe_state_failed_with_a_reason_and_resumable(tmp_path):
    data = _bench(probability=0.0, attempts=2)
    data["simulation"]["faults"]["schedule"] = []
    station = Station(parse_station(data))
    engine = RunEngine(station, tmp_path, sample="cell-b", catalog=False)
    armed = {"done": False}

    def every_reply_lost(name, doc):  # from the 100th row on, the SMU answers no query any more
        if name == "event" and doc.stream == "mpp" and doc.seq_num == 100 and not armed["done"]:
            armed["done"] = True
            station.bench.faults.add(FaultSpec("smu", "timeout", every_messages=1))

    engine.subscribe(every_reply_lost)
    procedure = MPPProcedure()
    procedure.duration_h = 0.2
    result = engine.run(procedure)
    emulator = station["smu"].adapter.emulator if "smu" in station.instruments else None
    history = list(station.bench.__dict__["_source_histories"]["smu"])
    station.close()
    assert armed["done"] and result.status == "failed"
    assert result.error.splitlines() == [result.error]
    assert "instrument 'smu'" in result.error and "timeout" in result.error.lower() and "2 attempts" in result.error
    assert history[-1][1] is False  # the safe state: the output is off (a write needs no reply)
    assert emulator is None or not emulator.output
    run = load_run(result.path)
    assert run.status == "failed"
    journal = run.streams["journal"]
    assert list(journal["action"])[-1] == "gave_up"
    kept = len(run.streams["mpp"])
    assert kept >= 100
    resumption = prepare_resume(result.path)  # the faults are over: the run goes on from where it stopped
    station = Station(parse_station(data))
    second = ResumeEngine(station, resumption.run_file, sample=resumption.sample, catalog=False).run(
        resumption.procedure)
    station.close()
    assert second.status == "completed", second.error
    mpp = load_run(result.path).streams["mpp"]
    assert (mpp["segment"] == 0).sum() == kept and (mpp["segment"] == 1).sum() > 0
    assert mpp["time_s"].iloc[-1] == pytest.approx(0.2 * 3600, abs=3)


# -- failures found by the runs above, each pinned by a test that failed before its fix ----------------------------
def _station_with_faults(*specs: FaultSpec) -> Station:
    station = Station(parse_station(json.loads(json.dumps(BENCH))))
    station.connect(["smu"])
    for spec in specs:
        station.bench.faults.add(spec)
    return station


def test_a_garbage_reply_to_idn_while_reconnecting_is_a_garbage_reply_not_another_instrument():
    from labctl.recovery import classify_io_error
    from labctl.station import StationError

    station = _station_with_faults(FaultSpec("smu", "garbage", at_message=1))
    with pytest.raises(StationError) as caught:
        station.reconnect("smu")
    station.close()
    assert classify_io_error(caught.value) == "garbage_reply"  # before: None, and the run failed at once


def test_a_garbage_reply_to_a_mapped_read_back_is_a_garbage_reply():
    from labctl.recovery import classify_io_error

    station = _station_with_faults(FaultSpec("smu", "garbage", at_message=1))
    with pytest.raises(Exception) as caught:  # noqa: PT011 - whatever PyMeasure raises, it must be classified
        station["smu"].source_enabled  # noqa: B018 - :OUTP? read back, as verify_output does
    station.close()
    assert classify_io_error(caught.value) == "garbage_reply"  # before: KeyError, None: the run failed


def test_an_instrument_reset_while_the_bias_is_applied_never_switches_on_a_zero_volt_source(tmp_path):
    """A reset (``*RST`` state: a voltage source at 0 V) right after the current source was configured for the
    open-circuit start: switching the output on then would short the cell. The fault is placed on the message
    ``:SOUR:CURR 0`` of the first bias (its number found by a run without faults, counted after connecting)."""
    data = json.loads(json.dumps(BENCH))
    count = {"n": 0, "at": None}
    station = Station(parse_station(data))
    station.connect(["smu"])  # connecting is message 1 (*IDN?) and the configuration after it
    emulator = station["smu"].adapter.emulator
    handle = emulator.handle

    def spy(message: str):
        count["n"] += 1
        if count["at"] is None and message.strip().upper().startswith(":SOUR:CURR 0"):
            count["at"] = count["n"]
        return handle(message)

    emulator.handle = spy
    procedure = MPPProcedure()
    procedure.duration_h = 0.01
    assert RunEngine(station, tmp_path / "a", sample="r", catalog=False).run(procedure).status == "completed"
    station.close()
    assert count["at"] is not None
    station = Station(parse_station(data))
    station.connect(["smu"])
    station.bench.faults.add(FaultSpec("smu", "reset", at_message=count["at"]))  # counted from here, as the spy
    procedure = MPPProcedure()
    procedure.duration_h = 0.01
    result = RunEngine(station, tmp_path / "b", sample="r", catalog=False).run(procedure)
    [fault] = station.bench.faults.injected
    history = list(station.bench.__dict__["_source_histories"]["smu"])
    station.close()
    assert fault["kind"] == "reset" and fault["message"].upper().startswith(":SOUR:CURR 0"), fault
    assert result.status == "completed", result.error
    stale = [h for h in history if h[1] and h[2] == "VOLT" and h[3] < 0.8]
    assert not stale  # before: (t, True, 'VOLT', 0.0): the output switched on at 0 V
    journal = load_run(result.path).streams["journal"]
    assert "instrument_reset" in set(journal["kind"])


def test_a_link_fault_while_reconnecting_after_a_reset_is_recovered_not_the_end_of_the_run(tmp_path):
    """The output is found off (a reset), and the reconnection that follows meets a dropped link: before, that
    StationError ended the run (the reconnect after a read-back was outside the recovery)."""
    station = Station(parse_station(json.loads(json.dumps(BENCH))))
    engine = RunEngine(station, tmp_path, sample="r", catalog=False)

    def arm(name, doc):
        if name == "event" and doc.stream == "mpp" and doc.seq_num == 50:
            # next: the tracking step's level write (reset, then it runs), :OUTP? (0: found off), *IDN? (dropped)
            station.bench.faults.add(FaultSpec("smu", "reset", at_message=1))
            station.bench.faults.add(FaultSpec("smu", "drop", at_message=3))

    engine.subscribe(arm)
    procedure = MPPProcedure()
    procedure.duration_h = 0.05
    result = engine.run(procedure)
    injected = [(f["kind"], f["message"]) for f in station.bench.faults.injected]
    station.close()
    assert [k for k, _ in injected] == ["reset", "drop"] and injected[1][1].strip() == "*IDN?", injected
    assert result.status == "completed", result.error
    journal = load_run(result.path).streams["journal"]
    assert "instrument_reset" in set(journal["kind"]) and set(journal["kind"]) & {"connection_reset", "resource_gone"}


@pytest.mark.tcp
@pytest.mark.timeout(180)
def test_injected_faults_of_every_kind_over_real_tcp_are_survived_and_journaled(tmp_path):
    """The same kinds in the station file of a served bench (``labctl sim serve``'s own server: one TCP port
    per instrument on 127.0.0.1, real clock), the run through pyvisa-py; short timeouts and back-off (a
    simulated bench answers in microseconds) so that it takes about a minute."""
    from sim_instruments.serve import served_station, start_server

    data = _bench(probability=1.0, attempts=20)
    for spec, period in zip(data["simulation"]["faults"]["schedule"], TCP_PERIODS, strict=True):
        del spec["probability"]  # a TCP run has too few messages for chance to give every kind: a fixed count
        spec["every_messages"] = period
        if spec["kind"] == "unavailable":
            spec["duration_s"] = 0.1
    data["simulation"]["clock"] = "real"
    server = start_server(parse_station(data))
    try:
        client = served_station(parse_station(data), server.resource_strings())
        client["instruments"]["smu"]["timeout_ms"] = 200
        client["recovery"] = {"attempts": 20, "backoff_s": 0.02, "backoff_factor": 2.0, "backoff_max_s": 0.5}
        station = Station(parse_station(client))
        engine = RunEngine(station, tmp_path, sample="cell-tcp", catalog=False)
        last_row_at = [0.0]  # station time (the real clock) of the last tracking row: then the run winds down
        engine.subscribe(lambda name, doc: last_row_at.__setitem__(0, station.clock.now())
                         if name == "event" and doc.stream == "mpp" else None)
        procedure = MPPProcedure()
        procedure.duration_h, procedure.dwell_s, procedure.nplc = TCP_SECONDS / 3600, 0.02, 0.1
        result = engine.run(procedure)
        station.close()
        injected = list(server.bench.faults.injected)
        history = list(server.bench.__dict__["_source_histories"]["smu"])
    finally:
        server.close()
    assert result.status == "completed", result.error
    counts = collections.Counter(f["kind"] for f in injected)
    print(f"\nover TCP: {sum(counts.values())} faults in {TCP_SECONDS:g} s: {dict(counts)}")
    assert all(counts[k] >= 3 for k in KINDS), counts
    assert {f["transport"] for f in injected} == {"tcp"}
    run = load_run(result.path)
    journal, mpp = run.streams["journal"], run.streams["mpp"]
    # a :READ? waits 10 s more than the station's timeout (the driver's margin); the resets showed as timeouts
    # (faults met by the engine's safe state after the run are in its log: the journal is the run's own calls')
    _check_every_fault_journaled([f for f in injected if f["time"] <= last_row_at[0]], journal, noticed_within_s=15.0,
                                 required=frozenset({"timeout", "garbage_reply", "connection_reset"}))
    states = [json.loads(s)["updates"] for s in mpp["tracker_state"]]
    assert states == list(range(1, len(states) + 1))
    assert np.all(np.diff(mpp["time_s"].to_numpy()) > 0)
    _, pmp, voc = _pvlib_mpp(_default_device(), 298.15)
    track = mpp[mpp["phase"] == "track"]
    assert track["power_mW_cm2"].max() <= 1.005 * pmp and track["power_mW_cm2"].median() >= 0.97 * pmp
    _check_the_source_never_stepped(history, voc, max_step_V=0.05, min_on=100)
