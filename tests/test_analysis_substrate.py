"""The substrate summary (:mod:`labctl.analysis.substrate`) on real pixel results and on hand-made ones.

The real results are ``tests/data/substrate_results.json``: the results dicts of the J–V and MPP procedures run on
the simulated bench with one device per entry (regenerate with ``tests/data/make_substrate_results.py``; one test
below reruns one device and checks the fixture is still what the procedure gives). Expected statistics are computed
here with the standard library (``statistics``: median, fmean, stdev, and ``quantiles(method="inclusive")``, which
is Hyndman & Fan type 7) or by hand — never by the module under test.
"""

from __future__ import annotations

import json
import math
import statistics as st
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as hs

from labctl.analysis import substrate as sub
from labctl.analysis.substrate import summarise_substrate

DATA = json.loads((Path(__file__).parent / "data" / "substrate_results.json").read_text())

#: the 8 pixels of the substrate in the tests: pixel name → fixture entry
PIXELS = {"1": "set-a", "2": "lower-jph", "3": "resistive", "4": "higher-j0", "5": "hysteretic", "6": "shunted",
          "7": "dark", "8": "shorted"}
LIVE = ["1", "2", "3", "4", "5", "6"]  # completed and not dead: the pixels of the statistics


def _substrate(**extra: dict) -> dict:
    pixels = {name: {"status": "completed", "results": DATA[entry], "reason": None, "x_mm": 5.0 * i,
                     "y_mm": 3.0, "area_cm2": 0.049} for i, (name, entry) in enumerate(PIXELS.items())}
    return pixels | extra


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    q1, q2, q3 = st.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def test_every_pixel_figure_is_the_procedure_result_of_that_direction():
    summary = summarise_substrate(_substrate())
    assert summary["groups"] == ["reverse", "forward"]
    assert list(summary["pixels"]) == list(PIXELS)
    for name, entry in PIXELS.items():
        for direction in ("reverse", "forward"):
            got = summary["pixels"][name]["figures"][direction]
            want = DATA[entry][direction]
            for key in ("voc_V", "jsc_mA_cm2", "ff", "pce_pct"):
                assert got[key] == want[key], (name, direction, key)


def test_the_dark_and_the_shorted_pixel_are_dead_the_shunted_one_shunted_and_the_rest_clean():
    summary = summarise_substrate(_substrate())
    p = summary["pixels"]
    # the dark pixel: Jsc ~1e-7 mA/cm² (no photocurrent); the short: Voc 18 mV
    assert DATA["dark"]["reverse"]["jsc_mA_cm2"] < 0.1 and DATA["shorted"]["reverse"]["voc_V"] < 0.1
    assert [n for n in p if p[n]["dead"]] == ["7", "8"]
    assert "Jsc" in p["7"]["notes"][0] and "Voc" in p["8"]["notes"][0]
    # shunted: the 100 Ω·cm² shunt (R_sh/R_ch = 104/(1.134/0.01766) ≈ 1.6) and the short (≈ 1.0)
    assert [n for n in p if p[n]["shunted"]] == ["6", "8"]
    r = DATA["shunted"]["reverse"]
    assert p["6"]["normalised_rsh"]["reverse"] == pytest.approx(
        r["r_sc_ohm_cm2"] / (r["voc_V"] / (r["jsc_mA_cm2"] / 1000)), rel=1e-12)
    assert 1.5 < p["6"]["normalised_rsh"]["reverse"] < 1.7
    assert p["1"]["normalised_rsh"]["reverse"] > 30  # set A: 2000 Ω·cm² against 64 Ω·cm²
    assert [n for n in p if p[n]["included"]] == LIVE
    assert summary["counts"] == {"pixels": 8, "completed": 8, "aborted": 0, "failed": 0, "skipped": 0,
                                 "not measured": 0, "dead": 2, "shunted": 2, "included": 6}


def test_statistics_over_the_live_pixels_match_a_hand_calculation():
    summary = summarise_substrate(_substrate())
    for direction in ("reverse", "forward"):
        for key in ("voc_V", "jsc_mA_cm2", "ff", "pce_pct"):
            values = [DATA[PIXELS[n]][direction][key] for n in LIVE]
            s = summary["statistics"][direction][key]
            ordered = sorted(values)
            q1, _, q3 = _quartiles(values)
            assert s["n"] == 6
            assert s["median"] == pytest.approx((ordered[2] + ordered[3]) / 2, rel=1e-12)
            assert s["mean"] == pytest.approx(sum(values) / 6, rel=1e-12)
            assert s["std"] == pytest.approx(st.stdev(values), rel=1e-9)
            assert (s["min"], s["max"], s["best"]) == (ordered[0], ordered[-1], ordered[-1])
            assert s["best_pixel"] == LIVE[values.index(ordered[-1])]
            # type 7: position 1.25 and 3.75 of the ordered six
            assert s["q1"] == pytest.approx(ordered[1] + 0.25 * (ordered[2] - ordered[1]), rel=1e-12)
            assert s["q3"] == pytest.approx(ordered[3] + 0.75 * (ordered[4] - ordered[3]), rel=1e-12)
            assert (s["q1"], s["q3"]) == (pytest.approx(q1, rel=1e-12), pytest.approx(q3, rel=1e-12))
            assert s["iqr"] == pytest.approx(s["q3"] - s["q1"], abs=1e-15)
    # the best PCE of the substrate is set A's (pvlib: Pmp 16.765 mW/cm² at 1 sun → 16.77 %)
    best = summary["statistics"]["reverse"]["pce_pct"]
    assert best["best_pixel"] == "1" and best["best"] == pytest.approx(16.765, abs=0.01)
    assert summary["primary"] == ["reverse", "pce_pct"]


def test_hand_made_values_give_the_hand_computed_median_iqr_and_spread():
    def pixel(pce):
        return {"status": "completed", "results": {"reverse": {"voc_V": 1.0, "jsc_mA_cm2": 20.0, "ff": 0.7,
                                                               "pce_pct": pce, "r_sc_ohm_cm2": 5000.0}}}

    summary = summarise_substrate({"a": pixel(10.0), "b": pixel(16.0), "c": pixel(12.0), "d": pixel(14.0)})
    s = summary["statistics"]["reverse"]["pce_pct"]
    # ordered 10 12 14 16: median 13; q1 at position 0.75 → 10 + 0.75·2 = 11.5; q3 at 2.25 → 14 + 0.25·2 = 14.5
    assert s["median"] == 13.0 and s["q1"] == 11.5 and s["q3"] == 14.5 and s["iqr"] == 3.0
    assert s["mean"] == 13.0 and s["std"] == pytest.approx(math.sqrt((9 + 1 + 1 + 9) / 3), rel=1e-12)
    assert (s["best"], s["best_pixel"], s["min"], s["max"]) == (16.0, "b", 10.0, 16.0)
    one = summarise_substrate({"a": pixel(10.0)})["statistics"]["reverse"]["pce_pct"]
    assert one["n"] == 1 and one["median"] == 10.0 and one["std"] is None and one["iqr"] == 0.0


def test_a_tie_for_best_goes_to_the_first_pixel_in_layout_order():
    r = {"reverse": {"voc_V": 1.0, "jsc_mA_cm2": 20.0, "ff": 0.7, "pce_pct": 14.0}}
    summary = summarise_substrate({"z": {"status": "completed", "results": r},
                                   "a": {"status": "completed", "results": r}})
    assert summary["statistics"]["reverse"]["pce_pct"]["best_pixel"] == "z"


def test_skipped_not_measured_and_aborted_pixels_are_kept_with_their_reason_but_not_counted():
    summary = summarise_substrate(_substrate(
        **{"9": {"status": "skipped", "results": None, "reason": "contact check: 1.2e+09 Ω > 1e+07 Ω",
                 "x_mm": 1.0, "y_mm": 2.0, "area_cm2": 0.049},
           "10": {"status": "not measured", "results": None, "reason": None},
           # an aborted run that still gave figures: shown, left out of the statistics
           "11": {"status": "aborted", "results": DATA["set-a"] | {"reverse": DATA["set-a"]["reverse"]
                                                                     | {"pce_pct": 99.0}}, "reason": "Ctrl-C"}}))
    p = summary["pixels"]
    assert p["9"]["skipped"] and p["9"]["reason"] == "contact check: 1.2e+09 Ω > 1e+07 Ω"
    assert p["9"]["figures"] == {} and not p["9"]["included"] and not p["9"]["dead"]
    assert (p["9"]["x_mm"], p["9"]["y_mm"]) == (1.0, 2.0)
    assert p["10"]["status"] == "not measured" and not p["10"]["included"]
    assert p["11"]["figures"]["reverse"]["pce_pct"] == 99.0 and not p["11"]["included"]
    s = summary["statistics"]["reverse"]["pce_pct"]
    assert s["n"] == 6 and s["max"] < 17  # the aborted pixel's 99 % is not in them
    c = summary["counts"]
    assert (c["pixels"], c["skipped"], c["not measured"], c["aborted"], c["included"]) == (11, 1, 1, 1, 6)


def _direction(**figures):
    return {"voc_V": 1.0, "jsc_mA_cm2": 20.0, "ff": 0.75, "pce_pct": 15.0, "r_sc_ohm_cm2": 3000.0,
            "flags": []} | figures


@pytest.mark.parametrize(("reverse", "forward", "dead"), [
    ({"jsc_mA_cm2": 0.099}, {"jsc_mA_cm2": 0.099}, True),  # just below DEAD_JSC_MA_CM2 = 0.1
    ({"jsc_mA_cm2": 0.101}, {"jsc_mA_cm2": 0.101}, False),
    ({"voc_V": 0.099}, {"voc_V": 0.099}, True),  # DEAD_VOC_V = 0.1
    ({"voc_V": 0.101}, {"voc_V": 0.101}, False),
    ({"pce_pct": 0.099}, {"pce_pct": 0.099}, True),  # DEAD_PCE_PCT = 0.1
    ({"pce_pct": 0.101}, {"pce_pct": 0.101}, False),
    ({"voc_V": None, "ff": None, "pce_pct": None, "flags": ["no_photocurrent"]},
     {"voc_V": None, "ff": None, "pce_pct": None, "jsc_mA_cm2": None, "flags": ["no_photocurrent"]}, True),
    ({"jsc_mA_cm2": 0.0}, {}, False),  # one working scan: not dead
    # Voc not reached by the scan (stop_V too low) is a range problem, not a dead pixel
    ({"voc_V": None, "ff": None, "pce_pct": None, "flags": ["voc_not_bracketed"]},
     {"voc_V": None, "ff": None, "pce_pct": None, "flags": ["voc_not_bracketed"]}, False),
])
def test_dead_thresholds(reverse, forward, dead):
    assert (sub.DEAD_JSC_MA_CM2, sub.DEAD_VOC_V, sub.DEAD_PCE_PCT) == (0.1, 0.1, 0.1)
    results = {"reverse": _direction(**reverse), "forward": _direction(**forward)}
    pixel = summarise_substrate({"p": {"status": "completed", "results": results}})["pixels"]["p"]
    assert pixel["dead"] is dead
    assert pixel["included"] is (not dead)


@pytest.mark.parametrize(("r_sc", "rsh", "shunted"), [
    (510.0, None, False),  # R_ch = 1.0 V / 0.020 A/cm² = 50 Ω·cm²: 510/50 = 10.2
    (490.0, None, True),  # 9.8 < SHUNT_NORMALISED_RSH = 10
    (None, 490.0, True),  # no slope at 0 V: the single-diode fit's Rsh
    (None, None, False),  # nothing to judge by
])
def test_shunt_threshold_on_the_normalised_shunt_resistance(r_sc, rsh, shunted):
    assert sub.SHUNT_NORMALISED_RSH == 10.0
    d = _direction(r_sc_ohm_cm2=r_sc, rsh_ohm_cm2=rsh)
    pixel = summarise_substrate({"p": {"status": "completed", "results": {"reverse": d}}})["pixels"]["p"]
    assert pixel["shunted"] is shunted
    assert pixel["included"]  # a shunted pixel is a measured device: in the statistics, flagged


def test_a_low_slope_in_one_direction_only_is_not_a_shunt():
    results = {"reverse": _direction(r_sc_ohm_cm2=300.0), "forward": _direction(r_sc_ohm_cm2=3000.0)}
    assert not summarise_substrate({"p": {"status": "completed", "results": results}})["pixels"]["p"]["shunted"]


def test_mpp_runs_are_summarised_by_their_stabilised_and_settled_pce():
    pixels = {"a": {"status": "completed", "results": DATA["mpp_set-a"]},
              "b": {"status": "completed", "results": DATA["mpp_resistive"]},
              "c": {"status": "completed", "results": {"stabilised_pce_pct": 0.01, "settled_pce_pct": 0.01}}}
    summary = summarise_substrate(pixels)
    assert summary["groups"] == ["run"]
    assert summary["figures"]["run"][:2] == ["stabilised_pce_pct", "settled_pce_pct"]
    assert summary["primary"] == ["run", "stabilised_pce_pct"]
    assert summary["pixels"]["c"]["dead"] and not summary["pixels"]["a"]["dead"]
    s = summary["statistics"]["run"]["stabilised_pce_pct"]
    a, b = DATA["mpp_set-a"]["stabilised_pce_pct"], DATA["mpp_resistive"]["stabilised_pce_pct"]
    assert s["n"] == 2 and s["best_pixel"] == "a" and s["median"] == pytest.approx((a + b) / 2, rel=1e-12)
    assert s["std"] == pytest.approx(abs(a - b) / math.sqrt(2), rel=1e-9)
    assert a == pytest.approx(16.765, rel=2e-3)  # set A's pvlib Pmp: the tracker holds it


def test_a_hold_at_open_circuit_is_summarised_by_its_mean_voc():
    pixels = {"a": {"status": "completed", "results": {"rows": 10, "voc_mean_V": 1.16, "voc_min_V": 1.15}},
              "b": {"status": "completed", "results": {"rows": 10, "voc_mean_V": 0.05}}}
    summary = summarise_substrate(pixels)
    assert summary["figures"] == {"run": ["voc_mean_V"]} and summary["primary"] == ["run", "voc_mean_V"]
    assert summary["pixels"]["b"]["dead"] and summary["statistics"]["run"]["voc_mean_V"]["n"] == 1


def test_the_summary_is_json_able_without_nan():
    summary = summarise_substrate(_substrate(**{"9": {"status": "skipped", "reason": "contact"}}))
    assert json.loads(json.dumps(summary, allow_nan=False)) == summary


def test_nan_and_none_figures_are_left_out_of_the_statistics():
    def pixel(pce):
        return {"status": "completed", "results": {"reverse": _direction(pce_pct=pce)}}

    summary = summarise_substrate({"a": pixel(float("nan")), "b": pixel(None), "c": pixel(12.0)})
    assert summary["pixels"]["a"]["figures"]["reverse"]["pce_pct"] is None
    s = summary["statistics"]["reverse"]["pce_pct"]
    assert s["n"] == 1 and s["median"] == 12.0
    empty = summarise_substrate({"a": {"status": "skipped", "reason": "contact"}})
    assert empty["groups"] == [] and empty["statistics"] == {} and empty["primary"] is None


def test_the_fixture_is_what_the_jv_procedure_gives_today(tmp_path):
    """Rerun set A on the simulated bench: the same keys per direction and the same figures (seeded bench)."""
    from tests.helpers import run_jv

    result, station = run_jv(tmp_path)
    station.close()
    assert result.status == "completed", result.error
    live = json.loads(json.dumps(result.results, default=float))
    for direction in ("reverse", "forward"):
        assert set(live[direction]) == set(DATA["set-a"][direction])
        for key in ("voc_V", "jsc_mA_cm2", "ff", "pce_pct", "r_sc_ohm_cm2"):
            assert live[direction][key] == pytest.approx(DATA["set-a"][direction][key], rel=1e-9), key


# -- the statistics, for any values ----------------------------------------------------------------------------
_values = hs.lists(hs.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False),
                   min_size=1, max_size=40)


@given(_values)
def test_statistics_agree_with_the_standard_library(values):
    names = [f"p{i}" for i in range(len(values))]
    s = sub.statistics(dict(zip(names, values, strict=True)))
    assert s["n"] == len(values)
    assert s["median"] == pytest.approx(st.median(values), rel=1e-9, abs=1e-9)
    assert s["mean"] == pytest.approx(st.fmean(values), rel=1e-9, abs=1e-6)
    assert (s["min"], s["max"], s["best"]) == (min(values), max(values), max(values))
    assert s["best_pixel"] == names[values.index(max(values))]
    if len(values) >= 2:
        assert s["std"] == pytest.approx(st.stdev(values), rel=1e-7, abs=1e-6)
        q1, _, q3 = _quartiles(values)
        assert s["q1"] == pytest.approx(q1, rel=1e-9, abs=1e-6)
        assert s["q3"] == pytest.approx(q3, rel=1e-9, abs=1e-6)
    else:
        assert s["std"] is None and s["q1"] == s["q3"] == values[0]
    assert s["min"] <= s["q1"] <= s["median"] <= s["q3"] <= s["max"] and s["iqr"] >= 0


@given(_values, hs.randoms(use_true_random=False))
def test_statistics_do_not_depend_on_the_pixel_order_except_the_tie_break(values, rng):
    names = [f"p{i}" for i in range(len(values))]
    pairs = list(zip(names, values, strict=True))
    shuffled = pairs[:]
    rng.shuffle(shuffled)
    a, b = sub.statistics(dict(pairs)), sub.statistics(dict(shuffled))
    for key in ("n", "best", "median", "min", "max"):
        assert a[key] == b[key]
    for key in ("mean", "std", "q1", "q3", "iqr"):
        assert a[key] == pytest.approx(b[key], rel=1e-9, abs=1e-6) if a[key] is not None else b[key] is None
    assert dict(pairs)[b["best_pixel"]] == max(values)


@given(hs.lists(hs.tuples(hs.sampled_from(["completed", "skipped", "not measured", "aborted"]),
                          hs.floats(min_value=0.2, max_value=30.0)), min_size=1, max_size=12))
def test_only_completed_live_pixels_enter_the_statistics(pixels):
    outcomes = {str(i): {"status": status, "results": {"reverse": _direction(pce_pct=pce)}}
                for i, (status, pce) in enumerate(pixels)}
    summary = summarise_substrate(outcomes)
    completed = [pce for status, pce in pixels if status == "completed"]
    if not completed:
        assert summary["counts"]["included"] == 0
        assert all(s["n"] == 0 for g in summary["statistics"].values() for s in g.values())
        return
    s = summary["statistics"]["reverse"]["pce_pct"]
    assert s["n"] == len(completed) == summary["counts"]["included"]
    assert s["max"] == max(completed) and s["median"] == pytest.approx(st.median(completed), rel=1e-12)


def test_a_light_intensity_voc_substrate_gives_the_ideality_per_pixel_with_no_best():
    """n from Voc vs ln intensity says which recombination dominates, not which cell is better: no 'best'."""
    summary = summarise_substrate({
        "a": {"status": "completed", "results": {"n_global": 1.74, "n_global_stderr": 0.06}},
        "b": {"status": "completed", "results": {"n_global": 1.30}},
        "c": {"status": "completed", "results": {"n_global": 1.50}},
    })
    stats = summary["statistics"]["run"]["n_global"]
    assert stats["n"] == 3 and stats["median"] == 1.50 and stats["best"] is None and stats["best_pixel"] is None
    assert stats["min"] == 1.30 and stats["max"] == 1.74
    assert summary["counts"]["included"] == 3
