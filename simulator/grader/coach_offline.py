"""Per-turn coaching without a model: what was said, why it matters, and what to try instead.

Practice without good feedback makes novices worse (the CARE trial), so the offline grader must
coach, and coach *right*. The words a trainee reads come from content, not from this module: each
code's ``coaching`` line in the rubric YAML, and the Jinja2 template
``feedback/coach_alternatives.j2`` (which code gets which kind of alternative, the sentence frames,
the "why it matters / what to try" form). This module only supplies the *material* the template
needs, computed from the conversation:

* ``clause``: one complete clause of the client's last words turned to the second person
  ("I don't see the problem" -> "you don't see the problem"), or None. A clause is chosen only
  when it is a statement with a subject: questions ("Why do you care."), fragments ("Since you
  were young.", "Every night.") and instructions are skipped rather than turned into broken
  reflections; long sentences are cut at a clause boundary, never mid-phrase.
* ``sides``: the two halves of an "X, but Y" statement, for a double-sided reflection;
* ``talk``: whether those words lean against change (``sustain``), towards it (``change``) or
  neither, so the template can pick a complex reflection that adds the right meaning;
* ``question``: the trainee's closed question taken apart (auxiliary, subject, verb, rest), so the
  template can rebuild it as an open question;
* ``risk``: the risk topics the turn asks about. A risk question is never criticised and never
  rewritten: asking directly about suicide is the skill (see ``grader.risk_review``).

English only, like the shipped personas; a persona in another language gets the rubric's coaching
line and no rebuilt sentence rather than a wrong one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from pydantic import BaseModel

from simulator.client.understand import closing as closes_session
from simulator.coder.labels import CodedTurn, Utterance
from simulator.coder.risk import TOPIC_NAMES
from simulator.coder.risk_meaning import find_risk
from simulator.content.rubric import Rubric
from simulator.grader.risk_review import (
    item_answered,
    item_topics,
    loosely_mentions,
    mentions_item,
    still_to_ask,
    turn_topics,
)
from simulator.settings import ROOT

TEMPLATE = "coach_alternatives.j2"
MAX_QUOTE_CHARS = 140
MAX_CLAUSE_WORDS = 18

# Word lists below are grammar (how English turns "I" into "you", what starts a clause), not
# feedback wording.
_FIRST_TO_SECOND = {
    "i": "you", "me": "you", "my": "your", "mine": "yours", "myself": "yourself",
    "i'm": "you're", "im": "you're", "i've": "you've", "ive": "you've", "i'd": "you'd",
    "i'll": "you'll", "am": "are", "we": "you", "us": "you", "our": "your", "ours": "yours",
    "ourselves": "yourselves", "we're": "you're", "we've": "you've", "we'd": "you'd",
    "we'll": "you'll", "i’m": "you're",
}
_SECOND_TO_FIRST = {
    "your": "my", "yours": "mine", "yourself": "myself", "you're": "I'm", "you've": "I've",
    "you'd": "I'd", "you'll": "I'll",
}
_SUBJECT_VERBS = {"are", "were", "do", "don't", "did", "didn't", "have", "haven't", "had", "can",
                  "can't", "could", "couldn't", "would", "wouldn't", "will", "won't", "should",
                  "shouldn't", "know", "think", "say", "said", "want", "need", "just", "always",
                  "never", "keep", "make", "get", "go", "tell", "told", "see", "mean",
                  "understand", "care", "feel"}
_FILLERS = {"well", "um", "uh", "erm", "yeah", "yes", "no", "so", "like", "okay", "ok", "oh",
            "look", "honestly", "anyway", "and", "but", "i mean", "you know", "i guess", "mm",
            "hmm", "right", "sure", "actually", "basically", "also", "then", "now"}
_SUBJECTS = {"i", "i'm", "im", "i've", "ive", "i'd", "i'll", "we", "we're", "we've", "we'd",
             "my", "our", "it", "it's", "its", "that", "that's", "this", "there", "there's",
             "they", "they're", "he", "she", "he's", "she's", "everyone", "everybody", "nobody",
             "nothing", "everything", "people", "the", "you", "you're", "your", "all", "most",
             "some", "things", "work", "life", "drinking", "smoking", "someone", "somebody",
             "none", "both", "neither", "one", "his", "her", "their", "me"}
_NOT_CLAUSE = {"why", "what", "how", "who", "where", "which", "whose", "do", "does", "did",
               "is", "are", "was", "were", "can", "could", "will", "would", "should", "shall",
               "may", "might", "have", "has", "had", "please", "let", "tell", "ask", "go",
               "don't", "dont", "never", "stop", "try", "just", "not", "ha", "haha", "whatever"}
_SUBORDINATORS = {"since", "when", "whenever", "if", "although", "though", "as", "while",
                  "unless", "until", "after", "before", "once", "whereas", "even"}
_BECAUSE = {"because", "cause", "'cause", "cos", "coz"}
_LOWER_STARTERS = _SUBJECTS | _FILLERS | _NOT_CLAUSE | _SUBORDINATORS | _BECAUSE | {
    "a", "an", "every", "in", "on", "at", "not", "just", "maybe", "sometimes", "only"}
_FIRST_PERSON = re.compile(r"\b(i|i'm|i've|i'd|i'll|we|we're|we've|my|me|myself|our|us)\b",
                           re.IGNORECASE)
_FIRST_SUBJECT = re.compile(r"\b(i|i'm|i've|i'd|i'll|we|we're|we've)\b", re.IGNORECASE)
_TAG = re.compile(r"[,\s]+(you know|right|i guess|i mean|or something|or whatever|innit|eh|"
                  r"if i'?m honest|to be honest|honestly|really|actually|if you ask me|"
                  r"if you want my opinion|as far as i'?m concerned)$",
                  re.IGNORECASE)
_TAG_QUESTION = re.compile(
    r",\s*(do|does|don't|are|aren't|is|isn't|was|wasn't|have|haven't|has|hasn't|can|can't|will|"
    r"won't|would|wouldn't|did|didn't|should|shouldn't)\s+(you|it|i|we|they|he|she|there)$",
    re.IGNORECASE)
_TAG_MARK = re.compile(r",\s*(you know|right|innit|eh|yeah)\?$", re.IGNORECASE)
_SENTENCE = re.compile(r"[^.!?]+[.!?]*")
_EXPECTS_NO = re.compile(
    r"(?:\bnot\b|n't\b)[^?]*,\s*(?:are|do|would|have|is|did|were|will)\s+(?:you|it|there)"
    r"\s*\?\s*$|\bor anything\b[^?]*\?", re.IGNORECASE)
"""A question framed to be answered "no" ("You're not suicidal or anything, are you?"): risk is
asked, but in words that tell the client which answer is wanted."""
_CLAUSE_BREAK = re.compile(r"\s*(?:;|,?\s+(?:and|but|so|because|cos|though)\s+|,\s+)",
                           re.IGNORECASE)
# What the client's words lean towards (MI talk types), for the complex reflection's frame.
_SUSTAIN = re.compile(
    r"\b(don'?t see|not (a|the|really a) problem|no problem|not an? (issue|alcoholic)|i'?m fine|"
    r"it'?s fine|everyone (does|drinks|smokes)|everybody (does|drinks|smokes)|no point|"
    r"can'?t (stop|change|quit)|won'?t|not going to|don'?t need|don'?t want to (stop|quit|change)"
    r"|nothing wrong|my (business|choice)|helps me (relax|sleep|unwind|cope)|only way|"
    r"don'?t think i (drink|smoke|eat|have|need)|more than anyone|not that (much|bad)|"
    r"sent me|have to be here|made me come|(nobody|no one|everyone|everybody) i know)",
    re.IGNORECASE)
_CHANGE = re.compile(
    r"\b(want to (stop|quit|change|cut|try|get|be)|wish|need to|should (probably )?|"
    r"been thinking|ready|would like to|i'?d like to|going to try|trying to|worried|scared|"
    r"afraid|tired of|sick of|fed up|can'?t go on like)",
    re.IGNORECASE)


_HEAVY = re.compile(
    r"\b(tired|exhausted|worn|bad at|hard|difficult|frighten|scared|afraid|worried|worry|"
    r"can'?t (cope|sleep|stop|manage)|don'?t know (what|how)|miss|alone|lonely|stuck|angry|"
    r"upset|sad|lost|useless|pointless|failure|ashamed|embarrass|"
    r"guilty|stressed|anxious|nervous|hopeless|awful|terrible|overwhelm)",
    re.IGNORECASE)


_OWN_REFLECTION = re.compile(r"^\W*((so|and|okay|ok|right|mm+|yeah),?\s+)*((it\s+)?sounds like|"
                             r"it seems( like)?|i hear that|what i'?m hearing is)?,?\s*",
                             re.IGNORECASE)


_ADVICE_WORDS = re.compile(r"\b(should|need to|have to|must|ought to|why don't you)\b",
                           re.IGNORECASE)


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
    """The code the rationale and the alternative are about (``risk`` for a risk question)."""
    rationale: str
    alternative: str | None = None


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.findall(" ".join(text.split())) if s.strip()]


def _norm(word: str) -> str:
    return word.lower().strip(",;:\"()").replace("\u2019", "'")


def _strip_fillers(words: list[str]) -> list[str]:
    while words:
        w = _norm(words[0])
        two = " ".join(_norm(x) for x in words[:2])
        if two in _FILLERS:
            words = words[2:]
        elif w in _FILLERS or not w.strip(",.-"):
            words = words[1:]
        else:
            break
    return words


def _subject_kind(words: list[str], names: set[str]) -> str | None:
    """How this run of words starts: ``pronoun`` ("my wife nags ..."), ``noun`` (a lower-case
    subject: "Teachers don't", "Talking to people is"), ``name`` (a proper name the client used
    capitalised mid-sentence too) or None (not a statement with a subject we can be sure of)."""
    if len(words) < 2:
        return None
    first = _norm(words[0])
    if first in _NOT_CLAUSE or first in _SUBORDINATORS or first in _BECAUSE:
        return None
    if first in {"you", "you're", "you've", "you'd", "you'll", "your", "ya"}:
        return None  # the client talking to the counselor, or an imperative: not theirs to reflect
    if first in _SUBJECTS:
        return "pronoun"
    core = words[0].strip(",;:\"()")
    nxt = _norm(words[1])
    verb_next = (nxt in _SUBJECT_VERBS or nxt.endswith(("s", "ed", "n't")) or
                 nxt in {"is", "was", "has", "left", "said", "always", "never", "just", "all"})
    if first in _FAMILY and verb_next:
        return "noun"
    if core in names and verb_next:
        return "name"
    if core[:1].isupper() and first not in _LOWER_STARTERS and first not in _NUMBERS and \
            not first.endswith(("s", "ing")) \
            and (nxt in _NAME_VERBS or (nxt.endswith(("ed", "s")) and nxt not in
                                        {"need", "is", "was", "has", "does", "this", "us"}) or
                 nxt in {"is", "was", "has", "does"}):
        return "name"  # "Sarah left me", "Dev says hello"
    if first.endswith("ing") and len(words) >= 3:
        return "noun"  # "Talking to people is hard"
    if (first.endswith("'s") or (first.endswith("s") and not first.endswith("ss"))) and \
            first not in _LOWER_STARTERS and (verb_next or first.endswith("'s")):
        return "noun"  # "School's pointless", "Teachers don't hear it"
    return None


_NAME_VERBS = {"is", "was", "has", "had", "left", "says", "thinks", "wants", "keeps", "calls",
               "told", "tells", "does", "doesn't", "didn't", "won't", "can't", "never",
               "always", "just", "died", "works", "lives", "drinks", "smokes", "knows", "asked"}
_NUMBERS = {"one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
            "eleven", "twelve", "twenty", "thirty", "forty", "fifty", "sixty", "hundred",
            "half", "several", "many", "few", "lots", "loads"}
_HEDGES = {"maybe", "perhaps", "probably"}
_FAMILY = {"mom", "mum", "dad", "mother", "father", "grandma", "granddad", "nan", "gran",
           "brother", "sister", "husband", "wife", "partner", "son", "daughter", "boss"}


def _names(text: str) -> set[str]:
    """Words the client capitalised somewhere other than at a sentence start: proper names."""
    out = set()
    for sentence in _sentences(text):
        for w in sentence.split()[1:]:
            core = w.strip(",;:\"()!?.")
            if core[:1].isupper() and core.lower() not in {"i", "i'm", "i've", "i'd", "i'll"}:
                out.add(core)
    return out


def _candidate(sentence: str, names: set[str] | None = None) -> list[str] | None:
    """The words of one reflectable clause of ``sentence``, or None (question, fragment)."""
    names = names or set()
    body = _TAG.sub("", sentence.rstrip(".!?\u2026").strip()).strip()
    if _TAG_QUESTION.search(body):
        return None  # "You don't, do you." is a question
    words = _strip_fillers(body.split())
    if not words:
        return None
    hedge = [words[0].lower()] if _norm(words[0]) in _HEDGES and len(words) > 2 else []
    words = words[len(hedge):]
    first = _norm(words[0])
    if first in _BECAUSE:  # "Because it helps me sleep." -> "it helps you sleep"
        words = _strip_fillers(words[1:])
    elif first in _SUBORDINATORS:  # "Since I lost my job, I stay in." -> the main clause
        joined = " ".join(words)
        if "," in joined:  # "If I stopped, I wouldn't sleep" -> "I wouldn't sleep if I stopped"
            sub, main = joined.split(",", 1)
            main_words = _strip_fillers(main.split())
            whole = [*main_words, sub.split()[0].lower(), *sub.split()[1:]]
            words = whole if len(whole) <= MAX_CLAUSE_WORDS else main_words
        else:  # "After my father died I drank more" -> "I drank more after my father died"
            at = next((i for i, w in enumerate(words) if i > 1 and _norm(w) in
                       {"i", "i'm", "i've", "i'd", "we", "we're"}), None)
            if at is None or at > 8 or len(words) - at < 2:
                return None
            words = [*words[at:], words[0].lower(), *words[1:at]]
    kind = _subject_kind(words, names)
    if kind is None:
        return None
    if kind == "noun":
        words = [words[0].lower(), *words[1:]]
    if len(words) > MAX_CLAUSE_WORDS:  # cut at a clause boundary, never mid-phrase
        head = _CLAUSE_BREAK.split(" ".join(words), maxsplit=1)[0].split()
        if len(head) > MAX_CLAUSE_WORDS or len(head) < 3:
            return None
        words = head
    if _norm(words[-1]) in {"and", "but", "so", "or", "because", "the", "a", "an", "of", "my"}:
        return None  # a dangling end: not a clause we can reflect
    if len(words) < 3 and not (len(words) == 2 and "'" in words[0]):
        return None
    return hedge + words


def _swap(words: list[str]) -> str:
    """First person to second (and "you" to "I"), keeping punctuation and proper names."""
    out: list[str] = []
    for i, raw in enumerate(words):
        core = raw.strip(",;:\"()")
        lead = raw[: raw.find(core)] if core else ""
        trail = raw[raw.find(core) + len(core):] if core else ""
        low = _norm(core)
        prev = _norm(words[i - 1]) if i else ""
        if low in _FIRST_TO_SECOND:
            new = _FIRST_TO_SECOND[low]
        elif low == "was" and prev in ("i", "we"):
            new = "were"
        elif low == "you":
            nxt = _norm(words[i + 1]) if i + 1 < len(words) else ""
            new = "I" if (i == 0 or nxt in _SUBJECT_VERBS) else "me"
        elif low in _SECOND_TO_FIRST:
            new = _SECOND_TO_FIRST[low]
        elif i == 0 and (low in _LOWER_STARTERS or not core[:1].isupper()):
            new = low
        elif low == "i'm":
            new = "you're"
        else:
            new = core
        out.append(lead + new + trail)
    text = " ".join(out).strip(" ,;:")
    # "tells me I should" -> "tells you that you should"
    text = re.sub(r"\byou you\b", "you that you", text)
    if text.startswith(("I ", "I'm ", "I've ", "I'd ", "I'll ")):
        text = "you feel " + text  # "You don't understand" -> "you feel I don't understand"
    return text


def client_clause(text: str) -> str | None:
    """One complete clause of the client's words in the second person, or None.

    Prefers the last statement in which the client speaks about themselves; never a question or
    a fragment (see the module docstring)."""
    chosen = _choose(text)
    return chosen[1] if chosen else None


def _choose(text: str) -> tuple[str, str] | None:
    """The chosen clause as the client said it and in the second person."""
    options: list[tuple[int, int, str, str]] = []
    names = _names(text)
    for n, sentence in enumerate(_sentences(text)):
        sentence = _TAG_MARK.sub(".", sentence)  # "..., you know?" is a statement
        if sentence.endswith("?"):
            continue
        words = _candidate(sentence, names)
        if words is None:
            continue
        joined = " ".join(words)
        speaks = bool(_FIRST_SUBJECT.search(joined))
        mine = bool(_FIRST_PERSON.search(joined))
        addresses = bool(re.search(r"\byou\b", joined, re.IGNORECASE))
        score = (2 if speaks else 1 if mine else 0) - (1 if addresses else 0)
        options.append((score, n if score > 0 else -n, joined, _swap(words)))
    if not options:
        return None
    # the last statement about the client; failing that, the first (usually the topic)
    best = max(options, key=lambda o: (o[0], o[1]))
    return best[2], best[3]


def reflect_client(text: str) -> str | None:
    """The client's last words as reflection material (kept name; see ``client_clause``)."""
    return client_clause(text)


def client_sides(text: str) -> tuple[str, str] | None:
    """The two halves of "X, but Y" in the client's words (both complete clauses), or None."""
    for sentence in reversed(_sentences(text)):
        if sentence.endswith("?"):
            continue
        parts = re.split(r",?\s+but\s+", sentence.rstrip(".!?"), maxsplit=1, flags=re.IGNORECASE)
        if len(parts) != 2:
            continue
        names = _names(text)
        a, b = _candidate(parts[0] + ".", names), _candidate(parts[1] + ".", names)
        if a and b and len(a) + len(b) <= MAX_CLAUSE_WORDS + 6:
            return _swap(a), _swap(b)
    return None


def client_talk(text: str) -> str:
    """Which way the clause the coach reflects leans: ``sustain`` (against change), ``change``
    (towards it), ``heavy`` (a burden: tired, scared, can't), ``other`` (about someone else, not
    the client), or ``neutral``. Read from the chosen clause only, so the added meaning fits the
    words it is added to."""
    chosen = _choose(text)
    said = chosen[0] if chosen else ""
    if said and not _FIRST_PERSON.search(said) and _about_someone_else(said):
        return "other"
    if _HEAVY.search(said):
        return "heavy"
    if _SUSTAIN.search(said):
        return "sustain"
    if _CHANGE.search(said):
        return "change"
    return "neutral"


def _about_someone_else(said: str) -> bool:
    """The clause's subject is another person ("Ewa counts the cans", "she's a worrier"), not
    the client's situation ("it's a relief to say it")."""
    words = said.split()
    first = _norm(words[0]) if words else ""
    return first in _THIRD_PARTY or first in _FAMILY or _subject_kind(words, set()) == "name"


_THIRD_PARTY = {"he", "she", "they", "he's", "she's", "they're", "his", "her", "their",
                "everyone", "everybody", "people", "nobody", "someone", "somebody"}


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
        rest = [w for w in words[1 + take:2 + take] if w.lower() not in _ADVERBS] + \
            words[2 + take:]
        if not rest:
            continue
        subject = subject if subject.lower() != "you" else "you"
        return ClosedQuestion(text=sentence, aux=aux, subject=subject, verb=rest[0].lower(),
                              tail=" ".join(rest[1:]).strip(" ,"))
    return None


_ADVERBS = {"ever", "really", "already", "just", "still", "actually", "never", "even", "also",
            "honestly", "sometimes", "often"}
_AUXILIARIES = {"do", "does", "did", "is", "are", "was", "were", "am", "have", "has", "had",
                "can", "could", "will", "would", "should", "shall", "may", "might"}


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


_STOP = frozenset({"that", "this", "with", "what", "have", "your", "you're", "about", "just",
                   "them", "they", "then", "there", "when", "been", "were", "like", "some",
                   "more", "much", "very", "really", "things", "thing", "feel", "feels"})


def _content_words(text: str) -> set[str]:
    """Words of four letters or more, not the commonest: what two sentences share when one
    reflects the other."""
    return {w for w in re.findall(r"[a-z']{4,}", text.lower()) if w not in _STOP}


def reflects_earlier(own: str, client_last: str, client_said: Sequence[str]) -> bool:
    """The trainee's reflection ``own`` picks up something the client said before their last
    words, and nothing of the last words: "So the drinking is how you switch off" two answers
    after "It's how I switch off". Its deepening then builds on the trainee's own words; grounded
    in the last words ("My wife, my daughter. Normal family.") it changed the subject."""
    mine = _content_words(own)
    return not mine & _content_words(client_last) and any(
        mine & _content_words(said) for said in client_said[-6:-1])


def _utterances(coded: CodedTurn) -> list[dict[str, Any]]:
    """The coder's utterance codes when it gives them (``CounselorLabels.utterances``), as
    ``{text, behaviour, risk}``; empty for a coder that codes whole turns."""
    out = []
    for u in getattr(coded.labels, "utterances", None) or []:
        get = u.get if isinstance(u, Mapping) else (lambda k, _u=u: getattr(_u, k, None))
        behaviour = get("behaviour")
        if behaviour:
            out.append({"text": str(get("text") or ""), "behaviour": str(behaviour),
                        "risk": list(get("risk") or [])})
    return out


def coaching_context(coded: CodedTurn, rubric: Rubric, transcript: Sequence[Utterance],
                     turn_text: str, mode: str = "coach",
                     must_assess: Sequence[str] = ()) -> dict[str, Any]:
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
    known = rubric.code_ids()
    utterances_all = _utterances(coded)
    utterances = [u for u in utterances_all if u["behaviour"] in known]
    for u in utterances:  # the utterance codes the turn-level codes do not already show
        if u["behaviour"] not in {c["id"] for c in codes}:
            c = rubric.code(u["behaviour"])
            codes.append({"item": "utterance", "id": c.id, "name": c.name,
                          "definition": c.definition, "coaching": c.coaching,
                          "is_default": False})
    client_last = next((u.text for u in reversed(transcript) if u.speaker == "client"), "")
    question = parse_closed_question(turn_text)
    last_q = next((x for x in reversed(_sentences(turn_text)) if x.endswith("?")), "")
    wh_question = bool(re.match(r"\W*([\w' ]+,\s*)?(so,?\s+)?(what|how|why|where|when|who|which|"
                                r"tell me)\b", last_q, re.IGNORECASE))
    own = _OWN_REFLECTION.sub("", turn_text.strip().rstrip(".!")).strip()
    own_clause = own if "?" not in own and 3 <= len(own.split()) <= MAX_CLAUSE_WORDS and \
        not _ADVICE_WORDS.search(own) else None
    labels = coded.labels.model_dump() | {"utterances": utterances_all}
    # The coder's risk topics, and the risk phrasings read here too: a coder that codes whole
    # turns (or an LLM that missed it) must not get a risk question rewritten or marked down.
    risk = sorted(turn_topics(turn_text, labels, must_assess) |
                  set(find_risk(turn_text, [u.text for u in transcript],
                                client_last=client_last or None)))
    possible = [] if risk else [item for item in must_assess
                                if item_topics(item) and loosely_mentions(item, turn_text)]
    asked = [u.text for u in transcript if u.speaker == "counselor"] + [turn_text]
    # topics earlier turns asked about, by the same phrasings: "Do you ever think about killing
    # yourself?" two turns ago covers "Ask directly about suicidal thoughts"
    covered = set(risk)
    for i, said in enumerate(transcript):
        if said.speaker == "counselor":
            before = transcript[:i]
            said_after = before[-1].text if before and before[-1].speaker == "client" else None
            covered.update(find_risk(said.text, [x.text for x in before], client_last=said_after))
    risk_todo = [still_to_ask(item, covered) for item in must_assess if item_topics(item) and
                 not item_answered(item, covered) and
                 not any(mentions_item(item, said) for said in asked)]
    return {
        "topic_names": TOPIC_NAMES,
        "codes": codes,
        "code_ids": [c["id"] for c in codes],
        "utterances": utterances,
        "turn": _quote(turn_text),
        "client_last": _quote(client_last) if client_last else "",
        "clause": client_clause(client_last) if client_last else None,
        "reflection": client_clause(client_last) if client_last else None,
        "sides": list(client_sides(client_last) or []) if client_last else [],
        "talk": client_talk(client_last) if client_last else "neutral",
        "mine": bool(client_last and (chosen := _choose(client_last)) and
                     _FIRST_PERSON.search(chosen[0])),
        "question": question.model_dump() | {"rest": question.rest} if question else None,
        "wh_question": wh_question,
        "collaborative": any(u["behaviour"] == "SEEK" and "?" in u["text"]
                             for u in utterances_all),
        "own_clause": own_clause[:1].lower() + own_clause[1:] if own_clause else None,
        "own_elsewhere": bool(own_clause and client_last and reflects_earlier(
            own_clause, client_last, [u.text for u in transcript if u.speaker == "client"])),
        "risk": risk,
        "risk_expects_no": bool(risk and _EXPECTS_NO.search(turn_text)),
        "closing": not risk and closes_session(
            turn_text, sum(1 for u in transcript if u.speaker == "counselor") + 1),
        "risk_possible": possible,
        "risk_todo": [i for i in risk_todo if i not in possible],
        "mode": mode,
        "rubric": {"id": rubric.id, "title": rubric.title},
    }


def coach_turn(coded: CodedTurn, rubric: Rubric, transcript: Sequence[Utterance], turn_text: str,
               mode: str = "coach", *, feedback_dir: Path | None = None,
               must_assess: Sequence[str] = ()) -> OfflineCoaching:
    """Rationale and (coach mode) a better alternative for one coded turn, rendered from
    ``feedback/coach_alternatives.j2``. ``transcript`` is the conversation before the turn;
    ``must_assess`` is the persona's list, so a question about one of its risk items is
    recognised (and never criticised) even when the coder gives no risk topics."""
    ctx = coaching_context(coded, rubric, transcript, turn_text, mode, must_assess)
    tpl = _env(str(feedback_dir or ROOT / "feedback")).get_template(TEMPLATE)
    featured = tpl.render(part="featured", **ctx).strip() or None
    featured_code = next((c for c in ctx["codes"] if c["id"] == featured), None)
    rationale = _one_line(tpl.render(part="rationale", featured=featured_code,
                                     featured_id=featured, **ctx))
    alternative = None
    if mode == "coach":
        rendered = tpl.render(part="alternative", featured=featured_code, featured_id=featured,
                              **ctx)
        alternative = _one_line(rendered) or None
    return OfflineCoaching(codes=[c["id"] for c in ctx["codes"] if not c["is_default"]],
                           featured=featured, rationale=rationale, alternative=alternative)
