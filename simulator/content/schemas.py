"""JSON Schemas of the content files, committed under simulator/content/schemas/ for editors.

Shipped YAML starts with
``# yaml-language-server: $schema=../simulator/content/schemas/<kind>.schema.json``
so VS Code (and any yaml-language-server editor) completes keys and flags typos while typing.
A test fails when a committed schema is stale: run ``counselsim schema persona > ...`` to refresh.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from simulator.content.persona import Persona
from simulator.content.rubric import Rubric

SCHEMA_DIR = Path(__file__).parent / "schemas"
MODELS: dict[str, type[BaseModel]] = {"persona": Persona, "rubric": Rubric}


def schema_for(kind: str) -> dict[str, Any]:
    model = MODELS[kind]
    schema = model.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def schema_path(kind: str) -> Path:
    return SCHEMA_DIR / f"{kind}.schema.json"
