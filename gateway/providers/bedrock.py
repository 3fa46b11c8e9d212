"""AWS Bedrock upstream (`kind: bedrock`): the Converse and ConverseStream APIs, SigV4-signed.

Chat Completions and Anthropic Messages both route here. Request: OpenAI messages become Converse
messages (system -> `system`, text and base64 images -> content blocks, tool calls -> `toolUse`, tool
messages -> `toolResult`), `max_tokens`/`temperature`/`top_p`/`stop` -> `inferenceConfig`, tools ->
`toolConfig`; Messages requests are first put into the OpenAI form (messages_openai.py). Image URLs
(not inline data) have no Converse form: untranslatable, the router skips the route.

Answer: `output.message` becomes an OpenAI completion (or, for Messages, an Anthropic message), with
stop reasons end_turn/stop_sequence -> stop, max_tokens -> length, tool_use -> tool_calls,
guardrail_intervened/content_filtered -> content_filter; usage from `usage` (input + cache read +
cache write tokens as the prompt). Stream: AWS event-stream frames (decoded by botocore) whose
`:event-type` is messageStart, contentBlockStart/Delta/Stop, messageStop and metadata (usage); an
exception frame is a failed attempt.

Signing and credentials are botocore's (the standard chain: environment, shared config and
credentials files, profiles, container and instance roles), resolved once and refreshed by botocore.
Errors: ThrottlingException (429) is a cool-down like any 429, ValidationException (400) a 400,
ModelNotReadyException a failover (forward.py reads `x-amzn-ErrorType`).
"""

from __future__ import annotations

import json
import threading
from typing import Any, cast
from urllib.parse import quote

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.eventstream import EventStreamBuffer

from gateway.chat import ChatRequest, text_of
from gateway.chat import from_body as chat_request
from gateway.jsontext import compact
from gateway.messages import MessagesRequest
from gateway.providers.base import (
    Answer,
    BadUpstreamAnswer,
    StreamState,
    UpstreamRequest,
    Usage,
    chat_error_frame,
    json_object,
    non_negative_int,
    now,
)
from gateway.providers.messages_openai import OpenAIToMessagesStream, chat_body, message_of
from gateway.providers.sse import DONE, Event, frame
from gateway.settings import ProviderSettings

STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/gif": "gif", "image/webp": "webp"}


class Untranslatable(ValueError):
    """The request uses something Converse cannot express."""


class NoAwsCredentials(RuntimeError):
    """The standard AWS credential chain found nothing."""


_lock = threading.Lock()
_credentials: Credentials | None = None


def aws_credentials() -> Credentials:
    """The standard chain's credentials, resolved once per process (botocore refreshes temporary ones)."""
    global _credentials
    with _lock:
        if _credentials is None:
            found = botocore.session.get_session().get_credentials()
            if found is None:
                raise NoAwsCredentials("no AWS credentials in the standard chain")
            _credentials = found
        return _credentials


def reset_credentials() -> None:
    global _credentials
    with _lock:
        _credentials = None


def signed(provider: ProviderSettings, url: str, body: bytes, headers: dict[str, str]) -> dict[str, str]:
    """`headers` plus SigV4's (Authorization, X-Amz-Date, X-Amz-Security-Token) for a POST of `body` to `url`."""
    request = AWSRequest(method="POST", url=url, data=body, headers=headers)
    frozen = aws_credentials().get_frozen_credentials()
    SigV4Auth(
        Credentials(frozen.access_key or "", frozen.secret_key or "", frozen.token), "bedrock", provider.region or ""
    ).add_auth(request)
    return dict(request.headers.items())


def converse_body(request: ChatRequest, max_tokens: int) -> dict[str, Any]:
    system: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    for message in request.messages:
        role = message["role"]
        if role in ("system", "developer"):
            system.append({"text": text_of(message.get("content"))})
            continue
        if role in ("tool", "function"):
            result = {
                "toolUseId": str(message.get("tool_call_id", "")),
                "content": [{"text": text_of(message.get("content"))}],
            }
            _append(messages, "user", [{"toolResult": result}])
            continue
        blocks = _blocks(message.get("content"))
        for call in message.get("tool_calls") or []:
            try:
                arguments = json.loads(call["function"].get("arguments") or "{}")
            except ValueError:
                raise Untranslatable("tool call arguments that are not JSON") from None
            blocks.append({"toolUse": {"toolUseId": call["id"], "name": call["function"]["name"], "input": arguments}})
        _append(messages, "assistant" if role == "assistant" else "user", blocks)
    body: dict[str, Any] = {"messages": messages}
    if system:
        body["system"] = system
    source = request.body
    config: dict[str, Any] = {"maxTokens": request.max_tokens or max_tokens}
    if source.get("temperature") is not None:
        config["temperature"] = min(1.0, float(source["temperature"]))
    if source.get("top_p") is not None:
        config["topP"] = source["top_p"]
    stop = source.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else stop
    body["inferenceConfig"] = config
    if source.get("tools"):
        tools = [
            {
                "toolSpec": {
                    "name": t["function"]["name"],
                    "description": t["function"].get("description") or t["function"]["name"],
                    "inputSchema": {"json": t["function"].get("parameters") or {"type": "object", "properties": {}}},
                }
            }
            for t in source["tools"]
        ]
        tool_config: dict[str, Any] = {"tools": tools}
        choice = source.get("tool_choice")
        if choice == "required":
            tool_config["toolChoice"] = {"any": {}}
        elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
            tool_config["toolChoice"] = {"tool": {"name": choice["function"].get("name", "")}}
        elif choice in (None, "auto"):
            tool_config["toolChoice"] = {"auto": {}}
        if choice != "none":
            body["toolConfig"] = tool_config
    return body


def _append(messages: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    """Converse wants alternating roles: consecutive turns of one role are merged."""
    if not blocks:
        blocks = [{"text": ""}] if role == "user" else []
        if not blocks:
            return
    if messages and messages[-1]["role"] == role:
        messages[-1]["content"].extend(blocks)
    else:
        messages.append({"role": role, "content": blocks})


def _blocks(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for part in content:
        if part.get("type") == "text":
            blocks.append({"text": part.get("text", "")})
        elif part.get("type") == "image_url":
            url = str((part.get("image_url") or {}).get("url", ""))
            media, _, data = url[5:].partition(";base64,") if url.startswith("data:") else ("", "", "")
            if media not in IMAGE_FORMATS or not data:
                raise Untranslatable("images other than inline png, jpeg, gif or webp")
            blocks.append({"image": {"format": IMAGE_FORMATS[media], "source": {"bytes": data}}})
        else:
            raise Untranslatable(f"{part.get('type')} parts")
    return blocks


def parse_usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    prompt, completion = non_negative_int(raw.get("inputTokens")), non_negative_int(raw.get("outputTokens"))
    if prompt is None or completion is None:
        return None
    cached = non_negative_int(raw.get("cacheReadInputTokens")) or 0
    written = non_negative_int(raw.get("cacheWriteInputTokens")) or 0
    return Usage(prompt + cached + written, completion, cached_tokens=cached)


def completion_of(answer: dict[str, Any], model: str) -> tuple[dict[str, Any], Usage | None]:
    """A Converse answer as an OpenAI chat completion, and its usage."""
    output = answer.get("output")
    message = output.get("message") if isinstance(output, dict) else None
    if not isinstance(message, dict) or not isinstance(message.get("content"), list):
        raise BadUpstreamAnswer("converse answer has no output message")
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in message["content"]:
        if not isinstance(block, dict):
            raise BadUpstreamAnswer("a content block is not an object")
        if isinstance(block.get("text"), str):
            text.append(block["text"])
        elif isinstance(block.get("toolUse"), dict):
            use = block["toolUse"]
            function = {"name": str(use.get("name", "")), "arguments": json.dumps(use.get("input") or {})}
            calls.append({"id": str(use.get("toolUseId", "")), "type": "function", "function": function})
    usage = parse_usage(answer.get("usage"))
    reply: dict[str, Any] = {"role": "assistant", "content": "".join(text) or None}
    if calls:
        reply["tool_calls"] = calls
    reason = STOP_REASONS.get(str(answer.get("stopReason")), "stop")
    completion = {
        "id": "chatcmpl-bedrock",
        "object": "chat.completion",
        "created": now(),
        "model": model,
        "choices": [{"index": 0, "message": reply, "finish_reason": reason, "logprobs": None}],
    }
    if usage is not None:
        total = usage.prompt_tokens + usage.completion_tokens
        completion["usage"] = {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": total,
        }
    return completion, usage


class EventStreamDecoder:
    """AWS event-stream frames (botocore's decoder checks lengths and CRCs) as events: the name is
    `:event-type`, or `exception` for an exception frame; the data is the JSON payload."""

    def __init__(self) -> None:
        self._buffer = EventStreamBuffer()

    def feed(self, chunk: bytes) -> list[Event]:
        self._buffer.add_data(chunk)
        events: list[Event] = []
        for message in self._buffer:
            headers = cast(dict[str, Any], message.headers)  # the stubs have this one wrong
            kind = headers.get(":message-type")
            name = "exception" if kind in ("exception", "error") else str(headers.get(":event-type", ""))
            events.append(Event(name, message.payload.decode("utf-8", errors="replace"), b""))
        return events


class ConverseChunks:
    """ConverseStream events as OpenAI chat chunk objects; usage and progress in `state`."""

    def __init__(self, model: str, state: StreamState) -> None:
        self.state = state
        self._model = model
        self._created = now()
        self._tools: dict[int, int] = {}  # content block index -> tool_calls index
        self._stop: str | None = None

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return {
            "id": "chatcmpl-bedrock",
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "choices": [choice],
        }

    def chunks(self, event: Event) -> list[dict[str, Any]]:
        if event.event == "exception":
            raise BadUpstreamAnswer("provider reported an error mid-stream")
        data = json_object(event.data or "{}", "stream event")
        index = data.get("contentBlockIndex", 0)
        if event.event == "messageStart":
            return [self._chunk({"role": "assistant", "content": ""})]
        if event.event == "contentBlockStart":
            start = (data.get("start") or {}).get("toolUse")
            if isinstance(start, dict):
                self.state.deltas += 1
                position = self._tools[int(index)] = len(self._tools)
                call = {
                    "index": position,
                    "id": str(start.get("toolUseId", "")),
                    "type": "function",
                    "function": {"name": str(start.get("name", "")), "arguments": ""},
                }
                return [self._chunk({"tool_calls": [call]})]
            return []
        if event.event == "contentBlockDelta":
            delta = data.get("delta")
            if not isinstance(delta, dict):
                raise BadUpstreamAnswer("contentBlockDelta without a delta")
            self.state.deltas += 1
            if isinstance(delta.get("text"), str):
                if self.state.keep_text:
                    self.state.text.append(delta["text"])
                return [self._chunk({"content": delta["text"]})]
            use = delta.get("toolUse")
            if isinstance(use, dict):
                arguments = {
                    "index": self._tools.get(int(index), 0),
                    "function": {"arguments": str(use.get("input", ""))},
                }
                return [self._chunk({"tool_calls": [arguments]})]
            return []
        if event.event == "messageStop":
            self._stop = STOP_REASONS.get(str(data.get("stopReason")), "stop")
            return [self._chunk({}, self._stop)]
        if event.event == "metadata":
            self.state.usage = parse_usage(data.get("usage"))
            self.state.finished = True
        return []

    def usage_chunk(self) -> dict[str, Any] | None:
        u = self.state.usage
        if u is None:
            return None
        usage = {
            "prompt_tokens": u.prompt_tokens,
            "completion_tokens": u.completion_tokens,
            "total_tokens": u.prompt_tokens + u.completion_tokens,
        }
        return {**self._chunk({}), "choices": [], "usage": usage}


class BedrockChatStream:
    def __init__(self, model: str, *, client_wants_usage: bool, keep_text: bool) -> None:
        self.state = StreamState(keep_text=keep_text)
        self._chunks = ConverseChunks(model, self.state)
        self._client_wants_usage = client_wants_usage

    def translate(self, event: Event) -> list[bytes]:
        return [frame(c) for c in self._chunks.chunks(event)]

    def close(self) -> list[bytes]:
        usage = self._chunks.usage_chunk() if self._client_wants_usage else None
        return ([frame(usage)] if usage else []) + [DONE]

    def error(self, message: str) -> bytes:
        return chat_error_frame(message)


class BedrockMessagesStream:
    """ConverseStream -> OpenAI chunks -> Anthropic events (the same translation as an OpenAI upstream's)."""

    def __init__(self, model: str, *, keep_text: bool) -> None:
        self._messages = OpenAIToMessagesStream(model, keep_text=keep_text)
        self.state = self._messages.state
        self._chunks = ConverseChunks(model, StreamState())

    def translate(self, event: Event) -> list[bytes]:
        out: list[bytes] = []
        for chunk in self._chunks.chunks(event):
            out.extend(self._messages.translate(Event("", json.dumps(chunk), b"")))
        inner = self._chunks.state
        if inner.usage is not None:
            self.state.usage = inner.usage
        if inner.finished:
            self.state.finished = True
        return out

    def close(self) -> list[bytes]:
        return self._messages.close()

    def error(self, message: str) -> bytes:
        return self._messages.error(message)


class BedrockAdapter:
    """Chat Completions to Bedrock's Converse."""

    def request(
        self, provider: ProviderSettings, upstream_model: str, body: dict[str, Any], *, stream: bool
    ) -> UpstreamRequest:
        operation = "converse-stream" if stream else "converse"
        url = f"{provider.url.rstrip('/')}/model/{quote(upstream_model, safe='')}/{operation}"
        data = compact(body)
        accept = "application/vnd.amazon.eventstream" if stream else "application/json"
        headers = signed(provider, url, data, {"Content-Type": "application/json", "Accept": accept})
        return UpstreamRequest(url, headers, data)

    def build(
        self, request: ChatRequest, provider: ProviderSettings, upstream_model: str, max_tokens: int
    ) -> UpstreamRequest:
        return self.request(provider, upstream_model, converse_body(request, max_tokens), stream=request.stream)

    def parse(self, body: bytes, request: ChatRequest) -> Answer:
        completion, usage = completion_of(json_object(body, "converse answer"), request.model)
        return Answer(completion, compact(completion), usage)

    def translator(self, request: ChatRequest, *, keep_text: bool) -> BedrockChatStream:
        return BedrockChatStream(request.model, client_wants_usage=request.include_usage, keep_text=keep_text)

    def decoder(self) -> EventStreamDecoder:
        return EventStreamDecoder()


class BedrockMessagesAdapter:
    """Anthropic Messages to Bedrock's Converse, through the OpenAI form."""

    def __init__(self) -> None:
        self._converse = BedrockAdapter()

    def build(
        self, request: MessagesRequest, provider: ProviderSettings, upstream_model: str, max_tokens: int
    ) -> UpstreamRequest:
        chat = _chat_of(request)
        return self._converse.request(provider, upstream_model, converse_body(chat, max_tokens), stream=request.stream)

    def parse(self, body: bytes, request: MessagesRequest) -> Answer:
        completion, usage = completion_of(json_object(body, "converse answer"), request.model)
        return message_of(completion, usage, request.model)

    def translator(self, request: MessagesRequest, *, keep_text: bool) -> BedrockMessagesStream:
        return BedrockMessagesStream(request.model, keep_text=keep_text)

    def decoder(self) -> EventStreamDecoder:
        return EventStreamDecoder()


def _chat_of(request: MessagesRequest) -> ChatRequest:
    return chat_request(chat_body(request))
