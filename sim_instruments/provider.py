"""The simulator as labctl finds it: the ``labctl.simulators`` entry point ``sim`` (pyproject.toml).

labctl core never imports this package. It asks the class :class:`Simulator` (found with importlib.metadata,
:func:`labctl.simulators.simulator_class`) to

- validate the ``simulation:`` section of station.yaml (:meth:`Simulator.validate_section`; the schema is
  :mod:`sim_instruments.config`) and the ``sim://<name>`` resources (:meth:`Simulator.resource_problem`);
- build one bench for a station (``Simulator(station_config)``): the devices, the light sources, the EQE optics
  and the clock (virtual, or real when ``simulation.clock: real``);
- hand it one adapter per ``sim://`` resource (:meth:`Simulator.adapter`);
- answer the few named questions a station may ask of a simulated bench (:meth:`Simulator.answer`).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from labctl.clock import Clock
from labctl.clock import RealClock as WallClock
from sim_instruments.bench import Bench
from sim_instruments.clock import RealClock, VirtualClock
from sim_instruments.config import SimulationConfig

#: the questions :meth:`Simulator.answer` knows
QUESTIONS = ("simulated", "line_frequency_Hz", "set_light", "light_is_switchable", "can_place_in_beam",
             "place_in_beam", "grating_ranges_nm")


class Simulator:
    """One simulated bench for one station (see the module docstring).

    config: the station (:class:`labctl.config.StationConfig`), read by duck typing: ``simulation`` (validated by
        :meth:`validate_section`), ``eqe`` and ``instruments`` (role → ``driver``, ``resource``, ``simulated``).
    clock: the clock the bench runs on (None: the section's ``clock``: virtual, or real).
    """

    def __init__(self, config: Any, clock: Clock | None = None) -> None:
        from sim_instruments.compose import build_bench

        self.config = config
        self.section: SimulationConfig = config.simulation
        in_process = any(inst.simulated for inst in config.instruments.values())
        if clock is None:
            if not in_process:
                clock = WallClock()  # a bench served by `labctl sim serve` runs in another process, in real time
            else:
                clock = VirtualClock() if self.section.clock == "virtual" else RealClock()
        self.clock: Clock = clock
        #: the in-process bench behind the sim:// resources (None when the bench is served over TCP)
        self.bench: Bench | None = build_bench(config, clock) if in_process else None

    # -- the section of station.yaml -----------------------------------------------------------------------------
    @staticmethod
    def validate_section(data: Any) -> SimulationConfig:
        """The ``simulation:`` section, validated (pydantic ``ValidationError`` with key paths inside it)."""
        if isinstance(data, SimulationConfig):
            return data
        return SimulationConfig.model_validate(data)

    @staticmethod
    def disabled_section() -> SimulationConfig:
        """The section of a station file that has none: no simulation (defaults kept for the record)."""
        return SimulationConfig(enabled=False)

    @staticmethod
    def resource_problem(registration: Any, name: str) -> str | None:
        """Why ``sim://<name>`` cannot be the instrument of ``registration`` (a
        :class:`drivers.registration.InstrumentRegistration`) on the simulated bench (None: it can)."""
        from sim_instruments import sim_name_problem

        return sim_name_problem(registration, name)

    @staticmethod
    def station_problem(section: SimulationConfig, instruments: Mapping[str, Any]) -> str | None:
        """Why the station's ``sim://`` resources cannot run (None: they can): the simulation must be enabled."""
        sim = [name for name, inst in instruments.items() if str(inst.resource).startswith("sim://")]
        if sim and not section.enabled:
            return (f"instruments {sim} use sim:// resources but simulation.enabled is false "
                    "(allowed: enable the simulation, or give real resource strings)")
        names = set(instruments) | {r.removeprefix("sim://") for r in (str(i.resource) for i in instruments.values())
                                    if r.startswith("sim://")}
        for i, fault in enumerate(section.faults.schedule if sim else ()):  # a served copy has no sim:// names
            if fault.instrument not in names:
                return (f"simulation.faults.schedule[{i}].instrument = '{fault.instrument}': the station has no such "
                        f"instrument (allowed: a role or a sim:// name: {', '.join(sorted(names))})")
        for name, inst in instruments.items():
            resource = str(inst.resource)
            if resource in ("sim://monitor", "sim://monitor_smu") and section.enabled and section.sphere is None:
                return (f"instruments.{name}.resource = '{resource}' is the in-sphere monitor photodiode, and "
                        "simulation.sphere is null (allowed: give simulation.sphere, or another resource)")
        return None

    @staticmethod
    def monochromator_gratings(section: SimulationConfig, driver: str,
                               positions: int | None) -> tuple[list[int], str] | None:
        """(grating numbers, where they come from) of the simulated monochromator, None without a simulation.

        positions: the turret positions of the monochromator model (None: not known). ValueError when a
        simulated grating does not fit the turret."""
        if not section.enabled:
            return None
        for i, g in enumerate(section.optics.gratings):
            if positions is not None and g.number > positions:
                raise ValueError(
                    f"simulation.optics.gratings[{i}].number = {g.number}: a {driver} turret has "
                    f"{positions} positions (allowed: 1-{positions})"
                )
        have = sorted(g.number for g in section.optics.gratings)
        return have, f"the simulated {driver} has gratings {have} (simulation.optics.gratings)"

    @staticmethod
    def describe_snapshot(station: Mapping[str, Any]) -> tuple[str, str] | None:
        """(bench, clock) of a run file's station snapshot when a simulator ran it, else None.

        sim:// instruments with ``simulation.enabled`` ran on the in-process bench, on its ``simulation.clock``;
        a bench served by ``labctl sim serve`` (``simulation.operator_resource``) ran on the real clock."""
        sim = station.get("simulation") or {}
        resources = [str(i.get("resource", "")) for i in (station.get("instruments") or {}).values()]
        if sim.get("enabled") and any(r.startswith("sim://") for r in resources):
            virtual = sim.get("clock") == "virtual"
            return ("simulated (in-process, sim://)",
                    "virtual (simulated time: durations are not wall-clock time)" if virtual else "real")
        if sim.get("operator_resource"):
            return f"simulated, served over TCP by labctl sim serve ({sim['operator_resource']})", "real"
        return None

    @staticmethod
    def serve(config: Any, latency_s: float, write_station: str | None, duration_s: float) -> None:
        """``labctl sim serve``: the station's bench on loopback TCP ports (:mod:`sim_instruments.serve`)."""
        from sim_instruments.serve import run_server

        run_server(config, latency_s=latency_s, write_station=write_station, duration_s=duration_s)

    # -- one bench ---------------------------------------------------------------------------------------------
    @classmethod
    def for_station(cls, config: Any) -> Simulator | None:
        """The simulator of a station whose ``simulation:`` is enabled (in-process or served), else None."""
        section = getattr(config, "simulation", None)
        return cls(config) if isinstance(section, SimulationConfig) and section.enabled else None

    def emulator(self, registration: Any, resource: str) -> Any:
        """A new emulator on this bench of the instrument model of ``registration`` (its ``emulator`` and
        ``emulator_options``) for the ``sim://<name>`` resource ``resource``."""
        from sim_instruments import make_emulator

        if self.bench is None:
            raise ValueError(f"{resource}: the simulated bench is served over TCP, not in this process")
        return make_emulator(registration, self.bench, name=resource.removeprefix("sim://"))

    def adapter(self, role: str, resource: str, registration: Any, read_termination: str = "\n",
                write_termination: str = "\n", timeout_ms: float | None = None) -> Any:
        """A PyMeasure adapter connected in-process to a new emulator of ``registration``'s instrument model
        for ``role`` at ``resource`` (``sim://<name>``), framed with the station's terminations; a read that
        times out costs ``timeout_ms`` (the resource's timeout; None: 2000 ms) on the bench clock. The bench's
        faults (``bench.faults``) act on it; an instrument they hold ``unavailable`` is not opened:
        ``VisaIOError(error_resource_not_found)``."""
        from sim_instruments.adapter import EmulatorAdapter

        name, faults = resource.removeprefix("sim://"), getattr(self.bench, "faults", None)
        if faults is not None and faults.refuses_open((name, role)):  # an `unavailable` fault: nothing powers up
            from pyvisa.constants import StatusCode
            from pyvisa.errors import VisaIOError

            raise VisaIOError(StatusCode.error_resource_not_found)
        return EmulatorAdapter(self.emulator(registration, resource), read_termination=read_termination,
                               write_termination=write_termination, faults=faults, name=name, role=role,
                               **({"timeout": timeout_ms} if timeout_ms is not None else {}))

    # -- named questions ---------------------------------------------------------------------------------------
    def answer(self, question: str, **kwargs: Any) -> Any:
        """The answer to one of :data:`QUESTIONS` (ValueError for another)."""
        if question not in QUESTIONS:
            raise ValueError(f"the simulator does not know the question {question!r} (known: {', '.join(QUESTIONS)})")
        return getattr(self, f"_{question}")(**kwargs)

    def _simulated(self) -> bool:
        """True when the bench runs in this process (the sim:// resources)."""
        return self.bench is not None

    def _line_frequency_Hz(self) -> float | None:
        """The simulated mains frequency (Hz), None when the bench is served (its station does not say)."""
        return float(self.section.line_frequency_Hz) if self.bench is not None else None

    def _light_is_switchable(self) -> bool:
        """Whether :meth:`answer` ("set_light") can turn the light on and off (the in-process solar simulator)."""
        return self.bench is not None

    def _set_light(self, on: bool) -> bool:
        """Open/close the solar simulator's own shutter; True when done."""
        if self.bench is None:
            return False
        self.bench.light.shutter_open = bool(on)
        return True

    def _can_place_in_beam(self) -> bool:
        return self.bench is not None or bool(self.section.operator_resource)

    def _grating_ranges_nm(self) -> dict[int, tuple[float, float, str]]:
        return {g.number: (g.min_nm, g.max_nm, g.label) for g in self.section.optics.gratings}

    def _place_in_beam(self, detector: str) -> bool:
        """Put ``detector`` at the EQE sample position, or on a bench with an integrating sphere "reference" /
        "dut" at the sphere's sample port (the device is dark while the reference sensor is there;
        :func:`sim_instruments.laser_path.place_in_beam`), on a bench with a PL path "blank" (a non-emissive
        dummy in the device's place: the stray pump alone reaches the PL detector; "dut" the device back);
        True when done, False when this bench cannot.

        In-process the bench moves it; a served bench is asked over ``simulation.operator_resource``
        (RuntimeError when it refuses)."""
        bench = self.bench
        if bench is not None and (bench.optics is not None or bench.laser_path.sphere is not None
                                  or (bench.pl is not None and detector in ("dut", "blank"))):
            from sim_instruments.laser_path import place_in_beam

            place_in_beam(bench, detector)
            return True
        remote = self.section.operator_resource
        if not remote:
            return False
        from pymeasure.adapters import VISAAdapter

        link = VISAAdapter(remote, visa_library="@py", read_termination="\n", write_termination="\n",
                           timeout=5000)
        try:
            link.write(f"PLACE {detector}")
            answer = link.read().strip()
        finally:
            link.close()
        if answer != "OK":
            raise RuntimeError(f"the simulated bench at {remote} could not place '{detector}': {answer}")
        return True

    def close(self) -> None:
        """Nothing held beyond the adapters, which the station closes."""


def load(module_attr: str) -> Any:
    """The object named by a ``"module:attribute"`` string."""
    module, _, attr = module_attr.partition(":")
    return getattr(importlib.import_module(module), attr)
