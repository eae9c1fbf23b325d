"""What every stability run shares (procedures.stability), end to end on the simulated bench (virtual clock).

Expected figures are computed independently of the simulator: pvlib's single-diode solver for the default
station's cell (set A of the methods reference, §1.6: Voc 1.1700 V, Jsc 18.300 mA/cm², FF 0.7830, Pmp 16.765
mW/cm², so PCE 16.765 % at 1000 W/m²).
"""

from __future__ import annotations

import math

import numpy as np
import pvlib
import pytest
import yaml
from scipy import constants

from labctl.config import parse_station
from labctl.engine import RunEngine
from labctl.plotting import figure, plt
from labctl.station import Station
from labctl.storage import load_run
from procedures.hold import HoldProcedure
from tests.helpers import FOM_A, REPO, default_station, smu_emulator

DEVICE = yaml.safe_load((REPO / "station.yaml").read_text())["simulation"]["device"]
N_VT = DEVICE["ideality"] * constants.k * DEVICE["temperature_K"] / constants.e
SDM = pvlib.pvsystem.singlediode(DEVICE["jph_mA_cm2"] * 1e-3, DEVICE["j0_A_cm2"], DEVICE["rs_ohm_cm2"],
                                 DEVICE["rsh_ohm_cm2"], N_VT)
VOC_V, JSC_MA_CM2, PMP_MW_CM2 = float(SDM["v_oc"]), float(SDM["i_sc"]) * 1e3, float(SDM["p_mp"]) * 1e3
PCE_PCT = PMP_MW_CM2 / 100.0 * 100.0  # P / (1000 W/m² = 100 mW/cm²), in %


def _j_mA_cm2(v_V: float) -> float:
    """J(V) of the cell (photocurrent-positive, mA/cm²) by pvlib's single-diode current at a given voltage."""
    return 1e3 * float(pvlib.pvsystem.i_from_v(v_V, DEVICE["jph_mA_cm2"] * 1e-3, DEVICE["j0_A_cm2"],
                                               DEVICE["rs_ohm_cm2"], DEVICE["rsh_ohm_cm2"], N_VT))


def test_the_independent_figures_are_the_methods_reference_set_a():
    assert VOC_V == pytest.approx(FOM_A["voc_V"], abs=5e-4)
    assert JSC_MA_CM2 == pytest.approx(FOM_A["jsc_mA_cm2"], abs=5e-3)
    assert PMP_MW_CM2 / (VOC_V * JSC_MA_CM2) == pytest.approx(FOM_A["ff"], abs=5e-4)


def _hold(**params) -> HoldProcedure:
    procedure = HoldProcedure()
    for name, value in params.items():
        assert name in procedure._parameters, name
        setattr(procedure, name, value)
    return procedure


def _engine(tmp_path, station=None):
    station = station or Station(parse_station(default_station()))
    return RunEngine(station, tmp_path, sample="cell-2", catalog=False), station


def test_a_hold_with_periodic_jv_stores_the_scans_and_their_figures(tmp_path):
    engine, station = _engine(tmp_path)
    result = engine.run(_hold(duration_h=0.5, interval_s=10, jv_interval_min=10))
    station.close()
    assert result.status == "completed", result.error
    run = load_run(result.path)
    figures, scans, hold = run.streams["jv_figures"], run.streams["jv_scans"], run.streams["hold"]
    assert sorted(set(figures["jv_index"])) == [0, 1, 2]  # at 0, 10 and 20 min of the 30 min hold
    assert len(figures) == 6 and set(figures["direction"]) == {0, 1}  # reverse and forward each
    np.testing.assert_allclose(figures.groupby("jv_index")["stress_time_s"].first(), [0.0, 600.0, 1200.0],
                               atol=11.0)
    np.testing.assert_allclose(figures["pce_pct"], PCE_PCT, rtol=3e-3)
    np.testing.assert_allclose(figures["voc_V"], VOC_V, atol=2e-3)
    np.testing.assert_allclose(figures["jsc_mA_cm2"], JSC_MA_CM2, rtol=2e-3)
    np.testing.assert_allclose(figures["ff_pct"], 100 * FOM_A["ff"], atol=0.3)
    assert len(scans) == 3 * 2 * 141 and set(scans["jv_index"]) == {0, 1, 2}  # -0.1 to 1.3 V by 10 mV
    # the J-V rows are the J-V procedure's own (photocurrent-positive J on the cell's curve)
    sample = scans.iloc[::37]
    np.testing.assert_allclose(sample["j_mA_cm2"], [_j_mA_cm2(v) for v in sample["voltage_V"]], atol=0.05)
    # the hold goes on at open circuit between the J-Vs, no burst of late readings after each one
    assert np.all(np.abs(hold["voltage_V"] - VOC_V) < 2e-3)
    gaps = np.diff(hold["time_s"].to_numpy())
    assert gaps.min() > 9.0 and np.isclose(gaps, 10.0, atol=0.1).sum() >= len(gaps) - 3
    results = result.results
    assert results["jv_scans"] == 3 and results["metric"] == "pce_pct"
    assert results["retained_pce_pct"] == pytest.approx(100.0, abs=0.3)
    assert results["t80_h"] is None or results["t80_extrapolated"]
    fig = figure(run)  # PCE, Voc, Jsc, FF against stress time
    try:
        assert [ax.get_ylabel() for ax in fig.axes] == ["PCE (%)", "Voc (V)", "Jsc (mA/cm²)", "FF (%)"]
        assert all(len(ax.lines) == 2 for ax in fig.axes)  # reverse and forward
    finally:
        plt.close(fig)


def test_a_suspension_holds_the_device_at_the_suspend_bias_and_is_masked(tmp_path):
    """A suspender (e.g. a lamp dip) from 10 to 20 min of station time: the device goes to short circuit, no hold
    reading is taken meanwhile, it is ramped back to open circuit after, and the interval is one interruption."""
    engine, station = _engine(tmp_path)
    t_start = station.clock.now()
    engine.add_suspender(lambda: "lamp dip" if 600 <= station.clock.now() - t_start < 1200 else None)
    seen: list[tuple[float, bool, str, float]] = []

    def watch(name, doc):
        if name == "log" and doc.message.startswith("suspended ("):
            emulator = smu_emulator(station)
            seen.append((station.clock.now() - t_start, emulator.output, emulator.source_fn,
                         emulator.src["VOLT"].level))

    engine.subscribe(watch)
    result = engine.run(_hold(duration_h=0.5, interval_s=10, suspend_bias="sc"))
    station.close()
    assert result.status == "completed", result.error
    run = load_run(result.path)
    (_, output_on, function, level), = seen
    assert output_on and function == "VOLT" and level == 0.0  # held at short circuit while suspended
    stops = run.streams["interruptions"]
    assert list(stops["kind"]) == ["suspended"] and list(stops["reason"]) == ["lamp dip"]
    assert stops["start_s"].iloc[0] == pytest.approx(600, abs=11) and stops["end_s"].iloc[0] == pytest.approx(
        1200, abs=3)
    t = run.streams["hold"]["time_s"].to_numpy()
    assert not np.any((t > stops["start_s"].iloc[0] + 1) & (t < stops["end_s"].iloc[0]))
    assert np.all(np.abs(run.streams["hold"]["voltage_V"] - VOC_V) < 2e-3)  # back at open circuit after
    assert result.results["interruptions"] == 1
    assert result.results["suspended_h"] == pytest.approx(600 / 3600, abs=12 / 3600)
    fig = figure(run)  # the plot: the suspension shaded
    try:
        shaded = [p for p in fig.axes[0].patches if p.get_alpha() == 0.25]
        assert len(shaded) == 1
    finally:
        plt.close(fig)


def test_an_instrument_reset_mid_hold_is_noticed_by_read_back_and_the_bias_ramped_back(tmp_path):
    """The SMU loses its state (``*RST``: output off, levels 0) in the middle of a hold at 0.95 V: the next
    reading's read-back finds the output off, the instrument is reconnected and re-configured and 0.95 V is
    reached again from the measured Voc by a ramp; no reading is taken with the output off, and the voltage on
    the device never steps by more than ramp_step_V (no stale level)."""
    engine, station = _engine(tmp_path)
    applied: list[float] = []
    state = {"reset": False}

    def reset_at_row(name, doc):
        if name == "event" and doc.stream == "hold" and doc.seq_num == 30 and not state["reset"]:
            state["reset"] = True
            smu_emulator(station).handle("*RST")

    def spy_on(emulator):
        handle = emulator.handle

        def spy(message: str):
            reply = handle(message)
            if emulator.output and emulator.source_fn == "VOLT":
                if not applied or applied[-1] != emulator.src["VOLT"].level:
                    applied.append(emulator.src["VOLT"].level)
            elif applied and applied[-1] is not None:
                applied.append(None)  # output off or current source (open circuit): a new ramp must start
            return reply

        emulator.handle = spy

    station.connect(["smu"])
    spy_on(smu_emulator(station))
    reconnect = station.reconnect

    def reconnect_and_spy(role):  # a reconnection opens a new link: watch what goes through it too
        instrument = reconnect(role)
        spy_on(smu_emulator(station))
        return instrument

    station.reconnect = reconnect_and_spy
    engine.subscribe(reset_at_row)
    result = engine.run(_hold(bias="0.95", duration_h=0.05, interval_s=2))
    station.close()
    assert result.status == "completed", result.error
    run = load_run(result.path)
    hold, journal = run.streams["hold"], run.streams["journal"]
    assert state["reset"] and len(hold) == 90
    np.testing.assert_allclose(hold["voltage_V"], 0.95, atol=1e-3)
    np.testing.assert_allclose(hold["j_mA_cm2"], _j_mA_cm2(0.95), rtol=2e-3)
    assert list(journal["action"]) == ["fault", "reconnected", "retry"]
    assert set(journal["kind"]) == {"instrument_reset"}
    assert list(run.streams["interruptions"]["kind"]) == ["recovery"]
    assert any("output was found off" in e and "WARNING" in e for e in run.events)
    runs = [[]]
    for level in applied:
        if level is None:
            runs.append([])
        else:
            runs[-1].append(level)
    ramps = [r for r in runs if r]
    assert len(ramps) >= 2  # the first application and the one after the reset
    for ramp in ramps:
        assert ramp[0] == pytest.approx(VOC_V, abs=3e-3) and ramp[-1] == pytest.approx(0.95, abs=1e-9)
        assert np.max(np.abs(np.diff(ramp))) <= 0.01 + 1e-9


def test_stability_figures_mask_the_interruptions_and_count_them():
    """analyse() of streams made here: a PCE series that dips during a recorded suspension keeps its T80 (the
    masked dip does not count) — a 2 %/h linear loss reaches 80 % at 10 h."""
    import pandas as pd

    t_s = np.arange(0, 12.01, 0.5) * 3600
    pce = 16.0 * (1 - 0.02 * t_s / 3600)
    dip = (t_s > 3 * 3600) & (t_s < 6 * 3600)  # 5 readings: more than the 5-point median filter removes
    pce_dipped = np.where(dip, 5.0, pce)
    figures = pd.DataFrame({"stress_time_s": t_s, "jv_index": np.arange(t_s.size), "direction": 0,
                            "pce_pct": pce_dipped})
    stops = pd.DataFrame({"kind": ["suspended"], "start_s": [2.9 * 3600], "end_s": [6.1 * 3600],
                          "reason": ["lamp"], "wall_gap_s": [math.nan], "segment": [0]})
    hold = pd.DataFrame({"time_s": t_s, "voltage_V": 1.1, "current_A": 0.0, "j_mA_cm2": 0.0, "power_mW_cm2": 0.0,
                         "compliance": 0, "segment": 0})
    procedure = _hold(duration_h=12, jv_interval_min=30)
    results = procedure.analyse({"hold": hold, "jv_figures": figures, "interruptions": stops})
    assert results["t80_h"] == pytest.approx(10.0, abs=0.05) and results["t80_reached"]
    assert results["interruptions"] == 1 and results["suspended_h"] == pytest.approx(3.2)
    assert results["retained_pce_pct"] == pytest.approx(100 * pce[-1] / pce[0], abs=0.5)
    unmasked = procedure.analyse({"hold": hold, "jv_figures": figures})
    assert unmasked["t80_h"] < 6.0  # the same dip, not masked, is taken for degradation


def test_a_resumed_hold_goes_on_with_the_next_jv_and_the_stress_time(tmp_path):
    from labctl.resume import ResumeEngine, prepare_resume

    engine, station = _engine(tmp_path)

    def stop(name, doc):
        if name == "event" and doc.stream == "hold" and doc.seq_num == 70:  # t ≈ 730 s: after the J-V at 600 s
            engine.abort()

    engine.subscribe(stop)
    first = engine.run(_hold(duration_h=0.5, interval_s=10, jv_interval_min=10))
    station.close()
    assert first.status == "aborted"
    before = load_run(first.path)
    assert sorted(set(before.streams["jv_figures"]["jv_index"])) == [0, 1]
    resumption = prepare_resume(first.path)
    station = Station(parse_station(default_station()))
    second = ResumeEngine(station, resumption.run_file, sample=resumption.sample, catalog=False).run(
        resumption.procedure)
    station.close()
    assert second.status == "completed", second.error
    run = load_run(first.path)
    figures, hold = run.streams["jv_figures"], run.streams["hold"]
    assert list(figures["jv_index"]) == [0, 0, 1, 1, 2, 2]  # the next J-V, not the last one again
    assert figures[figures["jv_index"] == 2]["stress_time_s"].iloc[0] == pytest.approx(1200, abs=11)
    assert list(figures["segment"]) == [0, 0, 0, 0, 1, 1]
    t = hold["time_s"].to_numpy()
    assert np.all(np.diff(t) > 0) and t[-1] < 1800
    (gap,) = run.streams["interruptions"].itertuples()
    assert gap.kind == "gap" and gap.segment == 1 and gap.start_s == pytest.approx(t[69], abs=10)
    assert second.results["jv_scans"] == 3 and second.results["interruptions"] == 1
    np.testing.assert_allclose(figures["pce_pct"], PCE_PCT, rtol=3e-3)
