"""Anthropic Messages API behind an OpenAI-speaking gateway.

Request: system/developer messages become `system`; tool calls become
`tool_use` blocks and tool messages `tool_result` blocks; `max_tokens` is
always set (Anthropic requires it); `stop` becomes `stop_sequences`.
Answer: text and tool_use blocks become an OpenAI message; stop reasons map
end_turn/stop_sequence -> stop, max_tokens -> length, tool_use -> tool_calls.
Stream: message_start, content_block_*, message_delta and message_stop become
OpenAI chunks in order. Usage: prompt = input + cache tokens from
message_start (and message_delta when present), completion = the cumulative
output_tokens of the last message_delta.
"""

from __future__ import annotations

import json
from typing import Any

from gateway.chat import ChatRequest, text_of
from gateway.jsontext import compact
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
from gateway.providers.sse import DONE, Event, frame
from gateway.settings import ProviderSettings

ANTHROPIC_VERSION = "2023-06-01"
STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def _content(content: Any) -> str | list[dict[str, Any]]:
    if isinstance(content, str) or content is None:
        return content or ""
    blocks: list[dict[str, Any]] = []
    for part in content:
        if part.get("type") == "text":
            blocks.append({"type": "text", "text": part.get("text", "")})
        elif part.get("type") == "image_url":
            url = (part.get("image_url") or {}).get("url", "")
            if isinstance(url, str) and url.startswith("data:") and ";base64," in url:
                media, data = url[5:].split(";base64,", 1)
                blocks.append({"type": "image", "source": {"type": "base64", "media_type": media, "data": data}})
            elif isinstance(url, str) and url:
                blocks.append({"type": "image", "source": {"type": "url", "url": url}})
    return blocks


def _messages(request: ChatRequest) -> tuple[str, list[dict[str, Any]]]:
    system: list[str] = []
    out: list[dict[str, Any]] = []
    for message in request.messages:
        role = message["role"]
        if role in ("system", "developer"):
            system.append(text_of(message.get("content")))
            continue
        if role in ("tool", "function"):
            block = {
                "type": "tool_result",
                "tool_use_id": message.get("tool_call_id", ""),
                "content": text_of(message.get("content")),
            }
            if out and out[-1]["role"] == "user" and isinstance(out[-1]["content"], list):
                out[-1]["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
            continue
        content = _content(message.get("content"))
        if role == "assistant" and message.get("tool_calls"):
            blocks = [{"type": "text", "text": content}] if isinstance(content, str) and content else []
            if isinstance(content, list):
                blocks = content
            for call in message["tool_calls"]:
                try:
                    arguments = json.loads(call["function"].get("arguments") or "{}")
                except ValueError:
                    arguments = {}
                blocks.append(
                    {"type": "tool_use", "id": call["id"], "name": call["function"]["name"], "input": arguments}
                )
            content = blocks
        out.append({"role": "assistant" if role == "assistant" else "user", "content": content})
    return "\n\n".join(s for s in system if s), out


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    if choice == "auto":
        return {"type": "auto"}
    if choice == "required":
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        return {"type": "tool", "name": choice["function"].get("name", "")}
    return None


class AnthropicAdapter:
    def build(
        self, request: ChatRequest, provider: ProviderSettings, upstream_model: str, max_tokens: int
    ) -> UpstreamRequest:
        system, messages = _messages(request)
        body: dict[str, Any] = {
            "model": upstream_model,
            "messages": messages,
            "max_tokens": request.max_tokens or max_tokens,
        }
        if system:
            body["system"] = system
        if request.stream:
            body["stream"] = True
        source = request.body
        if source.get("temperature") is not None:
            body["temperature"] = min(1.0, float(source["temperature"]))
        if source.get("top_p") is not None:
            body["top_p"] = source["top_p"]
        stop = source.get("stop")
        if stop:
            body["stop_sequences"] = [stop] if isinstance(stop, str) else stop
        if source.get("tools"):
            body["tools"] = [
                {
                    "name": t["function"]["name"],
                    "description": t["function"].get("description", ""),
                    "input_schema": t["function"].get("parameters") or {"type": "object", "properties": {}},
                }
                for t in source["tools"]
            ]
        if isinstance(source.get("user"), str):
            body["metadata"] = {"user_id": source["user"]}
        choice = _tool_choice(source.get("tool_choice"))
        if choice:
            body["tool_choice"] = choice
        headers = {"Content-Type": "application/json", "anthropic-version": ANTHROPIC_VERSION}
        key = provider.api_key()
        if key:
            headers["x-api-key"] = key
        return UpstreamRequest(provider.url.rstrip("/") + "/v1/messages", headers, compact(body))

    def parse(self, body: bytes, request: ChatRequest) -> Answer:
        answer = json_object(body, "message")
        if not isinstance(answer.get("content"), list):
            raise BadUpstreamAnswer("message has no content")
        usage = parse_usage(answer.get("usage"), None)
        text = "".join(b.get("text", "") for b in answer["content"] if isinstance(b, dict) and b.get("type") == "text")
        calls = [
            {
                "id": b.get("id", ""),
                "type": "function",
                "function": {"name": b.get("name", ""), "arguments": json.dumps(b.get("input") or {})},
            }
            for b in answer["content"]
            if isinstance(b, dict) and b.get("type") == "tool_use"
        ]
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if calls:
            message["tool_calls"] = calls
        completion = {
            "id": answer.get("id", ""),
            "object": "chat.completion",
            "created": now(),
            "model": answer.get("model", ""),
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": STOP_REASONS.get(answer.get("stop_reason") or "", "stop"),
                    "logprobs": None,
                }
            ],
            "usage": _usage_json(usage),
        }
        return Answer(completion, compact(completion), usage)

    def translator(self, request: ChatRequest, *, keep_text: bool) -> AnthropicStream:
        return AnthropicStream(client_wants_usage=request.include_usage, keep_text=keep_text)


def _usage_json(usage: Usage | None) -> dict[str, int] | None:
    if usage is None:
        return None
    total = usage.prompt_tokens + usage.completion_tokens
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens, "total_tokens": total}


def parse_usage(raw: Any, previous_prompt: int | None) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    completion = non_negative_int(raw.get("output_tokens"))
    parts = [
        non_negative_int(raw.get(k)) for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    ]
    prompt = sum(p for p in parts if p is not None) if parts[0] is not None else previous_prompt
    if completion is None or prompt is None:
        return None
    return Usage(prompt, completion)


def stream_event(event: Event) -> tuple[Any, dict[str, Any]]:
    """An Anthropic stream event's type and data; an `error` event is a failed stream."""
    data = json_object(event.data, "stream event")
    kind = data.get("type", event.event)
    if kind == "error":
        raise BadUpstreamAnswer("provider reported an error mid-stream")
    return kind, data


class AnthropicStream:
    def __init__(self, *, client_wants_usage: bool, keep_text: bool) -> None:
        self.state = StreamState(keep_text=keep_text)
        self._client_wants_usage = client_wants_usage
        self._id = ""
        self._model = ""
        self._created = now()
        self._prompt: int | None = None
        self._tool_index: dict[int, int] = {}  # content block index -> OpenAI tool_calls index

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return frame(
            {
                "id": self._id,
                "object": "chat.completion.chunk",
                "created": self._created,
                "model": self._model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
            }
        )

    def translate(self, event: Event) -> list[bytes]:
        if event.event == "ping" or not event.data:
            return []
        kind, data = stream_event(event)
        if kind == "message_start":
            message = data.get("message") or {}
            self._id, self._model = str(message.get("id", "")), str(message.get("model", ""))
            usage = parse_usage(message.get("usage"), None)
            if usage:  # its output_tokens is a placeholder (1): the final count comes with message_delta
                self._prompt = self.state.prompt_tokens = usage.prompt_tokens
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = data.get("content_block") or {}
            if block.get("type") == "tool_use":
                self.state.deltas += 1  # the tool's name and id: content the client receives
                index = len(self._tool_index)
                self._tool_index[int(data.get("index", 0))] = index
                call = {
                    "index": index,
                    "id": block.get("id", ""),
                    "type": "function",
                    "function": {"name": block.get("name", ""), "arguments": ""},
                }
                return [self._chunk({"tool_calls": [call]})]
            return []
        if kind == "content_block_delta":
            delta = data.get("delta") or {}
            if delta.get("type") == "text_delta":
                text = str(delta.get("text", ""))
                self.state.deltas += 1
                if self.state.keep_text:
                    self.state.text.append(text)
                return [self._chunk({"content": text})]
            if delta.get("type") == "input_json_delta":
                self.state.deltas += 1
                index = self._tool_index.get(int(data.get("index", 0)), 0)
                return [
                    self._chunk(
                        {
                            "tool_calls": [
                                {"index": index, "function": {"arguments": str(delta.get("partial_json", ""))}}
                            ]
                        }
                    )
                ]
            return []
        if kind == "message_delta":
            usage = parse_usage(data.get("usage"), self._prompt)
            if usage:
                self.state.usage = usage
            reason = (data.get("delta") or {}).get("stop_reason")
            return [self._chunk({}, STOP_REASONS.get(reason or "", "stop"))]
        if kind == "message_stop":
            self.state.finished = True
        return []

    def error(self, message: str) -> bytes:
        return chat_error_frame(message)

    def close(self) -> list[bytes]:
        frames: list[bytes] = []
        if self._client_wants_usage and self.state.usage:
            u = self.state.usage
            usage = {
                "prompt_tokens": u.prompt_tokens,
                "completion_tokens": u.completion_tokens,
                "total_tokens": u.prompt_tokens + u.completion_tokens,
            }
            frames.append(
                frame(
                    {
                        "id": self._id,
                        "object": "chat.completion.chunk",
                        "created": self._created,
                        "model": self._model,
                        "choices": [],
                        "usage": usage,
                    }
                )
            )
        frames.append(DONE)
        return frames
