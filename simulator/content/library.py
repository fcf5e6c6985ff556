"""Load the persona and rubric folders: good files load, bad files are reported.

Cross checks run across files: ids are unique, and an unlock condition that names a skill code
must name a code that one of the loaded rubrics defines (so a persona cannot wait for a skill the
grader can never report).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from simulator.content.loader import ContentError, ContentErrors, position_of
from simulator.content.persona import Persona
from simulator.content.rubric import Rubric

YAML_SUFFIXES = (".yaml", ".yml")


@dataclass
class Loaded:
    """A content file that loaded, with the hash that pins the exact version a session used."""

    path: Path
    sha256: str


@dataclass
class Library:
    personas: dict[str, Persona] = field(default_factory=dict)
    rubrics: dict[str, Rubric] = field(default_factory=dict)
    files: dict[str, Loaded] = field(default_factory=dict)
    """Keyed ``persona:<id>`` / ``rubric:<id>``."""
    errors: dict[str, list[ContentError]] = field(default_factory=dict)
    """Keyed by file path; every file that failed, with all its errors."""

    def persona(self, persona_id: str) -> Persona:
        try:
            return self.personas[persona_id]
        except KeyError:
            known = ", ".join(sorted(self.personas)) or "none"
            raise KeyError(f"unknown persona {persona_id!r} (known: {known})") from None

    def rubric(self, rubric_id: str) -> Rubric:
        try:
            return self.rubrics[rubric_id]
        except KeyError:
            known = ", ".join(sorted(self.rubrics)) or "none"
            raise KeyError(f"unknown rubric {rubric_id!r} (known: {known})") from None

    def sha(self, kind: str, content_id: str) -> str:
        return self.files[f"{kind}:{content_id}"].sha256


def content_files(paths: list[Path]) -> list[Path]:
    """Expand folders into their YAML files (sorted, so output is stable); each file once."""
    out: list[Path] = []
    seen: set[Path] = set()
    for p in paths:
        found = (sorted(q for q in p.iterdir() if q.suffix in YAML_SUFFIXES and q.is_file())
                 if p.is_dir() else [p])
        for q in found:
            key = q.resolve()
            if key not in seen:
                seen.add(key)
                out.append(q)
    return out


_SCHEMA_COMMENT = re.compile(r"\$schema=\S*?\b(persona|rubric)\.schema\.json")
_RUBRIC_KEYS = {"turn_items", "session_items", "metrics", "citation", "groups"}
_PERSONA_KEYS = {"lines", "identity", "hidden_facts", "trainee_brief", "persona"}


def kind_of(path: Path, tree_keys: set[str]) -> str:
    """Persona or rubric? The ``$schema`` comment first, then the folder name, then the keys."""
    try:
        with path.open(encoding="utf-8", errors="replace") as f:
            first = f.readline(500)
    except OSError:
        first = ""
    m = _SCHEMA_COMMENT.search(first)
    if m:
        return m.group(1)
    parts = {p.lower() for p in path.parts}
    if "personas" in parts:
        return "persona"
    if "rubrics" in parts:
        return "rubric"
    return "rubric" if len(tree_keys & _RUBRIC_KEYS) > len(tree_keys & _PERSONA_KEYS) else "persona"


def load_library(persona_dirs: list[Path] | None = None,
                 rubric_dirs: list[Path] | None = None) -> Library:
    """Load persona and rubric folders (or single files) and run the cross checks.

    Without arguments, the shipped library (``Settings.persona_dirs()`` and ``rubric_dirs()``
    name the configured folders; callers with settings pass those).
    """
    if persona_dirs is None or rubric_dirs is None:
        from simulator.settings import shipped_content

        persona_dirs = [shipped_content() / "personas"] if persona_dirs is None else persona_dirs
        rubric_dirs = [shipped_content() / "rubrics"] if rubric_dirs is None else rubric_dirs
    return load_paths([*rubric_dirs, *persona_dirs])


def load_paths(paths: list[Path]) -> Library:
    from simulator.content.loader import load_yaml_file, parse_model

    lib = Library()
    trees: dict[str, object] = {}
    for path in content_files(paths):
        shown = str(path)
        model: Persona | Rubric
        try:
            tree = load_yaml_file(path)
            kind = kind_of(path, {str(k) for k in tree})
            if kind == "persona":
                model = parse_model(Persona, tree, shown)
            else:
                model = parse_model(Rubric, tree, shown)
        except ContentErrors as exc:
            lib.errors[shown] = exc.errors
            continue
        key = f"{kind}:{model.id}"
        if key in lib.files:
            line, col = position_of(tree, ["id"])
            other = lib.files[key].path
            lib.errors[shown] = [ContentError(shown, line, col, "id",
                                              f"{kind} id {model.id!r} is already used by {other}")]
            continue
        lib.files[key] = Loaded(path, hashlib.sha256(path.read_bytes()).hexdigest())
        trees[key] = tree
        if isinstance(model, Persona):
            lib.personas[model.id] = model
        else:
            lib.rubrics[model.id] = model
    _cross_check(lib, trees)
    return lib


def _cross_check(lib: Library, trees: dict[str, object]) -> None:
    if not lib.rubrics:
        return
    codes = set().union(*(r.code_ids() for r in lib.rubrics.values()))
    for pid, persona in list(lib.personas.items()):
        problems: list[ContentError] = []
        path = str(lib.files[f"persona:{pid}"].path)
        for i, fact in enumerate(persona.hidden_facts):
            if fact.unlock.skills is None:
                continue
            for j, code in enumerate(fact.unlock.skills.codes):
                if code not in codes:
                    loc: list[str | int] = ["hidden_facts", i, "unlock", "skills", "codes", j]
                    line, col = position_of(trees[f"persona:{pid}"], loc)
                    problems.append(ContentError(
                        path, line, col, f"hidden_facts[{i}].unlock.skills.codes[{j}]",
                        f"code {code!r} is not defined by any loaded rubric"))
        for i, rubric_id in enumerate(persona.rubrics):  # the rubrics a trainee may pick
            if rubric_id not in lib.rubrics:
                line, col = position_of(trees[f"persona:{pid}"], ["rubrics", i])
                problems.append(ContentError(
                    path, line, col, f"rubrics[{i}]", f"rubric {rubric_id!r} is not loaded "
                    f"(known: {', '.join(sorted(lib.rubrics))})"))
        if problems:
            lib.errors[path] = problems
            del lib.personas[pid]
            del lib.files[f"persona:{pid}"]

