"""The CounselSim store: every session, turn, code, grade and supervisor review, in one database.

Why it is shaped like this
--------------------------
* **One store, two databases.** ``open_store(target)`` takes a path or ``sqlite:///...`` (one file,
  the default, ``sqlite_backend``) or ``postgresql://...`` (shared by several app replicas,
  ``postgres``). The methods below are the same SQL on both; each backend supplies connections,
  write transactions, new ids, search and schema steps (``backend``). Driver errors surface as
  ``StoreUnavailable`` (a ``StorageError``), never as ``sqlite3``/``psycopg`` errors.
* **Nothing a trainee typed is lost.** ``add_turn`` commits (SQLite: WAL, ``synchronous=FULL``;
  PostgreSQL: a synchronous commit) before it returns, so the caller saves the trainee's turn,
  *then* calls any model. Killing the process at any later moment loses no committed turn; after a
  restart ``current_turns`` is where the session resumes.
* **Safe from many threads** (Gradio runs handlers in worker threads) and, on PostgreSQL, from
  many replicas. Writes are short transactions; writes that depend on a session's turns lock the
  session first (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: ``SELECT ... FOR UPDATE``). One ``Store``
  object can be shared by the whole web app.
* **Machine and human values side by side.** Coder output goes to ``codes``, LLM grader output to
  ``grades`` / ``session_grades``, supervisor corrections and comments to ``reviews``; nothing is
  overwritten. ``effective_codes`` resolves them: supervisor correction > grader (status ok) >
  coder.
* **Rewind keeps history.** ``rewind(session_id, idx)`` moves the turns from ``idx`` on to a new
  abandoned branch (1, 2, ...); they stay visible to supervisors (``all_turns``) while the current
  branch (``abandoned_branch IS NULL``, ``current_turns``) is what the session and the report use.
* **Exact content versions.** Persona and rubric YAML text is stored by (id, sha256) with
  ``record_content``; a session names the sha it ran with, so a report rebuilt next year scores the
  session against the rubric it was coded with.

Typical use (the session orchestrator, the CLI, the web app)::

    store = open_store(settings.db)                     # migrates on open
    record_library_content(store, lib, "persona", "sam")  # or store.record_content(...)
    record_library_content(store, lib, "rubric", "miti-4.2.1")
    sid = store.create_session("alex", "sam", lib.sha("persona", "sam"),
                               "miti-4.2.1", lib.sha("rubric", "miti-4.2.1"), mode="coach")
    t = store.add_turn(sid, "counselor", text)          # committed now
    store.add_codes(t.id, "miti-4.2.1", {"behaviour": "CR", "question_type": "NQ"}, coder="offline")
    c = store.add_turn(sid, "client", reply, act="elaborate", state={"rapport": 0.6, ...})
    store.end_session(sid)

All methods return pydantic models (JSON-ready with ``model_dump(mode="json")``) and raise
``StoreError`` (a ``ValueError``) for unknown ids or invalid input.
"""

from __future__ import annotations

import hmac
import json
import secrets
import uuid
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from simulator.errors import InvalidInput, NotFoundOrNoAccess
from simulator.store.backend import Backend, StoreUnavailable, Writer, open_backend
from simulator.store.migrations import SCHEMA_VERSION
from simulator.vocab import ROLES, GradeStatus, Mode, Role, SessionStatus, Speaker

if TYPE_CHECKING:
    from simulator.content.library import Library

Status = SessionStatus
ContentKind = Literal["persona", "rubric"]
JobKind = Literal["turn", "session"]
Value = str | int | float | bool | None
"""A turn-item value: a code id (categorical), a bool (binary) or a number (scalar)."""


class StoreError(InvalidInput):
    """Invalid input to the store; the message says what."""


class Conflict(StoreError):
    """The write assumed a state another writer has changed meanwhile (another tab's turn, a
    rewind): nothing was written."""


class UnknownRecord(StoreError, NotFoundOrNoAccess):
    """No such user, session, turn or grade. Still a ``StoreError`` for older call sites; a
    ``NotFoundOrNoAccess`` so the web app and the CLI refuse it like a forbidden one."""

    def __init__(self, message: str) -> None:
        StoreError.__init__(self, message)


def now() -> str:
    """Timestamps are ISO 8601 UTC text, so they sort and compare as strings."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


# ---------------------------------------------------------------- models returned by the store


class User(BaseModel):
    name: str
    role: Role
    cohort: str | None = None
    created: str
    has_password: bool = False
    uid: str = ""
    """Stable random id: a name deleted and added again is a different person (new uid)."""
    must_change_password: bool = False
    disabled: bool = False


class SignIn(BaseModel):
    """A stored sign-in (the token itself is never stored, only its sha256)."""

    token_sha256: str
    uid: str
    name: str
    created: str
    last_seen: str
    expires: str


class ContentVersion(BaseModel):
    kind: ContentKind
    id: str
    version: int
    sha256: str
    title: str = ""
    content: str = Field(repr=False)
    recorded: str


class Session(BaseModel):
    session_id: str
    trainee: str
    persona_id: str
    persona_version: int | None = None
    persona_sha: str
    rubric_id: str
    rubric_version: int | None = None
    rubric_sha: str
    client_model: str = "offline"
    grader_model: str = "offline"
    coder: str = "offline"
    mode: Mode = "coach"
    status: Status = "active"
    created: str
    ended: str | None = None
    self_rating: dict[str, Any] | None = None
    n_turns: int = 0
    """Turns on the current branch (both speakers)."""
    cohort: str | None = None
    """The trainee's cohort (from users), when the trainee is a registered user."""


class Turn(BaseModel):
    id: int
    session_id: str
    idx: int
    """Position in the conversation, from 0; unique among current-branch turns of a session."""
    speaker: Speaker
    text: str
    created: str
    act: str | None = None
    """Client turns: the planner's act (elaborate, disclose, ...)."""
    fact_id: str | None = None
    """Client turns: the hidden fact this turn disclosed, if any."""
    state: dict[str, Any] | None = None
    """Client turns: the client state after the turn (keys such as rapport, resistance)."""
    abandoned_branch: int | None = None
    """None on the current branch; otherwise the number of the branch a rewind moved it to."""


class CodeRecord(BaseModel):
    id: int
    turn_id: int
    rubric_id: str
    labels: dict[str, Any] | None = None
    codes: dict[str, Value]
    coder: str = ""
    created: str


class Grade(BaseModel):
    id: int
    turn_id: int
    session_id: str
    rubric_id: str
    status: GradeStatus
    values: dict[str, Value] = {}
    rationale: str = ""
    alternative: str = ""
    model: str = ""
    error: str = ""
    attempts: int = 0
    created: str
    updated: str | None = None


class StoredItemScore(BaseModel):
    """A session-level item score with the quotes that justify it."""

    score: float | None = None
    evidence: list[str] = []
    rationale: str = ""


class StoredSessionGrade(BaseModel):
    id: int
    session_id: str
    rubric_id: str
    items: dict[str, StoredItemScore]
    model: str = ""
    created: str


class Review(BaseModel):
    """A supervisor's correction (item_id + value) and/or comment, on a turn or the session."""

    id: int
    session_id: str
    turn_id: int | None = None
    item_id: str | None = None
    value: Value = None
    has_value: bool = False
    """True when this review corrects ``item_id`` (value may legitimately be None/False/0)."""
    comment: str = ""
    reviewer: str
    created: str


class Event(BaseModel):
    id: int
    session_id: str | None
    kind: str
    data: dict[str, Any] | None = None
    created: str


class Job(BaseModel):
    """A piece of grading work (a turn's grade, a session's grade) owned by one worker at a time.

    ``claimed_by`` holds it until ``lease_until``; the worker renews the lease while it is alive,
    so when it dies the lease runs out and another worker (replica) claims the job."""

    id: int
    kind: JobKind
    session_id: str
    turn_id: int | None = None
    status: Literal["queued", "done"]
    claimed_by: str | None = None
    lease_until: str | None = None
    attempts: int = 0
    error: str = ""
    created: str
    updated: str | None = None


class EffectiveTurn(BaseModel):
    """A counselor turn with its codes resolved: supervisor correction > grader > coder."""

    turn: Turn
    values: dict[str, Value]
    """Effective value per turn item id."""
    sources: dict[str, Literal["supervisor", "grader", "coder"]]
    machine: dict[str, Value]
    """What the machine said (grader if an ok grade exists, else coder), corrections ignored."""
    corrections: dict[str, Value]
    grade: Grade | None = None
    """The latest grade of the turn (any status), for rationale and alternative."""


class SearchHit(BaseModel):
    turn: Turn
    trainee: str
    persona_id: str
    cohort: str | None = None
    snippet: str
    """Plain text with the match wrapped in [[ ]]; escape it before putting it in HTML."""


class SessionFilter(BaseModel):
    trainee: str | None = None
    persona_id: str | None = None
    status: Status | None = None
    since: str | None = None
    """ISO date or timestamp; sessions created at or after it."""
    until: str | None = None
    cohort: str | None = None
    limit: int | None = None


# ---------------------------------------------------------------- helpers


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _user(row: dict[str, Any]) -> User:
    return User(name=row["name"], role=row["role"], cohort=row["cohort"],
                created=row["created"], has_password=bool(row["password_hash"]),
                uid=row.get("uid") or "",
                must_change_password=bool(row.get("must_change_password")),
                disabled=bool(row.get("disabled")))


def _turn(row: dict[str, Any]) -> Turn:
    return Turn(id=row["id"], session_id=row["session_id"], idx=row["idx"], speaker=row["speaker"],
                text=row["text"], created=row["created"], act=row["act"], fact_id=row["fact_id"],
                state=_loads(row["state_json"]), abandoned_branch=row["abandoned_branch"])


def _grade(row: dict[str, Any]) -> Grade:
    return Grade(id=row["id"], turn_id=row["turn_id"], session_id=row["session_id"],
                 rubric_id=row["rubric_id"], status=row["status"],
                 values=_loads(row["values_json"]) or {}, rationale=row["rationale"] or "",
                 alternative=row["alternative"] or "", model=row["model"] or "",
                 error=row["error"] or "", attempts=row["attempts"] or 0, created=row["created"],
                 updated=row["updated"])


def _review(row: dict[str, Any]) -> Review:
    has_value = row["value_json"] is not None
    return Review(id=row["id"], session_id=row["session_id"], turn_id=row["turn_id"],
                  item_id=row["item_id"], value=_loads(row["value_json"]) if has_value else None,
                  has_value=has_value, comment=row["comment"] or "", reviewer=row["reviewer"],
                  created=row["created"])


_SESSION_SELECT = """
SELECT s.*, u.cohort AS cohort,
  (SELECT count(*) FROM turns t WHERE t.session_id = s.session_id
     AND t.abandoned_branch IS NULL) AS n_turns
FROM sessions s LEFT JOIN users u ON u.name = s.trainee
"""


def _session(row: dict[str, Any]) -> Session:
    data = {k: v for k, v in row.items() if k != "self_rating_json" and v is not None}
    return Session(**data, self_rating=_loads(row["self_rating_json"]))


# ---------------------------------------------------------------- the store


class Store:
    """One database (SQLite file or PostgreSQL); share a single instance between threads (see
    module docstring)."""

    def __init__(self, target: str | Path, *, pool_size: int = 16) -> None:
        self.backend: Backend = open_backend(target, pool_size=pool_size)
        self.kind = self.backend.kind
        self.path: Path | None = getattr(self.backend, "path", None)
        """The SQLite file (None on PostgreSQL)."""
        try:
            self.schema_version = self.backend.migrate()
        except BaseException:
            self.backend.close()
            raise

    # -- connections and transactions

    @property
    def db(self) -> Any:
        """This thread's ``sqlite_utils.Database`` (SQLite only: tests and tools that need the
        file itself)."""
        db = getattr(self.backend, "db", None)
        if db is None:
            raise StoreError("this store is not an SQLite file")
        return db

    def _write(self) -> AbstractContextManager[Writer]:
        """A short write transaction; nested use joins the outer one."""
        return self.backend.write()

    def _insert(self, db: Writer, sql: str, params: tuple[Any, ...] | list[Any]) -> int:
        """Run an INSERT and return the new row's id."""
        return self.backend.insert(db, sql, params)

    def _rows(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[dict[str, Any]]:
        return self.backend.rows(sql, params)

    def _row(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> dict[str, Any] | None:
        rows = self._rows(sql, params)
        return rows[0] if rows else None

    def close(self) -> None:
        """Close every connection this store opened (call at shutdown, from any thread)."""
        self.backend.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- users and cohorts

    def add_user(self, name: str, role: Role, *, cohort: str | None = None,
                 password_hash: str | None = None, must_change_password: bool = False) -> User:
        """Create a user (and its cohort row if new); StoreError if the name is taken."""
        if not name.strip():
            raise StoreError("user name must not be empty")
        if role not in ROLES:
            raise StoreError(f"unknown role {role!r} (roles: {', '.join(ROLES)})")
        created = now()
        with self._write() as db:
            if self._row("SELECT name FROM users WHERE name = ?", (name,)):
                raise StoreError(f"user {name!r} already exists")
            if cohort:
                db.execute("INSERT OR IGNORE INTO cohorts (name, description, created) "
                           "VALUES (?, '', ?)", (cohort, created))
            db.execute("INSERT INTO users (name, role, cohort, password_hash, created, uid, "
                       "must_change_password) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (name, role, cohort, password_hash, created, uuid.uuid4().hex[:16],
                        int(must_change_password)))
        return self.get_user(name)

    def get_user(self, name: str) -> User:
        row = self._row("SELECT * FROM users WHERE name = ?", (name,))
        if row is None:
            raise UnknownRecord(f"unknown user {name!r}")
        return _user(row)

    def list_users(self, *, role: Role | None = None, cohort: str | None = None) -> list[User]:
        where, params = _where({"role = ?": role, "cohort = ?": cohort})
        rows = self._rows(f"SELECT name FROM users {where} ORDER BY name", params)
        return [self.get_user(r["name"]) for r in rows]

    def password_hash(self, name: str) -> str | None:
        """The stored argon2 hash (for simulator.service.accounts only; never shown or logged)."""
        row = self._row("SELECT password_hash FROM users WHERE name = ?", (name,))
        if row is None:
            raise UnknownRecord(f"unknown user {name!r}")
        return row["password_hash"]

    def set_password_hash(self, name: str, password_hash: str, *,
                          must_change: bool | None = None) -> None:
        """Replace the hash; ``must_change`` (when given) sets the forced-change flag."""
        with self._write() as db:
            cur = db.execute("UPDATE users SET password_hash = ?, must_change_password = "
                             "coalesce(?, must_change_password) WHERE name = ?",
                             (password_hash, None if must_change is None else int(must_change),
                              name))
            if cur.rowcount == 0:
                raise UnknownRecord(f"unknown user {name!r}")

    def set_disabled(self, name: str, disabled: bool) -> None:
        with self._write() as db:
            cur = db.execute("UPDATE users SET disabled = ? WHERE name = ?", (int(disabled), name))
            if cur.rowcount == 0:
                raise UnknownRecord(f"unknown user {name!r}")

    def delete_user(self, name: str, *, sessions_to: str | None) -> int:
        """Remove the account and its sign-ins. Its practice sessions are handed to the
        pseudonym ``sessions_to`` (kept for the program's records, no longer the person's), or
        deleted with everything derived from them when ``sessions_to`` is None. Returns how many
        sessions were kept or deleted."""
        with self._write() as db:
            row = self._row("SELECT uid FROM users WHERE name = ?", (name,))
            if row is None:
                raise UnknownRecord(f"unknown user {name!r}")
            ids = [r["session_id"] for r in
                   self._rows("SELECT session_id FROM sessions WHERE trainee = ?", (name,))]
            if sessions_to is not None:
                db.execute("UPDATE sessions SET trainee = ? WHERE trainee = ?",
                           (sessions_to, name))
            elif ids:
                marks = ",".join("?" * len(ids))
                turns = f"SELECT id FROM turns WHERE session_id IN ({marks})"
                for table in ("codes", "grades"):
                    db.execute(f"DELETE FROM {table} WHERE turn_id IN ({turns})", ids)
                for table in ("reviews", "session_grades", "events", "turns", "sessions"):
                    db.execute(f"DELETE FROM {table} WHERE session_id IN ({marks})", ids)
            db.execute("DELETE FROM sign_ins WHERE uid = ?", (row["uid"],))
            db.execute("DELETE FROM users WHERE name = ?", (name,))
        return len(ids)

    def install_secret(self, name: str) -> bytes:
        """A random secret made once per database (e.g. the key of export pseudonyms)."""
        row = self._row("SELECT value FROM install_secrets WHERE name = ?", (name,))
        if row is None:
            with self._write() as db:
                db.execute("INSERT OR IGNORE INTO install_secrets (name, value) VALUES (?, ?)",
                           (name, secrets.token_hex(32)))
            row = self._row("SELECT value FROM install_secrets WHERE name = ?", (name,))
        assert row is not None
        return bytes.fromhex(row["value"])

    def keyed_hash(self, name: str, value: str) -> str:
        """HMAC-SHA256 of ``value`` under this install's secret ``name`` (hex)."""
        return hmac.new(self.install_secret(name), value.encode("utf-8"), "sha256").hexdigest()

    # -- sign-ins (the web app's sessions; tokens stored as sha256 only)

    def add_sign_in(self, token_sha256: str, uid: str, expires: str) -> None:
        stamp = now()
        with self._write() as db:
            db.execute("INSERT INTO sign_ins (token_sha256, uid, created, last_seen, expires) "
                       "VALUES (?,?,?,?,?)", (token_sha256, uid, stamp, stamp, expires))

    def get_sign_in(self, token_sha256: str) -> SignIn | None:
        """The sign-in with its user's current name (None if unknown or its account is gone)."""
        row = self._row("SELECT s.*, u.name FROM sign_ins s JOIN users u ON u.uid = s.uid "
                        "WHERE s.token_sha256 = ?", (token_sha256,))
        return SignIn.model_validate(row) if row else None

    def touch_sign_in(self, token_sha256: str) -> None:
        with self._write() as db:
            db.execute("UPDATE sign_ins SET last_seen = ? WHERE token_sha256 = ?",
                       (now(), token_sha256))

    def delete_sign_ins(self, *, token_sha256: str | None = None, uid: str | None = None,
                        before: str | None = None, keep: str | None = None) -> int:
        """Revoke one sign-in, every sign-in of an account (but ``keep``), or the expired."""
        where, params = _where({"token_sha256 = ?": token_sha256, "uid = ?": uid,
                                "expires < ?": before, "token_sha256 != ?": keep})
        if token_sha256 is None and uid is None and before is None:
            raise StoreError("say which sign-ins to delete")
        with self._write() as db:
            cur = db.execute(f"DELETE FROM sign_ins {where}", params)
        return int(cur.rowcount or 0)

    def count_users(self) -> int:
        row = self._row("SELECT count(*) AS n FROM users")
        return int(row["n"]) if row else 0

    def add_cohort(self, name: str, description: str = "") -> None:
        with self._write() as db:
            db.execute("INSERT INTO cohorts (name, description, created) VALUES (?, ?, ?) "
                       "ON CONFLICT(name) DO UPDATE SET description = excluded.description",
                       (name, description, now()))

    def list_cohorts(self) -> list[str]:
        return [r["name"] for r in self._rows("SELECT name FROM cohorts ORDER BY name")]

    # -- content versions

    def record_content(self, kind: ContentKind, content_id: str, version: int, sha: str,
                       text: str, *, title: str = "") -> ContentVersion:
        """Keep the exact YAML text of a persona/rubric version (idempotent per (id, sha))."""
        table = _content_table(kind)
        with self._write() as db:
            db.execute(f"INSERT OR IGNORE INTO {table} (id, version, sha256, title, content, "
                       "recorded) VALUES (?, ?, ?, ?, ?, ?)",
                       (content_id, version, sha, title, text, now()))
        return self.get_content(kind, content_id, sha)

    def get_content(self, kind: ContentKind, content_id: str, sha: str | None = None
                    ) -> ContentVersion:
        """The version with this sha, or the most recently recorded one when sha is None."""
        table = _content_table(kind)
        if sha is None:
            row = self._row(f"SELECT * FROM {table} WHERE id = ? ORDER BY recorded DESC LIMIT 1",
                            (content_id,))
        else:
            row = self._row(f"SELECT * FROM {table} WHERE id = ? AND sha256 = ?", (content_id, sha))
        if row is None:
            raise UnknownRecord(f"{kind} {content_id!r}" + (f" with sha {sha[:12]}" if sha else "")
                             + " has not been recorded")
        return ContentVersion(kind=kind, id=row["id"], version=row["version"],
                              sha256=row["sha256"], title=row["title"] or "",
                              content=row["content"], recorded=row["recorded"])

    # -- sessions

    def create_session(self, trainee: str, persona_id: str, persona_sha: str, rubric_id: str,
                       rubric_sha: str, *, mode: Mode = "coach", client_model: str = "offline",
                       grader_model: str = "offline", coder: str = "offline",
                       session_id: str | None = None) -> str:
        """Start a session and return its id. The persona and rubric versions must be recorded."""
        if mode not in ("coach", "assessment"):
            raise StoreError(f"mode must be coach or assessment, not {mode!r}")
        persona = self.get_content("persona", persona_id, persona_sha)
        rubric = self.get_content("rubric", rubric_id, rubric_sha)
        sid = session_id or uuid.uuid4().hex
        with self._write() as db:
            if self._row("SELECT 1 AS x FROM sessions WHERE session_id = ?", (sid,)):
                raise StoreError(f"session {sid!r} already exists")
            db.execute(
                "INSERT INTO sessions (session_id, trainee, persona_id, persona_version, "
                "persona_sha, rubric_id, rubric_version, rubric_sha, client_model, grader_model, "
                "coder, mode, status, created) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,'active',?)",
                (sid, trainee, persona_id, persona.version, persona_sha, rubric_id,
                 rubric.version, rubric_sha, client_model, grader_model, coder, mode, now()))
            self._event(db, sid, "session_created", {"trainee": trainee, "mode": mode})
        return sid

    def get_session(self, session_id: str) -> Session:
        row = self._row(_SESSION_SELECT + " WHERE s.session_id = ?", (session_id,))
        if row is None:
            raise UnknownRecord(f"unknown session {session_id!r}")
        return _session(row)

    def resolve_session_id(self, prefix: str) -> str:
        """The full id of the one session whose id starts with ``prefix`` (for the CLI)."""
        if self._row("SELECT 1 AS x FROM sessions WHERE session_id = ?", (prefix,)):
            return prefix
        rows = self._rows("SELECT session_id FROM sessions WHERE substr(session_id, 1, ?) = ? "
                          "LIMIT 2", (len(prefix), prefix))
        if len(rows) == 1:
            return str(rows[0]["session_id"])
        raise StoreError(f"{'no' if not rows else 'more than one'} session matches {prefix!r}")

    def list_sessions(self, filters: SessionFilter | None = None, **kw: Any) -> list[Session]:
        """Sessions newest first; filter by a SessionFilter or the same names as keywords."""
        f = filters or SessionFilter(**kw)
        where, params = _where({
            "s.trainee = ?": f.trainee, "s.persona_id = ?": f.persona_id,
            "s.status = ?": f.status, "s.created >= ?": f.since, "s.created < ?": f.until,
            "u.cohort = ?": f.cohort,
        })
        limit = f" LIMIT {int(f.limit)}" if f.limit else ""
        rows = self._rows(f"{_SESSION_SELECT} {where} ORDER BY s.created DESC{limit}", params)
        return [_session(r) for r in rows]

    def end_session(self, session_id: str) -> Session:
        """Mark the session ended (idempotent: the first end time is kept)."""
        with self._write() as db:
            self._require_session(session_id)
            db.execute("UPDATE sessions SET status = 'ended', ended = coalesce(ended, ?) "
                       "WHERE session_id = ?", (now(), session_id))
            self._event(db, session_id, "session_ended", None)
        return self.get_session(session_id)

    def set_self_rating(self, session_id: str, rating: dict[str, Any]) -> None:
        """The trainee's own rating by session item id, e.g. ``{"empathy": 4, "comment": ""}``."""
        with self._write() as db:
            self._require_session(session_id)
            db.execute("UPDATE sessions SET self_rating_json = ? WHERE session_id = ?",
                       (_dumps(rating), session_id))

    def _require_session(self, session_id: str) -> dict[str, Any]:
        """The session's row; inside a write it is locked until the write commits, so two
        replicas cannot both take the next turn position or rewind the same session."""
        lock = self.backend.for_update if self.backend.in_write() else ""
        row = self._row("SELECT * FROM sessions WHERE session_id = ?" + lock, (session_id,))
        if row is None:
            raise UnknownRecord(f"unknown session {session_id!r}")
        return row

    # -- turns

    def add_turn(self, session_id: str, speaker: Speaker, text: str, *, act: str | None = None,
                 fact_id: str | None = None, state: dict[str, Any] | None = None,
                 after: int | None = None, key: str | None = None) -> Turn:
        """Append a turn to the current branch and COMMIT it before returning.

        ``after``: the number of current turns the caller saw; if another writer added or
        rewound turns meanwhile, ``Conflict`` and nothing is written. ``key``: an idempotency
        key; a second add with the same key returns the first turn instead of a copy.
        StoreError if the session is unknown or ended, or the speaker is not counselor/client.
        """
        if speaker not in ("counselor", "client"):
            raise StoreError(f"speaker must be counselor or client, not {speaker!r}")
        with self._write() as db:
            session = self._require_session(session_id)
            if session["status"] != "active":
                raise StoreError(f"session {session_id!r} has ended; no more turns")
            row = self._row("SELECT coalesce(max(idx) + 1, 0) AS n FROM turns WHERE "
                            "session_id = ? AND abandoned_branch IS NULL", (session_id,))
            idx = int(row["n"]) if row else 0
            if key is not None:
                same = self._row("SELECT id FROM turns WHERE session_id = ? AND "
                                 "idempotency_key = ?", (session_id, key))
                if same:
                    return self.get_turn(int(same["id"]))
            if after is not None and after != idx:
                raise Conflict(f"session {session_id!r} has {idx} turns, not {after}")
            turn_id = self._insert(
                db, "INSERT INTO turns (session_id, idx, speaker, text, created, act, fact_id, "
                "state_json, idempotency_key) VALUES (?,?,?,?,?,?,?,?,?)",
                (session_id, idx, speaker, text, now(), act, fact_id, _dumps(state), key))
        return self.get_turn(turn_id)

    def turn_with_key(self, session_id: str, key: str) -> Turn | None:
        """The turn a send with this idempotency key stored, if any."""
        row = self._row("SELECT * FROM turns WHERE session_id = ? AND idempotency_key = ?",
                        (session_id, key))
        return _turn(row) if row else None

    def current_turn_texts(self) -> list[tuple[str, int, str, str]]:
        """(session_id, idx, speaker, text) of every current-branch turn, for benches that
        check nothing sent was lost."""
        rows = self._rows("SELECT session_id, idx, speaker, text FROM turns WHERE "
                          "abandoned_branch IS NULL ORDER BY session_id, idx")
        return [(r["session_id"], r["idx"], r["speaker"], r["text"]) for r in rows]

    def get_turn(self, turn_id: int) -> Turn:
        row = self._row("SELECT * FROM turns WHERE id = ?", (turn_id,))
        if row is None:
            raise UnknownRecord(f"unknown turn {turn_id}")
        return _turn(row)

    def set_turn_client_info(self, turn_id: int, act: str | None = None,
                             fact_id: str | None = None, state: dict[str, Any] | None = None
                             ) -> Turn:
        """Record the client's act, disclosed fact and state after a client turn."""
        with self._write() as db:
            cur = db.execute("UPDATE turns SET act = ?, fact_id = ?, state_json = ? WHERE id = ?",
                             (act, fact_id, _dumps(state), turn_id))
            if cur.rowcount == 0:
                raise UnknownRecord(f"unknown turn {turn_id}")
        return self.get_turn(turn_id)

    def current_turns(self, session_id: str) -> list[Turn]:
        """The conversation as it stands (what the session resumes from and the report uses)."""
        self._require_session(session_id)
        rows = self._rows("SELECT * FROM turns WHERE session_id = ? AND abandoned_branch IS NULL "
                          "ORDER BY idx", (session_id,))
        return [_turn(r) for r in rows]

    def all_turns(self, session_id: str) -> list[Turn]:
        """Every turn, abandoned branches included (current branch first, then branch 1, 2, ...)."""
        self._require_session(session_id)
        rows = self._rows("SELECT * FROM turns WHERE session_id = ? ORDER BY "
                          "coalesce(abandoned_branch, 0), idx", (session_id,))
        return [_turn(r) for r in rows]

    def rewind(self, session_id: str, turn_idx: int) -> int:
        """Retry from position ``turn_idx``: current turns at idx >= turn_idx move to a new
        abandoned branch, whose number is returned (0 when nothing was moved)."""
        with self._write() as db:
            session = self._require_session(session_id)
            if session["status"] != "active":
                raise StoreError(f"session {session_id!r} has ended; it cannot be rewound")
            moving = self._row("SELECT count(*) AS n FROM turns WHERE session_id = ? AND "
                               "abandoned_branch IS NULL AND idx >= ?", (session_id, turn_idx))
            if not moving or not moving["n"]:
                return 0
            row = self._row("SELECT coalesce(max(abandoned_branch), 0) + 1 AS b FROM turns "
                            "WHERE session_id = ?", (session_id,))
            branch = int(row["b"]) if row else 1
            db.execute("UPDATE turns SET abandoned_branch = ? WHERE session_id = ? AND "
                       "abandoned_branch IS NULL AND idx >= ?", (branch, session_id, turn_idx))
            self._event(db, session_id, "rewind",
                        {"from_idx": turn_idx, "branch": branch, "turns": moving["n"]})
        return branch

    # -- machine codes and grades

    def add_codes(self, turn_id: int, rubric_id: str, codes: dict[str, Value], *,
                  labels: dict[str, Any] | None = None, coder: str = "") -> CodeRecord:
        """Store a coder's output for a turn (item id -> code), e.g. CodedTurn.codes."""
        with self._write() as db:
            self.get_turn(turn_id)
            created = now()
            code_id = self._insert(
                db, "INSERT INTO codes (turn_id, rubric_id, labels_json, codes_json, coder, "
                "created) VALUES (?,?,?,?,?,?)",
                (turn_id, rubric_id, _dumps(labels), _dumps(codes), coder, created))
        return CodeRecord(id=code_id, turn_id=turn_id, rubric_id=rubric_id,
                          labels=labels, codes=codes, coder=coder, created=created)

    def codes(self, turn_id: int) -> list[CodeRecord]:
        rows = self._rows("SELECT * FROM codes WHERE turn_id = ? ORDER BY id", (turn_id,))
        return [CodeRecord(id=r["id"], turn_id=r["turn_id"], rubric_id=r["rubric_id"],
                           labels=_loads(r["labels_json"]), codes=_loads(r["codes_json"]),
                           coder=r["coder"] or "", created=r["created"]) for r in rows]

    def add_grade(self, turn_id: int, rubric_id: str, *, status: GradeStatus = "ok",
                  values: dict[str, Value] | None = None, rationale: str = "",
                  alternative: str = "", model: str = "", error: str = "",
                  attempts: int = 1) -> Grade:
        """Store the grader's result for a turn; ``status="pending"`` when it could not grade."""
        _check_status(status)
        with self._write() as db:
            turn = self.get_turn(turn_id)
            self._finish_jobs(db, "turn", turn.session_id, turn_id)  # a stored grade ends its job
            grade_id = self._insert(
                db, "INSERT INTO grades (turn_id, rubric_id, status, values_json, rationale, "
                "alternative, model, error, attempts, created) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (turn_id, rubric_id, status, _dumps(values or {}), rationale, alternative, model,
                 error, attempts, now()))
        return self.get_grade(grade_id)

    def get_grade(self, grade_id: int) -> Grade:
        row = self._row("SELECT g.*, t.session_id FROM grades g JOIN turns t ON t.id = g.turn_id "
                        "WHERE g.id = ?", (grade_id,))
        if row is None:
            raise UnknownRecord(f"unknown grade {grade_id}")
        return _grade(row)

    def grades(self, session_id: str) -> list[Grade]:
        rows = self._rows("SELECT g.*, t.session_id FROM grades g JOIN turns t ON t.id = g.turn_id"
                          " WHERE t.session_id = ? ORDER BY g.id", (session_id,))
        return [_grade(r) for r in rows]

    def pending_grades(self, session_id: str | None = None) -> list[Grade]:
        """Grades still to do (status pending), oldest first; for ``counselsim regrade``."""
        where, params = _where({"g.status = ?": "pending", "t.session_id = ?": session_id})
        rows = self._rows("SELECT g.*, t.session_id FROM grades g JOIN turns t ON t.id = g.turn_id"
                          f" {where} ORDER BY g.id", params)
        return [_grade(r) for r in rows]

    def update_grade(self, grade_id: int, *, status: GradeStatus,
                     values: dict[str, Value] | None = None, rationale: str | None = None,
                     alternative: str | None = None, model: str | None = None,
                     error: str | None = None) -> Grade:
        """Finish (or fail again) a pending grade; attempts is incremented. None keeps a field."""
        _check_status(status)
        with self._write() as db:
            old = self.get_grade(grade_id)
            self._finish_jobs(db, "turn", old.session_id, old.turn_id)
            db.execute(
                "UPDATE grades SET status = ?, values_json = ?, rationale = ?, alternative = ?, "
                "model = ?, error = ?, attempts = attempts + 1, updated = ? WHERE id = ?",
                (status, _dumps(values if values is not None else old.values),
                 old.rationale if rationale is None else rationale,
                 old.alternative if alternative is None else alternative,
                 old.model if model is None else model, old.error if error is None else error,
                 now(), grade_id))
        return self.get_grade(grade_id)

    def add_session_grade(self, session_id: str, rubric_id: str,
                          items: dict[str, StoredItemScore | dict[str, Any]], *, model: str = ""
                          ) -> StoredSessionGrade:
        """Session-level item scores (globals) with evidence quotes, e.g. from the LLM grader."""
        parsed = {k: StoredItemScore.model_validate(v) for k, v in items.items()}
        created = now()
        with self._write() as db:
            self._require_session(session_id)
            grade_id = self._insert(
                db, "INSERT INTO session_grades (session_id, rubric_id, items_json, model, "
                "created) VALUES (?,?,?,?,?)",
                (session_id, rubric_id, _dumps({k: v.model_dump() for k, v in parsed.items()}),
                 model, created))
        return StoredSessionGrade(id=grade_id, session_id=session_id,
                            rubric_id=rubric_id, items=parsed, model=model, created=created)

    def session_grade(self, session_id: str, rubric_id: str) -> StoredSessionGrade | None:
        """The latest session-level grade for the rubric, if any."""
        r = self._row("SELECT * FROM session_grades WHERE session_id = ? AND rubric_id = ? "
                      "ORDER BY id DESC LIMIT 1", (session_id, rubric_id))
        if r is None:
            return None
        items = {k: StoredItemScore.model_validate(v) for k, v in _loads(r["items_json"]).items()}
        return StoredSessionGrade(id=r["id"], session_id=r["session_id"], rubric_id=r["rubric_id"],
                            items=items, model=r["model"] or "", created=r["created"])

    # -- supervisor reviews

    _UNSET: Any = object()

    def add_review(self, session_id: str, *, reviewer: str, turn_id: int | None = None,
                   item_id: str | None = None, value: Value = _UNSET, comment: str = "") -> Review:
        """Store a correction (item_id + value, on a turn or session-level) and/or a comment.

        The machine's value is never touched; the latest correction of (turn, item) wins.
        """
        has_value = value is not Store._UNSET
        if has_value and not item_id:
            raise StoreError("a corrected value needs the item_id it corrects")
        if not has_value and not comment.strip():
            raise StoreError("a review needs a corrected value or a comment")
        with self._write() as db:
            self._require_session(session_id)
            if turn_id is not None and self.get_turn(turn_id).session_id != session_id:
                raise StoreError(f"turn {turn_id} is not in session {session_id!r}")
            review_id = self._insert(
                db, "INSERT INTO reviews (session_id, turn_id, item_id, value_json, comment, "
                "reviewer, created) VALUES (?,?,?,?,?,?,?)",
                (session_id, turn_id, item_id, json.dumps(value) if has_value else None, comment,
                 reviewer, now()))
        row = self._row("SELECT * FROM reviews WHERE id = ?", (review_id,))
        assert row is not None
        return _review(row)

    def reviews(self, session_id: str) -> list[Review]:
        rows = self._rows("SELECT * FROM reviews WHERE session_id = ? ORDER BY id", (session_id,))
        return [_review(r) for r in rows]

    # -- events

    def add_event(self, session_id: str | None, kind: str, data: dict[str, Any] | None = None
                  ) -> Event:
        """An audit/diagnostic event (model errors, rewinds, logins). Keep secrets out of data."""
        with self._write() as db:
            event_id = self._event(db, session_id, kind, data)
        return Event(id=event_id, session_id=session_id, kind=kind, data=data, created=now())

    def _event(self, db: Writer, session_id: str | None, kind: str,
               data: dict[str, Any] | None) -> int:
        return self._insert(db, "INSERT INTO events (session_id, kind, data_json, created) "
                            "VALUES (?,?,?,?)", (session_id, kind, _dumps(data), now()))

    def events(self, session_id: str | None = None, kind: str | None = None) -> list[Event]:
        where, params = _where({"session_id = ?": session_id, "kind = ?": kind})
        rows = self._rows(f"SELECT * FROM events {where} ORDER BY id", params)
        return [Event(id=r["id"], session_id=r["session_id"], kind=r["kind"],
                      data=_loads(r["data_json"]), created=r["created"]) for r in rows]

    # -- grading jobs (work that any replica may finish)

    def add_job(self, kind: JobKind, session_id: str, turn_id: int | None = None, *,
                worker: str | None = None, lease_s: float = 60.0) -> Job:
        """Queue grading work; with ``worker`` it is claimed by that worker at once (the process
        that will do it now), and only becomes anyone's if that worker stops renewing it."""
        if kind not in ("turn", "session"):
            raise StoreError(f"job kind must be turn or session, not {kind!r}")
        stamp = now()
        with self._write() as db:
            self._require_session(session_id)
            job_id = self._insert(
                db, "INSERT INTO grading_jobs (kind, session_id, turn_id, status, claimed_by, "
                "lease_until, attempts, error, created) VALUES (?,?,?,'queued',?,?,?,'',?)",
                (kind, session_id, turn_id, worker, _later(lease_s) if worker else None,
                 1 if worker else 0, stamp))
        return self.get_job(job_id)

    def get_job(self, job_id: int) -> Job:
        row = self._row("SELECT * FROM grading_jobs WHERE id = ?", (job_id,))
        if row is None:
            raise UnknownRecord(f"unknown job {job_id}")
        return _job(row)

    def jobs(self, *, status: str | None = None, session_id: str | None = None) -> list[Job]:
        where, params = _where({"status = ?": status, "session_id = ?": session_id})
        return [_job(r) for r in self._rows(f"SELECT * FROM grading_jobs {where} ORDER BY id",
                                            params)]

    def claim_job(self, worker: str, *, lease_s: float = 60.0) -> Job | None:
        """Take the oldest queued job nobody holds (never claimed, or its lease ran out), or
        None. One statement: on PostgreSQL the candidate row is locked ``SKIP LOCKED`` (two
        replicas claiming at once take different jobs); on SQLite the write lock serializes."""
        stamp = now()
        with self._write() as db:
            cur = db.execute(
                "UPDATE grading_jobs SET claimed_by = ?, lease_until = ?, "
                "attempts = attempts + 1, updated = ? WHERE id = ("
                "SELECT id FROM grading_jobs WHERE status = 'queued' AND "
                "(claimed_by IS NULL OR lease_until < ?) ORDER BY id LIMIT 1"
                f"{self.backend.skip_locked}) RETURNING id",
                (worker, _later(lease_s), stamp, stamp))
            row = cur.fetchone()
        return self.get_job(int(row["id"] if isinstance(row, dict) else row[0])) if row else None

    def renew_jobs(self, worker: str, *, lease_s: float = 60.0) -> int:
        """Extend the lease of every open job ``worker`` holds (it is alive); returns how many."""
        with self._write() as db:
            cur = db.execute("UPDATE grading_jobs SET lease_until = ? WHERE status = 'queued' "
                             "AND claimed_by = ?", (_later(lease_s), worker))
        return int(cur.rowcount or 0)

    def finish_jobs(self, kind: JobKind, session_id: str, turn_id: int | None = None, *,
                    error: str = "") -> int:
        """Mark the open jobs for this turn (or this session's grade) done."""
        with self._write() as db:
            return self._finish_jobs(db, kind, session_id, turn_id, error)

    def _finish_jobs(self, db: Writer, kind: str, session_id: str, turn_id: int | None,
                     error: str = "") -> int:
        cur = db.execute("UPDATE grading_jobs SET status = 'done', error = ?, updated = ? "
                         "WHERE status = 'queued' AND kind = ? AND session_id = ? AND "
                         "coalesce(turn_id, -1) = ?",
                         (error, now(), kind, session_id, -1 if turn_id is None else turn_id))
        return int(cur.rowcount or 0)

    # -- resolved values

    def effective_codes(self, session_id: str, rubric_id: str | None = None, *,
                        include_abandoned: bool = False) -> list[EffectiveTurn]:
        """Counselor turns of the current branch (and abandoned ones if asked) with codes resolved
        per item: latest supervisor correction, else the latest ok grade's value, else the latest
        coder value. ``rubric_id`` defaults to the session's rubric."""
        session = self.get_session(session_id)
        rubric = rubric_id or session.rubric_id
        pool = self.all_turns(session_id) if include_abandoned else self.current_turns(session_id)
        turns = [t for t in pool if t.speaker == "counselor"]
        ids = [t.id for t in turns]
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        coder: dict[int, dict[str, Value]] = {}
        for r in self._rows(f"SELECT turn_id, codes_json FROM codes WHERE rubric_id = ? AND "
                            f"turn_id IN ({marks}) ORDER BY id", [rubric, *ids]):
            coder.setdefault(r["turn_id"], {}).update(_loads(r["codes_json"]) or {})
        graded: dict[int, dict[str, Value]] = {}
        latest: dict[int, Grade] = {}
        for r in self._rows(f"SELECT g.*, t.session_id FROM grades g JOIN turns t ON "
                            f"t.id = g.turn_id WHERE g.rubric_id = ? AND g.turn_id IN ({marks}) "
                            "ORDER BY g.id", [rubric, *ids]):
            g = _grade(r)
            latest[g.turn_id] = g
            if g.status == "ok":
                graded.setdefault(g.turn_id, {}).update(g.values)
        corrections: dict[int, dict[str, Value]] = {}
        for rv in self.reviews(session_id):
            if rv.turn_id is not None and rv.item_id and rv.has_value:
                corrections.setdefault(rv.turn_id, {})[rv.item_id] = rv.value
        out: list[EffectiveTurn] = []
        for t in turns:
            machine = {**coder.get(t.id, {}), **graded.get(t.id, {})}
            fix = corrections.get(t.id, {})
            sources: dict[str, Literal["supervisor", "grader", "coder"]] = {}
            for k in machine:
                sources[k] = "grader" if k in graded.get(t.id, {}) else "coder"
            for k in fix:
                sources[k] = "supervisor"
            out.append(EffectiveTurn(turn=t, values={**machine, **fix}, sources=sources,
                                     machine=machine, corrections=fix, grade=latest.get(t.id)))
        return out

    # -- search

    def search_turns(self, q: str, cohort: str | None = None, *, trainee: str | None = None,
                     include_abandoned: bool = True, limit: int = 100) -> list[SearchHit]:
        """Full-text search over turn text (words are matched literally; FTS operators are
        quoted away). Best matches first. ``cohort`` limits to trainees of that cohort."""
        # control characters (a NUL) cannot be in turn text and break the FTS syntax: dropped
        q = "".join(ch for ch in q if ch in "\t\n" or not (ord(ch) < 32 or ord(ch) == 127))
        q = q.strip()
        if not q:
            return []
        where, params = _where({"u.cohort = ?": cohort, "s.trainee = ?": trainee})
        extra = where.replace("WHERE", "AND", 1)
        if not include_abandoned:
            extra += " AND t.abandoned_branch IS NULL"
        rows = self.backend.search(q, extra, params, limit)
        return [SearchHit(turn=_turn(r), trainee=r["trainee"], persona_id=r["persona_id"],
                          cohort=r["cohort"], snippet=r["snip"]) for r in rows]


def _later(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat(timespec="microseconds")


def _job(row: dict[str, Any]) -> Job:
    return Job.model_validate({**row, "error": row["error"] or "",
                               "attempts": row["attempts"] or 0})


def _content_table(kind: str) -> str:
    if kind == "persona":
        return "personas"
    if kind == "rubric":
        return "rubrics"
    raise StoreError(f"content kind must be persona or rubric, not {kind!r}")


def _check_status(status: str) -> None:
    if status not in ("ok", "pending", "failed"):
        raise StoreError(f"grade status must be ok, pending or failed, not {status!r}")


def _where(conditions: dict[str, Any]) -> tuple[str, list[Any]]:
    """WHERE clause from {"col = ?": value}; None values are left out."""
    used = [(sql, v) for sql, v in conditions.items() if v is not None]
    if not used:
        return "", []
    return "WHERE " + " AND ".join(sql for sql, _ in used), [v for _, v in used]


def open_store(target: str | Path, *, pool_size: int = 16) -> Store:
    """Open (creating and migrating) the database ``target`` (``settings.db``): a path,
    ``sqlite:///path`` or ``postgresql://...``; ``pool_size`` bounds PostgreSQL connections."""
    return Store(target, pool_size=pool_size)


def record_library_content(store: Store, library: Library, kind: ContentKind,
                           content_id: str) -> ContentVersion:
    """Record the loaded persona/rubric file's exact text (sha from the library) in the store."""
    loaded = library.files[f"{kind}:{content_id}"]
    model = library.persona(content_id) if kind == "persona" else library.rubric(content_id)
    return store.record_content(kind, content_id, model.version, loaded.sha256,
                                loaded.path.read_bytes().decode("utf-8"), title=model.title)


__all__ = [
    "SCHEMA_VERSION", "CodeRecord", "Conflict", "ContentVersion", "EffectiveTurn", "Event",
    "Grade", "Job", "JobKind", "Review", "SignIn", "SearchHit", "Session", "SessionFilter",
    "Store", "StoreError",
    "StoredItemScore",
    "StoreUnavailable", "StoredSessionGrade", "UnknownRecord", "Turn", "User", "open_store",
    "record_library_content",
]
