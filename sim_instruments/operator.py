"""The simulated operator's hands, for a bench served over TCP.

On a real EQE bench the operator swaps the reference detector and the device under test; in-process the
station moves the simulated detector itself. When the bench runs in another process (``labctl sim serve``),
this endpoint lets the station do the same over the loopback socket. It is not an instrument and has no real
counterpart: one line in, one line out — ``PLACE <detector>`` → ``OK`` (or ``ERROR <reason>``),
``PLACE?`` → the detector in the beam.
"""

from __future__ import annotations

from typing import Any

from sim_instruments.laser_path import place_in_beam


class OperatorEmulator:
    """Moves detectors on ``bench.optics`` (and, on a bench with a sphere, the reference sensor and the device at
    its sample port: :func:`sim_instruments.laser_path.place_in_beam`) on request."""

    def __init__(self, bench: Any) -> None:
        if bench.optics is None:
            raise ValueError("the bench has no EQE optics: nothing for an operator to move")
        self.bench = bench

    def handle(self, message: str) -> str | None:
        text = message.strip()
        if text.upper() == "PLACE?":
            return self.bench.optics.in_beam
        keyword, _, argument = text.partition(" ")
        if keyword.upper() == "PLACE" and argument.strip():
            try:
                place_in_beam(self.bench, argument.strip())
            except ValueError as exc:
                return f"ERROR {exc}"
            return "OK"
        return f"ERROR unknown request {text!r}; use PLACE <detector> or PLACE?"
