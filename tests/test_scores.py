"""Session scores against hand-computed values (rubric in tests/content_fixtures.py)."""

from __future__ import annotations

import pytest
from content_fixtures import code, fill_session, new_session, rubric

from simulator.content.rubric import Thresholds
from simulator.grader.scores import compute_scores, session_scores, verdict_for
from simulator.store import StoredItemScore, open_store


def turns(*codes: str) -> list[dict]:
    return [code(c) for c in codes]


def test_hand_computed_ratio_and_percent() -> None:
    # 4 SR + 2 CR + 3 Q (2 open, 1 closed): R:Q = 6/3 = 2.0 (good), %CR = 2/6 = 33% (below fair)
    s = compute_scores(rubric(), turns("SR", "SR", "SR", "SR", "CR", "CR", "OQ", "OQ", "CQ"))
    rq, cr = s.metric("R_Q"), s.metric("pct_CR")
    assert rq.value == pytest.approx(2.0) and rq.verdict == "good" and rq.display == "2.0"
    assert cr.value == pytest.approx(1 / 3) and cr.verdict == "below fair" and cr.display == "33%"
    assert cr.fair_display == "40%" and cr.good_display == "50%"
    assert s.counts["SR"] == 4 and s.counts["CR"] == 2 and s.counts["Q"] == 3
    assert s.counts["OQ"] == 2 and s.counts["CQ"] == 1 and s.counts["NQ"] == 6
    assert s.counts["PERSUADE"] == 0 and s.n_turns == 9


def test_fair_boundary_and_no_questions() -> None:
    s = compute_scores(rubric(), turns("SR", "CR", "CQ", "OQ", "SR", "CR", "CQ", "OQ", "SR",
                                       "CR"))
    assert s.metric("R_Q").value == 1.5 and s.metric("R_Q").verdict == "fair"
    assert s.metric("pct_CR").display == "50%" and s.metric("pct_CR").verdict == "good"
    none = compute_scores(rubric(), turns("SR", "AF"))
    assert none.metric("R_Q").value is None and none.metric("R_Q").verdict is None
    assert none.metric("R_Q").display == "n/a"


def test_no_ratio_verdict_on_too_few_behaviours() -> None:
    """Two reflections say nothing about %CR: the value is shown, the verdict is withheld."""
    s = compute_scores(rubric(), turns("SR", "CR", "CQ", "OQ"))
    rq, cr = s.metric("R_Q"), s.metric("pct_CR")
    assert rq.value == 1.0 and rq.verdict is None and rq.insufficient and rq.evidence_n == 4
    assert cr.display == "50%" and cr.verdict is None and cr.evidence_of == "SR + CR"
    assert cr.evidence_n == 2
    assert s.metric("non_adherent").verdict is not None  # counts, not ratios, keep theirs


def test_groups_and_lower_is_better() -> None:
    s = compute_scores(rubric(), turns("AF", "SEEK", "PERSUADE", "CONFRONT", "PERSUADE_WITH"))
    assert s.group_counts == {"mi_adherent": 3, "mi_non_adherent": 2}
    na = s.metric("non_adherent")
    assert na.value == 2 and na.verdict == "below fair" and not na.higher_is_better
    assert compute_scores(rubric(), turns("PERSUADE")).metric("non_adherent").verdict == "fair"
    assert compute_scores(rubric(), turns("SR")).metric("non_adherent").verdict == "good"


def test_verdict_for_both_directions() -> None:
    t = Thresholds(fair=1, good=2)
    assert [verdict_for(v, t) for v in (0.99, 1, 1.99, 2)] == [
        "below fair", "fair", "fair", "good"]
    lo = Thresholds(fair=2, good=1)
    assert [verdict_for(v, lo, False) for v in (0, 1, 2, 3)] == [
        "good", "good", "fair", "below fair"]


def test_estimates_are_labelled_and_grader_scores_win() -> None:
    # 2 AF, 1 SEEK, 1 PERSUADE over 4 turns: partnership = clamp(2 + 3/2 - 1, 1, 5) = 2.5
    # empathy = clamp(1 + 0 + 0, 1, 5) = 1; relational = (2.5 + 1) / 2 = 1.75
    s = compute_scores(rubric(), turns("AF", "AF", "SEEK", "PERSUADE"))
    assert s.item("partnership").score == 2.5 and s.item("partnership").source == "estimate"
    assert s.item("empathy").score == 1.0
    rel = s.metric("relational")
    assert rel.value == pytest.approx(1.75) and rel.estimate and rel.verdict == "below fair"
    assert s.estimated
    graded = compute_scores(rubric(), turns("AF"), session_items={
        "partnership": StoredItemScore(score=4, evidence=["It's your call"]),
        "empathy": StoredItemScore(score=4.5)})
    assert graded.item("partnership").source == "grader" and not graded.estimated
    rel = graded.metric("relational")
    assert rel.value == 4.25 and rel.verdict == "good"
    assert not graded.metric("relational").estimate
    fixed = compute_scores(rubric(), turns("AF"),
                           session_items={"empathy": StoredItemScore(score=4.5)},
                           corrections={"empathy": 2})
    assert fixed.item("empathy").score == 2 and fixed.item("empathy").source == "supervisor"
    assert fixed.item("empathy").machine_score == 4.5


def test_scalar_item_means() -> None:
    s = compute_scores(rubric(), [{**code("SR"), "empathy_turn": 2},
                                  {**code("CR"), "empathy_turn": 5}, code("CQ")])
    (m,) = s.item_means
    assert m.id == "empathy_turn" and m.mean == 3.5 and m.n == 2


def test_session_scores_use_supervisor_corrections(tmp_path) -> None:
    store = open_store(tmp_path / "db.sqlite")
    sid = new_session(store)
    fill_session(store, sid)
    s = session_scores(store, sid)
    # SCRIPT: SR x3, CR x2, Q x4 (1 OQ + 3 CQ), PERSUADE, AF, EMPHASIZE
    assert (s.counts["SR"], s.counts["CR"], s.counts["Q"]) == (3, 2, 4)
    assert s.metric("R_Q").value == pytest.approx(5 / 4) and s.metric("R_Q").verdict == "fair"
    assert s.metric("pct_CR").value == pytest.approx(0.4) and s.metric("pct_CR").verdict == "fair"
    # A supervisor recodes the last simple reflection as complex: 3 CR of 5 -> 60%, good.
    last_sr = [e for e in store.effective_codes(sid) if e.values["behaviour"] == "SR"][-1]
    store.add_review(sid, reviewer="sup", turn_id=last_sr.turn.id, item_id="behaviour", value="CR")
    s2 = session_scores(store, sid)
    assert s2.metric("pct_CR").value == pytest.approx(0.6) and s2.metric("pct_CR").verdict == "good"
