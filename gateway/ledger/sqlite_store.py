"""The embedded ledger store: one SQLite file in WAL mode, written from a worker thread (never the event loop)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

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

T = TypeVar("T")
INSERT_ROW = f"INSERT OR IGNORE INTO ledger_rows ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"  # noqa: S608
INSERT_CHECKPOINT = "INSERT OR IGNORE INTO ledger_checkpoints VALUES (?, ?, ?, ?, ?)"
SELECT = f"SELECT {', '.join(COLUMNS)} FROM ledger_rows"  # noqa: S608


class SQLiteStore:
    def __init__(self, path: str | Path) -> None:
        self._path = str(path)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            db = sqlite3.connect(self._path, check_same_thread=False, timeout=5.0, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes
            self._db = db
        return self._db

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def locked() -> T:
            with self._lock:
                try:
                    return work(self._connect())
                except sqlite3.Error as exc:
                    raise StoreUnavailable(type(exc).__name__) from exc

        return await asyncio.to_thread(locked)

    async def migrate(self) -> None:
        def work(db: sqlite3.Connection) -> None:
            with _transaction(db):
                for statement in (CREATE_ROWS, CREATE_CHECKPOINTS, CREATE_INDEX, CREATE_META):
                    db.execute(statement)
                if db.execute("SELECT COUNT(*) FROM ledger_schema").fetchone()[0] == 0:
                    db.execute("INSERT INTO ledger_schema VALUES (?)", (SCHEMA_VERSION,))

        await self._run(work)

    async def insert(self, rows: Sequence[Row], checkpoints: Sequence[Checkpoint]) -> None:
        def work(db: sqlite3.Connection) -> None:
            with _transaction(db):  # one per batch: all of it or none of it
                db.executemany(INSERT_ROW, [tuple(r.fields().values()) for r in rows])
                db.executemany(INSERT_CHECKPOINT, [_checkpoint_values(c) for c in checkpoints])

        await self._run(work)

    async def rows(self, start: float, end: float) -> list[Row]:
        query = SELECT + " WHERE started_at >= ? AND started_at < ? ORDER BY instance, seq"
        return await self._run(lambda db: [_row(r) for r in db.execute(query, (start, end))])

    async def chain(self, instance: str) -> list[Row]:
        query = SELECT + " WHERE instance = ? ORDER BY seq"
        return await self._run(lambda db: [_row(r) for r in db.execute(query, (instance,))])

    async def instances(self) -> list[str]:
        query = "SELECT DISTINCT instance FROM ledger_rows UNION SELECT DISTINCT instance FROM ledger_checkpoints"
        return await self._run(lambda db: sorted(r[0] for r in db.execute(query)))

    async def checkpoints(self) -> list[Checkpoint]:
        query = "SELECT instance, seq, row_hash, signed_at, signature FROM ledger_checkpoints ORDER BY instance, seq"
        return await self._run(lambda db: [Checkpoint(*r) for r in db.execute(query)])

    async def summary(self, group_by: Sequence[str], start: float, end: float) -> list[dict[str, Any]]:
        assert all(g in GROUPS for g in group_by)

        def work(db: sqlite3.Connection) -> list[dict[str, Any]]:
            cursor = db.execute(summary_sql(group_by, "?"), (start, end))
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, r, strict=True)) for r in cursor if r[names.index("rows")]]

        return await self._run(work)

    async def close(self) -> None:
        def work() -> None:
            with self._lock:
                if self._db is not None:
                    self._db.close()
                    self._db = None

        await asyncio.to_thread(work)


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """One explicit transaction. The connection is in autocommit mode (isolation_level=None), where
    `with db:` begins nothing: each INSERT of a batch was its own transaction (about 10 WAL writes and 6
    lock calls per row, and a batch that failed half way left its first half stored)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if db.in_transaction:  # SQLite rolls some errors back itself (a full disk, an I/O error)
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _row(values: Sequence[Any]) -> Row:
    fields = dict(zip(COLUMNS, values, strict=True))
    fields["refused"] = bool(fields["refused"])
    return Row(**fields)


def _checkpoint_values(c: Checkpoint) -> tuple[Any, ...]:
    return (c.instance, c.seq, c.row_hash, c.signed_at, c.signature)
