"""The usage ledger: durable, exact, tamper-evident rows a finance team can bill from.

rows.py            a row, exact nano-dollar costs, the row hash
chain.py           one hash chain per process, HMAC-signed checkpoints
store.py           the store contract; sqlite_store.py (embedded default), postgres_store.py (a fleet)
writer.py          batching off the request path, the spill file, replay
verify.py          `gateway usage verify`
export.py          `gateway usage export` (CSV, FOCUS 1.2) and the /admin/usage summary
"""

from __future__ import annotations

from decimal import Decimal

from gateway.errors import ConfigError
from gateway.ledger.chain import Chain, instance_id
from gateway.ledger.postgres_store import PostgresStore
from gateway.ledger.rows import Prices
from gateway.ledger.sqlite_store import SQLiteStore
from gateway.ledger.store import LedgerStore
from gateway.ledger.writer import LedgerWriter
from gateway.observe.metrics import Metrics
from gateway.settings import Settings


def price_table(settings: Settings) -> dict[str, Prices]:
    """The configured prices as exact decimals (the YAML's text, not a binary float's expansion)."""

    def exact(value: float | None, default: float) -> Decimal:
        return Decimal(repr(default if value is None else value))

    return {
        model: Prices(
            exact(p.input, 0), exact(p.output, 0), exact(p.cache_read, p.input), exact(p.cache_write, p.input)
        )
        for model, p in settings.prices.items()
    }


def open_store(settings: Settings) -> LedgerStore | None:
    ledger = settings.ledger
    if ledger.store == "none":
        return None
    if ledger.store == "postgres":
        dsn = ledger.dsn()
        if not dsn:
            raise ConfigError(f"ledger.store is postgres but {ledger.dsn_env} is not set: put the DSN in it")
        return PostgresStore(dsn)
    return SQLiteStore(ledger.path)


def build_writer(settings: Settings, metrics: Metrics) -> LedgerWriter | None:
    store = open_store(settings)
    if store is None:
        return None
    ledger = settings.ledger
    chain = Chain(instance_id(), ledger.signing_key(), every=ledger.checkpoint_every)
    return LedgerWriter(
        store,
        chain,
        ledger.spill_path,
        metrics,
        batch_size=ledger.batch_size,
        flush_seconds=ledger.flush_seconds,
        max_buffer=ledger.max_buffer,
    )


__all__ = ["LedgerStore", "LedgerWriter", "Prices", "build_writer", "open_store", "price_table"]
