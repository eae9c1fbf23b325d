"""Hold a solar cell at one bias for a long time and sample it: the stability run (ISOS-style light soaking).

``bias`` is ``oc`` (open circuit: the SMU sources I = 0 A and reads the voltage, Voc), ``sc`` (short circuit:
V = 0, the current is Jsc) or a voltage (V, device voltage, e.g. near the maximum power point). The cell is held
there for ``duration_h`` with the light on (or off), and one reading is taken every ``interval_s`` on the
station clock: at t = 0, interval_s, 2·interval_s, ... while t < duration_h (so 600 h at 10 s is 216,000 rows).

A hold that was interrupted (the process killed, the computer restarted) is continued by ``labctl resume FILE``:
the run file gets a new segment and the hold goes on from the reading after the last one in the file
(:meth:`HoldProcedure.resume_from`); ``time_s`` is the time held at the bias, so the gap (recorded with the
segments of the file) is not counted in it.

Sign conventions as in ``procedures.jv``: device voltage (anode − cathode), the SMU programmed with −V for
``polarity = p-i-n``; current density photocurrent-positive, J = −I/A (mA/cm²).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from pymeasure.experiment import FloatParameter, Parameter

from labctl.config import ConfigError
from labctl.storage import Column
from procedures.base import StreamSpec, source_meter_limits
from procedures.stability import (
    COMMON_STREAMS,
    JV_FIGURES,
    OPEN_CIRCUIT,
    SHORT_CIRCUIT,
    StabilityProcedure,
    shade_interruptions,
)

HOLD_STREAM = "hold"


def parse_bias(text: str) -> str | float:
    """``"oc"``, ``"sc"`` or the bias voltage (V) from the ``bias`` parameter's text; ValueError otherwise."""
    word = str(text).strip().lower()
    if word in (OPEN_CIRCUIT, SHORT_CIRCUIT):
        return word
    value = float(word)  # ValueError for anything else
    if not math.isfinite(value):
        raise ValueError(text)
    return value


class HoldProcedure(StabilityProcedure):
    """Hold a bias (open circuit, short circuit or a voltage) for a duration, sampling at an interval."""

    NAME = "hold"
    PER_PIXEL = True  # `labctl run hold --pixels ...`: one run per pixel of a substrate
    MAIN_STREAM = HOLD_STREAM
    STREAMS = {
        HOLD_STREAM: StreamSpec(
            [
                Column("time_s", "s"),
                Column("voltage_V", "V"),
                Column("current_A", "A"),
                Column("j_mA_cm2", "mA/cm^2"),
                Column("power_mW_cm2", "mW/cm^2"),
                Column("compliance", "", "i1"),
                Column("segment", "", "i4"),
            ],
            signal="j_mA_cm2",
            axes="time_s",
        ),
        **COMMON_STREAMS,
    }

    bias = Parameter("Bias (oc = open circuit, I = 0; sc = short circuit, V = 0; or a voltage in V)", default="oc")
    bias.allowed = "oc, sc, or a voltage in V within the station's limits"  # what `labctl params hold` shows
    interval_s = FloatParameter("Sampling interval", units="s", default=10.0, minimum=0.01, maximum=86_400)

    #: the first reading to take (0 for a new run; set by :meth:`resume_from`)
    start_index: int = 0

    # -- checks before anything is touched ----------------------------------------------------------------------
    def validate(self, station) -> None:  # noqa: ANN001 - Station, imported lazily to avoid a cycle
        limits = source_meter_limits(station)
        driver, v_max, why = limits.driver, limits.voltage_max_V, limits.why
        try:
            bias = parse_bias(self.bias)
        except ValueError:
            raise ConfigError(f"parameter bias = {self.bias!r}: allowed oc (open circuit, I = 0), sc (short "
                              f"circuit, V = 0) or a voltage from {-v_max:g} to {v_max:g} V ({why})") from None
        if isinstance(bias, float):
            self.check_range("bias", bias, -v_max, v_max, f"V, {why}")
        super().validate(station)
        reading_s = driver.reading_time_s(self.nplc, station.line_frequency_Hz())
        if self.interval_s < reading_s:
            raise ConfigError(f"parameter interval_s = {self.interval_s:g}: shorter than one reading at nplc = "
                              f"{self.nplc:g} ({reading_s * 1e3:.1f} ms); allowed {reading_s:.3g} to "
                              f"{self.duration_h * 3600:g} s")
        if self.interval_s > self.duration_h * 3600:
            raise ConfigError(f"parameter interval_s = {self.interval_s:g}: longer than duration_h = "
                              f"{self.duration_h:g} h ({self.duration_h * 3600:g} s); allowed up to "
                              f"{self.duration_h * 3600:g} s")

    def points(self) -> int:
        """Readings in the whole hold: at k·interval_s for k = 0, 1, ... while k·interval_s < duration."""
        return max(1, math.ceil(self.duration_h * 3600 / self.interval_s - 1e-9))

    # -- resuming -----------------------------------------------------------------------------------------------
    def resume_from(self, streams: Mapping[str, pd.DataFrame], segment: int) -> None:
        """Continue after the rows already in the run file: the next reading is the one after the last
        ``time_s`` stored (readings are due at k·interval_s). ``segment``: index of the new segment."""
        super().resume_from(streams, segment)
        frame = streams.get(HOLD_STREAM)
        times = frame["time_s"].to_numpy() if frame is not None and len(frame) else np.empty(0)
        times = times[np.isfinite(times)]
        self.start_index = int(math.floor(times.max() / self.interval_s + 1e-6)) + 1 if times.size else 0
        self.stress_offset_s = max(self.stress_offset_s, self.start_index * self.interval_s)

    # -- the measurement ----------------------------------------------------------------------------------------
    def target_level(self) -> str | float:
        bias = parse_bias(self.bias)
        return 0.0 if bias == SHORT_CIRCUIT else bias

    def startup(self) -> None:
        super().startup()
        bias = parse_bias(self.bias)
        what = {OPEN_CIRCUIT: "open circuit (I = 0 A)", SHORT_CIRCUIT: "short circuit (V = 0 V)"}.get(
            str(bias), f"{bias} V")
        n = self.points()
        start = (f", resuming at reading {self.start_index + 1} of {n} (t = {self.start_index * self.interval_s:g} s)"
                 if self.start_index else "")
        jv = f", J-V every {self.jv_interval_min:g} min" if self.jv_interval_min > 0 else ""
        self.log(f"hold at {what} for {self.duration_h:g} h, one reading every {self.interval_s:g} s ({n} readings), "
                 f"light {'on' if self.light else 'off'}{jv}{start}")

    def execute(self) -> None:
        n = self.points()
        self.set_light(self.light)
        self.set_bias(self.target_level())
        interval_s, segment = self.interval_s, self.segment  # read once: the loop runs 10^5 times
        self.start_stress_clock(self.start_index * interval_s)  # time held, continued across segments
        warned = False
        k = self.start_index
        while k < n:
            self.maybe_jv()
            if self.skip_missed:  # after a J-V or a suspension: the next slot from now, no burst of late readings
                self.skip_missed = False
                k = max(k, math.ceil(self.stress_time_s() / interval_s - 1e-9))
                if k >= n:
                    break
            remaining = k * interval_s - self.stress_time_s()
            if remaining > 0:
                self.wait(remaining)
            else:
                self.checkpoint()
            if self.skip_missed:
                continue
            t_s = self.stress_time_s()  # when the reading starts (it takes NPLC/f_line x 3 with auto-zero)
            v, i_a, j, compliance = self.read_point()
            self.record(HOLD_STREAM, {"time_s": t_s, "voltage_V": v, "current_A": i_a, "j_mA_cm2": j,
                                      "power_mW_cm2": v * j, "compliance": int(compliance), "segment": segment})
            if compliance and not warned:
                warned = True
                self.log(f"WARNING: hold reading {k + 1} in compliance (V = {v:.4g} V, I = {i_a:.4g} A); raise "
                         f"{'compliance_V' if parse_bias(self.bias) == OPEN_CIRCUIT else 'compliance_A'}")
            k += 1
            self.progress(k / n)  # the engine sends a progress document every 0.1 %
        self.smu_io(lambda smu: smu.disable_output(), what="output off")
        self.set_light(False)

    # -- after the run ------------------------------------------------------------------------------------------
    def analyse(self, streams: Mapping[str, pd.DataFrame]) -> dict[str, Any]:
        """Rows, the time held and the first/last/mean/min/max of the held quantity: Voc (V) at open circuit,
        Jsc (mA/cm²) at short circuit, J (mA/cm²) and power (mW/cm²) at a voltage; readings in compliance are
        left out of the figures and counted. Then the stability figures (:meth:`StabilityProcedure.
        stability_results`): of the periodic J–V's PCE when there is one, else of the held quantity."""
        frame = streams.get(HOLD_STREAM)
        rows = 0 if frame is None else len(frame)
        results: dict[str, Any] = {"rows": rows, "readings_planned": self.points()}
        if not rows:
            return results | self.stability_results(streams)
        good = frame[frame["compliance"] == 0]
        results["points_in_compliance"] = int(rows - len(good))
        results["time_held_s"] = float(frame["time_s"].max())
        bias = parse_bias(self.bias)
        held = {OPEN_CIRCUIT: [("voc", "voltage_V", "V")], SHORT_CIRCUIT: [("jsc", "j_mA_cm2", "mA_cm2")]}.get(
            bias, [("j", "j_mA_cm2", "mA_cm2"), ("power", "power_mW_cm2", "mW_cm2")])
        for name, column, unit in held:
            values = good[column].to_numpy()
            if not values.size:
                continue
            for stat, value in (("initial", values[0]), ("final", values[-1]), ("mean", values.mean()),
                                ("min", values.min()), ("max", values.max())):
                results[f"{name}_{stat}_{unit}"] = float(value)
            if values[0] != 0:
                results[f"{name}_final_over_initial"] = float(values[-1] / values[0])
        return results | self.stability_results(streams)

    def metric_series(self, streams: Mapping[str, pd.DataFrame]) -> tuple[np.ndarray, np.ndarray, str]:
        """The periodic J–V's PCE when there is one, else the held quantity (Voc at open circuit, Jsc at short
        circuit, the power at a voltage; readings in compliance left out) against stress time (h)."""
        t_h, values, name = super().metric_series(streams)
        frame = streams.get(HOLD_STREAM)
        if name or frame is None or not len(frame):
            return t_h, values, name
        good = frame[frame["compliance"] == 0]
        column = {OPEN_CIRCUIT: "voltage_V", SHORT_CIRCUIT: "j_mA_cm2"}.get(parse_bias(self.bias), "power_mW_cm2")
        return good["time_s"].to_numpy(float) / 3600.0, good[column].to_numpy(float), column

    @classmethod
    def plot(cls, ax: Any, run: Any) -> str:
        """Draw a hold on ``ax`` (a matplotlib Axes): the held quantity against the time held in hours (Voc at open
        circuit, else J), one continuous run across its segments, a dashed line where each resumed segment
        starts. ``run``: a :class:`labctl.storage.RunData`. Returns the name for the title. A hold with periodic
        J–V is drawn as every stability run (:meth:`StabilityProcedure.plot`: PCE, Voc, Jsc, FF)."""
        from procedures.plots import has_rows

        if has_rows(run, JV_FIGURES):
            return super().plot(ax, run)
        data = run.streams[HOLD_STREAM]
        oc = str(run.parameters.get("bias", "")).strip().lower() == OPEN_CIRCUIT
        column, label = ("voltage_V", "Voltage (V), open circuit") if oc else (
            "j_mA_cm2", "Current density (mA/cm²), photocurrent positive")
        hours = data["time_s"].to_numpy() / 3600.0
        ax.plot(hours, data[column].to_numpy(), lw=1)
        for seg in run.segments[1:]:
            first = seg.get("first_rows", {}).get(HOLD_STREAM)
            if first is not None and first < len(hours):
                ax.axvline(hours[first], color="0.4", lw=0.8, ls="--")
                ax.text(hours[first], 0.98, f" segment {seg['index']}", transform=ax.get_xaxis_transform(),
                        fontsize=7, va="top")
        shade_interruptions(ax, run, gaps=False)  # the segments are marked above
        ax.set_xlabel("Time held (h)")
        ax.set_ylabel(label)
        return cls.NAME

