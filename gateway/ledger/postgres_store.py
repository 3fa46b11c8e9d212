"""The fleet's ledger store: PostgreSQL through psycopg 3's async connection pool.

Every instance writes its own chain into the same tables; inserts are idempotent (ON CONFLICT DO
NOTHING on the (request_id, attempt) key and the (instance, seq) pair), so a batch replayed from a
spill file after an outage, or twice, lands once. Any database error is StoreUnavailable: the writer
spills and retries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from gateway.ledger.rows import COLUMNS, Checkpoint, Row
from gateway.ledger.store import (
    CREATE_CHECKPOINTS,
    CREATE_INDEX,
    CREATE_META,
    CREATE_ROWS,
    GROUPS,
    SCHEMA_VERSION,
    StoreUnavailable,
    summary_sql,
)

INSERT_ROW = (
    f"INSERT INTO ledger_rows ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))}) "  # noqa: S608
    "ON CONFLICT DO NOTHING"
)
INSERT_CHECKPOINT = "INSERT INTO ledger_checkpoints VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
SELECT = f"SELECT {', '.join(COLUMNS)} FROM ledger_rows"  # noqa: S608
ERRORS = (psycopg.Error, OSError, TimeoutError)


class PostgresStore:
    def __init__(self, dsn: str, *, timeout_seconds: float = 5.0, max_size: int = 4) -> None:
        self._pool = AsyncConnectionPool(
            dsn, min_size=1, max_size=max_size, timeout=timeout_seconds, open=False, kwargs={"connect_timeout": 5}
        )
        self._opened = False

    async def _ensure(self) -> None:
        if not self._opened:
            await self._pool.open(wait=False)
            self._opened = True

    async def migrate(self) -> None:
        try:
            await self._ensure()
            async with self._pool.connection() as db:
                for statement in (CREATE_ROWS, CREATE_CHECKPOINTS, CREATE_INDEX, CREATE_META):
                    await db.execute(statement)
                found = await (await db.execute("SELECT COUNT(*) FROM ledger_schema")).fetchone()
                if found is not None and found[0] == 0:
                    await db.execute("INSERT INTO ledger_schema VALUES (%s)", (SCHEMA_VERSION,))
        except ERRORS as exc:
            raise StoreUnavailable(type(exc).__name__) from exc

    async def insert(self, rows: Sequence[Row], checkpoints: Sequence[Checkpoint]) -> None:
        try:
            await self._ensure()
            async with self._pool.connection() as db, db.transaction(), db.cursor() as cursor:
                if rows:
                    await cursor.executemany(INSERT_ROW, [tuple(r.fields().values()) for r in rows])
                if checkpoints:
                    await cursor.executemany(
                        INSERT_CHECKPOINT,
                        [(c.instance, c.seq, c.row_hash, c.signed_at, c.signature) for c in checkpoints],
                    )
        except ERRORS as exc:
            raise StoreUnavailable(type(exc).__name__) from exc

    async def _select(self, query: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        try:
            await self._ensure()
            async with self._pool.connection() as db:
                return list(await (await db.execute(query, params)).fetchall())
        except ERRORS as exc:
            raise StoreUnavailable(type(exc).__name__) from exc

    async def rows(self, start: float, end: float) -> list[Row]:
        query = SELECT + " WHERE started_at >= %s AND started_at < %s ORDER BY instance, seq"
        return [Row(*r) for r in await self._select(query, (start, end))]

    async def chain(self, instance: str) -> list[Row]:
        return [Row(*r) for r in await self._select(SELECT + " WHERE instance = %s ORDER BY seq", (instance,))]

    async def instances(self) -> list[str]:
        query = "SELECT DISTINCT instance FROM ledger_rows UNION SELECT DISTINCT instance FROM ledger_checkpoints"
        return sorted(r[0] for r in await self._select(query, ()))

    async def checkpoints(self) -> list[Checkpoint]:
        query = "SELECT instance, seq, row_hash, signed_at, signature FROM ledger_checkpoints ORDER BY instance, seq"
        return [Checkpoint(*r) for r in await self._select(query, ())]

    async def summary(self, group_by: Sequence[str], start: float, end: float) -> list[dict[str, Any]]:
        assert all(g in GROUPS for g in group_by)
        try:
            await self._ensure()
            async with self._pool.connection() as db, db.cursor(row_factory=dict_row) as cursor:
                await cursor.execute(summary_sql(group_by, "%s"), (start, end))
                found = await cursor.fetchall()
        except ERRORS as exc:
            raise StoreUnavailable(type(exc).__name__) from exc
        return [{k: int(v) if k in ("rows", *_SUM_COLUMNS) else v for k, v in r.items()} for r in found if r["rows"]]

    async def close(self) -> None:
        if self._opened:
            await self._pool.close()
            self._opened = False


_SUM_COLUMNS = ("prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens", "cost_nusd")
