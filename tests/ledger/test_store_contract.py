"""One contract, two stores: SQLite (a temporary file) and PostgreSQL (a private server)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.ledger.chain import Chain
from gateway.ledger.postgres_store import PostgresStore
from gateway.ledger.rows import Checkpoint, Row
from gateway.ledger.sqlite_store import SQLiteStore
from gateway.ledger.store import LedgerStore, StoreUnavailable
from tests.ledger.conftest import draft, fresh_database
from tests.pg import PostgresServer


@pytest.fixture(params=["sqlite", "postgres"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], LedgerStore]]:
    if request.param == "sqlite":
        path = tmp_path / "ledger.db"
        yield lambda: SQLiteStore(path)
    else:
        server: PostgresServer = request.getfixturevalue("postgres")
        dsn = fresh_database(server)
        yield lambda: PostgresStore(dsn)


def sealed(chain: Chain, n: int, **fields: Any) -> list[Row]:
    return [chain.seal(draft(**fields)) for _ in range(n)]


def test_migrate_is_idempotent_and_inserts_land_once(make_store: Callable[[], LedgerStore]) -> None:
    chain = Chain("i-1", b"key", every=2)
    rows = sealed(chain, 5)
    checkpoint = chain.checkpoint(force=True)
    assert checkpoint is not None

    async def scenario() -> tuple[list[Row], list[Checkpoint], list[str]]:
        store = make_store()
        try:
            await store.migrate()
            await store.migrate()
            await store.insert(rows[:3], [])
            await store.insert(rows, [checkpoint])  # a replay: the first three are already there
            await store.insert(rows, [checkpoint])
            return await store.chain("i-1"), await store.checkpoints(), await store.instances()
        finally:
            await store.close()

    stored, checkpoints, instances = asyncio.run(scenario())
    assert stored == rows  # every field round-trips exactly, hashes included
    assert checkpoints == [checkpoint]
    assert instances == ["i-1"]
    assert all(r.row_hash == r.computed_hash() for r in stored)


def test_a_batch_is_stored_whole_or_not_at_all(make_store: Callable[[], LedgerStore]) -> None:
    """A batch that fails on its fourth row (a value no driver can store) leaves none of its rows; the
    writer then spills the whole batch and replays it, so nothing is stored twice or lost."""
    chain = Chain("i-1", b"key", every=100)
    rows = sealed(chain, 6)
    broken = [*rows[:3], dataclasses.replace(rows[3], prompt_tokens={"not": "a number"}), *rows[4:]]  # type: ignore[arg-type]

    async def scenario() -> tuple[list[Row], list[Row]]:
        store = make_store()
        try:
            await store.migrate()
            with pytest.raises(StoreUnavailable):
                await store.insert(broken, [])
            after_failure = await store.chain("i-1")
            await store.insert(rows, [])
            return after_failure, await store.chain("i-1")
        finally:
            await store.close()

    after_failure, stored = asyncio.run(scenario())
    assert after_failure == []
    assert stored == rows


def test_rows_in_a_range_and_summaries(make_store: Callable[[], LedgerStore]) -> None:
    chain = Chain("i-2", None)
    base = 1_800_000_000.0
    rows = [
        chain.seal(draft(started_at=base + i, ended_at=base + i + 1, team=team, model=model, cost_nusd=cost))
        for i, (team, model, cost) in enumerate(
            [("a", "gpt-4o", 10), ("a", "gpt-4o", 20), ("b", "gpt-4o-mini", 5), ("a", "claude", 7)]
        )
    ]

    async def scenario() -> tuple[list[Row], list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        store = make_store()
        try:
            await store.migrate()
            await store.insert(rows, [])
            ranged = await store.rows(base + 1, base + 3)
            by_team = await store.summary(["team"], base, base + 10)
            by_both = await store.summary(["team", "model"], base, base + 10)
            empty = await store.summary(["team"], base + 100, base + 200)
            return ranged, by_team, by_both, empty
        finally:
            await store.close()

    ranged, by_team, by_both, empty = asyncio.run(scenario())
    assert [r.seq for r in ranged] == [2, 3]
    assert [(g["team"], g["rows"], g["cost_nusd"], g["prompt_tokens"]) for g in by_team] == [
        ("a", 3, 37, 300),
        ("b", 1, 5, 100),
    ]
    assert [(g["team"], g["model"], g["cost_nusd"]) for g in by_both] == [
        ("a", "claude", 7),
        ("a", "gpt-4o", 30),
        ("b", "gpt-4o-mini", 5),
    ]
    assert empty == []


def test_an_unreachable_store_raises_store_unavailable(tmp_path: Path) -> None:
    async def scenario(store: LedgerStore) -> None:
        try:
            await store.insert([dataclasses.replace(draft(), instance="x", seq=1)], [])
        finally:
            await store.close()

    with pytest.raises(StoreUnavailable):
        asyncio.run(scenario(SQLiteStore(tmp_path / "no" / "such" / "dir.db")))
    with pytest.raises(StoreUnavailable):
        asyncio.run(scenario(PostgresStore("postgresql://postgres@127.0.0.1:1/none", timeout_seconds=1)))


def test_postgres_down_then_back(postgres: PostgresServer) -> None:
    dsn = fresh_database(postgres)
    chain = Chain("i-3", None)

    async def scenario() -> list[Row]:
        store = PostgresStore(dsn, timeout_seconds=2)
        try:
            await store.migrate()
            await store.insert(sealed(chain, 2), [])
            postgres.stop()
            with pytest.raises(StoreUnavailable):
                await store.insert(sealed(chain, 1), [])
            postgres.start()
            late = sealed(chain, 1)
            for _ in range(50):  # the pool reconnects on its own
                try:
                    await store.insert(late, [])
                    break
                except StoreUnavailable:
                    await asyncio.sleep(0.1)
            return await store.chain("i-3")
        finally:
            await store.close()

    stored = asyncio.run(scenario())
    assert [r.seq for r in stored] == [1, 2, 4]  # seq 3 was refused: the writer would have spilled it
