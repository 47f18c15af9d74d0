"""Prices and costs: closed-API token prices and self-hosted hardware costs.

Everything here is a pure function over frozen dataclasses. The only outside
data is the ``genai-prices`` catalogue, a dated price list bundled in that
package; it is imported lazily inside :func:`lookup_price` so that the CLI
starts fast, and read from the *bundled* snapshot only. Nothing in this module
touches the network: genai-prices fetches remote prices only when a caller
starts ``genai_prices.UpdatePrices`` (or runs its CLI with ``--update-prices``),
which we never do, and even if some other library in the process did, we keep
reading the bundled, versioned data so that results are reproducible.

Token prices are USD per million tokens (``*_per_mtok``). Costs are computed in
exact decimal arithmetic and returned as ``float`` USD. An unknown price is
``None`` and stays ``None`` through every computation: a missing price is never
silently treated as free.

Price precedence: ``cli`` override > ``suite`` override > ``genai-prices``
catalogue (see :func:`resolve_price`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache
from typing import Any

from openbench.records import Usage

__all__ = [
    "BUILTIN_HARDWARE",
    "CATALOGUE_PROVIDERS",
    "DEFAULT_UTILISATION",
    "HARDWARE_NOTE",
    "HOURS_PER_MONTH",
    "VENDOR_BATCH_DISCOUNT",
    "Hardware",
    "Price",
    "PriceTier",
    "SelfHostedCost",
    "break_even_tasks_per_month",
    "busy_seconds_per_task",
    "catalogue_version",
    "cost",
    "lookup_price",
    "monthly_projection",
    "parse_volume",
    "price_from_override",
    "resolve_hardware",
    "resolve_price",
    "self_hosted_cost_per_task",
]

MTOK = 1_000_000

#: Providers whose prices we take from the genai-prices catalogue.
CATALOGUE_PROVIDERS = frozenset({"openai", "anthropic"})

#: Batch-API discount per vendor (late 2026: both vendors' batch APIs are 50% off).
#: Used when the catalogue has no usable batch variant for a model.
VENDOR_BATCH_DISCOUNT: dict[str, float] = {"openai": 0.5, "anthropic": 0.5}

#: Hours in an average month (8760 / 12); a dedicated box is rented for all of them.
HOURS_PER_MONTH = 730

#: Default share of a dedicated box's time spent doing useful work.
DEFAULT_UTILISATION = 0.5

PRICE_SOURCES = ("genai-prices", "suite", "cli")


# ---------------------------------------------------------------------------
# API prices
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PriceTier:
    """Rates that replace the base rates when a request's total input tokens
    exceed ``above_input_tokens`` (the "cliff" model genai-prices uses: crossing
    the threshold re-prices *all* tokens of the request)."""

    above_input_tokens: int
    input_per_mtok: float
    output_per_mtok: float
    cache_read_per_mtok: float | None = None
    cache_write_per_mtok: float | None = None
    reasoning_per_mtok: float | None = None


@dataclass(frozen=True)
class Price:
    """A token price in USD per million tokens.

    ``cache_read_per_mtok`` / ``cache_write_per_mtok`` of ``None`` mean such
    tokens are billed at the input rate; ``reasoning_per_mtok`` of ``None``
    means reasoning tokens are billed as output. ``batch_discount`` is the
    fraction taken off the whole bill when the vendor's batch API is used
    (0.5 = half price). ``as_of`` is the date the price is valid for (for the
    catalogue: the date the catalogue was evaluated at); ``model_ref`` is what
    the lookup matched (the catalogue's model id).
    """

    input_per_mtok: float
    output_per_mtok: float
    cache_read_per_mtok: float | None = None
    cache_write_per_mtok: float | None = None
    reasoning_per_mtok: float | None = None
    batch_discount: float = 0.0
    source: str = "genai-prices"
    catalogue_version: str | None = None
    as_of: str | None = None
    model_ref: str | None = None
    tiers: tuple[PriceTier, ...] = ()


def catalogue_version() -> str | None:
    """``"genai-prices <version>"`` of the installed catalogue, or None if absent."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"genai-prices {version('genai-prices')}"
    except PackageNotFoundError:
        return None


def _normalise_model(provider: str, model: str) -> str:
    ref = model.strip()
    low = ref.lower()
    for sep in ("/", ":"):
        prefix = provider + sep
        if low.startswith(prefix):
            ref = ref[len(prefix) :]
            break
    return ref.strip()


def lookup_price(provider: str, model: str, *, at: date | None = None) -> Price | None:
    """Catalogue price for ``model`` at ``provider`` (``openai`` or ``anthropic``).

    Uses genai-prices' own model matching, which accepts aliases and dated
    snapshots (``gpt-4o-mini-2024-07-18``, ``claude-haiku-4-5-20251001`` and
    compact dates); a ``"openai/"`` or ``"openai:"`` style prefix is stripped.
    ``at`` picks the price in effect on that date (default: today, UTC), since
    the catalogue records dated price changes.

    Returns ``None`` when the provider is not a catalogue provider, the model
    is unknown, the catalogue is not installed, or it lacks an input or output
    rate — never a zero price.
    """
    prov = (provider or "").strip().lower()
    if prov not in CATALOGUE_PROVIDERS or not model or not model.strip():
        return None
    when = at or datetime.now(tz=UTC).date()
    return _catalogue_price(prov, _normalise_model(prov, model), when.isoformat())


def _bundled_snapshot() -> tuple[Any, bool]:
    """The catalogue snapshot shipped inside the package (never a fetched one)."""
    from genai_prices import data_snapshot

    getter = getattr(data_snapshot, "_bundled_snapshot", None)
    if getter is not None:
        return getter(), False
    snap = data_snapshot.get_snapshot()  # pragma: no cover - older/newer layouts
    return snap, bool(getattr(snap, "from_auto_update", False))


def _dec(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(repr(value))


def _base_rate(value: Any) -> Decimal | None:
    """Base Decimal of a genai-prices price value (Decimal or TieredPrices)."""
    if value is None:
        return None
    base = getattr(value, "base", value)
    return _dec(base)


def _rate_above(value: Any, threshold: int) -> Decimal | None:
    """Rate a genai-prices value charges when total input tokens exceed ``threshold``."""
    if value is None:
        return None
    tiers = getattr(value, "tiers", None)
    if tiers is None:
        return _dec(value)
    rate = _dec(value.base)
    for tier in sorted(tiers, key=lambda t: t.start):
        if tier.start <= threshold:
            rate = _dec(tier.price)
    return rate


def _f(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


_PRICE_KEYS = {
    "input_per_mtok": "input_mtok",
    "output_per_mtok": "output_mtok",
    "cache_read_per_mtok": "cache_read_mtok",
    "cache_write_per_mtok": "cache_write_mtok",  # Anthropic: the default 5-minute TTL rate
    "reasoning_per_mtok": "output_reasoning_mtok",
}


@lru_cache(maxsize=256)
def _catalogue_price(provider: str, model: str, at_iso: str) -> Price | None:
    try:
        snapshot, fetched = _bundled_snapshot()
    except ImportError:
        return None
    try:
        _prov, info = snapshot.find_provider_model(model, None, provider, None)
    except LookupError:
        return None

    when = datetime.combine(date.fromisoformat(at_iso), datetime.min.time(), tzinfo=UTC)
    std = info.get_prices(when)
    raw = {ours: getattr(std, theirs, None) for ours, theirs in _PRICE_KEYS.items()}
    if raw["input_per_mtok"] is None or raw["output_per_mtok"] is None:
        return None

    thresholds = sorted(
        {t.start for v in raw.values() if v is not None for t in (getattr(v, "tiers", None) or ())}
    )
    tiers = []
    for th in thresholds:
        rates = {k: _rate_above(v, th) for k, v in raw.items()}
        tiers.append(
            PriceTier(
                above_input_tokens=int(th),
                input_per_mtok=float(rates["input_per_mtok"]),  # type: ignore[arg-type]
                output_per_mtok=float(rates["output_per_mtok"]),  # type: ignore[arg-type]
                cache_read_per_mtok=_f(rates["cache_read_per_mtok"]),
                cache_write_per_mtok=_f(rates["cache_write_per_mtok"]),
                reasoning_per_mtok=_f(rates["reasoning_per_mtok"]),
            )
        )

    version = catalogue_version() or "genai-prices"
    if fetched:  # pragma: no cover - only if the bundled snapshot is unreachable
        version += " (auto-updated data)"
    base = {k: _base_rate(v) for k, v in raw.items()}
    return Price(
        input_per_mtok=float(base["input_per_mtok"]),  # type: ignore[arg-type]
        output_per_mtok=float(base["output_per_mtok"]),  # type: ignore[arg-type]
        cache_read_per_mtok=_f(base["cache_read_per_mtok"]),
        cache_write_per_mtok=_f(base["cache_write_per_mtok"]),
        reasoning_per_mtok=_f(base["reasoning_per_mtok"]),
        batch_discount=_catalogue_batch_discount(provider, info, std, when),
        source="genai-prices",
        catalogue_version=version,
        as_of=at_iso,
        model_ref=info.id,
        tiers=tuple(tiers),
    )


def _catalogue_batch_discount(provider: str, info: Any, std: Any, when: datetime) -> float:
    """The batch discount implied by the catalogue's ``processing=batch`` variant
    when its input and output rates are cut by the same fraction; otherwise the
    vendor's published batch discount (:data:`VENDOR_BATCH_DISCOUNT`)."""
    default = VENDOR_BATCH_DISCOUNT.get(provider, 0.0)
    try:
        batch = info.get_prices(when, {"processing": "batch"})
    except Exception:  # pragma: no cover - defensive against catalogue changes
        return default
    ratios = set()
    for key in ("input_mtok", "output_mtok"):
        s, b = _base_rate(getattr(std, key, None)), _base_rate(getattr(batch, key, None))
        if not s or b is None:
            return default
        ratios.add(b / s)
    if len(ratios) != 1:
        return default
    ratio = ratios.pop()
    if ratio >= 1 or ratio <= 0:
        return default  # no batch variant in effect (or a nonsensical one)
    return float(1 - ratio)


_OVERRIDE_ALIASES = {
    "input": "input_per_mtok",
    "output": "output_per_mtok",
    "cache_read": "cache_read_per_mtok",
    "cached_input": "cache_read_per_mtok",
    "cache_write": "cache_write_per_mtok",
    "reasoning": "reasoning_per_mtok",
}
_RATE_FIELDS = (
    "input_per_mtok",
    "output_per_mtok",
    "cache_read_per_mtok",
    "cache_write_per_mtok",
    "reasoning_per_mtok",
)
_OPTIONAL_RATES = frozenset(_RATE_FIELDS[2:])


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"price field {name!r} must be a number, got {value!r}")
    try:
        num = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"price field {name!r} must be a number, got {value!r}") from None
    if not math.isfinite(num) or num < 0:
        raise ValueError(f"price field {name!r} must be a finite number >= 0, got {value!r}")
    return num


def price_from_override(
    mapping: Mapping[str, Any], base: Price | None, *, source: str = "suite"
) -> Price:
    """Apply a per-suite (or CLI) price override on top of ``base``.

    ``mapping`` keys: ``input_per_mtok``, ``output_per_mtok``,
    ``cache_read_per_mtok``, ``cache_write_per_mtok``, ``reasoning_per_mtok``
    (short forms ``input``, ``output``, ``cache_read``/``cached_input``,
    ``cache_write``, ``reasoning`` also work), ``batch_discount`` (0 <= d < 1)
    and ``as_of``. Missing fields fall back to ``base``; an optional rate given
    as ``None`` clears it (billed at the input/output rate). Overriding any rate
    drops ``base``'s long-context tiers (a negotiated rate card replaces the
    list one). Unknown keys raise ``ValueError``; so does a missing input or
    output rate when there is no ``base`` to fall back to.
    """
    if source not in PRICE_SOURCES:
        raise ValueError(f"unknown price source {source!r}; expected one of {PRICE_SOURCES}")
    values: dict[str, Any] = {}
    for key, value in mapping.items():
        name = _OVERRIDE_ALIASES.get(key, key)
        if name in _RATE_FIELDS:
            if value is None:
                if name not in _OPTIONAL_RATES:
                    raise ValueError(f"price field {key!r} cannot be null")
                values[name] = None
            else:
                values[name] = _number(key, value)
        elif name == "batch_discount":
            d = _number(key, value)
            if d >= 1:
                raise ValueError(f"batch_discount must be in [0, 1), got {value!r}")
            values[name] = d
        elif name == "as_of":
            values[name] = None if value is None else str(value)
        else:
            allowed = sorted({*_RATE_FIELDS, *_OVERRIDE_ALIASES, "batch_discount", "as_of"})
            raise ValueError(f"unknown price field {key!r}; expected one of {allowed}")

    if base is None:
        missing = [f for f in ("input_per_mtok", "output_per_mtok") if f not in values]
        if missing:
            raise ValueError(
                f"price override needs {' and '.join(missing)}: there is no catalogue price "
                "to fall back to"
            )
        return Price(source=source, **values)
    if not values:
        return base
    rate_changed = any(f in values for f in _RATE_FIELDS)
    return replace(
        base,
        **values,
        source=source,
        tiers=() if rate_changed else base.tiers,
    )


def resolve_price(
    provider: str,
    model: str,
    suite_override: Mapping[str, Any] | None = None,
    cli_override: Mapping[str, Any] | None = None,
    *,
    at: date | None = None,
) -> Price | None:
    """The price to bill with: CLI override > suite override > catalogue.

    Each override layer only replaces the fields it names; the rest come from
    the layer below. Returns None if no layer gives a price.
    """
    price = lookup_price(provider, model, at=at)
    if suite_override:
        price = price_from_override(suite_override, price, source="suite")
    if cli_override:
        price = price_from_override(cli_override, price, source="cli")
    return price


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


# ---------------------------------------------------------------------------
# Self-hosted hardware
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Hardware:
    """A machine to self-host on. ``usd_per_hour`` is per accelerator (per
    instance for CPU boxes); the machine costs ``usd_per_hour * count``."""

    name: str
    accelerator: str
    count: int
    usd_per_hour: float
    as_of: str | None = None
    source: str = "builtin"


HARDWARE_NOTE = (
    "Built-in hardware prices are example on-demand list prices (2026-11), not quotes: "
    "GPU-hour prices vary ~2x between clouds (H100: ~$2-4/GPU-hour). Override them with "
    "your own rates."
)

_BUILTIN_SOURCE = "builtin example list price (see HARDWARE_NOTE)"

BUILTIN_HARDWARE: dict[str, Hardware] = {
    "cpu-2core": Hardware("cpu-2core", "cpu (2 vCPU)", 1, 0.10, "2026-11", _BUILTIN_SOURCE),
    "l4": Hardware("l4", "NVIDIA L4 24GB", 1, 0.80, "2026-11", _BUILTIN_SOURCE),
    "a100-80gb": Hardware("a100-80gb", "NVIDIA A100 80GB", 1, 1.80, "2026-11", _BUILTIN_SOURCE),
    "h100": Hardware("h100", "NVIDIA H100 80GB", 1, 3.00, "2026-11", _BUILTIN_SOURCE),
}

_HW_ALIASES = {"gpus": "count", "usd_per_gpu_hour": "usd_per_hour"}
_HW_FIELDS = ("name", "accelerator", "count", "usd_per_hour", "as_of", "source")


def _hardware_from_mapping(mapping: Mapping[str, Any], base: Hardware | None) -> Hardware:
    values: dict[str, Any] = {}
    for key, value in mapping.items():
        name = _HW_ALIASES.get(key, key)
        if name not in _HW_FIELDS:
            raise ValueError(f"unknown hardware field {key!r}; expected one of {sorted(_HW_FIELDS)}")
        values[name] = value
    if "usd_per_hour" in values:
        values["usd_per_hour"] = _number("usd_per_hour", values["usd_per_hour"])
    if "count" in values:
        c = values["count"]
        if isinstance(c, bool) or not isinstance(c, int) or c < 1:
            raise ValueError(f"hardware count must be an integer >= 1, got {c!r}")
    if "as_of" in values and values["as_of"] is not None:
        values["as_of"] = str(values["as_of"])
    values.setdefault("source", "suite")
    if base is not None:
        return replace(base, **values)
    if "usd_per_hour" not in values:
        raise ValueError("hardware needs usd_per_hour (no built-in entry to fall back to)")
    name = str(values.pop("name", "custom"))
    return Hardware(
        name=name,
        accelerator=str(values.pop("accelerator", name)),
        count=values.pop("count", 1),
        usd_per_hour=values.pop("usd_per_hour"),
        as_of=values.pop("as_of", None),
        source=values.pop("source"),
    )


def resolve_hardware(
    name_or_mapping: str | Mapping[str, Any] | Hardware,
    overrides: Mapping[str, Hardware | Mapping[str, Any]] | None = None,
) -> Hardware:
    """Resolve a hardware reference.

    * a name: ``overrides[name]`` if present (a mapping there is layered over a
      built-in of the same name, if any), else :data:`BUILTIN_HARDWARE`;
    * a mapping: if its ``name`` resolves as above, its other fields override
      that entry (e.g. ``{"name": "h100", "count": 2, "usd_per_hour": 2.4}``);
      otherwise it must define ``usd_per_hour`` itself;
    * a :class:`Hardware`: returned as is.

    Unknown names raise ``KeyError`` listing the known ones.
    """
    overrides = overrides or {}
    if isinstance(name_or_mapping, Hardware):
        return name_or_mapping
    if isinstance(name_or_mapping, str):
        name = name_or_mapping.strip()
        if name in overrides:
            entry = overrides[name]
            if isinstance(entry, Hardware):
                return entry
            return _hardware_from_mapping({"name": name, **entry}, BUILTIN_HARDWARE.get(name))
        if name in BUILTIN_HARDWARE:
            return BUILTIN_HARDWARE[name]
        known = sorted({*BUILTIN_HARDWARE, *overrides})
        raise KeyError(f"unknown hardware {name!r}; known: {', '.join(known)}")
    mapping = dict(name_or_mapping)
    base = None
    ref = mapping.get("name")
    if isinstance(ref, str) and (ref in overrides or ref in BUILTIN_HARDWARE):
        base = resolve_hardware(ref, overrides)
    return _hardware_from_mapping(mapping, base)


def hardware_from_cli(text: str, overrides: Mapping[str, Any] | None = None) -> Hardware:
    """``PROFILE`` or ``PROFILE@USD_PER_HOUR`` (e.g. ``h100@2.40``); a new name needs the price."""
    name, _, price = (part.strip() for part in text.partition("@"))
    if not price:
        return resolve_hardware(name, overrides)
    known = name in BUILTIN_HARDWARE or name in (overrides or {})
    mapping: dict[str, Any] = {"name": name, "usd_per_hour": _number("usd_per_hour", price)}
    if not known:
        mapping["accelerator"] = name
    return replace(resolve_hardware(mapping, overrides), source="cli")


@dataclass(frozen=True)
class SelfHostedCost:
    """Self-hosted USD per task: ``usage_usd`` if you pay only for busy time
    (perfect packing, per-second billing); ``dedicated_usd`` for a box you rent
    around the clock and keep busy ``utilisation`` of the time."""

    dedicated_usd: float
    usage_usd: float


def busy_seconds_per_task(wall_s: float, tasks: int) -> float:
    """Machine-busy seconds per task: the measured wall time of a model's run
    divided by the tasks it completed (i.e. 1 / throughput at the batch size or
    concurrency used)."""
    if tasks <= 0:
        raise ValueError(f"tasks must be > 0, got {tasks!r}")
    if wall_s < 0 or not math.isfinite(wall_s):
        raise ValueError(f"wall_s must be a finite number >= 0, got {wall_s!r}")
    return wall_s / tasks


def self_hosted_cost_per_task(
    hw: Hardware, busy_s_per_task: float, utilisation: float = DEFAULT_UTILISATION
) -> SelfHostedCost:
    """Cost per task on ``hw``.

    ``usage_usd = usd_per_hour * count * busy_s_per_task / 3600``;
    ``dedicated_usd = usage_usd / utilisation`` (default utilisation 0.5: the
    box idles half the time, e.g. waiting for daytime traffic).
    """
    if not (0 < utilisation <= 1):
        raise ValueError(f"utilisation must be in (0, 1], got {utilisation!r}")
    if busy_s_per_task < 0 or not math.isfinite(busy_s_per_task):
        raise ValueError(f"busy_s_per_task must be a finite number >= 0, got {busy_s_per_task!r}")
    usage = _dec(hw.usd_per_hour) * hw.count * _dec(busy_s_per_task) / 3600
    return SelfHostedCost(
        dedicated_usd=float(usage / _dec(utilisation)),
        usage_usd=float(usage),
    )


def break_even_tasks_per_month(
    api_cost_per_task: float | None,
    hw: Hardware,
    busy_s_per_task: float,
    *,
    max_utilisation: float = 1.0,
) -> float | None:
    """Monthly volume above which dedicated boxes are always cheaper than the API.

    Model: the API costs ``V * a`` for ``V`` tasks a month at ``a`` USD/task. A
    dedicated box is rented all month: ``B = usd_per_hour * count * 730`` USD,
    and serves ``C = 730 * 3600 * max_utilisation / busy_s_per_task`` tasks a
    month (``busy_s_per_task`` = measured wall time / tasks at the batch size
    or concurrency used). ``V`` tasks need ``ceil(V / C)`` boxes, costing
    ``ceil(V / C) * B``.

    * If ``a <= B / C`` (the API is no dearer than even a fully busy box's
      per-task cost) dedicated is never cheaper: returns ``None``.
    * Otherwise one box wins once ``V > B / a``. Each extra box is a step up in
      cost, so just past a multiple of ``C`` the API can briefly win again when
      the margin is thin; those pockets exist for box counts
      ``k < 1 / (1 - u)``, ``u = B / (a C)``. The returned volume is past the
      last pocket: ``K * B / a`` with ``K`` the largest integer below
      ``1 / (1 - u)`` (``= B / a`` whenever the API costs at least twice the
      busy-box cost per task). Above it, dedicated is strictly cheaper.

    ``api_cost_per_task`` of None (unknown price) gives None.
    """
    if api_cost_per_task is None:
        return None
    if not (0 < max_utilisation <= 1):
        raise ValueError(f"max_utilisation must be in (0, 1], got {max_utilisation!r}")
    if not (busy_s_per_task > 0) or not math.isfinite(busy_s_per_task):
        raise ValueError(f"busy_s_per_task must be a finite number > 0, got {busy_s_per_task!r}")
    a = Fraction(_dec(api_cost_per_task))
    if a <= 0:
        return None
    box = Fraction(_dec(hw.usd_per_hour)) * hw.count * HOURS_PER_MONTH
    capacity = Fraction(HOURS_PER_MONTH * 3600) * Fraction(_dec(max_utilisation)) / Fraction(
        _dec(busy_s_per_task)
    )
    u = box / (a * capacity)
    if u >= 1:
        return None
    k = math.ceil(1 / (1 - u)) - 1  # largest integer strictly below 1 / (1 - u)
    return float(k * box / a)


def monthly_projection(volume: float | str, cost_per_task: float | None) -> float | None:
    """USD per month at ``volume`` tasks/month (or a :func:`parse_volume` string);
    None when the per-task cost is unknown."""
    if cost_per_task is None:
        return None
    v = parse_volume(volume)
    return float(Fraction(_dec(v)) * Fraction(_dec(cost_per_task)))


_PERIODS_PER_MONTH: dict[str, Fraction] = {
    "month": Fraction(1),
    "day": Fraction(HOURS_PER_MONTH, 24),
    "week": Fraction(HOURS_PER_MONTH, 24 * 7),
    "hour": Fraction(HOURS_PER_MONTH),
    "year": Fraction(1, 12),
}
_PERIOD_ALIASES = {
    "month": "month", "months": "month", "mo": "month", "mon": "month",
    "day": "day", "days": "day", "d": "day",
    "week": "week", "weeks": "week", "wk": "week", "w": "week",
    "hour": "hour", "hours": "hour", "hr": "hour", "h": "hour",
    "year": "year", "years": "year", "yr": "year", "y": "year",
}  # fmt: skip
_MULTIPLIERS = {
    "": 1, "k": 10**3, "thousand": 10**3, "m": 10**6, "mn": 10**6, "million": 10**6,
    "b": 10**9, "bn": 10**9, "billion": 10**9,
}  # fmt: skip
_VOLUME_RE = re.compile(
    r"""^\s*
    (?P<num>(?:\d[\d_,]*(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?)
    \s*(?P<mult>k|thousand|million|mn|m|billion|bn|b)?
    \s*(?:(?:/|per\s+|a\s+)\s*(?P<period>[a-z]+))?
    \s*$""",
    re.IGNORECASE | re.VERBOSE,
)


def parse_volume(text: str | float | int) -> float:
    """Tasks per month from ``"1_000_000/month"``, ``"50k/day"``, ``"1e6"``,
    ``"2.5M per week"`` and the like (no period means per month).

    A month is 730 hours (365 * 24 / 12), so a day is 730/24 = 30.42 days'
    worth: ``"50k/day"`` is 1,520,833.3 tasks/month.
    """
    if isinstance(text, bool):
        raise ValueError(f"invalid volume {text!r}")
    if isinstance(text, (int, float)):
        if not math.isfinite(text):
            raise ValueError(f"invalid volume {text!r}: must be a finite number >= 0")
        value = Fraction(_dec(text))
    else:
        m = _VOLUME_RE.match(str(text))
        if not m:
            raise ValueError(
                f"invalid volume {text!r}; expected e.g. '1_000_000/month', '50k/day' or '1e6'"
            )
        num = m["num"].replace("_", "").replace(",", "")
        period_word = (m["period"] or "month").lower()
        if period_word not in _PERIOD_ALIASES:
            raise ValueError(f"invalid volume {text!r}: unknown period {m['period']!r}")
        value = (
            Fraction(Decimal(num))
            * _MULTIPLIERS[(m["mult"] or "").lower()]
            * _PERIODS_PER_MONTH[_PERIOD_ALIASES[period_word]]
        )
    if value < 0 or not math.isfinite(float(value)):
        raise ValueError(f"invalid volume {text!r}: must be a finite number >= 0")
    return float(value)
