"""Features for the offline coder: an utterance in its transcript context, as TF-IDF blocks.

Why these fields: whether a counselor turn is a reflection depends on what the client just said
(a reflection re-states it), so the last client utterance is a field of its own; the counselor's
own previous turn helps with follow-up questions and information-giving runs; small ``meta``
tokens say where in the transcript the turn is. Every field is vectorised separately (word and
character n-grams), weighted, and the blocks are stacked.

A fitted block is stored as its vocabulary and idf weights (plain arrays, see ``coder_offline``),
not as a pickle, so the shipped model loads with any scikit-learn version and cannot run code.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.preprocessing import normalize

from simulator.coder.labels import Utterance

TOKEN_PATTERN = r"(?u)\b\w+\b|[?!]"  # noqa: S105 - a regex, not a secret
SMALL_BATCH = 8
"""Live coding (a turn or two at a time) builds rows directly; bigger batches use scikit-learn."""


def _bucket(n: int, edges: Sequence[int]) -> int:
    for i, e in enumerate(edges):
        if n <= e:
            return i
    return len(edges)


def counselor_fields(text: str, context: Sequence[Utterance]) -> dict[str, str]:
    """The text fields the counselor model reads for one utterance in context."""
    last_client = ""
    prev_counselor = ""
    for u in reversed(context):
        if u.speaker == "client" and not last_client:
            last_client = u.text
        if u.speaker == "counselor" and not prev_counselor:
            prev_counselor = u.text
        if last_client and prev_counselor:
            break
    prev = context[-1].speaker if context else "start"
    words = len(text.split())
    meta = [f"prev_{prev}", f"len{_bucket(words, (2, 5, 10, 20, 40))}",
            f"clen{_bucket(len(last_client.split()), (0, 3, 10, 30))}",
            f"pos{_bucket(len(context), (0, 2, 6, 20))}"]
    if text.rstrip().endswith("?"):
        meta.append("endq")
    return {"text": text, "client": last_client, "prev": prev_counselor, "meta": " ".join(meta)}


def client_fields(text: str, context: Sequence[Utterance]) -> dict[str, str]:
    """The text fields the client-talk model reads for one utterance in context."""
    prev_counselor = next((u.text for u in reversed(context) if u.speaker == "counselor"), "")
    words = len(text.split())
    meta = [f"len{_bucket(words, (2, 5, 10, 20, 40))}",
            f"plen{_bucket(len(prev_counselor.split()), (0, 5, 15))}"]
    if prev_counselor.rstrip().endswith("?"):
        meta.append("after_q")
    return {"text": text, "prev": prev_counselor, "meta": " ".join(meta)}


@dataclass
class Block:
    """One TF-IDF block over one field (sublinear tf, l2-normalised, then scaled by ``weight``)."""

    field: str
    analyzer: str = "word"
    ngram: tuple[int, int] = (1, 2)
    min_df: int = 2
    weight: float = 1.0
    max_features: int | None = None
    vocab: list[str] = dataclasses.field(default_factory=list)
    idf: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    _counter: CountVectorizer | None = dataclasses.field(default=None, repr=False)
    _analyze: Any = dataclasses.field(default=None, repr=False)
    """The tokenizer ``row`` uses (same parameters as the vectorizers)."""
    _index: dict[str, int] = dataclasses.field(default_factory=dict, repr=False)

    def _params(self) -> dict[str, Any]:
        p: dict[str, Any] = {"analyzer": self.analyzer, "ngram_range": tuple(self.ngram),
                             "lowercase": True, "dtype": np.float32}
        if self.analyzer == "word":
            p["token_pattern"] = TOKEN_PATTERN
        return p

    def fit(self, docs: Sequence[str]) -> Block:
        vec = TfidfVectorizer(sublinear_tf=True, min_df=self.min_df,
                              max_features=self.max_features, **self._params())
        vec.fit(docs)
        vocab = vec.vocabulary_
        self.vocab = sorted(vocab, key=vocab.__getitem__)
        self.idf = vec.idf_.astype(np.float32)
        self._counter = self._analyze = None
        return self

    def transform(self, docs: Sequence[str]) -> sparse.csr_matrix:
        if self._counter is None:
            self._counter = CountVectorizer(
                vocabulary={t: i for i, t in enumerate(self.vocab)}, **self._params())
        x = self._counter.transform(docs).astype(np.float32)
        x.data = np.log(x.data) + 1.0
        x = x @ sparse.diags(self.idf)
        x = normalize(x, norm="l2", copy=False)
        if self.weight != 1.0:
            x = x * self.weight
        return sparse.csr_matrix(x)

    def row(self, doc: str) -> tuple[np.ndarray, np.ndarray]:
        """One document's (column indices, values): the same numbers ``transform`` gives (up to
        float rounding), without scikit-learn's and scipy's per-call checks, which were most of
        a live turn's coding time (``counselsim bench turn`` showed it)."""
        if self._analyze is None:
            self._analyze = CountVectorizer(**self._params()).build_analyzer()
            self._index = {t: i for i, t in enumerate(self.vocab)}
        counts: dict[int, int] = {}
        for tok in self._analyze(doc):
            j = self._index.get(tok)
            if j is not None:
                counts[j] = counts.get(j, 0) + 1
        idx = np.fromiter(sorted(counts), dtype=np.int32, count=len(counts))
        vals = np.log(np.array([counts[j] for j in idx], dtype=np.float32)) + np.float32(1.0)
        vals *= self.idf[idx]
        norm = np.sqrt(np.dot(vals, vals))
        if norm > 0:
            vals /= norm
        if self.weight != 1.0:
            vals *= np.float32(self.weight)
        return idx, vals

    def config(self) -> dict[str, Any]:
        return {"field": self.field, "analyzer": self.analyzer, "ngram": list(self.ngram),
                "min_df": self.min_df, "weight": self.weight, "max_features": self.max_features}


def transform_blocks(blocks: Sequence[Block], rows: Sequence[dict[str, str]]) -> sparse.csr_matrix:
    if len(rows) <= SMALL_BATCH:
        return _transform_small(blocks, rows)
    return sparse.hstack([b.transform([r[b.field] for r in rows]) for b in blocks], format="csr")


def _transform_small(blocks: Sequence[Block], rows: Sequence[dict[str, str]]
                     ) -> sparse.csr_matrix:
    """``transform_blocks`` for the few rows of a live turn, built row by row (see Block.row)."""
    indices: list[np.ndarray] = []
    data: list[np.ndarray] = []
    indptr = [0]
    width = sum(len(b.vocab) for b in blocks)
    for r in rows:
        offset, n = 0, 0
        for b in blocks:
            idx, vals = b.row(r[b.field])
            indices.append(idx + offset)
            data.append(vals)
            offset += len(b.vocab)
            n += len(idx)
        indptr.append(indptr[-1] + n)
    return sparse.csr_matrix(
        (np.concatenate(data) if data else np.zeros(0, np.float32),
         np.concatenate(indices).astype(np.int32) if indices else np.zeros(0, np.int32),
         np.asarray(indptr, dtype=np.int32)), shape=(len(rows), width))


def fit_blocks(blocks: Sequence[Block], rows: Sequence[dict[str, str]]) -> sparse.csr_matrix:
    for b in blocks:
        b.fit([r[b.field] for r in rows])
    return transform_blocks(blocks, rows)
