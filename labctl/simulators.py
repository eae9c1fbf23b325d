"""Finding the simulator: the ``labctl.simulators`` entry-point group (pyproject.toml), loaded with
importlib.metadata, plus :func:`register_simulator` for one defined inside a test.

labctl core never imports a simulator: a station with ``sim://`` resources asks the class found here (the
built-in one is the ``sim`` entry point of pyproject.toml, the ``Simulator`` of the simulator package's
``provider`` module, which documents what a simulator class offers) to validate the ``simulation:`` section,
to build the bench and its clock, and for one adapter per ``sim://`` resource.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from typing import Any

GROUP = "labctl.simulators"
DEFAULT = "sim"

_registered: dict[str, Any] = {}


def register_simulator(name: str, simulator: Any) -> None:
    """Add (or replace) a simulator in this process, e.g. one defined inside a test."""
    _registered[name] = simulator


@cache
def _from_entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def simulator_class(name: str = DEFAULT) -> Any | None:
    """The simulator registered as ``name`` (None when none is installed)."""
    if name in _registered:
        return _registered[name]
    ep = _from_entry_points().get(name)
    return None if ep is None else ep.load()
