"""The base of every labctl procedure: a PyMeasure ``Procedure`` that runs on a station.

The run engine injects ``station`` (instruments by role, the clock) and the ``emit``/``should_stop`` hooks.
A procedure says what to measure and nothing else: it never sleeps with ``time.sleep`` (it calls
:meth:`wait`, which runs on the station's clock and honours an abort), never writes files (it calls
:meth:`record`), and checks its parameters against the station limits in :meth:`validate` before any
instrument is touched.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd
from pymeasure.experiment import Procedure
from rich.console import Console

from labctl.config import ConfigError
from labctl.storage import RunData

if TYPE_CHECKING:
    from labctl.station import Station
    from labctl.storage import Column


class RunAborted(Exception):
    """Raised inside a procedure when an abort was requested (``should_stop``)."""


class StreamSpec:
    """A data stream of a procedure: its columns, and the NeXus signal/axis for the default plot."""

    def __init__(self, columns: list[Column], signal: str, axes: str) -> None:
        self.columns = columns
        self.signal = signal
        self.axes = axes


class LabProcedure(Procedure):
    """Base class: subclasses define parameters, ``STREAMS``, ``REQUIRES``, and implement ``execute``."""

    NAME: ClassVar[str] = "procedure"
    #: roles (station instrument names) the procedure cannot run without / uses when present: a mapping
    #: role → capability (labctl.capabilities, e.g. ``{"smu": "source_meter"}``), or a tuple of roles
    REQUIRES: ClassVar[Mapping[str, str] | tuple[str, ...]] = ()
    OPTIONAL: ClassVar[Mapping[str, str] | tuple[str, ...]] = ()
    STREAMS: ClassVar[dict[str, StreamSpec]] = {}

    station: Station

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

    # -- helpers used while running -----------------------------------------------------------------------------
    def record(self, stream: str, row: Mapping[str, Any]) -> None:
        """Hand one row of data to the run engine (it is stored within a second)."""
        self.emit("results", {"_stream": stream, **row})

    def progress(self, fraction: float) -> None:
        self.emit("progress", 100.0 * min(max(fraction, 0.0), 1.0))

    def log(self, message: str) -> None:
        self.emit("log", message)

    def check_abort(self) -> None:
        if self.should_stop():
            raise RunAborted("abort requested")

    def wait(self, duration_s: float, step_s: float = 1.0) -> None:
        """Wait on the station clock, checking for an abort at least every ``step_s`` seconds."""
        clock = self.station.clock
        end = clock.now() + duration_s
        while True:
            self.check_abort()
            remaining = end - clock.now()
            if remaining <= 0:
                return
            clock.sleep(min(step_s, remaining))

    # -- after the run ------------------------------------------------------------------------------------------
    def analyse(self, streams: Mapping[str, pd.DataFrame]) -> dict[str, Any]:
        """Results (JSON-able dict) from the recorded data; pure, no instrument access."""
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
