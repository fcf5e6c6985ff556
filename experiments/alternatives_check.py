"""Generate the offline coach's alternatives test set and print its figures as JSON (last line).

    .venv/bin/python experiments/alternatives_check.py [--samples N]

Every authored client line of every shipped persona is answered with a trainee turn of each kind
the coach rewrites (simple -> complex reflection, closed -> open question, advice -> eliciting or
asking permission, confrontation -> reflection), plus the client words behind the failures issue
18 quoted; ``simulator.grader.alternatives_check.problems`` checks each generated alternative.
``--samples N`` also prints N generated alternatives per kind (for reading them as a trainee).
"""

from __future__ import annotations

import argparse
import json
import random

from simulator.content.library import load_library
from simulator.grader.alternatives_check import KINDS, build_set, summary


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=0)
    args = ap.parse_args()
    lib = load_library()
    rows = build_set(lib.personas.values(), lib.rubric("miti-4.2.1"))
    rng = random.Random(18)
    for kind in KINDS:
        mine = [r for r in rows if r.kind == kind]
        for r in rng.sample(mine, min(args.samples, len(mine))):
            print(f"[{kind}] client: {r.client}\n  trainee: {r.turn}\n  try: {r.alternative}"
                  f"{'  PROBLEMS: ' + '; '.join(r.problems) if r.problems else ''}\n")
    bad = [r for r in rows if r.problems]
    for r in bad[:20]:
        print(f"PROBLEM [{r.kind}] {r.client!r} / {r.turn!r} -> {r.alternative!r}: {r.problems}")
    print(json.dumps(summary(rows)))


if __name__ == "__main__":
    main()
