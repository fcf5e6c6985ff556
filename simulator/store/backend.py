"""Which database a store talks to, from one setting: a path, ``sqlite:///...`` or
``postgresql://...``.

Why a thin layer and not two stores: the ~60 store methods are the same SQL on both databases
(written with ``?`` placeholders); what differs is how a connection is had, how a write
transaction is taken, how a new row's id comes back, full-text search and the schema steps.
Each backend (``sqlite_backend``, ``postgres``) supplies only those. Driver errors (``sqlite3``,
``psycopg``) become ``StoreUnavailable`` here, so nothing above the store names a driver.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from simulator.errors import InvalidInput, StorageError

PG_SCHEMES = ("postgresql://", "postgres://")


class StoreUnavailable(StorageError):
    """The database could not be read or written (busy past the wait, disk full, unreachable).
    The message is safe to show: it says which of those, never the SQL; ``detail`` keeps the
    driver's own words for the log."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...


class Writer(Protocol):
    """The open write transaction: ``execute`` SQL written with ``?`` placeholders."""

    def execute(self, sql: str, params: Any = ()) -> Any: ...


class Backend(Protocol):
    kind: str
    """``sqlite`` or ``postgresql``."""
    for_update: str
    """Appended to a SELECT inside a write to lock the row (``FOR UPDATE``; empty on SQLite,
    whose write transaction already excludes every other writer)."""
    skip_locked: str
    """Appended to the SELECT that picks a job to claim: ``FOR UPDATE SKIP LOCKED`` on
    PostgreSQL, so replicas claiming at once take different jobs without waiting."""

    def in_write(self) -> bool: ...

    def write(self) -> AbstractContextManager[Writer]: ...

    def rows(self, sql: str, params: Any = ()) -> list[dict[str, Any]]: ...

    def insert(self, db: Writer, sql: str, params: Any) -> int: ...

    def insert_many(self, db: Writer, sql: str, rows: list[tuple[Any, ...]]) -> None: ...

    def after_copy(self, db: Writer) -> None: ...

    def migrate(self) -> int: ...

    def search(self, text: str, extra: str, params: list[Any], limit: int
               ) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


def is_postgres(target: str | Path) -> bool:
    return str(target).startswith(PG_SCHEMES)


def sqlite_path(target: str | Path) -> Path:
    """``sqlite:///rel.db`` and ``sqlite:////abs/path.db`` (SQLAlchemy's spelling) or a path."""
    text = str(target)
    if text.startswith("sqlite:///"):
        text = text[len("sqlite:///"):]
    elif "://" in text:
        scheme = text.split("://", 1)[0]
        raise InvalidInput(f"database {scheme}://... is not supported: give a file path, "
                           "sqlite:///path or postgresql://...")
    if not text:
        raise InvalidInput("the database path is empty")
    return Path(text)


def redact(target: str | Path) -> str:
    """The database setting without a password, for messages and logs."""
    text = str(target)
    if is_postgres(text) and "@" in text.split("//", 1)[1].split("/", 1)[0]:
        scheme, rest = text.split("://", 1)
        creds, host = rest.split("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}" if ":" in creds else text
    return text


def open_backend(target: str | Path, *, pool_size: int = 16) -> Backend:
    if is_postgres(target):
        from simulator.store.postgres import PostgresBackend

        return PostgresBackend(str(target), pool_size=pool_size)
    from simulator.store.sqlite_backend import SqliteBackend

    return SqliteBackend(sqlite_path(target))
