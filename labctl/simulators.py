"""Finding the simulator: the ``labctl.simulators`` entry-point group (pyproject.toml), loaded with
importlib.metadata, plus :func:`register_simulator` for one defined inside a test.

labctl core never imports a simulator: a station with ``sim://`` resources asks the class found here (the
built-in one is the ``sim`` entry point of pyproject.toml, the ``Simulator`` of the simulator package's
``provider`` module, which documents what a simulator class offers) to validate the ``simulation:`` section,
to build the bench and its clock, and for one adapter per ``sim://`` resource.
"""

from __future__ import annotations

from typing import Any

from labctl.plugins import load_entry_points

GROUP = "labctl.simulators"
DEFAULT = "sim"

_registered: dict[str, Any] = {}


def register_simulator(name: str, simulator: Any) -> None:
    """Add a simulator in this process, e.g. one defined inside a test; unlike an instrument it may stand in
    for the installed one of the same name (a station has one simulator, ``sim``), until
    :func:`unregister_simulator`."""
    _registered[name] = simulator


def unregister_simulator(name: str) -> None:
    """Forget a simulator registered in-process (no error when there is none)."""
    _registered.pop(name, None)


def simulator_class(name: str = DEFAULT) -> Any | None:
    """The simulator registered as ``name`` (None when none is installed or its entry point cannot load: the
    reason is logged by :func:`labctl.plugins.load_entry_points`)."""
    if name in _registered:
        return _registered[name]
    found, _ = load_entry_points(GROUP)
    return found.get(name)
