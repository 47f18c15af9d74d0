"""Self-hosted cost: hardware profiles, cost per task from busy time, break-even against an API."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any, Mapping

from openbench.pricing.rates import _dec

#: Hours in an average month (8760 / 12); a dedicated box is rented for all of them.
HOURS_PER_MONTH = 730

#: Default share of a dedicated box's time spent doing useful work.
DEFAULT_UTILISATION = 0.5


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        num = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(num) or num < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return num


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



# Example on-demand list prices, not quotes: GPU-hour prices vary ~2x between clouds.
_BUILTIN_SOURCE = "built-in example list price (override it with your own rate)"

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


