"""A wheel install is a working install: the content library ships inside the package, and the
database defaults to the user's data folder, never inside site-packages."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from hatchling.builders.wheel import WheelBuilder

    out = tmp_path_factory.mktemp("wheel")
    return Path(next(iter(WheelBuilder(str(ROOT)).build(directory=str(out),
                                                         versions=["standard"]))))


def test_the_wheel_carries_the_content_library(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for kind in ("personas", "rubrics"):
        shipped = {p.name for p in (ROOT / kind).glob("*.yaml")}
        assert shipped and {f"simulator/_content/{kind}/{n}" for n in shipped} <= names
    templates = {p.name for p in (ROOT / "feedback").iterdir() if p.is_file()}
    assert {f"simulator/_content/feedback/{n}" for n in templates} <= names
    assert "simulator/coder/model/annomi-coder.npz" in names
    assert "simulator/client/prompts/client_system.j2" in names


def test_an_unpacked_wheel_finds_its_content_and_keeps_data_outside(wheel: Path,
                                                                  tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COUNSELSIM_", "XDG_"))}
    env.update(PYTHONPATH=str(site), HOME=str(home))
    script = ("from simulator.settings import load_settings, is_checkout\n"
              "from simulator.content.library import load_library\n"
              "s = load_settings()\n"
              "lib = load_library(s.persona_dirs(), s.rubric_dirs())\n"
              "print(is_checkout(), len(lib.personas), len(lib.rubrics), len(lib.errors))\n"
              "print(s.db)\nprint(s.feedback)\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    first, db, feedback = done.stdout.strip().splitlines()
    checkout, personas, rubrics, errors = first.split()
    assert checkout == "False" and int(personas) >= 9 and int(rubrics) >= 3 and errors == "0"
    assert Path(db) == home / ".local" / "share" / "counselsim" / "counselsim.db"
    assert Path(feedback) == site / "simulator" / "_content" / "feedback"


def test_an_institutions_own_content_loads_beside_the_shipped_library(tmp_path: Path,
                                                                    cli) -> None:
    own = tmp_path / "ours"
    (own / "personas").mkdir(parents=True)
    source = (ROOT / "personas" / "mai-bereavement.yaml").read_text(encoding="utf-8")
    (own / "personas" / "mai-local.yaml").write_text(
        source.replace("id: mai-bereavement", "id: mai-local", 1), encoding="utf-8")
    result = cli("validate", "--json", env={"COUNSELSIM_CONTENT": str(own)})
    assert result.exit_code == 0, result.output
    assert "mai-local.yaml" in result.stdout
    from simulator.settings import load_settings

    settings = load_settings(content=own)
    assert settings.authoring_dir("persona") == own / "personas"
    assert settings.persona_dirs() == [settings.personas, own / "personas"]
