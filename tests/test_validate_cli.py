"""`counselsim validate` and `counselsim schema` as an educator meets them: the installed console
script once (a real subprocess), the rest in-process through Typer's runner (same output, exit
codes and streams, without a Python start-up per case).

Every broken file must give one clear line naming file, line and key, never a traceback, and
one bad file must never stop the others from being checked.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CLI = Path(sys.executable).parent / "counselsim"
PERSONA = ROOT / "personas" / "tomasz-alcohol-precontemplation.yaml"
SUMMARY = re.compile(
    r"^(\d+) personas, (\d+) rubrics valid; (\d+) files with errors \((\d+) errors\)$")


def run_installed(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COUNSELSIM_")}
    return subprocess.run([str(CLI), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    from typer.testing import CliRunner

    from simulator.cli.main import app

    before = Path.cwd()
    os.chdir(cwd)
    try:
        result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    finally:
        os.chdir(before)
    return subprocess.CompletedProcess(list(args), result.exit_code, result.stdout,
                                       result.stderr)


def line_of(text: str, needle: str, start: int = 0) -> int:
    """1-based line number of the first line containing ``needle`` at or after line ``start``."""
    for number, line in enumerate(text.splitlines(), start=1):
        if number >= start and needle in line:
            return number
    raise AssertionError(f"{needle!r} not found")


def errors_for(result: subprocess.CompletedProcess[str], name: str) -> list[str]:
    return [ln.strip() for ln in result.stderr.splitlines() if ln.strip().startswith(name)]


def test_shipped_library_validates_with_summary():
    r = run_installed("validate")
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout.strip().splitlines()
    m = SUMMARY.match(out[-1])
    assert m, out[-1]
    personas, rubrics, failed, errors = map(int, m.groups())
    assert personas >= 8 and rubrics >= 3 and failed == 0 and errors == 0
    files = sorted(p.name for p in [*ROOT.joinpath("personas").glob("*.yaml"),
                                    *ROOT.joinpath("rubrics").glob("*.yaml")])
    assert len(out) == len(files) + 1  # one line per file, then the summary
    assert all(ln.startswith("ok   ") for ln in out[:-1])
    assert sorted(Path(ln.split()[1]).name for ln in out[:-1]) == files
    assert r.stderr == ""


def test_json_summary_is_last_line():
    r = run("validate", "--json")
    assert r.returncode == 0
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["failed_files"] == 0 and summary["personas"] >= 8 and summary["rubrics"] >= 3


def test_misspelt_key_names_file_line_and_key(tmp_path):
    text = PERSONA.read_text(encoding="utf-8").replace("presenting_problem:", "presenting_problm:")
    bad = tmp_path / "tomasz-copy.yaml"
    bad.write_text(text, encoding="utf-8")
    r = run("validate", str(bad))
    assert r.returncode == 1
    line = line_of(text, "presenting_problm:")
    errs = errors_for(r, str(bad))
    assert any(e.startswith(f"{bad}:{line}:1: presenting_problm: unknown key") for e in errs), errs
    # the now-missing real key is reported too, and nothing crashed
    assert any("presenting_problem: required key is missing" in e for e in errs)
    assert "Traceback" not in r.stderr
    assert f"FAIL {bad}" in r.stdout


def test_value_out_of_range_gives_nested_path_and_line(tmp_path):
    text = PERSONA.read_text(encoding="utf-8")
    second_fact = line_of(text, "- id: grandson")
    target = line_of(text, "rapport: 0.6", start=second_fact)
    lines = text.splitlines()
    lines[target - 1] = lines[target - 1].replace("rapport: 0.6", "rapport: 1.5")
    bad = tmp_path / "range.yaml"
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    r = run("validate", str(bad))
    assert r.returncode == 1
    errs = errors_for(r, str(bad))
    assert len(errs) == 1, errs
    assert errs[0].startswith(f"{bad}:{target}:7: hidden_facts[1].unlock.rapport: ")
    assert "less than or equal to 1" in errs[0]


def test_unknown_skill_code_is_reported_at_its_line(tmp_path):
    text = PERSONA.read_text(encoding="utf-8").replace("codes: [SR, CR]", "codes: [SR, XCR]")
    bad = tmp_path / "skill.yaml"
    bad.write_text(text, encoding="utf-8")
    r = run("validate", str(bad))
    assert r.returncode == 1
    line = line_of(text, "codes: [SR, XCR]")
    errs = errors_for(r, str(bad))
    assert len(errs) == 1, errs
    assert errs[0].startswith(f"{bad}:{line}:")
    assert "hidden_facts[0].unlock.skills.codes[1]" in errs[0]
    assert "'XCR' is not defined by any loaded rubric" in errs[0]


def test_undefined_placeholder_is_reported_at_its_line(tmp_path):
    text = PERSONA.read_text(encoding="utf-8")
    text = text.replace("Go on then.", "Go on then, {nickname}.")
    bad = tmp_path / "placeholder.yaml"
    bad.write_text(text, encoding="utf-8")
    r = run("validate", str(bad))
    errs = errors_for(r, str(bad))
    line = line_of(text, "{nickname}")
    assert r.returncode == 1 and len(errs) == 1, errs
    assert errs[0].startswith(f"{bad}:{line}:7: lines.opening[4]: placeholder {{nickname}}")


BILLION_LAUGHS = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]"
       for p, c in zip("abcdefgh", "bcdefghi", strict=True)]
) + "\n"

BROKEN = {
    "tabs.yaml": ("id: x\nidentity:\n\tname: Sam\n", 3, "tab"),
    "dupes.yaml": ("id: x\ntitle: One\nversion: 1\ntitle: Two\n", 4, "duplicate key"),
    "notyaml.yaml": ("id: [unclosed\ntitle: {oops\n", None, "not valid YAML"),
    "empty.yaml": ("", 1, "empty"),
    "comments.yaml": ("# only a comment\n", 1, "no content"),
    "scalar.yaml": ("just a sentence, not a mapping\n", 1, "mapping"),
    "bomb.yaml": (BILLION_LAUGHS, 1, "alias bomb"),
    "binary.yaml": (None, 1, "not UTF-8"),
    "huge.yaml": ("x: " + "a" * 1_100_000 + "\n", 1, "larger than"),
}


@pytest.fixture(scope="module")
def broken_run(tmp_path_factory):
    """All broken files validated in one run (each must still get its own single line)."""
    folder = tmp_path_factory.mktemp("broken")
    for name, (text, _, _) in BROKEN.items():
        if text is None:
            (folder / name).write_bytes(b"\xff\xfe\x00\x81garbage\x00")
        else:
            (folder / name).write_text(text, encoding="utf-8")
    return run("validate", *sorted(BROKEN), cwd=folder)


def test_broken_files_fail_without_traceback(broken_run):
    assert broken_run.returncode == 1
    assert "Traceback" not in broken_run.stderr + broken_run.stdout
    assert broken_run.stdout.splitlines()[-1] == (
        f"0 personas, 0 rubrics valid; {len(BROKEN)} files with errors ({len(BROKEN)} errors)")


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_file_gives_one_clear_line(broken_run, name):
    _, line, words = BROKEN[name]
    assert f"FAIL {name}" in broken_run.stdout.splitlines()
    errs = errors_for(broken_run, name)
    assert len(errs) == 1, broken_run.stderr
    assert words in errs[0], errs[0]
    m = re.match(rf"^{re.escape(name)}:(\d+):(\d+): ", errs[0])
    assert m, errs[0]
    if line is not None:
        assert int(m.group(1)) == line


def test_one_bad_file_does_not_stop_the_others(tmp_path):
    folder = tmp_path / "personas"
    folder.mkdir()
    (folder / "a-bad.yaml").write_text("id: [broken\n", encoding="utf-8")
    (folder / "b-good.yaml").write_text(PERSONA.read_text(encoding="utf-8"), encoding="utf-8")
    (folder / "c-bad.yaml").write_text("id: x\n\tname: y\n", encoding="utf-8")
    r = run("validate", "personas", cwd=tmp_path)
    assert r.returncode == 1
    out = r.stdout.splitlines()
    assert out[:3] == ["FAIL personas/a-bad.yaml",
                       "ok   personas/b-good.yaml (persona tomasz-alcohol-precontemplation)",
                       "FAIL personas/c-bad.yaml"]
    assert out[-1] == "1 personas, 0 rubrics valid; 2 files with errors (2 errors)"


def test_missing_path_is_a_user_error(tmp_path):
    r = run("validate", "nowhere.yaml", cwd=tmp_path)
    assert r.returncode == 1
    assert "nowhere.yaml: no such file or folder" in r.stderr


def test_schema_command():
    r = run("schema", "persona")
    assert r.returncode == 0
    schema = json.loads(r.stdout)
    assert schema["title"] == "Persona" and "hidden_facts" in schema["properties"]
    r = run("schema", "rubric")
    assert r.returncode == 0 and json.loads(r.stdout)["title"] == "Rubric"
    r = run("schema", "nonsense")
    assert r.returncode == 1 and "unknown kind" in r.stderr
