"""Command-line verbs over the store: report, sessions list, export, progress, users.

Registered on the main ``counselsim`` app by ``register(app)`` (one line in simulator/cli/main.py).
Heavy modules (store, matplotlib, Jinja2) are imported inside each command so ``counselsim
--help`` stays fast. Every verb takes ``--db`` (default: settings, ``COUNSELSIM_DB``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from simulator.cli.common import emit_json, fail, settings_for

if TYPE_CHECKING:
    from simulator.store import Store

DbOption = Annotated[Path | None, typer.Option("--db", help="Database file (default: settings).")]

sessions_app = typer.Typer(no_args_is_help=True, help="Practice sessions in the store.")
users_app = typer.Typer(no_args_is_help=True, help="Users: trainees, supervisors, educators.")


def _store(db: Path | None) -> Store:
    from simulator.store import open_store

    return open_store(settings_for(db=db).db)


def _write(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {out}", err=True)


def report(
    session_id: Annotated[str, typer.Argument(help="Session id (a unique prefix is enough).")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="html, md or json.")] = "html",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="File to write (default: "
                                                                 "stdout).")] = None,
    db: DbOption = None,
) -> None:
    """Render a session's feedback report (current branch) as HTML, Markdown or JSON."""
    from simulator.reports.render import FORMATS, render_report
    from simulator.store import StoreError

    if fmt not in FORMATS:
        raise fail(f"unknown format {fmt!r}: use html, md or json")
    store = _store(db)
    try:
        sid = store.resolve_session_id(session_id)
        text = render_report(store, sid, fmt, feedback_dir=settings_for().feedback)  # type: ignore[arg-type]
    except StoreError as exc:
        raise fail(str(exc)) from None
    _write(text, out)


@sessions_app.command("list")
def sessions_list(
    trainee: Annotated[str | None, typer.Option(help="Only this trainee.")] = None,
    persona: Annotated[str | None, typer.Option(help="Only this persona id.")] = None,
    status: Annotated[str | None, typer.Option(help="active or ended.")] = None,
    since: Annotated[str | None, typer.Option(help="Created on/after (YYYY-MM-DD).")] = None,
    until: Annotated[str | None, typer.Option(help="Created before (YYYY-MM-DD).")] = None,
    cohort: Annotated[str | None, typer.Option(help="Only trainees of this cohort.")] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many (newest first).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object last.")] = False,
    db: DbOption = None,
) -> None:
    """List sessions, newest first."""
    from pydantic import ValidationError

    from simulator.store import SessionFilter

    try:
        f = SessionFilter(trainee=trainee, persona_id=persona, status=status,
                          since=since, until=until, cohort=cohort, limit=limit)
    except ValidationError:
        raise fail(f"unknown status {status!r}: use active or ended") from None
    sessions = _store(db).list_sessions(f)
    for s in sessions:
        typer.echo(f"{s.session_id}  {s.created[:16].replace('T', ' ')}  {s.status:<6}  "
                   f"{s.mode:<10}  {s.trainee:<16}  {s.persona_id:<24}  {s.n_turns:>3} turns")
    if not sessions:
        typer.echo("no sessions", err=True)
    if as_json:
        emit_json({"count": len(sessions),
                   "sessions": [s.model_dump(mode="json") for s in sessions]})


def export(
    fmt: Annotated[str, typer.Option("--format", "-f", help="csv or jsonl.")] = "jsonl",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="File (default: stdout).")] = None,
    trainee: Annotated[str | None, typer.Option(help="Only this trainee.")] = None,
    persona: Annotated[str | None, typer.Option(help="Only this persona id.")] = None,
    cohort: Annotated[str | None, typer.Option(help="Only this cohort.")] = None,
    since: Annotated[str | None, typer.Option(help="Created on/after (YYYY-MM-DD).")] = None,
    pseudonymize: Annotated[bool, typer.Option(help="Replace trainee names by hashes.")] = False,
    db: DbOption = None,
) -> None:
    """Export every turn (with codes, corrections and client state) for research."""
    from simulator.reports.export import write_export
    from simulator.store import SessionFilter

    if fmt not in ("csv", "jsonl"):
        raise fail(f"unknown format {fmt!r}: use csv or jsonl")
    store = _store(db)
    f = SessionFilter(trainee=trainee, persona_id=persona, cohort=cohort, since=since)
    if out is None:
        n = write_export(store, fmt, sys.stdout, f, pseudonymize=pseudonymize)  # type: ignore[arg-type]
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", encoding="utf-8", newline="") as fh:
            n = write_export(store, fmt, fh, f, pseudonymize=pseudonymize)  # type: ignore[arg-type]
    typer.echo(f"exported {n} turns", err=True)


def progress(
    trainee: Annotated[str | None, typer.Option(help="One trainee's sessions.")] = None,
    cohort: Annotated[str | None, typer.Option(help="A cohort, aggregated.")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="md, html or json.")] = "md",
    rubric: Annotated[str | None, typer.Option(help="Rubric id (default: the most used).")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="File (default: stdout).")] = None,
    db: DbOption = None,
) -> None:
    """Summary scores over sessions for a trainee, or aggregated for a cohort."""
    from simulator.reports.progress import build_progress, render_progress

    if trainee and cohort:
        raise fail("give --trainee or --cohort, not both")
    if fmt not in ("md", "html", "json"):
        raise fail(f"unknown format {fmt!r}: use md, html or json")
    try:
        p = build_progress(_store(db), trainee=trainee, cohort=cohort, rubric_id=rubric)
    except ValueError as exc:
        raise fail(str(exc)) from None
    _write(render_progress(p, fmt, feedback_dir=settings_for().feedback), out)  # type: ignore[arg-type]


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[str, typer.Option(help="trainee, supervisor, educator or admin.")],
    cohort: Annotated[str | None, typer.Option(help="Cohort (trainees).")] = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin",
                                                 help="Read the password from stdin.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object last.")] = False,
    db: DbOption = None,
) -> None:
    """Add a user; with --password-stdin the first line of stdin is the password, else a one-time
    password is generated and printed once, for you to hand over."""
    from simulator.service.users import add_user

    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
    user, generated = add_user(_store(db), name, role, cohort=cohort, password=password, by="cli")
    typer.echo(f"added {user.role} {user.name}" + (f" ({user.cohort})" if user.cohort else ""))
    if generated:
        typer.echo(f"one-time password (shown once, hand it over privately): {generated}")
    if as_json:
        emit_json(user.model_dump(mode="json"))


@users_app.command("list")
def users_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object last.")] = False,
    db: DbOption = None,
) -> None:
    """List users (never their password hashes)."""

    users = _store(db).list_users()
    for u in users:
        typer.echo(f"{u.name:<20} {u.role:<11} {u.cohort or ''}")
    if as_json:
        emit_json({"users": [u.model_dump(mode="json") for u in users]})


def register(app: typer.Typer) -> None:
    """Add report, sessions, export, progress and users to the ``counselsim`` app."""
    app.command("report")(report)
    app.command("export")(export)
    app.command("progress")(progress)
    app.add_typer(sessions_app, name="sessions")
    app.add_typer(users_app, name="users")
