"""The ledger store contract (tests/ledger/test_store_contract.py runs it against SQLite and PostgreSQL).

migrate()                     create or upgrade the schema (idempotent)
insert(rows, checkpoints)     write; a row already there (same request_id and attempt) is left as is
rows(start, end)              rows whose started_at is in [start, end), in (instance, seq) order
chain(instance)               every row of one chain, by seq
instances()                   every chain
checkpoints()                 every checkpoint
summary(group_by, start, end) token and cost sums grouped by some of team, use_case, provider, model, endpoint
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from gateway.ledger.rows import Checkpoint, Row

GROUPS = ("team", "use_case", "provider", "model", "endpoint")
SCHEMA_VERSION = 1
SUMS = ("prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens", "cost_nusd")


class StoreUnavailable(Exception):
    """The store could not take or give rows now (the writer spills and retries)."""


class LedgerStore(Protocol):
    async def migrate(self) -> None: ...

    async def insert(self, rows: Sequence[Row], checkpoints: Sequence[Checkpoint]) -> None: ...

    async def rows(self, start: float, end: float) -> list[Row]: ...

    async def chain(self, instance: str) -> list[Row]: ...

    async def instances(self) -> list[str]: ...

    async def checkpoints(self) -> list[Checkpoint]: ...

    async def summary(self, group_by: Sequence[str], start: float, end: float) -> list[dict[str, Any]]: ...

    async def close(self) -> None: ...


def summary_sql(group_by: Sequence[str], placeholder: str) -> str:
    """The one summary query, for both stores (group_by already checked against GROUPS)."""
    keys = ", ".join(group_by)
    sums = ", ".join(f"SUM({c}) AS {c}" for c in SUMS)
    select = f"{keys}, " if keys else ""
    grouping = f" GROUP BY {keys} ORDER BY {keys}" if keys else ""
    where = f"started_at >= {placeholder} AND started_at < {placeholder}"
    return f"SELECT {select}COUNT(*) AS rows, {sums} FROM ledger_rows WHERE {where}{grouping}"  # noqa: S608


CREATE_ROWS = """
CREATE TABLE IF NOT EXISTS ledger_rows (
    request_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    refused BOOLEAN NOT NULL,
    decision_id TEXT,
    policy_revision TEXT,
    team TEXT,
    use_case TEXT,
    classification TEXT,
    endpoint TEXT NOT NULL,
    provider TEXT,
    model TEXT,
    prompt_tokens BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    cached_tokens BIGINT NOT NULL,
    reasoning_tokens BIGINT NOT NULL,
    cost_nusd BIGINT NOT NULL,
    price_version TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at DOUBLE PRECISION NOT NULL,
    ended_at DOUBLE PRECISION NOT NULL,
    instance TEXT NOT NULL,
    seq BIGINT NOT NULL,
    prev_hash TEXT NOT NULL,
    row_hash TEXT NOT NULL,
    PRIMARY KEY (request_id, attempt),
    UNIQUE (instance, seq)
)"""
CREATE_CHECKPOINTS = """
CREATE TABLE IF NOT EXISTS ledger_checkpoints (
    instance TEXT NOT NULL,
    seq BIGINT NOT NULL,
    row_hash TEXT NOT NULL,
    signed_at DOUBLE PRECISION NOT NULL,
    signature TEXT NOT NULL,
    PRIMARY KEY (instance, seq)
)"""
CREATE_INDEX = "CREATE INDEX IF NOT EXISTS ledger_rows_started ON ledger_rows (started_at)"
CREATE_META = "CREATE TABLE IF NOT EXISTS ledger_schema (version INTEGER NOT NULL)"
