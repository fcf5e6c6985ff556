"""Did the trainee assess what the persona says must be assessed, and follow up what the client
disclosed? The one place the coach panel, ``counselsim chat`` and the report ask this.

Two sources, used together (a turn counts when either says so):

* **The coder's risk topics.** A coder that segments turns into utterances
  (``CounselorLabels.utterances``, stored in the codes record's ``labels``) gives each utterance
  the risk topics it asks about, ids from ``simulator.coder.risk.RISK_TOPICS``: ``ideation``,
  ``self_harm``, ``plan``, ``intent``, ``means``, ``protective_factors``, ``safety_plan``,
  ``history``. Stored labels from before utterances existed simply have none.
* **The keyword check** (the report's original one, ``mentions_item``): every significant word of
  the ``must_assess`` item (or of one of its comma-separated parts) starts some word of the turn.

How a ``must_assess`` item maps to risk topics (documented for persona authors): by keywords in
the item's own text, ``ITEM_TOPICS`` below, so persona files need no extra field. "Ask directly
about suicidal thoughts" -> ``ideation``; "Plan, intent, previous attempts" -> ``plan``,
``intent``, ``history``; "Access to means (medication at home)" -> ``means``; "Protective factors
and supports" -> ``protective_factors``; "Agree a safety plan and follow-up" -> ``safety_plan``;
"Thoughts of death or of wishing to join her husband" -> ``ideation``; "Thoughts of self-harm or
suicide" -> ``self_harm`` and ``ideation`` (either one answers an "or"). An item with no topic
(sleep, confidentiality, drink-driving) is checked by keywords only. An item with topics is
assessed when each of its topics was asked about (for an "or" item, any one of them).

Nothing here penalises a risk question: the coach and the report use ``turn_topics`` to leave
such turns out of criticism ("three closed questions in a row") and out of rewriting.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from simulator.coder.risk import TOPIC_NAMES

ITEM_TOPICS: tuple[tuple[str, str], ...] = (
    ("safety_plan", r"safety[- ]plan|crisis plan"),
    ("plan", r"\bplans?\b(?<!safety plan)"),
    ("intent", r"\bintent(ion)?s?\b"),
    ("history", r"previous attempts?|past attempts?|history of (self-harm|suicid|attempt)"),
    ("means", r"\bmeans\b|access to (medication|tablets|pills|firearms?|weapons?)|"
              r"medication at home|firearms?|weapons?"),
    ("protective_factors", r"protective|\bsupports?\b|reasons (for|to) (living|live)"),
    ("ideation", r"suicid|thoughts of (death|dying)|wish(ing)? to (die|join|be dead)|"
                 r"end (his|her|their|your) life|not (wanting|want) to (live|be here)"),
    ("self_harm", r"self[- ]harm|harm(ing)? (him|her|them|your)sel(f|ves)|"
                  r"hurt(ing)? (him|her|them|your)sel(f|ves)"),
)
"""Risk topic id -> pattern over a ``must_assess`` item's text (lower-cased)."""

_STOP = {"about", "their", "there", "with", "whether", "ever", "have", "been", "from", "that",
         "this", "what", "when", "does", "into", "other", "others", "they", "them", "your",
         # instructions to the trainee, not the topic itself
         "directly", "brief", "check", "explain", "agree", "start", "respectful", "before",
         "appropriate", "talk", "stopping", "assess"}


class RiskCheck(BaseModel):
    """A persona ``must_assess`` item: asked or not, and where."""

    item: str
    asked: bool
    topics: list[str] = []
    """The risk topic ids this item stands for (empty: a non-risk item, keyword check only)."""
    missing: list[str] = []
    """Topics of the item nobody asked about."""
    turns: list[int] = []
    """Conversation positions (``idx``) of the trainee turns that asked about it."""
    touched: list[int] = []
    """Not asked, but these turns share a word with the item: a question that covered part of
    it, or in words the keyword check does not know. Worth checking in the transcript."""


class Disclosure(BaseModel):
    """A client turn that disclosed risk, and whether the trainee's next turn stayed with it."""

    idx: int
    text: str
    followed_up: bool
    next_idx: int | None = None
    next_text: str | None = None


class RiskReview(BaseModel):
    checks: list[RiskCheck] = []
    disclosures: list[Disclosure] = []

    @property
    def not_assessed(self) -> list[RiskCheck]:
        return [c for c in self.checks if not c.asked]

    @property
    def missed_disclosures(self) -> list[Disclosure]:
        return [d for d in self.disclosures if not d.followed_up]


def item_topics(item: str) -> list[str]:
    """The risk topic ids a ``must_assess`` item stands for (see the module docstring)."""
    low = item.lower()
    return [topic for topic, pattern in ITEM_TOPICS if re.search(pattern, low)]


def _any_of(item: str) -> bool:
    """"Thoughts of self-harm or suicide": one topic answers the item."""
    return re.search(r"\bor\b", item.lower()) is not None and "," not in item


def item_answered(item: str, topics: set[str]) -> bool:
    """The risk topics asked so far (``topics``) cover the item: all of its topics, or one of
    them for an either-or item ("Thoughts of self-harm or suicide")."""
    mine = set(item_topics(item))
    return bool(mine) and (mine <= topics or (_any_of(item) and bool(mine & topics)))


def still_to_ask(item: str, topics: set[str]) -> str:
    """How a coach names an item that is not yet covered: the item itself, or, when earlier
    questions covered part of it, only the rest ("Plan, intent, previous attempts" after a
    question about a plan: "intent, past attempts (Plan, intent, previous attempts)")."""
    mine = item_topics(item)
    missing = [t for t in mine if t not in topics]
    if not mine or len(missing) == len(mine):
        return item
    return f"{', '.join(TOPIC_NAMES.get(t, t) for t in missing)} ({item})"


def mentions_item(item: str, text: str) -> bool:
    """The keyword check: every significant word (its first 4 letters) of the item, or of every
    comma-separated part of it (a parenthesis is an alternative wording), starts a word of
    ``text``."""
    main, _, aside = item.partition("(")
    low = text.lower()

    def words_in(part: str) -> bool:
        words = [w for w in re.findall(r"[a-z]+", part.lower()) if len(w) >= 4 and w not in _STOP]
        return bool(words) and all(re.search(r"\b" + re.escape(w[:4]), low) for w in words)

    parts = [p for p in re.split(r",|\band\b", main) if p.strip()]
    if parts and all(words_in(p) for p in parts):
        return True
    return bool(aside.strip(" )")) and words_in(aside.strip(" )"))


def loosely_mentions(item: str, text: str) -> bool:
    """Some significant words of the item start words of ``text``: one for a risk item
    ("thoughts" in "Have you had thoughts of hurting yourself?"), two for any other ("Sleep and
    appetite" is not touched by "sleeping" alone). Too loose to give credit for asking; used so
    the coach and the report never criticise or rewrite what may be a risk question (do no
    harm), and to point at turns worth checking."""
    low = text.lower()
    words = {w for w in re.findall(r"[a-z]+", item.split("(")[0].lower())
             if len(w) >= 5 and w not in _STOP}
    found = sum(1 for w in words if re.search(r"\b" + re.escape(w[:5]), low))
    return found >= (1 if item_topics(item) else min(2, len(words) or 1)) and found > 0


def maybe_risk_turn(text: str, labels: Mapping[str, Any] | None,
                    must_assess: Sequence[str]) -> bool:
    """A risk question, or possibly one: never criticised, never rewritten."""
    return is_risk_turn(text, labels, must_assess) or any(
        item_topics(item) and loosely_mentions(item, text) for item in must_assess)


def label_topics(labels: Mapping[str, Any] | None) -> set[str]:
    """Risk topics in a coder's stored labels (``utterances[*].risk``); empty when absent."""
    out: set[str] = set()
    for u in (labels or {}).get("utterances") or []:
        risk = u.get("risk") if isinstance(u, Mapping) else getattr(u, "risk", None)
        out.update(str(r) for r in risk or [])
    return out


def turn_topics(text: str, labels: Mapping[str, Any] | None,
                must_assess: Sequence[str]) -> set[str]:
    """What a trainee turn asks about: the coder's risk topics, plus the topics of every
    ``must_assess`` item the keyword check finds in it."""
    topics = label_topics(labels)
    for item in must_assess:
        if item_topics(item) and mentions_item(item, text):
            topics.update(item_topics(item))
    return topics


def is_risk_turn(text: str, labels: Mapping[str, Any] | None,
                 must_assess: Sequence[str]) -> bool:
    return bool(turn_topics(text, labels, must_assess))


def review(must_assess: Sequence[str], turns: Iterable[Any],
           labels_of: Mapping[int, Mapping[str, Any] | None],
           risk_facts: Iterable[str] = ()) -> RiskReview:
    """Check each ``must_assess`` item over the conversation, and each risk disclosure.

    ``turns`` are the current branch's turns in order (objects with ``id``, ``idx``, ``speaker``,
    ``text``, ``fact_id``); ``labels_of`` maps a counselor turn id to its stored coder labels;
    ``risk_facts`` are the ids of the persona's hidden facts whose disclosure needs following up
    (``HiddenFact.needs_follow_up``).
    """
    turns = list(turns)
    counselor = [t for t in turns if t.speaker == "counselor"]
    covered = {t.id: turn_topics(t.text, labels_of.get(t.id), must_assess) for t in counselor}
    checks = []
    for item in must_assess:
        topics = item_topics(item)
        hits = [t for t in counselor
                if (covered[t.id] & set(topics)) or mentions_item(item, t.text)]
        asked_topics = set().union(*(covered[t.id] for t in hits)) if hits else set()
        if topics and any(mentions_item(item, t.text) for t in hits):
            asked_topics |= set(topics)  # the whole item was named in one question
        missing = [x for x in topics if x not in asked_topics]
        asked = bool(hits) and (not topics or not missing or
                                (_any_of(item) and len(missing) < len(topics)))
        touched = [] if asked else [t.idx for t in counselor if loosely_mentions(item, t.text)]
        checks.append(RiskCheck(item=item, asked=asked, topics=topics,
                                missing=[] if asked else missing, turns=[t.idx for t in hits],
                                touched=touched))
    facts = set(risk_facts)
    disclosures = []
    for i, t in enumerate(turns):
        if t.speaker != "client" or not t.fact_id or t.fact_id not in facts:
            continue
        nxt = next((u for u in turns[i + 1:] if u.speaker == "counselor"), None)
        followed = nxt is not None and (bool(covered.get(nxt.id)) or
                                        _reflects(labels_of.get(nxt.id)))
        disclosures.append(Disclosure(idx=t.idx, text=t.text, followed_up=followed,
                                      next_idx=nxt.idx if nxt else None,
                                      next_text=nxt.text if nxt else None))
    return RiskReview(checks=checks, disclosures=disclosures)


def _reflects(labels: Mapping[str, Any] | None) -> bool:
    """A reflection stays with what the client just said (AnnoMI label or utterance codes)."""
    if not labels:
        return False
    if labels.get("behaviour") == "reflection":
        return True
    return any((u.get("behaviour") if isinstance(u, Mapping) else None) in ("SR", "CR")
               for u in labels.get("utterances") or [])
