"""Regenerate ``substrate_results.json``: the results dicts of real runs on the simulated bench, one per device.

Run from the repository root: ``PYTHONPATH=$PWD python tests/data/make_substrate_results.py``. Each entry is the
``results`` of :class:`procedures.jv.JVProcedure` (or of :class:`procedures.mpp.MPPProcedure` for the ``mpp_*``
entries) on a fresh simulated station whose ``simulation.device`` is the entry's device; the tests of
:mod:`labctl.analysis.substrate` use them as the pixels of a substrate, so the summary is tested on the keys the
procedures really produce (not on keys a test imagined).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from labctl.config import parse_station  # noqa: E402
from labctl.engine import RunEngine  # noqa: E402
from labctl.station import Station  # noqa: E402
from procedures.jv import JVProcedure  # noqa: E402
from procedures.mpp import MPPProcedure  # noqa: E402
from tests.helpers import SET_A, station_with  # noqa: E402

#: name → simulation.device changes (set A of the methods reference otherwise)
DEVICES = {
    "set-a": {},
    "lower-jph": {"jph_mA_cm2": 17.6, "rsh_ohm_cm2": 1500.0},
    "resistive": {"rs_ohm_cm2": 8.0},
    "higher-j0": {"j0_A_cm2": 5e-15, "jph_mA_cm2": 18.9},
    "hysteretic": {"hysteresis": {"enabled": True}},
    # a shunted pixel: Rsh 100 Ω·cm² against Voc/Jsc ≈ 64 Ω·cm²
    "shunted": {"rsh_ohm_cm2": 100.0},
    # dead pixels: no photocurrent (a delaminated absorber), and a short (Rsh 1 Ω·cm²)
    "dark": {"jph_mA_cm2": 0.0},
    "shorted": {"rsh_ohm_cm2": 1.0},
}
MPP_DEVICES = {"mpp_set-a": {}, "mpp_resistive": {"rs_ohm_cm2": 8.0}}


def _run(device: dict, procedure: JVProcedure | MPPProcedure, out: Path) -> dict:
    data = station_with()
    hysteresis = device.pop("hysteresis", None)
    data["simulation"]["device"].update(device)
    if hysteresis:
        data["simulation"]["device"]["hysteresis"].update(hysteresis)
    station = Station(parse_station(data))
    try:
        result = RunEngine(station, out, sample="substrate-fixture", catalog=False).run(procedure)
    finally:
        station.close()
    assert result.status == "completed", result.error
    return json.loads(json.dumps(result.results, default=float))


def main() -> None:
    out: dict[str, dict] = {"_devices": {name: SET_A | d for name, d in (DEVICES | MPP_DEVICES).items()}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, device in DEVICES.items():
            out[name] = _run(dict(device), JVProcedure(), Path(tmp))
            print(name, {d: out[name].get(d, {}).get("pce_pct") for d in ("reverse", "forward")})
        for name, device in MPP_DEVICES.items():
            procedure = MPPProcedure()
            procedure.duration_h = 0.05
            procedure.stabilised_window_s = 60.0
            out[name] = _run(dict(device), procedure, Path(tmp))
            print(name, out[name].get("stabilised_pce_pct"), out[name].get("settled_pce_pct"))
    path = Path(__file__).with_name("substrate_results.json")
    path.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    print("wrote", path)


if __name__ == "__main__":
    main()
