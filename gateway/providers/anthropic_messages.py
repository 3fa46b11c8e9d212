"""Anthropic Messages in, Anthropic Messages upstream: bodies and events pass through.

The gateway sets the provider's model name and its own `anthropic-version`; it forwards the client's
`anthropic-beta` flags (features, not credentials). Whole answers are checked and relayed untouched;
streamed events are relayed as they come and read for metering: prompt = input + cache tokens
(message_start, message_delta), completion = the last message_delta's cumulative output_tokens
(message_start's `output_tokens: 1` is a placeholder), content = text/JSON/thinking deltas and tool_use
starts, the end = message_stop; an `error` event is a failed attempt.
"""

from __future__ import annotations

from gateway.jsontext import compact
from gateway.messages import MessagesRequest
from gateway.providers.anthropic import ANTHROPIC_VERSION, parse_usage, stream_event
from gateway.providers.base import Answer, BadUpstreamAnswer, StreamState, UpstreamRequest, json_object
from gateway.providers.sse import Event, frame
from gateway.settings import ProviderSettings


def error_frame(message: str) -> bytes:
    """An Anthropic stream's error event."""
    return b"event: error\n" + frame({"type": "error", "error": {"type": "api_error", "message": message}})


class MessagesAdapter:
    def build(
        self, request: MessagesRequest, provider: ProviderSettings, upstream_model: str, max_tokens: int
    ) -> UpstreamRequest:
        body = {**request.body, "model": upstream_model, "max_tokens": request.max_tokens or max_tokens}
        headers = {"Content-Type": "application/json", "anthropic-version": ANTHROPIC_VERSION}
        if request.beta:
            headers["anthropic-beta"] = request.beta
        key = provider.api_key()
        if key:
            headers["x-api-key"] = key
        url = provider.url.rstrip("/") + "/v1/messages"
        return UpstreamRequest(url, headers, compact(body))

    def parse(self, body: bytes, request: MessagesRequest) -> Answer:
        answer = json_object(body, "message")
        if not isinstance(answer.get("content"), list) or not all(isinstance(b, dict) for b in answer["content"]):
            raise BadUpstreamAnswer("message has no content blocks")
        return Answer(answer, body, parse_usage(answer.get("usage"), None))

    def translator(self, request: MessagesRequest, *, keep_text: bool) -> MessagesStream:
        return MessagesStream(keep_text=keep_text)


class MessagesStream:
    def __init__(self, *, keep_text: bool) -> None:
        self.state = StreamState(keep_text=keep_text)
        self._prompt: int | None = None

    def translate(self, event: Event) -> list[bytes]:
        if not event.data:
            return []
        kind, data = stream_event(event)
        if kind == "message_start":
            message = data.get("message")
            usage = parse_usage(message.get("usage"), None) if isinstance(message, dict) else None
            if usage is not None:  # its output_tokens is a placeholder: the final count comes with message_delta
                self._prompt = self.state.prompt_tokens = usage.prompt_tokens
        elif kind == "content_block_start":
            block = data.get("content_block")
            if isinstance(block, dict) and block.get("type") not in ("text", "thinking", "redacted_thinking"):
                self.state.deltas += 1  # a tool call's name and id
        elif kind == "content_block_delta":
            delta = data.get("delta")
            if not isinstance(delta, dict):
                raise BadUpstreamAnswer("content_block_delta without a delta")
            self.state.deltas += 1
            if self.state.keep_text and delta.get("type") == "text_delta" and isinstance(delta.get("text"), str):
                self.state.text.append(delta["text"])
        elif kind == "message_delta":
            usage = parse_usage(data.get("usage"), self._prompt)
            if usage is not None:
                self.state.usage = usage
        elif kind == "message_stop":
            self.state.finished = True
        return [event.raw]

    def close(self) -> list[bytes]:
        return []

    def error(self, message: str) -> bytes:
        return error_frame(message)
