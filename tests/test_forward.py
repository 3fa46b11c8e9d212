"""The one boundary where the HTTP client's exceptions become AttemptFailed: every caught type is mapped."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey

from gateway.forward import CAUGHT, AttemptFailed, retry_after_seconds, translate

KEY = ConnectionKey("h", 1, False, True, None, None, None)

EXAMPLES: list[tuple[BaseException, str]] = [
    (TimeoutError(), "timeout"),
    (aiohttp.ServerTimeoutError(), "timeout"),
    (aiohttp.ClientPayloadError("cut"), "truncated"),
    (aiohttp.ServerDisconnectedError(), "truncated"),
    (aiohttp.ClientConnectorError(KEY, OSError(111, "refused")), "connect"),
    (aiohttp.ClientOSError(104, "reset"), "connect"),
    (ConnectionResetError(), "connect"),
    (OSError(), "connect"),
    (aiohttp.ClientResponseError(None, (), status=500), "bad_answer"),  # type: ignore[arg-type]
    (aiohttp.InvalidURL("x"), "connect"),
    (aiohttp.ClientError(), "connect"),
]


@pytest.mark.parametrize(("exc", "reason"), EXAMPLES, ids=[type(e).__name__ for e, _ in EXAMPLES])
def test_every_caught_exception_is_mapped(exc: BaseException, reason: str) -> None:
    assert isinstance(exc, CAUGHT)
    assert translate(exc).reason == reason


def test_each_caught_base_type_has_an_example() -> None:
    for base in CAUGHT:
        assert any(isinstance(e, base) for e, _ in EXAMPLES), base


def test_unmapped_exception_is_not_swallowed() -> None:
    with pytest.raises(TypeError):
        translate(ValueError("not an HTTP error"))


def test_breaker_failure_classification() -> None:
    assert AttemptFailed("timeout").breaker_failure and AttemptFailed("status_5xx").breaker_failure
    assert not AttemptFailed("client_error").breaker_failure and not AttemptFailed("rate_limited").breaker_failure


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-After": "3"}, 3.0),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:30 GMT"}, 30.0),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"x-ratelimit-reset-tokens": "1m30s", "x-ratelimit-reset-requests": "2s"}, 90.0),
        ({"x-ratelimit-reset-requests": "250ms"}, 0.25),
        ({"Retry-After": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_parsing(headers: dict[str, str], seconds: float | None) -> None:
    assert retry_after_seconds(headers, now=1445412480.0) == seconds
