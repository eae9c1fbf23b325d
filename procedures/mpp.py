"""Maximum-power-point tracking of a solar cell for a long time: the ISOS-L stability run at MPP.

The tracker is a pure state machine (:mod:`labctl.analysis.mppt`, methods ref. §7.1): adaptive perturb-and-observe
(``perturb-observe``) or gradient ascent with momentum (``gradient-momentum``). Each step applies the tracker's
voltage, waits ``dwell_s`` on the station clock (for perovskites longer than the ionic response, seconds), takes
one reading and feeds the power density P = V·J (mW/cm², photocurrent-positive) back. The cell gets there without a
jump: its Voc is measured at I = 0, the voltage source switched in at that Voc, and the tracker's approach phase
ramps by at most ``ramp_step_V`` per step to the start of tracking: 0.8·Voc (``approach = from_voc``, a typical
Vmp/Voc: 0.936 V for set A of methods ref. §1.6, the start of the §7.1 worked table) or the Vmp of a J–V measured
first (``from_jv``).

Every step is one row of the ``mpp`` stream, with the tracker's whole state after the step as JSON
(``tracker_state``): a resumed run (``labctl resume FILE``, :meth:`MPPProcedure.resume_from`) continues with that
state, from its saved voltage, reached by a ramp from the measured Voc, never from 0 V. The periodic J–V, ISOS
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
from labctl.storage import Column
from procedures.base import StreamSpec, source_meter_limits
from procedures.stability import COMMON_STREAMS, JV_FIGURES, OPEN_CIRCUIT, StabilityProcedure

MPP_STREAM = "mpp"
FROM_VOC, FROM_JV = "from_voc", "from_jv"
APPROACH_FRACTION_OF_VOC = 0.8
"""``from_voc``: tracking starts at this fraction of the measured Voc (a typical Vmp/Voc of a good cell)."""
SETTLED_FRACTION = 0.1
"""The results' "settled" means are over the last this fraction of the tracking steps."""


class MPPProcedure(StabilityProcedure):
    """Track the maximum power point for ``duration_h``, one reading every ``dwell_s``."""

    NAME = "mpp"
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
                Column("phase", "", "str"),
                Column("tracker_state", "", "str"),
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
        super().resume_from(streams, segment)
        frame = streams.get(MPP_STREAM)
        if frame is not None and len(frame):
            self._resume_state = json.loads(str(frame["tracker_state"].iloc[-1]))
            self._live_converged = bool(self.metric_series(streams)[0].size)

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
                    "phase": state.phase, "tracker_state": json.dumps(state.to_dict()), "segment": segment,
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
    def metric_series(self, streams: Mapping[str, pd.DataFrame]) -> tuple[np.ndarray, np.ndarray, str]:
        """The tracked PCE (%) against stress time (h), not in compliance, from the first tracking step at which the
        tracker had converged (its step at most ``CONVERGED_STEP_FACTOR`` × ``step_min_V``: "the first MPP reading
        after stabilisation", methods ref. §7.3), or from the first tracking step if it never did."""
        frame = streams.get(MPP_STREAM)
        if frame is None or not len(frame):
            return np.empty(0), np.empty(0), ""
        track = (frame["phase"] == "track").to_numpy()
        converged = track & (frame["step_V"].to_numpy(float) <= CONVERGED_STEP_FACTOR * self.step_min_V * (1 + 1e-9))
        first = np.flatnonzero(converged if converged.any() else track)
        if not first.size:
            return np.empty(0), np.empty(0), ""
        rows = frame.iloc[first[0]:]
        good = rows[(rows["compliance"] == 0) & (rows["phase"] == "track")]
        return good["time_s"].to_numpy(float) / 3600.0, good["pce_pct"].to_numpy(float), "pce_pct"

    def analyse(self, streams: Mapping[str, pd.DataFrame]) -> dict[str, Any]:
        """Steps, the settled tracking (means over the last 10 % of the tracking steps: voltage, power, PCE), the
        final tracker state, then the stability figures of the tracked PCE."""
        frame = streams.get(MPP_STREAM)
        results: dict[str, Any] = {"steps": 0 if frame is None else int(len(frame))}
        if frame is not None and len(frame):
            track = frame[frame["phase"] == "track"]
            results["points_in_compliance"] = int(frame["compliance"].sum())
            if len(track):
                tail = track.iloc[-max(1, int(len(track) * SETTLED_FRACTION)):]
                results["settled_voltage_V"] = float(tail["voltage_V"].mean())
                results["settled_power_mW_cm2"] = float(tail["power_mW_cm2"].mean())
                results["settled_pce_pct"] = float(tail["pce_pct"].mean())
            results["final_tracker_voltage_V"] = float(json.loads(frame["tracker_state"].iloc[-1])["voltage_V"])
        return results | self.stability_results(streams)

    @classmethod
    def plot_main(cls, ax: Any, run: Any) -> None:
        """The tracked PCE (a line, at most ~5000 points drawn) on the PCE axis."""
        frame = run.streams.get(MPP_STREAM)
        if frame is None or frame.empty:
            return
        stride = max(1, len(frame) // 5000)
        ax.plot(frame["time_s"].to_numpy()[::stride] / 3600.0, frame["pce_pct"].to_numpy()[::stride], lw=0.8,
                color="0.2", label="tracked")
