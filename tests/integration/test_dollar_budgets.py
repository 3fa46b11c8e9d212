"""Dollar budgets decided by policy, enforced across two gateway instances sharing a real Redis: a team over
its day's budget is refused (429 budget_exceeded, Retry-After until midnight in the configured zone) on
every instance, and what was admitted never costs more than the budget (worst case reserved, actual
settled)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import httpx2 as httpx
import pytest

from gateway.demo.standins import Behavior, StandInServers
from gateway.policy import bundle
from gateway.settings import from_dict
from tests.factories import copy_rego
from tests.harness import ADMIN_TOKEN, GatewayThread, RedisServer, gateway_config

BUDGET_USD = Decimal("0.001")
ZONE = "America/New_York"


@pytest.fixture(scope="module")
def pair(standins: StandInServers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[GatewayThread]]:
    workdir = tmp_path_factory.mktemp("dollars")
    rego = copy_rego(workdir)
    data_path = rego / "gateway" / "config" / "data.json"
    data = json.loads(data_path.read_text())
    data["teams"]["marketing"]["usd_per_day"] = float(BUDGET_USD)
    data["teams"]["marketing"]["tokens_per_minute"] = 1_000_000
    data_path.write_text(json.dumps(data))
    bundle_path = workdir / "bundle.tar.gz"
    bundle_path.write_bytes(bundle.build(rego))
    os.environ["GATEWAY_ADMIN_TOKEN"] = ADMIN_TOKEN
    with RedisServer() as redis:
        config = gateway_config(
            standins,
            policy={"bundle": str(bundle_path), "poll_seconds": 0},
            state={"redis_url": redis.url, "timeout_ms": 2000},  # no spurious outage on a loaded machine
            budgets={"time_zone": ZONE},
        )
        with GatewayThread(from_dict(config)) as one, GatewayThread(from_dict(config)) as two:
            yield [one, two]


def test_a_team_over_its_dollar_budget_is_refused_on_every_instance(
    pair: list[GatewayThread], standins: StandInServers
) -> None:
    standins["openai-us"].set_default(Behavior(text=" ".join(["word"] * 150)))
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Write copy."}], "max_tokens": 200}
    headers = {"Authorization": "Bearer gw-demo-marketing"}
    spent = Decimal(0)
    remaining: list[Decimal] = []
    refused: dict[int, httpx.Response] = {}
    for i in range(40):
        instance = pair[i % 2]
        reply = httpx.post(instance.base_url + "/v1/chat/completions", json=body, headers=headers, timeout=10)
        if reply.status_code == 200:
            spent += Decimal(reply.headers["x-gateway-cost-usd"])
            remaining.append(Decimal(reply.headers["x-ratelimit-remaining-usd"]))
        else:
            assert reply.status_code == 429, reply.text
            refused[i % 2] = reply
    assert set(refused) == {0, 1}  # both instances refuse: the budget is shared
    assert 0 < spent <= BUDGET_USD
    assert remaining == sorted(remaining, reverse=True)
    for reply in refused.values():
        error = reply.json()["error"]
        assert error["code"] == "budget_exceeded" and error["type"] == "rate_limit_error"
        now = datetime.now(ZoneInfo(ZONE))
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
        assert abs(int(reply.headers["retry-after"]) - (midnight - now).total_seconds()) < 5
        assert Decimal(reply.headers["x-ratelimit-remaining-usd"]) < Decimal("0.0002")
    # another team is not affected, and carries no dollar header (it has no dollar budget)
    other = httpx.post(
        pair[0].base_url + "/v1/chat/completions",
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]},
        headers={"Authorization": "Bearer gw-demo-cardiology", "X-Use-Case": "discharge-summary"},
        timeout=10,
    )
    assert other.status_code == 200 and "x-ratelimit-remaining-usd" not in other.headers
