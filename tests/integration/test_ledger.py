"""The usage ledger through the gateway: a row per attempt and per refused request, exact costs that match
the answers' X-Gateway-Cost-Usd and the stand-ins' bills, exports whose totals equal the ledger's, and the
admin summary."""

from __future__ import annotations

import csv
import io
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import yaml

from gateway.demo.standins import Behavior, StandInServers
from gateway.settings import from_dict
from tests.factories import ROOT
from tests.harness import ADMIN_TOKEN, PRICES, GatewayThread, gateway_config

PHI = {"Authorization": "Bearer gw-demo-cardiology", "X-Use-Case": "discharge-summary"}
NOTE = [{"role": "user", "content": "Summarise the visit."}]


@pytest.fixture(scope="module")
def setup(standins: StandInServers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayThread, Path]]:
    os.environ["GATEWAY_ADMIN_TOKEN"] = ADMIN_TOKEN
    config = gateway_config(standins)
    config_path = tmp_path_factory.mktemp("ledger") / "gateway.yaml"
    config_path.write_text(yaml.safe_dump(config))
    with GatewayThread(from_dict(config)) as gateway:
        yield gateway, config_path


def rows_of(gateway: GatewayThread, request_id: str) -> list[dict[str, Any]]:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert httpx.get(gateway.base_url + "/admin/usage", headers=admin).status_code == 200  # flushes the writer
    with sqlite3.connect(gateway.settings.ledger.path) as db:
        db.row_factory = sqlite3.Row
        found = db.execute("SELECT * FROM ledger_rows WHERE request_id = ? ORDER BY attempt", (request_id,))
        return [dict(r) for r in found]


def expected_nusd(model: str, prompt: int, completion: int) -> int:
    price = PRICES[model]
    return int((prompt * Decimal(repr(price["input"])) + completion * Decimal(repr(price["output"]))) * 1000)


def test_rows_costs_and_headers(setup: tuple[GatewayThread, Path], standins: StandInServers) -> None:
    gateway, _ = setup
    base = gateway.base_url
    # a plain answer: one row, its cost in the header, equal to what the stand-in billed x prices
    ok = httpx.post(base + "/v1/chat/completions", json={"model": "gpt-4o", "messages": NOTE}, headers=PHI)
    assert ok.status_code == 200
    usage = ok.json()["usage"]
    [row] = rows_of(gateway, ok.headers["x-request-id"])
    assert row["cost_nusd"] == expected_nusd("gpt-4o", usage["prompt_tokens"], usage["completion_tokens"])
    assert Decimal(ok.headers["x-gateway-cost-usd"]) * 10**9 == row["cost_nusd"]
    assert row["prompt_tokens"] + row["completion_tokens"] == standins["azure-us-east"].received[-1].billed
    assert (row["team"], row["endpoint"], row["provider"], row["status"], row["refused"]) == (
        "cardiology",
        "chat.completions",
        "azure-us-east",
        "ok",
        0,
    )
    # a failover: two rows, the failed attempt priced at nothing (a 500 is not billed)
    standins["azure-us-east"].script(Behavior(status=500))
    moved = httpx.post(base + "/v1/chat/completions", json={"model": "gpt-4o", "messages": NOTE}, headers=PHI)
    assert moved.status_code == 200
    first, second = rows_of(gateway, moved.headers["x-request-id"])
    assert (first["attempt"], first["status"], first["cost_nusd"]) == (1, "status_5xx", 0)
    assert (second["attempt"], second["provider"], second["status"]) == (2, "anthropic-us", "ok")
    assert Decimal(moved.headers["x-gateway-cost-usd"]) * 10**9 == second["cost_nusd"] > 0
    # a refused request: one marked row, no cost, the header says 0
    denied = httpx.post(
        base + "/v1/chat/completions", json={"model": "gpt-4o", "messages": NOTE, "max_tokens": 9000}, headers=PHI
    )
    assert denied.status_code == 403 and Decimal(denied.headers["x-gateway-cost-usd"]) == 0
    [refused] = rows_of(gateway, denied.headers["x-request-id"])
    assert (refused["attempt"], refused["refused"], refused["status"]) == (0, 1, "403 policy_denied")
    # a stream: the settled cost arrives as a closing SSE comment
    stream = httpx.post(
        base + "/v1/chat/completions", json={"model": "gpt-4o", "messages": NOTE, "stream": True}, headers=PHI
    )
    comment = [line for line in stream.text.splitlines() if line.startswith(": x-gateway-cost-usd=")]
    [streamed] = rows_of(gateway, stream.headers["x-request-id"])
    assert comment and Decimal(comment[0].split("=", 1)[1]) * 10**9 == streamed["cost_nusd"] > 0


def test_exports_and_summary_agree_with_the_ledger(setup: tuple[GatewayThread, Path]) -> None:
    gateway, config = setup
    for key in ("gw-demo-marketing", "gw-demo-eu-research"):
        body = {"model": "gpt-4o-mini", "messages": NOTE}
        assert (
            httpx.post(
                gateway.base_url + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
            ).status_code
            == 200
        )
    embed = {"model": "text-embedding-3-small", "input": "a note"}
    assert httpx.post(gateway.base_url + "/v1/embeddings", json=embed, headers=PHI).status_code == 200
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    summary = httpx.get(gateway.base_url + "/admin/usage?group_by=team,model", headers=admin).json()
    with sqlite3.connect(gateway.settings.ledger.path) as db:
        total_nusd, rows = db.execute("SELECT SUM(cost_nusd), COUNT(*) FROM ledger_rows").fetchone()
    assert summary["total"]["cost_nusd"] == total_nusd and summary["total"]["rows"] == rows
    assert {(g["team"], g["model"]) for g in summary["groups"]} >= {
        ("marketing", "gpt-4o-mini"),
        ("cardiology", "text-embedding-3-small"),
    }

    def export(fmt: str) -> list[dict[str, str]]:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "gateway",
                "usage",
                "export",
                "--from",
                "2000-01-01",
                "--to",
                "2100-01-01",
                "--format",
                fmt,
                "--config",
                str(config),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return list(csv.DictReader(io.StringIO(done.stdout)))

    plain = export("csv")
    assert len(plain) == rows
    assert sum(int(r["cost_nusd"]) for r in plain) == total_nusd
    focus = export("focus")
    assert sum(Decimal(r["BilledCost"]) for r in focus) * 10**9 == total_nusd
    assert {r["ChargeCategory"] for r in focus} == {"Usage"} and {r["BillingCurrency"] for r in focus} == {"USD"}
    assert all(r["SkuId"].endswith((":input", ":output", ":cache_read")) for r in focus)
    bad = httpx.get(gateway.base_url + "/admin/usage?group_by=patient", headers=admin)
    assert bad.status_code == 400
    assert httpx.get(gateway.base_url + "/admin/usage").status_code == 401
