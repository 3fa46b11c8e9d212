"""What the usage ledger costs: request-path time per row, and the gateway's throughput with it on and off.

    .venv/bin/python bench/ledger_overhead.py [--seconds 6] [--connections 16]

1. `LedgerWriter.record` (what the request path pays: seal into the chain, append to the buffer) timed
   per call, p50/p99, with the flusher writing batches to SQLite or PostgreSQL in the background.
2. `gateway serve` (one process) in front of an in-process stand-in, driven by a bounded aiohttp load loop
   at N connections for S seconds, with ledger.store none, sqlite and postgres (a private server):
   requests/s and latency p50/p99 in one run. Round trips to the database per request: 0 on the request
   path; one INSERT batch per `batch_size` rows or `flush_seconds`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.ledger.chain import Chain  # noqa: E402
from gateway.ledger.postgres_store import PostgresStore  # noqa: E402
from gateway.ledger.sqlite_store import SQLiteStore  # noqa: E402
from gateway.ledger.store import LedgerStore  # noqa: E402
from gateway.ledger.writer import LedgerWriter  # noqa: E402
from gateway.observe.metrics import Metrics  # noqa: E402
from tests.harness import GatewayProcess, gateway_config, standins_running  # noqa: E402
from tests.ledger.conftest import draft, fresh_database  # noqa: E402
from tests.pg import PostgresServer  # noqa: E402


def pct(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100)[q - 1]


async def record_cost(store: LedgerStore, rows: int) -> list[float]:
    writer = LedgerWriter(store, Chain("bench", b"k"), Path(tempfile.mkdtemp()) / "spill", Metrics())
    await writer.start()
    samples = []
    for i in range(rows):
        row = draft(request_id=str(uuid.uuid4()))
        started = time.perf_counter()
        writer.record(row)
        samples.append((time.perf_counter() - started) * 1e6)
        if i % 50 == 0:
            await asyncio.sleep(0)  # let the flusher run, as it would between requests
    await writer.close()
    return samples


async def load(base: str, seconds: float, connections: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 1}
    keys = ["gw-demo-cardiology", "gw-demo-eu-research"]  # 300,000 tokens a minute between them
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker(i: int) -> None:
            headers = {"Authorization": f"Bearer {keys[i % 2]}"}
            while time.monotonic() < deadline:
                started = time.perf_counter()
                async with session.post(base + "/v1/chat/completions", json=body, headers=headers) as reply:
                    await reply.read()
                    assert reply.status == 200, reply.status
                latencies.append((time.perf_counter() - started) * 1000)

        started = time.monotonic()
        await asyncio.gather(*(worker(i) for i in range(connections)))
        return len(latencies) / (time.monotonic() - started), latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rows", type=int, default=20_000)
    args = parser.parse_args()
    with PostgresServer() as postgres:
        dsn = fresh_database(postgres)
        print("request-path cost of one ledger row (LedgerWriter.record), microseconds:")
        for name, store in (
            ("sqlite", SQLiteStore(Path(tempfile.mkdtemp()) / "b.db")),
            ("postgres", PostgresStore(dsn)),
        ):
            samples = asyncio.run(record_cost(store, args.rows))
            print(f"  {name:<9} p50 {pct(samples, 50):6.1f}  p99 {pct(samples, 99):6.1f}  ({args.rows} rows)")
        with standins_running() as standins:
            base_config = gateway_config(standins)
            results = {}
            for name in ("none", "sqlite", "postgres", "none "):
                ledger = dict(base_config["ledger"], store=name.strip())
                env = {"GATEWAY_LEDGER_DSN": fresh_database(postgres)} if name == "postgres" else {}
                with GatewayProcess({**base_config, "ledger": ledger, "log_level": "warning"}, env=env) as gateway:
                    asyncio.run(load(gateway.base_url, 1.0, args.connections))  # warm up
                    rps, latencies = asyncio.run(load(gateway.base_url, args.seconds, args.connections))
                results[name] = rps
                print(
                    f"  gateway, ledger {name.strip():<8} {rps:8.0f} req/s  p50 {pct(latencies, 50):6.2f} ms"
                    f"  p99 {pct(latencies, 99):6.2f} ms  ({args.connections} connections, {args.seconds:g} s)"
                )
            off = (results["none"] + results["none "]) / 2
            for name in ("sqlite", "postgres"):
                print(f"  ledger {name}: {results[name] / off:.1%} of the requests/s with the ledger off")


if __name__ == "__main__":
    main()
