"""Issue 13's done-means, at small scale: three `gateway serve` processes share one PostgreSQL ledger;
mixed traffic (streams, failovers, clients that leave mid-stream) runs while PostgreSQL is stopped and
restarted. Afterwards: one row per attempt that reached a provider (none missing, none doubled), token
sums equal to what the stand-ins billed (within two tokens per stream a client left: events the provider
wrote after the gateway stopped reading), dollar sums equal to tokens x prices, the FOCUS export's total
equal to the ledger's, verify passing, and failing on a one-byte edit or a deleted row."""

from __future__ import annotations

import asyncio
import csv
import io
import random
import subprocess
import sys
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import aiohttp
import psycopg
import yaml

from gateway.demo.standins import Behavior
from tests.factories import ROOT
from tests.harness import PRICES, GatewayProcess, gateway_config, standins_running
from tests.ledger.conftest import fresh_database
from tests.pg import PostgresServer

KEY = "fleet-checkpoint-key"
TEAMS = [
    ("gw-demo-marketing", "gpt-4o-mini", {}),
    ("gw-demo-eu-research", "gpt-4o", {}),
    ("gw-demo-cardiology", "claude-sonnet-4", {"X-Use-Case": "discharge-summary"}),
]


async def _traffic(bases: list[str], seconds: float, left: list[int]) -> int:
    sent = 0
    deadline = time.monotonic() + seconds
    rng = random.Random(13)
    async with aiohttp.ClientSession() as session:

        async def one() -> None:
            nonlocal sent
            key, model, headers = rng.choice(TEAMS)
            stream = rng.random() < 0.5
            body = {
                "model": model,
                "messages": [{"role": "user", "content": "note " * rng.randint(1, 30)}],
                "stream": stream,
            }
            sent += 1
            async with session.post(
                rng.choice(bases) + "/v1/chat/completions",
                json=body,
                headers={"Authorization": f"Bearer {key}", **headers},
            ) as reply:
                if stream and rng.random() < 0.2:
                    await reply.content.readany()  # the client leaves mid-stream
                    left[0] += 1
                    return
                await reply.read()

        while time.monotonic() < deadline:
            await asyncio.gather(*(one() for _ in range(6)), return_exceptions=True)
    return sent


def test_a_fleet_ledger_survives_a_database_outage(tmp_path: Path) -> None:
    with PostgresServer() as postgres, standins_running() as standins:
        dsn = fresh_database(postgres)
        for standin in standins.standins.values():
            standin.set_default(Behavior(chunk_delay=0.01, text="one two three four five six seven eight"))
        standins["azure-us-east"].set_default(
            Behavior(status=500)
        )  # cardiology's claude has no failure; others fail over
        config = gateway_config(standins)
        gateways = []
        for i in range(3):
            config_i = {
                **config,
                "ledger": {
                    "store": "postgres",
                    "spill_path": str(tmp_path / f"spill-{i}"),
                    "signing_key_env": "FLEET_KEY",
                    "flush_seconds": 0.2,
                    "checkpoint_every": 20,
                },
            }
            gateways.append(GatewayProcess(config_i, env={"GATEWAY_LEDGER_DSN": dsn, "FLEET_KEY": KEY}).start())
        try:
            bases = [g.base_url for g in gateways]
            left = [0]

            async def run() -> int:
                sent = await _traffic(bases, 4, left)
                outage[0] = time.time()
                postgres.stop()
                sent += await _traffic(bases, 4, left)
                postgres.start()
                outage[1] = time.time()
                sent += await _traffic(bases, 4, left)
                return sent

            outage = [0.0, 0.0]

            sent = asyncio.run(run())
        finally:
            for g in gateways:
                g.stop()  # each flushes its buffer and replays its spill into the database on the way out
        assert sent > 50
        billed = {name: sum(r.billed for r in s.received) for name, s in standins.standins.items()}
        reached = {name: s.count for name, s in standins.standins.items()}
        with psycopg.connect(dsn) as db:
            rows = db.execute(
                "SELECT provider, model, prompt_tokens, completion_tokens, cost_nusd, status, attempt FROM ledger_rows"
            ).fetchall()
            distinct = db.execute("SELECT COUNT(DISTINCT (request_id, attempt)) FROM ledger_rows").fetchone()
            during = db.execute(
                "SELECT COUNT(*) FROM ledger_rows WHERE started_at > %s AND ended_at < %s", (outage[0] + 0.5, outage[1])
            ).fetchone()
        assert during is not None and during[0] > 10  # written while the database was down: spilled, then replayed
        assert not any(tmp_path.glob("spill-*"))
        assert distinct is not None and distinct[0] == len(rows)
        attempts = Counter(r[0] for r in rows if r[6] > 0)
        assert {p: attempts.get(p, 0) for p in reached} == reached  # one row per attempt that reached a provider
        tokens: Counter[str] = Counter()
        for provider, model, prompt, completion, cost, _status, _attempt in rows:
            if provider:
                tokens[provider] += prompt + completion
            if model:
                price = PRICES[model]
                exact = int(
                    (prompt * Decimal(repr(price["input"])) + completion * Decimal(repr(price["output"]))) * 1000
                )
                assert cost == exact
        for provider, total in billed.items():
            assert abs(tokens[provider] - total) <= 2 * left[0], (provider, tokens[provider], total)
        config_path = tmp_path / "gateway.yaml"
        config_path.write_text(
            yaml.safe_dump({**config, "ledger": {"store": "postgres", "signing_key_env": "FLEET_KEY"}})
        )
        env = {"GATEWAY_LEDGER_DSN": dsn, "FLEET_KEY": KEY, "PATH": "/usr/bin:/bin"}

        def gateway(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "gateway", *args, "--config", str(config_path)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                env=env,
                timeout=120,
            )

        focus = gateway("usage", "export", "--from", "2000-01-01", "--to", "2100-01-01", "--format", "focus")
        assert focus.returncode == 0
        exported = sum((Decimal(r["BilledCost"]) for r in csv.DictReader(io.StringIO(focus.stdout))), Decimal(0))
        assert exported * 10**9 == sum(r[4] for r in rows)
        verified = gateway("usage", "verify")
        assert verified.returncode == 0 and "3 chains" in verified.stdout, verified.stdout + verified.stderr
        with psycopg.connect(dsn) as db:
            one = "(SELECT ctid FROM ledger_rows WHERE status = 'ok' LIMIT 1)"
            db.execute(f"UPDATE ledger_rows SET status = 'ol' WHERE ctid = {one}")  # noqa: S608 - a one-byte edit
        edited = gateway("usage", "verify")
        assert edited.returncode == 2 and "edited" in edited.stdout
        with psycopg.connect(dsn) as db:
            db.execute("UPDATE ledger_rows SET status = 'ok' WHERE status = 'ol'")
            db.execute("DELETE FROM ledger_rows WHERE ctid = (SELECT ctid FROM ledger_rows WHERE seq = 5 LIMIT 1)")
        deleted = gateway("usage", "verify")
        assert deleted.returncode == 2 and "missing" in deleted.stdout
