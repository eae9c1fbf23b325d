"""Procedures: what to measure, found through the ``labctl.procedures`` entry-point group.

The built-in procedures register exactly as a third-party package would (pyproject.toml,
``[project.entry-points."labctl.procedures"]``: ``jv = "procedures.jv:JVProcedure"``, ...), so the CLI, ``params``
and a GUI find them without a hand-written list. A procedure defined inside a test is added in-process with
:func:`register_procedure`.

``REGISTRY`` maps the names used by ``labctl run NAME`` to classes. An entry point that cannot be loaded (its module
is missing or fails to import) is left out of it and kept, as one line, in :func:`load_errors`; the other
procedures are not affected. Nothing is imported until the registry is first used.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from procedures.base import LabProcedure

#: the entry-point group in which procedures register
GROUP = "labctl.procedures"

_lock = threading.RLock()
_loaded: dict[str, type[LabProcedure]] | None = None  # the entry points, loaded once per process
_errors: dict[str, str] = {}
_registered: dict[str, type[LabProcedure]] = {}  # in-process registrations (tests, notebooks)


class ProcedureNotFound(LookupError):
    """A procedure name that is not registered, or whose entry point cannot be loaded (one-line message)."""


def _entry_points() -> list[EntryPoint]:
    """The ``labctl.procedures`` entry points of every installed distribution."""
    return list(entry_points(group=GROUP))


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _is_procedure(obj: object) -> bool:
    from procedures.base import LabProcedure

    return isinstance(obj, type) and issubclass(obj, LabProcedure)


def _load(ep: EntryPoint) -> type[LabProcedure]:
    """The class an entry point names; raises TypeError for anything but a LabProcedure subclass."""
    obj = ep.load()
    if not _is_procedure(obj):
        raise TypeError(f"{obj!r} is not a LabProcedure subclass")
    return obj


def _load_entry_points() -> dict[str, type[LabProcedure]]:
    """The entry points, loaded once per process; one that fails is left out and its reason kept (_errors)."""
    global _loaded
    with _lock:
        if _loaded is None:
            loaded: dict[str, type[LabProcedure]] = {}
            _errors.clear()
            for ep in sorted(_entry_points(), key=lambda e: e.name):
                if ep.name in loaded or ep.name in _errors:
                    continue  # the same distribution seen twice on the path (e.g. an editable install)
                try:
                    loaded[ep.name] = _load(ep)
                except Exception as exc:  # noqa: BLE001 - one broken plug-in must not hide the others
                    _errors[ep.name] = _one_line(f"procedure '{ep.name}' cannot be loaded (entry point {GROUP}: "
                                                 f"{ep.name} = {ep.value}): {type(exc).__name__}: {exc}")
            _loaded = loaded
        return _loaded


def reload() -> None:
    """Forget the loaded entry points: the next use of the registry loads them again."""
    global _loaded
    with _lock:
        _loaded = None
        _errors.clear()


def procedure_classes() -> dict[str, type[LabProcedure]]:
    """name → class of every procedure that loads: the entry points, then the in-process registrations."""
    loaded = _load_entry_points()
    with _lock:
        return {**loaded, **_registered}


def load_errors() -> dict[str, str]:
    """name → one line saying why that entry point could not be loaded (empty when all load)."""
    _load_entry_points()
    with _lock:
        return {name: msg for name, msg in _errors.items() if name not in _registered}


def procedure_class(name: str) -> type[LabProcedure]:
    """The class registered as ``name``.

    Raises
    ------
    ProcedureNotFound
        One line: why the entry point of ``name`` could not be loaded, or that ``name`` is unknown and which names
        are known.
    """
    classes = procedure_classes()
    if name in classes:
        return classes[name]
    errors = load_errors()
    if name in errors:
        raise ProcedureNotFound(errors[name])
    broken = f" (cannot be loaded: {', '.join(sorted(errors))})" if errors else ""
    raise ProcedureNotFound(f"unknown procedure '{name}'; known: {', '.join(sorted(classes))}{broken}")


def register_procedure(cls: type[LabProcedure], name: str | None = None) -> type[LabProcedure]:
    """Register ``cls`` in this process under ``name`` (default ``cls.NAME``); returns ``cls`` (a decorator).

    The in-process equivalent of a ``labctl.procedures`` entry point, for a procedure defined in a test.
    ValueError when the name is taken by an entry point or by another in-process registration (one name, one
    procedure: a run file's procedure name must mean one thing); TypeError for anything but a LabProcedure."""
    if not _is_procedure(cls):
        raise TypeError(f"register_procedure: {cls!r} is not a LabProcedure subclass")
    name = name or cls.NAME
    if name in _load_entry_points():
        raise ValueError(f"procedure name '{name}' is already provided by the {GROUP} entry point")
    with _lock:
        if _registered.get(name, cls) is not cls:
            raise ValueError(f"procedure name '{name}' is already registered in-process")
        _registered[name] = cls
    return cls


def unregister_procedure(name: str) -> None:
    """Undo :func:`register_procedure` (a test cleaning up after itself; no error when there is none)."""
    with _lock:
        _registered.pop(name, None)


class _Registry(Mapping):
    """A live, read-only view of :func:`procedure_classes` (loaded on first use)."""

    def __getitem__(self, name: str) -> type[LabProcedure]:
        return procedure_classes()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(procedure_classes())

    def __len__(self) -> int:
        return len(procedure_classes())

    def __repr__(self) -> str:
        return f"REGISTRY({sorted(self)})"


#: name → procedure class, for every procedure that loads (see the module docstring)
REGISTRY: Mapping[str, type[LabProcedure]] = _Registry()
