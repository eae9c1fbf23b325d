"""Every exchange has a deadline; the safe state has time budgets (issue 7, item 1). Real loopback peers."""

from __future__ import annotations

import threading
import time

import pytest
from pyvisa.errors import VisaIOError

from drivers.io_helpers import DeadlineVISAAdapter
from labctl.config import parse_station
from labctl.station import SAFE_STATE_BUDGET_S, SAFE_STATE_TOTAL_BUDGET_S, Station
from tests.helpers import default_station
from tests.loopback import KEITHLEY_IDN, LoopbackPeer, fake_keithley, http_400, silent, spew


def _adapter(peer: LoopbackPeer, timeout_ms: float) -> DeadlineVISAAdapter:
    return DeadlineVISAAdapter(peer.resource, visa_library="@py", read_termination="\n", write_termination="\n",
                               timeout=timeout_ms)


def _bounded(fn, limit_s: float):  # noqa: ANN001, ANN202
    """Run ``fn`` in a thread; (returned value or raised exception, seconds taken); fails the test if it does not
    end within ``limit_s`` (the thread is a daemon: a hang cannot keep pytest alive)."""
    box: dict = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box["value"] = exc

    t0 = time.monotonic()
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(limit_s)
    assert not thread.is_alive(), f"still running after {limit_s} s"
    return box["value"], time.monotonic() - t0


def test_a_peer_that_answers_http_400_and_closes_is_an_error_at_once():
    """The hang of issue 7: after the web server's reply, every further exchange (and the flush the safe state
    does first) must fail fast; pyvisa-py's clear() looped forever on the closed socket."""
    with LoopbackPeer(http_400) as peer:
        adapter = _adapter(peer, timeout_ms=3000)
        try:
            adapter.write("*IDN?")
            assert adapter.read().startswith("HTTP/1.1 400")
            time.sleep(0.1)  # the peer has closed by now
            result, took = _bounded(adapter.flush_read_buffer, 5)
            assert isinstance(result, ConnectionError) and took < 1.0
            result, took = _bounded(adapter.read, 5)
            assert isinstance(result, ConnectionError) and took < 0.5, (result, took)
            result, took = _bounded(lambda: adapter.write(":OUTP 0"), 5)
            assert isinstance(result, ConnectionError)
        finally:
            adapter.close()


def test_a_peer_spewing_garbage_without_line_ends_times_out():
    """pyvisa-py's socket read checks its deadline only while no data arrives: a peer that never stops sending
    kept it reading for ever. The read must end by the resource's timeout."""
    with LoopbackPeer(spew) as peer:
        adapter = _adapter(peer, timeout_ms=1000)
        try:
            adapter.write("*IDN?")
            result, took = _bounded(adapter.read, 10)
            assert isinstance(result, VisaIOError), result
            assert 0.9 < took < 2.0, took
        finally:
            adapter.close()


def test_a_peer_that_never_answers_times_out_without_spinning():
    with LoopbackPeer(silent) as peer:
        adapter = _adapter(peer, timeout_ms=800)
        try:
            adapter.write("*IDN?")
            cpu0, t0 = time.process_time(), time.monotonic()
            with pytest.raises(VisaIOError):
                adapter.read()
            took, cpu = time.monotonic() - t0, time.process_time() - cpu0
            assert 0.7 < took < 1.5 and cpu < 0.5 * took, (took, cpu)
        finally:
            adapter.close()


# ------------------------------------------------------------------------------------ safe-state budgets


ANSWERS = {"*IDN?": KEITHLEY_IDN, ":SYST:LFR?": "50", ":SYST:ERR?": '0,"No error"', ":OUTP?": "0"}


def _station_with_tcp_smu(resource: str) -> Station:
    data = default_station()
    data["instruments"]["smu"]["resource"] = resource
    station = Station(parse_station(data))
    station.connect(["smu", "shutter"])  # the shutter stays on the in-process simulated bench
    return station


@pytest.mark.parametrize("how", ["close", "silent"])
def test_safe_state_ends_within_budget_and_names_the_instrument(how):
    """An SMU whose link goes bad mid-run (closed, or answers nothing any more) is reported as not safe within
    the per-instrument budget; the shutter is still made safe and confirmed."""
    go_bad = threading.Event()
    with LoopbackPeer(fake_keithley(ANSWERS, go_bad, how)) as peer:
        station = _station_with_tcp_smu(peer.resource)
        try:
            station["shutter"].open_shutter()
            go_bad.set()
            time.sleep(0.1)
            failures, took = _bounded(station.safe_state, SAFE_STATE_TOTAL_BUDGET_S + 5)
            assert took < SAFE_STATE_BUDGET_S + 1.0, took
            report = {o.role: o for o in station.safe_report}
            assert not report["smu"].ok and [f for f in failures if f.startswith("smu: ")]
            assert report["shutter"].ok and "shutter reads closed" in report["shutter"].detail
            assert station.bench.light.shutter_open is False
            if how == "close":
                assert "closed" in report["smu"].detail and took < 2.0
            else:
                assert "not safe after" in report["smu"].detail
        finally:
            station.close()


def test_safe_state_of_a_healthy_tcp_smu_is_confirmed_by_reading_the_output_back():
    go_bad = threading.Event()
    with LoopbackPeer(fake_keithley(ANSWERS, go_bad)) as peer:
        station = _station_with_tcp_smu(peer.resource)
        try:
            assert station.safe_state() == []
            smu = {o.role: o for o in station.safe_report}["smu"]
            assert smu.ok and smu.detail == "sweep aborted, 0 V, output off (output reads off)"
        finally:
            station.close()


def test_labctl_run_against_a_web_server_ends_with_a_clear_outcome(tmp_path):
    """`labctl run jv` with `smu.resource` on a local web server: it used to start, fail and then spin for ever
    in the safe state (100 % CPU, deaf to Ctrl-C). Now it ends within seconds: refused (exit 2), or failed with
    the SMU named as not safe, the file closed as failed."""
    import subprocess
    import sys

    import yaml

    from labctl.storage import load_run
    from tests.helpers import REPO

    with LoopbackPeer(http_400) as peer:
        data = default_station()
        data["instruments"]["smu"]["resource"] = peer.resource
        station = tmp_path / "station.yaml"
        station.write_text(yaml.safe_dump(data))
        out = tmp_path / "runs"
        try:
            run = subprocess.run(
                [sys.executable, "-m", "labctl.cli", "run", "jv", "--station", str(station), "--out", str(out),
                 "--no-plot"], cwd=REPO, capture_output=True, text=True, timeout=40,
            )
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"labctl run did not end: {exc.stderr}") from None
    assert "Traceback" not in run.stderr, run.stderr
    assert run.returncode in (1, 2), run.stderr
    if run.returncode == 1:  # accepted the reply as an identity (issue 7 item 2 refuses it: exit 2)
        assert "NOT SAFE: smu:" in run.stderr and "closed the connection" in run.stderr, run.stderr
        (path,) = out.rglob("*.h5")
        assert load_run(path).status == "failed"
