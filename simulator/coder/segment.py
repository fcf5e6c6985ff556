"""Splitting a counselor turn into utterances, the unit MITI codes.

MITI 4.2.1 (Behavior Counts, introduction) tallies behaviours per utterance, a complete thought,
not per speaking turn: "So drinking helps you relax. What would you lose if you cut down?" is a
reflection and a question. The rules here, in order:

1. Sentences end at ``.``, ``?`` or ``!`` followed by a space or the end of the turn,
   except after a title or a Latin abbreviation (``Dr.``, ``e.g.``) or inside a number (``2.5``).
   Line breaks end a sentence too. A semicolon does not: "you feel stuck; part of you wants
   out" is one double-sided thought.
2. A fragment that is not a thought of its own joins the next sentence: a lone discourse marker
   ("So.", "And..."), or anything under two words that is not a back-channel ("Okay.", "Mm-hmm.",
   "Right."), since back-channels are complete (if empty) utterances that MITI leaves uncoded.
3. A bare check on the sentence before ("Is that right?", "Did I get that?", "Right?") joins it:
   it asks the client to confirm the reflection, not for new information, so it adds no
   Question (coding it as one would let "reflection + is that right?" lower R:Q).
4. A greeting that opens the turn before a comma ("Hi Tomasz, what brings you in today?") is an
   utterance of its own: MITI leaves the greeting uncoded and codes the question. Kept in one,
   the whole turn was read as a greeting and the trainee's first open question went uncounted.

Offsets are character offsets into the original text, stripped of surrounding whitespace, so
``text[start:end]`` is each utterance exactly as typed.
"""

from __future__ import annotations

import re

_END = re.compile(r"(?:[.?!]+[\"'”’)]*)(?=\s|$)|\n+")
_ABBREV = re.compile(r"(?:\b(?:dr|mr|mrs|ms|st|vs|etc|approx|no|e\.g|i\.e|a\.m|p\.m)|\d)\.$",
                     re.IGNORECASE)
_MARKERS = {"so", "and", "but", "well", "now", "also", "then", "um", "uh", "er", "hmm", "like",
            "anyway", "because", "or"}
_BACKCHANNEL = re.compile(
    r"^(?:ok(?:ay)?|right|sure|yes|yeah|yep|no|nope|m+-?hm+|mhm|uh-?huh|hm+|ah|oh|i see|got it|"
    r"alright|all right|thanks|thank you|hi|hello|hey|wow|great|good|fine|cool|sorry|bye|"
    r"goodbye)$", re.IGNORECASE)
_CHECK = re.compile(
    r"^(?:(?:is|was) (?:that|this|it) (?:right|correct|true|fair|accurate|it)|"
    r"(?:am i|did i) (?:getting|get|understanding|understand|hearing|hear) (?:that|this|you|it)"
    r"(?: right| correctly)?|right|correct|yeah|yes|no|does that (?:sound|fit)(?: right| about "
    r"right)?|have i got that(?: right)?|do i have that(?: right)?|fair enough|is that it)\?$",
    re.IGNORECASE)


def _sentences(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    begin = 0
    for m in _END.finditer(text):
        end = m.end()
        if m.group().strip() == "." and _ABBREV.search(text[max(0, m.start() - 6):m.end()]):
            continue
        spans.append((begin, end))
        begin = end
    if begin < len(text):
        spans.append((begin, len(text)))
    out = []
    for s, e in spans:
        chunk = text[s:e]
        lead = len(chunk) - len(chunk.lstrip())
        trail = len(chunk.rstrip())
        if trail > lead:
            out.append((s + lead, s + trail))
    return out


def _words(chunk: str) -> list[str]:
    return re.findall(r"[a-z0-9'’-]+", chunk.lower())


def _is_fragment(chunk: str) -> bool:
    words = _words(chunk)
    if not words:
        return True
    bare = re.sub(r"[\s.?!;,…]+$", "", chunk.strip())
    if _BACKCHANNEL.match(bare):
        return False
    return all(w in _MARKERS for w in words) or len(words) < 2


_GREETING = re.compile(r"^(?:hi|hello|hey|good (?:morning|afternoon|evening)|welcome)"
                       r"(?:\s+[\w'’-]+){0,2}\s*,\s*", re.IGNORECASE)
"""A greeting, up to two words after it (a name, "there", "again"), a comma."""


def _split_greeting(text: str, span: tuple[int, int]) -> list[tuple[int, int]]:
    s, e = span
    m = _GREETING.match(text[s:e])
    if m is None or len(_words(text[s + m.end():e])) < 2:
        return [span]
    return [(s, s + len(m.group().rstrip())), (s + m.end(), e)]


def segment(text: str) -> list[tuple[int, int]]:
    """The utterances of a turn as ``(start, end)`` character offsets (see the module rules).
    An empty or blank turn has none; a turn with no sentence break is one utterance."""
    spans = _sentences(text)
    merged: list[tuple[int, int]] = []
    carry: int | None = None
    for s, e in spans:
        start = carry if carry is not None else s
        carry = None
        chunk = text[s:e]
        if _CHECK.match(chunk.strip()) and merged:
            merged[-1] = (merged[-1][0], e)
            continue
        if _is_fragment(chunk):
            carry = start
            continue
        merged.append((start, e))
    if carry is not None:
        if merged and carry >= merged[-1][1]:
            merged[-1] = (merged[-1][0], spans[-1][1])
        else:
            merged.append((carry, spans[-1][1]))
    if merged:
        merged[:1] = _split_greeting(text, merged[0])
    return merged
