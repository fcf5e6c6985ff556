"""Choose the risk reader's thresholds on a whole fresh round held out, with an eye on everyday
speech: the trade a threshold makes is risk questions found against ordinary words read as risk.

``experiments/risk_finetune_fresh.py 6 round11`` with ``READER_OUT=reader.onnx`` keeps a reader
fitted without the round; this scores ``find_risk`` as the app runs it (rules, head fitted
without the round, that reader and the gates) at a grid of ``READER_THRESHOLD`` (in a risk
conversation), ``READER_CLOSED`` (outside one) and ``READER_CLIENT`` (a client's own line), on
the held-out round and on the everyday checks of ``tests/test_coder_risk_everyday.py``: opening
questions after the personas' openings, the personas' lines read alone, ordinary follow-ups
after the lines of personas without a risk brief, and "What stopped you?" after those lines.

    .venv/bin/python experiments/risk_thresholds.py reader.onnx 3819 4069 ['[[0.4, 0.95, 0.9]]']

(the optional last argument: the grid, as JSON triples)
"""

from __future__ import annotations

import importlib.util
import json
import sys
from functools import lru_cache
from typing import Any

import numpy as np

from simulator.coder import risk_meaning
from simulator.coder.evaluation import score_risk
from simulator.coder.miti_data import DEFAULT_DATA, read_trainee
from simulator.coder.risk_meaning import find_risk
from simulator.coder.risk_training import fit_risk_head
from simulator.coder.transformer import BehaviourModel
from simulator.content.library import load_library
from simulator.content.persona import Lines
from simulator.settings import ROOT

GRID = [(0.4, 0.97, 0.9), (0.4, 0.95, 0.9), (0.4, 0.93, 0.9), (0.4, 0.9, 0.9), (0.4, 0.9, 0.8),
        (0.3, 0.97, 0.9), (0.3, 0.95, 0.9), (0.3, 0.9, 0.9), (0.3, 0.9, 0.8), (0.4, 0.95, 0.8)]


def everyday_checks() -> Any:
    """``tests/test_coder_risk_everyday.py`` as a module: its opening questions and follow-ups
    are the ones scored here, kept in one place."""
    spec = importlib.util.spec_from_file_location(
        "everyday_checks", ROOT / "tests" / "test_coder_risk_everyday.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Remembered:
    """The reader with its probabilities remembered per pair: the grid reads each pair once."""

    def __init__(self, reader: BehaviourModel) -> None:
        self.config = reader.config
        self._proba = lru_cache(maxsize=None)(
            lambda c, t: reader.proba_pairs([(c, t)])[0])

    def proba_pairs(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        return np.stack([self._proba(c, t) for c, t in pairs])


def main() -> None:
    path, lo, hi = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    held = {f"u{i:04d}" for i in range(lo, hi)}
    grid = [tuple(t) for t in json.loads(sys.argv[4])] if len(sys.argv) > 4 else GRID
    rows = [r for r in read_trainee(DEFAULT_DATA) if r.split == "train"]
    head = fit_risk_head([r for r in rows if r.id not in held])
    dev = [r for r in rows if r.id in held]
    reader: Any = Remembered(BehaviourModel(path))
    checks = everyday_checks()
    openers, follow_ups = checks.OPENERS, checks.FOLLOW_UPS
    personas = sorted(load_library([ROOT / "personas"], [ROOT / "rubrics"]).personas.values(),
                      key=lambda p: p.id)

    def lines(p: Any, acts: tuple[str, ...] = tuple(Lines.model_fields)) -> list[str]:
        return [p.fill(x) for a in acts for x in p.lines_for(a)]

    def last(r: Any) -> str | None:
        c = r.context
        return c[-1].text if r.speaker == "counselor" and c and c[-1].speaker == "client" else None

    def risk(text: str, ctx: list[str], client_last: str | None = None,
             client_line: bool = False) -> list[str]:
        return find_risk(text, ctx, head, client_last=client_last, reader=reader,
                         client_line=client_line)

    keep = (risk_meaning.READER_THRESHOLD, risk_meaning.READER_CLOSED, risk_meaning.READER_CLIENT)
    plain = [x for p in personas if "risk" not in p.id for x in lines(p)]
    report = {}
    for open_t, closed, client_t in grid:
        (risk_meaning.READER_THRESHOLD, risk_meaning.READER_CLOSED,
         risk_meaning.READER_CLIENT) = open_t, closed, client_t
        found = [risk(r.text, [u.text for u in r.context], last(r), r.speaker == "client")
                 for r in dev]
        s = score_risk(dev, found)
        opened = sum(1 for p in personas for x in lines(p, ("opening",)) for q in openers
                      if risk(q, [x], x))
        said = sum(1 for p in personas for x in lines(p) if risk(x, [], client_line=True))
        follow = sum(1 for x in plain for q in follow_ups if risk(q, [x], x))
        stopped = sum(1 for x in plain if risk("What stopped you?", [x], x))
        client_fa = sum(1 for r, f in zip(dev, found, strict=True)
                        if r.speaker == "client" and f and not r.risk)
        report[f"open {open_t}, closed {closed}, client {client_t}"] = {
            "risk_recall": s["risk_recall"], "false_alarms": s["risk_false_alarm_rate"],
            "wrong_topics": sum(t["false_alarms"] for t in s["risk_per_topic"].values()),
            "client_false_alarms": client_fa, "openers": opened, "persona_lines": said,
            "follow_ups": follow, "what_stopped_you": stopped,
            "per_topic": {k: v["recall"] for k, v in s["risk_per_topic"].items()}}
        print(json.dumps({k: v for k, v in report.items() if k.startswith(f"open {open_t}, "
                                                                        f"closed {closed}, "
                                                                        f"client {client_t}")}),
              flush=True)
    (risk_meaning.READER_THRESHOLD, risk_meaning.READER_CLOSED,
     risk_meaning.READER_CLIENT) = keep


if __name__ == "__main__":
    main()
