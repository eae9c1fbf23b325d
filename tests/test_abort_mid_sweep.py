"""Ctrl-C / SIGTERM in the middle of a slow built-in sweep, against `labctl sim serve` (issue 7, items 1 and 3).

Subprocesses, real time, real sockets: the run is started as an operator would start it, the signal is sent
mid-sweep, and the served bench itself is asked afterwards whether the output is off and the shutter closed.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from labctl.station import SAFE_STATE_BUDGET_S
from labctl.storage import load_run
from tests.helpers import REPO, default_station
from tests.loopback import KEITHLEY_IDN, LoopbackPeer, fake_keithley

# 10 mV steps at 2 mV/s: 5 s per point. Slow 2400 sweeps are read in pieces of one point (so a killed run keeps
# its data), and a 5 s point keeps the instrument busy in its trigger model all but a few ms of the time
SLOW = ["--set", "scan_rate_V_s=0.002"]
SAFE_WITHIN_S = 5.0  # Ctrl-C -> process gone, all instruments safe (the sweep would have run on for minutes)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("abort")
    station_path, served_path = tmp / "station.yaml", tmp / "served.yaml"
    station_path.write_text(yaml.safe_dump(default_station()))
    server = subprocess.Popen(
        [sys.executable, "-m", "labctl.cli", "sim", "serve", "--station", str(station_path),
         "--write-station", str(served_path), "--duration-s", "300"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 40
        while not served_path.exists() and time.monotonic() < deadline and server.poll() is None:
            time.sleep(0.1)
        assert served_path.exists(), server.stderr.read() if server.poll() is not None else "no station file"
        yield served_path, tmp
    finally:
        server.terminate()
        server.wait(timeout=10)


def _port(resource: str) -> int:
    return int(re.search(r"127\.0\.0\.1(?:::|:)(\d+)", resource).group(1))


def _ask(resource: str, message: bytes, ends: bytes, within_s: float = 1.0) -> str | None:
    """One query on a fresh connection to a served instrument; None if no complete reply within ``within_s``."""
    with socket.create_connection(("127.0.0.1", _port(resource)), timeout=within_s) as sock:
        sock.sendall(message)
        reply, end = b"", time.monotonic() + within_s
        while ends not in reply and time.monotonic() < end:
            sock.settimeout(max(0.01, end - time.monotonic()))
            try:
                data = sock.recv(4096)
            except TimeoutError:
                break
            if not data:
                break
            reply += data
        return reply.decode() if ends in reply else None


def _shutter_open(resource: str) -> bool | None:
    reply = _ask(resource, b"ens?\r", b"> ")
    return None if reply is None else reply.split("\r")[1] == "1"


def _smu_output(resource: str) -> str | None:
    reply = _ask(resource, b":OUTP?\n", b"\n")
    return None if reply is None else reply.strip()


def _start_run(station: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "labctl.cli", "run", "jv", "--station", str(station), "--out", str(out),
         "--no-plot", *SLOW],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _wait_until_sweeping(run: subprocess.Popen, shutter: str) -> None:
    """The J-V opens the shutter right before its first sweep: wait for that, then a little more. (A shutter
    that does not answer at all means the bench is held up by the sweep: the bug this file guards against.)"""
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and run.poll() is None:
        if _shutter_open(shutter) in (True, None):
            time.sleep(1.0)
            return
        time.sleep(0.1)
    raise AssertionError(f"the run never opened the shutter: {run.communicate(timeout=5)}")


def _finish(run: subprocess.Popen, within_s: float) -> tuple[str, float]:
    t0 = time.monotonic()
    try:
        _, err = run.communicate(timeout=within_s)
    except subprocess.TimeoutExpired:
        run.kill()
        _, err = run.communicate()
        raise AssertionError(f"the run did not end within {within_s} s of the signal:\n{err[-2000:]}") from None
    return err, time.monotonic() - t0


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_signal_mid_sweep_leaves_the_bench_safe_within_seconds(served, signame):
    served_path, tmp = served
    resources = {role: inst["resource"] for role, inst in yaml.safe_load(served_path.read_text())["instruments"]
                 .items()}
    out = tmp / f"runs-{signame}"
    run = _start_run(served_path, out)
    try:
        _wait_until_sweeping(run, resources["shutter"])
        assert _smu_output(resources["smu"]) is None  # sweeping: the 2400 answers nothing until the sweep ends
        run.send_signal(getattr(signal, signame))
        err, took = _finish(run, within_s=30)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert took < SAFE_WITHIN_S, (took, err[-2000:])
    assert _smu_output(resources["smu"]) == "0", err[-2000:]  # off now, not when the sweep would have ended
    assert _shutter_open(resources["shutter"]) is False
    assert run.returncode == 1
    assert re.search(r"^safe: smu: sweep aborted, 0 V, output off \(output reads off\)", err, re.M), err[-2000:]
    assert re.search(r"^safe: shutter: shutter closed \(shutter reads closed\)", err, re.M), err[-2000:]
    assert "all instruments safe (2)" in err
    (path,) = out.rglob("*.h5")
    assert load_run(path).status == "aborted"


def test_second_ctrl_c_during_a_stuck_safe_state_is_honoured_after_the_budget(served, tmp_path):
    """The SMU stops answering mid-sweep (a fake 2400 on a loopback port; the shutter is the served one). A
    first Ctrl-C starts the safe state; a second one, 1 s later, must neither cut it short (the shutter is closed
    and the SMU gets its whole budget) nor be ignored: the process ends right after the budget, the file says
    aborted, and the last lines name the instrument that could not be made safe."""
    served_path, _ = served
    data = yaml.safe_load(served_path.read_text())
    go_bad = threading.Event()
    answers = {"*IDN?": KEITHLEY_IDN, ":SYST:LFR?": "50", ":SYST:ERR?": '0,"No error"'}  # :READ?, :OUTP?: never
    with LoopbackPeer(fake_keithley(answers, go_bad, how="silent")) as peer:
        data["instruments"]["smu"]["resource"] = peer.resource
        station = tmp_path / "station.yaml"
        station.write_text(yaml.safe_dump(data))
        out = tmp_path / "runs"
        run = _start_run(station, out)
        try:
            _wait_until_sweeping(run, data["instruments"]["shutter"]["resource"])
            run.send_signal(signal.SIGINT)
            t0 = time.monotonic()
            time.sleep(1.0)
            run.send_signal(signal.SIGINT)
            err, _ = _finish(run, within_s=30)
            took = time.monotonic() - t0
        finally:
            if run.poll() is None:
                run.kill()
                run.communicate()
    assert SAFE_STATE_BUDGET_S <= took < SAFE_STATE_BUDGET_S + 4.0, (took, err[-2000:])
    assert _shutter_open(data["instruments"]["shutter"]["resource"]) is False
    assert re.search(r"^NOT SAFE: smu: not safe after 5\.\d s", err, re.M), err[-2000:]
    assert re.search(r"^safe: shutter: shutter closed", err, re.M)
    assert "NOT SAFE: smu: check these instruments by hand" in err
    (path,) = out.rglob("*.h5")
    run_data = load_run(path)
    assert run_data.status == "aborted"
    assert any("SIGINT during the safe state: analysis skipped" in e for e in run_data.events), run_data.events
