"""Maximum-power-point tracking of a solar cell for a long time: the ISOS-L stability run at MPP.

The tracker is a pure state machine (:mod:`labctl.analysis.mppt`, methods ref. §7.1): adaptive perturb-and-observe
(``perturb-observe``) or gradient ascent with momentum (``gradient-momentum``). Each step applies the tracker's
voltage, waits ``dwell_s`` on the station clock (for perovskites longer than the ionic response, seconds), takes
one reading and feeds the power density P = V·J (mW/cm², photocurrent-positive) back. The cell gets there without a
jump: its Voc is measured at I = 0, the voltage source switched in at that Voc, and the tracker's approach phase
ramps by at most ``ramp_step_V`` per step to the start of tracking: 0.8·Voc (``approach = from_voc``, a typical
Vmp/Voc: 0.936 V for set A of methods ref. §1.6, the start of the §7.1 worked table) or the Vmp of a J–V measured
first (``from_jv``).

Every step is one row of the ``mpp`` stream, with the tracker's whole state after the step as compact JSON
(``tracker_state``, fixed-width ASCII so that the column is compressed like the numbers): a resumed run
(``labctl resume FILE``, :meth:`MPPProcedure.resume_from`) continues with that state, from its saved voltage,
reached by a ramp from the measured Voc, never from 0 V. The periodic J–V, ISOS
fields, suspensions, recovery and figures are those of every stability run (:mod:`procedures.stability`); the
figures of an MPP run are those of its tracked PCE.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from pymeasure.experiment import FloatParameter, IntegerParameter, ListParameter

from labctl.analysis.mppt import ALGORITHMS, CONVERGED_STEP_FACTOR, Tracker, make_tracker, tracker_from_state
from labctl.config import ConfigError
from labctl.storage import Column, stream_columns, stream_rows
from procedures.base import StreamSpec, source_meter_limits
from procedures.stability import COMMON_STREAMS, JV_FIGURES, OPEN_CIRCUIT, StabilityProcedure

MPP_STREAM = "mpp"
FROM_VOC, FROM_JV = "from_voc", "from_jv"
APPROACH_FRACTION_OF_VOC = 0.8
"""``from_voc``: tracking starts at this fraction of the measured Voc (a typical Vmp/Voc of a good cell)."""
SETTLED_FRACTION = 0.1
"""The results' "settled" means are over the last this fraction of the tracking steps."""
TRACKER_STATE_CHARS = 640
"""Width of the ``tracker_state`` column (ASCII): the compact JSON of a state is ~430 characters, 560 at most with
every number at full precision and a 3-digit exponent. Fixed width so the column is compressed on disk."""
ANALYSIS_CHUNK_ROWS = 262_144
"""The ``mpp`` stream is read this many rows at a time after the run: the analysis of a 600 h run at 1 s holds two
float columns of it (16 bytes per step), not the whole stream."""


class MPPProcedure(StabilityProcedure):
    """Track the maximum power point for ``duration_h``, one reading every ``dwell_s``."""

    NAME = "mpp"
    PER_PIXEL = True  # `labctl run mpp --pixels ...`: one run per pixel of a substrate
    MAIN_STREAM = MPP_STREAM
    STREAMS = {
        MPP_STREAM: StreamSpec(
            [
                Column("time_s", "s"),
                Column("voltage_V", "V"),
                Column("current_A", "A"),
                Column("j_mA_cm2", "mA/cm^2"),
                Column("power_mW_cm2", "mW/cm^2"),
                Column("pce_pct", "%"),
                Column("step_V", "V"),
                Column("direction", "", "i4"),
                Column("phase", "", "S8"),
                Column("tracker_state", "", f"S{TRACKER_STATE_CHARS}"),
                Column("segment", "", "i4"),
                Column("compliance", "", "i1"),
            ],
            signal="power_mW_cm2",
            axes="time_s",
        ),
        **COMMON_STREAMS,
    }

    algorithm = ListParameter("MPP tracking algorithm", choices=list(ALGORITHMS), default="perturb-observe")
    dwell_s = FloatParameter("Dwell per tracking step (longer than the ionic response)", units="s", default=1.0,
                             minimum=0.01, maximum=3600)
    step_initial_V = FloatParameter("First perturbation", units="V", default=0.01, minimum=1e-5, maximum=0.5)
    step_min_V = FloatParameter("Smallest perturbation", units="V", default=0.001, minimum=1e-5, maximum=0.5)
    step_max_V = FloatParameter("Largest perturbation", units="V", default=0.05, minimum=1e-5, maximum=0.5)
    grow = FloatParameter("Step factor after a success (perturb-observe)", default=1.2, minimum=1.0, maximum=10)
    shrink = FloatParameter("Step factor on a reversal (perturb-observe)", default=0.5, minimum=0.01, maximum=1.0)
    approach = ListParameter("How Vmp is approached (a ramp from Voc to 0.8 Voc, or to the Vmp of a J-V first)",
                             choices=[FROM_VOC, FROM_JV], default=FROM_VOC)
    record_every = IntegerParameter("Record every n-th tracking step", default=1, minimum=1, maximum=100_000)
    stabilised_window_s = FloatParameter("Stabilised PCE, the window whose drift is judged", units="s", default=300.0,
                                         minimum=1, maximum=86_400)
    stabilised_max_drift_pct_h = FloatParameter("Stabilised PCE, largest drift over the window", units="%/h",
                                                default=1.0, minimum=0, maximum=100)

    _tracker: Tracker | None = None
    _resume_state: dict[str, Any] | None = None
    _jv_vmp: float | None = None
    _live_converged: bool = False

    # -- checks before anything is touched ----------------------------------------------------------------------
    def validate(self, station) -> None:  # noqa: ANN001 - Station, imported lazily to avoid a cycle
        if not self.light:
            raise ConfigError("parameter light = false: MPP tracking needs the light on; allowed: true")
        super().validate(station)
        if self.step_min_V > self.step_max_V:
            raise ConfigError(f"parameter step_min_V = {self.step_min_V:g}: above step_max_V = {self.step_max_V:g}; "
                              f"allowed up to {self.step_max_V:g} V")
        self.check_range("step_initial_V", self.step_initial_V, self.step_min_V, self.step_max_V,
                         "V, from step_min_V to step_max_V")
        limits = source_meter_limits(station)
        reading_s = limits.driver.reading_time_s(self.nplc, station.line_frequency_Hz())
        if self.dwell_s < reading_s:
            raise ConfigError(f"parameter dwell_s = {self.dwell_s:g}: shorter than one reading at nplc = "
                              f"{self.nplc:g} ({reading_s * 1e3:.1f} ms); allowed {reading_s:.3g} to 3600 s")
        if self.dwell_s > self.duration_h * 3600:
            raise ConfigError(f"parameter dwell_s = {self.dwell_s:g}: longer than duration_h = {self.duration_h:g} h; "
                              f"allowed up to {self.duration_h * 3600:g} s")
        if self.approach == FROM_JV and self.jv_interval_min <= 0:
            self.validate_jv(self.jv_procedure(), station)  # the J-V that gives Vmp

    def tracker_settings(self) -> dict[str, float]:
        """The tracker's settings: the run's parameters (not part of its saved state)."""
        return {"step_initial_V": self.step_initial_V, "step_min_V": self.step_min_V, "step_max_V": self.step_max_V,
                "grow": self.grow, "shrink": self.shrink, "ramp_step_V": self.ramp_step_V}

    # -- resuming -----------------------------------------------------------------------------------------------
    def resume_from(self, streams: Mapping[str, pd.DataFrame], segment: int) -> None:
        """Continue after the rows in the run file, the tracker from the state of the last ``mpp`` row."""
        super().resume_from(streams, segment)  # seeds the live figures from metric_series
        last = stream_columns(streams, MPP_STREAM, ["tracker_state"], slice(-1, None))
        if len(last):
            self._resume_state = json.loads(str(last["tracker_state"].iloc[0]))
            self._live_converged = bool(self._live_seed is not None and len(self._live_seed[0]))

    # -- the measurement ----------------------------------------------------------------------------------------
    def target_level(self) -> str | float:
        return OPEN_CIRCUIT if self._tracker is None else float(self._tracker.state.voltage_V)

    def startup(self) -> None:
        super().startup()
        self._tracker = self._jv_vmp = None
        where = (f", resuming at {self._resume_state['voltage_V']:.4f} V (t = {self.stress_offset_s:g} s)"
                 if self._resume_state else f", approach {self.approach}")
        self.log(f"MPP tracking ({self.algorithm}) for {self.duration_h:g} h, dwell {self.dwell_s:g} s, step "
                 f"{self.step_min_V:g} to {self.step_max_V:g} V{where}")

    def _first_tracker(self) -> Tracker:
        """A resumed run's tracker from its saved state, else a new one approaching Vmp from the measured Voc."""
        if self._resume_state is not None:
            return tracker_from_state(self._resume_state, **self.tracker_settings())
        target = None
        if self.approach == FROM_JV:
            if self._jv_vmp is None:
                self.run_jv()
            target = self._jv_vmp
        self.set_light(self.light)
        self.set_bias(OPEN_CIRCUIT)
        voc = self.read_point()[0]
        if target is None or not math.isfinite(target):
            target = APPROACH_FRACTION_OF_VOC * voc
        self.log(f"MPP approach: Voc = {voc:.4f} V, ramping to {target:.4f} V by {self.ramp_step_V:g} V per step")
        return make_tracker(self.algorithm, start_V=voc, target_V=target, **self.tracker_settings())

    def record(self, stream: str, row: Mapping[str, Any]) -> None:
        """As every procedure; the first J–V figures before tracking starts give the ``from_jv`` target (Vmp)."""
        if stream == JV_FIGURES and self._tracker is None and self._jv_vmp is None:
            vmp = float(row.get("vmp_V", math.nan))
            self._jv_vmp = vmp if math.isfinite(vmp) else None
        super().record(stream, row)

    def execute(self) -> None:
        self.start_stress_clock()
        self.set_light(self.light)
        self.maybe_jv()
        tracker = self._first_tracker()
        self._tracker = tracker
        self.set_bias(tracker.state.voltage_V)  # from the measured Voc, by a ramp
        if self._resume_state is not None:
            self.bias_reapplied()
        limits = source_meter_limits(self.station)
        v_low, v_high = -limits.voltage_max_V, limits.voltage_max_V
        end_s = self.duration_h * 3600.0
        sign, dwell_s, segment, every = self.sign, self.dwell_s, self.segment, self.record_every
        pce_per_mw = 1000.0 / self.irradiance_W_m2  # % per mW/cm² (1000 W/m² is 100 mW/cm²)
        step = 0
        while self.stress_time_s() < end_s:
            self.maybe_jv()
            v_set = min(max(float(tracker.state.voltage_V), v_low), v_high)
            self.smu_io(lambda smu, v=v_set: smu.set_voltage(sign * v), what="tracking step")
            self.wait(dwell_s)
            t_s = self.stress_time_s()
            v, i_a, j, compliance = self.read_point()
            power = v * j
            tracker.update(v_set, power)
            step += 1
            if step % every == 0 or self.stress_time_s() >= end_s:
                state = tracker.state
                self.record(MPP_STREAM, {
                    "time_s": t_s, "voltage_V": v, "current_A": i_a, "j_mA_cm2": j, "power_mW_cm2": power,
                    "pce_pct": power * pce_per_mw, "step_V": state.step_V, "direction": int(state.direction),
                    "phase": state.phase, "tracker_state": _state_json(state), "segment": segment,
                    "compliance": int(compliance)})
            self.progress(min(t_s / end_s, 1.0))
        self.smu_io(lambda smu: smu.disable_output(), what="output off")
        self.set_light(False)

    def bias_reapplied(self) -> None:
        """The tracker goes on from its voltage, its step and noise estimate kept, its last reading forgotten (it is
        from before the J–V, the suspension, the reconnection or the gap between segments)."""
        if self._tracker is not None:
            self._tracker.approach(self._tracker.state.voltage_V)

    # -- live figures -------------------------------------------------------------------------------------------
    def live_metric(self, stream: str, data: Mapping[str, Any]) -> float | None:
        """The tracked PCE (%), from the first step at which the tracker had converged (as :meth:`metric_series`)."""
        if stream != MPP_STREAM or data.get("pce_pct") is None or data.get("phase") != "track":
            return None
        if not self._live_converged:
            self._live_converged = float(data["step_V"]) <= CONVERGED_STEP_FACTOR * self.step_min_V * (1 + 1e-9)
        return float(data["pce_pct"]) if self._live_converged and not data.get("compliance") else None

    def status_extra(self) -> dict[str, Any]:
        extra = super().status_extra()
        if self._tracker is not None:
            extra["tracker"] = self._tracker.state.to_dict()
        return extra

    # -- after the run ------------------------------------------------------------------------------------------
    def _chunks(self, streams: Mapping[str, pd.DataFrame], columns: list[str]):  # noqa: ANN202 - a generator
        """(first row, DataFrame of ``columns``) of the ``mpp`` stream, ANALYSIS_CHUNK_ROWS rows at a time."""
        n = stream_rows(streams, MPP_STREAM)
        for start in range(0, n, ANALYSIS_CHUNK_ROWS):
            yield start, stream_columns(streams, MPP_STREAM, columns, slice(start, start + ANALYSIS_CHUNK_ROWS))

    def _converged(self, frame: pd.DataFrame) -> np.ndarray:
        return (frame["phase"] == "track").to_numpy() & (
            frame["step_V"].to_numpy(float) <= CONVERGED_STEP_FACTOR * self.step_min_V * (1 + 1e-9))

    def metric_series(self, streams: Mapping[str, pd.DataFrame]) -> tuple[np.ndarray, np.ndarray, str]:
        """The tracked PCE (%) against stress time (h), not in compliance, from the first tracking step at which the
        tracker had converged (its step at most ``CONVERGED_STEP_FACTOR`` × ``step_min_V``: "the first MPP reading
        after stabilisation", methods ref. §7.3), or from the first tracking step if it never did. Read in chunks of
        five columns; only the two float arrays returned grow with the run."""
        columns = ["time_s", "pce_pct", "phase", "step_V", "compliance"]
        first_converged = first_track = None
        for start, frame in self._chunks(streams, columns):
            if first_converged is None:
                hits = np.flatnonzero(self._converged(frame))
                first_converged = start + int(hits[0]) if hits.size else None
            if first_track is None:
                hits = np.flatnonzero((frame["phase"] == "track").to_numpy())
                first_track = start + int(hits[0]) if hits.size else None
            if first_converged is not None:
                break
        first = first_converged if first_converged is not None else first_track
        if first is None:
            return np.empty(0), np.empty(0), ""
        times, values = [], []
        for start, frame in self._chunks(streams, columns):
            if start + len(frame) <= first:
                continue
            rows = frame.iloc[max(0, first - start):]
            good = (rows["compliance"].to_numpy() == 0) & (rows["phase"] == "track").to_numpy()
            times.append(rows["time_s"].to_numpy(float)[good] / 3600.0)
            values.append(rows["pce_pct"].to_numpy(float)[good])
        return np.concatenate(times), np.concatenate(values), "pce_pct"

    def analyse(self, streams: Mapping[str, pd.DataFrame]) -> dict[str, Any]:
        """Steps, the settled tracking (means over the last 10 % of the tracking steps: voltage, power, PCE), the
        final tracker state, then the stability figures of the tracked PCE. The stream is read a few columns and
        ANALYSIS_CHUNK_ROWS rows at a time."""
        n = stream_rows(streams, MPP_STREAM)
        results: dict[str, Any] = {"steps": n}
        if n:
            in_compliance = track_rows = 0
            for _, frame in self._chunks(streams, ["phase", "compliance"]):
                in_compliance += int(frame["compliance"].sum())
                track_rows += int((frame["phase"] == "track").sum())
            results["points_in_compliance"] = in_compliance
            if track_rows:
                wanted = max(1, int(track_rows * SETTLED_FRACTION))
                tail, stop = [], n
                while wanted > 0 and stop > 0:  # the last `wanted` tracking rows, read backwards
                    start = max(0, stop - ANALYSIS_CHUNK_ROWS)
                    frame = stream_columns(streams, MPP_STREAM, ["phase", "voltage_V", "power_mW_cm2", "pce_pct"],
                                           slice(start, stop))
                    track = frame[frame["phase"] == "track"].iloc[-wanted:]
                    tail.append(track)
                    wanted -= len(track)
                    stop = start
                settled = pd.concat(tail)
                results["settled_voltage_V"] = float(settled["voltage_V"].mean())
                results["settled_power_mW_cm2"] = float(settled["power_mW_cm2"].mean())
                results["settled_pce_pct"] = float(settled["pce_pct"].mean())
            last = stream_columns(streams, MPP_STREAM, ["tracker_state"], slice(-1, None))
            results["final_tracker_voltage_V"] = float(json.loads(last["tracker_state"].iloc[0])["voltage_V"])
        results |= self.stabilised_pce(streams)
        return results | self.stability_results(streams)

    def stabilised_pce(self, streams: Mapping[str, pd.DataFrame]) -> dict[str, Any]:
        """The stabilised (steady-state) PCE: the mean tracked PCE over the first ``stabilised_window_s`` window
        whose drift is at most ``stabilised_max_drift_pct_h`` (labctl.analysis.stability.stabilised_value; stop on
        a drift criterion, not a fixed time — anchors ref. §4, NREL's calibration guidance), looked for from the
        converged tracker on, in half-window steps; None with the drift criterion never met."""
        from labctl.analysis.stability import stabilised_value

        t_h, pce, _ = self.metric_series(streams)
        out: dict[str, Any] = {"stabilised_pce_pct": None, "stabilised_at_h": None, "stabilised_drift_pct_h": None}
        if t_h.size < 2:
            return out
        t_s = t_h * 3600.0
        window, limit = self.stabilised_window_s, self.stabilised_max_drift_pct_h / 100.0
        end = t_s[0] + window
        while end <= t_s[-1] + 1e-9:
            lo = max(0, int(np.searchsorted(t_s, end - window, side="right")) - 1)  # the reading at or before the
            hi = int(np.searchsorted(t_s, end, side="left")) + 1  # start and the one at or after its end, so
            # that the readings span the whole window
            value, stable, drift = stabilised_value(t_s[lo:hi], pce[lo:hi], window_s=window, max_drift_per_h=limit)
            if stable:
                return {"stabilised_pce_pct": value, "stabilised_at_h": end / 3600.0,
                        "stabilised_drift_pct_h": 100.0 * drift}
            end += window / 2
        return out

    @classmethod
    def plot_main(cls, ax: Any, run: Any) -> None:
        """The tracked PCE while tracking (a line, at most ~5000 points drawn) on the PCE axis."""
        n = stream_rows(run.streams, MPP_STREAM)
        if not n:
            return
        frame = stream_columns(run.streams, MPP_STREAM, ["time_s", "pce_pct", "phase"])  # three columns, not all
        frame = frame[frame["phase"] == "track"]  # not the approach ramp from Voc (PCE near 0 there)
        stride = max(1, len(frame) // 5000)
        ax.plot(frame["time_s"].to_numpy()[::stride] / 3600.0, frame["pce_pct"].to_numpy()[::stride], lw=0.8,
                color="0.2", label="tracked")


def _state_json(state: Any) -> str:
    """The tracker's state as the compact ASCII JSON of the ``tracker_state`` column."""
    return json.dumps(state.to_dict(), separators=(",", ":"))
