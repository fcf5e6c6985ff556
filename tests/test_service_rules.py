"""The rules of the service layer, as the web app and the CLI both meet them: who may see and do
what (service/access.py), supervisor corrections checked against the rubric version the session
ran with (service/reviews.py), and the trainee's self-rating (Practice.rate_self)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator.errors import InvalidInput, NotFoundOrNoAccess
from simulator.service import reviews
from simulator.service.access import RoleRefused, session_for
from simulator.service.practice import Practice
from simulator.settings import ROOT, Settings

PERSONA = ROOT / "tests" / "fixtures" / "engine" / "test-dana.yaml"


@pytest.fixture
def practice(tmp_path: Path, db_target: str | Path) -> Iterator[Practice]:
    """Each rule is checked on SQLite, then on PostgreSQL."""
    personas, rubrics = tmp_path / "personas", tmp_path / "rubrics"
    personas.mkdir()
    rubrics.mkdir()
    shutil.copy(PERSONA, personas / PERSONA.name)
    shutil.copy(ROOT / "rubrics" / "miti-4.2.1.yaml", rubrics / "miti-4.2.1.yaml")
    p = Practice.from_settings(Settings(db=db_target, personas=personas,
                                        rubrics=rubrics))
    for name, role, cohort in (("ana", "trainee", "c1"), ("ben", "trainee", "c1"),
                               ("sue", "supervisor", "c1"), ("sam", "supervisor", "c2"),
                               ("root", "admin", None)):
        p.store.add_user(name, role, cohort=cohort)
    yield p
    p.store.close()


def a_session(p: Practice) -> tuple[str, int]:
    """ana's session with one trainee turn (stored directly: these tests are about the rules)."""
    sid = p.start("ana", "test-dana")
    turn = p.store.add_turn(sid, "counselor", "It sounds like work has been heavy.")
    p.store.add_codes(turn.id, "miti-4.2.1", {"behaviour": "SR"}, coder="offline")
    return sid, turn.id


def test_who_may_see_and_write_a_session(practice: Practice) -> None:
    sid, _ = a_session(practice)
    user = practice.store.get_user
    assert session_for(practice.store, sid, user("ana"), write=True).session_id == sid
    assert session_for(practice.store, sid, user("sue")).session_id == sid  # her cohort
    assert session_for(practice.store, sid, user("root")).session_id == sid
    refusals = [(user("ben"), False), (user("sam"), False), (user("sue"), True),
                (user("root"), True)]
    messages = set()
    for who, write in refusals:
        with pytest.raises(NotFoundOrNoAccess) as exc:
            session_for(practice.store, sid, who, write=write)
        messages.add(str(exc.value))
    with pytest.raises(NotFoundOrNoAccess) as unknown:
        session_for(practice.store, "no-such-session", user("ana"))
    assert messages == {str(unknown.value)}  # a forbidden id and an unknown one look the same


def test_a_correction_is_checked_against_the_rubric_the_session_ran_with(
        practice: Practice) -> None:
    sid, turn_id = a_session(practice)
    sue = practice.store.get_user("sue")
    # An educator renames the complex-reflection code after the session was held.
    path = practice.settings.rubrics / "miti-4.2.1.yaml"
    text = path.read_text(encoding="utf-8")
    renamed, n = re.subn(r"(?m)^(\s+- id: )CR\b", r"\1CRX", text)
    assert n == 1
    path.write_text(renamed, encoding="utf-8")
    practice.reload_library()
    with pytest.raises(InvalidInput, match="one of its codes"):
        reviews.correct_turn(practice.store, sue, sid, turn_id, "behaviour", "CRX")
    review = reviews.correct_turn(practice.store, sue, sid, str(turn_id), "behaviour", "CR",
                                  "  deeper than a simple reflection  ")
    assert (review.value, review.comment, review.reviewer) == (
        "CR", "deeper than a simple reflection", "sue")
    effective = practice.store.effective_codes(sid)[0]
    assert effective.values["behaviour"] == "CR" and effective.machine["behaviour"] == "SR"


def test_corrections_are_for_reviewers_of_that_cohort_only(practice: Practice) -> None:
    sid, turn_id = a_session(practice)
    with pytest.raises(RoleRefused):
        reviews.correct_turn(practice.store, practice.store.get_user("ben"), sid, turn_id,
                             "behaviour", "CR")
    with pytest.raises(NotFoundOrNoAccess):
        reviews.correct_turn(practice.store, practice.store.get_user("sam"), sid, turn_id,
                             "behaviour", "CR")
    with pytest.raises(NotFoundOrNoAccess):  # a turn of another session
        other, other_turn = a_session(practice)
        reviews.correct_turn(practice.store, practice.store.get_user("sue"), sid, other_turn,
                             "behaviour", "CR")
    assert practice.store.reviews(sid) == []


def test_session_scores_must_be_within_the_items_scale(practice: Practice) -> None:
    sid, _ = a_session(practice)
    sue = practice.store.get_user("sue")
    for bad in (0, 6, None):
        with pytest.raises(InvalidInput, match="within its scale"):
            reviews.score_session_item(practice.store, sue, sid, "empathy", bad)
    with pytest.raises(InvalidInput):
        reviews.score_session_item(practice.store, sue, sid, "no_such_item", 3)
    assert reviews.score_session_item(practice.store, sue, sid, "empathy", 4).value == 4.0


def test_a_self_rating_keeps_what_fits_the_scale_and_is_the_trainees_own(
        practice: Practice) -> None:
    sid, _ = a_session(practice)
    practice.end(sid, "ana")
    items = practice.self_rating_items(sid)
    assert [i.id for i in items][:2] == ["cultivating_change_talk", "softening_sustain_talk"]
    stored = practice.rate_self(sid, practice.store.get_user("ana"), [4, 9, "x", None],
                                "  felt rushed  ")
    assert stored == {"cultivating_change_talk": 4, "comment": "felt rushed"}
    assert practice.store.get_session(sid).self_rating == stored
    with pytest.raises(NotFoundOrNoAccess):
        practice.rate_self(sid, practice.store.get_user("ben"), [1])
