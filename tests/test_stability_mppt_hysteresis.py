"""MPP tracking on a cell with ion-lag hysteresis converges to the stabilised MPP, not the transient one (issue 11).

The static case (⟨P⟩ ≥ 99.9 % of pvlib's Pmp on the default cell) is tests/test_procedure_mpp.py's; this adds the
cell of station.yaml with ``simulation.device.hysteresis.enabled: true`` (its ion-lag model as shipped: τ 10 s,
β 3). The stabilised MPP is the static single-diode MPP of the cell (methods ref. §7.1, §1.7: once the ions
have followed the bias, the cell is its static curve), computed by pvlib; the transient MPP is the one a fast
reverse scan (1 V/s) shows, measured on the same simulated cell. The tracker, run with its defaults, must settle
on the first and stay clear of the second.
"""

from __future__ import annotations

import pvlib
import pytest
import yaml
from scipy import constants

from labctl.config import parse_station
from labctl.engine import RunEngine
from labctl.station import Station
from labctl.storage import load_run
from procedures.mpp import MPPProcedure
from tests.helpers import REPO, make_procedure, station_with

DEVICE = yaml.safe_load((REPO / "station.yaml").read_text())["simulation"]["device"]


def _static_mpp() -> tuple[float, float]:
    """(Vmp V, Pmp mW/cm²) of station.yaml's cell by pvlib (A/cm², Ω·cm²)."""
    n_vt = DEVICE["ideality"] * constants.k * DEVICE["temperature_K"] / constants.e
    out = pvlib.pvsystem.singlediode(DEVICE["jph_mA_cm2"] * 1e-3, DEVICE["j0_A_cm2"], DEVICE["rs_ohm_cm2"],
                                     DEVICE["rsh_ohm_cm2"], n_vt)
    return float(out["v_mp"]), float(out["p_mp"]) * 1e3


def _run(folder, procedure):
    station = Station(parse_station(station_with(hysteresis={"enabled": True})))
    result = RunEngine(station, folder, sample="ion-lag", catalog=False).run(procedure)
    station.close()
    assert result.status == "completed", result.error
    return result


def test_mppt_on_an_ion_lag_cell_converges_to_the_stabilised_mpp_not_the_fast_scans(tmp_path):
    vmp, pmp = _static_mpp()
    fast = _run(tmp_path, make_procedure(direction="reverse", scan_rate_V_s=1.0, nplc=0.1)).results["reverse"]
    transient_vmp, transient_pmp = fast["vmp_V"], fast["pce_pct"]  # mW/cm² = % at 1000 W/m²
    assert abs(transient_vmp - vmp) > 0.03 and abs(transient_pmp - pmp) > 0.02 * pmp  # they are distinguishable
    procedure = MPPProcedure()
    procedure.duration_h = 0.1
    result = _run(tmp_path, procedure)
    track = load_run(result.path).streams["mpp"].query("phase == 'track'")
    settled = track.iloc[len(track) // 2:]
    assert settled["power_mW_cm2"].mean() >= 0.999 * pmp
    assert settled["voltage_V"].mean() == pytest.approx(vmp, abs=5e-3)
    assert abs(settled["voltage_V"].mean() - transient_vmp) > 0.03
