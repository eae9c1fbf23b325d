"""A real PostgreSQL server for the catalog tests: ``$LABCTL_TEST_POSTGRES_URL`` (what .ci/run exports), else a
throw-away cluster started here on a temporary folder, listening on 127.0.0.1 only, on a free port.

Never a skip: without a URL and without PostgreSQL's server binaries (``initdb``, ``pg_ctl``) the tests that need
it fail, saying what to install. PostgreSQL refuses to run as root, so as root the cluster runs as the
``postgres`` user (``runuser -u postgres --``), which Debian's postgresql package creates.

Each test gets its own schema (dropped afterwards) through the URL's ``options=-csearch_path=<schema>``, so the
tests need no database-creation rights on a given server.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ENV_URL = "LABCTL_TEST_POSTGRES_URL"
CLUSTER_USER = "postgres"  # the server's OS user when the tests run as root


def _binaries() -> Path:
    """The folder of initdb/pg_ctl: on PATH, else Debian's /usr/lib/postgresql/<version>/bin (newest)."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not candidates:
        pytest.fail(f"no PostgreSQL server: set ${ENV_URL} to a server's SQLAlchemy URL, or install PostgreSQL's "
                    "server binaries (Debian: apt-get install postgresql), which the catalog tests start themselves",
                    pytrace=False)
    return Path(candidates[-1]).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_cluster_user(args: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return args
    return ["runuser", "-u", CLUSTER_USER, "--", *args]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The SQLAlchemy URL of a PostgreSQL server (a database in it) the tests may create schemas in."""
    given = os.environ.get(ENV_URL)
    if given:
        yield given
        return
    bin_dir = _binaries()
    folder = Path(tempfile.mkdtemp(prefix="labctl-pg-"))
    data = folder / "data"
    if os.geteuid() == 0:
        user = pwd.getpwnam(CLUSTER_USER)
        os.chown(folder, user.pw_uid, user.pw_gid)
    port = _free_port()
    try:
        subprocess.run(_as_cluster_user([str(bin_dir / "initdb"), "-D", str(data), "-U", "labctl", "-A", "trust",
                                         "--no-sync", "-E", "UTF8"]), check=True, capture_output=True, timeout=120)
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off -c full_page_writes=off"
        subprocess.run(_as_cluster_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l",
                                         str(folder / "server.log"), "-w", "-t", "60", "start"]),
                       check=True, capture_output=True, timeout=90)
        yield f"postgresql+psycopg://labctl@127.0.0.1:{port}/postgres"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(_as_cluster_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w",
                                             "stop"]), capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A URL whose tables go into a fresh schema of :func:`postgres_server`, dropped after the test."""
    schema = f"labctl_test_{secrets.token_hex(4)}"
    admin = create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(postgres_server)
    url = url.update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

