"""End to end over TCP: `labctl sim serve` in a subprocess, `labctl run ...` through pyvisa-py against it."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml

from labctl.storage import load_run
from tests.eqe_model import expected_eqe
from tests.helpers import REPO, default_station, served_bench


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The default simulated bench served on 127.0.0.1 in real time; yields (station file, printed lines)."""
    tmp = tmp_path_factory.mktemp("tcp")
    with served_bench(tmp, default_station()) as (served_path, printed):
        yield served_path, printed, tmp


def _run(served_path, out, *args):
    run = subprocess.run(
        [sys.executable, "-m", "labctl.cli", "run", *args, "--station", str(served_path), "--out", str(out),
         "--json", "--no-plot"],
        cwd=REPO, capture_output=True, text=True, timeout=180,
    )
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_sim_serve_prints_resource_strings(served):
    served_path, printed, _ = served
    assert "smu: TCPIP::127.0.0.1::" in printed and "::SOCKET" in printed
    assert "shutter: ASRLsocket://127.0.0.1:" in printed and "monochromator: ASRLsocket://127.0.0.1:" in printed
    resources = yaml.safe_load(served_path.read_text())["instruments"]
    assert resources["smu"]["resource"].startswith("TCPIP::127.0.0.1::")


def test_jv_over_tcp(served):
    served_path, _, tmp = served
    # a fast scan, in real time: 71 points at 20 mV and 1 V/s
    payload = _run(served_path, tmp / "runs", "jv", "--set", "step_V=0.02", "--set", "scan_rate_V_s=1.0",
                   "--set", "nplc=0.1")
    assert payload["status"] == "completed"
    rev = payload["results"]["reverse"]
    assert abs(rev["voc_V"] - 1.17) < 3e-3 and abs(rev["jsc_mA_cm2"] / 18.3 - 1) < 5e-3
    data = load_run(payload["file"])
    assert "MODEL 2400" in data.idn["smu"] and "SC10" in data.idn["shutter"]
    fwd = data.streams["jv"][data.streams["jv"].direction == 1]
    rate = (fwd.voltage_V.iloc[-1] - fwd.voltage_V.iloc[0]) / (fwd.time_s.iloc[-1] - fwd.time_s.iloc[0])
    assert abs(rate - 1.0) < 0.05  # real time: the instrument's own time stamps give the requested rate


def test_eqe_over_tcp_with_serial_instruments(served):
    """Lock-in over TCPIP SOCKET, monochromator and filter wheel over ASRLsocket (pyserial URL), detector swaps
    through the served bench's operator endpoint."""
    served_path, _, tmp = served
    grid = ["--set", "start_nm=500", "--set", "stop_nm=540", "--set", "step_nm=20", "--set", "time_constant_s=0.01"]
    cal = _run(served_path, tmp / "eqe", "eqe-calibration", *grid)
    assert cal["status"] == "completed"
    eqe = _run(served_path, tmp / "eqe", "eqe", "--set", f"calibration_file={cal['file']}", *grid)
    assert eqe["status"] == "completed"
    frame = load_run(eqe["file"]).streams["eqe"]
    # the cell written out from station.yaml's parameters (tests/eqe_model.py), the divider applied once
    expected = expected_eqe(default_station()["simulation"]["device"], frame.wavelength_nm.to_numpy())
    np.testing.assert_allclose(frame.eqe, expected, rtol=3e-3)
    assert "FW102C" in load_run(eqe["file"]).idn["filter_wheel"]
