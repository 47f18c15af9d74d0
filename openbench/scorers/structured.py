"""Scorers over JSON output: json_valid, json_schema, json_fields."""

from __future__ import annotations

import json
import re
from typing import Any

from openbench.records import ScoreResult
from openbench.scorers.text import normalise

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def parse_json(output: str) -> tuple[Any, str | None]:
    """Parse JSON from an output, accepting a fenced block or the first {...}/[...] span."""
    text = output.strip()
    fenced = _FENCE.search(text)
    candidates = [fenced.group(1)] if fenced else []
    candidates.append(text)
    for opener, closer in ("{}", "[]"):
        start, end = text.find(opener), text.rfind(closer)
        if 0 <= start < end:
            candidates.append(text[start : end + 1])
    error = "empty output"
    for candidate in candidates:
        try:
            return json.loads(candidate), None
        except json.JSONDecodeError as exc:
            error = f"invalid JSON: {exc.msg} at char {exc.pos}"
    return None, error


def json_valid(output: str, case: dict[str, Any], *, strict: bool = False) -> ScoreResult:
    """The output is JSON (``strict``: nothing but JSON; otherwise a fenced or embedded object counts)."""
    if strict:
        try:
            json.loads(output)
            return ScoreResult(1.0, True, "valid JSON")
        except json.JSONDecodeError as exc:
            return ScoreResult(0.0, False, f"invalid JSON: {exc.msg}")
    value, error = parse_json(output)
    return ScoreResult(1.0, True, "valid JSON") if error is None else ScoreResult(0.0, False, error)


def json_schema(output: str, case: dict[str, Any], *, schema: dict[str, Any]) -> ScoreResult:
    """The output is JSON that validates against a JSON Schema."""
    import jsonschema

    value, error = parse_json(output)
    if error is not None:
        return ScoreResult(0.0, False, error)
    problems = sorted(jsonschema.Draft202012Validator(schema).iter_errors(value), key=lambda e: list(e.path))
    if problems:
        first = problems[0]
        where = "/".join(map(str, first.path)) or "(root)"
        return ScoreResult(0.0, False, f"{len(problems)} schema error(s); {where}: {first.message}")
    return ScoreResult(1.0, True, "matches the schema")


def _lookup(value: Any, dotted: str) -> tuple[bool, Any]:
    for part in dotted.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return False, None
    return True, value


def json_fields(
    output: str, case: dict[str, Any], *, fields: dict[str, Any], ignore_case: bool = True
) -> ScoreResult:
    """The output is JSON whose values at the given (dotted) keys equal the expected ones.

    The value is the fraction of fields that match; it passes when all match.
    """
    value, error = parse_json(output)
    if error is not None:
        return ScoreResult(0.0, False, error)
    wrong = []
    for key, want in fields.items():
        found, got = _lookup(value, key)
        same = found and (
            normalise(str(got), ignore_case=ignore_case) == normalise(str(want), ignore_case=ignore_case)
            if isinstance(want, str) or isinstance(got, str)
            else got == want
        )
        if not same:
            wrong.append(f"{key}={got!r}" if found else f"{key} missing")
    ok = len(fields) - len(wrong)
    fraction = ok / len(fields) if fields else 1.0
    return ScoreResult(fraction, not wrong, f"{ok}/{len(fields)} fields match" + (f"; {', '.join(wrong)}" if wrong else ""))
