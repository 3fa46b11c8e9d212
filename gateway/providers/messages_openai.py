"""Anthropic Messages in, an OpenAI-format upstream (OpenAI, Azure OpenAI) out, translated both ways.

Request: `system` becomes a system message; text and image blocks become content parts; `tool_use`
blocks become `tool_calls`, `tool_result` blocks tool messages (placed before the rest of their user
turn, as OpenAI requires); tools become function tools; `stop_sequences` becomes `stop`;
`metadata.user_id` becomes `user`. Thinking blocks and the `thinking` option are dropped (OpenAI-format
chat models have no equivalent to send them to). What has no OpenAI form -- documents, server tools,
more than four stop sequences -- makes the request untranslatable for this route (the router skips it).

Answer: text and tool calls become text and tool_use blocks; finish reasons map stop -> end_turn,
length -> max_tokens, tool_calls -> tool_use, content_filter -> refusal; usage becomes input/output
tokens (cached prompt tokens as cache_read_input_tokens). Stream: chunks become message_start,
content_block_start/delta/stop per block, message_delta (stop reason, usage) and message_stop.
"""

from __future__ import annotations

import json
from typing import Any

from gateway.chat import ChatRequest
from gateway.chat import from_body as chat_request
from gateway.jsontext import compact
from gateway.messages import MessagesRequest, text_of
from gateway.providers.anthropic_messages import error_frame
from gateway.providers.base import Answer, BadUpstreamAnswer, StreamState, UpstreamRequest, Usage, json_object
from gateway.providers.openai import OpenAIAdapter, parse_completion, parse_usage
from gateway.providers.sse import Event
from gateway.providers.wire import OpenAIWire
from gateway.settings import ProviderSettings

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}


class Untranslatable(ValueError):
    """The request uses something the OpenAI format cannot express."""


def chat_body(request: MessagesRequest) -> dict[str, Any]:
    """The Messages request as an OpenAI Chat Completions body (without max_tokens: the adapter sets it)."""
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    for message in request.messages:
        content = message["content"]
        if isinstance(content, str):
            messages.append({"role": message["role"], "content": content})
        elif message["role"] == "user":
            messages.extend(_user_turn(content))
        else:
            messages.append(_assistant_turn(content))
    source = request.body
    body: dict[str, Any] = {"model": request.model, "messages": messages, "stream": request.stream}
    for name in ("temperature", "top_p"):
        if source.get(name) is not None:
            body[name] = source[name]
    stops = source.get("stop_sequences")
    if stops:
        if len(stops) > 4:
            raise Untranslatable("more than four stop sequences")
        body["stop"] = stops
    if source.get("tools"):
        body["tools"] = [_tool(t) for t in source["tools"]]
    choice = source.get("tool_choice")
    if isinstance(choice, dict):
        kind = choice.get("type")
        if kind == "tool":
            body["tool_choice"] = {"type": "function", "function": {"name": str(choice.get("name", ""))}}
        elif kind in ("auto", "any", "none"):
            body["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[kind]
        if choice.get("disable_parallel_tool_use") is True and source.get("tools"):
            body["parallel_tool_calls"] = False
    metadata = source.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        body["user"] = metadata["user_id"]
    return body


def _user_turn(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    tools: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for block in blocks:
        kind = block["type"]
        if kind == "text":
            parts.append({"type": "text", "text": block["text"]})
        elif kind == "image":
            parts.append({"type": "image_url", "image_url": {"url": _image_url(block["source"])}})
        elif kind == "tool_result":
            result = text_of(block.get("content"))
            if block.get("is_error") is True:
                result = "Error: " + result
            tools.append({"role": "tool", "tool_call_id": block["tool_use_id"], "content": result})
        else:
            raise Untranslatable(f"{kind} blocks")
    return tools + ([{"role": "user", "content": parts}] if parts else [])


def _assistant_turn(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in blocks:
        kind = block["type"]
        if kind == "text":
            text.append(block["text"])
        elif kind == "tool_use":
            arguments = json.dumps(block.get("input") or {})
            calls.append(
                {"id": block["id"], "type": "function", "function": {"name": block["name"], "arguments": arguments}}
            )
        elif kind not in ("thinking", "redacted_thinking"):
            raise Untranslatable(f"{kind} blocks")
    turn: dict[str, Any] = {"role": "assistant", "content": "".join(text) or None}
    if calls:
        turn["tool_calls"] = calls
    return turn


def _image_url(source: dict[str, Any]) -> str:
    if source.get("type") == "base64" and isinstance(source.get("data"), str):
        return f"data:{source.get('media_type', 'image/png')};base64,{source['data']}"
    if source.get("type") == "url" and isinstance(source.get("url"), str):
        return str(source["url"])
    raise Untranslatable("image source")


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    if tool.get("type") not in (None, "custom"):
        raise Untranslatable("server tools")
    schema = tool.get("input_schema") or {"type": "object", "properties": {}}
    function = {"name": tool["name"], "description": str(tool.get("description", "")), "parameters": schema}
    return {"type": "function", "function": function}


def message_usage(usage: Usage | None) -> dict[str, int]:
    if usage is None:
        return {"input_tokens": 0, "output_tokens": 0}
    return {
        "input_tokens": usage.prompt_tokens - usage.cached_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
        "output_tokens": usage.completion_tokens,
    }


class MessagesViaOpenAI:
    def __init__(self, wire: OpenAIWire) -> None:
        self._chat = OpenAIAdapter(wire)

    def _chat_request(self, request: MessagesRequest) -> ChatRequest:
        return chat_request(chat_body(request))

    def build(
        self, request: MessagesRequest, provider: ProviderSettings, upstream_model: str, max_tokens: int
    ) -> UpstreamRequest:
        return self._chat.build(self._chat_request(request), provider, upstream_model, max_tokens)

    def parse(self, body: bytes, request: MessagesRequest) -> Answer:
        answer = parse_completion(body)
        return message_of(answer.completion, answer.usage, request.model)

    def translator(self, request: MessagesRequest, *, keep_text: bool) -> OpenAIToMessagesStream:
        return OpenAIToMessagesStream(request.model, keep_text=keep_text)


def message_of(completion: dict[str, Any], usage: Usage | None, model: str) -> Answer:
    """An OpenAI chat completion as an Anthropic message."""
    choices = completion.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise BadUpstreamAnswer("completion has no choices")
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        raise BadUpstreamAnswer("a choice has no message")
    blocks: list[dict[str, Any]] = []
    if message.get("content"):
        blocks.append({"type": "text", "text": message["content"]})
    for call in message.get("tool_calls") or []:
        blocks.append(_tool_use(call))
    reason = choice.get("finish_reason")
    result = {
        "id": "msg_" + str(completion.get("id", "")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": STOP_REASONS.get(reason, "end_turn") if isinstance(reason, str) else "end_turn",
        "stop_sequence": None,
        "usage": message_usage(usage),
    }
    return Answer(result, compact(result), usage)


def _tool_use(call: Any) -> dict[str, Any]:
    if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
        raise BadUpstreamAnswer("a tool call is not an object")
    function = call["function"]
    try:
        arguments = json.loads(function.get("arguments") or "{}")
    except (TypeError, ValueError):
        raise BadUpstreamAnswer("a tool call's arguments are not JSON") from None
    return {
        "type": "tool_use",
        "id": str(call.get("id", "")),
        "name": str(function.get("name", "")),
        "input": arguments,
    }


def sse_event(name: str, payload: dict[str, Any]) -> bytes:
    return f"event: {name}\n".encode() + b"data: " + compact(payload) + b"\n\n"


class OpenAIToMessagesStream:
    def __init__(self, model: str, *, keep_text: bool) -> None:
        self.state = StreamState(keep_text=keep_text)
        self._model = model
        self._started = False
        self._block: str | None = None  # the open block's type
        self._index = -1
        self._stop = "end_turn"

    def translate(self, event: Event) -> list[bytes]:
        if event.data == "[DONE]":
            self.state.finished = True
            return []
        chunk = json_object(event.data, "stream chunk")
        if isinstance(chunk.get("error"), dict):
            raise BadUpstreamAnswer("provider reported an error mid-stream")
        out: list[bytes] = []
        if not self._started:
            self._started = True
            message: dict[str, Any] = {
                "id": "msg_" + str(chunk.get("id", "")),
                "type": "message",
                "role": "assistant",
                "model": self._model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 0, "output_tokens": 0},
            }
            out.append(sse_event("message_start", {"type": "message_start", "message": message}))
        usage = parse_usage(chunk.get("usage"))
        if usage is not None:
            self.state.usage = usage
        choices = chunk.get("choices") or []
        if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
            raise BadUpstreamAnswer("stream chunk choices are not a list of objects")
        for choice in choices:
            delta = choice.get("delta") or {}
            if not isinstance(delta, dict):
                raise BadUpstreamAnswer("stream chunk delta is not an object")
            content = delta.get("content")
            if isinstance(content, str) and content:
                out.extend(self._open("text", {"type": "text", "text": ""}))
                out.append(self._delta({"type": "text_delta", "text": content}))
                self.state.deltas += 1
                if self.state.keep_text:
                    self.state.text.append(content)
            for call in delta.get("tool_calls") or []:
                if not isinstance(call, dict) or not isinstance(call.get("function", {}), dict):
                    raise BadUpstreamAnswer("a streamed tool call is not an object")
                function = call.get("function") or {}
                if call.get("id"):
                    block = {
                        "type": "tool_use",
                        "id": str(call["id"]),
                        "name": str(function.get("name", "")),
                        "input": {},
                    }
                    out.extend(self._open("tool_use", block, new=True))
                arguments = function.get("arguments")
                if isinstance(arguments, str) and arguments and self._block == "tool_use":
                    out.append(self._delta({"type": "input_json_delta", "partial_json": arguments}))
                self.state.deltas += 1
            reason = choice.get("finish_reason")
            if isinstance(reason, str):
                self._stop = STOP_REASONS.get(reason, "end_turn")
        return out

    def _open(self, kind: str, block: dict[str, Any], *, new: bool = False) -> list[bytes]:
        if self._block == kind and not new:
            return []
        out = self._close_block()
        self._index += 1
        self._block = kind
        start = {"type": "content_block_start", "index": self._index, "content_block": block}
        return [*out, sse_event("content_block_start", start)]

    def _close_block(self) -> list[bytes]:
        if self._block is None:
            return []
        self._block = None
        return [sse_event("content_block_stop", {"type": "content_block_stop", "index": self._index})]

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return sse_event("content_block_delta", {"type": "content_block_delta", "index": self._index, "delta": delta})

    def close(self) -> list[bytes]:
        usage = message_usage(self.state.usage)
        delta = {"type": "message_delta", "delta": {"stop_reason": self._stop, "stop_sequence": None}, "usage": usage}
        return [
            *self._close_block(),
            sse_event("message_delta", delta),
            sse_event("message_stop", {"type": "message_stop"}),
        ]

    def error(self, message: str) -> bytes:
        return error_frame(message)
