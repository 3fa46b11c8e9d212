"""`gateway usage verify`: walk every chain and name the first row that was edited, inserted or removed.

For each chain (one per gateway process), in seq order:
    a gap in seq                         -> "missing": the row before the gap is named
    a row whose hash is not its content's -> "edited" ("inserted" when it is intact but renumbered: the
                                             rows before it were inserted)
    a row not linked to the one before    -> "inserted" (or reordered)
    a checkpoint whose signature fails    -> "bad_checkpoint" (the key is wrong, or it was forged)
    a checkpoint naming a seq past the end, or a different hash at its seq
                                          -> "missing" (rows were deleted from the end) or "rewritten"
                                             (rows were edited and every later hash recomputed)
Rows after a chain's last checkpoint are protected by the chain only (a checkpoint is signed every
`checkpoint_every` rows and when the process stops).
"""

from __future__ import annotations

import dataclasses
import hmac
from dataclasses import dataclass

from gateway.ledger.chain import sign
from gateway.ledger.rows import GENESIS, Checkpoint, Row
from gateway.ledger.store import LedgerStore


@dataclass(frozen=True)
class Problem:
    instance: str
    seq: int
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"chain {self.instance} row {self.seq}: {self.kind} ({self.detail})"


@dataclass(frozen=True)
class Report:
    chains: int
    rows: int
    checkpoints: int
    problem: Problem | None


async def verify(store: LedgerStore, key: bytes | None) -> Report:
    checkpoints: dict[str, list[Checkpoint]] = {}
    for c in await store.checkpoints():
        checkpoints.setdefault(c.instance, []).append(c)
    total = 0
    first: Problem | None = None
    instances = await store.instances()
    for instance in instances:
        rows = await store.chain(instance)
        total += len(rows)
        problem = check_chain(instance, rows, checkpoints.get(instance, []), key)
        if problem is not None and first is None:
            first = problem
    return Report(len(instances), total, sum(len(c) for c in checkpoints.values()), first)


def check_chain(instance: str, rows: list[Row], checkpoints: list[Checkpoint], key: bytes | None) -> Problem | None:
    by_seq: dict[int, Row] = {}
    previous = GENESIS
    expected = 1
    for row in rows:
        where = f"request {row.request_id} attempt {row.attempt}"
        if row.seq != expected:
            return Problem(instance, expected, "missing", f"seq jumps from {expected - 1} to {row.seq}")
        if row.row_hash != row.computed_hash():
            moved = _moved_by(row)
            if moved:  # intact but renumbered: rows were inserted before it
                return Problem(instance, row.seq - moved, "inserted", f"{moved} row(s) inserted before {where}")
            return Problem(instance, row.seq, "edited", f"{where}: its hash does not match its content")
        if row.prev_hash != previous:
            return Problem(instance, row.seq, "inserted", f"{where}: not linked to row {row.seq - 1}")
        by_seq[row.seq] = row
        previous = row.row_hash
        expected += 1
    for checkpoint in checkpoints:
        if key is not None and not hmac.compare_digest(sign(key, checkpoint), checkpoint.signature):
            return Problem(instance, checkpoint.seq, "bad_checkpoint", "its signature does not verify")
        signed = by_seq.get(checkpoint.seq)
        if signed is None:
            detail = f"a checkpoint signed {checkpoint.seq} rows, {expected - 1} remain"
            return Problem(instance, expected, "missing", detail)
        if signed.row_hash != checkpoint.row_hash:
            return Problem(instance, checkpoint.seq, "rewritten", "rows up to here differ from the signed checkpoint")
    return None


def _moved_by(row: Row, *, at_most: int = 16) -> int:
    """How far a row was renumbered when its content is otherwise intact (0 when it was edited)."""
    for shift in range(1, min(at_most, row.seq - 1) + 1):
        if dataclasses.replace(row, seq=row.seq - shift).computed_hash() == row.row_hash:
            return shift
    return 0
