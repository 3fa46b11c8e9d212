from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.ledger.rows import Row
from tests.pg import PostgresServer


def draft(**fields: Any) -> Row:
    base: dict[str, Any] = {
        "request_id": str(uuid.uuid4()),
        "attempt": 1,
        "refused": False,
        "decision_id": str(uuid.uuid4()),
        "policy_revision": "rev-1",
        "team": "cardiology",
        "use_case": "discharge-summary",
        "classification": "phi",
        "endpoint": "chat.completions",
        "provider": "azure-us-east",
        "model": "gpt-4o",
        "prompt_tokens": 100,
        "completion_tokens": 20,
        "cached_tokens": 0,
        "reasoning_tokens": 0,
        "cost_nusd": 450_000,
        "price_version": "v1",
        "status": "ok",
        "started_at": time.time(),
        "ended_at": time.time() + 0.5,
        "instance": "",
        "seq": 0,
        "prev_hash": "",
    }
    return Row(**{**base, **fields})


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


def fresh_database(server: PostgresServer) -> str:
    """A new empty database on the session's server; its DSN."""
    import psycopg

    name = "ledger_" + uuid.uuid4().hex[:12]
    with psycopg.connect(server.dsn, autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}")
    return server.dsn.rsplit("/", 1)[0] + "/" + name
