"""Settings, in rising priority: defaults, a settings file, ``COUNSELSIM_*`` environment, flags.

Keys for providers are never settings: they come from the provider's own environment variables
(OPENAI_API_KEY, ANTHROPIC_API_KEY) and are never written to the database or logs.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel

ROOT = Path(__file__).resolve().parent.parent
"""The checkout (or install) root holding personas/, rubrics/, feedback/."""

ENV_PREFIX = "COUNSELSIM_"


class Settings(BaseModel):
    db: Path = ROOT / "sessions" / "counselsim.db"
    personas: Path = ROOT / "personas"
    rubrics: Path = ROOT / "rubrics"
    feedback: Path = ROOT / "feedback"
    client_model: str = "offline"
    grader_model: str = "offline"
    coder: str = "offline"
    rubric: str = "miti-4.2.1"
    """The rubric used when a session does not name one."""
    engine_rubric: str = "miti-4.2.1"
    """The rubric whose codes drive the client's state (the engine's skill vocabulary)."""
    host: str = "127.0.0.1"
    port: int = 7860
    request_timeout_s: float = 60.0
    max_retries: int = 3
    requests_per_second: float = 5.0


def settings_file() -> Path | None:
    explicit = os.environ.get(ENV_PREFIX + "SETTINGS")
    if explicit:
        return Path(explicit)
    default = ROOT / "counselsim.toml"
    return default if default.exists() else None


def load_settings(**overrides: Any) -> Settings:
    """Build settings from every source; ``overrides`` are command-line flags (None means unset)."""
    values: dict[str, Any] = {}
    path = settings_file()
    if path is not None:
        with path.open("rb") as f:
            values.update(tomllib.load(f))
    for name in Settings.model_fields:
        env = os.environ.get(ENV_PREFIX + name.upper())
        if env:
            values[name] = env
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings.model_validate(values)
