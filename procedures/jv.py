"""Current density–voltage (J–V) measurement of a solar cell.

Two modes:

* ``staircase`` — the source-meter's built-in sweep per direction, at the requested scan rate: delay per
  point = step / rate − the instrument's time per reading (methods ref. §1.2). Rows are recorded as the driver
  reads them (a 2450's buffer while it fills, a slow 2400 sweep in pieces), and the progress moves with them.
* ``qss`` — quasi-steady-state points as in certified measurements (NREL asymptotic Pmax / JRC protocol,
  methods ref. §1.3): hold each bias until |J(t) − J(t − W)| ≤ ε·max(|J(t)|, |Jsc,est|), or until
  ``qss_max_s``, which flags the point as not converged. Order: stabilise at Vmp and find the MPP by a
  golden-section search on converged points, step towards 0 V, then from the MPP towards Voc until J changes
  sign and bracket Voc by regula falsi on converged points (see ``JVProcedure._qss``).

Voltages are device voltages (anode minus cathode). The fixture connects the same contact to the SMU HI
terminal whatever the stack, so for ``polarity = n-i-p`` the anode is on HI, and for ``p-i-n`` it is on LO: the
SMU is then programmed with −V and the current sign is flipped.
Current density is photocurrent-positive: J = −I/A (mA/cm²).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pymeasure.experiment import BooleanParameter, FloatParameter, IntegerParameter, ListParameter

from labctl.analysis.hysteresis import hysteresis_indices
from labctl.analysis.jv import figures_of_merit
from labctl.analysis.sdm import ONE_SUN_W_CM2
from labctl.config import ConfigError
from labctl.storage import Column
from procedures.base import LabProcedure, StreamSpec, source_meter_limits

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from rich.console import Console

    from labctl.storage import RunData

REVERSE, FORWARD = 0, 1
ONE_SUN_W_M2 = ONE_SUN_W_CM2 * 1e4
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
    PER_PIXEL = True  # `labctl run jv --pixels ...`: one run per pixel of a substrate
    REQUIRES = {"smu": "source_meter"}
    OPTIONAL = {"shutter": "shutter"}
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
    temperature_K = FloatParameter("Device temperature (recorded; used by the single-diode fit)", units="K",
                                   default=298.15, minimum=1, maximum=500)
    expected_jsc_mA_cm2 = FloatParameter(
        "Largest |J| the cell may reach at 1 sun, for the compliance check before the run (0 = no check)",
        units="mA/cm^2", default=30.0, minimum=0, maximum=1000)
    qss_points = IntegerParameter("QSS grid points from 0 V to Voc (the MPP and Voc searches add theirs)",
                                  default=10, minimum=4, maximum=100)
    qss_epsilon = FloatParameter("QSS stability |dJ| / max(|J|, |Jsc|) over the window", units="", default=0.001,
                                 minimum=1e-6, maximum=0.5)
    qss_window_s = FloatParameter("QSS stability window", units="s", default=10.0, minimum=0.01, maximum=1e4)
    qss_interval_s = FloatParameter("QSS sampling interval", units="s", default=1.0, minimum=0.001, maximum=1e3)
    qss_max_s = FloatParameter("QSS time limit per point (at least qss_window_s)", units="s", default=120.0,
                               minimum=0.01, maximum=1e5)
    qss_mpp_tol_V = FloatParameter("QSS MPP search final bracket width", units="V", default=0.004, minimum=0.001,
                                   maximum=0.5)
    qss_voc_tol_V = FloatParameter("QSS Voc search final bracket width", units="V", default=0.005, minimum=0.001,
                                   maximum=0.5)

    # -- checks before anything is touched ----------------------------------------------------------------------
    def validate(self, station) -> None:  # noqa: ANN001 - Station, imported lazily to avoid a cycle
        super().validate(station)
        needs_light = self.light or (self.precondition_s > 0 and self.precondition_light)
        why = getattr(station.light(), "why_unavailable", lambda on: None)(True) if needs_light else None
        if why is not None:
            raise ConfigError(f"parameter {'light' if self.light else 'precondition_light'} = true: {why}")
        cfg = station.config.instruments["smu"]
        limits = source_meter_limits(station)
        model, v_max, i_max, why = limits.driver.limits, limits.voltage_max_V, limits.current_max_A, limits.why
        for name in ("start_V", "stop_V", "precondition_V"):
            self.check_range(name, getattr(self, name), -v_max, v_max, why)
        compliance_min_A = getattr(limits.driver, "compliance_min_A", 0.0)
        self.check_range("compliance_A", self.compliance_A, compliance_min_A, i_max,
                         f"{why}; the {cfg.driver}'s smallest compliance is {compliance_min_A:g} A")
        self.check_range("nplc", self.nplc, *model.nplc_range, f"{cfg.driver} integration range")
        self._check_compliance_for_area(i_max)
        if self.stop_V <= self.start_V:
            raise ConfigError(f"parameter stop_V = {self.stop_V}: must be above start_V = {self.start_V}")
        points = self.points_per_scan()
        if self.mode == "staircase" and (points < 3 or points > model.max_sweep_points):  # QSS: qss_points
            raise ConfigError(
                f"parameter step_V = {self.step_V}: gives {points} points per scan; "
                f"allowed 3 to {model.max_sweep_points} for a {cfg.driver}"
            )
        if self.mode == "staircase" and self.scan_rate_V_s > 0:
            f_line = station.line_frequency_Hz()
            reading_s = limits.driver.reading_time_s(self.nplc, f_line)
            max_rate = self.step_V / reading_s
            if self.scan_rate_V_s > max_rate:
                raise ConfigError(
                    f"parameter scan_rate_V_s = {self.scan_rate_V_s}: too fast for step_V = {self.step_V} at "
                    f"nplc = {self.nplc} (one reading takes {reading_s * 1e3:.2f} ms); allowed 0 to {max_rate:.4g} V/s"
                )
            per_point = self.step_V / self.scan_rate_V_s
            self.check_range("step_V / scan_rate_V_s", per_point, 0, model.source_delay_max_s, "source delay")
            self._check_sweep_delay(cfg.driver, per_point - reading_s, reading_s)
        elif self.mode == "staircase":
            self._check_sweep_delay(cfg.driver, self.delay_s)
        if self.mode == "qss":
            self._check_qss(cfg.driver, model.max_sweep_points)

    def _check_sweep_delay(self, driver: str, delay_s: float, reading_s: float | None = None) -> None:
        """Refuse a built-in sweep delay (s) the source-meter model does not accept (the 2450: 0 or >= 50 µs)."""
        from labctl.plugins import registration

        low = getattr(registration(driver).driver, "sweep_delay_min_s", 0.0)
        if not 0.0 < delay_s < low:
            return
        if reading_s is None:
            high = self._parameters["delay_s"].maximum
            raise ConfigError(f"parameter delay_s = {self.delay_s:g}: a {driver} sweep delay is 0 or at least "
                              f"{low:g} s (allowed: delay_s = 0 or {low:g} to {high:g} s)")
        slow = self.step_V / (reading_s + low)
        raise ConfigError(
            f"parameter scan_rate_V_s = {self.scan_rate_V_s:g}: leaves a sweep delay of {delay_s * 1e6:.1f} µs per "
            f"point, and a {driver} sweep delay is 0 or at least {low * 1e6:g} µs (allowed: scan_rate_V_s at most "
            f"{slow:.6g} V/s for step_V = {self.step_V:g} at nplc = {self.nplc:g})"
        )

    def _check_qss(self, driver: str, max_sweep_points: int) -> None:
        """QSS settings that cannot work: a time limit shorter than the stability window (no point could ever
        converge), or a pre-scan with more points than the model's built-in sweep holds."""
        if self.qss_max_s < self.qss_window_s:
            raise ConfigError(
                f"parameter qss_max_s = {self.qss_max_s:g}: shorter than qss_window_s = {self.qss_window_s:g} s, so "
                f"no point could converge (allowed: qss_max_s >= qss_window_s = {self.qss_window_s:g} s)"
            )
        points = self.qss_prescan_points()
        if points > max_sweep_points:
            raise ConfigError(
                f"parameters start_V/stop_V = {self.start_V:g}/{self.stop_V:g}: the QSS pre-scan needs {points} "
                f"points at {QSS_PRESCAN_STEP_V:g} V, more than a {driver} sweep holds (allowed: stop_V - start_V "
                f"<= {(max_sweep_points - 1) * QSS_PRESCAN_STEP_V:g} V)"
            )

    def qss_prescan_points(self) -> int:
        """Points of the QSS pre-scan: every ``QSS_PRESCAN_STEP_V`` from stop_V to start_V, at least 5."""
        return max(int(round((self.stop_V - self.start_V) / QSS_PRESCAN_STEP_V)) + 1, 5)

    def expected_current_A(self) -> float:
        """The short-circuit current (A) the cell may reach: expected_jsc_mA_cm2 × area × irradiance / 1 sun."""
        return self.expected_jsc_mA_cm2 * 1e-3 * self.area_cm2 * self.irradiance_W_m2 / ONE_SUN_W_M2

    def _check_compliance_for_area(self, i_max_A: float) -> None:
        """Refuse a compliance obviously too low for the stated area and irradiance (before any I/O).

        In compliance the SMU stops holding the voltage and clips the current, so Jsc, FF and PCE cannot be
        measured: better one clear line now than a run of clipped points.
        """
        if not self.light or self.expected_jsc_mA_cm2 <= 0:
            return
        needed = self.expected_current_A()
        if self.compliance_A >= needed:
            return
        advice = f"raise compliance_A to at least {needed:.3g} A"
        if needed > i_max_A:
            advice += f" (above the station limit {i_max_A:g} A of 'smu': raise instruments.smu.limits.current_A)"
        raise ConfigError(
            f"parameter compliance_A = {self.compliance_A:g}: too low for area_cm2 = {self.area_cm2:g} cm² at "
            f"{self.irradiance_W_m2:g} W/m², where the cell may reach {needed * 1e3:.3g} mA "
            f"(expected_jsc_mA_cm2 = {self.expected_jsc_mA_cm2:g} mA/cm² × area); {advice}, "
            "or set expected_jsc_mA_cm2 to what this cell can give"
        )

    def points_per_scan(self) -> int:
        return int(round((self.stop_V - self.start_V) / self.step_V)) + 1

    # -- helpers ------------------------------------------------------------------------------------------------
    @property
    def _sign(self) -> float:
        return -1.0 if self.polarity == "p-i-n" else 1.0

    def _set_light(self, on: bool) -> None:
        self.station.light().set_light(on)

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
        smu = self.station.require("smu", "source_meter")
        self._delay_s = self._source_delay_s(smu) if self.mode == "staircase" else 0.0
        smu.configure_voltage_source(
            compliance_A=self.compliance_A, nplc=self.nplc, four_wire=self.four_wire, source_delay_s=self._delay_s
        )
        light = f"light {'on' if self.light else 'off'}"
        if self.mode == "qss" and not self.light:  # the dark QSS is the grid alone (no Voc, no MPP to search)
            self.log(f"J-V qss, {self.qss_points} grid points from {self.start_V:g} to {self.stop_V:g} V, {light}")
        elif self.mode == "qss":
            self.log(f"J-V qss, {self.qss_points} grid points from 0 V to Voc plus the MPP and Voc searches, "
                     f"bias {self.start_V:g} to {self.stop_V:g} V, {light}")
        else:
            self.log(f"J-V staircase, {self.direction}, {self.points_per_scan()} points/scan, "
                     f"source delay {self._delay_s:.4f} s, {light}")
        if self.light and self.station.light_is_operator_controlled:
            self.log("no shutter in the station: light is controlled by the operator")

    def execute(self) -> None:
        smu = self.station.require("smu", "source_meter")
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
        """The built-in sweep per direction; rows are recorded, and the progress moves, as pieces arrive."""
        order = ORDERS[self.direction]
        n = self.points_per_scan()
        for scan, direction in enumerate(order):
            self.check_abort()
            start, stop = (self.stop_V, self.start_V) if direction == REVERSE else (self.start_V, self.stop_V)
            t_start = self.station.clock.now() - self.t0
            done = 0

            def record_piece(data: Any, scan: int = scan, direction: int = direction, t_start: float = t_start) -> None:
                nonlocal done
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
                done += len(j)
                self.progress((scan + min(done / n, 1.0)) / len(order))

            smu.sweep_voltage(self._sign * start, self._sign * stop, n, self._delay_s, on_chunk=record_piece)

    # QSS ---------------------------------------------------------------------------------------------------
    def _read_j(self, smu: Any) -> tuple[float, float, bool]:
        """One reading at the present bias: (J in mA/cm², photocurrent-positive; I in A as read; compliance)."""
        data = smu.measure_point()
        return float(self._j_mA_cm2(data.current_A)[0]), float(data.current_A[0]), bool(data.compliance[0])

    def _qss_prescan(self, smu: Any) -> _QssEstimate:
        """Fast staircase (no delay) from stop_V to start_V: Voc, Vmp and J(0 V) estimates for the QSS plan.

        On a hysteretic cell these are biased (the ions lag the fast scan: Voc low by up to ~0.1 V); the QSS
        searches only start from them and bracket the true values with converged points.
        """
        n = self.qss_prescan_points()
        pre = smu.sweep_voltage(self._sign * self.stop_V, self._sign * self.start_V, n, 0.0)
        v = self._sign * np.asarray(pre.voltage_V)
        j = self._j_mA_cm2(pre.current_A)
        fom = figures_of_merit(v, j, compliance=np.asarray(pre.compliance, dtype=bool), single_diode_fit=False)
        voc = fom.voc_V if math.isfinite(fom.voc_V) else self.stop_V
        vmp = fom.vmp_V if math.isfinite(fom.vmp_V) else 0.8 * voc
        order = np.argsort(v)
        j_scale = abs(float(np.interp(self._qss_v_low, v[order], j[order])))
        self.log(f"QSS pre-scan: Voc ≈ {voc:.3f} V, Vmp ≈ {vmp:.3f} V, J({self._qss_v_low:g} V) ≈ {j_scale:.3f} "
                 "mA/cm²")
        return _QssEstimate(voc_V=float(voc), vmp_V=float(vmp), j_scale_mA_cm2=j_scale)

    @property
    def _qss_v_low(self) -> float:
        """Lowest QSS bias (V): 0 V, or start_V when that is above 0 V."""
        return max(0.0, self.start_V)

    def _qss_grid_step_V(self, est: _QssEstimate) -> float:
        """Spacing (V) of the QSS grid: ``qss_points`` points from the lowest bias to the Voc estimate."""
        return max((min(est.voc_V, self.stop_V) - self._qss_v_low) / (self.qss_points - 1), QSS_MIN_STEP_V)

    def _qss_point(self, smu: Any, voltage_V: float) -> _QssPoint:
        """Hold one bias until |J(t) − J(t − W)| ≤ ε·max(|J|, |J_sc,est|) or ``qss_max_s`` (methods ref. §1.3).

        The floor |J_sc,est| (the pre-scan's J at the lowest bias) keeps the rule meaningful where J → 0 near
        Voc: there a relative ε on J itself can never be met, while ε·Jsc bounds the Voc error to ε·Jsc·R_oc.
        Records every reading in ``qss_trace`` and the asymptotic point (with its real compliance flag) in
        ``jv``. A bias measured before is not measured again.
        """
        v = round(float(voltage_V), QSS_V_DECIMALS)
        if v in self._qss_done:
            return self._qss_done[v]
        self.check_abort()
        clock = self.station.clock
        index = len(self._qss_done)
        smu.set_voltage(self._sign * v)
        t_bias = clock.now()
        history: list[tuple[float, float]] = []
        converged = False
        while True:
            j, i_a, compliance = self._read_j(smu)
            t = clock.now() - t_bias
            history.append((t, j))
            self.record("qss_trace", {"time_s": clock.now() - self.t0, "voltage_V": v, "j_mA_cm2": j,
                                      "point": index})
            past = [jj for tt, jj in history if tt <= t - self.qss_window_s]
            if past and abs(j - past[-1]) <= self.qss_epsilon * max(abs(j), self._qss_j_floor):
                converged = True
                break
            if t >= self.qss_max_s:
                break
            self.wait(self.qss_interval_s)
        if not converged:
            self.log(f"WARNING: QSS point {v:.4f} V not converged after {t:.1f} s (qss_max_s = {self.qss_max_s}): "
                     "recorded with converged = 0, not used by the MPP or Voc search")
        if compliance:
            self.log(f"WARNING: QSS point {v:.4f} V in compliance (|I| = {abs(i_a):.4g} A at compliance_A = "
                     f"{self.compliance_A})")
        self.record("jv", {"time_s": clock.now() - self.t0, "voltage_V": v, "j_mA_cm2": j, "current_A": i_a,
                           "scan": 0, "direction": FORWARD, "compliance": int(compliance),
                           "converged": int(converged), "settle_time_s": t})
        point = _QssPoint(v, j, compliance, converged)
        self._qss_done[v] = point
        self.progress(min(len(self._qss_done) / self._qss_expected, 0.99))
        return point

    def _qss_search_mpp(self, smu: Any, est: _QssEstimate) -> tuple[float, float]:
        """Golden-section search of max V·J on converged points, starting at the Vmp estimate.

        Stabilises at Vmp,est first (methods ref. §1.3), brackets the maximum by stepping uphill in P with
        golden-ratio growing steps, then shrinks the bracket to ``qss_mpp_tol_V`` (Kiefer's golden-section
        search; Press et al., Numerical Recipes §10.2). Every point that decides the bracket is converged and
        not in compliance; the search stops at the first one that is not, with a WARNING (as it does when the
        maximum lies at the edge of the bias range). Returns the voltage span (V) of the points it measured.
        """
        v_min, v_max = self._qss_v_low, self.stop_V
        searched: list[float] = []

        def power(p: _QssPoint) -> float:
            return p.voltage_V * p.j_mA_cm2

        def measure(v: float) -> _QssPoint | None:
            p = self._qss_point(smu, min(max(v, v_min), v_max))
            searched.append(p.voltage_V)
            if not p.usable:
                why = "in compliance" if p.compliance else "not converged"
                self.log(f"WARNING: QSS MPP search stopped at {p.voltage_V:.4f} V ({why}): the MPP is not "
                         "bracketed by converged points")
                return None
            return p

        first = measure(est.vmp_V)
        second = measure(first.voltage_V + QSS_PRESCAN_STEP_V / 2) if first else None
        if first is None or second is None:
            return min(searched), max(searched)
        x1, x2 = (first, second) if power(second) >= power(first) else (second, first)
        for _ in range(QSS_MAX_SEARCH_POINTS):  # bracket: step uphill until P drops
            v3 = min(max(x2.voltage_V + GOLDEN_RATIO * (x2.voltage_V - x1.voltage_V), v_min), v_max)
            if abs(v3 - x2.voltage_V) < 10.0 ** -QSS_V_DECIMALS:
                self.log(f"WARNING: QSS power still rising at the bias limit {x2.voltage_V:.4f} V "
                         f"(range {v_min:g} to {v_max:g} V): the MPP is not bracketed")
                return min(searched), max(searched)
            x3 = measure(v3)
            if x3 is None:
                return min(searched), max(searched)
            if power(x3) < power(x2):
                break
            x1, x2 = x2, x3
        else:
            self.log("WARNING: QSS MPP search could not bracket the maximum power point")
            return min(searched), max(searched)
        a, b, c = sorted((x1, x2, x3), key=lambda p: p.voltage_V)
        for _ in range(QSS_MAX_SEARCH_POINTS):  # golden section: shrink the bracket around the best point
            if c.voltage_V - a.voltage_V <= self.qss_mpp_tol_V:
                break
            upper = c.voltage_V - b.voltage_V > b.voltage_V - a.voltage_V
            v = b.voltage_V + GOLDEN_SECTION * ((c.voltage_V - b.voltage_V) if upper else (a.voltage_V - b.voltage_V))
            x = measure(v)
            if x is None:
                break
            if power(x) > power(b):
                a, b, c = (b, x, c) if upper else (a, x, b)
            else:
                a, b, c = (a, b, x) if upper else (x, b, c)
        else:
            self.log(f"WARNING: QSS MPP bracket still {c.voltage_V - a.voltage_V:.4f} V wide "
                     f"(qss_mpp_tol_V = {self.qss_mpp_tol_V}) after {QSS_MAX_SEARCH_POINTS} points")
        self.log(f"QSS MPP: {b.voltage_V:.4f} V, {power(b):.3f} mW/cm² (bracket {a.voltage_V:.4f} to "
                 f"{c.voltage_V:.4f} V)")
        return min(searched), max(searched)

    def _qss_search_voc(self, smu: Any, est: _QssEstimate, above_V: float) -> None:
        """From ``above_V`` towards Voc: grid points (extended past Voc,est up to stop_V) until J ≤ 0, then
        regula falsi (Illinois variant) on converged points until the bracket is ``qss_voc_tol_V`` wide.

        The extension steps on the sign of any reading; the bracket that is refined, and left for the analysis,
        has converged points at both ends (a point in compliance still gives the sign: the true |J| is larger).
        WARNINGs when J > 0 up to stop_V, when no converged bracket exists, or when a refinement point does not
        converge (the search stops there).
        """
        step = self._qss_grid_step_V(est)
        v = above_V
        while not any(p.j_mA_cm2 <= 0 and p.voltage_V > 0 for p in self._qss_done.values()):
            if v >= self.stop_V - 10.0 ** -QSS_V_DECIMALS:
                self.log(f"WARNING: QSS J > 0 up to stop_V = {self.stop_V} V: Voc is not bracketed; raise stop_V")
                return
            nxt = [g for g in self._qss_grid(est) if g > v + step / 4]
            v = min(nxt[0] if nxt else v + step, self._qss_chord_root_V(v, step), self.stop_V)
            self._qss_point(smu, v)
        converged = sorted((p for p in self._qss_done.values() if p.converged), key=lambda p: p.voltage_V)
        crossing = [(lo, hi) for lo, hi in zip(converged[:-1], converged[1:], strict=True)
                    if lo.voltage_V > 0 and lo.j_mA_cm2 > 0 and hi.j_mA_cm2 <= 0]
        if not crossing:
            self.log("WARNING: QSS Voc is not bracketed by converged points (J changes sign only between "
                     "unconverged points)")
            return
        lo, hi = crossing[0]
        vl, jl, vh, jh = lo.voltage_V, lo.j_mA_cm2, hi.voltage_V, hi.j_mA_cm2
        kept = 0  # Illinois: +1 / −1 when the low / high end was kept last time
        for _ in range(QSS_MAX_SEARCH_POINTS):
            width = vh - vl
            if width <= self.qss_voc_tol_V:
                break
            x = vl + jl * width / (jl - jh)
            x = min(max(x, vl + 0.1 * width), vh - 0.1 * width)
            p = self._qss_point(smu, x)
            if not p.converged:
                self.log(f"WARNING: QSS Voc search stopped at {p.voltage_V:.4f} V (not converged): Voc bracket "
                         f"{vl:.4f} to {vh:.4f} V")
                return
            if p.j_mA_cm2 > 0:
                vl, jl = p.voltage_V, p.j_mA_cm2
                jh = jh / 2 if kept == -1 else jh
                kept = -1
            else:
                vh, jh = p.voltage_V, p.j_mA_cm2
                jl = jl / 2 if kept == 1 else jl
                kept = 1
        else:
            self.log(f"WARNING: QSS Voc bracket still {vh - vl:.4f} V wide (qss_voc_tol_V = {self.qss_voc_tol_V})")
        self.log(f"QSS Voc bracket: {vl:.4f} to {vh:.4f} V")

    def _qss_chord_root_V(self, v_V: float, step_V: float) -> float:
        """Next bias (V) towards Voc from the chord through the two highest points with J > 0, plus half the Voc
        tolerance, kept within (v_V, v_V + step_V].

        J(V) is concave near Voc, so the chord's root lies at or past Voc: the next point usually brackets it.
        """
        pos = sorted((p for p in self._qss_done.values() if p.voltage_V > 0 and p.j_mA_cm2 > 0),
                     key=lambda p: p.voltage_V)
        if len(pos) < 2 or pos[-1].j_mA_cm2 >= pos[-2].j_mA_cm2:
            return v_V + step_V
        (v1, j1), (v2, j2) = ((p.voltage_V, p.j_mA_cm2) for p in pos[-2:])
        root = v2 + j2 * (v2 - v1) / (j1 - j2) + self.qss_voc_tol_V / 2
        return min(max(root, v_V + QSS_MIN_STEP_V), v_V + step_V)

    def _qss_grid(self, est: _QssEstimate) -> list[float]:
        """The QSS curve grid (V): ``qss_points`` evenly spaced from the lowest bias to min(Voc,est, stop_V)."""
        top = max(min(est.voc_V, self.stop_V), self._qss_v_low + QSS_MIN_STEP_V)
        grid = np.linspace(self._qss_v_low, top, self.qss_points)
        return [round(float(x), QSS_V_DECIMALS) for x in grid]

    def _qss(self, smu: Any) -> None:
        """Quasi-steady-state J–V (methods ref. §1.3): every recorded value is the held, stable current.

        Plan: a fast pre-scan estimates Voc and Vmp; a golden-section search of P = V·J on converged points
        stabilises at Vmp,est first and finds the MPP to ``qss_mpp_tol_V``; then the grid steps from there
        towards 0 V; then from the MPP towards Voc, past Voc,est if needed, until J ≤ 0, and a regula-falsi
        search on converged points brackets Voc to ``qss_voc_tol_V``. In the dark, only the grid from start_V
        to stop_V is measured. Points that do not converge stay in ``jv`` with converged = 0 and stop the search
        they belong to (WARNING); the grid carries on.
        """
        smu.set_voltage(self._sign * self.start_V)
        smu.enable_output()
        self._qss_done: dict[float, _QssPoint] = {}
        self._qss_j_floor = QSS_J_FLOOR_MIN_mA_cm2
        if not self.light:
            grid = np.linspace(self.start_V, self.stop_V, self.qss_points)
            self._qss_expected = len(grid)
            for v in grid:
                self._qss_point(smu, float(v))
            return
        est = self._qss_prescan(smu)
        self._qss_j_floor = max(est.j_scale_mA_cm2, QSS_J_FLOOR_MIN_mA_cm2)
        grid = self._qss_grid(est)
        step = self._qss_grid_step_V(est)
        self._qss_expected = len(grid) + QSS_EXPECTED_SEARCH_POINTS
        self.log(f"QSS plan: MPP search from {est.vmp_V:.3f} V to a {self.qss_mpp_tol_V:g} V bracket; "
                 f"{len(grid)} grid points {grid[0]:g} to {grid[-1]:g} V (step {step:.4f} V, extended past "
                 f"Voc,est up to stop_V = {self.stop_V:g} V); Voc to a {self.qss_voc_tol_V:g} V bracket")
        v_from, v_to = self._qss_search_mpp(smu, est)
        below = [g for g in grid if g < v_from - step / 4 or g == grid[0]]
        for v in sorted(below, reverse=True):
            self._qss_point(smu, v)
        self._qss_search_voc(smu, est, v_to)

    def shutdown(self) -> None:
        """Nothing beyond the engine's safe state (output off, shutter closed)."""

    # -- analysis -----------------------------------------------------------------------------------------------
    def analyse(self, streams: Mapping[str, pd.DataFrame]) -> dict[str, Any]:
        results = analyse_jv(
            streams.get("jv", pd.DataFrame()),
            irradiance_W_m2=self.irradiance_W_m2,
            mismatch=self.mismatch,
            light=self.light,
            mode=self.mode,
            compliance_A=self.compliance_A,
            expected_current_A=self.expected_current_A(),
            temperature_K=self.temperature_K,
        )
        for warning in results.get("warnings", []):
            self.log(f"WARNING: {warning}")
        return results

    # -- for people ---------------------------------------------------------------------------------------------
    @classmethod
    def summarise(cls, console: Console, results: Mapping[str, Any]) -> None:
        """The dark-fit table (dark J–V), or the figures-of-merit table per direction and the hysteresis line."""
        from procedures import summary

        if isinstance(results.get("dark"), dict):
            summary.print_dark_fit(console, results["dark"])
            return
        directions = [d for d in ("reverse", "forward", "qss") if isinstance(results.get(d), dict)]
        if not directions:
            summary.print_scalars(console, results)
            return
        summary.print_figures_of_merit(console, results, directions)
        if results.get("hysteresis"):
            summary.print_hysteresis(console, results["hysteresis"])

    @classmethod
    def plot(cls, ax: Axes, run: RunData) -> str:
        """J against V per scan with the figures of merit; in the dark, semilog |J| with the single-diode fit."""
        from procedures import plots

        name = run.info.get("procedure", "")
        if not plots.has_rows(run, "jv"):
            return name
        if not plots.is_true(run.parameters.get("light", True)):
            plots.plot_dark_jv(ax, run)
            return name + " (dark)"
        plots.plot_light_jv(ax, run)
        return name


#: what the operator is told for each analysis flag that leaves a figure out (flag → consequence; remedy)
_FLAG_ADVICE = {
    "voc_not_bracketed": "J stays > 0 up to the highest voltage: Voc, FF and PCE not computed; raise stop_V",
    "no_power_quadrant": ("no point with V > 0 and J > 0: the cell gives no power (dark, dead, or the polarity is "
                          "wrong for this stack): Voc, FF and PCE not computed"),
    "jsc_not_bracketed": "the scan does not cross 0 V: Jsc, FF and PCE not computed; lower start_V below 0 V",
    "no_photocurrent": "no photocurrent at 0 V: is the light on, and is polarity right for this stack?",
    "too_few_points": "fewer than 3 usable points: nothing computed",
}
_COMPLIANCE_FLAGS = ("jsc_in_compliance", "voc_in_compliance", "mpp_in_compliance", "r_sc_in_compliance",
                     "r_oc_in_compliance")


def _suggested_compliance_A(reached_A: float, expected_A: float) -> float:
    """A compliance (A) on the 1-2-5 series at least twice the current reached and at least the expected one."""
    target = max(2.0 * reached_A, expected_A)
    decade = 10.0 ** math.floor(math.log10(target))
    for step in (1.0, 2.0, 5.0, 10.0):
        if step * decade >= target * (1 - 1e-3):  # 2 × 10.0004 mA still suggests 20 mA
            return step * decade
    return 10.0 * decade


def _compliance_warning(name: str, group: pd.DataFrame, flags: list[str], compliance_A: float | None,
                        expected_A: float) -> str:
    clipped = group["compliance"].to_numpy(dtype=bool)
    reached = float(np.max(np.abs(group["current_A"].to_numpy()[clipped])))
    limit = f"compliance_A = {compliance_A:g} A" if compliance_A is not None else "the current compliance"
    text = (f"{name} scan: {int(clipped.sum())} of {len(group)} points in current compliance ({limit}, "
            f"|I| reached {reached * 1e3:.4g} mA)")
    lost = [f for f in flags if f in _COMPLIANCE_FLAGS]
    if lost:
        suggestion = _suggested_compliance_A(reached, expected_A)
        return (f"{text}: not computed because of it: {', '.join(lost)}; "
                f"rerun with --set compliance_A={suggestion:g} or more")
    v = group["voltage_V"].to_numpy()[clipped]
    return f"{text}, at {v.min():.3g} to {v.max():.3g} V: excluded, no figure depends on them"


def analyse_jv(
    data: pd.DataFrame, irradiance_W_m2: float, mismatch: float, light: bool, mode: str,
    compliance_A: float | None = None, expected_current_A: float = 0.0, temperature_K: float = 298.15,
) -> dict[str, Any]:
    """Figures of merit per direction and, for a reverse+forward pair, the hysteresis indices.

    Points in current compliance are excluded from every figure they would bias (a figure that needs them is
    None with a ``*_in_compliance`` flag). Every analysis flag is kept in ``results[direction]["flags"]``;
    ``results["warnings"]`` holds one line per condition the operator must know about (compliance, a Voc or
    Jsc that the scan did not bracket, QSS points that did not converge).
    """
    results: dict[str, Any] = {}
    if data.empty:
        return results
    if not light:
        return analyse_dark_jv(data, mode=mode, temperature_K=temperature_K)
    warnings: list[str] = []
    curves = {}
    for direction, group in data.groupby("direction"):
        name = "qss" if mode == "qss" else DIRECTION_NAMES[int(direction)]
        dropped: list[str] = []
        if mode == "qss" and "converged" in group and not group["converged"].all():
            bad = group.loc[group["converged"] == 0, "voltage_V"].to_numpy()
            warnings.append(f"qss: {bad.size} bias point(s) did not converge within qss_max_s "
                            f"({', '.join(f'{x:.3f}' for x in bad)} V): left out of every figure")
            group = group[group["converged"] == 1]  # an unconverged QSS point never feeds a figure
            dropped.append("qss_unconverged_dropped")
        v = group["voltage_V"].to_numpy()
        j = group["j_mA_cm2"].to_numpy()
        clipped = group["compliance"].to_numpy(dtype=bool) if "compliance" in group else np.zeros(len(v), bool)
        fom = figures_of_merit(v, j, irradiance_W_m2=irradiance_W_m2, mismatch=mismatch, compliance=clipped,
                               temperature_K=temperature_K)
        results[name] = _clean(fom.to_dict())
        flags = list(fom.flags) + dropped
        results[name]["flags"] = flags
        if clipped.any():
            warnings.append(_compliance_warning(name, group, flags, compliance_A, expected_current_A))
        for flag in flags:
            if flag in _FLAG_ADVICE:
                warnings.append(f"{name} scan: {_FLAG_ADVICE[flag]} ({flag})")
        curves[name] = (v, j, clipped, flags)
    if "reverse" in curves and "forward" in curves:
        (v_rs, j_rs, c_rs, _), (v_fs, j_fs, c_fs, _) = curves["reverse"], curves["forward"]
        hysteresis = _clean(hysteresis_indices((v_rs, j_rs, c_rs), (v_fs, j_fs, c_fs)))
        if c_rs.any() or c_fs.any():
            missing = [k for k, x in hysteresis.items() if x is None]
            hysteresis["flags"] = ["compliance_points_excluded"] + (["in_compliance"] if missing else [])
            if missing:
                warnings.append(f"hysteresis: {', '.join(missing)} not computed: they need readings in compliance")
        results["hysteresis"] = hysteresis
    if warnings:
        results["warnings"] = warnings
    return results


#: what the operator is told for each dark-fit flag (flag → consequence; remedy)
_DARK_FLAG_ADVICE = {
    "too_few_points": "fewer than 8 usable points (|V| > 2 mV, not in compliance): nothing computed",
    "no_diode_current": "the diode current never exceeds the shunt current: J0 and n not computed; raise stop_V",
    "not_converged": "the single-diode dark fit did not converge: nothing computed",
    "rs_ill_determined": "Rs not determined (the scan stops before the series resistance shows): raise stop_V",
    "ideality_ill_determined": "n not determined by the curve",
    "j0_ill_determined": "J0 not determined by the curve",
    "rsh_ill_determined": "Rsh not determined (no shunt-dominated region near 0 V): lower start_V",
}


def analyse_dark_jv(data: pd.DataFrame, mode: str, temperature_K: float = 298.15) -> dict[str, Any]:
    """Dark J–V: J0, n, Rs and Rsh per direction from the single-diode dark fit (methods ref. §1.8).

    ``results["dark"][direction]`` holds :class:`labctl.analysis.dark.DarkFit` as a dict; points in compliance and
    unconverged QSS points are left out; ``results["warnings"]`` says what could not be determined and why.
    """
    from labctl.analysis.dark import fit_dark_jv

    dark: dict[str, Any] = {}
    warnings: list[str] = []
    for direction, group in data.groupby("direction"):
        name = "qss" if mode == "qss" else DIRECTION_NAMES[int(direction)]
        if mode == "qss" and "converged" in group and not group["converged"].all():
            bad = int((group["converged"] == 0).sum())
            warnings.append(f"dark {name}: {bad} bias point(s) did not converge within qss_max_s: left out of the fit")
            group = group[group["converged"] == 1]
        clipped = group["compliance"].to_numpy(dtype=bool) if "compliance" in group else None
        fit = fit_dark_jv(group["voltage_V"].to_numpy(), group["j_mA_cm2"].to_numpy(), clipped, temperature_K)
        dark[name] = fit.to_dict()
        warnings += [f"dark {name} scan: {_DARK_FLAG_ADVICE[f]} ({f})" for f in fit.flags if f in _DARK_FLAG_ADVICE]
    results: dict[str, Any] = {"dark": dark}
    if warnings:
        results["warnings"] = warnings
    return results


def _clean(d: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-safe: NaN → None, numpy scalars → float or int, tuples → lists."""
    out = {}
    for k, v in d.items():
        if isinstance(v, (bool, np.bool_)):
            v = bool(v)
        elif isinstance(v, (int, np.integer)):
            v = int(v)
        elif isinstance(v, (float, np.floating)):
            v = float(v)
        elif isinstance(v, tuple):
            v = list(v)
        out[k] = None if isinstance(v, float) and not math.isfinite(v) else v
    return out


# QSS helpers -------------------------------------------------------------------------------------------------
GOLDEN_RATIO = (1.0 + math.sqrt(5.0)) / 2.0  # bracket growth per step
GOLDEN_SECTION = (3.0 - math.sqrt(5.0)) / 2.0  # 0.381966: new point's place in the larger sub-interval
QSS_PRESCAN_STEP_V = 0.05  # pre-scan spacing (V); the MPP search starts with half of it
QSS_MIN_STEP_V = 1e-3  # smallest grid spacing (V)
QSS_V_DECIMALS = 4  # QSS biases are rounded to 0.1 mV (the 2400's source resolution is 50 µV on 2 V)
QSS_MAX_SEARCH_POINTS = 20  # per search phase; reached only if something is badly wrong (WARNING)
QSS_EXPECTED_SEARCH_POINTS = 16  # for the progress bar only
QSS_J_FLOOR_MIN_mA_cm2 = 1e-9  # the stability rule's floor on |J| in the dark (no Jsc to scale it by)


@dataclass(frozen=True)
class _QssEstimate:
    """What the fast pre-scan says: Voc and Vmp (V), |J| at the lowest bias (mA/cm²)."""

    voc_V: float
    vmp_V: float
    j_scale_mA_cm2: float


@dataclass(frozen=True)
class _QssPoint:
    """One held QSS bias: device voltage (V), asymptotic J (mA/cm², photocurrent-positive) and its flags."""

    voltage_V: float
    j_mA_cm2: float
    compliance: bool
    converged: bool

    @property
    def usable(self) -> bool:
        """May decide the MPP: converged and not clamped by the compliance."""
        return self.converged and not self.compliance
