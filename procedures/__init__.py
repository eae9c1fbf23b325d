"""Procedures: what to measure. ``REGISTRY`` maps the names used by ``labctl run NAME`` to classes."""

from __future__ import annotations

from procedures.eqe import EQECalibrationProcedure, EQEProcedure
from procedures.hold import HoldProcedure
from procedures.jv import JVProcedure

REGISTRY = {"jv": JVProcedure, "eqe": EQEProcedure, "eqe-calibration": EQECalibrationProcedure,
            "hold": HoldProcedure}
