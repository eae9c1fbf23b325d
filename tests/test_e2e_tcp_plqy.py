"""The plqy procedure end to end over TCP: `labctl sim serve` of the PLQY bench (stations/plqy-bench.yaml) in a
subprocess, in real time; `labctl run jv` and `labctl run plqy` through pyvisa-py (the 2450, the 33500B and the
N9010A over TCPIP sockets, the laser and the shutter over ASRLsocket:// pyserial URLs, the blank placed through the
served bench's operator endpoint).

In real time a 1 Hz RBW sweep takes 25 s, so the analyser runs at 10 Hz RBW around a 70 Hz modulation (2.5 s
per sweep); the PLQY does not depend on the RBW of a line well above the floor. Expected: the station's configured
``simulation.pl.plqy`` (5 % relative, the issue's tolerance), independent of the procedure's chain.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from labctl.storage import load_run
from tests.helpers import REPO, served_bench

STATION = REPO / "stations" / "plqy-bench.yaml"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tcp-plqy")
    with served_bench(tmp, yaml.safe_load(STATION.read_text())) as (served_path, printed):
        yield served_path, printed, tmp


def _run(served_path, out, *args):  # noqa: ANN001, ANN002, ANN202
    run = subprocess.run(
        [sys.executable, "-m", "labctl.cli", "run", *args, "--station", str(served_path), "--out", str(out),
         "--sample", "qd-tcp", "--json", "--no-plot"],
        cwd=REPO, capture_output=True, text=True, timeout=240,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return json.loads(run.stdout)


def test_plqy_over_tcp(served):
    served_path, printed, tmp = served
    assert "analyser: TCPIP::127.0.0.1::" in printed and "fgen: TCPIP::127.0.0.1::" in printed
    assert "laser: ASRLsocket://127.0.0.1:" in printed
    out = tmp / "runs"
    jv = _run(served_path, out, "jv", "--set", "step_V=0.02", "--set", "scan_rate_V_s=1.0", "--set", "nplc=0.1")
    assert jv["status"] == "completed"
    result = _run(served_path, out, "plqy", "--set", "f_mod_Hz=70", "--set", "span_Hz=100", "--set", "rbw_Hz=10",
                  "--set", "averages=1", "--set", "readings=2")
    assert result["status"] == "completed"
    configured = yaml.safe_load(STATION.read_text())["simulation"]["pl"]["plqy"]
    r = result["results"]
    assert r["plqy"] == pytest.approx(configured, rel=0.05)
    assert r["f_mod_Hz"] == 70 and r["snr_dB"] >= 40
    run = load_run(result["file"])
    assert "N9010A" in run.idn["analyser"] and "33522B" in run.idn["fgen"]
    assert run.parameters["jv_file"] == jv["file"]  # the sample's J–V run, found through the catalog
