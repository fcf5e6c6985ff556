"""One error hierarchy for the whole product, so the web app and the CLI word refusals alike.

Every error a user can cause or meet derives from ``CounselSimError``; its message is safe to show
(no SQL, no paths outside the user's own files, no keys). Each kind has an ``exit_code`` that the
CLI uses, and the web app shows the message as a notice. Anything else that escapes is a bug.

The kinds also derive from the built-in exception a caller would have caught before
(``ValueError`` for invalid input, ``PermissionError`` for a refusal), so older call sites and
third-party code that catch those keep working.
"""

from __future__ import annotations


class CounselSimError(Exception):
    """The root of every error a user can meet. ``str(exc)`` is the message to show."""

    exit_code = 1


class InvalidInput(CounselSimError, ValueError):
    """What the user gave cannot be used (an empty turn, an unknown code, a malformed setting)."""

    exit_code = 3


class NotFoundOrNoAccess(CounselSimError, PermissionError):
    """The thing does not exist or this user may not see it; the two look the same on purpose,
    so a refusal reveals nothing about whether a session exists."""

    exit_code = 4

    def __init__(self, message: str = "Not found, or you do not have access to it.") -> None:
        super().__init__(message)


class ModelUnavailable(CounselSimError):
    """A model could not give an answer after every retry; the work that led to it is kept."""

    exit_code = 5


class StorageError(CounselSimError):
    """The database could not be read or written (busy past the wait, disk full)."""

    exit_code = 6


__all__ = ["CounselSimError", "InvalidInput", "ModelUnavailable", "NotFoundOrNoAccess",
           "StorageError"]
