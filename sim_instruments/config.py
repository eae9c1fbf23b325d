"""The ``simulation:`` section of station.yaml: the simulated bench's schema, owned by the simulator.

labctl treats the section as opaque: :class:`labctl.config.StationConfig` hands it to the simulator found
through the ``labctl.simulators`` entry point (:meth:`sim_instruments.provider.Simulator.validate_section`),
which validates it with :class:`SimulationConfig`; pydantic nests the key paths, so an error still reads
``simulation.device.jph_mA_cm2 = ...``. Reference: docs/station-yaml.md.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sim_instruments.faults import TRIGGERS
from sim_instruments.optics import dut_eqe_plateau, eqe_limits
from sim_instruments.wiring import TERMINALS, Wire, wiring_problem

#: in the message of a check of one block, the station's error lines put that block's key path where this stands
#: (the convention of labctl.config's error lines), so the device check, used for ``simulation.device`` and for
#: each of ``simulation.devices``, names the keys of the device it checked
HERE = "<here>"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class HysteresisConfig(_Strict):
    enabled: bool = False
    tau_s: float = Field(10.0, gt=0)
    beta: float = Field(3.0, ge=0)
    v_half_V: float = 0.6
    width_V: float = Field(0.15, gt=0)


#: J0 growth time constant (h) of the calibrated default degradation (methods ref. §1.7): set A "retains 94 % of
#: PCE after 600 h at 1 sun, OC" (Hao et al. 2020) with J0 x 4.791, tau = 600 h / ln 4.791 = 383.0 h
DEFAULT_J0_GROWTH_TAU_H = 383.0
#: the degradation laws' keys; `enabled: true` with none of them given is the calibrated default above
DEGRADATION_LAW_KEYS = ("burn_in_fraction", "linear_loss_per_h", "j0_growth_tau_h", "rs_growth_per_h")


class DegradationConfig(_Strict):
    """Degradation laws driven by the light dose (methods ref. §1.7). ``enabled: true`` without any law key is the
    calibrated default: J0 grows with τ = :data:`DEFAULT_J0_GROWTH_TAU_H` (≈ 6 % PCE loss after 600 h of 1 sun at
    open circuit for the default cell); giving any law key uses exactly the laws given."""

    enabled: bool = False
    burn_in_fraction: float = Field(0.0, ge=0, lt=1)
    burn_in_tau_h: float = Field(20.0, gt=0)
    linear_loss_per_h: float = Field(0.0, ge=0)
    j0_growth_tau_h: float | None = Field(None, gt=0)
    rs_growth_per_h: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _calibrated_default(self) -> DegradationConfig:
        if self.enabled and not self.model_fields_set.intersection(DEGRADATION_LAW_KEYS):
            self.__dict__["j0_growth_tau_h"] = DEFAULT_J0_GROWTH_TAU_H
        return self


class EQEConfig(_Strict):
    """Simulated cell's spectral EQE: a plateau above the band gap and an Urbach tail below (methods ref. §6.3).

    ``plateau: null`` derives it so that ∫EQE·Φ_AM1.5G = jph_mA_cm2, which makes the EQE consistent with the
    J–V photocurrent of the same cell."""

    bandgap_eV: float = Field(1.5789, gt=0.3, lt=4.5)
    urbach_meV: float = Field(20.0, gt=1, lt=500)
    plateau: float | None = Field(None, gt=0, le=1)
    shape: list[tuple[float, float]] | None = Field(None, description="[[wavelength_nm, relative factor], ...]")


class DiodeConfig(_Strict):
    """One more recombination channel in parallel with the main diode (methods ref. §4.1, §4.3)."""

    ideality: float = Field(ge=0.5, le=10)
    j0_A_cm2: float = Field(gt=0, lt=1e-2, description="J0 at j0_reference_temperature_K (A/cm²)")


class DeviceConfig(_Strict):
    """Simulated cell, single-diode parameters at 1 sun (methods ref. §1.6).

    ``extra_diodes`` adds recombination channels of other ideality in parallel with the main diode
    (``ideality``, ``j0_A_cm2``), so that different channels dominate at different intensities (methods ref.
    §4.3: n = 1, 2, 4); empty (the default) is the single-diode cell. Each J0 follows the temperature with its
    own ideality.

    ``j0_A_cm2`` is J0 at ``j0_reference_temperature_K``; at ``temperature_K`` the bench uses
    J0(T) = J0(T_ref)·(T/T_ref)³·exp(−(Eg/(n·k))·(1/T − 1/T_ref)) with Eg = ``eqe.bandgap_eV``
    (labctl.analysis.sdm.j0_at_temperature_A_cm2), so Voc falls as the cell warms."""

    jph_mA_cm2: float = Field(18.33514, ge=0, le=100)
    j0_A_cm2: float = Field(1.16004e-15, gt=0, lt=1e-2, description="J0 at j0_reference_temperature_K (A/cm²)")
    ideality: float = Field(1.5, ge=0.5, le=10)
    extra_diodes: list[DiodeConfig] = Field(
        default_factory=list, description="[{ideality, j0_A_cm2}, ...] in parallel with the main diode"
    )
    rs_ohm_cm2: float = Field(3.84022, ge=0, le=1e4)
    rsh_ohm_cm2: float = Field(2000.0, gt=0)
    area_cm2: float = Field(0.049, gt=0, le=1000)
    capacitance_nF_cm2: float = Field(
        0.0, ge=0, le=1e5,
        description="junction capacitance (nF/cm²): Voc at a sourced current settles with τ = C·dV/dJ; 0: at once",
    )
    temperature_K: float = Field(298.15, gt=0, le=500)
    temperature_rise_K: float = Field(
        0.0, ge=0, le=200, description="steady-state warming under 1 sun (K), proportional to the light"
    )
    temperature_tau_s: float = Field(600.0, gt=0, description="time constant of the warming under light (s)")
    j0_reference_temperature_K: float = Field(298.15, gt=0, le=500, description="temperature of j0_A_cm2 (K)")
    hysteresis: HysteresisConfig = Field(default_factory=HysteresisConfig)
    degradation: DegradationConfig = Field(default_factory=DegradationConfig)
    eqe: EQEConfig = Field(default_factory=EQEConfig)
    stack: Literal["n-i-p", "p-i-n"] = Field(
        "n-i-p", description="n-i-p: anode on the SMU HI terminal in the fixture; p-i-n: anode on LO"
    )
    contact_resistance_ohm: float = Field(
        0.0, ge=0, le=1e15,
        description="the probe contact in series with the device (Ω); 0: a good contact, 1e9: a probe not touching",
    )

    @model_validator(mode="after")
    def _physical_eqe(self) -> DeviceConfig:
        """No EQE above 1 and no photocurrent above what the gap allows under AM1.5G (methods ref. §3.5).

        An explicit ``eqe.plateau`` that does not integrate to ``jph_mA_cm2`` is accepted: it is how a J–V/EQE
        mismatch is simulated (the EQE run's Jsc check reports it). The messages name the device's keys after
        :data:`HERE`, which the station's error line replaces with the device's own path (``simulation.device``
        or ``simulation.devices.<n>``)."""
        e = self.eqe
        jsc_unit, peak_unit = eqe_limits(e)
        jph_max = jsc_unit / peak_unit
        if self.jph_mA_cm2 > jph_max * (1 + 1e-9):
            gap = f"{HERE}.eqe.bandgap_eV = {e.bandgap_eV:g}, urbach_meV = {e.urbach_meV:g}"
            gap += " and its shape" if e.shape else ""
            need = (f"would need a peak EQE of {dut_eqe_plateau(self) * peak_unit:.4f} (above 1, impossible)"
                    if e.plateau is None else "is more than an EQE of 1 gives")
            raise ValueError(
                f"{HERE}.jph_mA_cm2 = {self.jph_mA_cm2:g} {need} under AM1.5G with {gap} "
                f"(allowed: jph_mA_cm2 <= {jph_max:.2f} mA/cm² for this gap, or a smaller bandgap_eV)"
            )
        peak = dut_eqe_plateau(self) * peak_unit
        if peak > 1 + 1e-9:
            raise ValueError(
                f"{HERE}.eqe.plateau = {e.plateau:g} times the peak of {HERE}.eqe.shape "
                f"({peak_unit:g}) is an EQE of {peak:.4f} (allowed: plateau x shape <= 1)"
            )
        return self


class GratingConfig(_Strict):
    number: int = Field(ge=1, le=3)
    lines_per_mm: int = Field(gt=0)
    blaze_nm: float = Field(gt=0)
    min_nm: float = Field(ge=0)
    max_nm: float = Field(gt=0)
    label: str = Field(max_length=8)


class OpticsConfig(_Strict):
    """The simulated monochromator's gratings and bandpass (the real instrument reports its own)."""

    gratings: list[GratingConfig] = Field(
        default_factory=lambda: [
            GratingConfig(number=1, lines_per_mm=1200, blaze_nm=500, min_nm=200, max_nm=1400, label="VIS"),
            GratingConfig(number=2, lines_per_mm=600, blaze_nm=1000, min_nm=400, max_nm=2800, label="NIR"),
        ]
    )
    bandpass_nm: float = Field(10.0, gt=0, le=50)


class LampDipConfig(_Strict):
    """One dip of the solar simulator's lamp in station time: ``depth`` (fraction of the light lost, 1 = dark)
    from ``start_h`` for ``duration_h`` (h)."""

    start_h: float = Field(ge=0, description="station time the dip starts (h)")
    duration_h: float = Field(gt=0, description="how long it lasts (h)")
    depth: float = Field(gt=0, le=1, description="fraction of the irradiance lost during the dip")


class LightConfig(_Strict):
    """The solar simulator: nominal irradiance, flicker (1 σ per reading), a drift (relative per hour of lamp-on
    time, which on the bench is station time: the lamp burns from the start, the shutter only blocks it) and
    dips in station time, seen alike by the device and the reference cell."""

    irradiance_W_m2: float = Field(1000.0, ge=0, le=5000)
    flicker: float = Field(0.0, ge=0, le=0.1, description="relative lamp flicker, 1 sigma")
    drift_per_h: float = Field(0.0, ge=-0.01, le=0.01, description="relative irradiance change per hour of lamp-on")
    dips: list[LampDipConfig] = Field(default_factory=list, description="[{start_h, duration_h, depth}, ...]")


class TemperatureStepConfig(_Strict):
    """A change of the device temperature in station time: ``rise_K`` (K, may be negative) from ``start_h`` for
    ``duration_h`` (h), on top of ``device.temperature_K`` and the rise under light."""

    start_h: float = Field(ge=0, description="station time it starts (h)")
    duration_h: float = Field(gt=0, description="how long it lasts (h)")
    rise_K: float = Field(ge=-100, le=200, description="temperature change (K)")


class ReferenceCellConfig(_Strict):
    """A linear Si reference cell under the solar simulator (same shutter, flicker, drift and dips as the device),
    read by a source-meter at ``sim://reference_cell``: I(V) = Isc − I_s·(exp(V/V_t) − 1), Isc proportional to
    the irradiance, I_s from ``voc_at_1000_W_m2_V``, V_t = kT/q at 298.15 K; area and spectral mismatch are in
    ``isc_at_1000_W_m2_A`` (its calibration value, IEC 60904-2)."""

    isc_at_1000_W_m2_A: float = Field(0.1, gt=0, le=10, description="short-circuit current at 1000 W/m² (A)")
    voc_at_1000_W_m2_V: float = Field(0.60, gt=0.1, lt=1.0, description="open-circuit voltage at 1000 W/m² (V)")


class LaserConfig(_Strict):
    """The bench's laser slot (e.g. light-intensity Voc): its wavelength, its emitted power, and how that power
    fluctuates (relative, 1 σ per reading) and drifts (relative, per hour of emission). Without
    ``simulation.sphere`` the whole beam reaches the device."""

    wavelength_nm: float = Field(520.0, gt=200, lt=3000)
    power_mW: float = Field(0.0, ge=0, le=1000, description="emitted optical power (mW); no sphere: on the device")
    on: bool = False
    power_noise: float = Field(0.0, ge=0, le=0.1, description="relative power noise, 1 sigma per reading")
    power_drift_per_h: float = Field(0.0, ge=-0.5, le=0.5, description="relative power change per hour of emission")


class SphereConfig(_Strict):
    """The integrating sphere at the end of the laser path, its monitor photodiode and the reference sensor.

    Sample-port irradiance E = P_in·M/A_s, M = ρ/(1 − ρ(1 − f)), A_s = π·d² (Labsphere technical guide "A guide
    to integrating sphere theory and applications"). The defaults (1-inch sphere, ρ = 0.98, f = 0.05: E/P_in =
    0.70 cm⁻²) put about 78 mW into 54.5 mW/cm² at the sample port, 1 sun-equivalent at 520 nm for a device with
    Jsc 18.3 mA/cm² and EQE(520) = 0.80 (methods ref. §4.2)."""

    diameter_mm: float = Field(25.4, gt=0, le=2000, description="inner diameter (mm)")
    wall_reflectance: float = Field(0.98, gt=0, lt=1)
    port_fraction: float = Field(0.05, gt=0, lt=1, description="port area / sphere surface")
    monitor_area_mm2: float = Field(13.0, gt=0, le=1000, description="monitor photodiode active area (mm²)")
    monitor_quantum_efficiency: float = Field(0.70, gt=0, le=1, description="monitor QE at the laser wavelength")
    monitor_dark_current_A: float = Field(2e-12, ge=0, le=1e-6, description="monitor dark current (A)")
    reference_aperture_mm: float = Field(9.5, gt=0, le=100, description="reference sensor aperture diameter (mm)")


class FilterWheelsConfig(_Strict):
    """TRUE transmissions at the laser wavelength of the slots of the laser-path wheels ({slot: T}); a slot not
    given is open (T = 1); a wheel has 12 slots when a slot above 6 is given, else 6."""

    od_wheel_1: dict[int, float] = Field(default_factory=dict)
    od_wheel_2: dict[int, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _transmissions(self) -> FilterWheelsConfig:
        for name in ("od_wheel_1", "od_wheel_2"):
            for slot, t in getattr(self, name).items():
                if not 1 <= slot <= 12:
                    raise ValueError(f"{name}.{slot} = {t!r}: no such slot on an FW102C/FW212C wheel "
                                     "(allowed: slots 1-12)")
                if not 0 < t <= 1:
                    raise ValueError(f"{name}.{slot} = {t!r}: not a transmission (allowed: 0 < T <= 1)")
        return self


class Keithley2450SimConfig(_Strict):
    """The simulated 2450's limits at a sourced current (instruments ref. §2: 10 nA range source accuracy
    ±(0.1 % + 100 pA), voltmeter input resistance > 10 GΩ); the defaults are an ideal instrument."""

    current_offset_A: float = Field(
        0.0, ge=-1e-6, le=1e-6, description="source error (A, into HI): it outputs the programmed current plus this"
    )
    input_resistance_ohm: float | None = Field(None, gt=0, description="voltmeter across the terminals (Ω); null: none")


class PLFilterConfig(_Strict):
    """One long-pass filter of the PL path: ``transmission`` at and above ``cut_on_nm``, 10^(−stopband_od) below."""

    cut_on_nm: float = Field(gt=200, lt=3000)
    transmission: float = Field(0.95, gt=0, le=1, description="pass-band transmission (fraction)")
    stopband_od: float = Field(4.0, ge=0, le=12, description="optical density below the cut-on (at the pump)")


class PLCollectionConfig(_Strict):
    """The PL detector's geometry on the device's normal (Lambertian collection, methods ref. §5.2)."""

    shape: Literal["rectangle", "disk"] = "rectangle"
    width_mm: float = Field(10.0, gt=0, le=1000, description="rectangle: side a (mm)")
    height_mm: float = Field(10.0, gt=0, le=1000, description="rectangle: side b (mm)")
    radius_mm: float = Field(5.0, gt=0, le=1000, description="disk: detector (or lens aperture) radius (mm)")
    emitter_radius_mm: float = Field(0.0, ge=0, le=1000, description="disk: emitting disk radius (mm); 0: point")
    distance_mm: float = Field(50.0, gt=0, le=10000, description="emitter to detector (mm)")


class PLDetectorConfig(_Strict):
    """The Si photodiode: responsivity at the PL peak and at the pump wavelength (A/W)."""

    responsivity_A_W: float = Field(0.50, gt=0, le=2, description="at the PL peak (A/W)")
    pump_responsivity_A_W: float = Field(0.30, ge=0, le=2, description="at the pump wavelength (A/W)")


class PLTransimpedanceConfig(_Strict):
    """The transimpedance amplifier between the photodiode and the spectrum analyser."""

    gain_V_A: float = Field(1e7, gt=0, le=1e13)
    load_factor: float = Field(1.0, gt=0, le=1, description="1: gain at the 50 Ω load; 0.5: 50 Ω into 50 Ω")
    temperature_K: float = Field(295.0, gt=0, le=500, description="feedback resistor temperature (Johnson noise)")
    amplifier_noise_A_rtHz: float = Field(1e-14, ge=0, le=1e-6, description="input current noise (A/√Hz)")


class PLStrayConfig(_Strict):
    """The pump light that reaches the PL detector's filters (scatter and geometry together)."""

    scattered_fraction: float = Field(1e-2, ge=0, le=1, description="of the pump photons on the device")


class PLConfig(_Strict):
    """The PL path of the device at open circuit (modulated PLQY, methods ref. §5; model:
    :mod:`sim_instruments.pl`). ``plqy`` is the external integral PLQY under 1 sun of generation; its intensity
    dependence follows from the cell's recombination (QFLS = qVoc, radiative ideality 1)."""

    plqy: float = Field(0.10, gt=0, le=1, description="external PLQY at open circuit, 1 sun")
    peak_nm: float | None = Field(None, gt=200, lt=3000, description="PL peak (nm); null: the cell's gap hc/Eg")
    fwhm_nm: float = Field(40.0, gt=0, le=500, description="PL full width at half maximum (nm), Gaussian")
    collection: PLCollectionConfig = Field(default_factory=PLCollectionConfig)
    filters: list[PLFilterConfig] = Field(
        default_factory=lambda: [PLFilterConfig(cut_on_nm=550, transmission=0.95, stopband_od=2.0),
                                 PLFilterConfig(cut_on_nm=650, transmission=0.95, stopband_od=3.0)]
    )
    detector: PLDetectorConfig = Field(default_factory=PLDetectorConfig)
    tia: PLTransimpedanceConfig = Field(default_factory=PLTransimpedanceConfig)
    stray: PLStrayConfig = Field(default_factory=PLStrayConfig)
    emission_blocked: bool = Field(False, description="a non-emissive blank in the device's place at start")


class FaultEntryConfig(_Strict):
    """One scheduled fault (:class:`sim_instruments.faults.FaultSpec`; what a client sees: that module)."""

    instrument: str = Field(min_length=1, description="sim:// name (e.g. smu) or station role")
    kind: Literal["timeout", "drop", "garbage", "reboot", "reset", "unavailable", "stall"]  # faults.KINDS
    at_message: int | None = Field(None, ge=1, description="the n-th message to the instrument (from 1)")
    every_messages: int | None = Field(None, ge=1, description="every n-th message")
    probability: float | None = Field(None, gt=0, le=1, description="per message")
    at_s: float | None = Field(None, ge=0, description="first message at or after this station time (s)")
    every_s: float | None = Field(None, gt=0, description="first message of each period (s)")
    duration_s: float = Field(0.0, ge=0, description="unavailable: connections refused; stall: how long (s)")
    count: int | None = Field(None, ge=1, description="most injections (null: 1 for at_*, else unlimited)")

    @model_validator(mode="after")
    def _one_trigger(self) -> FaultEntryConfig:
        given = [t for t in TRIGGERS if getattr(self, t) is not None]
        if len(given) != 1:
            raise ValueError(f"a fault on '{self.instrument}' has triggers {given or 'none'} "
                             f"(allowed: exactly one of {', '.join(TRIGGERS)})")
        if self.kind == "unavailable" and not self.duration_s > 0:
            raise ValueError(f"an 'unavailable' fault on '{self.instrument}' needs duration_s > 0 "
                             "(allowed: how long no connection is accepted, s)")
        return self


class FaultsConfig(_Strict):
    """``simulation.faults``: injected transport and instrument faults (:mod:`sim_instruments.faults`)."""

    seed: int | None = Field(0, description="seed of the probability draws")
    schedule: list[FaultEntryConfig] = Field(default_factory=list)


class WiringConfig(_Strict):
    """One wire of a multi-pixel fixture (:mod:`sim_instruments.wiring`): the relay of ``channel`` on the
    switch ``sim://<switch>`` connects device ``device`` (number in ``simulation.devices``, from 1) to the SMU
    terminal ``terminal`` (the SMU's ``sim://`` name)."""

    switch: str = Field(min_length=1, description="the switch's sim:// name (e.g. switch)")
    channel: int = Field(ge=1, description="its channel number, as the switch numbers them")
    device: int = Field(ge=1, description="the device it connects (number from 1)")
    terminal: Literal[TERMINALS] = Field("smu", description="the SMU it connects to (sim:// name)")  # type: ignore[valid-type]


class SimulationConfig(_Strict):
    enabled: bool = True
    clock: Literal["virtual", "real"] = "virtual"
    line_frequency_Hz: Literal[50, 60] = 50
    seed: int | None = 0
    light: LightConfig = Field(default_factory=LightConfig)
    laser: LaserConfig = Field(default_factory=LaserConfig)
    sphere: SphereConfig | None = Field(None, description="integrating sphere on the laser path; null: direct beam")
    filter_wheels: FilterWheelsConfig = Field(default_factory=FilterWheelsConfig)
    keithley2450: Keithley2450SimConfig = Field(default_factory=Keithley2450SimConfig)
    device: DeviceConfig = Field(default_factory=DeviceConfig,
                                 description="the device on the bench; with `devices`: the selected one (set)")
    devices: list[DeviceConfig] | None = Field(
        None, description="the devices (pixels) of a substrate, numbered from 1; null = the one `device`"
    )
    selected_device: int = Field(1, ge=1, description="the device connected to the SMU (number from 1)")
    optics: OpticsConfig = Field(default_factory=OpticsConfig)
    pl: PLConfig | None = Field(None, description="the PL path (modulated PLQY); null: none")
    temperature_schedule: list[TemperatureStepConfig] = Field(
        default_factory=list, description="[{start_h, duration_h, rise_K}, ...]: device temperature changes"
    )
    reference_cell: ReferenceCellConfig | None = Field(
        None, description="a Si reference cell under the solar simulator at sim://reference_cell; null: none"
    )
    operator_resource: str | None = Field(
        None, description="set by `labctl sim serve`: where the served bench takes detector swaps"
    )
    faults: FaultsConfig = Field(default_factory=FaultsConfig, description="injected faults; default: none")
    wiring: list[WiringConfig] = Field(
        default_factory=list,
        description="[{switch, channel, device, terminal}, ...]: the fixture's relays; empty: no switch, sim://smu "
                    "sees the selected device",
    )

    @model_validator(mode="before")
    @classmethod
    def _one_way_to_give_the_device(cls, data: Any) -> Any:
        """``device`` (one device) or ``devices`` (a substrate), not both; a snapshot repeats ``device`` as the
        selected one of ``devices``, which is accepted when it is that one."""
        if isinstance(data, dict) and data.get("devices") and "device" in data:
            devices, number = data["devices"], data.get("selected_device", 1)
            selected = devices[number - 1] if isinstance(number, int) and 1 <= number <= len(devices) else None
            if data["device"] != selected and not (isinstance(selected, BaseModel) and selected == data["device"]):
                raise ValueError("give the device as simulation.device or the substrate's devices as "
                                 "simulation.devices, not both (allowed: one of them)")
            data = {k: v for k, v in data.items() if k != "device"}
        return data

    @model_validator(mode="after")
    def _selected_is_on_the_bench(self) -> SimulationConfig:
        count = len(self.devices) if self.devices else 1
        if self.selected_device > count:
            raise ValueError(f"{HERE}.selected_device = {self.selected_device}: the bench has {count} "
                             f"device{'s' if count > 1 else ''} (allowed: 1-{count})")
        if self.devices:  # `device` is the selected one, so every reader of the one device sees it
            self.__dict__["device"] = self.devices[self.selected_device - 1]
        problem = wiring_problem(self.wires(), count, HERE)
        if problem is not None:
            raise ValueError(problem)
        return self

    def wires(self) -> tuple[Wire, ...]:
        """``wiring`` as the bench takes it (:class:`sim_instruments.wiring.Wire`)."""
        return tuple(Wire(w.switch, w.channel, w.device, w.terminal) for w in self.wiring)
