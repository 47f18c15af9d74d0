"""What sampling each closed model accepts, and the record of every change openbench makes to it.

A request's sampling starts from the suite, then the model's own ``sampling:``
override (null = don't send), then the rules the model is known to enforce:
built-in ones, so that the first request is not wasted, and ones learned from a
vendor's 400 that names a sampling parameter, because vendors change their
rules. Every change leaves one sentence in ``adjustments``.

Parameters use neutral names (``temperature``, ``top_p``, ``seed``, ``stop``);
each provider maps them onto its wire format.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any, Iterable

from openbench.records import Sampling

PARAMS = ("temperature", "top_p", "seed", "stop")
# Wire names that differ from the neutral ones.
_WIRE_NAMES = {"stop_sequences": "stop"}


@dataclass(frozen=True)
class Rule:
    """``param`` is refused: whatever its value, unless it equals ``only``, or when sent together with ``alongside``."""

    param: str
    only: float | None = None
    alongside: str | None = None

    def applies(self, params: dict[str, Any]) -> bool:
        value = params.get(self.param)
        if value is None:
            return False
        if self.alongside is not None:
            return params.get(self.alongside) is not None
        if self.only is not None:
            return not isinstance(value, (int, float)) or float(value) != self.only
        return True

    def sentence(self, model: str, params: dict[str, Any]) -> str:
        value = _show(params[self.param])
        if self.alongside is not None:
            kept = _show(params[self.alongside])
            return f"{model}: {self.alongside} and {self.param} are not accepted together; {self.param} {value} was not sent, {self.alongside} {kept} was"
        return f"{model}: {self.param} {value} not accepted, the model's default was used"


@dataclass(frozen=True)
class KnownRule:
    vendor: str
    model: re.Pattern[str]
    rule: Rule


# Public vendor rules (2025-2026). The o-series and the gpt-5 family accept only the default
# temperature (1); recent Claude models refuse temperature and top_p in one request (temperature
# is kept, as the usual reason to set it is reproducibility).
KNOWN_RULES = (
    KnownRule("openai", re.compile(r"^(o[1-9]|gpt-5)([-.]|$)"), Rule("temperature", only=1.0)),
    KnownRule("anthropic", re.compile(r"^claude-(sonnet-4-5|haiku-4-5|opus-4-1)(-|$)"), Rule("top_p", alongside="temperature")),
)


def known_rules(vendor: str | None, model: str) -> list[Rule]:
    name = model.strip().lower().rsplit("/", 1)[-1]
    return [k.rule for k in KNOWN_RULES if k.vendor == vendor and k.model.search(name)]


def rule_from_rejection(message: str, param: str | None, sent: dict[str, Any]) -> Rule | None:
    """The rule a vendor's 400 states about the sampling parameters ``sent``; None if it names none of them."""
    param = _WIRE_NAMES.get(param or "", param)
    named = [
        p for p in PARAMS
        if sent.get(p) is not None and (p == param or re.search(rf"[`'\"]{p}[`'\"]", message))
    ]
    if not named:
        return None
    if len(named) >= 2 and re.search(r"both|together|only one|at the same time", message, re.IGNORECASE):
        kept = "temperature" if "temperature" in named else named[0]
        dropped = next(p for p in named if p != kept)
        return Rule(dropped, alongside=kept)
    target = param if param in named else named[0]
    accepted = re.search(r"\bonly\b\D{0,40}?(\d+(?:\.\d+)?)", message, re.IGNORECASE)
    return Rule(target, only=float(accepted.group(1))) if accepted else Rule(target)


class SamplingPolicy:
    """One model's sampling rules and the changes they made, shared by every request of the run."""

    def __init__(self, model: str, rules: Iterable[Rule] = (), override: dict[str, Any] | None = None):
        self.model = model
        self.rules: list[Rule] = list(rules)
        self.override = dict(override or {})
        self.adjustments: list[str] = []
        self.settled = False  # a request of this model has been accepted
        self._turn = asyncio.Lock()

    def note(self, sentence: str) -> None:
        if sentence not in self.adjustments:
            self.adjustments.append(sentence)

    def params(self, sampling: Sampling) -> dict[str, Any]:
        """The sampling parameters to send (None: not sent), with every change noted."""
        params: dict[str, Any] = {
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "seed": sampling.seed,
            "stop": list(sampling.stop) or None,
        }
        for name, value in self.override.items():
            if params.get(name) != value:
                self.note(f"{self.model}: {name} {'not sent' if value is None else f'set to {_show(value)}'} (the model's sampling override)")
            params[name] = value
        # Rules about one parameter first, so that "not together" sees what is really sent.
        for rule in sorted(self.rules, key=lambda r: r.alongside is not None):
            if rule.applies(params):
                self.note(rule.sentence(self.model, params))
                params[rule.param] = None
        return params

    def learn(self, message: str, param: str | None, sent: dict[str, Any]) -> bool:
        """Take the rule a 400 states; True when a request built now would differ from ``sent``."""
        rule = rule_from_rejection(message, param, sent)
        if rule is None or not rule.applies(sent):
            return False
        if rule not in self.rules:
            self.rules.append(rule)
        return True

    async def admit(self) -> bool:
        """Until a request of this model is accepted, requests go one at a time, so that a rule is
        learned from one 400 rather than from one per concurrent request. True: this request holds the turn."""
        if self.settled:
            return False
        await self._turn.acquire()
        if self.settled:
            self._turn.release()
            return False
        return True

    def release(self, held: bool, accepted: bool = False) -> None:
        self.settled = self.settled or accepted
        if held:
            self._turn.release()


def _show(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return "[" + ", ".join(repr(v) for v in value) + "]"
    return str(value)
