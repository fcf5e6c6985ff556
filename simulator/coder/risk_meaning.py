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
utterance itself or on one of the last six utterances before it. A topic the rules found is
never taken away. Thresholds and C were chosen by 5-fold cross-validation on the train part
(``experiments/risk_head_cv.py``; docs/coder.md has the figures).

The head ships as plain arrays (``model/risk-head.npz``); ``train-coder --miti`` refits it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import numpy as np

from simulator.coder.offline import MODEL_DIR
from simulator.coder.risk import CONTEXT_READ, RISK_TOPICS, conversation_about_risk, detect_risk

RISK_HEAD_PATH = MODEL_DIR / "risk-head.npz"


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


_ASKS_BACK = re.compile(r"\b(?:that|it|this|those|these|them|they|then)\b", re.IGNORECASE)


def find_risk(text: str, context: Sequence[str] = (), head: RiskHead | None = None, *,
              client_last: str | None = None) -> list[str]:
    """The risk topics ``text`` asks about or discloses: the rules' topics plus the head's, in
    ``RISK_TOPICS`` order. ``context`` is the conversation before it, oldest first.

    ``client_last`` (the client's last words, for a counselor utterance): a question with no risk
    topic of its own that points back at them ("Is that still happening now?" after "I used to
    cut my arms") asks about what the client disclosed, so it takes the disclosure's topics."""
    recent = tuple(context[-CONTEXT_READ:])
    if head is None:  # the shipped head: the coach asks again about every earlier turn
        return list(_find_shipped(text, recent, client_last))
    return _find_with(text, recent, head, client_last)


@lru_cache(maxsize=8192)
def _find_shipped(text: str, recent: tuple[str, ...], client_last: str | None
                  ) -> tuple[str, ...]:
    """``find_risk`` with the shipped head, remembered: the coach re-reads every earlier
    counselor utterance of the session on each turn (which topics were already asked), so
    without this a long session paid the rules and the head again for each of them."""
    return tuple(_find_with(text, recent, None, client_last))


def _find_with(text: str, recent: Sequence[str], head: RiskHead | None,
               client_last: str | None) -> list[str]:
    found = set(_find(text, recent, head))
    if (not found and client_last and text.rstrip().endswith("?")
            and _ASKS_BACK.search(text)):
        found = set(_find(client_last, recent, head))
    return [t for t in RISK_TOPICS if t in found]


def _find(text: str, context: Sequence[str], head: RiskHead | None) -> list[str]:
    found = set(detect_risk(text, context))
    head = head if head is not None else risk_head()
    if head is None or not text.strip():
        return [t for t in RISK_TOPICS if t in found]
    from simulator.coder.sentence import sentence_encoder

    enc = sentence_encoder()
    recent = [c for c in context[-CONTEXT_READ:] if c.strip()]
    gate = conversation_about_risk(text, recent)
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
