"""``counselsim doctor``: the configured models checked as a session uses them, one line each."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from simulator.cli.common import emit_json, settings_for


def doctor(
    client_model: Annotated[str | None, typer.Option(help="Check this client model string "
                                                          "instead of the configured one.")] = None,
    grader_model: Annotated[str | None, typer.Option(help="Check this grader model string "
                                                          "instead of the configured one.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary last.")] = False,
) -> None:
    """Check the client and grader models (reachable, model listed, a short completion,
    streaming, structured output) and print what to fix. Exit 1 when something needs fixing."""
    from simulator.service.models import check_models

    settings = settings_for(client_model=client_model, grader_model=grader_model)
    checks = asyncio.run(check_models(settings))
    for check in checks:
        typer.echo(check.line())
    to_fix = [c for c in checks if c.outcome == "fix"]
    typer.echo(f"{len(to_fix)} thing(s) to fix" if to_fix else "all checks passed")
    if as_json:
        emit_json({"ok": not to_fix, "checks": [c.model_dump() for c in checks]})
    raise typer.Exit(1 if to_fix else 0)
