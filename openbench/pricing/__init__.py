"""Prices and costs, one module per concept:

- ``rates``: token prices (``Price``, ``PriceTier``), the suite's ``PriceOverride`` and ``cost()`` of one request;
- ``catalogue``: the genai-prices adapter (``lookup_price``), the only code that touches that package;
- ``hardware``: self-hosted hardware profiles, cost per task from busy time, break-even;
- ``volume``: monthly volumes and projections.
"""

from __future__ import annotations

from typing import Any, Mapping

from openbench.pricing.catalogue import CATALOGUE_PROVIDERS, VENDOR_BATCH_DISCOUNT, catalogue_version, lookup_price
from openbench.pricing.hardware import (
    BUILTIN_HARDWARE,
    DEFAULT_UTILISATION,
    HOURS_PER_MONTH,
    Hardware,
    SelfHostedCost,
    break_even_tasks_per_month,
    busy_seconds_per_task,
    hardware_from_cli,
    resolve_hardware,
    self_hosted_cost_per_task,
)
from openbench.pricing.rates import Price, PriceOverride, PriceTier, Rates, cost, price_from_override
from openbench.pricing.volume import monthly_projection, parse_volume


def resolve_price(provider: str, model: str, override: PriceOverride | Mapping[str, Any] | None = None, *, at: Any = None) -> Price | None:
    """The price to bill with: the suite's override over the catalogue's price (None if neither gives one)."""
    price = lookup_price(provider, model, at=at)
    if override:
        price = price_from_override(override, price, source="suite")
    return price


__all__ = [
    "BUILTIN_HARDWARE", "CATALOGUE_PROVIDERS", "DEFAULT_UTILISATION", "HOURS_PER_MONTH", "VENDOR_BATCH_DISCOUNT",
    "Hardware", "Price", "PriceOverride", "PriceTier", "Rates", "SelfHostedCost",
    "break_even_tasks_per_month", "busy_seconds_per_task", "catalogue_version", "cost", "hardware_from_cli",
    "lookup_price", "monthly_projection", "parse_volume", "price_from_override", "resolve_hardware", "resolve_price",
    "self_hosted_cost_per_task",
]  # fmt: skip
