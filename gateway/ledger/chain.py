"""The hash chain of one gateway process, and its signed checkpoints.

Each process is one chain (`instance`: host, pid and a random suffix, so a restart starts a new chain).
Rows are sealed in the order the process records them: seq 1, 2, ... each carrying the previous row's
hash. Every `every` rows (and when the process stops) the chain's head is signed with HMAC-SHA256
under the configured key, so an edit that recomputes every later hash still fails verification, and a
deleted tail is found by the checkpoint that names it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os
import socket
import time
import uuid

from gateway.ledger.rows import GENESIS, Checkpoint, Row


def instance_id() -> str:
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def sign(key: bytes, checkpoint: Checkpoint) -> str:
    return hmac.new(key, checkpoint.message(), hashlib.sha256).hexdigest()


class Chain:
    def __init__(self, instance: str, key: bytes | None, *, every: int = 100) -> None:
        self.instance = instance
        self._key = key
        self._every = every
        self._seq = 0
        self._head = GENESIS
        self._signed_seq = 0

    def seal(self, row: Row) -> Row:
        """The row with its place in the chain (instance, seq, prev_hash) and its hash."""
        self._seq += 1
        sealed = row.placed(self.instance, self._seq, self._head)
        self._head = sealed.row_hash
        return sealed

    def checkpoint(self, *, force: bool = False) -> Checkpoint | None:
        """A signed checkpoint of the head when `every` rows passed since the last one (or `force`)."""
        if self._key is None or self._seq == self._signed_seq:
            return None
        if not force and self._seq - self._signed_seq < self._every:
            return None
        self._signed_seq = self._seq
        unsigned = Checkpoint(self.instance, self._seq, self._head, round(time.time(), 6), "")
        return dataclasses.replace(unsigned, signature=sign(self._key, unsigned))
