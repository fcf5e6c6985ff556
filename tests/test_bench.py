"""The benchmark machinery (not its figures: speed is measured by ``counselsim bench``, never
asserted in tests). Small runs check that each bench measures what it says it measures."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from simulator.bench import load as bench_load
from simulator.bench.suite import HAND_WRITTEN, performance_doc, performance_table
from simulator.bench.turn import pct, run_turn_bench, summary


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert pct(values, 50) == 50 and pct(values, 95) == 95 and pct(values, 100) == 100
    assert pct([], 95) == 0.0
    assert summary([3.0, 1.0, 2.0])["max"] == 3.0


def test_bench_turn_measures_a_turn_and_shows_the_reply_does_not_wait_for_grading() -> None:
    # the grader takes 2 s, the client 10 ms: replies must arrive while every grade is running
    r = run_turn_bench(turns=4, latency_ms=10, grader_latency_ms=2000, warmup=1)
    assert r.turns == 4 and r.replies_before_grade == 4 and r.grades_ok == 4
    assert r.met["grading_never_delays_reply"]
    assert r.first_token_ms["p50"] >= 10  # the fake really waited before its first token
    assert r.overhead_ms["p50"] > 0 and r.ratio["p50"] >= 1.0
    assert set(r.met) == {"overhead_p95", "ratio_p95", "grading_never_delays_reply"}


def test_bench_turn_refuses_nonsense_arguments() -> None:
    with pytest.raises(ValueError, match="turns"):
        run_turn_bench(turns=0)
    with pytest.raises(ValueError, match="latency"):
        run_turn_bench(turns=1, latency_ms=0)


@pytest.mark.parametrize("url", ["http://10.0.0.5:7860", "https://example.org", "ftp://127.0.0.1"])
def test_bench_load_only_targets_loopback(url: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        bench_load.check_loopback(url)
    assert bench_load.check_loopback("http://127.0.0.1:7860/") == "http://127.0.0.1:7860"


def test_bench_load_bounds() -> None:
    with pytest.raises(ValueError, match="users"):
        bench_load.run_load_bench(users=bench_load.MAX_USERS + 1)
    with pytest.raises(ValueError, match="turns"):
        bench_load.run_load_bench(users=1, turns=0)
    with pytest.raises(ValueError, match="replicas"):
        bench_load.run_load_bench(users=1, replicas=9)
    with pytest.raises(ValueError, match="not with --url"):
        bench_load.run_load_bench(users=1, replicas=2, url="http://127.0.0.1:1")


def test_lost_turns_are_counted_on_postgresql_too(pg_url: str) -> None:
    from content_fixtures import new_session

    from simulator.store import open_store

    store = open_store(pg_url)
    sid = new_session(store)
    for speaker, text in [("counselor", "a"), ("client", "r"), ("counselor", "b")]:
        store.add_turn(sid, speaker, text)  # type: ignore[arg-type]
    store.close()
    assert bench_load.count_lost(pg_url, ["a", "b", "c"]) == (1, 1)  # c lost, b unanswered


def test_lost_turns_are_counted_from_the_database(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "t.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE turns (session_id, idx, speaker, text, abandoned_branch)")
    conn.executemany("INSERT INTO turns VALUES (?,?,?,?,NULL)", [
        ("s", 0, "client", "hi"), ("s", 1, "counselor", "a"), ("s", 2, "client", "r"),
        ("s", 3, "counselor", "b")])
    conn.commit()
    conn.close()
    assert bench_load.count_lost(db, ["a", "b", "c"]) == (1, 1)  # c lost, b unanswered


def test_bench_load_drives_the_web_app_over_http_and_loses_nothing(web: Any) -> None:
    """Two trainees through the browser's API of the test app (offline models)."""
    from web_harness import PERSONA_ID

    from simulator.service.accounts import hash_password

    hashed = hash_password(bench_load.PASSWORD)
    for i in range(2):
        name = bench_load.user_name(i)
        if name not in web.passwords:
            web.ctx.store.add_user(name, "trainee", cohort="bench", password_hash=hashed)
            web.passwords[name] = bench_load.PASSWORD
    tally, duration, timed_out = asyncio.run(bench_load.drive(
        web.url, users=2, turns=2, persona_id=PERSONA_ID, think_s=0.0, latency_s=0.0,
        timeout_s=120, password=bench_load.PASSWORD))
    assert not timed_out and tally.errors == 0, tally.samples
    assert tally.ok == 4 and len(tally.sent) == 4 and len(tally.latencies) == 4
    assert bench_load.count_lost(web.ctx.settings.db, tally.sent) == (0, 0)
    assert bench_load.count_lost(web.ctx.settings.db, [*tally.sent, "never sent"])[0] == 1


def test_performance_table_is_made_from_the_bench_all_file() -> None:
    results = json.loads(json.dumps({
        "date": "2026-11-22T06:00:00+00:00",
        "machine": {"cpus": 2, "python": "3.11.7", "platform": "Linux"},
        "turn": {"overhead_ms": {"p50": 9.5, "p95": 14.25}, "ratio": {"p50": 1.01, "p95": 1.04},
                 "latency_ms": 300.0, "replies_before_grade": 200, "turns": 200,
                 "offline_turn_ms": {"p50": 12.0, "p95": 20.0},
                 "targets": {"overhead_p95_ms": 20.0, "ratio_p95": 1.05}},
        "load": {"users": 100, "turns_per_user": 5, "think_ms": 10000.0, "turns_per_s": 33.3,
                 "model_latency_ms": 300.0, "errors": 0, "lost_turns": 0,
                 "beyond_model_ms": {"p50": 120.0, "p95": 410.5, "p99": 600.0},
                 "targets": {"beyond_model_p95_ms": 500.0}},
        "coder": {"cohen_kappa": 0.61, "utterances_per_s": 1500.0},
    }))
    table = performance_table(results)
    assert "2026-11-22 on 2 CPU cores" in table
    for figure in ("9.5 / 14.25 ms", "1.01 / 1.04", "200/200", "33.3", "410.5", "0 / 0", "0.61"):
        assert figure in table, figure

    # the doc keeps what was written by hand below its marker; writing it again changes nothing
    existing = f"# Performance\n\nold table\n\n{HAND_WRITTEN}\n\n## Client\n\nby hand | 98.7%\n"
    doc = performance_doc(results, "bench.json", existing)
    assert "old table" not in doc and "9.5 / 14.25 ms" in doc
    assert doc.endswith(f"{HAND_WRITTEN}\n\n## Client\n\nby hand | 98.7%\n")
    assert performance_doc(results, "bench.json", doc) == doc
    assert HAND_WRITTEN not in performance_doc(results, "bench.json")


def test_bench_abuse_runs_against_a_live_app_briefly() -> None:
    """`counselsim bench abuse` end to end in a few seconds (its own app process): a trainee
    practises through a small login flood, concurrent sends lose and duplicate nothing, no
    attacker gets in. The figures themselves are docs/performance.md's (full-length run)."""
    from simulator.bench.abuse import run_abuse_bench

    r = run_abuse_bench(connections=3, flood_s=2, quiet_s=1, lock_s=1, timeout_s=180)
    assert r.errors == [] and r.flood_turn_errors == 0, r.errors
    assert r.quiet_turn_p95_s is not None and r.flood_turns > 0
    assert r.attacker_attempts > 0 and r.attacker_got_a_session == 0
    assert r.concurrent_sent > 0 and r.concurrent_lost == 0 and r.concurrent_duplicated == 0
    assert r.healthz_max_s_while_locked is not None
