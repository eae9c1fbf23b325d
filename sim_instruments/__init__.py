"""The simulated bench: one physical model (bench.py), a virtual clock, and emulators that speak each
instrument's real command set, reachable in-process (adapter.py) or over loopback TCP (server.py).

labctl reaches it only through :class:`sim_instruments.provider.Simulator` (the ``labctl.simulators`` entry
point). An emulator is made from the instrument's registration (``registration.emulator``, "module:attribute",
called with the bench and ``registration.emulator_options``); the emulator class says which ``sim://<name>``
resources of the bench it can be (its ``SIM_NAMES``).
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any


def emulator_factory(registration: Any) -> Any:
    """The emulator class (or factory) of an instrument model: ``registration.emulator`` ("module:attribute",
    a :class:`drivers.registration.InstrumentRegistration` read by duck typing); ValueError when it has none."""
    if not registration.emulator:
        raise ValueError(f"no simulated instrument for driver '{registration.name}' ({registration.model}: its "
                         "registration names no emulator)")
    module, _, attr = registration.emulator.partition(":")
    return getattr(importlib.import_module(module), attr)


def sim_name_problem(registration: Any, name: str) -> str | None:
    """Why ``sim://<name>`` cannot be the instrument of ``registration`` on the simulated bench (None: it can).

    The text names the allowed resources, e.g. ``the simulated bench has no keithley2400 named 'lockin'
    (allowed: 'sim://smu')``; an instrument without an emulator is reported by :func:`make_emulator`, one whose
    emulator declares no ``SIM_NAMES`` may have any name."""
    try:
        allowed = getattr(emulator_factory(registration), "SIM_NAMES", None)
    except ValueError:
        return None
    if allowed is None or name in allowed:
        return None
    listing = ", ".join(repr(f"sim://{n}") for n in allowed)
    return f"the simulated bench has no {registration.name} named {name!r} (allowed: {listing})"


def make_emulator(registration: Any, bench: Any, name: str | None = None) -> Any:
    """A new emulator on ``bench`` of the instrument model of ``registration``: its ``emulator`` factory called
    with the bench and its ``emulator_options``.

    name: the ``<name>`` of a ``sim://<name>`` resource; ValueError unless the emulator can be it (its
    ``SIM_NAMES``; None: not checked, and the emulator's default instrument); a factory that takes ``sim_name``
    (e.g. the FW102C: the EQE wheel or a laser-path wheel) gets it.
    """
    factory = emulator_factory(registration)
    problem = None if name is None else sim_name_problem(registration, name)
    if problem is not None:
        raise ValueError(problem)
    options = dict(registration.emulator_options)
    if name is not None and _takes_sim_name(factory):
        options["sim_name"] = name
    return factory(bench, **options)


def _takes_sim_name(factory: Any) -> bool:
    """Whether an emulator factory takes ``sim_name`` (which of the bench's instruments of its kind it is)."""
    try:
        return "sim_name" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
