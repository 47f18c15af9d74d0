"""Monthly volumes: parsing "50k/day" and projecting a per-task cost over a month."""

from __future__ import annotations

import math
import re
from decimal import Decimal
from fractions import Fraction

from openbench.pricing.hardware import HOURS_PER_MONTH
from openbench.pricing.rates import _dec


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
    try:
        finite = math.isfinite(float(value))
    except OverflowError:
        finite = False
    if value < 0 or not finite:
        raise ValueError(f"invalid volume {text!r}: must be a finite number >= 0")
    return float(value)
