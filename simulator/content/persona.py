"""The persona content model: everything the simulated client is, as educators write it in YAML.

A persona drives the client engine entirely: identity and history (what the client knows),
stage of change and style (how it behaves), hidden facts with unlock conditions (what skill
earns), principles (rules the client keeps), and authored lines per client act (what the
offline realizer says). Only ``trainee_brief`` (and title/tags/difficulty) is ever shown to a
trainee; the rest is hidden, and ``facilitator_notes`` never leave the educator/supervisor side.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from simulator.content.loader import DEFER_CHECKS, Problem, format_loc

StageOfChange = Literal["precontemplation", "contemplation", "preparation", "action", "maintenance"]
ConversationalStyle = Literal["plain", "upset", "verbose", "reserved", "tangent", "pleasing"]

ClientAct = Literal[
    "opening",
    "elaborate",
    "sustain_talk",
    "change_talk",
    "ambivalence",
    "short_answer",
    "deflect",
    "react_to_advice",
    "react_to_confrontation",
    "closing",
    "grant_permission",
]
"""Every act the planner can choose besides ``disclose`` (its lines live with each hidden fact)."""

CLIENT_ACTS: tuple[str, ...] = ClientAct.__args__  # type: ignore[attr-defined]

ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
_PLACEHOLDER = re.compile(r"\{([a-zA-Z_][a-zA-Z0-9_]*)\}")


class Strict(BaseModel):
    """Base for content models: unknown keys are errors, so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Document(Strict):
    """A whole content file. Checks that span the document live in ``content_problems`` so the
    loader can place each one at its own line; built directly (tests, editor), they still raise."""

    def content_problems(self) -> list[Problem]:
        return []

    @model_validator(mode="after")
    def _whole_document(self, info: ValidationInfo) -> Document:
        if not (info.context or {}).get(DEFER_CHECKS):
            problems = self.content_problems()
            if problems:
                raise ValueError("; ".join(f"{format_loc(loc)}: {msg}" for loc, msg in problems))
        return self


class TraineeBrief(Strict):
    """The only part of a persona a trainee sees before and during the session."""

    referral: str = Field(description="Referral note as the trainee would receive it.")
    setting: str = Field(description="Where and why the conversation happens.")
    session_goal: str = Field(description="What the trainee should try to achieve.")


class Identity(Strict):
    name: str
    age: int = Field(ge=10, le=110)
    pronouns: str
    background: str = Field(description="Culture, family of origin, where they live.")
    occupation: str


class Relationship(Strict):
    name: str
    relation: str
    note: str = ""


class CoreBeliefs(Strict):
    """Beck's three categories of core belief (as in Patient-Psi's cognitive conceptualization)."""

    helpless: list[str] = []
    unlovable: list[str] = []
    worthless: list[str] = []


class CbtAnswers(Strict):
    """How the client answers CBT techniques, in its own words (offline realizer lines).

    ``belief_rating`` lines may use ``{rating}`` (the client's current 0-100 belief in its
    automatic thought) and ``{thought}`` (that thought); the rating starts at
    ``CognitiveModel.belief_rating`` and falls as evidence against it and an alternative thought
    are worked through in the session.
    """

    belief_rating: list[str] = Field(min_length=1)
    evidence_for: list[str] = Field(min_length=1)
    evidence_against: list[str] = Field(
        min_length=1, description="What the client can find against the thought once it looks.")
    no_evidence_against: list[str] = Field(
        [], description="Guarded: the client cannot see anything against it yet (low rapport).")
    alternative_thought: list[str] = Field(min_length=1)


class CognitiveModel(Strict):
    """Optional CBT cognitive conceptualization diagram (Beck), after Patient-Psi."""

    relevant_history: str = ""
    core_beliefs: CoreBeliefs
    intermediate_beliefs: list[str] = Field(min_length=1)
    coping_strategies: list[str] = Field(min_length=1)
    situation: str
    automatic_thoughts: list[str] = Field(min_length=1)
    emotions: list[str] = Field(min_length=1)
    behaviours: list[str] = Field(min_length=1)
    belief_rating: int = Field(80, ge=0, le=100,
                               description="How much the client believes its main thought now.")
    cbt: CbtAnswers | None = Field(
        None, description="Answers to belief ratings, evidence for and against, alternatives.")


class Style(Strict):
    """How the client talks. Numbers are 0 (none) to 1 (a great deal)."""

    conversational_style: ConversationalStyle = "plain"
    verbosity: float = Field(0.5, ge=0, le=1)
    guardedness: float = Field(0.5, ge=0, le=1)
    resistance: float = Field(0.3, ge=0, le=1, description="Initial resistance of the client.")
    tangentiality: float = Field(0.1, ge=0, le=1)


class SkillCondition(Strict):
    """The trainee has used any of ``codes`` at least ``count`` times in the session."""

    codes: list[str] = Field(min_length=1, description="Codes defined by a loaded rubric.")
    count: int = Field(1, ge=1)


class Unlock(Strict):
    """When a hidden fact becomes available. Every condition given must hold (AND)."""

    rapport: float | None = Field(None, ge=0, le=1, description="Rapport at least this value.")
    skills: SkillCondition | None = None
    topics: list[str] = Field(
        [], description="Keywords: the trainee's turn mentions one of them (case-insensitive). "
        "Prefer `about`: a keyword also matches incidental words."
    )
    about: list[str] = Field(
        [], description="Topic ids (common topics or this persona's answers): the trainee's turn "
        "asks or reflects about one of them, recognised by meaning.")
    after: list[str] = Field(
        [], description="Hidden fact ids the client must already have disclosed.")

    @model_validator(mode="after")
    def _some_condition(self) -> Unlock:
        if self.rapport is None and self.skills is None and not self.topics and not self.about:
            raise ValueError("give at least one of rapport, skills, topics, about")
        if any(not t.strip() for t in self.topics):
            raise ValueError("topics must not be blank (a blank topic would match every turn)")
        return self


class HiddenFact(Strict):
    id: str = Field(pattern=ID_PATTERN)
    summary: str = Field(description="What the fact is, for supervisors and reports.")
    unlock: Unlock
    disclosure: list[str] = Field(min_length=1, description="What the client says to disclose it.")
    risk: bool = Field(False, description="A risk item a competent trainee must elicit.")
    follow_up: bool | None = Field(
        None,
        description="A disclosure the trainee's next turn must stay with (a risk question or a "
        "reflection), else the report flags it. Defaults to `risk`; false for risk facts that "
        "answer the trainee (protective factors, agreeing a safety plan) rather than raise one.")
    keywords: list[str] = Field(
        [],
        description="Words that give this fact away. Only its disclosure (and principles, "
        "facilitator notes) may contain them; validate checks lines, brief, history, "
        "relationships, so the client never leaks it early.",
    )

    @property
    def needs_follow_up(self) -> bool:
        return self.risk if self.follow_up is None else self.follow_up


class Risk(Strict):
    suicidal_ideation: Literal["absent", "passive", "active"] = "absent"
    self_harm: bool = False
    harm_to_others: bool = False
    notes: str = ""
    must_assess: list[str] = Field([], description="What a competent trainee must ask about.")


Stance = Literal["open", "guarded", "deflecting"]


class Answer(Strict):
    """How the client answers one topic, by stance (rapport and resistance choose the stance).

    ``topic`` is a common topic id (``simulator/content/common_topics.yaml``) or the persona's own
    topic, which then needs ``examples`` (trainee questions the engine matches by meaning). With
    ``fact``, the ``open`` lines disclose that hidden fact and are said only once it unlocked;
    until then the client answers guarded or deflecting.
    """

    topic: str = Field(pattern=ID_PATTERN)
    title: str = Field("", description="The persona's own topic in a few words (self-play).")
    examples: list[str] = Field([], description="Trainee questions about this topic.")
    fact: str | None = Field(None, description="Hidden fact the open lines disclose.")
    open: list[str] = Field(min_length=1)
    guarded: list[str] = []
    deflecting: list[str] = []

    def lines(self, stance: Stance) -> list[str]:
        return list(getattr(self, stance))


TraineeCue = Literal["advice", "confrontation", "early_risk_question", "closed_question_run"]
RuleAct = Literal["shut_down", "minimise"]


class Rule(Strict):
    """A principle as a rule the planner keeps: when the trainee does ``when``, the client does
    ``then`` with these lines (and resistance rises by ``resistance``)."""

    when: TraineeCue
    then: RuleAct
    principle: str = Field(description="The principle in words (shown to the LLM realizer).")
    lines: list[str] = Field(min_length=1)
    resistance: float = Field(0.0, ge=0, le=0.5)
    before_rapport: float | None = Field(
        None, ge=0, le=1, description="Only while rapport is below this value.")


class Lines(Strict):
    """Authored lines per act, several each, with {placeholders} naming keys of ``facts``."""

    opening: list[str] = Field(min_length=1)
    elaborate: list[str] = Field(min_length=1)
    sustain_talk: list[str] = Field(min_length=1)
    change_talk: list[str] = Field(min_length=1)
    ambivalence: list[str] = Field(min_length=1)
    short_answer: list[str] = Field(min_length=1)
    deflect: list[str] = Field(min_length=1)
    react_to_advice: list[str] = Field(min_length=1)
    react_to_confrontation: list[str] = Field(min_length=1)
    closing: list[str] = Field(min_length=1)
    grant_permission: list[str] = Field(
        [], description="Answers to 'Would it be OK if I shared...?' in this client's voice; "
        "empty: a short stock answer that fits the client's stance.")


class Persona(Document):
    """One simulated client."""

    id: str = Field(pattern=ID_PATTERN)
    version: int = Field(ge=1)
    title: str
    tags: list[str] = Field(min_length=1)
    difficulty: int = Field(ge=1, le=5)
    language: str = Field("en", pattern=r"^[a-z]{2}(-[A-Z]{2})?$")
    trainee_brief: TraineeBrief
    identity: Identity
    presenting_problem: str
    history: str
    relationships: list[Relationship] = []
    stage_of_change: StageOfChange
    cognitive_model: CognitiveModel | None = None
    style: Style = Style()
    facts: dict[str, str] = Field(
        {}, description="Named facts the authored lines may use as {placeholders}."
    )
    hidden_facts: list[HiddenFact] = []
    principles: list[str] = Field([], description="Rules the client keeps, in plain words.")
    rules: list[Rule] = Field([], description="Principles the planner enforces as rules.")
    answers: list[Answer] = Field([], description="The answer bank: how the client answers "
                                  "each topic (common topics and its own).")
    risk: Risk = Risk()
    lines: Lines
    learning_objectives: list[str] = Field(min_length=1)
    facilitator_notes: str = Field("", description="For educators and supervisors only.")
    # Which rubrics fit this client (a CBT client is scored with CTRS, not MITI); the trainee picks
    # among ``rubrics`` at the start, ``default_rubric`` preselected. Empty: any loaded rubric.
    rubrics: list[str] = Field(
        [], description="Rubric ids a trainee may choose for this client (empty: any rubric).")
    default_rubric: str | None = Field(
        None, description="The rubric preselected at the start; one of rubrics when both given.")

    def rubric_choice(self, fallback: str) -> str:
        """The rubric a session with this client uses when the trainee does not choose."""
        return self.default_rubric or (self.rubrics[0] if self.rubrics else fallback)

    def content_problems(self) -> list[Problem]:
        """Cross references inside the file: fact ids, placeholders, and text that leaks a fact.

        A hidden fact's ``keywords`` may appear only in its disclosure (and in principles and
        facilitator notes): not in authored lines, the trainee brief, the presenting problem, the
        history or relationship notes, which the trainee or the client engine see before unlock.
        """
        problems: list[Problem] = []
        if self.default_rubric and self.rubrics and self.default_rubric not in self.rubrics:
            problems.append((("default_rubric",), f"default_rubric {self.default_rubric!r} is not "
                                                  f"in rubrics ({', '.join(self.rubrics)})"))
        seen: set[str] = set()
        for i, f in enumerate(self.hidden_facts):
            if f.id in seen:
                problems.append((("hidden_facts", i, "id"), f"hidden fact id {f.id!r} is repeated"))
            seen.add(f.id)
        problems += self._answer_problems(seen)
        known = set(self.facts) | {"name", "age", "occupation"}
        texts: list[tuple[tuple[str | int, ...], str]] = [
            (("lines", act, k), t) for act in CLIENT_ACTS
            for k, t in enumerate(getattr(self.lines, act))]
        texts += [(("rules", i, "lines", k), t) for i, r in enumerate(self.rules)
                  for k, t in enumerate(r.lines)]
        for i, a in enumerate(self.answers):
            stances: tuple[Stance, ...] = ("guarded", "deflecting") if a.fact else (
                "open", "guarded", "deflecting")
            texts += [(("answers", i, st, k), t) for st in stances
                      for k, t in enumerate(a.lines(st))]
        cm = self.cognitive_model
        if cm is not None and cm.cbt is not None:
            for field in ("belief_rating", "evidence_for", "evidence_against",
                          "no_evidence_against", "alternative_thought"):
                texts += [(("cognitive_model", "cbt", field, k), t.replace("{rating}", "80")
                           .replace("{thought}", cm.automatic_thoughts[0]))
                          for k, t in enumerate(getattr(cm.cbt, field))]
        gated = [(("answers", i, "open", k), t) for i, a in enumerate(self.answers) if a.fact
                 for k, t in enumerate(a.open)]
        disclosures = [(("hidden_facts", i, "disclosure", k), t)
                       for i, f in enumerate(self.hidden_facts) for k, t in enumerate(f.disclosure)]
        for loc, text in texts + disclosures + gated:
            missing = sorted(set(_PLACEHOLDER.findall(text)) - known)
            if missing:
                problems.append((loc, f"placeholder {{{missing[0]}}} is not defined in facts "
                                      f"(known: {', '.join(sorted(known))})"))
        told: list[tuple[tuple[str | int, ...], str]] = [
            (("trainee_brief", k), getattr(self.trainee_brief, k))
            for k in ("referral", "setting", "session_goal")]
        told += [(("presenting_problem",), self.presenting_problem), (("history",), self.history)]
        told += [(("relationships", i, "note"), r.note) for i, r in enumerate(self.relationships)]
        for loc, text in texts + told:
            filled = self.fill(text)
            for f in self.hidden_facts:
                hit = next((w for w in f.keywords if mentions(filled, w)), None)
                if hit:
                    problems.append((loc, f"gives away hidden fact {f.id!r} (keyword {hit!r}); "
                                          "only its disclosure lines may say that"))
        return problems

    def _answer_problems(self, fact_ids: set[str]) -> list[Problem]:
        from simulator.content.topics import common_topic_ids

        problems: list[Problem] = []
        known = set(common_topic_ids(None))
        topics: set[str] = set()
        for i, a in enumerate(self.answers):
            if a.topic in topics:
                problems.append((("answers", i, "topic"), f"topic {a.topic!r} is answered twice"))
            topics.add(a.topic)
            if a.topic not in known and not a.examples:
                problems.append((("answers", i, "examples"),
                                 f"{a.topic!r} is not a common topic: give example questions"))
            if a.fact is not None and a.fact not in fact_ids:
                problems.append((("answers", i, "fact"), f"no hidden fact {a.fact!r}"))
        for i, f in enumerate(self.hidden_facts):
            for k, t in enumerate(f.unlock.about):
                if t not in known | topics:
                    problems.append((("hidden_facts", i, "unlock", "about", k),
                                     f"unknown topic {t!r} (a common topic or one of answers)"))
            for k, dep in enumerate(f.unlock.after):
                if dep not in fact_ids or dep == f.id:
                    problems.append((("hidden_facts", i, "unlock", "after", k),
                                     f"{dep!r} is not another hidden fact"))
        return problems

    def content_warnings(self) -> list[str]:
        """What the persona can do without but a trainee will probably meet: a common topic it
        has no answer for (the client then deflects), a CBT model without CBT answers."""
        from simulator.content.topics import common_topic_ids

        answered = {a.topic for a in self.answers}
        out = [f"answers: no answer for the common topic {t!r} (the client will deflect it)"
               for t in common_topic_ids("topic") if t not in answered]
        if self.cognitive_model is not None and self.cognitive_model.cbt is None:
            out.append("cognitive_model: no `cbt` answers (belief ratings, evidence for and "
                       "against, alternative thoughts are deflected)")
        return out

    def answer(self, topic: str) -> Answer | None:
        return next((a for a in self.answers if a.topic == topic), None)

    def fill(self, text: str) -> str:
        """Fill {placeholders} from ``facts`` and name/age/occupation; unknown ones stay as is.

        A value that starts a sentence starts with a capital ("{father} wanders" with father
        "my father" reads "My father wanders")."""
        values = {"name": self.identity.name, "age": str(self.identity.age),
                  "occupation": self.identity.occupation, **self.facts}

        def value(m: re.Match[str]) -> str:
            found = values.get(m.group(1), m.group(0))
            before = text[:m.start()].rstrip()
            if found and (not before or before[-1] in ".!?\"“"):
                return found[0].upper() + found[1:]
            return found

        return _PLACEHOLDER.sub(value, text)

    def lines_for(self, act: str) -> list[str]:
        return list(getattr(self.lines, act))

    def follow_up_facts(self) -> list[str]:
        """Ids of the hidden facts whose disclosure the trainee's next turn must stay with (the
        report's risk review and the session's risk warnings both check them)."""
        return [f.id for f in self.hidden_facts if f.needs_follow_up]

    def fact(self, fact_id: str) -> HiddenFact:
        for f in self.hidden_facts:
            if f.id == fact_id:
                return f
        raise KeyError(fact_id)


def mentions(text: str, keyword: str) -> bool:
    """Case-insensitive match at a word start ("drink" in "Drinking", not in "shrink")."""
    return re.search(r"(?<!\w)" + re.escape(keyword.strip()), text, re.IGNORECASE) is not None


class PersonaCard(BaseModel):
    """What a trainee may see of a persona: nothing hidden, nothing for facilitators."""

    id: str
    version: int
    title: str
    tags: list[str]
    difficulty: int
    language: str
    trainee_brief: TraineeBrief

    @classmethod
    def of(cls, persona: Persona) -> PersonaCard:
        return cls(id=persona.id, version=persona.version, title=persona.title, tags=persona.tags,
                   difficulty=persona.difficulty, language=persona.language,
                   trainee_brief=persona.trainee_brief)
