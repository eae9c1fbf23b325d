"""Plug-ins: what labctl finds through Python entry points, and the instrument registry built on them.

Built-in and third-party instruments register the same way: a package lists an
:class:`~drivers.registration.InstrumentRegistration` in the ``labctl.instruments`` entry-point group
(pyproject.toml ``[project.entry-points."labctl.instruments"]``, name = the station.yaml ``driver:``), and
:func:`instrument_registrations` finds it. A plug-in defined inside a test (or a notebook) registers in-process
with :func:`register_instrument`. There is no second, hand-written table of the built-in instruments.

:func:`load_entry_points` is the generic loader the other groups (``labctl.procedures``,
``labctl.simulators``) use too. Guide: docs/adding-an-instrument.md.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any, TypeVar

from drivers.registration import InstrumentRegistration

log = logging.getLogger(__name__)

INSTRUMENTS_GROUP = "labctl.instruments"
"""The entry-point group of instrument registrations."""

T = TypeVar("T")

_lock = threading.Lock()
_loaded: dict[str, tuple[dict[str, Any], dict[str, str]]] = {}
#: instruments registered in-process (register_instrument), by name
_registered: dict[str, InstrumentRegistration] = {}


class PluginError(LookupError):
    """A plug-in name that nothing provides, or one whose entry point cannot be loaded; one line for people."""


def load_entry_points(
    group: str,
    builtin: Mapping[str, T] | None = None,
    check: Callable[[str, Any], str | None] | None = None,
) -> tuple[dict[str, T], dict[str, str]]:
    """(objects by name, problems by name) of the entry points of ``group``, plus ``builtin``.

    Each entry point is loaded once per process (cached by group). ``builtin``: objects registered in-process
    (e.g. by a test); a name that an entry point already provides is a problem, not a silent override.
    ``check(name, obj)``: None when ``obj`` is acceptable, else why not. An entry point that fails to import or
    fails the check is left out and its reason kept in the problems (logged), so one broken third-party
    plug-in does not stop the others; asking for it by name reports the reason.
    """
    with _lock:
        if group not in _loaded:
            found: dict[str, Any] = {}
            problems: dict[str, str] = {}
            for ep in entry_points(group=group):
                if ep.name in found or ep.name in problems:
                    continue  # the same package seen twice on the path (e.g. an editable install)
                try:
                    obj = ep.load()
                except Exception as exc:  # noqa: BLE001 - any import failure of a plug-in is reported, not fatal
                    problems[ep.name] = f"entry point {ep.value!r} cannot be loaded: {type(exc).__name__}: {exc}"
                    continue
                problem = check(ep.name, obj) if check is not None else None
                if problem is not None:
                    problems[ep.name] = f"entry point {ep.value!r}: {problem}"
                    continue
                found[ep.name] = obj
            for name, problem in problems.items():
                log.warning("plug-in '%s' of %s left out: %s", name, group, problem)
            _loaded[group] = (found, problems)
        found, problems = _loaded[group]
    objects: dict[str, T] = dict(found)
    problems = dict(problems)
    for name, obj in (builtin or {}).items():
        if name in found:
            problems[name] = f"registered in-process, but the entry point of {group} already provides it"
            continue
        objects[name] = obj
    return objects, problems


def _check_registration(name: str, obj: Any) -> str | None:
    if not isinstance(obj, InstrumentRegistration):
        return f"is a {type(obj).__name__}, not an InstrumentRegistration"
    if obj.name != name:
        return f"names itself {obj.name!r}, not {name!r} (the entry point's name is the station.yaml driver name)"
    return None


def instrument_registrations() -> dict[str, InstrumentRegistration]:
    """Every instrument labctl can drive, by station.yaml ``driver:`` name (entry points + in-process)."""
    with _lock:
        registered = dict(_registered)
    found, _ = load_entry_points(INSTRUMENTS_GROUP, registered, _check_registration)
    return found


def instrument_problems() -> dict[str, str]:
    """Instrument plug-ins that were left out, by name, with the reason (empty when all loaded)."""
    with _lock:
        registered = dict(_registered)
    _, problems = load_entry_points(INSTRUMENTS_GROUP, registered, _check_registration)
    return problems


def registration(name: str) -> InstrumentRegistration:
    """The registration of driver ``name``; :class:`PluginError` (one line, naming what exists) otherwise."""
    regs = instrument_registrations()
    if name in regs:
        return regs[name]
    problem = instrument_problems().get(name)
    if problem is not None:
        raise PluginError(f"instrument plug-in '{name}' is not available: {problem}")
    raise PluginError(f"unknown driver '{name}'; allowed: {', '.join(sorted(regs))}")


def register_instrument(reg: InstrumentRegistration) -> InstrumentRegistration:
    """Register an instrument in this process (a plug-in defined in a test or a notebook); returns ``reg``.

    ValueError when the name is taken by an entry point or another in-process registration (unregister it
    first): two instruments under one name would make a station file mean two things.
    """
    if not isinstance(reg, InstrumentRegistration):
        raise TypeError(f"expected an InstrumentRegistration, got {type(reg).__name__}")
    found, _ = load_entry_points(INSTRUMENTS_GROUP, None, _check_registration)
    with _lock:
        if reg.name in found:
            raise ValueError(f"driver name '{reg.name}' is already provided by the {INSTRUMENTS_GROUP} entry point")
        if reg.name in _registered and _registered[reg.name] is not reg:
            raise ValueError(f"driver name '{reg.name}' is already registered in-process")
        _registered[reg.name] = reg
    return reg


def unregister_instrument(name: str) -> None:
    """Forget an instrument registered in-process (no error when there is none)."""
    with _lock:
        _registered.pop(name, None)
