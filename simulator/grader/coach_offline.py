"""Per-turn coaching without a model: why the turn got its codes, and a better thing to have said.

Practice without feedback makes novices worse, so the offline grader must coach too. The words a
trainee reads come from content, not from this module: each code's ``coaching`` line in the rubric
YAML, and the Jinja2 template ``feedback/coach_alternatives.j2`` (which code gets which kind of
alternative, and the sentence frames). This module only supplies the *material* the template
needs, computed from the conversation:

* ``reflection``: the client's last words turned round to the second person ("I don't see the
  problem" -> "you don't see the problem"), the raw material of a reflection;
* ``question``: the trainee's closed question taken apart (auxiliary, subject, verb, rest), so the
  template can rebuild it as an open question ("Did you tell your wife?" -> "What was it like to
  tell your wife?").

English only, like the shipped personas; a persona in another language gets the rubric's coaching
line and no rebuilt sentence rather than a wrong one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from pydantic import BaseModel

from simulator.coder.labels import CodedTurn, Utterance
from simulator.content.rubric import Rubric
from simulator.settings import ROOT

TEMPLATE = "coach_alternatives.j2"
MAX_QUOTE_CHARS = 140
MAX_REFLECTION_WORDS = 24

# Word lists below are grammar (how English turns "I" into "you"), not feedback wording.
_FIRST_TO_SECOND = {
    "i": "you", "me": "you", "my": "your", "mine": "yours", "myself": "yourself",
    "i'm": "you're", "im": "you're", "i've": "you've", "i'd": "you'd", "i'll": "you'll",
    "am": "are", "we": "you", "us": "you", "our": "your", "ours": "yours",
    "ourselves": "yourselves", "we're": "you're", "we've": "you've", "we'd": "you'd",
    "we'll": "you'll",
}
_SECOND_TO_FIRST = {
    "your": "my", "yours": "mine", "yourself": "myself", "you're": "I'm", "you've": "I've",
    "you'd": "I'd", "you'll": "I'll",
}
_SUBJECT_VERBS = {"are", "were", "do", "don't", "did", "didn't", "have", "haven't", "had", "can",
                  "can't", "could", "couldn't", "would", "wouldn't", "will", "won't", "should",
                  "shouldn't", "know", "think", "say", "said", "want", "need", "just", "always",
                  "never", "keep", "make", "get", "go", "tell", "told", "see", "mean"}
_FILLERS = {"well", "um", "uh", "erm", "yeah", "yes", "no", "so", "like", "okay", "ok", "oh",
            "look", "honestly", "anyway", "and", "but", "i mean", "you know"}
_COMMON_STARTERS = {"the", "a", "an", "it", "it's", "this", "that", "there", "there's", "everybody",
                    "everyone", "nobody", "no", "nothing", "everything", "something", "people",
                    "they", "they're", "he", "she", "he's", "she's", "what", "when", "all",
                    "most", "some", "sometimes", "work", "drinking", "things", "life", "maybe"}
_AUXILIARIES = {"do", "does", "did", "is", "are", "was", "were", "am", "have", "has", "had",
                "can", "could", "will", "would", "should", "shall", "may", "might"}
_SELF_SUBJECT = re.compile(r"\b(i|i'm|i've|i'd|i'll|we|we're|we've)\b", re.IGNORECASE)
_SELF_ANY = re.compile(r"\b(my|me|myself|our|us)\b", re.IGNORECASE)
_TAG = re.compile(r"[,\s]+(you know|right|i guess|i mean|or something|or whatever)$", re.IGNORECASE)
_SENTENCE = re.compile(r"[^.!?]+[.!?]*")
_WORD = re.compile(r"[A-Za-z']+|[^A-Za-z'\s]+")


class ClosedQuestion(BaseModel):
    """A yes/no question taken apart: "Did you tell your wife?" -> did / you / tell / your wife."""

    text: str
    aux: str
    subject: str
    verb: str
    tail: str
    """The words after ``verb``."""

    @property
    def rest(self) -> str:
        return f"{self.verb} {self.tail}".strip()


class OfflineCoaching(BaseModel):
    codes: list[str]
    """The turn's codes other than each item's default (what the trainee actually did)."""
    featured: str | None = None
    """The code the rationale and the alternative are about."""
    rationale: str
    alternative: str | None = None


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.findall(" ".join(text.split())) if s.strip()]


def _strip_fillers(words: list[str]) -> list[str]:
    while words:
        w = words[0].lower().strip(",")
        two = " ".join(x.lower().strip(",") for x in words[:2])
        if two in _FILLERS:
            words = words[2:]
        elif w in _FILLERS or not w.strip(",.-"):
            words = words[1:]
        else:
            break
    return words


def reflect_client(text: str) -> str | None:
    """The client's last words in the second person, the material of a reflection, or None.

    Picks the last statement that speaks about the client (first person) if there is one, else the
    last statement; drops fillers ("Well, ..."), swaps pronouns and shortens long sentences.
    """
    sentences = [s for s in _sentences(text) if not s.endswith("?")] or _sentences(text)
    if not sentences:
        return None
    speaking = [s for s in sentences if _SELF_SUBJECT.search(s)]
    about = [s for s in sentences if _SELF_ANY.search(s)]
    chosen = (speaking or about or sentences)[-1].rstrip(".!?").strip()
    chosen = _TAG.sub("", chosen).strip()
    words = _strip_fillers(chosen.split())
    if len(words) < 2:
        return None
    words = words[:MAX_REFLECTION_WORDS]
    out: list[str] = []
    for i, raw in enumerate(words):
        core = raw.strip(",;:\"")
        lead, trail = raw[: raw.find(core)] if core else "", raw[raw.find(core) + len(core):]
        low = core.lower().replace("\u2019", "'")
        prev = words[i - 1].lower().strip(",;:\"") if i else ""
        if low in _FIRST_TO_SECOND:
            new = _FIRST_TO_SECOND[low]
        elif low == "was" and prev in ("i", "we"):
            new = "were"
        elif low == "you":
            nxt = words[i + 1].lower().strip(",;:\"") if i + 1 < len(words) else ""
            new = "I" if (i == 0 or nxt in _SUBJECT_VERBS) else "me"
        elif low in _SECOND_TO_FIRST:
            new = _SECOND_TO_FIRST[low]
        elif i == 0 and low in _COMMON_STARTERS:
            new = low
        else:
            new = core
        out.append(lead + new + trail)
    reflection = " ".join(out).strip(" ,;:")
    return reflection or None


def parse_closed_question(text: str) -> ClosedQuestion | None:
    """The last yes/no question of a turn ("Do you ...?", "Have you ...?"), taken apart."""
    for sentence in reversed(_sentences(text)):
        if not sentence.endswith("?"):
            continue
        words = _strip_fillers(sentence.rstrip("?").split())
        if len(words) < 3 or words[0].lower() not in _AUXILIARIES:
            continue
        aux = words[0].lower()
        take = 2 if words[1].lower() in ("your", "the", "my", "his", "her", "their") else 1
        subject = " ".join(words[1:1 + take])
        rest = words[1 + take:]
        if not rest:
            continue
        subject = subject if subject.lower() != "you" else "you"
        return ClosedQuestion(text=sentence, aux=aux, subject=subject, verb=rest[0].lower(),
                              tail=" ".join(rest[1:]).strip(" ,"))
    return None


def _quote(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= MAX_QUOTE_CHARS else flat[: MAX_QUOTE_CHARS - 1].rstrip() + "\u2026"


@lru_cache(maxsize=8)
def _env(folder: str) -> Environment:
    # Output is plain text; reports escape it when they put it into HTML.
    return Environment(loader=FileSystemLoader(folder), undefined=StrictUndefined,  # noqa: S701
                       trim_blocks=True, lstrip_blocks=True)


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat[:1].upper() + flat[1:] if flat else ""


def coaching_context(coded: CodedTurn, rubric: Rubric, transcript: Sequence[Utterance],
                     turn_text: str, mode: str = "coach") -> dict[str, Any]:
    """Everything the coaching template may use (documented in the template's header)."""
    codes = []
    for item in rubric.turn_items:
        if item.kind != "categorical" or item.id not in coded.codes:
            continue
        code = next((c for c in item.codes if c.id == coded.codes[item.id]), None)
        if code is None:
            continue
        codes.append({"item": item.id, "id": code.id, "name": code.name,
                      "definition": code.definition, "coaching": code.coaching,
                      "is_default": code.id == item.default_code})
    client_last = next((u.text for u in reversed(transcript) if u.speaker == "client"), "")
    question = parse_closed_question(turn_text)
    return {
        "codes": codes,
        "code_ids": [c["id"] for c in codes],
        "turn": _quote(turn_text),
        "client_last": _quote(client_last) if client_last else "",
        "reflection": reflect_client(client_last) if client_last else None,
        "question": question.model_dump() | {"rest": question.rest} if question else None,
        "mode": mode,
        "rubric": {"id": rubric.id, "title": rubric.title},
    }


def coach_turn(coded: CodedTurn, rubric: Rubric, transcript: Sequence[Utterance], turn_text: str,
               mode: str = "coach", *, feedback_dir: Path | None = None) -> OfflineCoaching:
    """Rationale and (coach mode) a better alternative for one coded turn, rendered from
    ``feedback/coach_alternatives.j2``. ``transcript`` is the conversation before the turn."""
    ctx = coaching_context(coded, rubric, transcript, turn_text, mode)
    tpl = _env(str(feedback_dir or ROOT / "feedback")).get_template(TEMPLATE)
    featured = tpl.render(part="featured", **ctx).strip() or None
    featured_code = next((c for c in ctx["codes"] if c["id"] == featured), None)
    rationale = _one_line(tpl.render(part="rationale", featured=featured_code, **ctx))
    alternative = None
    if mode == "coach":
        rendered = tpl.render(part="alternative", featured=featured_code, **ctx)
        alternative = _one_line(rendered) or None
    return OfflineCoaching(codes=[c["id"] for c in ctx["codes"] if not c["is_default"]],
                           featured=featured, rationale=rationale, alternative=alternative)
