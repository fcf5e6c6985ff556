"""Ask a model for JSON in a given schema by the strongest means its provider offers.

* OpenAI: ``json_schema`` (the server constrains the answer to the schema);
* Anthropic: ``function_calling`` (tool use with the schema as the tool's input);
* an OpenAI-compatible server: ``json_mode`` with the schema twice: in the prompt, so any model
  knows the keys, and as ``response_format={"type": "json_object", "schema": ...}``, which
  llama-cpp-python turns into a grammar (other servers ignore the extra key). vLLM, Ollama and
  llama.cpp's own server also take ``json_schema``: set ``structured_output = "json_schema"`` for
  the model in counselsim.toml. (llama-cpp-python answers ``json_schema`` with HTTP 500.)

The answer comes back as plain data (a dict, or the text when it is not JSON) and is validated by
the caller against its pydantic schema, so a wrong or missing key is reported by name, never as
"could not be parsed".
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

from langchain_core.messages import BaseMessage, SystemMessage
from langchain_core.runnables import Runnable, RunnableLambda
from pydantic import BaseModel

from simulator.llm.providers import StructuredMethod, structured_output_method

Method = StructuredMethod
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.S)


def default_method(spec: str) -> Method:
    """The provider's strongest means (``providers.structured_output_method``)."""
    return structured_output_method(spec)


def method_for(spec: str, override: str | None = None) -> Method:
    """The configured method for ``spec`` (per-model ``structured_output``) or the default."""
    if override in ("json_schema", "function_calling", "json_mode"):
        return override  # type: ignore[return-value]
    return default_method(spec)


def json_schema_of(schema: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schema with the keys the model must use (aliases: the rubric's item ids); a fresh
    copy each time, since a provider's adapter may edit it."""
    return json.loads(_schema_json(schema))


@lru_cache(maxsize=64)
def _schema_json(schema: type[BaseModel]) -> str:
    """Computed once per schema class (``grade.turn_output_schema`` reuses its classes)."""
    return json.dumps(schema.model_json_schema(by_alias=True), ensure_ascii=False,
                      separators=(",", ":"))


def schema_instruction(schema: type[BaseModel]) -> str:
    return ("Answer with one JSON object, nothing else, that follows this JSON Schema exactly "
            "(use these keys, all of them):\n" + _schema_json(schema))


def with_schema_in_prompt(messages: list[BaseMessage], schema: type[BaseModel]
                          ) -> list[BaseMessage]:
    """The schema appended to the (first) system message; one added when there is none."""
    text = schema_instruction(schema)
    out = list(messages)
    for i, m in enumerate(out):
        if isinstance(m, SystemMessage) and isinstance(m.content, str):
            out[i] = SystemMessage(m.content.rstrip() + "\n\n" + text)
            return out
    return [SystemMessage(text), *out]


def parse_json_text(text: str) -> Any:
    """The JSON in a model's text answer (a ```json fence allowed); the text itself if none."""
    m = _FENCE.match(text)
    body = m.group(1) if m else text.strip()
    try:
        return json.loads(body)
    except ValueError:
        start, end = body.find("{"), body.rfind("}")
        if 0 <= start < end:
            try:
                return json.loads(body[start:end + 1])
            except ValueError:
                pass
    return text


def structured_runnable(model: Any, schema: type[BaseModel], spec: str,
                        method: str | None = None) -> Runnable[Any, Any]:
    """A runnable: messages in, the answer as data out (dict, or text that is not JSON).

    Validation against ``schema`` is the caller's, so its errors name the fields.
    """
    chosen = method_for(spec, method)
    if chosen == "json_mode":
        bound = model.bind(response_format={"type": "json_object",
                                            "schema": json_schema_of(schema)})

        async def ask(messages: list[BaseMessage]) -> Any:
            answer = await bound.ainvoke(with_schema_in_prompt(list(messages), schema))
            content = answer.content if isinstance(answer.content, str) else ""
            return parse_json_text(content)

        def ask_sync(messages: list[BaseMessage]) -> Any:
            answer = bound.invoke(with_schema_in_prompt(list(messages), schema))
            content = answer.content if isinstance(answer.content, str) else ""
            return parse_json_text(content)

        return RunnableLambda(ask_sync, afunc=ask)
    # a dict schema: the provider's parser returns plain data, validated by the caller
    runnable: Runnable[Any, Any] = model.with_structured_output(
        json_schema_of(schema), method=chosen, include_raw=True)
    return runnable
