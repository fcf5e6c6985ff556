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
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

MAX_BYTES = 1_000_000
"""Content files are hand-written; anything over 1 MB is a mistake (or an attack), not a persona."""

MAX_NODES = 50_000
"""Bound on the expanded tree size, so alias bombs ("billion laughs") are refused, not expanded."""

M = TypeVar("M", bound=BaseModel)


class ContentError(Exception):
    """One problem in one content file, with the place it happened."""

    def __init__(self, path: str, line: int, column: int, key: str, message: str) -> None:
        self.path, self.line, self.column, self.key, self.message = path, line, column, key, message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}:{self.column}"
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ContentErrors(Exception):
    """All problems found in one file (validation reports them together, not one per run)."""

    def __init__(self, errors: Sequence[ContentError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    return yaml


def _count_nodes(node: Any, budget: list[int], seen: set[int]) -> None:
    """Walk the tree counting nodes; aliases are counted every time they are reached."""
    budget[0] -= 1
    if budget[0] < 0:
        raise ValueError("document too large after expanding aliases (possible alias bomb)")
    if isinstance(node, dict):
        for key, value in node.items():
            _count_nodes(key, budget, seen)
            _count_nodes(value, budget, seen)
    elif isinstance(node, list):
        for item in node:
            _count_nodes(item, budget, seen)


def load_yaml_text(text: str, path: str) -> Any:
    """Parse YAML text into a position-carrying tree, or raise ContentErrors saying where it broke."""
    if len(text.encode("utf-8", errors="replace")) > MAX_BYTES:
        raise ContentErrors([ContentError(path, 1, 1, "", f"file is larger than {MAX_BYTES} bytes")])
    if not text.strip():
        raise ContentErrors([ContentError(path, 1, 1, "", "file is empty")])
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.lstrip(" ")
        if stripped.startswith("\t"):
            raise ContentErrors(
                [ContentError(path, number, len(line) - len(stripped) + 1, "",
                              "tab used for indentation; YAML needs spaces")]
            )
    try:
        data = _yaml().load(io.StringIO(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        column = mark.column + 1 if mark else 1
        problem = (exc.problem or exc.context or "not valid YAML").strip()
        if "duplicate key" in str(exc):
            problem = "duplicate key " + problem.split("duplicate key", 1)[-1].strip()
        raise ContentErrors([ContentError(path, line, column, "", problem)]) from None
    except YAMLError as exc:
        raise ContentErrors([ContentError(path, 1, 1, "", f"not valid YAML: {exc}")]) from None
    try:
        _count_nodes(data, [MAX_NODES], set())
    except (ValueError, RecursionError) as exc:
        raise ContentErrors([ContentError(path, 1, 1, "", str(exc))]) from None
    if not isinstance(data, dict):
        raise ContentErrors([ContentError(path, 1, 1, "", "top level must be a mapping of keys")])
    return data


def load_yaml_file(path: Path) -> Any:
    """Read a file (refusing huge or non-UTF-8 ones) and parse it with positions."""
    shown = str(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ContentErrors([ContentError(shown, 1, 1, "", f"cannot read: {exc.strerror}")]) from None
    if size > MAX_BYTES:
        raise ContentErrors([ContentError(shown, 1, 1, "", f"file is larger than {MAX_BYTES} bytes")])
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ContentErrors([ContentError(shown, 1, 1, "", "file is not UTF-8 text")]) from None
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
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = f"unknown key {loc[-1]!r} (check the spelling; see `counselsim schema`)"
        elif err["type"] == "missing":
            message = "required key is missing"
        errors.append(ContentError(path, line, column, format_loc(loc), message))
    return ContentErrors(errors)


def _plain(node: Any) -> Any:
    """ruamel's commented containers -> plain dicts/lists (pydantic is happier, positions kept aside)."""
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def parse_model(model: type[M], tree: Any, path: str) -> M:
    """Validate a loaded tree as ``model``, raising ContentErrors with file positions."""
    try:
        return model.model_validate(_plain(tree))
    except ValidationError as exc:
        raise validation_errors(exc, tree, path) from None


def load_model_file(model: type[M], path: Path) -> M:
    """Load one content file into a pydantic model, every error carrying file, line and key."""
    return parse_model(model, load_yaml_file(path), str(path))


def load_model_text(model: type[M], text: str, path: str) -> M:
    """Same as load_model_file for text held in memory (the browser editor)."""
    return parse_model(model, load_yaml_text(text, path), path)
