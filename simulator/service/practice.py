"""One practice turn, end to end: store first, then code, update the client, plan, realize, grade.

This is where the pieces of DESIGN.md's "flow of one turn" meet. ``Practice`` is composed from
settings (library + store + coder + client/grader models); the web app and ``counselsim chat``
both drive it, so they cannot drift apart. Order matters and is the point of this module:

1. the trainee's text is committed to the store before any model is called (nothing is lost);
2. the offline coder codes it against the engine rubric (fast, local), stored;
3. the client state is updated deterministically and the planner picks the client's act;
4. the realizer (offline lines or an LLM, streamed) says the act; the reply and the state after
   it are committed when complete;
5. grading runs as a separate asyncio task started in step 2 and never delays the reply: a
   failed or malformed grade is stored as ``pending`` and can be regraded later.

Ending a session with an LLM grader starts the session-level grade (the rubric's globals, with
evidence quotes) the same way, as a task on the running loop (``end_async`` from the web app);
offline, the globals stay estimates computed from the turn codes. A session grade that fails or
never finishes leaves none stored (a ``session_grade_pending`` event records a failure), and
``counselsim regrade`` grades it later; ending never waits for it or fails because of it.

A model failure after retries surfaces as a recoverable ``error`` event: the trainee's turn stays
stored, and ``reply()`` (or the UI's retry button) asks the client again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import sqlite3
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from pydantic import BaseModel

from simulator.client import engine
from simulator.client.state import ClientState, initial_state
from simulator.coder.labels import CodedTurn, Coder, CounselorLabels, Utterance
from simulator.coder.rubric_codes import code_turn
from simulator.content.library import Library, load_library
from simulator.content.persona import Persona
from simulator.content.rubric import Rubric
from simulator.grader.grade import GradeOptions, TurnGrade
from simulator.llm.providers import ModelUnavailable, chat_model, empty_reply
from simulator.settings import Settings, load_settings
from simulator.store import Session, Store, StoreError, Turn, User, open_store

MAX_TURN_CHARS = 4000
"""A counselor turn is a few sentences; 4,000 characters is generous and keeps prompts bounded."""

Mode = Literal["coach", "assessment"]


log = logging.getLogger("counselsim.session")


class TurnRejected(ValueError):
    """The trainee's text cannot be used as a turn (empty, too long ...). Nothing was stored."""


class TurnNotSaved(TurnRejected):
    """The database refused the trainee's turn (busy past the wait, disk full). Nothing was
    stored; the message says so, and the UI gives the text back to send again."""


def storage_problem(exc: sqlite3.Error) -> str:
    """What went wrong with the database, in words a trainee can act on (no SQL, no paths)."""
    text = str(exc).lower()
    if "full" in text:
        return "the server's disk is full (tell your administrator)"
    if "locked" in text or "busy" in text:
        return "the database is busy"
    return "the database could not be written"


class TurnEvent(BaseModel):
    """What a turn reports as it goes; the UI and the CLI render these."""

    kind: Literal["stored", "token", "client", "grade", "error"]
    text: str = ""
    data: dict[str, Any] = {}


def clean_turn_text(text: str) -> str:
    """Normalise a trainee's turn; raise TurnRejected with a message the trainee can act on.

    Control characters (other than newline and tab) are dropped; right-to-left text and emoji are
    kept as typed.
    """
    text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) != "Cc")
    text = re.sub(r"[ \t]+\n", "\n", text).strip()
    if not text:
        raise TurnRejected("Your turn is empty: type what you would say to the client.")
    if len(text) > MAX_TURN_CHARS:
        raise TurnRejected(f"Your turn is {len(text):,} characters; the limit is "
                           f"{MAX_TURN_CHARS:,}. Say it in fewer words, as you would in session.")
    return text


def store_grade(store: Store, turn_id: int, grade: TurnGrade) -> None:
    """Keep a turn's grade (pending ones too, so ``counselsim regrade`` can find them)."""
    store.add_grade(turn_id, grade.rubric_id, status=grade.status, values=dict(grade.values),
                    rationale=grade.rationale, alternative=grade.alternative or "",
                    model=grade.model, error=grade.error or "", attempts=grade.attempts)


@dataclass
class Practice:
    """The running simulator: content, storage, coder and models composed once, shared by users."""

    settings: Settings
    library: Library
    store: Store
    coder: Coder
    client_model: BaseChatModel | None = None
    grader_model: BaseChatModel | None = None
    grade_options: GradeOptions | None = None
    """Retries and timeouts of the session-level grade (default: from settings)."""
    _grading: set[asyncio.Task[None]] = field(default_factory=set)

    @classmethod
    def from_settings(cls, settings: Settings | None = None, *, coder: Coder | None = None,
                      client_model: BaseChatModel | None = None,
                      grader_model: BaseChatModel | None = None) -> Practice:
        from simulator.coder.offline import load_offline_coder

        settings = settings or load_settings()
        library = load_library([settings.personas], [settings.rubrics])
        store = open_store(settings.db)
        return cls(
            settings=settings, library=library, store=store,
            coder=coder or load_offline_coder(),
            client_model=client_model or chat_model(settings.client_model, settings),
            grader_model=grader_model or chat_model(settings.grader_model, settings),
        )

    # -- content -------------------------------------------------------------------------------

    @cached_property
    def engine_rubric(self) -> Rubric:
        return self.library.rubric(self.settings.engine_rubric)

    def reload_library(self) -> None:
        """Pick up persona/rubric files changed on disk (educators editing in their own editor)."""
        self.library = load_library([self.settings.personas], [self.settings.rubrics])
        self.__dict__.pop("engine_rubric", None)

    def _record_content(self, kind: Literal["persona", "rubric"], content_id: str) -> str:
        loaded = self.library.files[f"{kind}:{content_id}"]
        model: Persona | Rubric = (self.library.persona(content_id) if kind == "persona"
                                   else self.library.rubric(content_id))
        self.store.record_content(kind, content_id, model.version, loaded.sha256,
                                  loaded.path.read_text(encoding="utf-8"))
        return loaded.sha256

    # -- session lifecycle ---------------------------------------------------------------------

    def start(self, trainee: str, persona_id: str, rubric_id: str | None = None,
              mode: Mode = "coach") -> str:
        """Open a session; the client speaks first (its opening line is stored before returning)."""
        persona = self.library.persona(persona_id)
        rubric_id = rubric_id or self.settings.rubric
        self.library.rubric(rubric_id)
        session_id = self.store.create_session(
            trainee=trainee, persona_id=persona_id,
            persona_sha=self._record_content("persona", persona_id),
            rubric_id=rubric_id, rubric_sha=self._record_content("rubric", rubric_id),
            client_model=self.settings.client_model if self.client_model else "offline",
            grader_model=self.settings.grader_model if self.grader_model else "offline",
            mode=mode,
        )
        step = engine.opening(persona)
        rng = random.Random(f"{session_id}:0")
        text = engine.say_offline(persona, step, set(), rng)
        state = engine.after(step)
        self.store.add_turn(session_id, "client", text, act=step.plan.act,
                            state=state.model_dump())
        return session_id

    def check_access(self, session_id: str, user: User, *, write: bool = False) -> None:
        """Raise PermissionError unless ``user`` may see (or, with write, act in) this session.

        Trainees: only their own sessions. Supervisors: sessions of trainees in their cohort
        (read, and reviews through the store, never trainee turns). Admins: everything.
        """
        session = self._session(session_id)
        if user.role == "admin":
            return
        if session.trainee == user.name:
            return
        if (not write and user.role == "supervisor" and session.cohort is not None
                and session.cohort == user.cohort):
            return
        raise PermissionError("no such session")

    def _session(self, session_id: str) -> Session:
        """The session, or PermissionError: an unknown id and a forbidden one look the same."""
        try:
            return self.store.get_session(session_id)
        except StoreError:
            raise PermissionError("no such session") from None

    def _own_active(self, session_id: str, trainee: str) -> Session:
        session = self._session(session_id)
        if session.trainee != trainee:
            raise PermissionError("no such session")
        if session.status != "active":
            raise TurnRejected("This session has ended; start a new one to keep practising.")
        return session

    def rewind(self, session_id: str, trainee: str, turn_idx: int) -> None:
        """Try again from the trainee turn at ``turn_idx``; the abandoned branch is kept."""
        self._own_active(session_id, trainee)
        turns = self.store.current_turns(session_id)
        if not any(t.idx == turn_idx and t.speaker == "counselor" for t in turns):
            raise TurnRejected(f"there is no trainee turn {turn_idx} to try again")
        self.store.rewind(session_id, turn_idx)

    def end(self, session_id: str, trainee: str) -> None:
        """End the session. With an LLM grader and a running event loop in this thread (the
        terminal chat), the session-level grade starts in the background; without a loop it is
        left for ``counselsim regrade``. Async callers should prefer ``end_async``."""
        session = self._end(session_id, trainee)
        self._start_session_grading(session)

    async def end_async(self, session_id: str, trainee: str) -> None:
        """End the session without blocking the loop (the commit runs in a worker thread), then
        start the session-level grade as a task beside the turn grades (``wait_for_grades``
        waits for it). Raises only what ``end`` raises before anything is stored."""
        session = await asyncio.to_thread(self._end, session_id, trainee)
        self._start_session_grading(session)

    def _end(self, session_id: str, trainee: str) -> Session:
        self._own_active(session_id, trainee)
        return self.store.end_session(session_id)

    # -- one turn ------------------------------------------------------------------------------

    def _state_before(self, persona: Persona, turns: list[Turn]) -> ClientState:
        for t in reversed(turns):
            if t.speaker == "client" and t.state:
                return ClientState.model_validate(t.state)
        return initial_state(persona)

    @staticmethod
    def history(turns: list[Turn]) -> list[Utterance]:
        return [Utterance(speaker=t.speaker, text=t.text) for t in turns]

    async def turn(self, session_id: str, trainee: str, text: str) -> AsyncIterator[TurnEvent]:
        """Take the trainee's turn and yield events: stored, tokens, client, (grade), or error."""
        self._own_active(session_id, trainee)
        text = clean_turn_text(text)
        try:
            # committed (an fsync) in a worker thread: the web app's other trainees keep streaming
            turn = await asyncio.to_thread(self.store.add_turn, session_id, "counselor", text)
        except sqlite3.Error as exc:
            log.warning("trainee turn not saved: %s", exc)
            raise TurnNotSaved(f"Your turn was not saved: {storage_problem(exc)}. Send it again "
                               "in a moment.") from exc
        yield TurnEvent(kind="stored", data={"turn_id": turn.id, "idx": turn.idx})
        async for event in self.reply(session_id, trainee):
            yield event

    async def reply(self, session_id: str, trainee: str) -> AsyncIterator[TurnEvent]:
        """The client's reply to the last unanswered trainee turn (also the retry after errors)."""
        session = self._own_active(session_id, trainee)
        persona = self.library.persona(session.persona_id)
        turns = self.store.current_turns(session_id)
        if not turns or turns[-1].speaker != "counselor":
            raise TurnRejected("there is no trainee turn waiting for a reply")
        last = turns[-1]
        context = self.history(turns[:-1])
        # in a worker thread: the coder's transformer takes a few ms the other sessions need
        coded, fresh = await asyncio.to_thread(self._code, last, context)
        # Codes (and an offline grade) are committed in a worker thread while the client answers:
        # they are derived data, and two fsyncs on the way to the first token were most of the
        # engine's own latency (bench turn). Awaited before the reply is stored, so rows keep
        # their order; on a retry the stored codes are reused and a graded turn is not regraded.
        saving = asyncio.ensure_future(asyncio.to_thread(
            self._save_derived, last, coded if fresh else None,
            self._start_grading(session, last, turns, coded, fresh)))

        rng = random.Random(f"{session_id}:{last.idx}")
        # in a worker thread too: understanding the turn runs the client's sentence encoder
        step = await asyncio.to_thread(engine.respond, persona,
                                       self._state_before(persona, turns[:-1]),
                                       coded.code_list(), last.text, rng, context)
        plan = step.plan
        used = {t.text for t in turns if t.speaker == "client"}
        revised = False
        try:
            parts: list[str] = []
            async for token in engine.speak(persona, step, self.history(turns), used, rng,
                                            self.client_model):
                parts.append(token)
                yield TurnEvent(kind="token", text=token)
            reply = "".join(parts).strip()
            if self.client_model is not None:
                if not reply:
                    raise empty_reply(self.settings.client_model)
                draft = reply
                reply = await engine.checked_reply(persona, step, self.history(turns), draft,
                                                   used, rng, self.client_model)
                revised = reply != draft
        except ModelUnavailable as exc:
            try:
                await saving
                self.store.add_event(session_id, "client_error", {"turn_id": last.id,
                                                                  "message": str(exc)})
            except sqlite3.Error as db_exc:
                log.warning("could not record a client model error: %s", db_exc)
            yield TurnEvent(kind="error", text=str(exc), data={"turn_id": last.id,
                                                              "retry": True})
            return
        state = engine.after(step)
        try:
            await saving
            client_turn = await asyncio.to_thread(
                self.store.add_turn, session_id, "client", reply, act=plan.act,
                fact_id=plan.fact_id, state=state.model_dump())
        except sqlite3.Error as exc:
            log.warning("client reply not saved: %s", exc)
            yield TurnEvent(kind="error", data={"turn_id": last.id, "retry": True},
                            text=f"Your turn is saved, but the client's reply could not be: "
                                 f"{storage_problem(exc)}. Ask the client again in a moment.")
            return
        yield TurnEvent(kind="client", text=reply,
                        data={"turn_id": client_turn.id, "act": plan.act,
                              "fact_id": plan.fact_id, "codes": coded.codes,
                              "revised": revised})

    def _code(self, turn: Turn, context: list[Utterance]) -> tuple[CodedTurn, bool]:
        """The turn's engine codes, and True when they are new (not yet stored)."""
        rubric = self.engine_rubric
        for record in reversed(self.store.codes(turn.id)):
            if record.rubric_id == rubric.id and record.labels:
                labels = CounselorLabels.model_validate(record.labels)
                return code_turn(labels, turn.text, rubric), False
        labels = self.coder.code_counselor(turn.text, context)
        return code_turn(labels, turn.text, rubric), True

    def _save_derived(self, turn: Turn, coded: CodedTurn | None, grade: TurnGrade | None) -> None:
        if coded is not None:
            self.store.add_codes(turn.id, coded.rubric_id, dict(coded.codes),
                                 labels=coded.labels.model_dump(), coder=coded.labels.coder)
        if grade is not None:
            store_grade(self.store, turn.id, grade)

    # -- grading -------------------------------------------------------------------------------

    def _start_grading(self, session: Session, turn: Turn, turns: list[Turn],
                       coded: CodedTurn, fresh: bool = True) -> TurnGrade | None:
        """Grade the turn without delaying the reply: an LLM in a task; offline at once, the
        grade returned for the caller to store off the event loop. A retried turn that already
        has a grade is not graded again."""
        from simulator.grader.grade import grade_turn, grade_turn_offline

        if not fresh and any(g.turn_id == turn.id and g.status != "pending"
                             for g in self.store.grades(session.session_id)):
            return None
        rubric = self.library.rubric(session.rubric_id)
        transcript = self.history(turns[:-1])
        if self.grader_model is None:
            labels = coded.labels
            session_coded = coded if rubric.id == coded.rubric_id else code_turn(
                labels, turn.text, rubric)
            return grade_turn_offline(session_coded, rubric, transcript, turn.text, session.mode)
        model = self.grader_model

        async def run() -> None:
            grade = await grade_turn(model, rubric, transcript, turn.text, session.mode,
                                     self.settings.grader_model)
            await asyncio.to_thread(store_grade, self.store, turn.id, grade)

        task = asyncio.get_running_loop().create_task(run())
        self._grading.add(task)
        task.add_done_callback(self._grading.discard)
        return None

    def _start_session_grading(self, session: Session) -> None:
        """Grade the rubric's session-level items with the LLM grader in a task on the running
        loop. Offline (no grader model) nothing happens: the report's globals are estimates."""
        if self.grader_model is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            log.info("session %s ended outside an event loop: its session-level grade is left "
                     "for `counselsim regrade`", session.session_id)
            return
        task = loop.create_task(self._grade_session(session.session_id, self.grader_model))
        self._grading.add(task)
        task.add_done_callback(self._grading.discard)

    async def _grade_session(self, session_id: str, model: BaseChatModel) -> None:
        """The session grade, stored through ``regrade.store_session_grade``. Never raises
        (cancellation excepted). Events tell the report where it stands: ``session_grade_started``
        when the model is called, ``session_grade_pending`` when it failed (regrade finishes it)."""
        from simulator.grader.grade import grade_session
        from simulator.service.regrade import session_rubric, store_session_grade

        try:
            rubric = await asyncio.to_thread(session_rubric, self.store, session_id)
            if not rubric.session_items:
                return
            turns = await asyncio.to_thread(self.store.current_turns, session_id)
            if not any(t.speaker == "counselor" for t in turns):
                return  # nothing the trainee said to rate
            await asyncio.to_thread(self.store.add_event, session_id, "session_grade_started")
            options = self.grade_options or GradeOptions.from_settings(self.settings)
            grade = await grade_session(model, rubric, self.history(turns),
                                        self.settings.grader_model, options=options)
            if not await asyncio.to_thread(store_session_grade, self.store, session_id, grade):
                await self._session_grade_pending(session_id, grade.status, grade.error or "")
        except Exception as exc:  # grading must never surface in the session; regrade finishes it
            log.exception("session-level grade of %s failed; left for counselsim regrade",
                          session_id)
            with contextlib.suppress(Exception):  # best effort: the report then says "pending"
                await self._session_grade_pending(session_id, "error", type(exc).__name__)

    async def _session_grade_pending(self, session_id: str, status: str, error: str) -> None:
        await asyncio.to_thread(self.store.add_event, session_id, "session_grade_pending",
                                {"status": status, "error": error})

    async def wait_for_grades(self) -> None:
        """Let running grade tasks finish, turn grades and session-level grades alike (the CLI
        calls this before printing a report)."""
        if self._grading:
            await asyncio.gather(*list(self._grading), return_exceptions=True)
