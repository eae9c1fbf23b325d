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
from pymeasure.experiment import BooleanParameter, FloatParameter, ListParameter, Parameter

from labctl.config import ConfigError
from labctl.storage import Column
from procedures.base import LabProcedure, StreamSpec, source_meter_limits

OPEN_CIRCUIT, SHORT_CIRCUIT = "oc", "sc"
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


class HoldProcedure(LabProcedure):
    """Hold a bias (open circuit, short circuit or a voltage) for a duration, sampling at an interval."""

    NAME = "hold"
    REQUIRES = ("smu",)
    OPTIONAL = ("shutter",)
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
    }

    bias = Parameter("Bias (oc = open circuit, I = 0; sc = short circuit, V = 0; or a voltage in V)", default="oc")
    bias.allowed = "oc, sc, or a voltage in V within the station's limits"  # what `labctl params hold` shows
    duration_h = FloatParameter("Duration", units="h", default=1.0, minimum=1e-4, maximum=10_000)
    interval_s = FloatParameter("Sampling interval", units="s", default=10.0, minimum=0.01, maximum=86_400)
    light = BooleanParameter("Light on during the hold", default=True)
    area_cm2 = FloatParameter("Aperture area", units="cm^2", default=0.049, minimum=1e-6, maximum=1000)
    compliance_A = FloatParameter("Current compliance (sc or a voltage bias)", units="A", default=0.01,
                                  minimum=1e-9, maximum=3.15)
    compliance_V = FloatParameter("Voltage compliance (oc)", units="V", default=1.5, minimum=0.02, maximum=210)
    nplc = FloatParameter("Integration time", units="PLC", default=1.0, minimum=0.01, maximum=10)
    polarity = ListParameter("Device polarity", choices=["n-i-p", "p-i-n"], default="n-i-p")

    #: the first reading to take (0 for a new run; set by :meth:`resume_from`) and the segment being written
    start_index: int = 0
    segment: int = 0

    # -- checks before anything is touched ----------------------------------------------------------------------
    def validate(self, station) -> None:  # noqa: ANN001 - Station, imported lazily to avoid a cycle
        super().validate(station)
        cfg = station.config.instruments["smu"]
        limits = source_meter_limits(station)
        driver, model, v_max, i_max, why = (limits.driver, limits.driver.limits, limits.voltage_max_V,
                                            limits.current_max_A, limits.why)
        try:
            bias = parse_bias(self.bias)
        except ValueError:
            raise ConfigError(f"parameter bias = {self.bias!r}: allowed oc (open circuit, I = 0), sc (short "
                              f"circuit, V = 0) or a voltage from {-v_max:g} to {v_max:g} V ({why})") from None
        if isinstance(bias, float):
            self.check_range("bias", bias, -v_max, v_max, f"V, {why}")
        if bias == OPEN_CIRCUIT:
            self.check_range("compliance_V", self.compliance_V, 0.02, v_max, why)
        else:
            self.check_range("compliance_A", self.compliance_A, getattr(driver, "compliance_min_A", 0.0), i_max,
                             why)
        self.check_range("nplc", self.nplc, *model.nplc_range, f"{cfg.driver} integration range")
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
        frame = streams.get(HOLD_STREAM)
        times = frame["time_s"].to_numpy() if frame is not None and len(frame) else np.empty(0)
        times = times[np.isfinite(times)]
        self.start_index = int(math.floor(times.max() / self.interval_s + 1e-6)) + 1 if times.size else 0
        self.segment = segment

    # -- the measurement ----------------------------------------------------------------------------------------
    @property
    def _sign(self) -> float:
        return -1.0 if self.polarity == "p-i-n" else 1.0

    def _set_light(self, on: bool) -> None:
        if "shutter" in self.station:
            shutter = self.station["shutter"]
            if on:
                shutter.open_shutter()
            else:
                shutter.close_shutter()
        else:
            self.station.set_light_without_shutter(on)

    def startup(self) -> None:
        smu = self.station["smu"]
        bias = parse_bias(self.bias)
        if bias == OPEN_CIRCUIT:
            smu.configure_current_source(compliance_V=self.compliance_V, nplc=self.nplc)
            smu.set_current(0.0)
            what = "open circuit (I = 0 A)"
        else:
            smu.configure_voltage_source(compliance_A=self.compliance_A, nplc=self.nplc)
            volts = 0.0 if bias == SHORT_CIRCUIT else float(bias)
            smu.set_voltage(self._sign * volts)
            what = "short circuit (V = 0 V)" if bias == SHORT_CIRCUIT else f"{volts:g} V"
        n = self.points()
        start = (f", resuming at reading {self.start_index + 1} of {n} (t = {self.start_index * self.interval_s:g} s)"
                 if self.start_index else "")
        self.log(f"hold at {what} for {self.duration_h:g} h, one reading every {self.interval_s:g} s ({n} readings), "
                 f"light {'on' if self.light else 'off'}{start}")
        if self.light and self.station.light_is_operator_controlled:
            self.log("no shutter in the station: light is controlled by the operator")

    def execute(self) -> None:
        smu = self.station["smu"]
        clock = self.station.clock
        n = self.points()
        self._set_light(self.light)
        smu.enable_output()
        interval_s, sign, segment = self.interval_s, self._sign, self.segment  # read once: the loop runs 10^5 times
        j_per_a = -sign / self.area_cm2 * 1e3  # mA/cm² per A of SMU current, photocurrent positive
        t0 = clock.now() - self.start_index * interval_s  # time held, continued across segments
        warned = False
        for k in range(self.start_index, n):
            remaining = t0 + k * interval_s - clock.now()
            if remaining > 0:
                self.wait(remaining)
            else:
                self.checkpoint()
            t_s = clock.now() - t0  # when the reading starts (it takes NPLC/f_line x 3 with auto-zero)
            data = smu.measure_point()
            v = sign * float(data.voltage_V[0])
            i_a = float(data.current_A[0])
            j = j_per_a * i_a
            compliance = bool(data.compliance[0])
            self.record(HOLD_STREAM, {"time_s": t_s, "voltage_V": v, "current_A": i_a, "j_mA_cm2": j,
                                      "power_mW_cm2": v * j, "compliance": int(compliance), "segment": segment})
            if compliance and not warned:
                warned = True
                self.log(f"WARNING: hold reading {k + 1} in compliance (V = {v:.4g} V, I = {i_a:.4g} A); raise "
                         f"{'compliance_V' if parse_bias(self.bias) == OPEN_CIRCUIT else 'compliance_A'}")
            self.progress((k + 1) / n)  # the engine sends a progress document every 0.1 %
        smu.disable_output()
        self._set_light(False)

    def shutdown(self) -> None:
        """Output off (the engine then applies the station's safe state)."""
        if "smu" in self.station:
            self.station["smu"].disable_output()

    # -- after the run ------------------------------------------------------------------------------------------
    def analyse(self, streams: Mapping[str, pd.DataFrame]) -> dict[str, Any]:
        """Rows, the time held and the first/last/mean/min/max of the held quantity: Voc (V) at open circuit,
        Jsc (mA/cm²) at short circuit, J (mA/cm²) and power (mW/cm²) at a voltage; readings in compliance are
        left out of the figures and counted."""
        frame = streams.get(HOLD_STREAM)
        rows = 0 if frame is None else len(frame)
        results: dict[str, Any] = {"rows": rows, "readings_planned": self.points()}
        if not rows:
            return results
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
        return results

    @classmethod
    def plot(cls, ax: Any, run: Any) -> str:
        """Draw a hold on ``ax`` (a matplotlib Axes): the held quantity against the time held in hours (Voc at open
        circuit, else J), one continuous run across its segments, a dashed line where each resumed segment
        starts. ``run``: a :class:`labctl.storage.RunData`. Returns the name for the title."""
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
        ax.set_xlabel("Time held (h)")
        ax.set_ylabel(label)
        return cls.NAME

