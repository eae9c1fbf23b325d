"""Safe-state actions: the steps that make an instrument safe, run one after the other, then read back.

One implementation for the registrations' ``safe_state`` actions (:mod:`drivers.registration`) and for the
``safe_state:`` keys of station.yaml (``labctl.station.Station._make_safe``), so both report alike, e.g.
``sweep aborted, 0 V, output off (output reads off)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

SafeStep = tuple[str, Callable[[], Any]]
"""(what it does, in a few words; the action)."""


def run_steps(steps: Sequence[SafeStep]) -> list[str]:
    """Run every step, even after one failed (the next may still work); return what was done.

    Raises RuntimeError when any step failed: ``"<reason> (not done: a, b)"`` when they all failed for the
    same reason (e.g. a dead link), else ``"a: <reason>; b: <reason>"``.
    """
    done, failed, first = [], [], None
    for what, action in steps:
        try:
            action()
            done.append(what)
        except Exception as exc:  # noqa: BLE001 - keep going: the next action may still work
            failed.append((what, f"{type(exc).__name__}: {exc}"))
            first = first or exc
    if failed:  # the first failure as the cause: the caller can tell a dead link (labctl.recovery) from the rest
        reasons = list(dict.fromkeys(reason for _, reason in failed))
        if len(reasons) == 1:
            raise RuntimeError(f"{reasons[0]} (not done: {', '.join(what for what, _ in failed)})") from first
        raise RuntimeError("; ".join(f"{what}: {reason}" for what, reason in failed)) from first
    return done


def read_back_output_off(inst: Any) -> str:
    """Read the source output back (``source_enabled``); raise RuntimeError when it still reads on."""
    if inst.source_enabled:
        raise RuntimeError("the output still reads on after ':OUTP OFF'")
    return "output reads off"


def read_back_shutter_closed(inst: Any) -> str:
    """Read the shutter back (``shutter_open``); raise RuntimeError when it still reads open."""
    if inst.shutter_open:
        raise RuntimeError("the shutter still reads open after closing it")
    return "shutter reads closed"


def describe(done: Sequence[str], checks: Sequence[str] = ()) -> str:
    """``"a, b (check, check)"``: what was done and what was read back."""
    return ", ".join(done) + (f" ({', '.join(checks)})" if checks else "")


def source_meter_safe_state(inst: Any, settings: Any = None) -> str:
    """A source meter's safe state: abort a running sweep (it ignores everything else until aborted), 0 V,
    output off, then the output read back. The same steps as the driver's own ``safe_state()``."""
    done = run_steps([("sweep aborted", inst.abort_sweep), ("0 V", lambda: inst.set_voltage(0.0)),
                      ("output off", inst.disable_output)])
    return describe(done, [read_back_output_off(inst)])


def shutter_safe_state(inst: Any, settings: Any = None) -> str:
    """A shutter's safe state: closed, then read back."""
    done = run_steps([("shutter closed", inst.close_shutter)])
    return describe(done, [read_back_shutter_closed(inst)])


def driver_safe_state(what: str) -> Callable[[Any, Any], str]:
    """A safe-state action that calls the driver's own ``safe_state()``, reported as ``what``."""

    def action(inst: Any, settings: Any = None) -> str:
        return describe(run_steps([(what, inst.safe_state)]))

    action.__doc__ = f"The driver's own safe_state(): {what}."
    return action
