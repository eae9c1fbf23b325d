"""A station: the instruments of station.yaml, connected, plus the clock and (in simulation) the bench.

``sim://<name>`` resources are connected in-process to the emulators of one shared :class:`Bench`; any
other resource goes through PyVISA (pyvisa-py, ``@py``), so a user switches to real hardware by editing the
resource strings only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from pymeasure.adapters import VISAAdapter

from drivers import REGISTRY
from labctl.config import DeviceConfig, EQEConfig, InstrumentConfig, StationConfig
from sim_instruments.bench import Bench
from sim_instruments.clock import Clock, RealClock, VirtualClock

log = logging.getLogger(__name__)


class StationError(RuntimeError):
    """An instrument could not be reached or identified; the message names it and its resource."""


def build_bench(config: StationConfig, clock: Clock) -> Bench:
    """The simulated bench described by ``config.simulation``."""
    from sim_instruments.bench import CellParameters, Degradation, Hysteresis, Light

    sim = config.simulation
    dev = sim.device
    cell = CellParameters(
        jph_mA_cm2=dev.jph_mA_cm2,
        j0_A_cm2=dev.j0_A_cm2,
        ideality=dev.ideality,
        rs_ohm_cm2=dev.rs_ohm_cm2,
        rsh_ohm_cm2=dev.rsh_ohm_cm2,
        area_cm2=dev.area_cm2,
        temperature_K=dev.temperature_K,
        bandgap_eV=dev.eqe.bandgap_eV,
        j0_reference_temperature_K=dev.j0_reference_temperature_K,
        hysteresis=Hysteresis(**dev.hysteresis.model_dump()),
        degradation=Degradation(**dev.degradation.model_dump()),
        stack=dev.stack,
    )
    light = Light(irradiance_W_m2=sim.light.irradiance_W_m2, flicker=sim.light.flicker, shutter_open=False)
    return Bench(cell=cell, light=light, clock=clock, line_frequency_Hz=sim.line_frequency_Hz, seed=sim.seed,
                 optics=build_optics(config, clock))


#: wavelength grid (nm) on which the simulated EQE is integrated and searched for its peak
_EQE_GRID_NM = (280.0, 2000.0, 1.0)


def eqe_limits(eqe: EQEConfig) -> tuple[float, float]:
    """(Jsc in mA/cm², peak EQE) of the simulated EQE shape with ``plateau = 1`` under AM1.5G (methods ref. §3.5).

    Jsc/peak is the largest photocurrent the gap (with its Urbach tail and ``shape``) allows: the EQE then reaches
    1 at its peak. Without a shape the peak is 1 and Jsc is the methods' Jsc,max (e.g. 28.97 mA/cm² at 1.50 eV)
    plus the Urbach tail below the gap.
    """
    import numpy as np

    from labctl.analysis.eqe import integrated_jsc_mA_cm2
    from sim_instruments.optics import eqe_band_edge

    grid = np.arange(*_EQE_GRID_NM)
    unit = eqe_band_edge(grid, eqe.bandgap_eV, eqe.urbach_meV / 1e3, 1.0, eqe.shape)
    return integrated_jsc_mA_cm2(grid, unit), float(np.max(unit))


def dut_eqe_plateau(device: DeviceConfig) -> float:
    """The simulated cell's EQE plateau: ``eqe.plateau``, or (null) derived so that ∫EQE·Φ_AM1.5G = jph_mA_cm2."""
    if device.eqe.plateau is not None:
        return device.eqe.plateau
    jsc_unit_mA_cm2, _ = eqe_limits(device.eqe)
    return device.jph_mA_cm2 / jsc_unit_mA_cm2


def dut_eqe_function(config: StationConfig):  # noqa: ANN201 - returns a callable λ_nm → EQE
    """The simulated cell's EQE(λ), with the plateau derived from jph_mA_cm2 when not given (AM1.5G)."""
    from sim_instruments.optics import eqe_band_edge

    dev = config.simulation.device
    e = dev.eqe
    plateau = dut_eqe_plateau(dev)

    def eqe(wavelength_nm):  # noqa: ANN001, ANN202
        return eqe_band_edge(wavelength_nm, e.bandgap_eV, e.urbach_meV / 1e3, plateau, e.shape)

    return eqe


def build_optics(config: StationConfig, clock: Clock):  # noqa: ANN201 - sim_instruments.optics.Optics
    """The EQE beam path of the simulated bench, from ``config.eqe`` (hardware) and ``simulation.optics``."""
    import numpy as np

    from labctl.calibration import CalibrationError, load_responsivity
    from sim_instruments.optics import HC_NM_V, Grating, Optics

    bench_cfg, sim = config.eqe, config.simulation
    dev = sim.device
    eqe = dut_eqe_function(config)
    divider = dev.rsh_ohm_cm2 / (dev.rs_ohm_cm2 + dev.rsh_ohm_cm2)  # small-signal short-circuit collection

    def dut_responsivity(wavelength_nm: float) -> float:
        return float(eqe(wavelength_nm)) * wavelength_nm / HC_NM_V * divider

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
        dut_responsivity=dut_responsivity,
        chopper_frequency_Hz=bench_cfg.chopper_frequency_Hz,
        preamp_gain_V_A=bench_cfg.preamp_gain_V_A,
        bandpass_nm=sim.optics.bandpass_nm,
        wheel_slots=6 if max(bench_cfg.filter_wheel_slots) <= 6 else 12,
    )


class Station:
    """Instruments by role name (``station["smu"]``), the clock, and safe-state handling."""

    def __init__(self, config: StationConfig, bench: Bench | None = None) -> None:
        self.config = config
        sim = config.simulation
        needs_bench = sim.enabled and any(inst.simulated for inst in config.instruments.values())
        if bench is not None:
            self.clock: Clock = bench.clock
        elif needs_bench and sim.clock == "virtual":
            self.clock = VirtualClock()
        else:
            self.clock = RealClock()
        if bench is None and needs_bench:
            bench = build_bench(config, self.clock)
        #: the simulated bench behind the sim:// instruments (None on real hardware or over TCP)
        self.bench = bench
        self.instruments: dict[str, Any] = {}
        #: asks the operator to do something by hand (e.g. swap detectors); None = nobody is there
        self.operator: Callable[[str], None] | None = None

    @property
    def simulated(self) -> bool:
        return self.bench is not None

    def __getitem__(self, role: str) -> Any:
        return self.instruments[role]

    def __contains__(self, role: str) -> bool:
        return role in self.instruments

    def connect(self, roles: list[str] | None = None) -> None:
        """Open the instruments named in ``roles`` (default: all). Raise :class:`StationError` on failure."""
        for role in roles if roles is not None else list(self.config.instruments):
            if role in self.instruments:
                continue
            self.instruments[role] = self._open(role, self.config.instruments[role])

    def _open(self, role: str, cfg: InstrumentConfig) -> Any:
        cls = REGISTRY[cfg.driver]
        try:
            if cfg.simulated:
                from sim_instruments import make_emulator
                from sim_instruments.adapter import EmulatorAdapter

                assert self.bench is not None
                emulator = make_emulator(cfg.driver, self.bench)
                adapter = EmulatorAdapter(
                    emulator,
                    read_termination=cfg.read_termination,
                    write_termination=cfg.write_termination,
                )
            else:
                kwargs: dict[str, Any] = {
                    "read_termination": cfg.read_termination,
                    "write_termination": cfg.write_termination,
                    "timeout": cfg.timeout_ms,
                }
                if cfg.baud_rate is not None:
                    kwargs["asrl"] = {"baud_rate": cfg.baud_rate}
                adapter = VISAAdapter(cfg.resource, visa_library="@py", **kwargs)
            return cls(adapter)
        except Exception as exc:  # noqa: BLE001 - any transport failure becomes one clear message
            raise StationError(f"cannot open instrument '{role}' ({cfg.driver}) at {cfg.resource}: {exc}") from exc

    def place_in_beam(self, detector: str) -> None:
        """Put ``detector`` ("dut" or a reference detector's name) at the EQE sample position.

        The simulated bench moves it itself (in-process, or over ``simulation.operator_resource`` when it is
        served by ``labctl sim serve``); on real hardware the operator is asked through :attr:`operator` (set by
        the CLI), and without one this raises, since nobody could do it."""
        if self.bench is not None and self.bench.optics is not None:
            self.bench.optics.place_in_beam(detector)
            return
        remote = self.config.simulation.operator_resource
        if remote:  # a simulated bench served by `labctl sim serve`
            link = VISAAdapter(remote, visa_library="@py", read_termination="\n", write_termination="\n",
                               timeout=5000)
            try:
                link.write(f"PLACE {detector}")
                answer = link.read().strip()
            finally:
                link.close()
            if answer != "OK":
                raise StationError(f"the simulated bench at {remote} could not place '{detector}': {answer}")
            return
        if self.operator is None:
            raise StationError(f"the run needs an operator to place the '{detector}' detector in the beam")
        self.operator(f"Place the {'device under test' if detector == 'dut' else detector + ' reference detector'} "
                      "in the beam, then press Enter")

    def idn(self) -> dict[str, str]:
        """``*IDN?`` (or the model's identity query) of every connected instrument."""
        out = {}
        for role, inst in self.instruments.items():
            try:
                out[role] = str(inst.id).strip()
            except Exception as exc:  # noqa: BLE001
                raise StationError(f"instrument '{role}' at {self.config.instruments[role].resource} "
                                   f"does not answer its identity query: {exc}") from exc
        return out

    def safe_state(self) -> list[str]:
        """Put every connected instrument in its safe state; try all, return the failures (never raise)."""
        failures = []
        for role, inst in self.instruments.items():
            cfg = self.config.instruments[role].safe_state
            try:
                # a Ctrl-C or an exception may have cut an exchange short: drop any unread reply first, or the
                # safe-state commands would read it as theirs
                inst.adapter.flush_read_buffer()
            except Exception:  # noqa: BLE001 - best effort; the actions below report real failures
                pass
            try:
                actions = []
                if cfg.source_voltage_V is not None:
                    actions.append(lambda i=inst, v=cfg.source_voltage_V: i.set_voltage(v))
                if cfg.output == "off":
                    actions.append(inst.disable_output)
                if cfg.shutter == "closed":
                    actions.append(inst.close_shutter)
                if not actions:
                    actions.append(inst.safe_state)
                errors = []
                for action in actions:
                    try:
                        action()
                    except Exception as exc:  # noqa: BLE001 - keep going: the next action may still work
                        errors.append(exc)
                if errors:
                    raise errors[0]
            except Exception as exc:  # noqa: BLE001
                log.error("safe state of %s failed: %s", role, exc)
                failures.append(f"{role}: {exc}")
        return failures

    def close(self) -> None:
        for inst in self.instruments.values():
            try:
                inst.adapter.close()
            except Exception:  # noqa: BLE001
                pass
        self.instruments.clear()
