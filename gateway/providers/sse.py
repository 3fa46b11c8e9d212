"""Incremental Server-Sent Events parsing (the WHATWG event-stream rules) and framing.

Lines end in CRLF, LF or a lone CR, and a terminator may be split between two
network reads: a CR that ends one read and the LF that starts the next are one
line break, never two (which would end the event early). A leading BOM is
dropped. A blank line dispatches the event; an event with no `data` line is not
dispatched; comment lines (`:` first) are keep-alives and dispatch nothing.
`raw` is the event's field lines re-joined with LF and a blank line, so a
pass-through adapter forwards a well-formed event whatever the upstream's line
endings were.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.jsontext import compact

MAX_EVENT_BYTES = 4 * 1024 * 1024
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class Event:
    event: str
    data: str
    raw: bytes  # the event's field lines, LF-terminated, for pass-through


class SSEParser:
    def __init__(self) -> None:
        self._partial = b""  # an unterminated line
        self._lines: list[bytes] = []  # field lines of the event being read
        self._size = 0
        self._skip_lf = False  # the last read ended in CR: an LF starting the next read belongs to it
        self._started = False

    def feed(self, chunk: bytes) -> list[Event]:
        """Events completed by this chunk. ValueError when one event grows past MAX_EVENT_BYTES."""
        if not chunk:
            return []
        if self._skip_lf:
            self._skip_lf = False
            chunk = chunk[1:] if chunk[:1] == b"\n" else chunk
        data = self._partial + chunk
        if not self._started:
            if len(data) < len(_BOM) and _BOM.startswith(data):
                self._partial = data
                return []
            self._started = True
            data = data[len(_BOM) :] if data.startswith(_BOM) else data
        if b"\r" in data:
            self._skip_lf = data.endswith(b"\r")
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = data.split(b"\n")
        self._partial = lines.pop()
        events: list[Event] = []
        for line in lines:
            if line:
                self._lines.append(line)
                self._size += len(line) + 1
            elif self._lines:
                event = _dispatch(self._lines)
                self._lines, self._size = [], 0
                if event is not None:
                    events.append(event)
        if self._size + len(self._partial) > MAX_EVENT_BYTES:
            raise ValueError("SSE event over the size limit")
        return events

    @property
    def pending(self) -> bool:
        """Part of an event was read but not yet terminated."""
        return bool(self._lines or self._partial)


def _dispatch(lines: list[bytes]) -> Event | None:
    name, data, has_data, kept = "message", [], False, []
    for line in lines:
        if line.startswith(b":"):
            continue
        kept.append(line)
        field, colon, value = line.partition(b":")
        if colon and value.startswith(b" "):
            value = value[1:]
        if field == b"event":
            name = value.decode("utf-8", errors="replace") or "message"
        elif field == b"data":
            data.append(value.decode("utf-8", errors="replace"))
            has_data = True
    if not has_data:
        return None
    return Event(name, "\n".join(data), b"\n".join(kept) + b"\n\n")


def frame(payload: dict[str, Any]) -> bytes:
    return b"data: " + compact(payload) + b"\n\n"


DONE = b"data: [DONE]\n\n"
