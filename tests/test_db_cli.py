"""``counselsim db migrate`` and ``counselsim db copy``: moving an installation from its SQLite
file to PostgreSQL keeps every row and every id, refuses a non-empty target, and never
overwrites a row that is already there."""

from __future__ import annotations

import json
from pathlib import Path

from content_fixtures import code, fill_session, new_session

from simulator.store import Store, open_store
from simulator.store.copy import TABLES, count_rows
from simulator.store.migrations import SCHEMA_VERSION


def test_migrate_reports_the_backend_and_schema_version(cli, tmp_path: Path,
                                                        pg_empty_url: str) -> None:
    out = cli("db", "migrate", "--db", f"sqlite:///{tmp_path}/m.db", "--json")
    assert out.exit_code == 0, out.output
    assert json.loads(out.output.splitlines()[-1]) == {
        "db": f"sqlite:///{tmp_path}/m.db", "backend": "sqlite", "schema_version": SCHEMA_VERSION}
    assert (tmp_path / "m.db").exists()
    out = cli("db", "migrate", env={"COUNSELSIM_DB": pg_empty_url})
    assert out.exit_code == 0, out.output
    assert f"postgresql, schema version {SCHEMA_VERSION}" in out.output


def a_used_installation(store: Store) -> str:
    """Something of every table: users, cohorts, content, a session with codes, grades, a
    review, a session grade, a rewind branch, events, a sign-in, an install secret and a
    grading job."""
    store.add_user("alex", "trainee", cohort="spring", password_hash="$argon2id$fake")
    store.add_user("sue", "supervisor", cohort="spring")
    sid = new_session(store, "alex")
    fill_session(store, sid)
    turns = store.current_turns(sid)
    store.add_grade(turns[0].id, "test-miti", status="pending", error="model down")
    store.add_review(sid, reviewer="sue", turn_id=turns[0].id, item_id="behaviour", value="CR")
    store.add_session_grade(sid, "test-miti", {"empathy": {"score": 4, "evidence": ["q"]}})
    store.rewind(sid, 20)
    store.add_sign_in("ab" * 32, store.get_user("alex").uid, "2999-01-01")
    store.keyed_hash("export", "alex")
    store.add_job("session", sid, worker="replica-a")
    return sid


def snapshot(store: Store, sid: str) -> dict[str, object]:
    return {
        "turns": [t.model_dump() for t in store.all_turns(sid)],
        "effective": [e.model_dump() for e in store.effective_codes(sid)],
        "grades": [g.model_dump() for g in store.grades(sid)],
        "reviews": [r.model_dump() for r in store.reviews(sid)],
        "events": [e.model_dump() for e in store.events(sid)],
        "session": store.get_session(sid).model_dump(),
        "users": [u.model_dump() for u in store.list_users()],
        "secret": store.keyed_hash("export", "alex"),
        "sign_in": store.get_sign_in("ab" * 32),
        "jobs": store.jobs(),
    }


def test_copy_sqlite_to_postgresql_keeps_every_row_and_id(cli, tmp_path: Path,
                                                          pg_url: str) -> None:
    src_url = f"sqlite:///{tmp_path}/old.db"
    src = open_store(src_url)
    sid = a_used_installation(src)
    before, counts = snapshot(src, sid), count_rows(src)
    src.close()
    assert all(counts[t] for t, _ in TABLES), counts  # the fixture really fills every table

    out = cli("db", "copy", "--from", src_url, "--to", pg_url, "--json")
    assert out.exit_code == 0, out.output
    report = json.loads(out.output.splitlines()[-1])
    assert {t["table"]: t["copied"] for t in report["tables"]} == counts
    dst = open_store(pg_url)
    assert snapshot(dst, sid) == before
    hits = [h.turn.id for h in dst.search_turns("torn")]
    assert hits and hits == [h.turn.id for h in open_store(src_url).search_turns("torn")]
    # new rows continue after the copied ids, on the copied session
    top = max(t["id"] for t in before["turns"])  # type: ignore[attr-defined]
    nxt = dst.add_turn(sid, "counselor", "Where were we?")
    assert nxt.id == top + 1 and nxt.idx == 20
    dst.add_codes(nxt.id, "test-miti", code("OQ"))
    dst.close()

    again = cli("db", "copy", "--from", src_url, "--to", pg_url)
    assert again.exit_code == 3 and "not empty" in again.output  # refused, nothing written
    assert count_rows(open_store(pg_url))["turns"] == counts["turns"] + 1

    resumed = cli("db", "copy", "--from", src_url, "--to", pg_url, "--allow-nonempty",
                  "--json")
    assert resumed.exit_code == 0, resumed.output
    tables = json.loads(resumed.output.splitlines()[-1])["tables"]
    assert all(t["copied"] == 0 and t["skipped"] == counts[t["table"]] for t in tables)
    kept = open_store(pg_url)
    assert kept.get_turn(nxt.id).text == "Where were we?"  # never overwritten


def test_copy_back_from_postgresql_to_a_new_sqlite_file(cli, tmp_path: Path, pg_url: str) -> None:
    src = open_store(pg_url)
    sid = a_used_installation(src)
    before = snapshot(src, sid)
    src.close()
    out = cli("db", "copy", "--from", pg_url, "--to", str(tmp_path / "back.db"))
    assert out.exit_code == 0, out.output
    assert "copied postgresql://" in out.output
    assert snapshot(open_store(tmp_path / "back.db"), sid) == before
