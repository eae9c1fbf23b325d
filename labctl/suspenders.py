"""Threshold suspenders (station.yaml ``suspenders:``): hold a run while a monitored signal is out of its band.

A :class:`ThresholdSuspender` is a condition for :meth:`labctl.engine.RunEngine.add_suspender`: called at the
run's checkpoints, it returns a reason while the run must wait, None when it may go on. It reads its signal at
most every ``poll_s`` of station time (between reads it answers from the last one) and has three states:

``ok``
    the signal is in band; it suspends when the signal crosses the suspend threshold (``suspend_below`` /
    ``suspend_above``);
``suspended``
    it stays so until the signal is back past the *resume* threshold (``resume_above`` / ``resume_below``:
    hysteresis, so a signal hovering at the threshold does not toggle the run);
``settling``
    back in band, it waits ``settle_s`` (a lamp that came back needs its output to stabilise); a signal that
    leaves the resume band meanwhile sends it back to ``suspended``.

Signals: ``irradiance_W_m2`` from a source meter holding a reference cell at short circuit (a linear Si cell:
G = |Isc| / ``isc_at_1000_W_m2_A`` · 1000 W/m², as in IEC 60904-2 for a reference device), and ``temperature_K``
from a temperature sensor (capability ``temperature_sensor``: ``read_temperature_K()``).

The engine adds these to every run whose procedure declares ``SUSPENDABLE = True``; its reads go through the
run's :class:`labctl.recovery.Recovery`, so a fault of the monitoring instrument is mended like any other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from labctl.config import SuspenderConfig

OK, SUSPENDED, SETTLING = "ok", "suspended", "settling"
REFERENCE_COMPLIANCE_FACTOR = 2.0
"""The reference cell's current compliance is this many times its Isc at 1000 W/m² (headroom for bright light)."""


class ThresholdSuspender:
    """One ``suspenders:`` entry as an engine suspender (module docstring).

    Parameters
    ----------
    config
        The station.yaml entry (:class:`labctl.config.SuspenderConfig`).
    station
        The station (its clock; ``station[config.role]`` is read).
    io
        How to talk to the instrument: ``io(role, operation, restore=..., what=...)`` (default: the operation
        once, ``operation(station[role])``); the engine passes its run's :meth:`labctl.recovery.Recovery.call`.
    """

    def __init__(self, config: SuspenderConfig, station: Any, io: Callable[..., Any] | None = None) -> None:
        self.config = config
        self.station = station
        self._io = io or (lambda role, operation, **_: operation(station[role]))
        self.state = OK
        self.value: float | None = None
        self._read_at: float | None = None
        self._settle_from: float | None = None
        self._prepared = False
        self._reason = ""
        #: times it suspended, and the station time (s) the current suspension started (None: not suspended)
        self.count = 0
        self.since: float | None = None

    # -- reading the signal ---------------------------------------------------------------------------------------
    @property
    def units(self) -> str:
        return "W/m²" if self.config.signal == "irradiance_W_m2" else "K"

    def _prepare_reference(self, smu: Any) -> None:
        """Hold the reference cell at short circuit: V source at 0 V, output on."""
        isc = float(self.config.isc_at_1000_W_m2_A or 0.0)
        compliance = REFERENCE_COMPLIANCE_FACTOR * isc
        limits = self.station.config.instruments[self.config.role].limits
        if limits is not None:
            compliance = min(compliance, limits.current_A)
        smu.configure_voltage_source(compliance_A=compliance, nplc=1.0)
        smu.set_voltage(0.0)
        smu.enable_output()

    def _restore_reference(self, smu: Any) -> None:
        smu.set_voltage(0.0)  # the configuration is replayed by the reconnection; the level and output are not
        smu.enable_output()

    def read(self) -> float:
        """Read the signal now (W/m² or K)."""
        role = self.config.role
        if self.config.signal == "temperature_K":
            return float(self._io(role, lambda inst: inst.read_temperature_K(), what=f"suspender {self.config.name}"))
        if not self._prepared:
            self._io(role, self._prepare_reference, what=f"suspender {self.config.name}: short circuit")
            self._prepared = True
        data = self._io(role, lambda smu: smu.measure_point(), restore=self._restore_reference,
                        what=f"suspender {self.config.name}: reading")
        current_A = float(abs(data.current_A[-1]))
        return current_A / float(self.config.isc_at_1000_W_m2_A) * 1000.0

    # -- the band -------------------------------------------------------------------------------------------------
    def _out_of_band(self, value: float) -> bool:
        c = self.config
        return value < c.suspend_below if c.suspend_below is not None else value > c.suspend_above  # type: ignore

    def _back_in_band(self, value: float) -> bool:
        c = self.config
        if c.suspend_below is not None:
            return value >= (c.resume_above if c.resume_above is not None else c.suspend_below)
        return value <= (c.resume_below if c.resume_below is not None else c.suspend_above)  # type: ignore

    def _describe(self, value: float) -> str:
        c = self.config
        if c.suspend_below is not None:
            how = f"below {c.suspend_below:g} {self.units}; resumes at or above " \
                  f"{c.resume_above if c.resume_above is not None else c.suspend_below:g}"
        else:
            how = f"above {c.suspend_above:g} {self.units}; resumes at or below " \
                  f"{c.resume_below if c.resume_below is not None else c.suspend_above:g}"
        return f"{c.name}: {c.signal} = {value:.4g} {how}"

    def __call__(self) -> str | None:
        """The reason to hold the run (None: go on). Reads the signal when ``poll_s`` has passed since the last read."""
        now = float(self.station.clock.now())
        if self._read_at is None or now - self._read_at >= self.config.poll_s:
            self.value = self.read()
            self._read_at = now
            self._step(self.value, now)
        if self.state == OK:
            return None
        if self.state == SETTLING:
            left = self.config.settle_s - (now - float(self._settle_from or now))
            if left <= 0:
                self.state, self.since, self._settle_from = OK, None, None
                return None
            return f"{self._reason} (settling, {left:.4g} s left)"
        return self._reason

    def _step(self, value: float, now: float) -> None:
        if self.state == OK:
            if self._out_of_band(value):
                self.state, self.since = SUSPENDED, now
                self.count += 1
                self._reason = self._describe(value)
        elif self.state == SUSPENDED:
            if self._back_in_band(value):
                self.state, self._settle_from = SETTLING, now
            else:
                self._reason = self._describe(value)
        elif not self._back_in_band(value):  # settling, and out of the resume band again
            self.state, self._settle_from = SUSPENDED, None
            self._reason = self._describe(value)

    def status(self) -> dict[str, Any]:
        """For the status file: name, state, last value, times suspended, since (station time, s)."""
        return {"name": self.config.name, "state": self.state, "value": self.value, "units": self.units,
                "count": self.count, "since_s": self.since}


def station_suspenders(station: Any, io: Callable[..., Any] | None = None) -> list[ThresholdSuspender]:
    """The station's ``suspenders:`` as :class:`ThresholdSuspender` objects (no I/O)."""
    return [ThresholdSuspender(cfg, station, io) for cfg in station.config.suspenders]


def suspender_roles(station: Any) -> list[str]:
    """The roles the station's suspenders read (to connect with the run's instruments)."""
    return list(dict.fromkeys(cfg.role for cfg in station.config.suspenders))
