"""The report's reporting checklist (:mod:`labctl.report_checklist`) and summary tables (:func:`labctl.report.
summary_table`) on run records built by hand: each item from the metadata that says it, MISSING without it."""

from __future__ import annotations

from pathlib import Path

from labctl.report import summary_table
from labctl.report_checklist import checklist, journal_checklist, missing
from labctl.storage import RunData

JV_PARAMS = {"area_cm2": 0.09, "direction": "reverse-forward", "mode": "staircase", "start_V": -0.1, "stop_V": 1.2,
             "step_V": 0.02, "scan_rate_V_s": 0.2, "delay_s": 0.05, "nplc": 1.0, "light": True, "mismatch": 1.0,
             "irradiance_W_m2": 1000.0, "four_wire": True, "precondition_s": 0.0, "precondition_V": 1.2,
             "precondition_light": True, "temperature_K": 298.15}
FOM = {"voc_V": 1.1, "jsc_mA_cm2": 20.0, "ff": 0.8, "pce_pct": 17.6}


def _run(run_id: str, procedure: str, parameters: dict, results: dict, sample: str = "A", pixel: str | None = None
         ) -> RunData:
    info = {"run_id": run_id, "procedure": procedure, "sample": sample, "status": "completed"}
    if pixel is not None:
        info["pixel"] = pixel
    return RunData(path=Path(f"/nowhere/{run_id}.h5"), info=info, parameters=parameters, results=results)


def _jv(run_id: str = "20260101T000000Z_jv_A_0001", **params) -> RunData:
    results = {"reverse": dict(FOM), "forward": {**FOM, "pce_pct": 17.0}, "hysteresis": {"hi_pce": 0.0341}}
    if params.get("direction") == "reverse":
        results = {"reverse": dict(FOM)}
    return _run(run_id, "jv", {**JV_PARAMS, **params}, results)


def _items(runs) -> dict:
    return {i.item: i for i in journal_checklist(runs)}


def test_a_single_jv_without_metadata_lists_what_it_cannot_say():
    items = _items([_jv()])
    assert items["device area"].value == "0.09 cm² (1 run)"
    assert items["J–V scan (mode, range, step, rate, dwell, NPLC)"].value == (
        "staircase, -0.1 to 1.2 V, step 0.02 V, 0.2 V/s, delay 0.05 s, NPLC 1 (1 run)")
    assert items["J–V scan direction(s)"].value == "reverse-forward (1 run)"
    assert items["contacting (2-wire / 4-wire)"].value == "4-wire (1 run)"
    assert items["preconditioning"].value == "none (1 run)"
    assert items["hysteresis (both scan directions, index)"].value == "HI_PCE +0.0341, scan rate 0.2 V/s (1 run)"
    gaps = {k for k, i in items.items() if i.missing}
    assert gaps == {"how the area was determined (mask / aperture and its size)",
                    "light source (type, spectrum, filters)",  # no station snapshot, no isos_light_source
                    "light calibration (reference cell and its certificate)", "spectral mismatch factor",
                    "test environment (atmosphere, humidity)",
                    "stabilised output (MPP tracking or hold) and its duration",
                    "EQE: integrated Jsc against the J–V Jsc", "EQE: light bias, chopper and lock-in settings",
                    "statistics over devices (best PCE of each)", "independent certification of the efficiency",
                    "stability test: protocol and conditions (see the ISOS items)"}
    assert "M = 1 in every light J–V" in items["spectral mismatch factor"].note
    assert items["statistics over devices (best PCE of each)"].note.startswith("fewer than two devices")


def test_a_mismatch_a_preconditioning_and_one_direction_are_reported_as_given():
    items = _items([_jv(mismatch=0.985, precondition_s=5.0, direction="reverse")])
    assert items["spectral mismatch factor"].value == "M = 0.985 (1 run)"
    assert items["preconditioning"].value == "5 s at 1.2 V, light on (1 run)"
    assert items["hysteresis (both scan directions, index)"].missing  # one direction: no hysteresis index


def test_a_dark_jv_is_not_a_light_jv():
    dark = _run("20260101T000000Z_jv_A_0002", "jv", {**JV_PARAMS, "light": False},
                {"dark": {"reverse": {"j0_A_cm2": 1e-12}}})
    items = _items([dark])
    assert items["J–V scan (mode, range, step, rate, dwell, NPLC)"].missing
    assert items["number of devices measured (light J–V)"].missing
    assert items["irradiance"].missing


def test_an_eqe_run_gives_its_integrated_jsc_against_the_jv():
    eqe = _run("20260101T000000Z_eqe_A_0003", "eqe", {"area_cm2": 0.09},
               {"jsc_integrated_mA_cm2": 19.62, "jsc_jv_mA_cm2": 20.0, "jsc_ratio": 0.981})
    item = _items([_jv(), eqe])["EQE: integrated Jsc against the J–V Jsc"]
    assert item.value == "integrated 19.62 mA/cm² vs J–V 20.00 mA/cm² (ratio 0.981) (1 run)"
    assert item.sources == ("20260101T000000Z_eqe_A_0003",)
    settings = _items([eqe])["EQE: light bias, chopper and lock-in settings"]
    assert settings.value == "bias light off (1 run)"  # no lock-in parameters, no station: only what is known
    eqe.parameters.update(bias_light=True, time_constant_s=0.3, filter_slope_dB=24, reserve="Normal")
    eqe.station = {"eqe": {"chopper_frequency_Hz": 220.0}}
    eqe.results["reference_run"] = "20260101T000000Z_eqe-calibration_x_0000"
    assert _items([eqe])["EQE: light bias, chopper and lock-in settings"].value == (
        "bias light on, chopper 220 Hz, lock-in τ 0.3 s, 24 dB/oct, Normal reserve, calibration run "
        "20260101T000000Z_eqe-calibration_x_0000 (1 run)")
    alone = _run("20260101T000000Z_eqe_A_0004", "eqe", {}, {"jsc_integrated_mA_cm2": 19.62})
    assert "no J–V Jsc to compare" in _items([alone])["EQE: integrated Jsc against the J–V Jsc"].value


def test_statistics_over_devices_take_each_devices_best_pce():
    runs = [_jv("r1"), _jv("r2")]  # one device (sample A) measured twice
    runs.append(_run("r3", "jv", JV_PARAMS, {"reverse": {**FOM, "pce_pct": 15.0}}, sample="B"))
    runs.append(_run("r4", "jv", JV_PARAMS, {"reverse": {**FOM, "pce_pct": 16.0}}, sample="B", pixel="2"))
    items = _items(runs)
    assert items["number of devices measured (light J–V)"].value == "3: A, B, B/2"
    # best PCEs 17.6, 15.0, 16.0: mean 16.2, sample sd sqrt(((1.4)² + (1.2)² + (0.2)²)/2) = 1.311, median 16.0
    assert items["statistics over devices (best PCE of each)"].value == (
        "mean 16.20 ± 1.31 % (sample sd), median 16.00 %, range 15.00–17.60 % over 3 devices")


def test_different_values_are_listed_with_their_runs():
    items = _items([_jv("20260101T000000Z_jv_A_0001"), _jv("20260101T000100Z_jv_A_0002", area_cm2=0.1)])
    assert items["device area"].value == "0.09 cm² (1 run: jv_A_0001); 0.1 cm² (1 run: jv_A_0002)"


def test_a_stability_run_brings_its_isos_items_and_its_stabilised_output():
    params = {"area_cm2": 0.09, "light": True, "irradiance_W_m2": 1000.0, "preset": "ISOS-L-1I",
              "duration_h": 100.0, "jv_interval_min": 0.0, "algorithm": "perturb-observe", "dwell_s": 1.0,
              "step_min_V": 0.001, "step_max_V": 0.05, "isos_light_source": "LED", "isos_light_intensity": "1 sun",
              "isos_light_spectrum": "", "isos_light_calibration": "", "isos_temperature": "",
              "isos_temperature_sensor": "",
              "isos_atmosphere": "inert (N2 or Ar)", "isos_humidity": "", "isos_encapsulation": "",
              "isos_area_method": ""}
    mpp = _run("20260101T000000Z_mpp_A_0005", "mpp", params,
               {"stabilised_pce_pct": 16.42, "stabilised_at_h": 0.25, "hours": 100.0})
    items = checklist([mpp])
    journal = {i.item: i for i in items if i.section == "journal"}
    assert journal["stabilised output (MPP tracking or hold) and its duration"].value == (
        "16.42 % stabilised (at 0.25 h) over 100 h (1 run)")
    assert journal["stability test: protocol and conditions (see the ISOS items)"].value == "ISOS-L-1I (1 run)"
    isos = {i.item: i for i in items if i.section == "ISOS: 20260101T000000Z_mpp_A_0005"}
    assert isos["protocol claimed"].value == "ISOS-L-1I"
    assert isos["MPPT: tracking algorithm"].value == "perturb-observe"
    assert isos["light calibration (reference cell and certificate)"].missing
    assert isos["light calibration (reference cell and certificate)"].note == (
        "not recorded: --set isos_light_calibration=... on the stability run")
    assert isos["J-V during ageing: interval"].note == "not recorded: --set jv_interval_min=... on the stability run"
    assert "ISOS: 20260101T000000Z_mpp_A_0005: encapsulation (materials, edge sealant)" in missing(items)


def test_summary_tables_per_kind_of_run():
    head, rows = summary_table(_jv())
    assert head == ["figures of merit", "reverse", "forward"]
    assert rows[0] == ["Voc (V)", "1.1000", "1.1000"] and rows[2] == ["FF (%)", "80.00", "80.00"]
    assert rows[-1] == ["hysteresis index HI_PCE", "+0.0341", ""]
    dark = _run("d", "jv", {}, {"dark": {"reverse": {"j0_A_cm2": 2.5e-12, "ideality": 1.62}}})
    head, rows = summary_table(dark)
    assert head == ["dark fit", "reverse"] and rows[0] == ["J0 (A/cm²)", "2.5e-12"] and rows[1] == ["n", "1.6200"]
    eqe = _run("e", "eqe", {}, {"jsc_integrated_mA_cm2": 19.62, "jsc_jv_mA_cm2": 20.0, "jsc_ratio": 0.981,
                                 "jsc_tolerance": 0.05})
    head, rows = summary_table(eqe)
    assert rows[0] == ["integrated Jsc, AM1.5G (mA/cm²)", "19.620"] and rows[2] == ["ratio (allowed ±)",
                                                                                    "0.9810 (±0.05)"]
    other = _run("o", "other", {}, {"ratio": 0.0123456789, "flags": ["x"], "nested": {"a": 1}, "points": 5})
    assert summary_table(other) == (["result", "value"], [["ratio", "0.0123457"], ["points", "5"]])


def test_stability_runs_with_the_same_isos_fields_share_one_section():
    params = {"area_cm2": 0.049, "preset": "", "duration_h": 1.0, "jv_interval_min": 0.0, "bias": "oc",
              **{key: "" for key in ("isos_light_source", "isos_light_intensity", "isos_light_spectrum",
                                     "isos_light_calibration", "isos_temperature", "isos_temperature_sensor",
                                     "isos_atmosphere", "isos_humidity", "isos_encapsulation", "isos_area_method")}}
    pixels = [_run(f"20260101T000000Z_hold_S_p{n}_000{n}", "hold", params, {}, sample="S", pixel=str(n))
              for n in (1, 2)]
    other = _run("20260101T000000Z_hold_T_0009", "hold", {**params, "isos_encapsulation": "glass"}, {})
    sections = list(dict.fromkeys(i.section for i in checklist([*pixels, other])))
    assert sections == ["journal", "ISOS: 2 runs with the same fields (hold_S_p1_0001, hold_S_p2_0002)",
                        "ISOS: 20260101T000000Z_hold_T_0009"]
    shared = [i for i in checklist(pixels) if i.section.startswith("ISOS: 2 runs")]
    bias = next(i for i in shared if i.item == "electrical bias")
    assert bias.value == "open circuit (OC)" and bias.sources == tuple(p.info["run_id"] for p in pixels)


def test_summary_tables_of_a_light_intensity_voc_and_a_plqy_run():
    voc = _run("v", "voc-intensity", {}, {
        "n_global": 1.7386, "n_global_stderr": 0.0584, "global_window_suns": [2.89e-5, 1.03],
        "dynamic_range_dB": 45.52, "temperature_K": 298.15, "temperature_source": "parameter temperature_K",
        "regimes": [{"label": "n≈1", "n": 1.112, "n_low": 1.076, "n_high": 1.155, "phi_min_suns": 0.028,
                     "phi_max_suns": 1.03, "points": 6}],
        "instrument_limited_points": [1e-7, 1.1e-5], "calibration_run": "cal-1"})
    head, rows = summary_table(voc)
    assert head == ["light-intensity Voc", "value"]
    assert rows[0] == ["ideality n, global", "1.739 ± 0.058 over 2.89e-05–1.03 suns"]
    assert ["regime n≈1", "n = 1.112 (1.076–1.155) from 0.028 to 1.03 suns, 6 points"] in rows
    assert ["instrument-limited points", "2, up to 1.1e-05 suns"] in rows and rows[-1] == ["calibration run", "cal-1"]
    plqy = _run("p", "plqy", {}, {"plqy": 0.10209, "qfls_eV": None, "snr_dB": 78.28, "snr_ok": True})
    assert summary_table(plqy) == (["PLQY", "value"], [["PLQY", "0.1021"], ["QFLS (eV)", "—"], ["SNR (dB)", "78.3"],
                                                       ["SNR ok", "True"]])
    many = _run("m", "other", {}, {f"x{i}": i for i in range(25)})
    rows = summary_table(many)[1]
    assert len(rows) == 21 and rows[-1] == ["…", "5 more results in the run file (labctl show)"]


def test_a_stability_run_too_short_for_its_figures_says_so():
    run = _run("s", "mpp", {}, {"steps": 3, "hours": 0.0009, "metric": None, "figures": None, "t80_h": None})
    head, rows = summary_table(run)
    assert head == ["stability", "value"]
    assert rows[:2] == [["stability figures", "not computed (too few metric readings)"], ["steps", "3"]]


def test_the_hysteresis_of_many_runs_is_given_as_a_range():
    runs = []
    for k, (hi, rate) in enumerate(((0.012, 0.1), (-0.003, 0.1), (0.041, 0.05), (0.0, 0.2))):
        run = _jv(f"r{k}", scan_rate_V_s=rate)
        run.results["hysteresis"] = {"hi_pce": hi}
        runs.append(run)
    item = _items(runs)["hysteresis (both scan directions, index)"]
    assert item.value == "HI_PCE -0.0030 to +0.0410 over 4 runs (scan rates 0.05, 0.1, 0.2 V/s)"
    assert item.sources == ("r0", "r1", "r2", "r3")
