"""``counselsim validate``: one line per content file, every error placed at file:line:column."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from simulator.content.library import Library, content_files, load_paths
from simulator.settings import Settings


def shown_path(path: Path) -> Path:
    """Paths under the current folder are shown relative to it (shorter, clickable in editors)."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()) if path.is_absolute() else path
    except ValueError:
        return path


def validate_paths(paths: list[Path], settings: Settings) -> tuple[int, dict[str, Any]]:
    """Validate files/folders; returns (exit code, summary). Prints a line per file as it goes.

    Files given alone are checked against the configured rubrics too, so a persona's skill codes
    are cross-checked even when only that persona is named.
    """
    paths = [shown_path(p) for p in paths]
    missing = [p for p in paths if not p.exists()]
    for p in missing:
        typer.echo(f"FAIL {p}")
        typer.echo(f"  {p}: no such file or folder", err=True)
    paths = [p for p in paths if p.exists()]
    wanted = [str(p) for p in content_files(paths)]
    extra_rubrics = [d for d in settings.rubric_dirs() if d.is_dir()]
    lib = _with_rubrics(paths, extra_rubrics)
    ok_files = {str(loaded.path): key for key, loaded in lib.files.items()}
    n_errors = n_warnings = 0
    for shown in wanted:
        if shown in lib.errors:
            typer.echo(f"FAIL {shown}")
            for err in lib.errors[shown]:
                typer.echo(f"  {err}", err=True)
                n_errors += 1
        elif shown in ok_files:
            typer.echo(f"ok   {shown} ({ok_files[shown].replace(':', ' ', 1)})")
            for warning in _warnings(lib, ok_files[shown]):
                typer.echo(f"  warning: {shown}: {warning}", err=True)
                n_warnings += 1
    personas = sum(1 for f in wanted if ok_files.get(f, "").startswith("persona:"))
    rubrics = sum(1 for f in wanted if ok_files.get(f, "").startswith("rubric:"))
    failed = sum(1 for f in wanted if f in lib.errors) + len(missing)
    n_errors += len(missing)
    typer.echo(f"{personas} personas, {rubrics} rubrics valid; {failed} files with errors "
               f"({n_errors} errors)")
    summary = {"personas": personas, "rubrics": rubrics, "failed_files": failed, "errors": n_errors,
               "warnings": n_warnings}
    return (1 if failed else 0), summary


def _warnings(lib: Library, key: str) -> list[str]:
    """Warnings of a valid file (personas only: common topics it cannot answer)."""
    kind, _, content_id = key.partition(":")
    if kind != "persona":
        return []
    return lib.persona(content_id).content_warnings()


def _with_rubrics(paths: list[Path], rubric_dirs: list[Path]) -> Library:
    """Load ``paths`` first (they win an id clash), then configured rubrics they may refer to.

    A configured rubric is skipped when a given file is the same file or defines the same id, so
    validating an edited copy of a shipped rubric checks personas against the copy.
    """
    given = {p.resolve() for p in content_files(paths)}
    extra = [p for p in content_files(rubric_dirs) if p.resolve() not in given]
    if not extra:
        return load_paths(paths)
    full = load_paths([*paths, *extra])
    extra_errors = {str(p) for p in extra}
    full.errors = {k: v for k, v in full.errors.items() if k not in extra_errors}
    return full
