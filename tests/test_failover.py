"""A replica killed (SIGKILL) in the middle of a class, end to end: ``bench load
--kill-replica-after`` at small scale, two real app processes on one database (SQLite, then
PostgreSQL). Its trainees move to the other replica with the cookie they have, reopen the same
session with every turn they saw committed, and finish their turns there; nothing committed is
lost; the grades the dead replica was working on are finished by the survivor's job worker once
their lease runs out. What the bench reports is checked against the database itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.bench.load import run_load_bench, turn_tag, user_name
from simulator.store import open_store

USERS, TURNS = 4, 8


def test_a_killed_replicas_trainees_continue_their_sessions_on_the_other(
        db_target: str | Path) -> None:
    # The trainees' first turns are answered about 6 s in (cold replicas), then one a second.
    # Replica 0 dies 8 s in: its two trainees have turns committed on it and, with a 2 s grader,
    # grades in progress (jobs it holds). A 3 s lease (serve's is 60 s) lets the survivor take
    # those over within the test.
    r = run_load_bench(users=USERS, turns=TURNS, latency_ms=300, think_ms=500, ramp_ms=500,
                       timeout_s=120, replicas=2, db=str(db_target), kill_replica_after=8,
                       grader_latency_ms=2000, lease_s=3)
    fo = r.failover
    assert fo is not None and fo.killed_at_s is not None, "replica 0 was not killed"
    assert fo.killed_replica == 0 and fo.trainees_on_killed == USERS // 2
    assert fo.committed_before_kill > 0, "the kill came before any turn: move it later"
    # each of its trainees met the dead replica, moved, and went on in the same session
    assert fo.trainees_moved == fo.trainees_on_killed == fo.moved_with_session
    assert fo.sessions_continued == fo.trainees_moved, fo
    assert fo.committed_missing_on_resume == 0 and fo.signed_in_again == 0
    assert fo.turns_answered_after_move > 0
    # every turn of the class answered and committed, no other error, nothing committed lost
    assert r.errors == 0, r.error_samples
    assert r.turns_ok == r.committed_turns == USERS * TURNS
    assert r.lost_committed_turns == 0 and r.lost_turns == 0 and r.unanswered_turns == 0
    # the dead replica held grades in progress; all were finished, by the lease takeover (or, a
    # turn cut off by the kill, by the grade of its "Ask again")
    assert fo.jobs_held is not None and fo.jobs_held > 0, fo
    assert fo.jobs_finished == fo.jobs_held, fo
    assert fo.jobs_taken_over is not None and fo.jobs_taken_over > 0, fo

    # the database agrees: one session per trainee (continued, not started again) holding all
    # its turns in order, and no grading job left open
    store = open_store(db_target)
    try:
        for i in range(USERS):
            sessions = store.list_sessions(trainee=user_name(i))
            assert len(sessions) == 1, (user_name(i), sessions)
            said = [t.text for t in store.current_turns(sessions[0].session_id)
                    if t.speaker == "counselor"]
            assert [s[-len(turn_tag(i, 0)):] for s in said] == \
                [turn_tag(i, t) for t in range(TURNS)]
        assert store.jobs(status="queued") == []
    finally:
        store.close()


def test_kill_replica_after_needs_two_started_replicas() -> None:
    with pytest.raises(ValueError, match="--replicas 2"):
        run_load_bench(users=1, replicas=1, kill_replica_after=5)
    with pytest.raises(ValueError, match="less than --timeout-s"):
        run_load_bench(users=1, replicas=2, kill_replica_after=500, timeout_s=300)
