"""Light-intensity-dependent open-circuit voltage over 70 dB (methods ref. §4): calibration and measurement.

Two procedures share the bench (a 520 nm laser, two FW102C wheels of ND filters on its path, an integrating
sphere with a monitor photodiode, the device or the reference sensor at the sample port):

* ``voc-intensity-calibration`` transfers the reference sensor's calibration (an S121C-type Si sensor on a
  PM100, NIST-traceable) to the in-sphere monitor photodiode at the laser wavelength (methods ref. §4.2,
  calibration chain): the reference at the sample port, the monitor's dark current with the laser off, then the
  reference power P_ref (W) and the monitor current I_mon (A) at several laser powers; k = P_ref/(I_mon − I_dark)
  (W/A) by a least-squares line through the dark point, and the irradiance per monitor current
  E/I = k/A_aperture (W/m² per A). Optionally each filter slot's transmission is measured with the monitor and
  compared with the wheel's calibrated ``filters`` settings. Stored as its own run.
* ``voc-intensity`` measures Voc at I = 0 (the SMU sourcing 0 A and reading the voltage) at every step of the
  intensity ladder built from all combinations of the two wheels' slots (:func:`build_ladder`), from the
  irradiance the monitor gives through the calibration (and E = E_0·T_1·T_2 where the monitor is below its
  floor: methods ref. §4.2), in suns-equivalent (1 sun = the irradiance at which the device's short-circuit current
  under the laser equals its AM1.5G Jsc from a J–V run, or a given calibrated 1-sun-equivalent irradiance).
  The analysis is :func:`labctl.analysis.voc_intensity.analyse_voc_intensity`.

Sign conventions as in ``procedures.hold``: device voltage, the SMU reading negated for ``polarity = p-i-n``;
currents photocurrent-positive.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pymeasure.experiment import BooleanParameter, FloatParameter, IntegerParameter, ListParameter, Parameter

from drivers.oxxius_laserboxx import STATUS as LASER_STATUS
from labctl.analysis.sdm import STC_TEMPERATURE_K, thermal_voltage_V
from labctl.analysis.spectra import HC_J_NM
from labctl.config import ConfigError
from labctl.storage import Column, load_run
from procedures.base import LabProcedure, StreamSpec, source_meter_limits

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from rich.console import Console

    from labctl.storage import RunData

CALIBRATION_NAME = "voc-intensity-calibration"
WHEELS = ("od_wheel_1", "od_wheel_2")
#: a ladder spanning less than this (optical dB, 10·log10 of the transmission ratio) is warned about (the issue)
MIN_LADDER_DB = 70.0
#: the Keithley 2450's 10 nA-range source accuracy at I = 0 (0.1 % of 0 A + 100 pA) and its voltmeter input
#: resistance (> 10 GΩ): instruments ref. §2, methods ref. §4.2
SMU_OFFSET_A = 100e-12
SMU_INPUT_RESISTANCE_OHM = 10e9
#: the monitor may be read as a current by a power meter or by a second SMU at 0 V
MONITOR_CAPABILITIES = ("power_meter", "source_meter")
#: LaserBoxx ``?STA`` codes that stop a run (LBX user's guide: 4 error, 5 alarm)
STA_ERROR, STA_ALARM = 4, 5
POWERS_ALLOWED = "a comma-separated list of laser powers (mW), each > 0 and at most 1000"


class VocIntensityError(RuntimeError):
    """A bench problem during a light-intensity Voc run (a stuck wheel, a laser fault): one line for a person."""


# -- the ladder (pure) --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LadderStep:
    """One intensity step: the slot of each wheel and their calibrated transmissions' product."""

    slot_1: int
    slot_2: int
    transmission: float
    od_nominal: float


def wheel_filters(settings: Any) -> dict[int, tuple[float, float]]:
    """slot → (nominal OD, calibrated transmission) from a wheel's settings (``FW102CSettings.filters``: a mapping
    of slot to an object or mapping with ``od`` and ``transmission``); {} when the settings have none."""
    filters = getattr(settings, "filters", None) if not isinstance(settings, Mapping) else settings.get("filters")
    out: dict[int, tuple[float, float]] = {}
    for slot, f in (filters or {}).items():
        od = f["od"] if isinstance(f, Mapping) else f.od
        t = f["transmission"] if isinstance(f, Mapping) else f.transmission
        out[int(slot)] = (float(od), float(t))
    return out


def build_ladder(filters_1: Mapping[int, tuple[float, float]], filters_2: Mapping[int, tuple[float, float]],
                 tolerance: float = 0.1) -> tuple[list[LadderStep], list[tuple[LadderStep, LadderStep]]]:
    """All combinations of the two wheels' slots sorted by increasing calibrated transmission T_1·T_2, with
    near-duplicates dropped (methods ref. §4.2: OD_total = OD_1 + OD_2).

    Combinations whose transmissions are within ``tolerance`` (relative, of the group's lowest) of one another
    form a group; the one kept needs the fewest wheel moves from the step kept before it (ties: the lower
    transmission, then the lower slots).

    Returns
    -------
    ladder, dropped
        The steps (increasing transmission) and the (dropped, kept instead) pairs.
    """
    combos = sorted((LadderStep(s1, s2, t1 * t2, od1 + od2)
                     for s1, (od1, t1) in filters_1.items() for s2, (od2, t2) in filters_2.items()),
                    key=lambda s: (s.transmission, s.slot_1, s.slot_2))
    ladder: list[LadderStep] = []
    dropped: list[tuple[LadderStep, LadderStep]] = []
    i = 0
    while i < len(combos):
        j = i
        while j + 1 < len(combos) and combos[j + 1].transmission <= combos[i].transmission * (1 + tolerance):
            j += 1
        group = combos[i:j + 1]
        prev = ladder[-1] if ladder else None

        def moves(step: LadderStep, prev: LadderStep | None = prev) -> int:
            return 0 if prev is None else int(step.slot_1 != prev.slot_1) + int(step.slot_2 != prev.slot_2)

        keep = min(group, key=lambda s: (moves(s), s.transmission, s.slot_1, s.slot_2))
        ladder.append(keep)
        dropped.extend((s, keep) for s in group if s is not keep)
        i = j + 1
    return ladder, dropped


def ladder_dynamic_range_dB(ladder: list[LadderStep]) -> float:
    """10·log10(T_max/T_min) of the ladder (optical dB, methods ref. §0)."""
    t = [s.transmission for s in ladder]
    return 10 * math.log10(max(t) / min(t)) if t and min(t) > 0 else 0.0


def ladder_passes(ladder: list[LadderStep], direction: str) -> list[tuple[str, int, LadderStep]]:
    """(direction, step index, step) in measuring order: ``up`` (low to high intensity), ``down``, or ``up-down``
    (up, then down again over every step); the index is the step's place in the increasing ladder."""
    up = [("up", k, s) for k, s in enumerate(ladder)]
    down = [("down", k, s) for k, s in reversed(list(enumerate(ladder)))]
    return {"up": up, "down": down, "up-down": up + down}[direction]


# -- calibration and flux (pure) ---------------------------------------------------------------------------------
def fit_through_dark_point(monitor_A: np.ndarray, reference_W: np.ndarray) -> tuple[float, float, float]:
    """k (W/A) of P_ref = k·ΔI, ΔI = I_mon − I_dark, a least-squares line through the dark point (the origin of
    ΔI, P_ref − P_dark); its standard error (NaN with one point) and the largest |residual|/P_ref."""
    x, y = np.asarray(monitor_A, dtype=float), np.asarray(reference_W, dtype=float)
    sxx = float(np.sum(x * x))
    k = float(np.sum(x * y) / sxx)
    resid = y - k * x
    stderr = math.sqrt(float(np.sum(resid**2)) / (x.size - 1) / sxx) if x.size > 1 else math.nan
    worst = float(np.max(np.abs(resid) / np.abs(y))) if np.all(y != 0) else math.nan
    return k, stderr, worst


def aperture_area_m2(diameter_mm: float) -> float:
    """Area (m²) of a circular aperture of ``diameter_mm`` (mm)."""
    return math.pi * (diameter_mm * 1e-3 / 2) ** 2


def photon_flux_cm2_s(irradiance_W_m2: float, wavelength_nm: float) -> float:
    """Photons per cm² per s of monochromatic light: Φ = E·λ/(h·c) (methods ref. §4.2, step 3)."""
    return irradiance_W_m2 * 1e-4 / (HC_J_NM / wavelength_nm)


def predicted_residual_V(d1: float, d2: float) -> float:
    """How far (V) a reading relaxing exponentially still has to go, from its last two equal-interval changes
    ``d1`` then ``d2`` (V): with r = d2/d1 = exp(−Δt/τ), the rest of the geometric series, |d2|·r/(1 − r)
    (Aitken's extrapolation). Changes of opposite sign (noise) give max(|d1|, |d2|); a change not shrinking
    gives inf (no estimate)."""
    if d1 * d2 > 0:
        r = d2 / d1
        return abs(d2) * r / (1 - r) if r < 1 else math.inf
    return max(abs(d1), abs(d2))


def jv_figures(run: Any, key: str) -> list[float]:
    """The figure ``key`` (e.g. ``jsc_mA_cm2``, ``voc_V``) of every scan of a J–V run's results that has it."""
    return [float(r[key]) for r in (run.results or {}).values() if isinstance(r, dict) and r.get(key)]


def laser_wavelength_nm(identity: str) -> float | None:
    """The wavelength (nm) in an Oxxius ``INF?`` reply ``LBX-<λ nm>-<P mW>-...``, or None."""
    m = re.match(r"\s*LBX-(\d+(?:\.\d+)?)-", identity)
    return float(m.group(1)) if m else None


# -- shared bench handling ---------------------------------------------------------------------------------------
class _LaserBench(LabProcedure):
    """Shared checks and instrument handling of both procedures."""

    #: role → the capabilities one of which it must offer
    CAPS: dict[str, tuple[str, ...]] = {}

    laser_stabilise_s = FloatParameter("Wait after the laser power changes", units="s", default=2.0, minimum=0,
                                       maximum=600)

    def validate(self, station) -> None:  # noqa: ANN001
        super().validate(station)
        for role, caps in self.CAPS.items():
            if role not in station.config.instruments:
                continue
            if not any(station.offers(role, c) for c in caps):
                station.check_capability(role, caps[0], needed_by=f"procedure {self.NAME}")  # raises, naming it

    def _given_or_newest_run(self, parameter: str, procedure: str, missing: str,
                             sample: str | None = None) -> tuple[Path, Any]:
        """(path, loaded run) of the file parameter ``parameter`` names, else of the newest completed
        ``procedure`` run in the catalog (of ``sample``, if given); a one-line ConfigError otherwise, ending in
        ``missing`` when there is none. No instrument I/O."""
        value = getattr(self, parameter)
        if value:
            path = Path(value)
            if not path.is_file():
                raise ConfigError(f"parameter {parameter} = {value!r}: no such file")
        else:
            path, where = self.newest_run(procedure, sample=sample)
            if path is None:
                raise ConfigError(f"no completed {procedure} run{where}{missing}")
        try:
            return path, load_run(path)
        except (OSError, KeyError, ValueError):
            raise ConfigError(f"parameter {parameter} = {str(path)!r}: not a labctl run file") from None

    def _find_one_sun(self) -> None:
        """1 sun: ``one_sun_mW_cm2`` (where the procedure has it), else the Jsc (mA/cm²) of ``jv_file``, else of the
        sample's newest completed jv run: sets ``_jsc_mA_cm2`` and ``_jv_path``. No instrument I/O."""
        self._jsc_mA_cm2 = None
        self._jv_path = None
        if getattr(self, "one_sun_mW_cm2", 0.0) > 0:
            return
        path, run = self._given_or_newest_run(
            "jv_file", "jv", " for 1 sun: give --set jv_file=PATH (a J–V run under AM1.5G) or --set "
            "one_sun_mW_cm2=VALUE (a calibrated 1-sun-equivalent irradiance)", sample=getattr(self, "sample", None))
        if run.info.get("procedure") != "jv":
            raise ConfigError(f"parameter jv_file = {str(path)!r}: a run of procedure {run.info.get('procedure')}, "
                              "not a J–V run (allowed: the .h5 file of a `labctl run jv`)")
        jsc = jv_figures(run, "jsc_mA_cm2")
        if not jsc:
            raise ConfigError(f"parameter jv_file = {str(path)!r}: the J–V run has no Jsc (a dark run?); give a light "
                              "J–V run or --set one_sun_mW_cm2=VALUE")
        self._jsc_mA_cm2 = float(np.mean(jsc))
        self._jv_path = path
        self.jv_file = str(path)  # the run file records the J–V run used (found in the catalog)

    def _monitor_kind(self) -> str:
        return "power_meter" if self.station.offers("monitor", "power_meter") else "source_meter"

    def _start_monitor(self, wavelength_nm: float) -> None:
        mon = self.station["monitor"]
        if self._monitor_kind() == "power_meter":
            try:
                mon.set_wavelength_nm(wavelength_nm)
            except (ValueError, RuntimeError) as exc:  # a current reading does not need it
                self.log(f"monitor: wavelength correction not set ({exc}); reading its current")
        else:  # a second SMU holding the photodiode at 0 V (short circuit)
            mon.configure_voltage_source(compliance_A=0.01, nplc=1.0)
            mon.set_voltage(0.0)
            mon.enable_output()

    def _monitor_A(self) -> float:
        """One monitor photodiode reading (A), photocurrent positive."""
        mon = self.station["monitor"]
        if self._monitor_kind() == "power_meter":
            return float(mon.read_current_A())
        return -float(mon.measure_point().current_A[0])

    def _laser_off(self) -> None:
        """Emission off, never raising (the station's safe state does it again and reads it back)."""
        try:
            self.station["laser"].set_emission(False)
        except Exception as exc:  # noqa: BLE001 - the error being reported matters more
            self.log(f"WARNING: could not switch the laser off at once ({type(exc).__name__}: {exc})")

    def _check_laser(self) -> None:
        """A laser fault (``?F`` non-zero) → emission off and :class:`VocIntensityError`."""
        laser = self.station["laser"]
        errors = laser.check_errors()
        if errors:
            self._laser_off()
            code, what = errors[0]
            raise VocIntensityError(f"laser fault {code} ({what}, '?F'): emission switched off; clear the fault "
                                    "and run again")
        status = laser.status if hasattr(type(laser), "status") else None  # the LaserBoxx's ?STA
        if status in (STA_ERROR, STA_ALARM):
            self._laser_off()
            raise VocIntensityError(f"laser status {status} ({LASER_STATUS.get(status)}, '?STA'): emission switched "
                                    "off; check the laser and run again")

    def _laser_on(self, power_mW: float) -> None:
        laser = self.station["laser"]
        max_mW = laser.max_power_W * 1e3
        if power_mW > max_mW + 1e-9:
            raise VocIntensityError(f"laser power {power_mW:g} mW: above this laser's maximum {max_mW:g} mW (?MAXLP)")
        laser.set_power_W(power_mW * 1e-3)
        laser.set_emission(True)
        self.wait(self.laser_stabilise_s)
        self._check_laser()

    def _laser_wavelength_nm(self, override_nm: float) -> float:
        if override_nm > 0:
            return override_nm
        identity = self.station.identities.get("laser", "") if hasattr(self.station, "identities") else ""
        found = laser_wavelength_nm(identity or self.station["laser"].id)
        if found is None:
            raise VocIntensityError(f"the laser's identity {identity!r} gives no wavelength: set wavelength_nm")
        return found

    def _move_wheel(self, role: str, slot: int) -> None:
        """Move one wheel (returns when the controller prompts again); a wheel that does not get there (the
        driver's read timeout: stuck) → laser off and :class:`VocIntensityError` naming it."""
        try:
            self.station[role].position = slot
        except Exception as exc:  # noqa: BLE001 - a timeout (VisaIOError), a framing error, a wrong slot
            self._laser_off()
            timeout = getattr(self.station[role], "move_timeout_s", None)
            within = f" within its move timeout ({timeout:g} s)" if timeout else ""
            raise VocIntensityError(f"filter wheel {role} did not reach slot {slot}{within}: stuck or "
                                    f"disconnected? laser switched off ({type(exc).__name__}: {exc})") from exc
        self._slots[role] = slot

    def _open_slots(self) -> dict[str, int]:
        """Each wheel's slot of highest calibrated transmission."""
        out = {}
        for role in WHEELS:
            if role in self.station.config.instruments:
                filters = wheel_filters(self.station.config.instruments[role].settings)
                if filters:
                    out[role] = max(filters, key=lambda s: filters[s][1])
        return out

    def _average(self, read: Any, n: int) -> tuple[float, float]:
        """Mean and standard deviation (ddof 1; 0 for one reading) of ``n`` calls of ``read``."""
        values = np.array([read() for _ in range(n)], dtype=float)
        return float(values.mean()), float(values.std(ddof=1)) if n > 1 else 0.0


# -- the calibration -----------------------------------------------------------------------------------------------
class VocIntensityCalibrationProcedure(_LaserBench):
    """Transfer the reference sensor's calibration to the in-sphere monitor photodiode at the laser wavelength."""

    NAME = CALIBRATION_NAME
    REQUIRES = ("laser", "monitor", "reference")
    OPTIONAL = WHEELS
    CAPS = {"laser": ("laser",), "monitor": MONITOR_CAPABILITIES, "reference": ("power_meter",),
            "od_wheel_1": ("filter_wheel",), "od_wheel_2": ("filter_wheel",)}
    STREAMS = {
        "calibration": StreamSpec(
            [Column("laser_power_mW", "mW"), Column("laser_on", "", "i1"), Column("reference_power_W", "W"),
             Column("reference_power_std_W", "W"), Column("monitor_current_A", "A"),
             Column("monitor_current_std_A", "A"), Column("readings", "", "i4"), Column("time_s", "s")],
            signal="reference_power_W", axes="monitor_current_A"),
        "filters": StreamSpec(
            [Column("wheel", "", "str"), Column("slot", "", "i4"), Column("monitor_signal_A", "A"),
             Column("transmission_measured", ""), Column("transmission_calibrated", ""),
             Column("deviation", ""), Column("above_floor", "", "i1")],
            signal="transmission_measured", axes="slot"),
    }

    powers_mW = Parameter("Laser powers (mW, comma separated)", default="20, 40, 60, 80")
    powers_mW.allowed = POWERS_ALLOWED
    readings_per_level = IntegerParameter("Readings averaged per level", default=10, minimum=2, maximum=10_000)
    wavelength_nm = FloatParameter("Laser wavelength (0 = from the laser's identity)", units="nm", default=0.0,
                                   minimum=0, maximum=3000)
    reference_aperture_mm = FloatParameter("Reference sensor aperture diameter (S121C 9.5 mm)", units="mm",
                                           default=9.5, minimum=0.1, maximum=100)
    monitor_floor_sigmas = FloatParameter("Monitor floor in standard deviations of its dark reading", units="",
                                          default=100.0, minimum=1, maximum=1e6)
    check_filters = BooleanParameter("Measure every filter slot's transmission with the monitor", default=True)
    filter_tolerance = FloatParameter("Allowed |measured/calibrated transmission - 1|", units="", default=0.05,
                                      minimum=1e-4, maximum=1.0)

    def validate(self, station) -> None:  # noqa: ANN001
        super().validate(station)
        self._powers = self._parse_powers()
        sim = getattr(station.config, "simulation", None)
        sphere = getattr(sim, "sphere", None) if getattr(sim, "enabled", False) else None
        true_mm = getattr(sphere, "reference_aperture_mm", None)
        if true_mm is not None and not math.isclose(true_mm, self.reference_aperture_mm, rel_tol=1e-9):
            raise ConfigError(f"parameter reference_aperture_mm = {self.reference_aperture_mm:g}: the simulated "
                              f"bench's reference sensor has a {true_mm:g} mm aperture "
                              f"(simulation.sphere.reference_aperture_mm); allowed: {true_mm:g}")
        if not station.can_place_in_beam:
            raise ConfigError(f"procedure {self.NAME} places the reference sensor at the sample port "
                              "(station.place_in_beam), and nobody can be asked: stdin is not a terminal and the "
                              "bench is not simulated (allowed: run it from a terminal)")

    def _parse_powers(self) -> list[float]:
        try:
            powers = [float(p) for p in str(self.powers_mW).replace(";", ",").split(",") if p.strip()]
        except ValueError:
            powers = []
        if not powers or not all(0 < p <= 1000 for p in powers):
            raise ConfigError(f"parameter powers_mW = {self.powers_mW!r}: allowed {POWERS_ALLOWED}")
        return powers

    def startup(self) -> None:
        self._slots: dict[str, int] = {}
        self._t0 = self.station.clock.now()
        self._wavelength = self._laser_wavelength_nm(self.wavelength_nm)
        self._kind = self._monitor_kind()
        self._laser_off()
        self.station.place_in_beam("reference")
        self.station["reference"].set_wavelength_nm(self._wavelength)
        self._start_monitor(self._wavelength)
        for role, slot in self._open_slots().items():
            self._move_wheel(role, slot)
        self.log(f"calibrating the monitor against the reference at {self._wavelength:g} nm (aperture "
                 f"{self.reference_aperture_mm:g} mm), powers {', '.join(f'{p:g}' for p in self._powers)} mW, "
                 f"open slots {self._slots or 'no wheels'}")

    def _level(self, power_mW: float, on: bool) -> dict[str, Any]:
        ref = self.station["reference"]
        n = self.readings_per_level
        pairs = np.array([(ref.read_power_W(), self._monitor_A()) for _ in range(n)], dtype=float)
        return {"laser_power_mW": power_mW if on else 0.0, "laser_on": int(on),
                "reference_power_W": float(pairs[:, 0].mean()), "reference_power_std_W": float(pairs[:, 0].std(ddof=1)),
                "monitor_current_A": float(pairs[:, 1].mean()), "monitor_current_std_A": float(pairs[:, 1].std(ddof=1)),
                "readings": n, "time_s": self.station.clock.now() - self._t0}

    def execute(self) -> None:
        total = len(self._powers) + 1
        dark = self._level(0.0, False)
        self.record("calibration", dark)
        self.progress(1 / total)
        for k, p in enumerate(self._powers):
            self.checkpoint()
            self._laser_on(p)
            self.record("calibration", self._level(p, True))
            self.progress((k + 2) / total)
        if self.check_filters and self._open_slots():
            self._measure_filters(dark)
        self._laser_off()
        self.station.place_in_beam("dut")

    def _measure_filters(self, dark: Mapping[str, Any]) -> None:
        """Each slot's transmission = monitor signal / open-slot signal (the other wheel open), at the highest power."""
        floor = self.monitor_floor_sigmas * dark["monitor_current_std_A"]
        i_dark = dark["monitor_current_A"]
        opened = self._open_slots()
        n = self.readings_per_level
        for role, open_slot in opened.items():
            self._move_wheel(role, open_slot)
        open_signal = self._average(self._monitor_A, n)[0] - i_dark
        for role, open_slot in opened.items():
            for slot, (_od, t_cal) in sorted(wheel_filters(self.station.config.instruments[role].settings).items()):
                self.checkpoint()
                self._check_laser()
                self._move_wheel(role, slot)
                signal = self._average(self._monitor_A, n)[0] - i_dark
                t = signal / open_signal
                above = signal > floor
                dev = t / t_cal - 1
                self.record("filters", {"wheel": role, "slot": slot, "monitor_signal_A": signal,
                                        "transmission_measured": t, "transmission_calibrated": t_cal,
                                        "deviation": dev, "above_floor": int(above)})
                if above and abs(dev) > self.filter_tolerance:
                    self.log(f"FILTER WARNING: {role} slot {slot}: transmission measured {t:.4g}, calibrated "
                             f"{t_cal:.4g} (instruments.{role}.settings.filters.{slot}.transmission): "
                             f"{100 * dev:+.1f} %, beyond ±{100 * self.filter_tolerance:g} %")
            self._move_wheel(role, open_slot)

    def shutdown(self) -> None:
        """Laser off (the engine's safe state does it again and reads it back)."""
        if "laser" in self.station:
            self._laser_off()

    def analyse(self, streams: Mapping[str, pd.DataFrame]) -> dict[str, Any]:
        data = streams.get("calibration", pd.DataFrame())
        if data.empty or not (data.laser_on == 0).any() or not (data.laser_on == 1).any():
            return {}
        dark = data[data.laser_on == 0].iloc[0]
        lit = data[data.laser_on == 1]
        x = lit.monitor_current_A.to_numpy() - dark.monitor_current_A
        y = lit.reference_power_W.to_numpy() - dark.reference_power_W
        k, stderr, worst = fit_through_dark_point(x, y)
        area = aperture_area_m2(self.reference_aperture_mm)
        floor = self.monitor_floor_sigmas * float(dark.monitor_current_std_A)
        if math.isfinite(worst) and worst > 0.02:
            self.log(f"CALIBRATION WARNING: the monitor is not proportional to the reference power: a point is "
                     f"{100 * worst:.1f} % off the line through the dark point")
        filters = streams.get("filters", pd.DataFrame())
        deviations = [] if filters.empty else [
            {"wheel": r.wheel, "slot": int(r.slot), "measured": float(r.transmission_measured),
             "calibrated": float(r.transmission_calibrated), "deviation": float(r.deviation)}
            for r in filters.itertuples() if r.above_floor and abs(r.deviation) > self.filter_tolerance]
        return {
            "k_W_A": k, "k_stderr": stderr if math.isfinite(stderr) else None,
            "irradiance_per_A": k / area,
            "dark_current_A": float(dark.monitor_current_A), "dark_current_std_A": float(dark.monitor_current_std_A),
            "monitor_floor_A": floor, "wavelength_nm": float(getattr(self, "_wavelength", self.wavelength_nm)),
            "reference_aperture_mm": self.reference_aperture_mm, "reference_dark_W": float(dark.reference_power_W),
            "max_relative_residual": worst if math.isfinite(worst) else None,
            "points": int(len(lit)), "monitor": getattr(self, "_kind", None),
            "filters_checked": int(len(filters)), "filter_deviations": deviations,
        }

    @classmethod
    def plot(cls, ax: Axes, run: RunData) -> str:
        """The reference power against the monitor signal, with the fitted line through the dark point."""
        from procedures import plots

        if plots.has_rows(run, "calibration"):
            plots.plot_monitor_calibration(ax, run)
        return run.info.get("procedure", "")


# -- the measurement -----------------------------------------------------------------------------------------------
_VOC_COLUMNS = [
    Column("step", "", "i4"), Column("direction", "", "str"), Column("slot_1", "", "i4"), Column("slot_2", "", "i4"),
    Column("transmission", ""), Column("time_s", "s"), Column("voc_V", "V"), Column("voc_std_V", "V"),
    Column("readings", "", "i4"), Column("converged", "", "i1"), Column("settle_time_s", "s"),
    Column("settle_readings", "", "i4"), Column("settle_residual_V", "V"), Column("monitor_current_A", "A"),
    Column("monitor_signal_A", "A"), Column("irradiance_W_m2", "W/m^2"), Column("irradiance_source", "", "str"),
    Column("photon_flux_cm2_s", "1/(cm^2 s)"), Column("suns", "1"), Column("generation_current_A", "A"),
    Column("temperature_K", "K"), Column("temperature_source", "", "str"), Column("laser_power_W", "W"),
]


class VocIntensityProcedure(_LaserBench):
    """Voc at I = 0 over the two wheels' intensity ladder; ideality factors and their regimes."""

    NAME = "voc-intensity"
    PER_PIXEL = True  # `labctl run voc-intensity --pixels ...`: one run per pixel of a substrate
    REQUIRES = ("smu", "laser", "od_wheel_1", "od_wheel_2", "monitor")
    OPTIONAL = ("temperature",)
    CAPS = {"smu": ("source_meter",), "laser": ("laser",), "od_wheel_1": ("filter_wheel",),
            "od_wheel_2": ("filter_wheel",), "monitor": MONITOR_CAPABILITIES, "temperature": ("temperature_sensor",)}
    STREAMS = {
        "voc": StreamSpec(_VOC_COLUMNS, signal="voc_V", axes="suns"),
        "isc": StreamSpec(
            [Column("slot_1", "", "i4"), Column("slot_2", "", "i4"), Column("transmission", ""),
             Column("isc_A", "A"), Column("monitor_signal_A", "A"), Column("irradiance_W_m2", "W/m^2"),
             Column("suns", "1")],
            signal="isc_A", axes="irradiance_W_m2"),
    }

    laser_power_mW = FloatParameter("Laser power", units="mW", default=80.0, minimum=0.001, maximum=1000)
    direction = ListParameter("Ladder direction (up = low to high intensity)", choices=["up", "down", "up-down"],
                              default="up")
    settle_mode = ListParameter("Settling rule", choices=["converge", "fixed"], default="converge")
    settle_tolerance_mV = FloatParameter("Convergence - predicted remaining change of Voc", units="mV", default=0.1,
                                         minimum=1e-4, maximum=100)
    settle_interval_s = FloatParameter("Convergence - time between Voc readings", units="s", default=0.5,
                                       minimum=0.01, maximum=600)
    settle_timeout_s = FloatParameter("Convergence - longest wait per step", units="s", default=300.0, minimum=0.1,
                                      maximum=86_400)
    fixed_wait_s = FloatParameter("Fixed rule - wait per step", units="s", default=60.0, minimum=0, maximum=86_400)
    settle_block = IntegerParameter("Convergence - Voc readings averaged per look", default=3, minimum=1,
                                    maximum=1000)
    readings_per_point = IntegerParameter("Voc readings averaged per step", default=5, minimum=1, maximum=10_000)
    monitor_readings = IntegerParameter("Monitor readings averaged per step", default=5, minimum=1, maximum=10_000)
    monitor_floor_A = FloatParameter("Monitor floor - below it the irradiance is E0*T1*T2 (0 = the calibration's)",
                                     units="A", default=0.0, minimum=0, maximum=1.0)
    duplicate_tolerance = FloatParameter("Ladder - combinations within this relative transmission are one step",
                                         units="", default=0.1, minimum=0, maximum=0.5)
    jv_file = Parameter("J-V run for the 1-sun Jsc (empty = the sample's newest in the catalog)", default="")
    one_sun_mW_cm2 = FloatParameter("Calibrated 1-sun-equivalent irradiance at the laser wavelength (0 = from the "
                                    "J-V run's Jsc)", units="mW/cm^2", default=0.0, minimum=0, maximum=10_000)
    calibration_file = Parameter("Calibration run file (empty = the station's newest in the catalog)", default="")
    temperature_K = FloatParameter("Device temperature (without a 'temperature' sensor)", units="K",
                                   default=STC_TEMPERATURE_K, minimum=1, maximum=1000)
    area_cm2 = FloatParameter("Device area", units="cm^2", default=0.049, minimum=1e-6, maximum=1000)
    polarity = ListParameter("Device polarity", choices=["n-i-p", "p-i-n"], default="n-i-p")
    nplc = FloatParameter("SMU integration time", units="PLC", default=1.0, minimum=0.01, maximum=10)
    compliance_V = FloatParameter("SMU voltage limit at I = 0", units="V", default=1.5, minimum=0.02, maximum=210)
    compliance_A = FloatParameter("SMU current limit at 0 V for the Isc reading (0 = the station's limit)", units="A",
                                  default=0.0, minimum=0, maximum=1.05)
    meter_offset_A = FloatParameter("Meter's current-source offset bound at I = 0 (2450 10 nA range 100 pA)",
                                    units="A", default=SMU_OFFSET_A, minimum=0, maximum=1e-6)
    meter_input_resistance_ohm = FloatParameter("Meter's voltmeter input resistance (2450 > 10 GOhm)", units="Ohm",
                                                default=SMU_INPUT_RESISTANCE_OHM, minimum=1e3, maximum=1e30)

    # -- checks before anything is touched --------------------------------------------------------------------
    def validate(self, station) -> None:  # noqa: ANN001
        super().validate(station)
        cfg = station.config.instruments["smu"]
        limits = source_meter_limits(station)
        driver, model, v_max, i_max, why = (limits.driver, limits.driver.limits, limits.voltage_max_V,
                                            limits.current_max_A, limits.why)
        self.check_range("nplc", self.nplc, *model.nplc_range, f"{cfg.driver} integration range")
        self.check_range("compliance_V", self.compliance_V, 0.02, v_max, why)
        if self.compliance_A == 0:
            self.compliance_A = i_max
        self.check_range("compliance_A", self.compliance_A, getattr(driver, "compliance_min_A", 0.0), i_max, why)
        filters = {}
        for role in WHEELS:
            filters[role] = wheel_filters(station.config.instruments[role].settings)
            if not filters[role]:
                raise ConfigError(f"instruments.{role}.settings.filters: missing; the intensity ladder needs each "
                                  "slot's nominal OD and calibrated transmission at the laser wavelength "
                                  "(e.g. 1: {od: 0.0, transmission: 1.0})")
        self._ladder, self._dropped = build_ladder(filters[WHEELS[0]], filters[WHEELS[1]], self.duplicate_tolerance)
        if len(self._ladder) < 2:
            raise ConfigError("instruments.od_wheel_1/od_wheel_2.settings.filters: the ladder has fewer than two "
                              "distinct intensities (allowed: filters of different transmissions)")
        self._load_calibration()
        self._find_one_sun()

    def _load_calibration(self) -> None:
        path, run = self._given_or_newest_run(
            "calibration_file", CALIBRATION_NAME,
            f": run `labctl run {CALIBRATION_NAME}` first, or give --set calibration_file=PATH")
        results = run.results or {}
        if run.info.get("procedure") != CALIBRATION_NAME or not results.get("irradiance_per_A"):
            raise ConfigError(f"parameter calibration_file = {str(path)!r}: not a completed {CALIBRATION_NAME} run "
                              "with results (allowed: the .h5 file of a `labctl run voc-intensity-calibration`)")
        self._calibration_path = path
        self.calibration_file = str(path)  # the run file records the calibration used (found in the catalog)
        self._calibration = dict(results)
        if self.monitor_floor_A > 0:
            self._calibration["monitor_floor_A"] = self.monitor_floor_A
        self._calibration_run = run.info.get("run_id", "")

    # -- the measurement ----------------------------------------------------------------------------------------
    @property
    def _sign(self) -> float:
        return -1.0 if self.polarity == "p-i-n" else 1.0

    def startup(self) -> None:
        self._slots: dict[str, int] = {}
        self._t0 = self.station.clock.now()
        cal = self._calibration
        self._wavelength = float(cal.get("wavelength_nm") or self._laser_wavelength_nm(0.0))
        self.log(f"calibration: {self._calibration_path} (run {self._calibration_run}): "
                 f"{cal['irradiance_per_A']:.5g} W/m² per A of monitor current, dark {cal['dark_current_A']:.4g} A, "
                 f"floor {cal['monitor_floor_A']:.3g} A, {self._wavelength:g} nm")
        if cal.get("monitor") and cal["monitor"] != self._monitor_kind():
            self.log(f"WARNING: the calibration read the monitor as a {cal['monitor']}, this station as a "
                     f"{self._monitor_kind()}")
        for role in WHEELS:
            at = getattr(self.station.config.instruments[role].settings, "calibration_wavelength_nm", None)
            if at is not None and abs(at - self._wavelength) > 1.0:
                self.log(f"WARNING: instruments.{role}.settings.calibration_wavelength_nm = {at:g} nm, but the laser "
                         f"is at {self._wavelength:g} nm: the filters' transmissions are for another wavelength")
        db = ladder_dynamic_range_dB(self._ladder)
        for gone, kept in self._dropped:
            self.log(f"ladder: slots {gone.slot_1}+{gone.slot_2} (T {gone.transmission:.4g}) dropped as a duplicate "
                     f"of {kept.slot_1}+{kept.slot_2} (T {kept.transmission:.4g}; fewest wheel moves)")
        self.log(f"ladder: {len(self._ladder)} steps, T {self._ladder[0].transmission:.3g} to "
                 f"{self._ladder[-1].transmission:.3g}, dynamic range {db:.1f} dB, direction {self.direction}")
        if db < MIN_LADDER_DB:
            self.log(f"WARNING: the ladder spans {db:.1f} dB, less than {MIN_LADDER_DB:g} dB (add filters of higher "
                     "OD to instruments.od_wheel_1/od_wheel_2.settings.filters)")
        if self.station.can_place_in_beam:
            self.station.place_in_beam("dut")
        self._start_monitor(self._wavelength)
        for role in WHEELS:
            self._slots[role] = self.station[role].position
        if "temperature" in self.station:
            self._temperature_source = "temperature"
        else:
            self._temperature_source = "parameter temperature_K"
            self.log(f"temperature: {self.temperature_K:g} K (parameter temperature_K; no 'temperature' sensor)")

    def _go_to(self, step: LadderStep) -> None:
        for role, slot in zip(WHEELS, (step.slot_1, step.slot_2), strict=True):
            if self._slots.get(role) != slot:
                self._move_wheel(role, slot)

    def _temperature(self) -> float:
        if "temperature" in self.station:
            return float(self.station["temperature"].read_temperature_K())
        return self.temperature_K

    def _voc(self) -> float:
        return self._sign * float(self.station["smu"].measure_point().voltage_V[0])

    def _irradiance(self, step: LadderStep) -> tuple[float, float, float, str]:
        """(monitor current A, its signal above dark A, irradiance W/m², which source): from the monitor through
        the calibration, or E_0·T_1·T_2 below the monitor's floor (methods ref. §4.2)."""
        cal = self._calibration
        current = self._average(self._monitor_A, self.monitor_readings)[0]
        signal = current - cal["dark_current_A"]
        if signal > cal["monitor_floor_A"] and signal > 0:
            return current, signal, signal * cal["irradiance_per_A"], "monitor"
        return current, signal, self._e0_W_m2 * step.transmission, "ladder"

    def _measure_isc(self) -> None:
        """Isc at the brightest step (SMU at 0 V): sets the 1-sun irradiance and the generation current per W/m²;
        then the SMU goes back to I = 0."""
        smu = self.station["smu"]
        top = self._ladder[-1]
        self._go_to(top)
        cal = self._calibration
        current = self._average(self._monitor_A, self.monitor_readings)[0]
        signal = current - cal["dark_current_A"]
        if not signal > cal["monitor_floor_A"]:
            raise VocIntensityError(f"the monitor reads {signal:.3g} A above dark at the brightest step, below its "
                                    f"floor {cal['monitor_floor_A']:.3g} A: is the laser on, the sphere aligned? "
                                    "(or recalibrate)")
        e_top = signal * cal["irradiance_per_A"]
        self._e0_W_m2 = e_top / top.transmission
        smu.configure_voltage_source(compliance_A=self.compliance_A, nplc=self.nplc)
        smu.set_voltage(0.0)
        smu.enable_output()
        self.wait(self.laser_stabilise_s)
        isc = -self._sign * float(smu.measure_point().current_A[0])
        if not isc > 0:
            raise VocIntensityError(f"the device's short-circuit current under the laser is {isc:.3g} A at the "
                                    "brightest step: no photocurrent (device in place? polarity?)")
        self._gen_per_W_m2 = isc / e_top
        if self.one_sun_mW_cm2 > 0:
            self._e_1sun = self.one_sun_mW_cm2 * 10.0
            how = f"one_sun_mW_cm2 = {self.one_sun_mW_cm2:g}"
        else:
            isc_1sun = self._jsc_mA_cm2 * 1e-3 * self.area_cm2
            self._e_1sun = e_top * isc_1sun / isc
            how = f"Jsc {self._jsc_mA_cm2:.3f} mA/cm² of {self._jv_path} × {self.area_cm2:g} cm²"
        suns = e_top / self._e_1sun
        self.record("isc", {"slot_1": top.slot_1, "slot_2": top.slot_2, "transmission": top.transmission,
                            "isc_A": isc, "monitor_signal_A": signal, "irradiance_W_m2": e_top, "suns": suns})
        self.log(f"Isc {isc:.5g} A at the brightest step ({e_top:.4g} W/m²): 1 sun = {self._e_1sun:.4g} W/m² at "
                 f"{self._wavelength:g} nm ({how}); the brightest step is {suns:.3g} suns")
        if suns < 0.3 or suns > 3:
            self.log(f"WARNING: the brightest step is {suns:.3g} suns-equivalent: adjust laser_power_mW "
                     f"({self.laser_power_mW:g} mW) to reach about 1 sun")
        smu.configure_current_source(compliance_V=self.compliance_V, nplc=self.nplc)
        smu.set_current(0.0)
        smu.enable_output()

    def _settle(self) -> tuple[bool, float, int, float]:
        """Wait for Voc at the new step: (converged, settle time s, readings taken, last predicted residual V).

        ``converge``: every ``settle_interval_s`` the mean of ``settle_block`` readings (back to back); done when the
        change still to come predicted from the last two changes of that mean (:func:`predicted_residual_V`) is
        below ``settle_tolerance_mV``, else not converged after ``settle_timeout_s``. ``fixed``: a wait of
        ``fixed_wait_s``."""
        clock = self.station.clock
        t0 = clock.now()
        if self.settle_mode == "fixed":
            self.wait(self.fixed_wait_s)
            return True, clock.now() - t0, 0, math.nan
        tol = self.settle_tolerance_mV * 1e-3
        means = [self._average(self._voc, self.settle_block)[0]]
        residual = math.inf
        while True:
            if len(means) >= 3:
                residual = predicted_residual_V(means[-2] - means[-3], means[-1] - means[-2])
                if residual <= tol:
                    return True, clock.now() - t0, len(means) * self.settle_block, residual
            if clock.now() - t0 >= self.settle_timeout_s:
                return False, clock.now() - t0, len(means) * self.settle_block, residual
            self.wait(self.settle_interval_s)
            means.append(self._average(self._voc, self.settle_block)[0])

    def execute(self) -> None:
        self._laser_on(self.laser_power_mW)
        self._measure_isc()
        passes = ladder_passes(self._ladder, self.direction)
        laser = self.station["laser"]
        warned = False
        for k, (direction, index, step) in enumerate(passes):
            self.checkpoint()
            self._go_to(step)
            self._check_laser()
            converged, settle_s, settle_n, residual = self._settle()
            if not converged and not warned:
                warned = True
                self.log(f"WARNING: Voc did not settle within settle_timeout_s = {self.settle_timeout_s:g} s at step "
                         f"{index} (T {step.transmission:.3g}); its point is marked converged = 0")
            voc, voc_std = self._average(self._voc, self.readings_per_point)
            current, signal, e, source = self._irradiance(step)
            self.record("voc", {
                "step": index, "direction": direction, "slot_1": step.slot_1, "slot_2": step.slot_2,
                "transmission": step.transmission, "time_s": self.station.clock.now() - self._t0,
                "voc_V": voc, "voc_std_V": voc_std, "readings": self.readings_per_point,
                "converged": int(converged), "settle_time_s": settle_s, "settle_readings": settle_n,
                "settle_residual_V": residual if math.isfinite(residual) else math.nan,
                "monitor_current_A": current, "monitor_signal_A": signal, "irradiance_W_m2": e,
                "irradiance_source": source, "photon_flux_cm2_s": photon_flux_cm2_s(e, self._wavelength),
                "suns": e / self._e_1sun, "generation_current_A": e * self._gen_per_W_m2,
                "temperature_K": self._temperature(), "temperature_source": self._temperature_source,
                "laser_power_W": laser.power_W,
            })
            self.progress((k + 1) / len(passes))
        self.station["smu"].disable_output()
        self._laser_off()

    def shutdown(self) -> None:
        """Laser off, SMU output off (the engine's safe state does both again and reads them back)."""
        if "laser" in self.station:
            self._laser_off()
        if "smu" in self.station:
            self.station["smu"].disable_output()

    # -- after the run ------------------------------------------------------------------------------------------
    def analyse(self, streams: Mapping[str, pd.DataFrame]) -> dict[str, Any]:
        """Ideality fits of the first pass (analyse_voc_intensity, with the generation current per point and the
        meter's offset and input resistance), the up/down drift and the settling statistics."""
        from labctl.analysis.voc_intensity import analyse_voc_intensity

        data = streams.get("voc", pd.DataFrame())
        if data.empty:
            return {}
        first = data[data.direction == data.direction.iloc[0]]
        first = first[np.isfinite(first.suns) & (first.suns > 0)]
        temperature = float(np.median(data.temperature_K))
        results: dict[str, Any] = analyse_voc_intensity(
            first.suns.to_numpy(), first.voc_V.to_numpy(), first.generation_current_A.to_numpy(),
            meter_offset_A=self.meter_offset_A, meter_input_resistance_ohm=self.meter_input_resistance_ohm,
            temperature_K=temperature)
        results["meter_offset_A"] = self.meter_offset_A
        results["meter_input_resistance_ohm"] = self.meter_input_resistance_ohm
        results["temperature_K"] = temperature
        results["temperature_source"] = str(data.temperature_source.iloc[0])
        results["ladder_dynamic_range_dB"] = ladder_dynamic_range_dB(getattr(self, "_ladder", [])) or None
        results["ladder_steps"] = int(len(first))
        results["fitted_pass"] = str(data.direction.iloc[0])
        results["suns_range"] = [float(first.suns.min()), float(first.suns.max())]
        results["irradiance_from_ladder_points"] = int((data.irradiance_source == "ladder").sum())
        results["calibration_run"] = getattr(self, "_calibration_run", None)
        isc = streams.get("isc", pd.DataFrame())
        if not isc.empty:
            results["isc_A"] = float(isc.isc_A.iloc[0])
            results["one_sun_W_m2"] = float(isc.irradiance_W_m2.iloc[0] / isc.suns.iloc[0])
        results["settle"] = {
            "mode": self.settle_mode, "tolerance_mV": self.settle_tolerance_mV,
            "unconverged_points": int((data.converged == 0).sum()),
            "total_s": float(data.settle_time_s.sum()), "mean_s": float(data.settle_time_s.mean()),
            "max_s": float(data.settle_time_s.max()), "readings_per_point": self.readings_per_point}
        results["unconverged_points"] = results["settle"]["unconverged_points"]
        drift = up_down_drift(data)
        if drift is not None:
            results["up_down"] = drift
            results["up_down_max_abs_dvoc_mV"] = drift["max_abs_dvoc_mV"]
            results["up_down_mean_abs_dvoc_mV"] = drift["mean_abs_dvoc_mV"]
        return results

    # -- for people ---------------------------------------------------------------------------------------------
    @classmethod
    def summarise(cls, console: Console, results: Mapping[str, Any]) -> None:
        """The regimes table and the global ideality, then every scalar result."""
        from procedures import summary

        if "regimes" in results:
            summary.print_voc_intensity(console, results)
        summary.print_scalars(console, {k: v for k, v in results.items() if not isinstance(v, list)})

    @classmethod
    def plot(cls, ax: Axes, run: RunData) -> str:
        """Voc against the suns-equivalent intensity (log axis = ln Φ) with the fitted line of each regime and the
        global fit, and the local ideality n(Φ) on a second axis."""
        from procedures import plots

        if plots.has_rows(run, "voc"):
            plots.plot_voc_intensity(ax, run)
        return run.info.get("procedure", "")


def up_down_drift(data: pd.DataFrame) -> dict[str, Any] | None:
    """ΔVoc = Voc(down) − Voc(up) (mV) at each step measured in both directions, with the largest and mean |ΔVoc|;
    None without both directions (light soaking shows as a systematic ΔVoc)."""
    def pass_of(direction: str) -> pd.DataFrame:
        rows = data[data.direction == direction].groupby("step")
        return rows.agg(**{f"voc_{direction}": ("voc_V", "mean"), f"suns_{direction}": ("suns", "mean")})

    both = pass_of("up").join(pass_of("down"), how="inner")
    if both.empty:
        return None
    dv = (both.voc_down - both.voc_up).to_numpy() * 1e3
    points = [{"step": int(s), "suns": float(r.suns_up), "voc_up_V": float(r.voc_up), "voc_down_V": float(r.voc_down),
               "dvoc_mV": float(d)} for (s, r), d in zip(both.iterrows(), dv, strict=True)]
    return {"max_abs_dvoc_mV": float(np.max(np.abs(dv))), "mean_abs_dvoc_mV": float(np.mean(np.abs(dv))),
            "mean_dvoc_mV": float(np.mean(dv)), "points": points}


def regime_line(phi_suns: np.ndarray, voc_V: np.ndarray, n: float, temperature_K: float) -> float:
    """Intercept (V at 1 sun) of Voc = a + n·Vt·ln Φ fitted with its slope fixed (least squares)."""
    return float(np.mean(np.asarray(voc_V) - n * thermal_voltage_V(temperature_K) * np.log(phi_suns)))
