"""Stand-in providers: real HTTP servers on 127.0.0.1 that speak OpenAI, Azure OpenAI or Anthropic.

Used by `gateway demo`, the tests and the benchmarks. Each answers
deterministically and can be scripted per request: latency, an error status,
429 with Retry-After, a stall, a stream cut after N events, usage missing,
an error body that quotes the prompt (as some providers do), a redirect, an
answer written in pieces, a stream of keep-alives only, or raw bytes exactly
as given (for property tests of what no honest provider would send).
"""

from __future__ import annotations

import asyncio
import functools
import json
import threading
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from aiohttp import web

from gateway.chat import from_body
from gateway.demo.standin_apis import (
    anthropic_tool_block,
    embeddings_answer,
    openai_tool_message,
    response_id,
    response_object,
    responses_events,
)
from gateway.demo.standin_bedrock import converse_answer, converse_events, sigv4_problem
from gateway.demo.stream_events import anthropic_events, openai_events, sse
from gateway.embeddings import from_body as embeddings_request
from gateway.errors import InvalidRequest
from gateway.metering.tokens import TokenCounter
from gateway.responses_api import from_body as responses_request

Kind = Literal["openai", "azure_openai", "anthropic", "bedrock"]
# the AWS credentials a Bedrock stand-in verifies signatures against (tests and the demo export them)
STANDIN_AWS = {"AWS_ACCESS_KEY_ID": "AKIDSTANDIN000000000", "AWS_SECRET_ACCESS_KEY": "standin-secret-key"}
STANDIN_REGION = "us-east-1"
STALL_SECONDS = 60.0
T = TypeVar("T")


@dataclass(frozen=True)
class Behavior:
    status: int = 200
    latency: float = 0.0  # seconds before the answer starts
    stall: bool = False  # never answer (until the client gives up)
    retry_after: str | None = None  # Retry-After header value on a 429
    stream_cut_after: int | None = None  # close a stream after this many content events
    usage: bool = True  # report usage
    echo_prompt_in_error: bool = False  # put the prompt text into an error body
    text: str = "Stand-in answer: all good."
    chunk_delay: float = 0.0  # seconds between stream events
    usage_override: dict[str, Any] | None = None  # report this usage instead (e.g. absurd values)
    prompt_scale: float = 1.0  # non-stream answers bill this multiple of the counted prompt (estimate errors)
    redirect_to: str | None = None  # answer 307 with this Location
    pieces: int = 1  # write a non-stream answer in this many pieces...
    piece_delay: float = 0.0  # ...this many seconds apart
    keepalive_only: bool = False  # a stream of keep-alives (SSE comments, Anthropic pings) that never has content
    raw: Raw | None = None  # answer exactly this
    tool_call: tuple[str, str] | None = None  # answer with a call of this tool (name, JSON arguments)
    aws_error: str | None = None  # Bedrock: the x-amzn-ErrorType of an error status (ThrottlingException ...)


@dataclass(frozen=True)
class Raw:
    """An answer given byte for byte: status, headers, and the body in the pieces it is written in."""

    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    chunks: tuple[bytes, ...] = ()
    chunk_delay: float = 0.0


@dataclass
class Received:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: dict[str, Any]
    billed: int = 0  # tokens this provider would bill: prompt + completion actually sent


@dataclass
class StandIn:
    name: str
    kind: Kind
    default: Behavior = field(default_factory=Behavior)
    port: int = 0
    received: list[Received] = field(default_factory=list)
    stored: dict[str, dict[str, Any]] = field(default_factory=dict)  # Responses API: what it holds, by id
    in_flight: int = 0
    max_in_flight: int = 0  # the most requests this stand-in was answering at once
    _script: deque[Behavior] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def script(self, *behaviors: Behavior) -> None:
        """The next requests get these behaviours, in order; then the default again."""
        with self._lock:
            self._script.extend(behaviors)

    def set_default(self, behavior: Behavior) -> None:
        with self._lock:
            self.default = behavior
            self._script.clear()

    def reset(self) -> None:
        self.set_default(Behavior())
        self.received.clear()
        self.max_in_flight = self.in_flight

    def next_behavior(self) -> Behavior:
        with self._lock:
            return self._script.popleft() if self._script else self.default

    @property
    def base_url(self) -> str:
        root = f"http://127.0.0.1:{self.port}"
        return root + "/v1" if self.kind == "openai" else root

    @property
    def count(self) -> int:
        return len(self.received)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        if self.kind == "bedrock":
            app.router.add_post("/model/{model}/converse", self._handle)
            app.router.add_post("/model/{model}/converse-stream", self._handle)
            return app
        if self.kind == "anthropic":
            app.router.add_post("/v1/messages", self._handle)
            return app
        if self.kind == "azure_openai":
            for api in ("chat/completions", "embeddings"):
                app.router.add_post(f"/openai/deployments/{{deployment}}/{api}", self._handle)
            root = "/openai"
        else:
            for api in ("chat/completions", "embeddings"):
                app.router.add_post(f"/v1/{api}", self._handle)
            root = "/v1"
        app.router.add_post(f"{root}/responses", self._handle)
        app.router.add_get(f"{root}/responses/{{rid}}", self._stored)
        app.router.add_delete(f"{root}/responses/{{rid}}", self._stored)
        return app

    async def _stored(self, request: web.Request) -> web.Response:
        body: dict[str, Any] = {}
        self.received.append(Received(request.path, dict(request.query), dict(request.headers), body))
        rid = request.match_info["rid"]
        found = self.stored.get(rid)
        if found is None:
            return web.json_response({"error": {"type": "invalid_request_error", "message": "not found"}}, status=404)
        if request.method == "DELETE":
            del self.stored[rid]
            return web.json_response({"id": rid, "object": "response.deleted", "deleted": True})
        return web.json_response(found)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._answer(request)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw)
        received = Received(request.path, dict(request.query), dict(request.headers), body)
        self.received.append(received)
        if self.kind == "bedrock":
            key, secret = STANDIN_AWS["AWS_ACCESS_KEY_ID"], STANDIN_AWS["AWS_SECRET_ACCESS_KEY"]
            problem = sigv4_problem(request.method, request.raw_path, request.headers, raw, key, secret, STANDIN_REGION)
            if problem is not None:
                error = {"message": f"invalid signature: {problem}"}
                return web.json_response(error, status=403, headers={"x-amzn-ErrorType": "InvalidSignatureException"})
        behavior = self.next_behavior()
        if behavior.stall:
            await asyncio.sleep(STALL_SECONDS)  # cancelled as soon as the client gives up
        if behavior.latency:
            await asyncio.sleep(behavior.latency)
        if behavior.redirect_to is not None:
            return web.Response(status=307, headers={"Location": behavior.redirect_to})
        if behavior.raw is not None:
            return await self._raw(request, behavior.raw)
        if behavior.status != 200:
            return self._error(behavior, body)
        if behavior.keepalive_only:
            return await self._keepalives(request)
        model = body.get("model") or request.match_info.get("deployment", "deployment")
        api = "embeddings" if request.path.endswith("/embeddings") else ""
        api = "responses" if request.path.endswith("/responses") else api
        prompt_tokens = self._prompt_tokens(body, api)
        words = behavior.text.split(" ")
        if behavior.tool_call is not None:
            words = [behavior.tool_call[1]]  # one content event: the call
        usage = behavior.usage_override or {"prompt_tokens": prompt_tokens, "completion_tokens": len(words)}
        if self.kind == "bedrock":
            return await self._bedrock(request, behavior, words, usage, received)
        if api == "embeddings":
            received.billed = usage["prompt_tokens"]
            return web.json_response(embeddings_answer(body, model, usage["prompt_tokens"]))
        if body.get("stream"):
            received.billed = usage["prompt_tokens"]
            return await self._stream(request, behavior, model, words, usage, received, api)
        if api == "responses":
            received.billed = usage["prompt_tokens"] + usage["completion_tokens"]
            made = response_object(response_id(), model, behavior.text, usage if behavior.usage else None)
            if body.get("store", True):
                self.stored[made["id"]] = made
            return web.json_response(made)
        if behavior.prompt_scale != 1.0 and behavior.usage_override is None:
            usage = {**usage, "prompt_tokens": round(usage["prompt_tokens"] * behavior.prompt_scale)}
        received.billed = usage["prompt_tokens"] + usage["completion_tokens"]
        if self.kind == "anthropic":
            answer: dict[str, Any] = {
                "id": "msg_standin",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [{"type": "text", "text": behavior.text}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
            }
            if behavior.tool_call is not None:
                answer["content"] = [anthropic_tool_block(*behavior.tool_call)]
                answer["stop_reason"] = "tool_use"
            if behavior.usage:
                answer["usage"] = {"input_tokens": usage["prompt_tokens"], "output_tokens": usage["completion_tokens"]}
        else:
            answer = {
                "id": "chatcmpl-standin",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": behavior.text}, "finish_reason": "stop"}
                ],
            }
            if behavior.tool_call is not None:
                answer["choices"][0].update(
                    message=openai_tool_message(*behavior.tool_call), finish_reason="tool_calls"
                )
            if behavior.usage:
                answer["usage"] = {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]}
        if behavior.pieces > 1:
            data = json.dumps(answer).encode()
            size = -(-len(data) // behavior.pieces)
            chunks = tuple(data[i : i + size] for i in range(0, len(data), size))
            return await self._raw(
                request, Raw(200, (("Content-Type", "application/json"),), chunks, behavior.piece_delay)
            )
        return web.json_response(answer)

    async def _bedrock(
        self, request: web.Request, behavior: Behavior, words: list[str], usage: dict[str, Any], received: Received
    ) -> web.StreamResponse:
        reported = usage if behavior.usage else None
        if not request.path.endswith("/converse-stream"):
            received.billed = usage["prompt_tokens"] + usage["completion_tokens"]
            return web.json_response(converse_answer(behavior.text, reported, behavior.tool_call))
        received.billed = usage["prompt_tokens"]
        response = web.StreamResponse(headers={"Content-Type": "application/vnd.amazon.eventstream"})
        await response.prepare(request)
        sent = 0
        for is_content, event in converse_events(words, reported, behavior.tool_call):
            if behavior.stream_cut_after is not None and is_content and sent >= behavior.stream_cut_after:
                if request.transport is not None:
                    request.transport.close()
                return response
            await response.write(event)
            sent += int(is_content)
            received.billed += int(is_content)
            if behavior.chunk_delay:
                await asyncio.sleep(behavior.chunk_delay)
        await response.write_eof()
        return response

    async def _raw(self, request: web.Request, raw: Raw) -> web.StreamResponse:
        response = web.StreamResponse(status=raw.status, headers=dict(raw.headers))
        response.enable_chunked_encoding()
        await response.prepare(request)
        for chunk in raw.chunks:
            await response.write(chunk)
            if raw.chunk_delay:
                await asyncio.sleep(raw.chunk_delay)
        await response.write_eof()
        return response

    async def _keepalives(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        ping = sse({"type": "ping"}, "ping") if self.kind == "anthropic" else b": keep-alive\n\n"
        for _ in range(int(STALL_SECONDS / 0.05)):  # bounded: stops by itself after STALL_SECONDS
            await response.write(ping)
            await asyncio.sleep(0.05)
        await response.write_eof()
        return response

    def _error(self, behavior: Behavior, body: dict[str, Any]) -> web.Response:
        headers = {"Retry-After": behavior.retry_after} if behavior.retry_after is not None else {}
        if self.kind == "bedrock":
            default = {429: "ThrottlingException", 400: "ValidationException"}.get(
                behavior.status, "InternalServerException"
            )
            headers["x-amzn-ErrorType"] = (
                behavior.aws_error or default
            ) + ":http://internal.amazon.com/coral/com.amazon.bedrock/"
        message = "stand-in failure"
        if behavior.echo_prompt_in_error:
            message = "could not process: " + json.dumps(body.get("messages"))
        payload = {
            "error": {"type": "server_error" if behavior.status >= 500 else "invalid_request_error", "message": message}
        }
        return web.json_response(payload, status=behavior.status, headers=headers)

    def _prompt_tokens(self, body: dict[str, Any], api: str = "") -> int:
        """OpenAI-shaped stand-ins count prompts as OpenAI does (the gateway's own counter mirrors that);
        the Anthropic stand-in counts differently, as the real one does."""
        if api:
            model = str(body.get("model") or "gpt-4o")
            try:
                named = {**body, "model": model}  # Azure bodies name no model: the deployment does
                parsed = embeddings_request(named) if api == "embeddings" else responses_request(named)
            except InvalidRequest:
                return _prompt_tokens(body)
            return _counter().prompt_tokens(parsed, model)
        if self.kind != "anthropic":
            try:
                model = str(body.get("model") or "gpt-4o")  # Azure bodies name no model: the deployment does
                return _counter().prompt_tokens(from_body({**body, "model": model}), model)
            except InvalidRequest:
                pass
        return _prompt_tokens(body)

    async def _stream(
        self,
        request: web.Request,
        behavior: Behavior,
        model: str,
        words: list[str],
        usage: dict[str, Any],
        received: Received,
        api: str = "",
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        if api == "responses":
            rid = response_id()
            events = responses_events(rid, model, words, usage if behavior.usage else None)
            self.stored[rid] = response_object(rid, model, " ".join(words), usage)
        elif self.kind == "anthropic":
            events = anthropic_events(model, words, usage, behavior)
        else:
            events = openai_events(model, words, usage, behavior)
        content_sent = 0
        for is_content, event in events:
            if behavior.stream_cut_after is not None and is_content and content_sent >= behavior.stream_cut_after:
                transport = request.transport
                if transport is not None:
                    transport.close()  # cut mid-stream, no terminating chunk
                return response
            await response.write(event)
            content_sent += int(is_content)
            received.billed += int(is_content)
            if behavior.chunk_delay:
                await asyncio.sleep(behavior.chunk_delay)
        await response.write_eof()
        return response


@functools.cache
def _counter() -> TokenCounter:
    return TokenCounter()


def _prompt_tokens(body: dict[str, Any]) -> int:
    text = json.dumps(body.get("messages", [])) + json.dumps(body.get("system", ""))
    return max(1, len(text) // 4)


async def serve_local(app: web.Application, port: int = 0) -> tuple[web.AppRunner, int]:
    """Serve an aiohttp app on 127.0.0.1 (a free port unless given); returns the runner to clean up, and the port."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    server = site._server
    assert server is not None
    return runner, int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]


class BackgroundLoop:
    """An event loop in a daemon thread, to serve stand-ins beside synchronous code (tests, benchmarks)."""

    def __init__(self, name: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 15.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


class StandInServers:
    """Several stand-ins served from one event loop (the caller's, or a thread of their own)."""

    def __init__(self, standins: list[StandIn]) -> None:
        self.standins = {s.name: s for s in standins}
        self._runners: list[web.AppRunner] = []
        self._background: BackgroundLoop | None = None

    def __getitem__(self, name: str) -> StandIn:
        return self.standins[name]

    async def start(self) -> None:
        _counter()  # load the tokenizer now: a first request must not pay for it (tests run 1 s timeouts)
        for standin in self.standins.values():
            runner, standin.port = await serve_local(standin.app(), standin.port)
            self._runners.append(runner)

    async def stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()

    def start_in_thread(self) -> StandInServers:
        self._background = BackgroundLoop("standins")
        self._background.run(self.start())
        return self

    def stop_thread(self) -> None:
        if self._background is not None:
            self._background.run(self.stop())
            self._background.close()
            self._background = None


def demo_standins() -> list[StandIn]:
    """The four providers the shipped policy data names, as stand-ins."""
    return [
        StandIn("openai-us", "openai"),
        StandIn("azure-us-east", "azure_openai"),
        StandIn("azure-eu-west", "azure_openai"),
        StandIn("anthropic-us", "anthropic"),
    ]


def provider_config(
    standin: StandIn, *, timeout_seconds: float = 10.0, tokens_per_minute: int = 2_000_000
) -> dict[str, Any]:
    """The gateway config entry pointing at a stand-in, with realistic model mappings."""
    models = {
        "openai": {
            "gpt-4o": "gpt-4o-2024-08-06",
            "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
            "text-embedding-3-small": "text-embedding-3-small",
        },
        "azure_openai": {
            "gpt-4o": "gpt4o-prod",
            "gpt-4o-mini": "gpt4o-mini-prod",
            "text-embedding-3-small": "embed-small-prod",
        },
        "anthropic": {"claude-sonnet-4": "claude-sonnet-4-20250514"},
        "bedrock": {"claude-sonnet-4": "anthropic.claude-sonnet-4-20250514-v1:0"},
    }[standin.kind]
    extra = {"region": STANDIN_REGION} if standin.kind == "bedrock" else {}
    return {
        **extra,
        "name": standin.name,
        "kind": standin.kind,
        "base_url": standin.base_url,
        "api_key_env": f"STANDIN_{standin.name.upper().replace('-', '_')}_KEY",
        "models": models,
        "limits": {"tokens_per_minute": tokens_per_minute, "requests_per_minute": 100_000},
        "timeout_seconds": timeout_seconds,
        "connect_timeout_seconds": 2.0,
    }
