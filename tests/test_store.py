"""The store: migrations, turns committed at once, rewind branches, reviews beside machine values,
search, many threads, and a process killed between the trainee's turn and the client's reply."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from content_fixtures import code, fill_session, new_session, record_content

from simulator.errors import InvalidInput
from simulator.store import SessionFilter, Store, StoreError, open_store
from simulator.store.migrations import SCHEMA_VERSION


@pytest.fixture
def store(db_target: str | Path) -> Store:
    """Every test that takes ``store`` runs on SQLite, then on PostgreSQL."""
    s = open_store(db_target)
    yield s
    s.close()


def test_schema_version_and_wal(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    s = open_store(path)
    assert s.schema_version == SCHEMA_VERSION >= 2
    s.close()
    s2 = open_store(path)  # reopening applies nothing new
    assert s2.schema_version == SCHEMA_VERSION
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"users", "cohorts", "personas", "rubrics", "sessions", "turns", "codes", "grades",
            "session_grades", "reviews", "events", "turns_fts"} <= tables
    s2.close()


def test_postgresql_schema_version_and_text_search_column(pg_empty_url: str) -> None:
    pg_url = pg_empty_url
    import psycopg

    s = open_store(pg_url)
    assert s.kind == "postgresql" and s.path is None
    assert s.schema_version == SCHEMA_VERSION
    s.close()
    s2 = open_store(pg_url)  # reopening applies nothing new
    assert s2.schema_version == SCHEMA_VERSION
    s2.close()
    with psycopg.connect(pg_url) as conn:
        tables = {r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        tsv = conn.execute("SELECT data_type FROM information_schema.columns WHERE "
                           "table_name = 'turns' AND column_name = 'text_tsv'").fetchone()
    assert {"users", "cohorts", "personas", "rubrics", "sessions", "turns", "codes", "grades",
            "session_grades", "reviews", "events", "sign_ins", "install_secrets",
            "schema_migrations"} <= tables
    assert tsv == ("tsvector",)


def test_database_urls_choose_the_backend(tmp_path: Path) -> None:
    s = open_store(f"sqlite:///{tmp_path}/u.db")
    assert s.kind == "sqlite" and s.path == tmp_path / "u.db" and (tmp_path / "u.db").exists()
    s.close()
    with pytest.raises(InvalidInput, match="mysql://... is not supported"):
        open_store("mysql://localhost/x")


def test_an_unreachable_postgresql_is_a_storage_error_naming_no_password(tmp_path: Path) -> None:
    from simulator.errors import StorageError
    from simulator.store import postgres

    old = postgres.POOL_TIMEOUT_S
    postgres.POOL_TIMEOUT_S = 1.0
    try:
        with pytest.raises(StorageError) as info:
            open_store(f"postgresql://amy:secret@/x?host={tmp_path}")
    finally:
        postgres.POOL_TIMEOUT_S = old
    assert "secret" not in str(info.value)


def test_session_lifecycle_and_listing(store: Store) -> None:
    store.add_user("alex", "trainee", cohort="2026-spring")
    store.add_user("bo", "trainee", cohort="2026-autumn")
    a = new_session(store, "alex")
    b = new_session(store, "bo", mode="assessment")
    s = store.get_session(a)
    assert (s.persona_version, s.rubric_version, s.status, s.cohort) == (2, 3, "active",
                                                                         "2026-spring")
    assert {x.session_id for x in store.list_sessions()} == {a, b}
    assert [x.session_id for x in store.list_sessions(trainee="bo")] == [b]
    assert [x.session_id for x in store.list_sessions(cohort="2026-spring")] == [a]
    assert store.list_sessions(SessionFilter(persona_id="nobody")) == []
    assert store.list_sessions(since="2999-01-01") == []
    store.end_session(a)
    assert [x.session_id for x in store.list_sessions(status="ended")] == [a]
    with pytest.raises(StoreError, match="has ended"):
        store.add_turn(a, "counselor", "hello?")
    assert store.resolve_session_id(b[:10]) == b
    with pytest.raises(StoreError):
        store.get_session("nope")


def test_session_needs_recorded_content(store: Store) -> None:
    with pytest.raises(StoreError, match="has not been recorded"):
        store.create_session("alex", "ghost", "0" * 64, "test-miti", "1" * 64)
    psha, rsha = record_content(store)
    again = store.record_content("persona", "test-sam", 2, psha, "different text ignored")
    assert "hidden_facts" in again.content  # idempotent per (id, sha): first text kept


def test_turns_positions_and_client_info(store: Store) -> None:
    sid = new_session(store)
    t0 = store.add_turn(sid, "counselor", "Hi, what brings you in?")
    t1 = store.add_turn(sid, "client", "The doctor sent me.")
    assert (t0.idx, t1.idx) == (0, 1)
    store.set_turn_client_info(t1.id, act="opening", fact_id=None, state={"rapport": 0.4})
    assert store.get_turn(t1.id).state == {"rapport": 0.4}
    with pytest.raises(StoreError):
        store.add_turn(sid, "assistant", "x")  # type: ignore[arg-type]


def test_rewind_keeps_abandoned_branch(store: Store) -> None:
    sid = new_session(store)
    for i in range(3):
        store.add_turn(sid, "counselor", f"question {i}")
        store.add_turn(sid, "client", f"answer {i}")
    assert store.rewind(sid, 4) == 1  # retry the third counselor turn
    retry = store.add_turn(sid, "counselor", "a better reflection")
    assert retry.idx == 4
    store.add_turn(sid, "client", "answer to the retry")
    assert store.rewind(sid, 2) == 2
    assert [t.text for t in store.current_turns(sid)] == ["question 0", "answer 0"]
    everything = store.all_turns(sid)
    assert len(everything) == 8
    branches = {t.text: t.abandoned_branch for t in everything}
    assert branches["question 2"] == 1 and branches["a better reflection"] == 2
    assert branches["question 1"] == 2 and branches["question 0"] is None
    assert store.rewind(sid, 10) == 0  # nothing to move
    assert [e.kind for e in store.events(sid, kind="rewind")] == ["rewind", "rewind"]


def test_effective_codes_prefer_supervisor_then_grader_then_coder(store: Store) -> None:
    sid = new_session(store)
    t = store.add_turn(sid, "counselor", "You're worried about your liver.")
    store.add_codes(t.id, "test-miti", code("SR"), coder="offline")
    (e,) = store.effective_codes(sid)
    assert e.values["behaviour"] == "SR" and e.sources["behaviour"] == "coder"
    g = store.add_grade(t.id, "test-miti", status="pending", model="fake")
    assert [p.id for p in store.pending_grades()] == [g.id]
    assert store.effective_codes(sid)[0].sources["behaviour"] == "coder"  # pending does not count
    store.update_grade(g.id, status="ok", values={"behaviour": "CR"}, rationale="adds meaning")
    assert store.pending_grades(sid) == []
    e = store.effective_codes(sid)[0]
    assert e.values["behaviour"] == "CR" and e.sources["behaviour"] == "grader"
    assert e.grade is not None and e.grade.attempts == 2
    store.add_review(sid, reviewer="sup", turn_id=t.id, item_id="behaviour", value="SR",
                     comment="It only repeats.")
    e = store.effective_codes(sid)[0]
    assert e.values["behaviour"] == "SR" and e.sources["behaviour"] == "supervisor"
    assert e.machine["behaviour"] == "CR"  # machine value kept beside the correction
    assert store.codes(t.id)[0].codes["behaviour"] == "SR"
    with pytest.raises(StoreError):
        store.add_review(sid, reviewer="sup")  # neither value nor comment
    other = new_session(store)
    with pytest.raises(StoreError, match="not in session"):
        store.add_review(other, reviewer="sup", turn_id=t.id, comment="wrong session")


def test_search_turns_by_cohort(store: Store) -> None:
    store.add_user("alex", "trainee", cohort="a")
    store.add_user("bo", "trainee", cohort="b")
    for who in ("alex", "bo"):
        sid = new_session(store, who)
        store.add_turn(sid, "counselor", "How has your mood been?")
        store.add_turn(sid, "client", "Some nights I have suicidal thoughts.")
    hits = store.search_turns("suicidal")
    assert len(hits) == 2 and all("[[suicidal]]" in h.snippet for h in hits)
    (hit,) = store.search_turns("suicidal", cohort="a")
    assert hit.trainee == "alex" and hit.turn.speaker == "client"
    assert store.search_turns('NOT "or') == []  # FTS syntax is quoted, not an error


def test_many_threads_at_once(store: Store) -> None:
    sids = [new_session(store, f"t{i}") for i in range(8)]
    errors: list[BaseException] = []

    def work(sid: str) -> None:
        try:
            for i in range(25):
                t = store.add_turn(sid, "counselor", f"turn {i}")
                store.add_codes(t.id, "test-miti", code("OQ"), coder="offline")
                store.add_turn(sid, "client", f"reply {i}", state={"rapport": 0.5})
                store.list_sessions(limit=3)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(sid,)) for sid in sids for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    for sid in sids:
        turns = store.current_turns(sid)
        assert len(turns) == 100 and [t.idx for t in turns] == list(range(100))


KILLED_CHILD = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    from content_fixtures import new_session
    from simulator.store import open_store
    store = open_store({db!r})
    sid = new_session(store)
    store.add_turn(sid, "counselor", "What brings you in?")
    store.add_turn(sid, "client", "The doctor sent me.")
    store.add_turn(sid, "counselor", "You weren't keen to come.")   # trainee turn committed ...
    print(sid, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)                            # ... killed before the reply
""")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_killed_process_loses_no_committed_turn(tmp_path: Path, backend: str,
                                                request: pytest.FixtureRequest) -> None:
    db = tmp_path / "kill.db" if backend == "sqlite" else request.getfixturevalue("pg_url")
    code_text = KILLED_CHILD.format(tests=str(Path(__file__).parent), db=str(db))
    proc = subprocess.run([sys.executable, "-c", code_text], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    sid = proc.stdout.strip()
    store = open_store(db)
    turns = store.current_turns(sid)
    assert [t.text for t in turns][-1] == "You weren't keen to come."
    assert turns[-1].speaker == "counselor" and store.get_session(sid).status == "active"
    reply = store.add_turn(sid, "client", "Not really, no.")  # the session continues
    assert reply.idx == 3
    store.close()
    assert backend != "sqlite" or os.path.exists(db)


def test_fill_session_fixture_is_consistent(store: Store) -> None:
    sid = new_session(store)
    fill_session(store, sid)
    turns = store.current_turns(sid)
    assert len(turns) == 24 and turns[-1].state == {"rapport": 0.7, "resistance": 0.25}
    assert len(store.effective_codes(sid)) == 12


def test_search_with_a_nul_or_control_characters_is_not_an_error(store: Store) -> None:
    assert store.search_turns("wine\x00\x07 drink") == []
    assert store.search_turns("\x00") == []


def test_a_grading_job_is_held_by_its_worker_until_its_lease_runs_out(store: Store) -> None:
    sid = new_session(store)
    turn = store.add_turn(sid, "counselor", "What brings you in?")
    job = store.add_job("turn", sid, turn.id, worker="replica-a", lease_s=60)
    assert job.claimed_by == "replica-a" and job.status == "queued" and job.attempts == 1
    assert store.claim_job("replica-b") is None  # held: replica-a is alive
    assert store.renew_jobs("replica-a", lease_s=0.0) == 1  # ... until it stops renewing
    taken = store.claim_job("replica-b", lease_s=60)
    assert taken is not None and (taken.id, taken.claimed_by, taken.attempts) == (
        job.id, "replica-b", 2)
    assert store.claim_job("replica-a") is None
    store.add_grade(turn.id, "test-miti", status="pending", error="timeout")  # a stored grade
    assert store.get_job(job.id).status == "done"  # ... ends the turn's job, whoever stored it
    assert store.jobs(status="queued") == []
    session_job = store.add_job("session", sid)  # unclaimed: anyone's
    assert store.claim_job("replica-a").id == session_job.id  # type: ignore[union-attr]
    assert store.finish_jobs("session", sid) == 1 and store.claim_job("replica-b") is None


def test_replicas_claiming_at_once_never_take_the_same_job(store: Store) -> None:
    sid = new_session(store)
    ids = {store.add_job("session", sid).id for _ in range(30)}
    taken: dict[str, list[int]] = {"a": [], "b": [], "c": []}

    def work(worker: str) -> None:
        while (job := store.claim_job(worker)) is not None:
            taken[worker].append(job.id)

    threads = [threading.Thread(target=work, args=(w,)) for w in taken]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    claimed = [i for got in taken.values() for i in got]
    assert sorted(claimed) == sorted(ids)  # each exactly once


def test_accounts_sign_ins_and_deletion(store: Store) -> None:
    """The account methods the service layer uses, on both backends."""
    store.add_user("alex", "trainee", cohort="c1", password_hash="h1")
    store.add_user("bo", "trainee", cohort="c1")
    sid = new_session(store, "alex")
    fill_session(store, sid)
    kept = new_session(store, "bo")
    assert store.resolve_session_id(sid[:6]) == sid
    store.set_password_hash("alex", "h2", must_change=True)
    store.set_password_hash("alex", "h3")  # must_change left as it was
    user = store.get_user("alex")
    assert store.password_hash("alex") == "h3" and user.must_change_password
    store.set_disabled("alex", True)
    assert store.get_user("alex").disabled
    store.add_sign_in("x" * 64, user.uid, "2000-01-01")
    store.touch_sign_in("x" * 64)
    assert store.delete_sign_ins(before="2020-01-01") == 1
    store.add_cohort("c1", "first")
    store.add_cohort("c1", "again")
    assert store.list_cohorts() == ["c1"]
    assert store.install_secret("k") == store.install_secret("k")
    assert len(store.list_sessions(since="2000-01-01", cohort="c1", limit=5)) == 2
    assert len(store.search_turns("torn", include_abandoned=False, trainee="alex")) == 1
    assert store.delete_user("alex", sessions_to=None) == 1
    assert store.delete_user("bo", sessions_to="former-1") == 1
    assert [s.trainee for s in store.list_sessions()] == ["former-1"]
    store.set_self_rating(kept, {"empathy": 4})
    assert store.get_session(kept).self_rating == {"empathy": 4}
    assert [e.session_id for e in store.events(kind="session_created")] == [kept]
