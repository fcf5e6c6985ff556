"""What every tab shares: the Practice (library, store, coder, models), settings, header info.

Nothing user-specific lives here: Gradio shares module globals and object attributes between all
users, so per-user data is always read from the store by the name Gradio authenticated.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from html import escape
from typing import Any

from simulator.content.library import Library
from simulator.content.persona import Persona
from simulator.service.practice import Practice
from simulator.settings import Settings
from simulator.web.live_library import LiveLibrary, folder_signature

log = logging.getLogger(__name__)


@dataclass
class WebContext:
    practice: Practice
    models: list[Any] = field(default_factory=list)
    """``providers.ModelInfo`` for the client and the grader (what the header shows)."""
    _live: LiveLibrary | None = None
    sign_ins: Any = None
    """``service.sign_in.SignIns`` of this app (set by ``build_app``): the Users tab tells it
    when an account's sign-ins were ended, so its short cache forgets them at once."""

    def __post_init__(self) -> None:
        s = self.practice.settings
        self._live = LiveLibrary(s.persona_dirs(), s.rubric_dirs(), initial=self.practice.library,
                                 on_reload=self._swap)

    def live_models(self) -> list[Any]:
        """The header's models from the live availability checks (``models`` when none run)."""
        availability = self.practice.availability
        if availability is None:
            return self.models
        s = self.settings
        return [availability.describe(s.client_model, "client"),
                availability.describe(s.grader_model, "grader")]

    @property
    def settings(self) -> Settings:
        return self.practice.settings

    @property
    def store(self) -> Any:
        return self.practice.store

    def _swap(self, library: Library) -> None:
        self.practice.library = library
        self.practice.__dict__.pop("engine_rubric", None)

    def library(self) -> Library:
        """The current library, reloaded first if a content file changed on disk."""
        assert self._live is not None
        return self._live.get()

    def persona_title(self, persona_id: str) -> str:
        """What people call a client ("Mai, 68: ..."); the id only if the file is gone."""
        persona = self.library().personas.get(persona_id)
        return persona.title if persona is not None else persona_id

    def reload_library(self) -> Library:
        assert self._live is not None
        return self._live.force()

    def signature(self) -> tuple[Any, ...]:
        return folder_signature([*self.settings.rubric_dirs(), *self.settings.persona_dirs()])

    # -- the educator's preview: the real engine, with the persona held in memory -------------

    def preview(self, persona: Persona, said: list[str]) -> list[str]:
        """Replies of ``persona`` to the trainee turns ``said``: opening first, then one per turn.

        Replayed from the start each time with a fixed seed, so the preview needs no stored
        state. Like a real session: the opening in authored words, then the configured client
        model (offline when none), through the same engine step as practice and self-play.
        """
        import asyncio

        return asyncio.run(self.preview_async(persona, said))

    async def preview_async(self, persona: Persona, said: list[str]) -> list[str]:
        """``preview`` for callers already on an event loop (the Author tab's handlers)."""
        from simulator.service.preview import preview_replies

        rubric = self.library().rubric(self.settings.engine_rubric)
        return await preview_replies(self.practice, rubric, persona, said)

    def report(self, session_id: str) -> tuple[str, str]:
        """(report HTML, its download URL)."""
        return report_for(self, session_id)

    def selfplay_check(self, persona: Persona, turns: int = 12) -> str:
        """Self-play the persona as edited with a skilled and an unskilled scripted counselor.

        A persona behaves as designed when skilful work earns more (hidden facts, rapport) than
        closed questions, advice and confrontation do. Returns an escaped HTML summary.
        """
        from simulator.coder.labels import Utterance
        from simulator.coder.rubric_codes import code_turn
        from simulator.service.selfplay import run_selfplay

        rubric = self.library().rubric(self.settings.engine_rubric)
        coder = self.practice.coder

        def code(text: str, context: Any) -> list[str]:
            ctx_list: list[Utterance] = list(context)
            return code_turn(coder.code_counselor(text, ctx_list), text, rubric).code_list()

        runs = {name: run_selfplay(persona, name, code, turns=turns, seed=0)
                for name in ("skilled", "unskilled")}
        return selfplay_html(persona, runs)


def report_for(ctx: WebContext, session_id: str) -> tuple[str, str]:
    """A session's report rendered now (with current corrections), and where to download it.

    The download is ``report_download``'s access-checked route, which renders it again on
    request: no copy of a transcript is ever written to disk for it.
    """
    return render_report_html(ctx, session_id), f"/reports/{session_id}.html"


def render_report_html(ctx: WebContext, session_id: str) -> str:
    """The report as an HTML document; a page saying what failed if the template broke."""
    from simulator.reports.render import render_report

    try:
        return render_report(ctx.store, session_id, "html", feedback_dir=ctx.settings.feedback)
    except Exception as exc:  # a broken template must not take the page down with it
        log.exception("report for session %s failed", session_id)
        return ("<!doctype html><meta charset=utf-8><title>Report unavailable</title>"
                "<body style='font-family:sans-serif'><h2>The report could not be built</h2>"
                f"<p>{escape(type(exc).__name__)}: {escape(str(exc))}</p>"
                "<p>The session is saved; try again later or tell your administrator.</p>")


def selfplay_html(persona: Persona, runs: dict[str, Any]) -> str:
    e = escape
    n_facts = len(persona.hidden_facts)
    rows = []
    for name, r in runs.items():
        st = r.final_state
        rows.append(f"<tr><td>{e(name)}</td><td>{len(st.unlocked)}/{n_facts}</td>"
                    f"<td>{st.rapport:.2f}</td><td>{st.resistance:.2f}</td><td>{e(st.stage)}</td>"
                    "</tr>")
    good, bad = runs["skilled"].final_state, runs["unskilled"].final_state
    checks = [
        ("Skilled work unlocks at least as many hidden facts as unskilled work",
         len(good.unlocked) >= len(bad.unlocked)),
        ("Skilled work ends with more rapport", good.rapport > bad.rapport),
        ("Skilled work ends with less resistance", good.resistance < bad.resistance),
        ("Every hidden fact can be earned by skilled work",
         len(good.unlocked) == n_facts),
    ]
    items = "".join(f"<li>{'✓' if ok else '✗'} {e(text)}</li>" for text, ok in checks)
    passed = sum(ok for _, ok in checks)
    cls = "cs-ok" if passed == len(checks) else "cs-errors"
    lines = "".join(
        f"<div><b>{'Counselor' if t.speaker == 'counselor' else e(persona.identity.name)}</b>"
        f"{' [' + e(' '.join(t.codes)) + ']' if t.codes else ''}"
        f"{' (' + e(t.act or '') + ')' if t.act else ''}: {e(t.text)}</div>"
        for t in runs["skilled"].transcript)
    return (f'<div class="{cls}"><b>Self-play check: {passed}/{len(checks)} passed</b>'
            f"<ul>{items}</ul></div>"
            '<div class="cs-kappa"><table><tr><th>Counselor</th><th>Facts unlocked</th>'
            f"<th>Rapport</th><th>Resistance</th><th>Stage</th></tr>{''.join(rows)}</table></div>"
            f'<details><summary>Skilled run transcript</summary><div class="cs-muted">{lines}'
            "</div></details>")
