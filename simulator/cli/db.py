"""``counselsim db``: the database itself: bring its schema up to date, move an installation.

``counselsim db migrate [--db URL]`` applies pending schema steps (the app does the same when it
starts; run it first when several replicas share one PostgreSQL, or to check an upgrade).
``counselsim db copy --from sqlite:///old.db --to postgresql://...`` moves every table with its
ids into an empty database (see ``simulator.store.copy``).
"""

from __future__ import annotations

from typing import Annotated

import typer

from simulator.cli.common import emit_json, settings_for

db_app = typer.Typer(no_args_is_help=True, help="The database: migrate it, copy it elsewhere.")

Json = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
Target = Annotated[str | None, typer.Option(
    "--db", help="A file, sqlite:///path or postgresql://... (default: settings, COUNSELSIM_DB).")]


@db_app.command("migrate")
def migrate(db: Target = None, json_out: Json = False) -> None:
    """Create the database if needed and apply every pending schema step."""
    from simulator.store import open_store
    from simulator.store.backend import redact

    target = settings_for(db=db).db
    store = open_store(target)
    try:
        result = {"db": redact(target), "backend": store.kind,
                  "schema_version": store.schema_version}
    finally:
        store.close()
    if json_out:
        emit_json(result)
    else:
        typer.echo(f"{result['db']}: {store.kind}, schema version {store.schema_version}")


@db_app.command("copy")
def copy(source: Annotated[str, typer.Option("--from", help="The database to copy from.")],
         target: Annotated[str, typer.Option("--to", help="The (empty) database to copy into.")],
         allow_nonempty: Annotated[bool, typer.Option(
             "--allow-nonempty",
             help="Copy into a non-empty database: rows already there are kept, not replaced.")
         ] = False,
         json_out: Json = False) -> None:
    """Copy every table, ids kept, from one database into another (e.g. SQLite to PostgreSQL).
    Stop the app first: rows written during the copy may be missed."""
    from simulator.store import open_store
    from simulator.store.backend import redact
    from simulator.store.copy import copy_database

    if source == target:
        raise typer.BadParameter("--from and --to are the same database")
    src = open_store(source)
    try:
        dst = open_store(target)
        try:
            report = copy_database(src, dst, allow_nonempty=allow_nonempty)
        finally:
            dst.close()
    finally:
        src.close()
    if json_out:
        emit_json(report.model_dump())
        return
    for t in report.tables:
        skipped = f" ({t.skipped} already there, kept)" if t.skipped else ""
        typer.echo(f"{t.table:16} {t.copied:8}{skipped}")
    typer.echo(f"copied {redact(source)} ({report.source_kind}) to {redact(target)} "
               f"({report.target_kind}), schema version {report.schema_version}")


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")


__all__ = ["db_app", "register"]
