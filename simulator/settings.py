"""Settings, in rising priority: defaults, a settings file, ``COUNSELSIM_*`` environment, flags.

Keys for providers are never settings: they come from the provider's own environment variables
(OPENAI_API_KEY, ANTHROPIC_API_KEY) and are never written to the database or logs.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

ROOT = Path(__file__).resolve().parent.parent
"""The checkout (or install) root holding personas/, rubrics/, feedback/."""

ENV_PREFIX = "COUNSELSIM_"


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

    def model_settings(self, spec: str) -> ModelSettings:
        """The per-model settings of ``spec`` (empty when none are configured)."""
        return self.models.get(spec.strip(), ModelSettings())


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
            values[name] = json.loads(env) if name == "models" else env  # models: a JSON object
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings.model_validate(values)
