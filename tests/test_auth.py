"""Password hashing, login checks and the first-run admin."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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


def run_cli(*args: str, stdin: str = "", env_db: Path) -> subprocess.CompletedProcess[str]:
    import os

    env = {**os.environ, "COUNSELSIM_DB": str(env_db)}
    exe = Path(sys.executable).parent / "counselsim"
    return subprocess.run([str(exe), *args], input=stdin,
                          capture_output=True, text=True, env=env, timeout=120)


def test_users_add_cli(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    r = run_cli("users", "add", "alex", "--role", "trainee", "--cohort", "spring",
                "--password-stdin", stdin="s3cret-pass\n", env_db=db)
    assert r.returncode == 0, r.stderr
    store = open_store(db)
    user = store.get_user("alex")
    assert (user.role, user.cohort, user.has_password) == ("trainee", "spring", True)
    assert authenticate(store, "alex", "s3cret-pass")
    bad = run_cli("users", "add", "alex", "--role", "trainee", env_db=db)
    assert bad.returncode == 1 and "already exists" in bad.stderr
    role = run_cli("users", "add", "zed", "--role", "wizard", env_db=db)
    assert role.returncode != 0
