"""``counselsim bench client``: does the offline client answer what the trainee said?

Each persona holds one session with the probe set (``client_probes.yaml``: the common probes,
then the persona's own, then a closing), through the real engine step: the offline coder, the
client's understanding, state, planner and authored lines. Each reply is judged against what the
probe asked for:

* **on topic**: an answer, a minimising answer or a disclosure about the topic asked (a CBT
  technique answered as ``cbt``); for an act probe, the act that fits (advice -> "yes, but" or a
  rule's shut-down, confrontation -> a defensive reply, a reflection -> a reply that stays with the
  client's story, closing -> closing);
* **refusal**: an explicit in-character refusal (``deflect`` or a rule's ``shut_down``);
* **non sequitur**: anything else (another topic, a generic line, a short "Yes." to a risk
  question);
* **early closing**: a ``closing`` reply to a probe that is not a closing;
* **leak**: a reply that names a hidden fact still locked at that point (one of its keywords, or
  its disclosure text).

The judgement reads the plan (act, topic) and the realised line; the lines themselves are the
persona's authored answers for that topic and stance, so "on topic" is as good as the authoring.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator
from ruamel.yaml import YAML

from simulator.client import engine
from simulator.coder.labels import Utterance
from simulator.content.persona import Persona, mentions
from simulator.service.selfplay import CodeFn

PROBES_FILE = Path(__file__).resolve().parent / "client_probes.yaml"
ProbeAct = Literal["reflect", "advice", "confrontation", "greeting", "closing", "permission"]
Verdict = Literal["on_topic", "refusal", "non_sequitur"]

ACT_OK: dict[str, set[str]] = {
    "reflect": {"elaborate", "answer", "disclose", "change_talk", "ambivalence", "sustain_talk",
                "cbt"},
    "advice": {"react_to_advice", "shut_down"},
    "confrontation": {"react_to_confrontation", "shut_down"},
    "greeting": {"opening", "answer"},
    "closing": {"closing"},
    "permission": {"grant_permission"},
}
"""For an act probe: the client acts that fit it."""
REFUSALS = {"deflect", "shut_down"}
TOPIC_ACTS = {"answer", "minimise", "cbt"}


class Probe(BaseModel):
    say: str
    topic: str | None = None
    act: ProbeAct | None = None

    @model_validator(mode="after")
    def _one(self) -> Probe:
        if (self.topic is None) == (self.act is None):
            raise ValueError(f"probe {self.say!r}: give exactly one of topic, act")
        return self


class ProbeSet(BaseModel):
    common: list[Probe]
    closing: list[Probe]
    personas: dict[str, list[Probe]] = {}

    def for_persona(self, persona_id: str) -> list[Probe]:
        return [*self.common, *self.personas.get(persona_id, []), *self.closing]


class ProbeResult(BaseModel):
    say: str
    expected: str
    act: str
    topic: str | None
    heard_topic: str | None
    reply: str
    verdict: Verdict
    early_closing: bool
    leaked: list[str]


class PersonaFigures(BaseModel):
    persona: str
    probes: int
    on_topic: int
    refusals: int
    non_sequiturs: int
    early_closings: int
    leaks: int
    results: list[ProbeResult] = Field(default=[], exclude=False)


class ClientBench(BaseModel):
    bench: str = "client"
    probes: int
    on_topic_or_refusal_rate: float
    on_topic_rate: float
    non_sequitur_rate: float
    early_closings: int
    leaks: int
    personas: list[PersonaFigures]


def load_probes(path: Path = PROBES_FILE) -> ProbeSet:
    return ProbeSet.model_validate(YAML(typ="safe").load(path.read_text(encoding="utf-8")))


def leaked_facts(persona: Persona, unlocked: list[str], reply: str) -> list[str]:
    """Hidden facts still locked that ``reply`` names (a keyword, or its disclosure text)."""
    out = []
    for f in persona.hidden_facts:
        if f.id in unlocked:
            continue
        texts = [persona.fill(t).lower() for t in f.disclosure]
        if any(mentions(reply, k) for k in f.keywords) or any(t in reply.lower() for t in texts):
            out.append(f.id)
    return out


def judge(persona: Persona, probe: Probe, step: engine.Step) -> Verdict:
    plan = step.plan
    if probe.act is not None:
        if plan.act in ACT_OK[probe.act]:
            return "on_topic"
        return "refusal" if plan.act in REFUSALS else "non_sequitur"
    if plan.act in TOPIC_ACTS and plan.topic == probe.topic:
        return "on_topic"
    if plan.act == "disclose" and plan.fact_id is not None \
            and probe.topic in persona.fact(plan.fact_id).unlock.about:
        return "on_topic"
    return "refusal" if plan.act in REFUSALS else "non_sequitur"


def run_persona(persona: Persona, probes: list[Probe], code: CodeFn,
                seed: int = 0) -> PersonaFigures:
    """One session of ``probes`` with ``persona``'s offline client."""
    used: set[str] = set()
    step = engine.opening(persona)
    opening = engine.say_offline(persona, step, used, random.Random(f"{seed}:0"))
    state = engine.after(step)
    history = [Utterance(speaker="client", text=opening)]
    results = []
    for i, probe in enumerate(probes, start=1):
        codes = code(probe.say, history)
        rng = random.Random(f"{seed}:{i}")
        step = engine.respond(persona, state, codes, probe.say, rng, history)
        reply = engine.say_offline(persona, step, used, rng)
        leaked = leaked_facts(persona, step.state.unlocked, reply)
        results.append(ProbeResult(
            say=probe.say, expected=probe.topic or f"act:{probe.act}", act=step.plan.act,
            topic=step.plan.topic, heard_topic=step.heard.topic if step.heard else None,
            reply=reply, verdict=judge(persona, probe, step),
            early_closing=step.plan.act == "closing" and probe.act != "closing",
            leaked=leaked))
        state = engine.after(step)
        history += [Utterance(speaker="counselor", text=probe.say),
                    Utterance(speaker="client", text=reply)]
    return PersonaFigures(
        persona=persona.id, probes=len(results),
        on_topic=sum(r.verdict == "on_topic" for r in results),
        refusals=sum(r.verdict == "refusal" for r in results),
        non_sequiturs=sum(r.verdict == "non_sequitur" for r in results),
        early_closings=sum(r.early_closing for r in results),
        leaks=sum(len(r.leaked) for r in results), results=results)


def run_client_bench(personas: list[Persona], code: CodeFn, probes: ProbeSet | None = None,
                     seed: int = 0) -> ClientBench:
    probes = probes or load_probes()
    figures = [run_persona(p, probes.for_persona(p.id), code, seed) for p in personas]
    n = sum(f.probes for f in figures)
    on = sum(f.on_topic for f in figures)
    ref = sum(f.refusals for f in figures)
    return ClientBench(
        probes=n, on_topic_or_refusal_rate=round((on + ref) / n, 4),
        on_topic_rate=round(on / n, 4),
        non_sequitur_rate=round(sum(f.non_sequiturs for f in figures) / n, 4),
        early_closings=sum(f.early_closings for f in figures),
        leaks=sum(f.leaks for f in figures), personas=figures)


def client_bench_command(settings: Any, persona_ids: list[str] | None = None,
                         probes_path: Path | None = None, seed: int = 0,
                         ) -> tuple[list[str], dict[str, Any]]:
    """What ``counselsim bench client`` does: (terminal lines, the JSON object)."""
    from simulator.content.library import load_library
    from simulator.service.selfplay import offline_code_fn

    library = load_library([settings.personas], [settings.rubrics])
    ids = persona_ids or sorted(library.personas)
    personas = [library.persona(i) for i in ids]
    result = run_client_bench(personas, offline_code_fn(settings),
                              load_probes(probes_path or PROBES_FILE), seed)
    lines = []
    for f in result.personas:
        lines.append(f"{f.persona}: {f.on_topic}/{f.probes} on topic, {f.refusals} refusals, "
                     f"{f.non_sequiturs} non sequiturs, {f.early_closings} early closings, "
                     f"{f.leaks} leaks")
        lines += [f"  - {r.verdict}: {r.say!r} (expected {r.expected}; {r.act}"
                  f"{':' + r.topic if r.topic else ''}, heard {r.heard_topic}) -> {r.reply!r}"
                  for r in f.results if r.verdict != "on_topic" or r.leaked or r.early_closing]
    lines.append(f"all: {result.on_topic_or_refusal_rate:.1%} on topic or refusal "
                 f"({result.on_topic_rate:.1%} on topic), {result.non_sequitur_rate:.1%} non "
                 f"sequiturs, {result.early_closings} early closings, {result.leaks} leaks, "
                 f"{result.probes} probes")
    data = result.model_dump(mode="json")
    for f in data["personas"]:
        f["failures"] = [r for r in f.pop("results") if r["verdict"] != "on_topic"
                         or r["leaked"] or r["early_closing"]]
    return lines, data
