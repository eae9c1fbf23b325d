"""Device PLQY at open circuit by modulated photoluminescence (methods ref. §5): ``plqy``.

The bench (``stations/plqy-bench.yaml``): a 520 nm CW laser whose analog modulation input a function generator
drives with a small sine, the device held at I = 0 by a source-meter, its PL through long-pass filters onto a Si
photodetector, a transimpedance amplifier and a spectrum analyser. The detection chain's settings (gain,
responsivity, filter transmissions, collection geometry, the laser input's full scale) are the station file's
``plqy`` section (:class:`labctl.config.PLQYBenchConfig`).

Steps:

1. 1-sun equivalent: the laser power at which the device's short-circuit current (SMU at 0 V) equals the Jsc of
   a J–V run under AM1.5G (``jv_file``, else the sample's newest jv run) times ``area_cm2``: proportional
   (secant-through-the-origin) steps on the measured Isc, bounded by the laser's maximum; or ``laser_power_mW``.
   The absorbed pump rate is that Isc/q (IQE = 1 at short circuit, methods ref. §5.1: "G_1sun = Jsc/q").
2. SMU at I = 0, Voc recorded; the generator's sine (``f_mod_Hz``, amplitude for the depth
   ``modulation_depth`` = V_peak/V_fs at the laser's input) and the laser's analog modulation on.
3. The analyser: centre f_mod, ``span_Hz``, RBW ``rbw_Hz``, rms averaging, a single sweep (``*OPC?``); the line
   by marker peak search, the noise floor as the mean power of the trace points more than 3 RBW from f_mod
   (rms averaging: not the log under-read, methods ref. §5.3); the stray pump with a non-emissive blank in the
   device's place (``station.place_in_beam("blank")``), the level at f_mod, then the device back.
4. SNR against both (:func:`labctl.analysis.plqy.snr_report`): a WARNING below ``snr_warn_dB`` (40 dB), the run
   fails below ``snr_min_dB``.
5. k = d ln Φ_PL/d ln G from the line at the laser powers ``k_power_factors`` × the 1-sun power (the line at
   each is ∝ k·Φ_PL, so its log-slope is k + d ln k/d ln G: k where k varies slowly; methods ref. §5.1). On
   the default simulated device (ideality 1.5 with a 2000 Ω·cm² shunt) k falls slowly with G, and this
   estimate is ~2 % low (1.518 against 1.548 at 1 sun), so the integral PLQY reads ~2 % high.
6. The chain (:func:`labctl.analysis.plqy.plqy_chain`) to PLQY_diff, and PLQY = PLQY_diff/k; the QFLS
   μ = q·Voc,R − kT·ln(1/PLQY) (methods ref. §6.1) when an EQE run (``eqe_file``) gives Voc,R, else null
   (``labctl analyze voc-loss`` does the full analysis).

Every ending switches the generator's output and the laser off (shutdown, and the engine's safe state).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pymeasure.experiment import FloatParameter, IntegerParameter, ListParameter, Parameter

from drivers.keysight_33500 import SOURCE_OHM, display_factor
from labctl.analysis import plqy as chain
from labctl.analysis.spectra import ELEMENTARY_CHARGE_C, HC_OVER_Q_NM_V
from labctl.config import ConfigError
from labctl.storage import Column, load_run
from procedures.base import StreamSpec, source_meter_limits
from procedures.voc_intensity import _LaserBench, jv_figures

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from rich.console import Console

    from labctl.storage import RunData

#: trace points of every stored spectrum (the analyser is set to it)
SPECTRUM_POINTS = 1001
#: trace points nearer f_mod than this many RBWs are the line's, not the floor's
FLOOR_EXCLUDE_RBW = 3.0
#: the stray pump counts as detected when its level at f_mod is this far above the floor measured with it (dB)
STRAY_DETECT_DB = 6.0
#: the span must hold this many RBWs (the floor is read more than 3 RBW off the line on both sides)
MIN_SPAN_RBW = 8.0
FACTORS_ALLOWED = "a comma-separated list of factors of the 1-sun laser power, each 0.5-2 (empty: k = 1)"

_SPECTRUM_COLUMNS = [
    Column("kind", "", "str"), Column("laser_power_mW", "mW"), Column("rbw_Hz", "Hz"),
    Column("line_dBm", "dBm"), Column("line_frequency_Hz", "Hz"), Column("floor_dBm", "dBm"),
    Column("frequency_Hz", "Hz", shape=(SPECTRUM_POINTS,)),
    Column("level_dBm", "dBm", shape=(SPECTRUM_POINTS,), axes=("frequency_Hz",)),
]


class PLQYError(RuntimeError):
    """A bench problem during a PLQY run (1 sun out of the laser's reach, the SNR below its floor): one line."""


def parse_factors(text: str) -> list[float]:
    """The k-step laser power factors of ``k_power_factors`` ("0.9, 1.1"); ConfigError when not in 0.5-2."""
    try:
        values = [float(p) for p in str(text).replace(";", ",").split(",") if p.strip()]
    except ValueError:
        values = [-1.0]
    if not all(0.5 <= v <= 2.0 for v in values):
        raise ConfigError(f"parameter k_power_factors = {text!r}: allowed {FACTORS_ALLOWED}")
    return values


def line_and_floor(frequency_Hz: np.ndarray, level_dBm: np.ndarray, f_mod_Hz: float,
                   rbw_Hz: float) -> float:
    """Noise floor (dBm in the RBW): the mean power of the trace points more than :data:`FLOOR_EXCLUDE_RBW`
    RBWs from ``f_mod_Hz`` (and from its second harmonic), as a level."""
    f = np.asarray(frequency_Hz, dtype=float)
    far = (np.abs(f - f_mod_Hz) > FLOOR_EXCLUDE_RBW * rbw_Hz) & (np.abs(f - 2 * f_mod_Hz) > FLOOR_EXCLUDE_RBW * rbw_Hz)
    watts = 10.0 ** (np.asarray(level_dBm, dtype=float)[far] / 10.0)
    return float(10.0 * np.log10(np.mean(watts)))


def depth_from_amplitude(vpp: float, load_ohm: float, full_scale_V: float, input_ohm: float) -> float:
    """Modulation depth m = V_in,peak/V_fs at the laser's analog input for a generator amplitude ``vpp``
    displayed for the load setting ``load_ohm`` (inf: INF): V_oc = displayed/(R/(R + 50 Ω)), V_in =
    V_oc·R_in/(R_in + 50 Ω) (33500 user's guide, "Output termination")."""
    v_oc_peak = vpp / 2.0 / display_factor(load_ohm)
    return v_oc_peak * input_ohm / (input_ohm + SOURCE_OHM) / full_scale_V


def snr_text(report: Mapping[str, Any]) -> str:
    """"noise 56.5 dB, stray 42.1 dB" of a :func:`labctl.analysis.plqy.snr_report`."""
    stray = report["snr_stray_dB"]
    return f"noise {report['snr_noise_dB']:.1f} dB, stray " + ("not measured" if stray is None else f"{stray:.1f} dB")


def stray_detected(stray_dBm: float, floor_dBm: float) -> bool:
    """Whether the level at f_mod with a blank stands :data:`STRAY_DETECT_DB` above the floor measured with it."""
    return bool(math.isfinite(stray_dBm) and stray_dBm - floor_dBm > STRAY_DETECT_DB)


def pl_line_dBm(line_dBm: float, stray_dBm: float, floor_dBm: float) -> float:
    """The PL line (dBm) with a detected stray pump taken off: the leak is modulated in phase with the pump, as
    is the PL at f_mod, so their amplitudes add: V_PL = V_line − V_stray (methods ref. §5.1, "indistinguishable
    from PL"); the line as measured when the stray pump is not detected."""
    if not stray_detected(stray_dBm, floor_dBm):
        return float(line_dBm)
    v = chain.dbm_to_v_rms(line_dBm) - chain.dbm_to_v_rms(stray_dBm)
    return chain.v_rms_to_dbm(v) if v > 0 else -math.inf


def chain_quantities(line_dBm: float, isc_A: float, depth: float, bench: Any) -> dict[str, Any]:
    """The methods ref. §5.1 chain with the station's ``plqy`` settings: every step, F, T, EQE_det (with units
    in the keys). The absorbed pump rate is Isc/q."""
    c = bench.collection
    if c.shape == "disk":
        if c.emitter_radius_mm > 0:
            f = chain.collection_fraction_disk_to_disk(c.emitter_radius_mm, c.radius_mm, c.distance_mm)
        else:
            f = chain.collection_fraction_disk(c.radius_mm, c.distance_mm)
    else:
        f = chain.collection_fraction_rectangle(c.width_mm, c.height_mm, c.distance_mm)
    t = float(np.prod([flt.transmission for flt in bench.filters])) if bench.filters else 1.0
    eqe_det = bench.detector_responsivity_A_W * HC_OVER_Q_NM_V / bench.pl_peak_nm
    absorbed = isc_A / ELEMENTARY_CHARGE_C
    out = chain.plqy_chain(line_dBm, bench.tia_gain_V_A, eqe_det, f, t, depth, absorbed,
                           load_factor=bench.tia_load_factor)
    return {"collection_fraction": f, "filter_transmission": t, "detector_eqe": eqe_det,
            "absorbed_rate_per_s": absorbed, **out}


#: unit of each chain quantity (the ``chain`` stream)
CHAIN_UNITS = {
    "line_power_dBm": "dBm", "line_v_rms_V": "V", "photocurrent_rms_A": "A",
    "detector_photon_rate_rms_per_s": "1/s", "emitted_photon_rate_rms_per_s": "1/s",
    "absorbed_rate_per_s": "1/s", "absorbed_modulation_rms_per_s": "1/s", "collection_fraction": "1",
    "filter_transmission": "1", "detector_eqe": "1", "plqy_differential": "1",
}


class PLQYProcedure(_LaserBench):
    """Modulated PL at open circuit under 1-sun-equivalent laser light: differential and integral PLQY."""

    NAME = "plqy"
    REQUIRES = ("smu", "laser", "fgen", "analyser")
    OPTIONAL = ("shutter",)
    CAPS = {"smu": ("source_meter",), "laser": ("laser",), "fgen": ("function_generator",),
            "analyser": ("spectrum_analyser",)}
    STREAMS = {
        "isc": StreamSpec([Column("laser_power_mW", "mW"), Column("isc_A", "A"), Column("target_isc_A", "A"),
                           Column("voc_V", "V"), Column("target_voc_V", "V")],
                          signal="isc_A", axes="laser_power_mW"),
        "point": StreamSpec(
            [Column("laser_power_mW", "mW"), Column("isc_A", "A"), Column("voc_V", "V"),
             Column("modulation_depth", "1"), Column("f_mod_Hz", "Hz"), Column("amplitude_Vpp", "V"),
             Column("line_dBm", "dBm"), Column("floor_dBm", "dBm"), Column("stray_dBm", "dBm"),
             Column("stray_floor_dBm", "dBm")],
            signal="line_dBm", axes="laser_power_mW"),
        "spectrum": StreamSpec(_SPECTRUM_COLUMNS, signal="line_dBm", axes="laser_power_mW"),
        "k": StreamSpec([Column("laser_power_mW", "mW"), Column("line_dBm", "dBm"), Column("line_v_rms_V", "V")],
                        signal="line_v_rms_V", axes="laser_power_mW"),
        "chain": StreamSpec([Column("quantity", "", "str"), Column("value", ""), Column("unit", "", "str")],
                            signal="value", axes="quantity"),
    }

    jv_file = Parameter("J-V run for the 1-sun Jsc (empty = the sample's newest in the catalog)", default="")
    eqe_file = Parameter("EQE run for Voc,R and the QFLS (empty = no QFLS here; see labctl analyze voc-loss)",
                         default="")
    laser_power_mW = FloatParameter("Laser power (0 = the power giving the J-V run's Jsc)", units="mW",
                                    default=0.0, minimum=0, maximum=1000)
    start_power_mW = FloatParameter("First laser power of the 1-sun search", units="mW", default=1.0,
                                    minimum=0.001, maximum=1000)
    one_sun_by = ListParameter("1 sun - the laser's Isc equals the J-V Jsc, or its Voc the J-V Voc",
                               choices=["jsc", "voc"], default="jsc")
    voc_tolerance_mV = FloatParameter("1-sun search by Voc - allowed |Voc - target|", units="mV", default=0.5,
                                      minimum=0.01, maximum=50)
    isc_tolerance = FloatParameter("1-sun search - allowed |Isc/target - 1|", units="", default=0.003,
                                   minimum=1e-4, maximum=0.2)
    f_mod_Hz = FloatParameter("Modulation frequency", units="Hz", default=7.0, minimum=0.1, maximum=1e5)
    modulation_depth = FloatParameter("Modulation depth (peak/mean)", units="", default=0.005, minimum=1e-6,
                                      maximum=0.2)
    span_Hz = FloatParameter("Analyser span around f_mod", units="Hz", default=10.0, minimum=1, maximum=1e5)
    rbw_Hz = FloatParameter("Analyser resolution bandwidth", units="Hz", default=1.0, minimum=1, maximum=1e3)
    averages = IntegerParameter("Analyser sweeps averaged (rms)", default=4, minimum=1, maximum=1000)
    snr_warn_dB = FloatParameter("SNR below which the run warns (methods ref. §5.3)", units="dB",
                                 default=chain.MIN_SNR_DB, minimum=0, maximum=200)
    snr_min_dB = FloatParameter("SNR below which the run fails", units="dB", default=20.0, minimum=0, maximum=200)
    k_power_factors = Parameter("Laser power factors for k (comma separated; empty = k = 1)", default="0.8, 1.2")
    k_power_factors.allowed = FACTORS_ALLOWED
    readings = IntegerParameter("SMU readings averaged", default=5, minimum=1, maximum=10_000)
    area_cm2 = FloatParameter("Device area", units="cm^2", default=0.049, minimum=1e-6, maximum=1000)
    temperature_K = FloatParameter("Device temperature (QFLS)", units="K", default=298.15, minimum=1, maximum=1000)
    polarity = ListParameter("Device polarity", choices=["n-i-p", "p-i-n"], default="n-i-p")
    nplc = FloatParameter("SMU integration time", units="PLC", default=1.0, minimum=0.01, maximum=10)
    compliance_V = FloatParameter("SMU voltage limit at I = 0", units="V", default=1.5, minimum=0.02, maximum=210)

    # -- checks before anything is touched --------------------------------------------------------------------
    def validate(self, station) -> None:  # noqa: ANN001
        super().validate(station)
        limits = source_meter_limits(station)
        self.check_range("nplc", self.nplc, *limits.driver.limits.nplc_range, f"{limits.driver.__name__}")
        self.check_range("compliance_V", self.compliance_V, 0.02, limits.voltage_max_V, limits.why)
        self._compliance_A = limits.current_max_A
        self._bench = station.config.plqy
        if self._bench is None:
            raise ConfigError("station section plqy: missing; the PLQY conversion needs the detection chain "
                              "(tia_gain_V_A, detector_responsivity_A_W, pl_peak_nm, filters, collection; "
                              "docs/station-yaml.md)")
        if self.snr_min_dB > self.snr_warn_dB:
            raise ConfigError(f"parameter snr_min_dB = {self.snr_min_dB:g}: allowed at most snr_warn_dB "
                              f"({self.snr_warn_dB:g} dB)")
        if self.span_Hz < MIN_SPAN_RBW * self.rbw_Hz:
            raise ConfigError(f"parameter span_Hz = {self.span_Hz:g}: allowed at least "
                              f"{MIN_SPAN_RBW * self.rbw_Hz:g} Hz ({MIN_SPAN_RBW:g} RBW: the floor is off the line)")
        if self.f_mod_Hz - self.span_Hz / 2 < 0:
            raise ConfigError(f"parameter span_Hz = {self.span_Hz:g}: allowed at most 2·f_mod_Hz "
                              f"({2 * self.f_mod_Hz:g} Hz)")
        self._factors = parse_factors(self.k_power_factors)
        self._voc_target_V = None
        if self.laser_power_mW > 0:
            self._jsc_mA_cm2, self._jv_path = None, None
        else:
            self._find_one_sun()
            if self.one_sun_by == "voc":
                vocs = jv_figures(load_run(self._jv_path), "voc_V")
                if not vocs:
                    raise ConfigError(f"parameter jv_file = {str(self._jv_path)!r}: the J–V run has no Voc "
                                      "(allowed with one_sun_by = voc: a light J–V run)")
                self._voc_target_V = float(np.mean(vocs))
        self._eqe = None
        if self.eqe_file:
            path, run = self._given_or_newest_run("eqe_file", "eqe", "")
            if run.info.get("procedure") != "eqe" or "eqe" not in run.streams:
                raise ConfigError(f"parameter eqe_file = {str(path)!r}: not an eqe run with an 'eqe' stream")
            self._eqe = (run.streams["eqe"]["wavelength_nm"].to_numpy(), run.streams["eqe"]["eqe"].to_numpy())

    # -- instruments ------------------------------------------------------------------------------------------
    @property
    def _sign(self) -> float:
        return -1.0 if self.polarity == "p-i-n" else 1.0

    def _isc_A(self) -> float:
        smu = self.station["smu"]
        return float(np.mean([-self._sign * float(smu.measure_point().current_A[0]) for _ in range(self.readings)]))

    def _voc_V(self) -> float:
        smu = self.station["smu"]
        return float(np.mean([self._sign * float(smu.measure_point().voltage_V[0]) for _ in range(self.readings)]))

    def _set_power(self, power_mW: float) -> None:
        self.station["laser"].set_power_W(power_mW * 1e-3)
        self.wait(self.laser_stabilise_s)
        self._check_laser()

    def _power_for_voc(self, max_mW: float) -> float:
        """The laser power (mW) at which Voc (I = 0) equals the J–V run's Voc: secant steps in ln P (Voc is
        about linear in ln P), the first a factor 2, within ``voc_tolerance_mV``, at most 12 steps."""
        smu = self.station["smu"]
        smu.configure_current_source(compliance_V=self.compliance_V, nplc=self.nplc)
        smu.set_current(0.0)
        smu.enable_output()
        target, tol = self._voc_target_V, self.voc_tolerance_mV * 1e-3
        power = min(self.start_power_mW, max_mW)
        self._laser_on(power)
        points: list[tuple[float, float]] = []
        for _ in range(12):
            self.checkpoint()
            voc = self._voc_V()
            self.record("isc", {"laser_power_mW": power, "voc_V": voc, "target_voc_V": target})
            if abs(voc - target) <= tol:
                return power
            points.append((math.log(power), voc))
            if len(points) >= 2 and points[-1][1] != points[-2][1]:
                slope = (points[-1][1] - points[-2][1]) / (points[-1][0] - points[-2][0])
                step = (target - voc) / slope if slope > 0 else math.log(2.0)
            else:
                step = math.log(2.0) if voc < target else -math.log(2.0)
            power = power * math.exp(max(min(step, math.log(4.0)), -math.log(4.0)))
            if power > max_mW:
                raise PLQYError(f"1 sun (Voc {target:.4f} V of the J–V run) needs more than this laser's maximum "
                                f"{max_mW:g} mW (?MAXLP): Voc {voc:.4f} V at the last step")
            self._set_power(power)
        raise PLQYError(f"the 1-sun search did not reach Voc {target:.4f} V within {self.voc_tolerance_mV:g} mV in "
                        f"12 steps (last {voc:.4f} V at {power:.4g} mW)")

    def _one_sun(self) -> tuple[float, float]:
        """(laser power mW, Isc A) at 1 sun: by Jsc, proportional steps P ← P·I_target/I (Isc ∝ P), within
        ``isc_tolerance``, at most 8 steps and the laser's maximum; by Voc, :meth:`_power_for_voc` then Isc there;
        or ``laser_power_mW`` as given."""
        smu = self.station["smu"]
        max_mW = self.station["laser"].max_power_W * 1e3
        if self.laser_power_mW > 0 or self._voc_target_V is not None:
            power = self.laser_power_mW if self.laser_power_mW > 0 else self._power_for_voc(max_mW)
        smu.configure_voltage_source(compliance_A=self._compliance_A, nplc=self.nplc)
        smu.set_voltage(0.0)
        smu.enable_output()
        if self.laser_power_mW > 0 or self._voc_target_V is not None:
            self._laser_on(power)
            isc = self._isc_A()
            self.record("isc", {"laser_power_mW": power, "isc_A": isc, "target_isc_A": math.nan})
            return power, isc
        target = self._jsc_mA_cm2 * 1e-3 * self.area_cm2
        power = min(self.start_power_mW, max_mW)
        self._laser_on(power)
        for _ in range(8):
            self.checkpoint()
            isc = self._isc_A()
            self.record("isc", {"laser_power_mW": power, "isc_A": isc, "target_isc_A": target})
            if not isc > 0:
                raise PLQYError(f"the device's short-circuit current under {power:g} mW is {isc:.3g} A: no "
                                "photocurrent (device in place? polarity?)")
            if abs(isc / target - 1) <= self.isc_tolerance:
                return power, isc
            power = power * target / isc
            if power > max_mW:
                raise PLQYError(f"1 sun (Isc {target:.4g} A = Jsc {self._jsc_mA_cm2:.3f} mA/cm² × {self.area_cm2:g} "
                                f"cm²) needs {power:.4g} mW, above this laser's maximum {max_mW:g} mW (?MAXLP)")
            self._set_power(power)
        raise PLQYError(f"the 1-sun search did not reach Isc within {100 * self.isc_tolerance:g} % of {target:.4g} A "
                        f"in 8 steps (last {isc:.4g} A at {power:.4g} mW): a noisy or non-linear photocurrent")

    def _modulate(self) -> tuple[float, float]:
        """Generator sine for the depth at the laser's input, its output and the laser's AM on: (depth, Vpp)."""
        fgen, settings = self.station["fgen"], self.station.config.instruments["fgen"].settings
        load = settings.load_ohm() if hasattr(settings, "load_ohm") else math.inf
        b = self._bench
        per_vpp = depth_from_amplitude(1.0, load, b.laser_analog_full_scale_V, b.laser_analog_input_ohm)
        vpp = self.modulation_depth / per_vpp
        fgen.set_waveform("SIN", self.f_mod_Hz, vpp, "VPP")
        self.station["laser"].set_analog_modulation(True)
        fgen.set_output(True)
        self.wait(self.laser_stabilise_s)
        return vpp * per_vpp, vpp

    def _sweep(self, kind: str, power_mW: float, at_peak: bool = True) -> tuple[float, float, float]:
        """One averaged sweep around f_mod, stored: (line dBm: marker peak, or the level at f_mod; its frequency;
        the floor dBm)."""
        analyser = self.station["analyser"]
        trace = analyser.read_trace()
        if at_peak:
            f_line, line = analyser.peak()
        else:
            analyser.set_marker_x(self.f_mod_Hz)
            f_line, line = analyser.marker_x(), analyser.marker_y()
        floor = line_and_floor(trace.x, trace.level, self.f_mod_Hz, self.rbw_Hz)
        self.record("spectrum", {"kind": kind, "laser_power_mW": power_mW, "rbw_Hz": trace.rbw_Hz, "line_dBm": line,
                                 "line_frequency_Hz": f_line, "floor_dBm": floor,
                                 "frequency_Hz": np.asarray(trace.x, dtype=float),
                                 "level_dBm": np.asarray(trace.level, dtype=float)})
        return line, f_line, floor

    def startup(self) -> None:
        if "shutter" in self.station:
            self.station["shutter"].shutter_open = False  # the solar simulator off the device
        if self.station.can_place_in_beam:
            self.station.place_in_beam("dut")
        analyser = self.station["analyser"]
        analyser.set_frequency(self.f_mod_Hz, self.span_Hz)
        analyser.set_rbw_Hz(self.rbw_Hz)
        analyser.set_averaging(self.averages, self.averages > 1, "RMS")
        analyser.sweep_points = SPECTRUM_POINTS
        if self.laser_power_mW > 0:
            how = f"laser_power_mW = {self.laser_power_mW:g}"
        elif self._voc_target_V is not None:
            how = f"Voc {self._voc_target_V:.4f} V of {self._jv_path}"
        else:
            how = f"Jsc {self._jsc_mA_cm2:.3f} mA/cm² of {self._jv_path} × {self.area_cm2:g} cm²"
        self.log(f"1 sun: {how}; f_mod {self.f_mod_Hz:g} Hz, depth {100 * self.modulation_depth:g} %, "
                 f"RBW {self.rbw_Hz:g} Hz, span {self.span_Hz:g} Hz, {self.averages} averages")

    def execute(self) -> None:
        power, isc = self._one_sun()
        smu = self.station["smu"]
        smu.configure_current_source(compliance_V=self.compliance_V, nplc=self.nplc)
        smu.set_current(0.0)
        smu.enable_output()
        self.wait(self.laser_stabilise_s)
        voc = self._voc_V()
        self.log(f"1 sun-equivalent: {power:.4g} mW, Isc {isc:.5g} A, Voc {voc:.4f} V at I = 0")
        depth, vpp = self._modulate()
        self.progress(0.3)
        line, f_line, floor = self._sweep("line", power)
        if abs(f_line - self.f_mod_Hz) > 2 * self.rbw_Hz:
            self.log(f"WARNING: the highest point is at {f_line:.4g} Hz, not at f_mod {self.f_mod_Hz:g} Hz: no line?")
        stray, stray_floor = math.nan, math.nan
        if self.station.can_place_in_beam:
            self.station.place_in_beam("blank")
            stray, _, stray_floor = self._sweep("stray", power, at_peak=False)
            self.station.place_in_beam("dut")
            self.wait(self.laser_stabilise_s)
        else:
            self.log("WARNING: the stray pump was not measured (no way to put a blank in the device's place)")
        self.progress(0.6)
        self.record("point", {"laser_power_mW": power, "isc_A": isc, "voc_V": voc, "modulation_depth": depth,
                              "f_mod_Hz": self.f_mod_Hz, "amplitude_Vpp": vpp, "line_dBm": line, "floor_dBm": floor,
                              "stray_dBm": stray, "stray_floor_dBm": stray_floor})
        report = chain.snr_report(line, floor, None if math.isnan(stray) else stray, self.snr_warn_dB)
        if stray_detected(stray, stray_floor):
            self.log(f"stray pump detected: {stray:.1f} dBm at f_mod with a blank, {stray - stray_floor:.1f} dB above "
                     f"the floor, {line - stray:.1f} dB below the PL line (subtracted from the line, in phase)")
            if line - stray < self.snr_warn_dB:
                self.log(f"WARNING: stray pump leak: only {line - stray:.1f} dB below the PL line (raise the "
                         "filters' stopband OD at the pump, shield the detector; methods ref. §5.1)")
        if report["snr_dB"] < self.snr_min_dB:
            raise PLQYError(f"SNR {report['snr_dB']:.1f} dB ({snr_text(report)}) below snr_min_dB = "
                            f"{self.snr_min_dB:g} dB: no PLQY (raise modulation_depth or the TIA gain, block the pump)")
        if not report["snr_ok"]:
            self.log(f"WARNING: SNR {report['snr_dB']:.1f} dB ({snr_text(report)}) below snr_warn_dB = "
                     f"{self.snr_warn_dB:g} dB (methods ref. §5.3)")
        pl_line = pl_line_dBm(line, stray, stray_floor)
        if not math.isfinite(pl_line):
            raise PLQYError(f"the line at f_mod ({line:.1f} dBm) is no more than the stray pump ({stray:.1f} dBm): "
                            "no PL to convert")
        for name, value in chain_quantities(pl_line, isc, depth, self._bench).items():
            self.record("chain", {"quantity": name, "value": value, "unit": CHAIN_UNITS.get(name, "")})
        if self._factors:
            self.record("k", {"laser_power_mW": power, "line_dBm": line, "line_v_rms_V": chain.dbm_to_v_rms(line)})
            for n, factor in enumerate(self._factors):
                self.checkpoint()
                self._set_power(power * factor)
                level, _, _ = self._sweep("k", power * factor)
                self.record("k", {"laser_power_mW": power * factor, "line_dBm": level,
                                  "line_v_rms_V": chain.dbm_to_v_rms(level)})
                self.progress(0.6 + 0.4 * (n + 1) / len(self._factors))
        self._end()

    def _end(self) -> None:
        """Generator output off, laser off, SMU off (never raising: the safe state does them again)."""
        for what, step in (("generator output", lambda: self.station["fgen"].set_output(False)),
                           ("laser analog modulation", lambda: self.station["laser"].set_analog_modulation(False))):
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - the error being reported matters more
                self.log(f"WARNING: could not switch the {what} off at once ({type(exc).__name__}: {exc})")
        self._laser_off()
        try:
            self.station["smu"].disable_output()
        except Exception as exc:  # noqa: BLE001
            self.log(f"WARNING: could not switch the SMU output off at once ({type(exc).__name__}: {exc})")

    def shutdown(self) -> None:
        """Generator off, laser off, SMU off (the engine's safe state does them again and reads them back)."""
        if all(role in self.station for role in ("fgen", "laser", "smu")):
            self._end()

    # -- after the run ------------------------------------------------------------------------------------------
    def analyse(self, streams: Mapping[str, pd.DataFrame]) -> dict[str, Any]:
        point = streams.get("point", pd.DataFrame())
        bench = getattr(self, "_bench", None)
        if point.empty or bench is None:
            return {}
        p = point.iloc[0]
        stray = None if not math.isfinite(p.stray_dBm) else float(p.stray_dBm)
        report = chain.snr_report(float(p.line_dBm), float(p.floor_dBm), stray, self.snr_warn_dB)
        pl_line = pl_line_dBm(float(p.line_dBm), float(p.stray_dBm), float(p.stray_floor_dBm))
        steps = chain_quantities(pl_line, float(p.isc_A), float(p.modulation_depth), bench)
        k_rows = streams.get("k", pd.DataFrame())
        if len(k_rows) >= 2:
            k = chain.k_factor(k_rows.laser_power_mW.to_numpy(), k_rows.line_v_rms_V.to_numpy())
            k_source = f"line at {len(k_rows)} laser powers (d ln line/d ln P)"
        else:
            k, k_source = 1.0, "not measured: k = 1 assumed (the reported PLQY is the differential one)"
        plqy_diff = steps["plqy_differential"]
        plqy_abs = chain.plqy_absolute(plqy_diff, k)
        results: dict[str, Any] = {
            "plqy": plqy_abs, "plqy_differential": plqy_diff, "k_factor": k, "k_source": k_source,
            "snr_dB": report["snr_dB"], "snr_noise_dB": report["snr_noise_dB"], "snr_stray_dB": report["snr_stray_dB"],
            "snr_ok": bool(report["snr_ok"]), "f_mod_Hz": float(p.f_mod_Hz),
            "modulation_depth": float(p.modulation_depth), "amplitude_Vpp": float(p.amplitude_Vpp),
            "voc_V": float(p.voc_V), "isc_A": float(p.isc_A), "laser_power_mW": float(p.laser_power_mW),
            "line_dBm": float(p.line_dBm), "pl_line_dBm": pl_line, "noise_floor_dBm": float(p.floor_dBm),
            "stray_pump_dBm": stray, "stray_floor_dBm": None if stray is None else float(p.stray_floor_dBm),
            "stray_pump_detected": stray_detected(float(p.stray_dBm), float(p.stray_floor_dBm)),
            "absorbed_from": "Isc/q at the 1-sun laser power (IQE = 1 at short circuit, methods ref. §5.1)",
            "chain": {name: {"value": value, "unit": CHAIN_UNITS.get(name, "")} for name, value in steps.items()},
            "jv_file": str(self._jv_path) if getattr(self, "_jv_path", None) else None,
            "jsc_mA_cm2": getattr(self, "_jsc_mA_cm2", None),
        }
        results["qfls_eV"], results["voc_rad_V"] = None, None
        if getattr(self, "_eqe", None) is not None:
            from labctl.analysis.detailed_balance import qfls_eV, radiative_limit_from_eqe, radiative_voc_V

            limit = radiative_limit_from_eqe(*self._eqe, self.temperature_K)
            jsc_A_cm2 = float(p.isc_A) / self.area_cm2
            voc_rad = radiative_voc_V(jsc_A_cm2, limit.j0r_A_cm2, self.temperature_K)
            results["voc_rad_V"], results["qfls_eV"] = voc_rad, qfls_eV(voc_rad, plqy_abs, self.temperature_K)
        return results

    # -- for people ---------------------------------------------------------------------------------------------
    @classmethod
    def summarise(cls, console: Console, results: Mapping[str, Any]) -> None:
        """Every scalar result, then the chain with units."""
        from procedures import summary

        summary.print_scalars(console, {k: v for k, v in results.items() if not isinstance(v, dict)})
        for name, entry in (results.get("chain") or {}).items():
            console.print(f"  chain {name}: {entry['value']:.6g} {entry['unit']}")

    @classmethod
    def plot(cls, ax: Axes, run: RunData) -> str:
        """The spectrum around f_mod (device and blank) with the line, the floor and the stray pump marked."""
        from procedures import plots

        if not plots.has_rows(run, "spectrum"):
            return run.info.get("procedure", "")
        data = run.streams["spectrum"]
        for kind, colour in (("line", "C0"), ("stray", "C3")):
            rows = data[data.kind == kind]
            if rows.empty:
                continue
            r = rows.iloc[0]
            ax.plot(np.asarray(r.frequency_Hz), np.asarray(r.level_dBm), color=colour, lw=1,
                    label="device" if kind == "line" else "blank (stray pump)")
            ax.axhline(r.floor_dBm, color=colour, ls=":", lw=1, label=f"floor {r.floor_dBm:.1f} dBm")
            ax.plot([r.line_frequency_Hz], [r.line_dBm], "o", color=colour,
                    label=f"{'line' if kind == 'line' else 'stray'} {r.line_dBm:.1f} dBm")
        ax.set_xlabel("frequency_Hz")
        ax.set_ylabel("level_dBm (RBW)")
        ax.legend(fontsize=7)
        return run.info.get("procedure", "")

