"""CSV files that open cleanly in Excel and LibreOffice: UTF-8 with a BOM, no index column, ISO dates.

``summary.csv``: one row per task × model plus an overall row per model (``task`` = "(all)").
``items.csv``: one row per task × case × model with every record field; ``scores`` and
``judge`` hold JSON. Units are in the column names.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import Iterable

from openbench.records import ItemResult
from openbench.summary import COLUMNS, SummaryRow

ENCODING = "utf-8-sig"  # the BOM makes Excel read UTF-8
ITEM_COLUMNS = [f.name for f in dataclasses.fields(ItemResult)]


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return value


def write_summary(rows: list[SummaryRow], path: Path) -> Path:
    with open(path, "w", newline="", encoding=ENCODING) as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: _cell(v) for k, v in r.to_dict().items()})
    return path


def write_items(records: Iterable[dict], path: Path) -> int:
    """Stream raw records (``RunStore.iter_raw``) to CSV; returns the number of rows written."""
    n = 0
    with open(path, "w", newline="", encoding=ENCODING) as f:
        writer = csv.writer(f)
        writer.writerow(ITEM_COLUMNS)
        for r in records:
            writer.writerow([_cell(r.get(name)) for name in ITEM_COLUMNS])  # nested values (scores, tool calls...) as JSON
            n += 1
    return n
