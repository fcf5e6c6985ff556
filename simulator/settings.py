"""Settings, built once per process and passed down: defaults < ``counselsim.toml`` <
``COUNSELSIM_*`` environment < command-line flags.

Only the entry points (the CLI verbs, ``counselsim serve``, the benchmarks) call
``load_settings``; everything below them takes a ``Settings`` argument, so a flag reaches every
part of the program and nothing re-reads the environment behind a caller's back.

A typo must not silently change behaviour (``grader_modle = ...`` leaving the grader offline), so an
unknown key in the file or an unknown ``COUNSELSIM_*`` variable is refused with one line naming it
and the closest valid name; a bad value is one line naming the setting, its source and what it
accepts. Both are ``SettingsError`` (an ``InvalidInput``), which the CLI prints without a
traceback.

Keys for providers are never settings: they come from the provider's own environment variables
(OPENAI_API_KEY, ANTHROPIC_API_KEY) and are never written to the database or logs.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from simulator.errors import InvalidInput

PACKAGE = Path(__file__).resolve().parent
ROOT = PACKAGE.parent
"""The checkout root (personas/, rubrics/, feedback/ beside ``simulator/``) or site-packages."""

ENV_PREFIX = "COUNSELSIM_"
SETTINGS_ENV = ENV_PREFIX + "SETTINGS"
"""Names the settings file; not itself a setting."""


def is_checkout() -> bool:
    """True when running from a source checkout (``pip install -e .``), not an installed wheel."""
    return (ROOT / "pyproject.toml").is_file() and (ROOT / "personas").is_dir()


def shipped_content() -> Path:
    """Where the shipped personas/, rubrics/ and feedback/ are: the checkout, or the copy the
    wheel carries inside the package (``simulator/_content``, see pyproject's force-include)."""
    return ROOT if is_checkout() else PACKAGE / "_content"


def data_home() -> Path:
    """Where an installed copy keeps its database: never inside site-packages, which an upgrade
    replaces. A checkout keeps the git-ignored ``sessions/`` beside the code."""
    if is_checkout():
        return ROOT / "sessions"
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "counselsim"


class ModelSettings(BaseModel):
    """Per-model settings, keyed by the model string in ``[models."<spec>"]`` of counselsim.toml.

    Each value left unset falls back to the global setting of the same name, or to a default
    chosen from the provider (``simulator.llm.limits.limits_for``).
    """

    context_window: int | None = Field(None, ge=256)
    """Tokens the model can hold (prompt + reply); the client's history is budgeted to fit."""
    reply_max_tokens: int | None = Field(None, ge=8)
    """Hard ceiling on a client reply in tokens, whatever the persona's verbosity asks for."""
    max_concurrency: int | None = Field(None, ge=1)
    """Requests this model's endpoint serves at once (default 1 on a loopback server)."""
    structured_output: Literal["json_schema", "function_calling", "json_mode"] | None = None
    """How the grader asks this model for JSON (default: the provider's strongest means)."""
    first_token_timeout_s: float | None = Field(None, gt=0)
    chunk_timeout_s: float | None = Field(None, gt=0)
    reply_timeout_s: float | None = Field(None, gt=0)


class SettingsError(InvalidInput):
    """A setting is unknown or has a bad value; the message is one line saying where."""


def _db_target(value: Any) -> Any:
    """A database URL stays text (``Path`` would fold its ``//``); anything else is a path."""
    if isinstance(value, str) and "://" in value:
        return value
    return Path(value) if isinstance(value, str) else value


class Settings(BaseSettings):
    """Every setting of the program, with its default. See README "Settings"."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid",
                                      validate_default=True)

    db: Annotated[Path | str, BeforeValidator(_db_target)] = data_home() / "counselsim.db"
    """A file path or ``sqlite:///path`` (SQLite), or ``postgresql://...`` (several replicas)."""
    personas: Path = shipped_content() / "personas"
    rubrics: Path = shipped_content() / "rubrics"
    feedback: Path = shipped_content() / "feedback"
    content: Path | None = None
    """An institution's own content folder, holding ``personas/`` and ``rubrics/`` (either may be
    missing): loaded beside the shipped library, and where the authoring page saves."""
    client_model: str = "offline"
    grader_model: str = "offline"
    coder: str = "offline"
    coder_threads: int = Field(2, ge=1, le=16)
    """Threads the offline coder's transformer may use for one turn. Two take about a quarter
    off a turn's coding on an otherwise idle second core, and coding is on the way to the
    client's first token; the threads do not spin, so a busy machine loses nothing."""
    rubric: str = "miti-4.2.1"
    """The rubric used when a session does not name one."""
    engine_rubric: str = "miti-4.2.1"
    """The rubric whose codes drive the client's state (the engine's skill vocabulary)."""
    host: str = "127.0.0.1"
    port: int = 7860
    request_timeout_s: float = 60.0
    max_retries: int = 3
    requests_per_second: float = 5.0
    context_window: int | None = Field(None, ge=256)
    """Default context window for every model (None: by provider; see llm.limits)."""
    reply_max_tokens: int = Field(300, ge=8)
    """Hard ceiling on any client reply, in tokens."""
    connect_timeout_s: float = Field(5.0, gt=0)
    first_token_timeout_s: float = Field(25.0, gt=0)
    """From sending the request to the reply's first text (a hung server is reported then)."""
    chunk_timeout_s: float = Field(15.0, gt=0)
    """Longest silence between two pieces of a streamed reply."""
    reply_timeout_s: float = Field(90.0, gt=0)
    """A whole client reply, every attempt included."""
    availability_interval_s: float = Field(15.0, gt=0)
    """How often the web app re-checks that the configured models answer."""
    models: dict[str, ModelSettings] = {}
    """Per-model settings, keyed by model string (``[models."openai-compatible:m@url"]``)."""

    sign_in_hours: float = Field(12.0, gt=0)
    """A web sign-in ends this long after it began, however active."""
    sign_in_idle_minutes: float = Field(120.0, gt=0)
    """A web sign-in unused for this long ends."""
    login_hash_workers: int = Field(1, ge=1, le=8)
    """Threads that check passwords (argon2), apart from the ones turns run on."""
    login_queue: int = Field(256, ge=1)
    """Password checks allowed to wait for those threads; more are answered "busy" at once.
    Sized for a class signing in together (200 people in 10 s queue about 10 s on one thread);
    a flood of unknown names does not queue here (it waits without hashing), so this bounds
    memory, not the flood."""
    secure_cookies: bool | None = None
    """Mark the sign-in cookie Secure: None decides per request (HTTPS, or a proxy saying so)."""
    max_request_kb: int = Field(1024, ge=16)
    """Bodies larger than this are refused (413) before anything reads them."""

    def model_settings(self, spec: str) -> ModelSettings:
        """The per-model settings of ``spec`` (empty when none are configured)."""
        return self.models.get(spec.strip(), ModelSettings())

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Flags (init) over environment over the settings file; no .env, no secrets folder."""
        path = settings_file()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    def persona_dirs(self) -> list[Path]:
        """The shipped (or configured) persona folder, then the institution's own."""
        return [self.personas, *self._own("personas")]

    def rubric_dirs(self) -> list[Path]:
        return [self.rubrics, *self._own("rubrics")]

    def authoring_dir(self, kind: str) -> Path:
        """Where the authoring page saves a persona or rubric: the institution's folder when one
        is configured (the shipped library stays untouched), else the configured folder."""
        if self.content is not None:
            return self.content / f"{kind}s"
        return self.personas if kind == "persona" else self.rubrics

    def _own(self, kind: str) -> list[Path]:
        return [self.content / kind] if self.content is not None else []

    def with_flags(self, **flags: Any) -> Settings:
        """These settings with command-line flags applied (None means the flag was not given),
        validated like every other source."""
        given = {k: v for k, v in flags.items() if v is not None}
        if not given:
            return self
        return _build(lambda: Settings(**{**self.model_dump(exclude_unset=False), **given}),
                      given)


FIELDS = tuple(Settings.model_fields)


def defaults() -> Settings:
    """The built-in defaults alone (no file, no environment): what a library function uses when
    its caller passed no settings. Entry points call ``load_settings`` instead."""
    return Settings.model_construct()


def settings_file() -> Path | None:
    """``COUNSELSIM_SETTINGS`` if set, else ``counselsim.toml`` in the working directory, else the
    one in a checkout's root."""
    explicit = os.environ.get(SETTINGS_ENV)
    if explicit:
        return Path(explicit)
    for candidate in (Path("counselsim.toml"), ROOT / "counselsim.toml"):
        if candidate.is_file():
            return candidate
    return None


def _closest(name: str, options: list[str]) -> str:
    match = difflib.get_close_matches(name, options, n=1, cutoff=0.5)
    return f" (did you mean {match[0]!r}?)" if match else f" (settings: {', '.join(options)})"


def _line_of(text: str, key: str) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        if re.match(rf"\s*{re.escape(key)}\s*=", line):
            return number
    return None


def _check_file(path: Path) -> dict[str, Any]:
    """The file's values, after refusing an unreadable file or an unknown key."""
    try:
        text = path.read_text(encoding="utf-8")
        values = tomllib.loads(text)
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read the settings file ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML: {exc}") from None
    for key in values:
        if key not in FIELDS:
            line = _line_of(text, key)
            where = f"{path}:{line}" if line else str(path)
            raise SettingsError(f"{where}: unknown setting {key!r}{_closest(key, list(FIELDS))}")
    return values


def _check_env() -> dict[str, str]:
    found = {k[len(ENV_PREFIX):].lower(): v for k, v in os.environ.items()
             if k.startswith(ENV_PREFIX) and k != SETTINGS_ENV}
    for key in found:
        if key not in FIELDS:
            names = [ENV_PREFIX + f.upper() for f in FIELDS]
            raise SettingsError(f"environment: {ENV_PREFIX + key.upper()} is not a setting"
                                f"{_closest(ENV_PREFIX + key.upper(), names)}")
    return found


def _build(make: Any, flags: dict[str, Any], env: dict[str, str] | None = None,
           file: Path | None = None) -> Settings:
    """Call ``make``; turn a validation error into one line naming the setting and its source."""
    try:
        settings: Settings = make()
        return settings
    except ValidationError as exc:
        error = exc.errors()[0]
        key = str(error["loc"][0]) if error["loc"] else "?"
        if key in flags:
            source = f"--{key.replace('_', '-')} {flags[key]!r}"
        elif env and key in env:
            source = f"{ENV_PREFIX}{key.upper()}={env[key]!r}"
        elif file is not None:
            source = f"{file}: {key}"
        else:
            source = key
        raise SettingsError(f"{source}: {error['msg'].lower()} "
                            f"(setting {key!r})") from None


def load_settings(**flags: Any) -> Settings:
    """Build settings from every source; ``flags`` are command-line flags (None means unset).

    Call it once, at an entry point, and pass the result down.
    """
    path = settings_file()
    if path is not None:
        _check_file(path)
    env = _check_env()
    given = {k: v for k, v in flags.items() if v is not None}
    return _build(lambda: Settings(**given), given, env, path)


__all__ = ["FIELDS", "ROOT", "Settings", "SettingsError", "data_home", "defaults", "is_checkout",
           "load_settings", "settings_file", "shipped_content"]
