"""API token prices, the suite's price overrides, and the cost of one request.

Token prices are USD per million tokens (``*_per_mtok``). Costs are computed in
exact decimal arithmetic and returned as ``float`` USD. An unknown price is
``None`` and stays ``None`` through every computation: a missing price is never
silently treated as free.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from decimal import Decimal
from typing import Any, Mapping

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from openbench.records import Usage

MTOK = 1_000_000

#: Where a price came from: the catalogue, or the suite's ``price:`` block.
PRICE_SOURCES = ("genai-prices", "suite")


@dataclass(frozen=True, kw_only=True)
class Rates:
    """The five token rates, USD per million tokens.

    ``cache_read_per_mtok`` / ``cache_write_per_mtok`` of ``None`` mean such
    tokens are billed at the input rate; ``reasoning_per_mtok`` of ``None``
    means reasoning tokens are billed as output.
    """

    input_per_mtok: float
    output_per_mtok: float
    cache_read_per_mtok: float | None = None
    cache_write_per_mtok: float | None = None
    reasoning_per_mtok: float | None = None


RATE_FIELDS = tuple(f.name for f in fields(Rates))


@dataclass(frozen=True, kw_only=True)
class PriceTier(Rates):
    """Rates that replace the base rates when a request's total input tokens
    exceed ``above_input_tokens`` (the "cliff" model genai-prices uses: crossing
    the threshold re-prices *all* tokens of the request)."""

    above_input_tokens: int


@dataclass(frozen=True, kw_only=True)
class Price(Rates):
    """A model's token price.

    ``batch_discount`` is the fraction taken off the whole bill when the
    vendor's batch API is used (0.5 = half price). ``as_of`` is the date the
    price is valid for (for the catalogue: the date it was evaluated at);
    ``model_ref`` is what the catalogue lookup matched.
    """

    batch_discount: float = 0.0
    source: str = "genai-prices"
    catalogue_version: str | None = None
    as_of: str | None = None
    model_ref: str | None = None
    tiers: tuple[PriceTier, ...] = ()


def _rate(name: str, short: str, required: bool = False) -> Any:
    return Field(
        None,
        ge=0,
        allow_inf_nan=False,
        validation_alias=AliasChoices(name, short, *(("cached_input",) if short == "cache_read" else ())),
        description=f"USD per million {short.replace('_', ' ')} tokens" + ("" if required else "; null clears it"),
    )


class PriceOverride(BaseModel):
    """A negotiated or self-hosted per-token price (USD per million tokens).

    Unset fields fall back to the catalogue. This is the one parser of price
    overrides; short names (``input``, ``output``, ``cache_read``...) work too.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    input_per_mtok: float | None = _rate("input_per_mtok", "input", True)
    output_per_mtok: float | None = _rate("output_per_mtok", "output", True)
    cache_read_per_mtok: float | None = _rate("cache_read_per_mtok", "cache_read")
    cache_write_per_mtok: float | None = _rate("cache_write_per_mtok", "cache_write")
    reasoning_per_mtok: float | None = _rate("reasoning_per_mtok", "reasoning")
    batch_discount: float | None = Field(None, ge=0, lt=1, description="Share taken off with the vendor's batch API.")
    as_of: str | None = Field(None, description="When this price was agreed (shown in reports).")


def price_from_override(override: PriceOverride | Mapping[str, Any], base: Price | None, *, source: str = "suite") -> Price:
    """``override`` on top of ``base``: fields it sets replace the base's.

    An optional rate set to null clears it (billed at the input/output rate).
    Overriding any rate drops ``base``'s long-context tiers (a negotiated rate
    card replaces the list one). A missing input or output rate with no
    ``base`` to fall back to raises ``ValueError``.
    """
    if source not in PRICE_SOURCES:
        raise ValueError(f"unknown price source {source!r}; expected one of {PRICE_SOURCES}")
    if not isinstance(override, PriceOverride):
        try:
            override = PriceOverride.model_validate(dict(override))
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in err["loc"])
            what = "unknown price field" if err["type"] == "extra_forbidden" else "invalid price field"
            raise ValueError(f"{what} {where!r}: {err['msg']}") from None
    values = {k: getattr(override, k) for k in override.model_fields_set}
    for name in ("input_per_mtok", "output_per_mtok"):
        if name in values and values[name] is None:
            raise ValueError(f"price field {name!r} cannot be null")
    if base is None:
        missing = [f for f in ("input_per_mtok", "output_per_mtok") if f not in values]
        if missing:
            raise ValueError(f"price override needs {' and '.join(missing)}: there is no catalogue price to fall back to")
        return Price(source=source, **values)
    if not values:
        return base
    rate_changed = any(f in values for f in RATE_FIELDS)
    return replace(base, **values, source=source, tiers=() if rate_changed else base.tiers)


def _dec(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(repr(value))


def _tokens(name: str, value: int | None) -> int:
    v = 0 if value is None else value
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ValueError(f"usage.{name} must be a non-negative integer, got {value!r}")
    return v


def cost(usage: Usage, price: Price | None, batch: bool = False) -> float | None:
    """USD cost of one request's ``usage`` at ``price``.

    * uncached input (``input - cached - cache_write``) at the input rate;
    * cache reads at ``cache_read_per_mtok`` (input rate if None);
    * cache writes at ``cache_write_per_mtok`` (input rate if None);
    * output at the output rate, except that reasoning tokens (a subset of
      output) are billed at ``reasoning_per_mtok`` when it is set;
    * the rates of the highest tier whose threshold the total input exceeds;
    * everything times ``1 - batch_discount`` when ``batch``.

    Returns None if the price is None or input/output token counts are
    unknown. Inconsistent counts (a subset larger than its total) raise
    ``ValueError``.
    """
    if price is None or usage is None:
        return None
    if usage.input_tokens is None or usage.output_tokens is None:
        return None
    inp = _tokens("input_tokens", usage.input_tokens)
    out = _tokens("output_tokens", usage.output_tokens)
    cached = _tokens("cached_input_tokens", usage.cached_input_tokens)
    written = _tokens("cache_write_tokens", usage.cache_write_tokens)
    reasoning = _tokens("reasoning_tokens", usage.reasoning_tokens)
    if cached + written > inp:
        raise ValueError(
            f"cached_input_tokens ({cached}) + cache_write_tokens ({written}) exceed "
            f"input_tokens ({inp}); input_tokens must count every prompt token"
        )
    if reasoning > out:
        raise ValueError(f"reasoning_tokens ({reasoning}) exceed output_tokens ({out})")

    rates: Price | PriceTier = price
    for tier in sorted(price.tiers, key=lambda t: t.above_input_tokens):
        if inp > tier.above_input_tokens:
            rates = tier

    in_rate = _dec(rates.input_per_mtok)
    out_rate = _dec(rates.output_per_mtok)
    read_rate = in_rate if rates.cache_read_per_mtok is None else _dec(rates.cache_read_per_mtok)
    write_rate = in_rate if rates.cache_write_per_mtok is None else _dec(rates.cache_write_per_mtok)
    reason_rate = out_rate if rates.reasoning_per_mtok is None else _dec(rates.reasoning_per_mtok)

    total = (
        (inp - cached - written) * in_rate
        + cached * read_rate
        + written * write_rate
        + (out - reasoning) * out_rate
        + reasoning * reason_rate
    ) / MTOK
    if batch and price.batch_discount:
        total *= 1 - _dec(price.batch_discount)
    return float(total)


