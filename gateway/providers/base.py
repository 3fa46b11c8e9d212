"""The provider seam: the gateway speaks OpenAI Chat Completions to clients and
each provider's own wire format upstream. An adapter builds the upstream
request, parses a whole answer, and translates a stream event by event into
OpenAI chunks, normalising usage to prompt/completion tokens.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from gateway import jsontext
from gateway.providers.sse import Event, frame
from gateway.settings import ProviderSettings


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    url: str
    headers: dict[str, str]
    body: bytes  # b"" for a GET or DELETE
    method: str = "POST"


@dataclass(slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    reported: bool = True  # False when counted by the gateway (usage missing upstream)
    cached_tokens: int = 0  # of prompt_tokens, read from the provider's prompt cache
    reasoning_tokens: int = 0  # of completion_tokens, spent on reasoning the client does not see


@dataclass(slots=True)
class Answer:
    """A whole (non-stream) answer: the OpenAI-shaped completion, the bytes to send the client, and usage."""

    completion: dict[str, Any]
    body: bytes
    usage: Usage | None  # None when the provider's usage is missing or absurd: the gateway counts instead
    response_id: str | None = None  # a stored response's id (Responses API), for follow-ups to find its provider


class BadUpstreamAnswer(Exception):
    """The provider's answer does not have the shape its API documents."""


@dataclass
class StreamState:
    """What a translator learned from a stream so far."""

    usage: Usage | None = None  # the provider's final usage, once reported
    prompt_tokens: int | None = None  # the provider's prompt count, when it said so before the end
    finished: bool = False  # a terminal event arrived (finish reason / message_stop / [DONE])
    deltas: int = 0  # completion deltas seen, the fallback count when usage is missing
    text: list[str] = field(default_factory=list)  # completion text, kept only when content may be logged
    keep_text: bool = False
    response_id: str | None = None  # a stored response's id (Responses API), once the stream named it


class StreamTranslator(Protocol):
    state: StreamState

    def translate(self, event: Event) -> list[bytes]:
        """OpenAI SSE frames (bytes) to send to the client for one upstream event."""
        ...

    def close(self) -> list[bytes]:
        """Frames to send once the upstream stream ended normally (the usage chunk, [DONE])."""
        ...

    def error(self, message: str) -> bytes:
        """The frame that ends a stream which failed after it started, in the client's API."""
        ...


def chat_error_frame(message: str) -> bytes:
    """A Chat Completions stream's error frame (what OpenAI sends when a stream fails mid-way)."""
    return frame({"error": {"type": "api_error", "code": "upstream_error", "message": message, "param": None}})


R = TypeVar("R", contravariant=True)


class Adapter(Protocol[R]):
    """One client API (R: its parsed request) spoken to one provider kind."""

    def build(
        self, request: R, provider: ProviderSettings, upstream_model: str, max_tokens: int
    ) -> UpstreamRequest: ...

    def parse(self, body: bytes, request: R) -> Answer: ...

    def translator(self, request: R, *, keep_text: bool) -> StreamTranslator: ...


def now() -> int:
    return int(time.time())


def non_negative_int(value: Any) -> int | None:
    """A token count from a provider, or None when it is missing or absurd (never trusted blindly)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > 10_000_000:
        return None
    return value


def answer_text(answer: dict[str, Any]) -> str | None:
    """The text of a whole answer in the client's API (for logging at `content` level and counting):
    a chat completion's first choice, an Anthropic message's text blocks, a Response's output text."""
    if isinstance(answer.get("choices"), list):
        try:
            content = answer["choices"][0]["message"].get("content")
        except (KeyError, IndexError, TypeError, AttributeError):
            return None
        return content if isinstance(content, str) else None
    if answer.get("type") == "message" and isinstance(answer.get("content"), list):
        return "".join(b.get("text", "") for b in answer["content"] if isinstance(b, dict) and b.get("type") == "text")
    if answer.get("object") == "response" and isinstance(answer.get("output"), list):
        texts = [
            part.get("text", "")
            for item in answer["output"]
            if isinstance(item, dict) and isinstance(item.get("content"), list)
            for part in item["content"]
            if isinstance(part, dict) and part.get("type") == "output_text"
        ]
        return "".join(t for t in texts if isinstance(t, str))
    return None


def json_object(raw: bytes | str, what: str) -> dict[str, Any]:
    """A provider's answer or stream event as a JSON object, or BadUpstreamAnswer naming `what`."""
    try:
        value = jsontext.loads(raw)
    except ValueError as exc:
        raise BadUpstreamAnswer(f"{what} is not JSON") from exc
    if not isinstance(value, dict):
        raise BadUpstreamAnswer(f"{what} is not a JSON object")
    return value
