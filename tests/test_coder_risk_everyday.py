"""Everyday speech is not risk: the shipped risk pipeline (rules, head and reader) on the opening
questions every trainee asks and on every line the personas speak.

Why: a risk false alarm in a live session is a coach card that calls "What brings you in today?"
a question about what keeps the client safe, and credits a risk item that was never asked. The
trainee-style set's negatives are dark look-alikes ("this job is killing me"); these are the
ordinary words the set lacked (stop 27: the reader then read "My husband died. In March." as a
past attempt, and "What brings you in today?" after one of Farida's openings as protective
factors). Persona lines are never training data, so this is an independent check, but the
reader's thresholds were chosen with an eye on it (``risk_meaning.READER_CLIENT``).

Not all of it is met yet: a line read alone, without its conversation, is sometimes ambiguous
("I think I want to set a date." is a quit date in Siobhan's session, a plan in a suicide one),
and such a line then opens the gate for any follow-up after it; "What stopped you?" reads as a
protective-factors question after a quarter of the lines. The bounds below are the stop-28
figures, so a change that reads more everyday speech as risk fails here. Stop 28 traded some of
this for risk recall on a new author's words (0.81 to 0.87 on round 12), knowingly: its reader
reads 8 of the 442 lines as disclosures (6 in stop 27), and follow-ups after them as risk (59 of
2,758 against 34), but "What stopped you?" less often (101 of 394 against 98 at stop 27's
thresholds, 70 at its own). The way to zero is in docs/coder.md."""

from __future__ import annotations

import pytest

from simulator.coder.risk_meaning import find_risk
from simulator.content.library import load_library
from simulator.content.persona import Lines, Persona
from simulator.settings import ROOT

PERSONAS = sorted(load_library([ROOT / "personas"], [ROOT / "rubrics"]).personas.values(),
                  key=lambda p: p.id)
OPENERS = [
    "What brings you in today?", "Hi, what brings you here?",
    "What would you like to talk about today?", "How has your week been?",
    "What made you decide to come?", "How can I help?", "Where would you like to start?",
    "What's been on your mind lately?", "How are you feeling today?",
    "What do you hope to get out of this?", "Tell me a bit about what's going on.",
    "What have you tried so far?", "What's a typical day like for you?",
    "How are things at home?", "What would you like to be different?",
    "Thanks for coming. How are you doing?",
]


def _lines(persona: Persona, acts: tuple[str, ...] = tuple(Lines.model_fields)) -> list[str]:
    """The persona's authored lines for ``acts`` (all of them by default), filled as the client
    says them."""
    return [persona.fill(line) for act in acts for line in persona.lines_for(act)]


@pytest.mark.parametrize("persona", PERSONAS, ids=lambda p: p.id)
def test_opening_questions_after_each_opening_line_are_not_risk(persona: Persona) -> None:
    flagged = [(q, line, topics) for line in _lines(persona, ("opening",)) for q in OPENERS
               if (topics := find_risk(q, [line], client_last=line))]
    assert flagged == []


def test_persona_lines_are_rarely_read_as_risk_disclosures() -> None:
    lines = [line for p in PERSONAS for line in _lines(p)]
    flagged = [(line, topics) for line in lines
               if (topics := find_risk(line, [], client_line=True))]
    assert len(lines) > 400
    assert len(flagged) <= 8, flagged  # 8 of 442 in stop 28 (6 in stop 27, 35 in stop 26)


FOLLOW_UPS = ["What's that like for you?", "How long has that been going on?",
              "What happened then?", "Can you tell me more about that?",
              "How do you feel about that?", "What would you like to do about it?",
              "Who else knows?"]


def test_ordinary_follow_ups_after_ordinary_lines_are_rarely_risk() -> None:
    """Every line of the personas without a risk brief, then a follow-up that points back at it.
    ("What stopped you?" is counted apart: it reads as protective factors after many lines, the
    known gap.)"""
    lines = [line for p in PERSONAS if "risk" not in p.id for line in _lines(p)]
    flagged = [(q, line, topics) for line in lines for q in FOLLOW_UPS
               if (topics := find_risk(q, [line], client_last=line))]
    # 59 of 2,758 in stop 28 (34 in stop 27, 65 with the stop-26 models)
    assert len(flagged) <= 59, flagged
    stopped = [line for line in lines if find_risk("What stopped you?", [line], client_last=line)]
    assert len(stopped) <= 101, len(stopped)  # of 394; 98 in stop 27, 303 in stop 26
