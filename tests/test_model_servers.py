"""Real model servers, as the loopback stub plays them: a model that never stops talking, a small
context window, a single slot shared by client and grader, a server that interrupts streams,
a hung server that comes back, a server that serves another model (issue 14).

Each test drives the real path (``Practice`` or the realizer, ChatOpenAI over HTTP).
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from stub_llm_server import Fault, RecordedRequest, Reply, StubLLMServer

from simulator.bench.turn import valid_grade
from simulator.llm import limits as limits_module
from simulator.llm.availability import Availability, check_model
from simulator.llm.budget import fit_messages, total_tokens
from simulator.llm.gate import EndpointGate
from simulator.llm.limits import context_overflow, limits_for, reply_token_cap
from simulator.service.practice import Practice
from simulator.settings import ROOT, ModelSettings, Settings

PERSONA = ROOT / "tests" / "fixtures" / "engine" / "test-dana.yaml"
TURNS = ["What brings you in today?", "It sounds like the evenings are the hardest part.",
         "How do you feel about what the GP said?", "Tell me more about your shifts.",
         "What would you like to be different?"]


@pytest.fixture(autouse=True)
def forget_learned_limits() -> Iterator[None]:
    """Context windows learned from a server's errors are per process; per test here."""
    limits_module.forget_learned()
    yield
    limits_module.forget_learned()


def settings_for(tmp_path: Path, spec: str, grader: str = "offline", **kw: Any) -> Settings:
    personas = tmp_path / "personas"
    personas.mkdir(exist_ok=True)
    shutil.copy(PERSONA, personas / PERSONA.name)
    base: dict[str, Any] = dict(
        db=tmp_path / "db.sqlite", personas=personas, rubrics=ROOT / "rubrics",
        client_model=spec, grader_model=grader, max_retries=1, request_timeout_s=5.0,
        requests_per_second=1000.0, first_token_timeout_s=3.0, chunk_timeout_s=3.0,
        reply_timeout_s=10.0)
    return Settings(**{**base, **kw})


def practice_for(settings: Settings) -> Practice:
    p = Practice.from_settings(settings)
    p.store.add_user("ana", "trainee")
    return p


async def collect(events: AsyncIterator[Any]) -> list[Any]:
    return [e async for e in events]


def grading_responder(rubric_answer: dict[str, Any], reply: Reply
                      ) -> Any:
    """Grade requests (they ask for JSON) get a valid grade; client requests get ``reply``."""
    def respond(req: RecordedRequest) -> Reply:
        if isinstance(req.body, dict) and req.body.get("response_format"):
            return Reply(json.dumps(rubric_answer))
        return reply
    return respond


# --- the reply cap and the context budget ---------------------------------------------------

def test_reply_cap_follows_the_plan_under_a_hard_ceiling() -> None:
    assert reply_token_cap(20, 300) < reply_token_cap(70, 300) <= 300
    assert reply_token_cap(500, 120) == 120
    assert reply_token_cap(20, 300) >= 20 * 1.4  # a reply that keeps to the words is never cut


def test_budget_keeps_system_summary_and_recent_turns_within_the_window() -> None:
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

    history: list[Any] = [SystemMessage("You are Dana. " * 40)]
    for i in range(60):
        history += [HumanMessage(f"Counselor turn {i}: " + "how was it " * 20),
                    AIMessage(f"Client turn {i}: " + "it was fine I guess " * 20)]
    history.append(HumanMessage("The last thing the counselor said."))
    fitted = fit_messages(history, window=2048, reply_tokens=200)
    assert total_tokens(fitted) + 200 <= 2048
    assert fitted[0].content.startswith("You are Dana.")
    assert "Earlier in this conversation (summary" in fitted[0].content
    assert "earlier messages not shown" in fitted[0].content
    assert fitted[-1].content == "The last thing the counselor said."
    assert isinstance(fitted[1], HumanMessage)
    short = history[:3]
    assert fit_messages(short, window=2048, reply_tokens=200) == short  # fits: unchanged


def test_a_long_session_sends_a_bounded_number_of_messages_and_keeps_earlier_words() -> None:
    """The SDK walks every message before sending (about 0.25 ms each here): after
    ``RECENT_MESSAGES`` the earlier turns go into the system prompt, word for word when the
    window has room, so a long session's request costs no more to build than a short one's."""
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

    from simulator.llm.budget import RECENT_MESSAGES

    history: list[Any] = [SystemMessage("You are Dana.")]
    for i in range(20):
        history += [HumanMessage(f"Counselor turn {i}."), AIMessage(f"Client turn {i}.")]
    history.append(HumanMessage("The last thing the counselor said."))
    fitted = fit_messages(history, window=32000, reply_tokens=200)
    assert len(fitted) - 1 <= RECENT_MESSAGES
    assert isinstance(fitted[1], HumanMessage) and fitted[-1] == history[-1]
    system = fitted[0].content
    assert system.startswith("You are Dana.")
    assert "Earlier in this conversation (oldest first):" in system
    assert "- The counselor: Counselor turn 0.\n- You: Client turn 0." in system
    sent = [m.content for m in fitted[1:]]
    first_kept = history.index(fitted[1])
    assert all(m.content in system for m in history[1:first_kept])  # nothing lost
    assert not any(s in system for s in sent[1:])  # nothing twice


def test_overflow_messages_of_real_servers_are_recognised() -> None:
    assert context_overflow("Requested tokens (4144) exceed context window of 4096") == (True, 4096)
    assert context_overflow("This model's maximum context length is 8192 tokens. However, you "
                            "requested 9000 tokens") == (True, 8192)
    assert context_overflow("rate limited") == (False, None)


def test_limits_come_from_the_model_then_global_settings() -> None:
    spec = "openai-compatible:smollm2@http://127.0.0.1:8089/v1"
    s = Settings(context_window=8192, models={spec: ModelSettings(context_window=2048,
                                                                  max_concurrency=2)})
    local = limits_for(spec, s)
    assert (local.context_window, local.max_concurrency) == (2048, 2)
    other = limits_for("openai-compatible:x@http://127.0.0.1:9/v1", s)
    assert (other.context_window, other.max_concurrency) == (8192, 1)  # loopback: one at a time
    assert limits_for("openai:gpt-4o-mini", Settings()).max_concurrency > 1
    d = Settings()
    assert d.connect_timeout_s + d.first_token_timeout_s <= 45  # a hung server within 45 s


def test_a_model_that_never_stops_talking_stays_capped_and_within_the_window(
        tmp_path: Path) -> None:
    """30 turns against an endless model on a 2,048-token server: every request leaves room for
    its capped reply, no request overflows, every reply is stored."""
    with StubLLMServer(default=Reply("and then I kept talking about it. So", endless=True),
                       context_window=2048) as stub:
        spec = f"openai-compatible:chatty@{stub.openai_base_url}"
        s = settings_for(tmp_path, spec, context_window=2048)
        p = practice_for(s)
        sid = p.start("ana", "test-dana")

        async def thirty() -> list[list[Any]]:
            return [await collect(p.turn(sid, "ana", TURNS[i % len(TURNS)] + f" ({i})"))
                    for i in range(30)]

        turns = asyncio.run(thirty())
        replies = [t.text for t in p.store.current_turns(sid)[1:] if t.speaker == "client"]
        p.store.close()
    assert len(replies) == 30
    assert all(r.endswith("about it.") for r in replies)  # cut at the cap, back to a sentence
    assert all(events[-1].kind == "client" for events in turns), [
        e.text for events in turns for e in events if e.kind == "error"]
    posts = [r for r in stub.requests if r.method == "POST"]
    assert len(posts) == 30 and all(r.outcome == "reply" for r in posts)
    caps = [r.body["max_tokens"] for r in posts]
    assert all(c <= s.reply_max_tokens for c in caps)
    assert all(r.body["max_completion_tokens"] == r.body["max_tokens"] for r in posts)
    sizes = [len(json.dumps(r.body["messages"])) // 4 + r.body["max_tokens"] for r in posts]
    assert max(sizes) <= 2048
    assert sizes[-1] > 1000, "the history should have grown to fill the budget"
    assert "Earlier in this conversation" in posts[-1].body["messages"][0]["content"]


def test_an_overflow_inside_the_stream_shortens_the_history_and_tries_again(
        tmp_path: Path) -> None:
    with StubLLMServer() as stub:
        spec = f"openai-compatible:small@{stub.openai_base_url}"
        p = practice_for(settings_for(tmp_path, spec))
        sid = p.start("ana", "test-dana")
        stub.enqueue(Fault.context_overflow(requested=1500, window=1024), Reply("All right."))
        events = asyncio.run(collect(p.turn(sid, "ana", TURNS[0])))
        p.store.close()
    assert events[-1].kind == "client" and events[-1].text == "All right."
    assert [r.outcome for r in stub.requests if r.method == "POST"] == ["context_overflow",
                                                                         "reply"]
    assert limits_for(spec, Settings()).context_window == 1024  # learned from the message


# --- one server for client and grader -------------------------------------------------------

def test_client_and_grader_share_an_interrupting_single_slot_server(tmp_path: Path) -> None:
    """llama-cpp-python's default: a second request ends the running stream. The endpoint gate
    sends one request at a time (replies first), so no reply is cut and every turn is graded."""
    with StubLLMServer(slots=1, interrupt_requests=True, latency_s=0.05) as stub:
        spec = f"openai-compatible:shared@{stub.openai_base_url}"
        p = practice_for(settings_for(tmp_path, spec, grader=spec))
        stub.responder = grading_responder(valid_grade(p.library.rubric("miti-4.2.1")),
                                           Reply("It has been a long week, honestly."))
        sid = p.start("ana", "test-dana")

        async def session() -> list[list[Any]]:
            out = [await collect(p.turn(sid, "ana", t)) for t in TURNS]
            await p.wait_for_grades()
            return out

        turns = asyncio.run(session())
        grades = p.store.grades(sid)
        p.store.close()
    assert all(events[-1].kind == "client" for events in turns)
    assert stub.max_running == 1
    assert len(grades) == len(TURNS) and all(g.status == "ok" for g in grades)


def test_without_the_gate_an_interrupting_server_cuts_the_reply_and_says_so(
        tmp_path: Path) -> None:
    """What the gate prevents, and the message a trainee would get if it happened anyway."""
    with StubLLMServer(interrupt_requests=True,
                       default=Reply("one two three four five six", chunk_delay_s=0.25)) as stub:
        spec = f"openai-compatible:m@{stub.openai_base_url}"
        s = settings_for(tmp_path, spec, models={spec: ModelSettings(max_concurrency=4)})
        p = practice_for(s)
        sid = p.start("ana", "test-dana")

        async def turn_with_intruder() -> list[Any]:
            import httpx

            async def intrude() -> None:  # once the reply is streaming, a second request
                while not any(r.stream for r in stub.requests):
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.3)
                async with httpx.AsyncClient() as http:
                    await http.post(stub.openai_base_url + "/chat/completions",
                                    json={"model": "m", "messages": []})

            intruder = asyncio.ensure_future(intrude())
            events = await collect(p.turn(sid, "ana", TURNS[0]))
            await intruder
            return events

        events = asyncio.run(turn_with_intruder())
        p.store.close()
    assert events[-1].kind == "error"
    assert "ended its reply early" in events[-1].text and "--interrupt_requests False" in \
        events[-1].text
    assert "(1 request sent)" in events[-1].text


def logged_grade(log: list[str], seconds: float) -> Callable[[], Awaitable[str]]:
    """A grading call that takes ``seconds`` and writes its start and end in ``log``."""
    async def grade() -> str:
        log.append("grade start")
        await asyncio.sleep(seconds)
        log.append("grade done")
        return "graded"

    return grade


def test_a_reply_preempts_a_running_grade_on_a_single_slot() -> None:
    async def scenario() -> tuple[list[str], int]:
        gate = EndpointGate(1)
        log: list[str] = []
        grade = logged_grade(log, 0.2)

        grading = asyncio.ensure_future(gate.run_grade(grade))
        await asyncio.sleep(0.05)
        async with gate.slot("reply"):
            log.append("reply")
            await asyncio.sleep(0.05)
        assert await grading == "graded"
        return log, log.count("grade start")

    log, runs = asyncio.run(scenario())
    assert log == ["grade start", "reply", "grade start", "grade done"] and runs == 2


@pytest.mark.parametrize("slots, held", [(1, True), (2, False)])
def test_an_announced_reply_holds_grades_back_on_a_single_slot_only(slots: int,
                                                                    held: bool) -> None:
    """From the trainee's send (before the engine has coded the turn) a one-slot endpoint makes
    a running grade step aside and starts no grade until the reply is done; an endpoint with
    several slots keeps grading (a class's replies would otherwise starve it)."""
    async def scenario() -> list[str]:
        gate = EndpointGate(slots)
        log: list[str] = []
        running = asyncio.ensure_future(gate.run_grade(logged_grade(log, 0.1)))
        await asyncio.sleep(0.02)
        with gate.reply_coming():
            log.append("turn sent")
            late = asyncio.ensure_future(gate.quiet())
            await asyncio.sleep(0.15)  # the engine codes the turn, then the reply streams
            log.append(f"quiet: {late.done()}")
            log.append("reply done")
        await late
        assert await running == "graded"
        return log

    log = asyncio.run(scenario())
    if held:
        assert log == ["grade start", "turn sent", "quiet: False", "reply done", "grade start",
                       "grade done"]
    else:
        assert log == ["grade start", "turn sent", "grade done", "quiet: True", "reply done"]


# --- a hung server, a server that comes back, the wrong model -------------------------------

def test_a_hung_server_is_reported_in_time_and_the_session_continues_when_it_returns(
        tmp_path: Path) -> None:
    import time

    with StubLLMServer(hang_max_s=5.0) as stub:
        spec = f"openai-compatible:m@{stub.openai_base_url}"
        p = practice_for(settings_for(tmp_path, spec, first_token_timeout_s=0.5))
        sid = p.start("ana", "test-dana")
        stub.enqueue(Fault.hang())

        async def hang_then_back() -> tuple[list[Any], float, list[Any]]:
            t0 = time.perf_counter()
            failed = await collect(p.turn(sid, "ana", TURNS[0]))
            took = time.perf_counter() - t0
            stub.default = Reply("Sorry, where were we?")
            return failed, took, await collect(p.reply(sid, "ana"))

        failed, took, retried = asyncio.run(hang_then_back())
        p.store.close()
    assert failed[-1].kind == "error" and took < 2.0
    assert "did not start answering within 0.5 s (1 request sent)" in failed[-1].text
    assert retried[-1].kind == "client" and retried[-1].text == "Sorry, where were we?"


def test_a_wrong_model_name_is_noticed_and_the_turn_runs_offline(tmp_path: Path) -> None:
    with StubLLMServer(served_models=["smollm2"]) as stub:
        spec = f"openai-compatible:llama3@{stub.openai_base_url}"
        status = check_model(spec)
        assert status.state == "wrong_model" and "serves smollm2, not llama3" in (
            status.reason or "")
        p = practice_for(settings_for(tmp_path, spec))
        sid = p.start("ana", "test-dana")
        events = asyncio.run(collect(p.turn(sid, "ana", TURNS[0])))
        session = p.store.get_session(sid)
        p.store.close()
        assert check_model(f"openai-compatible:smollm2@{stub.openai_base_url}").usable
    assert events[-1].kind == "client"
    assert [r for r in stub.requests if r.method == "POST"] == []  # never asked the wrong model
    assert session.client_model == "offline"  # the session records what really answered


def test_availability_notices_a_server_that_comes_up_and_one_that_goes_away() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    spec = f"openai-compatible:m@http://127.0.0.1:{port}/v1"
    watch = Availability([spec], interval_s=60)
    assert watch.status(spec).state == "down"
    assert not watch.describe(spec, "client").active
    # the server starts on that port after the app did
    import http.server
    import threading

    class Models(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"data": [{"id": "m"}]}'
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", port), Models)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        assert watch.status(spec).state == "down"  # cached until stale or a failure is reported
        watch.report_failure(spec)
        assert watch.status(spec).usable and watch.describe(spec, "client").active
    finally:
        httpd.shutdown()
        httpd.server_close()
    watch.report_failure(spec)
    assert watch.status(spec).state == "down"


# --- grading: structured output, named fields, the report ------------------------------------

def test_a_grade_with_the_wrong_keys_is_retried_naming_the_fields(tmp_path: Path) -> None:
    with StubLLMServer() as stub:
        spec = f"openai-compatible:grader@{stub.openai_base_url}"
        p = practice_for(settings_for(tmp_path, "offline", grader=spec))
        answer = valid_grade(p.library.rubric("miti-4.2.1"))
        stub.enqueue(Reply(json.dumps({"score": 3, "comment": "fine"})), Reply(json.dumps(answer)))
        sid = p.start("ana", "test-dana")

        async def turn() -> None:
            await collect(p.turn(sid, "ana", TURNS[0]))
            await p.wait_for_grades()

        asyncio.run(turn())
        grades = p.store.grades(sid)
        p.store.close()
    assert [g.status for g in grades] == ["ok"]
    retry = stub.requests[-1].body["messages"][-1]["content"]
    assert "codes: missing (required)" in retry and "rationale: missing (required)" in retry
    assert "unexpected keys comment, score" in retry
    assert "could not be parsed" not in retry


def test_the_report_shows_a_failed_reply_pending_grades_and_the_grader(tmp_path: Path) -> None:
    from simulator.reports.render import build_report, render

    with StubLLMServer() as stub:
        spec = f"openai-compatible:m@{stub.openai_base_url}"
        p = practice_for(settings_for(tmp_path, spec, grader=spec))
        sid = p.start("ana", "test-dana")
        stub.default = Fault.server_error(500)

        async def fail() -> None:
            await collect(p.turn(sid, "ana", TURNS[0]))
            await p.wait_for_grades()

        asyncio.run(fail())
        report = build_report(p.store, sid, feedback_dir=ROOT / "feedback")
        md = render(report, "md", feedback_dir=ROOT / "feedback")
        html = render(report, "html", feedback_dir=ROOT / "feedback")
        p.store.close()
    failed = [t for t in report.transcript if t.reply_failed]
    assert len(failed) == 1 and "server error" in failed[0].reply_failed
    assert report.pending_turn_grades == 1
    assert "no reply (" in md and "No reply:" in html
    assert "1 of 1 turn grades by openai-compatible:m@" in md
    assert "&amp;" not in md.split("---")[-1]  # the footer's citation keeps its "&"
    assert "grader." in md.split("---")[-1]


# --- counselsim doctor ------------------------------------------------------------------------

def test_doctor_passes_a_working_server_and_names_what_to_fix_on_a_wrong_one() -> None:
    from simulator.llm.doctor import run_doctor

    def respond(req: RecordedRequest) -> Reply:
        if isinstance(req.body, dict) and req.body.get("response_format"):
            return Reply(json.dumps({"ok": True, "word": "yes"}))
        return Reply("Fine, thanks.")

    with StubLLMServer(served_models=["smollm2"], responder=respond) as stub:
        good = f"openai-compatible:smollm2@{stub.openai_base_url}"
        checks = asyncio.run(run_doctor(Settings(client_model=good, grader_model=good)))
        wrong = f"openai-compatible:llama3@{stub.openai_base_url}"
        bad = asyncio.run(run_doctor(Settings(client_model=wrong, grader_model="offline")))
    names = {c.name: c.outcome for c in checks}
    assert names == {"reachable": "ok", "model listed": "ok", "completion": "ok",
                     "streaming": "ok", "structured output": "ok", "concurrency": "note"}
    assert all(c.role == "both" for c in checks)
    fix = [c for c in bad if c.outcome == "fix"]
    assert len(fix) == 1 and fix[0].name == "model listed"
    assert "serves smollm2" in fix[0].line() and "--model_alias" in fix[0].line()
    assert [c.outcome for c in bad if c.role == "grader"] == ["ok"]  # offline: nothing to check


def test_doctor_says_when_no_server_is_listening_or_a_key_is_missing() -> None:
    import socket

    from simulator.llm.doctor import run_doctor

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    checks = asyncio.run(run_doctor(Settings(
        client_model=f"openai-compatible:m@http://127.0.0.1:{port}/v1",
        grader_model="anthropic:claude-sonnet-4-5")))
    lines = [c.line() for c in checks]
    assert lines[0].startswith("FIX  client reachable:") and "start the server" in lines[0]
    assert lines[1].startswith("FIX  grader key:") and "ANTHROPIC_API_KEY" in lines[1]


def test_single_slot_bench_serves_replies_first_and_loses_nothing() -> None:
    from simulator.bench.single_slot import format_text, run_single_slot_bench

    r = run_single_slot_bench(turns=6, latency_ms=60, warmup=1)
    assert r.lost_turns == 0 and r.errors == [] and r.grades_ok == 6
    assert r.server_max_running == 1
    assert r.slot_wait_ms["p95"] < 30  # the reply never queued behind a grade at the server
    # every grade (the warm-up turn's too) answered once; a grade preempted before its request
    # left sent nothing
    assert 7 <= r.grade_requests <= 7 + r.preempted_grades
    assert "first client token / model latency" in format_text(r)


def test_a_server_that_does_not_know_the_model_says_so(tmp_path: Path) -> None:
    with StubLLMServer(default=Fault.http(404, "The model `llama3` does not exist")) as stub:
        spec = f"openai-compatible:llama3@{stub.openai_base_url}"
        p = practice_for(settings_for(tmp_path, spec))
        sid = p.start("ana", "test-dana")
        events = asyncio.run(collect(p.turn(sid, "ana", TURNS[0])))
        p.store.close()
    assert events[-1].kind == "error"
    assert "is not known to the server (HTTP 404)" in events[-1].text
    assert "(1 request sent)" in events[-1].text and "Fix the model name" in events[-1].text
