"""One practice turn, end to end: store first, then code, update the client, plan, realize, grade.

This is where the pieces of DESIGN.md's "flow of one turn" meet. ``Practice`` is composed from
settings (library + store + coder + client/grader models); the web app and ``counselsim chat``
both drive it, so they cannot drift apart. Order matters and is the point of this module:

1. the trainee's text is committed to the store before any model is called (nothing is lost);
2. the offline coder codes it against the engine rubric (fast, local), stored;
3. the client state is updated deterministically and the planner picks the client's act;
4. the realizer (offline lines or an LLM, streamed) says the act; the reply and the state after
   it are committed when complete;
5. an LLM grade runs as a separate asyncio task started once the reply's stream has ended (or
   failed), so it never competes with the reply for the model server; every request to an
   endpoint passes its gate (``llm.gate``: a reply first, a running grade preempted when a reply
   needs its slot). A failed or malformed grade is stored as ``pending`` and regraded later.
   The offline grade is computed at once and committed beside the codes.

Models are re-checked (``llm.availability``): a model whose server is down, or serves another
model, is not called; the offline realizer answers that turn and the header says why. A failed
call makes the next turn check again, so the session continues when the server returns.

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
import dataclasses
import logging
import random
import re
import unicodedata
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from pydantic import BaseModel

from simulator.client import engine
from simulator.client.state import ClientState, initial_state
from simulator.coder.labels import CodedTurn, Coder, CounselorLabels, Utterance
from simulator.coder.miti import utterance_labeller, whole_turn_label, with_utterances
from simulator.coder.rubric_codes import code_turn
from simulator.content.library import Library, load_library
from simulator.content.persona import Persona
from simulator.content.rubric import Rubric, SessionItem
from simulator.errors import InvalidInput, NotFoundOrNoAccess, StorageError
from simulator.grader.grade import GradeOptions, TurnGrade
from simulator.llm.availability import Availability
from simulator.llm.gate import EndpointGate, gate_for
from simulator.llm.limits import endpoint_key, limits_for, trim_to_sentence, trim_to_words
from simulator.llm.providers import (
    ModelInfo,
    ModelUnavailable,
    chat_model,
    describe_models,
    empty_reply,
    parse_spec,
)
from simulator.service.access import session_for
from simulator.service.regrade import session_rubric
from simulator.settings import Settings
from simulator.store import Conflict, Session, Store, StoreError, Turn, User, open_store
from simulator.vocab import Mode

MAX_TURN_CHARS = 4000
"""A counselor turn is a few sentences; 4,000 characters is generous and keeps prompts bounded."""


log = logging.getLogger("counselsim.session")


class TurnRejected(InvalidInput):
    """The trainee's text cannot be used as a turn (empty, too long ...). Nothing was stored."""


class TurnBusy(TurnRejected):
    """A reply is already being made in this session (another tab, a double click): one turn at a
    time, so the conversation cannot interleave. Nothing was stored."""


BUSY = "Your previous turn is still being answered: wait for the reply, then send."
MOVED = ("The conversation changed in another window; it is shown here as it stands now. "
         "Send your turn again if you still want to.")


class TurnNotSaved(TurnRejected, StorageError):
    """The database refused the trainee's turn (busy past the wait, disk full). Nothing was
    stored; the message says so, and the UI gives the text back to send again."""


def storage_problem(exc: Exception) -> str:
    """What went wrong with the database, in words a trainee can act on (no SQL, no paths)."""
    text = str(exc).lower()
    if "full" in text:
        return "the server's disk is full (tell your administrator)"
    if "locked" in text or "busy" in text:
        return "the database is busy"
    return "the database could not be written"


class TurnEvent(BaseModel):
    """What a turn reports as it goes; the UI and the CLI render these."""

    kind: Literal["stored", "token", "client", "grade", "error", "duplicate"]
    """``duplicate``: the same send (same idempotency key) was already taken; nothing new."""
    text: str = ""
    data: dict[str, Any] = {}


def clean_turn_text(text: str) -> str:
    """Normalise a trainee's turn; raise TurnRejected with a message the trainee can act on.

    Control characters (other than newline and tab) are dropped; right-to-left text and emoji are
    kept as typed.
    """
    if len(text) > 4 * MAX_TURN_CHARS:  # refused before any work on it
        raise TurnRejected(f"Your turn is {len(text.strip()):,} characters; the limit is "
                           f"{MAX_TURN_CHARS:,}. Say it in fewer words, as you would in session.")
    text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) != "Cc")
    text = re.sub(r"[ \t]+\n", "\n", text).strip()
    if not text:
        raise TurnRejected("Your turn is empty: type what you would say to the client.")
    if len(text) > MAX_TURN_CHARS:
        raise TurnRejected(f"Your turn is {len(text):,} characters; the limit is "
                           f"{MAX_TURN_CHARS:,}. Say it in fewer words, as you would in session.")
    return text


@dataclass(frozen=True)
class Heard:
    """How the engine took a trainee turn: its engine codes, the client's step (state and plan)
    and the turn's seeded generator, which ``engine.speak`` goes on drawing from."""

    coded: CodedTurn
    fresh: bool
    """The codes are new (not yet stored)."""
    step: engine.Step
    rng: random.Random
    whole: Callable[[], CodedTurn] | None = None
    """The codes with the turn's whole AnnoMI label, for storing (``Practice._hear``)."""


@dataclass(frozen=True)
class Hearing:
    """A trainee turn being heard while it is stored: ``session``'s current turns ``before``
    it, and the work in flight (a worker thread)."""

    session: Session
    persona: Persona
    before: list[Turn]
    heard: asyncio.Future[Heard]


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
    availability: Availability | None = None
    """Live status of the configured models (None: always use the models given)."""
    grading_worker: str | None = None
    """Set when a ``grading_jobs.JobWorker`` runs (``counselsim serve``): LLM grades are then
    also recorded as jobs held by this worker, so another replica finishes them if this dies."""
    _grading: set[asyncio.Task[None]] = field(default_factory=set)
    _inflight: dict[str, str] = field(default_factory=dict)
    """Sessions with a turn or reply being made now -> the idempotency key of that send."""

    @classmethod
    def from_settings(cls, settings: Settings, *, coder: Coder | None = None,
                      client_model: BaseChatModel | None = None,
                      grader_model: BaseChatModel | None = None) -> Practice:
        from simulator.coder.offline import load_offline_coder

        library = load_library(settings.persona_dirs(), settings.rubric_dirs())
        store = open_store(settings.db)
        # probe=False: a server that is down now may come up later; availability decides per turn
        return cls(
            settings=settings, library=library, store=store,
            coder=coder or load_offline_coder(threads=settings.coder_threads),
            client_model=client_model or chat_model(settings.client_model, settings, probe=False),
            grader_model=grader_model or chat_model(settings.grader_model, settings, probe=False),
            availability=Availability([settings.client_model, settings.grader_model],
                                      settings.availability_interval_s),
        )

    def describe_models(self, *, probe: bool = True) -> list[ModelInfo]:
        """The client and grader models as the web header shows them (offline ones named)."""
        return describe_models(self.settings, probe=probe)

    # -- content -------------------------------------------------------------------------------

    @cached_property
    def engine_rubric(self) -> Rubric:
        return self.library.rubric(self.settings.engine_rubric)

    def reload_library(self) -> None:
        """Pick up persona/rubric files changed on disk (educators editing in their own editor)."""
        self.library = load_library(self.settings.persona_dirs(), self.settings.rubric_dirs())
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
        rubric_id = rubric_id or persona.rubric_choice(self.settings.rubric)
        if persona.rubrics and rubric_id not in persona.rubrics:
            raise KeyError(f"rubric {rubric_id!r} is not offered for {persona_id!r} "
                           f"(choose one of: {', '.join(persona.rubrics)})")
        self.library.rubric(rubric_id)
        session_id = self.store.create_session(
            trainee=trainee, persona_id=persona_id,
            persona_sha=self._record_content("persona", persona_id),
            rubric_id=rubric_id, rubric_sha=self._record_content("rubric", rubric_id),
            client_model=self.settings.client_model if self._live_now(
                self.client_model, self.settings.client_model) else "offline",
            grader_model=self.settings.grader_model if self._live_now(
                self.grader_model, self.settings.grader_model) else "offline",
            mode=mode,
        )
        step = engine.opening(persona)
        rng = random.Random(f"{session_id}:0")
        text = engine.say_offline(persona, step, set(), rng)
        state = engine.after(step)
        self.store.add_turn(session_id, "client", text, act=step.plan.act,
                            state=state.model_dump())
        return session_id

    def check_access(self, session_id: str, user: User, *, write: bool = False) -> Session:
        """The session if ``user`` may see it (with ``write``: act in it); else
        ``NotFoundOrNoAccess``. The rules are ``service.access``'s."""
        return session_for(self.store, session_id, user, write=write)

    def _own_active(self, session_id: str, trainee: str) -> Session:
        try:
            session = self.store.get_session(session_id)
        except StoreError:
            raise NotFoundOrNoAccess() from None
        if session.trainee != trainee:
            raise NotFoundOrNoAccess()
        if session.status != "active":
            raise TurnRejected("This session has ended; start a new one to keep practising.")
        return session

    def self_rating_items(self, session_id: str) -> list[SessionItem]:
        """The session-level items a trainee may rate themselves on: the globals of the rubric
        the session ran with."""
        return list(session_rubric(self.store, session_id).session_items)

    def rate_self(self, session_id: str, user: User, scores: Sequence[object],
                  note: str = "") -> dict[str, Any]:
        """Keep the trainee's own rating of their ended session, beside the grader's.

        ``scores`` follow ``self_rating_items`` in order; a missing or out-of-scale value is left
        out rather than stored wrong. Returns what was stored (empty: nothing to store).
        """
        session = session_for(self.store, session_id, user, write=True)
        rating: dict[str, Any] = {}
        for item, value in zip(self.self_rating_items(session.session_id), scores, strict=False):
            try:
                score = int(value)  # type: ignore[call-overload]
            except (TypeError, ValueError):
                continue
            if item.min <= score <= item.max:
                rating[item.id] = score
        if note and note.strip():
            rating["comment"] = note.strip()[:2000]
        if rating:
            self.store.set_self_rating(session.session_id, rating)
        return rating

    def busy(self, session_id: str) -> bool:
        """True while a turn or reply is being made in this session (by this process)."""
        return session_id in self._inflight

    def rewind(self, session_id: str, trainee: str, turn_idx: int) -> None:
        """Try again from the trainee turn at ``turn_idx``; the abandoned branch is kept."""
        self._own_active(session_id, trainee)
        if self.busy(session_id):
            raise TurnBusy("Wait for the client's reply before you try a turn again.")
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
        if self.busy(session_id):
            raise TurnBusy("Wait for the client's reply before you end the session.")
        return self.store.end_session(session_id)

    # -- models in use -------------------------------------------------------------------------

    def _watched(self, spec: str) -> bool:
        return self.availability is not None and spec in self.availability.specs

    def _live_now(self, model: Any, spec: str) -> Any:
        """``model`` if it may be called now (last known status), else None (offline)."""
        if model is None or not self._watched(spec):
            return model
        assert self.availability is not None
        return model if self.availability.usable(spec) else None

    async def _live(self, model: Any, spec: str) -> Any:
        """``_live_now`` with the check (an HTTP request when stale) off the event loop; a fresh
        status is read in place (no thread hop on the way to the first token)."""
        if model is None or not self._watched(spec):
            return model
        assert self.availability is not None
        known = self.availability.fresh(spec)
        if known is not None:
            return model if known.usable else None
        return await asyncio.to_thread(self._live_now, model, spec)

    def _report_failure(self, spec: str, kind: str) -> None:
        if self._watched(spec):
            assert self.availability is not None
            self.availability.report_failure(spec, kind)

    def _gate(self, spec: str) -> EndpointGate | None:
        """The endpoint gate of a model string (None for offline and fakes without a spec)."""
        if parse_spec(spec).provider == "offline":
            return None
        return gate_for(endpoint_key(spec), limits_for(spec, self.settings).max_concurrency)

    # -- one turn ------------------------------------------------------------------------------

    def _state_before(self, persona: Persona, turns: list[Turn]) -> ClientState:
        for t in reversed(turns):
            if t.speaker == "client" and t.state:
                return ClientState.model_validate(t.state)
        return initial_state(persona)

    @staticmethod
    def history(turns: list[Turn]) -> list[Utterance]:
        return [Utterance(speaker=t.speaker, text=t.text) for t in turns]

    async def turn(self, session_id: str, trainee: str, text: str, *, key: str | None = None,
                   seen: int | None = None) -> AsyncIterator[TurnEvent]:
        """Take the trainee's turn and yield events: stored, tokens, client, (grade), or error.

        One turn at a time per session: while a reply is being made, another send is refused
        (``TurnBusy``) unless it carries the same ``key`` (a double click, Enter then Send), which
        yields ``duplicate`` and stores nothing; a key already stored also gives ``duplicate``.
        ``seen``: how many turns the sender's window showed; if the conversation has moved on
        (another tab's turn, a rewind), ``TurnRejected`` and nothing is stored.
        """
        session = self._own_active(session_id, trainee)
        text = clean_turn_text(text)
        held = self._inflight.get(session_id)
        if held is not None:
            if key is not None and held == key:
                yield TurnEvent(kind="duplicate")
                return
            raise TurnBusy(BUSY)
        self._inflight[session_id] = key or ""  # no await since the check: atomic on the loop
        try:
            with self._reply_coming():
                async for event in self._take_turn(session, trainee, text, key, seen):
                    yield event
        finally:
            self._inflight.pop(session_id, None)

    async def _take_turn(self, session: Session, trainee: str, text: str, key: str | None,
                         seen: int | None) -> AsyncIterator[TurnEvent]:
        session_id = session.session_id
        # Hearing the turn (coding it, the client's plan) is no model call: it runs in one
        # worker thread while another commits the turn (an fsync), so the reply waits for the
        # longer of the two, not their sum (bench turn --single-slot). Nothing reaches a model
        # before the commit.
        before = self.store.current_turns(session_id)
        persona = self.library.persona(session.persona_id)
        hearing = Hearing(session, persona, before, asyncio.ensure_future(
            asyncio.to_thread(self._hear, session_id, persona, before, text)))
        # a refused or duplicate turn leaves the work unread: its failure is not worth a log line
        hearing.heard.add_done_callback(lambda f: f.cancelled() or f.exception())
        try:
            turn, fresh = await asyncio.to_thread(self._store_counselor, session_id, text,
                                                  key, seen)
        except Conflict:
            raise TurnRejected(MOVED) from None
        except StorageError as exc:
            log.warning("trainee turn not saved: %s", exc)
            raise TurnNotSaved(f"Your turn was not saved: {storage_problem(exc)}. Send it "
                               "again in a moment.") from exc
        if not fresh:
            yield TurnEvent(kind="duplicate", data={"turn_id": turn.id, "idx": turn.idx})
            return
        yield TurnEvent(kind="stored", data={"turn_id": turn.id, "idx": turn.idx})
        async for event in self._make_reply(session_id, trainee, hearing, turn):
            yield event

    def _store_counselor(self, session_id: str, text: str, key: str | None,
                         seen: int | None) -> tuple[Turn, bool]:
        if key is not None:
            existing = self.store.turn_with_key(session_id, key)
            if existing is not None:
                return existing, False
        turn = self.store.add_turn(session_id, "counselor", text, after=seen, key=key)
        if self.grading_worker is not None and self.grader_model is not None:
            try:  # the turn is committed; a job not recorded leaves its grade to regrade
                self.store.add_job("turn", session_id, turn.id, worker=self.grading_worker)
            except StorageError as exc:
                log.warning("grading job not recorded: %s", exc)
        return turn, True

    async def reply(self, session_id: str, trainee: str) -> AsyncIterator[TurnEvent]:
        """The client's reply to the last unanswered trainee turn (also the retry after errors);
        ``TurnBusy`` while another turn or reply of this session is being made."""
        self._own_active(session_id, trainee)
        if session_id in self._inflight:
            raise TurnBusy(BUSY)
        self._inflight[session_id] = ""
        try:
            with self._reply_coming():
                async for event in self._make_reply(session_id, trainee):
                    yield event
        finally:
            self._inflight.pop(session_id, None)

    def _reply_coming(self) -> contextlib.AbstractContextManager[None]:
        """Announce a reply to the client model's endpoint from the trainee's send until the
        reply's stream has ended: on a one-slot server a running grade steps aside, and no grade
        builds its prompt on the loop while the turn is stored and coded."""
        gate = self._gate(self.settings.client_model) if self.client_model is not None else None
        return gate.reply_coming() if gate is not None else contextlib.nullcontext()

    async def _make_reply(self, session_id: str, trainee: str, hearing: Hearing | None = None,
                          stored: Turn | None = None) -> AsyncIterator[TurnEvent]:
        """The client's reply to the session's last turn, the trainee's. From ``turn``,
        ``hearing`` is that turn being heard and ``stored`` the turn as committed (the next after
        ``hearing.before``): nothing is read again while the hearing runs (reads on the loop
        slowed it). Without them (a retry), the session is read from the store."""
        client = await self._live(self.client_model, self.settings.client_model)
        grader = await self._live(self.grader_model, self.settings.grader_model)
        if hearing is not None and stored is not None and stored.idx == len(hearing.before):
            session, persona = hearing.session, hearing.persona
            turns = [*hearing.before, stored]
            heard = await hearing.heard
        else:  # a retry, or another replica's turn came between: read the session again
            session = self._own_active(session_id, trainee)
            persona = self.library.persona(session.persona_id)
            turns = self.store.current_turns(session_id)
            if not turns or turns[-1].speaker != "counselor":
                raise TurnRejected("there is no trainee turn waiting for a reply")
            # codes stored by a first try are reused (in a worker thread: the coder's
            # transformer and the client's sentence encoder take a few ms)
            heard = await asyncio.to_thread(self._hear, session_id, persona, turns[:-1],
                                            turns[-1].text, turns[-1])
        last = turns[-1]
        coded, fresh, step, rng = heard.coded, heard.fresh, heard.step, heard.rng
        # Codes (and an offline grade) are committed in a worker thread while the client answers:
        # they are derived data, and two fsyncs on the way to the first token were most of the
        # engine's own latency (bench turn). Awaited before the reply is stored, so rows keep
        # their order; on a retry the stored codes are reused and a graded turn is not regraded.
        # An LLM grade is only prepared here and started when the reply's stream has ended.
        # The commit starts once the reply's first token is in (or the reply failed): its
        # Python work in a second thread took the GIL from the model request being built.
        # The offline grade is made there too, from the codes with the turn's whole label.
        start_llm_grade: list[Callable[[], None]] = []
        if grader is not None:
            self._start_grading(session, last, turns, coded, fresh, grader=grader,
                                later=start_llm_grade)

        def derive() -> CodedTurn:
            final = heard.whole() if fresh and heard.whole is not None else coded
            grade = (self._start_grading(session, last, turns, final, fresh)
                     if grader is None else None)
            self._save_derived(last, final if fresh else None, grade)
            return final

        saving: asyncio.Future[CodedTurn] | None = None

        def save() -> asyncio.Future[CodedTurn]:
            nonlocal saving
            if saving is None:
                saving = asyncio.ensure_future(asyncio.to_thread(derive))
            return saving
        plan = step.plan
        used = {t.text for t in turns if t.speaker == "client"}
        revised = False
        try:
            parts: list[str] = []
            info: dict[str, Any] = {}
            options = self._client_options(info) if client is not None else {}
            async for token in engine.speak(persona, step, self.history(turns), used, rng,
                                            client, **options):
                parts.append(token)
                save()
                yield TurnEvent(kind="token", text=token)
            reply = "".join(parts).strip()
            if info.get("capped"):  # cut at max_tokens: keep the whole sentences that fit
                reply = trim_to_words(trim_to_sentence(reply), engine.longest_reply_words(step))
            if client is not None:
                if not reply:
                    raise empty_reply(self.settings.client_model)
                draft = reply
                reply = await engine.checked_reply(persona, step, self.history(turns), draft,
                                                   used, rng, client,
                                                   **self._client_options({}))
                revised = reply != draft
        except ModelUnavailable as exc:
            while start_llm_grade:
                start_llm_grade.pop()()
            try:
                await save()
                self.store.add_event(session_id, "client_error", {"turn_id": last.id,
                                                                  "message": str(exc)})
            except StorageError as db_exc:
                log.warning("could not record a client model error: %s", db_exc)
            yield TurnEvent(kind="error", text=str(exc), data={"turn_id": last.id,
                                                              "retry": True})
            return
        finally:
            # the stream has ended (or failed, or the trainee left): the grader may go now
            with contextlib.suppress(RuntimeError):  # no running loop: left for regrade
                save()  # the codes are kept even when the trainee left before a token
                while start_llm_grade:
                    start_llm_grade.pop()()
        state = engine.after(step)
        try:
            coded = await save()
            client_turn = await asyncio.to_thread(
                self.store.add_turn, session_id, "client", reply, act=plan.act,
                fact_id=plan.fact_id, state=state.model_dump(), after=len(turns))
        except Conflict:
            yield TurnEvent(kind="error", text=MOVED, data={"turn_id": last.id, "retry": False})
            return
        except StorageError as exc:
            log.warning("client reply not saved: %s", exc)
            yield TurnEvent(kind="error", data={"turn_id": last.id, "retry": True},
                            text=f"Your turn is saved, but the client's reply could not be: "
                                 f"{storage_problem(exc)}. Ask the client again in a moment.")
            return
        yield TurnEvent(kind="client", text=reply,
                        data={"turn_id": client_turn.id, "act": plan.act,
                              "fact_id": plan.fact_id, "codes": coded.codes,
                              "revised": revised})

    def _client_options(self, info: dict[str, Any]) -> dict[str, Any]:
        """How the client model is called: its limits (reply cap, context budget, timeouts),
        its endpoint's gate (the reply goes before grading) and where failures are reported."""
        spec = self.settings.client_model
        return {"limits": limits_for(spec, self.settings), "spec": spec,
                "gate": self._gate(spec), "on_failure": self._report_failure, "info": info}

    def _hear(self, session_id: str, persona: Persona, before: list[Turn], text: str,
              stored: Turn | None = None) -> Heard:
        """Code the trainee turn ``text`` said after ``before`` and plan the client's answer.
        ``stored``: the turn once committed, whose codes a first try may have stored already."""
        context = self.history(before)
        rubric = self.engine_rubric
        coded, fresh = None, True
        for record in reversed(self.store.codes(stored.id) if stored is not None else []):
            if record.rubric_id == rubric.id and record.labels:
                labels = CounselorLabels.model_validate(record.labels)
                coded, fresh = code_turn(labels, text, rubric), False
                break
        whole: Callable[[], CodedTurn] | None = None
        if coded is None:
            # The turn's own AnnoMI label is the TF-IDF half's here: the client's answer reads
            # the utterance codes only, and the whole label's transformer pass (a few ms on the
            # way to the first token) is made with the derived data, once the reply is under way.
            quick = utterance_labeller(self.coder)
            labels = with_utterances(self.coder, text, context, turn_coder=quick)
            coded = code_turn(labels, text, rubric)
            if quick is not self.coder:
                def whole_codes() -> CodedTurn:
                    return code_turn(whole_turn_label(self.coder, labels, text, context),
                                     text, rubric)
                whole = whole_codes
        rng = random.Random(f"{session_id}:{len(before) if stored is None else stored.idx}")
        step = engine.respond(persona, self._state_before(persona, before), coded.code_list(),
                              text, rng, context)
        return Heard(coded, fresh, step, rng, whole)

    def _save_derived(self, turn: Turn, coded: CodedTurn | None, grade: TurnGrade | None) -> None:
        if coded is not None:
            self.store.add_codes(turn.id, coded.rubric_id, dict(coded.codes),
                                 labels=coded.labels.model_dump(), coder=coded.labels.coder)
        if grade is not None:
            store_grade(self.store, turn.id, grade)

    # -- grading -------------------------------------------------------------------------------

    def _start_grading(self, session: Session, turn: Turn, turns: list[Turn],
                       coded: CodedTurn, fresh: bool = True, *, grader: Any = None,
                       later: list[Callable[[], None]] | None = None) -> TurnGrade | None:
        """Grade the turn without delaying the reply: offline at once, the grade returned for
        the caller to store off the event loop; an LLM in a task, started by the caller through
        ``later`` once the reply's stream has ended (at once when ``later`` is None). A retried
        turn that already has a grade is not graded again."""
        from simulator.grader.grade import grade_turn, grade_turn_offline

        if not fresh and any(g.turn_id == turn.id and g.status != "pending"
                             for g in self.store.grades(session.session_id)):
            return None
        rubric = self.library.rubric(session.rubric_id)
        transcript = self.history(turns[:-1])
        must_assess = self.library.persona(session.persona_id).risk.must_assess
        if grader is None:
            labels = coded.labels
            session_coded = coded if rubric.id == coded.rubric_id else code_turn(
                labels, turn.text, rubric)
            return grade_turn_offline(session_coded, rubric, transcript, turn.text, session.mode,
                                      must_assess=must_assess)
        spec = self.settings.grader_model
        options = GradeOptions(gate=self._gate(spec), structured_output=self.settings
                               .model_settings(spec).structured_output,
                               context_window=limits_for(spec, self.settings).context_window)

        async def run() -> None:
            grade = await grade_turn(grader, rubric, transcript, turn.text, session.mode, spec,
                                     options=options, must_assess=must_assess,
                                     first_reading=coded.labels.utterances)
            if grade.status != "ok":
                self._report_failure(spec, grade.error or "")
            await asyncio.to_thread(store_grade, self.store, turn.id, grade)

        def start() -> None:
            task = asyncio.get_running_loop().create_task(run())
            self._grading.add(task)
            task.add_done_callback(self._grading.discard)

        if later is None:
            start()
        else:
            later.append(start)
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
            if self.grading_worker is not None:
                await asyncio.to_thread(self.store.add_job, "session", session_id,
                                        worker=self.grading_worker)
            options = dataclasses.replace(
                self.grade_options or GradeOptions.from_settings(self.settings),
                gate=self._gate(self.settings.grader_model))
            grade = await grade_session(model, rubric, self.history(turns),
                                        self.settings.grader_model, options=options)
            if not await asyncio.to_thread(store_session_grade, self.store, session_id, grade):
                await self._session_grade_pending(session_id, grade.status, grade.error or "")
        except Exception as exc:  # grading must never surface in the session; regrade finishes it
            log.exception("session-level grade of %s failed; left for counselsim regrade",
                          session_id)
            with contextlib.suppress(Exception):  # best effort: the report then says "pending"
                await self._session_grade_pending(session_id, "error", type(exc).__name__)
        # not when cancelled (this process is stopping): its job is then another replica's
        if self.grading_worker is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.store.finish_jobs, "session", session_id)

    async def _session_grade_pending(self, session_id: str, status: str, error: str) -> None:
        await asyncio.to_thread(self.store.add_event, session_id, "session_grade_pending",
                                {"status": status, "error": error})

    async def wait_for_grades(self) -> None:
        """Let running grade tasks finish, turn grades and session-level grades alike (the CLI
        calls this before printing a report)."""
        if self._grading:
            await asyncio.gather(*list(self._grading), return_exceptions=True)
