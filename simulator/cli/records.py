"""Command-line verbs over the store: report, sessions list, export, progress, users.

Registered on the main ``counselsim`` app by ``register(app)`` (one line in simulator/cli/main.py).
Heavy modules (store, matplotlib, Jinja2) are imported inside each command so ``counselsim
--help`` stays fast. Every verb takes ``--db`` (default: settings, ``COUNSELSIM_DB``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer

from simulator.cli.common import emit_json, fail, settings_for

if TYPE_CHECKING:
    from simulator.store import Store

DbOption = Annotated[str | None, typer.Option(
    "--db", help="A file, sqlite:///path or postgresql://... (default: settings).")]

sessions_app = typer.Typer(no_args_is_help=True, help="Practice sessions in the store.")
users_app = typer.Typer(no_args_is_help=True, help="Users: trainees, supervisors, educators.")


def _store(db: str | None) -> Store:
    from simulator.store import open_store

    return open_store(settings_for(db=db).db)


def _write(text: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(text)
        return
    with private_open(out) as fh:
        fh.write(text)
    typer.echo(f"wrote {out}", err=True)


def private_open(out: Path) -> TextIO:
    """Open ``out`` for writing, readable by its owner only (reports and exports hold
    transcripts)."""
    import os

    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.chmod(out, 0o600)
    return open(fd, "w", encoding="utf-8", newline="")


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
        with private_open(out) as fh:
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


def stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


def _read_password(password_stdin: bool, *, what: str) -> str:
    """The password from stdin's first line, or typed twice at a terminal (never echoed).
    Without a terminal and without --password-stdin there is no one to ask: refused."""
    from simulator.errors import InvalidInput

    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not stdin_is_terminal():
        raise InvalidInput(f"no terminal to ask for {what}: pipe it with --password-stdin, "
                           "or use --one-time for a generated one")
    return str(typer.prompt(what.capitalize(), hide_input=True, confirmation_prompt=True))


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[str, typer.Option(help="trainee, supervisor, educator or admin.")],
    cohort: Annotated[str | None, typer.Option(help="Cohort (trainees).")] = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin",
                                                 help="Read the password from stdin.")] = False,
    one_time: Annotated[bool, typer.Option(
        "--one-time", help="Generate a one-time password, printed once; it must be changed at "
                           "first sign-in.")] = False,
    must_change: Annotated[bool | None, typer.Option(
        "--must-change/--no-must-change",
        help="Force a password change at first sign-in (default: only for --one-time).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object last.")] = False,
    db: DbOption = None,
) -> None:
    """Add a user. The password is asked for on the terminal (typed twice, not shown), read from
    stdin with --password-stdin, or generated with --one-time; without a terminal one of the two
    options is required."""
    from simulator.service.users import add_user

    password = None if one_time else _read_password(password_stdin, what="the new password")
    user, generated = add_user(_store(db), name, role, cohort=cohort, password=password,
                               must_change=must_change, by="cli")
    typer.echo(f"added {user.role} {user.name}" + (f" ({user.cohort})" if user.cohort else ""))
    if generated:
        typer.echo(f"one-time password (shown once, hand it over privately): {generated}")
    if as_json:
        emit_json(user.model_dump(mode="json"))


@users_app.command("reset")
def users_reset(
    name: Annotated[str, typer.Argument(help="Login name.")],
    db: DbOption = None,
) -> None:
    """Give NAME a new one-time password (printed once); their sign-ins end and they choose a
    new password at their next sign-in."""
    from simulator.service.users import reset_password

    password = reset_password(_store(db), name, by="cli")
    typer.echo(f"one-time password for {name} (shown once, hand it over privately): {password}")


@users_app.command("disable")
def users_disable(
    name: Annotated[str, typer.Argument(help="Login name.")],
    db: DbOption = None,
) -> None:
    """Stop NAME signing in (their sign-ins end; their sessions stay). ``enable`` undoes it."""
    from simulator.service.users import set_disabled

    set_disabled(_store(db), name, True, by="cli")
    typer.echo(f"disabled {name}")


@users_app.command("enable")
def users_enable(
    name: Annotated[str, typer.Argument(help="Login name.")],
    db: DbOption = None,
) -> None:
    """Let a disabled account sign in again."""
    from simulator.service.users import set_disabled

    set_disabled(_store(db), name, False, by="cli")
    typer.echo(f"enabled {name}")


@users_app.command("delete")
def users_delete(
    name: Annotated[str, typer.Argument(help="Login name.")],
    sessions: Annotated[str, typer.Option(
        help="keep: the practice sessions stay for the program's records under a pseudonym no "
             "longer linked to the name; delete: they are removed with their codes, grades and "
             "reviews.")],
    db: DbOption = None,
) -> None:
    """Delete NAME's account (the name can then be given to someone else, who sees none of it)."""
    from simulator.errors import InvalidInput
    from simulator.service.users import delete_user

    if sessions not in ("keep", "delete"):
        raise InvalidInput("--sessions must be keep or delete")
    pseudonym, n = delete_user(_store(db), name, keep_sessions=sessions == "keep", by="cli")
    kept = f"{n} session(s) kept as {pseudonym}" if pseudonym else f"{n} session(s) deleted"
    typer.echo(f"deleted {name}; {kept}")


@users_app.command("passwd")
def users_passwd(
    name: Annotated[str, typer.Argument(help="Login name.")],
    password_stdin: Annotated[bool, typer.Option("--password-stdin",
                                                 help="Read the password from stdin.")] = False,
    db: DbOption = None,
) -> None:
    """Set NAME's password (asked on the terminal, or --password-stdin); their sign-ins end."""
    from simulator.service.users import set_password

    set_password(_store(db), name, _read_password(password_stdin, what="the new password"),
                 by="cli")
    typer.echo(f"password of {name} changed")


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
