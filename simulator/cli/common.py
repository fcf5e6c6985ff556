"""What every ``counselsim`` verb shares: the settings built once, errors as one line and an exit
code, and the one JSON object a ``--json`` verb prints last.

Exit codes: 0 success; 1 a user error explained on stderr; 2 usage (click's); and for errors of
the product's hierarchy (``simulator.errors``) their own: 3 invalid input, 4 not found or no
access, 5 model unavailable, 6 storage.
"""

from __future__ import annotations

import json
import sys
from contextvars import ContextVar
from typing import Any

import typer
from typer.core import TyperGroup

from simulator.errors import CounselSimError
from simulator.settings import Settings, load_settings


def fail(message: str) -> typer.Exit:
    """Print a user error to stderr and return the exit to raise (code 1)."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


def emit_json(obj: Any) -> None:
    """The one JSON object a ``--json`` verb prints, always as the last line."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")


_SETTINGS: ContextVar[Settings | None] = ContextVar("counselsim_settings", default=None)


def settings_for(**flags: Any) -> Settings:
    """The command's settings: built once per invocation (file and environment), then this
    verb's flags applied (None means not given)."""
    settings = _SETTINGS.get()
    if settings is None:
        settings = load_settings()
        _SETTINGS.set(settings)
    return settings.with_flags(**flags)


class Commands(TyperGroup):
    """The command group: any product error that escapes a verb becomes ``error: ...`` on stderr
    and its exit code, never a traceback."""

    def invoke(self, ctx: Any) -> Any:
        token = _SETTINGS.set(None)  # each invocation reads the file and environment afresh
        try:
            return super().invoke(ctx)
        except CounselSimError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None
        finally:
            _SETTINGS.reset(token)


__all__ = ["Commands", "emit_json", "fail", "settings_for"]
