"""/admin/status shows group commit at work: with Redis, every budget call of the requests made and the script
calls they took (never more; tests/metering/test_group_commit.py shows fewer); without Redis, nothing."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx2 as httpx
import pytest

from gateway.demo.standins import StandInServers
from gateway.settings import from_dict
from tests.harness import ADMIN_TOKEN, GatewayThread, RedisServer, gateway_config

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(autouse=True)
def _admin_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_ADMIN_TOKEN", ADMIN_TOKEN)


def _ask(base: str) -> int:
    reply = httpx.post(
        base + "/v1/chat/completions",
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "Summarise the statin trials."}]},
        headers={"Authorization": "Bearer gw-demo-eu-research"},
        timeout=30,
    )
    return reply.status_code


def test_budget_calls_made_together_share_script_calls(standins: StandInServers) -> None:
    with RedisServer() as redis:
        config = gateway_config(standins, state={"redis_url": redis.url, "timeout_ms": 500})
        with GatewayThread(from_dict(config)) as gateway, ThreadPoolExecutor(12) as pool:
            statuses = list(pool.map(lambda _: _ask(gateway.base_url), range(36)))
            batches = httpx.get(gateway.base_url + "/admin/status", headers=ADMIN).json()["state_batches"]
    assert statuses == [200] * 36
    for name in ("token_reserves", "token_settlements"):
        calls, script_calls = batches[name]["calls"], batches[name]["script_calls"]
        assert calls == 36 and 0 < script_calls <= calls, (name, batches[name])
    for name in ("dollar_reserves", "dollar_settlements"):
        assert 0 <= batches[name]["script_calls"] <= batches[name]["calls"] <= 36


def test_without_redis_there_is_nothing_to_batch(standins: StandInServers) -> None:
    with GatewayThread(from_dict(gateway_config(standins))) as gateway:
        assert _ask(gateway.base_url) == 200
        assert httpx.get(gateway.base_url + "/admin/status", headers=ADMIN).json()["state_batches"] == {}
