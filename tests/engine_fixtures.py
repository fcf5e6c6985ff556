"""Shared helpers for the client-engine tests: the engine test persona and the shipped library."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from simulator.content.library import load_library
from simulator.content.loader import load_model_file
from simulator.content.persona import Persona
from simulator.settings import ROOT

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "engine"


@cache
def dana() -> Persona:
    """test-dana: one hidden fact per unlock kind (rapport, skills, topics, all three). Frozen."""
    return load_model_file(Persona, FIXTURES / "test-dana.yaml")


def with_changes(persona: Persona, **changes: object) -> Persona:
    """A copy of ``persona`` with top-level fields replaced (and re-validated)."""
    return Persona.model_validate({**persona.model_dump(), **changes})


@cache
def _shipped() -> tuple[Persona, ...]:
    """Every persona in the shipped personas/ folder (loaded with the shipped rubrics)."""
    lib = load_library([ROOT / "personas"], [ROOT / "rubrics"])
    return tuple(lib.personas[k] for k in sorted(lib.personas))


def shipped_personas() -> list[Persona]:
    return list(_shipped())


def all_personas() -> list[Persona]:
    """The engine test persona plus every shipped one."""
    return [dana(), *shipped_personas()]
