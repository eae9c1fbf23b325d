"""The base of every labctl procedure: a PyMeasure ``Procedure`` that runs on a station.

The run engine injects ``station`` (instruments by role, the clock) and the ``emit``/``should_stop``/
``pause_point`` hooks. A procedure says what to measure and nothing else: it never sleeps with ``time.sleep``
(it calls :meth:`wait`, which runs on the station's clock and honours an abort, a pause and the engine's
suspenders), calls :meth:`checkpoint` between points, never writes files (it calls :meth:`record`: each row
becomes an event document), and checks its parameters against the station limits in :meth:`validate` before
any instrument is touched. After the run, :meth:`analyse` gets the streams read back from the run file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd
from pymeasure.experiment import Procedure

from labctl.config import ConfigError

if TYPE_CHECKING:
    from labctl.documents import Column
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


class LabProcedure(Procedure):
    """Base class: subclasses define parameters, ``STREAMS``, ``REQUIRES``, and implement ``execute``."""

    NAME: ClassVar[str] = "procedure"
    #: roles (station instrument names) the procedure cannot run without / uses when present
    REQUIRES: ClassVar[tuple[str, ...]] = ()
    OPTIONAL: ClassVar[tuple[str, ...]] = ()
    STREAMS: ClassVar[dict[str, StreamSpec]] = {}

    station: Station

    # -- set-up checks ------------------------------------------------------------------------------------------
    def validate(self, station: Station) -> None:
        """Raise :class:`ConfigError` naming the parameter, its value and the allowed range. No I/O."""
        missing = [role for role in self.REQUIRES if role not in station.config.instruments]
        if missing:
            raise ConfigError(
                f"procedure {self.NAME} needs instruments {missing} in the station "
                f"(the station has: {sorted(station.config.instruments)})"
            )

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
        """Hand one row of data to the run engine: an event document of ``stream`` (stored within a second).
        ``row`` maps column → value (a scalar, or an array of the column's shape); missing columns are NaN.
        The engine takes the new dict made here (``_stream`` removed) as the event's data: ``row`` is not kept."""
        self.emit("results", {"_stream": stream, **row})

    def progress(self, fraction: float) -> None:
        """The fraction of the run done (0-1)."""
        self.emit("progress", min(max(float(fraction), 0.0), 1.0))

    def log(self, message: str) -> None:
        self.emit("log", message)

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
        """Results (JSON-able dict) from the recorded data; pure, no instrument access."""
        return {}
