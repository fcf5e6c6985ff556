"""Schema of the CounselSim database: ordered ``sqlite_utils.Migrations`` steps run on open.

Each step is applied once and recorded in ``_sqlite_migrations``; ``PRAGMA user_version``
mirrors the number of applied steps so anyone can read the schema version with the sqlite3
shell. Never edit a step that has shipped: add a new one (``m00N_...``) at the end, so existing
databases upgrade in place.

Conventions: timestamps are ISO 8601 UTC text (they sort as text, so
``created >= '2026-11-01'`` works); JSON columns end in ``_json``; machine output (codes,
grades, session_grades) and supervisor input (reviews) live in separate tables, so a
correction never overwrites what the machine said.
"""

from __future__ import annotations

from sqlite_utils import Database, Migrations

migrations = Migrations("counselsim")


@migrations()
def m001_initial(db: Database) -> None:
    db["users"].create(  # type: ignore[union-attr]
        {"name": str, "role": str, "cohort": str, "password_hash": str, "created": str},
        pk="name", not_null={"role", "created"},
    )
    db["cohorts"].create(  # type: ignore[union-attr]
        {"name": str, "description": str, "created": str}, pk="name",
    )
    for kind in ("personas", "rubrics"):
        db[kind].create(  # type: ignore[union-attr]
            {"id": str, "version": int, "sha256": str, "title": str, "content": str,
             "recorded": str},
            pk=("id", "sha256"), not_null={"content", "recorded"},
        )
    db["sessions"].create(  # type: ignore[union-attr]
        {"session_id": str, "trainee": str, "persona_id": str, "persona_version": int,
         "persona_sha": str, "rubric_id": str, "rubric_version": int, "rubric_sha": str,
         "client_model": str, "grader_model": str, "coder": str, "mode": str, "status": str,
         "created": str, "ended": str, "self_rating_json": str},
        pk="session_id",
        not_null={"trainee", "persona_id", "persona_sha", "rubric_id", "rubric_sha", "mode",
                  "status", "created"},
    )
    db["sessions"].create_index(["trainee", "created"])  # type: ignore[union-attr]
    db["sessions"].create_index(["persona_id"])  # type: ignore[union-attr]
    db["turns"].create(  # type: ignore[union-attr]
        {"id": int, "session_id": str, "idx": int, "speaker": str, "text": str, "created": str,
         "act": str, "fact_id": str, "state_json": str, "abandoned_branch": int},
        pk="id", not_null={"session_id", "idx", "speaker", "text", "created"},
        foreign_keys=[("session_id", "sessions", "session_id")],
    )
    # One current turn per position; abandoned branches keep their positions beside it.
    db.execute("CREATE UNIQUE INDEX idx_turns_current ON turns(session_id, idx) "
               "WHERE abandoned_branch IS NULL")
    db["turns"].create_index(["session_id", "abandoned_branch", "idx"])  # type: ignore[union-attr]
    db["codes"].create(  # type: ignore[union-attr]
        {"id": int, "turn_id": int, "rubric_id": str, "labels_json": str, "codes_json": str,
         "coder": str, "created": str},
        pk="id", not_null={"turn_id", "rubric_id", "codes_json", "created"},
        foreign_keys=[("turn_id", "turns", "id")],
    )
    db["codes"].create_index(["turn_id"])  # type: ignore[union-attr]
    db["grades"].create(  # type: ignore[union-attr]
        {"id": int, "turn_id": int, "rubric_id": str, "status": str, "values_json": str,
         "rationale": str, "alternative": str, "model": str, "error": str, "attempts": int,
         "created": str, "updated": str},
        pk="id", not_null={"turn_id", "rubric_id", "status", "created"},
        foreign_keys=[("turn_id", "turns", "id")],
    )
    db["grades"].create_index(["turn_id"])  # type: ignore[union-attr]
    db["grades"].create_index(["status"])  # type: ignore[union-attr]
    db["session_grades"].create(  # type: ignore[union-attr]
        {"id": int, "session_id": str, "rubric_id": str, "items_json": str, "model": str,
         "created": str},
        pk="id", not_null={"session_id", "rubric_id", "items_json", "created"},
        foreign_keys=[("session_id", "sessions", "session_id")],
    )
    db["session_grades"].create_index(["session_id"])  # type: ignore[union-attr]
    db["reviews"].create(  # type: ignore[union-attr]
        {"id": int, "session_id": str, "turn_id": int, "item_id": str, "value_json": str,
         "comment": str, "reviewer": str, "created": str},
        pk="id", not_null={"session_id", "reviewer", "created"},
        foreign_keys=[("session_id", "sessions", "session_id"), ("turn_id", "turns", "id")],
    )
    db["reviews"].create_index(["session_id"])  # type: ignore[union-attr]
    db["events"].create(  # type: ignore[union-attr]
        {"id": int, "session_id": str, "kind": str, "data_json": str, "created": str},
        pk="id", not_null={"kind", "created"},
    )
    db["events"].create_index(["session_id"])  # type: ignore[union-attr]


@migrations(transactional=False)
def m002_turns_fts(db: Database) -> None:
    """Full-text index over turn text, kept current by triggers (not transactional: enable_fts
    runs its own scripts)."""
    db["turns"].enable_fts(["text"], create_triggers=True, replace=True)  # type: ignore[union-attr]


@migrations()
def m003_accounts_and_sign_ins(db: Database) -> None:
    """Accounts get a stable random ``uid`` (a re-created name is a new person), a forced
    password change flag and a disabled flag; sign-ins are stored hashed with their expiry, so
    they survive a restart and can be revoked; a turn's idempotency key makes a repeated send
    store once."""
    import secrets

    db.execute("ALTER TABLE users ADD COLUMN uid TEXT")
    db.execute("ALTER TABLE users ADD COLUMN must_change_password INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0")
    for row in list(db.query("SELECT name FROM users")):
        db.execute("UPDATE users SET uid = ? WHERE name = ?", (secrets.token_hex(8), row["name"]))
    db.execute("CREATE UNIQUE INDEX idx_users_uid ON users(uid)")
    db["sign_ins"].create(  # type: ignore[union-attr]
        {"token_sha256": str, "uid": str, "created": str, "last_seen": str, "expires": str},
        pk="token_sha256", not_null={"uid", "created", "last_seen", "expires"},
    )
    db["sign_ins"].create_index(["uid"])  # type: ignore[union-attr]
    db["install_secrets"].create({"name": str, "value": str}, pk="name")  # type: ignore[union-attr]
    db.execute("ALTER TABLE turns ADD COLUMN idempotency_key TEXT")
    db.execute("CREATE UNIQUE INDEX idx_turns_key ON turns(session_id, idempotency_key) "
               "WHERE idempotency_key IS NOT NULL")


@migrations()
def m004_grading_jobs(db: Database) -> None:
    """Grading work that must outlive the process that started it: a job is claimed by one
    worker (replica) for a lease; a worker that dies stops renewing, and another claims it."""
    db["grading_jobs"].create(  # type: ignore[union-attr]
        {"id": int, "kind": str, "session_id": str, "turn_id": int, "status": str,
         "claimed_by": str, "lease_until": str, "attempts": int, "error": str, "created": str,
         "updated": str},
        pk="id", not_null={"kind", "session_id", "status", "created"},
        defaults={"attempts": 0},
    )
    db.execute("CREATE INDEX idx_grading_jobs_open ON grading_jobs(status, lease_until)")
    db.execute("CREATE INDEX idx_grading_jobs_target ON grading_jobs(kind, session_id, turn_id)")


SCHEMA_VERSION = len(migrations._migrations)
"""The schema version a fully migrated database has (also stored as ``PRAGMA user_version``)."""


def migrate(db: Database) -> int:
    """Apply pending steps; returns the schema version now in the database."""
    migrations.apply(db)
    version = len(migrations.applied(db))
    db.execute(f"PRAGMA user_version = {int(version)}")
    return version
