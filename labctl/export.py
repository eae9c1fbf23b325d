"""CSV export of run files, for people who want CSV."""

from __future__ import annotations

from pathlib import Path

from labctl.storage import RunData


def export_csv(run: RunData, out_dir: str | Path | None = None) -> list[Path]:
    """One CSV per data stream, ``<run>_<stream>.csv``, with ``#`` lines holding the metadata and results."""
    folder = Path(out_dir) if out_dir else run.path.parent
    folder.mkdir(parents=True, exist_ok=True)
    header = [f"# {key}: {value}" for key, value in run.info.items()]
    header += [
        f"# parameter {name}: {value}{(' ' + run.units[name]) if name in run.units else ''}"
        for name, value in run.parameters.items()
    ]
    header += [f"# result {name}: {value}" for name, value in run.results.items()]
    paths = []
    for name, frame in run.streams.items():
        path = folder / f"{run.path.stem}_{name}.csv"
        with path.open("w", encoding="utf-8", newline="") as fh:
            fh.write("\n".join(header) + "\n")
            frame.to_csv(fh, index=False)
        paths.append(path)
    return paths
