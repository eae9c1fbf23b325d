"""Compose the simulated bench from a station: the cell and the light of ``simulation:``, the EQE beam path of
``eqe:`` (the bench's fixed hardware) and ``simulation.optics``, all on one clock.

The station is read by duck typing (``config.simulation``, ``config.eqe``): the simulator does not import the
labctl schema, labctl hands it over through :class:`sim_instruments.provider.Simulator`.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from sim_instruments.bench import HOUR_S, Bench, CellParameters, Degradation, Hysteresis, Interval, Laser, Light
from sim_instruments.clock import Clock
from sim_instruments.config import DeviceConfig, FilterWheelsConfig, SphereConfig
from sim_instruments.laser_path import (
    OD_WHEELS,
    AttenuatorWheel,
    IntegratingSphere,
    MonitorPhotodiode,
    ReferenceSensor,
    Sphere,
)
from sim_instruments.optics import Grating, Optics, dut_eqe_function
from sim_instruments.pl import build_pl
from sim_instruments.reference_cell import ReferenceCell

log = logging.getLogger(__name__)


def cell_parameters(dev: DeviceConfig) -> CellParameters:
    """The single-diode cell of one ``simulation.device`` entry."""
    return CellParameters(
        jph_mA_cm2=dev.jph_mA_cm2,
        j0_A_cm2=dev.j0_A_cm2,
        ideality=dev.ideality,
        extra_diodes=tuple((d.ideality, d.j0_A_cm2) for d in dev.extra_diodes),
        rs_ohm_cm2=dev.rs_ohm_cm2,
        rsh_ohm_cm2=dev.rsh_ohm_cm2,
        area_cm2=dev.area_cm2,
        capacitance_nF_cm2=dev.capacitance_nF_cm2,
        temperature_K=dev.temperature_K,
        temperature_rise_K=dev.temperature_rise_K,
        temperature_tau_s=dev.temperature_tau_s,
        bandgap_eV=dev.eqe.bandgap_eV,
        j0_reference_temperature_K=dev.j0_reference_temperature_K,
        hysteresis=Hysteresis(**dev.hysteresis.model_dump()),
        degradation=Degradation(**dev.degradation.model_dump()),
        stack=dev.stack,
        contact_resistance_ohm=dev.contact_resistance_ohm,
        eqe=dut_eqe_function(dev),
    )


def build_bench(config: Any, clock: Clock) -> Bench:
    """The simulated bench described by ``config.simulation`` (a :class:`labctl.config.StationConfig`): its
    devices (``devices``, else the one ``device``) with ``selected_device`` connected, the solar simulator
    (shutter closed; its drift and dips), the temperature schedule, the reference cell (``reference_cell``),
    the laser slot with its beam path (``filter_wheels``, ``sphere``), the EQE optics, the PL
    path (``pl``; None without it) and the fixture's ``wiring`` (switch channels → devices → SMU terminals;
    empty: ``sim://smu`` sees the selected device)."""
    sim = config.simulation
    light = Light(irradiance_W_m2=sim.light.irradiance_W_m2, flicker=sim.light.flicker, shutter_open=False,
                  drift_per_h=sim.light.drift_per_h,
                  dips=tuple(Interval(d.start_h * HOUR_S, d.duration_h * HOUR_S, d.depth) for d in sim.light.dips))
    schedule = tuple(Interval(s.start_h * HOUR_S, s.duration_h * HOUR_S, s.rise_K) for s in sim.temperature_schedule)
    ref = sim.reference_cell
    reference_cell = None if ref is None else ReferenceCell(ref.isc_at_1000_W_m2_A, ref.voc_at_1000_W_m2_V)
    laser = Laser(wavelength_nm=sim.laser.wavelength_nm, power_W=sim.laser.power_mW * 1e-3, on=sim.laser.on,
                  power_noise=sim.laser.power_noise, power_drift_per_h=sim.laser.power_drift_per_h)
    bench = Bench(devices=[cell_parameters(d) for d in sim.devices or [sim.device]], light=light, laser=laser,
                  clock=clock, line_frequency_Hz=sim.line_frequency_Hz, seed=sim.seed,
                  optics=build_optics(config, clock), sphere=build_sphere(sim.sphere),
                  od_wheels=build_od_wheels(sim.filter_wheels), temperature_schedule=schedule,
                  reference_cell=reference_cell, wiring=sim.wires())
    bench.select_device(sim.selected_device)
    bench.faults.configure(sim.faults)
    bench.pl = build_pl(sim.pl, bench)
    k2450 = sim.keithley2450
    bench.instrument_options["keithley2450"] = {
        "current_offset_A": k2450.current_offset_A,
        "input_resistance_ohm": k2450.input_resistance_ohm if k2450.input_resistance_ohm is not None else math.inf,
    }
    return bench


def build_sphere(sphere: SphereConfig | None) -> Sphere | None:
    """The integrating sphere of ``simulation.sphere`` with its monitor photodiode and reference sensor."""
    if sphere is None:
        return None
    return Sphere(
        sphere=IntegratingSphere(sphere.diameter_mm, sphere.wall_reflectance, sphere.port_fraction),
        monitor=MonitorPhotodiode(sphere.monitor_area_mm2, sphere.monitor_quantum_efficiency,
                                  sphere.monitor_dark_current_A),
        reference=ReferenceSensor(sphere.reference_aperture_mm),
    )


def build_od_wheels(wheels: FilterWheelsConfig) -> dict[str, AttenuatorWheel]:
    """The laser-path wheels of ``simulation.filter_wheels`` (their true transmissions), in beam order."""
    return {name: AttenuatorWheel(name, getattr(wheels, name)) for name in OD_WHEELS if getattr(wheels, name)}


def build_optics(config: Any, clock: Clock) -> Optics:
    """The EQE beam path of the simulated bench, from ``config.eqe`` (hardware) and ``simulation.optics``; the
    bench puts its selected device at the sample position (its responsivity, :meth:`SolarCell.responsivity_A_W`)."""
    from labctl.calibration import CalibrationError, load_responsivity

    bench_cfg, sim = config.eqe, config.simulation
    references = {}
    for name, det in bench_cfg.reference_detectors.items():
        try:
            table = load_responsivity(det.responsivity)
        except (CalibrationError, OSError) as exc:
            # a J-V or `station check` does not need the EQE tables; the EQE calibration's validate refuses the
            # run with one line naming the key (procedures.eqe.reference_detectors_end_nm)
            log.info("simulated reference detector '%s' left out of the bench: %s", name, exc)
            continue
        x, y = np.asarray(table.wavelength_nm), np.asarray(table.responsivity_A_W)
        references[name] = lambda lam, x=x, y=y: float(np.interp(lam, x, y, left=0.0, right=0.0))
    wheel = {slot: bench_cfg.long_pass(slot) for slot in bench_cfg.filter_wheel_slots}
    return Optics(
        clock=clock,
        gratings=[Grating(**g.model_dump()) for g in sim.optics.gratings],
        wheel_filters=wheel,
        mono_filters={},
        reference_responsivity=references,
        chopper_frequency_Hz=bench_cfg.chopper_frequency_Hz,
        preamp_gain_V_A=bench_cfg.preamp_gain_V_A,
        bandpass_nm=sim.optics.bandpass_nm,
        wheel_slots=bench_cfg.filter_wheel_slot_count,
    )
