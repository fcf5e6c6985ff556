"""The transformer half of the offline coder: a fine-tuned MiniLM that reads a counselor utterance
together with what the client just said, and gives the main therapist behaviour.

Why it exists: word n-grams cannot tell a reflection from a statement of the counselor's own view
as well as a model that reads both utterances together (a reflection restates the client in new
words). ``OfflineCoder`` averages this model's probabilities with the TF-IDF behaviour head's;
subtypes and client talk stay with the TF-IDF model. Figures and the choice: ``docs/coder.md``.

It runs with ONNX Runtime on int8 weights (``annomi-coder.behaviour.onnx``, about 23 MB) and
the model's own tokenizer file (``annomi-coder.behaviour.tokenizer.json``), so loading needs no
network, no PyTorch and no pickled code. Training (``coder_finetune``) encodes with the same
``context_text`` and ``encode_pair``: the end of the context, then the start of the utterance.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from simulator.coder.labels import Utterance

INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def behaviour_path(npz: str | Path) -> Path:
    """The behaviour model that belongs to a TF-IDF ``.npz``: ``<name>.behaviour.onnx`` beside it
    (the shipped pair: ``annomi-coder.npz`` and ``annomi-coder.behaviour.onnx``)."""
    npz = Path(npz)
    return npz.with_name(npz.stem + ".behaviour.onnx")


def tokenizer_path(onnx: str | Path) -> Path:
    """The tokenizer file beside its ONNX file: ``<name>.behaviour.tokenizer.json``."""
    return Path(onnx).with_suffix(".tokenizer.json")


class PairConfig(BaseModel):
    """How an utterance and its context become one token sequence (stored in the ONNX file)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    max_context: int = Field(40, ge=1)
    max_utterance: int = Field(56, ge=1)
    labels: tuple[str, ...] = Field(("question", "reflection", "therapist_input", "other"),
                                    min_length=2)
    weight: float = Field(0.5, gt=0.0, le=1.0)
    """This model's share of the behaviour probability; the TF-IDF head has the rest."""
    multi_label: bool = False
    """One sigmoid per label instead of a softmax over them: a row may have several labels (a
    client who tells of a plan and the tablets for it in one line). The risk reader's."""


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


def special_ids(tokenizer: Any, path: str | Path) -> tuple[int, int, int]:
    """[CLS], [SEP] and [PAD]: a BERT-style tokenizer has all three."""
    ids = [tokenizer.token_to_id(t) for t in ("[CLS]", "[SEP]", "[PAD]")]
    if None in ids:
        raise ValueError(f"{path}: not a BERT tokenizer (no [CLS], [SEP] or [PAD] token)")
    return int(ids[0]), int(ids[1]), int(ids[2])


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


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-logits)))


class BehaviourModel:
    """The ONNX behaviour classifier with its tokenizer; ``proba`` is in ``config.labels`` order
    (each label's own probability when ``config.multi_label``)."""

    def __init__(self, onnx_path: str | Path, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        # One thread per call by default: the bench's utterances_per_s is a one-core figure.
        # The app's live coding may take two (settings.coder_threads); they wait without
        # spinning, so other sessions' work on a busy machine keeps the cores.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(onnx_path), options,
                                                providers=["CPUExecutionProvider"])
            meta = self.session.get_modelmeta().custom_metadata_map
            self.config = PairConfig.model_validate_json(meta["counselsim_pair_config"])
            self.meta: dict[str, Any] = json.loads(meta.get("counselsim_meta", "{}"))
        except Exception as e:  # onnxruntime's own errors (bad protobuf...) derive from Exception
            raise ValueError(f"{onnx_path}: not a CounselSim behaviour model "
                             f"({type(e).__name__}: {e})") from e
        inputs = {i.name for i in self.session.get_inputs()}
        outputs = [o.name for o in self.session.get_outputs()]
        if inputs != set(INPUTS) or outputs != ["logits"]:
            raise ValueError(f"{onnx_path}: expected inputs {list(INPUTS)} and output logits, "
                             f"found {sorted(inputs)} and {outputs}")
        tok = tokenizer_path(onnx_path)
        try:
            self.tokenizer = load_tokenizer(tok)
        except Exception as e:  # tokenizers raises its own Exception type
            raise ValueError(f"{tok}: cannot load the tokenizer ({e})") from e
        self.cls_id, self.sep_id, self.pad_id = special_ids(self.tokenizer, tok)

    def proba_pairs(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """``proba`` for (context text, utterance) pairs already made by ``context_text``."""
        out = np.zeros((len(pairs), len(self.config.labels)))
        for i, (context, text) in enumerate(pairs):
            row = encode_pair(self.tokenizer, context, text, self.config, self.cls_id,
                              self.sep_id)
            logits = self.session.run(["logits"], pad([row], self.pad_id))[0]
            logits = np.asarray(logits, dtype=np.float64)
            out[i] = (sigmoid(logits) if self.config.multi_label else softmax(logits))[0]
        return out

    def proba(self, items: Sequence[tuple[str, Sequence[Utterance]]]) -> np.ndarray:
        """One ONNX call per utterance, on purpose: int8 dynamic quantisation scales activations
        per call, so batch-mates (and their padding) would shift an utterance's probabilities.
        Alone, a turn is coded the same live and in ``bench coder``, and with no padding it is
        faster too (294 against 267 utterances/s with length-sorted batches of 32)."""
        return self.proba_pairs([(context_text(ctx), text) for text, ctx in items])


