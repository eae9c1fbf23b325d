"""The ``mpp`` procedure end to end on the simulated bench (virtual clock), against an independent calculation.

The expected maximum power point of the default station's cell is computed with pvlib's single-diode solver
(``pvlib.pvsystem.singlediode``, Lambert-W; Jain & Kapoor 2004) for the device of the repository's station.yaml,
which is set A of the methods reference (§1.6: Vmp 0.97981 V, Pmp 16.765 mW/cm² at 298.15 K, checked first), not
from the simulator or the tracker.
"""

from __future__ import annotations

import json

import numpy as np
import pvlib
import pytest
import yaml
from click.testing import CliRunner
from scipy import constants

from labctl.cli import main
from labctl.config import parse_station
from labctl.engine import RunEngine
from labctl.resume import ResumeEngine, prepare_resume
from labctl.station import Station
from labctl.status import status_path
from labctl.storage import load_run
from procedures.mpp import MPPProcedure
from tests.helpers import FOM_A, REPO, SET_A, default_station, smu_emulator

DEVICE = yaml.safe_load((REPO / "station.yaml").read_text())["simulation"]["device"]


def _static_mpp() -> tuple[float, float, float]:
    """(Vmp V, Pmp mW/cm², Voc V) of the station's cell by pvlib, per cm² (A/cm², Ω·cm²)."""
    n_vt = DEVICE["ideality"] * constants.k * DEVICE["temperature_K"] / constants.e
    out = pvlib.pvsystem.singlediode(DEVICE["jph_mA_cm2"] * 1e-3, DEVICE["j0_A_cm2"], DEVICE["rs_ohm_cm2"],
                                     DEVICE["rsh_ohm_cm2"], n_vt)
    return float(out["v_mp"]), float(out["p_mp"]) * 1e3, float(out["v_oc"])


VMP_V, PMP_MW_CM2, VOC_V = _static_mpp()


def test_the_expected_mpp_is_the_methods_reference_set_a():
    assert {k: DEVICE[k] for k in SET_A} == SET_A
    assert VMP_V == pytest.approx(FOM_A["vmp_V"], abs=2e-4)
    assert PMP_MW_CM2 == pytest.approx(16.765, abs=2e-3)  # methods ref. §7.1 worked table
    assert VOC_V == pytest.approx(FOM_A["voc_V"], abs=5e-4)


def _procedure(**params) -> MPPProcedure:
    procedure = MPPProcedure()
    for name, value in params.items():
        assert name in procedure._parameters, name
        setattr(procedure, name, value)
    return procedure


def _run(out, procedure, station=None, stop_after_rows=None):
    station = station or Station(parse_station(default_station()))
    engine = RunEngine(station, out, sample="cell-1", catalog=False)
    if stop_after_rows:
        def stop(name, doc):
            if name == "event" and doc.stream == "mpp" and doc.seq_num == stop_after_rows:
                engine.abort()

        engine.subscribe(stop)
    return engine.run(procedure), station


def test_mpp_tracking_with_the_defaults_holds_the_static_maximum_power(tmp_path):
    result, station = _run(tmp_path, _procedure(duration_h=0.1))
    station.close()
    assert result.status == "completed", result.error
    mpp = load_run(result.path).streams["mpp"]
    assert len(mpp) == result.results["steps"] >= 300  # one row per step of 1 s dwell (+ the reading time)
    v = mpp["voltage_V"].to_numpy()
    assert v[0] == pytest.approx(VOC_V, abs=3e-3)  # the approach starts at the measured Voc, not at 0 V
    assert np.max(np.abs(np.diff(v))) <= 0.05 + 1e-3  # never a step above max(step_max_V, ramp_step_V)
    track = mpp[mpp["phase"] == "track"]
    assert len(track) > 250
    settled = track.iloc[len(track) // 2:]
    assert settled["power_mW_cm2"].mean() >= 0.999 * PMP_MW_CM2
    assert settled["voltage_V"].mean() == pytest.approx(VMP_V, abs=5e-3)
    np.testing.assert_allclose(mpp["pce_pct"], mpp["power_mW_cm2"])  # 1000 W/m² = 100 mW/cm²
    assert result.results["settled_power_mW_cm2"] >= 0.999 * PMP_MW_CM2
    assert result.results["retained_pce_pct"] == pytest.approx(100.0, abs=0.3)  # from the converged tracker on
    state = json.loads(mpp["tracker_state"].iloc[-1])
    assert state["algorithm"] == "perturb-observe" and state["phase"] == "track"
    # the live figures and the tracker in the status file (labctl status)
    extra = json.loads(status_path(result.path).read_text())["extra"]
    assert extra["tracker"] == state
    batch = result.results["figures"]
    assert extra["figures"]["points_used"] == batch["points_used"] > 250
    assert extra["figures"]["initial"] == pytest.approx(batch["initial"], rel=1e-9)
    assert extra["figures"]["final"] == pytest.approx(batch["final"], rel=1e-9)


def test_the_alternative_algorithm_tracks_too(tmp_path):
    result, station = _run(tmp_path, _procedure(duration_h=0.1, algorithm="gradient-momentum"))
    station.close()
    assert result.status == "completed", result.error
    track = load_run(result.path).streams["mpp"].query("phase == 'track'")
    assert track["power_mW_cm2"].iloc[len(track) // 2:].mean() >= 0.999 * PMP_MW_CM2
    assert track["voltage_V"].iloc[len(track) // 2:].mean() == pytest.approx(VMP_V, abs=0.01)


def test_a_resumed_mpp_run_continues_from_the_saved_tracker_voltage_by_a_ramp_from_voc(tmp_path):
    first, station = _run(tmp_path, _procedure(duration_h=0.05), stop_after_rows=120)
    station.close()
    assert first.status == "aborted"
    before = load_run(first.path).streams["mpp"]
    saved = json.loads(before["tracker_state"].iloc[-1])
    assert saved["phase"] == "track" and abs(saved["voltage_V"] - VMP_V) < 0.01

    resumption = prepare_resume(first.path)
    station = Station(parse_station(default_station()))
    station.connect(["smu"])
    emulator = smu_emulator(station)
    applied: list[float] = []  # the voltage on the device while the SMU sources voltage with its output on
    handle = emulator.handle

    def spy(message: str):
        reply = handle(message)
        if emulator.output and emulator.source_fn == "VOLT":
            level = emulator.src["VOLT"].level
            if not applied or applied[-1] != level:
                applied.append(level)
        return reply

    emulator.handle = spy
    engine = ResumeEngine(station, resumption.run_file, sample=resumption.sample, catalog=False)
    second = engine.run(resumption.procedure)
    station.close()
    assert second.status == "completed", second.error
    run = load_run(first.path)
    mpp = run.streams["mpp"]
    new = mpp[mpp["segment"] == 1]
    assert len(new) > 0 and (mpp["segment"] == 0).sum() == len(before)
    # the first step of the new segment is at the saved voltage (not 0 V, not a new approach from Voc)
    assert new["voltage_V"].iloc[0] == pytest.approx(saved["voltage_V"], abs=2e-3)
    assert set(new["phase"]) == {"track"}
    assert json.loads(new["tracker_state"].iloc[0])["updates"] == saved["updates"] + 1
    # the voltage source was switched in at the measured Voc and ramped from there by at most ramp_step_V
    assert applied[0] == pytest.approx(VOC_V, abs=3e-3)
    assert np.max(np.abs(np.diff(applied))) <= 0.01 + 1e-9
    assert min(applied) > 0.9  # never a step towards 0 V
    # stress time continues: no gap counted, a gap interruption recorded
    assert new["time_s"].iloc[0] > before["time_s"].iloc[-1]
    assert new["time_s"].iloc[0] - before["time_s"].iloc[-1] < 3.0
    gaps = run.streams["interruptions"]
    assert list(gaps["kind"]) == ["gap"] and gaps["start_s"].iloc[0] == pytest.approx(before["time_s"].max())
    # the live figures (status file) go on from the rows of the first segment: as many as the final analysis uses
    live = json.loads(status_path(first.path).read_text())["extra"]["figures"]
    batch = second.results["figures"]
    assert live["points_used"] == batch["points_used"] > len(new)
    assert live["hours"] == pytest.approx(mpp["time_s"].max() / 3600, rel=1e-3)


def test_mpp_from_a_jv_approaches_the_jv_vmp_and_reports_the_stability_figures(tmp_path):
    res = CliRunner().invoke(main, ["run", "mpp", "--station", str(REPO / "station.yaml"), "--out",
                                    str(tmp_path / "runs"), "--json", "--no-plot", "--set", "duration_h=0.05",
                                    "--set", "approach=from_jv"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    results = out["results"]
    for key in ("t80_h", "ts80_h", "t80_extrapolated", "retained_pce_pct", "hours", "interruptions",
                "suspended_h"):
        assert key in results, key
    assert results["interruptions"] == 0 and results["suspended_h"] == 0
    assert results["retained_pce_pct"] == pytest.approx(100.0, abs=0.5)  # a static cell does not degrade
    assert results["hours"] == pytest.approx(0.05, abs=0.01)
    run = load_run(out["file"])
    figures = run.streams["jv_figures"]
    assert list(figures["jv_index"]) == [0, 0]  # the one J-V (reverse, forward) that gave Vmp
    mpp = run.streams["mpp"]
    reverse_vmp = float(figures[figures["direction"] == 0]["vmp_V"].iloc[0])
    assert reverse_vmp == pytest.approx(VMP_V, abs=0.01)
    assert mpp["voltage_V"].iloc[0] == pytest.approx(VOC_V, abs=3e-3)  # ramped from Voc ...
    first_track = mpp[mpp["phase"] == "track"]["voltage_V"].iloc[0]  # ... to the J-V's Vmp, then tracking
    assert first_track == pytest.approx(reverse_vmp, abs=2e-3)


@pytest.mark.parametrize(("settings", "fragment"), [
    (["light=false"], "parameter light = false: MPP tracking needs the light on"),
    (["step_min_V=0.1"], "parameter step_min_V = 0.1: above step_max_V = 0.05"),
    (["dwell_s=600", "duration_h=0.1"], "parameter dwell_s = 600: longer than duration_h = 0.1 h"),
    (["suspend_bias=maybe"], "parameter suspend_bias = 'maybe': allowed oc, sc, off or a voltage"),
    (["algorithm=guess"], "algorithm"),
    (["jv_interval_min=30", "jv_stop_V=1.6"], "parameter jv_stop_V = 1.6: allowed range is -1.5 to 1.5"),
    (["approach=from_jv", "jv_step_V=0.001", "jv_start_V=-1", "jv_stop_V=1.5"], "parameter jv_step_V = 0.001: "),
    (["jv_interval_min=0.4"], "parameter jv_interval_min = 0.4: one periodic J-V takes about 28 s (141 points x 2"),
])
def test_bad_mpp_settings_are_refused_in_one_line_before_any_instrument_is_touched(tmp_path, settings, fragment):
    args = ["run", "mpp", "--station", str(REPO / "station.yaml"), "--out", str(tmp_path / "runs"), "--json",
            "--no-plot"]
    for item in settings:
        args += ["--set", item]
    res = CliRunner().invoke(main, args, catch_exceptions=False)
    assert res.exit_code == 2, res.output
    assert len(res.stderr.strip().splitlines()) == 1 and fragment in res.stderr, res.stderr
    assert not list(tmp_path.rglob("*.h5"))


def test_a_transport_fault_during_tracking_is_journaled_and_the_tracker_goes_on_after_a_ramp(tmp_path):
    """The link to the SMU is reset by its peer in the middle of tracking (the next read raises
    ConnectionResetError, as a dropped TCP link does): the recovery reconnects, the bias is ramped back from the
    measured Voc to the tracker's voltage, the step is measured again, and no row is lost or doubled."""
    station = Station(parse_station(default_station()))
    engine = RunEngine(station, tmp_path, sample="cell-1", catalog=False)
    cut = {"done": False}

    def cut_the_link(name, doc):
        if name == "event" and doc.stream == "mpp" and doc.seq_num == 150 and not cut["done"]:
            cut["done"] = True
            adapter = station["smu"].adapter

            def reset_by_peer(*args, **kwargs):
                raise ConnectionResetError(104, "Connection reset by peer")

            adapter.read = reset_by_peer

    engine.subscribe(cut_the_link)
    result = engine.run(_procedure(duration_h=0.1))
    station.close()
    assert result.status == "completed", result.error
    run = load_run(result.path)
    journal, mpp = run.streams["journal"], run.streams["mpp"]
    assert cut["done"] and "fault" in set(journal["action"]) and "reconnected" in set(journal["action"])
    assert set(journal["kind"]) == {"connection_reset"}
    assert list(run.streams["interruptions"]["kind"]) == ["recovery"]
    assert result.results["io_faults"] == 1
    times = mpp["time_s"].to_numpy()
    assert np.all(np.diff(times) > 0.9)  # one row per step, none twice
    states = [json.loads(s)["updates"] for s in mpp["tracker_state"]]
    assert states == list(range(1, len(states) + 1))  # every tracker update has its row, in order
    after = mpp.iloc[150:]
    assert after["power_mW_cm2"].mean() >= 0.999 * PMP_MW_CM2


def test_mpp_with_periodic_jv_goes_on_tracking_at_its_voltage_after_each_jv(tmp_path):
    result, station = _run(tmp_path, _procedure(duration_h=0.1, jv_interval_min=2))
    station.close()
    assert result.status == "completed", result.error
    run = load_run(result.path)
    figures, mpp = run.streams["jv_figures"], run.streams["mpp"]
    starts = figures.groupby("jv_index")["stress_time_s"].first().to_numpy()
    assert len(starts) == 3 and starts[0] == 0.0  # at 0, 2 and 4 min: each J-V needs ~30 s of the 2 min
    np.testing.assert_allclose(figures["pce_pct"], PMP_MW_CM2, rtol=3e-3)  # PCE % = Pmp in mW/cm² at 1 sun
    t, v = mpp["time_s"].to_numpy(), mpp["voltage_V"].to_numpy()
    for start in starts[1:]:
        before, after = np.flatnonzero(t < start)[-1], np.flatnonzero(t > start)[0]
        assert t[after] - start > 20  # no tracking step during the J-V
        assert abs(v[after] - v[before]) <= 0.05  # tracking goes on where it was, not from a new approach
        assert mpp["phase"].iloc[after] == "track"
    track = mpp[mpp["phase"] == "track"]
    assert track["power_mW_cm2"].iloc[len(track) // 2:].mean() >= 0.999 * PMP_MW_CM2
    assert result.results["metric"] == "pce_pct" and result.results["jv_scans"] == 3


def test_a_suspended_mpp_run_waits_at_open_circuit_and_goes_on_tracking_where_it_was(tmp_path):
    station = Station(parse_station(default_station()))
    engine = RunEngine(station, tmp_path, sample="cell-1", catalog=False)
    t0 = station.clock.now()
    engine.add_suspender(lambda: "irradiance low" if 150 <= station.clock.now() - t0 < 250 else None)
    result = engine.run(_procedure(duration_h=0.1))
    station.close()
    assert result.status == "completed", result.error
    run = load_run(result.path)
    mpp, stops = run.streams["mpp"], run.streams["interruptions"]
    (stop,) = stops.itertuples()
    assert stop.kind == "suspended" and stop.reason == "irradiance low"
    assert stop.start_s == pytest.approx(150, abs=3) and stop.end_s == pytest.approx(250, abs=3)
    t, v = mpp["time_s"].to_numpy(), mpp["voltage_V"].to_numpy()
    assert not np.any((t > stop.start_s + 1) & (t < stop.end_s))
    before, after = np.flatnonzero(t < stop.start_s)[-1], np.flatnonzero(t > stop.end_s)[0]
    assert abs(v[after] - v[before]) < 0.01 and mpp["phase"].iloc[after] == "track"
    assert any("device held at oc" in e for e in run.events)
    assert result.results["suspended_h"] == pytest.approx(100 / 3600, abs=3 / 3600)
    inside = int(((t >= stop.start_s) & (t <= stop.end_s)).sum())  # at most the first reading, at its very end
    assert inside <= 1 and result.results["figures"]["points_masked"] == inside
    assert mpp["power_mW_cm2"].iloc[after:].mean() >= 0.999 * PMP_MW_CM2
