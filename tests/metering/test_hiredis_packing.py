"""Commands to a single Redis are packed by hiredis (state/client.py): the same bytes redis-py would send."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.state.client import packed, redis_client
from tests.harness import RedisServer

_arg = st.text(st.characters(codec="utf-8"), max_size=20) | st.binary(max_size=20) | st.integers(-(2**70), 2**70)


def _python(*args: Any) -> bytes:
    return b"".join(aioredis.Connection().pack_command(*args))


def _hiredis(*args: Any) -> bytes:
    return b"".join(packed(aioredis.Connection)().pack_command(*args))


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(["EVALSHA", "HGETALL", "SET", "PING"]), args=st.lists(_arg, max_size=30))
def test_packed_bytes_are_redis_pys(name: str, args: list[Any]) -> None:
    assert _hiredis(name, *args) == _python(name, *args)


@pytest.mark.parametrize(
    "args",
    [("CONFIG GET", "maxmemory"), ("SET", "k", 1.5), ("SET", "k", memoryview(b"v")), ("SET", "k", "\ud800")],
    ids=["name-with-space", "float", "memoryview", "surrogate"],
)
def test_what_hiredis_is_not_given_is_packed_as_before(args: tuple[Any, ...]) -> None:
    try:
        expected: bytes | type[Exception] = _python(*args)
    except Exception as exc:  # redis-py's own refusal is kept too
        expected = type(exc)
    try:
        got: bytes | type[Exception] = _hiredis(*args)
    except Exception as exc:
        got = type(exc)
    assert got == expected


def test_a_real_server_answers_packed_commands() -> None:
    with RedisServer() as server:

        async def scenario() -> list[Any]:
            client = redis_client(server.url, timeout_ms=500)
            try:
                assert type(client.connection_pool.connection_class).__name__ == "type"
                assert client.connection_pool.connection_class.__name__ == "PackedConnection"
                await client.hset("gw:{t}:h", mapping={"1": 5, "2": -3})
                script = client.register_script("return {KEYS[1], ARGV[1], ARGV[2]}")
                return [
                    await client.hgetall("gw:{t}:h"),
                    await script(keys=["gw:{t}:h"], args=[2**62, "é"]),
                    await client.config_get("maxmemory"),
                ]
            finally:
                await client.aclose()

        hashed, scripted, config = asyncio.run(scenario())
        assert hashed == {b"1": b"5", b"2": b"-3"}
        assert scripted == [b"gw:{t}:h", str(2**62).encode(), "é".encode()]
        assert "maxmemory" in {k.decode() if isinstance(k, bytes) else k for k in config}
