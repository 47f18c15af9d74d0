"""The genai-prices catalogue: the only code that touches that package.

It is imported lazily and read from the *bundled*, versioned snapshot only, so
that results are reproducible and nothing touches the network (genai-prices
fetches remote prices only when a caller starts ``UpdatePrices``, which we
never do).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from openbench.pricing.rates import Price, PriceTier, _dec

#: Providers whose prices the catalogue holds.
CATALOGUE_PROVIDERS = frozenset({"openai", "anthropic"})

#: Batch-API discount per vendor (late 2026: both vendors' batch APIs are 50% off),
#: used when the catalogue has no usable batch variant for a model.
VENDOR_BATCH_DISCOUNT: dict[str, float] = {"openai": 0.5, "anthropic": 0.5}


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


