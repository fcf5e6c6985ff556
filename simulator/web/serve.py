"""``counselsim serve``: open the store, make sure an admin exists, start the web app.

On the first start with no users an ``admin`` account is created with a random one-time password
printed once in this terminal; there is no default password anywhere.
"""

from __future__ import annotations

import typer

from simulator.settings import Settings


def serve_command(settings: Settings) -> None:
    from simulator.service.accounts import ensure_admin
    from simulator.service.practice import Practice
    from simulator.web.app import build_app

    if settings.content is not None and not settings.content.is_dir():
        typer.echo(f"error: content folder {settings.content} does not exist", err=True)
        raise typer.Exit(1)
    for folder, what in ((settings.personas, "persona"), (settings.rubrics, "rubric")):
        if not folder.is_dir():
            typer.echo(f"error: {what} folder {folder} does not exist", err=True)
            raise typer.Exit(1)
    practice = Practice.from_settings(settings)
    password = ensure_admin(practice.store)
    if password is not None:
        typer.echo("\n  First start: created the account 'admin' with the one-time password\n"
                   f"      {password}\n"
                   "  Sign in, then add accounts in the Users tab (or `counselsim users add`).\n")
    for path, errors in practice.library.errors.items():
        typer.echo(f"warning: {path}: {len(errors)} error(s); run `counselsim validate`", err=True)
    if practice.grader_model is not None:  # LLM grades become jobs any replica can finish
        from simulator.service.grading_jobs import WORKER, JobWorker

        practice.grading_worker = WORKER
        JobWorker(practice.store, settings).start()
    app, ctx = build_app(settings, practice)
    offline = [m.role for m in ctx.models if not m.active]
    if offline:
        typer.echo(f"  Running offline for: {', '.join(offline)} (no key or server configured).")
    typer.echo(f"  CounselSim on http://{settings.host}:{settings.port}/  (Ctrl+C to stop)")
    import uvicorn

    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning",
                server_header=False)
