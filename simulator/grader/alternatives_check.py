"""A test set of generated alternatives, and the checks that catch the failures trainees saw.

Issue 18 quoted alternatives no trainee could use: "It sounds like Since you were young. What
ideas...", "It sounds like Why do me care.", "In what ways is that every night?", and a
reflection of something unrelated offered as the alternative to advice. ``problems`` names each
such failure in one generated alternative; ``build_set`` generates the set: every authored client
line of every shipped persona (the words trainees actually answer) crossed with trainee turns of
the four kinds the coach rewrites (simple reflection -> complex, closed -> open question,
advice -> eliciting or asking permission, confrontation -> reflection), plus the quoted failures.
``tests/test_alternatives_set.py`` requires zero problems; ``experiments/alternatives_check.py``
prints the figures.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

from simulator.coder.labels import CodedTurn, CounselorLabels, Utterance
from simulator.coder.risk_meaning import find_risk
from simulator.content.persona import CLIENT_ACTS, Persona
from simulator.content.rubric import Rubric
from simulator.grader.coach_offline import OfflineCoaching, coach_turn

KINDS: dict[str, tuple[str, str]] = {
    # kind: (behaviour code, question type) of the trainee turn on MITI 4.2.1
    "simple_to_complex": ("SR", "NQ"),
    "closed_to_open": ("Q", "CQ"),
    "advice_to_elicit": ("PERSUADE", "NQ"),
    "confront_to_reflect": ("CONFRONT", "NQ"),
}
TRAINEE_TURNS: dict[str, list[str]] = {
    "simple_to_complex": ["So you've been drinking a bit.", "You're not sure about this.",
                          "You feel tired."],
    "closed_to_open": ["Do you drink every day?", "Is that every night?",
                       "Are you worried about your health?", "Have you tried quitting before?",
                       "Did you tell your wife?", "Do you think your drinking is a problem?",
                       "Will you give it a try?", "Can you cut down?", "Is it hard?",
                       "Does it bother you?", "Are you taking the metformin?",
                       "Would you like to talk about it?", "Do you know why you're here?",
                       "Right?", "Have you got any support?", "Is there anyone you talk to?"],
    "advice_to_elicit": ["You should switch to low-alcohol beer.",
                         "You need to start taking your tablets again.",
                         "Why don't you try the patches?", "I'd recommend you talk to your boss."],
    "confront_to_reflect": ["That's not a good enough reason to miss class.",
                            "You're not being honest with yourself.",
                            "Come on, that's just an excuse."],
}
QUOTED_FAILURES = [  # client words behind the alternatives issue 18 quoted
    "Since you were young.", "Why do you care.", "Every night.", "Since I was young.",
    "I didn't tell the doctor that I drink on my own most nights because he would only lecture "
    "me about my liver and my weight and everything else.",
    "Why do you care? You're paid to be here.", "Because. That's why.",
]

_CAPITAL_AFTER_FRAME = re.compile(
    r"\b(It sounds like|You said|On the one hand|and on the other,?)\s+(?!I\b|I'm\b|I've\b)"
    r"([A-Z][a-z']+)")
_WH_AFTER_FRAME = re.compile(
    r"\b(It sounds like|You said)\s+(why|what|how|who|where|which|since|when|if|because|"
    r"every|in|at|on)\b", re.IGNORECASE)
_BAD_PRONOUN = re.compile(r"\b(do|does|did|are|were|can|will|would|could) me\b|\bme (care|think|"
                          r"know|want|need|feel|ask|say|tell|mean)\b|\byou you\b|\byour your\b|"
                          r"\bI you\b",
                          re.IGNORECASE)
_BAD_OPEN = re.compile(r"\bIn what ways (is|are|was|were) (that|it|this|there)\b", re.IGNORECASE)
_ADVICE = re.compile(r"\byou (should|need to|have to|must|ought to)\b|\bwhy don't you\b",
                     re.IGNORECASE)
_CONTENT = re.compile(r"[a-z']{4,}")
_STOPWORDS = {"that", "this", "with", "have", "what", "about", "like", "sounds", "there", "they",
              "your", "you're", "you've", "just", "been", "were", "when", "then", "them", "from",
              "would", "could", "things", "thing", "really", "know", "it's", "don't", "feel"}
KNOWN_NAMES = {"Sarah", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday",
               "Sunday", "January", "February", "March", "April", "May", "June", "July", "August",
               "September", "October", "November", "December", "Christmas", "Eid", "Diwali"}
"""Proper nouns that may start a reflected clause besides the persona's own names."""


class Generated(BaseModel):
    kind: str
    persona: str
    client: str
    turn: str
    alternative: str | None
    rationale: str
    grounded: bool
    """The alternative reuses the client's own content words (built on their last words)."""
    problems: list[str]


def problems(kind: str, client: str, alternative: str | None, names: Iterable[str] = (),
             turn: str = "") -> list[str]:
    """Every failure issue 18 quoted, checked in one generated alternative. A risk question
    ("Is that every night?" after "...easier if I just didn't wake up") rightly gets none: the
    coach never rewrites one (``build_risk_set`` checks that)."""
    if alternative is None or not alternative.strip():
        asks_risk = bool(turn) and bool(find_risk(turn, [client], client_last=client))
        return [] if asks_risk else ["no alternative"]
    out = []
    said = " ".join(re.findall(r"[a-z']+", turn.lower()))
    if kind in ("advice_to_elicit", "confront_to_reflect") and said and \
            said in " ".join(re.findall(r"[a-z']+", alternative.lower())):
        out.append("repeats the trainee's own advice or confrontation")
    allowed = set(names) | KNOWN_NAMES
    for m in _CAPITAL_AFTER_FRAME.finditer(alternative):
        if m.group(2) not in allowed:
            out.append(f"capitalised word pasted after a frame ({m.group(0)!r})")
    if _WH_AFTER_FRAME.search(alternative):
        out.append("a question or fragment pasted into a reflection")
    if _BAD_PRONOUN.search(alternative):
        out.append("broken pronoun swap")
    if _BAD_OPEN.search(alternative):
        out.append("ungrammatical open question (In what ways is that ...)")
    if "\u2026" in alternative or "..." in alternative:
        out.append("cut off mid-sentence")
    if not alternative.rstrip().endswith((".", "?")):
        out.append("does not end as a sentence")
    if re.search(r"\b(\w+) \1\b", alternative, re.IGNORECASE):
        out.append("a doubled word")
    if kind in ("advice_to_elicit", "confront_to_reflect") and _advises(client, alternative):
        out.append("still gives advice")
    if kind == "advice_to_elicit" and "?" not in alternative:
        out.append("does not hand the ideas back (no question)")
    if kind == "closed_to_open" and not alternative.rstrip().endswith("?") and \
            not alternative.lower().startswith(("tell me", "describe", "talk me")):
        out.append("not a question")
    if kind == "closed_to_open" and re.match(r"(do|does|did|is|are|was|were|have|has|can|will|"
                                             r"would)\b", alternative, re.IGNORECASE):
        out.append("still a closed question")
    return out


def _advises(client: str, alternative: str) -> bool:
    """Advice in the alternative that is not the client's own words reflected back ("I need to
    be alert" -> "you need to be alert" is a reflection, not advice)."""
    for m in _ADVICE.finditer(alternative):
        modal = m.group(1)
        if modal is None or not re.search(rf"\b(i|we)(['’]d)? (really )?{re.escape(modal)}\b",
                                          client, re.IGNORECASE):
            return True
    return False


def grounded(client: str, alternative: str | None) -> bool:
    if not alternative:
        return False
    words = {w for w in _CONTENT.findall(client.lower()) if w not in _STOPWORDS}
    return any(w in alternative.lower() for w in words)


def client_lines(personas: Iterable[Persona]) -> list[tuple[str, str, list[str]]]:
    """(persona id, filled line, names) for every authored client line a trainee answers."""
    out: list[tuple[str, str, list[str]]] = []
    for p in personas:
        names = [p.identity.name, *(r.name for r in p.relationships)]
        for act in CLIENT_ACTS:
            if act in ("opening", "closing", "grant_permission"):
                continue  # nothing to reflect; after a yes to "may I share?" advice is permitted
            out.extend((p.id, p.fill(line), names) for line in p.lines_for(act))
        for fact in p.hidden_facts:
            out.extend((p.id, p.fill(line), names) for line in fact.disclosure)
    return out


def build_set(personas: Iterable[Persona], rubric: Rubric) -> list[Generated]:
    """Generate the set: each client line answered with one trainee turn of each kind (cycling
    through the turns), plus the quoted failures with every turn of every kind."""
    rows: list[Generated] = []
    cases: list[tuple[str, str, list[str], str, str]] = []
    for n, (pid, line, names) in enumerate(client_lines(personas)):
        for kind, turns in TRAINEE_TURNS.items():
            cases.append((kind, pid, names, line, turns[n % len(turns)]))
    for line in QUOTED_FAILURES:
        for kind, turns in TRAINEE_TURNS.items():
            cases.extend((kind, "issue-18", [], line, t) for t in turns)
    for kind, pid, names, line, turn in cases:
        out = _coach_as(kind, rubric, "What brings you here today?", line, turn)
        rows.append(Generated(kind=kind, persona=pid, client=line, turn=turn,
                              alternative=out.alternative, rationale=out.rationale,
                              grounded=grounded(line, out.alternative),
                              problems=problems(kind, line, out.alternative, names, turn)))
    return rows


def _coach_as(kind: str, rubric: Rubric, opener: str, client: str, turn: str) -> OfflineCoaching:
    """The coach card for ``turn`` coded as ``kind`` (a ``KINDS`` code), after the trainee's
    ``opener`` and the client's ``client`` line."""
    behaviour, qtype = KINDS[kind]
    coded = CodedTurn(labels=CounselorLabels(behaviour="other", coder="test-set"),
                      codes={"behaviour": behaviour, "question_type": qtype},
                      rubric_id=rubric.id)
    transcript = [Utterance(speaker="counselor", text=opener),
                  Utterance(speaker="client", text=client)]
    return coach_turn(coded, rubric, transcript, turn)


def summary(rows: list[Generated]) -> dict[str, Any]:
    """Figures of the set: per kind, how many, how many with a problem, how many grounded."""
    by_kind: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        mine = [r for r in rows if r.kind == kind]
        by_kind[kind] = {"n": len(mine), "with_problems": sum(bool(r.problems) for r in mine),
                         "grounded": sum(r.grounded for r in mine)}
    kinds: Counter[str] = Counter(p for r in rows for p in r.problems)
    return {"n": len(rows), "with_problems": sum(bool(r.problems) for r in rows),
            "grounded": sum(r.grounded for r in rows), "by_kind": by_kind,
            "problems": dict(kinds)}


RISK_TURNS: list[tuple[str, str]] = [  # (client's words, the trainee's risk question)
    ("Some nights I think everyone would be better off without me.",
     "Let's make a plan together for keeping you safe."),
    ("Some nights I think everyone would be better off without me.",
     "So you've been thinking about ending your life."),
    ("I've been thinking about killing myself.", "Do you have a plan?"),
    ("I've been thinking about killing myself.", "Do thoughts of suicide ever come?"),
    ("I've thought about taking all my tablets.", "Is there anything at home you could use?"),
    ("I want to die some nights.", "Who could you call if the thoughts got worse?"),
]
"""Risk questions the coder may code as a restatement, a closed question, advice or even a
confrontation: whatever the code, the coach must not criticise or rewrite them (issue 18:
"do thoughts of suicide ever come?" was rewritten as "What else can you tell me about that?")."""


def build_risk_set(rubric: Rubric) -> list[Generated]:
    """Each risk question of ``RISK_TURNS`` coded as each kind the coach rewrites; a row's
    problems name any rewrite or any rationale that is not about the risk question."""
    rows: list[Generated] = []
    for client, turn in RISK_TURNS:
        for kind in KINDS:
            out = _coach_as(kind, rubric, "How have things been?", client, turn)
            found = []
            if out.alternative:
                found.append(f"rewrites a risk question ({out.alternative!r})")
            if out.featured != "risk":
                found.append(f"coached as {out.featured} ({out.rationale!r})")
            rows.append(Generated(kind=f"risk_as_{kind}", persona="risk", client=client,
                                  turn=turn, alternative=out.alternative,
                                  rationale=out.rationale, grounded=False, problems=found))
    return rows
