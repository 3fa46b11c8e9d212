"""The writer never loses or doubles a row across a database outage; verify names the first tampered row."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml

from gateway.ledger.chain import Chain
from gateway.ledger.postgres_store import PostgresStore
from gateway.ledger.rows import Checkpoint, Row
from gateway.ledger.sqlite_store import SQLiteStore
from gateway.ledger.store import LedgerStore
from gateway.ledger.verify import verify
from gateway.ledger.writer import LedgerWriter
from gateway.observe.metrics import Metrics
from tests.factories import ROOT
from tests.ledger.conftest import draft, fresh_database
from tests.pg import PostgresServer

KEY = b"checkpoint-key"


def test_rows_survive_a_postgres_outage_exactly_once(postgres: PostgresServer, tmp_path: Path) -> None:
    dsn = fresh_database(postgres)
    spill = tmp_path / "ledger.spill"

    async def scenario() -> tuple[int, int, str | None]:
        store = PostgresStore(dsn, timeout_seconds=1)
        writer = LedgerWriter(store, Chain("w-1", KEY, every=7), spill, Metrics(), batch_size=10, flush_seconds=0.05)
        await writer.start()
        written = 0
        for phase in ("up", "down", "back"):
            if phase == "down":
                postgres.stop()
            if phase == "back":
                postgres.start()
            for _ in range(40):
                writer.record(draft())
                written += 1
                await asyncio.sleep(0.002)
            if phase == "down":
                await writer.flush()
                assert spill.exists() and writer.pending > 0  # spilled, not lost
        for _ in range(100):
            await writer.flush()
            if writer.pending == 0:
                break
            await asyncio.sleep(0.1)
        await writer.close()
        check = PostgresStore(dsn)
        try:
            report = await verify(check, KEY)
            stored = await check.chain("w-1")
        finally:
            await check.close()
        return written, len(stored), str(report.problem) if report.problem else None

    written, stored, problem = asyncio.run(scenario())
    assert stored == written == 120
    assert problem is None
    assert not spill.exists()


def test_a_full_buffer_spills_instead_of_dropping(tmp_path: Path) -> None:
    async def scenario() -> int:
        store = SQLiteStore(tmp_path / "l.db")
        writer = LedgerWriter(store, Chain("w-2", None), tmp_path / "s", Metrics(), max_buffer=5, flush_seconds=60)
        await writer.start()
        for _ in range(12):
            writer.record(draft())
        assert writer.pending == 12  # 5 buffered, 7 spilled at once
        await writer.close()
        return await _chain_length(tmp_path / "l.db", "w-2")

    assert asyncio.run(scenario()) == 12


async def _chain_length(path: Path, instance: str) -> int:
    """Rows of one chain in a SQLite ledger, read through a store of its own."""
    check = SQLiteStore(path)
    try:
        return len(await check.chain(instance))
    finally:
        await check.close()


class _StalledStore(SQLiteStore):
    """An insert that has not started when the flusher is stopped (its thread not yet scheduled)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.stalled = True
        self.started = asyncio.Event()

    async def insert(self, rows: Sequence[Row], checkpoints: Sequence[Checkpoint]) -> None:
        if self.stalled:
            self.started.set()
            await asyncio.Event().wait()  # cancelled here, before anything is written
        await super().insert(rows, checkpoints)


def test_rows_whose_write_was_cut_by_close_are_written_by_the_last_flush(tmp_path: Path) -> None:
    """close() stops the flusher; the batch it had taken from the buffer must not go with it."""

    async def scenario() -> int:
        store = _StalledStore(tmp_path / "l.db")
        writer = LedgerWriter(store, Chain("w-3", None), tmp_path / "s", Metrics(), batch_size=5, flush_seconds=60)
        await writer.start()
        for _ in range(7):
            writer.record(draft())
        await asyncio.wait_for(store.started.wait(), 5)  # the flusher took a batch and is writing it
        store.stalled = False
        await writer.close()
        return await _chain_length(tmp_path / "l.db", "w-3")

    assert asyncio.run(scenario()) == 7


def _ledger(path: Path, rows: int = 12) -> None:
    async def fill() -> None:
        writer = LedgerWriter(SQLiteStore(path), Chain("v-1", KEY, every=5), path.with_suffix(".spill"), Metrics())
        await writer.start()
        for _ in range(rows):
            writer.record(draft())
        await writer.close()

    asyncio.run(fill())


def _verify(path: Path, key: bytes | None = KEY) -> str | None:
    async def check() -> str | None:
        store: LedgerStore = SQLiteStore(path)
        try:
            report = await verify(store, key)
        finally:
            await store.close()
        return f"{report.problem.kind}@{report.problem.seq}" if report.problem else None

    return asyncio.run(check())


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        ("UPDATE ledger_rows SET cost_nusd = cost_nusd - 1 WHERE seq = 4", "edited@4"),
        ("UPDATE ledger_rows SET team = 'cardiologz' WHERE seq = 9", "edited@9"),
        ("DELETE FROM ledger_rows WHERE seq = 6", "missing@6"),
        ("DELETE FROM ledger_rows WHERE seq = 12", "missing@12"),  # the tail: the final checkpoint names it
        ("UPDATE ledger_checkpoints SET signature = 'ab' || substr(signature, 3) WHERE seq = 10", "bad_checkpoint@10"),
    ],
)
def test_verify_names_the_first_bad_row(tmp_path: Path, tamper: str, expected: str) -> None:
    path = tmp_path / "ledger.db"
    _ledger(path)
    assert _verify(path) is None
    with sqlite3.connect(path) as db:
        db.execute(tamper)
    assert _verify(path) == expected


def test_verify_catches_an_inserted_row_and_a_rewritten_chain(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    _ledger(path)
    with sqlite3.connect(path) as db:
        # insert: renumber rows 7.. up by one and put a forged, self-consistent row at 7
        db.execute("UPDATE ledger_rows SET seq = seq + 1000 WHERE seq >= 7")
        db.execute("UPDATE ledger_rows SET seq = seq - 999 WHERE seq >= 1007")
        row = db.execute("SELECT * FROM ledger_rows WHERE seq = 6").fetchone()
        names = [d[0] for d in db.execute("SELECT * FROM ledger_rows LIMIT 1").description]
        fields = dict(zip(names, row, strict=True))
        from gateway.ledger.rows import Row

        forged = Row(
            **{
                **fields,
                "refused": bool(fields["refused"]),
                "request_id": "forged",
                "seq": 7,
                "prev_hash": fields["row_hash"],
                "row_hash": "",
            }
        ).sealed()
        marks = ", ".join("?" * len(names))
        db.execute(f"INSERT INTO ledger_rows VALUES ({marks})", tuple(forged.fields().values()))  # noqa: S608
    assert _verify(path) == "inserted@7"  # the forged row itself

    rewritten = tmp_path / "rewritten.db"
    _ledger(rewritten)
    with sqlite3.connect(rewritten) as db:  # edit row 3, then recompute every later hash: only checkpoints can tell
        names = [d[0] for d in db.execute("SELECT * FROM ledger_rows LIMIT 1").description]
        from gateway.ledger.rows import GENESIS, Row

        previous = GENESIS
        for values in db.execute("SELECT * FROM ledger_rows ORDER BY seq").fetchall():
            fields = dict(zip(names, values, strict=True))
            fields["refused"] = bool(fields["refused"])
            if fields["seq"] == 3:
                fields["cost_nusd"] = 1
            row = Row(**{**fields, "prev_hash": previous, "row_hash": ""}).sealed()
            db.execute(
                "UPDATE ledger_rows SET cost_nusd = ?, prev_hash = ?, row_hash = ? WHERE seq = ?",
                (row.cost_nusd, row.prev_hash, row.row_hash, row.seq),
            )
            previous = row.row_hash
    assert _verify(rewritten) == "rewritten@5"
    assert _verify(rewritten, key=None) == "rewritten@5"  # even unsigned, a checkpoint's hash must match


def test_usage_verify_command_exit_codes(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    _ledger(path)
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump({"ledger": {"path": str(path), "signing_key_env": "LEDGER_TEST_KEY"}}))
    env = {"LEDGER_TEST_KEY": KEY.decode(), "PATH": "/usr/bin:/bin"}

    def command() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gateway", "usage", "verify", "--config", str(config)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )

    ok = command()
    assert ok.returncode == 0 and "12 rows in 1 chains" in ok.stdout
    with sqlite3.connect(path) as db:
        db.execute("UPDATE ledger_rows SET prompt_tokens = prompt_tokens + 1 WHERE seq = 2")
    bad = command()
    assert bad.returncode == 2 and "row 2: edited" in bad.stdout
