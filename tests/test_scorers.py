"""Scorers on known cases, combine() with weights and thresholds, and a failing scorer through the runner."""

from __future__ import annotations

import json
import pytest

from openbench.scorers.base import BoundScorer, combine
from openbench.scorers.structured import json_fields, json_schema, json_valid
from openbench.scorers.text import choice, contains, exact, numeric, regex
from openbench.suite import ScorerSpec

CASE: dict = {}


# -- exact ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "output, expected, options, passed",
    [
        ("Paris", "Paris", {}, True),
        ("  paris \n", "Paris", {}, True),  # case and surrounding whitespace ignored by default
        ("New   York", "new york", {}, True),  # inner whitespace collapsed
        ("paris", "Paris", {"ignore_case": False}, False),
        ("New   York", "New York", {"ignore_whitespace": False}, False),
        ("Paris.", "Paris", {}, False),
        ("Paris.", "Paris", {"ignore_punctuation": True}, True),
        ("Lyon", ["Paris", "Lyon"], {}, True),
        ("Marseille", ["Paris", "Lyon"], {}, False),
        ("Ｐａｒｉｓ", "Paris", {}, True),  # NFKC: full-width letters
        ("Paris is the capital", "Paris", {}, False),
    ],
)
def test_exact(output, expected, options, passed):
    result = exact(output, CASE, expected=expected, **options)
    assert result.passed is passed
    assert result.value == (1.0 if passed else 0.0)


# -- contains ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "output, expected, options, passed",
    [
        ("The capital is PARIS.", "paris", {}, True),
        ("The capital is Paris.", "Rome", {}, False),
        ("It is Paris, not Rome", ["Rome", "Berlin"], {}, True),  # any of
        ("It is Paris", ["Rome", "Berlin"], {}, False),
        ("Paris and Rome", ["Rome", "Paris"], {"all_of": True}, True),
        ("Paris only", ["Rome", "Paris"], {"all_of": True}, False),
        ("billing", "Billing", {"ignore_case": False}, False),
    ],
)
def test_contains(output, expected, options, passed):
    assert contains(output, CASE, expected=expected, **options).passed is passed


# -- regex ------------------------------------------------------------------------------------------


def test_regex():
    assert regex("order 48213 shipped", CASE, pattern=r"\b\d{5}\b").passed
    assert not regex("order 4821 shipped", CASE, pattern=r"\b\d{5}\b").passed
    assert not regex("YES", CASE, pattern="yes").passed
    assert regex("YES", CASE, pattern="yes", ignore_case=True).passed
    assert regex("  yes \n", CASE, pattern="yes", full=True).passed  # full match ignores surrounding space
    assert not regex("yes, surely", CASE, pattern="yes", full=True).passed


# -- numeric ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "output, expected, options, passed",
    [
        ("42", "42", {}, True),
        ("The answer is 42.", "42", {}, True),
        ("17 + 25 = 42", "42", {}, True),  # the last number by default
        ("42 is more than 17", "42", {"which": "first"}, True),
        ("42 is more than 17", "42", {}, False),
        ("Total: 1,234,567.5 USD", "1234567.5", {}, True),  # thousands separators
        ("It is -3 degrees", "-3", {}, True),
        ("It is 3 degrees", "-3", {}, False),
        ("about 3.14159", "3.14", {"tolerance": 0.01}, True),
        ("about 3.16", "3.14", {"tolerance": 0.01}, False),
        ("105", "100", {"tolerance": 0.05, "relative": True}, True),
        ("106", "100", {"tolerance": 0.05, "relative": True}, False),
        ("1e3", "1000", {}, True),
        ("no idea", "4", {}, False),
        ("about .5 of it", "0.5", {}, True),
    ],
)
def test_numeric(output, expected, options, passed):
    result = numeric(output, CASE, expected=expected, **options)
    assert result.passed is passed, result.explanation


def test_numeric_unusable_expected_raises():
    # A reference that is not a number is a suite bug, never a silent 0.
    with pytest.raises(ValueError, match="not a number"):
        numeric("42", CASE, expected="n/a")


# -- choice -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "output, expected, passed",
    [
        ("B", "B", True),
        ("(c)", "C", True),
        ("c) Paris", "C", True),
        ("Answer: D", "D", True),
        ("The answer is (B).", "B", True),
        ("I would pick A because it is right.", "A", True),
        ("B", "C", False),
        ("b", "b", True),
        ("B because it is larger", "B", True),
        ("a reasonable answer would be B", "B", True),  # the article is not choice A
        ("A good answer is C", "C", True),
    ],
)
def test_choice(output, expected, passed):
    assert choice(output, CASE, expected=expected).passed is passed


def test_choice_none_found():
    result = choice("I do not know", CASE, expected="A")
    assert not result.passed and "no choice" in result.explanation


def test_choice_custom_letters():
    assert choice("E", CASE, expected="E", choices="ABCDE").passed
    assert not choice("E", CASE, expected="E").passed


# -- structured -------------------------------------------------------------------------------------


def test_json_valid():
    assert json_valid('{"a": 1}', CASE).passed
    assert json_valid('Here you go:\n```json\n{"a": [1, 2]}\n```\nanything else?', CASE).passed
    assert json_valid('Sure: {"a": 1} hope that helps', CASE).passed
    assert not json_valid('Sure: {"a": 1} hope that helps', CASE, strict=True).passed
    bad = json_valid("{'a': 1}", CASE)
    assert not bad.passed and bad.value == 0.0 and "invalid JSON" in bad.explanation


SCHEMA = {
    "type": "object",
    "required": ["order_id", "email"],
    "properties": {"order_id": {"type": "string", "pattern": "^[0-9]+$"}, "email": {"type": "string"}},
}


def test_json_schema():
    assert json_schema('{"order_id": "48213", "email": "a@b.c"}', CASE, schema=SCHEMA).passed
    wrong_type = json_schema('{"order_id": 48213, "email": "a@b.c"}', CASE, schema=SCHEMA)
    assert not wrong_type.passed and "order_id" in wrong_type.explanation
    missing = json_schema('```json\n{"order_id": "1"}\n```', CASE, schema=SCHEMA)
    assert not missing.passed and "email" in missing.explanation
    assert not json_schema("no json here", CASE, schema=SCHEMA).passed


def test_json_fields_partial_credit():
    fields = {"order_id": "48213", "email": "Anna@Example.com"}
    full = json_fields('{"order_id": "48213", "email": "anna@example.com"}', CASE, fields=fields)
    assert full.value == 1.0 and full.passed
    half = json_fields('{"order_id": "48213", "email": "bob@example.com"}', CASE, fields=fields)
    assert half.value == 0.5 and not half.passed and "email=" in half.explanation
    missing = json_fields('{"order_id": 48213}', CASE, fields=fields)  # a number matches its string
    assert missing.value == 0.5 and "email missing" in missing.explanation
    strict_case = json_fields('{"order_id": "48213", "email": "anna@example.com"}', CASE, fields=fields, ignore_case=False)
    assert strict_case.value == 0.5
    nested = json_fields('{"customer": {"emails": ["x@y.z"]}}', CASE, fields={"customer.emails.0": "x@y.z", "id": 1})
    assert nested.value == 0.5
    assert json_fields("not json", CASE, fields=fields).value == 0.0


# -- binding and combining --------------------------------------------------------------------------


def bound(**spec) -> BoundScorer:
    return BoundScorer.bind(ScorerSpec(**spec))


def test_bound_scorer_renders_templates_with_case_fields():
    scorer = bound(type="json_fields", fields={"order_id": "{{ order_id }}"})
    assert scorer.fields_used() == {"order_id"}
    assert scorer('{"order_id": "77105"}', {"order_id": "77105"}).passed
    assert not scorer('{"order_id": "77105"}', {"order_id": "30052"}).passed
    default = bound(type="exact")  # expected defaults to "{{ answer }}"
    assert default.fields_used() == {"answer"}
    assert default("Tokyo", {"answer": "tokyo"}).passed


def test_combine_weights_and_threshold():
    scorers = [bound(type="json_valid", weight=1), bound(type="json_fields", weight=2, fields={"a": "1", "b": "2"})]
    output = '{"a": "1", "b": "wrong"}'
    score, passed, detail = combine(scorers, output, {}, None)
    assert score == pytest.approx((1 * 1 + 0.5 * 2) / 3)
    assert passed is False  # without a threshold every scorer must pass
    assert detail["json_valid"]["value"] == 1.0 and detail["json_fields"]["value"] == 0.5
    assert detail["json_fields"]["passed"] is False
    assert combine(scorers, output, {}, 0.6)[1] is True
    assert combine(scorers, output, {}, 0.7)[1] is False
    assert combine(scorers, '{"a": "1", "b": "2"}', {}, None)[:2] == (1.0, True)
    assert combine(scorers, '{"a": "1", "b": "2"}', {}, 1.0)[1] is True  # exactly at the threshold


def test_combine_uses_labels_and_weights():
    scorers = [bound(type="contains", expected="x", label="has_x"), bound(type="contains", expected="zzz", label="has_zzz", weight=3)]
    score, passed, detail = combine(scorers, "x only", {}, None)
    assert set(detail) == {"has_x", "has_zzz"}
    assert score == 0.25  # (1 × 1 + 0 × 3) / 4
    assert passed is False  # every scorer must pass when no threshold is set


@pytest.mark.parametrize("weight", [0, -0.5])
def test_a_weight_of_zero_or_less_is_refused(weight):
    # A lone zero-weight scorer would make quality 0.00 with every item passing.
    with pytest.raises(ValueError, match="greater than 0"):
        ScorerSpec(type="exact", weight=weight)


# -- a scorer that raises, through the real runner ---------------------------------------------------


SUITE = """\
name: scorer-errors
models:
  - id: fake
    provider: fake
    model: any
tasks:
  - name: sums
    prompt: "{{ q }}"
    data:
      cases:
        - {id: ok1, q: "1+1", answer: "2"}
        - {id: bad, q: "huh", answer: "n/a"}
        - {id: ok2, q: "2+2", answer: "4"}
    scorers:
      - type: numeric
"""


def test_scorer_exception_makes_item_an_error_not_zero(write_suite, invoke, tmp_path):
    out = tmp_path / "results"
    result = invoke("run", write_suite(SUITE), "--out", out)
    assert result.exit_code == 0, result.output
    (run_dir,) = out.iterdir()
    records = {r["case_id"]: r for r in map(json.loads, (run_dir / "records.jsonl").read_text().splitlines())}
    assert records["bad"]["error"].startswith("scorer failed: ValueError")
    assert records["bad"]["error_kind"] == "scorer"
    assert records["bad"]["score"] is None and records["bad"]["passed"] is None
    assert records["bad"]["output"] == "n/a"  # the model's answer is kept for inspection
    for ok in ("ok1", "ok2"):
        assert records[ok]["error"] is None and records[ok]["score"] == 1.0
    summary = (run_dir / "summary.csv").read_text().splitlines()
    header = summary[0].split(",")
    row = dict(zip(header, summary[1].split(",")))
    assert row["errors"] == "1" and row["scored"] == "2"
    # The errored item counts as a failure; the secondary view leaves it out.
    assert float(row["quality_mean"]) == pytest.approx(2 / 3) and float(row["pass_rate"]) == pytest.approx(2 / 3)
    assert float(row["quality_excl_errors"]) == 1.0 and float(row["pass_rate_excl_errors"]) == 1.0
