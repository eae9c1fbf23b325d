"""What labctl needs to know about one instrument model, in one place: its registration.

A driver module ends with one :class:`InstrumentRegistration` per model it drives, and the package lists it in
the ``labctl.instruments`` entry-point group (pyproject.toml), which is how labctl finds built-in and
third-party instruments alike. Nothing here imports labctl or the simulator: the emulator is named by a
"module:attribute" string that only the simulator resolves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ConnectionDefaults:
    """How the instrument is reached, as its manual gives it; station.yaml only overrides these.

    serial: the instrument is an RS-232 one (a simulated one is served as a serial port over TCP)."""

    read_termination: str = "\n"
    write_termination: str = "\n"
    timeout_ms: int = 5000
    baud_rate: int | None = None
    serial: bool = False


@dataclass(frozen=True)
class InstrumentRegistration:
    """One instrument model, as labctl sees it.

    name: the station.yaml ``driver:`` value (e.g. "keithley2400").
    driver: the driver class (a PyMeasure ``Instrument``; its constructor takes an adapter and sends nothing).
    model: the instrument model as its maker names it (e.g. "Keithley 2400"); emulators are keyed by it.
    capabilities: the capability interfaces the driver offers (e.g. ("source_meter",)), see labctl.capabilities.
    connection: terminations, timeout and baud rate from the manual.
    settings: a pydantic model of the per-instrument keys of station.yaml (``settings:``), validated by it; the
        validated object is handed to ``configure`` and ``safe_state``.
    configure: ``configure(instrument, settings)``: the configuration applied after the identity check (and
        again after a reconnection).
    safe_state: ``safe_state(instrument, settings) -> str``: put the instrument in its safe state and read it
        back where it can; returns what was done; raises when it could not.
    emulator: "module:attribute" of the factory of its emulator (called with the simulated bench and
        ``emulator_options``), or None when there is none.
    """

    name: str
    driver: type
    model: str
    capabilities: tuple[str, ...] = ()
    connection: ConnectionDefaults = field(default_factory=ConnectionDefaults)
    settings: type | None = None
    configure: Callable[[Any, Any], None] | None = None
    safe_state: Callable[[Any, Any], str] | None = None
    emulator: str | None = None
    emulator_options: Mapping[str, Any] = field(default_factory=dict)
