"""Editing persona/rubric YAML from the browser: list, read, validate and save, safely.

A file name typed or posted by a browser is never trusted: it must be a plain ``<id>.yaml`` name
and resolve inside the configured folder (no ``..``, no absolute paths, no symlinks out).
Saving writes a *new version*: the ``version`` number goes up by one and the previous file is kept
in ``<folder>/.versions/`` (the loader does not read that folder), so sessions that used the old
version can still be traced to its exact text.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from simulator.content.library import YAML_SUFFIXES, Library
from simulator.content.loader import (
    ContentError,
    ContentErrors,
    load_model_text,
    load_yaml_text,
    position_of,
)
from simulator.content.persona import Persona
from simulator.content.rubric import Rubric
from simulator.errors import InvalidInput

FILE_NAME = re.compile(r"^(?!.*\.\.)[a-z0-9][a-z0-9_.-]{0,63}\.ya?ml$")
ID = re.compile(r"^(?!.*\.\.)[a-z0-9][a-z0-9_.-]{0,63}$")
"""Dots are allowed inside (rubric ids carry versions: ``miti-4.2.1``), never two in a row, and a
name never starts with one (no hidden files, no ``..``)."""
MAX_NESTING = 60
"""Deepest ``[`` / ``{`` nesting the editor parses: the YAML parser takes seconds on thousands of
nested brackets (and refuses past ~1,000 anyway), so deeper text is refused before parsing."""
ARCHIVE = ".versions"


class EditError(InvalidInput):
    """A refusal to read or save, with a message fit for the editor's status line."""


@dataclass
class Checked:
    """The result of validating editor text."""

    model: Persona | Rubric | None
    errors: list[ContentError]

    @property
    def ok(self) -> bool:
        return self.model is not None and not self.errors


def list_files(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir()
                  if p.is_file() and p.suffix in YAML_SUFFIXES and FILE_NAME.match(p.name))


def safe_path(folder: Path, name: str) -> Path:
    """``folder/name`` if ``name`` is a plain file name inside ``folder``, else EditError."""
    if not isinstance(name, str) or not FILE_NAME.match(name):
        raise EditError("not a content file name (lowercase letters, digits, ., - and _, "
                        "then .yaml)")
    root = folder.resolve()
    path = (root / name).resolve()
    if path.parent != root:
        raise EditError("that file is outside the content folder")
    return path


def read_file(folder: Path, name: str) -> str:
    path = safe_path(folder, name)
    if not path.is_file():
        raise EditError(f"no such file: {name}")
    return path.read_text(encoding="utf-8")


def check_text(kind: str, text: str, shown: str, library: Library) -> Checked:
    """Validate editor text as a persona or rubric, with every error at its line and column.

    A persona is also cross-checked against the loaded rubrics: an unlock condition that waits
    for a skill code no rubric defines could never fire.
    """
    model_cls: type[Persona] | type[Rubric] = Persona if kind == "persona" else Rubric
    too_deep = _too_deep(text)
    if too_deep is not None:
        line, col = too_deep
        return Checked(None, [ContentError(
            shown, line, col, "", f"brackets nested more than {MAX_NESTING} deep: "
            "close the [ or { lists sooner")])
    try:
        model = load_model_text(model_cls, text, shown)
    except ContentErrors as exc:
        return Checked(None, [in_plain_words(err, text) for err in exc.errors])
    errors: list[ContentError] = []
    if isinstance(model, Persona) and library.rubrics:
        codes = set().union(*(r.code_ids() for r in library.rubrics.values()))
        tree = load_yaml_text(text, shown)
        for i, fact in enumerate(model.hidden_facts):
            if fact.unlock.skills is None:
                continue
            for j, code in enumerate(fact.unlock.skills.codes):
                if code not in codes:
                    loc: list[str | int] = ["hidden_facts", i, "unlock", "skills", "codes", j]
                    line, col = position_of(tree, loc)
                    errors.append(ContentError(
                        shown, line, col, f"hidden_facts[{i}].unlock.skills.codes[{j}]",
                        f"code {code!r} is not defined by any loaded rubric"))
    return Checked(model if not errors else None, errors)


def _too_deep(text: str) -> tuple[int, int] | None:
    """(line, column) where ``[``/``{`` nesting first passes ``MAX_NESTING``, else None.

    Brackets inside quotes and comments do not count. One pass over the text, so a pasted
    bracket bomb costs microseconds, not the parser's seconds.
    """
    depth, line, col, quote = 0, 1, 0, ""
    prev = "\n"
    comment = False
    for ch in text:
        col += 1
        if ch == "\n":
            line, col, quote, comment = line + 1, 0, "", False
        elif comment:
            pass
        elif quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"" and (prev in " \t\n[{,:" or col == 1):
            quote = ch
        elif ch == "#" and prev in " \t\n":
            comment = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_NESTING:
                return line, col
        elif ch in "]}":
            depth = max(0, depth - 1)
        prev = ch
    return None


PLAIN = [
    ("could not find expected ':'",
     "this line has no ':' after its key (write 'key: value'), or it continues the line above "
     "at the wrong indentation"),
    ("mapping values are not allowed here",
     "a ':' inside a value: put the whole value in quotes"),
    ("expected <block end>, but found '<block mapping start>'",
     "this key is indented more than the keys beside it: line it up with them"),
    ("expected <block end>, but found '<scalar>'",
     "unexpected text after the value: if the value has quotes or a ':' in it, put the whole "
     "value in one pair of quotes"),
    ("found unexpected end of stream", "a quote is opened and never closed"),
    ("expected <block end>, but found '<block sequence start>'",
     "this list item is indented differently from the items beside it: line them up"),
    ("expected ',' or ']'", "a [list] is not closed with ']' (or an item in it needs quotes)"),
    ("expected ',' or '}'", "a {mapping} is not closed with '}' (or a value in it needs quotes)"),
]
"""The YAML parser's words, and what they mean to a person editing the file."""

_KEY_LINE = re.compile(r"^( *)([A-Za-z_][\w-]*)\s*:")


def in_plain_words(err: ContentError, text: str) -> ContentError:
    """The error as an author would put it, at the line they have to change.

    Parser messages become plain sentences. A key indented too far under a block value (``>-``)
    is read as part of that text, and the schema then misses it: that is reported at the
    over-indented line itself, not as a missing key at its parent's line.
    """
    message = err.message
    line = err.line
    deeper = _deeper_than_key_above(text, line) if err.message.startswith("not valid") else None
    if deeper is not None:
        name, spaces, expected = deeper
        return ContentError(err.path, line, spaces + 1, err.key,
                            f"'{name}' is indented {spaces} spaces, more than the key above it "
                            f"({expected}), so YAML reads it as part of that key's value: "
                            + (f"indent it by {expected}" if expected else
                               "start it at the beginning of the line"))
    for parser_words, plain in PLAIN:
        if parser_words in message:
            message = f"not valid YAML: {plain}"
            if parser_words == "could not find expected ':'" and err.column == 1:
                line = _previous_content_line(text, line)
            break
    if err.message == "required key is missing" and err.key:
        found = _over_indented(text, err.line, err.key.split(".")[-1])
        if found is not None:
            at, spaces, expected = found
            name = err.key.split(".")[-1]
            return ContentError(err.path, at, spaces + 1, err.key,
                                f"'{name}' is indented {spaces} spaces, more than the keys "
                                f"beside it ({expected}), so YAML reads it as part of the "
                                f"value above: indent it by {expected}")
    return ContentError(err.path, line, err.column, err.key, message)


def _deeper_than_key_above(text: str, line: int) -> tuple[str, int, int] | None:
    """(key, its indentation, the indentation of the key above) when line ``line`` is a key
    indented deeper than the nearest key above it that already has a value on its line."""
    rows = text.splitlines()
    if not 1 <= line <= len(rows):
        return None
    here = _KEY_LINE.match(rows[line - 1])
    above_at = _previous_content_line(text, line)
    above = _KEY_LINE.match(rows[above_at - 1]) if above_at < line else None
    if here is None or above is None:
        return None
    has_value = rows[above_at - 1][above.end():].strip() not in ("", "|", ">", "|-", ">-")
    if has_value and len(here.group(1)) > len(above.group(1)):
        return here.group(2), len(here.group(1)), len(above.group(1))
    return None


def _previous_content_line(text: str, line: int) -> int:
    """The nearest line above ``line`` that is not blank or a comment (1-based)."""
    rows = text.splitlines()
    for n in range(min(line - 1, len(rows)), 0, -1):
        stripped = rows[n - 1].strip()
        if stripped and not stripped.startswith("#"):
            return n
    return line


def _over_indented(text: str, parent_line: int, name: str) -> tuple[int, int, int] | None:
    """(line, its indentation, the siblings' indentation) of key ``name`` written inside the
    block that starts at ``parent_line`` but indented deeper than that block's own keys."""
    rows = text.splitlines()
    if not 1 <= parent_line <= len(rows):
        return None
    parent_indent = len(rows[parent_line - 1]) - len(rows[parent_line - 1].lstrip(" "))
    sibling: int | None = None
    for n in range(parent_line + 1, len(rows) + 1):
        row = rows[n - 1]
        if not row.strip() or row.lstrip().startswith("#"):
            continue
        indent = len(row) - len(row.lstrip(" "))
        if indent <= parent_indent and (_KEY_LINE.match(row) or row.lstrip().startswith("- ")):
            break  # the parent's block has ended
        match = _KEY_LINE.match(row)
        if match and sibling is None:
            sibling = indent
        if match and match.group(2) == name and sibling is not None and indent > sibling:
            return n, indent, sibling
    return None


def _with_version(text: str, version: int) -> str:
    """Set ``version:`` in the YAML text, keeping comments and layout (ruamel round trip)."""
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096
    data = yaml.load(io.StringIO(text))
    data["version"] = version
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


def save_new_version(folder: Path, kind: str, text: str, library: Library) -> tuple[Path, int]:
    """Validate, bump the version past the current file's, archive the old file, write atomically.

    Returns the written path and the new version number. Raises EditError (invalid text, bad id)
    or ContentErrors (validation errors with positions).
    """
    shown = f"{folder.name}/(editor)"
    checked = check_text(kind, text, shown, library)
    if not checked.ok or checked.model is None:
        raise ContentErrors(checked.errors)
    content_id = checked.model.id
    if not ID.match(content_id):
        raise EditError("the id must be lowercase letters, digits, ., - and _")
    path = safe_path(folder, f"{content_id}.yaml")
    version = checked.model.version
    mode: int | None = None
    if path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
        try:
            old_text = path.read_text(encoding="utf-8")
            if _same(old_text, text):
                raise EditError(f"Nothing changed since the saved version of {path.name}: "
                                "edit it before saving a new version")
            old: Any = load_model_text(Persona if kind == "persona" else Rubric, old_text,
                                       str(path))
            version = max(version, int(old.version) + 1)
        except (ContentErrors, UnicodeDecodeError):
            old_text = path.read_text(encoding="utf-8", errors="replace")
        archive = folder / ARCHIVE
        archive.mkdir(mode=0o700, exist_ok=True)
        digest = hashlib.sha256(old_text.encode()).hexdigest()[:10]
        _write_private(archive / f"{content_id}.{digest}.yaml", old_text)
    else:
        clash = _id_in_other_file(library, kind, content_id, path)
        if clash:
            raise EditError(f"{kind} id {content_id!r} is already used by {clash}")
    new_text = _with_version(text, version) if version != checked.model.version else text
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".saving-", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(new_text)
    # mkstemp makes the file private (0600): a new file stays so (content can hold case
    # material); a file saved over keeps the permissions its owner gave it
    if mode is not None:
        os.chmod(tmp, mode)
    os.replace(tmp, path)
    return path, version


def _same(old: str, new: str) -> bool:
    """The editor holds the saved text (line endings and trailing blanks aside)."""
    def norm(text: str) -> list[str]:
        return [row.rstrip() for row in text.replace("\r\n", "\n").strip().splitlines()]
    return norm(old) == norm(new)


def _write_private(path: Path, text: str) -> None:
    """Write a file readable by its owner only (0600), whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an archive copy that already existed is made private too
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def _id_in_other_file(library: Library, kind: str, content_id: str, path: Path) -> str | None:
    loaded = library.files.get(f"{kind}:{content_id}")
    if loaded is not None and loaded.path.resolve() != path:
        return loaded.path.name
    return None
