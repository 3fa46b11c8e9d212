"""`gateway usage export` and the /admin/usage summary, from the ledger store.

CSV: one line per ledger row, its columns as stored (cost also in USD; times in ISO 8601 UTC).
FOCUS 1.2: one line per priced part of a row (input, cache read, cache write, output tokens), with the
FOCUS columns that apply to metered model usage: costs (Billed = Effective = List = Contracted, at the
configured list prices), the charge period (the attempt's start and end), the billing period (the export
range), quantities in tokens, the provider, the model as the resource and SKU, the team as the
sub-account, and the team, use case, endpoint and request as tags. The parts of a row add up to its cost
exactly, so an export's total equals the ledger's.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TextIO

from gateway.ledger.rows import COLUMNS, NANO_PER_USD, Prices, Row, components, usd

FOCUS_COLUMNS = (
    "BilledCost",
    "EffectiveCost",
    "ListCost",
    "ContractedCost",
    "BillingCurrency",
    "BillingPeriodStart",
    "BillingPeriodEnd",
    "ChargePeriodStart",
    "ChargePeriodEnd",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "ConsumedQuantity",
    "ConsumedUnit",
    "PricingQuantity",
    "PricingUnit",
    "ListUnitPrice",
    "ContractedUnitPrice",
    "ProviderName",
    "PublisherName",
    "InvoiceIssuerName",
    "ServiceCategory",
    "ServiceName",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "SkuId",
    "SkuPriceId",
    "SubAccountId",
    "SubAccountName",
    "Tags",
)


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def write_csv(rows: Iterable[Row], out: TextIO) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*COLUMNS, "cost_usd"])
    count = 0
    for row in rows:
        values = row.fields()
        values["started_at"], values["ended_at"] = iso(row.started_at), iso(row.ended_at)
        writer.writerow([*values.values(), usd(row.cost_nusd)])
        count += 1
    return count


def focus_lines(row: Row, prices: dict[str, Prices], period: tuple[float, float]) -> list[dict[str, Any]]:
    """The FOCUS lines of one row: one per priced part (none for a row that cost nothing)."""
    model_prices = prices.get(row.model or "")
    if model_prices is None or row.cost_nusd == 0:
        return []
    parts = components(model_prices, row.prompt_tokens, row.completion_tokens, row.cached_tokens)
    if sum(nusd for _, _, nusd in parts.values()) != row.cost_nusd:  # priced under another table: one line
        parts = {"total": (row.prompt_tokens + row.completion_tokens, Decimal(0), row.cost_nusd)}
    tags = {"team": row.team, "use_case": row.use_case, "endpoint": row.endpoint, "request_id": row.request_id}
    lines = []
    for part, (tokens, per_million, nusd) in parts.items():
        cost = usd(nusd)
        lines.append(
            {
                "BilledCost": cost,
                "EffectiveCost": cost,
                "ListCost": cost,
                "ContractedCost": cost,
                "BillingCurrency": "USD",
                "BillingPeriodStart": iso(period[0]),
                "BillingPeriodEnd": iso(period[1]),
                "ChargePeriodStart": iso(row.started_at),
                "ChargePeriodEnd": iso(max(row.ended_at, row.started_at)),
                "ChargeCategory": "Usage",
                "ChargeClass": "",
                "ChargeDescription": f"{row.model} {part} tokens ({row.endpoint})",
                "ChargeFrequency": "Usage-Based",
                "ConsumedQuantity": tokens,
                "ConsumedUnit": "Tokens",
                "PricingQuantity": str(Decimal(tokens) / 1_000_000),
                "PricingUnit": "1M Tokens",
                "ListUnitPrice": str(per_million),
                "ContractedUnitPrice": str(per_million),
                "ProviderName": row.provider or "",
                "PublisherName": row.provider or "",
                "InvoiceIssuerName": row.provider or "",
                "ServiceCategory": "AI and Machine Learning",
                "ServiceName": row.endpoint,
                "ResourceId": f"{row.provider}/{row.model}",
                "ResourceName": row.model or "",
                "ResourceType": "Model",
                "SkuId": f"{row.model}:{part}",
                "SkuPriceId": f"{row.price_version}:{row.model}:{part}",
                "SubAccountId": row.team or "",
                "SubAccountName": row.team or "",
                "Tags": json.dumps({k: v for k, v in tags.items() if v}, sort_keys=True),
            }
        )
    return lines


def write_focus(rows: Iterable[Row], prices: dict[str, Prices], period: tuple[float, float], out: TextIO) -> int:
    writer = csv.DictWriter(out, fieldnames=FOCUS_COLUMNS, lineterminator="\n")
    writer.writeheader()
    count = 0
    for row in rows:
        for line in focus_lines(row, prices, period):
            writer.writerow(line)
            count += 1
    return count


def summary_json(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Store sums with the cost also in USD (as a decimal string: exact)."""
    return [{**g, "cost_usd": usd(int(g["cost_nusd"] or 0))} for g in groups]


__all__ = ["FOCUS_COLUMNS", "NANO_PER_USD", "focus_lines", "iso", "summary_json", "write_csv", "write_focus"]
