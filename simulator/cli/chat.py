"""``counselsim chat``: a practice session in the terminal, interactive or from a file of turns.

Non-interactive when ``--input FILE`` is given or stdin is not a terminal: one trainee turn per
line (blank lines skipped), which is how tests, demos and CI hold whole sessions.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable
from typing import Any, TextIO

import typer

from simulator.service.feedback import coach_card, risk_warnings
from simulator.service.practice import Practice, TurnEvent, TurnRejected
from simulator.service.transcript import session_summary


def _lines(source: TextIO) -> Iterable[str]:
    for line in source:
        if line.strip():
            yield line.rstrip("\n")


async def run_chat(practice: Practice, *, trainee: str, persona_id: str, rubric_id: str | None,
                   mode: str, turns: Iterable[str] | None, quiet: bool, end: bool = True
                   ) -> dict[str, Any]:
    """Hold one session; returns the JSON summary (turns, client acts, states, codes)."""
    session_id = practice.start(trainee, persona_id, rubric_id, mode)  # type: ignore[arg-type]
    opening = practice.store.current_turns(session_id)[-1].text
    persona = practice.library.persona(persona_id)
    say = (lambda *_a, **_k: None) if quiet else typer.echo
    session = practice.store.get_session(session_id)
    say(f"session {session_id} with {persona.identity.name} ({persona.title}); "
        f"client model: {practice.settings.client_model if practice.client_model else 'offline'}")
    offered = ", ".join(persona.rubrics) if persona.rubrics else "any rubric"
    say(f"scored with {practice.library.rubric(session.rubric_id).title} "
        f"(this client offers: {offered}; choose with --rubric); mode: {session.mode}")
    say(f"\n{persona.identity.name}: {opening}")
    interactive = turns is None
    pending = iter(turns) if turns is not None else None
    errors = 0
    while True:
        if interactive:
            try:
                text = input("\nyou> ")
            except EOFError:
                break
            if text.strip() in {"/end", "/quit"}:
                break
        else:
            assert pending is not None
            line = next(pending, None)
            if line is None:
                break
            text = line
        try:
            events = practice.turn(session_id, trainee, text)
            await _show(events, persona.identity.name, say, quiet)
            if session.mode == "coach":
                say(coach_card(practice.store, session_id))
        except TurnRejected as exc:
            typer.echo(f"  ({exc})", err=True)
            errors += 1
    if end:
        # before waiting, so the session-level grade (LLM grader) runs and is waited for too
        await practice.end_async(session_id, trainee)
    await practice.wait_for_grades()
    warnings = risk_warnings(practice.store, session_id)
    for line in warnings:
        typer.echo(line, err=quiet)
    return session_summary(practice.store, session_id) | {"rejected_turns": errors,
                                                          "risk_warnings": warnings}


async def _show(events: Any, name: str, say: Any, quiet: bool) -> None:
    started = False
    async for ev in events:
        if ev.kind == "token":
            if not started and not quiet:
                sys.stdout.write(f"\n{name}: ")
                started = True
            if not quiet:
                sys.stdout.write(ev.text)
                sys.stdout.flush()
        elif ev.kind == "client":
            if not quiet:
                sys.stdout.write("\n")
                if ev.data.get("revised"):  # the model's draft failed the client's check
                    sys.stdout.write(f"{name} (revised): {ev.text}\n")
            say(f"  [client act: {ev.data.get('act')}; your turn coded "
                f"{', '.join(ev.data.get('codes', {}).values())}]")
        elif ev.kind == "error":
            typer.echo(f"\n  ! {ev.text}", err=True)


def chat_command(practice: Practice, *, trainee: str, persona_id: str, rubric_id: str | None,
                 mode: str, input_path: str | None, as_json: bool) -> dict[str, Any]:
    turns: Iterable[str] | None = None
    source: TextIO | None = None
    if input_path:
        source = open(input_path, encoding="utf-8")  # noqa: SIM115 - closed below
        turns = _lines(source)
    elif not sys.stdin.isatty():
        turns = _lines(sys.stdin)
    try:
        return asyncio.run(run_chat(practice, trainee=trainee, persona_id=persona_id,
                                    rubric_id=rubric_id, mode=mode, turns=turns, quiet=as_json))
    finally:
        if source is not None:
            source.close()


__all__ = ["TurnEvent", "chat_command", "run_chat"]
