"""The shipped persona and rubric library: complete, consistent, safe for the offline engine.

These tests pin what the client engine and the grader rely on (MITI code ids, every act authored,
hidden facts that never leak before they unlock) and what educators were promised (a varied
library, every rubric scale anchored, committed JSON schemas that are never stale).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from simulator.content.formula import FormulaError, evaluate, formula_names
from simulator.content.library import Library, load_library
from simulator.content.loader import ContentErrors, load_model_text
from simulator.content.persona import CLIENT_ACTS, Persona, mentions
from simulator.content.rubric import Rubric
from simulator.content.schemas import schema_for, schema_path

ROOT = Path(__file__).resolve().parent.parent
PERSONA_DIR, RUBRIC_DIR = ROOT / "personas", ROOT / "rubrics"


@pytest.fixture(scope="module")
def lib() -> Library:
    return load_library([PERSONA_DIR], [RUBRIC_DIR])


@pytest.fixture(scope="module")
def miti(lib: Library) -> Rubric:
    return lib.rubric("miti-4.2.1")


def test_library_loads_without_errors(lib: Library):
    assert lib.errors == {}
    assert len(lib.personas) >= 9
    assert {"miti-4.2.1", "helping-skills", "cbt-ctrs"} <= set(lib.rubrics)


@pytest.mark.parametrize("path", sorted([*PERSONA_DIR.glob("*.yaml"), *RUBRIC_DIR.glob("*.yaml")]),
                         ids=lambda p: p.name)
def test_files_start_with_schema_comment(path: Path):
    kind = "persona" if path.parent.name == "personas" else "rubric"
    first = path.read_text(encoding="utf-8").splitlines()[0]
    schema = f"../simulator/content/schemas/{kind}.schema.json"
    assert first == f"# yaml-language-server: $schema={schema}"
    assert (path.parent / f"../simulator/content/schemas/{kind}.schema.json").resolve().is_file()


@pytest.mark.parametrize("kind", ["persona", "rubric"])
def test_committed_schema_is_current(kind: str):
    committed = json.loads(schema_path(kind).read_text(encoding="utf-8"))
    assert committed == schema_for(kind), (
        f"simulator/content/schemas/{kind}.schema.json is stale: run "
        f"`counselsim schema {kind} > simulator/content/schemas/{kind}.schema.json`")


# --- MITI 4.2.1: the engine's skill vocabulary -------------------------------------------------

def test_miti_codes_groups_and_thresholds(miti: Rubric):
    items = {i.id: i for i in miti.turn_items}
    behaviour, qtype = items["behaviour"], items["question_type"]
    assert {c.id for c in behaviour.codes} == {
        "GI", "PERSUADE", "PERSUADE_WITH", "Q", "SR", "CR", "AF", "SEEK", "EMPHASIZE", "CONFRONT",
        "NC"}
    assert behaviour.default_code == "NC"
    assert [c.id for c in qtype.codes] == ["OQ", "CQ", "NQ"] and qtype.default_code == "NQ"
    groups = {g.id: set(g.codes) for g in miti.groups}
    # MITI 4.2.1 Summary Scores: Total MI-adherent = Seek + Affirm + Emphasize; Persuade with
    # permission counts in neither total
    assert groups["mi_adherent"] == {"AF", "SEEK", "EMPHASIZE"}
    assert groups["mi_non_adherent"] == {"PERSUADE", "CONFRONT"}
    metrics = {m.id: m for m in miti.metrics}
    expected = {"r_q": (1, 2, "ratio"), "pct_cr": (0.4, 0.5, "percent"),
                "technical": (3, 4, "number"), "relational": (3.5, 4, "number")}
    for mid, (fair, good, fmt) in expected.items():
        t = metrics[mid].thresholds
        assert t is not None and (t.fair, t.good, metrics[mid].format) == (fair, good, fmt)
    assert metrics["total_minon"].higher_is_better is False
    assert metrics["total_mia"].thresholds is None and metrics["total_minon"].thresholds is None
    assert {s.id for s in miti.session_items} == {
        "cultivating_change_talk", "softening_sustain_talk", "partnership", "empathy"}
    for code in behaviour.codes + qtype.codes:
        assert code.definition.strip()
        if code.id not in {"NQ"}:
            assert code.coaching.strip(), code.id
            assert code.examples.positive, code.id


def _first_cue(rubric: Rubric, item_id: str, text: str) -> str | None:
    """The code whose cue matches first, in the item's order (how the offline coder uses cues)."""
    item = next(i for i in rubric.turn_items if i.id == item_id)
    for code in item.codes:
        if any(re.search(c, text, re.IGNORECASE) for c in code.offline.cues):
            return code.id
    return None


CUE_CASES = [
    ("You've worked really hard to get here.", "AF"),
    ("That took courage, telling your daughter.", "AF"),
    ("That's a great idea.", "AF"),
    ("It's really up to you.", "EMPHASIZE"),
    ("In the end it's your decision.", "EMPHASIZE"),
    ("You're the one who knows what fits your life.", "EMPHASIZE"),
    ("What do you think might work for you?", "SEEK"),
    ("Would it be OK if we looked at this together?", "SEEK"),
    # asking permission is Seeking collaboration (MITI 4.2.1); the advice given with it is PW
    ("Would it be ok if I shared some information about that?", "SEEK"),
    ("May I share a concern?", "SEEK"),
    ("If you'd like, I could tell you what other people have tried.", "SEEK"),
    ("This may or may not work for you, but some people use patches.", "PERSUADE_WITH"),
    ("You need to stop drinking.", "CONFRONT"),
    ("Honestly, you're in denial.", "CONFRONT"),
    ("You have to admit it's a problem.", "CONFRONT"),
    ("That's just an excuse.", "CONFRONT"),
    ("You're kidding yourself.", "CONFRONT"),
    ("You should cut down.", "PERSUADE"),
    ("I think you need to see your doctor.", "PERSUADE"),
    ("Why don't you try the patches?", "PERSUADE"),
    ("I'd recommend you start walking.", "PERSUADE"),
    ("Mm-hmm.", "NC"),
    # issue 18's hand-coded misses
    ("That's not a good enough reason to miss class.", "CONFRONT"),
    ("You're not being honest with yourself.", "CONFRONT"),
    ("Drinking every night adds up, so you should think about cutting back.", "PERSUADE"),
]

NOT_CUED = [  # ordinary reflections and questions that no cue may claim
    "You feel like you should cut down, but you're not sure you can.",
    "You think you need to do something about it.",
    "Your wife says you need to stop.",
    "It sounds like everyone keeps telling you what you should do.",
    "What do you think you need to do next?",
    "You're worried about what your doctor said.",
    "Part of you wants to quit and part of you isn't ready.",
    "You made a decision to quit once before.",
    "Why don't you tell me a bit more about that?",
    "You've been drinking more since your father died.",
    "So you and your husband got back together last year.",
    "You must be exhausted.",
    "You should be proud of that.",  # an affirmation, never persuasion
]


@pytest.mark.parametrize(("text", "code"), CUE_CASES)
def test_miti_cue_matches(miti: Rubric, text: str, code: str):
    assert _first_cue(miti, "behaviour", text) == code


@pytest.mark.parametrize("text", NOT_CUED)
def test_miti_cues_leave_reflections_alone(miti: Rubric, text: str):
    assert _first_cue(miti, "behaviour", text) in (None, "AF")


def test_miti_cues_against_offline_coder_mapping(miti: Rubric):
    from simulator.coder.labels import CounselorLabels
    from simulator.coder.rubric_codes import code_turn

    def codes(behaviour: str, subtype: str | None, text: str) -> list[str]:
        labels = CounselorLabels.model_validate({"behaviour": behaviour, "subtype": subtype})
        return code_turn(labels, text, miti).code_list()

    assert codes("reflection", "complex", "So on one hand it helps you relax.") == ["CR", "NQ"]
    assert codes("question", "open", "What would be different?") == ["Q", "OQ"]
    assert codes("therapist_input", "advice", "Try cutting down to weekends.") == ["PERSUADE", "NQ"]
    assert codes("therapist_input", "options", "There are a few ways people go about it.")[0] == (
        "EMPHASIZE")
    assert codes("therapist_input", "negotiation", "Shall we pick one to look at?")[0] == "SEEK"
    assert codes("other", None, "You've worked so hard on this.")[0] == "AF"


# --- all rubrics ----------------------------------------------------------------------------------

@pytest.mark.parametrize("rubric_id", ["miti-4.2.1", "helping-skills", "cbt-ctrs"])
def test_rubric_scales_are_fully_anchored(lib: Library, rubric_id: str):
    rubric = lib.rubric(rubric_id)
    assert rubric.session_items and rubric.metrics and rubric.groups
    for s in rubric.session_items:
        assert sorted(a.score for a in s.anchors) == list(range(s.min, s.max + 1)), s.id
        assert s.estimate, s.id
    for item in rubric.turn_items:
        assert item.default_code is not None
        for code in item.codes:
            assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,31}", code.id)
            assert code.definition.strip() and code.examples.positive, code.id


def test_ctrs_items_are_scored_0_to_6(lib: Library):
    ctrs = lib.rubric("cbt-ctrs")
    assert len(ctrs.session_items) == 11
    assert all((s.min, s.max) == (0, 6) for s in ctrs.session_items)


def test_helping_skills_groups_follow_hills_stages(lib: Library):
    hs = lib.rubric("helping-skills")
    groups = {g.id: set(g.codes) for g in hs.groups}
    assert {"exploration", "insight", "action"} <= set(groups)
    assert {"open_question", "restatement", "reflection_of_feelings"} <= groups["exploration"]
    assert {"challenge", "interpretation", "immediacy"} <= groups["insight"]
    assert {"information", "direct_guidance"} <= groups["action"]


# --- formulas ------------------------------------------------------------------------------------

def _metric(rubric: Rubric, metric_id: str) -> str:
    return next(m.formula for m in rubric.metrics if m.id == metric_id)


def test_miti_formulas_against_hand_computed_values(miti: Rubric):
    counts = {"SR": 6, "CR": 4, "Q": 5, "AF": 2, "SEEK": 1, "EMPHASIZE": 1, "PERSUADE_WITH": 0,
              "PERSUADE": 2, "CONFRONT": 1}
    counts["mi_adherent"] = 4  # SEEK + AF + EMPHASIZE
    counts["mi_non_adherent"] = 3
    assert evaluate(_metric(miti, "r_q"), counts) == pytest.approx(2.0)  # (6+4)/5
    assert evaluate(_metric(miti, "pct_cr"), counts) == pytest.approx(0.4)  # 4/10
    assert evaluate(_metric(miti, "total_mia"), counts) == 4
    assert evaluate(_metric(miti, "total_minon"), counts) == 3
    scores = {"cultivating_change_talk": 3, "softening_sustain_talk": 4, "partnership": 4,
              "empathy": 3}
    assert evaluate(_metric(miti, "technical"), scores) == pytest.approx(3.5)
    assert evaluate(_metric(miti, "relational"), scores) == pytest.approx(3.5)
    # no questions yet: not applicable, not zero
    assert evaluate(_metric(miti, "r_q"), {"SR": 3}) is None
    assert evaluate(_metric(miti, "pct_cr"), {}) is None


def test_miti_empathy_estimate_hand_computed(miti: Rubric):
    empathy = next(s.estimate for s in miti.session_items if s.id == "empathy")
    assert empathy is not None
    # 1 + 5 * (4 + 1.5 * 2) / 20 - 6 * 0 / 20 = 2.75
    assert evaluate(empathy, {"SR": 4, "CR": 2, "total": 20}) == pytest.approx(2.75)
    assert evaluate(empathy, {"SR": 0, "CR": 20, "total": 20}) == 5  # clamped at the top
    assert evaluate(empathy, {"CONFRONT": 10, "total": 10}) == 1  # clamped at the bottom
    assert evaluate(empathy, {}) == 1  # an empty session: max(total, 1) avoids None


def test_ctrs_total(lib: Library):
    ctrs = lib.rubric("cbt-ctrs")
    scores = {s.id: 4 for s in ctrs.session_items}
    assert evaluate(_metric(ctrs, "ctrs_total"), scores) == 44
    assert evaluate(_metric(ctrs, "general_skills"), scores) == 24


def test_formula_language_is_closed():
    assert formula_names("clamp(1 + SR / max(total, 1), 1, 5)") == {"SR", "total"}
    assert evaluate("min(3, 2, 8) + max(1, 4) - -1", {}) == 7
    for bad in ["__import__('os')", "SR ** 2", "SR.real", "[SR]", "True + 1", "clamp(1, 2)",
                "lambda: 1", "'a'", "min()"]:
        with pytest.raises(FormulaError):
            evaluate(bad, {})


# --- personas -----------------------------------------------------------------------------------

def test_every_act_has_four_to_six_lines(lib: Library):
    for persona in lib.personas.values():
        for act in CLIENT_ACTS:
            lines = persona.lines_for(act)
            assert 4 <= len(lines) <= 6, (persona.id, act, len(lines))
            assert len(set(lines)) == len(lines), (persona.id, act, "repeated line")
            assert all(t.strip() and "{" not in persona.fill(t) for t in lines), (persona.id, act)


def test_hidden_facts_mix_unlock_kinds(lib: Library):
    for persona in lib.personas.values():
        facts = persona.hidden_facts
        # up to 6: a risk assessment persona splits its risk (ideation, plan, means ...)
        assert 2 <= len(facts) <= 6, persona.id
        kinds = set()
        for f in facts:
            assert len(f.disclosure) >= 2, (persona.id, f.id)
            assert len(f.keywords) >= 2, (persona.id, f.id, "keywords make the leak check real")
            kinds |= {k for k in ("rapport", "skills", "topics", "about")
                      if getattr(f.unlock, k)}
        assert len(kinds) >= 2, (persona.id, kinds)


def test_offline_lines_never_leak_hidden_facts(lib: Library):
    """No line the client can say before a fact unlocks quotes its disclosure or keywords."""
    for persona in lib.personas.values():
        said = [persona.fill(t).lower() for act in CLIENT_ACTS for t in persona.lines_for(act)]
        for fact in persona.hidden_facts:
            for line in said:
                leaked = [k for k in fact.keywords if mentions(line, k)]
                assert not leaked, (persona.id, fact.id, line)
                for d in fact.disclosure:
                    assert persona.fill(d).lower()[:40] not in line, (persona.id, fact.id)


def test_persona_skill_codes_are_engine_codes(lib: Library, miti: Rubric):
    engine = miti.code_ids()
    for persona in lib.personas.values():
        for f in persona.hidden_facts:
            if f.unlock.skills:
                assert set(f.unlock.skills.codes) <= engine, (persona.id, f.id)


def test_library_covers_the_promised_cases(lib: Library):
    ps = list(lib.personas.values())
    assert all(p.learning_objectives and p.facilitator_notes.strip() and p.principles for p in ps)
    cbt_models = [p for p in ps if p.cognitive_model is not None]
    assert len(cbt_models) >= 2 and all("CBT" in p.tags for p in cbt_models)
    assert any(p.stage_of_change == "precontemplation" and "alcohol" in p.tags for p in ps)
    assert any(p.stage_of_change == "contemplation" and "smoking" in p.tags for p in ps)
    assert any("diabetes" in p.tags for p in ps)
    assert any("bereavement" in p.tags for p in ps)
    assert any(p.identity.age < 18 and p.style.resistance >= 0.7 for p in ps)
    assert any(p.style.conversational_style == "pleasing" for p in ps)
    # variety: ages, pronouns, difficulty
    ages = [p.identity.age for p in ps]
    assert max(ages) - min(ages) >= 40
    assert len({p.identity.pronouns for p in ps}) >= 3
    assert len({p.difficulty for p in ps}) >= 4
    assert len({p.identity.name for p in ps}) == len(ps)


def test_passive_si_persona_discloses_only_after_rapport_and_asking(lib: Library):
    si = [p for p in lib.personas.values() if p.risk.suicidal_ideation == "passive"]
    assert si
    persona = si[0]
    risk_facts = [f for f in persona.hidden_facts if f.risk]
    assert risk_facts
    first = risk_facts[0]
    assert first.unlock.rapport is not None and first.unlock.rapport >= 0.45
    assert first.unlock.about == ["suicide"]  # asked about suicide, recognised by meaning
    # the follow-ups (plan and intent, means, protective factors, safety) come after it
    follow = {f.id: f for f in risk_facts[1:]}
    assert len(follow) >= 4 and all(f.unlock.after == [first.id] for f in follow.values())
    asked = {t for f in follow.values() for t in f.unlock.about}
    assert {"suicide_plan", "suicide_intent", "means", "protective_factors", "safety"} <= asked
    assert persona.risk.must_assess


def test_risk_facts_are_marked_in_must_assess(lib: Library):
    for persona in lib.personas.values():
        if any(f.risk for f in persona.hidden_facts):
            assert persona.risk.must_assess, persona.id


# --- model behaviour that content relies on -----------------------------------------------

def _minimal_persona(extra: str = "") -> str:
    lines = "\n".join(f"  {act}: [\"{act} line\"]" for act in CLIENT_ACTS)
    return f"""\
id: mini
version: 1
title: Mini
tags: [MI]
difficulty: 1
trainee_brief: {{referral: r, setting: s, session_goal: g}}
identity: {{name: Sam, age: 30, pronouns: they/them, background: b, occupation: o}}
presenting_problem: p
history: h
stage_of_change: contemplation
learning_objectives: [listen]
facts:
  answer: no
  country: NO
lines:
{lines}
{extra}"""


def test_yaml_1_2_keeps_no_as_a_string():
    persona = load_model_text(Persona, _minimal_persona(), "mini.yaml")
    assert persona.facts == {"answer": "no", "country": "NO"}


def test_leaking_line_is_reported_at_its_line():
    text = _minimal_persona("""\
hidden_facts:
  - id: secret
    summary: s
    unlock: {rapport: 0.5}
    disclosure: ["I lost my job.", "I was fired."]
    keywords: [fired, lost my job]
""").replace('"deflect line"', '"I got fired, whatever."')
    with pytest.raises(ContentErrors) as info:
        load_model_text(Persona, text, "mini.yaml")
    (err,) = info.value.errors
    assert err.key == "lines.deflect[0]" and "secret" in err.message
    assert err.line == text.splitlines().index('  deflect: ["I got fired, whatever."]') + 1


def test_direct_construction_still_checks_references():
    """Outside the file loader (e.g. the browser editor building a model), checks still raise."""
    from pydantic import ValidationError

    from simulator.content.loader import _plain, load_yaml_text

    tree = load_yaml_text(_minimal_persona().replace('"opening line"', '"Hi {nope}"'), "m.yaml")
    with pytest.raises(ValidationError, match="placeholder"):
        Persona.model_validate(_plain(tree))


def test_rubric_namespace_and_regex_errors_are_placed():
    text = """\
id: r
version: 1
title: R
citation: c
turn_items:
  - id: b
    title: B
    kind: categorical
    definition: d
    codes:
      - {id: A, name: A, definition: a, offline: {cues: ['(unclosed']}}
      - {id: B, name: B, definition: b, offline: {annomi: [question:wide]}}
groups:
  - {id: A, name: clash, codes: [A, Z]}
metrics:
  - {id: m, name: M, formula: "A / Q"}
"""
    with pytest.raises(ContentErrors) as info:
        load_model_text(Rubric, text, "r.yaml")
    keys = {e.key: e.line for e in info.value.errors}
    assert keys == {"turn_items[0].codes[0].offline.cues[0]": 11,
                    "turn_items[0].codes[1].offline.annomi[0]": 12}
    text = text.replace("'(unclosed'", "'ok'").replace("question:wide", "question:open")
    with pytest.raises(ContentErrors) as info:
        load_model_text(Rubric, text, "r.yaml")
    keys = {e.key: e.line for e in info.value.errors}
    assert keys == {"groups[0].id": 14, "groups[0].codes[1]": 14, "metrics[0].formula": 16}


def test_miti_rubric_cites_the_manual_for_every_code_and_formula():
    """Each behaviour code names its MITI 4.2.1 section; the totals and summary formulas too."""
    from simulator.settings import ROOT

    text = (ROOT / "rubrics" / "miti-4.2.1.yaml").read_text(encoding="utf-8")
    for code in ("CONFRONT", "PERSUADE_WITH", "EMPHASIZE", "AF", "SEEK", "PERSUADE", "GI", "Q",
                 "SR", "CR"):
        line = next(x for x in text.splitlines() if x.strip().startswith(f"- id: {code} "))
        assert "# MITI 4.2.1, Behavior Counts:" in line, code
    assert "Total MI-Adherent = Seek + Affirm + Emphasize" in text
    assert "MITI 4.2.1, Summary Scores" in text and "Proficiency thresholds" in text


@pytest.mark.parametrize("text, expected", [
    ("Do you think your drinking is a problem?", "CQ"),
    ("Will you give it a try?", "CQ"),
    ("So, is that every night?", "CQ"),
    ("Could you tell me about a typical day?", "OQ"),
    ("What would be different if you drank less?", None),
    ("Do you drink? What does a typical evening look like?", None),
])
def test_question_type_cues(miti: Rubric, text: str, expected: str | None) -> None:
    assert _first_cue(miti, "question_type", text) == expected


def test_a_fact_that_starts_a_sentence_starts_with_a_capital() -> None:
    from simulator.content.library import load_library

    farida = load_library().persona("farida-passive-si-risk")
    assert farida.facts["father"] == "my father"
    assert farida.fill("{father} wanders at night. So {father} needs me.") == (
        "My father wanders at night. So my father needs me.")


def test_yaml_tags_on_lists_and_maps_are_refused_too() -> None:
    import pytest as _pytest

    from simulator.content.loader import ContentErrors, load_yaml_text

    for text in ("tags: !!python/object/apply:os.system [echo hi]\n", "a: !foo {x: 1}\n"):
        with _pytest.raises(ContentErrors, match="YAML tags"):
            load_yaml_text(text, "p.yaml")
    assert load_yaml_text("a: [1, 2]\nb: {c: d}\n", "p.yaml")["b"]["c"] == "d"


def test_answers_to_the_trainee_need_no_follow_up_but_new_risks_do(lib: Library) -> None:
    """The report flags a risk disclosure the next turn moves away from; agreeing a safety plan
    or naming what keeps her going answers the trainee and is not flagged."""
    farida = lib.persona("farida-passive-si-risk")
    need = {f.id for f in farida.hidden_facts if f.needs_follow_up}
    assert need == {"passive-si", "no-plan-intent", "means-tablets"}
