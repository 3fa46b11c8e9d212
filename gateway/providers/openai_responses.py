"""OpenAI Responses upstream (OpenAI and Azure): bodies and events pass through.

The gateway sets the provider's model name and, when the client set none, `max_output_tokens` to the
cap it reserved for. Whole answers are checked and relayed untouched. Streamed events are relayed as
they come (re-framed, the event name kept); the gateway reads them for metering only:

    response.created / in_progress       the response id (for follow-ups)
    *.delta, output_item.added (a call)  content: counted, so a cut stream is still charged
    response.completed / incomplete      final usage; the stream's end
    response.failed, error               a failed attempt (before the first content: fail over)

Usage: prompt = input_tokens (cached_tokens among them), completion = output_tokens (reasoning among them).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from gateway.jsontext import compact
from gateway.providers.base import (
    Answer,
    BadUpstreamAnswer,
    StreamState,
    UpstreamRequest,
    Usage,
    json_object,
    non_negative_int,
)
from gateway.providers.openai import usage_detail as _detail
from gateway.providers.sse import Event, frame
from gateway.providers.wire import AzureWire, OpenAIWire
from gateway.responses_api import ResponsesRequest
from gateway.settings import ProviderSettings

TERMINAL = ("response.completed", "response.incomplete")
FAILED = ("response.failed", "error")


class ResponsesAdapter:
    def __init__(self, wire: OpenAIWire) -> None:
        self.wire = wire

    def _url(self, provider: ProviderSettings, upstream_model: str, path: str) -> str:
        if isinstance(self.wire, AzureWire):  # resource-wide: the deployment is the body's model
            return self.wire.resource_url(provider, path)
        return self.wire.url(provider, upstream_model, path)

    def build(
        self, request: ResponsesRequest, provider: ProviderSettings, upstream_model: str, max_tokens: int
    ) -> UpstreamRequest:
        body = {**request.body, "model": upstream_model}
        body.setdefault("max_output_tokens", max_tokens)
        data = compact(body)
        headers = self.wire.headers(provider, stream=request.stream)
        return UpstreamRequest(self._url(provider, upstream_model, "responses"), headers, data)

    def stored(self, provider: ProviderSettings, response_id: str, method: str) -> UpstreamRequest:
        """GET or DELETE a stored response at the provider that produced it."""
        path = "responses/" + quote(response_id, safe="")
        return UpstreamRequest(self._url(provider, "", path), self.wire.headers(provider), b"", method)

    def parse(self, body: bytes, request: ResponsesRequest) -> Answer:
        answer = json_object(body, "response")
        if not isinstance(answer.get("output"), list) or not all(isinstance(i, dict) for i in answer["output"]):
            raise BadUpstreamAnswer("response has no list of output items")
        if answer.get("status") == "failed":
            raise BadUpstreamAnswer("the provider's response failed")
        response_id = answer.get("id")
        return Answer(
            answer, body, parse_usage(answer.get("usage")), response_id if isinstance(response_id, str) else None
        )

    def translator(self, request: ResponsesRequest, *, keep_text: bool) -> ResponsesStream:
        return ResponsesStream(keep_text=keep_text)


def parse_usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    prompt, completion = non_negative_int(raw.get("input_tokens")), non_negative_int(raw.get("output_tokens"))
    if prompt is None or completion is None:
        return None
    cached = _detail(raw.get("input_tokens_details"), "cached_tokens", prompt)
    reasoning = _detail(raw.get("output_tokens_details"), "reasoning_tokens", completion)
    return Usage(prompt, completion, cached_tokens=cached, reasoning_tokens=reasoning)


class ResponsesStream:
    def __init__(self, *, keep_text: bool) -> None:
        self.state = StreamState(keep_text=keep_text)

    def translate(self, event: Event) -> list[bytes]:
        if not event.data:
            return []
        data = json_object(event.data, "stream event")
        kind = data.get("type", event.event)
        if not isinstance(kind, str):
            raise BadUpstreamAnswer("stream event has no type")
        if kind in FAILED:
            raise BadUpstreamAnswer("provider reported an error mid-stream")
        response = data.get("response")
        if kind in ("response.created", "response.in_progress") and isinstance(response, dict):
            if isinstance(response.get("id"), str):
                self.state.response_id = response["id"]
        elif kind.endswith(".delta"):
            self.state.deltas += 1
            delta = data.get("delta")
            if kind == "response.output_text.delta" and self.state.keep_text and isinstance(delta, str):
                self.state.text.append(delta)
        elif kind == "response.output_item.added":
            item = data.get("item")
            if isinstance(item, dict) and item.get("type") not in ("message", "reasoning"):
                self.state.deltas += 1  # a tool call's start: content the client receives
        elif kind in TERMINAL:
            if not isinstance(response, dict):
                raise BadUpstreamAnswer("terminal event without its response")
            self.state.usage = parse_usage(response.get("usage"))
            if isinstance(response.get("id"), str):
                self.state.response_id = response["id"]
            self.state.finished = True
        return [event.raw]

    def close(self) -> list[bytes]:
        return []

    def error(self, message: str) -> bytes:
        return b"event: error\n" + frame({"type": "error", "code": "upstream_error", "message": message, "param": None})
