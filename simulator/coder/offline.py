"""The offline coder: AnnoMI labels for counselor and client utterances with no network and no GPU.

It is the embedded default: the client engine reads its codes after every trainee turn, and the
report uses it when no LLM grader is configured. Two models ship in ``simulator/coder/model/``:

- TF-IDF blocks over the utterance and its context, plus linear heads (``coder_features``,
  ``coder_training``), as one ``.npz`` of plain arrays: the behaviour, every subtype, client talk;
- a fine-tuned MiniLM for the main behaviour (``coder_transformer``), as int8 ONNX beside it
  (``<name>.behaviour.onnx``; the ``.npz`` records its hash).

The main behaviour is the average of the two models' probabilities (the transformer's share is in
its file); subtypes are then taken from the TF-IDF heads for the behaviour chosen. Loading runs no
pickled code, needs no network, and is cached per process.

Trained on the AnnoMI training portion (Wu et al., "Anno-MI: A Dataset of Expert-Annotated
Counselling Dialogues", ICASSP 2022; public domain).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

from simulator.coder.features import Block, client_fields, counselor_fields, transform_blocks
from simulator.coder.labels import ClientLabels, CounselorLabels, Utterance
from simulator.coder.transformer import BehaviourModel, behaviour_path

MODEL_DIR = Path(__file__).resolve().parent / "model"
MODEL_PATH = MODEL_DIR / "annomi-coder.npz"
FORMAT_VERSION = 1

SUBTYPE_HEADS = {"question": "question_subtype", "reflection": "reflection_subtype",
                 "therapist_input": "therapist_input_subtype"}


@dataclass
class LinearHead:
    """A fitted linear classifier as arrays: binary (one row of weights) or multinomial."""

    classes: list[str]
    coef: np.ndarray
    intercept: np.ndarray

    def proba(self, x: sparse.csr_matrix) -> np.ndarray:
        scores = np.asarray(x @ self.coef.T, dtype=np.float64) + self.intercept
        if len(self.classes) == 2 and self.coef.shape[0] == 1:
            p1 = 1.0 / (1.0 + np.exp(-scores[:, 0]))
            return np.stack([1.0 - p1, p1], axis=1)
        scores -= scores.max(axis=1, keepdims=True)
        e = np.exp(scores)
        return np.asarray(e / e.sum(axis=1, keepdims=True))


@dataclass
class TextModel:
    """Feature blocks plus the heads that read them (one model per speaker)."""

    blocks: list[Block]
    heads: dict[str, LinearHead] = field(default_factory=dict)

    def features(self, rows: Sequence[dict[str, str]]) -> sparse.csr_matrix:
        return transform_blocks(self.blocks, rows)


@dataclass
class CoderModel:
    counselor: TextModel
    client: TextModel | None
    meta: dict[str, Any] = field(default_factory=dict)

    def save(self, path: str | Path) -> None:
        arrays: dict[str, np.ndarray] = {}
        layout: dict[str, Any] = {}
        for part, tm in (("counselor", self.counselor), ("client", self.client)):
            if tm is None:
                continue
            blocks = []
            for i, b in enumerate(tm.blocks):
                arrays[f"{part}.block{i}.vocab"] = _text_array(json.dumps(b.vocab))
                arrays[f"{part}.block{i}.idf"] = b.idf.astype(np.float32)
                blocks.append(b.config())
            heads = {}
            for name, h in tm.heads.items():
                arrays[f"{part}.head.{name}.coef"] = h.coef.astype(np.float32)
                arrays[f"{part}.head.{name}.intercept"] = h.intercept.astype(np.float32)
                heads[name] = h.classes
            layout[part] = {"blocks": blocks, "heads": heads}
        header = {"format_version": FORMAT_VERSION, "layout": layout, "meta": self.meta}
        arrays["header"] = _text_array(json.dumps(header, sort_keys=True))
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            np.savez_compressed(f, **arrays)  # type: ignore[arg-type]

    @classmethod
    def load(cls, path: str | Path) -> CoderModel:
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(_array_text(z["header"]))
            if header.get("format_version") != FORMAT_VERSION:
                raise ValueError(f"{path}: unsupported coder model format "
                                 f"{header.get('format_version')}")
            parts: dict[str, TextModel] = {}
            for part, spec in header["layout"].items():
                blocks = []
                for i, cfg in enumerate(spec["blocks"]):
                    b = Block(field=cfg["field"], analyzer=cfg["analyzer"],
                              ngram=tuple(cfg["ngram"]), min_df=cfg["min_df"], weight=cfg["weight"],
                              max_features=cfg.get("max_features"))
                    b.vocab = json.loads(_array_text(z[f"{part}.block{i}.vocab"]))
                    b.idf = z[f"{part}.block{i}.idf"]
                    blocks.append(b)
                heads = {name: LinearHead(classes=list(classes),
                                          coef=z[f"{part}.head.{name}.coef"],
                                          intercept=z[f"{part}.head.{name}.intercept"])
                         for name, classes in spec["heads"].items()}
                parts[part] = TextModel(blocks=blocks, heads=heads)
        return cls(counselor=parts["counselor"], client=parts.get("client"), meta=header["meta"])


def _text_array(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def _array_text(arr: np.ndarray) -> str:
    return arr.tobytes().decode("utf-8")


class OfflineCoder:
    """Implements ``coder.labels.Coder`` with the shipped (or any saved) ``CoderModel``."""

    def __init__(self, model: CoderModel, name: str = "offline",
                 behaviour: BehaviourModel | None = None) -> None:
        self.model = model
        self.name = name
        self.behaviour = behaviour
        classes = model.counselor.heads["behaviour"].classes
        if behaviour is not None and sorted(behaviour.config.labels) != sorted(classes):
            raise ValueError(f"the behaviour models disagree on classes: "
                             f"{list(behaviour.config.labels)} against {classes}")

    @property
    def description(self) -> str:
        if self.behaviour is None:
            return "TF-IDF + logistic regression"
        return (f"TF-IDF + logistic regression, averaged with fine-tuned MiniLM (int8 ONNX, "
                f"weight {self.behaviour.config.weight:g}) for the main behaviour")

    def behaviour_proba(self, items: Sequence[tuple[str, Sequence[Utterance]]],
                        x: sparse.csr_matrix) -> tuple[list[str], np.ndarray]:
        """The behaviour classes and their probabilities for each item (ensemble when the
        transformer is loaded)."""
        head = self.model.counselor.heads["behaviour"]
        proba = head.proba(x)
        if self.behaviour is not None:
            labels = list(self.behaviour.config.labels)
            extra = self.behaviour.proba(items)[:, [labels.index(c) for c in head.classes]]
            w = self.behaviour.config.weight
            proba = w * extra + (1.0 - w) * proba
        return head.classes, proba

    def code_counselor(self, text: str, context: Sequence[Utterance]) -> CounselorLabels:
        return self.code_counselor_batch([(text, context)])[0]

    def code_counselor_batch(
        self, items: Sequence[tuple[str, Sequence[Utterance]]]
    ) -> list[CounselorLabels]:
        if not items:
            return []
        tm = self.model.counselor
        x = tm.features([counselor_fields(text, ctx) for text, ctx in items])
        classes, proba = self.behaviour_proba(items, x)
        best = proba.argmax(axis=1)
        behaviours = [classes[i] for i in best]
        subtypes: list[str | None] = [None] * len(items)
        for behaviour, head_name in SUBTYPE_HEADS.items():
            sub = tm.heads.get(head_name)
            rows = [i for i, b in enumerate(behaviours) if b == behaviour]
            if sub is None or not rows:
                continue
            sp = sub.proba(x[rows])
            for r, j in zip(rows, sp.argmax(axis=1), strict=True):
                subtypes[r] = sub.classes[j]
        return [CounselorLabels(behaviour=b, subtype=s, confidence=round(float(proba[i].max()), 4),
                                coder=self.name)
                for i, (b, s) in enumerate(zip(behaviours, subtypes, strict=True))]

    def code_client(self, text: str, context: Sequence[Utterance]) -> ClientLabels:
        return self.code_client_batch([(text, context)])[0]

    def code_client_batch(
        self, items: Sequence[tuple[str, Sequence[Utterance]]]
    ) -> list[ClientLabels]:
        if not items:
            return []
        tm = self.model.client
        if tm is None:
            return [ClientLabels(talk_type="neutral", confidence=0.0, coder=self.name)
                    for _ in items]
        head = tm.heads["talk_type"]
        proba = head.proba(tm.features([client_fields(text, ctx) for text, ctx in items]))
        return [ClientLabels(talk_type=head.classes[int(p.argmax())],
                             confidence=round(float(p.max()), 4), coder=self.name)
                for p in proba]


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_size


@lru_cache(maxsize=4)
def _load(path: str, stamp: tuple[int, int] | None,
          onnx_stamp: tuple[int, int] | None, threads: int = 1) -> OfflineCoder:
    """Cached by path and by both files' modification time and size (the stamps are only the
    cache key), so a model trained again in the same process is read again."""
    model = CoderModel.load(path)
    onnx = behaviour_path(path)
    want = model.meta.get("behaviour_sha256")
    if want is None:
        if onnx.exists():
            raise ValueError(f"{onnx}: {Path(path).name} was trained without a behaviour model; "
                             "delete the file or run counselsim train-coder again")
        return OfflineCoder(model)
    if not onnx.exists():
        raise ValueError(f"{path}: trained with {onnx.name}, which is missing")
    if file_sha256(onnx) != want:
        raise ValueError(f"{onnx}: not the behaviour model {Path(path).name} was trained with "
                         "(run counselsim train-coder again)")
    return OfflineCoder(model, behaviour=BehaviourModel(onnx, threads=threads))


def load_offline_coder(path: str | Path | None = None, *, threads: int = 1) -> OfflineCoder:
    """The shipped offline coder, or a saved one: the ``.npz`` and, when it was trained with one,
    its ``.behaviour.onnx`` beside it, checked by hash so a stale file is never averaged in.
    ``threads``: for the transformer's one call (the app's live coding may use two; benchmarks
    keep one, their figures are per core). Cached per process; loads from disk, never the
    network."""
    npz = Path(path) if path is not None else MODEL_PATH
    return _load(str(npz), _stamp(npz), _stamp(behaviour_path(npz)), threads)
