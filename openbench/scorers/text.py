"""Scorers over plain text: exact, contains, regex, numeric, choice."""

from __future__ import annotations

import math
import re
import string
import unicodedata
from typing import Any

from openbench.records import ScoreResult
from openbench.suite import ParamProblem

_PUNCT = str.maketrans("", "", string.punctuation + "“”‘’«»¿¡…")


def normalise(text: str, *, ignore_case: bool = True, ignore_whitespace: bool = True, ignore_punctuation: bool = False) -> str:
    text = unicodedata.normalize("NFKC", str(text))
    if ignore_case:
        text = text.casefold()
    if ignore_punctuation:
        text = text.translate(_PUNCT)
    if ignore_whitespace:
        text = " ".join(text.split())
    return text


def _verdict(passed: bool, explanation: str) -> ScoreResult:
    return ScoreResult(1.0 if passed else 0.0, passed, explanation)


def _options(expected: Any) -> list[str]:
    return [str(e) for e in expected] if isinstance(expected, list) else [str(expected)]


def exact(
    output: str,
    case: dict[str, Any],
    *,
    expected: str | list[str] = "{{ answer }}",
    ignore_case: bool = True,
    ignore_whitespace: bool = True,
    ignore_punctuation: bool = False,
) -> ScoreResult:
    """The output equals the expected text (or one of a list), after normalisation."""
    norm = dict(ignore_case=ignore_case, ignore_whitespace=ignore_whitespace, ignore_punctuation=ignore_punctuation)
    got = normalise(output, **norm)
    options = _options(expected)
    ok = any(got == normalise(e, **norm) for e in options)
    return _verdict(ok, f"{'matches' if ok else 'differs from'} {options[0]!r}" + (" (or another)" if len(options) > 1 else ""))


def contains(
    output: str,
    case: dict[str, Any],
    *,
    expected: str | list[str] = "{{ answer }}",
    ignore_case: bool = True,
    ignore_whitespace: bool = True,
    ignore_punctuation: bool = False,
    all_of: bool = False,
) -> ScoreResult:
    """The output contains the expected text (any of a list, or all with ``all_of``)."""
    norm = dict(ignore_case=ignore_case, ignore_whitespace=ignore_whitespace, ignore_punctuation=ignore_punctuation)
    got = normalise(output, **norm)
    options = _options(expected)
    hits = [e for e in options if normalise(e, **norm) in got]
    ok = len(hits) == len(options) if all_of else bool(hits)
    return _verdict(ok, f"found {hits}" if hits else f"none of {options} found")


def regex(output: str, case: dict[str, Any], *, pattern: str, ignore_case: bool = False, full: bool = False) -> ScoreResult:
    """The output matches a regular expression (anywhere, or whole with ``full``)."""
    flags = re.IGNORECASE if ignore_case else 0
    matcher = re.fullmatch if full else re.search
    ok = matcher(pattern, output.strip() if full else output, flags) is not None
    return _verdict(ok, f"{'matches' if ok else 'does not match'} /{pattern}/")


def _validate_regex(params: dict[str, Any], suite: Any) -> ParamProblem | None:
    pattern = params.get("pattern")
    if not isinstance(pattern, str) or any(tag in pattern for tag in ("{{", "{%", "{#")):
        return None  # a template is only a pattern once rendered over a case
    try:
        re.compile(pattern)
    except re.error as exc:
        return ParamProblem(f"invalid regular expression {pattern!r}: {exc}", "pattern")
    return None


regex.validate_params = _validate_regex  # type: ignore[attr-defined]

_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:[eE][-+]?\d+)?")


def extract_number(text: str, which: str = "last") -> float | None:
    found = [m.group(0) for m in _NUMBER.finditer(text) if any(ch.isdigit() for ch in m.group(0))]
    if not found:
        return None
    try:
        return float((found[0] if which == "first" else found[-1]).replace(",", ""))
    except ValueError:
        return None


def numeric(
    output: str,
    case: dict[str, Any],
    *,
    expected: str = "{{ answer }}",
    tolerance: float = 0.0,
    relative: bool = False,
    which: str = "last",
) -> ScoreResult:
    """Extracts a number from the output (the last one by default) and compares it within a tolerance."""
    want = extract_number(str(expected), "first")
    if want is None:
        raise ValueError(f"expected value {expected!r} is not a number")
    got = extract_number(output, which)
    if got is None:
        return _verdict(False, "no number in the output")
    limit = tolerance * abs(want) if relative else tolerance
    ok = math.isclose(got, want, rel_tol=0, abs_tol=limit + 1e-12)
    return _verdict(ok, f"got {got:g}, expected {want:g}" + (f" ± {limit:g}" if limit else ""))


def choice(output: str, case: dict[str, Any], *, expected: str = "{{ answer }}", choices: str = "ABCD") -> ScoreResult:
    """Extracts a multiple-choice letter ("B", "(b)", "Answer: B") and compares it with the expected one."""
    letters = "".join(re.escape(c) for c in choices.upper())
    text = output.strip()
    patterns = [
        rf"^\(?([{letters}])(?:[.):]|$)",  # "B", "(c)", "c)", "D." - not the article in "a good answer is B"
        rf"answer\s*(?:is)?\s*[:\-]?\s*\(?([{letters}])\b",
        rf"\b([{letters}])\b",
    ]
    got = None
    for pattern in patterns:
        m = re.search(pattern, text, re.IGNORECASE if pattern != patterns[-1] else 0)
        if m:
            got = m.group(1).upper()
            break
    want = str(expected).strip().upper()[:1]
    if got is None:
        return _verdict(False, f"no choice among {choices} found")
    return _verdict(got == want, f"chose {got}, expected {want}")
