"""Scorers over an answer's tool calls: tool_call and no_tool_call.

Arguments are compared by type: numbers numerically, strings after trimming
(and case-folding unless ``ignore_case: false``), lists and objects item by
item. An expected value rendered from a template is text, so when the model's
value is not a string the expected text is read as JSON first ("42" matches
42, "true" matches true).
"""

from __future__ import annotations

import json
import math
from typing import Any

from openbench.records import ScoreResult
from openbench.scorers.text import normalise


def same_value(expected: Any, actual: Any, ignore_case: bool = True) -> bool:
    if isinstance(expected, str) and not isinstance(actual, str):
        try:
            expected = json.loads(expected)
        except json.JSONDecodeError:
            return False
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        return math.isclose(expected, actual, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(expected, str) and isinstance(actual, str):
        return normalise(expected, ignore_case=ignore_case) == normalise(actual, ignore_case=ignore_case)
    if isinstance(expected, dict) and isinstance(actual, dict):
        return expected.keys() == actual.keys() and all(same_value(v, actual[k], ignore_case) for k, v in expected.items())
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(same_value(e, a, ignore_case) for e, a in zip(expected, actual))
    return expected == actual


def _match(call: dict[str, Any], arguments: dict[str, Any], ignore_case: bool) -> tuple[float, list[str]]:
    """(fraction of expected arguments matched, what differs) for one call whose name matched."""
    if not arguments:
        return 1.0, []
    got = call.get("arguments")
    if call.get("invalid_json") or not isinstance(got, dict):
        return 0.0, [f"arguments are not a JSON object: {str(got)[:60]!r}"]
    wrong = []
    for key, want in arguments.items():
        if key not in got:
            wrong.append(f"{key} missing")
        elif not same_value(want, got[key], ignore_case):
            wrong.append(f"{key}={got[key]!r} (expected {want!r})")
    return (len(arguments) - len(wrong)) / len(arguments), wrong


def tool_call(
    output: str,
    case: dict[str, Any],
    *,
    name: str,
    arguments: dict[str, Any] | None = None,
    ignore_case: bool = True,
    tool_calls: list[dict[str, Any]],
) -> ScoreResult:
    """The model called ``name`` with the given ``arguments`` (templates over the case; only these keys are checked).

    Partial credit: 0 without a call to ``name``; otherwise the fraction of the given arguments that
    match (1 when none are given). Passes when every given argument matches. With several calls to
    ``name``, the best one counts.
    """
    arguments = arguments or {}
    candidates = [c for c in tool_calls if c.get("name") == name]
    if not candidates:
        called = ", ".join(c.get("name", "?") for c in tool_calls) or "no tool"
        return ScoreResult(0.0, False, f"expected a call to {name}; got {called}" + (f" (text: {output[:60]!r})" if output else ""))
    value, wrong = max((_match(c, arguments, ignore_case) for c in candidates), key=lambda m: m[0])
    matched = len(arguments) - len(wrong) if arguments else 0
    detail = f"called {name}; {matched}/{len(arguments)} arguments match" if arguments else f"called {name}"
    return ScoreResult(value, not wrong, detail + (f"; {', '.join(wrong)}" if wrong else ""))


def no_tool_call(output: str, case: dict[str, Any], *, tool_calls: list[dict[str, Any]]) -> ScoreResult:
    """The model answered in text without calling any tool."""
    if tool_calls:
        return ScoreResult(0.0, False, f"called {', '.join(c.get('name', '?') for c in tool_calls)}")
    return ScoreResult(1.0, True, "no tool call")
