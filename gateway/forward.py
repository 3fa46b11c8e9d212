"""Sending to providers: one pooled aiohttp client, and the one place where its exceptions are translated.

    AttemptFailed(reason)          why one upstream attempt gave no usable answer
        connect       could not connect / connection reset before an answer
        timeout       no answer (or no next byte) within the provider's timeout
        status_5xx    the provider answered 5xx
        rate_limited  the provider answered 429 (retry_after from its headers)
        auth          the provider refused our credentials (401/403): our fault, not the client's
        client_error  any other 4xx: the request itself was refused
        bad_answer    2xx with a body that is not the documented shape
        truncated     the body or stream ended early

Provider error bodies are read (bounded) and dropped: they may quote the prompt.
"""

from __future__ import annotations

import asyncio
import email.utils
import re
import time
from collections.abc import AsyncIterator, Mapping

import aiohttp

from gateway.providers.base import UpstreamRequest
from gateway.settings import ProviderSettings

MAX_ANSWER_BYTES = 32 * 1024 * 1024
MAX_ERROR_BYTES = 64 * 1024
FAILURE_REASONS = frozenset({"connect", "timeout", "status_5xx", "truncated", "bad_answer"})


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
    """Seconds to wait from Retry-After (seconds or HTTP date) or the providers' reset headers."""
    now = time.time() if now is None else now
    value = headers.get("Retry-After") or headers.get("retry-after")
    if value:
        value = value.strip()
        if re.fullmatch(r"\d+(\.\d+)?", value):
            return float(value)
        parsed = email.utils.parsedate_to_datetime(value) if "," in value or " " in value else None
        if parsed is not None:
            return max(0.0, parsed.timestamp() - now)
    ms = headers.get("retry-after-ms")
    if ms and re.fullmatch(r"\d+(\.\d+)?", ms.strip()):
        return float(ms) / 1000
    waits = [_duration(headers.get(h, "")) for h in ("x-ratelimit-reset-tokens", "x-ratelimit-reset-requests")]
    found = [w for w in waits if w is not None]
    return max(found) if found else None


def _duration(text: str) -> float | None:
    """OpenAI's reset format: '1m30s', '6s', '250ms'."""
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+)ms)?", text.strip())
    if not text.strip() or not match:
        return None
    h, m, s, ms = match.groups()
    return int(h or 0) * 3600 + int(m or 0) * 60 + float(s or 0) + int(ms or 0) / 1000


class Upstream:
    """The shared, pooled client every attempt goes through."""

    def __init__(self, *, limit: int = 512) -> None:
        self._limit = limit
        self._client: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Create the pooled session (it must be made inside the running event loop)."""
        connector = aiohttp.TCPConnector(limit=self._limit, limit_per_host=0, ttl_dns_cache=300)
        self._client = aiohttp.ClientSession(connector=connector, auto_decompress=True, trust_env=False)

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
        self, provider: ProviderSettings, request: UpstreamRequest, *, stream: bool
    ) -> aiohttp.ClientResponse:
        """Send and read the status; raise AttemptFailed unless 2xx. The caller reads and releases the body."""
        timeout = aiohttp.ClientTimeout(
            total=None if stream else provider.timeout_seconds,
            connect=provider.connect_timeout_seconds,
            sock_read=provider.timeout_seconds,
        )
        try:
            response = await self._session.post(
                request.url, data=request.body, headers=request.headers, timeout=timeout
            )
        except CAUGHT as exc:
            raise translate(exc) from exc
        if response.status < 300:
            return response
        try:
            await response.content.read(MAX_ERROR_BYTES)  # drained, never kept: it may quote the prompt
        except CAUGHT:
            pass
        finally:
            response.release()
        raise _status_failure(response.status, response.headers)

    async def read_all(self, response: aiohttp.ClientResponse) -> bytes:
        try:
            body = await response.content.read(MAX_ANSWER_BYTES + 1)
            if len(body) > MAX_ANSWER_BYTES:
                raise AttemptFailed("bad_answer")
            if response.content_length is not None and len(body) < response.content_length:
                raise AttemptFailed("truncated")
            return body
        except CAUGHT as exc:
            raise translate(exc) from exc
        finally:
            response.release()

    async def chunks(self, response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
        try:
            async for chunk in response.content.iter_any():
                yield chunk
        except CAUGHT as exc:
            raise translate(exc) from exc
        except asyncio.CancelledError:
            response.close()
            raise


def _status_failure(status: int, headers: Mapping[str, str]) -> AttemptFailed:
    if status == 429:
        return AttemptFailed("rate_limited", status=status, retry_after=retry_after_seconds(headers))
    if status in (401, 403):
        return AttemptFailed("auth", status=status)
    if status >= 500:
        return AttemptFailed("status_5xx", status=status)
    return AttemptFailed("client_error", status=status)
