"""CSV export of run files, for people who want CSV."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from labctl.storage import Column, RunData, result_units

#: floats are written with 15 significant digits, a double's decimal precision: the shortest text that reads back
#: as the stored value to within 1 part in 10^15, without the binary noise of arithmetic (0.1 + 0.2 is written 0.3,
#: not 0.30000000000000004); instruments give 7 digits at most
FLOAT_FORMAT = "%.15g"


def export_csv(run: RunData, out_dir: str | Path | None = None) -> list[Path]:
    """One CSV per data stream, ``<run>_<stream>.csv``, with ``#`` lines holding the metadata and results.

    Header lines: ``# <key>: <value>`` for the run's metadata, ``# parameter <name>: <value> <units>``, and
    ``# result <name>: <JSON>`` for each result (numbers, nested groups, flags, null for a figure not computed),
    and for a resumed run ``# segment <k>: <JSON>`` per segment (start, end, status, reason, gap_s, first_rows).
    """
    folder = Path(out_dir) if out_dir else run.path.parent
    folder.mkdir(parents=True, exist_ok=True)
    header = [f"# {key}: {value}" for key, value in run.info.items()]
    header += [
        f"# parameter {name}: {value}{_unit_text(run.units.get(name, ''))}" for name, value in run.parameters.items()
    ]
    header += [f"# result {name}: {json.dumps(value)}" for name, value in run.results.items()]
    # the rows of every segment follow each other; these lines say where each one starts and why
    header += [f"# segment {seg['index']}: {json.dumps(seg)}" for seg in run.segments] if len(run.segments) > 1 else []
    header += [f"# result units: {json.dumps(_units_of(run.results))}"] if run.results else []
    paths = []
    for name, frame in run.streams.items():
        path = folder / f"{run.path.stem}_{name}.csv"
        columns = run.columns.get(name, {})
        with path.open("w", encoding="utf-8", newline="") as fh:
            fh.write("\n".join(header + _axis_lines(columns)) + "\n")
            _flat(frame, columns).to_csv(fh, index=False, float_format=FLOAT_FORMAT)
        paths.append(path)
    return paths


def _flat(frame: pd.DataFrame, columns: Mapping[str, Column]) -> pd.DataFrame:
    """N-D columns as one CSV column per element: ``counts[0]``, ``counts[1]``, ... (``image_V[0,1]`` for 2-D)."""
    if not any(c.shape for c in columns.values()):
        return frame
    out: dict[str, object] = {}
    for name in frame.columns:
        shape = columns[name].shape if name in columns else ()
        if not shape:
            out[name] = frame[name].to_numpy()
            continue
        values = np.stack(list(frame[name])) if len(frame) else np.empty((0, *shape))
        for index in np.ndindex(*shape):
            out[f"{name}[{','.join(str(k) for k in index)}]"] = values[(slice(None), *index)]
    return pd.DataFrame(out)


def _axis_lines(columns: Mapping[str, Column]) -> list[str]:
    """``# axis counts dimension 0 wavelength_nm (nm): 400, 450, ...`` for each fixed axis of an N-D column."""
    lines = []
    for col in columns.values():
        for k, values in enumerate(col.axis_values):
            if values:
                units = col.axis_units[k] if k < len(col.axis_units) else ""
                lines.append(f"# axis {col.name} dimension {k} {col.axes[k]}{f' ({units})' if units else ''}: "
                             + ", ".join(FLOAT_FORMAT % v for v in values))
    return lines


def _unit_text(units: str) -> str:
    """`` V`` after a value; "1" (dimensionless) is said in words, a bare "1" after a number reads as a typo."""
    return " (dimensionless)" if units == "1" else (f" {units}" if units else "")


def _units_of(tree: dict, prefix: str = "") -> dict[str, str]:
    """``{"reverse/voc_V": "V", ...}`` for every number in the results (the same rule as the run file)."""
    out: dict[str, str] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_units_of(value, f"{prefix}{key}/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[prefix + key] = result_units(key)
    return out
