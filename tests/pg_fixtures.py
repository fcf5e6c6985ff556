"""A throwaway PostgreSQL cluster for the tests, and a fresh database per test.

One cluster per test process (so per pytest-xdist worker too: each has its own folder and socket,
nothing shared): ``initdb`` into a temporary folder, the server listening only on a Unix socket in
that folder (no TCP port), ``fsync=off`` (a test cluster need not survive a power cut). Stopped and
removed when the session ends. A test that asks for ``pg_url`` gets the cluster's migrated
database with every table emptied and every id sequence restarted (``DELETE`` and ``setval``:
under 0.2 s measured), so it sees what a fresh database shows; ``pg_empty_url`` is a new, unmigrated
database (``CREATE DATABASE``, ~0.5 s: only for tests of the migrations themselves).

The server binaries come from Debian's ``postgresql`` package (``make pg-deps``). If they are
missing the fixture fails loudly instead of skipping: a skipped backend is an untested backend.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

BACKENDS = ["sqlite", "postgresql"]


def pg_bindir() -> Path | None:
    """Where initdb/pg_ctl are: Debian keeps them out of PATH, per major version."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[-2]))
    return Path(dirs[-1]) if dirs and (Path(dirs[-1]) / "initdb").exists() else None


@dataclass
class PgCluster:
    folder: Path
    bindir: Path
    as_user: list[str]
    counter: itertools.count[int] = field(default_factory=itertools.count)

    def url(self, dbname: str) -> str:
        return f"postgresql:///{dbname}?host={self.folder}&user=postgres"

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(sql.encode())

    def reset(self) -> str:
        """The shared migrated database, emptied; its URL."""
        import psycopg

        url = self.url("counselsim")
        with psycopg.connect(url, autocommit=True) as conn:
            tables = [r[0] for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'schema_migrations'")]
            sequences = [r[0] for r in conn.execute(
                "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'")]
            # DELETE (not TRUNCATE, which makes new files: ~10x slower on a dozen tiny tables),
            # foreign keys not checked while emptying
            sql = ["SET session_replication_role = replica"]
            sql += [f"DELETE FROM {t}" for t in tables]
            sql += [f"SELECT setval('{q}', 1, false)" for q in sequences]
            sql += ["SET session_replication_role = DEFAULT"]
            conn.execute(";".join(sql).encode())
        return url

    def new_database(self) -> str:
        name = f"t{os.getpid()}_{next(self.counter)}"
        self.admin(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")


def start_cluster() -> PgCluster:
    bindir = pg_bindir()
    if bindir is None:
        pytest.fail("PostgreSQL server binaries (initdb, pg_ctl) not found: run `make pg-deps` "
                    "(apt-get install postgresql). The store tests need both backends.")
    folder = Path(tempfile.mkdtemp(prefix="counselsim-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root: run it as Debian's postgres user
        import pwd

        try:
            pg = pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail("running as root and there is no postgres user to run the test server")
        os.chown(folder, pg.pw_uid, pg.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data = folder / "data"
    _run([*as_user, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
          "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"])
    options = (f"-c listen_addresses='' -c unix_socket_directories='{folder}' -c fsync=off "
               "-c full_page_writes=off -c max_connections=200 -c shared_buffers=16MB")
    _run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"),
          "-o", options, "-w", "-t", "60", "start"])
    cluster = PgCluster(folder=folder, bindir=bindir, as_user=as_user)
    cluster.admin("CREATE DATABASE counselsim")
    from simulator.store import open_store

    open_store(cluster.url("counselsim")).close()  # migrated once per cluster
    return cluster


def stop_cluster(cluster: PgCluster) -> None:
    try:
        _run([*cluster.as_user, str(cluster.bindir / "pg_ctl"), "-D",
              str(cluster.folder / "data"), "-m", "immediate", "-w", "stop"])
    finally:
        shutil.rmtree(cluster.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        stop_cluster(cluster)


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> str:
    """A URL to the migrated test database, emptied for this test."""
    return pg_cluster.reset()


@pytest.fixture
def pg_empty_url(pg_cluster: PgCluster) -> Iterator[str]:
    """A URL to a new database with no tables at all (for migration tests)."""
    name = pg_cluster.new_database()
    try:
        yield pg_cluster.url(name)
    finally:
        pg_cluster.drop_database(name)


@pytest.fixture(params=BACKENDS)
def db_target(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """The database a store test runs on: an SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return tmp_path / "db" / "counselsim.db"
    return str(request.getfixturevalue("pg_url"))
