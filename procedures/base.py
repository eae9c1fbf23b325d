"""The base of every labctl procedure: a PyMeasure ``Procedure`` that runs on a station.

The run engine injects ``station`` (instruments by role, the clock) and the ``emit``/``should_stop``/
``pause_point`` hooks. A procedure says what to measure and nothing else: it never sleeps with ``time.sleep``
(it calls :meth:`wait`, which runs on the station's clock and honours an abort, a pause and the engine's
suspenders), calls :meth:`checkpoint` between points, never writes files (it calls :meth:`record`: each row
becomes an event document), and checks its parameters against the station limits in :meth:`validate` before
any instrument is touched. After the run, :meth:`analyse` gets the streams read back from the run file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd
from pymeasure.experiment import Procedure
from rich.console import Console

from labctl.config import ConfigError
from labctl.storage import RunData

if TYPE_CHECKING:
    from labctl.documents import Column, Subscriber
    from labctl.recovery import Recovery
    from labctl.station import Station


class RunAborted(Exception):
    """Raised inside a procedure when an abort was requested (``should_stop``)."""


class StreamSpec:
    """A data stream of a procedure: its columns (:class:`labctl.documents.Column`; a column may be N-D, e.g.
    ``Column("counts", "1", shape=(1024,), axes=("wavelength_nm",), axis_units=("nm",), axis_values=(...,))``
    for a spectrum per row), and the NeXus signal/axis for the default plot."""

    def __init__(self, columns: list[Column], signal: str, axes: str) -> None:
        self.columns = columns
        self.signal = signal
        self.axes = axes


@dataclass(frozen=True)
class SourceMeterLimits:
    """What a procedure may ask of the source meter of a role: the smaller of the station's ``limits`` and the
    model's range (V, A), the driver class (its ``limits``, ``compliance_min_A``, ``reading_time_s``) and the
    words that name the limit in an error line."""

    driver: Any
    voltage_max_V: float
    current_max_A: float
    why: str


def source_meter_limits(station: Any, role: str = "smu") -> SourceMeterLimits:
    """The limits of ``role``'s source meter from station.yaml and its registration (no I/O)."""
    from labctl.plugins import registration

    cfg = station.config.instruments[role]
    driver = registration(cfg.driver).driver
    model = driver.limits
    v_max = min(cfg.limits.voltage_V, model.voltage_max_V) if cfg.limits else model.voltage_max_V
    i_max = min(cfg.limits.current_A, model.current_max_A) if cfg.limits else model.current_max_A
    return SourceMeterLimits(driver, v_max, i_max, f"station limit of instrument '{role}' ({cfg.driver})")


class LabProcedure(Procedure):
    """Base class: subclasses define parameters, ``STREAMS``, ``REQUIRES``, and implement ``execute``."""

    NAME: ClassVar[str] = "procedure"
    #: roles (station instrument names) the procedure cannot run without / uses when present: a mapping
    #: role → capability (labctl.capabilities, e.g. ``{"smu": "source_meter"}``), or a tuple of roles
    REQUIRES: ClassVar[Mapping[str, str] | tuple[str, ...]] = ()
    OPTIONAL: ClassVar[Mapping[str, str] | tuple[str, ...]] = ()
    STREAMS: ClassVar[dict[str, StreamSpec]] = {}
    #: True: the engine adds the station's threshold suspenders (station.yaml ``suspenders:``) to runs of it
    SUSPENDABLE: ClassVar[bool] = False
    #: True: it measures one cell on the ``smu`` role with an ``area_cm2``, so ``labctl run NAME --pixels ...``
    #: runs it once per pixel of a substrate layout (labctl.substrate, docs/substrates.md)
    PER_PIXEL: ClassVar[bool] = False

    station: Station
    #: transport-fault recovery for :meth:`io` (injected by the run engine from station.yaml ``recovery:``);
    #: None outside an engine: no retries, errors as the transport raised them
    recovery: Recovery | None = None

    # -- set-up checks ------------------------------------------------------------------------------------------
    def validate(self, station: Station) -> None:
        """Raise :class:`ConfigError` naming the parameter, its value and the allowed range. No I/O.

        Here: every required role is in the station, and each role given with a capability (required, or
        optional and present) is an instrument that offers it (its registration says so)."""
        missing = [role for role in self.REQUIRES if role not in station.config.instruments]
        if missing:
            raise ConfigError(
                f"procedure {self.NAME} needs instruments {missing} in the station "
                f"(the station has: {sorted(station.config.instruments)})"
            )
        for roles in (self.REQUIRES, self.OPTIONAL):
            if not isinstance(roles, Mapping):
                continue
            for role, capability in roles.items():
                if role in station.config.instruments:
                    station.check_capability(role, capability, needed_by=f"procedure {self.NAME}")

    def parameters_with_units(self) -> dict[str, tuple[Any, str]]:
        """name → (value, units) for every parameter, as stored in the run file."""
        out = {}
        for name, param in self._parameters.items():
            out[name] = (getattr(self, name), getattr(param, "units", None) or "")
        return out

    @staticmethod
    def check_range(name: str, value: float, low: float, high: float, why: str = "") -> None:
        """One clear error for a parameter outside [low, high]."""
        if not (low <= value <= high):
            extra = f" ({why})" if why else ""
            raise ConfigError(f"parameter {name} = {value}: allowed range is {low} to {high}{extra}")

    def newest_run(self, procedure: str, sample: str | None = None) -> tuple[Path | None, str]:
        """The file of the station's newest completed run of ``procedure`` (of ``sample``, if given) in the run
        catalog (station.catalog, else the data folder's catalog.sqlite) whose file exists, or None; and where it
        was looked for (``"of station 'x' in the run catalog URL nor in the data folder DIR"``, for the error).

        When the catalog knows none but the data folder exists, the folder is reindexed first (runs made without
        the catalog: by a RunEngine(catalog=False), or files copied in), then asked again. No instrument I/O."""
        from labctl.catalog import Catalog, CatalogError, catalog_url

        data_dir = Path(getattr(self, "data_dir", "runs"))
        info = self.station.config.station if getattr(self, "station", None) is not None else None
        url = catalog_url(info.catalog if info else None, data_dir)
        station = info.name if info else None
        found = None
        if data_dir.is_dir() or (info and info.catalog):
            try:
                with Catalog(url) as catalog:
                    found = catalog.newest(procedure, station=station, sample=sample)
                    if found is None and data_dir.is_dir():
                        catalog.reindex(data_dir)
                        found = catalog.newest(procedure, station=station, sample=sample)
            except CatalogError as exc:
                raise ConfigError(f"station.catalog: {exc}") from None
        of = f" of station {station!r}" if station else ""
        of += f" and sample {sample!r}" if sample is not None else ""
        return (Path(found.path) if found is not None else None,
                f"{of} in the run catalog {url} nor in the data folder {data_dir}")

    # -- helpers used while running -----------------------------------------------------------------------------
    def record(self, stream: str, row: Mapping[str, Any]) -> None:
        """Hand one row of data to the run engine: an event document of ``stream`` (stored within a second).
        ``row`` maps column → value (a scalar, or an array of the column's shape); missing columns are NaN.
        The engine takes the new dict made here (``_stream`` removed) as the event's data: ``row`` is not kept."""
        self.emit("results", {"_stream": stream, **row})

    def progress(self, fraction: float) -> None:
        """The fraction of the run done (0-1)."""
        self.emit("progress", min(max(float(fraction), 0.0), 1.0))

    def log(self, message: str) -> None:
        self.emit("log", message)

    # -- instrument I/O that survives transport faults ------------------------------------------------------------
    def io(self, role: str, operation: Callable[[Any], Any], *, restore: Callable[[Any], Any] | None = None,
           what: str = "") -> Any:
        """``operation(station[role])`` through :attr:`recovery` (:meth:`labctl.recovery.Recovery.call`): a timeout,
        a reset or vanished link or a garbage reply is journaled (:meth:`on_io_event`), backed off on the station
        clock, the role reconnected (``*IDN?`` verified, configuration replayed), ``restore(instrument)`` called (a
        careful re-application of the source level) and the operation retried; :class:`labctl.recovery.
        RecoveryFailed` when the station's budget is spent. Outside an engine: the operation once, no retries.

        Give ``operation`` the instrument it is handed (``lambda smu: smu.measure_point()``), not one captured
        before: after a reconnection ``station[role]`` is a new driver instance."""
        if self.recovery is None:
            return operation(self.station[role])
        return self.recovery.call(role, operation, restore=restore, what=what)

    def reconnect(self, role: str, kind: str, detail: str, *, restore: Callable[[Any], Any] | None = None,
                  what: str = "") -> Any:
        """Reconnect ``role`` for a fault found by read-back (``kind``, e.g. ``labctl.recovery.INSTRUMENT_RESET``:
        the output went off): journaled, backed off, reconnected (configuration replayed) and restored
        within the station's recovery budget (:meth:`labctl.recovery.Recovery.recover`); the new instrument.
        Outside an engine: ``station.reconnect(role)`` and ``restore`` once."""
        if self.recovery is None:
            instrument = self.station.reconnect(role)
            if restore is not None:
                restore(instrument)
            return instrument
        return self.recovery.recover(role, kind, detail, restore=restore, what=what)

    def on_io_event(self, entry: Mapping[str, Any]) -> None:
        """One journal entry of :attr:`recovery` (keys ``time``, ``role``, ``kind``, ``attempt``, ``action``,
        ``detail``, ``backoff_s``). Default: a log line (a WARNING for a fault and for giving up). A procedure that
        keeps a journal stream records the entry there as well (and may call this for the line)."""
        action = entry.get("action")
        text = (f"{entry.get('role')}: {entry.get('kind')} (attempt {entry.get('attempt')}): {action}: "
                f"{entry.get('detail', '')}")
        if action == "fault":
            self.log(f"WARNING: I/O fault: {text}; reconnecting after {float(entry.get('backoff_s', 0)):g} s")
        elif action == "gave_up":
            self.log(f"WARNING: I/O recovery gave up: {text}")
        else:
            self.log(f"I/O recovery: {text}")

    # -- hooks of a stability run ---------------------------------------------------------------------------------
    def on_suspend(self, reason: str) -> None:
        """Called once by the engine, in the run's thread, when a suspension starts (``reason``: the suspender's
        words); e.g. put the device at a safe bias. Default: nothing. :meth:`wait` and :meth:`checkpoint` inside
        it do not suspend again."""

    def on_resume(self) -> None:
        """Called once by the engine, in the run's thread, when a suspension ends (after the suspender's settle
        time); e.g. ramp back to the bias. Default: nothing."""

    def live_subscribers(self) -> list[Subscriber]:
        """Document subscribers the engine adds to this run (non-critical: one that fails is dropped), e.g. live
        stability figures. Called once, after :meth:`validate`. Default: none."""
        return []

    def status_extra(self) -> dict[str, Any]:
        """Extra JSON-able values for the run's status file (``labctl status``), e.g. live T80. Default: none."""
        return {}

    def pause_point(self) -> None:
        """Hold while the engine is paused or suspended (injected by the run engine; no-op outside a run)."""

    def checkpoint(self) -> None:
        """Call between points: raises :class:`RunAborted` on an abort; holds while the run is paused
        (``engine.pause()``) or a suspender gives a reason (``engine.add_suspender``), then goes on."""
        if self.should_stop():
            raise RunAborted("abort requested")
        self.pause_point()
        if self.should_stop():
            raise RunAborted("abort requested")

    def check_abort(self) -> None:
        """The older name of :meth:`checkpoint`: an abort check that now also honours a pause and the suspenders."""
        self.checkpoint()

    def should_stop(self) -> bool:
        """Whether an abort was requested (injected by the run engine)."""
        return False

    def wait(self, duration_s: float, step_s: float = 1.0) -> None:
        """Wait ``duration_s`` (s) on the station clock, passing a :meth:`checkpoint` at least every ``step_s``
        seconds. The wait ends at its planned time: time spent paused or suspended counts towards it."""
        clock = self.station.clock
        end = clock.now() + duration_s
        while True:
            self.checkpoint()
            remaining = end - clock.now()
            if remaining <= 0:
                return
            clock.sleep(min(step_s, remaining))

    # -- after the run ------------------------------------------------------------------------------------------
    def analyse(self, streams: Mapping[str, pd.DataFrame]) -> dict[str, Any]:
        """Results (JSON-able dict) from the recorded data; pure, no instrument access.

        ``streams``: stream → DataFrame, read back from the run file when first asked for (a stream the analysis
        does not use is never read; a stream without rows is absent, except the default stream, empty)."""
        return {}

    # -- for people: the printed summary and the plot -----------------------------------------------------------
    @classmethod
    def summarise(cls, console: Console, results: Mapping[str, Any]) -> None:
        """Print ``results`` for a person (``labctl run`` and ``labctl show``); default: every scalar result.

        Shared tables are in :mod:`procedures.summary`."""
        from procedures.summary import print_scalars

        print_scalars(console, results)

    @classmethod
    def plot(cls, ax: Any, run: RunData) -> str:
        """Draw the run's main data on ``ax`` (a ``matplotlib.axes.Axes``: ``labctl plot`` and the PNG beside a run
        file); return the name to put in the title. Default: the signal of the first stream of ``STREAMS`` with
        data against its axis (see :mod:`procedures.plots`)."""
        from procedures.plots import plot_signal

        for name, spec in cls.STREAMS.items():
            data = run.streams.get(name)
            if data is not None and not data.empty and {spec.signal, spec.axes} <= set(data.columns):
                plot_signal(ax, data, spec.axes, spec.signal)
                break
        return run.info.get("procedure", "")
