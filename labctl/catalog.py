"""The run catalog: one row per run, indexed as it starts and updated as it ends (docs/data-format.md, "Catalog").

The run files stay the source of truth; the catalog is an index of them that can be rebuilt at any time
(:meth:`Catalog.reindex`, ``labctl runs reindex DIR``). It is written through SQLAlchemy 2.x, so any database
SQLAlchemy speaks works the same:

* by default SQLite in WAL mode at ``<data folder>/catalog.sqlite`` (nothing to install; several processes on
  one machine may write at once: every transaction is ``BEGIN IMMEDIATE``, and a writer waits up to
  ``SQLITE_BUSY_TIMEOUT_S`` for another one's lock);
* any SQLAlchemy URL given as ``station.catalog`` in station.yaml, e.g. ``postgresql+psycopg://labctl@db/labctl``
  for the benches of a lab sharing one catalog.

A run is identified by its station's name and its run id together (``UNIQUE (station, run_id)``), so the run ids
of two benches that share a catalog never collide. Recording a run is an upsert on that pair: a run recorded
twice (its start and its stop, a resumed run's new segment, a reindex) stays one row.

Times are stored as UTC without a zone (SQLite keeps no zone); :class:`CatalogRun` gives them back zone-aware.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    delete,
    event,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool, StaticPool

from labctl.documents import START, STOP, RunStart, RunStop

log = logging.getLogger(__name__)

CATALOG_FILE = "catalog.sqlite"
"""The default catalog's file name, in the data folder."""
SQLITE_BUSY_TIMEOUT_S = 30.0
"""How long a SQLite writer waits for another writer's lock before giving up (s)."""
RUNNING, INTERRUPTED = "running", "interrupted"
#: figures of merit kept from the first direction of a J–V (or the first fit of a dark J–V), by result name
DIRECTION_KEYS = ("voc_V", "jsc_mA_cm2", "ff", "pce_pct", "j0_A_cm2", "ideality")
_PG_CREATE_LOCK = 0x6C616263  # advisory lock id ("labc") serialising CREATE TABLE among PostgreSQL writers

metadata = MetaData()
runs_table = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("station", String(200), nullable=False),
    Column("run_id", String(300), nullable=False),
    Column("procedure", String(100), nullable=False),
    Column("sample", String(300), nullable=False, default=""),
    Column("operator", String(200), nullable=False, default=""),
    Column("start_time", DateTime, nullable=True),  # UTC
    Column("end_time", DateTime, nullable=True),  # UTC
    Column("status", String(20), nullable=False),
    Column("reason", Text, nullable=True),
    Column("path", Text, nullable=False, default=""),
    Column("segment", Integer, nullable=False, default=0),
    Column("results", JSON, nullable=False, default=dict),  # key results: scalars only
    Column("substrate_id", String(300), nullable=True),  # a pixel of a substrate (labctl run --pixels)
    Column("pixel", String(100), nullable=True),  # its pixel name in the layout
    UniqueConstraint("station", "run_id", name="uq_runs_station_run_id"),
    Index("ix_runs_start_time", "start_time"),
    Index("ix_runs_procedure", "procedure"),
    Index("ix_runs_sample", "sample"),
    Index("ix_runs_substrate_id", "substrate_id"),
)
#: columns added after the first catalogs were made: (name, SQL type), added to an older table when it is opened
ADDED_COLUMNS = (("substrate_id", "VARCHAR(300)"), ("pixel", "VARCHAR(100)"))


class CatalogError(RuntimeError):
    """The catalog cannot be opened or read (one line naming the URL, with any password hidden)."""


@dataclass(frozen=True)
class CatalogRun:
    """One run as the catalog knows it. Times are UTC; ``results`` holds the run's key results (scalars)."""

    station: str
    run_id: str
    procedure: str
    sample: str
    operator: str
    start_time: datetime | None
    end_time: datetime | None
    status: str
    reason: str | None
    path: str
    segment: int = 0
    results: dict[str, Any] = field(default_factory=dict)
    substrate_id: str | None = None
    pixel: str | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (times as ISO 8601 UTC)."""
        out = asdict(self)
        for key in ("start_time", "end_time"):
            out[key] = out[key].isoformat() if out[key] is not None else None
        return out


@dataclass
class ReindexReport:
    """What :meth:`Catalog.reindex` did: run files indexed, rows of vanished files removed, files it could not
    read (path → why)."""

    indexed: int = 0
    removed: int = 0
    unreadable: dict[str, str] = field(default_factory=dict)


# -- where the catalog is ---------------------------------------------------------------------------------------
def default_url(data_dir: str | Path) -> str:
    """The default catalog: SQLite at ``<data_dir>/catalog.sqlite`` (an absolute path)."""
    return f"sqlite:///{(Path(data_dir) / CATALOG_FILE).resolve()}"


def catalog_url(station_catalog: str | None, data_dir: str | Path) -> str:
    """``station.catalog`` from station.yaml when given, else :func:`default_url` of the data folder."""
    return station_catalog or default_url(data_dir)


def catalog_exists(url: str) -> bool:
    """Whether the catalog at ``url`` may hold runs: False only for a SQLite file not created yet (other
    databases are not asked: they exist or fail to open)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return True
    return Path(parsed.database).exists()


# -- key results --------------------------------------------------------------------------------------------------
def key_results(results: Mapping[str, Any]) -> dict[str, Any]:
    """The results worth a column in a list of runs: every scalar at the top level (numbers, text, booleans;
    not None), plus :data:`DIRECTION_KEYS` of the first nested group that has any (the first J–V direction,
    e.g. ``reverse``, or the first dark fit), with that group's name as ``direction``.

    Example: a J–V's ``{"reverse": {"voc_V": 1.07, ...}, "forward": {...}, "warnings": []}`` gives
    ``{"direction": "reverse", "voc_V": 1.07, "jsc_mA_cm2": ..., "ff": ..., "pce_pct": ...}``; an EQE run gives
    ``jsc_integrated_mA_cm2``, ``eqe_max``, ``band_edge_reached``, ... as they are.
    """
    out: dict[str, Any] = {}
    for key, value in results.items():
        if _is_scalar(value):
            out[key] = value
    groups = [(k, v) for k, v in results.items() if isinstance(v, Mapping)]
    groups += [(k, v) for _, g in groups for k, v in g.items() if isinstance(v, Mapping)]  # dark: {"dark": {dir: fit}}
    for name, group in groups:
        figures = {k: group[k] for k in DIRECTION_KEYS if k in group and _is_scalar(group[k])}
        if figures:
            out.setdefault("direction", name)
            for k, v in figures.items():
                out.setdefault(k, v)
            break
    return out


def _is_scalar(value: Any) -> bool:
    if value is None or isinstance(value, (Mapping, list, tuple)):
        return False
    if isinstance(value, float) and value != value:  # NaN
        return False
    return isinstance(value, (str, bool, int, float))


def _utc(value: str | datetime | None) -> datetime | None:
    """An ISO 8601 time (or datetime) as naive UTC, for storage; a naive input is taken as UTC."""
    if value is None or value == "":
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment


def parse_since(value: str) -> datetime:
    """``--since``: an ISO 8601 date (``2026-12-01``, midnight UTC) or date and time (``2026-12-01T14:00``, UTC
    unless it gives its zone), as naive UTC. Raises ValueError with the allowed forms."""
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), datetime.min.time())
        moment = _utc(value)
    except ValueError:
        moment = None
    if moment is None:
        raise ValueError(f"--since = {value!r}: not a date; allowed: YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][+HH:MM] "
                         "(UTC unless a zone is given)")
    return moment


# -- the catalog --------------------------------------------------------------------------------------------------
class Catalog:
    """The run catalog at a SQLAlchemy ``url`` (created with its table on first use). Thread-safe.

    Parameters
    ----------
    url : str
        Any SQLAlchemy URL; ``sqlite:///<path>`` files get WAL mode and a busy timeout of
        :data:`SQLITE_BUSY_TIMEOUT_S`, and their folder is created.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = make_url(url)
        self.backend = parsed.get_backend_name()
        self._shown_url = parsed.render_as_string(hide_password=True)
        try:
            self.engine = _make_engine(url)
            self._create_table()
        except Exception as exc:  # noqa: BLE001 - one line for the operator, whatever the driver raised
            raise CatalogError(f"run catalog {self._shown_url}: cannot open it: {_first_line(exc)}") from exc

    @classmethod
    def for_data_dir(cls, station_catalog: str | None, data_dir: str | Path) -> Catalog:
        """The catalog of a station: ``station.catalog`` if set, else SQLite in ``data_dir``."""
        return cls(catalog_url(station_catalog, data_dir))

    def _create_table(self) -> None:
        with self.engine.begin() as conn:
            if self.backend == "postgresql":  # two benches starting at once must not both CREATE TABLE
                conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_CREATE_LOCK})
            metadata.create_all(conn, checkfirst=True)
            _add_missing_columns(conn)

    @contextmanager
    def _begin(self) -> Iterator[Connection]:
        """A transaction; a database error becomes :class:`CatalogError` naming the catalog."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise CatalogError(f"run catalog {self._shown_url}: {_first_line(exc)}") from exc

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ------------------------------------------------------------------------------------------------
    def record(self, *, insert_only: tuple[str, ...] = (), **row: Any) -> None:
        """Insert the run ``(row["station"], row["run_id"])`` or update the columns given (an upsert); the
        columns named in ``insert_only`` are written only when the row is new.

        Keys: the columns of :data:`runs_table` (not ``id``); times may be ISO 8601 text or datetimes."""
        values = dict(row)
        for key in ("start_time", "end_time"):
            if key in values:
                values[key] = _utc(values[key])
        if "results" in values:
            values["results"] = json.loads(json.dumps(values["results"], default=str))
        changed = {k: v for k, v in values.items() if k not in ("station", "run_id", *insert_only)}
        if self.backend == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        elif self.backend == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:  # another database: a plain update-else-insert in one transaction
            self._record_generic(values, changed)
            return
        statement = insert(runs_table).values(**_with_defaults(values))
        key = ["station", "run_id"]
        statement = (statement.on_conflict_do_update(index_elements=key, set_=changed) if changed
                     else statement.on_conflict_do_nothing(index_elements=key))
        with self._begin() as conn:
            conn.execute(statement)

    def _record_generic(self, values: dict[str, Any], changed: dict[str, Any]) -> None:
        key = (runs_table.c.station == values["station"]) & (runs_table.c.run_id == values["run_id"])
        with self._begin() as conn:
            if not changed:
                if conn.execute(select(runs_table.c.id).where(key)).first() is None:
                    conn.execute(runs_table.insert().values(**_with_defaults(values)))
            elif conn.execute(update(runs_table).where(key).values(**changed)).rowcount == 0:
                conn.execute(runs_table.insert().values(**_with_defaults(values)))

    def record_start(self, start: RunStart, path: str | Path | None = None) -> None:
        """A run has started: its row, status ``running``. A resumed run's new segment (``start.segment`` > 0)
        keeps the run's first start time."""
        self.record(station=start.station_name, run_id=start.run_id, procedure=start.procedure, sample=start.sample,
                    operator=start.operator, start_time=start.time, end_time=None, status=RUNNING, reason=None,
                    path=_absolute(path or start.path), segment=start.segment,
                    substrate_id=getattr(start, "substrate_id", None), pixel=getattr(start, "pixel", None),
                    insert_only=("start_time",) if start.segment else ())

    def record_stop(self, station: str, stop: RunStop) -> None:
        """A run has ended: its status, end time, reason and key results."""
        self.record(station=station, run_id=stop.run_id, status=stop.status, end_time=stop.time,
                    reason=stop.reason, results=key_results(stop.results))

    def record_file(self, path: str | Path) -> CatalogRun:
        """Index one run file (its status as :func:`labctl.storage.load_run` reads it); returns the row."""
        from labctl.storage import load_run

        run = load_run(path)
        info = run.info
        station = str((run.station.get("station") or {}).get("name") or "")
        row = dict(station=station, run_id=info.get("run_id") or Path(path).stem,
                   procedure=info.get("procedure", ""), sample=info.get("sample", ""),
                   operator=info.get("operator", ""), start_time=info.get("start_time"),
                   end_time=info.get("end_time"), status=run.status, path=_absolute(path),
                   results=key_results(run.results), substrate_id=info.get("substrate_id"),
                   pixel=info.get("pixel"))
        reason = _reason_from_events(run.events)
        if reason is not None:
            row["reason"] = reason
        self.record(**row)
        return self.get(row["station"], row["run_id"])  # type: ignore[return-value]

    def reindex(self, folder: str | Path) -> ReindexReport:
        """Rebuild the catalog's rows for the run files under ``folder`` (every ``*.h5``, recursively): each file
        is (re)recorded from what it says, and rows whose file under ``folder`` no longer exists are removed.
        Files that are not readable run files are reported, not recorded."""
        root = Path(folder).resolve()
        report = ReindexReport()
        found: set[str] = set()
        for path in sorted(root.rglob("*.h5")):
            try:
                self.record_file(path)
            except (OSError, KeyError, ValueError) as exc:
                report.unreadable[str(path)] = _first_line(exc)
                continue
            found.add(str(path))
            report.indexed += 1
        prefix = str(root).rstrip("/") + "/"
        with self._begin() as conn:
            rows = conn.execute(select(runs_table.c.id, runs_table.c.path)
                                .where(runs_table.c.path.startswith(prefix, autoescape=True))).all()
            gone = [r.id for r in rows if r.path not in found and not Path(r.path).exists()]
            if gone:
                conn.execute(delete(runs_table).where(runs_table.c.id.in_(gone)))
        report.removed = len(gone)
        return report

    # -- reading ------------------------------------------------------------------------------------------------
    def get(self, station: str, run_id: str) -> CatalogRun | None:
        with self._begin() as conn:
            row = conn.execute(select(runs_table).where(runs_table.c.station == station,
                                                        runs_table.c.run_id == run_id)).first()
        return _to_run(row) if row is not None else None

    def runs(
        self,
        *,
        sample: str | None = None,
        procedure: str | None = None,
        since: datetime | str | None = None,
        status: str | None = None,
        station: str | None = None,
        substrate: str | None = None,
        limit: int | None = None,
        newest_first: bool = False,
        check_running: bool = True,
    ) -> list[CatalogRun]:
        """The runs matching every filter given, oldest first (``newest_first``: newest first); runs without a
        start time last.

        ``since``: runs started at or after it (UTC); ``substrate``: the pixel runs of that substrate id. With
        ``check_running`` (default), a run the catalog still
        calls ``running`` is first checked against its file: if the file says its writer has gone (see
        :func:`labctl.storage.writer_gone`), the row becomes ``interrupted`` (the file is the source of truth)."""
        filters = _filters(sample=sample, procedure=procedure, since=since, station=station)
        if substrate is not None:
            filters.append(runs_table.c.substrate_id == substrate)
        if check_running:
            self._refresh_running(filters)
        if status is not None:
            filters.append(runs_table.c.status == status)
        # a run without a start time (a file that lost it) comes last either way, on every backend
        order = (runs_table.c.start_time.desc().nulls_last(), runs_table.c.id.desc()) if newest_first else (
            runs_table.c.start_time.asc().nulls_last(), runs_table.c.id.asc())
        query = select(runs_table).where(*filters).order_by(*order)
        if limit is not None:
            query = query.limit(limit)
        with self._begin() as conn:
            return [_to_run(row) for row in conn.execute(query)]

    def newest(self, procedure: str, *, station: str | None = None, status: str = "completed",
               existing_file: bool = True, sample: str | None = None) -> CatalogRun | None:
        """The most recently started run of ``procedure`` (of ``station`` and ``sample``, if given) with ``status``
        whose file exists (with ``existing_file``), or None."""
        for run in self.runs(procedure=procedure, station=station, sample=sample, status=status, newest_first=True,
                             check_running=False):
            if not existing_file or Path(run.path).is_file():
                return run
        return None

    def _refresh_running(self, filters: list[Any]) -> None:
        from labctl.storage import load_run

        with self._begin() as conn:
            running = conn.execute(select(runs_table.c.id, runs_table.c.path)
                                   .where(*filters, runs_table.c.status == RUNNING)).all()
        for row in running:
            try:
                said = load_run(row.path).status
            except (OSError, KeyError, ValueError):
                continue  # no readable file (yet): keep what the catalog knows
            if said != RUNNING:
                with self._begin() as conn:
                    conn.execute(update(runs_table).where(runs_table.c.id == row.id, runs_table.c.status == RUNNING)
                                 .values(status=said))


class CatalogSubscriber:
    """A document subscriber (``subscriber(name, doc)``) that records each run in a :class:`Catalog`: its row
    at the ``start`` document (status running), then status, end time, reason and key results at ``stop``.

    Subscribe it non-critical: a catalog that cannot be written is reported by the bus and the run goes on (its
    file is the source of truth; ``labctl runs reindex`` catches the catalog up)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._stations: dict[str, str] = {}
        self._lock = threading.Lock()

    def __call__(self, name: str, doc: Any) -> None:
        if name == START:
            assert isinstance(doc, RunStart)
            with self._lock:
                self._stations[doc.run_id] = doc.station_name
            self.catalog.record_start(doc)
        elif name == STOP:
            assert isinstance(doc, RunStop)
            with self._lock:
                station = self._stations.pop(doc.run_id, None)
            if station is None:
                log.warning("catalog: stop of run %s without its start: not recorded", doc.run_id)
                return
            self.catalog.record_stop(station, doc)


# -- helpers ------------------------------------------------------------------------------------------------------
def _make_engine(url: str) -> Engine:
    parsed = make_url(url)
    # no pool: a run writes twice (its start and its stop), so a connection per transaction costs nothing and a
    # catalog left open by a long-lived process (a GUI, a test session) holds no connection or file open
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, poolclass=NullPool)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    else:  # one in-memory database lives only as long as its one connection
        return _memory_engine(url)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S}, poolclass=NullPool)

    @event.listens_for(engine, "connect")
    def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
        # the driver's own transaction handling off, so that "begin" below decides how a transaction starts
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        _switch_to_wal(cursor)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _sqlite_begin(conn: Any) -> None:
        # take the write lock at the start: a deferred transaction that reads and then writes can fail at once
        # with "database is locked" when another writer got in between (no waiting for a lock upgrade)
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _switch_to_wal(cursor: Any) -> None:
    """Put the database file in WAL mode (it stays so), retrying while another process switches it too.

    Switching needs an exclusive lock; two connections that both hold a shared lock and both want it would
    deadlock, so SQLite answers one of them "database is locked" at once, without waiting for the busy timeout
    (seen when two benches create the catalog at the same moment). A database already in WAL mode is left as it is.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    while True:
        try:
            if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _memory_engine(url: str) -> Engine:
    """SQLite in memory (tests, a throw-away catalog): one shared connection, Python's default transactions."""
    return create_engine(url, connect_args={"check_same_thread": False}, poolclass=StaticPool)


def _add_missing_columns(conn: Connection) -> None:
    """Bring a catalog made by an older labctl up to date: the columns of :data:`ADDED_COLUMNS` it lacks are
    added (NULL in its existing rows, which are runs of one cell), and their index. Two processes opening an old
    catalog at once may both try: the second one's "duplicate column" is not an error."""
    from sqlalchemy import inspect as sa_inspect

    have = {c["name"] for c in sa_inspect(conn).get_columns("runs")}
    for name, sql_type in ADDED_COLUMNS:
        if name in have:
            continue
        try:
            with conn.begin_nested():
                conn.exec_driver_sql(f"ALTER TABLE runs ADD COLUMN {name} {sql_type}")
        except SQLAlchemyError as exc:
            if "duplicate" not in str(exc).lower() and "already exists" not in str(exc).lower():
                raise
    conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS ix_runs_substrate_id ON runs (substrate_id)")


def _reason_from_events(events: list[str]) -> str | None:
    """The reason of the engine's last line ``<time> ended: <status>: <reason>``, or None (no such line, or no
    reason given: keep what the catalog knows)."""
    for line in reversed(events):
        _, _, message = line.partition(" ")
        if message.startswith("ended: "):
            _, _, reason = message.removeprefix("ended: ").partition(": ")
            return reason or None
    return None


def _with_defaults(values: dict[str, Any]) -> dict[str, Any]:
    """A new row: the NOT NULL columns the caller did not give get their empty value."""
    full = {"procedure": "", "sample": "", "operator": "", "status": RUNNING, "path": "", "segment": 0,
            "results": {}}
    full.update(values)
    return full


def _filters(*, sample: str | None, procedure: str | None, since: datetime | str | None,
             station: str | None) -> list[Any]:
    filters: list[Any] = []
    if sample is not None:
        filters.append(runs_table.c.sample == sample)
    if procedure is not None:
        filters.append(runs_table.c.procedure == procedure)
    if station is not None:
        filters.append(runs_table.c.station == station)
    if since is not None:
        filters.append(runs_table.c.start_time >= (parse_since(since) if isinstance(since, str) else _utc(since)))
    return filters


def _to_run(row: Any) -> CatalogRun:
    def aware(moment: datetime | None) -> datetime | None:
        return moment.replace(tzinfo=timezone.utc) if moment is not None else None

    return CatalogRun(station=row.station, run_id=row.run_id, procedure=row.procedure, sample=row.sample,
                      operator=row.operator, start_time=aware(row.start_time), end_time=aware(row.end_time),
                      status=row.status, reason=row.reason, path=row.path, segment=row.segment,
                      results=dict(row.results or {}), substrate_id=row.substrate_id, pixel=row.pixel)


def _absolute(path: str | Path | None) -> str:
    return str(Path(path).resolve()) if path else ""


def _first_line(exc: BaseException) -> str:
    text_ = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text_[0]}" if text_ else type(exc).__name__

