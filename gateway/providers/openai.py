"""OpenAI Chat Completions upstream: the body passes through with the provider's model name.

Streams pass through event by event, untouched, except that the gateway always
asks for usage (`stream_options.include_usage`) and drops the extra usage-only
chunk when the client did not ask for it.
"""

from __future__ import annotations

from typing import Any

from gateway.chat import ChatRequest
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
)
from gateway.providers.sse import DONE, Event
from gateway.providers.wire import OpenAIWire
from gateway.settings import ProviderSettings

_COMPLETION_TOKENS_ONLY = ("o1", "o3", "o4", "gpt-5")


def upstream_body(request: ChatRequest, upstream_model: str, max_tokens: int, *, include_model: bool = True) -> bytes:
    body = dict(request.body)
    if include_model:
        body["model"] = upstream_model
    else:
        body.pop("model", None)
    if "max_tokens" not in body and "max_completion_tokens" not in body:
        key = "max_completion_tokens" if upstream_model.startswith(_COMPLETION_TOKENS_ONLY) else "max_tokens"
        body[key] = max_tokens
    if request.stream:
        body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    return compact(body)


def parse_usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    prompt, completion = non_negative_int(raw.get("prompt_tokens")), non_negative_int(raw.get("completion_tokens"))
    if prompt is None or completion is None:
        return None
    cached = usage_detail(raw.get("prompt_tokens_details"), "cached_tokens", prompt)
    reasoning = usage_detail(raw.get("completion_tokens_details"), "reasoning_tokens", completion)
    return Usage(prompt, completion, cached_tokens=cached, reasoning_tokens=reasoning)


def usage_detail(details: Any, key: str, ceiling: int) -> int:
    value = non_negative_int(details.get(key)) if isinstance(details, dict) else None
    return min(value or 0, ceiling)


class OpenAIAdapter:
    """OpenAI's own endpoint; Azure OpenAI (azure_openai.py) differs only in its wire (URL, key header, body)."""

    def __init__(self, wire: OpenAIWire | None = None) -> None:
        self.wire = wire or OpenAIWire()

    def build(
        self, request: ChatRequest, provider: ProviderSettings, upstream_model: str, max_tokens: int
    ) -> UpstreamRequest:
        headers = self.wire.headers(provider, stream=request.stream)
        body = upstream_body(request, upstream_model, max_tokens, include_model=self.wire.include_model)
        return UpstreamRequest(self.wire.url(provider, upstream_model, "chat/completions"), headers, body)

    def parse(self, body: bytes, request: ChatRequest) -> Answer:
        return parse_completion(body)

    def translator(self, request: ChatRequest, *, keep_text: bool) -> OpenAIStream:
        return OpenAIStream(client_wants_usage=request.include_usage, keep_text=keep_text)


def parse_completion(body: bytes) -> Answer:
    """Check the provider's completion and keep its bytes: OpenAI-shaped answers go to the client untouched,
    so a value of the wrong type (a content that is not a string, say) is a bad answer, never relayed."""
    answer = json_object(body, "completion")
    choices = answer.get("choices")
    if not isinstance(choices, list):
        raise BadUpstreamAnswer("completion has no choices")
    for choice in choices:
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            raise BadUpstreamAnswer("a choice has no message")
        _check_parts(message)
    return Answer(answer, body, parse_usage(answer.get("usage")))


def _check_parts(message: dict[str, Any]) -> None:
    content, tool_calls = message.get("content"), message.get("tool_calls")
    if content is not None and not isinstance(content, str):
        raise BadUpstreamAnswer("content is not a string")
    if tool_calls is not None and not isinstance(tool_calls, list):
        raise BadUpstreamAnswer("tool_calls is not a list")


class OpenAIStream:
    def __init__(self, *, client_wants_usage: bool, keep_text: bool) -> None:
        self.state = StreamState(keep_text=keep_text)
        self._client_wants_usage = client_wants_usage

    def translate(self, event: Event) -> list[bytes]:
        if event.data == "[DONE]":
            self.state.finished = True
            return []  # sent by close(), after any usage chunk
        chunk = json_object(event.data, "stream chunk")
        if isinstance(chunk.get("error"), dict):
            raise BadUpstreamAnswer("provider reported an error mid-stream")
        choices = chunk.get("choices") or []
        if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
            raise BadUpstreamAnswer("stream chunk choices are not a list of objects")
        usage = parse_usage(chunk.get("usage"))
        if usage is not None:
            self.state.usage = usage
        for choice in choices:
            delta = choice.get("delta")
            delta = {} if delta is None else delta
            if not isinstance(delta, dict):
                raise BadUpstreamAnswer("stream chunk delta is not an object")
            _check_parts(delta)  # relayed untouched: a wrong type here is a bad answer, not the client's problem
            content = delta.get("content")
            if isinstance(content, str) and content:
                self.state.deltas += 1
                if self.state.keep_text:
                    self.state.text.append(content)
            elif delta.get("tool_calls"):
                self.state.deltas += 1
        if usage is not None and not choices and not self._client_wants_usage:
            return []  # the usage-only chunk the gateway asked for on its own behalf
        return [event.raw if event.raw.endswith(b"\n\n") else event.raw + b"\n\n"]

    def error(self, message: str) -> bytes:
        return chat_error_frame(message)

    def close(self) -> list[bytes]:
        return [DONE]
