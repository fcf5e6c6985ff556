"""Move an installation from one database to another (``counselsim db copy``), typically from
the SQLite file to PostgreSQL when one app process is no longer enough.

Every table is copied with its ids, so links (a grade's turn, a review's session) and anything
that names an id outside the database (an exported report, a log line) stay true. Both stores are
migrated to the same schema first. The target must be empty unless ``allow_nonempty``: then rows
whose key is already there are left as they are (never overwritten) and counted as skipped, which
is what re-running an interrupted copy from the same source needs. The whole copy is one
transaction on the target: it lands entirely or not at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from simulator.store.core import Store, StoreError

TABLES: list[tuple[str, str]] = [
    ("cohorts", "name"), ("users", "name"), ("personas", "id, sha256"),
    ("rubrics", "id, sha256"), ("install_secrets", "name"), ("sessions", "session_id"),
    ("turns", "id"), ("codes", "id"), ("grades", "id"), ("session_grades", "id"),
    ("reviews", "id"), ("events", "id"), ("sign_ins", "token_sha256"),
    ("grading_jobs", "id"),
]
"""Every table, parents before children, with its key (the copy's order)."""
GENERATED = {"text_tsv"}
"""Columns the database computes itself (PostgreSQL's search vector): never copied."""
BATCH = 1000


class TableCopy(BaseModel):
    table: str
    copied: int
    skipped: int = 0


class CopyReport(BaseModel):
    source_kind: str
    target_kind: str
    schema_version: int
    tables: list[TableCopy]


def count_rows(store: Store) -> dict[str, int]:
    """Rows per table (to check a target is empty, and a copy complete)."""
    return {table: count_rows_one(store, table) for table, _ in TABLES}


def copy_database(source: Store, target: Store, *, allow_nonempty: bool = False) -> CopyReport:
    """Copy every row of ``source`` into ``target`` (see the module docstring)."""
    if source.schema_version != target.schema_version:
        raise StoreError(f"the databases have different schema versions ({source.schema_version}"
                         f" and {target.schema_version}): upgrade counselsim on both sides")
    present = {t: n for t, n in count_rows(target).items() if n}
    if present and not allow_nonempty:
        listed = ", ".join(f"{n} in {t}" for t, n in present.items())
        raise StoreError(f"the target database is not empty ({listed}); copy into an empty "
                         "database, or pass --allow-nonempty to add only the rows it lacks")
    report: list[TableCopy] = []
    with target._write() as db:
        for table, key in TABLES:
            before = count_rows_one(target, table)
            read = 0
            for rows in _batches(source, table, key):
                cols = [c for c in rows[0] if c not in GENERATED]
                marks = ",".join("?" * len(cols))
                verb = "INSERT OR IGNORE INTO" if allow_nonempty else "INSERT INTO"
                target.backend.insert_many(
                    db, f"{verb} {table} ({', '.join(cols)}) VALUES ({marks})",
                    [tuple(r[c] for c in cols) for r in rows])
                read += len(rows)
            added = count_rows_one(target, table) - before
            report.append(TableCopy(table=table, copied=added, skipped=read - added))
        target.backend.after_copy(db)
    return CopyReport(source_kind=source.kind, target_kind=target.kind,
                      schema_version=target.schema_version, tables=report)


def count_rows_one(store: Store, table: str) -> int:
    row = store._row(f"SELECT count(*) AS n FROM {table}")
    return int(row["n"]) if row else 0


def _batches(source: Store, table: str, key: str) -> Iterator[list[dict[str, Any]]]:
    """The table's rows in key order, ``BATCH`` at a time (id tables by id, others at once:
    they are small)."""
    if key != "id":
        rows = source._rows(f"SELECT * FROM {table} ORDER BY {key}")
        if rows:
            yield rows
        return
    last = -1
    while True:
        rows = source._rows(f"SELECT * FROM {table} WHERE id > ? ORDER BY id LIMIT {BATCH}",
                            (last,))
        if not rows:
            return
        yield rows
        last = int(rows[-1]["id"])


__all__ = ["TABLES", "CopyReport", "TableCopy", "copy_database", "count_rows"]
