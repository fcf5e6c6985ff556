"""Risk topics by meaning: a learned head over the sentence embedding, beside the phrasing rules.

The phrasing rules (``coder.risk``) are precise but only know the wordings their authors thought
of: on a test part written by someone else they found about six risk items in ten. A risk
question missed is the worst error the coach can make (the report then says "risk not assessed"
after the trainee asked), so this module adds what the rules miss: one logistic-regression head
per topic over the utterance's all-MiniLM-L6-v2 embedding (the encoder the MITI coder already
runs, so the embedding is usually cached), trained on the risk labels of the trainee-style set.

False alarms teach the wrong thing too ("Do you have a plan for the exam?" is not a suicide-plan
question), so the head only adds a topic once the conversation is about suicide or self-harm:
the rules' suicide gate, or a second learned head ("is this utterance about risk at all?") on the
utterance itself or on one of the last ``CONTEXT_READ`` utterances before it. A topic the rules
found is never taken away. Thresholds and C were chosen by 5-fold cross-validation on the train part
(``experiments/risk_head_cv.py``; docs/coder.md has the figures).

The head ships as plain arrays (``model/risk-head.npz``); ``train-coder --risk`` refits it.

When it is shipped, a reader takes the head's place: a fine-tuned MiniLM that reads the
utterance together with the client's last words (``coder.risk_finetune``,
``model/risk-reader.onnx``), added after a fresh test part showed the rules and the head finding
59% of its items. It finds what only the pair says: the follow-up "How many have you got now?"
after "I've been saving up my tablets", "What stopped you?" after "I had the rope ready". Its
topics are added to the rules'; the head then only says whether the conversation is about risk
(the reader needs more certainty when it is not). Since stop 27 the reader gives each topic its
own probability (a sigmoid each), so a line with a plan and the means for it finds both, and a
client line that itself discloses risk makes the question after it part of a conversation about
risk (``_discloses``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import numpy as np

from simulator.coder.miti_cues import has_cue, is_question
from simulator.coder.offline import MODEL_DIR
from simulator.coder.risk import (
    CONTEXT_READ,
    RISK_TOPICS,
    conversation_about_risk,
    detect_risk,
    risk_raised,
)
from simulator.coder.transformer import BehaviourModel

RISK_HEAD_PATH = MODEL_DIR / "risk-head.npz"
RISK_READER_PATH = MODEL_DIR / "risk-reader.onnx"
READER_THRESHOLD = 0.4
"""A topic the reader gives at least this probability is found once the conversation is about
suicide or self-harm (``READER_GATE``, or the client's last words disclose risk)..."""
READER_CLOSED = 0.95
"""...and at least this one when it is not: "Did you get it looked at?" after "I cut my hand on
the baler" reads like a self-harm follow-up to a model that has seen many."""
READER_CLIENT = 0.9
"""...and this one for a client's own line (a disclosure, which needs no risk conversation
before it)."""
READER_RAISED = 0.7
"""...and this one when suicide or self-harm came up earlier in the session but not in the last
``CONTEXT_READ`` utterances: the rules' gate stays open for the whole session, the reader's
low threshold does not. At 0.4, "What do you do to look after yourself these days?", late in a
Farida session, was credited as a self-harm question (0.51)."""
READER_GATE = 0.8
"""The head's "about risk" probability of one of the recent utterances that counts as a
conversation about risk (besides the rules' gate).

Stop 28 lowered ``READER_CLOSED`` from 0.97 to 0.95, chosen with a reader fitted by the shipped
recipe without round 11 (``experiments/risk_finetune_fresh.py 6 round11``, then
``experiments/risk_thresholds.py``), on round 11 held out: risk recall 0.956 against 0.920 at
0.97 (the items found were self-harm, means and history follow-ups), false alarms unchanged (1 of
40), and on everyday speech no opening question read as risk either way; ordinary follow-ups
81 against 79, "What stopped you?" after ordinary lines 122 against 93 of 394. 0.3 instead of
0.4 found one item more for four more wrong topics; a client threshold of 0.8 one more for one
more client look-alike, 0.95 two fewer for three fewer of the personas' lines.

The reader's three thresholds were chosen in stop 27 for the multi-label reader, fitted without
round 10 (``experiments/risk_finetune_fresh.py 6 round10``), on round 10 held out: risk recall
0.939 with 1 false alarm on 40 non-risk questions and 24 wrong extra topics (0.929 and 19
before a client line's sure topic opened the gate for its others, in ``_read``), against 0.878
(1, 20) at the stop-26 values (0.5, 0.97, 0.7) without the disclosure gates. 0.3 instead of
0.4 found one more item for 10 more wrong topics; a closed threshold of 0.9 or a client one of
0.8 found no more, and read more of the personas' ordinary lines, and ordinary follow-ups after
them, as risk (``tests/test_coder_risk_everyday.py``). ``READER_GATE`` was chosen on round 8
(stop 25)."""


@dataclass
class RiskHead:
    """Per-topic weights over [embedding, rules gate] and the "about risk" head's weights."""

    topics: list[str]
    coef: np.ndarray  # (topics, 385)
    intercept: np.ndarray  # (topics,)
    about_coef: np.ndarray  # (384,)
    about_intercept: float
    threshold: float
    """A topic's probability at or above this adds it (once the gate is open)."""
    gate_threshold: float
    """The "about risk" probability of a context utterance that opens the gate."""

    def save(self, path: str | Path) -> None:
        np.savez_compressed(path, topics=np.array(self.topics), coef=self.coef,
                            intercept=self.intercept, about_coef=self.about_coef,
                            about_intercept=np.array(self.about_intercept),
                            threshold=np.array(self.threshold),
                            gate_threshold=np.array(self.gate_threshold))

    @classmethod
    def load(cls, path: str | Path) -> RiskHead:
        with np.load(path, allow_pickle=False) as z:
            return cls(topics=[str(t) for t in z["topics"]], coef=z["coef"],
                       intercept=z["intercept"], about_coef=z["about_coef"],
                       about_intercept=float(z["about_intercept"]),
                       threshold=float(z["threshold"]),
                       gate_threshold=float(z["gate_threshold"]))

    def topic_proba(self, embedding: np.ndarray, gate: bool) -> np.ndarray:
        x = np.append(embedding.astype(np.float64), 1.0 if gate else 0.0)
        return 1.0 / (1.0 + np.exp(-(self.coef @ x + self.intercept)))

    def about_proba(self, embeddings: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(embeddings.astype(np.float64) @ self.about_coef
                                      + self.about_intercept)))


@cache
def risk_head() -> RiskHead | None:
    """The shipped head, or None when the file is absent (the rules then work alone)."""
    return RiskHead.load(RISK_HEAD_PATH) if RISK_HEAD_PATH.is_file() else None


@cache
def risk_reader() -> BehaviourModel | None:
    """The shipped fine-tuned reader, or None when the file is absent."""
    return BehaviourModel(RISK_READER_PATH) if RISK_READER_PATH.is_file() else None


def reader_topics(reader: BehaviourModel, text: str, client_last: str | None,
                  threshold: float = READER_THRESHOLD) -> list[str]:
    """The topics ``reader`` finds in ``text`` read after the client's last words."""
    found = _above(reader, _reader_proba(reader, text, client_last), threshold)
    return [t for t in reader.config.labels if t in found]


def reader_pair(client_last: str | None, text: str) -> tuple[str, str]:
    """What the reader reads, in training and in the app alike: the client's last words as they
    were said (nothing for a client's own line), then the utterance. Until stop 27 training
    prefixed the client's words with the MITI model's " | " and the app did not, and a few
    follow-ups read very differently ("How sure are you about that?": intent 0.12 against
    0.96)."""
    return (client_last or "", text)


def _reader_proba(reader: BehaviourModel, text: str, client_last: str | None) -> np.ndarray:
    pair = reader_pair(client_last, text)
    return _shipped_proba(*pair) if reader is risk_reader() else reader.proba_pairs([pair])[0]


def _above(reader: BehaviourModel, proba: np.ndarray, threshold: float) -> set[str]:
    return {t for t, p in zip(reader.config.labels, proba, strict=True)
            if t != "none" and p >= threshold}


@lru_cache(maxsize=4096)
def _shipped_proba(client_last: str, text: str) -> np.ndarray:
    """The shipped reader's probabilities, remembered: a live turn reads its questions while the
    coder's second thread runs the embeddings (``miti.with_utterances``), and the MITI coder and
    the coach then read them again."""
    reader = risk_reader()
    assert reader is not None
    return reader.proba_pairs([reader_pair(client_last, text)])[0]


def prefetch_reader(text: str, client_last: str | None) -> None:
    """Read ``text`` with the shipped reader now, so ``find_risk`` finds it remembered."""
    if risk_reader() is not None and text.strip() and reads(text, client_last):
        _shipped_proba(*reader_pair(client_last, text))


_ASKS_BACK = re.compile(r"\b(?:that|it|this|those|these|them|they|then)\b", re.IGNORECASE)


def find_risk(text: str, context: Sequence[str] = (), head: RiskHead | None = None, *,
              client_last: str | None = None, reader: BehaviourModel | None = None,
              client_line: bool = False, raised: bool | None = None) -> list[str]:
    """The risk topics ``text`` asks about or discloses: the rules' topics plus the head's and
    the reader's, in ``RISK_TOPICS`` order. ``context`` is the conversation before it, oldest
    first. With no ``head``, the shipped head and reader; with one (training, experiments), only
    the ``reader`` given.

    ``client_last`` (the client's last words, for a counselor utterance): the reader reads the
    utterance after them. Without a reader, a question with no risk topic of its own that points
    back at them ("Is that still happening now?" after "I used to cut my arms") takes the
    disclosure's topics.

    ``client_line``: ``text`` is the client's own line, read by the reader at
    ``READER_CLIENT`` outside a conversation about risk.

    ``raised``: suicide or self-harm came up before the last ``CONTEXT_READ`` utterances of
    ``context`` (worked out from ``context`` when not given); the conversation is then about
    risk for the rest of the session, however many denials came since."""
    recent = tuple(context[-CONTEXT_READ:])
    if raised is None:
        raised = risk_raised(context[:-CONTEXT_READ])
    if client_line:
        client_last = None
    if head is None:  # the shipped head: the coach asks again about every earlier turn
        return list(_find_shipped(text, recent, client_last, client_line, raised))
    return _find_with(text, recent, head, client_last, reader, client_line, raised)


@lru_cache(maxsize=8192)
def _find_shipped(text: str, recent: tuple[str, ...], client_last: str | None,
                  client_line: bool = False, raised: bool = False) -> tuple[str, ...]:
    """``find_risk`` with the shipped head, remembered: the coach re-reads every earlier
    counselor utterance of the session on each turn (which topics were already asked), so
    without this a long session paid the rules and the head again for each of them."""
    return tuple(_find_with(text, recent, None, client_last, risk_reader(), client_line,
                            raised))


def reads(text: str, client_last: str | None) -> bool:
    """Whether the reader reads ``text``: a question or a request to tell, or a line with no
    client words before it (a client's own line). A counselor's statement is left to the rules:
    risk questions are questions (654 of the train part's 678 counselor risk rows), and a pass
    per utterance halved the coder's speed."""
    return client_last is None or is_question(text) or has_cue(text, "q_tell")


def _find_with(text: str, recent: Sequence[str], head: RiskHead | None,
               client_last: str | None, reader: BehaviourModel | None,
               client_line: bool = False, raised: bool = False) -> list[str]:
    if reader is not None and text.strip():
        if not reads(text, client_last):
            return list(detect_risk(text, recent, raised=raised))
        return _read(text, recent, head, client_last, reader,
                     READER_CLIENT if client_line else READER_CLOSED, client_line, raised)
    found = set(_find(text, recent, head, raised))
    if (not found and client_last and text.rstrip().endswith("?")
            and _ASKS_BACK.search(text)):
        found = set(_find(client_last, recent, head, raised))
    return [t for t in RISK_TOPICS if t in found]


def _read(text: str, recent: Sequence[str], head: RiskHead | None, client_last: str | None,
          reader: BehaviourModel, closed: float = READER_CLOSED, client_line: bool = False,
          raised: bool = False) -> list[str]:
    """The rules' topics and the reader's. The reader replaces the head's topics and the
    follow-up rule: on the held-out round it found all they found and more, and they added
    topics the row did not ask about (a follow-up to "I used to cut my arms at school" took the
    history topic as well). The head still says whether the conversation is about risk.

    A client's line that surely discloses one topic is itself a conversation about risk, so its
    other topics are read at the lower threshold: "I've got the pills in the drawer and I know
    it will be Sunday night" is means (0.99) and a plan (0.84)."""
    found = set(detect_risk(text, recent, raised=raised))
    proba = _reader_proba(reader, text, client_last)  # one pass, read at both thresholds
    sure = _above(reader, proba, closed)
    maybe = _above(reader, proba, READER_THRESHOLD) - sure - found
    if maybe and ((client_line and (sure or found)) or _about_risk(text, recent, head)
                  or _discloses(client_last, recent, head, reader, raised)):
        sure |= maybe
    elif maybe and raised:
        sure |= _above(reader, proba, READER_RAISED) - found
    return [t for t in RISK_TOPICS if t in found | sure]


def _discloses(client_last: str | None, recent: Sequence[str], head: RiskHead | None,
               reader: BehaviourModel, raised: bool = False) -> bool:
    """The client's last words disclose risk, read as a client's own line: after "I bought some
    rope last week" or "I used to cut, all through Year 10", the next question is about risk
    whatever came before, though neither line has the rules' suicide words."""
    if not client_last:
        return False
    before = list(recent[:-1] if recent and recent[-1] == client_last else recent)
    if head is None:
        return bool(find_risk(client_last, before, client_line=True, raised=raised))
    return bool(_find_with(client_last, before, head, None, reader, client_line=True,
                           raised=raised))


def _about_risk(text: str, recent: Sequence[str], head: RiskHead | None,
                raised: bool = False) -> bool:
    """The conversation is about suicide or self-harm: the rules' gate, or the head's "about
    risk" reading of a recent utterance. Not of ``text`` itself: trained on follow-ups, the head
    reads "And is that still going on these days?" as about risk whatever came before."""
    context = [c for c in recent if c.strip()]
    if conversation_about_risk(text, context, raised=raised):
        return True
    head = head if head is not None else risk_head()
    if head is None or not context:
        return False
    from simulator.coder.sentence import sentence_encoder

    about = head.about_proba(sentence_encoder().embed_alone(context))
    return bool((about >= READER_GATE).any())


def _find(text: str, context: Sequence[str], head: RiskHead | None, raised: bool = False
          ) -> list[str]:
    found = set(detect_risk(text, context, raised=raised))
    head = head if head is not None else risk_head()
    if head is None or not text.strip():
        return [t for t in RISK_TOPICS if t in found]
    from simulator.coder.sentence import sentence_encoder

    enc = sentence_encoder()
    recent = [c for c in context[-CONTEXT_READ:] if c.strip()]
    gate = conversation_about_risk(text, recent, raised=raised)
    emb = enc.embed_alone([text])[0]
    proba = head.topic_proba(emb, gate)
    candidates = {t for t, p in zip(head.topics, proba, strict=True) if p >= head.threshold}
    if candidates - found and not gate:
        # only now pay for the context's embeddings (a non-risk conversation rarely gets here)
        texts = [text, *recent]
        about = head.about_proba(enc.embed_alone(texts))
        gate = bool((about[1:] >= head.gate_threshold).any()) or about[0] >= max(
            head.gate_threshold, 0.95)
    if gate:
        found |= candidates
    return [t for t in RISK_TOPICS if t in found]
