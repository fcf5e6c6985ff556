"""The PostgreSQL backend: psycopg 3 with a connection pool, shared by several app replicas.

* **Durable at once.** A write commits before the store method returns (PostgreSQL's default
  ``synchronous_commit=on``), so a trainee's turn is on disk before any model is called, whichever
  replica took it.
* **Same SQL as SQLite.** The store writes ``?`` placeholders; they become ``%s`` here (and a
  literal ``%`` becomes ``%%``), ``INSERT OR IGNORE`` becomes ``ON CONFLICT DO NOTHING``, and a new
  row's id comes back through ``RETURNING id``.
* **Writers of one session queue, others do not.** A write transaction is ``READ COMMITTED``;
  the store locks the session row (``FOR UPDATE``) before it reads the next turn position or
  rewinds, which is what SQLite's single writer gave for free. Writes to different sessions run
  side by side, across replicas.
* **Reads** borrow a pooled connection (autocommit) for one statement; inside a write they use
  the transaction's connection, so a method sees its own writes.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from simulator.store.backend import StoreUnavailable, redact
from simulator.store.pg_schema import ID_TABLES, STEPS

POOL_TIMEOUT_S = 30.0
"""How long a request waits for a free connection (as SQLite waits on a busy file)."""
MIGRATION_LOCK = 0x436F756E  # any constant: every replica takes the same advisory lock


def unavailable(exc: BaseException, target: str = "") -> StoreUnavailable:
    state = getattr(exc, "sqlstate", None) or ""
    if state == "53100":
        return StoreUnavailable("database or disk is full", str(exc))
    if state in ("40001", "40P01", "55P03", "57014") or "timeout" in type(exc).__name__.lower():
        return StoreUnavailable("the database is busy", str(exc))
    if isinstance(exc, psycopg.OperationalError):
        where = f" ({redact(target)})" if target else ""
        return StoreUnavailable(f"the database server could not be reached{where}", str(exc))
    return StoreUnavailable("the database could not be read or written", str(exc))


@functools.lru_cache(maxsize=512)
def pg_sql(sql: str) -> str:
    """The store's SQLite-flavoured SQL in PostgreSQL's (see the module docstring)."""
    out = sql.replace("%", "%%").replace("?", "%s")
    if "INSERT OR IGNORE INTO" in out:
        out = out.replace("INSERT OR IGNORE INTO", "INSERT INTO") + " ON CONFLICT DO NOTHING"
    return out


class _Tx:
    """The open write transaction, with ``execute`` taking the store's SQL."""

    def __init__(self, conn: psycopg.Connection[dict[str, Any]]) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Any = ()) -> psycopg.Cursor[dict[str, Any]]:
        return self.conn.execute(pg_sql(sql), list(params))


class PostgresBackend:
    kind = "postgresql"
    for_update = " FOR UPDATE"
    skip_locked = " FOR UPDATE SKIP LOCKED"

    def __init__(self, url: str, *, pool_size: int = 16) -> None:
        self.url = url
        self.path = None
        self._local = threading.local()
        try:
            self.pool: ConnectionPool[psycopg.Connection[dict[str, Any]]] = ConnectionPool(
                url, min_size=1, max_size=max(2, pool_size), timeout=POOL_TIMEOUT_S,
                kwargs={"autocommit": True, "row_factory": dict_row},
                connection_class=psycopg.Connection[dict[str, Any]],
                open=False, name="counselsim")
            self.pool.open(wait=True, timeout=POOL_TIMEOUT_S)
        except (psycopg.Error, OSError) as exc:
            raise unavailable(exc, url) from exc

    def _tx(self) -> _Tx | None:
        tx: _Tx | None = getattr(self._local, "tx", None)
        return tx

    def in_write(self) -> bool:
        return self._tx() is not None

    @contextmanager
    def write(self) -> Iterator[_Tx]:
        outer = self._tx()
        if outer is not None:  # nested use: join the outer transaction
            yield outer
            return
        try:
            with self.pool.connection() as conn, conn.transaction():
                tx = _Tx(conn)
                self._local.tx = tx
                try:
                    yield tx
                finally:
                    self._local.tx = None
        except psycopg.Error as exc:
            raise unavailable(exc, self.url) from exc

    def rows(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        tx = self._tx()
        try:
            if tx is not None:
                return tx.execute(sql, params).fetchall()
            with self.pool.connection() as conn:
                return conn.execute(pg_sql(sql), list(params)).fetchall()
        except psycopg.Error as exc:
            raise unavailable(exc, self.url) from exc

    def insert(self, db: Any, sql: str, params: Any) -> int:
        row = db.execute(sql + " RETURNING id", params).fetchone()
        return int(row["id"])

    def insert_many(self, db: Any, sql: str, rows: list[tuple[Any, ...]]) -> None:
        with db.conn.cursor() as cur:
            cur.executemany(pg_sql(sql), rows)

    def after_copy(self, db: Any) -> None:
        """Move each id sequence past the copied ids (rows were inserted with their own ids)."""
        for table in ID_TABLES:
            db.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                       f"coalesce(max(id), 0) + 1, false) FROM {table}")

    def migrate(self) -> int:
        try:
            with self.pool.connection() as conn, conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", [MIGRATION_LOCK])
                conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations "
                             "(name text PRIMARY KEY, applied text NOT NULL)")
                done = {r["name"] for r in conn.execute("SELECT name FROM schema_migrations")}
                for name, ddl in STEPS:
                    if name in done:
                        continue
                    conn.execute(ddl.encode())  # several statements: no parameters
                    conn.execute("INSERT INTO schema_migrations (name, applied) "
                                 "VALUES (%s, now()::text)", [name])
                    done.add(name)
                return len(done)
        except psycopg.Error as exc:
            raise unavailable(exc, self.url) from exc

    def search(self, text: str, extra: str, params: list[Any], limit: int
               ) -> list[dict[str, Any]]:
        """PostgreSQL text search: every word must match (``plainto_tsquery``: words as typed,
        operators are plain words, as SQLite's quoted FTS query), best ranked first."""
        extra = extra.replace("%", "%%").replace("?", "%s")
        sql = ("SELECT t.id, t.session_id, t.idx, t.speaker, t.text, t.created, t.act, "
               "t.fact_id, t.state_json, t.abandoned_branch, s.trainee AS trainee, "
               "s.persona_id AS persona_id, u.cohort AS cohort, "
               "ts_headline('simple', t.text, q, "
               "'StartSel=[[, StopSel=]], MaxWords=24, MinWords=12') AS snip "
               "FROM turns t CROSS JOIN plainto_tsquery('simple', %s) q "
               "JOIN sessions s ON s.session_id = t.session_id "
               "LEFT JOIN users u ON u.name = s.trainee "
               f"WHERE t.text_tsv @@ q {extra} "
               f"ORDER BY ts_rank(t.text_tsv, q) DESC, t.id LIMIT {int(limit)}")
        try:
            with self.pool.connection() as conn:
                return conn.execute(sql.encode(), [text, *params]).fetchall()
        except psycopg.Error as exc:
            raise unavailable(exc, self.url) from exc

    def close(self) -> None:
        self.pool.close()
