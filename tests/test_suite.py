"""Suite loading: the quickstart validates; every kind of bad suite gives one located message and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from openbench.data import load_cases
from openbench.errors import SuiteError
from openbench.suite import load_suite

REPO = Path(__file__).resolve().parent.parent

BASE = """\
name: t
models:
  - id: f
    provider: fake
    model: m
tasks:
  - name: a
    prompt: "Q {{ q }}"
    data:
      cases:
        - {id: c1, q: x, answer: y}
    scorers:
      - type: exact
"""
INLINE = """\
      cases:
        - {id: c1, q: x, answer: y}
"""


def line_of(text: str, needle: str) -> int:
    """1-based line of the first line containing ``needle``."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def assert_one_error(result, *parts: str) -> str:
    assert result.exit_code == 2, result.output
    out = result.output
    assert "Traceback" not in out
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), out
    for part in parts:
        assert part in out, f"{part!r} not in {out!r}"
    return out


def test_quickstart_validates(invoke):
    result = invoke("validate", REPO / "suites" / "quickstart.yaml")
    assert result.exit_code == 0, result.output
    assert "3 models, 3 tasks, 45 cases" in result.output
    assert "task extract: 15 cases, scorers: json_valid, json_fields" in result.output


def test_base_suite_is_valid(write_suite, invoke):
    result = invoke("validate", write_suite(BASE))
    assert result.exit_code == 0, result.output
    assert "1 models, 1 tasks, 1 cases" in result.output


@pytest.mark.parametrize(
    "old, new, needle, field, expected",
    [
        ("tasks:", "taks:", "taks:", "taks", "did you mean 'tasks'"),
        ("provider: fake", "provder: fake", "provder:", "models[0].provder", "did you mean 'provider'"),
        ("provider: fake", "provider: opneai", "provider:", "models[0].provider", "did you mean 'openai'"),
        ("provider: fake", "provider: hf2", "provider:", "models[0].provider", "unknown provider 'hf2'"),
        ("type: exact", "type: exactt", "type: exactt", "tasks[0].scorers[0].type", "did you mean 'exact'"),
        (
            "type: exact",
            "type: exact\n        ignore_cse: true",
            "ignore_cse",
            "tasks[0].scorers[0].ignore_cse",
            "did you mean 'ignore_case'",
        ),
        ("name: t\n", "name: t\ndefaults:\n  temperature: hot\n", "temperature", "defaults.temperature", "'hot'"),
        ("    model: m\n", "", "- id: f", "models[0].model", "required field is missing"),
        (
            "  - id: f\n",
            "  - id: f\n    provider: fake\n    model: m\n  - id: f\n",
            "models:",
            "models",
            "duplicate model id: f",
        ),
        (
            "    model: m\n",
            "    model: m\n    hardware: h100x\n",
            "hardware:",
            "models[0].hardware",
            "did you mean 'h100'",
        ),
        ('"Q {{ q }}"', '"Q {{ q "', "prompt:", "tasks[0].prompt", "template syntax error"),
    ],
    ids=["top-key", "model-key", "provider", "provider-hf2", "scorer", "scorer-param", "type", "missing", "dup-ids",
         "hardware", "template-syntax"],
)
def test_bad_suite_one_located_error(write_suite, invoke, old, new, needle, field, expected):
    text = BASE.replace(old, new, 1)
    assert text != BASE
    path = write_suite(text)
    out = assert_one_error(invoke("validate", path), f"{field}:", expected)
    assert f"suite.yaml:{line_of(text, needle)}: " in out


def test_bad_yaml_names_line(write_suite, invoke):
    text = BASE.replace('prompt: "Q {{ q }}"', 'prompt: Q: {{ q }}')
    assert_one_error(invoke("validate", write_suite(text)), f"suite.yaml:{line_of(text, 'prompt:')}: invalid YAML")


def test_empty_file(write_suite, invoke):
    assert_one_error(invoke("validate", write_suite("")), "suite.yaml: the file is empty")


def test_non_utf8(tmp_path, invoke):
    path = tmp_path / "suite.yaml"
    path.write_bytes(b"name: t\ndescription: caf\xe9\n")
    assert_one_error(invoke("validate", path), "suite.yaml:2: not UTF-8 text")


def test_list_at_top_level(write_suite, invoke):
    assert_one_error(invoke("validate", write_suite("- a\n- b\n")), "suite.yaml:1:", "expected a mapping", "got list")


def test_missing_suite_file(tmp_path, invoke):
    assert_one_error(invoke("validate", tmp_path / "nope.yaml"), "nope.yaml: no such file")


@pytest.mark.parametrize(
    "file, expected",
    [
        ("nope.jsonl", "data file not found"),
        ("../x.jsonl", "must stay inside the suite's folder"),
        ("/etc/hostname", "must stay inside the suite's folder"),
    ],
)
def test_bad_data_path(write_suite, invoke, file, expected):
    text = BASE.replace(INLINE, f"      file: {file}\n")
    path = write_suite(text)
    (path.parent.parent / "x.jsonl").write_text('{"q": 1, "answer": 1}\n')  # exists, but outside
    assert_one_error(invoke("validate", path), f"suite.yaml:{line_of(text, 'file:')}: tasks[0].data.file:", expected)


def test_template_field_missing_names_row(write_suite, invoke):
    rows = [{"id": "r1", "q": "a", "answer": "b"}, {"id": "r2", "answer": "c"}]
    path = write_suite(BASE.replace(INLINE, "      file: d.jsonl\n"), {"d.jsonl": rows})
    assert_one_error(invoke("validate", path), "d.jsonl:2:", "row 2 has no field 'q'", "task 'a'")


def test_inline_case_missing_field_names_row(write_suite, invoke):
    text = BASE.replace("{id: c1, q: x, answer: y}", "{id: c1, q: x, answer: y}\n        - {id: c2, answer: z}")
    assert_one_error(invoke("validate", write_suite(text)), "row 2 has no field 'q'")


def test_scorer_template_field_missing(write_suite, invoke):
    # exact's default expected is "{{ answer }}": a case without `answer` is caught before running.
    text = BASE.replace("q: x, answer: y", "q: x")
    assert_one_error(invoke("validate", write_suite(text)), "row 1 has no field 'answer'")


def test_jsonl_bad_line(write_suite, invoke):
    data = '{"id": 1, "q": "a", "answer": "b"}\n\n{"id": 2, q: 1}\n'
    path = write_suite(BASE.replace(INLINE, "      file: d.jsonl\n"), {"d.jsonl": data})
    assert_one_error(invoke("validate", path), "d.jsonl:3: invalid JSON")


def test_csv_values_stay_strings(write_suite):
    data = "id,q,answer\n1,a,007\n2,b,1.0\n"
    suite = load_suite(write_suite(BASE.replace(INLINE, "      file: d.csv\n"), {"d.csv": data}))
    cases = load_cases(suite, 0)
    assert [c.fields["answer"] for c in cases] == ["007", "1.0"]
    assert [c.id for c in cases] == ["1", "2"]
    assert [c.row for c in cases] == [2, 3]


def test_csv_ragged_row(write_suite, invoke):
    path = write_suite(BASE.replace(INLINE, "      file: d.csv\n"), {"d.csv": "id,q,answer\n1,a,007,extra\n"})
    assert_one_error(invoke("validate", path), "d.csv:2:", "different number of columns")


def test_duplicate_case_ids(write_suite, invoke):
    rows = [{"id": "same", "q": "a", "answer": "b"}, {"id": "same", "q": "c", "answer": "d"}]
    path = write_suite(BASE.replace(INLINE, "      file: d.jsonl\n"), {"d.jsonl": rows})
    assert_one_error(invoke("validate", path), "case id 'same' appears twice")


def test_hf_dataset_from_disk_with_limit_and_seed(write_suite, tmp_path):
    import datasets

    rows = [{"id": f"c{i:02d}", "q": f"question {i}", "answer": str(i)} for i in range(20)]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "ds"))

    def cases(seed: int | None, limit: int | None = 5) -> list[str]:
        spec = f"      hf: {{path: ds}}\n" + (f"      limit: {limit}\n" if limit else "") + (
            f"      seed: {seed}\n" if seed is not None else ""
        )
        suite = load_suite(write_suite(BASE.replace(INLINE, spec), name=f"s{seed}-{limit}.yaml"))
        return [c.id for c in load_cases(suite, 0)]

    assert cases(None, None) == [r["id"] for r in rows]
    assert cases(None) == ["c00", "c01", "c02", "c03", "c04"]  # no seed: the first `limit`
    first = cases(1)
    assert len(first) == 5 and len(set(first)) == 5 and set(first) <= {r["id"] for r in rows}
    assert cases(1) == first  # the same seed samples the same cases
    assert cases(2) != first
    assert first != ["c00", "c01", "c02", "c03", "c04"]


def test_hf_dataset_missing_is_one_error(write_suite, invoke):
    path = write_suite(BASE.replace(INLINE, "      hf: {path: json, data_files: nope.jsonl}\n"))
    assert_one_error(invoke("validate", path), "tasks[0].data.hf:", "data file not found")


def test_load_suite_raises_suite_error_with_location(write_suite):
    text = BASE.replace("type: exact", "type: exactt")
    with pytest.raises(SuiteError) as info:
        load_suite(write_suite(text))
    assert info.value.line == line_of(text, "type: exactt")
    assert info.value.field == "tasks[0].scorers[0].type"


def test_schema_is_json_with_models_and_tasks(invoke):
    result = invoke("schema")
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    assert {"models", "tasks", "name"} <= set(schema["properties"])
    assert set(schema["required"]) >= {"name", "models", "tasks"}
    assert schema["properties"]["models"]["type"] == "array"


def test_reference_provider_needs_no_model_key(write_suite, invoke, tmp_path):
    path = write_suite(
        """
        name: gold
        models:
          - {id: gold, provider: reference, field: answer}
        tasks:
          - name: t
            prompt: "{{ q }}"
            data: {cases: [{id: a, q: "1+1", answer: "2"}, {id: b, q: "2+2", answer: "4"}]}
            scorers: [{type: exact}]
        """
    )
    result = invoke("run", path, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    summary = next((tmp_path / "out").iterdir()) / "summary.csv"
    overall = [line for line in summary.read_text(encoding="utf-8-sig").splitlines() if line.startswith("(all),gold,")]
    assert len(overall) == 1 and ",1.0," in overall[0]  # the known answers score full marks
    openai = write_suite(BASE.replace("    model: m\n", "").replace("provider: fake", "provider: openai"), name="openai.yaml")
    result = invoke("validate", openai)
    assert result.exit_code == 2 and "model" in result.output  # other providers still need one
