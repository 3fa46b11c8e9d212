"""The ledger's command line: `gateway ledger migrate`, `gateway usage export`, `gateway usage verify`."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TextIO, TypeVar

from gateway.errors import ConfigError
from gateway.ledger import open_store, price_table
from gateway.ledger.export import write_csv, write_focus
from gateway.ledger.store import LedgerStore, StoreUnavailable
from gateway.ledger.verify import verify
from gateway.settings import Settings
from gateway.settings import load as load_settings

T = TypeVar("T")


def _store(config: str | None) -> tuple[Settings, LedgerStore]:
    settings = load_settings(config)
    store = open_store(settings)
    if store is None:
        raise ConfigError("ledger.store is none: there is no ledger to use")
    return settings, store


def day(text: str) -> float:
    try:
        return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC).timestamp()
    except ValueError:
        raise ConfigError(f"{text!r} is not a date: use YYYY-MM-DD") from None


def _using(store: LedgerStore, work: Callable[[LedgerStore], Awaitable[T]]) -> T:
    """Run one piece of work on the store, then close it; an unreachable store is a one-line error."""

    async def run() -> T:
        try:
            return await work(store)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except StoreUnavailable as exc:
        raise ConfigError(f"the ledger store cannot be reached ({exc}): check ledger.path or the DSN") from None


def migrate(config: str | None) -> int:
    _, store = _store(config)
    _using(store, lambda s: s.migrate())
    print("ledger schema is up to date")
    return 0


def export(config: str | None, start: str, end: str, fmt: str, output: str | None) -> int:
    """Rows whose attempt started from `start` 00:00 UTC up to the end of `end` (both days included)."""
    settings, store = _store(config)
    first, last = day(start), day(end) + timedelta(days=1).total_seconds()
    if last <= first:
        raise ConfigError("--to is before --from")

    found = _using(store, lambda s: s.rows(first, last))
    out: TextIO = open(output, "w", newline="", encoding="utf-8") if output else sys.stdout  # noqa: SIM115
    try:
        if fmt == "focus":
            count = write_focus(found, price_table(settings), (first, last), out)
        else:
            count = write_csv(found, out)
    finally:
        if output:
            out.close()
    if output:
        print(f"wrote {count} lines to {Path(output)}", file=sys.stderr)
    return 0


def verify_command(config: str | None) -> int:
    settings, store = _store(config)

    report = _using(store, lambda s: verify(s, settings.ledger.signing_key()))
    if report.problem is not None:
        print(f"ledger NOT intact: first bad row: {report.problem}")
        return 2
    signed = "signed" if settings.ledger.signing_key() else "unsigned (no ledger.signing_key_env)"
    print(f"ledger intact: {report.rows} rows in {report.chains} chains, {report.checkpoints} checkpoints ({signed})")
    return 0
