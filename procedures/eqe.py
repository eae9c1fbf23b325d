"""External quantum efficiency with chopped monochromatic light and a lock-in (methods ref. §3).

Two procedures share the wavelength scan:

* ``eqe-calibration`` measures each reference photodiode (Si ≈ 818-UV, Ge ≈ 818-IR, or the user's certified
  detectors) over its range and stores the beam power P(λ) = I_ref/R_ref(λ) as its own run file.
* ``eqe`` holds the device at short circuit (the transimpedance preamplifier's virtual ground), measures its
  current over the grid, and divides by the calibration run: EQE = I_DUT / (P(λ)·λ/1239.842).

Per point: grating and order-sorting filter from the station's table (checked at start-up through each filter's
transmission against the second-order bound of methods ref. §3.6; problems are logged as warnings and reported in
the results, not fatal), the wavelength, then readings of the lock-in until the residual their slope predicts is
below ``settle_tolerance`` (``settle: convergence``, see :meth:`_WavelengthScan._settle`), bounded by the time a
restarted output filter needs to come within half that tolerance; or a fixed wait of ``fixed_wait_tau`` time
constants (``settle: fixed``). The sensitivity follows the signal (overload → less sensitive; a settled reading
below 20 % of full scale → more sensitive).

The grid ends by default (``stop_nm = 0``) where the station's reference detectors end (for ``eqe``: where its
calibration run ends, if sooner), so that a low-gap device is measured past its band edge. ``eqe`` never
interpolates a calibration across a grating or filter change (it refuses such a grid before starting), and its
results say whether the scan reached the band edge and how the integrated Jsc compares with a J–V run's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pymeasure.experiment import BooleanParameter, FloatParameter, ListParameter, Parameter

from labctl.analysis.eqe import BAND_EDGE_FRACTION
from labctl.analysis.lockin import residual_factor, slope_to_poles
from labctl.analysis.spectra import HC_OVER_Q_NM_V as HC_NM_V
from labctl.config import ConfigError, EQEBenchConfig, StationConfig
from labctl.storage import Column, load_run
from procedures.base import LabProcedure, StreamSpec

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from rich.console import Console

    from labctl.storage import RunData

RESOLUTION = 1e-4  # fraction of full scale below which a lock-in reading's drift is not resolved

_POINT_COLUMNS = [
    Column("wavelength_nm", "nm"),
    Column("time_s", "s"),
    Column("current_A", "A"),
    Column("phase_deg", "deg"),
    Column("grating", "", "i4"),
    Column("filter", "", "i4"),
    Column("time_constant_s", "s"),
    Column("sensitivity_A", "A"),
    Column("overload", "", "i1"),
    Column("converged", "", "i1"),
    Column("settle_time_s", "s"),
]


def reference_detectors_end_nm(config: StationConfig) -> float:
    """Longest wavelength (nm) any of the station's reference detectors is calibrated and used at."""
    from labctl.calibration import CalibrationError, load_responsivity

    ends = []
    for name, det in config.eqe.reference_detectors.items():
        try:
            ends.append(min(det.max_nm, load_responsivity(det.responsivity).range_nm[1]))
        except (CalibrationError, FileNotFoundError) as exc:
            raise ConfigError(f"eqe.reference_detectors.{name}.responsivity = {det.responsivity!r}: {exc}") from None
    if not ends:
        raise ConfigError("eqe.reference_detectors: the station has none, so stop_nm = 0 has no end; give stop_nm")
    return max(ends)


def _nearest_and_allowed(value: float, allowed: tuple[float, ...], unit: str) -> str:
    """``nearest a or b <unit> (allowed: ...)``: the table steps either side of ``value``, then the whole table."""
    below = [a for a in allowed if a < value]
    above = [a for a in allowed if a > value]
    nearest = " or ".join(f"{a:g}" for a in (below[-1:] + above[:1]))
    return f"nearest {nearest} {unit} (allowed: {', '.join(f'{a:g}' for a in allowed)} {unit})"


class _WavelengthScan(LabProcedure):
    """Shared parameters and the per-point measurement of both EQE procedures."""

    REQUIRES = {"lockin": "lock_in", "monochromator": "monochromator", "filter_wheel": "filter_wheel"}
    OPTIONAL = {"shutter": "shutter", "preamp": "current_preamplifier"}

    start_nm = FloatParameter("First wavelength", units="nm", default=300.0, minimum=200, maximum=2500)
    stop_nm = FloatParameter("Last wavelength (0 = where the station's reference detectors end)", units="nm",
                             default=0.0, minimum=0, maximum=2500)
    step_nm = FloatParameter("Wavelength step", units="nm", default=10.0, minimum=0.1, maximum=500)
    time_constant_s = FloatParameter("Lock-in time constant (SR830 1-3 steps, 10 µs to 30 ks; at most 30 s above "
                                     "200 Hz)", units="s", default=0.1, minimum=1e-5, maximum=3e4)
    filter_slope_dB = ListParameter("Lock-in filter slope", choices=[6, 12, 18, 24], default=24, units="dB/oct")
    settle = ListParameter("Settling rule", choices=["convergence", "fixed"], default="convergence")
    settle_tolerance = FloatParameter("Convergence - predicted residual over reading", units="", default=0.002,
                                      minimum=1e-5, maximum=0.1)
    fixed_wait_tau = FloatParameter("Fixed wait", units="tau", default=10.0, minimum=0.0, maximum=100)
    reserve = ListParameter("Lock-in dynamic reserve", choices=["High Reserve", "Normal", "Low Noise"],
                            default="Normal")
    preamp_sensitivity_A_V = FloatParameter("SR570 sensitivity (with a 'preamp' in the station)", units="A/V",
                                            default=1e-6, minimum=1e-12, maximum=1e-3)

    def validate(self, station) -> None:  # noqa: ANN001
        super().validate(station)
        if not station.can_place_in_beam:
            raise ConfigError(
                f"procedure {self.NAME} asks the operator to place detectors in the beam "
                f"(station.place_in_beam), and nobody can be asked: stdin is not a terminal and the bench is not "
                "simulated (allowed: run it from a terminal)"
            )
        preamp = station.config.instruments.get("preamp")
        if preamp is not None:
            from labctl.plugins import registration

            table = tuple(getattr(registration(preamp.driver).driver, "SENSITIVITIES", ()))
            value = self.preamp_sensitivity_A_V
            if not any(math.isclose(value, v, rel_tol=1e-6) for v in table):
                raise ConfigError(f"parameter preamp_sensitivity_A_V = {value:g}: not a sensitivity of the "
                                  f"{preamp.driver} preamplifier; {_nearest_and_allowed(value, table, 'A/V')}")
        self._check_time_constant(station)
        if self.stop_nm == 0:
            self.stop_nm = self._auto_stop_nm(station)
            self._auto_stop = True
        if self.stop_nm < self.start_nm:
            raise ConfigError(f"parameter stop_nm = {self.stop_nm}: must not be below start_nm = {self.start_nm}")
        table = station.config.eqe
        for lam in self.wavelengths_nm():
            if table.row_for(lam) is None:
                raise ConfigError(
                    f"parameter start_nm/stop_nm: {lam:g} nm is not covered by eqe.order_sorting in the station "
                    f"(covered: {', '.join(f'{r.from_nm:g}-{r.to_nm:g} nm' for r in table.order_sorting)})"
                )
        self._check_wavelengths_reachable(station)

    def _check_time_constant(self, station) -> None:  # noqa: ANN001
        """Refuse a time constant the lock-in model does not have at the chopper frequency, naming its neighbours."""
        from labctl.plugins import registration

        driver = station.config.instruments["lockin"].driver
        allowed_at = getattr(registration(driver).driver, "allowed_time_constants_s", None)
        if allowed_at is None:
            return
        chopper_Hz = station.config.eqe.chopper_frequency_Hz
        allowed = allowed_at(chopper_Hz)
        tau = self.time_constant_s
        if any(math.isclose(tau, a, rel_tol=1e-6) for a in allowed):
            return
        listing = ", ".join(f"{a:g}" for a in allowed)
        if tau > allowed[-1] and len(allowed) < len(allowed_at(0.0)):
            raise ConfigError(
                f"parameter time_constant_s = {tau:g}: the {driver} lock-in allows at most {allowed[-1]:g} s at the "
                f"{chopper_Hz:g} Hz chopper frequency (eqe.chopper_frequency_Hz) (allowed: {listing} s)"
            )
        raise ConfigError(f"parameter time_constant_s = {tau:g}: not a time constant of the {driver} lock-in; "
                          f"{_nearest_and_allowed(tau, allowed, 's')}")

    def _check_wavelengths_reachable(self, station) -> None:  # noqa: ANN001
        """Refuse a grid point the monochromator cannot go to with the grating the order-sorting table gives it.

        The model's wavelength drive range always applies; each grating's own range is known on the simulated
        bench (``simulation.optics.gratings``, what its monochromator has); a real monochromator reports it only
        when asked, so there the instrument's error 3 remains the check.
        """
        from labctl.plugins import registration

        config = station.config
        driver = config.instruments["monochromator"].driver
        drive_nm = getattr(registration(driver).driver, "wavelength_range_nm", (0.0, math.inf))
        gratings = station.grating_ranges_nm() or {}
        for lam in self.wavelengths_nm():
            row = config.eqe.row_for(lam)
            grating = gratings.get(row.grating)
            low, high = grating[:2] if grating is not None else drive_nm
            if not low <= lam <= high:
                what = f"grating {row.grating} ({grating[2]}) covers" if grating is not None else f"a {driver} goes"
                raise ConfigError(
                    f"parameter start_nm/stop_nm: {lam:g} nm, where eqe.order_sorting gives grating {row.grating} "
                    f"({row.from_nm:g}-{row.to_nm:g} nm), but {what} only {low:g}-{high:g} nm "
                    "(allowed: a grid inside each row's grating range, or fix the row's grating in eqe.order_sorting)"
                )

    def _auto_stop_nm(self, station) -> float:  # noqa: ANN001
        """The default last wavelength: where the station's reference detectors end."""
        return reference_detectors_end_nm(station.config)

    def wavelengths_nm(self) -> np.ndarray:
        n = int(math.floor((self.stop_nm - self.start_nm) / self.step_nm + 1e-9)) + 1
        return np.round(self.start_nm + self.step_nm * np.arange(n), 6)

    # -- instruments --------------------------------------------------------------------------------------------
    def _configure_lockin(self) -> None:
        bench = self.station.config.eqe
        lockin = self.station.require("lockin", "lock_in")
        if "preamp" in self.station:  # a remote-controlled current preamplifier (SR570)
            preamp = self.station.require("preamp", "current_preamplifier")
            preamp.configure(self.preamp_sensitivity_A_V)
            current_input, self._gain = False, preamp.gain_V_A
        else:  # a fixed-gain preamplifier from station.yaml, or the lock-in's own current input
            current_input = bench.preamp_gain_V_A is None
            self._gain = 1.0 if current_input else bench.preamp_gain_V_A  # V/A between detector and lock-in
        lockin.configure(
            1.0 if not current_input else 1e-6,
            chopper_frequency_Hz=bench.chopper_frequency_Hz,
            input_config="I (1 MOhm)" if current_input else "A",
            time_constant_s=self.time_constant_s,
            filter_slope_dB=int(self.filter_slope_dB),
            reserve=self.reserve,
        )
        # every wait ends by the time an output filter restarted from zero (a range change) is within half the
        # settling tolerance: a reading taken then is good to the tolerance even where noise hides the slope
        self._max_wait_s = lockin.settle_time_s(self.settle_tolerance / 2)
        self._poles = slope_to_poles(int(self.filter_slope_dB))

    def order_sorting_problems(self) -> list[str]:
        """Where the station's table lets second-order light through (or cuts the first order) on this grid."""
        from labctl.analysis.eqe import OrderSortingRow, check_order_sorting

        bench = self.station.config.eqe
        rows = [OrderSortingRow(max(r.from_nm, self.start_nm), min(r.to_nm, self.stop_nm), bench.long_pass(r.filter))
                for r in bench.order_sorting if r.to_nm > self.start_nm and r.from_nm <= self.stop_nm]
        return check_order_sorting(rows)

    def _start_optics(self) -> None:
        if getattr(self, "_auto_stop", False):
            self.log(f"stop_nm = 0: scanning to {self.stop_nm:g} nm (where the reference detectors end)")
        self._order_problems = self.order_sorting_problems()
        for problem in self._order_problems:
            self.log(f"ORDER-SORTING WARNING: {problem}")
        mono = self.station.require("monochromator", "monochromator")
        mono.configure()
        mono.open_shutter()
        self._grating = None
        self._filter = None

    def _go_to(self, wavelength_nm: float) -> tuple[int, int]:
        row = self.station.config.eqe.row_for(wavelength_nm)
        mono, wheel = self.station["monochromator"], self.station["filter_wheel"]
        if row.grating != self._grating:
            mono.grating = row.grating
            self._grating = row.grating
            self.log(f"grating {row.grating} from {wavelength_nm:g} nm")
        if row.filter != self._filter:
            wheel.position = row.filter
            self._filter = row.filter
            self.log(f"order-sorting filter position {row.filter} from {wavelength_nm:g} nm")
        mono.wavelength_nm = wavelength_nm
        return row.grating, row.filter

    def _read(self) -> tuple[float, float, bool]:
        """(R in A at the detector, phase in deg, overload) from one SNAP? and the latched status."""
        lockin = self.station["lockin"]
        reading = lockin.snap_xyrt()
        status = lockin.read_and_clear_status()
        return reading.r / self._gain, reading.theta_deg, status.overload

    def _settle(self, t0: float) -> tuple[float, float, bool, bool]:
        """Wait for the lock-in output to settle after a change at ``t0``: (R in A, phase, overload, converged).

        Convergence rule: after a step the output of an N-pole filter approaches its final value as
        R(x) = R∞ − ΔR·(1 − y(x)), x = (t − t0)/τ, so the error still to come is exactly |dR/dx|·(1 − y)/y'
        (:func:`labctl.analysis.lockin.residual_factor`) — the observed slope times a known function of x,
        whatever the size of the step. Readings every τ/2 give the slope; the reading is accepted when that
        predicted residual is below ``settle_tolerance``·|R| + 1e-4 of full scale (the reading's resolution, so
        noise-level signals below the band gap settle too). Every wait is bounded by the 99 % settling time.
        An overloaded reading returns at once, and so does a falling reading already below 20 % of full scale
        (its final value is smaller still), so the caller can change the range without waiting twice.
        """
        tau, clock = self.time_constant_s, self.station.clock
        if self.settle == "fixed":
            self.wait(max(t0 + self.fixed_wait_tau * tau - clock.now(), 0.0))
            r, phase, overload = self._read()
            return r, phase, overload, True
        previous: tuple[float, float] | None = None
        self.wait(max(t0 + tau - clock.now(), 0.0))
        while True:
            r, phase, overload = self._read()
            t = clock.now()
            if overload:
                return r, phase, True, False
            if previous is not None:
                full_scale = self.station["lockin"].sensitivity / self._gain
                if r < 0.2 * full_scale and r <= previous[1] and self.station["lockin"].sensitivity_index > 0:
                    return r, phase, False, False  # falling and already too small for the range: re-range now
                slope_per_tau = abs(r - previous[1]) / ((t - previous[0]) / tau)
                floor = RESOLUTION * full_scale
                residual = slope_per_tau * residual_factor((t - t0) / tau, self._poles)
                if residual <= self.settle_tolerance * abs(r) + floor:
                    return r, phase, False, True
            if t - t0 >= self._max_wait_s:
                return r, phase, False, False
            previous = (t, r)
            self.wait(tau / 2)

    def _measure_point(self) -> dict[str, Any]:
        """Settle at the present wavelength, ranging the sensitivity on settled readings, and return the point.

        The settling clock starts when the monochromator reports the move complete (late, hence conservative)
        and restarts at every sensitivity change (the output filter restarts then). Overload → 10× less
        sensitive; a settled reading below 20 % of full scale → the range that holds it with 25 % headroom.
        """
        lockin, clock = self.station["lockin"], self.station.clock
        t_start = t0 = clock.now()
        floor = 0  # the most sensitive range that did not overload at this wavelength (e.g. a DC bias light)
        for _ in range(8):
            r, phase, overload, converged = self._settle(t0)
            index = lockin.sensitivity_index
            full_scale = lockin.sensitivity / self._gain
            if (overload or r > 0.95 * full_scale) and index < 26:
                floor = index + 1
                lockin.sensitivity_index = min(index + 3, 26)
            elif r < 0.2 * full_scale and index > floor:
                lockin.auto_sensitivity(r * self._gain)
                if lockin.sensitivity_index < floor:
                    lockin.sensitivity_index = floor
                if lockin.sensitivity_index == index:
                    break
            else:
                break
            t0 = clock.now()
        return {
            "current_A": r * math.pi / math.sqrt(2),  # chopped pp current from the fundamental's rms (§3.3)
            "phase_deg": phase,
            "time_constant_s": self.time_constant_s,
            # the lock-in's full scale referred to the detector: V ÷ preamp V/A, or A on its current input
            "sensitivity_A": lockin.sensitivity / self._gain,
            "overload": int(overload),
            "converged": int(converged),
            "settle_time_s": clock.now() - t_start,
        }

    def _scan(self, stream: str, grid: np.ndarray, derived: Callable[[float, dict[str, Any]], dict[str, Any]],
              done: int = 0, total: int | None = None) -> None:
        """Measure every wavelength of ``grid``; record each point plus the columns ``derived(λ, point)`` adds."""
        total = total or len(grid)
        for k, lam in enumerate(grid):
            self.check_abort()
            grating, position = self._go_to(float(lam))
            point = self._measure_point()
            row = {"wavelength_nm": float(lam), "time_s": self.station.clock.now() - self._t_start,
                   "grating": grating, "filter": position, **point}
            row.update(derived(float(lam), point))
            self.record(stream, row)
            self.progress((done + k + 1) / total)

    def shutdown(self) -> None:
        """Nothing beyond the engine's safe state (monochromator shutter closed, bias-light shutter closed)."""


class EQECalibrationProcedure(_WavelengthScan):
    """Measure the reference detector(s) over the grid: the beam power P(λ) for later EQE runs."""

    NAME = "eqe-calibration"
    STREAMS = {
        "calibration": StreamSpec(
            [*_POINT_COLUMNS, Column("detector", "", "str"), Column("responsivity_A_W", "A/W"),
             Column("beam_power_W", "W")],
            signal="beam_power_W",
            axes="wavelength_nm",
        )
    }

    def validate(self, station) -> None:  # noqa: ANN001
        super().validate(station)
        reference_detectors_end_nm(station.config)  # every table readable: one line now, not a failure mid-run

    def startup(self) -> None:
        from labctl.calibration import load_responsivity

        self._tables = {}
        for name, det in self.station.config.eqe.reference_detectors.items():
            table = load_responsivity(det.responsivity)
            self._tables[name] = table
            self.log(f"reference {name}: {table.name} sha256 {table.sha256[:16]}… "
                     f"{'(TYPICAL curve, not a calibration)' if table.is_builtin_typical else ''}".rstrip())
        self._configure_lockin()
        self._start_optics()

    def execute(self) -> None:
        grid = self.wavelengths_nm()
        self._t_start = self.station.clock.now()
        spans = {}
        for name, det in self.station.config.eqe.reference_detectors.items():
            lo = max(det.min_nm, float(self._tables[name].wavelength_nm[0]))
            hi = min(det.max_nm, float(self._tables[name].wavelength_nm[-1]))
            spans[name] = grid[(grid >= lo) & (grid <= hi)]
        total, done = sum(len(points) for points in spans.values()), 0
        for name, points in spans.items():
            if points.size == 0:
                continue
            self.station.place_in_beam(name)
            self.log(f"measuring reference {name} over {points[0]:g}-{points[-1]:g} nm")
            table = self._tables[name]

            def derived(lam: float, point: dict[str, Any], name: str = name, table=table) -> dict[str, Any]:  # noqa: ANN001
                resp = float(np.interp(lam, table.wavelength_nm, table.responsivity_A_W))
                return {"detector": name, "responsivity_A_W": resp, "beam_power_W": point["current_A"] / resp}

            self._scan("calibration", points, derived, done, total)
            done += len(points)
        self.station.place_in_beam("dut")

    def analyse(self, streams: Mapping[str, pd.DataFrame]) -> dict[str, Any]:
        data = streams.get("calibration", pd.DataFrame())
        tables = {name: {k: v for k, v in t.metadata().items() if k != "provenance"}
                  for name, t in getattr(self, "_tables", {}).items()}
        if data.empty:
            return {"reference_detectors": tables}
        # where two detectors measured the same wavelength their beam powers must agree (methods ref. §3.2: ~2 %)
        both = data.groupby("wavelength_nm")["beam_power_W"].agg(["min", "max", "count"])
        both = both[both["count"] > 1]
        overlap = float(((both["max"] - both["min"]) / both["max"]).max()) if len(both) else None
        if overlap is not None and overlap > 0.02:
            self.log(f"REFERENCE OVERLAP WARNING: detectors disagree by up to {100 * overlap:.1f} % on the beam power")
        return {
            "reference_detectors": tables,
            "overlap_max_deviation": overlap,
            "wavelength_min_nm": float(data.wavelength_nm.min()),
            "wavelength_max_nm": float(data.wavelength_nm.max()),
            "points": int(len(data)),
            "overloaded_points": int(data.overload.sum()),
            "unconverged_points": int((data.converged == 0).sum()),
        }

    @classmethod
    def plot(cls, ax: Axes, run: RunData) -> str:
        """The beam power against wavelength, one curve per reference detector."""
        from procedures import plots

        if plots.has_rows(run, "calibration"):
            plots.plot_beam_power(ax, run)
        return run.info.get("procedure", "")


def beam_power_from_calibration(calibration: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(wavelength_nm, beam power W) from a calibration run; where detectors overlap, their mean."""
    grouped = calibration.groupby("wavelength_nm")["beam_power_W"].mean()
    return grouped.index.to_numpy(dtype=float), grouped.to_numpy(dtype=float)


def calibration_grid_error(calibration: pd.DataFrame, grid_nm: np.ndarray, bench: EQEBenchConfig) -> str | None:
    """Why the beam power of ``calibration`` cannot be used on the EQE grid ``grid_nm``, or None (methods ref. §3.2).

    The beam power changes stepwise at every grating or filter change, so it is interpolated only between two
    calibration points measured with the grating and filter the station's table gives the EQE point; an EQE
    point on a calibration wavelength needs that point's setting (else the table changed since).
    """
    cal = calibration.groupby("wavelength_nm")[["grating", "filter"]].first().sort_index()
    lam = cal.index.to_numpy(dtype=float)
    settings = [(int(g), int(f)) for g, f in zip(cal.grating, cal["filter"], strict=True)]
    straddle: list[float] = []
    changes: set[tuple[float, float]] = set()
    changed: list[str] = []
    for x in grid_nm:
        row = bench.row_for(float(x))
        want = (row.grating, row.filter)
        k = int(np.searchsorted(lam, x - 1e-6))
        if k < lam.size and abs(lam[k] - x) <= 1e-6:
            if settings[k] != want:
                changed.append(f"{x:g} nm (calibrated with grating {settings[k][0]}, filter {settings[k][1]}; "
                               f"now grating {want[0]}, filter {want[1]})")
        elif 0 < k < lam.size and not settings[k - 1] == settings[k] == want:
            straddle.append(float(x))
            if settings[k - 1] != settings[k]:
                changes.add((float(lam[k - 1]), float(lam[k])))
    parts = []
    if straddle:
        where = " and ".join(f"{lo:g}–{hi:g} nm" for lo, hi in sorted(changes)) or "the grid"
        shown = ", ".join(f"{x:g}" for x in straddle[:6]) + (" …" if len(straddle) > 6 else "")
        parts.append(f"the calibration changes grating or filter between {where}, and the EQE points {shown} nm "
                     "would need its beam power interpolated across the change; use a grid with no point strictly "
                     "inside those intervals (e.g. the calibration's own grid)")
    if changed:
        parts.append("the station's order-sorting table changed since the calibration at " + "; ".join(changed[:3]))
    return "; ".join(parts) + ", or run eqe-calibration on this grid" if parts else None


class EQEProcedure(_WavelengthScan):
    """EQE of the device under test at short circuit, against a calibration run."""

    NAME = "eqe"
    STREAMS = {
        "eqe": StreamSpec(
            [*_POINT_COLUMNS, Column("eqe", "1"), Column("beam_power_W", "W"), Column("reference_run", "", "str")],
            signal="eqe",
            axes="wavelength_nm",
        )
    }

    calibration_file = Parameter("Calibration run file (empty = the newest in the data folder)", default="")
    jv_file = Parameter("J-V run file to compare Jsc with (optional)", default="")
    bias_light = BooleanParameter("White bias light (solar-simulator shutter open)", default=False)
    area_cm2 = FloatParameter("Aperture area", units="cm^2", default=0.049, minimum=1e-6, maximum=1000)
    band_edge_fraction = FloatParameter("Band edge reached when the EQE at the last point is below this fraction "
                                        "of its maximum", units="", default=BAND_EDGE_FRACTION, minimum=1e-4,
                                        maximum=0.5)
    jsc_tolerance = FloatParameter("Allowed |integrated EQE Jsc / J-V Jsc - 1|", units="", default=0.05,
                                   minimum=0.001, maximum=1.0)

    def validate(self, station) -> None:  # noqa: ANN001
        self._load_calibration()
        super().validate(station)  # resolves stop_nm = 0 (needs the calibration's range)
        lam = self._cal_lam
        grid = self.wavelengths_nm()
        if grid.min() < lam.min() - 1e-6 or grid.max() > lam.max() + 1e-6:
            raise ConfigError(f"parameters start_nm/stop_nm = {grid.min():g}-{grid.max():g} nm: outside the "
                              f"calibration run's range {lam.min():g}-{lam.max():g} nm ({self._calibration_path})")
        problem = calibration_grid_error(self._calibration.streams["calibration"], grid, station.config.eqe)
        if problem:  # never interpolated across a grating or filter change (methods ref. §3.2)
            raise ConfigError(f"parameters start_nm/step_nm = {self.start_nm:g}/{self.step_nm:g} nm against the "
                              f"calibration run {self._reference_run}: {problem}")
        if self.jv_file:
            self._check_jv_file()
        why = getattr(station.light(), "why_unavailable", lambda on: None)(True) if self.bias_light else None
        if why is not None:
            raise ConfigError(f"parameter bias_light = true: {why}")

    def _check_jv_file(self) -> None:
        """The J–V run to compare Jsc with must be a readable run file of the ``jv`` procedure."""
        if not Path(self.jv_file).is_file():
            raise ConfigError(f"parameter jv_file = {self.jv_file!r}: no such file")
        try:
            procedure = load_run(self.jv_file).info.get("procedure")
        except (OSError, KeyError, ValueError):
            raise ConfigError(f"parameter jv_file = {self.jv_file!r}: not a labctl run file (allowed: the .h5 file "
                              "of a `labctl run jv`)") from None
        if procedure != "jv":
            raise ConfigError(f"parameter jv_file = {self.jv_file!r}: a run of procedure {procedure}, not a J–V run "
                              "(allowed: the .h5 file of a `labctl run jv`)")

    def _load_calibration(self) -> None:
        """Find and read the calibration run: its beam power per wavelength and run id."""
        self._calibration_path = self._find_calibration()
        calibration = load_run(self._calibration_path)
        if calibration.info.get("procedure") != "eqe-calibration" or "calibration" not in calibration.streams:
            raise ConfigError(f"parameter calibration_file = {str(self._calibration_path)!r}: not an "
                              "eqe-calibration run file")
        self._calibration = calibration
        self._cal_lam, self._cal_power = beam_power_from_calibration(calibration.streams["calibration"])
        self._reference_run = calibration.info.get("run_id", "")

    def _auto_stop_nm(self, station) -> float:  # noqa: ANN001
        """Where the reference detectors end, or the calibration run if it ends sooner."""
        return min(super()._auto_stop_nm(station), float(self._cal_lam.max()))

    def _find_calibration(self) -> Path:
        """``calibration_file``, else the station's newest completed eqe-calibration run in the run catalog
        (station.catalog, else the data folder's catalog.sqlite) whose file exists. When the catalog knows none
        but the data folder exists, the folder is reindexed first (runs made without the catalog: by a
        RunEngine(catalog=False), or files copied in), then asked again."""
        if self.calibration_file:
            path = Path(self.calibration_file)
            if not path.exists():
                raise ConfigError(f"parameter calibration_file = {self.calibration_file!r}: no such file")
            return path
        found, where = self.newest_run("eqe-calibration")
        if found is not None:
            return found
        raise ConfigError(f"no completed eqe-calibration run{where}: run `labctl run eqe-calibration` first, or "
                          "give --set calibration_file=PATH")

    def startup(self) -> None:
        self.log(f"calibration: {self._calibration_path} (run {self._reference_run})")
        self._configure_lockin()
        self._start_optics()
        self.station.place_in_beam("dut")
        if self.bias_light:
            self.station.light().set_light(True)

    def execute(self) -> None:
        self._t_start = self.station.clock.now()

        def derived(lam: float, point: dict[str, Any]) -> dict[str, Any]:
            power = float(np.interp(lam, self._cal_lam, self._cal_power))
            eqe = point["current_A"] / (power * lam / HC_NM_V) if power > 0 else float("nan")
            return {"eqe": eqe, "beam_power_W": power, "reference_run": self._reference_run}

        self._scan("eqe", self.wavelengths_nm(), derived)

    def analyse(self, streams: Mapping[str, pd.DataFrame]) -> dict[str, Any]:
        from labctl.analysis.eqe import integrated_jsc_mA_cm2

        data = streams.get("eqe", pd.DataFrame())
        if data.empty:
            return {}
        data = data[np.isfinite(data.eqe)]
        results: dict[str, Any] = {
            "jsc_integrated_mA_cm2": integrated_jsc_mA_cm2(data.wavelength_nm, data.eqe),
            "wavelength_min_nm": float(data.wavelength_nm.min()),
            "wavelength_max_nm": float(data.wavelength_nm.max()),
            "reference_run": self._reference_run,
            "overloaded_points": int(data.overload.sum()),
            "unconverged_points": int((data.converged == 0).sum()),
            "order_sorting_problems": getattr(self, "_order_problems", []),
        }
        results.update(self._band_edge(data))
        if self.jv_file:
            results.update(self._jsc_agreement(results["jsc_integrated_mA_cm2"]))
        return results

    def _band_edge(self, data: pd.DataFrame) -> dict[str, Any]:
        """Whether the scan reached the band edge; a warning naming the stop_nm that would, when it did not."""
        from labctl.analysis.eqe import check_band_edge

        edge = check_band_edge(data.wavelength_nm, data.eqe, self.band_edge_fraction)
        if not edge.reached:
            end = reference_detectors_end_nm(self.station.config)
            if edge.last_wavelength_nm < end - self.step_nm / 2:
                advice = f"measure further with --set stop_nm={end:g} (where the station's reference detectors end)"
                if float(self._cal_lam.max()) < end:
                    advice += f", after `labctl run eqe-calibration --set stop_nm={end:g}`"
            else:
                advice = f"the station's reference detectors end at {end:g} nm: the bench cannot measure further"
            self.log(
                f"BAND-EDGE WARNING: EQE at the last point ({edge.last_wavelength_nm:g} nm) is {edge.eqe_last:.3f}, "
                f"{100 * edge.last_fraction:.0f} % of its maximum {edge.eqe_max:.3f} (the band edge needs below "
                f"{100 * edge.fraction:g} %): the scan stopped before the absorption edge and the integrated Jsc "
                f"misses the response beyond it; {advice}"
            )
        return {"band_edge_reached": edge.reached, "band_edge_fraction": edge.fraction,
                "eqe_at_last_point": edge.eqe_last, "eqe_max": edge.eqe_max}

    def _jsc_agreement(self, eqe_jsc_mA_cm2: float) -> dict[str, Any]:
        """Integrated-EQE Jsc against the J–V run's (the mean of its directions), with a warning outside tolerance."""
        from labctl.analysis.eqe import check_jsc_agreement, jsc_ratio

        jv = load_run(self.jv_file)
        jsc = [r["jsc_mA_cm2"] for r in jv.results.values() if isinstance(r, dict) and r.get("jsc_mA_cm2")]
        out: dict[str, Any] = {"jsc_tolerance": self.jsc_tolerance}
        if not jsc:
            self.log(f"JSC WARNING: the J–V run {self.jv_file} has no Jsc to compare the integrated EQE with")
            return {**out, "jsc_jv_mA_cm2": None, "jsc_ratio": None}
        jv_jsc = float(np.mean(jsc))
        problems = check_jsc_agreement(eqe_jsc_mA_cm2, jv_jsc, self.jsc_tolerance)
        for problem in problems:
            self.log(f"JSC WARNING: {problem}")
        return {**out, "jsc_jv_mA_cm2": jv_jsc, "jsc_ratio": jsc_ratio(eqe_jsc_mA_cm2, jv_jsc),
                "jsc_problems": problems}

    # -- for people ---------------------------------------------------------------------------------------------
    @classmethod
    def summarise(cls, console: Console, results: Mapping[str, Any]) -> None:
        """The EQE checks (band edge, integrated Jsc against the J–V Jsc), then every scalar result."""
        from procedures import summary

        if "jsc_integrated_mA_cm2" in results:
            summary.print_eqe_checks(console, results)
        summary.print_scalars(console, results)

    @classmethod
    def plot(cls, ax: Axes, run: RunData) -> str:
        """EQE against wavelength, with the integrated Jsc."""
        from procedures import plots

        if plots.has_rows(run, "eqe"):
            plots.plot_eqe(ax, run)
        return run.info.get("procedure", "")
