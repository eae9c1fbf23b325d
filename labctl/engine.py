"""The run engine: executes any procedure and always ends in a terminal status.

Lifecycle of :meth:`RunEngine.run`::

    validate parameters (no I/O) → connect instruments → *IDN? → open run file (metadata, station)
    → startup → execute → shutdown → safe state of every instrument → analysis → status → close file

Every exit path — completion, abort, exception, Ctrl-C (SIGINT), SIGTERM, a failing ``shutdown()`` — runs
``shutdown`` (guarded), then the safe state of *every* connected instrument from station.yaml (each guarded,
all within the station's time budgets), then writes a terminal status: ``completed``, ``aborted`` or
``failed``. Signals during the safe state are held until it is over (it is bounded), then honoured: the run
ends without its analysis. This fixes PyMeasure's worker, whose
run stays "Running" forever when ``shutdown()`` raises (frameworks ref. §1.3).

Extension points for long runs (checkpoints, resume, reconnection) are the ``on_event`` hook and the
``_execute`` step, which a subclass can wrap without touching the guarantees above.
"""

from __future__ import annotations

import logging
import secrets
import signal
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from labctl import __version__
from labctl.station import Station
from labctl.storage import RunWriter, utc_now_iso
from procedures.base import LabProcedure, RunAborted

log = logging.getLogger(__name__)

COMPLETED, ABORTED, FAILED = "completed", "aborted", "failed"


class RunInterrupted(BaseException):
    """SIGTERM (or SIGINT) received: unwinds the procedure like KeyboardInterrupt does."""


@dataclass
class RunResult:
    run_id: str
    path: Path
    status: str
    results: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def make_run_id(procedure: str, sample: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    safe_sample = "".join(c if c.isalnum() or c in "-_." else "_" for c in sample) or "sample"
    return f"{stamp}_{procedure}_{safe_sample}_{secrets.token_hex(2)}"


class RunEngine:
    """Runs procedures on a connected-on-demand :class:`Station`, one HDF5 file per run."""

    def __init__(
        self,
        station: Station,
        out_dir: str | Path,
        *,
        sample: str = "sample",
        operator: str | None = None,
        on_progress: Callable[[float], None] | None = None,
        on_event: Callable[[str], None] | None = None,
        flush_interval_s: float = 1.0,
    ) -> None:
        self.station = station
        self.out_dir = Path(out_dir)
        self.sample = sample
        self.operator = operator or station.config.station.operator
        self.on_progress = on_progress
        self.on_event = on_event
        self.flush_interval_s = flush_interval_s
        self._stop = threading.Event()
        self._writer: RunWriter | None = None
        self._rows: dict[str, list[dict[str, Any]]] = {}

    # -- control ------------------------------------------------------------------------------------------------
    def abort(self) -> None:
        """Ask the running procedure to stop at its next check (thread-safe)."""
        self._stop.set()

    def _emit(self, topic: str, record: Any) -> None:
        if topic == "results":
            row = dict(record)
            stream = row.pop("_stream")
            self._rows.setdefault(stream, []).append(row)
            assert self._writer is not None
            self._writer.append(stream, row)
        elif topic == "progress":
            if self.on_progress:
                self.on_progress(float(record))
        elif topic == "log":
            self._event(str(record))

    def _event(self, message: str) -> None:
        log.info(message)
        if self._writer is not None:
            self._writer.log_event(message)
        if self.on_event:
            self.on_event(message)

    # -- the run ------------------------------------------------------------------------------------------------
    def run(self, procedure: LabProcedure) -> RunResult:
        """Validate, connect, run and store. Raises only for problems found *before* the run file exists
        (ConfigError for parameters, StationError for instruments); after that, always returns a RunResult."""
        procedure.station = self.station
        procedure.data_dir = self.out_dir
        procedure.validate(self.station)
        roles = list(procedure.REQUIRES) + [r for r in procedure.OPTIONAL if r in self.station.config.instruments]
        self.station.connect(roles)
        idn = self.station.idn()

        run_id = make_run_id(procedure.NAME, self.sample)
        day = datetime.now(timezone.utc).strftime("%Y-%m-%d")
        path = self.out_dir / day / f"{run_id}.h5"
        writer = RunWriter(path, flush_interval_s=self.flush_interval_s)
        self._writer = writer
        self._rows = {}
        writer.write_metadata(
            run_id=run_id,
            procedure=procedure.NAME,
            sample=self.sample,
            operator=self.operator,
            area_cm2=getattr(procedure, "area_cm2", None),
            parameters=procedure.parameters_with_units(),
            station=self.station.config.snapshot(),
            idn=idn,
            software_version=__version__,
            start_time=utc_now_iso(),
        )
        for name, spec in procedure.STREAMS.items():
            writer.create_stream(name, spec.columns, spec.signal, spec.axes)

        procedure.emit = self._emit
        procedure.should_stop = self._stop.is_set
        self._stop.clear()

        status, error = COMPLETED, None
        deferred = _signals_deferred()
        with _signals_raise_interrupt():
            try:
                self._event(f"run {run_id} started")
                writer.flush()  # on disk at once: even a run killed in its first second says it started
                procedure.startup()
                self._execute(procedure)
                if self._stop.is_set():
                    status = ABORTED
            except (RunAborted, KeyboardInterrupt, RunInterrupted) as exc:
                status, error = ABORTED, f"{type(exc).__name__}: {exc}".rstrip(": ")
            except Exception as exc:  # noqa: BLE001 - any failure of the procedure ends the run as 'failed'
                status, error = FAILED, f"{type(exc).__name__}: {exc}"
                self._event("procedure failed:\n" + traceback.format_exc())
            finally:
                status, error = self._finish(procedure, status, error, deferred)

        results: dict[str, Any] = {}
        with deferred:  # a further Ctrl-C must not leave the file without its status
            if deferred.received:  # a second Ctrl-C / SIGTERM during the safe state: end now, no analysis
                self._event(f"{deferred.received[0]} during the safe state: analysis skipped, ending the run")
                if status == COMPLETED:
                    status, error = ABORTED, f"{deferred.received[0]} during the safe state"
            else:
                try:
                    frames = {name: pd.DataFrame(rows) for name, rows in self._rows.items()}
                    results = procedure.analyse(frames)
                    writer.write_results(results)
                except Exception as exc:  # noqa: BLE001 - analysis must not lose the data
                    self._event(f"analysis failed: {type(exc).__name__}: {exc}")
                    if status == COMPLETED:
                        status, error = FAILED, f"analysis failed: {exc}"
            self._event(f"ended: {status}: {error}" if error else f"ended: {status}")
            writer.close(status)
            self._writer = None
        return RunResult(run_id=run_id, path=path, status=status, results=results, error=error)

    def _execute(self, procedure: LabProcedure) -> None:
        procedure.execute()

    def _finish(
        self, procedure: LabProcedure, status: str, error: str | None, deferred: _signals_deferred | None = None
    ) -> tuple[str, str | None]:
        """shutdown() then the safe state of every instrument, within the station's time budgets; never raises.

        Signals are held off meanwhile (``deferred`` records them): a second Ctrl-C cannot cut the safe state
        short, and since the safe state ends within its budget (labctl.station.SAFE_STATE_TOTAL_BUDGET_S),
        :meth:`run` honours it right after, ending the run without its analysis."""
        with deferred if deferred is not None else _signals_deferred():
            try:
                procedure.shutdown()
            except BaseException as exc:  # noqa: BLE001 - a failing shutdown must not skip the safe state
                self._event(f"shutdown failed: {type(exc).__name__}: {exc}")
                if status == COMPLETED:
                    status, error = FAILED, f"shutdown failed: {exc}"
            failures = self.station.safe_state()
            for outcome in self.station.safe_report:
                if outcome.ok:
                    self._event(f"safe state: {outcome.role}: {outcome.detail} ({outcome.elapsed_s:.2f} s)")
            for failure in failures:
                self._event(f"SAFE STATE FAILED: {failure}")
            if failures and status == COMPLETED:
                status, error = FAILED, "safe state failed: " + "; ".join(failures)
        return status, error


class _signals_raise_interrupt:
    """While running: SIGTERM raises :class:`RunInterrupted` in the main thread (SIGINT stays
    KeyboardInterrupt). Outside the main thread signals cannot be handled and this does nothing."""

    def __enter__(self) -> None:
        self._old = None
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGTERM, self._handler)

    @staticmethod
    def _handler(signum: int, frame: Any) -> None:
        raise RunInterrupted(f"signal {signal.Signals(signum).name}")

    def __exit__(self, *exc: object) -> None:
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)


class _signals_deferred:
    """Hold SIGINT/SIGTERM while the safe state is applied and the file is closed; they are recorded in
    :attr:`received` (e.g. ``"SIGINT"``) for the caller to honour once that bounded work is done.
    Re-entrant: the same object may be entered again (its record is kept)."""

    def __init__(self) -> None:
        self.received: list[str] = []
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _signals_deferred:
        self._old = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._note)
        return self

    def _note(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        self.received.append(name)
        log.warning("%s received while making instruments safe; the run ends once the safe state is done "
                    "(within its time budget)", name)

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
