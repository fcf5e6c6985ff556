"""The SQLite backend: one file, a connection per thread, writes under ``BEGIN IMMEDIATE``.

* **Durable at once.** WAL with ``synchronous=FULL``: a committed turn survives a killed process.
* **Safe from many threads** (Gradio runs handlers in worker threads). Each thread gets its own
  connection (``threading.local``); writes take ``BEGIN IMMEDIATE`` and are short, and every
  connection waits on a busy database (``busy_timeout``) instead of failing.
* **Private.** The file (and its WAL) is created 0600: it holds password hashes and transcripts.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from simulator.store.backend import StoreUnavailable
from simulator.store.migrations import migrate

BUSY_TIMEOUT_MS = 30_000


def private_file(path: Path) -> None:
    """Create ``path`` (if missing) readable by its owner only, and make an existing database and
    its WAL/shared-memory files so: they hold password hashes and transcripts. SQLite creates the
    WAL with the database file's mode, so 0600 here keeps it 0600 too."""
    if str(path) == ":memory:":
        return
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    for f in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if f.exists() and f.stat().st_mode & 0o077:
            # someone else's file: leave it, SQLite will say if it is unusable
            with contextlib.suppress(PermissionError):
                os.chmod(f, 0o600)


def unavailable(exc: sqlite3.Error) -> StoreUnavailable:
    text = str(exc).lower()
    if "full" in text:
        return StoreUnavailable("database or disk is full", str(exc))
    if "locked" in text or "busy" in text:
        return StoreUnavailable("the database is busy (locked)", str(exc))
    return StoreUnavailable("the database could not be read or written", str(exc))


class SqliteBackend:
    kind = "sqlite"
    for_update = ""
    skip_locked = ""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            private_file(self.path)
            self.db.execute("PRAGMA journal_mode=WAL")
        except sqlite3.Error as exc:
            raise unavailable(exc) from exc

    @property
    def db(self) -> Database:
        """This thread's ``sqlite_utils.Database`` (created on first use)."""
        db: Database | None = getattr(self._local, "db", None)
        if db is None:
            conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_MS / 1000,
                                   check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = FULL")
            db = Database(conn, execute_plugins=False)
            self._local.db = db
            with self._all_lock:
                self._all.append(conn)
        return db

    def in_write(self) -> bool:
        return bool(self.db.conn.in_transaction)

    @contextmanager
    def write(self) -> Iterator[Database]:
        """A short write transaction, write lock taken at BEGIN (no lock upgrade, no deadlock)."""
        db = self.db
        if db.conn.in_transaction:  # nested use: join the outer transaction
            yield db
            return
        try:
            db.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise unavailable(exc) from exc
        try:
            yield db
        except BaseException as exc:
            if db.conn.in_transaction:
                db.conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise unavailable(exc) from exc
            raise
        try:
            db.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if db.conn.in_transaction:
                db.conn.execute("ROLLBACK")
            raise unavailable(exc) from exc

    def rows(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        try:
            return list(self.db.query(sql, params))
        except sqlite3.Error as exc:
            raise unavailable(exc) from exc

    def insert(self, db: Any, sql: str, params: Any) -> int:
        return int(db.execute(sql, params).lastrowid or 0)

    def insert_many(self, db: Any, sql: str, rows: list[tuple[Any, ...]]) -> None:
        db.conn.executemany(sql, rows)

    def after_copy(self, db: Any) -> None:
        """Nothing to do: the next id is max(id) + 1 by itself."""

    def migrate(self) -> int:
        for attempt in range(20):
            try:
                return migrate(self.db)
            except (sqlite3.OperationalError, sqlite3.IntegrityError) as exc:
                # Another process is migrating the same file right now: wait and re-check.
                if attempt == 19:
                    raise unavailable(exc) from exc
                time.sleep(0.1)
        raise AssertionError("unreachable")

    def search(self, text: str, extra: str, params: list[Any], limit: int
               ) -> list[dict[str, Any]]:
        """FTS5: every word matched literally (operators quoted away), best matches first."""
        query = self.db.quote_fts(text)
        if not query:
            return []
        return self.rows(
            "SELECT t.*, s.trainee AS trainee, s.persona_id AS persona_id, u.cohort AS cohort, "
            "snippet(turns_fts, 0, '[[', ']]', ' … ', 24) AS snip "
            "FROM turns_fts JOIN turns t ON t.id = turns_fts.rowid "
            "JOIN sessions s ON s.session_id = t.session_id "
            "LEFT JOIN users u ON u.name = s.trainee "
            f"WHERE turns_fts MATCH ? {extra} ORDER BY rank LIMIT {int(limit)}",
            [query, *params])

    def close(self) -> None:
        with self._all_lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()
