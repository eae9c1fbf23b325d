"""Setting procedure parameters from ``NAME=VALUE`` text, with one clear error per bad value."""

from __future__ import annotations

from collections.abc import Iterable

from pymeasure.experiment import BooleanParameter, FloatParameter, IntegerParameter, ListParameter

from labctl.config import ConfigError
from procedures.base import LabProcedure

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def describe_allowed(param: object) -> str:
    """What a parameter accepts, for error messages and ``--help`` (a free-form parameter may say it in its
    ``allowed`` attribute, e.g. the hold's bias: oc, sc or volts)."""
    if getattr(param, "allowed", None):
        return str(param.allowed)
    if isinstance(param, ListParameter):
        return "one of " + ", ".join(str(c) for c in param.choices)
    if isinstance(param, BooleanParameter):
        return "true or false"
    if isinstance(param, (FloatParameter, IntegerParameter)):
        units = f" {param.units}" if param.units else ""
        return f"{param.minimum:g} to {param.maximum:g}{units}"
    return "a value"


def set_parameter(procedure: LabProcedure, name: str, text: str) -> None:
    """Convert ``text`` to the parameter's type and range, then set it on ``procedure``."""
    params = procedure._parameters
    if name not in params:
        raise ConfigError(f"unknown parameter '{name}' for {procedure.NAME}; known: {', '.join(sorted(params))}")
    param = params[name]
    raw = text.strip()
    try:
        if isinstance(param, BooleanParameter):
            low = raw.lower()
            if low not in _TRUE | _FALSE:
                raise ValueError
            value: object = low in _TRUE
        elif isinstance(param, IntegerParameter):
            value = int(raw)
            if not param.minimum <= value <= param.maximum:
                raise ValueError
        elif isinstance(param, FloatParameter):
            value = float(raw)
            if not param.minimum <= value <= param.maximum:
                raise ValueError
        elif isinstance(param, ListParameter):
            if raw not in [str(c) for c in param.choices]:
                raise ValueError
            value = raw
        else:
            value = param.convert(raw)
    except ValueError:
        raise ConfigError(f"parameter {name} = {text!r}: allowed {describe_allowed(param)}") from None
    setattr(procedure, name, value)


def apply_settings(procedure: LabProcedure, settings: Iterable[str]) -> None:
    """Apply ``NAME=VALUE`` strings (as given to ``--set``)."""
    for item in settings:
        name, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r}: expected NAME=VALUE")
        set_parameter(procedure, name.strip(), value)
