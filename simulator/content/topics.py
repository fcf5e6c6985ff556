"""The shared library of common topics (``common_topics.yaml`` beside this module).

Why content, not client code: a topic's id, title and example questions are authored text that
personas refer to (``answers[].topic``, ``unlock.about``), that ``counselsim validate`` checks
personas against (a warning for each common topic a persona cannot answer), and that the client
engine matches trainee turns to by meaning. Editing the YAML changes all three at once.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from ruamel.yaml import YAML

COMMON_TOPICS_FILE = Path(__file__).resolve().parent / "common_topics.yaml"


class Topic(BaseModel):
    """Something a trainee may ask about (``kind: topic``) or a CBT technique they may use."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    title: str
    kind: Literal["topic", "technique"] = "topic"
    risk: bool = False
    examples: list[str] = Field(min_length=1)
    cues: list[str] = []


class TopicLibrary(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    topics: list[Topic] = Field(min_length=1)


@cache
def common_topics() -> tuple[Topic, ...]:
    """The shipped common topics, in file order (read once per process)."""
    data = YAML(typ="safe").load(COMMON_TOPICS_FILE.read_text(encoding="utf-8"))
    return tuple(TopicLibrary.model_validate(data).topics)


def common_topic_ids(kind: str | None = "topic") -> list[str]:
    """Ids of the common topics of ``kind`` (``None``: topics and techniques)."""
    return [t.id for t in common_topics() if kind is None or t.kind == kind]


def risk_topic_ids() -> frozenset[str]:
    return frozenset(t.id for t in common_topics() if t.risk)
