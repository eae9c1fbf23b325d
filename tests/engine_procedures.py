"""Tiny procedures for the engine's tests: they need no instrument (or only the SMU), so a run is only the engine."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from pymeasure.experiment import FloatParameter, IntegerParameter

from labctl.documents import Column
from procedures.base import LabProcedure, StreamSpec

SPECTRUM_NM = tuple(float(x) for x in np.linspace(400.0, 700.0, 7))


class Ticks(LabProcedure):
    """``points`` rows of one stream, ``interval_s`` apart on the station clock, a checkpoint before each."""

    NAME = "ticks"
    points = IntegerParameter("Points", default=10, minimum=0, maximum=10_000_000)
    interval_s = FloatParameter("Interval", units="s", default=1.0, minimum=0.0)
    STREAMS = {
        "ticks": StreamSpec([Column("time_s", "s"), Column("index", "", "i8"), Column("value_V", "V")],
                            signal="value_V", axes="time_s"),
        "unused": StreamSpec([Column("x", "V")], signal="x", axes="x"),
    }

    def execute(self) -> None:
        clock = self.station.clock
        t0 = clock.now()
        for k in range(self.points):
            self.checkpoint()
            self.record("ticks", {"time_s": clock.now() - t0, "index": k, "value_V": 0.001 * k})
            self.progress((k + 1) / self.points)
            if self.interval_s:
                self.wait(self.interval_s)

    def analyse(self, streams: Mapping[str, pd.DataFrame]) -> dict[str, Any]:
        data = streams["ticks"]
        return {"rows": int(len(data)), "sum_V": float(data["value_V"].sum()), "streams": sorted(streams)}


class Spectra(LabProcedure):
    """A spectrum (7 wavelengths, fixed axis) and a 2 × 3 image per row, beside a scalar column."""

    NAME = "spectra"
    points = IntegerParameter("Points", default=4, minimum=1)
    STREAMS = {
        "spectra": StreamSpec(
            [
                Column("time_s", "s"),
                Column("counts", "1", shape=(len(SPECTRUM_NM),), axes=("wavelength_nm",), axis_units=("nm",),
                       axis_values=(SPECTRUM_NM,)),
                Column("image_V", "V", shape=(2, 3), axes=("row", "col")),
            ],
            signal="counts",
            axes="time_s",
        )
    }

    def execute(self) -> None:
        for k in range(self.points):
            self.checkpoint()
            self.record("spectra", {"time_s": float(k), "counts": np.arange(len(SPECTRUM_NM)) * (k + 1.0),
                                    "image_V": np.full((2, 3), k, dtype=float)})

    def analyse(self, streams: Mapping[str, pd.DataFrame]) -> dict[str, Any]:
        counts = np.stack(list(streams["spectra"]["counts"]))
        return {"shape": list(counts.shape), "total": float(counts.sum())}


def make(cls: type[LabProcedure], **params: Any) -> LabProcedure:
    proc = cls()
    for name, value in params.items():
        assert name in proc._parameters, name
        setattr(proc, name, value)
    return proc
