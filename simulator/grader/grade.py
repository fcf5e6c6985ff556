"""The rubric grader: codes each trainee turn, and at the end the session globals, on any rubric.

Why it looks like this:

* **Any rubric.** The structured-output schema is built from the rubric at run time: a categorical
  item becomes a ``Literal`` of its code ids, a binary item a ``bool``, a scalar item an ``int``
  within ``min..max``. Whatever the provider returns is validated against that schema, so an
  unknown code can never reach the store; an invalid answer is retried with the validation errors.
* **Never fails the session.** ``grade_turn`` and ``grade_session`` never raise (except
  ``asyncio.CancelledError``, which the caller owns): after the retries the grade comes back with
  ``status="pending"`` (regrade later: ``counselsim regrade SESSION``) or ``"failed"`` (the provider
  refused the request itself: a bad key or a rejected request; regrade after fixing it).
* **Trainee text is data.** The system prompt is rendered from the rubric and the mode only; the
  transcript and the turn go into the human message inside ``<transcript>`` / ``<turn_to_code>``
  blocks, and any copy of those delimiters inside the text is defused first.
* **Runs beside the client's reply.** Grading is a coroutine that awaits only the model; the
  practice service (``service/practice.py``) runs it as an ``asyncio`` task after the trainee turn
  is stored and coded, and never makes the client's reply wait for it.

The offline path (no grader model configured) is ``grade_turn_offline``: the offline coder's codes
for the rubric plus coaching from ``grader.coach_offline``. Offline session globals come from
the rubric's ``estimate`` formulas, computed in ``grader.scores``; ``grade_session_offline``
only marks them as estimates.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from simulator.coder.labels import CodedTurn, CounselorLabels, Utterance, UtteranceCode
from simulator.content.rubric import Rubric, TurnItem
from simulator.errors import InvalidInput
from simulator.llm.budget import SAFETY, total_tokens
from simulator.vocab import GradeStatus, Mode

if TYPE_CHECKING:
    from simulator.settings import Settings

log = logging.getLogger("counselsim.grader")

GradeValue = bool | int | str
"""A turn item's value: a code id (categorical), a bool (binary) or an int (scalar)."""

PROMPTS = Path(__file__).resolve().parent / "prompts"
_DELIMITER = re.compile(r"<(\s*/?\s*)(transcript|turn_to_code|client_last_words)", re.IGNORECASE)
_SECRET = re.compile(r"(sk-[A-Za-z0-9_-]{2})[A-Za-z0-9_*-]+")
_NO_RETRY_KINDS = frozenset({"auth", "bad_request"})


# --- results ----------------------------------------------------------------------------------

class TurnGrade(BaseModel):
    """The grade of one trainee turn, as the store keeps it and the coach panel shows it."""

    rubric_id: str
    values: dict[str, GradeValue] = {}
    """Turn item id -> code id (categorical), bool (binary) or int (scalar). Empty unless ok."""
    rationale: str = ""
    """One or two sentences quoting the turn."""
    alternative: str | None = None
    """A better response the trainee could have given (coach mode only)."""
    status: GradeStatus = "ok"
    model: str = ""
    """``offline`` or the grader model string (credentials removed)."""
    attempts: int = 0
    error: str | None = None
    """Why a grade is pending/failed (no keys, no trainee text)."""


class Evidence(BaseModel):
    quote: str
    turn: int | None = None
    """Transcript index of the utterance holding the quote (None: not found verbatim)."""


class ItemScore(BaseModel):
    item_id: str
    score: int | None = None
    """None when the score must come from the rubric's ``estimate`` formula (grader.scores)."""
    source: Literal["llm", "estimate"] = "llm"
    rationale: str = ""
    evidence: list[Evidence] = []


class SessionGrade(BaseModel):
    rubric_id: str
    items: list[ItemScore] = []
    status: GradeStatus = "ok"
    model: str = ""
    attempts: int = 0
    error: str | None = None

    def score(self, item_id: str) -> int | None:
        return next((i.score for i in self.items if i.item_id == item_id), None)


@dataclass(frozen=True)
class GradeOptions:
    """How hard to try. ``attempts`` counts model calls per grade (the SDK retries HTTP errors
    inside each call on top of this); ``backoff_s`` 0 makes retries immediate (tests)."""

    attempts: int = 3
    backoff_s: float = 0.5
    timeout_s: float | None = 90.0
    context_utterances: int = 12
    """How much of the transcript before the turn the grader sees (reflections need context)."""
    max_session_chars: int = 60_000
    gate: Any = None
    """The endpoint's ``llm.gate.EndpointGate``: each call waits for a slot, and steps aside
    (is cancelled and sent again later) when a client reply needs it."""
    structured_output: str | None = None
    """Override of the structured-output method (``llm.structured``); None: the provider's."""
    context_window: int | None = None
    """The grader model's window in tokens (``llm.limits``); None: not checked. The transcript
    shown is cut to fit it, and a prompt that cannot fit fails at once with what to change."""
    answer_tokens: int = 700
    """Room kept in the window for the JSON answer (codes, rationale, alternative)."""

    @property
    def prompt_room(self) -> int | None:
        """Tokens the prompt may take: the window less a safety share and the answer's room."""
        if self.context_window is None:
            return None
        return int(self.context_window * (1 - SAFETY)) - self.answer_tokens

    @classmethod
    def from_settings(cls, settings: Settings) -> GradeOptions:
        from simulator.llm.limits import limits_for

        return cls(attempts=max(1, settings.max_retries),
                   timeout_s=settings.request_timeout_s * (1 + settings.max_retries),
                   structured_output=settings.model_settings(
                       settings.grader_model).structured_output,
                   context_window=limits_for(settings.grader_model, settings).context_window
                   if settings.grader_model and settings.grader_model != "offline" else None)


class PromptTooLong(InvalidInput):
    """The grading prompt cannot fit the grader model's context window: retrying cannot help."""


def _fitting(build: Callable[[int, bool], list[BaseMessage]], start: int, opts: GradeOptions,
             model_name: str) -> list[BaseMessage]:
    """The messages ``build(n, compact)`` that fit the window with room for the answer: the
    whole prompt with the most context utterances (``start`` at most) that fit, down to 2; then
    the compact prompt (the rubric's definitions without their examples, which are most of a
    MITI prompt) the same way, down to none. Why this order: two utterances of context are
    needed to tell a simple from a complex reflection; the examples help less than that."""
    room = opts.prompt_room
    if room is None:
        return build(start, False)
    need = 0
    for compact, lowest in ((False, min(start, 2)), (True, 0)):
        need = total_tokens(build(lowest, compact))
        if need > room:  # not even the least of this level fits: skip its renders (~1 ms each)
            continue
        for n in range(start, lowest - 1, -1):
            messages = build(n, compact)
            need = total_tokens(messages)
            if need <= room:
                return messages
    raise PromptTooLong(
        f"the grading prompt needs about {need + opts.answer_tokens} tokens with its answer, "
        f"more than {model_name}'s context window of {opts.context_window} allows: use a grader "
        "model with a larger window (and raise context_window and the server's context size), "
        "or grade offline")


# --- schemas built from a rubric --------------------------------------------------------------

def _item_type(item: TurnItem) -> Any:
    if item.kind == "categorical":
        return Literal[tuple(c.id for c in item.codes)]
    if item.kind == "binary":
        return bool
    return Annotated[int, Field(ge=item.min, le=item.max)]


def _item_description(item: TurnItem) -> str:
    if item.kind == "categorical":
        return f"{item.title}: one code id"
    if item.kind == "binary":
        return f"{item.title}: true or false"
    return f"{item.title}: an integer from {item.min} to {item.max}"


def turn_codes_schema(rubric: Rubric) -> type[BaseModel]:
    """The ``codes`` object: one field per turn item, keyed (by alias) with the item id."""
    fields: dict[str, Any] = {
        f"item_{i}": (_item_type(item), Field(alias=item.id, description=_item_description(item)))
        for i, item in enumerate(rubric.turn_items)
    }
    return create_model("TurnCodes", __config__=ConfigDict(extra="ignore"), **fields)


_SCHEMAS: dict[tuple[int, str], tuple[Rubric, type[BaseModel]]] = {}


def turn_output_schema(rubric: Rubric, mode: Mode = "coach") -> type[BaseModel]:
    """The schema handed to ``with_structured_output`` for one turn of ``rubric``.

    Field order puts the rationale first so a model reasons before it codes. Built once per
    rubric object and mode (a few ms of pydantic work on the event loop for every grade).
    """
    hit = _SCHEMAS.get((id(rubric), mode))
    if hit is not None and hit[0] is rubric:
        return hit[1]
    if len(_SCHEMAS) >= 64:
        _SCHEMAS.clear()
    schema = _turn_output_schema(rubric, mode)
    _SCHEMAS[(id(rubric), mode)] = (rubric, schema)  # holding the rubric keeps its id unique
    return schema


def _turn_output_schema(rubric: Rubric, mode: Mode) -> type[BaseModel]:
    fields: dict[str, Any] = {
        "rationale": (str, Field(description="One or two sentences quoting the trainee's words.")),
        "codes": (turn_codes_schema(rubric), Field(description="One value per rubric turn item.")),
    }
    if mode == "coach":
        fields["alternative"] = (str, Field(
            description="A better response the trainee could have given, in the trainee's voice."))
    return create_model("turn_grade", **fields)


def session_output_schema(rubric: Rubric) -> type[BaseModel]:
    """The schema for the session-level items: score within the item's scale, rationale, quotes."""
    items: dict[str, Any] = {}
    for i, item in enumerate(rubric.session_items):
        one = create_model(
            f"SessionItem{i}",
            score=(Annotated[int, Field(ge=item.min, le=item.max)],
                   Field(description=f"{item.title}: an integer from {item.min} to {item.max}")),
            rationale=(str, Field(description="One or two sentences.")),
            evidence=(list[str], Field(description="One to three short verbatim quotes.")),
        )
        items[f"item_{i}"] = (one, Field(alias=item.id))
    item_model = create_model("SessionItems", __config__=ConfigDict(extra="ignore"), **items)
    return create_model("session_grade", items=(item_model, ...))


# --- prompts ----------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _prompt_env() -> Environment:
    # Plain-text prompts, not HTML: no autoescape. StrictUndefined: a template typo is an error.
    return Environment(loader=FileSystemLoader(PROMPTS), undefined=StrictUndefined,  # noqa: S701
                       keep_trailing_newline=False, trim_blocks=False)


def quote_data(text: str, *, one_line: bool = False) -> str:
    """Make trainee/client text safe to put inside a data block: a copy of a block delimiter
    (``</turn_to_code>``) is defused with a look-alike angle bracket, so the text cannot close the
    block; ``one_line`` also folds newlines, so a transcript line cannot forge a speaker line."""
    text = _DELIMITER.sub(lambda m: "\u2039" + m.group(1) + m.group(2), text)
    if one_line:
        text = " ".join(text.split())
    return text.strip()


def _quoted(transcript: Sequence[Utterance]) -> list[Utterance]:
    return [Utterance(speaker=u.speaker, text=quote_data(u.text, one_line=True))
            for u in transcript]


def turn_messages(rubric: Rubric, transcript: Sequence[Utterance], turn_text: str, mode: Mode,
                  *, context_utterances: int = 12, must_assess: Sequence[str] = (),
                  first_reading: Sequence[UtteranceCode] = (),
                  compact: bool = False) -> list[BaseMessage]:
    """System message from the rubric, the mode and the persona's ``must_assess`` list (author
    content, never trainee text); the human message carries the data blocks, including the
    client's last words on their own, which the alternative must answer.

    ``first_reading`` is the offline coder's cut of the turn into MITI utterances with its codes
    and risk topics: the grader sees where one thought ends and a risk question the coder found,
    and is told to code for itself (the offline coder misses confrontations in other words)."""
    tpl = _prompt_env().get_template("grader_turn.j2")
    context = list(transcript)[-context_utterances:] if context_utterances > 0 else []
    client_last = next((u.text for u in reversed(list(transcript)) if u.speaker == "client"), "")
    reading = [{"text": quote_data(u.text, one_line=True), "behaviour": u.behaviour,
                "question_type": u.question_type, "risk": list(u.risk),
                "confidence": round(u.confidence, 2)} for u in first_reading]
    return [
        SystemMessage(tpl.render(part="system", rubric=rubric, mode=mode,
                                 must_assess=[" ".join(m.split()) for m in must_assess],
                                 first_reading=bool(reading), compact=compact)),
        HumanMessage(tpl.render(part="human", transcript=_quoted(context),
                                omitted=len(list(transcript)) - len(context),
                                turn_text=quote_data(turn_text),
                                client_last=quote_data(client_last, one_line=True),
                                first_reading=reading)),
    ]


def session_messages(rubric: Rubric, transcript: Sequence[Utterance],
                     *, max_chars: int = 60_000) -> list[BaseMessage]:
    tpl = _prompt_env().get_template("grader_session.j2")
    quoted = _quoted(transcript)
    while len(quoted) > 2 and sum(len(u.text) for u in quoted) > max_chars:
        quoted = quoted[1:]  # very long sessions: keep the end (globals weigh the whole arc less)
    return [SystemMessage(tpl.render(part="system", rubric=rubric)),
            HumanMessage(tpl.render(part="human", transcript=quoted))]


def _retry_message(template: str, problems: list[str]) -> HumanMessage:
    return HumanMessage(_prompt_env().get_template(template).render(part="retry",
                                                                    problems=problems))


# --- calling the model ------------------------------------------------------------------------

class GradeOutputError(InvalidInput):
    """The model answered, but not with something we can use (malformed, refused, invalid)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class _ProviderRefused(Exception):
    """A provider error that retrying the same request cannot fix (bad key, rejected request)."""


def _problems(exc: ValidationError) -> list[str]:
    """Validation errors without the offending input (it may echo trainee text)."""
    out = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "answer"
        msg = "missing (required)" if err["type"] == "missing" else err["msg"]
        out.append(f"{loc}: {msg}")
    return out[:10]


def _unexpected_keys(schema: type[BaseModel], data: Any) -> list[str]:
    """Top-level keys the schema does not have (a model that invented its own names)."""
    if not isinstance(data, dict):
        return []
    known = {f.alias or name for name, f in schema.model_fields.items()}
    extra = sorted(str(k) for k in data if k not in known)
    if not extra:
        return []
    return [f"unexpected keys {', '.join(extra[:5])}: use exactly {', '.join(sorted(known))}"]


def _as_mapping(output: Any) -> Any:
    """Whatever a structured runnable returned, as data to validate against the schema."""
    if isinstance(output, dict) and "raw" in output and "parsing_error" in output:
        if output.get("parsing_error") is not None:
            err = output["parsing_error"]
            if isinstance(err, ValidationError):
                raise GradeOutputError(_problems(err))
            raise GradeOutputError([f"the answer could not be parsed ({type(err).__name__})"])
        if output.get("parsed") is None:
            raise GradeOutputError(["no structured answer was given (refused or empty)"])
        output = output["parsed"]
    if isinstance(output, BaseModel):
        return output.model_dump(by_alias=True)
    if isinstance(output, BaseMessage):
        output = output.content if isinstance(output.content, str) else ""
    if isinstance(output, str | bytes):
        try:
            return json.loads(output)
        except ValueError:
            raise GradeOutputError(["the answer was not valid JSON"]) from None
    if output is None:
        raise GradeOutputError(["no structured answer was given (refused or empty)"])
    return output


def validate_output(schema: type[BaseModel], output: Any) -> BaseModel:
    """Validate a model's answer against the rubric schema; ``GradeOutputError`` lists problems."""
    data = _as_mapping(output)
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise GradeOutputError(_problems(exc) + _unexpected_keys(schema, data)) from None


def structured_runnable(model: Any, schema: type[BaseModel], spec: str | None,
                        method: str | None = None) -> Any:
    """A runnable that answers ``schema``-shaped output for a list of messages.

    A chat model with a model string gets the strongest means its provider has
    (``llm.structured``: json_schema, tool calling, or JSON mode with the schema in the prompt),
    answering plain data that is validated here, so a wrong key is named. Without a model
    string, ``with_structured_output(include_raw=True)``. Anything else that is already a
    Runnable (a ``RunnableLambda`` in tests, a pre-built chain) is used as it is and its output
    validated here.
    """
    if hasattr(model, "with_structured_output") and hasattr(model, "bind_tools"):
        if spec:
            from simulator.llm.providers import parse_spec
            from simulator.llm.structured import structured_runnable as provider_runnable

            if parse_spec(spec).provider != "offline":
                return provider_runnable(model, schema, spec, method)
        return model.with_structured_output(schema, include_raw=True)
    if hasattr(model, "ainvoke"):
        return model
    raise TypeError(f"{type(model).__name__} is neither a chat model nor a Runnable")


def _structured_or_refuse(model: Any, schema: type[BaseModel], spec: str | None,
                          method: str | None = None) -> Any:
    """``structured_runnable``, with "this model cannot do structured output" as a failed grade."""
    try:
        return structured_runnable(model, schema, spec, method)
    except Exception as exc:
        raise _ProviderRefused(f"the grader model cannot give structured output: "
                               f"{_describe(exc)}") from exc


def _describe(exc: BaseException) -> str:
    if isinstance(exc, GradeOutputError):
        text = f"unusable answer: {exc}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    text = _SECRET.sub(r"\1***", " ".join(text.split()))
    return text[:300]


def _kind(exc: BaseException) -> str:
    if isinstance(exc, GradeOutputError):
        return "malformed"
    from simulator.llm.providers import classify

    return classify(exc)


async def _call_validated(runnable: Any, messages: list[BaseMessage], schema: type[BaseModel],
                          retry_template: str, options: GradeOptions) -> tuple[BaseModel, int]:
    """Call until an answer validates; raise the last error after ``options.attempts`` calls.

    After an unusable answer the next call carries a short message naming what was wrong (field
    names and rules only, never the answer's text), which fixes most small-model slips.
    """
    attempt_no = 0
    problems: list[str] = []

    def retryable(exc: BaseException) -> bool:
        return not isinstance(exc, _ProviderRefused)

    retrying = AsyncRetrying(
        stop=stop_after_attempt(max(1, options.attempts)),
        wait=wait_exponential(multiplier=options.backoff_s, max=max(options.backoff_s * 8, 0)),
        retry=retry_if_exception(retryable), reraise=True)
    async for attempt in retrying:
        with attempt:
            attempt_no += 1
            sent = messages + ([_retry_message(retry_template, problems)] if problems else [])
            try:
                call = functools.partial(runnable.ainvoke, sent)
                if options.timeout_s:
                    async with asyncio.timeout(options.timeout_s):
                        output = await (options.gate.run_grade(call) if options.gate else call())
                else:
                    output = await (options.gate.run_grade(call) if options.gate else call())
                return validate_output(schema, output), attempt_no
            except GradeOutputError as exc:
                problems = exc.problems
                log.info("grader answer unusable (attempt %d): %s", attempt_no, exc)
                raise
            except Exception as exc:
                kind = _kind(exc)
                log.info("grader call failed (attempt %d): %s", attempt_no, kind)
                if kind in _NO_RETRY_KINDS:
                    raise _ProviderRefused(_describe(exc)) from exc
                raise
    raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover


def _model_name(model: Any, spec: str | None) -> str:
    from simulator.llm.providers import redact_spec, spec_of

    if spec:
        return redact_spec(spec)
    try:
        return spec_of(model)
    except Exception:  # pragma: no cover - naming must never fail a grade
        return type(model).__name__


# --- grading a turn ---------------------------------------------------------------------------

async def grade_turn(model: Any, rubric: Rubric, transcript: Sequence[Utterance], turn_text: str,
                     mode: Mode = "coach", spec: str | None = None,
                     *, options: GradeOptions | None = None,
                     must_assess: Sequence[str] = (),
                     first_reading: Sequence[UtteranceCode] = ()) -> TurnGrade:
    """Grade one trainee turn with an LLM. Never raises (cancellation excepted).

    ``model`` is a LangChain chat model (from ``providers.chat_model(spec, settings)``) or any
    Runnable returning the schema's shape; ``transcript`` is the conversation *before* the turn,
    oldest first; ``spec`` is the grader model string (picks the structured-output method and is
    recorded in the grade).
    """
    opts = options or GradeOptions()
    name = _model_name(model, spec)
    attempts = 0
    if opts.gate is not None:
        await opts.gate.quiet()  # a reply on its way goes first, even its prompt's building
    try:
        context = _strip_current(transcript, turn_text)
        schema = turn_output_schema(rubric, mode)
        messages = _fitting(lambda n, compact: turn_messages(
            rubric, context, turn_text, mode, context_utterances=n, must_assess=must_assess,
            first_reading=first_reading, compact=compact), opts.context_utterances, opts, name)
        runnable = _structured_or_refuse(model, schema, spec, opts.structured_output)
        answer, attempts = await _call_validated(runnable, messages, schema, "grader_turn.j2", opts)
    except asyncio.CancelledError:
        raise
    except (_ProviderRefused, PromptTooLong) as exc:
        return TurnGrade(rubric_id=rubric.id, status="failed", model=name,
                         attempts=attempts or int(not isinstance(exc, PromptTooLong)),
                         error=str(exc))
    except Exception as exc:
        log.warning("turn grade pending after retries: %s", _describe(exc))
        return TurnGrade(rubric_id=rubric.id, status="pending", model=name,
                         attempts=max(attempts, opts.attempts), error=_describe(exc))
    data = answer.model_dump(by_alias=True)
    alternative = (data.get("alternative") or "").strip() or None
    return TurnGrade(rubric_id=rubric.id, values=dict(data["codes"]),
                     rationale=" ".join(str(data["rationale"]).split())[:600],
                     alternative=alternative if mode == "coach" else None,
                     status="ok", model=name, attempts=attempts)


def _strip_current(transcript: Sequence[Utterance], turn_text: str) -> list[Utterance]:
    """Callers pass the transcript before the turn; tolerate one that already ends with it."""
    items = list(transcript)
    if items and items[-1].speaker == "counselor" and items[-1].text.strip() == turn_text.strip():
        items.pop()
    return items


def grade_turn_offline(coded: CodedTurn | CounselorLabels, rubric: Rubric,
                       transcript: Sequence[Utterance], turn_text: str, mode: Mode = "coach",
                       *, feedback_dir: Path | None = None,
                       must_assess: Sequence[str] = ()) -> TurnGrade:
    """Grade one turn without a model: the offline coder's labels mapped onto ``rubric``, with
    coaching (rationale and, in coach mode, an alternative) from the rubric's ``coaching`` texts.

    ``coded`` is the ``CodedTurn`` the engine already has (when ``rubric`` is the engine rubric) or
    the coder's ``CounselorLabels`` (mapped here with ``rubric_coding.code_turn``). Only categorical
    items get values offline. Never raises: a broken template gives ``status="failed"``.
    """
    from simulator.grader.coach_offline import coach_turn

    try:
        context = _strip_current(transcript, turn_text)
        if isinstance(coded, CounselorLabels) or coded.rubric_id != rubric.id:
            from simulator.coder.rubric_codes import code_turn

            labels = coded if isinstance(coded, CounselorLabels) else coded.labels
            coded = code_turn(labels, turn_text, rubric)
        coaching = coach_turn(coded, rubric, context, turn_text, mode, feedback_dir=feedback_dir,
                              must_assess=must_assess)
    except Exception as exc:
        log.warning("offline grade failed: %s", _describe(exc))
        return TurnGrade(rubric_id=rubric.id, status="failed", model="offline", attempts=1,
                         error=_describe(exc))
    return TurnGrade(rubric_id=rubric.id, values=dict(coded.codes), rationale=coaching.rationale,
                     alternative=coaching.alternative if mode == "coach" else None,
                     status="ok", model="offline", attempts=1)


# --- grading a session ------------------------------------------------------------------------

def _find_quote(quote: str, transcript: Sequence[Utterance]) -> int | None:
    needle = " ".join(quote.strip().strip("\"'\u201c\u201d").lower().split())
    if not needle:
        return None
    for i, u in enumerate(transcript):
        if needle in " ".join(u.text.lower().split()):
            return i
    return None


def grade_session_offline(rubric: Rubric, *, status: GradeStatus = "ok", model: str = "offline",
                          error: str | None = None, attempts: int = 0) -> SessionGrade:
    """No model: each session item is an estimate from its rubric formula (``grader.scores``)."""
    return SessionGrade(rubric_id=rubric.id, status=status, model=model, error=error,
                        attempts=attempts,
                        items=[ItemScore(item_id=i.id, score=None, source="estimate")
                               for i in rubric.session_items])


async def grade_session(model: Any, rubric: Rubric, transcript: Sequence[Utterance],
                        spec: str | None = None, *,
                        options: GradeOptions | None = None) -> SessionGrade:
    """Score the rubric's session-level items with an LLM, each with evidence quotes.

    Never raises (cancellation excepted). On failure every item falls back to its estimate
    (``source="estimate"``, ``score=None``) with ``status="pending"`` so it can be regraded.
    Quotes are located in the transcript; a quote not found verbatim keeps ``turn=None``.
    """
    opts = options or GradeOptions()
    name = _model_name(model, spec)
    if not rubric.session_items:
        return SessionGrade(rubric_id=rubric.id, status="ok", model=name)
    attempts = 0
    try:
        schema = session_output_schema(rubric)
        messages = session_messages(rubric, transcript, max_chars=opts.max_session_chars)
        room = opts.prompt_room
        if room is not None:  # keep the end of a long session within the window
            chars = opts.max_session_chars
            while total_tokens(messages) > room and chars > 400:
                chars //= 2
                messages = session_messages(rubric, transcript, max_chars=chars)
            if total_tokens(messages) > room:
                raise PromptTooLong(
                    f"the session grading prompt needs about {total_tokens(messages)} tokens, "
                    f"more than {name}'s context window of {opts.context_window} allows")
        runnable = _structured_or_refuse(model, schema, spec, opts.structured_output)
        answer, attempts = await _call_validated(runnable, messages, schema, "grader_session.j2",
                                                 opts)
    except asyncio.CancelledError:
        raise
    except (_ProviderRefused, PromptTooLong) as exc:
        return grade_session_offline(rubric, status="failed", model=name, error=str(exc),
                                     attempts=attempts or int(not isinstance(exc, PromptTooLong)))
    except Exception as exc:
        log.warning("session grade pending after retries: %s", _describe(exc))
        return grade_session_offline(rubric, status="pending", model=name, error=_describe(exc),
                                     attempts=max(attempts, opts.attempts))
    data = answer.model_dump(by_alias=True)["items"]
    items = []
    for item in rubric.session_items:
        got = data[item.id]
        quotes = [q.strip() for q in got["evidence"] if q and q.strip()][:3]
        items.append(ItemScore(
            item_id=item.id, score=got["score"], source="llm",
            rationale=" ".join(got["rationale"].split())[:600],
            evidence=[Evidence(quote=q[:300], turn=_find_quote(q, transcript)) for q in quotes]))
    return SessionGrade(rubric_id=rubric.id, items=items, status="ok", model=name,
                        attempts=attempts)
