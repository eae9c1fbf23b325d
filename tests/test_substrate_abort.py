"""Ctrl-C in the middle of a substrate, as an operator does it: `labctl run jv --pixels all` in a subprocess on
the simulated bench on the real clock, SIGINT while pixel 2 is being measured. The process ends at once, the
source meter reads off and every relay open, pixel 1's file is intact and completed, pixel 2's ends aborted
(intact, its rows up to the signal), and no further pixel is measured."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from labctl.storage import load_run
from labctl.substrate import load_substrate
from tests.helpers import REPO, reap
from tests.substrate_fakes import substrate_station

#: the CLI with the test switch registered in-process (entry points are the installed package's)
LAUNCH = ("import sys; from tests.substrate_fakes import register; register(); from labctl.cli import main; "
          "sys.argv[0] = 'labctl'; main()")
#: one reverse scan of 70 points at 1 V/s: about 1.4 s of real time per pixel
QUICK = ["--set", "scan_rate_V_s=1.0", "--set", "step_V=0.02", "--set", "nplc=0.1", "--set", "direction=reverse"]


def _relays(log: Path) -> list[list[int]]:
    if not log.exists():
        return []
    return [entry["detail"] for entry in map(json.loads, log.read_text().splitlines()) if entry["what"] == "relays"]


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_a_signal_mid_substrate_leaves_source_off_relays_open_and_the_files_intact(tmp_path, signame):
    data = substrate_station(pixels=4)
    data["simulation"]["clock"] = "real"
    station = tmp_path / "station.yaml"
    station.write_text(yaml.safe_dump(data))
    out, log = tmp_path / "runs", tmp_path / "switch.log"
    env = {**os.environ, "PYTHONPATH": str(REPO), "LABCTL_FAKE_SWITCH_LOG": str(log)}
    run = subprocess.Popen([sys.executable, "-c", LAUNCH, "run", "jv", "--station", str(station), "--out", str(out),
                            "--pixels", "all", "--sample", "S", "--no-plot", "--json", *QUICK],
                           cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and run.poll() is None and not list(out.rglob("*_p2_*.h5")):
            time.sleep(0.05)
        assert run.poll() is None, run.communicate()
        time.sleep(0.4)  # into pixel 2's sweep
        run.send_signal(getattr(signal, signame))
        t0 = time.monotonic()
        stdout, stderr = run.communicate(timeout=30)
        took = time.monotonic() - t0
    finally:
        reap(run)
    assert run.returncode == 1, stderr[-3000:]
    assert took < 5.0, (took, stderr[-2000:])
    lines = stderr.splitlines()
    smu = next(k for k, line in enumerate(lines) if line.startswith("safe: smu: "))
    switch = next(k for k, line in enumerate(lines) if line.startswith("safe: switch: "))
    assert "output off (output reads off)" in lines[smu]
    assert lines[switch].startswith("safe: switch: all relays open (read back)")
    assert smu < switch  # the source off first, then the relays
    assert "all instruments safe (3)" in stderr
    assert _relays(log)[-1] == []  # the switch itself says: nothing closed
    relays = _relays(log)
    assert relays[:9] == [[], [1], [], [2], [], [3], [], [4], []]  # the contact checks, all first, in the dark
    measured = relays[9:]
    assert [1] in measured and [2] in measured and [3] not in measured and [4] not in measured  # measured no more

    payload = json.loads(stdout)
    assert payload["status"] == "aborted" and signame in payload["error"], payload["error"]
    pixels = payload["pixels"]
    assert pixels["1"]["status"] == "completed" and pixels["2"]["status"] == "aborted"
    assert pixels["3"]["status"] == pixels["4"]["status"] == "not measured"
    assert pixels["3"]["file"] is None and signame in pixels["3"]["reason"]
    first, second = load_run(pixels["1"]["file"]), load_run(pixels["2"]["file"])
    assert first.status == "completed" and len(first.streams["jv"]) == 71
    assert second.status == "aborted" and 0 <= len(second.streams["jv"]) < 71
    assert sorted(p.name for p in out.rglob("*.h5")) == sorted(Path(pixels[n]["file"]).name for n in ("1", "2"))
    record = load_substrate(payload["file"])
    assert record.status == "aborted" and record.pixels["4"]["status"] == "not measured"
