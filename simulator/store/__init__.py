"""Where everything that matters is kept: users, sessions, turns, codes, grades, reviews, events.

The rest of the package imports the store through this module, never through the backend's file:
the store's methods live in ``core.py``; the SQLite backend in ``sqlite_backend.py`` (schema steps
in ``migrations.py``), the PostgreSQL one in ``postgres.py`` (schema steps in ``pg_schema.py``).
"""

from simulator.store.core import (
    ROLES,
    CodeRecord,
    Conflict,
    ContentKind,
    EffectiveTurn,
    Event,
    Grade,
    Job,
    JobKind,
    Review,
    SearchHit,
    Session,
    SessionFilter,
    SignIn,
    Store,
    StoredItemScore,
    StoredSessionGrade,
    StoreError,
    StoreUnavailable,
    Turn,
    UnknownRecord,
    User,
    Value,
    open_store,
    record_library_content,
)

__all__ = ["ROLES", "CodeRecord", "Conflict", "ContentKind", "EffectiveTurn", "Event", "Grade",
           "Job", "JobKind", "Review", "SearchHit", "Session", "SessionFilter", "SignIn", "Store",
           "StoreError", "StoredItemScore", "StoredSessionGrade", "StoreUnavailable", "Turn",
           "UnknownRecord", "User", "Value", "open_store", "record_library_content"]
