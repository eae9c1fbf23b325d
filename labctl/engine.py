"""The run engine: executes any procedure, emits its documents, and always ends in a terminal status.

Lifecycle of :meth:`RunEngine.run`::

    validate parameters (no I/O) → connect instruments → *IDN? → start document (the run file opens)
    → descriptors → startup → execute (events, log lines, progress) → shutdown → safe state of every
    instrument → analysis (of the streams read back from the run file) → stop document (status; file closed)

The run is a stream of documents (labctl.documents: start, descriptor, event, log, progress, stop) on one
:class:`~labctl.documents.DocumentBus`. Its subscribers, in order: the run file writer
(:class:`labctl.storage.RunFileWriter`, *critical*: a run whose data cannot be stored stops), the
``on_progress``/``on_event`` callbacks, then every ``subscribers=[...]`` given to the engine (the CLI's progress
bar and live warnings, the run catalog, a GUI's live buffer :mod:`labctl.live`). A failing non-critical
subscriber is dropped and cannot end the run. The engine keeps no rows: memory does not grow with the run.

Every exit path — completion, abort, exception, Ctrl-C (SIGINT), SIGTERM, a failing ``shutdown()`` — runs
``shutdown`` (guarded), then the safe state of *every* connected instrument from station.yaml (each guarded,
all within the station's time budgets), then writes a terminal status: ``completed``, ``aborted`` or
``failed``. Signals during the safe state are held until it is over (it is bounded), then honoured: the run
ends without its analysis. This fixes PyMeasure's worker, whose
run stays "Running" forever when ``shutdown()`` raises (frameworks ref. §1.3). Signals are handled only when the
run goes in the main thread; a run started with :meth:`RunEngine.start` (a GUI) is stopped with :meth:`abort`.

Control while running, from any thread: :meth:`~RunEngine.abort`, :meth:`~RunEngine.pause` /
:meth:`~RunEngine.resume`, and :meth:`~RunEngine.add_suspender` (a condition that holds the run while it gives a
reason). They take effect where the procedure calls ``checkpoint()`` (between points) or ``wait()``.

For long unattended runs (docs/stability.md) each run also gets: ``procedure.recovery`` (labctl.recovery, the
station's ``recovery:`` policy; ``procedure.io(...)`` goes through it, its journal to ``procedure.on_io_event``);
the station's ``suspenders:`` when the procedure declares ``SUSPENDABLE`` (``on_suspend(reason)`` once when a
suspension starts, ``on_resume()`` once when it ends, in the run's thread); a watchdog (``station.watchdog_s``: a
run with no document nor checkpoint that long is forced to its safe state and fails); the status file
(labctl.status, ``<run file>.status.json``); the alerts (``alerts:``); and ``procedure.live_subscribers()``.
"""

from __future__ import annotations

import logging
import secrets
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from labctl import __version__
from labctl.alerts import AlertSender
from labctl.documents import (
    DESCRIPTOR,
    EVENT,
    LOG,
    PROGRESS,
    START,
    STOP,
    Descriptor,
    DocumentBus,
    Event,
    LogLine,
    Progress,
    RunStart,
    RunStop,
    Subscriber,
)
from labctl.recovery import Recovery, RecoveryFailed, RecoveryPolicy
from labctl.station import SAFE_STATE_BUDGET_S, Station
from labctl.status import StatusWriter
from labctl.storage import RunFileWriter, utc_now_iso
from labctl.suspenders import ThresholdSuspender, station_suspenders, suspender_roles
from labctl.watchdog import Watchdog, WatchdogStall, raise_in_thread
from procedures.base import LabProcedure, RunAborted

log = logging.getLogger(__name__)

COMPLETED, ABORTED, FAILED = "completed", "aborted", "failed"
SUSPEND_POLL_S = 1.0
"""While suspended, the suspenders are asked again every this many seconds of station clock (s)."""
PAUSE_POLL_S = 0.1
"""While paused, an abort or a signal is noticed within this wall time (s)."""
PROGRESS_STEP = 1e-3
"""A progress document when the fraction done moved by at least this much (and at 1): a bar needs no more."""

Suspender = Callable[[], "str | None"]


class RunInterrupted(BaseException):
    """SIGTERM (or SIGINT) received: unwinds the procedure like KeyboardInterrupt does."""


@dataclass
class RunResult:
    run_id: str
    path: Path
    status: str
    results: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    num_events: dict[str, int] = field(default_factory=dict)  # rows recorded per stream


@dataclass(frozen=True)
class RunFile:
    """Where a run is written: a new file, or (``segment`` > 0) a new segment of an existing run (labctl resume:
    :class:`labctl.resume.ResumeEngine`). ``rows``: rows already stored per stream, where ``Event.seq_num`` goes on."""

    run_id: str
    path: Path
    segment: int = 0
    reason: str = ""
    rows: Mapping[str, int] = field(default_factory=dict)


def make_run_id(procedure: str, sample: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    safe_sample = "".join(c if c.isalnum() or c in "-_." else "_" for c in sample) or "sample"
    return f"{stamp}_{procedure}_{safe_sample}_{secrets.token_hex(2)}"


class RunEngine:
    """Runs procedures on a connected-on-demand :class:`Station`, one HDF5 file per run.

    Parameters
    ----------
    station, out_dir
        The station, and the data folder (runs go to ``<out_dir>/<UTC date>/<run id>.h5``).
    sample, operator
        Recorded in the start document (operator: from the station file when not given).
    on_progress, on_event
        Callbacks: the fraction done in percent (0-100), and each log line of the run.
    flush_interval_s
        The run file is flushed at least this often (s).
    subscribers
        Further document subscribers ``fn(name, doc)``, called after the run file writer (non-critical).
    catalog
        Index every run in the station's run catalog (``station.catalog``, else ``<out_dir>/catalog.sqlite``):
        recorded as running at its start, updated at its stop. A catalog that cannot be opened does not stop the
        run (its file is the record): a WARNING line in the run's events says it was not indexed.
    substrate_id, pixel
        The run is one pixel of a substrate (:mod:`labctl.substrate`): both go to its start document, its file
        and its catalog row.
    stop_event
        An abort shared with other engines (the pixel runs of one substrate): set, it aborts this engine's run,
        also one not started yet (:meth:`run` does not clear it, as it clears its own).
    """

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
        subscribers: Iterable[Subscriber] = (),
        catalog: bool = True,
        substrate_id: str | None = None,
        pixel: str | None = None,
        stop_event: threading.Event | None = None,
    ) -> None:
        self.station = station
        self.out_dir = Path(out_dir)
        self.sample = sample
        self.operator = operator or station.config.station.operator
        self.on_progress = on_progress
        self.on_event = on_event
        self.flush_interval_s = flush_interval_s
        self._subscribers: list[tuple[Subscriber, bool]] = [(s, False) for s in subscribers]
        self.catalog = catalog
        self._catalog_subscriber: Subscriber | None = None
        self._catalog_problem: str | None = None
        self._suspenders: list[Suspender] = []
        self.substrate_id, self.pixel = substrate_id, pixel
        self._shared_stop = stop_event is not None
        self._stop = stop_event if stop_event is not None else threading.Event()
        self._unpaused = threading.Event()
        self._unpaused.set()
        self._thread: threading.Thread | None = None
        self._outcome: tuple[RunResult | None, BaseException | None] | None = None
        # the current run (None between runs)
        self.bus: DocumentBus | None = None
        self._file: RunFileWriter | None = None
        self._run_id = ""
        self._streams: frozenset[str] = frozenset()
        self._seq: dict[str, int] = {}
        self._progress = -1.0  # the fraction of the last progress document
        self._procedure: LabProcedure | None = None
        self._run_suspenders: list[ThresholdSuspender] = []  # station.yaml's, for a SUSPENDABLE procedure's run
        self._in_suspension_hook = False
        self._suspension: dict[str, Any] = _no_suspensions()
        self._watchdog: Watchdog | None = None
        self._watchdog_reason: str | None = None
        self._run_thread_id: int | None = None
        self._alerts: AlertSender | None = None
        self._status: StatusWriter | None = None
        self._run_roles: list[str] = []

    def subscribe(self, subscriber: Subscriber, critical: bool = False) -> None:
        """Add a document subscriber for the runs that start from now on (``critical``: its failure fails the
        run instead of dropping the subscriber)."""
        self._subscribers.append((subscriber, critical))

    # -- control (thread-safe) ----------------------------------------------------------------------------------
    def abort(self) -> None:
        """Ask the running procedure to stop at its next checkpoint (also ends a pause or a suspension)."""
        self._stop.set()
        self._unpaused.set()

    def pause(self) -> None:
        """Hold the run at the procedure's next checkpoint until :meth:`resume` (log lines "paused", "resumed").
        Instruments stay as they are (a bias stays applied); an abort still ends the run."""
        self._unpaused.clear()

    def resume(self) -> None:
        """Let a paused run go on."""
        self._unpaused.set()

    @property
    def paused(self) -> bool:
        return not self._unpaused.is_set()

    def add_suspender(self, condition: Suspender) -> None:
        """Suspend the run while ``condition()`` returns a reason (a string; None: go on), e.g. a lamp dip.

        Asked at every checkpoint; while a reason is returned the run waits (log line "suspended: <reason>"),
        asking again every ``SUSPEND_POLL_S`` s of station clock, then goes on (log line "resumed")."""
        self._suspenders.append(condition)

    # -- background runs ----------------------------------------------------------------------------------------
    def start(self, procedure: LabProcedure) -> None:
        """Run ``procedure`` in a background thread and return at once; :meth:`join` gives its result.

        Signals go to the main thread, not to the run: while :meth:`join` waits it turns Ctrl-C/SIGTERM into
        :meth:`abort`; otherwise (a GUI's event loop) the caller calls :meth:`abort`. The thread is not a daemon,
        so the interpreter does not exit in the middle of a run or its safe state."""
        if self.running:
            raise RuntimeError("a run is already going on this engine")
        if not self._shared_stop:
            self._stop.clear()
        self._outcome = None

        def target() -> None:
            try:
                self._outcome = (self._run(procedure), None)
            except BaseException as exc:  # noqa: BLE001 - handed to join()
                self._outcome = (None, exc)

        self._thread = threading.Thread(target=target, name=f"labctl-run-{procedure.NAME}")
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout_s: float | None = None) -> RunResult:
        """Wait for the run started with :meth:`start`; its RunResult, or the error that kept it from starting
        (ConfigError, StationError) re-raised. TimeoutError if it is still going after ``timeout_s``.

        Called in the main thread, Ctrl-C (SIGINT) and SIGTERM while waiting abort the run (it then ends
        ``aborted`` through its safe state, and join goes on waiting for that), as they do a run in the main
        thread; elsewhere signals are not seen and only :meth:`abort` stops the run."""
        if self._thread is None:
            raise RuntimeError("no run was started on this engine")
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with _signals_abort(lambda reason: self.abort()):
            while self._thread.is_alive():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(f"the run is still going after {timeout_s} s")
                self._thread.join(PAUSE_POLL_S if left is None else min(PAUSE_POLL_S, left))
        assert self._outcome is not None
        result, error = self._outcome
        if error is not None:
            raise error
        assert result is not None
        return result

    # -- the documents --------------------------------------------------------------------------------------------
    def _emit(self, topic: str, record: Any) -> None:
        """The procedure's hook (``procedure.emit``): rows, progress and log lines become documents."""
        if topic == "results":
            stream = record.pop("_stream")  # record is the fresh dict LabProcedure.record made for this row
            if stream not in self._streams:
                raise ValueError(f"a row for stream {stream!r}, which the procedure does not declare "
                                 f"(its STREAMS: {', '.join(sorted(self._streams))})")
            self._seq[stream] += 1
            self._publish(EVENT, Event(self._run_id, stream, self._seq[stream], time.time(), record))
        elif topic == "progress":
            fraction = float(record)
            if abs(fraction - self._progress) >= PROGRESS_STEP or (fraction == 1.0 != self._progress):
                self._progress = fraction
                self._publish(PROGRESS, Progress(self._run_id, fraction))
        elif topic == "log":
            self._event(str(record))

    def _event(self, message: str) -> None:
        log.info(message)
        self._publish(LOG, LogLine(self._run_id, utc_now_iso(), message))

    def _note(self, message: str) -> None:
        """:meth:`_event` that never raises (a failing critical subscriber must not cut the safe state short)."""
        try:
            self._event(message)
        except Exception:  # noqa: BLE001 - reported in the log; the safe state goes on
            log.exception("could not record %r", message)

    def _publish(self, name: str, doc: Any) -> None:
        if self._watchdog is not None:
            self._watchdog.kick()
        if self.bus is not None:
            self.bus.emit(name, doc)

    def _callbacks(self, name: str, doc: Any) -> None:
        """The ``on_progress``/``on_event`` callbacks as a subscriber (subscribed when either is set as a run
        starts; they may be set after the engine is made)."""
        if name == PROGRESS and self.on_progress:
            self.on_progress(100.0 * doc.fraction)
        elif name == LOG and self.on_event:
            self.on_event(doc.message)

    def _open_bus(self) -> RunFileWriter:
        """The current run's bus: the run file writer (critical), the callbacks, then the subscribers."""
        writer = RunFileWriter(flush_interval_s=self.flush_interval_s)
        bus = DocumentBus()
        bus.subscribe(writer, critical=True)
        if self.on_progress or self.on_event:
            bus.subscribe(self._callbacks)
        catalog = self._catalog()
        if catalog is not None:
            bus.subscribe(catalog)
        for subscriber, critical in self._subscribers:
            bus.subscribe(subscriber, critical=critical)
        self.bus, self._file = bus, writer
        return writer

    def _catalog_data_dir(self) -> Path:
        """The data folder whose ``catalog.sqlite`` indexes this engine's runs (without ``station.catalog``)."""
        return self.out_dir

    def _catalog(self) -> Subscriber | None:
        """The run catalog's subscriber (opened once per engine), or None: not wanted, or it cannot be opened
        (then :attr:`_catalog_problem` says why, and the run logs it as a WARNING)."""
        if not self.catalog:
            return None
        if self._catalog_subscriber is None:
            from labctl.catalog import Catalog, CatalogError, CatalogSubscriber, catalog_url

            data_dir = self._catalog_data_dir()
            try:
                self._catalog_subscriber = CatalogSubscriber(
                    Catalog(catalog_url(self.station.config.station.catalog, data_dir)))
                self._catalog_problem = None
            except CatalogError as exc:
                self._catalog_problem = (f"WARNING: {exc}; this run is not indexed (`labctl runs reindex {data_dir}` "
                                         "catches up)")
        return self._catalog_subscriber

    # -- pause, suspend -----------------------------------------------------------------------------------------
    def _pause_point(self) -> None:
        """Called at each ``procedure.checkpoint()``: hold while paused or suspended; return on an abort.

        A suspension calls ``procedure.on_suspend(reason)`` once when it starts and ``procedure.on_resume()`` once
        when it ends (the suspenders' settle time is part of it); a checkpoint or wait inside those hooks does
        not suspend again."""
        if self._watchdog is not None:
            self._watchdog.kick()
        if self._in_suspension_hook:
            return
        if self._unpaused.is_set() and not self._suspenders and not self._run_suspenders:
            return
        if self.paused and not self._stop.is_set():
            self._event("paused")
            self._write_status()
            while not self._unpaused.wait(PAUSE_POLL_S):
                if self._watchdog is not None:
                    self._watchdog.kick()
                self._write_status(force=False)
            if self._stop.is_set():
                return  # the checkpoint raises RunAborted
            self._event("resumed")
        reason = self._suspend_reason()
        if reason is None:
            return
        self._suspension_started(reason)
        while reason is not None and not self._stop.is_set():
            self.station.clock.sleep(SUSPEND_POLL_S)
            if self._watchdog is not None:
                self._watchdog.kick()
            self._write_status(force=False)
            now = self._suspend_reason()
            if now is not None and now != reason:
                self._event(f"suspended: {now}")
                self._suspension["current"] = now
            reason = now
        self._suspension_ended()

    def _suspension_started(self, reason: str) -> None:
        clock_now = float(self.station.clock.now())
        self._suspension.update(current=reason, since_s=clock_now, count=self._suspension["count"] + 1)
        self._event(f"suspended: {reason}")
        if self._alerts is not None:
            self._alerts.send("suspended", reason=reason, **self._alert_fields())
        self._write_status()
        self._suspension_hook("on_suspend", reason)

    def _suspension_ended(self) -> None:
        since = self._suspension.get("since_s")
        if since is not None:
            self._suspension["total_s"] += float(self.station.clock.now()) - float(since)
        self._suspension.update(current=None, since_s=None)
        if self._stop.is_set():
            return
        self._event("resumed")
        if self._alerts is not None:
            self._alerts.send("resumed", reason="", **self._alert_fields())
        self._suspension_hook("on_resume")
        self._write_status()

    def _suspension_hook(self, name: str, *args: Any) -> None:
        """``procedure.on_suspend`` / ``on_resume`` in the run's thread, without re-entering the pause point."""
        if self._procedure is None:
            return
        self._in_suspension_hook = True
        try:
            getattr(self._procedure, name)(*args)
        finally:
            self._in_suspension_hook = False

    def _suspend_reason(self) -> str | None:
        for condition in [*self._suspenders, *self._run_suspenders]:
            reason = condition()
            if reason:
                return str(reason)
        return None

    # -- recovery, watchdog, alerts, status ---------------------------------------------------------------------
    def _recovery(self, procedure: LabProcedure) -> Recovery:
        """The run's transport-fault recovery (station.yaml ``recovery:``): its journal goes to
        ``procedure.on_io_event``; a back-off keeps the watchdog quiet and ends on an abort."""
        def should_stop() -> bool:
            if self._watchdog is not None:
                self._watchdog.kick()
            return self._stop.is_set()

        return Recovery(self.station, RecoveryPolicy.from_config(self.station.config.recovery),
                        journal=procedure.on_io_event, should_stop=should_stop)

    def _start_watchdog(self) -> None:
        timeout_s = float(self.station.config.station.watchdog_s)
        self._watchdog_reason = None
        self._run_thread_id = threading.get_ident()
        self._watchdog = Watchdog(timeout_s, self._on_stall)
        self._watchdog.start()

    def _on_stall(self, idle_s: float) -> None:
        """In the watchdog's thread: the run has been quiet for ``idle_s``: safe state now, then fail the run."""
        limit = self.station.config.station.watchdog_s
        self._watchdog_reason = (f"watchdog: no activity for {idle_s:.0f} s (station.watchdog_s = {limit:g}): "
                                 "the procedure stalled; safe state forced")
        self._note(f"WARNING: {self._watchdog_reason}")
        failures = self.station.safe_state()
        for outcome in self.station.safe_report:
            self._note(f"watchdog safe state: {outcome.role}: {outcome.detail}" if outcome.ok
                       else f"SAFE STATE FAILED (watchdog): {outcome.role}: {outcome.detail}")
        if failures:
            log.error("watchdog safe state failed: %s", failures)
        if self._run_thread_id is not None:
            raise_in_thread(self._run_thread_id, WatchdogStall)

    def _stop_watchdog(self) -> None:
        """Disarm the watchdog; a stall exception not yet delivered to this thread is cancelled."""
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is None:
            return
        while True:
            try:
                watchdog.stop()
                if watchdog.fired_after_s is not None and self._run_thread_id is not None:
                    raise_in_thread(self._run_thread_id, None)
                return
            except WatchdogStall:
                continue  # delivered while disarming: the run already ends failed (_watchdog_reason)

    def _alert_fields(self) -> dict[str, Any]:
        return {"run_id": self._run_id, "procedure": getattr(self._procedure, "NAME", ""), "sample": self.sample,
                "station": self.station.config.station.name,
                "path": str(getattr(self, "_run_path", ""))}

    def _status_extra(self) -> dict[str, Any]:
        """The engine's part of the status file: suspensions, recovery counts, the procedure's own values."""
        sus = dict(self._suspension)
        if sus.get("since_s") is not None:
            sus["current_s"] = float(self.station.clock.now()) - float(sus["since_s"])
        out: dict[str, Any] = {"suspensions": sus, "paused": self.paused,
                               "suspenders": [s.status() for s in self._run_suspenders]}
        procedure = self._procedure
        if procedure is not None:
            recovery = getattr(procedure, "recovery", None)
            if recovery is not None:
                out["recovery"] = recovery.summary()
            out["extra"] = procedure.status_extra()
        return out

    def _write_status(self, force: bool = True) -> None:
        """The status file now (``force``), or if its interval has passed (while paused or suspended no documents
        come to write it)."""
        if self._status is not None:
            try:
                self._status.write(force=force)
            except Exception:  # noqa: BLE001 - the status file must not end the run
                log.exception("status file not written")

    # -- the run ------------------------------------------------------------------------------------------------
    def run(self, procedure: LabProcedure) -> RunResult:
        """Validate, connect, run and store. Raises only for problems found *before* the run file exists
        (ConfigError for parameters, StationError for instruments); after that, always returns a RunResult."""
        if not self._shared_stop:
            self._stop.clear()
        return self._run(procedure)

    def _run(self, procedure: LabProcedure) -> RunResult:
        procedure.station = self.station
        procedure.data_dir = self.out_dir
        procedure.sample = self.sample  # e.g. to find the sample's newest J–V run in the catalog
        procedure.validate(self.station)
        roles = list(procedure.REQUIRES) + [r for r in procedure.OPTIONAL if r in self.station.config.instruments]
        suspendable = bool(getattr(procedure, "SUSPENDABLE", False)) and bool(self.station.config.suspenders)
        if suspendable:  # the instruments the station's suspenders read are part of the run
            roles += [r for r in suspender_roles(self.station) if r not in roles]
        self.station.connect(roles)
        self._run_roles = list(roles)
        idn = self.station.idn()

        run_file = self._run_file(procedure)
        run_id, path = run_file.run_id, run_file.path
        self._run_id, self._streams = run_id, frozenset(procedure.STREAMS)
        self._seq = {name: int(run_file.rows.get(name, 0)) for name in procedure.STREAMS}
        self._progress = -1.0
        self._run_path = path
        writer = self._open_bus()
        self._prepare_reliability(procedure, suspendable)
        try:
            self._publish(START, RunStart(
                run_id=run_id,
                procedure=procedure.NAME,
                sample=self.sample,
                operator=self.operator,
                station_name=self.station.config.station.name,
                time=utc_now_iso(),
                parameters=procedure.parameters_with_units(),
                station=self.station.config.snapshot(),
                idn=idn,
                software_version=__version__,
                area_cm2=getattr(procedure, "area_cm2", None),
                path=str(path),
                segment=run_file.segment,
                resume_reason=run_file.reason,
                substrate_id=self.substrate_id,
                pixel=self.pixel,
            ))
            for name, spec in procedure.STREAMS.items():
                self._publish(DESCRIPTOR, Descriptor(run_id, name, tuple(spec.columns), spec.signal, spec.axes))
        except BaseException:
            writer.close(FAILED)
            self.bus = self._file = None
            raise

        procedure.emit = self._emit
        procedure.should_stop = self._stop.is_set
        procedure.pause_point = self._pause_point

        status, error = COMPLETED, None
        deferred = _signals_deferred()
        with _signals_raise_interrupt():
            try:
                self._start_watchdog()
                self._event(f"run {run_id} started")
                if self.catalog and self._catalog_problem:
                    self._event(self._catalog_problem)
                writer.flush()  # on disk at once: even a run killed in its first second says it started
                procedure.startup()
                self._execute(procedure)
                if self._stop.is_set():
                    status = ABORTED
            except WatchdogStall:
                status, error = FAILED, self._watchdog_reason or "watchdog: the procedure stalled"
            except (RunAborted, KeyboardInterrupt, RunInterrupted) as exc:
                status, error = ABORTED, f"{type(exc).__name__}: {exc}".rstrip(": ")
            except RecoveryFailed as exc:  # one clear line: the journal above says what was tried
                status, error = FAILED, f"RecoveryFailed: {exc}"
                self._event(f"WARNING: {error}; the run can be resumed (labctl resume {path})")
            except Exception as exc:  # noqa: BLE001 - any failure of the procedure ends the run as 'failed'
                status, error = FAILED, f"{type(exc).__name__}: {exc}"
                self._event("procedure failed:\n" + traceback.format_exc())
            finally:
                self._stop_watchdog()
                if self._watchdog_reason and status != FAILED:
                    status, error = FAILED, self._watchdog_reason
                status, error = self._finish(procedure, status, error, deferred)

        results: dict[str, Any] = {}
        with deferred:  # a further Ctrl-C must not leave the file without its status
            if deferred.received:  # a second Ctrl-C / SIGTERM during the safe state: end now, no analysis
                self._event(f"{deferred.received[0]} during the safe state: analysis skipped, ending the run")
                if status == COMPLETED:
                    status, error = ABORTED, f"{deferred.received[0]} during the safe state"
            else:
                try:
                    results = procedure.analyse(self._streams_from_file(writer))
                except Exception as exc:  # noqa: BLE001 - analysis must not lose the data
                    self._event(f"analysis failed: {type(exc).__name__}: {exc}")
                    if status == COMPLETED:
                        status, error = FAILED, f"analysis failed: {exc}"
            self._event(f"ended: {status}: {error}" if error else f"ended: {status}")
            num_events = dict(self._seq)
            alert_fields = self._alert_fields()
            try:
                self._publish(STOP, RunStop(run_id, utc_now_iso(), status, error, results, num_events))
            finally:
                writer.close(status)  # no-op once the stop document closed it
                self.bus = self._file = None
                self._end_reliability(status, error, alert_fields)
        return RunResult(run_id=run_id, path=path, status=status, results=results, error=error,
                         num_events=num_events)

    def _prepare_reliability(self, procedure: LabProcedure, suspendable: bool) -> None:
        """The run's recovery (injected into the procedure), the station's suspenders for a SUSPENDABLE
        procedure, the status file, the alerts and the procedure's live subscribers (all on the bus, non-critical)."""
        assert self.bus is not None
        self._procedure = procedure
        procedure.recovery = self._recovery(procedure)
        self._run_suspenders = station_suspenders(self.station, io=procedure.recovery.call) if suspendable else []
        self._suspension = _no_suspensions()
        self._status = StatusWriter(extra=self._status_extra)
        self.bus.subscribe(self._status)
        alerts = self.station.config.alerts
        self._alerts = AlertSender(alerts, warn=self._alert_warning) if alerts is not None else None
        for subscriber in procedure.live_subscribers():
            self.bus.subscribe(subscriber)

    def _alert_warning(self, message: str) -> None:
        """A failed alert: a WARNING line in the run while it is open, else in the Python log."""
        if self.bus is not None:
            self._note(message)
        else:
            log.warning("%s", message)

    def _end_reliability(self, status: str, error: str | None, alert_fields: dict[str, Any]) -> None:
        """After the stop document: the terminal alert (waited for, bounded by alerts.timeout_s); forget the run."""
        alerts, self._alerts = self._alerts, None
        if alerts is not None:
            alerts.send(status, reason=error or "", **alert_fields)
            if not alerts.drain():
                log.warning("alert '%s' still being sent after alerts.timeout_s", status)
        self._procedure, self._run_suspenders, self._status = None, [], None

    def _reconnect_lost_roles(self) -> list[str]:
        """Roles of this run that a recovery left disconnected get one reconnection (within the safe-state budget
        per instrument), so the safe state reaches them if they are back; those still lost are returned as
        safe-state failures ("role: reason")."""
        lost = [role for role in self._run_roles if role not in self.station.instruments]
        failures = []
        for role in lost:
            outcome: list[str] = []

            def attempt(role: str = role, outcome: list[str] = outcome) -> None:
                try:
                    self.station.reconnect(role)
                    outcome.append("")
                except Exception as exc:  # noqa: BLE001 - reported as not safe
                    outcome.append(f"{type(exc).__name__}: {exc}")

            thread = threading.Thread(target=attempt, name=f"labctl-reconnect-{role}", daemon=True)
            thread.start()
            thread.join(SAFE_STATE_BUDGET_S)
            if not outcome or outcome[0]:
                why = outcome[0] if outcome else f"no answer within {SAFE_STATE_BUDGET_S:g} s"
                failures.append(f"{role}: not connected (the recovery gave up), not made safe: {why}")
            else:
                self._note(f"safe state: {role}: reconnected for the safe state")
        return failures

    def _run_file(self, procedure: LabProcedure) -> RunFile:
        """Hook: a new run file, ``<out_dir>/<UTC date>/<run id>.h5``; resuming returns the existing one. A pixel's
        run id names its substrate and pixel (``..._jv_<sample>_p<pixel>_<hex>``)."""
        run_id = make_run_id(procedure.NAME, self.sample if self.pixel is None else f"{self.sample}_p{self.pixel}")
        day = datetime.now(timezone.utc).strftime("%Y-%m-%d")
        return RunFile(run_id, self.out_dir / day / f"{run_id}.h5")

    @staticmethod
    def _streams_from_file(writer: RunFileWriter) -> Mapping[str, pd.DataFrame]:
        """The run's streams as stored (everything queued is written first): what ``analyse()`` gets."""
        return writer.streams()

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
                self._note(f"shutdown failed: {type(exc).__name__}: {exc}")
                if status == COMPLETED:
                    status, error = FAILED, f"shutdown failed: {exc}"
            lost = self._reconnect_lost_roles()
            failures = self.station.safe_state() + lost
            for outcome in self.station.safe_report:
                if outcome.ok:
                    self._note(f"safe state: {outcome.role}: {outcome.detail} ({outcome.elapsed_s:.2f} s)")
            for failure in failures:
                self._note(f"SAFE STATE FAILED: {failure}")
            if failures and status == COMPLETED:
                status, error = FAILED, "safe state failed: " + "; ".join(failures)
        return status, error


def _no_suspensions() -> dict[str, Any]:
    """The suspension record of a run that has not been suspended (station times in s)."""
    return {"current": None, "since_s": None, "count": 0, "total_s": 0.0}


class _signals_abort:
    """While the main thread waits for work in other threads: SIGINT/SIGTERM log ``"<SIGNAL> received: <what>"``
    and call ``abort(reason)``; ``interrupt()`` True also raises KeyboardInterrupt in the main thread (the work
    runs there: a blocking read ends at once). Outside the main thread signals cannot be handled: nothing."""

    def __init__(self, abort: Callable[[str], None], what: str = "aborting the run",
                 interrupt: Callable[[], bool] = lambda: False) -> None:
        self.abort, self.what, self.interrupt = abort, what, interrupt
        self._old: dict[int, Any] = {}

    def __enter__(self) -> None:
        self._old = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._abort)

    def _abort(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        log.warning("%s received: %s", name, self.what)
        self.abort(f"{name} received")
        if self.interrupt():
            raise KeyboardInterrupt(name)

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


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
