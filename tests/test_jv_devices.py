"""End-to-end J–V recovery on devices beyond the methods' sets A and B, and the methods' degradation cases.

Expected figures are computed independently of labctl: ``pvlib.pvsystem.singlediode`` on the station's
single-diode parameters (area-normalised, so currents are A/cm²), at 298.15 K. Every run uses the procedure's
defaults except what the device needs (area, a stop voltage above a high Voc, a compliance for a large cell).
"""

from __future__ import annotations

import math

import pytest
from pvlib.pvsystem import singlediode

from labctl.config import parse_station
from labctl.engine import RunEngine
from labctl.station import Station
from tests.helpers import SET_A, make_procedure, run_jv, station_with

K_B, Q = 1.380649e-23, 1.602176634e-19
VT_298 = K_B * 298.15 / Q


def _expected(device: dict) -> dict:
    """Voc (V), Jsc (mA/cm²), FF, Vmp (V) of the single-diode model by pvlib (independent of labctl)."""
    out = singlediode(device["jph_mA_cm2"] * 1e-3, device["j0_A_cm2"], device["rs_ohm_cm2"],
                      device["rsh_ohm_cm2"], device["ideality"] * VT_298)
    isc, voc, pmp = float(out["i_sc"]), float(out["v_oc"]), float(out["p_mp"])
    return {"voc_V": voc, "jsc_mA_cm2": isc * 1e3, "ff": pmp / (voc * isc), "vmp_V": float(out["v_mp"]),
            "pce_pct": pmp * 1e3}  # W/cm² at 100 mW/cm² → %


#: name → (device keys of simulation.device, procedure parameters beyond the defaults)
DEVICES = {
    # colloidal PbS-like, 1.1 eV gap: low Voc, high current; the default 1.3 V stop drives it far into injection
    "low-gap-PbS": ({"jph_mA_cm2": 32.0, "j0_A_cm2": 5e-9, "ideality": 1.35, "rs_ohm_cm2": 1.5,
                     "rsh_ohm_cm2": 300.0, "eqe": {"bandgap_eV": 1.1}}, {}),
    # 1.8 eV wide-gap perovskite: Voc 1.40 V, above the default 1.3 V stop
    "wide-gap": ({"jph_mA_cm2": 17.0, "j0_A_cm2": 1e-20, "ideality": 1.3, "rs_ohm_cm2": 3.0,
                  "rsh_ohm_cm2": 3000.0, "eqe": {"bandgap_eV": 1.8}}, {"stop_V": 1.5}),
    # leaky, resistive cell: FF about 50 %
    "leaky-resistive": ({"jph_mA_cm2": 20.0, "j0_A_cm2": 1e-12, "ideality": 2.0, "rs_ohm_cm2": 12.0,
                         "rsh_ohm_cm2": 150.0}, {}),
    # 1 cm² cell: 18.3 mA at short circuit, measured with a compliance and a station limit that allow it
    "large-area": (SET_A | {"area_cm2": 1.0}, {"area_cm2": 1.0, "compliance_A": 0.04}),
}


@pytest.mark.parametrize("name", list(DEVICES))
def test_recovers_device(tmp_path, name):
    device, params = DEVICES[name]
    station = station_with(device=device)
    station["instruments"]["smu"]["limits"]["current_A"] = 0.05
    expected = _expected(device)
    result, _ = run_jv(tmp_path, station, **params)
    assert result.status == "completed", result.error
    for direction in ("reverse", "forward"):
        r = result.results[direction]
        assert r["voc_V"] == pytest.approx(expected["voc_V"], abs=2e-3), (direction, r, expected)
        assert r["jsc_mA_cm2"] == pytest.approx(expected["jsc_mA_cm2"], rel=5e-3), (direction, r, expected)
        assert r["ff"] == pytest.approx(expected["ff"], abs=3e-3), (direction, r, expected)
        assert r["pce_pct"] == pytest.approx(expected["pce_pct"], rel=6e-3), (direction, r, expected)
        assert not any(f.endswith("in_compliance") for f in r["flags"]), r


def test_wide_gap_cell_with_the_default_stop_is_flagged_not_wrong(tmp_path):
    """Voc 1.40 V above the default stop of 1.3 V: no Voc/FF/PCE, a flag, and a warning that says what to do."""
    device, _ = DEVICES["wide-gap"]
    result, _ = run_jv(tmp_path, station_with(device=device))
    assert result.status == "completed", result.error
    r = result.results["reverse"]
    assert r["voc_V"] is None and r["ff"] is None and r["pce_pct"] is None
    assert "voc_not_bracketed" in r["flags"]
    assert r["jsc_mA_cm2"] == pytest.approx(_expected(device)["jsc_mA_cm2"], rel=5e-3)
    assert any("voc_not_bracketed" in w and "stop_V" in w for w in result.results["warnings"])


# methods ref. §1.7: set A calibrated to "retains 94 % of PCE after 600 h at 1 sun", one mechanism at a time
DEGRADATION = {
    "j0-growth": ({"j0_growth_tau_h": 383.0}, {"voc_shift_V": -0.0603, "ff": 0.7760}),
    "photocurrent-loss": ({"linear_loss_per_h": (1 - 0.94016) / 600.0}, {"jph_factor": 0.94016}),
    "series-resistance-growth": ({"rs_growth_per_h": 0.9 / 600.0}, {"rs_ohm_cm2": 7.295, "ff": 0.7373}),
}


@pytest.mark.parametrize("name", list(DEGRADATION))
def test_degraded_cell_after_600_h(tmp_path, name):
    law, case = DEGRADATION[name]
    data = station_with()
    data["simulation"]["device"]["degradation"] = {"enabled": True, **law}
    station = Station(parse_station(data))
    station.bench.cell.light_dose_s = 600 * 3600.0  # 600 h at 1 sun (the light dose drives the laws)
    result = RunEngine(station, tmp_path, sample="aged").run(make_procedure(direction="reverse"))
    assert result.status == "completed", result.error
    r = result.results["reverse"]
    fresh = _expected(SET_A)
    aged_device = dict(SET_A)
    if "jph_factor" in case:
        aged_device["jph_mA_cm2"] *= case["jph_factor"]
    if "rs_ohm_cm2" in case:
        aged_device["rs_ohm_cm2"] = case["rs_ohm_cm2"]
    if "voc_shift_V" in case:
        aged_device["j0_A_cm2"] *= math.exp(600.0 / 383.0)
        assert r["voc_V"] - fresh["voc_V"] == pytest.approx(case["voc_shift_V"], abs=2e-3)
    if "ff" in case:
        assert r["ff"] == pytest.approx(case["ff"], abs=3e-3)
    aged = _expected(aged_device)
    assert r["pce_pct"] / fresh["pce_pct"] == pytest.approx(0.94, abs=4e-3)  # the methods' calibration target
    assert r["voc_V"] == pytest.approx(aged["voc_V"], abs=2e-3)
    assert r["jsc_mA_cm2"] == pytest.approx(aged["jsc_mA_cm2"], rel=5e-3)
    assert r["ff"] == pytest.approx(aged["ff"], abs=3e-3)
