"""A station: the instruments of station.yaml, connected, plus the clock and (in simulation) the simulator.

``sim://<name>`` resources get their adapter from the simulator (found through the ``labctl.simulators`` entry
point, :mod:`labctl.simulators`; labctl never imports it), which builds one shared bench and its clock; any
other resource goes through PyVISA (pyvisa-py, ``@py``), so a user switches to real hardware by editing the
resource strings only. Either way an instrument is asked its identity before anything else and refused
unless its driver accepts it (``IDENTITY`` of each driver class, :mod:`drivers.identity`).
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from drivers.identity import IdentityError, verify_identity
from drivers.io_helpers import DeadlineVISAAdapter
from drivers.safe import describe, read_back_output_off, read_back_shutter_closed, run_steps
from labctl.clock import Clock, RealClock
from labctl.config import InstrumentConfig, StationConfig
from labctl.simulators import simulator_class

log = logging.getLogger(__name__)

SAFE_STATE_BUDGET_S = 5.0
"""Longest time one instrument may take to reach its safe state (s): an abort, a few commands and read-backs,
each bounded by the instrument's timeout; a link that has not answered by then is reported as not safe."""
SAFE_STATE_TOTAL_BUDGET_S = 12.0
"""Longest time the safe state of the whole station may take (s), whatever the number of instruments."""


@dataclass(frozen=True)
class SafeOutcome:
    """How one instrument's safe state ended: role, success, what was done (or why not), time taken (s)."""

    role: str
    ok: bool
    detail: str
    elapsed_s: float


class StationError(RuntimeError):
    """An instrument could not be reached or identified; the message names it and its resource."""


class Station:
    """Instruments by role name (``station["smu"]``), the clock, and safe-state handling."""

    def __init__(self, config: StationConfig, simulator: Any = None) -> None:
        """simulator: the simulated bench behind the sim:// resources (default: the ``labctl.simulators``
        entry point's, built when ``simulation:`` is enabled; None on real hardware)."""
        self.config = config
        if simulator is None:
            cls = simulator_class() if config.simulation is not None else None
            simulator = cls.for_station(config) if cls is not None else None
        #: the simulator of this station (in-process bench or served over TCP); None on real hardware
        self.simulator = simulator
        self.clock: Clock = simulator.clock if simulator is not None else RealClock()
        self.instruments: dict[str, Any] = {}
        #: the verified identity of each connected instrument (a listen-only one: its driver's description)
        self.identities: dict[str, str] = {}
        #: asks the operator to do something by hand (e.g. swap detectors); None = nobody is there
        self.operator: Callable[[str], None] | None = None
        #: the outcome of each instrument at the last :meth:`safe_state` (empty before)
        self.safe_report: list[SafeOutcome] = []
        #: the settings the registration's ``configure`` applied to each connected instrument (None: none), re-applied
        #: by :meth:`reconnect`
        self.configurations: dict[str, Any] = {}
        #: per role, the driver's ``configure*`` calls a procedure made, the last one of each method in the order
        #: they were last made: (method name, args, kwargs); replayed by :meth:`reconnect`
        self.configuration_calls: dict[str, dict[str, tuple[tuple[Any, ...], dict[str, Any]]]] = {}
        self._light: Any = None

    @property
    def simulated(self) -> bool:
        """True when the instruments are the in-process simulated bench (sim:// resources)."""
        return self._ask("simulated", default=False)

    @property
    def bench(self) -> Any:
        """The simulator's in-process bench, for tests and the simulator's tools (None otherwise). Procedures
        never use it: they ask the named questions below."""
        return getattr(self.simulator, "bench", None)

    def _ask(self, question: str, default: Any = None, **kwargs: Any) -> Any:
        """The simulator's answer to a named question (``default`` without a simulator)."""
        return default if self.simulator is None else self.simulator.answer(question, **kwargs)

    def __getitem__(self, role: str) -> Any:
        return self.instruments[role]

    def __contains__(self, role: str) -> bool:
        return role in self.instruments

    def connect(self, roles: list[str] | None = None) -> None:
        """Open the instruments named in ``roles`` (default: all) and verify each one's identity before anything
        else is sent to it. Raise :class:`StationError` on failure; a refused instrument is closed, not kept."""
        for role in roles if roles is not None else list(self.config.instruments):
            if role in self.instruments:
                continue
            self.instruments[role], self.identities[role] = self._open(role, self.config.instruments[role])

    def reconnect(self, role: str) -> Any:
        """Close the resource of ``role`` only, reopen it with its options, verify its identity and re-apply its
        last configuration; return the new driver instance (``station[role]`` is it from now on).

        "Last configuration" is, in this order: what the station applied when it connected the instrument (the
        registration's ``configure`` with the station file's ``settings``, :attr:`configurations`), then the
        driver's ``configure*`` calls made since (e.g. a source meter's ``configure_voltage_source`` by the
        procedure), the last call of each method, in the order they were last made
        (:attr:`configuration_calls`), so a power-cycled instrument is set up as it was. Before that, an
        output is switched off (``disable_output``: a dropped link leaves it on); a call failing on errors
        queued before (the driver's error-queue check read them out) is made once more. Levels, output state
        and a running sweep are not replayed: the caller
        decides whether to switch an output back on. Raises
        :class:`StationError` (one line naming the role and the resource) when it cannot; the role is then left
        disconnected (not in the station) until a later
        ``reconnect`` or ``connect`` succeeds, so the safe state does not talk to a dead link.
        """
        if role not in self.config.instruments:
            raise StationError(f"no instrument '{role}' in the station (it has: {sorted(self.config.instruments)})")
        old = self.instruments.pop(role, None)
        self.identities.pop(role, None)
        if old is not None:
            _close_quietly(old)
        cfg = self.config.instruments[role]
        calls = list(self.configuration_calls.get(role, {}).items())
        instrument, identity = self._open(role, cfg)
        # A link that dropped leaves the instrument as it was, output on: replaying its source configuration then
        # would switch source functions live, at stale levels. Its output goes off first; the caller switches it
        # back on (the procedure's ramp).
        if callable(getattr(instrument, "disable_output", None)):
            calls.insert(0, ("disable_output", ((), {})))
        for name, (args, kwargs) in calls:
            try:
                try:
                    getattr(instrument, name)(*args, **kwargs)
                except Exception as exc:  # errors queued before the link failed (a reading refused by a reset
                    from labctl.recovery import classify_io_error  # meanwhile) fail the first call that checks

                    if classify_io_error(exc) is not None or "error queue" not in str(exc):
                        raise  # the queue: that check read them out; the call once more
                    getattr(instrument, name)(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - one clear message; the role stays disconnected
                _close_quietly(instrument)
                raise StationError(f"instrument '{role}' ({cfg.driver}) at {cfg.resource} was reconnected but "
                                   f"refused its last configuration ({name}): {type(exc).__name__}: {exc}") from exc
        self.instruments[role], self.identities[role] = instrument, identity
        return instrument

    # -- roles and capabilities (checked against the station file: no I/O) ---------------------------------------
    def offers(self, role: str, capability: str | type) -> bool:
        """Whether the station has ``role`` and its instrument's registration declares ``capability``."""
        from labctl.capabilities import capability_name

        name = capability_name(capability)
        cfg = self.config.instruments.get(role)
        return cfg is not None and name in cfg.registration.capabilities

    def check_capability(self, role: str, capability: str | type, needed_by: str = "the run") -> None:
        """Raise :class:`ConfigError` (one line: the role, the capability, what the station has) unless the
        station's ``role`` offers ``capability``. Sends nothing."""
        from labctl.capabilities import capability_name
        from labctl.config import ConfigError

        name = capability_name(capability)
        cfg = self.config.instruments.get(role)
        if cfg is None:
            offering = sorted(r for r, c in self.config.instruments.items() if name in c.registration.capabilities)
            hint = f"; {', '.join(repr(r) for r in offering)} offers it" if offering else ""
            raise ConfigError(f"{needed_by} needs instrument '{role}' ({name}) in the station (the station has: "
                              f"{sorted(self.config.instruments)}{hint})")
        offered = cfg.registration.capabilities
        if name not in offered:
            raise ConfigError(f"{needed_by} needs instrument '{role}' to be a {name}, and the station's '{role}' is a "
                              f"{cfg.driver}, which offers: {', '.join(offered) or 'nothing'} "
                              f"(instruments.{role}.driver)")

    def require(self, role: str, capability: str | type, needed_by: str = "the run") -> Any:
        """The connected instrument of ``role``, checked to offer ``capability`` (:meth:`check_capability`: a
        :class:`ConfigError` before any I/O), and to implement its methods (:class:`StationError` otherwise)."""
        from labctl.capabilities import capability_name, missing_methods

        self.check_capability(role, capability, needed_by)
        name = capability_name(capability)
        if role not in self.instruments:
            raise StationError(f"instrument '{role}' is not connected (call connect() first)")
        inst = self.instruments[role]
        missing = missing_methods(inst, name)
        if missing:
            raise StationError(f"instrument '{role}' ({self.config.instruments[role].driver}) is registered as a "
                               f"{name} but its driver lacks {', '.join(missing)}")
        return inst

    def light(self):  # noqa: ANN201 - labctl.capabilities.Light
        """The light on the sample (capability Light): the ``shutter`` instrument when the station has one, else
        the simulated solar simulator, else the operator (:class:`~labctl.capabilities.OperatorLight`: asked
        through :attr:`operator`, refused when nobody is there). The same object for the station's lifetime;
        nothing is sent until it is switched."""
        if self._light is None:
            from labctl.capabilities import OperatorLight, ShutterLight

            if self.offers("shutter", "shutter"):
                self._light = ShutterLight(lambda: self.require("shutter", "shutter"))
            elif not self.light_is_operator_controlled:
                self._light = _SimulatedLight(self)
            else:
                self._light = OperatorLight(lambda: self.operator, StationError)
        return self._light

    def _open(self, role: str, cfg: InstrumentConfig) -> tuple[Any, str]:
        """(driver instance, verified identity) of ``role``; the driver's constructor sends nothing, so the identity
        query is the first thing the instrument receives. Then the registration's ``configure`` applies the
        station file's ``settings`` (an instrument that refuses them is closed and reported).

        Connection keys left out of station.yaml are the registration's defaults (filled in by the config)."""
        reg = cfg.registration
        cls = reg.driver
        try:
            if cfg.simulated:
                if self.simulator is None:
                    raise StationError("no simulator for sim:// resources (simulation.enabled is false)")
                adapter = self.simulator.adapter(role, cfg.resource, reg, read_termination=cfg.read_termination,
                                                 write_termination=cfg.write_termination, timeout_ms=cfg.timeout_ms)
            else:
                kwargs: dict[str, Any] = {
                    "read_termination": cfg.read_termination,
                    "write_termination": cfg.write_termination,
                    "timeout": cfg.timeout_ms,
                }
                if cfg.baud_rate is not None:
                    kwargs["asrl"] = {"baud_rate": cfg.baud_rate}
                adapter = DeadlineVISAAdapter(cfg.resource, visa_library="@py", **kwargs)
            instrument = cls(adapter)
        except Exception as exc:  # noqa: BLE001 - any transport failure becomes one clear message
            raise StationError(f"cannot open instrument '{role}' ({cfg.driver}) at {cfg.resource}: {exc}") from exc
        try:
            identity = verify_identity(instrument)
        except IdentityError as exc:
            _close_quietly(instrument)
            if exc.answered:
                raise StationError(f"instrument '{role}' ({cfg.driver}) at {cfg.resource} is not a {cfg.driver}: "
                                   f"{exc}") from exc
            raise StationError(f"cannot open instrument '{role}' ({cfg.driver}) at {cfg.resource}: {exc}") from exc
        if reg.configure is not None:
            try:
                reg.configure(instrument, cfg.settings)
            except Exception as exc:  # noqa: BLE001 - one clear message naming the role and its settings
                _close_quietly(instrument)
                raise StationError(f"instrument '{role}' ({cfg.driver}) at {cfg.resource} refused its settings "
                                   f"(instruments.{role}.settings): {type(exc).__name__}: {exc}") from exc
        self.configurations[role] = cfg.settings
        self._record_configuration_calls(role, instrument)
        return instrument, identity

    def _record_configuration_calls(self, role: str, instrument: Any) -> None:
        """Wrap the driver's ``configure*`` methods on this instance so each call is kept for :meth:`reconnect`
        (after it succeeded; a call that raised is not part of the configuration)."""
        calls = self.configuration_calls.setdefault(role, {})
        for name, _ in inspect.getmembers(type(instrument), inspect.isfunction):
            if not name.startswith("configure"):
                continue
            bound = getattr(instrument, name)

            @functools.wraps(bound)
            def recorded(*args: Any, _name: str = name, _bound: Any = bound, **kwargs: Any) -> Any:
                result = _bound(*args, **kwargs)
                calls.pop(_name, None)  # re-inserted last: the replay keeps the order of the last calls
                calls[_name] = (args, kwargs)
                return result

            setattr(instrument, name, recorded)

    # -- what a procedure may ask of the station (it never looks at the simulation itself) -------------------
    def line_frequency_Hz(self) -> float:
        """The mains frequency (Hz) that sets an SMU's PLC: the simulated bench's, else the worst case 50 Hz
        (the longer power-line cycle), since the station file does not say."""
        answer = self._ask("line_frequency_Hz")
        return 50.0 if answer is None else float(answer)

    def set_light_without_shutter(self, on: bool) -> bool:
        """Turn the light on/off on a bench with no shutter instrument: the simulated solar simulator does it
        itself; on hardware the operator controls the light. Returns True when the light was set."""
        return bool(self._ask("set_light", default=False, on=on))

    @property
    def light_is_operator_controlled(self) -> bool:
        """True when nothing in the station can switch the light (no shutter, not a simulated bench)."""
        return "shutter" not in self.config.instruments and not self._ask("light_is_switchable", default=False)

    @property
    def can_place_in_beam(self) -> bool:
        """Whether :meth:`place_in_beam` can work: the simulated bench (in-process or served) moves detectors
        itself, otherwise a person must be there to ask."""
        return bool(self._ask("can_place_in_beam", default=False)) or self.operator is not None

    def grating_ranges_nm(self) -> dict[int, tuple[float, float, str]] | None:
        """Each grating's (min_nm, max_nm, label) where the station knows them: the simulated monochromator's
        table; None on hardware (a real monochromator reports them only when asked)."""
        return self._ask("grating_ranges_nm")

    def place_in_beam(self, detector: str) -> None:
        """Put ``detector`` ("dut" or a reference detector's name) at the EQE sample position.

        The simulated bench moves it itself (in-process, or over ``simulation.operator_resource`` when it is
        served by ``labctl sim serve``); on real hardware the operator is asked through :attr:`operator` (set by
        the CLI), and without one this raises, since nobody could do it."""
        try:
            if self._ask("place_in_beam", default=False, detector=detector):
                return
        except RuntimeError as exc:  # a served bench that refused
            raise StationError(str(exc)) from exc
        if self.operator is None:
            raise StationError(f"the run needs an operator to place the '{detector}' detector in the beam")
        self.operator(f"Place the {'device under test' if detector == 'dut' else detector + ' reference detector'} "
                      "in the beam, then press Enter")

    def idn(self) -> dict[str, str]:
        """The identity of every connected instrument, as verified when it was connected (``*IDN?`` or the
        model's own identity query; for a listen-only instrument its driver's description). Sends nothing."""
        return {role: self.identities[role] for role in self.instruments}

    def safe_state(self, budget_s: float | None = None, total_budget_s: float | None = None,
                   roles: Iterable[str] | None = None) -> list[str]:
        """Put every connected instrument (or those of ``roles``) in its safe state, within time budgets; return
        the failures.

        Sources first, then switches: every instrument that is not a ``switch_matrix`` is made safe in its own
        thread, all at once (one stuck link cannot hold up the others): a sweep it is running is aborted first,
        then the ``safe_state`` actions of station.yaml, then the state is read back where the driver can
        (output, shutter). Only when they are done (or out of time) are the switch matrices made safe (every relay
        opened and read back), so no relay opens while a source still drives it. An instrument not done within
        ``budget_s`` (default :data:`SAFE_STATE_BUDGET_S`) of its phase, or when ``total_budget_s`` (default
        :data:`SAFE_STATE_TOTAL_BUDGET_S`) is over, is reported as not safe and left to its thread (a daemon: it
        cannot keep the process alive). Never raises. The outcome of every instrument is kept in
        :attr:`safe_report` (sources first, then switches); the returned list holds one ``"role: reason"`` per
        instrument that failed.
        """
        report = self.safe_outcomes(budget_s, total_budget_s, roles)
        self.safe_report = report
        return [f"{o.role}: {o.detail}" for o in report if not o.ok]

    def safe_outcomes(self, budget_s: float | None = None, total_budget_s: float | None = None,
                      roles: Iterable[str] | None = None) -> list[SafeOutcome]:
        """:meth:`safe_state` without recording :attr:`safe_report` (for a caller that keeps its own: one run of a
        substrate, whose safe state covers its own source meter only)."""
        budget_s = SAFE_STATE_BUDGET_S if budget_s is None else budget_s
        total_budget_s = SAFE_STATE_TOTAL_BUDGET_S if total_budget_s is None else total_budget_s
        wanted = None if roles is None else set(roles)
        items = [(role, inst) for role, inst in list(self.instruments.items()) if wanted is None or role in wanted]
        switches = [item for item in items if self._is_switch(item[0])]
        sources = [item for item in items if not self._is_switch(item[0])]
        t0 = time.monotonic()
        report = self._safe_phase(sources, t0, t0, budget_s, total_budget_s)
        if switches:
            report += self._safe_phase(switches, time.monotonic(), t0, budget_s, total_budget_s)
        return report

    def _is_switch(self, role: str) -> bool:
        cfg = self.config.instruments.get(role)
        return cfg is not None and "switch_matrix" in cfg.registration.capabilities

    def _safe_phase(self, items: list[tuple[str, Any]], start: float, t0: float, budget_s: float,
                    total_budget_s: float) -> list[SafeOutcome]:
        """The safe state of ``items`` at once (one thread each), each within ``budget_s`` from ``start`` and all
        within ``total_budget_s`` from ``t0``."""
        outcomes: dict[str, SafeOutcome] = {}
        workers = []
        for role, inst in items:
            def work(role: str = role, inst: Any = inst) -> None:
                begin = time.monotonic()
                try:
                    try:
                        done = self._make_safe(role, inst)
                    except Exception as exc:  # a transport fault: that instrument reconnected once, made safe
                        from labctl.recovery import classify_io_error

                        kind = classify_io_error(exc) or (classify_io_error(exc.__cause__) if isinstance(
                            exc, RuntimeError) and exc.__cause__ is not None else None)  # drivers.safe's steps
                        if kind is None:
                            raise
                        try:  # reopened (no configuration replay: only made safe), once
                            reopened, identity = self._open(role, self.config.instruments[role])
                            self.instruments[role], self.identities[role] = reopened, identity
                            done = f"{self._make_safe(role, reopened)} (after reopening it: {kind})"
                        except Exception as again:  # noqa: BLE001 - both in the report: the first fault first
                            raise RuntimeError(f"{type(exc).__name__}: {exc}; reopened once: "
                                               f"{type(again).__name__}: {again}") from again
                    outcomes[role] = SafeOutcome(role, True, done, time.monotonic() - begin)
                except Exception as exc:  # noqa: BLE001 - reported, never raised
                    outcomes[role] = SafeOutcome(role, False, f"{type(exc).__name__}: {exc}",
                                                 time.monotonic() - begin)
            thread = threading.Thread(target=work, name=f"safe-state-{role}", daemon=True)
            thread.start()
            workers.append((role, thread))
        report = []
        deadline = min(start + budget_s, t0 + total_budget_s)
        for role, thread in workers:
            thread.join(max(0.0, deadline - time.monotonic()))
            outcome = outcomes.get(role)
            if outcome is None:  # still trying: a link that does not answer in time
                waited = time.monotonic() - start
                outcome = SafeOutcome(role, False, f"not safe after {waited:.1f} s (budget {budget_s:g} s per "
                                      f"instrument, {total_budget_s:g} s in all): no answer in time", waited)
            report.append(outcome)
            if not outcome.ok:
                log.error("safe state of %s failed: %s", role, outcome.detail)
        return report

    def _make_safe(self, role: str, inst: Any) -> str:
        """Make one instrument safe; returns what was done, raises on failure.

        The ``safe_state`` keys of station.yaml when it gives any (a source meter's sweep aborted first, then the
        keys, then the read-backs), else the registration's ``safe_state`` action (the driver's own
        ``safe_state()`` for a driver registered without one)."""
        icfg = self.config.instruments[role]
        cfg = icfg.safe_state
        try:
            # a Ctrl-C or an exception may have cut an exchange short: drop any unread reply first, or the
            # safe-state commands would read it as theirs
            inst.adapter.flush_read_buffer()
        except Exception:  # noqa: BLE001 - best effort; the actions below report real failures
            pass
        steps: list[tuple[str, Callable[[], Any]]] = []
        if cfg.source_voltage_V is not None:
            steps.append((f"{cfg.source_voltage_V:g} V", lambda: inst.set_voltage(cfg.source_voltage_V)))
        if cfg.output == "off":
            steps.append(("output off", inst.disable_output))
        if cfg.shutter == "closed":
            steps.append(("shutter closed", inst.close_shutter))
        if not steps:
            action = icfg.registration.safe_state
            if action is not None:
                return action(inst, icfg.settings)
            steps.append(("safe_state()", inst.safe_state))
        if hasattr(inst, "abort_sweep"):  # a source meter ignores the steps above while a sweep runs
            steps.insert(0, ("sweep aborted", inst.abort_sweep))
        done = run_steps(steps)
        checks = []
        if cfg.output == "off" and hasattr(type(inst), "source_enabled"):
            checks.append(read_back_output_off(inst))
        if cfg.shutter == "closed" and hasattr(type(inst), "shutter_open"):
            checks.append(read_back_shutter_closed(inst))
        return describe(done, checks)

    def close(self) -> None:
        for inst in self.instruments.values():
            try:
                inst.adapter.close()
            except Exception:  # noqa: BLE001
                pass
        self.instruments.clear()
        self.identities.clear()
        if self.simulator is not None:
            self.simulator.close()
        self.configurations.clear()
        self.configuration_calls.clear()


def _close_quietly(instrument: Any) -> None:
    """Close an instrument's adapter; a failure to close is not what the caller reports."""
    try:
        instrument.adapter.close()
    except Exception:  # noqa: BLE001 - the refusal the caller raises is what matters
        pass


class _SimulatedLight:
    """The light of a bench without a shutter that the station can switch itself (the simulated solar
    simulator): :meth:`Station.set_light_without_shutter`."""

    def __init__(self, station: Station) -> None:
        self.station = station

    def set_light(self, on: bool) -> None:
        if not self.station.set_light_without_shutter(on):
            raise StationError("the station could not switch the light")

    def irradiance_W_m2(self) -> float | None:
        return None

    def why_unavailable(self, on: bool = True) -> str | None:
        return None
