"""Bodies of ``counselsim train-coder`` and ``counselsim bench coder`` (registered in cli.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from simulator.coder.labels import Coder


def make_coder(spec: str) -> Coder:
    """``offline`` (or a path to a saved ``.npz`` model, with its ``.behaviour.onnx`` when it
    was trained with one) gives the offline coder; anything else is
    a model string for ``simulator.llm.providers.chat_model`` and gives an ``LLMCoder``."""
    from simulator.coder.offline import load_offline_coder

    if spec == "offline":
        return load_offline_coder()
    if spec.endswith(".npz") and Path(spec).exists():
        return load_offline_coder(spec)
    from simulator.coder.llm import LLMCoder

    return LLMCoder.from_spec(spec)


def train_coder_command(data: Path | None, out: Path | None, as_json: bool, *,
                        transformer: bool = True) -> dict[str, Any]:
    from simulator.coder.annomi import default_data_dir
    from simulator.coder.training import train_coder

    report = train_coder(data or default_data_dir(), out, transformer=transformer,
                         progress=lambda m: print(m, file=sys.stderr))
    if not as_json:
        dev = report["dev"]
        split = report["split"]
        print(f"model: {report['model']} ({report['size_bytes'] / 1e6:.1f} MB, "
              f"fit {report['fit_seconds']} s)")
        if "behaviour_model" in report:
            print(f"behaviour model: {report['behaviour_model']} "
                  f"({report['behaviour_model_bytes'] / 1e6:.1f} MB)")
            alone = report["dev_tfidf_only"]
            print(f"dev, TF-IDF alone: macro-F1 {alone['macro_f1']:.3f}  "
                  f"kappa {alone['cohen_kappa']:.3f}")
        print(f"split: train {split['train']['videos']} videos / {split['train']['transcripts']} "
              f"transcripts / {split['train']['counselor_utterances']} therapist utterances; "
              f"dev {split['dev']['videos']} / {split['dev']['transcripts']} / "
              f"{split['dev']['counselor_utterances']}")
        print(f"dev: macro-F1 {dev['macro_f1']:.3f}  kappa {dev['cohen_kappa']:.3f}  "
              f"accuracy {dev['accuracy']:.3f}")
        print("per class F1: " + json.dumps(dev["per_class_f1"]))
    return report


def bench_coder_command(data: Path, coder_spec: str, dev_split: bool) -> dict[str, Any]:
    from simulator.bench.coder import run_bench
    from simulator.coder.offline import OfflineCoder, load_offline_coder

    coder = make_coder(coder_spec)
    # The dev split is the one recorded in the offline model (the LLM coder is scored on the same
    # transcripts); training-data overlap only applies to a trained (offline) coder.
    own = coder.model.meta if isinstance(coder, OfflineCoder) else {}
    meta = own or load_offline_coder().model.meta
    result = run_bench(data, coder, dev_split=dev_split, dev_videos=meta.get("dev_videos", []),
                       train_videos=own.get("train_videos", []),
                       progress=lambda m: print(m, file=sys.stderr))
    result.setdefault("includes_training_data", False)
    return result
