"""Resuming a run: the procedure of an interrupted run file goes on into a new segment of that file.

``labctl resume FILE`` reads the run back (:func:`labctl.storage.load_run`), rebuilds its procedure with the
parameters stored in the file, lets the procedure find where it was (``procedure.resume_from(streams,
segment)``: the hold continues after the last ``time_s`` it stored) and runs it with a :class:`ResumeEngine`,
whose run file is the existing one: the engine's start document carries ``segment`` > 0, and the run file writer
reopens the file and appends a segment (its start, the gap since the last flush and the reason). Everything the
engine guarantees (validation before I/O, the safe state on every exit path, a terminal status) holds as for a
new run.

Only procedures with a ``resume_from`` method can be resumed, and only a run that did not complete: a run whose
writer died (``interrupted``), or one that was ``aborted`` or ``failed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labctl.config import ConfigError
from labctl.engine import RunEngine, RunFile
from labctl.storage import RunData, load_run
from procedures.base import LabProcedure

RESUMABLE_STATUSES = ("interrupted", "aborted", "failed")


def _settable(value: Any) -> str:
    """A parameter value as read back from a run file, as the text ``--set`` would give."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def procedure_to_resume(run: RunData) -> LabProcedure:
    """The procedure of ``run`` with its stored parameters, positioned after the rows already in the file.

    Raises :class:`ConfigError` (one line naming the file, the status or procedure, and what is allowed) for a
    run that cannot be resumed, before any instrument is touched."""
    from labctl.params import set_parameter
    from procedures import REGISTRY

    status = run.status
    if status not in RESUMABLE_STATUSES:
        why = "it is still being written" if status == "running" else "there is nothing left to do"
        raise ConfigError(f"run file {run.path}: status {status}: cannot be resumed ({why}); allowed: a run that "
                          f"is {', '.join(RESUMABLE_STATUSES)}")
    name = run.info.get("procedure", "")
    resumable = sorted(n for n, cls in REGISTRY.items() if hasattr(cls, "resume_from"))
    if name not in REGISTRY or not hasattr(REGISTRY[name], "resume_from"):
        raise ConfigError(f"run file {run.path}: procedure {name!r} cannot be resumed; allowed: "
                          f"{', '.join(resumable)}")
    procedure = REGISTRY[name]()
    for key, value in run.parameters.items():
        set_parameter(procedure, key, _settable(value))
    procedure.resume_from(run.streams, segment=len(run.segments))
    return procedure


@dataclass(frozen=True)
class Resumption:
    """What resuming a run needs once its file has been read: where the new segment goes, the run's sample and
    operator, and its procedure positioned after the stored rows (the rows themselves are not kept)."""

    run_file: RunFile
    sample: str
    operator: str | None
    procedure: LabProcedure
    title: str


class ResumeEngine(RunEngine):
    """A :class:`RunEngine` that writes a new segment of an existing run instead of a new file."""

    def __init__(self, station: Any, run_file: RunFile, *, sample: str, operator: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(station, run_file.path.parent, sample=sample, operator=operator, **kwargs)
        self.run_file = run_file

    def _run_file(self, procedure: LabProcedure) -> RunFile:
        return self.run_file

    def _catalog_data_dir(self) -> Path:
        return self.run_file.path.parent.parent  # run files are <data folder>/<day>/<run id>.h5


def interrupted_runs(config: Any, data_dir: str | Path) -> list[Path]:
    """The run files of station ``config`` that were interrupted (their writer died: killed, a power cut) and
    whose procedure can be resumed, newest first: what ``labctl resume --interrupted`` continues.

    Found through the station's run catalog (``station.catalog``, else ``<data_dir>/catalog.sqlite``; a run the
    catalog still calls running is checked against its file first); a data folder without a catalog is indexed
    first. Each file is read back: its own status must say ``interrupted``. No instrument I/O."""
    from labctl.catalog import Catalog, catalog_exists, catalog_url
    from labctl.storage import INTERRUPTED
    from procedures import REGISTRY

    data_dir = Path(data_dir)
    url = catalog_url(config.station.catalog, data_dir)
    existed = catalog_exists(url)
    if not existed and not data_dir.is_dir():
        return []
    resumable = {name for name, cls in REGISTRY.items() if hasattr(cls, "resume_from")}
    found: list[Path] = []
    with Catalog(url) as catalog:
        if not existed and data_dir.is_dir():
            catalog.reindex(data_dir)
        for run in catalog.runs(station=config.station.name, status=INTERRUPTED, newest_first=True):
            path = Path(run.path)
            if run.procedure not in resumable or not path.is_file():
                continue
            try:
                if load_run(path).status == INTERRUPTED:
                    found.append(path)
            except (OSError, KeyError, ValueError):
                continue  # unreadable: not something to resume unattended
    return found


def prepare_resume(path: str | Path, reason: str = "") -> Resumption:
    """Read the run file ``path`` and prepare its next segment (:func:`procedure_to_resume`; ``reason``
    default: "resumed after <status>"). Raises ConfigError for a run that cannot be resumed."""
    run = load_run(path)
    procedure = procedure_to_resume(run)
    run_file = RunFile(run.info["run_id"], Path(run.path), segment=len(run.segments),
                       reason=reason or f"resumed after {run.status}",
                       rows={name: len(frame) for name, frame in run.streams.items()})
    sample = run.info.get("sample", "sample")
    title = f"{procedure.NAME} {sample} (segment {run_file.segment})"
    return Resumption(run_file, sample, run.info.get("operator"), procedure, title)
