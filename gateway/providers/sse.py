"""Incremental Server-Sent Events parsing and framing."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

MAX_EVENT_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Event:
    event: str
    data: str
    raw: bytes  # the event exactly as received, for untouched pass-through


class SSEParser:
    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[Event]:
        self._buffer += chunk.replace(b"\r\n", b"\n")
        events: list[Event] = []
        while True:
            end = self._buffer.find(b"\n\n")
            if end < 0:
                if len(self._buffer) > MAX_EVENT_BYTES:
                    raise ValueError("SSE event over the size limit")
                return events
            raw, self._buffer = self._buffer[: end + 2], self._buffer[end + 2 :]
            event = _parse(raw)
            if event is not None:
                events.append(event)

    @property
    def pending(self) -> bool:
        return bool(self._buffer.strip())


def _parse(raw: bytes) -> Event | None:
    name, data = "message", []
    for line in raw.decode("utf-8", errors="replace").split("\n"):
        if not line or line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
    if not data and name == "message":
        return None
    return Event(name, "\n".join(data), raw)


def frame(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


DONE = b"data: [DONE]\n\n"
