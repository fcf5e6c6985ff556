"""What a trainee's turn did and what it was about, as the client hears it.

The coder says *how* the trainee spoke (MITI codes: open/closed question, reflection, advice,
confrontation ...). The client also needs *what about*: a question about sleep must be answered
about sleep, "thanks for coming" at the start is a greeting and not a goodbye, and a CBT belief
rating is not small talk. ``understand`` adds that, from three sources:

* the engine codes (``OQ``, ``CR``, ``PERSUADE`` ...) for the acts the coder knows;
* cue patterns for acts the coder has no code for (greeting, closing, CBT techniques) and for
  advice or confrontation the coder missed;
* the topic, by meaning: each sentence of the turn is embedded with the shipped sentence encoder
  (``encoder.py``) and compared with the example questions of the common topics
  (``content/common_topics.yaml``) and of the persona's own answer topics; a topic's cue words in
  the sentence add ``CUE_BONUS``. The best topic at or above ``TOPIC_THRESHOLD`` wins.

The result is recorded with the client's state, so supervisors can see what the client heard.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Final, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from simulator.client.encoder import sentence_encoder
from simulator.client.state import ClientState
from simulator.coder.labels import Utterance
from simulator.content.persona import Persona, mentions
from simulator.content.topics import Topic, common_topics

TraineeAct = Literal["question", "reflection", "affirmation", "advice", "confrontation",
                     "greeting", "closing", "risk_question", "technique", "autonomy",
                     "information", "permission"]

TOPIC_THRESHOLD: Final = 0.5
"""Cosine similarity (plus cue bonus) from which a sentence is taken to be about a topic."""
CUE_BONUS: Final = 0.15
"""Added when one of the topic's cue words is in the sentence."""
PHRASE_CUE_BONUS: Final = 0.1
"""Added on top when the cue found is a phrase of several words: "kept you going" says more
than the one word "nights" ("What has kept you going through the hardest nights?" is a question
about what keeps Farida going, not about her sleep)."""
QUESTION_BONUS: Final = 0.03
"""A question sentence names the topic more often than a reflection does."""
OWN_TOPIC_BONUS: Final = 0.05
"""Added to the persona's own topics (not the common ones): more specific to this client, so
"What have you heard about what the tablets can do?" is Harjit's medication worry rather than the
common risk topic of access to means, whose cue word "tablets" it shares."""

CODE_ACTS: Final[dict[str, TraineeAct]] = {
    "OQ": "question", "CQ": "question", "SR": "reflection", "CR": "reflection",
    "AF": "affirmation", "PERSUADE": "advice", "CONFRONT": "confrontation",
    "EMPHASIZE": "autonomy", "GI": "information",
}

GREETING: Final = re.compile(
    r"^\W*(hi|hello|hey|good (morning|afternoon|evening)|welcome|nice to meet you"
    r"|thanks? (you )?(so much )?for (coming|being here|seeing me)|thank you for coming)\b",
    re.IGNORECASE)
STRONG_CLOSING: Final = re.compile(
    r"\b(our time is (nearly |almost )?up|(we('ve| have| are|'re)) (nearly |almost )?"
    r"(out of|run out of) time|wrap (things |this |it )?up|(let's|let us|we'll|we will|we can|"
    r"we should|we need to|i'm going to|i'll) (have to )?(stop|end|finish|leave it|close)"
    r" (here|there|for today|now|it there)|see you next|same time next week|good-?bye"
    r"|that's all we have time for)\b", re.IGNORECASE)
WEAK_CLOSING: Final = re.compile(
    r"\b(take care|thanks? (you )?for (coming|talking|today|sharing)|until next time)\b",
    re.IGNORECASE)
ADVICE: Final = re.compile(
    r"(?<!do )(?<!would )\byou (really )?(should|need to|have to|must|ought to|'d better|better)\b"
    r"|\bwhy don't you\b|\bmy advice\b|\bi('d| would) (recommend|suggest) (that )?you\b"
    r"|\bif i were you\b|\bjust (stop|try|do|cut)\b", re.IGNORECASE)
CONFRONTATION: Final = re.compile(
    r"\b(you're|you are) (in denial|an alcoholic|an addict|lazy|just making excuses|kidding "
    r"yourself|lying(?! (?:awake|in bed|there|down|on|about in|around)))\b"
    r"|\bstop making excuses\b|\bbe honest with yourself\b|\badmit (it|that)\b"
    r"|\byou're not trying\b|\bare you (an alcoholic|an addict|a drunk|in denial)\b",
    re.IGNORECASE)
PERMISSION: Final = re.compile(
    r"\b(would it be (ok|okay|alright|all right)|is it (ok|okay|alright|all right)|would you mind|"
    r"do you mind|(may|can|could) i (share|tell|offer|give|suggest|mention|add|say)|"
    r"would you (like|want) (me to|to hear)|(ok|okay|alright|all right) if i)\b",
    re.IGNORECASE)
"""Asking permission to share information or a suggestion (MITI: Seek, or the permission in
Persuade with permission): the client answers the request, not the subject."""
QUESTION_START: Final = re.compile(
    r"^\W*(what|how|why|when|where|who|which|do|does|did|are|is|was|were|have|has|had|can|"
    r"could|would|will|tell me|i wonder|i'm wondering)\b", re.IGNORECASE)
SENTENCE: Final = re.compile(r"(?<=[.?!])\s+")
NEGATED: Final = re.compile(r"\b(not|doesn't|does not|don't|do not|isn't|is not|against|"
                            r"contradict\w*|wasn't|weren't|never|fit)\b", re.IGNORECASE)
"""Sentence encoders barely see negation: "what doesn't support it" embeds close to "what
supports it". A question matched to ``evidence_for`` with one of these words is about the
evidence against."""


class Understanding(BaseModel):
    """What the client heard in one trainee turn."""

    model_config = ConfigDict(frozen=True)

    acts: list[TraineeAct] = []
    topic: str | None = None
    """A topic id (common or the persona's own), or None when no topic is clear."""
    topic_kind: Literal["topic", "technique"] | None = None
    score: float = 0.0
    """The topic's match (cosine similarity plus bonuses) for supervisors and the bench."""

    def did(self, act: TraineeAct) -> bool:
        return act in self.acts

    @property
    def asked(self) -> bool:
        """The turn asked the client something (a question or a CBT technique)."""
        return "question" in self.acts or "technique" in self.acts


def sentences(text: str) -> list[str]:
    return [s.strip() for s in SENTENCE.split(text.strip()) if s.strip()]


def is_question(sentence: str) -> bool:
    return sentence.rstrip().endswith("?") or QUESTION_START.search(sentence) is not None


def persona_topics(persona: Persona) -> list[Topic]:
    """The common topics, with the persona's own example questions added, then its own topics."""
    own = {a.topic: a for a in persona.answers}
    out = []
    for t in common_topics():
        extra = own[t.id].examples if t.id in own else []
        out.append(t.model_copy(update={"examples": [*t.examples, *extra]}) if extra else t)
    known = {t.id for t in common_topics()}
    out += [Topic(id=a.topic, title=a.topic.replace("_", " "), examples=a.examples)
            for a in persona.answers if a.topic not in known and a.examples]
    return out


@lru_cache(maxsize=64)
def _bank(key: tuple[tuple[str, tuple[str, ...]], ...]) -> tuple[list[str], np.ndarray]:
    """Topic id per example row, and the examples' embeddings (cached per topic set).

    Each example is embedded alone (``embed_alone``): in a batch, the int8 encoder's numbers for
    one text shift with its batch-mates, so an educator adding an example to one topic moved the
    scores of unrelated topics (a medication question became a risk question)."""
    ids = [tid for tid, examples in key for _ in examples]
    texts = [e for _, examples in key for e in examples]
    return ids, sentence_encoder().embed_alone(texts)


def match_topic(persona: Persona, text: str) -> tuple[Topic | None, float]:
    """The topic ``text`` is most about, and its score (None below ``TOPIC_THRESHOLD``)."""
    topics = persona_topics(persona)
    by_id = {t.id: t for t in topics}
    own = {t.id for t in topics} - {t.id for t in common_topics()}
    ids, bank = _bank(tuple((t.id, tuple(t.examples)) for t in topics))
    parts = sentences(text) or [text]
    sims = sentence_encoder().embed_alone(parts) @ bank.T
    best: tuple[Topic | None, float] = (None, 0.0)
    for i, sentence in enumerate(parts):
        per_topic: dict[str, float] = {}
        for j, tid in enumerate(ids):
            per_topic[tid] = max(per_topic.get(tid, -1.0), float(sims[i, j]))
        asked = is_question(sentence)
        for tid, score in per_topic.items():
            topic = by_id[tid]
            cues = [c for c in topic.cues if mentions(sentence, c)]
            if cues:
                score += CUE_BONUS
                if any(len(c.split()) > 1 for c in cues):
                    score += PHRASE_CUE_BONUS
            if asked:
                score += QUESTION_BONUS
            if tid in own:
                score += OWN_TOPIC_BONUS
            if score > best[1]:
                best = (topic, score)
    found, score = best
    if found is not None and found.id == "evidence_for" and NEGATED.search(text):
        found = by_id.get("evidence_against", found)
    return (found if score >= TOPIC_THRESHOLD else None), round(score, 3)


def closing(text: str, turn: int) -> bool:
    """The trainee is ending the session: a clear closing, or a thank-you goodbye after the
    start that asks nothing more ("thanks for coming" on the first turn is a greeting)."""
    if "?" in text.split(".")[-1] and not STRONG_CLOSING.search(text.split("?")[-1]):
        return False
    if STRONG_CLOSING.search(text):
        return True
    return turn >= 3 and WEAK_CLOSING.search(text) is not None and "?" not in text


def understand(persona: Persona, text: str, codes: Iterable[str], before: ClientState,
               history: Sequence[Utterance] = ()) -> Understanding:
    """What the trainee turn ``text`` (coded ``codes``) did and was about.

    ``before`` is the client's state before the turn (its turn count tells a greeting from a
    goodbye); ``history`` is kept for callers and future use of the context.
    """
    codes = set(codes)
    acts: set[TraineeAct] = {CODE_ACTS[c] for c in codes if c in CODE_ACTS}
    parts = sentences(text) or [text]
    if any(is_question(s) for s in parts):
        acts.add("question")
    turn = before.turn + 1
    if turn <= 2 and GREETING.search(text):
        acts.add("greeting")
    if closing(text, turn):
        acts.add("closing")
    if ADVICE.search(text):
        acts.add("advice")
    if CONFRONTATION.search(text):
        acts.add("confrontation")
    last = parts[-1]
    if is_question(last) and PERMISSION.search(last):
        acts.add("permission")
    topic, score = match_topic(persona, text)
    kind = topic.kind if topic else None
    if topic is not None and topic.kind == "technique":
        acts.add("technique")
    if topic is not None and topic.risk and acts & {"question", "reflection"}:
        acts.add("risk_question")
    order = TraineeAct.__args__  # type: ignore[attr-defined]
    return Understanding(acts=[a for a in order if a in acts],
                         topic=topic.id if topic else None, topic_kind=kind, score=score)
