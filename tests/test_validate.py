"""`validate` (and `run`, before anything is sent) catches every configuration error that would fail every item:
each exits 2 with one message naming file:line and field, and a did-you-mean where a name is misspelt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from test_suite import BASE, INLINE, assert_one_error, line_of


def check(write_suite, invoke, text: str, needle: str, field: str, *expected: str, files: dict | None = None) -> str:
    """``text`` fails validation at the line holding ``needle``, on ``field``, saying ``expected``."""
    path = write_suite(text, files)
    return assert_one_error(invoke("validate", path), f"suite.yaml:{line_of(text, needle)}: {field}: ", *expected)


def test_invalid_regex(write_suite, invoke):
    text = BASE.replace("type: exact", "type: regex\n        pattern: '([a-z'")
    check(write_suite, invoke, text, "pattern:", "tasks[0].scorers[0].pattern", "invalid regular expression '([a-z'", "unterminated")


def test_a_regex_template_is_checked_once_rendered_not_before(write_suite, invoke):
    text = BASE.replace("type: exact", "type: regex\n        pattern: '^{{ answer }}$'")
    assert invoke("validate", write_suite(text)).exit_code == 0


SCORERS_PY = "def grade(output, case, *, strict=False):\n    return output == case['answer']\n"


@pytest.mark.parametrize(
    "path, params, files, expected",
    [
        ("nope.py:grade", "", {}, ["custom scorer file not found", "nope.py"]),
        ("scorers.py:grde", "", {"scorers.py": SCORERS_PY}, ["has no function 'grde'", "did you mean 'grade'"]),
        ("scorers.py:grade", "\n        lenient: true", {"scorers.py": SCORERS_PY}, ["cannot be called as (output, case, lenient=...)"]),
        ("scorers.py:one", "", {"scorers.py": "def one(output):\n    return True\n"}, ["cannot be called as (output, case)"]),
        ("broken.py:grade", "", {"broken.py": "def grade(output, case:\n"}, ["cannot import broken.py: SyntaxError"]),
    ],
    ids=["no-file", "no-function", "unknown-param", "too-few-args", "syntax-error"],
)
def test_python_scorer(write_suite, invoke, path, params, files, expected):
    text = BASE.replace("type: exact", f"type: python\n        path: '{path}'{params}")
    check(write_suite, invoke, text, "path:", "tasks[0].scorers[0].path", *expected, files=files)


def test_python_scorer_that_fits_validates(write_suite, invoke):
    text = BASE.replace("type: exact", "type: python\n        path: 'scorers.py:grade'\n        strict: true")
    result = invoke("validate", write_suite(text, {"scorers.py": SCORERS_PY}))
    assert result.exit_code == 0, result.output


REFERENCE = "  - id: ref\n    provider: reference\n    model: gold\n    field: golden\ntasks:"


def test_reference_model_field_absent_from_the_data(write_suite, invoke):
    text = BASE.replace("tasks:", REFERENCE).replace("{id: c1, q: x, answer: y}", "{id: c1, q: x, answer: y, gold: y}")
    check(
        write_suite, invoke, text, "field: golden", "models[1].field",
        "model 'ref' answers with the case field 'golden'", "case 'c1' (row 1) of task 'a' lacks", "did you mean 'gold'",
    )


def test_reference_model_field_present_validates(write_suite, invoke):
    text = BASE.replace("tasks:", REFERENCE).replace("answer: y}", "answer: y, golden: y}")
    assert invoke("validate", write_suite(text)).exit_code == 0


def test_id_field_absent(write_suite, invoke):
    text = BASE.replace(INLINE, "      file: d.jsonl\n      id_field: qid\n")
    rows = [{"q_id": "1", "q": "x", "answer": "y"}]
    check(write_suite, invoke, text, "id_field:", "tasks[0].data.id_field", "row 1 of", "no field 'qid'", "did you mean 'q_id'",
          files={"d.jsonl": rows})


def test_the_default_id_field_may_be_absent(write_suite, invoke):
    text = BASE.replace("{id: c1, q: x, answer: y}", "{q: x, answer: y}")
    assert invoke("validate", write_suite(text)).exit_code == 0


def test_dataset_without_the_named_split(write_suite, invoke):
    text = BASE.replace(INLINE, "      hf: {path: json, data_files: d.jsonl, split: tset}\n")
    rows = [{"id": "1", "q": "x", "answer": "y"}]
    check(write_suite, invoke, text, "hf:", "tasks[0].data.hf.split", "dataset 'json' has no split 'tset'", "splits: train",
          files={"d.jsonl": rows})


def test_saved_dataset_without_the_named_split(write_suite, invoke, tmp_path):
    import datasets

    rows = [{"id": "1", "q": "x", "answer": "y"}]
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows), "test": datasets.Dataset.from_list(rows)}).save_to_disk(
        str(tmp_path / "ds")
    )
    text = BASE.replace(INLINE, "      hf: {path: ds, split: tets}\n")
    check(write_suite, invoke, text, "hf:", "tasks[0].data.hf.split", "has no split 'tets'", "did you mean 'test'", "splits: train, test")


def test_judge_naming_an_unknown_model(write_suite, invoke):
    text = BASE.replace("type: exact", "type: judge\n        model: ff")
    check(write_suite, invoke, text, "type: judge", "tasks[0].scorers[0]", "judge model 'ff' is not a model of this suite",
          "did you mean 'f'")


@pytest.mark.parametrize("weight", ["0", "-1"])
def test_weight_zero_or_less(write_suite, invoke, weight):
    text = BASE.replace("type: exact", f"type: exact\n        weight: {weight}")
    check(write_suite, invoke, text, "weight:", "tasks[0].scorers[0].weight", "greater than 0")


@pytest.mark.parametrize(
    "old, new, needle, field, key",
    [
        ("name: t\n", "name: t\nname: u\n", "name: u", "name", "name"),
        ('    prompt: "Q {{ q }}"\n', '    prompt: "Q {{ q }}"\n    prompt: "other"\n', "other", "tasks[0].prompt", "prompt"),
        ("{id: c1, q: x, answer: y}", "{id: c1, q: x, answer: y, q: z}", "q: z", "tasks[0].data.cases[0].q", "q"),
    ],
    ids=["top", "task", "flow-mapping"],
)
def test_duplicate_yaml_keys(write_suite, invoke, old, new, needle, field, key):
    text = BASE.replace(old, new, 1)
    out = check(write_suite, invoke, text, needle, field, f"duplicate key '{key}'")
    assert "first given on line" in out


def test_yaml_merge_keys_may_be_overridden(write_suite, invoke):
    text = BASE.replace("      - type: exact\n", "      - &b {type: exact, label: one}\n      - <<: *b\n        label: two\n")
    result = invoke("validate", write_suite(text))
    assert result.exit_code == 0, result.output
    assert "scorers: one, two" in result.output


def test_run_checks_before_creating_anything(write_suite, invoke, tmp_path: Path):
    text = BASE.replace("type: exact", "type: regex\n        pattern: '([a-z'")
    out = tmp_path / "out"
    result = invoke("run", write_suite(text), "--out", out)
    assert_one_error(result, "invalid regular expression")
    assert not out.exists()  # no run folder, so no request was sent


def test_resume_checks_the_data_too(write_suite, invoke, tmp_path: Path):
    rows = [{"id": "1", "q": "x", "answer": "y"}]
    path = write_suite(BASE.replace(INLINE, "      file: d.jsonl\n"), {"d.jsonl": rows})
    result = invoke("run", path, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    run = next((tmp_path / "out").iterdir())
    (tmp_path / "d.jsonl").write_text(json.dumps({"id": "1", "answer": "y"}) + "\n")  # the data lost `q`
    before = (run / "records.jsonl").read_text()
    result = invoke("run", "--resume", run)
    assert result.exit_code == 2 and "has no field 'q'" in result.output
    assert (run / "records.jsonl").read_text() == before
