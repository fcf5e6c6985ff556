"""Where everything that matters is kept: users, sessions, turns, codes, grades, reviews, events.

The rest of the package imports the store through this module, never through the backend's file:
the SQLite backend lives in ``sqlite.py`` and its schema steps in ``migrations.py``.
"""

from simulator.store.sqlite import (
    ROLES,
    CodeRecord,
    Conflict,
    ContentKind,
    EffectiveTurn,
    Event,
    Grade,
    Review,
    SearchHit,
    Session,
    SessionFilter,
    SignIn,
    Store,
    StoredItemScore,
    StoredSessionGrade,
    StoreError,
    Turn,
    UnknownRecord,
    User,
    Value,
    open_store,
    record_library_content,
)

__all__ = ["ROLES", "CodeRecord", "Conflict", "ContentKind", "EffectiveTurn", "Event", "Grade",
           "Review", "SearchHit", "Session", "SessionFilter", "SignIn", "Store", "StoreError",
           "StoredItemScore", "StoredSessionGrade", "Turn", "UnknownRecord", "User", "Value",
           "open_store", "record_library_content"]
