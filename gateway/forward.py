"""Sending to providers: one pooled aiohttp client, and the one place where its exceptions are translated.

    AttemptFailed(reason)          why one upstream attempt gave no usable answer
        connect       could not connect / connection reset before the request was sent
        timeout       no answer (or no next byte, or no content) within the provider's deadlines
        status_5xx    the provider answered 5xx
        rate_limited  the provider answered 429 (retry_after from its headers)
        auth          the provider refused our credentials (401/403): our fault, not the client's
        client_error  any other 4xx: the request itself was refused
        redirect      the provider answered 3xx: never followed (the prompt and our key stay with base_url)
        bad_answer    2xx with a body that is not the documented shape, or that no adapter could translate
        too_large     a non-stream answer over the provider's max_answer_bytes
        truncated     the body or stream ended early
        untranslatable  the request could not be put into this provider's format (not the provider's fault)
        not_ready     the model is not ready to serve (Bedrock's ModelNotReadyException): fail over, no verdict

AWS errors are read from `x-amzn-ErrorType`: a 408 (ModelTimeoutException) is a timeout, a 424
(ModelErrorException) a provider failure.

Provider error bodies are read (bounded) and dropped: they may quote the prompt.
"""

from __future__ import annotations

import contextlib
import email.utils
import re
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
import yarl

from gateway.providers.base import UpstreamRequest
from gateway.resilience.breakers import MAX_COOLDOWN_SECONDS
from gateway.settings import ProviderSettings

MAX_ANSWER_BYTES = 32 * 1024 * 1024
MAX_ERROR_BYTES = 64 * 1024
FAILURE_REASONS = frozenset({"connect", "timeout", "status_5xx", "truncated", "bad_answer", "redirect", "too_large"})
# After these the provider may have processed (and billed) the request: its prompt is charged.
SENT_REASONS = frozenset({"timeout", "truncated", "bad_answer", "too_large"})


class AttemptFailed(Exception):
    def __init__(self, reason: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after

    @property
    def breaker_failure(self) -> bool:
        """Counts against the provider's health: connect errors, timeouts, 5xx, bad or truncated answers."""
        return self.reason in FAILURE_REASONS


def translate(exc: BaseException) -> AttemptFailed:
    """Map a foreign exception from the HTTP client to an AttemptFailed (the only such mapping)."""
    if isinstance(exc, AttemptFailed):
        return exc
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return AttemptFailed("connect")
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return AttemptFailed("timeout")
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError):
        return AttemptFailed("truncated")
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ClientOSError | ConnectionError | OSError):
        return AttemptFailed("connect")
    if isinstance(exc, aiohttp.ClientResponseError):
        return AttemptFailed("bad_answer", status=exc.status)
    if isinstance(exc, aiohttp.ClientError):
        return AttemptFailed("connect")
    raise TypeError(f"unmapped upstream exception {type(exc).__name__}") from exc


CAUGHT = (aiohttp.ClientError, OSError, TimeoutError)


def retry_after_seconds(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait from Retry-After (seconds or HTTP date) or the providers' reset headers.

    Whatever a provider sends, the answer is None or a finite number from 0 to MAX_COOLDOWN_SECONDS:
    a date in the past is 0, garbage ("5 seconds", "soon") is None, merged duplicates ("120, 120")
    take the largest valid value, and 400 digits are capped rather than infinite.
    """
    now = time.time() if now is None else now
    found = _retry_after(headers.get("Retry-After") or headers.get("retry-after") or "", now)
    if found is None:
        ms = _seconds(headers.get("retry-after-ms") or "")
        found = ms / 1000 if ms is not None else None
    if found is None:
        waits = [_duration(headers.get(h) or "") for h in ("x-ratelimit-reset-tokens", "x-ratelimit-reset-requests")]
        valid = [w for w in waits if w is not None]
        found = max(valid) if valid else None
    return None if found is None else min(max(0.0, found), MAX_COOLDOWN_SECONDS)


def _retry_after(value: str, now: float) -> float | None:
    value = value.strip()
    if not value or len(value) > 1024:
        return None
    seconds = _seconds(value)
    if seconds is not None:
        return seconds
    with contextlib.suppress(TypeError, ValueError, IndexError, OverflowError):
        parsed = email.utils.parsedate_to_datetime(value)
        return parsed.timestamp() - now
    parts = [_seconds(p) for p in value.split(",")]  # the same header twice, merged by a proxy
    valid = [p for p in parts if p is not None]
    return max(valid) if valid else None


_DECIMAL = re.compile(r"\d{1,1024}(\.\d{1,32})?")


def _seconds(text: str) -> float | None:
    text = text.strip()
    if not _DECIMAL.fullmatch(text):
        return None
    return float(text)  # 400 digits are inf here, capped by the caller


_RESET = re.compile(r"(?:(\d{1,9})h)?(?:(\d{1,9})m(?!s))?(?:(\d{1,9}(?:\.\d{1,9})?)s)?(?:(\d{1,9})ms)?")


def _duration(text: str) -> float | None:
    """OpenAI's reset format: '1m30s', '6s', '250ms'."""
    match = _RESET.fullmatch(text.strip())
    if not text.strip() or not match:
        return None
    h, m, s, ms = match.groups()
    return int(h or 0) * 3600 + int(m or 0) * 60 + float(s or 0) + int(ms or 0) / 1000


class Sent:
    """Set by aiohttp's trace hook once the request's headers went out: from then on the provider may bill it."""

    __slots__ = ("sent",)

    def __init__(self) -> None:
        self.sent = False


async def _on_headers_sent(session: object, context: Any, params: object) -> None:
    marker = context.trace_request_ctx
    if isinstance(marker, Sent):
        marker.sent = True


class Upstream:
    """The shared, pooled client every attempt goes through. Redirects are never followed; cookies are
    never kept."""

    def __init__(self, *, limit: int = 512) -> None:
        self._limit = limit
        self._client: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Create the pooled session (it must be made inside the running event loop)."""
        connector = aiohttp.TCPConnector(limit=self._limit, limit_per_host=0, ttl_dns_cache=300)
        trace = aiohttp.TraceConfig()
        trace.on_request_headers_sent.append(_on_headers_sent)
        self._client = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=True,
            trust_env=False,
            trace_configs=[trace],
            # one client serves every team: a cookie a provider sets is never kept, so it never rides along
            # on another team's request (and no jar is consulted per request)
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    @property
    def _session(self) -> aiohttp.ClientSession:
        if self._client is None:
            raise RuntimeError("Upstream.start() was not called")
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def open(
        self, provider: ProviderSettings, request: UpstreamRequest, *, sent: Sent | None = None
    ) -> aiohttp.ClientResponse:
        """Send and read the status; raise AttemptFailed unless 2xx. The caller reads and releases the body.

        Deadlines (the caller adds the overall ones): connect within connect_timeout_seconds, each read
        within timeout_seconds. A 3xx is a failed attempt: following it would send the prompt and this
        provider's key to a host nobody configured.
        """
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=provider.connect_timeout_seconds,
            sock_read=provider.timeout_seconds,
        )
        try:
            response = await self._session.request(
                request.method,
                yarl.URL(request.url, encoded=True),  # sent exactly as built (and as signed: `%3A` stays `%3A`)
                data=request.body or None,
                headers=request.headers,
                timeout=timeout,
                allow_redirects=False,
                trace_request_ctx=sent,
            )
        except CAUGHT as exc:
            raise translate(exc) from exc
        if 200 <= response.status < 300:
            return response
        try:
            await response.content.read(MAX_ERROR_BYTES)  # drained, never kept: it may quote the prompt
        except CAUGHT:
            pass
        finally:
            response.release()
        raise _status_failure(response.status, response.headers)

    async def read_all(self, response: aiohttp.ClientResponse, limit: int) -> bytes:
        """The whole body, however many reads it arrives in; over `limit` bytes is AttemptFailed("too_large")."""
        chunks: list[bytes] = []
        size = 0
        try:
            while True:
                chunk = await response.content.readany()
                if not chunk:
                    break
                size += len(chunk)
                if size > limit:
                    raise AttemptFailed("too_large")
                chunks.append(chunk)
        except CAUGHT as exc:
            raise translate(exc) from exc
        finally:
            response.release() if size <= limit else response.close()
        body = b"".join(chunks)
        declared = response.content_length
        if declared is not None and "Content-Encoding" not in response.headers and len(body) < declared:
            raise AttemptFailed("truncated")
        return body

    async def read_chunk(self, response: aiohttp.ClientResponse) -> bytes:
        """The next bytes of a stream, b"" at its end."""
        try:
            return await response.content.readany()
        except CAUGHT as exc:
            raise translate(exc) from exc


def _status_failure(status: int, headers: Mapping[str, str]) -> AttemptFailed:
    aws_error = (headers.get("x-amzn-ErrorType") or "").split(":", 1)[0]
    if aws_error == "ModelNotReadyException":
        return AttemptFailed("not_ready", status=status)
    if status == 408:
        return AttemptFailed("timeout", status=status)
    if status == 424:
        return AttemptFailed("status_5xx", status=status)
    if 300 <= status < 400 or status < 200:
        return AttemptFailed("redirect", status=status)
    if status == 429:
        return AttemptFailed("rate_limited", status=status, retry_after=retry_after_seconds(headers))
    if status in (401, 403):
        return AttemptFailed("auth", status=status)
    if status >= 500:
        return AttemptFailed("status_5xx", status=status)
    return AttemptFailed("client_error", status=status)
