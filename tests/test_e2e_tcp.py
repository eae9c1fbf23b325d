"""End to end over TCP: `labctl sim serve` in a subprocess, `labctl run jv` through pyvisa-py against it."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import yaml

from labctl.storage import load_run
from tests.helpers import REPO, default_station


def test_sim_serve_then_run_jv_over_tcp(tmp_path):
    station = default_station()
    station_path = tmp_path / "station.yaml"
    station_path.write_text(yaml.safe_dump(station))
    served = tmp_path / "served.yaml"
    server = subprocess.Popen(
        [sys.executable, "-m", "labctl.cli", "sim", "serve", "--station", str(station_path),
         "--write-station", str(served), "--duration-s", "120"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        lines = []
        deadline = time.monotonic() + 30
        while not served.exists() and time.monotonic() < deadline:
            lines.append(server.stdout.readline())
        assert served.exists(), "".join(lines) + server.stderr.read()
        printed = "".join(lines)
        assert "smu: TCPIP::127.0.0.1::" in printed and "::SOCKET" in printed
        assert "shutter: ASRLsocket://127.0.0.1:" in printed
        resources = yaml.safe_load(served.read_text())["instruments"]
        assert resources["smu"]["resource"].startswith("TCPIP::127.0.0.1::")
        # a fast scan, in real time: 71 points at 20 mV and 1 V/s
        run = subprocess.run(
            [sys.executable, "-m", "labctl.cli", "run", "jv", "--station", str(served), "--out", str(tmp_path / "runs"),
             "--json", "--no-plot", "--set", "step_V=0.02", "--set", "scan_rate_V_s=1.0", "--set", "nplc=0.1"],
            cwd=REPO, capture_output=True, text=True, timeout=120,
        )
        assert run.returncode == 0, run.stderr
        payload = json.loads(run.stdout)
        assert payload["status"] == "completed"
        rev = payload["results"]["reverse"]
        assert abs(rev["voc_V"] - 1.17) < 3e-3 and abs(rev["jsc_mA_cm2"] / 18.3 - 1) < 5e-3
        data = load_run(payload["file"])
        assert "MODEL 2400" in data.idn["smu"] and "SC10" in data.idn["shutter"]
        jv = data.streams["jv"]
        fwd = jv[jv.direction == 1]
        assert abs((fwd.voltage_V.iloc[-1] - fwd.voltage_V.iloc[0]) / (fwd.time_s.iloc[-1] - fwd.time_s.iloc[0])
                   - 1.0) < 0.05  # real time: the instrument's own time stamps give the requested rate
    finally:
        server.terminate()
        server.wait(timeout=10)
