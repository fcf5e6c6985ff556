"""Time what the My progress tab computes for one trainee, cold and warm (issue 16).

    .venv/bin/python experiments/progress_tab_timing.py [--sessions N] [--profile]

Holds N ended sessions (offline client and grader, shipped personas, a temporary database), then
times the tab's two pieces twice in this process: the sessions table with the self-rating gaps
(``progress_frames``) and the chart (``progress_svg``). The first pass is cold (the chart's
matplotlib import and first draw included), the second is what every later visit costs.
``--profile`` prints cProfile's top functions for one pass.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=6)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()

    from simulator.service.practice import Practice
    from simulator.settings import ROOT, Settings
    from simulator.web import progress_ui
    from simulator.web.context import WebContext

    tmp = Path(tempfile.mkdtemp())
    settings = Settings(db=tmp / "db.sqlite", personas=ROOT / "personas",
                        rubrics=ROOT / "rubrics")
    practice = Practice.from_settings(settings)
    practice.store.add_user("ana", "trainee", cohort="c")
    ctx = WebContext(practice=practice)
    said = ["What brings you here today?", "So the evenings are the hardest part for you.",
            "You want to sleep again."]
    personas = ["mai-bereavement", "siobhan-smoking-contemplation",
                "tomasz-alcohol-precontemplation"]

    async def hold(persona: str) -> None:
        sid = str(practice.start("ana", persona))
        for text in said:
            async for _ in practice.turn(sid, "ana", text):
                pass
        practice.end(sid, "ana")
        practice.rate_self(sid, practice.store.get_user("ana"), [3, 3, 3, 3])

    for n in range(args.sessions):
        asyncio.run(hold(personas[n % len(personas)]))
    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
    for label in ("cold", "warm"):
        t0 = time.perf_counter()
        progress_ui.progress_frames(ctx, "ana")
        t1 = time.perf_counter()
        progress_ui.progress_svg(ctx, "ana")
        t2 = time.perf_counter()
        print(f"{label}: table and gaps {t1 - t0:.2f} s, chart {t2 - t1:.2f} s, "
              f"total {t2 - t0:.2f} s ({args.sessions} sessions)")
    if args.profile:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    practice.store.close()


if __name__ == "__main__":
    main()
