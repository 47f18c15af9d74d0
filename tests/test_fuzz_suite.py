"""Fuzzing the suite loader: whatever the file holds, the answer is a valid suite or one clear OpenbenchError.

Inputs are mutations of the real quickstart suite (keys dropped, values replaced by wrong
types, huge numbers, unknown keys, paths outside the folder) and raw bytes (bad YAML, wrong
encodings, empty files). A crash of any other type is a failure; so is a message without the file name.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openbench.data import load_cases
from openbench.errors import OpenbenchError
from openbench.suite import load_suite

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = yaml.safe_load((ROOT / "suites" / "quickstart.yaml").read_text(encoding="utf-8"))
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

WRONG_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=8), st.integers(), max_size=3),
    st.sampled_from(["../../etc/passwd", "/etc/passwd", "{{ nope }}", "{% for %}", "pkg://nope/x", "exactt", "hf2"]),
)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a value inside the parsed suite."""
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, prefix + (i,))
    return out


PATHS = _paths(QUICKSTART)


def _mutate(doc: Any, path: tuple, action: str, value: Any) -> Any:
    doc = copy.deepcopy(doc)
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if action == "drop" and isinstance(parent, dict):
        del parent[last]
    elif action == "rename" and isinstance(parent, dict):
        parent[f"{last}x"] = parent.pop(last)
    elif action == "extra" and isinstance(parent, dict):
        parent["unexpected_key"] = value
    else:
        parent[last] = value
    return doc


def _check(folder: Path, text: str | bytes) -> str:
    """Load and check a suite file; return 'ok' or the error message. Anything else propagates."""
    path = folder / "suite.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    try:
        suite = load_suite(path)
        for i in range(len(suite.spec.tasks)):
            load_cases(suite, i)
    except OpenbenchError as exc:
        message = str(exc)
        assert message.strip(), "an empty error message"
        assert "suite.yaml" in message or "data" in message or "dataset" in message, message
        return message
    return "ok"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("fuzz")
    shutil.copytree(ROOT / "suites" / "data", target / "data")
    return target


COUNT = {"mutations": 0, "bytes": 0, "errors": 0}


@FUZZ
@given(
    path=st.sampled_from(PATHS),
    action=st.sampled_from(["replace", "drop", "rename", "extra"]),
    value=WRONG_VALUES,
)
def test_mutated_quickstart_gives_a_suite_or_one_clear_error(folder: Path, path: tuple, action: str, value: Any) -> None:
    doc = _mutate(QUICKSTART, path, action, value)
    try:
        text = yaml.safe_dump(doc, allow_unicode=True)
    except yaml.YAMLError:
        return
    COUNT["mutations"] += 1
    COUNT["errors"] += _check(folder, text) != "ok"


@FUZZ
@given(
    data=st.one_of(
        st.binary(max_size=200),
        st.text(max_size=200).map(lambda t: t.encode("utf-8")),
        st.text(max_size=100).map(lambda t: t.encode("utf-16")),
        st.sampled_from([b"", b"\xff\xfe", b"name: [", b"- a\n- b", b"a: *x", b"name: x\nmodels: {", b"\x00\x01", b"!!python/object:os.system ls"]),
    )
)
def test_arbitrary_bytes_never_crash(folder: Path, data: bytes) -> None:
    COUNT["bytes"] += 1
    COUNT["errors"] += _check(folder, data) != "ok"


def test_fuzz_counts_are_real() -> None:
    """The two fuzz tests above ran their examples (reported in the test output with -s)."""
    print(f"fuzzed suites: {COUNT['mutations']} mutations, {COUNT['bytes']} byte strings, {COUNT['errors']} rejected cleanly")
    assert COUNT["mutations"] + COUNT["bytes"] > 0


@pytest.mark.parametrize(
    "mutation",
    [
        ("models", 0, "batch_size"),
        ("tasks", 1, "scorers", 1, "fields"),
        ("defaults", "max_tokens"),
        ("tasks", 0, "data", "file"),
    ],
)
def test_mutations_through_the_cli_exit_2_without_traceback(folder: Path, invoke, mutation: tuple) -> None:
    doc = _mutate(QUICKSTART, mutation, "replace", 10**40 if mutation[-1] != "file" else "../outside.jsonl")
    path = folder / "cli.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    result = invoke("validate", str(path))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "cli.yaml" in result.output
