"""Current density–voltage (J–V) measurement of a solar cell.

Two modes:

* ``staircase`` — the source-meter's built-in sweep (all points from one read), per direction, at the
  requested scan rate: delay per point = step / rate − the instrument's time per reading (methods ref. §1.2).
* ``qss`` — quasi-steady-state points as in certified measurements (NREL asymptotic Pmax / JRC protocol,
  methods ref. §1.3): hold each bias until |J(t) − J(t − W)| / |J(t)| < ε, or until ``qss_max_s``, which
  flags the point as not converged. Order: stabilise at Vmp, step towards 0 V, then from Vmp towards Voc.

Voltages are device voltages (anode minus cathode). The fixture connects the same contact to the SMU HI
terminal whatever the stack, so for ``polarity = n-i-p`` the anode is on HI, and for ``p-i-n`` it is on LO: the
SMU is then programmed with −V and the current sign is flipped.
Current density is photocurrent-positive: J = −I/A (mA/cm²).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from pymeasure.experiment import BooleanParameter, FloatParameter, IntegerParameter, ListParameter

from labctl.analysis.hysteresis import hysteresis_indices
from labctl.analysis.jv import figures_of_merit
from labctl.config import ConfigError
from labctl.storage import Column
from procedures.base import LabProcedure, StreamSpec

REVERSE, FORWARD = 0, 1
DIRECTION_NAMES = {REVERSE: "reverse", FORWARD: "forward"}
ORDERS = {
    "reverse": (REVERSE,),
    "forward": (FORWARD,),
    "reverse-forward": (REVERSE, FORWARD),
    "forward-reverse": (FORWARD, REVERSE),
}


class JVProcedure(LabProcedure):
    """J–V sweep (staircase or quasi-steady-state) under light or in the dark."""

    NAME = "jv"
    REQUIRES = ("smu",)
    OPTIONAL = ("shutter",)
    STREAMS = {
        "jv": StreamSpec(
            [
                Column("time_s", "s"),
                Column("voltage_V", "V"),
                Column("j_mA_cm2", "mA/cm^2"),
                Column("current_A", "A"),
                Column("scan", "", "i4"),
                Column("direction", "", "i4"),
                Column("compliance", "", "i1"),
                Column("converged", "", "i1"),
                Column("settle_time_s", "s"),
            ],
            signal="j_mA_cm2",
            axes="voltage_V",
        ),
        "qss_trace": StreamSpec(
            [Column("time_s", "s"), Column("voltage_V", "V"), Column("j_mA_cm2", "mA/cm^2"), Column("point", "", "i4")],
            signal="j_mA_cm2",
            axes="time_s",
        ),
    }

    mode = ListParameter("Mode", choices=["staircase", "qss"], default="staircase")
    start_V = FloatParameter("Forward-scan start voltage", units="V", default=-0.1, minimum=-210, maximum=210)
    stop_V = FloatParameter("Forward-scan stop voltage", units="V", default=1.3, minimum=-210, maximum=210)
    step_V = FloatParameter("Voltage step", units="V", default=0.01, minimum=1e-5, maximum=10)
    scan_rate_V_s = FloatParameter(
        "Scan rate (0 = use the delay per point)", units="V/s", default=0.1, minimum=0, maximum=1000
    )
    delay_s = FloatParameter("Delay per point (when scan rate is 0)", units="s", default=0.1, minimum=0, maximum=999)
    nplc = FloatParameter("Integration time", units="PLC", default=1.0, minimum=0.01, maximum=10)
    compliance_A = FloatParameter("Current compliance", units="A", default=0.01, minimum=1e-9, maximum=3.15)
    direction = ListParameter("Direction and order", choices=list(ORDERS), default="reverse-forward")
    precondition_V = FloatParameter("Preconditioning bias", units="V", default=1.3, minimum=-210, maximum=210)
    precondition_s = FloatParameter("Preconditioning time (0 = none)", units="s", default=0.0, minimum=0, maximum=1e5)
    precondition_light = BooleanParameter("Light on during preconditioning", default=True)
    area_cm2 = FloatParameter("Aperture area", units="cm^2", default=0.049, minimum=1e-6, maximum=1000)
    irradiance_W_m2 = FloatParameter("Irradiance", units="W/m^2", default=1000.0, minimum=0, maximum=5000)
    mismatch = FloatParameter("Spectral mismatch factor M", units="", default=1.0, minimum=0.5, maximum=2.0)
    polarity = ListParameter("Device polarity", choices=["n-i-p", "p-i-n"], default="n-i-p")
    light = BooleanParameter("Light (false = dark J-V)", default=True)
    four_wire = BooleanParameter("4-wire sensing", default=False)
    qss_points = IntegerParameter("QSS bias points", default=12, minimum=4, maximum=100)
    qss_epsilon = FloatParameter("QSS stability |dJ/J| over the window", units="", default=0.001, minimum=1e-6,
                                 maximum=0.5)
    qss_window_s = FloatParameter("QSS stability window", units="s", default=10.0, minimum=0.01, maximum=1e4)
    qss_interval_s = FloatParameter("QSS sampling interval", units="s", default=1.0, minimum=0.001, maximum=1e3)
    qss_max_s = FloatParameter("QSS time limit per point", units="s", default=120.0, minimum=0.01, maximum=1e5)

    # -- checks before anything is touched ----------------------------------------------------------------------
    def validate(self, station) -> None:  # noqa: ANN001 - Station, imported lazily to avoid a cycle
        super().validate(station)
        cfg = station.config.instruments["smu"]
        from drivers import REGISTRY

        model = REGISTRY[cfg.driver].limits
        v_max = min(cfg.limits.voltage_V, model.voltage_max_V) if cfg.limits else model.voltage_max_V
        i_max = min(cfg.limits.current_A, model.current_max_A) if cfg.limits else model.current_max_A
        why = f"station limit of instrument 'smu' ({cfg.driver})"
        for name in ("start_V", "stop_V", "precondition_V"):
            self.check_range(name, getattr(self, name), -v_max, v_max, why)
        self.check_range("compliance_A", self.compliance_A, 0.0, i_max, why)
        self.check_range("nplc", self.nplc, *model.nplc_range, f"{cfg.driver} integration range")
        if self.stop_V <= self.start_V:
            raise ConfigError(f"parameter stop_V = {self.stop_V}: must be above start_V = {self.start_V}")
        points = self.points_per_scan()
        if points < 3 or points > model.max_sweep_points:
            raise ConfigError(
                f"parameter step_V = {self.step_V}: gives {points} points per scan; "
                f"allowed 3 to {model.max_sweep_points} for a {cfg.driver}"
            )
        if self.mode == "staircase" and self.scan_rate_V_s > 0:
            # line frequency: the simulated bench's, else the worst case (50 Hz: the longer PLC)
            sim = station.config.simulation
            f_line = sim.line_frequency_Hz if station.simulated else 50.0
            reading_s = REGISTRY[cfg.driver].reading_time_s(self.nplc, f_line)
            max_rate = self.step_V / reading_s
            if self.scan_rate_V_s > max_rate:
                raise ConfigError(
                    f"parameter scan_rate_V_s = {self.scan_rate_V_s}: too fast for step_V = {self.step_V} at "
                    f"nplc = {self.nplc} (one reading takes {reading_s * 1e3:.2f} ms); allowed 0 to {max_rate:.4g} V/s"
                )
            per_point = self.step_V / self.scan_rate_V_s
            self.check_range("step_V / scan_rate_V_s", per_point, 0, model.source_delay_max_s, "source delay")

    def points_per_scan(self) -> int:
        return int(round((self.stop_V - self.start_V) / self.step_V)) + 1

    # -- helpers ------------------------------------------------------------------------------------------------
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
        elif self.station.simulated:
            self.station.bench.light.shutter_open = on

    def _j_mA_cm2(self, current_A: np.ndarray) -> np.ndarray:
        """Photocurrent-positive current density (mA/cm²) from the SMU current (A)."""
        return -self._sign * np.asarray(current_A) / self.area_cm2 * 1e3

    def _source_delay_s(self, smu: Any) -> float:
        if self.scan_rate_V_s <= 0:
            return self.delay_s
        per_point = self.step_V / self.scan_rate_V_s
        delay = per_point - smu.measurement_time_s(self.nplc, 0.0)
        if delay < 0:
            raise ConfigError(
                f"parameter scan_rate_V_s = {self.scan_rate_V_s}: too fast for step_V = {self.step_V} at "
                f"nplc = {self.nplc} (one reading takes {smu.measurement_time_s(self.nplc, 0.0):.4f} s); "
                f"allowed up to {self.step_V / smu.measurement_time_s(self.nplc, 0.0):.4g} V/s"
            )
        return delay

    # -- the measurement ----------------------------------------------------------------------------------------
    def startup(self) -> None:
        smu = self.station["smu"]
        self._delay_s = self._source_delay_s(smu) if self.mode == "staircase" else 0.0
        smu.configure_voltage_source(
            compliance_A=self.compliance_A, nplc=self.nplc, four_wire=self.four_wire, source_delay_s=self._delay_s
        )
        self.log(
            f"J-V {self.mode}, {self.direction}, {self.points_per_scan()} points/scan, "
            f"source delay {self._delay_s:.4f} s, light {'on' if self.light else 'off'}"
        )
        if self.light and "shutter" not in self.station and not self.station.simulated:
            self.log("no shutter in the station: light is controlled by the operator")

    def execute(self) -> None:
        smu = self.station["smu"]
        self.t0 = self.station.clock.now()
        if self.precondition_s > 0:
            self._set_light(self.precondition_light)
            smu.set_voltage(self._sign * self.precondition_V)
            smu.enable_output()
            self.log(f"preconditioning at {self.precondition_V} V for {self.precondition_s} s")
            self.wait(self.precondition_s)
        self._set_light(self.light)
        if self.mode == "staircase":
            self._staircase(smu)
        else:
            self._qss(smu)
        smu.disable_output()
        self._set_light(False)
        self.progress(1.0)

    def _staircase(self, smu: Any) -> None:
        order = ORDERS[self.direction]
        n = self.points_per_scan()
        for scan, direction in enumerate(order):
            self.check_abort()
            start, stop = (self.stop_V, self.start_V) if direction == REVERSE else (self.start_V, self.stop_V)
            t_start = self.station.clock.now() - self.t0
            data = smu.sweep_voltage(self._sign * start, self._sign * stop, n, self._delay_s)
            j = self._j_mA_cm2(data.current_A)
            for k in range(len(j)):
                self.record(
                    "jv",
                    {
                        "time_s": t_start + float(data.time_s[k]),
                        "voltage_V": self._sign * float(data.voltage_V[k]),
                        "j_mA_cm2": float(j[k]),
                        "current_A": float(data.current_A[k]),
                        "scan": scan,
                        "direction": direction,
                        "compliance": int(bool(data.compliance[k])),
                        "converged": 1,
                        "settle_time_s": self._delay_s,
                    },
                )
            self.progress((scan + 1) / len(order))

    # QSS ---------------------------------------------------------------------------------------------------
    def _read_j(self, smu: Any) -> tuple[float, float]:
        data = smu.measure_point()
        return float(self._j_mA_cm2(data.current_A)[0]), float(data.current_A[0])

    def _qss_voltages(self, smu: Any) -> tuple[list[float], list[float]]:
        """Bias points from a coarse pre-scan: (from Vmp down to start_V, from above Vmp up to 1.05·Voc)."""
        pre = smu.sweep_voltage(self._sign * self.stop_V, self._sign * self.start_V,
                                max(int(round((self.stop_V - self.start_V) / 0.05)) + 1, 5), 0.0)
        v = self._sign * np.asarray(pre.voltage_V)
        j = self._j_mA_cm2(pre.current_A)
        fom = figures_of_merit(v, j)
        voc = fom.voc_V if math.isfinite(fom.voc_V) else self.stop_V
        vmp = fom.vmp_V if math.isfinite(fom.vmp_V) else 0.8 * voc
        self.log(f"QSS pre-scan: Voc ≈ {voc:.3f} V, Vmp ≈ {vmp:.3f} V")
        v_top = min(1.05 * voc, self.stop_V)
        v_low = max(0.0, self.start_V)
        n = self.qss_points
        n_near = max(n // 2, 3)  # half the points within ±12 % of Vmp
        near = np.linspace(0.88 * vmp, min(1.12 * vmp, v_top), n_near)
        rest = n - n_near
        below = np.linspace(v_low, 0.88 * vmp, rest // 2 + 1)[:-1]
        above = np.linspace(min(1.12 * vmp, v_top), v_top, rest - rest // 2 + 1)[1:]
        grid = np.unique(np.round(np.concatenate([below, near, above]), 6))
        down = sorted((x for x in grid if x <= vmp), reverse=True)
        up = sorted(x for x in grid if x > vmp)
        return [float(x) for x in down], [float(x) for x in up]

    def _qss(self, smu: Any) -> None:
        smu.set_voltage(self._sign * self.start_V)
        smu.enable_output()
        down, up = self._qss_voltages(smu)
        total = len(down) + len(up)
        clock = self.station.clock
        for index, v in enumerate(down + up):
            self.check_abort()
            smu.set_voltage(self._sign * v)
            t_bias = clock.now()
            history: list[tuple[float, float]] = []
            converged = False
            while True:
                j, i_a = self._read_j(smu)
                t = clock.now() - t_bias
                history.append((t, j))
                self.record("qss_trace", {"time_s": clock.now() - self.t0, "voltage_V": v, "j_mA_cm2": j,
                                          "point": index})
                past = [jj for tt, jj in history if tt <= t - self.qss_window_s]
                if past and abs(j - past[-1]) <= self.qss_epsilon * max(abs(j), 1e-9):
                    converged = True
                    break
                if t >= self.qss_max_s:
                    break
                self.wait(self.qss_interval_s)
            if not converged:
                self.log(f"QSS point {v:.4f} V not converged after {t:.1f} s")
            self.record(
                "jv",
                {
                    "time_s": clock.now() - self.t0,
                    "voltage_V": v,
                    "j_mA_cm2": j,
                    "current_A": i_a,
                    "scan": 0,
                    "direction": FORWARD,
                    "compliance": 0,
                    "converged": int(converged),
                    "settle_time_s": t,
                },
            )
            self.progress((index + 1) / total)

    def shutdown(self) -> None:
        """Nothing beyond the engine's safe state (output off, shutter closed)."""

    # -- analysis -----------------------------------------------------------------------------------------------
    def analyse(self, streams: Mapping[str, pd.DataFrame]) -> dict[str, Any]:
        return analyse_jv(
            streams.get("jv", pd.DataFrame()),
            irradiance_W_m2=self.irradiance_W_m2,
            mismatch=self.mismatch,
            light=self.light,
            mode=self.mode,
        )


def analyse_jv(
    data: pd.DataFrame, irradiance_W_m2: float, mismatch: float, light: bool, mode: str
) -> dict[str, Any]:
    """Figures of merit per direction and, for a reverse+forward pair, the hysteresis indices."""
    results: dict[str, Any] = {}
    if data.empty or not light:
        return results
    curves = {}
    for direction, group in data.groupby("direction"):
        name = DIRECTION_NAMES[int(direction)]
        if mode == "qss":
            name = "qss"
        v = group["voltage_V"].to_numpy()
        j = group["j_mA_cm2"].to_numpy()
        fom = figures_of_merit(v, j, irradiance_W_m2=irradiance_W_m2, mismatch=mismatch)
        results[name] = _clean(fom.to_dict())
        curves[name] = (v, j)
    if "reverse" in curves and "forward" in curves:
        results["hysteresis"] = _clean(hysteresis_indices(curves["reverse"], curves["forward"]))
    return results


def _clean(d: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-safe: NaN → None, numpy scalars → float."""
    out = {}
    for k, v in d.items():
        v = float(v) if isinstance(v, (int, float, np.number)) and not isinstance(v, bool) else v
        out[k] = None if isinstance(v, float) and not math.isfinite(v) else v
    return out
