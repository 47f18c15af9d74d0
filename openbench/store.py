"""A run on disk: ``results/<run-id>/`` with manifest.json, records.jsonl and summary.csv.

records.jsonl is append-only, one JSON object per finished item, flushed as it
is written, so an interrupted run loses nothing it finished. A torn last line
(from kill -9) is ignored when reading.
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from openbench.errors import RunError
from openbench.manifest import RunManifest
from openbench.records import ItemResult

MANIFEST = "manifest.json"
RECORDS = "records.jsonl"
SUMMARY = "summary.csv"


def new_run_id(suite_name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", suite_name).strip("-")[:40] or "run"
    return f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{slug}"


class RunStore:
    def __init__(self, path: Path):
        self.path = path
        self._records = None

    @classmethod
    def create(cls, out_dir: Path, run_id: str) -> RunStore:
        path = out_dir / run_id
        suffix = 1
        while path.exists():
            suffix += 1
            path = out_dir / f"{run_id}-{suffix}"
        path.mkdir(parents=True)
        return cls(path)

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

    def _lines(self) -> Iterator[dict]:
        path = self.path / RECORDS
        if not path.exists():
            return
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    data = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a torn or corrupt line
                if isinstance(data, dict):
                    yield data

    def iter_raw(self) -> Iterator[dict]:
        """The latest record of every item as a plain dict, in file order.

        A resumed run appends new records for items it ran again; only the last one of
        each (task, case, model) counts. Runs that were never resumed have no repeats
        and are read in one pass.
        """
        if not self.read_manifest().resumed_at:
            yield from self._lines()
            return
        last = {}
        for i, data in enumerate(self._lines()):
            last[(data.get("task"), data.get("case_id"), data.get("model"))] = i
        keep = set(last.values())
        for i, data in enumerate(self._lines()):
            if i in keep:
                yield data

    def iter_records(self) -> Iterator[ItemResult]:
        """The latest record of every item (see ``iter_raw``); a torn or corrupt line is skipped."""
        for data in self.iter_raw():
            try:
                yield ItemResult.from_dict(data)
            except TypeError:
                continue

    def latest_records(self) -> dict[tuple[str, str, str], ItemResult]:
        """The last record per (task, case, model): what a resumed run counts as done."""
        return {r.key: r for r in self.iter_records()}


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
