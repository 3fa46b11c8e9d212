"""The provider seam: the gateway speaks OpenAI Chat Completions to clients and
each provider's own wire format upstream. An adapter builds the upstream
request, parses a whole answer, and translates a stream event by event into
OpenAI chunks, normalising usage to prompt/completion tokens.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.chat import ChatRequest
from gateway.providers.sse import Event
from gateway.settings import ProviderSettings


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    url: str
    headers: dict[str, str]
    body: bytes


@dataclass(slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    reported: bool = True  # False when counted by the gateway (usage missing upstream)


@dataclass(slots=True)
class Answer:
    """A whole (non-stream) answer: the OpenAI-shaped completion, the bytes to send the client, and usage."""

    completion: dict[str, Any]
    body: bytes
    usage: Usage | None  # None when the provider's usage is missing or absurd: the gateway counts instead


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


class StreamTranslator(Protocol):
    state: StreamState

    def translate(self, event: Event) -> list[bytes]:
        """OpenAI SSE frames (bytes) to send to the client for one upstream event."""
        ...

    def close(self) -> list[bytes]:
        """Frames to send once the upstream stream ended normally (the usage chunk, [DONE])."""
        ...


class Adapter(Protocol):
    def build(
        self, request: ChatRequest, provider: ProviderSettings, upstream_model: str, max_tokens: int
    ) -> UpstreamRequest: ...

    def parse(self, body: bytes, request: ChatRequest) -> Answer: ...

    def translator(self, request: ChatRequest, *, keep_text: bool) -> StreamTranslator: ...


def now() -> int:
    return int(time.time())


def non_negative_int(value: Any) -> int | None:
    """A token count from a provider, or None when it is missing or absurd (never trusted blindly)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > 10_000_000:
        return None
    return value


def answer_text(completion: dict[str, Any]) -> str | None:
    """The first choice's text of an OpenAI-shaped completion (for logging at `content` level and counting)."""
    try:
        content = completion["choices"][0]["message"].get("content")
    except (KeyError, IndexError, TypeError, AttributeError):
        return None
    return content if isinstance(content, str) else None


def json_object(raw: bytes | str, what: str) -> dict[str, Any]:
    """A provider's answer or stream event as a JSON object, or BadUpstreamAnswer naming `what`."""
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise BadUpstreamAnswer(f"{what} is not JSON") from exc
    if not isinstance(value, dict):
        raise BadUpstreamAnswer(f"{what} is not a JSON object")
    return value
