"""The product's shared words, defined once: who speaks, how a session is run, what a grade's state
is, who a user is. Everything else imports these; nothing here imports anything of ours."""

from __future__ import annotations

from typing import Literal

Speaker = Literal["counselor", "client"]
"""The trainee speaks as the counselor; the simulated client answers."""

Mode = Literal["coach", "assessment"]
"""Coach mode shows feedback after every turn; assessment mode only in the report at the end."""

MODES: tuple[Mode, ...] = ("coach", "assessment")

GradeStatus = Literal["ok", "pending", "failed"]
"""A grade is ``pending`` until a model answered (``counselsim regrade`` finishes it)."""

Role = Literal["trainee", "supervisor", "educator", "admin"]
ROLES: tuple[Role, ...] = ("trainee", "supervisor", "educator", "admin")

SessionStatus = Literal["active", "ended"]

__all__ = ["MODES", "ROLES", "GradeStatus", "Mode", "Role", "SessionStatus", "Speaker"]
