"""Measure every pixel of a substrate: ``labctl run PROCEDURE --pixels all|1,3,5`` (docs/substrates.md).

One run per pixel (its own RunEngine, HDF5 file and catalog row, so :func:`labctl.storage.load_run` stays as it
is), linked by the substrate id and the pixel name (start document, file, catalog columns ``substrate_id`` and
``pixel``), plus one record of the substrate, ``<data folder>/<date>/<substrate id>.substrate.json``.

For each pixel, on its source meter (the layout's ``smu`` role of the pixel):

1. the switch selects its channel, break-before-make among the channels of that source meter
   (``switch.select(channel, group)``, read back by the driver);
2. ``switch.closed_channels()`` must show exactly this pixel's channel of that group closed, before anything is
   sourced (never two pixels on one source meter);
3. the contact check (:mod:`labctl.contact`): a pixel without contact is ``skipped`` (its reason), no run file;
4. the run, on a view of the station (:class:`StationView`) in which role ``smu`` is the pixel's source meter,
   so procedures are unchanged; the area is the pixel's;
5. that source meter's output off, then the pixel's channel opened (read back).

A switch that does not read back as commanded (``SwitchReadbackError``) or fails its I/O stops the substrate:
every running pixel run is aborted, the remaining pixels are ``not measured``. Pixels on one source meter run
one after another; pixels on different source meters run at once (one worker thread per source meter, under the
clock's ``concurrently`` group where the clock has one), unless the procedure uses instruments beyond ``smu``
and ``shutter``, which the runs could not share. The light is shared: on while any run wants it. However the
substrate ends (completed, a fault, Ctrl-C, SIGTERM) the whole station is made safe at the end: sources first,
then every relay opened (:meth:`labctl.station.Station.safe_state`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from labctl.config import ConfigError, LayoutConfig, PixelConfig
from labctl.engine import RunInterrupted, _signals_abort
from labctl.station import SafeOutcome, Station, StationError

log = logging.getLogger(__name__)

COMPLETED, ABORTED, FAILED, SKIPPED, NOT_MEASURED = "completed", "aborted", "failed", "skipped", "not measured"
RECORD_SUFFIX = ".substrate.json"
#: the roles a pixel run may use while pixels on other source meters run at the same time (the light is shared)
SHAREABLE_ROLES = frozenset({"smu", "shutter"})


# -- --pixels -------------------------------------------------------------------------------------------------
def parse_pixels(spec: str, layout_name: str, layout: LayoutConfig) -> list[str]:
    """The pixel names of ``--pixels`` (``all``, or names separated by commas), in layout order for ``all`` and
    as given otherwise; ConfigError (one line naming the unknown pixel and the layout's) before any I/O."""
    names = [p.name for p in layout.pixels]
    text = spec.strip()
    if text == "all":
        return names
    wanted = [part.strip() for part in text.split(",")]
    if not text or any(not part for part in wanted):
        raise ConfigError(f"--pixels = {spec!r}: allowed: all, or pixel names separated by commas "
                          f"(layout {layout_name!r}: {', '.join(names)})")
    for part in wanted:
        if part not in names:
            raise ConfigError(f"--pixels = {spec!r}: layout {layout_name!r} has no pixel {part!r} (allowed: all, "
                              f"or some of {', '.join(names)})")
    twice = sorted({p for p in wanted if wanted.count(p) > 1})
    if twice:
        raise ConfigError(f"--pixels = {spec!r}: pixel {twice[0]!r} is named twice (allowed: each pixel once)")
    return wanted


def make_substrate_id(sample: str) -> str:
    """``<UTC time>_<sample>_<hex>``: unique, sortable, and it names the substrate."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in sample) or "substrate"
    return f"{stamp}_{safe}_{secrets.token_hex(2)}"


# -- waiting on the station clock -----------------------------------------------------------------------------
class ClockLock:
    """A lock shared by the concurrent pixel runs (the switch, the light), made by the station's clock.

    On the virtual clock, concurrent runs advance time only when every one of them is asleep on the clock or
    waiting its turn; a worker blocked on an ordinary lock held by one that sleeps (a relay settling, a shutter
    moving) would stop time for both. The clock's own lock (:func:`labctl.clock.new_lock`: a scheduled lock on the
    virtual clock, a plain re-entrant lock on the wall clock) hands the turn over while it waits. Re-entrant."""

    def __init__(self, clock: Any) -> None:
        from labctl.clock import new_lock

        self._lock = new_lock(clock)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        with self._lock:
            yield


class SharedLight:
    """The station's light shared by concurrent pixel runs: on while any of them wants it (reference counted).

    :meth:`for_run` gives each run its own handle, with the :class:`labctl.capabilities.Light` interface."""

    def __init__(self, station: Station, lock: ClockLock) -> None:
        self.station = station
        self.lock = lock
        self.wanting: set[str] = set()

    def for_run(self, key: str) -> _LightHandle:
        return _LightHandle(self, key)


class _LightHandle:
    def __init__(self, shared: SharedLight, key: str) -> None:
        self._shared, self._key = shared, key

    def set_light(self, on: bool) -> None:
        shared = self._shared
        with shared.lock.held():
            before = bool(shared.wanting)
            if on:
                shared.wanting.add(self._key)
            else:
                shared.wanting.discard(self._key)
            after = bool(shared.wanting)
            if on and not before:
                shared.station.light().set_light(True)
            elif not on and not after:
                shared.station.light().set_light(False)

    def __getattr__(self, name: str) -> Any:  # why_unavailable, irradiance_W_m2, ...
        return getattr(self._shared.station.light(), name)


# -- the station as one pixel's run sees it -------------------------------------------------------------------
class StationView:
    """The station as one pixel's run sees it: role ``smu`` is the pixel's source meter; the layout's other
    source meters and the switch are hidden; the light is the shared one; the safe state covers this run's own
    instruments (its source meter, and any role it connected that is not shared), never the switch, the shutter
    or another pixel's source meter. Everything else is the station's."""

    def __init__(self, station: Station, smu_role: str, hidden: Iterable[str], light: _LightHandle,
                 connect_lock: threading.Lock | None = None) -> None:
        self._station = station
        self._smu_role = smu_role
        self._hidden = set(hidden) - {smu_role}
        if smu_role != "smu":
            self._hidden.add(smu_role)
        instruments = {role: cfg for role, cfg in station.config.instruments.items() if role not in self._hidden}
        instruments["smu"] = station.config.instruments[smu_role]
        self.config = station.config.model_copy(update={"instruments": instruments})
        self._light = light
        self._connect_lock = connect_lock or threading.Lock()
        self._own: list[str] = ["smu"]
        #: the outcome of each of this run's instruments at its last :meth:`safe_state`
        self.safe_report: list[SafeOutcome] = []

    def real_role(self, role: str) -> str:
        """The station's role behind ``role`` of this view."""
        return self._smu_role if role == "smu" else role

    def _visible(self) -> dict[str, str]:
        """view role → station role, for the roles of this view."""
        return {role: self.real_role(role) for role in self.config.instruments}

    @property
    def instruments(self) -> dict[str, Any]:
        return {role: self._station.instruments[real] for role, real in self._visible().items()
                if real in self._station.instruments}

    @property
    def identities(self) -> dict[str, str]:
        return {role: self._station.identities[real] for role, real in self._visible().items()
                if real in self._station.identities}

    def __getitem__(self, role: str) -> Any:
        if role not in self.config.instruments:
            raise KeyError(role)
        return self._station.instruments[self.real_role(role)]

    def __contains__(self, role: str) -> bool:
        return role in self.config.instruments and self.real_role(role) in self._station.instruments

    def connect(self, roles: list[str] | None = None) -> None:
        roles = list(self.config.instruments) if roles is None else roles
        with self._connect_lock:
            self._station.connect([self.real_role(r) for r in roles])
        for role in roles:
            if role not in self._own and role not in SHAREABLE_ROLES:
                self._own.append(role)

    def reconnect(self, role: str) -> Any:
        return self._station.reconnect(self.real_role(role))

    def offers(self, role: str, capability: str | type) -> bool:
        return Station.offers(self, role, capability)  # type: ignore[arg-type]

    def check_capability(self, role: str, capability: str | type, needed_by: str = "the run") -> None:
        Station.check_capability(self, role, capability, needed_by)  # type: ignore[arg-type]

    def require(self, role: str, capability: str | type, needed_by: str = "the run") -> Any:
        return Station.require(self, role, capability, needed_by)  # type: ignore[arg-type]

    def light(self) -> _LightHandle:
        return self._light

    def idn(self) -> dict[str, str]:
        return self.identities

    def safe_state(self, budget_s: float | None = None, total_budget_s: float | None = None) -> list[str]:
        """The safe state of this run's own instruments (see the class); the whole station's comes at the end of
        the substrate."""
        real = {self.real_role(r): r for r in self._own}
        report = self._station.safe_outcomes(budget_s, total_budget_s, roles=list(real))
        self.safe_report = [SafeOutcome(real.get(o.role, o.role), o.ok, o.detail, o.elapsed_s) for o in report]
        return [f"{o.role}: {o.detail}" for o in self.safe_report if not o.ok]

    def __getattr__(self, name: str) -> Any:  # clock, simulator, bench, operator, the named questions, ...
        return getattr(self._station, name)


# -- outcomes -------------------------------------------------------------------------------------------------
@dataclass
class PixelOutcome:
    """What became of one pixel: ``status`` (completed, aborted, failed, skipped, not measured), its run file
    and run id (None without a run), its results, why it did not complete, and where it is."""

    name: str
    channel: int
    smu: str
    area_cm2: float
    x_mm: float | None = None
    y_mm: float | None = None
    status: str = NOT_MEASURED
    file: str | None = None
    run_id: str | None = None
    results: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None
    contact: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self), default=_jsonable))


@dataclass
class SubstrateResult:
    """A measured substrate: its id, the record file, the overall status, every pixel's outcome, the summary
    (:func:`labctl.analysis.substrate.summarise_substrate`), the summary PNG and why it stopped early (None when it
    did not)."""

    substrate_id: str
    file: Path
    status: str
    pixels: dict[str, PixelOutcome]
    summary: dict[str, Any]
    png: Path | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` object: substrate_id, file, status, error, pixels (name → status, file, results, reason,
        ...), summary, png."""
        return {"substrate_id": self.substrate_id, "file": str(self.file), "status": self.status,
                "error": self.error, "png": str(self.png) if self.png else None,
                "pixels": {name: o.to_json() for name, o in self.pixels.items()},
                "summary": json.loads(json.dumps(self.summary, default=_jsonable))}


def _jsonable(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and value != value:
        return None
    return str(value)


class SwitchFault(RuntimeError):
    """The switch did not do what it was told (read-back) or did not answer: the substrate stops."""


# -- the runner -----------------------------------------------------------------------------------------------
class SubstrateRunner:
    """Run one procedure on each chosen pixel of a layout (see the module docstring).

    Parameters
    ----------
    station
        The whole station (not connected yet, or partly).
    layout_name, layout
        The layout (station.yaml ``layouts.<name>``).
    pixels
        The pixel names to measure (:func:`parse_pixels`), in order.
    make_procedure
        ``make_procedure(pixel) -> LabProcedure``: a new procedure instance for a pixel, its parameters set (the
        runner sets ``area_cm2`` from the layout).
    out_dir
        The data folder: pixel runs and the substrate record go to ``<out_dir>/<UTC date>/``.
    sample, operator
        The substrate's name (the catalog's ``sample`` of every pixel run), the operator.
    subscribers_for
        ``subscribers_for(pixel) -> list``: further document subscribers of that pixel's run (progress, warnings).
    on_pixel
        Called with each :class:`PixelOutcome` as it is settled (from the worker threads).
    make_engine
        ``make_engine(view, out_dir, **kwargs) -> RunEngine``, for tests (default :class:`labctl.engine.RunEngine`).
    substrate_id
        The substrate's id (default: a new one from the sample's name).
    plot
        Write the summary PNG beside the record (``labctl run --no-plot``: False).
    """

    def __init__(self, station: Station, layout_name: str, layout: LayoutConfig, pixels: Sequence[str],
                 make_procedure: Callable[[PixelConfig], Any], out_dir: str | Path, *, sample: str = "substrate",
                 operator: str | None = None, subscribers_for: Callable[[str], list[Any]] | None = None,
                 on_pixel: Callable[[PixelOutcome], None] | None = None, make_engine: Callable[..., Any] | None = None,
                 substrate_id: str | None = None, plot: bool = True) -> None:
        self.station = station
        self.plot = plot
        self.layout_name, self.layout = layout_name, layout
        self.pixels = [layout.pixel(name) for name in pixels]
        self.make_procedure = make_procedure
        self.out_dir = Path(out_dir)
        self.sample = sample
        self.operator = operator
        self.subscribers_for = subscribers_for or (lambda name: [])
        self.on_pixel = on_pixel or (lambda outcome: None)
        self.make_engine = make_engine
        self.substrate_id = substrate_id or make_substrate_id(sample)
        self.stop = threading.Event()
        self.stop_reason: str | None = None
        self.fault: str | None = None
        self.outcomes = {p.name: PixelOutcome(p.name, p.channel, p.smu, p.area_cm2, p.x_mm, p.y_mm)
                         for p in self.pixels}
        self._lock = threading.Lock()
        self._connect_lock = threading.Lock()
        self._switch_lock = ClockLock(station.clock)
        self._light = SharedLight(station, ClockLock(station.clock))
        self._procedures: dict[str, Any] = {}
        self.concurrent = False

    # -- control ------------------------------------------------------------------------------------------------
    def abort(self, reason: str = "aborted") -> None:
        """Abort every running pixel run and measure no more (thread-safe; a signal handler may call it)."""
        with self._lock:
            if self.stop_reason is None:
                self.stop_reason = reason
        self.stop.set()

    def _fail(self, message: str) -> None:
        with self._lock:
            if self.fault is None:
                self.fault = message
        self.abort(message)

    # -- before any I/O -----------------------------------------------------------------------------------------
    def _groups(self) -> dict[str, list[PixelConfig]]:
        groups: dict[str, list[PixelConfig]] = {}
        for pixel in self.pixels:
            groups.setdefault(pixel.smu, []).append(pixel)
        return groups

    def _view(self, pixel: PixelConfig) -> StationView:
        hidden = {p.smu for p in self.layout.pixels} | {self.layout.switch}
        return StationView(self.station, pixel.smu, hidden, self._light.for_run(pixel.name), self._connect_lock)

    def validate(self) -> None:
        """Every pixel's procedure validated on its view of the station (ConfigError, one line, naming the pixel
        when the error is its own), before any instrument is touched."""
        for pixel in self.pixels:
            procedure = self.make_procedure(pixel)
            if not getattr(type(procedure), "PER_PIXEL", False):
                raise ConfigError(f"procedure {procedure.NAME} does not run per pixel (it is not PER_PIXEL); "
                                  "run it without --pixels")
            if "area_cm2" in getattr(procedure, "_parameters", {}):
                procedure.area_cm2 = pixel.area_cm2
            view = self._view(pixel)
            # what the engine gives a procedure before its validate(): e.g. the data folder and the sample, where
            # voc-intensity looks for its calibration run
            procedure.station, procedure.data_dir, procedure.sample = view, self.out_dir, self.sample
            try:
                procedure.validate(view)
            except ConfigError as exc:
                raise ConfigError(f"pixel {pixel.name!r} (layouts.{self.layout_name}): {exc}") from None
            self._procedures[pixel.name] = procedure
        roles = set(type(self._procedures[self.pixels[0].name]).REQUIRES) | {
            r for r in type(self._procedures[self.pixels[0].name]).OPTIONAL if r in self.station.config.instruments}
        self.concurrent = len(self._groups()) > 1 and roles <= SHAREABLE_ROLES

    # -- the run ------------------------------------------------------------------------------------------------
    def run(self) -> SubstrateResult:
        """Validate (ConfigError), connect the switch and the source meters (StationError), measure, make the
        whole station safe, write the substrate record; the result. Signals (Ctrl-C, SIGTERM) in the main thread
        abort the substrate; the safe state still runs."""
        if not self._procedures:
            self.validate()
        needed = [self.layout.switch] + list(self._groups())
        first = self._procedures[self.pixels[0].name]
        needed += [r for r in (*first.REQUIRES, *first.OPTIONAL)
                   if r != "smu" and r in self.station.config.instruments and r not in needed]
        self.station.connect(needed)
        switch = self.station.require(self.layout.switch, "switch_matrix", needed_by=f"layout {self.layout_name}")
        # the pixels run in this thread unless concurrent: then interrupt a blocking read at once, as a single
        # run's Ctrl-C does (the run ends aborted, its file intact)
        with _signals_abort(self.abort, "aborting the substrate", interrupt=lambda: not self.concurrent):
            try:
                try:
                    self._switch(lambda: switch.disconnect_all(), "open every relay before the first pixel")
                    if not self.stop.is_set():
                        self._check_contacts(switch)
                    if not self.stop.is_set():
                        self._measure(switch)
                except SwitchFault as exc:
                    self._fail(str(exc))
                except (KeyboardInterrupt, RunInterrupted):  # between two pixels (sequential mode)
                    self.abort(self.stop_reason or "interrupted")
            finally:
                self._end()
        from labctl.engine import _signals_deferred

        with _signals_deferred():  # a Ctrl-C now (everything measured, made safe) must not cost the record
            return self._result()

    def _measure(self, switch: Any) -> None:
        groups = self._groups()
        clock = self.station.clock
        if not self.concurrent:
            for role, pixels in groups.items():
                self._worker(switch, role, pixels, None)
            return
        concurrently = getattr(clock, "concurrently", None)
        context = concurrently(list(groups)) if callable(concurrently) else contextlib.nullcontext(None)
        with context as group:
            threads = [threading.Thread(target=self._worker, args=(switch, role, pixels, group),
                                        name=f"labctl-substrate-{role}") for role, pixels in groups.items()]
            for thread in threads:
                thread.start()
            for thread in threads:
                while thread.is_alive():
                    thread.join(0.1)  # the main thread stays free for the signal handlers

    def _worker(self, switch: Any, role: str, pixels: list[PixelConfig], group: Any) -> None:
        member = getattr(group, "member", None)
        with member(role) if callable(member) else contextlib.nullcontext():
            channels = [p.channel for p in pixels]
            for pixel in pixels:
                if self.stop.is_set():
                    break
                if self.outcomes[pixel.name].status == SKIPPED:  # no contact: reported when it was checked
                    continue
                try:
                    self._pixel(switch, pixel, channels)
                except SwitchFault as exc:
                    self._fail(str(exc))
                except (KeyboardInterrupt, RunInterrupted):  # a signal outside a pixel's run (sequential mode)
                    self.abort(self.stop_reason or "interrupted")
                except BaseException as exc:  # noqa: BLE001 - one pixel's surprise must not leave the others
                    outcome = self.outcomes[pixel.name]
                    outcome.status, outcome.reason = FAILED, f"{type(exc).__name__}: {exc}"
                    log.exception("pixel %s", pixel.name)
                    self._fail(f"pixel {pixel.name}: {type(exc).__name__}: {exc}")
                self.on_pixel(self.outcomes[pixel.name])

    def _switch(self, action: Callable[[], Any], what: str) -> Any:
        """A switch operation under the switch lock; any failure (a read-back that is not as commanded, an I/O
        error) is a :class:`SwitchFault` naming what was being done."""
        try:
            with self._switch_lock.held():
                return action()
        except Exception as exc:  # noqa: BLE001 - every switch failure stops the substrate
            raise SwitchFault(f"switch '{self.layout.switch}': {what}: {type(exc).__name__}: {exc}") from exc

    def _select(self, switch: Any, pixel: PixelConfig, channels: list[int]) -> None:
        """Connect ``pixel`` to its source meter, break-before-make among ``channels`` (that source meter's), and
        verify by read-back that exactly its channel of them is closed: :class:`SwitchFault` otherwise."""
        self._switch(lambda: switch.select(pixel.channel, group=channels),
                     f"select channel {pixel.channel} (pixel {pixel.name})")
        closed = set(self._switch(lambda: switch.closed_channels(), "read back the closed channels"))
        on_smu = sorted(closed & set(channels))
        if on_smu != [pixel.channel]:
            raise SwitchFault(f"switch '{self.layout.switch}': pixel {pixel.name} (channel {pixel.channel}) "
                              f"selected, but channels {on_smu or 'none'} of source meter '{pixel.smu}' read "
                              "back closed: nothing sourced")

    def _check_contacts(self, switch: Any) -> None:
        """The contact check of every chosen pixel, one after another, in the dark, before any is measured.

        In the light a probe that does not touch still passes a photocurrent through its gigaohms (|V/I| near
        Voc/I ≈ 1e7 Ω for 1e9 Ω of contact: as low as the threshold), and a concurrent run on another source
        meter may have the light on; so every check is made first, with the light off (the station's light: a
        shutter closed, or the operator asked). A pixel that fails is ``skipped`` with its reason."""
        check = self.layout.contact_check
        if not check.enabled:
            return
        from labctl.contact import check_contact
        from procedures.base import source_meter_limits

        self.station.light().set_light(False)
        groups = self._groups()
        for pixel in self.pixels:
            if self.stop.is_set():
                return
            outcome = self.outcomes[pixel.name]
            smu = self.station.require(pixel.smu, "source_meter", needed_by=f"pixel {pixel.name}")
            try:
                self._select(switch, pixel, [p.channel for p in groups[pixel.smu]])
                procedure = self._procedures.get(pixel.name)
                sign = -1.0 if getattr(procedure, "polarity", "n-i-p") == "p-i-n" else 1.0
                contact = check_contact(smu, check, forward_sign=sign,
                                        voltage_limit_V=source_meter_limits(self.station, pixel.smu).voltage_max_V)
            except SwitchFault:
                raise
            except Exception as exc:  # noqa: BLE001 - a source meter that cannot check cannot measure either
                outcome.status, outcome.reason = FAILED, f"contact check: {type(exc).__name__}: {exc}"
                self._fail(f"pixel {pixel.name}: contact check: {type(exc).__name__}: {exc}")
                return
            finally:
                self._release(switch, pixel)
            outcome.contact = contact.to_json()
            if not contact.ok:
                outcome.status, outcome.reason = SKIPPED, contact.reason
                self.on_pixel(outcome)

    def _pixel(self, switch: Any, pixel: PixelConfig, channels: list[int]) -> None:
        outcome = self.outcomes[pixel.name]
        view = self._view(pixel)
        try:
            self._select(switch, pixel, channels)
            if self.stop.is_set():
                return
            self._run_pixel(view, pixel, outcome)
        finally:
            self._release(switch, pixel)

    def _run_pixel(self, view: StationView, pixel: PixelConfig, outcome: PixelOutcome) -> None:
        if self.stop.is_set():
            return
        procedure = self._procedures.pop(pixel.name, None) or self.make_procedure(pixel)
        if "area_cm2" in getattr(procedure, "_parameters", {}):
            procedure.area_cm2 = pixel.area_cm2
        if self.make_engine is None:
            from labctl.engine import RunEngine as make_engine
        else:
            make_engine = self.make_engine
        engine = make_engine(view, self.out_dir, sample=self.sample, operator=self.operator,
                             subscribers=self.subscribers_for(pixel.name), substrate_id=self.substrate_id,
                             pixel=pixel.name, stop_event=self.stop)
        try:
            result = engine.run(procedure)
        except (ConfigError, StationError) as exc:
            outcome.status, outcome.reason = FAILED, str(exc)
            return
        outcome.status, outcome.file, outcome.run_id = result.status, str(result.path), result.run_id
        outcome.results = dict(result.results)
        outcome.reason = result.error or (self.stop_reason if result.status == ABORTED else None)
        if result.status == ABORTED:  # a signal the run itself handled (SIGTERM), or an abort: no further pixel
            self.abort(self.stop_reason or f"pixel {pixel.name} aborted: {result.error}")

    def _release(self, switch: Any, pixel: PixelConfig) -> None:
        """After a pixel: its source meter's output off, then its channel opened (read back). The source meter as
        the station has it now (a recovery during the run may have reconnected it: a new driver instance)."""
        try:
            smu = self.station.instruments.get(pixel.smu)
            if smu is None:
                raise StationError(f"instrument '{pixel.smu}' is not connected (the run's recovery gave up)")
            smu.disable_output()
        except Exception as exc:  # noqa: BLE001 - the relay stays closed: the end's safe state tries again
            self._fail(f"source meter '{pixel.smu}': output off after pixel {pixel.name} failed: "
                       f"{type(exc).__name__}: {exc}")
            return
        try:
            self._switch(lambda: switch.open_channels([pixel.channel]),
                         f"open channel {pixel.channel} after pixel {pixel.name}")
        except SwitchFault as exc:  # the first fault is the one reported; the end's safe state opens every relay
            self._fail(str(exc))

    # -- the end ------------------------------------------------------------------------------------------------
    def _end(self) -> None:
        """The whole station's safe state (sources first, then relays, then shutters), signals held meanwhile."""
        from labctl.engine import _signals_deferred

        with _signals_deferred() as deferred:
            self.station.safe_state()  # sources first, then relays (labctl.station)
        if deferred.received:
            self.abort(f"{deferred.received[0]} during the safe state")

    def _status(self) -> str:
        if self.fault is not None:
            return FAILED
        statuses = {o.status for o in self.outcomes.values()}
        if self.stop_reason is not None or ABORTED in statuses:
            return ABORTED
        if FAILED in statuses or NOT_MEASURED in statuses:
            return FAILED
        return COMPLETED

    def _result(self) -> SubstrateResult:
        why = self.fault or self.stop_reason or "the substrate stopped"
        for outcome in self.outcomes.values():
            if outcome.status == NOT_MEASURED and outcome.reason is None:
                outcome.reason = f"not measured: {why}"
        day = datetime.now(timezone.utc).strftime("%Y-%m-%d")
        folder = self.out_dir / day
        folder.mkdir(parents=True, exist_ok=True)
        record = folder / f"{self.substrate_id}{RECORD_SUFFIX}"
        summary = summarise(self.outcomes)
        png = None
        if self.plot:
            from labctl.substrate_plots import plot_substrate

            try:
                png = Path(plot_substrate(summary, self.layout.size_mm, folder / f"{self.substrate_id}.png"))
            except Exception as exc:  # noqa: BLE001 - a plot failure must not hide the substrate's result
                log.warning("substrate plot failed: %s", exc)
        status = self._status()
        result = SubstrateResult(self.substrate_id, record, status, self.outcomes, summary, png,
                                 self.fault or self.stop_reason)
        data = {"substrate_id": self.substrate_id, "sample": self.sample, "status": status,
                "error": result.error, "station": self.station.config.station.name, "layout_name": self.layout_name,
                "layout": self.layout.model_dump(mode="json"), "time": datetime.now(timezone.utc).isoformat(),
                "concurrent": self.concurrent, "png": str(png) if png else None,
                "safe_state": [asdict(o) for o in self.station.safe_report],
                "pixels": {name: o.to_json() for name, o in self.outcomes.items()},
                "summary": json.loads(json.dumps(summary, default=_jsonable))}
        tmp = record.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1, default=_jsonable), encoding="utf-8")
        tmp.replace(record)
        return result


def summarise(outcomes: Mapping[str, PixelOutcome]) -> dict[str, Any]:
    """The substrate summary (:func:`labctl.analysis.substrate.summarise_substrate`) of the pixel outcomes."""
    from labctl.analysis.substrate import summarise_substrate

    return summarise_substrate({name: {"status": o.status, "results": o.results, "reason": o.reason, "x_mm": o.x_mm,
                                       "y_mm": o.y_mm, "area_cm2": o.area_cm2} for name, o in outcomes.items()})


# -- reading a substrate back ---------------------------------------------------------------------------------
class Substrate:
    """A substrate record read back (:func:`load_substrate`): ``info`` (the record), ``pixels`` (name → the
    record's outcome), and :meth:`run` (a pixel's RunData, opened when first asked for)."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.info = data
        self.substrate_id: str = data["substrate_id"]
        self.status: str = data["status"]
        self.pixels: dict[str, dict[str, Any]] = data["pixels"]
        self.summary: dict[str, Any] = data.get("summary", {})
        self._runs: dict[str, Any] = {}

    def run(self, pixel: str) -> Any:
        """The :class:`labctl.storage.RunData` of ``pixel`` (lazy streams), or None when it has no run file."""
        if pixel not in self._runs:
            from labctl.storage import load_run

            file = self.pixels[pixel].get("file")
            self._runs[pixel] = load_run(file, lazy=True) if file else None
        return self._runs[pixel]

    def runs(self) -> dict[str, Any]:
        """Every pixel that has a run file → its RunData (opened lazily)."""
        return {name: self.run(name) for name, p in self.pixels.items() if p.get("file")}


def load_substrate(path: str | Path) -> Substrate:
    """Read ``<substrate id>.substrate.json``; each pixel's run file is opened only when asked for."""
    path = Path(path)
    return Substrate(path, json.loads(path.read_text(encoding="utf-8")))

