"""The transformer half of the offline coder: a fine-tuned MiniLM that reads a counselor utterance
together with what the client just said, and gives the main therapist behaviour.

Why it exists: word n-grams cannot tell a reflection from a statement of the counselor's own view
as well as a model that reads both utterances together (a reflection restates the client in new
words). ``OfflineCoder`` averages this model's probabilities with the TF-IDF behaviour head's;
subtypes and client talk stay with the TF-IDF model. Figures and the choice: ``docs/coder.md``.

It runs with ONNX Runtime on int8 weights (``annomi-behaviour.onnx``, about 23 MB) and the
model's own tokenizer file (``minilm-tokenizer.json``, beside it), so loading needs no network,
no PyTorch and no pickled code. Training (``coder_finetune``) encodes with the same
``context_text`` and ``encode_pair``: the end of the context, then the start of the utterance.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from simulator.coding import Utterance

MODEL_DIR = Path(__file__).resolve().parent / "coder_model"
ONNX_PATH = MODEL_DIR / "annomi-behaviour.onnx"
TOKENIZER_NAME = "minilm-tokenizer.json"
"""The tokenizer file lives beside the ONNX file it belongs to."""


@dataclass(frozen=True)
class PairConfig:
    """How an utterance and its context become one token sequence (stored in the ONNX file)."""

    max_context: int = 40
    max_utterance: int = 56
    labels: tuple[str, ...] = ("question", "reflection", "therapist_input", "other")
    weight: float = 0.5
    """This model's share of the behaviour probability; the TF-IDF head has the rest."""


def context_text(context: Sequence[Utterance]) -> str:
    """The counselor's previous turn, then the client's last utterance: ``"prev | client"``.

    The client's words decide whether a turn restates them (a reflection); the counselor's own
    previous turn helps with follow-up questions and runs of information. Measured against the
    client's utterance alone in ``docs/coder.md``."""
    client = next((u.text for u in reversed(context) if u.speaker == "client"), "")
    counselor = next((u.text for u in reversed(context) if u.speaker == "counselor"), "")
    return f"{counselor} | {client}"


def encode_pair(tokenizer: Any, context: str, text: str, config: PairConfig,
                cls_id: int, sep_id: int) -> tuple[list[int], list[int]]:
    """``[CLS] end of context [SEP] start of utterance [SEP]`` and its token types (1 for the
    utterance). ``tokenizer`` is a ``tokenizers.Tokenizer`` or anything with the same ``encode``."""
    c = tokenizer.encode(context, add_special_tokens=False).ids[-config.max_context:]
    u = tokenizer.encode(text, add_special_tokens=False).ids[:config.max_utterance]
    return [cls_id, *c, sep_id, *u, sep_id], [0] * (len(c) + 2) + [1] * (len(u) + 1)


def pad(rows: Sequence[tuple[list[int], list[int]]], pad_id: int) -> dict[str, np.ndarray]:
    n = max(len(ids) for ids, _ in rows)
    return {
        "input_ids": np.array([ids + [pad_id] * (n - len(ids)) for ids, _ in rows], np.int64),
        "attention_mask": np.array([[1] * len(ids) + [0] * (n - len(ids)) for ids, _ in rows],
                                   np.int64),
        "token_type_ids": np.array([t + [0] * (n - len(t)) for _, t in rows], np.int64),
    }


def load_tokenizer(path: str | Path) -> Any:
    """A ``tokenizers.Tokenizer`` that returns just the text's tokens.

    all-MiniLM-L6-v2's file pads every encoding to 128 tokens and truncates at 128; ``encode_pair``
    does its own cutting (the end of the context, the start of the utterance) and ``pad`` pads per
    batch, so both are switched off here, for training and the app alike."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=1, keepdims=True))


class BehaviourModel:
    """The ONNX behaviour classifier with its tokenizer; ``proba`` is in ``config.labels`` order."""

    def __init__(self, onnx_path: str | Path, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        # One thread per call: the app codes one turn at a time beside other sessions, and the
        # bench's utterances_per_s is a one-core figure.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(onnx_path), options,
                                            providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        pair = json.loads(meta["counselsim_pair_config"])
        self.config = PairConfig(**{**pair, "labels": tuple(pair["labels"])})
        self.meta: dict[str, Any] = json.loads(meta.get("counselsim_meta", "{}"))
        self.tokenizer = load_tokenizer(Path(onnx_path).with_name(TOKENIZER_NAME))
        self.cls_id = self._token_id("[CLS]")
        self.sep_id = self._token_id("[SEP]")
        self.pad_id = self._token_id("[PAD]")

    def _token_id(self, token: str) -> int:
        i = self.tokenizer.token_to_id(token)
        if i is None:
            raise ValueError(f"tokenizer has no {token} token")
        return int(i)

    def proba(self, items: Sequence[tuple[str, Sequence[Utterance]]]) -> np.ndarray:
        """One ONNX call per utterance, on purpose: int8 dynamic quantisation scales activations
        per call, so batch-mates (and their padding) would shift an utterance's probabilities.
        Alone, a turn is coded the same live and in ``bench coder``, and with no padding it is
        faster too (294 against 267 utterances/s with length-sorted batches of 32)."""
        out = np.zeros((len(items), len(self.config.labels)))
        for i, (text, ctx) in enumerate(items):
            row = encode_pair(self.tokenizer, context_text(ctx), text, self.config, self.cls_id,
                              self.sep_id)
            logits = self.session.run(["logits"], pad([row], self.pad_id))[0]
            out[i] = softmax(np.asarray(logits, dtype=np.float64))[0]
        return out


@lru_cache(maxsize=4)
def _load(onnx_path: str) -> BehaviourModel:
    return BehaviourModel(onnx_path)


def load_behaviour_model(onnx_path: str | Path | None = None) -> BehaviourModel:
    """The shipped behaviour model, or a saved one (cached per process; from disk only)."""
    return _load(str(onnx_path or ONNX_PATH))
