"""A loopback stand-in for the OpenAI and Anthropic HTTP APIs, with faults you can script.

Why: every provider path (client realizer, grader, load tests) must be exercised through the real
``openai`` and ``anthropic`` SDKs (via ChatOpenAI / ChatAnthropic) without any network. This
server speaks just enough of both wire formats: ``POST /v1/chat/completions`` (OpenAI, JSON or SSE
stream, text or tool calls, usage) and ``POST /v1/messages`` (Anthropic, JSON or SSE event
stream, text or tool_use), plus ``GET /v1/models``.

Use::

    from stub_llm_server import StubLLMServer, Reply, Fault

    with StubLLMServer(default=Reply("Hi.")) as stub:
        stub.enqueue(Fault.rate_limited(retry_after=0.05), Reply("after the retry"))
        ChatOpenAI(base_url=stub.openai_base_url, api_key="k", model="m")
        ChatAnthropic(base_url=stub.anthropic_base_url, api_key="k", model="m")
        stub.requests[-1].body        # what the SDK sent (parsed JSON)

Each request takes the next enqueued item (FIFO); when the queue is empty, ``responder(request)``
decides if given, else ``default``. Faults: HTTP status (429 with Retry-After, 500 ...),
connection reset, hang before any byte, hang mid-stream after some chunks, malformed JSON, empty
reply, a context-overflow error inside an open stream. Hangs end when the server stops (or after
``hang_max_s``), so tests never leak threads.

Behaviours of real local servers, as constructor options:

* ``latency_s`` and ``slots``: every request waits ``latency_s`` before its first byte, and at
  most ``slots`` requests are served at once (the rest queue), like llama.cpp with one slot. A
  request whose client hangs up while it waits gives its slot back (as llama.cpp and vLLM do).
* ``interrupt_requests``: a running stream is ended early (``[DONE]`` without a finish reason)
  when another request arrives, as llama-cpp-python's server does by default.
* ``context_window``: a request whose prompt (estimated at 4 characters a token) plus
  ``max_tokens`` exceeds it fails inside the opened stream, with llama.cpp's message.
* ``served_models``: what ``GET /v1/models`` lists (the server answers any name regardless).
* ``Reply(endless=True)``: a model that never stops talking: it streams until ``max_tokens``
  (finish reason ``length``) or, when none is sent, until the client or the server gives up.

As a pytest fixture (in a test module or a conftest)::

    @pytest.fixture
    def stub_llm() -> Iterator[StubLLMServer]:
        with StubLLMServer(hang_max_s=10.0) as server:
            yield server
"""

from __future__ import annotations

import json
import math
import select
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

Api = Literal["openai", "anthropic"]


@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any]


@dataclass
class Reply:
    """A successful answer. ``chunks`` (default: word by word) is how a stream splits ``text``."""

    text: str = "Hello."
    tool_calls: list[ToolCall] = field(default_factory=list)
    chunks: list[str] | None = None
    chunk_delay_s: float = 0.0
    endless: bool = False
    """Repeat ``text`` word by word until ``max_tokens`` words (or forever when none is sent)."""

    def pieces(self) -> list[str]:
        if self.chunks is not None:
            return self.chunks
        words = self.text.split(" ")
        return [w if i == 0 else " " + w for i, w in enumerate(words)] if self.text else []


FaultKind = Literal["status", "reset", "hang", "hang_mid_stream", "malformed", "empty",
                    "context_overflow"]


@dataclass
class Fault:
    """Something going wrong. Build with the class methods below."""

    kind: FaultKind
    status: int = 500
    retry_after: float | None = None
    message: str = "stub fault"
    text: str = "I was saying something and then"
    after_chunks: int = 2

    @classmethod
    def http(cls, status: int, message: str = "stub error",
             retry_after: float | None = None) -> Fault:
        return cls("status", status=status, message=message, retry_after=retry_after)

    @classmethod
    def rate_limited(cls, retry_after: float | None = 0.05) -> Fault:
        """429 with ``retry-after-ms`` (and a whole-second ``Retry-After``) when ``retry_after``."""
        return cls("status", status=429, message="rate limited", retry_after=retry_after)

    @classmethod
    def server_error(cls, status: int = 500) -> Fault:
        return cls("status", status=status, message="internal error")

    @classmethod
    def reset(cls) -> Fault:
        """Read the request, then reset the TCP connection (RST) without answering."""
        return cls("reset")

    @classmethod
    def hang(cls) -> Fault:
        """Read the request, then send nothing until the client gives up (or the server stops)."""
        return cls("hang")

    @classmethod
    def hang_mid_stream(cls, text: str = "I was saying something and then",
                        after_chunks: int = 2) -> Fault:
        """Stream ``after_chunks`` chunks of ``text``, then stall (non-stream requests: hang)."""
        return cls("hang_mid_stream", text=text, after_chunks=after_chunks)

    @classmethod
    def malformed(cls) -> Fault:
        """HTTP 200 with a body (or SSE data line) that is not JSON."""
        return cls("malformed")

    @classmethod
    def empty(cls) -> Fault:
        """HTTP 200, a well-formed reply whose text is empty."""
        return cls("empty")

    @classmethod
    def context_overflow(cls, requested: int = 4144, window: int = 4096) -> Fault:
        """Open the stream, then an error event with llama.cpp's overflow message (non-stream
        requests: HTTP 400 with the same message)."""
        return cls("context_overflow", status=400, message=(
            f"Requested tokens ({requested}) exceed context window of {window}"))


Item = Reply | Fault


@dataclass
class RecordedRequest:
    api: Api | None
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    stream: bool
    outcome: str = ""
    arrived: float = 0.0
    """``time.perf_counter()`` when the request was read."""
    started: float = 0.0
    """When its slot was granted (equal to ``arrived`` without ``slots``)."""

    def messages(self) -> list[dict[str, Any]]:
        return list((self.body or {}).get("messages", []))

    def system_text(self) -> str:
        """The system prompt as one string, for either API."""
        body = self.body or {}
        if self.api == "anthropic":
            system = body.get("system", "")
            if isinstance(system, list):
                return "\n".join(b.get("text", "") for b in system)
            return str(system)
        return "\n".join(_text(m.get("content")) for m in self.messages()
                         if m.get("role") in ("system", "developer"))


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


class StubLLMServer:
    """An OpenAI- and Anthropic-compatible HTTP server on 127.0.0.1 in a background thread."""

    def __init__(self, default: Item | None = None,
                 responder: Callable[[RecordedRequest], Item] | None = None,
                 hang_max_s: float = 30.0, *, latency_s: float = 0.0, slots: int | None = None,
                 interrupt_requests: bool = False, context_window: int | None = None,
                 served_models: list[str] | None = None) -> None:
        self.default: Item = default or Reply()
        self.responder = responder
        self.hang_max_s = hang_max_s
        self.latency_s = latency_s
        self.slots = threading.BoundedSemaphore(slots) if slots else None
        self.interrupt_requests = interrupt_requests
        self.context_window = context_window
        self.served_models = served_models
        self.running = 0
        """Requests being served now (after their slot was granted)."""
        self.max_running = 0
        self.gave_up_waiting = 0
        """Requests whose client hung up before their slot or first byte came."""
        self._generation = 0
        self.requests: list[RecordedRequest] = []
        self._queue: deque[Item] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle
    def start(self) -> StubLLMServer:
        handler = type("Handler", (_Handler,), {"stub": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="stub-llm",
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> StubLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # addresses
    @property
    def port(self) -> int:
        assert self._httpd is not None, "start the server first"
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """For ChatOpenAI(base_url=...) / openai.OpenAI(base_url=...)."""
        return self.base_url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """For ChatAnthropic(base_url=...) / anthropic.Anthropic(base_url=...) (SDK adds /v1)."""
        return self.base_url

    # scripting
    def enqueue(self, *items: Item) -> None:
        with self._lock:
            self._queue.extend(items)

    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def _next(self, req: RecordedRequest) -> Item:
        with self._lock:
            self.requests.append(req)
            if self._queue:
                return self._queue.popleft()
        return self.responder(req) if self.responder else self.default

    def _wait(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def _arrived(self) -> int:
        """A request arrived: bump the generation (interrupting streams, if configured)."""
        with self._lock:
            self._generation += 1
            return self._generation

    def _interrupted(self, since: int) -> bool:
        with self._lock:
            return self.interrupt_requests and self._generation != since


class _Handler(BaseHTTPRequestHandler):
    stub: StubLLMServer
    protocol_version = "HTTP/1.1"
    _generation = 0

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # routing
    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            self._json(200, {"object": "list", "data": [
                {"id": m, "object": "model", "created": 0, "owned_by": "stub"}
                for m in self.stub.served_models or []]})
        else:
            self._json(404, {"error": {"message": "not found", "type": "not_found"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = raw.decode("utf-8", "replace")
        path = self.path.split("?", 1)[0].rstrip("/")
        api: Api | None = ("openai" if path.endswith("/chat/completions")
                           else "anthropic" if path.endswith("/messages") else None)
        stream = bool(isinstance(body, dict) and body.get("stream"))
        headers = {k.lower(): v for k, v in self.headers.items()}
        req = RecordedRequest(api, "POST", self.path, headers, body, stream,
                              arrived=time.perf_counter())
        if api is None:
            req.outcome = "404"
            with self.stub._lock:
                self.stub.requests.append(req)
            self._json(404, {"error": {"message": f"no route {path}", "type": "not_found"}})
            return
        self._generation = self.stub._arrived()
        if not self._take_slot(req):
            req.outcome = "client gone"
            with self.stub._lock:
                self.stub.requests.append(req)
                self.stub.gave_up_waiting += 1
            return
        try:
            self._serve(api, req, body, stream)
        finally:
            with self.stub._lock:
                self.stub.running -= 1
            if self.stub.slots is not None:
                self.stub.slots.release()

    def _client_gone(self) -> bool:
        """Has the client closed the connection (readable with nothing to read)?"""
        try:
            ready, _, _ = select.select([self.connection], [], [], 0)
            return bool(ready) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _take_slot(self, req: RecordedRequest) -> bool:
        """Wait for a slot, then ``latency_s``; False when the client hung up meanwhile."""
        stub = self.stub
        if stub.slots is not None:
            while not stub.slots.acquire(timeout=0.005):
                if self._client_gone() or stub._stop.is_set():
                    return False
        req.started = time.perf_counter()
        with stub._lock:
            stub.running += 1
            stub.max_running = max(stub.max_running, stub.running)
        until = time.monotonic() + stub.latency_s
        while time.monotonic() < until:
            if self._client_gone():
                with stub._lock:
                    stub.running -= 1
                if stub.slots is not None:
                    stub.slots.release()
                return False
            time.sleep(min(0.005, max(0.0, until - time.monotonic())))
        return True

    def _overflow(self, body: Any) -> Fault | None:
        window = self.stub.context_window
        if not window or not isinstance(body, dict):
            return None
        prompt = (len(json.dumps(body.get("messages", ""))) + len(str(body.get("system", "")))) // 4
        wanted = body.get("max_tokens") or body.get("max_completion_tokens") or window
        if prompt + int(wanted) > window:
            return Fault.context_overflow(prompt + int(wanted), window)
        return None

    def _serve(self, api: Api, req: RecordedRequest, body: Any, stream: bool) -> None:
        item = self.stub._next(req)
        overflow = self._overflow(body) if not isinstance(item, Fault) else None
        if overflow is not None:
            item = overflow
        req.outcome = item.kind if isinstance(item, Fault) else "reply"
        if isinstance(item, Fault):
            self._fault(api, item, stream, body)
        elif stream:
            self._stream(api, item, body)
        else:
            self._json(200, _openai_body(item, body) if api == "openai"
                       else _anthropic_body(item, body))

    # plain responses
    def _json(self, status: int, obj: Any, extra: dict[str, str] | None = None) -> None:
        data = json.dumps(obj).encode()
        self._raw(status, data, "application/json", extra)

    def _raw(self, status: int, data: bytes, ctype: str,
             extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(data)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    # faults
    def _fault(self, api: Api, f: Fault, stream: bool, body: Any) -> None:
        if f.kind == "status":
            extra = {"x-should-retry": "true"} if f.status in (429, 500, 502, 503, 504) else {}
            if f.retry_after is not None:
                extra["retry-after"] = str(max(1, math.ceil(f.retry_after)))
                extra["retry-after-ms"] = str(int(f.retry_after * 1000))
            kind = {429: "rate_limit_error", 401: "authentication_error",
                    400: "invalid_request_error"}.get(f.status, "api_error")
            err = ({"error": {"message": f.message, "type": kind, "code": None}} if api == "openai"
                   else {"type": "error", "error": {"type": kind, "message": f.message}})
            self._json(f.status, err, extra)
        elif f.kind == "reset":
            self.close_connection = True
            try:
                linger = struct.pack("ii", 1, 0)
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                self.connection.close()
            except OSError:
                pass
        elif f.kind == "hang" or (f.kind == "hang_mid_stream" and not stream):
            self.close_connection = True
            self.stub._wait(self.stub.hang_max_s)
        elif f.kind == "hang_mid_stream":
            pieces = Reply(f.text).pieces()[: f.after_chunks]
            self._stream(api, Reply(f.text, chunks=pieces), body, finish=False)
            self.stub._wait(self.stub.hang_max_s)
        elif f.kind == "malformed":
            if stream:
                self._sse_start()
                self._sse_write(b"data: {this is not json\n\n")
            else:
                self._raw(200, b'{"id": "x", "choices": [ {not json', "application/json")
        elif f.kind == "context_overflow":
            if stream:
                self._sse_start()
                self._event({"error": {"message": f.message, "type": "invalid_request_error",
                                       "code": 400}})
            else:
                self._json(400, {"error": {"message": f.message, "type": "invalid_request_error",
                                           "code": None}})
        elif f.kind == "empty":
            if stream:
                self._stream(api, Reply("", chunks=[]), body)
            else:
                empty = Reply("")
                self._json(200, _openai_body(empty, body) if api == "openai"
                           else _anthropic_body(empty, body))

    # streaming
    def _sse_start(self) -> None:
        self.close_connection = True
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        self.wfile.flush()

    def _sse_write(self, data: bytes) -> None:
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:
            pass

    def _event(self, obj: Any, event: str | None = None) -> None:
        head = f"event: {event}\n" if event else ""
        self._sse_write(f"{head}data: {json.dumps(obj)}\n\n".encode())

    def _stream(self, api: Api, r: Reply, body: Any, finish: bool = True) -> None:
        self._sse_start()
        model = (body or {}).get("model", "stub-model") if isinstance(body, dict) else "stub-model"
        if api == "openai":
            self._stream_openai(r, body, model, finish)
        else:
            self._stream_anthropic(r, body, model, finish)

    def _delay(self, r: Reply) -> None:
        if r.chunk_delay_s:
            time.sleep(r.chunk_delay_s)

    def _pieces(self, r: Reply, limit: Any) -> Iterator[str]:
        """The reply's pieces; an endless reply repeats its words up to ``limit`` (or until the
        client hangs up, the server stops, or ``hang_max_s`` passes)."""
        if not r.endless:
            yield from r.pieces()
            return
        words = (r.text or "and").split()
        started = time.monotonic()
        n = 0
        while limit is None or n < int(limit):
            if self.stub._stop.is_set() or time.monotonic() - started > self.stub.hang_max_s:
                return
            if n % 16 == 0 and self._client_gone():
                return
            yield (" " if n else "") + words[n % len(words)]
            n += 1

    def _stream_openai(self, r: Reply, body: Any, model: str, finish: bool) -> None:
        base = {"id": "chatcmpl-stub", "object": "chat.completion.chunk",
                "created": int(time.time()), "model": model}

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> None:
            self._event({**base, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                              "finish_reason": finish_reason}]})

        chunk({"role": "assistant", "content": ""})
        limit = None
        if isinstance(body, dict):
            limit = body.get("max_tokens") or body.get("max_completion_tokens")
        sent = 0
        for piece in self._pieces(r, limit):
            self._delay(r)
            if self.stub._interrupted(self._generation) or self.stub._stop.is_set():
                self._sse_write(b"data: [DONE]\n\n")  # llama-cpp-python: no finish reason
                return
            chunk({"content": piece})
            sent += 1
        if r.endless and limit is not None and sent >= int(limit):
            chunk({}, "length")
            self._sse_write(b"data: [DONE]\n\n")
            return
        for i, tc in enumerate(r.tool_calls):
            chunk({"tool_calls": [{"index": i, "id": f"call_{i}", "type": "function",
                                   "function": {"name": tc.name, "arguments": ""}}]})
            args = json.dumps(tc.arguments)
            chunk({"tool_calls": [{"index": i, "function": {"arguments": args}}]})
        if not finish:
            return
        chunk({}, "tool_calls" if r.tool_calls else "stop")
        if isinstance(body, dict) and (body.get("stream_options") or {}).get("include_usage"):
            self._event({**base, "choices": [], "usage": _usage_openai(r, body)})
        self._sse_write(b"data: [DONE]\n\n")

    def _stream_anthropic(self, r: Reply, body: Any, model: str, finish: bool) -> None:
        usage = _usage_anthropic(r, body)
        self._event({"type": "message_start", "message": {
            "id": "msg_stub", "type": "message", "role": "assistant", "content": [], "model": model,
            "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": usage["input_tokens"], "output_tokens": 1}}}, "message_start")
        index = 0
        if r.pieces() or not r.tool_calls:
            self._event({"type": "content_block_start", "index": 0,
                         "content_block": {"type": "text", "text": ""}}, "content_block_start")
            self._event({"type": "ping"}, "ping")
            for piece in r.pieces():
                self._delay(r)
                self._event({"type": "content_block_delta", "index": 0,
                             "delta": {"type": "text_delta", "text": piece}}, "content_block_delta")
            if not finish:
                return
            self._event({"type": "content_block_stop", "index": 0}, "content_block_stop")
            index = 1
        for i, tc in enumerate(r.tool_calls, start=index):
            self._event({"type": "content_block_start", "index": i, "content_block": {
                "type": "tool_use", "id": f"toolu_{i}", "name": tc.name, "input": {}}},
                "content_block_start")
            self._event({"type": "content_block_delta", "index": i, "delta": {
                "type": "input_json_delta", "partial_json": json.dumps(tc.arguments)}},
                "content_block_delta")
            self._event({"type": "content_block_stop", "index": i}, "content_block_stop")
        if not finish:
            return
        self._event({"type": "message_delta",
                     "delta": {"stop_reason": "tool_use" if r.tool_calls else "end_turn",
                               "stop_sequence": None},
                     "usage": {"output_tokens": usage["output_tokens"]}}, "message_delta")
        self._event({"type": "message_stop"}, "message_stop")


def _words(x: Any) -> int:
    return len(json.dumps(x).split()) if x else 0


def _usage_openai(r: Reply, body: Any) -> dict[str, int]:
    prompt = _words((body or {}).get("messages")) if isinstance(body, dict) else 0
    completion = len(r.text.split()) + sum(_words(t.arguments) for t in r.tool_calls)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


def _usage_anthropic(r: Reply, body: Any) -> dict[str, int]:
    u = _usage_openai(r, body)
    return {"input_tokens": u["prompt_tokens"], "output_tokens": u["completion_tokens"]}


def _openai_body(r: Reply, body: Any) -> dict[str, Any]:
    model = body.get("model", "stub-model") if isinstance(body, dict) else "stub-model"
    message: dict[str, Any] = {"role": "assistant", "content": r.text if not r.tool_calls or r.text
                               else None}
    if r.tool_calls:
        message["tool_calls"] = [
            {"id": f"call_{i}", "type": "function",
             "function": {"name": t.name, "arguments": json.dumps(t.arguments)}}
            for i, t in enumerate(r.tool_calls)]
    return {"id": "chatcmpl-stub", "object": "chat.completion", "created": int(time.time()),
            "model": model, "usage": _usage_openai(r, body),
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": "tool_calls" if r.tool_calls else "stop"}]}


def _anthropic_body(r: Reply, body: Any) -> dict[str, Any]:
    model = body.get("model", "stub-model") if isinstance(body, dict) else "stub-model"
    content: list[dict[str, Any]] = []
    if r.text or not r.tool_calls:
        content.append({"type": "text", "text": r.text})
    content += [{"type": "tool_use", "id": f"toolu_{i}", "name": t.name, "input": t.arguments}
                for i, t in enumerate(r.tool_calls)]
    return {"id": "msg_stub", "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": "tool_use" if r.tool_calls else "end_turn",
            "stop_sequence": None, "usage": _usage_anthropic(r, body)}

