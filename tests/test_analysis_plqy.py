"""labctl.analysis.plqy against the methods reference §9 cases L1-L4 (tests/data/plqy_detailed_balance_L_D.json)
and properties of the collection geometry."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labctl.analysis import plqy
from tests.helpers import REPO

CASES = json.loads((REPO / "tests" / "data" / "plqy_detailed_balance_L_D.json").read_text())


def test_L1_rectangular_detector():
    c = CASES["L1_rectangle"]
    f = plqy.collection_fraction_rectangle(c["width_mm"], c["height_mm"], c["distance_mm"])
    assert f == pytest.approx(c["F_full_precision"], rel=c["rel_tol"])
    assert f == pytest.approx(c["F"], abs=0.5e-7)  # the table's value, rounded to its last digit
    assert plqy.collection_fraction_rectangle(10, 10, 20) == pytest.approx(c["F_at_20mm"], rel=1e-4)
    assert plqy.collection_fraction_rectangle(10, 10, 100) == pytest.approx(c["F_at_100mm"], rel=1e-4)
    # the small-detector form A/(πd²) the exact one replaces is 1.3 % higher
    assert 100.0 / (math.pi * 50.0**2) == pytest.approx(c["small_detector_F_at_50mm"], rel=1e-5)


def test_L2_disk_to_disk():
    c = CASES["L2_disk_to_disk"]
    f = plqy.collection_fraction_disk_to_disk(c["emitter_radius_mm"], c["detector_radius_mm"], c["distance_mm"])
    assert f == pytest.approx(c["F"], abs=c["abs_tol"])
    assert plqy.collection_fraction_disk(5.0, 20.0) == pytest.approx(c["point_source_F"], abs=1e-4)


def test_L4_dbm_to_v_rms_and_back():
    c = CASES["L4_dbm_to_vrms"]
    for dbm, v in c["cases"]:
        assert plqy.dbm_to_v_rms(dbm) == pytest.approx(v, abs=c["abs_tol"])
        assert plqy.v_rms_to_dbm(plqy.dbm_to_v_rms(dbm)) == pytest.approx(dbm, abs=1e-9)


def test_L3_chain_every_step():
    c = CASES["L3_chain"]
    out = plqy.plqy_chain(c["power_dBm"], c["tia_gain_V_A"], c["detector_eqe"], c["collection_fraction"],
                          c["filter_transmission"], c["modulation_depth"], c["absorbed_rate_per_s"])
    assert out["plqy_differential"] == pytest.approx(c["plqy_differential"], abs=c["abs_tol"])
    assert out["line_v_rms_V"] == pytest.approx(c["V_rms"], rel=1e-4)
    assert out["photocurrent_rms_A"] == pytest.approx(c["I_ac_rms"], rel=1e-4)
    # methods §5.4: δN_em,rms 1.979e12 s⁻¹, δN_abs,rms 1.979e13 s⁻¹
    assert out["emitted_photon_rate_rms_per_s"] == pytest.approx(1.979e12, rel=1e-3)
    assert out["absorbed_modulation_rms_per_s"] == pytest.approx(1.979e13, rel=1e-3)
    assert set(out) == {"line_power_dBm", "line_v_rms_V", "photocurrent_rms_A", "detector_photon_rate_rms_per_s",
                        "emitted_photon_rate_rms_per_s", "absorbed_modulation_rms_per_s", "plqy_differential"}


def test_L3_forward_line_power_inverts_to_the_configured_plqy():
    """Methods §5.4 forward: PLQY 10 % gives −17.669 dBm; the chain gives 0.1 back to full precision."""
    c = CASES["L3_chain"]
    assert plqy.absorbed_rate_from_jsc_per_s(18.3, 0.049) == pytest.approx(c["N_abs_from_jsc_18p3_area_0p049"],
                                                                           rel=1e-9)
    out = plqy.plqy_chain(c["P_dBm_forward"], 1e7, 0.8157, c["collection_fraction"], 0.9, 0.005,
                          c["N_abs_from_jsc_18p3_area_0p049"])
    assert out["plqy_differential"] == pytest.approx(0.1, rel=1e-3)
    assert plqy.v_rms_to_dbm(c["V_rms"]) == pytest.approx(c["P_dBm_forward"], abs=1e-9)


def test_half_voltage_load_factor_doubles_the_current():
    assert plqy.photocurrent_A(0.01, 1e7, load_factor=0.5) == pytest.approx(2e-9)


def test_snr_and_k_factor_and_absolute_plqy():
    assert plqy.snr_dB(-17.7, -80.2) == pytest.approx(62.5)
    report = plqy.snr_report(-17.7, -80.2, -50.0)
    assert report["snr_dB"] == pytest.approx(32.3) and report["snr_ok"] is False  # the stray pump is the limit
    assert plqy.snr_report(-17.7, -80.2)["snr_ok"] is True
    g = [0.8, 0.9, 1.0, 1.1, 1.2]
    assert plqy.k_factor(g, [x**1.5 * 3.0 for x in g]) == pytest.approx(1.5, abs=1e-12)
    assert plqy.plqy_absolute(0.2, 2.0) == pytest.approx(0.1)  # methods §5.1: SRH regime, diff = 2 × true
    with pytest.raises(ValueError, match="generation"):
        plqy.k_factor([1.0, 1.0], [1.0, 2.0])


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_geometry_refuses_non_positive_lengths(bad):
    with pytest.raises(ValueError, match="distance_mm"):
        plqy.collection_fraction_rectangle(10, 10, bad)
    with pytest.raises(ValueError, match="distance_mm"):
        plqy.collection_fraction_disk_to_disk(10, 5, bad)


lengths = st.floats(min_value=1e-2, max_value=1e3)


@given(a=lengths, b=lengths, d=lengths, factor=st.floats(min_value=1.01, max_value=10))
def test_rectangle_fraction_in_unit_interval_and_falls_with_distance(a, b, d, factor):
    f = plqy.collection_fraction_rectangle(a, b, d)
    assert 0 < f < 1
    assert plqy.collection_fraction_rectangle(a, b, d * factor) < f
    # a rectangle is inside the disk through its corners and contains the disk inside its shorter side
    assert plqy.collection_fraction_disk(min(a, b) / 2, d) * (1 - 1e-12) <= f
    assert f <= plqy.collection_fraction_disk(math.hypot(a, b) / 2, d) * (1 + 1e-12)


@given(r1=lengths, r2=lengths, d=lengths, factor=st.floats(min_value=1.01, max_value=10))
def test_disk_to_disk_in_unit_interval_and_falls_with_distance(r1, r2, d, factor):
    f = plqy.collection_fraction_disk_to_disk(r1, r2, d)
    assert 0 < f < 1
    assert plqy.collection_fraction_disk_to_disk(r1, r2, d * factor) <= f
    # reciprocity of view factors: A1·F12 = A2·F21
    assert r1**2 * f == pytest.approx(r2**2 * plqy.collection_fraction_disk_to_disk(r2, r1, d), rel=1e-9)
