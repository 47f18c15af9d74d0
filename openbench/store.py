"""A run on disk: ``results/<run-id>/`` with manifest.json, records.jsonl and summary.csv.

records.jsonl is append-only, one JSON object per finished item, flushed as it
is written, so an interrupted run loses nothing it finished. Readers never drop
a line silently: a corrupt or wrong-schema line, or a torn last line (from
kill -9), is left out, counted and named in one warning on stderr.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field
from itertools import repeat
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from openbench.errors import RunError
from openbench.manifest import RunManifest
from openbench.records import ItemResult

MANIFEST = "manifest.json"
RECORDS = "records.jsonl"
SUMMARY = "summary.csv"


# What ``append`` writes first: the item's key, then its output (ItemResult's field order).
_KEY_START = b'{"task": '
_AFTER_KEY = b', "output": '
_KEY_FIELDS = frozenset(("task", "case_id", "model"))
_SHOWN = 5  # unreadable lines named in the warning; the rest are counted


@dataclass(frozen=True)
class BadLine:
    """A line of records.jsonl that no reader can use."""

    line: int  # 1-based
    problem: str
    torn: bool = False  # the last line, cut mid-write (kill -9): expected after a crash


@dataclass(frozen=True)
class RecordsHealth:
    """What reading records.jsonl found: its unreadable lines, out of how many."""

    bad: list[BadLine] = field(default_factory=list)
    lines: int = 0

    @property
    def corrupt(self) -> list[BadLine]:
        """Unreadable lines other than a torn last line."""
        return [b for b in self.bad if not b.torn]

    def describe(self, path: Path) -> str:
        """One line: how many lines were left out, and where (file:line) and why."""
        named = "; ".join(
            f"{path}:{b.line} ({'torn last line, an interrupted write' if b.torn else b.problem})" for b in self.bad[:_SHOWN]
        )
        more = f"; and {len(self.bad) - _SHOWN} more" if len(self.bad) > _SHOWN else ""
        return f"{len(self.bad)} of {self.lines} lines of {path} cannot be read and are left out: {named}{more}"


@dataclass(frozen=True)
class _Index:
    signature: tuple[int, int]  # the file's size and mtime when indexed
    skip: set[int]  # lines replaced by a later record of the same item, or unparseable
    bad: list[BadLine]
    lines: int


def _parse(line: str) -> tuple[dict | None, str | None]:
    """A record line as a dict, or why it is not one."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON ({exc.msg})"
    if not isinstance(data, dict):
        return None, f"a JSON {type(data).__name__}, not a record"
    missing = sorted(_KEY_FIELDS - data.keys())
    if missing:
        return None, f"no {', '.join(missing)}"
    wrong = [k for k in sorted(_KEY_FIELDS) if not isinstance(data[k], str)]
    if wrong:
        return None, f"{', '.join(wrong)} not a string"
    return data, None


def _key_text(data: dict) -> bytes:
    """The item key of a parsed record, in the form ``append`` writes it (a repeated item's sample included)."""
    task, case_id, model = (json.dumps(data[k], ensure_ascii=False) for k in ("task", "case_id", "model"))
    sample = f', "sample": {data["sample"]}' if data.get("sample") else ""
    return f'{{"task": {task}, "case_id": {case_id}, "model": {model}{sample}'.encode()


def _key_end(key: bytes) -> bool:
    return key.endswith(b'"') or (key[-1:].isdigit() and b', "sample": ' in key)


def _regular_index(path: Path, signature: tuple[int, int]) -> _Index | None:
    """The index of a file whose every line is as ``append`` writes it, in bulk; None for any other file."""
    with open(path, "rb") as f:
        keys = [line[: line.find(_AFTER_KEY)] for line in f]  # find() is -1 on other lines: caught below
        if keys:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                return None  # a torn last line
    # Every key starts like a record and ends with the model's closing quote or a sample number (no line lacked
    # `, "output": `).
    if not (all(map(bytes.startswith, keys, repeat(_KEY_START))) and all(map(_key_end, keys))):
        return None
    latest = dict(zip(keys, range(1, len(keys) + 1)))
    skip = set() if len(latest) == len(keys) else set(range(1, len(keys) + 1)) - set(latest.values())
    return _Index(signature, skip, [], len(keys))


def _careful_index(path: Path, signature: tuple[int, int]) -> _Index:
    """The index line by line: blank lines skipped, other lines parsed, unreadable ones kept as ``BadLine``."""
    latest: dict[bytes, int] = {}
    skip: set[int] = set()
    bad: list[BadLine] = []
    n = 0
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            cut = line.find(_AFTER_KEY) if line.startswith(_KEY_START) and line.endswith(b"}\n") else -1
            if cut > 0:
                key = line[:cut]
            elif not line.strip():
                skip.add(n)  # a blank line holds no record
                continue
            else:
                data, problem = _parse(line.decode("utf-8", errors="replace"))
                if problem is not None:
                    bad.append(BadLine(n, problem, torn=not line.endswith(b"\n")))
                    skip.add(n)
                    continue
                key = _key_text(data)
            if latest.setdefault(key, n) != n:  # a later record of the same item
                skip.add(latest[key])
                latest[key] = n
    return _Index(signature, skip, bad, n)


def new_run_id(suite_name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", suite_name).strip("-")[:40] or "run"
    return f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{slug}"


class RunStore:
    def __init__(self, path: Path):
        self.path = path
        self._records = None
        self._cached_index: _Index | None = None
        self._health: tuple[tuple[int, int], RecordsHealth] | None = None

    @classmethod
    def create(cls, out_dir: Path, run_id: str) -> RunStore:
        path = out_dir / run_id
        suffix = 1
        while True:
            try:
                out_dir.mkdir(parents=True, exist_ok=True)
                path.mkdir()  # atomic: two runs started in the same second get different folders
                return cls(path)
            except FileExistsError:
                if not out_dir.is_dir():
                    raise RunError(f"--out {out_dir} is a file, not a folder") from None
                suffix += 1
                path = out_dir / f"{run_id}-{suffix}"
            except OSError as exc:
                raise RunError(f"cannot create a run folder in {out_dir}: {exc.strerror or exc}") from None

    @classmethod
    def open(cls, path: Path) -> RunStore:
        """An existing run folder (one holding a manifest or records)."""
        if not (path / MANIFEST).is_file() and not (path / RECORDS).is_file():
            raise RunError(f"{path} is not a run folder (no {MANIFEST} or {RECORDS})")
        return cls(path)

    # -- manifest ---------------------------------------------------------------------------------

    def read_manifest(self) -> RunManifest:
        """The run's manifest; a folder holding only records gets one that says so (status "unknown")."""
        try:
            text = (self.path / MANIFEST).read_text(encoding="utf-8")
        except FileNotFoundError:
            return RunManifest(run_id=self.path.name, status="unknown")
        return RunManifest.from_json(text, str(self.path / MANIFEST))

    def write_manifest(self, manifest: RunManifest) -> None:
        tmp = self.path / (MANIFEST + ".tmp")
        tmp.write_text(manifest.to_json(), encoding="utf-8")
        os.replace(tmp, self.path / MANIFEST)

    # -- records ----------------------------------------------------------------------------------

    def append(self, record: ItemResult) -> None:
        if self._records is None:
            self._repair_tail()
            self._records = open(self.path / RECORDS, "a", encoding="utf-8")
        self._records.write(json.dumps(record.to_dict(), ensure_ascii=False, default=str) + "\n")
        self._records.flush()

    def _repair_tail(self) -> None:
        """Cut a torn last line so that appended records start on a line of their own."""
        path = self.path / RECORDS
        if not path.exists() or path.stat().st_size == 0:
            return
        with open(path, "rb+") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) == b"\n":
                return
            f.seek(0)
            data = f.read()
            f.seek(data.rfind(b"\n") + 1)
            f.truncate()

    def close(self) -> None:
        if self._records is not None:
            self._records.close()
            self._records = None

    def _index(self) -> _Index:
        """Which lines to read: the latest line of every item, found without parsing whole records.

        Lines written by ``append`` start with the item's key (task, case_id, model, then output),
        so the bytes before ``, "output": `` identify the item; other lines are parsed for it.
        """
        path = self.path / RECORDS
        stat = path.stat()
        signature = (stat.st_size, stat.st_mtime_ns)
        if self._cached_index is None or self._cached_index.signature != signature:
            self._cached_index = _regular_index(path, signature) or _careful_index(path, signature)
        return self._cached_index

    def _lines(self) -> Iterator[dict]:
        path = self.path / RECORDS
        if not path.exists():
            return
        index = self._index()
        skip = index.skip
        bad = list(index.bad)
        with open(path, encoding="utf-8", errors="replace", newline="\n") as f:  # lines as the index counts them
            for n, line in enumerate(f, 1):
                if skip and n in skip:
                    continue
                try:
                    data = json.loads(line)
                    is_record = type(data["task"]) is type(data["case_id"]) is type(data["model"]) is str
                except json.JSONDecodeError as exc:
                    bad.append(BadLine(n, f"invalid JSON ({exc.msg})", torn=not line.endswith("\n")))
                    continue
                except (KeyError, TypeError, IndexError):  # not an object, or one without its key fields
                    is_record = False
                if is_record:
                    yield data
                else:
                    bad.append(BadLine(n, _parse(line)[1] or "not a record"))
        self._finish_read(index, sorted(bad, key=lambda b: b.line))

    def _finish_read(self, index: _Index, bad: list[BadLine]) -> None:
        health = RecordsHealth(bad=bad, lines=index.lines)
        first = self._health is None or self._health[0] != index.signature
        self._health = (index.signature, health)
        if first and bad:
            print(f"warning: {health.describe(self.path / RECORDS)}", file=sys.stderr)

    def health(self) -> RecordsHealth:
        """What reading records.jsonl found (reads it once if no reader has yet)."""
        path = self.path / RECORDS
        if not path.exists():
            return RecordsHealth()
        if self._health is None or self._health[0] != self._index().signature:
            for _ in self._lines():
                pass
        return self._health[1]

    def iter_raw(self) -> Iterator[dict]:
        """The latest record of every (task, case, model) as a plain dict, in file order.

        An item that was run again (a resumed run, a rescore, or a line written twice) has
        several lines; only its last readable one counts. Unreadable lines are left out and
        reported once (see ``health``).
        """
        yield from self._lines()

    def iter_records(self) -> Iterator[ItemResult]:
        """The latest record of every item (see ``iter_raw``), typed."""
        for data in self._lines():
            yield ItemResult.from_dict(data)

    def latest_records(self) -> dict[tuple[str, str, str, int], ItemResult]:
        """The last record per (task, case, model): what a resumed run counts as done."""
        return {r.key: r for r in self.iter_records()}


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
