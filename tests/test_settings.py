"""Settings: defaults < counselsim.toml < COUNSELSIM_* < flags; typos and bad values refused in
one line that names the key, its source and the closest valid name."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.errors import InvalidInput
from simulator.settings import SettingsError, load_settings


def test_each_source_overrides_the_one_before(tmp_path: Path, monkeypatch) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text('port = 8000\nhost = "0.0.0.0"\ngrader_model = "offline"\n')
    monkeypatch.setenv("COUNSELSIM_SETTINGS", str(toml))
    assert load_settings().port == 8000
    monkeypatch.setenv("COUNSELSIM_PORT", "8100")
    settings = load_settings()
    assert (settings.port, settings.host) == (8100, "0.0.0.0")
    assert load_settings(port=8200).port == 8200
    assert load_settings(port=None).port == 8100  # an unset flag changes nothing
    assert settings.with_flags(db=tmp_path / "x.db").db == tmp_path / "x.db"


def test_a_typo_in_the_file_is_refused_with_its_line_and_the_closest_key(tmp_path: Path,
                                                                        monkeypatch) -> None:
    toml = tmp_path / "counselsim.toml"
    toml.write_text('client_model = "offline"\n\ngrader_modle = "openai:gpt-4o-mini"\n')
    monkeypatch.setenv("COUNSELSIM_SETTINGS", str(toml))
    with pytest.raises(SettingsError) as exc:
        load_settings()
    assert str(exc.value) == (f"{toml}:3: unknown setting 'grader_modle' "
                              "(did you mean 'grader_model'?)")
    assert isinstance(exc.value, InvalidInput)


def test_a_typo_in_the_environment_is_refused(monkeypatch) -> None:
    monkeypatch.setenv("COUNSELSIM_GRADER_MODLE", "openai:gpt-4o-mini")
    with pytest.raises(SettingsError, match="COUNSELSIM_GRADER_MODLE is not a setting "
                                            r"\(did you mean 'COUNSELSIM_GRADER_MODEL'\?\)"):
        load_settings()


def test_a_bad_value_is_one_line_naming_its_source(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("COUNSELSIM_PORT", "abc")
    with pytest.raises(SettingsError, match=r"^COUNSELSIM_PORT='abc': .*integer.*'port'"):
        load_settings()
    monkeypatch.delenv("COUNSELSIM_PORT")
    bad = tmp_path / "bad.toml"
    bad.write_text("port = [1")
    monkeypatch.setenv("COUNSELSIM_SETTINGS", str(bad))
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings()


def test_the_cli_prints_one_line_and_an_exit_code_never_a_traceback(cli, monkeypatch) -> None:
    result = cli("sessions", "list", env={"COUNSELSIM_PORT": "abc"})
    assert result.exit_code == InvalidInput.exit_code
    assert result.stderr.strip().splitlines() == [
        "error: COUNSELSIM_PORT='abc': input should be a valid integer, unable to parse string "
        "as an integer (setting 'port')"]


def test_a_flag_reaches_the_command(tmp_path: Path, cli) -> None:
    db = tmp_path / "flag.db"
    result = cli("sessions", "list", "--db", str(db), "--json",
                 env={"COUNSELSIM_DB": str(tmp_path / "env.db")})
    assert result.exit_code == 0, result.output
    assert db.exists() and not (tmp_path / "env.db").exists()
