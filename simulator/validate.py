"""``counselsim validate``: report every content file, one line each, with every error placed exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from simulator.library import Library, content_files, load_paths
from simulator.settings import Settings


def validate_paths(paths: list[Path], settings: Settings) -> tuple[int, dict[str, Any]]:
    """Validate files/folders; returns (exit code, summary). Prints a line per file as it goes.

    Files given alone are checked against the configured rubrics too, so a persona's skill codes
    are cross-checked even when only that persona is named.
    """
    missing = [p for p in paths if not p.exists()]
    for p in missing:
        typer.echo(f"{p}: error: no such file or folder", err=True)
    paths = [p for p in paths if p.exists()]
    wanted = {str(p) for p in content_files(paths)}
    extra_rubrics = [settings.rubrics] if settings.rubrics.exists() else []
    lib = load_paths(paths) if not extra_rubrics else _with_rubrics(paths, extra_rubrics)
    ok_files = {str(loaded.path): key for key, loaded in lib.files.items()}
    n_errors = 0
    for shown in sorted(wanted):
        if shown in lib.errors:
            typer.echo(f"FAIL {shown}")
            for err in lib.errors[shown]:
                typer.echo(f"  {err}", err=True)
                n_errors += 1
        elif shown in ok_files:
            typer.echo(f"ok   {shown} ({ok_files[shown].replace(':', ' ', 1)})")
    personas = sum(1 for f, k in ok_files.items() if f in wanted and k.startswith("persona:"))
    rubrics = sum(1 for f, k in ok_files.items() if f in wanted and k.startswith("rubric:"))
    failed = sum(1 for f in wanted if f in lib.errors) + len(missing)
    typer.echo(f"{personas} personas, {rubrics} rubrics valid; {failed} files with errors "
               f"({n_errors} errors)")
    summary = {"personas": personas, "rubrics": rubrics, "failed_files": failed, "errors": n_errors}
    return (1 if failed else 0), summary


def _with_rubrics(paths: list[Path], rubric_dirs: list[Path]) -> Library:
    """Load ``paths`` first (they win an id clash), then the configured rubrics they may refer to."""
    given = {str(p) for p in content_files(paths)}
    extra = [p for p in content_files(rubric_dirs) if str(p) not in given]
    return load_paths([*paths, *extra])
