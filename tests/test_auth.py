"""Password hashing, login checks and the first-run admin."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.errors import InvalidInput
from simulator.service.accounts import authenticate, ensure_admin, hash_password, verify_password
from simulator.store import open_store


def test_hash_and_verify() -> None:
    h = hash_password("correct horse")
    assert h.startswith("$argon2id$") and "correct horse" not in h
    assert h != hash_password("correct horse")  # salted
    assert verify_password(h, "correct horse")
    assert not verify_password(h, "correct horsE")
    assert not verify_password(None, "anything")
    assert not verify_password("not-a-hash", "anything")
    with pytest.raises(ValueError):
        hash_password("short")


def test_ensure_admin_only_on_empty_store(tmp_path: Path) -> None:
    store = open_store(tmp_path / "a.db")
    password = ensure_admin(store)
    assert password and len(password) >= 12
    assert store.get_user("admin").role == "admin"
    assert store.get_user("admin").must_change_password  # the first sign-in asks for a new one
    assert authenticate(store, "admin", password)
    assert not authenticate(store, "admin", password + "x")
    assert not authenticate(store, "nobody", password)
    assert ensure_admin(store) is None
    assert store.count_users() == 1


def test_users_add_cli(tmp_path: Path, cli) -> None:
    db = tmp_path / "cli.db"
    env = {"COUNSELSIM_DB": str(db)}
    r = cli("users", "add", "alex", "--role", "trainee", "--cohort", "spring",
            "--password-stdin", input="s3cret-pass\n", env=env)
    assert r.exit_code == 0, r.output
    store = open_store(db)
    user = store.get_user("alex")
    assert (user.role, user.cohort, user.has_password) == ("trainee", "spring", True)
    assert authenticate(store, "alex", "s3cret-pass")
    added = store.events(None, "user_added")
    assert [e.data for e in added] == [{"user": "alex", "role": "trainee", "by": "cli"}]
    bad = cli("users", "add", "alex", "--role", "trainee", "--one-time", env=env)
    assert bad.exit_code == InvalidInput.exit_code and "already exists" in bad.stderr
    role = cli("users", "add", "zed", "--role", "wizard", "--one-time", env=env)
    assert role.exit_code == InvalidInput.exit_code and "unknown role" in role.stderr
    name = cli("users", "add", "two words", "--role", "trainee", "--one-time", env=env)
    assert name.exit_code == InvalidInput.exit_code and "user names are" in name.stderr


def test_users_add_refuses_without_a_terminal_or_a_password(tmp_path: Path, cli) -> None:
    db = tmp_path / "cli.db"
    env = {"COUNSELSIM_DB": str(db)}
    r = cli("users", "add", "sam", "--role", "supervisor", env=env)
    assert r.exit_code == InvalidInput.exit_code and "--password-stdin" in r.stderr
    assert open_store(db).count_users() == 0  # nothing created without a password
    one = cli("users", "add", "sam", "--role", "supervisor", "--one-time", env=env)
    assert one.exit_code == 0, one.output
    password = one.stdout.strip().splitlines()[-1].rsplit(" ", 1)[-1]
    store = open_store(db)
    assert len(password) >= 12 and authenticate(store, "sam", password)
    assert store.get_user("sam").must_change_password  # they choose their own at sign-in
    weak = cli("users", "add", "kim", "--role", "trainee", "--password-stdin",
               input="password123\n", env=env)
    assert weak.exit_code == InvalidInput.exit_code and "common" in weak.stderr


def test_users_add_asks_twice_on_a_terminal(tmp_path: Path, cli, monkeypatch) -> None:
    monkeypatch.setattr("simulator.cli.records.stdin_is_terminal", lambda: True)
    db = tmp_path / "tty.db"
    r = cli("users", "add", "lee", "--role", "trainee", input="river-stone-42\nriver-stone-42\n",
            env={"COUNSELSIM_DB": str(db)})
    assert r.exit_code == 0, r.output
    assert "river-stone-42" not in r.stdout  # never echoed
    assert authenticate(open_store(db), "lee", "river-stone-42")


def test_password_policy() -> None:
    from simulator.service.accounts import check_password

    for bad, why in (("short1", "at least"), ("Password123", "common"),
                     ("qwertyuiop", "common"), ("kim.lee-2026-x", "user name")):
        with pytest.raises(InvalidInput, match=why):
            check_password(bad, "kim.lee")
    assert check_password("blue kettle morning", "kim.lee")


def test_lifecycle_reset_disable_delete_and_a_reused_name(tmp_path: Path) -> None:
    from simulator.service import users

    store = open_store(tmp_path / "life.db")
    store.record_content("persona", "p", 1, "sha", "id: p")
    store.record_content("rubric", "r", 1, "sha", "id: r")
    users.add_user(store, "root", "admin", password="tall-tree-7777", by="cli")
    alex, _ = users.add_user(store, "alex", "trainee", cohort="spring",
                             password="blue-pass-1234", by="root")
    store.add_sign_in("t" * 64, alex.uid, "2999-01-01")
    sid = store.create_session("alex", "p", "sha", "r", "sha", mode="coach")
    # reset: a one-time password, forced change, sign-ins ended
    one_time = users.reset_password(store, "alex", by="root")
    assert authenticate(store, "alex", one_time) and not authenticate(store, "alex",
                                                                      "blue-pass-1234")
    assert store.get_user("alex").must_change_password and store.get_sign_in("t" * 64) is None
    # disable and enable; an admin cannot disable themselves, nor the last admin go
    assert users.set_disabled(store, "alex", True, by="root").disabled
    assert not users.set_disabled(store, "alex", False, by="root").disabled
    with pytest.raises(InvalidInput, match="your own"):
        users.set_disabled(store, "root", True, by="root")
    with pytest.raises(InvalidInput, match="last admin"):
        users.delete_user(store, "root", keep_sessions=True, by="someone-else")
    # delete, keeping the sessions under a pseudonym; the name added again sees none of it
    old_uid = store.get_user("alex").uid
    store.add_sign_in("u" * 64, old_uid, "2999-01-01")
    pseudonym, n = users.delete_user(store, "alex", keep_sessions=True, by="root")
    assert n == 1 and pseudonym and "alex" not in pseudonym
    assert store.get_session(sid).trainee == pseudonym
    new, _ = users.add_user(store, "alex", "trainee", password="green-pass-99x", by="root")
    assert new.uid != old_uid
    assert store.list_sessions(trainee="alex") == [] and store.get_sign_in("u" * 64) is None
    # delete with the sessions
    sid2 = store.create_session("alex", "p", "sha", "r", "sha", mode="coach")
    store.add_turn(sid2, "counselor", "hello")
    assert users.delete_user(store, "alex", keep_sessions=False, by="root") == (None, 1)
    assert store.list_sessions() == [store.get_session(sid)]
    kinds = [e.kind for e in store.events()]
    for kind in ("password_reset", "user_disabled", "user_enabled", "user_deleted"):
        assert kind in kinds


def test_database_and_exports_are_private(tmp_path: Path, cli) -> None:
    db = tmp_path / "private.db"
    store = open_store(db)
    store.add_user("amy", "trainee")
    store.record_content("persona", "p", 1, "sha", "id: p")
    store.record_content("rubric", "r", 1, "sha", "id: r")
    sid = store.create_session("amy", "p", "sha", "r", "sha", mode="coach")
    store.add_turn(sid, "counselor", "hello")
    for f in (db, tmp_path / "private.db-wal"):
        assert f.stat().st_mode & 0o777 == 0o600, f
    out = tmp_path / "export.jsonl"
    r = cli("export", "--out", str(out), "--pseudonymize", env={"COUNSELSIM_DB": str(db)})
    assert r.exit_code == 0, r.output
    assert out.stat().st_mode & 0o777 == 0o600
    text = out.read_text()
    import hashlib

    assert "amy" not in text
    assert "t-" + hashlib.sha256(b"amy").hexdigest()[:10] not in text  # not the unkeyed hash
    other = open_store(tmp_path / "other.db")  # another install: another key
    assert other.keyed_hash("pseudonym", "amy") != store.keyed_hash("pseudonym", "amy")


def test_the_web_and_the_cli_share_one_name_rule(tmp_path: Path) -> None:
    from simulator.service.users import add_user

    store = open_store(tmp_path / "u.db")
    for bad in ("", " ", "-leading", "a b", "x" * 65, "semi;colon"):
        with pytest.raises(InvalidInput):
            add_user(store, bad, "trainee", by="admin")
    user, password = add_user(store, " kim.lee@uni ", "trainee", cohort=" ", by="admin")
    assert (user.name, user.cohort) == ("kim.lee@uni", None) and password
    assert user.must_change_password
