"""The configured client and grader models as people see them: what the header says about each
(live or offline, and why) and ``counselsim doctor``'s checks of what to fix. The CLI and the web
app ask here rather than reaching into ``simulator.llm`` themselves."""

from __future__ import annotations

from simulator.llm.doctor import Check, run_doctor
from simulator.llm.providers import ModelInfo, describe_models
from simulator.settings import Settings


async def check_models(settings: Settings) -> list[Check]:
    """Reachable, model listed, a short completion, streaming, structured output: one check
    each, for the client and the grader model."""
    return await run_doctor(settings)


def model_status(settings: Settings, *, probe: bool = True) -> list[ModelInfo]:
    return describe_models(settings, probe=probe)


__all__ = ["check_models", "model_status"]
