"""The base of the long stability runs (``hold``, ``mpp``): what every ISOS-style run shares.

* **ISOS** preset and reporting fields (text parameters, :mod:`labctl.isos`): a preset fills its protocol fields
  and refuses to start until the fields it requires are given; all of them go to the run file (parameters) and
  the results (so the catalog has them).
* **Periodic J–V** every ``jv_interval_min`` of stress time (0 = none; the first at t = 0): the J–V procedure
  (:class:`procedures.jv.JVProcedure`) reused as a sub-run: its ``startup``/``execute`` run on this station with
  their rows redirected into this run's ``jv_scans`` stream (the ``jv`` columns plus ``jv_index`` and
  ``stress_time_s``) and its own analysis giving one ``jv_figures`` row per scan direction. A pause or a
  suspension takes effect at the checkpoint after a J–V, not inside it; a transport fault during a J–V measures
  the whole J–V again (its rows are recorded once it is complete).
* **Careful (re)application of the source level** (:meth:`StabilityProcedure.apply_bias`): measure Voc at I = 0,
  program the voltage source at that Voc, switch to it, then ramp by at most ``ramp_step_V`` per step to the
  target: never a step to a stale voltage (capacitive spikes, methods ref. §7.1). Used at the start, after a J–V,
  after a suspension and after an instrument was reconnected.
* **Every instrument call through** :meth:`LabProcedure.io` (labctl.recovery: reconnect on a transport fault and
  re-apply the level with :meth:`restore_source`), every recovery event in the ``journal`` stream, and each reading
  verified (:meth:`verify_output`: an output found off is an instrument reset: reconnect, re-configure, ramp).
* **Suspensions** (``SUSPENDABLE``: the engine's suspenders): :meth:`on_suspend` puts the device in
  ``suspend_bias`` (oc | sc | off | a voltage), :meth:`on_resume` ramps back; each is one ``interruptions`` row
  (kind ``suspended``; also ``gap`` between segments of a resumed run and ``recovery`` for an I/O fault), masked
  out of every figure.
* **Figures** (labctl.analysis.stability, methods ref. §7.3, ISOS Table 5): live (:meth:`live_subscribers`,
  :meth:`status_extra`) and at the end (:meth:`analyse`: ``t80_h``, ``ts80_h``, ``t80_extrapolated``,
  ``retained_pce_pct``, ``hours``, ``interruptions``, ``suspended_h`` and the rest); :meth:`plot` draws PCE, Voc,
  Jsc and FF against stress time with the interruptions shaded.

**Stress time** (``time_s``, ``stress_time_s``): seconds under the stress since the run started, continued across
segments without the gap between them; suspensions count in it (the device is in the chamber) but are masked.

Sign conventions as in ``procedures.jv``: device voltage, the SMU programmed with −V for ``polarity = p-i-n``;
current density photocurrent-positive, J = −I/A (mA/cm²).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from pymeasure.experiment import BooleanParameter, FloatParameter, ListParameter, Parameter

from labctl import isos
from labctl.config import ConfigError
from labctl.documents import EVENT
from labctl.storage import Column, stream_columns
from procedures.base import LabProcedure, StreamSpec, source_meter_limits
from procedures.jv import DIRECTION_NAMES, ORDERS, JVProcedure

JV_SCANS, JV_FIGURES, JOURNAL, INTERRUPTIONS = "jv_scans", "jv_figures", "journal", "interruptions"
SUSPENDED, GAP, RECOVERY = "suspended", "gap", "recovery"
OPEN_CIRCUIT, SHORT_CIRCUIT, OUTPUT_OFF = "oc", "sc", "off"
#: the J–V figures kept per scan (jv_figures columns), from :func:`procedures.jv.analyse_jv`
JV_FIGURE_KEYS = ("voc_V", "jsc_mA_cm2", "ff_pct", "pce_pct", "vmp_V", "jmp_mA_cm2")

#: the J–V sub-run's parameters that this run names with a ``jv_`` prefix
_JV_PARAMETERS = ("start_V", "stop_V", "step_V", "scan_rate_V_s", "direction")

COMMON_STREAMS: dict[str, StreamSpec] = {
    JV_SCANS: StreamSpec(
        [*JVProcedure.STREAMS["jv"].columns, Column("jv_index", "", "i4"), Column("stress_time_s", "s")],
        signal="j_mA_cm2", axes="voltage_V"),
    JV_FIGURES: StreamSpec(
        [Column("stress_time_s", "s"), Column("jv_index", "", "i4"), Column("direction", "", "i4"),
         Column("voc_V", "V"), Column("jsc_mA_cm2", "mA/cm^2"), Column("ff_pct", "%"), Column("pce_pct", "%"),
         Column("vmp_V", "V"), Column("jmp_mA_cm2", "mA/cm^2"), Column("segment", "", "i4")],
        signal="pce_pct", axes="stress_time_s"),
    JOURNAL: StreamSpec(
        [Column("time_s", "s"), Column("stress_time_s", "s"), Column("role", "", "str"), Column("kind", "", "str"),
         Column("attempt", "", "i4"), Column("action", "", "str"), Column("detail", "", "str"),
         Column("backoff_s", "s")],
        signal="attempt", axes="stress_time_s"),
    INTERRUPTIONS: StreamSpec(
        [Column("kind", "", "str"), Column("start_s", "s"), Column("end_s", "s"), Column("reason", "", "str"),
         Column("wall_gap_s", "s"), Column("segment", "", "i4")],
        signal="end_s", axes="start_s"),
}


RETAINED_AT_H = (1.0, 24.0, 100.0, 250.0, 500.0, 1000.0)
"""The results give the retained metric (% of the initial value) at these stress times (h) that the run reached."""


def parse_level(text: str, words: tuple[str, ...]) -> str | float:
    """One of ``words`` (lower case) or a finite voltage (V) from a parameter's text; ValueError otherwise."""
    word = str(text).strip().lower()
    if word in words:
        return word
    value = float(word)  # ValueError for anything else
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def shade_interruptions(ax: Any, run: Any, gaps: bool = True) -> None:
    """Shade each interruption of ``run`` (a :class:`labctl.storage.RunData`) on ``ax`` against stress time (h):
    a suspension or recovery as a band, a gap between segments (zero width in stress time) as a dashed line
    (unless ``gaps`` is false: a plot that marks its segments itself)."""
    stops = run.streams.get(INTERRUPTIONS)
    if stops is None or stops.empty:
        return
    for row in stops.itertuples():
        if row.end_s > row.start_s:
            ax.axvspan(row.start_s / 3600.0, row.end_s / 3600.0, color="orange", alpha=0.25, lw=0)
        elif gaps:
            ax.axvline(row.start_s / 3600.0, color="0.4", lw=0.8, ls="--")


def _nan(value: Any) -> float:
    return float(value) if value is not None else math.nan


class StabilityProcedure(LabProcedure):
    """A long run under light (or in the dark) at a bias, with periodic J–V, ISOS fields, suspensions and figures.

    Subclasses set ``MAIN_STREAM`` (in their ``STREAMS``, merged with :data:`COMMON_STREAMS`), implement
    :meth:`target_level` (the bias to hold now: ``"oc"``, ``"off"`` or a device voltage in V) and their loop in
    ``execute`` (calling :meth:`read_point`, :meth:`maybe_jv` and :meth:`stress_time_s`), and
    :meth:`metric_series` for the figures."""

    SUSPENDABLE: ClassVar[bool] = True
    REQUIRES = {"smu": "source_meter"}
    OPTIONAL = {"shutter": "shutter"}
    MAIN_STREAM: ClassVar[str] = ""
    _live: Any = None
    _live_seed: tuple[np.ndarray, np.ndarray, list[tuple[float, float]]] | None = None
    _recovery_start: tuple[float, float, str] | None = None
    _suspended: tuple[float, float, str] | None = None
    _bias_applied: str | float | None = None
    skip_missed: bool = False

    duration_h = FloatParameter("Duration", units="h", default=1.0, minimum=1e-4, maximum=10_000)
    light = BooleanParameter("Light on during the run", default=True)
    area_cm2 = FloatParameter("Aperture area", units="cm^2", default=0.049, minimum=1e-6, maximum=1000)
    irradiance_W_m2 = FloatParameter("Irradiance (for the PCE)", units="W/m^2", default=1000.0, minimum=1,
                                     maximum=5000)
    compliance_A = FloatParameter("Current compliance (voltage source)", units="A", default=0.01,
                                  minimum=1e-9, maximum=3.15)
    compliance_V = FloatParameter("Voltage compliance (current source, open circuit)", units="V", default=1.5,
                                  minimum=0.02, maximum=210)
    nplc = FloatParameter("Integration time", units="PLC", default=1.0, minimum=0.01, maximum=10)
    polarity = ListParameter("Device polarity", choices=["n-i-p", "p-i-n"], default="n-i-p")
    ramp_step_V = FloatParameter("Largest voltage step when a bias is (re)applied (ramp from Voc)", units="V",
                                 default=0.01, minimum=1e-4, maximum=1.0)
    suspend_bias = Parameter("Bias while suspended (oc, sc, off, or a voltage in V)", default="oc")
    suspend_bias.allowed = "oc, sc, off, or a voltage in V within the station's limits"
    jv_interval_min = FloatParameter("J-V every (0 = none; the first at the start)", units="min", default=0.0,
                                     minimum=0, maximum=1e6)
    jv_start_V = FloatParameter("Periodic J-V, forward-scan start voltage", units="V", default=-0.1,
                                minimum=-210, maximum=210)
    jv_stop_V = FloatParameter("Periodic J-V, forward-scan stop voltage", units="V", default=1.3, minimum=-210,
                               maximum=210)
    jv_step_V = FloatParameter("Periodic J-V, voltage step", units="V", default=0.01, minimum=1e-5, maximum=10)
    jv_scan_rate_V_s = FloatParameter("Periodic J-V, scan rate", units="V/s", default=0.1, minimum=0, maximum=1000)
    jv_direction = ListParameter("Periodic J-V, direction and order", choices=list(ORDERS),
                                 default="reverse-forward")
    preset = Parameter("ISOS protocol preset (e.g. ISOS-L-1I; empty = none)", default="")
    preset.allowed = "empty, or " + ", ".join(isos.PRESETS)
    isos_light_source = Parameter(isos.FIELDS["isos_light_source"], default="")
    isos_light_intensity = Parameter(isos.FIELDS["isos_light_intensity"], default="")
    isos_light_spectrum = Parameter(isos.FIELDS["isos_light_spectrum"], default="")
    isos_light_calibration = Parameter(isos.FIELDS["isos_light_calibration"], default="")
    isos_temperature = Parameter(isos.FIELDS["isos_temperature"], default="")
    isos_temperature_sensor = Parameter(isos.FIELDS["isos_temperature_sensor"], default="")
    isos_atmosphere = Parameter(isos.FIELDS["isos_atmosphere"], default="")
    isos_humidity = Parameter(isos.FIELDS["isos_humidity"], default="")
    isos_encapsulation = Parameter(isos.FIELDS["isos_encapsulation"], default="")
    isos_area_method = Parameter(isos.FIELDS["isos_area_method"], default="")

    #: the segment being written and the stress time (s) the run had reached before it (set by resume_from)
    segment: int = 0
    stress_offset_s: float = 0.0
    next_jv_index: int = 0

    # -- checks before anything is touched ----------------------------------------------------------------------
    def validate(self, station) -> None:  # noqa: ANN001 - Station, imported lazily to avoid a cycle
        super().validate(station)
        limits = source_meter_limits(station)
        model, v_max, i_max, why = limits.driver.limits, limits.voltage_max_V, limits.current_max_A, limits.why
        try:
            suspend = parse_level(self.suspend_bias, (OPEN_CIRCUIT, SHORT_CIRCUIT, OUTPUT_OFF))
        except ValueError:
            raise ConfigError(f"parameter suspend_bias = {self.suspend_bias!r}: allowed oc, sc, off or a voltage "
                              f"from {-v_max:g} to {v_max:g} V ({why})") from None
        if isinstance(suspend, float):
            self.check_range("suspend_bias", suspend, -v_max, v_max, f"V, {why}")
        self.check_range("compliance_V", self.compliance_V, 0.02, v_max, why)
        self.check_range("compliance_A", self.compliance_A, getattr(limits.driver, "compliance_min_A", 0.0), i_max,
                         why)
        self.check_range("nplc", self.nplc, *model.nplc_range, f"{station.config.instruments['smu'].driver} "
                                                               "integration range")
        fields = isos.apply_preset(self._parameter_values(), light=self.light)
        for key, value in fields.items():  # the preset's protocol fields, stored with the run's parameters
            setattr(self, key, value)
        if self.preset:
            self.preset = self.preset.strip().upper()
        if self.jv_interval_min > 0:
            if not self.light:
                raise ConfigError(f"parameter jv_interval_min = {self.jv_interval_min:g}: a periodic J-V needs "
                                  "light = true (allowed: 0 in the dark)")
            jv = self.jv_procedure()
            self.validate_jv(jv, station)
            jv_s = self.jv_duration_s(jv, limits.driver.reading_time_s(self.nplc, station.line_frequency_Hz()))
            if jv_s >= self.jv_interval_min * 60.0:
                raise ConfigError(f"parameter jv_interval_min = {self.jv_interval_min:g}: one periodic J-V takes about "
                                  f"{jv_s:.0f} s ({jv.points_per_scan()} points x {len(ORDERS[self.jv_direction])} "
                                  f"scans), longer than the interval; allowed: more than {jv_s / 60:.2g} min, or 0")

    @staticmethod
    def validate_jv(jv: JVProcedure, station: Any) -> None:
        """The J–V sub-run's own checks, its errors naming this run's parameters (``jv_stop_V``, not ``stop_V``)."""
        try:
            jv.validate(station)
        except ConfigError as exc:
            text = str(exc)
            for name in _JV_PARAMETERS:
                text = re.sub(rf"(?<!\w){name}\b", f"jv_{name}", text)
            raise ConfigError(text) from None

    @staticmethod
    def jv_duration_s(jv: JVProcedure, reading_s: float) -> float:
        """About how long a staircase J–V of ``jv`` takes (s): points × time per point × scans."""
        per_point = jv.step_V / jv.scan_rate_V_s if jv.scan_rate_V_s > 0 else jv.delay_s + reading_s
        return jv.points_per_scan() * per_point * len(ORDERS[jv.direction])

    def _parameter_values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._parameters}

    def jv_procedure(self) -> JVProcedure:
        """The J–V sub-run with this run's settings (staircase, light on; its own defaults otherwise)."""
        jv = JVProcedure()
        settings = {"start_V": self.jv_start_V, "stop_V": self.jv_stop_V, "step_V": self.jv_step_V,
                    "scan_rate_V_s": self.jv_scan_rate_V_s, "direction": self.jv_direction, "nplc": self.nplc,
                    "compliance_A": self.compliance_A, "area_cm2": self.area_cm2, "polarity": self.polarity,
                    "irradiance_W_m2": self.irradiance_W_m2, "light": True}
        for name, value in settings.items():
            setattr(jv, name, value)
        return jv

    # -- resuming -----------------------------------------------------------------------------------------------
    def resume_from(self, streams: Mapping[str, pd.DataFrame], segment: int) -> None:
        """Continue after the rows already in the run file: the stress time goes on from the last one stored (the
        gap between segments is not counted; it becomes a ``gap`` interruption), the next J–V after the last."""
        self.segment = segment
        last = 0.0
        for name, column in ((self.MAIN_STREAM, "time_s"), (JV_SCANS, "stress_time_s"),
                             (JV_FIGURES, "stress_time_s")):
            frame = stream_columns(streams, name, [column])  # one column, not a long run's whole stream
            if len(frame):
                values = frame[column].to_numpy(dtype=float)
                values = values[np.isfinite(values)]
                if values.size:
                    last = max(last, float(values.max()))
        self.stress_offset_s = last
        t_h, values, _ = self.metric_series(streams)
        stops = streams.get(INTERRUPTIONS)
        masks = ([(r.start_s / 3600.0, r.end_s / 3600.0) for r in stops.itertuples() if r.end_s > r.start_s]
                 if stops is not None and len(stops) else [])
        self._live_seed = (t_h, values, masks)  # the live figures start from what the file already has
        indices = [int(f["jv_index"].max()) for f in (stream_columns(streams, name, ["jv_index"])
                                                      for name in (JV_FIGURES, JV_SCANS)) if len(f)]
        self.next_jv_index = max(indices) + 1 if indices else 0

    # -- time -----------------------------------------------------------------------------------------------------
    def stress_time_s(self) -> float:
        """Stress time now (s): station time since this segment started plus the stress time of the earlier ones."""
        return self.station.clock.now() - self._t0

    def start_stress_clock(self, offset_s: float | None = None) -> None:
        """Stress time ``offset_s`` (default :attr:`stress_offset_s`) now."""
        self._t0 = self.station.clock.now() - (self.stress_offset_s if offset_s is None else offset_s)

    # -- the source ---------------------------------------------------------------------------------------------
    @property
    def sign(self) -> float:
        return -1.0 if self.polarity == "p-i-n" else 1.0

    def target_level(self) -> str | float:
        """The bias to hold now: ``"oc"`` (I = 0), ``"off"`` (output off) or a device voltage (V)."""
        raise NotImplementedError

    def smu_io(self, operation: Callable[[Any], Any], what: str) -> Any:
        """``operation(smu)`` through the recovery of the engine (reconnect, then :meth:`restore_source`)."""
        return self.io("smu", operation, restore=self.restore_source, what=what)

    def apply_bias(self, smu: Any, target: str | float) -> float | None:
        """Apply ``target`` carefully on ``smu``: ``"off"`` turns the output off; ``"oc"`` sources I = 0; a voltage
        is reached from the measured Voc (I = 0, output on) by programming the voltage source at Voc, switching to
        it, and ramping by at most ``ramp_step_V`` per step. Returns the Voc measured (V), or None."""
        from labctl.analysis.mppt import ramp_voltages

        if target == OUTPUT_OFF:
            smu.disable_output()
            self._bias_applied = OUTPUT_OFF
            return None
        for _ in range(3):  # read back: an instrument reset since then would switch on a *RST voltage source at 0 V
            smu.configure_current_source(compliance_V=self.compliance_V, nplc=self.nplc)
            smu.set_current(0.0)
            if str(smu.ask(":SOUR:FUNC?")).strip().upper().startswith("CURR"):
                break
            self.on_io_event({"time": self.station.clock.now(), "role": "smu", "kind": "instrument_reset", "attempt": 1,
                              "action": "fault", "detail": "not a current source by read-back: re-configured",
                              "backoff_s": 0.0})
        # the output switched on in the same message as the source it needs (SCPI program message units, both
        # models' manuals): a reset just before it cannot leave a *RST voltage source at 0 V switched on
        smu.write(":SOUR:FUNC CURR;:SOUR:CURR 0;:OUTP ON")
        if target == OPEN_CIRCUIT:
            self._bias_applied = OPEN_CIRCUIT
            return None
        voc = self.sign * float(smu.measure_point().voltage_V[0])
        smu.set_voltage(self.sign * voc)  # the voltage source's level, while the current source is in force
        smu.configure_voltage_source(compliance_A=self.compliance_A, nplc=self.nplc)
        for v in ramp_voltages(voc, float(target), self.ramp_step_V):
            smu.set_voltage(self.sign * v)
        self._bias_applied = float(target)
        return voc

    def restore_source(self, smu: Any) -> None:
        """After a reconnection (the instrument may have been reset): light as it should be, the bias by
        :meth:`apply_bias` (the reconnect already replayed the configuration)."""
        self.apply_bias(smu, self.target_level())
        self.bias_reapplied()

    def bias_reapplied(self) -> None:
        """Called after the bias was applied again (after a J–V, a suspension, a reconnection): readings from
        before are from another state of the device. Default: nothing."""

    def set_bias(self, target: str | float) -> float | None:
        """:meth:`apply_bias` through :meth:`smu_io`."""
        return self.smu_io(lambda smu: self.apply_bias(smu, target), what=f"apply bias {target}")

    def verify_output(self) -> None:
        """Read back that the output is still on (before a reading): an output found off (an instrument reset to
        its power-on state) is journaled and the instrument reconnected, re-configured and the bias re-applied."""
        if self._bias_applied == OUTPUT_OFF:
            return
        if self.smu_io(lambda smu: bool(smu.source_enabled), what="read back the output state"):
            return
        from labctl.recovery import INSTRUMENT_RESET

        self.log(f"WARNING: the source meter's output was found off at t = {self.stress_time_s():.1f} s (instrument "
                 "reset?): reconnecting and ramping the bias back")
        self.reconnect("smu", INSTRUMENT_RESET, "output found off by read-back", restore=self.restore_source,
                       what="re-apply the bias")

    def read_point(self) -> tuple[float, float, float, bool]:
        """One verified reading: (device voltage V, SMU current A, J mA/cm² photocurrent-positive, compliance)."""
        self.verify_output()
        data = self.smu_io(lambda smu: smu.measure_point(), what="reading")
        v = self.sign * float(data.voltage_V[0])
        i_a = float(data.current_A[0])
        return v, i_a, -self.sign * i_a / self.area_cm2 * 1e3, bool(data.compliance[0])

    def set_light(self, on: bool) -> None:
        """The shutter (through :meth:`LabProcedure.io`), or the simulated lamp; on hardware without a shutter
        the operator controls the light (as the hold always did: a log line at the start, no prompt)."""
        if "shutter" in self.station:
            self.io("shutter", lambda shutter: shutter.open_shutter() if on else shutter.close_shutter(),
                    what="shutter")
        else:
            self.station.set_light_without_shutter(on)

    # -- recovery journal, interruptions ------------------------------------------------------------------------
    def on_io_event(self, entry: Mapping[str, Any]) -> None:
        """A recovery event (labctl.recovery): a ``journal`` row and the base class's log line; a fault opens a
        ``recovery`` interruption, ``reconnected``/``gave_up`` closes it."""
        stress = self.stress_time_s() if hasattr(self, "_t0") else math.nan
        action = str(entry.get("action", ""))
        self.record(JOURNAL, {"time_s": _nan(entry.get("time")), "stress_time_s": stress,
                              "role": str(entry.get("role", "")), "kind": str(entry.get("kind", "")),
                              "attempt": int(entry.get("attempt") or 0), "action": action,
                              "detail": str(entry.get("detail", "")), "backoff_s": _nan(entry.get("backoff_s"))})
        super().on_io_event(entry)  # the log line (a WARNING for a fault and for giving up)
        if action == "fault" and self._recovery_start is None:
            self._recovery_start = (stress, time.time(), f"{entry.get('kind')} on {entry.get('role')}")
        elif action in ("reconnected", "gave_up") and self._recovery_start is not None:
            start, _, reason = self._recovery_start
            self._recovery_start = None
            self.record_interruption(RECOVERY, start, stress, reason)

    def record_interruption(self, kind: str, start_s: float, end_s: float, reason: str,
                            wall_gap_s: float = math.nan) -> None:
        """One ``interruptions`` row (stress times in s), and the live figures told to mask it."""
        self.record(INTERRUPTIONS, {"kind": kind, "start_s": start_s, "end_s": end_s, "reason": reason,
                                    "wall_gap_s": wall_gap_s, "segment": self.segment})
        if self._live is not None and end_s > start_s:
            self._live.mask(start_s / 3600.0, end_s / 3600.0)

    def on_suspend(self, reason: str) -> None:
        """A suspender holds the run: the device goes to ``suspend_bias`` until :meth:`on_resume`."""
        self._suspended = (self.stress_time_s(), time.time(), reason)
        level = parse_level(self.suspend_bias, (OPEN_CIRCUIT, SHORT_CIRCUIT, OUTPUT_OFF))
        self.set_bias(0.0 if level == SHORT_CIRCUIT else level)
        self.log(f"suspended ({reason}): device held at {self.suspend_bias} until the run resumes")

    def on_resume(self) -> None:
        """The suspension is over: the bias is ramped back and the interval becomes a ``suspended`` row."""
        self.set_bias(self.target_level())
        self.bias_reapplied()
        self.skip_missed = True
        if self._suspended is not None:
            start, wall, reason = self._suspended
            self._suspended = None
            self.record_interruption(SUSPENDED, start, self.stress_time_s(), reason, time.time() - wall)

    # -- live figures -------------------------------------------------------------------------------------------
    def live_metric(self, stream: str, data: Mapping[str, Any]) -> float | None:
        """The figure-of-merit value an event of ``stream`` carries for the live figures, or None."""
        if stream == JV_FIGURES and int(data.get("direction", -1)) == self._live_direction:
            return _nan(data.get("pce_pct"))
        return None

    def live_subscribers(self) -> list[Callable[[str, Any], None]]:
        """The live figures (labctl.analysis.stability.LiveStabilityFigures, bounded memory) fed by this run's
        events; read by :meth:`status_extra`."""
        from labctl.analysis.stability import LiveStabilityFigures

        self._live = LiveStabilityFigures()
        if self._live_seed is not None:
            t_h, values, masks = self._live_seed
            self._live_seed = None
            for t, value in zip(t_h, values, strict=True):
                if math.isfinite(value):
                    self._live.add(float(t), float(value))
            for start, end in masks:
                self._live.mask(start, end)

        def subscriber(name: str, doc: Any) -> None:
            if name != EVENT:
                return
            value = self.live_metric(doc.stream, doc.data)
            t_s = doc.data.get("time_s", doc.data.get("stress_time_s"))
            if value is not None and math.isfinite(value) and t_s is not None:
                self._live.add(float(t_s) / 3600.0, value)

        return [subscriber]

    def status_extra(self) -> dict[str, Any]:
        """The live figures (for ``labctl status``)."""
        if self._live is None:
            return {}
        try:
            return {"figures": self._live.figures().to_dict()}
        except Exception:  # noqa: BLE001 - too few points yet
            return {}

    # -- the periodic J–V ---------------------------------------------------------------------------------------
    def jv_due(self) -> bool:
        """Whether the next periodic J–V is due now (stress time)."""
        return (self.jv_interval_min > 0
                and self.stress_time_s() >= self.next_jv_index * self.jv_interval_min * 60.0 - 1e-9)

    def maybe_jv(self) -> bool:
        """Run the periodic J–V if it is due; the bias is then re-applied. Returns whether one ran."""
        if not self.jv_due():
            return False
        self.run_jv()
        self.set_light(self.light)
        self.set_bias(self.target_level())
        self.bias_reapplied()
        self.skip_missed = True
        return True

    def run_jv(self) -> None:
        """One J–V sub-run (:class:`procedures.jv.JVProcedure`'s own ``startup``/``execute``) with its rows in
        ``jv_scans`` and its figures (its own analysis) in ``jv_figures``."""
        index, t_start = self.next_jv_index, self.stress_time_s()
        jv = self.jv_procedure()
        rows: list[dict[str, Any]] = []

        def emit(topic: str, record: Any) -> None:
            if topic == "results" and record.get("_stream") == "jv":
                rows.append({k: v for k, v in record.items() if k != "_stream"})
            elif topic == "log":
                self.log(f"J-V {index}: {record}")

        jv.station, jv.emit, jv.should_stop = self.station, emit, self.should_stop
        # no pause or suspension inside the scan (it would leave the SMU configured for the bias, not the sweep):
        # they take effect at the checkpoint after the J-V; an abort still ends it between its scans
        jv.data_dir, jv.sample = getattr(self, "data_dir", "runs"), getattr(self, "sample", "sample")

        def sweep(smu: Any) -> None:
            rows.clear()
            jv.startup()
            jv.execute()

        self.smu_io(sweep, what=f"J-V {index}")  # a sweep cut by a fault is measured again, whole
        for row in rows:  # recorded once the scan is complete: a repeated sweep leaves no duplicate
            self.record(JV_SCANS, {**row, "jv_index": index, "stress_time_s": t_start + row["time_s"]})
        results = jv.analyse({"jv": pd.DataFrame(rows)})
        for direction, name in DIRECTION_NAMES.items():
            fom = results.get(name)
            if not isinstance(fom, dict):
                continue
            figures = {k: _nan(fom.get(k)) for k in JV_FIGURE_KEYS if k != "ff_pct"}
            figures["ff_pct"] = 100.0 * _nan(fom.get("ff"))
            self.record(JV_FIGURES, {"stress_time_s": t_start, "jv_index": index, "direction": direction,
                                     **figures, "segment": self.segment})
            self.log(f"J-V {index} {name} at t = {t_start / 3600:.3f} h: PCE {figures['pce_pct']:.3f} %, Voc "
                     f"{figures['voc_V']:.4f} V, Jsc {figures['jsc_mA_cm2']:.3f} mA/cm², FF {figures['ff_pct']:.2f} %")
        self.next_jv_index = index + 1

    # -- the run --------------------------------------------------------------------------------------------------
    def startup(self) -> None:
        self._recovery_start = self._suspended = self._bias_applied = None
        self.skip_missed = False
        self._live_direction = ORDERS[self.jv_direction][0]
        if self.segment > 0:
            self.record(INTERRUPTIONS, {"kind": GAP, "start_s": self.stress_offset_s, "end_s": self.stress_offset_s,
                                        "reason": f"segment {self.segment}: resumed", "wall_gap_s": math.nan,
                                        "segment": self.segment})
        if self.light and self.station.light_is_operator_controlled:
            self.log("no shutter in the station: light is controlled by the operator")

    def shutdown(self) -> None:
        """Output off (the engine then applies the station's safe state)."""
        if "smu" in self.station:
            self.station["smu"].disable_output()

    # -- after the run ------------------------------------------------------------------------------------------
    def metric_series(self, streams: Mapping[str, pd.DataFrame]) -> tuple[np.ndarray, np.ndarray, str]:
        """(stress time in h, the metric, its name) for the figures: the PCE of the first scan direction of the
        periodic J–V when there is one; subclasses give their own otherwise."""
        figures = streams.get(JV_FIGURES)
        if figures is not None and len(figures):
            first = ORDERS[self.jv_direction][0]
            rows = figures[figures["direction"] == first]
            return rows["stress_time_s"].to_numpy(float) / 3600.0, rows["pce_pct"].to_numpy(float), "pce_pct"
        return np.empty(0), np.empty(0), ""

    def stability_results(self, streams: Mapping[str, pd.DataFrame]) -> dict[str, Any]:
        """The figures over the whole run with interruptions masked, the interruptions counted, the ISOS fields."""
        from labctl.analysis.stability import DENSE_POINTS, bin_average, keep_mask, retained_at, stability_figures

        results: dict[str, Any] = {}
        stops = streams.get(INTERRUPTIONS)
        intervals: list[tuple[float, float]] = []
        suspended_s = 0.0
        if stops is not None and len(stops):
            results["interruptions"] = int(len(stops))
            for row in stops.itertuples():
                if row.kind in (SUSPENDED, RECOVERY) and row.end_s > row.start_s:
                    intervals.append((row.start_s / 3600.0, row.end_s / 3600.0))
                    suspended_s += (row.end_s - row.start_s) if row.kind == SUSPENDED else 0.0
        else:
            results["interruptions"] = 0
        results["suspended_h"] = suspended_s / 3600.0
        journal = streams.get(JOURNAL)
        results["io_faults"] = int((journal["action"] == "fault").sum()) if journal is not None and len(journal) else 0
        scans = streams.get(JV_FIGURES)
        results["jv_scans"] = int(scans["jv_index"].nunique()) if scans is not None and len(scans) else 0
        main = stream_columns(streams, self.MAIN_STREAM, ["time_s"])
        results["hours"] = float(np.nanmax(main["time_s"].to_numpy(float))) / 3600.0 if len(main) else 0.0
        t_h, metric, name = self.metric_series(streams)
        results["metric"] = name or None
        results["t80_h"] = results["ts80_h"] = results["retained_pce_pct"] = None
        results["t80_extrapolated"] = False
        if t_h.size > DENSE_POINTS:  # tracked every few seconds: interruptions out, then binned (analysis docs)
            keep = keep_mask(t_h, intervals)
            t_h, metric = bin_average(t_h[keep], metric[keep])
            results["figures_binned_from"] = int(keep.sum())
        if t_h.size >= 2 and name:
            results["retained_pct_at_h"] = {
                f"{at:g}": retained_at(t_h, metric, at, intervals_h=intervals)
                for at in RETAINED_AT_H if at <= t_h[-1]}
            figures = stability_figures(t_h, metric, intervals_h=intervals).to_dict()
            results["figures"] = figures
            for key in ("t80_h", "t80_reached", "t80_extrapolated", "ts80_h", "ts80_backextrapolated_h", "t95_h",
                        "ts95_h", "burn_in_h", "eta1000", "eta1000_extrapolated", "retained_pct"):
                if key in figures:
                    results[key] = figures[key]
            if name == "pce_pct":
                results["retained_pce_pct"] = figures.get("retained_pct")
                results["pce_initial_pct"] = figures.get("initial")
                results["pce_final_pct"] = figures.get("final")
        results.update(isos.catalog_fields(self._parameter_values()))
        return results

    # -- for people ---------------------------------------------------------------------------------------------
    #: results that :func:`procedures.summary.print_stability` shows, not repeated among the other scalars
    SUMMARY_SHOWN = ("t80_h", "t80_reached", "t80_extrapolated", "t95_h", "ts80_h", "ts95_h", "ts80_backextrapolated_h",
                     "burn_in_h", "eta1000", "eta1000_extrapolated", "retained_pct", "retained_pce_pct", "hours",
                     "interruptions", "suspended_h", "io_faults", "jv_scans", "pce_initial_pct", "pce_final_pct")

    @classmethod
    def summarise(cls, console: Any, results: Mapping[str, Any]) -> None:
        """The stability table (threshold times: measured, extrapolated and flagged, or not reached), the
        interruptions, then the procedure's other scalar results (ISOS fields: ``labctl show``'s checklist)."""
        from procedures import summary

        summary.print_stability(console, results)
        summary.print_scalars(console, {k: v for k, v in results.items()
                                        if k not in cls.SUMMARY_SHOWN and not k.startswith("isos_")})

    @classmethod
    def plot(cls, ax: Any, run: Any) -> str:
        """PCE, Voc, Jsc and FF against stress time (h) on four stacked axes (``ax`` is split), the periodic
        J–V's figures as points (and the tracked PCE of an MPP run as a line), interruptions shaded."""
        fig = ax.figure
        grid = ax.get_subplotspec().subgridspec(4, 1, hspace=0.08)
        ax.set_subplotspec(grid[0])
        axes = [ax] + [fig.add_subplot(grid[k], sharex=ax) for k in (1, 2, 3)]
        cls.plot_main(axes[0], run)
        figures = run.streams.get(JV_FIGURES)
        labels = (("pce_pct", "PCE (%)"), ("voc_V", "Voc (V)"), ("jsc_mA_cm2", "Jsc (mA/cm²)"), ("ff_pct", "FF (%)"))
        for axis, (column, label) in zip(axes, labels, strict=True):
            if figures is not None and len(figures):
                for direction, group in figures.groupby("direction"):
                    axis.plot(group["stress_time_s"] / 3600.0, group[column], "o-", ms=3, lw=0.8,
                              label=DIRECTION_NAMES.get(int(direction), str(direction)))
            axis.set_ylabel(label, fontsize=8)
            axis.grid(alpha=0.3)
            axis.ticklabel_format(axis="y", useOffset=False)  # an offset ("+1.17") would sit on the axis above
        for axis in axes:
            shade_interruptions(axis, run)
        for axis in axes[:-1]:
            axis.tick_params(labelbottom=False)
        if figures is not None and len(figures):
            axes[0].legend(fontsize=7)
        axes[-1].set_xlabel("Stress time (h)")
        return run.info.get("procedure", cls.NAME)

    @classmethod
    def plot_main(cls, ax: Any, run: Any) -> None:
        """What the subclass adds to the PCE axis (an MPP run's tracked PCE); default nothing."""
