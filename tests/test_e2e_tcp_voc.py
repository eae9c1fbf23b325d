"""The light-intensity Voc procedures end to end over TCP: `labctl sim serve` of the voc bench in a subprocess
(real time), `labctl run voc-intensity-calibration` and `labctl run voc-intensity` through pyvisa-py and
pyserial URLs (the laser and both FW102C wheels are serial instruments, ASRLsocket://).

The bench is stations/voc-bench.yaml with two slots per wheel (four intensities, so the real-time wheel moves
stay short) and without the junction capacitance (in real time its low-light settling would take minutes).
Expected Voc: the three-diode cell of the station written out here and solved with brentq at the intensity the
run reports (the calibrated monitor's), independent of the simulator's code.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import yaml
from scipy.constants import Boltzmann, elementary_charge
from scipy.optimize import brentq

from labctl.storage import load_run
from tests.helpers import REPO, served_bench

FAST = ["--set", "laser_stabilise_s=0.2"]


def _station() -> dict:
    data = yaml.safe_load((REPO / "stations" / "voc-bench.yaml").read_text())
    for role in ("od_wheel_1", "od_wheel_2"):
        filters = data["instruments"][role]["settings"]["filters"]
        data["instruments"][role]["settings"]["filters"] = {1: filters[1], 2: filters[2]}
    data["simulation"]["device"]["capacitance_nF_cm2"] = 0.0
    data["station"]["data_dir"] = "runs"
    return data


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tcp-voc")
    with served_bench(tmp, _station()) as (served_path, printed):
        yield served_path, printed, tmp


def _run(served_path, out, *args):  # noqa: ANN001, ANN002, ANN202
    run = subprocess.run(
        [sys.executable, "-m", "labctl.cli", "run", *args, "--station", str(served_path), "--out", str(out),
         "--json", "--no-plot"],
        cwd=REPO, capture_output=True, text=True, timeout=180,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return json.loads(run.stdout)


def _three_diode_voc_V(device: dict, suns: float, t_K: float = 298.15) -> float:
    """Voc of J_gen = Σ J0k·(exp(V/(n_k·Vt)) − 1) + V/Rsh, J_gen = suns·Jph (A/cm²); Rs carries no current."""
    vt = Boltzmann * t_K / elementary_charge
    diodes = [(device["ideality"], device["j0_A_cm2"])] + [(d["ideality"], d["j0_A_cm2"])
                                                            for d in device["extra_diodes"]]
    jgen = suns * device["jph_mA_cm2"] * 1e-3

    def excess(v: float) -> float:
        return jgen - sum(j0 * math.expm1(v / (n * vt)) for n, j0 in diodes) - v / device["rsh_ohm_cm2"]

    return brentq(excess, 0.0, 2.0, xtol=1e-9)


def test_voc_intensity_over_tcp_with_serial_laser_and_wheels(served):
    served_path, printed, tmp = served
    for role in ("laser", "od_wheel_1", "od_wheel_2"):
        assert f"{role}: ASRLsocket://127.0.0.1:" in printed
    assert "monitor: TCPIP::127.0.0.1::" in printed and "reference: TCPIP::127.0.0.1::" in printed
    out = tmp / "runs"
    cal = _run(served_path, out, "voc-intensity-calibration", "--set", "powers_mW=40, 80",
               "--set", "readings_per_level=3", *FAST)
    assert cal["status"] == "completed"
    voc = _run(served_path, out, "voc-intensity", "--set", "one_sun_mW_cm2=54.54", "--set", "settle_interval_s=0.05",
               "--set", "readings_per_point=2", "--set", "monitor_readings=2", *FAST)
    assert voc["status"] == "completed"
    run = load_run(voc["file"])
    assert "MODEL 2450" in run.idn["smu"] and "FW102C" in run.idn["od_wheel_1"] and "LBX" in run.idn["laser"]
    frame = run.streams["voc"]
    assert len(frame) == 4  # 2 x 2 slots
    assert voc["results"]["calibration_run"] == load_run(cal["file"]).info["run_id"]  # through the catalog
    device = _station()["simulation"]["device"]
    expected = [_three_diode_voc_V(device, s) for s in frame.suns]
    # the 2450's 10 GΩ and −10 pA of the station move Voc by well under 1 mV at these intensities (>1e-3 sun);
    # the laser's 0.2 % noise is n·Vt·0.002 ≈ 0.05 mV
    np.testing.assert_allclose(frame.voc_V, expected, atol=1.5e-3)
    assert frame.transmission.is_monotonic_increasing  # up: low to high intensity
