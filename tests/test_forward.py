"""The one boundary where the HTTP client's exceptions become AttemptFailed: every caught type is mapped."""

from __future__ import annotations

import math

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.forward import CAUGHT, AttemptFailed, _status_failure, retry_after_seconds, translate
from gateway.resilience.breakers import MAX_COOLDOWN_SECONDS

HEADERS = ["Retry-After", "retry-after-ms", "x-ratelimit-reset-tokens", "x-ratelimit-reset-requests"]

KEY = ConnectionKey("h", 1, False, True, None, None, None)

EXAMPLES: list[tuple[BaseException, str]] = [
    (TimeoutError(), "timeout"),
    (aiohttp.ConnectionTimeoutError(), "connect"),  # the request was never sent: nothing to charge
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
        ({"Retry-After": "5 seconds"}, None),
        ({"Retry-After": "120, 120"}, 120.0),  # the same header twice, merged by a proxy
        ({"Retry-After": "3, soon"}, 3.0),
        ({"Retry-After": "9" * 400}, MAX_COOLDOWN_SECONDS),  # parses to infinity: capped
        ({"Retry-After": "1" + "0" * 11}, MAX_COOLDOWN_SECONDS),
        ({"Retry-After": "Wed, 21 Oct 2015 07:00:00 GMT"}, 0.0),  # already past (clock skew)
        ({"Retry-After": "Wed, 99 Oct 2015 07:28:30 GMT"}, None),
        ({"Retry-After": "-3"}, None),
        ({"Retry-After": "1e9"}, None),
        ({"Retry-After": "nan"}, None),
        ({"Retry-After": "inf"}, None),
        ({"Retry-After": " 2.5 "}, 2.5),
        ({"Retry-After": "x" * 10_000}, None),
        ({"retry-after-ms": "1" * 40}, MAX_COOLDOWN_SECONDS),
        ({"x-ratelimit-reset-tokens": "99999999h"}, MAX_COOLDOWN_SECONDS),
        ({"x-ratelimit-reset-tokens": "h"}, None),
    ],
)
def test_retry_after_parsing(headers: dict[str, str], seconds: float | None) -> None:
    assert retry_after_seconds(headers, now=1445412480.0) == seconds


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(HEADERS), st.text(max_size=40), max_size=4))
def test_retry_after_is_none_or_a_bounded_finite_number(headers: dict[str, str]) -> None:
    seconds = retry_after_seconds(headers)
    assert seconds is None or (math.isfinite(seconds) and 0 <= seconds <= MAX_COOLDOWN_SECONDS)


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (301, "redirect"),
        (307, "redirect"),
        (308, "redirect"),
        (429, "rate_limited"),
        (401, "auth"),
        (404, "client_error"),
    ],
)
def test_status_failures(status: int, reason: str) -> None:
    failure = _status_failure(status, {})
    assert failure.reason == reason
    assert failure.breaker_failure == (reason in ("redirect", "status_5xx"))
