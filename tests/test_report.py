"""Reports: all three formats from a stored session, escaping, rewind, highlights tied to quotes,
self-contained HTML, progress, export, and the CLI verbs over a real database file."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from content_fixtures import code, fill_session, new_session

from simulator.reports.export import write_export
from simulator.reports.progress import build_progress, render_progress
from simulator.reports.render import (
    NO_TRAINEE_TURNS,
    build_report,
    md_escape,
    render,
    render_report,
    trainee_turn_numbers,
)
from simulator.store import Store, open_store

ROOT = Path(__file__).resolve().parent.parent
FEEDBACK = ROOT / "feedback"
XSS = "<script>alert(1)</script>"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = open_store(tmp_path / "r.db")
    s.add_user("alex", "trainee", cohort="spring")
    yield s
    s.close()


def played(store: Store, trainee: str = "alex") -> str:
    sid = new_session(store, trainee)
    fill_session(store, sid)
    return sid


def test_all_three_formats(store: Store) -> None:
    sid = played(store)
    store.end_session(sid)
    assert [s.session_id for s in store.list_sessions(trainee="alex")] == [sid]
    html = render_report(store, sid, "html", feedback_dir=FEEDBACK)
    md = render_report(store, sid, "md", feedback_dir=FEEDBACK)
    data = json.loads(render_report(store, sid, "json", feedback_dir=FEEDBACK))
    for text in (html, md):
        assert "Reflection-to-question ratio" in text and "Complex reflection" in text
        assert "wouldn't get in the van" in text or "wouldn&#39;t get in the van" in text
    assert data["session"]["session_id"] == sid
    rq = next(m for m in data["scores"]["metrics"] if m["id"] == "R_Q")
    assert rq["display"] == "1.2" and rq["verdict"] == "fair"  # 5 reflections / 4 questions
    assert html.count("<svg") == 3 and "<script" not in html
    assert "| Reflection-to-question ratio | 1.2 | fair | 1.0 | 2.0 |" in md


def test_html_is_self_contained(store: Store) -> None:
    html = render_report(store, played(store), "html", feedback_dir=FEEDBACK)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "@import" not in html and "url(http" not in html
    assert "<!DOCTYPE svg" not in html and "<?xml" not in html


def test_trainee_script_is_escaped(store: Store) -> None:
    sid = played(store)
    t = store.add_turn(sid, "counselor", f"{XSS} how are you **really**?")
    store.add_codes(t.id, "test-miti", code("OQ"), coder="offline")
    store.add_review(sid, reviewer="sup", turn_id=t.id, comment=f"{XSS} odd turn")
    html = render_report(store, sid, "html", feedback_dir=FEEDBACK)
    assert XSS not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    md = render_report(store, sid, "md", feedback_dir=FEEDBACK)
    assert XSS not in md and "&lt;script&gt;" in md and r"\*\*really\*\*" in md
    assert md_escape("a | b\nc") == r"a \| b c"


def test_report_reflects_current_branch_after_rewind(store: Store) -> None:
    sid = new_session(store)
    fill_session(store, sid)
    # Rewind to the persuading turn (position 10) and retry it with a complex reflection.
    assert store.current_turns(sid)[10].text.startswith("You need to cut down")
    store.rewind(sid, 10)
    t = store.add_turn(sid, "counselor", "Your job makes cutting down feel impossible.")
    store.add_codes(t.id, "test-miti", code("CR"), coder="offline")
    store.add_turn(sid, "client", "Exactly, nobody gets that.", act="elaborate",
                   state={"rapport": 0.5, "resistance": 0.35})
    report = build_report(store, sid, feedback_dir=FEEDBACK)
    texts = [line.text for line in report.transcript]
    assert "Your job makes cutting down feel impossible." in texts
    assert not any(x.startswith("You need to cut down") for x in texts)
    assert report.scores.counts["PERSUADE"] == 0 and report.scores.counts["CR"] == 1
    assert report.abandoned_branches == 1 and report.abandoned_turns == 14
    assert len(store.all_turns(sid)) == len(texts) + 14  # both branches kept
    assert all(h.codes != ["PERSUADE"] for h in report.growth)
    html = render(report, "html", feedback_dir=FEEDBACK)
    assert "You need to cut down" not in html and "abandoned branch" in html


def test_highlights_quote_turns_and_use_rubric_wording(store: Store) -> None:
    report = build_report(store, played(store), feedback_dir=FEEDBACK)
    assert len(report.strengths) == 3 and len(report.growth) == 3
    first = report.strengths[0]
    assert first.codes == ["CR"] and first.count == 2
    assert first.coaching == ["Complex reflections add meaning and invite the client to go deeper."]
    assert [q.idx for q in first.quotes] == [14, 16] and first.quotes[0].client_reply
    growth = {tuple(h.codes): h for h in report.growth}
    assert growth[("PERSUADE",)].quotes[0].text.startswith("You need to cut down")
    run = growth[("CQ",)]
    assert run.run == 3 and [q.idx for q in run.quotes] == [2, 4, 6]
    assert "how or what" in run.coaching[0]


def test_facts_risks_alternatives_reviews_self_rating(store: Store) -> None:
    sid = played(store)
    t = store.add_turn(sid, "counselor", "Have you had any thoughts of suicide lately?")
    store.add_codes(t.id, "test-miti", code("CQ"), coder="offline")
    store.add_turn(sid, "client", "Some nights I think they'd all be better off without me.",
                   act="disclose", fact_id="hopeless", state={"rapport": 0.7, "resistance": 0.2})
    store.set_self_rating(sid, {"partnership": 4, "comment": "Went well"})
    store.add_review(sid, reviewer="sup", item_id="empathy", value=3, comment="Warm overall")
    report = build_report(store, sid, feedback_dir=FEEDBACK)
    facts = {f.id: f for f in report.facts}
    assert facts["daughter"].elicited and facts["hopeless"].elicited and facts["hopeless"].risk
    risks = {r.item: r for r in report.risk_checks}
    assert risks["suicidal thoughts"].asked and not risks["drink driving"].asked
    assert [a.idx for a in report.alternatives] == [2, 4, 6]  # graded turns with one
    (note,) = report.reviews
    assert note.has_correction and note.corrected_value == 3 and note.item_title == "Empathy"
    assert report.scores.item("empathy").source == "supervisor"
    rows = {r.id: r for r in report.self_rating}
    # partnership estimate: 2 + (1 AF + 1 EMPHASIZE) / 2 - 1 PERSUADE = 2
    assert rows["partnership"].self_score == 4 and rows["partnership"].score == 2.0
    assert report.self_comment == "Went well"
    assessment = new_session(store, mode="assessment")
    fill_session(store, assessment)
    assert build_report(store, assessment, feedback_dir=FEEDBACK).alternatives == []


def test_progress_trainee_and_cohort(store: Store) -> None:
    store.add_user("bo", "trainee", cohort="spring")
    for who in ("alex", "alex", "bo"):
        played(store, who)
    p = build_progress(store, trainee="alex")
    assert p.scope == "trainee" and len(p.sessions) == 2
    assert p.sessions[0].metrics["R_Q"].display == "1.2"
    md = render_progress(p, "md", feedback_dir=FEEDBACK)
    assert "| 1 |" in md and "| 2 |" in md and "Reflection-to-question ratio" in md
    html = render_progress(p, "html", feedback_dir=FEEDBACK)
    assert html.count("<svg") == 1
    c = build_progress(store, cohort="spring")
    assert [t.trainee for t in c.trainees] == ["alex", "bo"] and c.trainees[0].sessions == 2
    assert len(c.by_session_number) == 2
    assert "Mean by session number" in render_progress(c, "md", feedback_dir=FEEDBACK)
    with pytest.raises(ValueError, match="no sessions"):
        build_progress(store, trainee="nobody")


def test_export_csv_and_jsonl(store: Store) -> None:
    sid = played(store)
    store.add_turn(sid, "counselor", "=HYPERLINK(\"http://x\")")
    store.rewind(sid, 24)
    buf = io.StringIO()
    assert write_export(store, "jsonl", buf, pseudonymize=True) == 25
    rows = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert rows[0]["trainee"].startswith("t-") and rows[0]["effective_codes"]["behaviour"] == "Q"
    assert rows[-1]["abandoned_branch"] == 1
    out = io.StringIO()
    write_export(store, "csv", out)
    table = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(table) == 25 and table[0]["code.behaviour"] == "Q"
    assert table[-1]["text"].startswith("'=")  # formula neutralised for spreadsheets


def test_cli_verbs(tmp_path: Path, cli) -> None:
    db = tmp_path / "cli.db"
    env = {"COUNSELSIM_DB": str(db), "COUNSELSIM_FEEDBACK": str(FEEDBACK)}
    store = open_store(db)
    sid = played(store)
    store.end_session(sid)
    store.close()
    listed = cli("sessions", "list", "--trainee", "alex", "--json", env=env)
    assert listed.exit_code == 0, listed.stderr
    assert json.loads(listed.stdout.splitlines()[-1])["sessions"][0]["session_id"] == sid
    for fmt in ("html", "md", "json"):
        out = tmp_path / f"report.{fmt}"
        r = cli("report", sid[:8], "--format", fmt, "--out", str(out), env=env)
        assert r.exit_code == 0, r.stderr
        assert out.stat().st_size > 1000
    assert json.loads((tmp_path / "report.json").read_text())["session"]["session_id"] == sid
    missing = cli("report", "nope", env=env)
    assert missing.exit_code == 1 and "no session matches" in missing.stderr
    exp = cli("export", "--format", "csv", env=env)
    assert exp.exit_code == 0 and exp.stdout.startswith("session_id,")
    prog = cli("progress", "--trainee", "alex", "--format", "json", env=env)
    assert prog.exit_code == 0 and json.loads(prog.stdout)["sessions"][0]["session_id"] == sid


def test_trainee_turns_are_numbered_along_their_own_branch(store: Store) -> None:
    sid = new_session(store)
    fill_session(store, sid)
    store.rewind(sid, 10)  # the sixth trainee turn ("You need to cut down...") is tried again
    t = store.add_turn(sid, "counselor", "Your job makes cutting down feel impossible.")
    store.add_codes(t.id, "test-miti", code("CR"), coder="offline")
    every = store.all_turns(sid)
    number = trainee_turn_numbers(every)
    by_text = {(x.text, x.abandoned_branch is None): number[x.id] for x in every}
    assert by_text[("What brings you in today?", True)] == 1
    assert by_text[("Your job makes cutting down feel impossible.", True)] == 6
    assert by_text[("You need to cut down, it's damaging your liver.", False)] == 6
    assert by_text[("You drink most nights.", False)] == 7  # numbered on its abandoned branch
    assert by_text[("Yes, but you don't know my job.", False)] == 6  # the client answers turn 6
    assert by_text[("The doctor sent me.", True)] == 1
    report = build_report(store, sid, feedback_dir=FEEDBACK)
    assert [line.turn for line in report.transcript if line.speaker == "counselor"] == [
        1, 2, 3, 4, 5, 6]
    assert "6 · You" in render(report, "html", feedback_dir=FEEDBACK)


def test_a_session_with_no_trainee_turn_says_so(store: Store) -> None:
    sid = new_session(store)
    store.add_turn(sid, "client", "Hi. The doctor sent me.", act="opening")
    report = build_report(store, sid, feedback_dir=FEEDBACK)
    assert report.trainee_turns == 0 and report.notice == NO_TRAINEE_TURNS
    assert report.globals_status == "not_needed"
    html = render(report, "html", feedback_dir=FEEDBACK)
    md = render(report, "md", feedback_dir=FEEDBACK)
    for text in (html, md):
        assert "No trainee turns yet" in text and "Summary scores" not in text
    assert json.loads(render(report, "json"))["notice"] == NO_TRAINEE_TURNS


def test_a_code_is_never_both_a_strength_and_a_growth_area(store: Store) -> None:
    sid = new_session(store)
    script = [("So you feel stuck.", "SR", "Yes.", "elaborate", None, 0.4, 0.4),
              ("Do you drink daily?", "CQ", "Yes.", "short_answer", None, 0.4, 0.4),
              ("You drink most nights.", "SR", "I do.", "elaborate", None, 0.4, 0.4)]
    fill_session(store, sid, script)
    report = build_report(store, sid, feedback_dir=FEEDBACK)
    praised = {c for h in report.strengths for c in h.codes}
    criticised = {c for h in report.growth for c in h.codes}
    assert praised == {"SR"}  # the only strength rule that matches
    assert "CQ" in criticised and not praised & criticised  # the SR growth rule is skipped


def test_risk_not_assessed_is_a_warning_and_risk_questions_are_never_criticised(
        store: Store) -> None:
    sid = played(store)
    t = store.add_turn(sid, "counselor", "Do thoughts of suicidal feelings ever come?")
    store.add_codes(t.id, "test-miti", code("CQ"), coder="offline",
                    labels={"behaviour": "question", "utterances": [
                        {"text": t.text, "start": 0, "end": len(t.text), "behaviour": "Q",
                         "risk": ["ideation"]}]})
    store.add_grade(t.id, "test-miti", values=code("CQ"), rationale="closed",
                    alternative="What else can you tell me about that?", model="fake")
    store.add_turn(sid, "client", "Some nights I think they'd all be better off without me.",
                   act="disclose", fact_id="hopeless")
    store.end_session(sid)
    report = build_report(store, sid, feedback_dir=FEEDBACK)
    risks = {r.item: r for r in report.risk_checks}
    assert risks["suicidal thoughts"].asked and report.risk_not_assessed == ["drink driving"]
    assert t.idx not in [a.idx for a in report.alternatives]  # a risk question is not rewritten
    for h in report.growth:
        assert t.idx not in [q.idx for q in h.quotes]
    (d,) = report.risk_disclosures
    assert not d.followed_up and d.reply is None
    md = render(report, "md", feedback_dir=FEEDBACK)
    html = render(report, "html", feedback_dir=FEEDBACK)
    assert "⚠ Risk not assessed.** This client's risk items" in md and "drink driving" in md
    assert 'class="warn" role="alert"' in html and "Risk disclosure not followed up" in html


def test_ratio_verdicts_need_enough_events(store: Store) -> None:
    sid = new_session(store)
    fill_session(store, sid, [("You drink most nights.", "SR", "Yeah.", "short_answer", None,
                               0.4, 0.4),
                              ("Part of you is tired of it.", "CR", "Maybe.", "elaborate", None,
                               0.4, 0.4)])
    report = build_report(store, sid, feedback_dir=FEEDBACK)
    pct = report.scores.metric("pct_CR")
    assert pct.display == "50%" and pct.verdict is None and pct.insufficient
    assert pct.evidence_n == 2 and pct.evidence_of == "SR + CR"
    md = render(report, "md", feedback_dir=FEEDBACK)
    assert "no verdict: 2 (SR + CR), needs 5" in md


def test_utterance_codes_are_shown_when_the_coder_gives_them(store: Store) -> None:
    """A coder that segments turns (CounselorLabels.utterances) gets each utterance's code in
    the transcript: "reflection + question" no longer reads as a question only."""
    sid = new_session(store)
    t = store.add_turn(sid, "counselor", "You're worried about the van. What happened?")
    store.add_codes(t.id, "test-miti", code("OQ"), coder="offline", labels={
        "behaviour": "question", "utterances": [
            {"text": "You're worried about the van.", "start": 0, "end": 29, "behaviour": "SR",
             "risk": []},
            {"text": "What happened?", "start": 30, "end": 44, "behaviour": "Q", "risk": []}]})
    store.add_turn(sid, "client", "She wouldn't get in.", act="elaborate")
    report = build_report(store, sid, feedback_dir=FEEDBACK)
    line = next(x for x in report.transcript if x.speaker == "counselor")
    assert [(u.code, u.text) for u in line.utterances] == [
        ("SR", "You're worried about the van."), ("Q", "What happened?")]
    md = render(report, "md", feedback_dir=FEEDBACK)
    assert "by utterance: `SR` “You're worried about the van.” · `Q` “What happened?”" in md
    assert "`SR` &ldquo;" not in md
    html = render(report, "html", feedback_dir=FEEDBACK)
    assert '<div class="utt"><span class="code">SR</span>' in html
