"""Read YAML content files with line/column positions and turn every problem into a `ContentError`.

Educators edit personas and rubrics by hand, so an error must point at the exact place:
``personas/sam.yaml:14:5: hidden_facts[1].unlock.rapport: must be between 0 and 1``.
ruamel.yaml's round-trip loader keeps the position of every key and item; we map each pydantic
error ``loc`` back through the loaded tree to find it. ruamel reads YAML 1.2, so ``no`` stays a
string (PyYAML would turn it into False).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from simulator.errors import InvalidInput

MAX_BYTES = 1_000_000
"""Content files are hand-written; anything over 1 MB is a mistake (or an attack), not a persona."""

MAX_NODES = 50_000
"""Bound on the expanded tree size, so alias bombs ("billion laughs") are refused, not expanded."""

M = TypeVar("M", bound=BaseModel)

DEFER_CHECKS = "defer_content_checks"
"""Validation context flag: skip a model's whole-document checks so ``parse_model`` can report
each problem at its own line (see ``content_problems``) instead of once at line 1."""

Loc = tuple[str | int, ...]
Problem = tuple[Loc, str]
"""A whole-document problem found after validation: where (a pydantic-style loc) and what."""


class ContentError(InvalidInput):
    """One problem in one content file, with the place it happened."""

    def __init__(self, path: str, line: int, column: int, key: str, message: str) -> None:
        self.path, self.line, self.column, self.key, self.message = path, line, column, key, message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}:{self.column}"
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ContentErrors(InvalidInput):
    """All problems found in one file (validation reports them together, not one per run)."""

    def __init__(self, errors: Sequence[ContentError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    return yaml


def _count_nodes(node: Any, budget: list[int], depth: int = 0) -> None:
    """Walk the tree counting nodes; aliases are counted every time they are reached."""
    budget[0] -= 1
    if budget[0] < 0:
        raise ValueError("document too large after expanding aliases (possible alias bomb)")
    if depth > 100:
        raise ValueError("document nested too deeply (or an alias refers to itself)")
    if isinstance(node, TaggedScalar):
        raise ValueError(f"YAML tags such as {node.tag.value!r} are not allowed in content files")
    tag = getattr(getattr(node, "tag", None), "value", None)  # tagged lists and maps too
    if tag:
        raise ValueError(f"YAML tags such as {tag!r} are not allowed in content files")
    if isinstance(node, dict):
        for key, value in node.items():
            _count_nodes(key, budget, depth + 1)
            _count_nodes(value, budget, depth + 1)
    elif isinstance(node, list):
        for item in node:
            _count_nodes(item, budget, depth + 1)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _error(path: str, message: str, line: int = 1, column: int = 1) -> ContentErrors:
    return ContentErrors([ContentError(path, line, column, "", message)])


def load_yaml_text(text: str, path: str) -> Any:
    """Parse YAML text into a tree that keeps positions, or raise ContentErrors saying where."""
    if len(text.encode("utf-8", errors="replace")) > MAX_BYTES:
        raise _error(path, f"file is larger than {MAX_BYTES} bytes")
    if not text.strip():
        raise _error(path, "file is empty")
    for number, row in enumerate(text.splitlines(), start=1):
        stripped = row.lstrip(" ")
        if stripped.startswith("\t"):
            raise _error(path, "tab used for indentation; YAML needs spaces", number,
                         len(row) - len(stripped) + 1)
    try:
        data = _yaml().load(io.StringIO(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        column = mark.column + 1 if mark else 1
        problem = _one_line(exc.problem or exc.context or "not valid YAML")
        if "duplicate key" in str(exc):
            problem = "duplicate key " + problem.split("duplicate key", 1)[-1].strip()
        elif "another document" in problem:
            problem = "only one YAML document per file (found a second '---')"
        elif not problem.startswith("duplicate"):
            problem = f"not valid YAML: {problem}"
        raise _error(path, problem, line, column) from None
    except YAMLError as exc:
        first = _one_line(str(exc).split(" in \"", 1)[0])
        raise _error(path, f"not valid YAML: {first}") from None
    except RecursionError:
        raise _error(path, "not valid YAML: nested too deeply") from None
    if data is None:
        raise _error(path, "file has no content (only comments)")
    try:
        _count_nodes(data, [MAX_NODES])
    except (ValueError, RecursionError) as exc:
        raise _error(path, str(exc)) from None
    if not isinstance(data, dict):
        raise _error(path, "top level must be a mapping of keys (key: value lines)")
    return data


def load_yaml_file(path: Path) -> Any:
    """Read a file (refusing huge or non-UTF-8 ones) and parse it with positions."""
    shown = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise _error(shown, f"file is larger than {MAX_BYTES} bytes ({size} bytes)")
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise _error(shown, "file is not UTF-8 text (is it a YAML file?)") from None
    except OSError as exc:
        raise _error(shown, f"cannot read: {exc.strerror or exc}") from None
    return load_yaml_text(text, shown)


def position_of(tree: Any, loc: Sequence[str | int]) -> tuple[int, int]:
    """Line and column (1-based) of the deepest node of ``loc`` that exists in the loaded tree."""
    line, column = 1, 1
    node = tree
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            ln, col = node.lc.key(part)
            line, column = ln + 1, col + 1
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            ln, col = node.lc.item(part)
            line, column = ln + 1, col + 1
            node = node[part]
        else:
            break
    return line, column


def format_loc(loc: Sequence[str | int]) -> str:
    """``("hidden_facts", 1, "unlock")`` -> ``hidden_facts[1].unlock``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _clean_loc(loc: Sequence[str | int]) -> list[str | int]:
    # pydantic adds tags for unions/function validators ("function-after[...]"); they are not keys.
    return [p for p in loc if not (isinstance(p, str) and ("[" in p or p.startswith("function-")))]


def validation_errors(exc: ValidationError, tree: Any, path: str) -> ContentErrors:
    """Map a pydantic ValidationError onto file positions."""
    errors: list[ContentError] = []
    for err in exc.errors():
        loc = _clean_loc(err["loc"])
        line, column = position_of(tree, loc)
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = f"unknown key {loc[-1]!r} (check the spelling; see `counselsim schema`)"
        elif err["type"] == "missing":
            message = "required key is missing"
        errors.append(ContentError(path, line, column, format_loc(loc), message))
    return ContentErrors(errors)


def _plain(node: Any) -> Any:
    """ruamel's commented containers -> plain dicts/lists (positions stay in the ruamel tree)."""
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def located(problems: Sequence[Problem], tree: Any, path: str) -> list[ContentError]:
    """Whole-document problems (``content_problems``) placed at their own line and column."""
    out = []
    for loc, message in problems:
        line, column = position_of(tree, loc)
        out.append(ContentError(path, line, column, format_loc(loc), message))
    return out


def parse_model(model: type[M], tree: Any, path: str) -> M:
    """Validate a loaded tree as ``model``, raising ContentErrors with file positions.

    Models with a ``content_problems()`` method (cross references inside one document: placeholders,
    formula names, duplicate ids) have those checks deferred and reported at their exact place.
    """
    try:
        obj = model.model_validate(_plain(tree), context={DEFER_CHECKS: True})
    except ValidationError as exc:
        raise validation_errors(exc, tree, path) from None
    check = getattr(obj, "content_problems", None)
    if check is not None:
        problems = located(check(), tree, path)
        if problems:
            raise ContentErrors(problems)
    return obj


def load_model_file(model: type[M], path: Path) -> M:
    """Load one content file into a pydantic model, every error carrying file, line and key."""
    return parse_model(model, load_yaml_file(path), str(path))


def load_model_text(model: type[M], text: str, path: str) -> M:
    """Same as load_model_file for text held in memory (the browser editor)."""
    return parse_model(model, load_yaml_text(text, path), path)


def load_recorded(model: type[M], content_id: str, sha256: str, text: str) -> M:
    """A stored content version (a session's persona or rubric as it recorded it), parsed once
    per process: a version never changes, and parsing it again was a large share of a turn's
    server time (the coach panel reads the session's persona every turn; the MITI rubric takes
    about 0.3 s to parse, once per session listed in My progress). Callers must not mutate it."""
    return _recorded(model, content_id, sha256, text)  # type: ignore[return-value]


@lru_cache(maxsize=128)
def _recorded(model: type[BaseModel], content_id: str, sha256: str, text: str) -> BaseModel:
    return load_model_text(model, text, f"{content_id}@{sha256[:12]}")
