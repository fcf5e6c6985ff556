"""How often the machine agrees with supervisors: Cohen's kappa per code over a cohort.

Supervisors correct only what is wrong, so a turn in a session a supervisor has reviewed (any
correction or comment on it) counts as checked: its supervisor value is the correction if there is
one, else the machine's value (implicit agreement). Turns of unreviewed sessions are left out.
Per code, kappa is computed one-vs-rest (did both say CR or both not?); per item, over all codes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

from simulator.coder.evaluation import cohen_kappa

SMALL_N = 30
"""Below this many turns (or this many turns where either side gave the code), a kappa swings
widely with one more agreement or disagreement: it is shown, with a note saying so."""
SMALL_POSITIVES = 10


class CodeAgreement(BaseModel):
    item_id: str
    code: str
    """A code id, or ``(all codes)`` for the item as a whole."""
    n: int
    corrected: int
    """Turns where the supervisor changed the machine's value (to or from this code)."""
    kappa: float | None
    positives: int | None = None
    """For one code: turns where the supervisor or the machine gave it."""
    note: str = ""
    """A small-sample warning when ``n`` (or ``positives``) is too small to trust kappa."""


class Agreement(BaseModel):
    sessions: int
    turns: int
    rows: list[CodeAgreement]


def cohort_agreement(store: Any, sessions: Iterable[Any]) -> Agreement:
    pairs: dict[str, list[tuple[str, str]]] = {}
    n_sessions = 0
    n_turns = 0
    for s in sessions:
        if not store.reviews(s.session_id):
            continue
        n_sessions += 1
        for et in store.effective_codes(s.session_id):
            n_turns += 1
            for item_id, machine in et.machine.items():
                human = et.corrections.get(item_id, machine)
                pairs.setdefault(item_id, []).append((str(human), str(machine)))
    rows: list[CodeAgreement] = []
    for item_id in sorted(pairs):
        ps = pairs[item_id]
        human = [h for h, _ in ps]
        machine = [m for _, m in ps]
        rows.append(CodeAgreement(item_id=item_id, code="(all codes)", n=len(ps),
                                  corrected=sum(h != m for h, m in ps),
                                  kappa=_kappa(human, machine), note=small_sample(len(ps))))
        for code in sorted(set(human) | set(machine)):
            h1 = ["yes" if h == code else "no" for h in human]
            m1 = ["yes" if m == code else "no" for m in machine]
            positives = sum(h == code or m == code for h, m in ps)
            rows.append(CodeAgreement(
                item_id=item_id, code=code, n=len(ps),
                corrected=sum((h == code) != (m == code) for h, m in ps),
                kappa=_kappa(h1, m1), positives=positives,
                note=small_sample(len(ps), positives)))
    return Agreement(sessions=n_sessions, turns=n_turns, rows=rows)


def small_sample(n: int, positives: int | None = None) -> str:
    """The note shown beside a kappa from few turns (empty when the sample is large enough)."""
    if n < SMALL_N:
        return f"small sample (n={n} < {SMALL_N}): treat as a rough guide"
    if positives is not None and positives < SMALL_POSITIVES:
        return (f"rare code ({positives} turns with it < {SMALL_POSITIVES}): "
                "treat as a rough guide")
    return ""


def _kappa(human: list[str], machine: list[str]) -> float | None:
    if len(human) < 2:
        return None
    return round(cohen_kappa(human, machine), 3)
