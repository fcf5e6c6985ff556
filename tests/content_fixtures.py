"""Test content for store/score/report tests: a MITI-like rubric, a persona, a session builder.

Kept here (not read from rubrics/ and personas/) so these tests pin their own hand-computed numbers
and do not move when the shipped library is edited.
"""

from __future__ import annotations

import hashlib
from typing import Any

from simulator.content.loader import load_model_text
from simulator.content.persona import Persona
from simulator.content.rubric import Rubric
from simulator.store import Store

RUBRIC_YAML = """\
id: test-miti
version: 3
title: Test MITI
citation: Moyers et al. (2016), MITI 4.2.1 (test copy)
turn_items:
  - id: behaviour
    title: Behaviour
    kind: categorical
    definition: The main MI behaviour of the turn.
    default_code: NC
    codes:
      - {id: GI, name: Giving information, definition: Gives information.,
         coaching: "Information is best offered with permission and followed by a question."}
      - {id: PERSUADE, name: Persuade, definition: Tries to change opinions.,
         coaching: "Persuading without permission raises resistance: ask first, then offer."}
      - {id: PERSUADE_WITH, name: Persuade with permission, definition: Asks first.,
         coaching: "Asking permission before offering advice keeps the client in charge."}
      - {id: Q, name: Question, definition: Any question.,
         coaching: "Questions gather information; follow each answer with a reflection."}
      - {id: SR, name: Simple reflection, definition: Repeats or rephrases.,
         coaching: "A simple reflection shows you heard; try adding meaning to deepen it."}
      - {id: CR, name: Complex reflection, definition: Adds meaning.,
         coaching: "Complex reflections add meaning and invite the client to go deeper."}
      - {id: AF, name: Affirm, definition: States something positive.,
         coaching: "Affirming the client's strengths builds confidence and rapport."}
      - {id: SEEK, name: Seeking collaboration, definition: Seeks collaboration.,
         coaching: "Seeking the client's ideas makes the plan theirs."}
      - {id: EMPHASIZE, name: Emphasizing autonomy, definition: Highlights choice.,
         coaching: "Emphasising autonomy lowers resistance: the choice is the client's."}
      - {id: CONFRONT, name: Confront, definition: Argues or shames.,
         coaching: "Confronting raises defensiveness; reflect the other side instead."}
      - {id: NC, name: Not coded, definition: Filler.}
  - id: question_type
    title: Question type
    kind: categorical
    definition: Open or closed.
    default_code: NQ
    codes:
      - {id: OQ, name: Open question, definition: Invites a long answer.,
         coaching: "Open questions invite the client to tell their story."}
      - {id: CQ, name: Closed question, definition: Yes/no or short answer.,
         coaching: "Runs of closed questions get short answers; open one up with how or what."}
      - {id: NQ, name: Not a question, definition: No question.}
  - id: empathy_turn
    title: Empathy in this turn
    kind: scalar
    definition: How well the turn conveys understanding.
    min: 1
    max: 5
    anchors: [{score: 1, description: none}, {score: 5, description: deep}]
session_items:
  - id: partnership
    title: Partnership
    definition: Shared power.
    min: 1
    max: 5
    anchors: [{score: 1, description: expert}, {score: 5, description: partners}]
    estimate: "clamp(2 + (AF + SEEK + EMPHASIZE) / 2 - PERSUADE - CONFRONT, 1, 5)"
  - id: empathy
    title: Empathy
    definition: Understanding of the client's perspective.
    min: 1
    max: 5
    anchors: [{score: 1, description: none}, {score: 5, description: deep}]
    estimate: "clamp(1 + 4 * CR / max(total, 1) + 2 * SR / max(total, 1), 1, 5)"
groups:
  - {id: mi_adherent, name: MI-adherent, codes: [AF, SEEK, EMPHASIZE, PERSUADE_WITH]}
  - {id: mi_non_adherent, name: MI non-adherent, codes: [PERSUADE, CONFRONT]}
metrics:
  - id: R_Q
    name: Reflection-to-question ratio
    formula: "(SR + CR) / Q"
    format: ratio
    thresholds: {fair: 1, good: 2}
    explanation: Reflections per question.
  - id: pct_CR
    name: Percent complex reflections
    formula: "CR / (SR + CR)"
    format: percent
    thresholds: {fair: 0.4, good: 0.5}
    explanation: Share of reflections that are complex.
  - id: relational
    name: Relational global
    formula: "(partnership + empathy) / 2"
    thresholds: {fair: 3.5, good: 4}
  - id: non_adherent
    name: MI non-adherent behaviours
    formula: "mi_non_adherent"
    thresholds: {fair: 1, good: 0}
    higher_is_better: false
"""

PERSONA_YAML = """\
id: test-sam
version: 2
title: Sam, drinking after work
tags: [alcohol, test]
difficulty: 2
trainee_brief:
  referral: GP referral after raised liver enzymes.
  setting: Primary care counselling room.
  session_goal: Explore Sam's drinking and any reasons to change.
identity: {name: Sam, age: 44, pronouns: he/him, background: Leeds, occupation: electrician}
presenting_problem: Drinks 5-6 pints most nights.
history: Drinking rose after his divorce.
stage_of_change: contemplation
hidden_facts:
  - id: daughter
    summary: His daughter refused to let him drive her after smelling drink.
    unlock: {rapport: 0.5}
    disclosure: ["My daughter wouldn't get in the van with me."]
  - id: blackouts
    summary: Two blackouts this month.
    unlock: {skills: {codes: [CR], count: 2}}
    disclosure: ["I've had a couple of nights I can't remember."]
  - id: hopeless
    summary: Passive thoughts that everyone would be better off without him.
    unlock: {rapport: 0.7, topics: [hopeless, mood, down]}
    disclosure: ["Some nights I think they'd all be better off without me."]
    risk: true
risk:
  suicidal_ideation: passive
  must_assess: [suicidal thoughts, drink driving]
lines:
  opening: ["The doctor sent me."]
  elaborate: ["It's just how I unwind."]
  sustain_talk: ["Everyone drinks on my site."]
  change_talk: ["I suppose I could cut back."]
  ambivalence: ["Part of me knows, part of me doesn't care."]
  short_answer: ["Yeah."]
  deflect: ["Can we talk about something else?"]
  react_to_advice: ["Yes, but you don't know my job."]
  react_to_confrontation: ["I'm not an alcoholic."]
  closing: ["Alright, thanks."]
learning_objectives: [Elicit change talk]
"""


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def rubric() -> Rubric:
    return load_model_text(Rubric, RUBRIC_YAML, "test-miti.yaml")


def persona() -> Persona:
    return load_model_text(Persona, PERSONA_YAML, "test-sam.yaml")


def record_content(store: Store) -> tuple[str, str]:
    store.record_content("rubric", "test-miti", 3, sha(RUBRIC_YAML), RUBRIC_YAML, title="Test MITI")
    store.record_content("persona", "test-sam", 2, sha(PERSONA_YAML), PERSONA_YAML, title="Sam")
    return sha(PERSONA_YAML), sha(RUBRIC_YAML)


def new_session(store: Store, trainee: str = "alex", mode: str = "coach") -> str:
    psha, rsha = record_content(store)
    return store.create_session(trainee, "test-sam", psha, "test-miti", rsha,
                                mode=mode)  # type: ignore[arg-type]


def code(behaviour: str) -> dict[str, Any]:
    q = {"OQ": ("Q", "OQ"), "CQ": ("Q", "CQ")}.get(behaviour)
    return {"behaviour": q[0], "question_type": q[1]} if q else {
        "behaviour": behaviour, "question_type": "NQ"}


# (counselor text, code, client reply, act, fact_id, rapport, resistance)
SCRIPT: list[tuple[str, str, str, str, str | None, float, float]] = [
    ("What brings you in today?", "OQ", "The doctor sent me.", "opening", None, 0.35, 0.4),
    ("Do you drink every night?", "CQ", "Yeah.", "short_answer", None, 0.33, 0.42),
    ("Is it more than five pints?", "CQ", "Yeah.", "short_answer", None, 0.31, 0.45),
    ("Have you tried stopping?", "CQ", "No.", "short_answer", None, 0.3, 0.47),
    ("So it's how you unwind after work.", "SR", "It's just how I unwind.", "elaborate", None,
     0.4, 0.42),
    ("You need to cut down, it's damaging your liver.", "PERSUADE",
     "Yes, but you don't know my job.", "react_to_advice", None, 0.33, 0.55),
    ("You drink most nights.", "SR", "Everyone drinks on my site.", "sustain_talk", None,
     0.38, 0.5),
    ("Part of you wonders whether the drinking is starting to cost you more than it gives.", "CR",
     "My daughter wouldn't get in the van with me.", "disclose", "daughter", 0.55, 0.4),
    ("That really shook you: being the dad she can rely on matters a lot to you.", "CR",
     "I've had a couple of nights I can't remember.", "disclose", "blackouts", 0.62, 0.32),
    ("You've kept your business going through a hard divorce; that takes grit.", "AF",
     "I suppose I could cut back.", "change_talk", None, 0.68, 0.28),
    ("It's your decision what, if anything, you change.", "EMPHASIZE",
     "Part of me knows, part of me doesn't care.", "ambivalence", None, 0.7, 0.25),
    ("You're torn.", "SR", "Alright, thanks.", "closing", None, 0.7, 0.25),
]


def fill_session(store: Store, sid: str, script: list[Any] | None = None,
                 grade: bool = True) -> None:
    """Play ``script`` into the session: counselor turn + codes (+ ok grade), then client reply."""
    for text, c, reply, act, fact, rapport, resistance in script or SCRIPT:
        t = store.add_turn(sid, "counselor", text)
        store.add_codes(t.id, "test-miti", code(c), coder="offline",
                        labels={"behaviour": "other"})
        if grade:
            store.add_grade(t.id, "test-miti", values={**code(c), "empathy_turn": 3},
                            rationale=f"Quoted: \u201c{text[:40]}\u201d",
                            alternative="It sounds like the drinking has crept up on you."
                            if c == "CQ" else "", model="fake")
        store.add_turn(sid, "client", reply, act=act, fact_id=fact,
                       state={"rapport": rapport, "resistance": resistance})
