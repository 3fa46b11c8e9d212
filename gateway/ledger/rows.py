"""One ledger row: what one attempt at a provider (or one refused request) cost. Never content.

Money is exact: costs are integers in nano-dollars (1e-9 USD), so a price per million tokens with up to
three decimals times a token count is exact, and sums over millions of rows are exact too.

The row's hash covers every field but the hash itself, in a canonical JSON form (sorted keys, no
spaces), chained to the previous row of its chain: `row_hash = sha256(prev_hash + canonical(row))`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import operator
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import orjson

NANO_PER_USD = 1_000_000_000
GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class Prices:
    """USD per million tokens for one model, as configured (Decimal: exact from the config's text)."""

    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write: Decimal


def components(
    prices: Prices, prompt: int, completion: int, cached: int = 0, cache_write: int = 0
) -> dict[str, tuple[int, Decimal, int]]:
    """Each priced part of a charge: name -> (tokens, USD per million, nano-dollars). Cached prompt tokens
    are priced at cache_read, written ones at cache_write, the rest of the prompt at input."""
    parts = {
        "input": (max(0, prompt - cached - cache_write), prices.input),
        "cache_read": (cached, prices.cache_read),
        "cache_write": (cache_write, prices.cache_write),
        "output": (completion, prices.output),
    }
    return {name: (tokens, price, _nano(tokens * price)) for name, (tokens, price) in parts.items() if tokens}


def _nano(per_million: Decimal) -> int:
    return int((per_million * 1000).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))  # 1e9 / 1e6 = 1000


def cost_nusd(prices: Prices, prompt: int, completion: int, cached: int = 0, cache_write: int = 0) -> int:
    """Nano-dollars for these tokens: the sum of the parts (so an export by part adds up to the row)."""
    return sum(nusd for _, _, nusd in components(prices, prompt, completion, cached, cache_write).values())


def usd(nusd: int) -> str:
    """Nano-dollars as a decimal USD string (exact)."""
    return format(Decimal(nusd) / NANO_PER_USD, ".9f")


@dataclass(frozen=True, slots=True)
class Row:
    request_id: str
    attempt: int  # 1.. for attempts; 0 for a request refused before any attempt
    refused: bool
    decision_id: str | None
    policy_revision: str | None
    team: str | None
    use_case: str | None
    classification: str | None
    endpoint: str
    provider: str | None
    model: str | None
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    cost_nusd: int
    price_version: str
    status: str  # "ok", the failure reason, "abandoned", or the refusal's HTTP status and code
    started_at: float  # epoch seconds
    ended_at: float
    instance: str  # the chain: one per gateway process
    seq: int  # position in the chain, from 1
    prev_hash: str
    row_hash: str = ""

    def fields(self) -> dict[str, Any]:
        return dict(zip(COLUMNS, _values(self), strict=True))

    def canonical(self) -> bytes:
        return _canonical(self.fields())

    def computed_hash(self) -> str:
        return _hash(self.fields())

    def sealed(self) -> Row:
        return self.placed(self.instance, self.seq, self.prev_hash)

    def placed(self, instance: str, seq: int, prev_hash: str) -> Row:
        """This row at `seq` in chain `instance` after `prev_hash`, with its hash (one new row, no copies)."""
        values = self.fields()
        values.update(instance=instance, seq=seq, prev_hash=prev_hash)
        values["row_hash"] = _hash(values)
        return Row(**values)


COLUMNS = tuple(f.name for f in dataclasses.fields(Row))
_values = operator.attrgetter(*COLUMNS)
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"))  # json.dumps would build one per call


def _canonical(fields: dict[str, Any]) -> bytes:
    """Every field but the hash, sorted keys, no spaces, ASCII (\\u escapes); floats as fixed text: the same
    bytes on every store and in every version. orjson writes these bytes for most rows; a row whose text
    is not plain printable ASCII (where orjson writes UTF-8 or a raw DEL) is written by `json`, whose
    bytes every existing chain was hashed over."""
    body = {k: v for k, v in fields.items() if k != "row_hash"}
    body["started_at"] = f"{fields['started_at']:.6f}"
    body["ended_at"] = f"{fields['ended_at']:.6f}"
    try:
        fast = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
        if fast.isascii() and b"\x7f" not in fast:
            return fast
    except TypeError:  # a lone surrogate, an integer past 64 bits: never from the pipeline
        pass
    return _CANONICAL.encode(body).encode()


def _hash(fields: dict[str, Any]) -> str:
    return hashlib.sha256(fields["prev_hash"].encode() + _canonical(fields)).hexdigest()


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed statement that chain `instance` had `seq` rows ending in `row_hash` (HMAC-SHA256)."""

    instance: str
    seq: int
    row_hash: str
    signed_at: float
    signature: str

    def message(self) -> bytes:
        return f"{self.instance}|{self.seq}|{self.row_hash}|{self.signed_at:.6f}".encode()
