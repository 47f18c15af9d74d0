"""A task's data: inline cases, a JSONL, JSON-array or CSV file next to the suite, or a Hugging Face dataset."""

from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openbench.errors import SuiteError
from openbench.prompts import fields_used
from openbench.suite import LoadedSuite, TaskSpec


@dataclass(frozen=True)
class Case:
    id: str
    fields: dict[str, Any]
    row: int  # 1-based row in the source (line for JSONL, data row for CSV, index for the rest)


def load_all(suite: LoadedSuite) -> list[list[Case]]:
    """Every task's cases, checked against every field the suite reads from them.

    What ``validate`` and ``run`` (before its first request) check: the templates' fields,
    an explicit ``id_field``, and the case field that a model answers with (``field``).
    """
    tasks = [load_cases(suite, i) for i in range(len(suite.spec.tasks))]
    for mi, model in enumerate(suite.spec.models):
        if model.field is None:
            continue
        for task, cases in zip(suite.spec.tasks, tasks):
            case = next((c for c in cases if model.field not in c.fields), None)
            if case is not None:
                raise suite.error(
                    f"model '{model.id}' answers with the case field '{model.field}', which case '{case.id}' "
                    f"(row {case.row}) of task '{task.name}' lacks{_fields_hint(model.field, case.fields)}",
                    ("models", mi, "field"),
                )
    return tasks


def _fields_hint(name: str, fields: dict[str, Any]) -> str:
    from openbench.registry import did_you_mean

    present = sorted(map(str, fields))
    return f"{did_you_mean(name, present)}; fields present: {', '.join(present) or 'none'}"


def load_cases(suite: LoadedSuite, task_index: int, limit: int | None = None) -> list[Case]:
    """Load, check and (optionally) sample a task's cases."""
    task = suite.spec.tasks[task_index]
    loc = ("tasks", task_index, "data")
    spec = task.data
    if spec.cases is not None:
        rows = [(i + 1, c) for i, c in enumerate(spec.cases)]
        where = f"{suite.path} tasks[{task_index}].data.cases"
    elif spec.file is not None:
        path = _data_path(suite, spec.file, loc + ("file",))
        rows = _read_file(path)
        where = str(path)
    else:
        rows = _read_hf(suite, spec.hf, loc + ("hf",))
        where = f"dataset {spec.hf.path}"
    if not rows:
        raise suite.error("the task's data has no cases", loc)
    if "id_field" in spec.model_fields_set:  # the default `id` may be absent: rows are then numbered
        for row, data in rows:
            if isinstance(data, dict) and spec.id_field not in data:
                raise suite.error(
                    f"row {row} of {where} has no field '{spec.id_field}'{_fields_hint(spec.id_field, data)}",
                    loc + ("id_field",),
                )
    n = min(x for x in (spec.limit, limit) if x) if (spec.limit or limit) else None
    if n and n < len(rows):
        rows = random.Random(spec.seed).sample(rows, n) if spec.seed is not None else rows[:n]
    needed = task_fields(task, suite.spec.defaults.system)
    cases = [_to_case(task, needed, row, data, where, spec.id_field) for row, data in rows]
    _check_unique(cases, where)
    return cases


def _data_path(suite: LoadedSuite, name: str, loc: tuple, folder: bool = False) -> Path:
    candidate = Path(name)
    if candidate.is_absolute() or ".." in candidate.parts:
        raise suite.error(f"data paths must stay inside the suite's folder ({suite.dir}); got '{name}'", loc)
    path = (suite.dir / candidate).resolve()
    if suite.dir.resolve() not in path.parents:
        raise suite.error(f"data path '{name}' leaves the suite's folder ({suite.dir})", loc)
    if folder:
        return path
    if not path.is_file():
        raise suite.error(f"data file not found: {path}", loc)
    if path.suffix.lower() not in (".jsonl", ".csv", ".json"):
        raise suite.error(f"data file must be .jsonl, .json or .csv, got '{path.name}'", loc)
    return path


def _read_file(path: Path) -> list[tuple[int, dict[str, Any]]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SuiteError(f"not UTF-8 text (byte {exc.start})", file=str(path)) from None
    if path.suffix.lower() == ".csv":
        # Every CSV value stays a string: "007" and "1.0" are answers, not numbers.
        reader = csv.DictReader(text.splitlines())
        rows = []
        for i, row in enumerate(reader, start=2):
            if None in row or None in row.values():
                raise SuiteError("row has a different number of columns than the header", file=str(path), line=i)
            rows.append((i, dict(row)))
        return rows
    if path.suffix.lower() == ".json":
        return _read_json_array(text, path)
    rows = []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SuiteError(f"invalid JSON: {exc.msg}", file=str(path), line=i) from None
        if not isinstance(obj, dict):
            raise SuiteError(f"each line must be a JSON object, got {type(obj).__name__}", file=str(path), line=i)
        rows.append((i, obj))
    return rows


def _read_json_array(text: str, path: Path) -> list[tuple[int, dict[str, Any]]]:
    """A ``.json`` file: one array of case objects; each case's row is its 1-based index."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SuiteError(f"invalid JSON: {exc.msg}", file=str(path), line=exc.lineno) from None
    if not isinstance(data, list):
        raise SuiteError(f"a .json data file holds one array of objects, got {type(data).__name__} (use .jsonl for one object per line)", file=str(path))
    for i, obj in enumerate(data, start=1):
        if not isinstance(obj, dict):
            raise SuiteError(f"case {i} must be a JSON object, got {type(obj).__name__}", file=str(path))
    return list(enumerate(data, start=1))


def _read_hf(suite: LoadedSuite, spec: Any, loc: tuple) -> list[tuple[int, dict[str, Any]]]:
    try:
        import datasets
    except ImportError:
        from openbench.errors import MissingDependency

        raise MissingDependency("datasets", "Loading a Hugging Face dataset") from None
    local = suite.dir / spec.path
    if local.exists():
        _data_path(suite, spec.path, loc, folder=True)  # a local dataset stays inside the suite's folder too
    quiet = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()  # "Generating train split" bars would bury a one-line error
    try:
        if local.is_dir() and any((local / f).exists() for f in ("state.json", "dataset_dict.json")):
            ds = datasets.load_from_disk(str(local))
            if isinstance(ds, datasets.DatasetDict):
                _check_split(suite, spec, list(ds), loc)
                ds = ds[spec.split]
        else:
            files = spec.data_files
            if files is not None:
                files = [str(_data_path(suite, f, loc)) for f in ([files] if isinstance(files, str) else files)]
            try:
                ds = datasets.load_dataset(spec.path, spec.name, split=spec.split, data_files=files, revision=spec.revision)
            except ValueError as exc:
                if not str(exc).startswith("Unknown split"):
                    raise
                names = datasets.get_dataset_split_names(spec.path, spec.name, data_files=files, revision=spec.revision)
                _check_split(suite, spec, names, loc)
                raise
    except SuiteError:
        raise
    except Exception as exc:  # datasets raises many types; all mean "cannot load this"
        hint = " (offline: only local or cached datasets load; see --online)" if "offline" in str(exc).lower() else ""
        raise suite.error(f"cannot load dataset '{spec.path}': {type(exc).__name__}: {exc}{hint}", loc) from None
    finally:
        if not quiet:
            datasets.enable_progress_bars()
    return [(i + 1, dict(row)) for i, row in enumerate(ds)]


def _check_split(suite: LoadedSuite, spec: Any, names: list[str], loc: tuple) -> None:
    if spec.split not in names:
        from openbench.registry import did_you_mean

        raise suite.error(
            f"dataset '{spec.path}' has no split '{spec.split}'{did_you_mean(spec.split, names)}; splits: {', '.join(names)}",
            loc + ("split",),
        )


def task_fields(task: TaskSpec, suite_system: str | None = None) -> set[str]:
    """Case fields that the task's templates (prompt, system, scorer parameters) read."""
    from openbench.scorers.base import bind_task

    system = task.system if task.system is not None else suite_system
    templates = [task.prompt, system, *(m.content for m in task.messages or ())]
    needed = {f for t in templates if t for f in fields_used(t)}
    if task.messages_field:
        needed.add(task.messages_field)
    for scorer in bind_task(task):
        needed |= scorer.fields_used()
    return needed


def _to_case(task: TaskSpec, needed: set[str], row: int, data: Any, where: str, id_field: str) -> Case:
    if not isinstance(data, dict):
        raise SuiteError(f"case {row} must be a mapping of fields, got {type(data).__name__}", file=where)
    missing = sorted(f for f in needed if f not in data)
    if missing:
        raise SuiteError(
            f"row {row} has no field {', '.join(repr(m) for m in missing)}, which the templates of task "
            f"'{task.name}' uses; fields present: {', '.join(sorted(map(str, data))) or 'none'}",
            file=where,
            line=row if where.endswith((".jsonl", ".csv")) else None,
        )
    if task.messages_field:
        from openbench.conversation import parse_conversation

        try:
            parse_conversation(data[task.messages_field])
        except ValueError as exc:
            raise SuiteError(
                f"row {row}, field '{task.messages_field}': {exc}",
                file=where,
                line=row if where.endswith((".jsonl", ".csv", ".json")) else None,
            ) from None
    case_id = data.get(id_field)
    return Case(id=str(case_id) if case_id is not None else str(row), fields=data, row=row)


def _check_unique(cases: list[Case], where: str) -> None:
    seen: dict[str, int] = {}
    for case in cases:
        if case.id in seen:
            raise SuiteError(f"case id '{case.id}' appears twice (rows {seen[case.id]} and {case.row})", file=where)
        seen[case.id] = case.row
