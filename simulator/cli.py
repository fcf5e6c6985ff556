"""The ``counselsim`` command line. Each verb is a thin shell over a module that does the work.

Conventions (DESIGN.md): every verb that takes ``--json`` prints one JSON object as the last line
of its output; exit 0 success, 1 a user error explained on stderr, 2 usage.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from simulator.settings import load_settings

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="CounselSim: counseling-skills practice with simulated clients.")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks; each prints one JSON object last.")
app.add_typer(bench_app, name="bench")


def fail(message: str) -> typer.Exit:
    """Print a user error to stderr and return the exit to raise (code 1)."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


def emit_json(obj: Any) -> None:
    """The one JSON object a ``--json`` verb prints, always as the last line."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")


@app.command()
def validate(
    paths: Annotated[list[Path] | None, typer.Argument(help="Files or folders (default: the "
                                                             "configured personas/ and rubrics/).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary last.")] = False,
) -> None:
    """Check persona and rubric YAML: one line per file, every error with file:line:column."""
    from simulator.validate import validate_paths

    settings = load_settings()
    code, summary = validate_paths(paths or [settings.rubrics, settings.personas], settings)
    if as_json:
        emit_json(summary)
    raise typer.Exit(code)


@app.command()
def schema(kind: Annotated[str, typer.Argument(help="persona or rubric")]) -> None:
    """Print the JSON Schema of persona or rubric files (for editor completion)."""
    from simulator.schemas import schema_for

    try:
        typer.echo(json.dumps(schema_for(kind), indent=2))
    except KeyError:
        raise fail(f"unknown kind {kind!r}: use persona or rubric") from None


def main() -> None:  # pragma: no cover - console entry
    app()
