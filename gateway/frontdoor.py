"""The HTTP protocol in front of the app: limits on what a client can make the server hold before any
request reaches the gateway's code.

uvicorn's httptools protocol accepts headers of any size and count and waits forever for a request
that never completes its headers. This subclass adds, per connection:

    limit                          answer
    request line + headers bytes   431, connection closed (`listen.max_header_bytes`)
    header count                   431, connection closed (`listen.max_headers`)
    time to complete the headers   408, connection closed (`listen.header_timeout_seconds`), from the
                                   connection's start or the end of the previous response

The body's own deadline and size limit are the app's (pipeline.read_body), since only it knows when
it wants the body. WebSockets are off (`ws="none"` in server.py): an upgrade request is served as
plain HTTP, and nothing logs its URL.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.settings import Listen

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


def guarded_protocol(listen: Listen) -> type[HttpToolsProtocol]:
    """The protocol class uvicorn should use, with this configuration's limits."""

    class Configured(GuardedHttpToolsProtocol):
        max_header_bytes = listen.max_header_bytes
        max_headers = listen.max_headers
        header_timeout = listen.header_timeout_seconds

    return Configured


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    max_header_bytes = 32 * 1024
    max_headers = 100
    header_timeout = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._awaiting_headers = True
        self._header_bytes = 0
        self._header_count = 0
        self._refused = False
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._awaiting_headers:
            self._header_bytes += len(data)
        super().data_received(data)
        if self._awaiting_headers and not self._refused and self._header_bytes > self.max_header_bytes:
            self._refuse(431, "the request line and headers are over the size limit")

    def on_message_begin(self) -> None:
        self._awaiting_headers = True
        self._header_bytes = self._header_count = 0
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        if not self._refused:
            super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._refused:
            return
        self._header_count += 1
        if self._header_count > self.max_headers:
            self._refuse(431, "too many header fields")
            return
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        self._awaiting_headers = False
        self._disarm_header_timer()
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._refused:
            super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_header_timer()  # the next request's headers have the same deadline

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout, self._header_deadline)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_deadline(self) -> None:
        self._header_timer = None
        idle = self.cycle is None or self.cycle.response_complete  # nothing in flight on this connection
        if self._awaiting_headers and idle and not self._refused and not self.transport.is_closing():
            self._refuse(408, "the request headers did not arrive in time")

    def _refuse(self, status: int, message: str) -> None:
        self._refused = True
        self._disarm_header_timer()
        body = json.dumps(
            {"error": {"type": "invalid_request_error", "code": _code(status), "message": message, "param": None}}
        ).encode()
        head = b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status])
        head += b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(body)
        self.transport.write(head + body)
        self.transport.close()


def _code(status: int) -> str:
    return "request_timeout" if status == 408 else "request_headers_too_large"
