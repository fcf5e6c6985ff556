"""Which meaning features help the MITI utterance coder: 5-fold cross-validation on the train
part of ``data/miti-trainee/utterances.jsonl`` only (the test part is never read here).

    .venv/bin/python experiments/miti_meaning.py [--c 10 30] > miti_meaning.json

Variants: words and cues alone (round 5's model, without the context tokens), plus the shipped
sentence encoder's embedding (all-MiniLM-L6-v2, int8 ONNX) of the utterance, at two weights,
and of the utterance and the client's last words. Prints one JSON line per variant: macro-F1,
Confront recall and MI-non-adherent recall, cross-validated.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from simulator.coder.miti_data import DEFAULT_DATA, read_trainee
from simulator.coder.miti_training import cross_validate, training_rows
from simulator.coder.offline import load_offline_coder

VARIANTS: dict[str, dict[str, Any] | None] = {
    "words+cues": None,
    "+text x1": {"fields": ["text"], "weight": 1.0},
    "+text x2": {"fields": ["text"], "weight": 2.0},
    "+text x3": {"fields": ["text"], "weight": 3.0},
    "+text x4": {"fields": ["text"], "weight": 4.0},
    "+text+client x1": {"fields": ["text", "client"], "weight": 1.0},
    "+text+client x2": {"fields": ["text", "client"], "weight": 2.0},
    "+text+client x3": {"fields": ["text", "client"], "weight": 3.0},
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--c", type=float, nargs="+", default=[30.0])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    args = ap.parse_args()
    rows = [r for r in read_trainee(DEFAULT_DATA) if r.split == "train" and
            r.speaker == "counselor"]
    fields = training_rows(rows, load_offline_coder())
    for name in args.variants:
        for c in args.c:
            t = time.perf_counter()
            detail: dict[str, float] = {}
            f1 = cross_validate(rows, fields, c, embedding=VARIANTS[name], detail=detail)
            print(json.dumps({"variant": name, "C": c, "n": len(rows), "cv_macro_f1": round(f1, 4),
                              **detail, "seconds": round(time.perf_counter() - t, 1)}),
                  flush=True)


if __name__ == "__main__":
    main()
