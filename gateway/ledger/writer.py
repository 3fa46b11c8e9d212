"""Ledger rows off the request path: sealed into the chain at once, written in batches, never lost.

record(row)     on the request path: seal (chain position and hash), append to a bounded buffer;
                a full buffer goes to the spill file at once (never dropped, never waited on)
the flusher     every `flush_seconds` (or `batch_size` rows): spill first, then the buffer, with the
                checkpoints due; a store error -> the batch is appended to the spill file (fsync'd)
                and the store is retried after `retry_seconds`
the spill file  JSON lines, append-only; to replay it is renamed (new rows go to a fresh file),
                replayed in batches (inserts are idempotent) and deleted once the store took it all
close()         a forced checkpoint, a last flush; whatever the store will not take stays spilled
                and is replayed by the next start
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import time
from collections import deque
from pathlib import Path
from typing import Any

from gateway.ledger.chain import Chain
from gateway.ledger.rows import Checkpoint, Row
from gateway.ledger.store import LedgerStore, StoreUnavailable
from gateway.observe.metrics import Metrics

log = logging.getLogger("gateway.ledger")


class LedgerWriter:
    def __init__(
        self,
        store: LedgerStore,
        chain: Chain,
        spill_path: str | Path,
        metrics: Metrics,
        *,
        batch_size: int = 200,
        flush_seconds: float = 0.5,
        max_buffer: int = 10_000,
        retry_seconds: float = 1.0,
    ) -> None:
        self.store = store
        self.chain = chain
        self._spill = Path(spill_path)
        self._replaying = self._spill.with_name(self._spill.name + ".replaying")
        self._metrics = metrics
        self._batch = batch_size
        self._flush_seconds = flush_seconds
        self._max_buffer = max_buffer
        self._retry_seconds = retry_seconds
        self._buffer: deque[Row] = deque()
        self._checkpoints: list[Checkpoint] = []
        self._down_until = 0.0
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._flushing = asyncio.Lock()  # one flush at a time (the flusher, close(), /admin/usage)

    # -- the request path ------------------------------------------------------

    def record(self, row: Row) -> Row:
        sealed = self.chain.seal(row)
        checkpoint = self.chain.checkpoint()
        if checkpoint is not None:
            self._checkpoints.append(checkpoint)
        if len(self._buffer) >= self._max_buffer:
            self._append_spill([sealed], [])
        else:
            self._buffer.append(sealed)
            if len(self._buffer) >= self._batch:
                self._wake.set()
        return sealed

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        try:
            await self.store.migrate()
        except StoreUnavailable as exc:
            self._mark_down(exc)
        self._task = asyncio.create_task(self._run(), name="ledger-writer")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        checkpoint = self.chain.checkpoint(force=True)
        if checkpoint is not None:
            self._checkpoints.append(checkpoint)
        self._down_until = 0.0
        await self.flush()
        await self.store.close()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._flush_seconds):
                    await self._wake.wait()
            self._wake.clear()
            await self.flush()

    # -- writing ---------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Rows not yet in the store: buffered or spilled."""
        spilled = sum(_count_lines(p) for p in (self._spill, self._replaying))
        return len(self._buffer) + spilled

    async def flush(self) -> None:
        """Spilled rows first, then the buffer: into the store when it answers, else into the spill file."""
        async with self._flushing:
            await self._flush()

    async def _flush(self) -> None:
        if time.monotonic() < self._down_until:
            self._spill_buffer()
            return
        try:
            await self._replay()
            while self._buffer or self._checkpoints:
                rows = [self._buffer.popleft() for _ in range(min(self._batch, len(self._buffer)))]
                checkpoints, self._checkpoints = self._checkpoints, []
                try:
                    await self.store.insert(rows, checkpoints)
                except StoreUnavailable:
                    self._append_spill(rows, checkpoints)
                    raise
                except asyncio.CancelledError:
                    # stopped mid-write (close() cancels the flusher): the insert may not have run, or may
                    # have; back in the buffer, the last flush writes them (inserts are idempotent)
                    self._buffer.extendleft(reversed(rows))
                    self._checkpoints[:0] = checkpoints
                    raise
                self._metrics.ledger_rows.inc(len(rows))
        except StoreUnavailable as exc:
            self._mark_down(exc)
            self._spill_buffer()

    async def _replay(self) -> None:
        if not self._replaying.exists():
            if not self._spill.exists():
                return
            os.replace(self._spill, self._replaying)
        rows: list[Row] = []
        checkpoints: list[Checkpoint] = []
        with self._replaying.open(encoding="utf-8") as spilled:
            for line in spilled:
                item = _parse(line)
                if isinstance(item, Row):
                    rows.append(item)
                elif isinstance(item, Checkpoint):
                    checkpoints.append(item)
        for start in range(0, max(len(rows), 1), self._batch):
            await self.store.insert(rows[start : start + self._batch], checkpoints if start == 0 else [])
        self._metrics.ledger_rows.inc(len(rows))
        self._replaying.unlink()
        log.info("ledger spill replayed", extra={"rows": len(rows)})

    def _mark_down(self, exc: BaseException) -> None:
        if time.monotonic() >= self._down_until:
            log.warning("ledger store unreachable, spilling rows", extra={"error_type": type(exc).__name__})
        self._down_until = time.monotonic() + self._retry_seconds

    def _spill_buffer(self) -> None:
        rows = list(self._buffer)
        self._buffer.clear()
        checkpoints, self._checkpoints = self._checkpoints, []
        if rows or checkpoints:
            self._append_spill(rows, checkpoints)

    def _append_spill(self, rows: list[Row], checkpoints: list[Checkpoint]) -> None:
        lines = [json.dumps({"row": r.fields()}) for r in rows]
        lines += [json.dumps({"checkpoint": dataclasses.asdict(c)}) for c in checkpoints]
        self._spill.parent.mkdir(parents=True, exist_ok=True)
        with self._spill.open("a", encoding="utf-8") as spill:
            spill.write("".join(line + "\n" for line in lines))
            spill.flush()
            os.fsync(spill.fileno())
        self._metrics.ledger_spilled.inc(len(rows))


def _parse(line: str) -> Row | Checkpoint | None:
    try:
        item: dict[str, Any] = json.loads(line)
        if "row" in item:
            return Row(**item["row"])
        if "checkpoint" in item:
            return Checkpoint(**item["checkpoint"])
    except (ValueError, TypeError):
        log.error("unreadable ledger spill line skipped")  # a torn last line after a crash
    return None


def _count_lines(path: Path) -> int:
    try:
        with path.open("rb") as f:
            return sum(1 for line in f if line.startswith(b'{"row"'))
    except FileNotFoundError:
        return 0
