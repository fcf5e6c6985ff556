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
    bad = cli("users", "add", "alex", "--role", "trainee", env=env)
    assert bad.exit_code == InvalidInput.exit_code and "already exists" in bad.stderr
    role = cli("users", "add", "zed", "--role", "wizard", env=env)
    assert role.exit_code == InvalidInput.exit_code and "unknown role" in role.stderr
    name = cli("users", "add", "two words", "--role", "trainee", env=env)
    assert name.exit_code == InvalidInput.exit_code and "user names are" in name.stderr


def test_users_add_without_a_password_prints_a_one_time_one(tmp_path: Path, cli) -> None:
    db = tmp_path / "cli.db"
    r = cli("users", "add", "sam", "--role", "supervisor", env={"COUNSELSIM_DB": str(db)})
    assert r.exit_code == 0, r.output
    password = r.stdout.strip().splitlines()[-1].rsplit(" ", 1)[-1]
    assert len(password) >= 12 and authenticate(open_store(db), "sam", password)


def test_the_web_and_the_cli_share_one_name_rule(tmp_path: Path) -> None:
    from simulator.service.users import add_user

    store = open_store(tmp_path / "u.db")
    for bad in ("", " ", "-leading", "a b", "x" * 65, "semi;colon"):
        with pytest.raises(InvalidInput):
            add_user(store, bad, "trainee", by="admin")
    user, password = add_user(store, " kim.lee@uni ", "trainee", cohort=" ", by="admin")
    assert (user.name, user.cohort) == ("kim.lee@uni", None) and password
